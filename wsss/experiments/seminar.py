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
