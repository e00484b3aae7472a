"""The Seminar pipeline for notebooks/seminar.ipynb: what a Seminar run outputs (:data:`OUTPUTS`, :func:`predictor`),
the evaluation callback of Fig. 4's curves, and where a step's work goes. Every training goes through
:func:`wsss.experiments.run_variant` with ``method=`` :class:`wsss.methods.seminar.Seminar`; Table 3's rows differ
only in its switches, a primary model only in its ``ancillary`` file.
"""
from __future__ import annotations

import torch

from ..data.transforms import normalize
from ..evaluate import evaluate
from ..methods.seminar import crf_loss, ema_update
from ..ops import class_argmax
from .timing import median_ms

# name -> network: the paper evaluates students ("student": single scale, no CRF); the teacher for comparison
OUTPUTS = {"student": False, "teacher": True}


def predictor(model, outputs):
    """A ``predict(batch)`` for :func:`wsss.evaluate.evaluate`: the argmax of the student's logits at a single scale,
    no CRF (the paper's evaluation), and of the EMA teacher's ("teacher", where the model has one)."""
    unknown = [o for o in outputs if o not in OUTPUTS]
    if unknown:
        raise ValueError(f"unknown outputs {unknown}; choose from {list(OUTPUTS)}")

    def predict(batch: dict) -> dict:
        return {name: class_argmax(model.predict(batch["image"], teacher=OUTPUTS[name])) for name in outputs}

    return predict


class ValCurve:
    """The evaluation callback of :func:`wsss.train.train` for Fig. 4's curves: the student's val mIoU (single
    scale, no CRF) on ``dataset`` (an importable class, so that spawned workers can run it)."""

    def __init__(self, dataset, batch_size: int = 32):
        self.dataset, self.batch_size = dataset, batch_size

    def __call__(self, model) -> dict:
        device = next(model.parameters()).device
        cms = evaluate(predictor(model, ["student"]), self.dataset, batch_size=self.batch_size, device=device)
        return {"miou": cms["student"].miou()}


def label_work_breakdown(model, batch: dict, *, repeats: int = 5) -> dict:
    """Milliseconds of each piece of a Seminar step beyond its network passes (median of ``repeats``, on the model's
    device): the dense-CRF loss (Eq. 4) forward and backward on the student's softmax, the teacher's EMA update
    (Eq. 1) and the pseudo-label argmax (Eq. 6). The student, teacher and ancillary forwards are network passes."""
    images, valid = batch["image"], batch.get("valid")
    device = images.device
    with torch.no_grad():
        logits = model.student(normalize(images))

    def crf():
        probs = logits.detach().clone().requires_grad_().softmax(1)
        loss = crf_loss(images, probs, valid, model.crf_sigma_xy)
        loss.backward()
        return loss

    ms = {}
    ms["dense-CRF loss (Eq. 4), forward and backward"], _ = median_ms(crf, device, repeats)
    if model.teacher is not None:
        ms["EMA update of the teacher (Eq. 1)"], _ = median_ms(lambda: ema_update(model.teacher, model.student, 10_000, model.alpha),
                                                               device, repeats)
    if model.ancillary is not None:
        ms["pseudo-label argmax (Eq. 6)"], _ = median_ms(lambda: class_argmax(logits), device, repeats)
    return ms


def lever_table(path=None):
    """The click-protocol levers measured by ``scripts/seminar_levers.py`` (committed in ``results/seminar_levers.json``)
    as a table: each pCE run beside the fully supervised run of the same schedule and image size, and their ratio
    (the paper's: 54.70 / 78.59 = 0.70). None when the file does not exist."""
    import json

    import pandas as pd

    from ..notebook import repo_root

    path = repo_root() / "results" / "seminar_levers.json" if path is None else path
    if not path.is_file():
        return None
    runs = json.loads(path.read_text())["runs"]
    full = {(r["steps"], r["crop"]): r["miou"] for r in runs if r["lever"]["full"]}
    rows = []
    for r in runs:
        lever = r["lever"]
        if lever["full"]:
            continue
        if lever.get("background_line"):
            labels = f"background: a {lever['background_line']}-pixel line through one point (scribble-like)"
        elif lever.get("background") is not None:
            labels = f"background: {lever['background']} click(s) per image"
        else:
            labels = "background: 2 clicks per image (the benchmark's clicks.json)"
        ceiling = full.get((r["steps"], r["crop"]))
        rows.append({"labels (1 click per object, and ...)": labels, "iterations": r["steps"], "image px": r["crop"],
                     "labelled px per crop": round(r["labelled_pixels_per_crop"], 2), "pCE": round(100 * r["miou"], 1),
                     "full masks": None if ceiling is None else round(100 * ceiling, 1),
                     "pCE / full": None if ceiling is None else round(r["miou"] / ceiling, 2)})
    return pd.DataFrame(rows)
