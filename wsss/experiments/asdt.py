"""The runs behind notebooks/asdt.ipynb: train one ASDT variant, then score its branches on val.

A run starts from a class-teacher (backbone + CAM classifier) trained on the tags beforehand - the
stand-in, on the synthetic benchmark, for the ImageNet weights the paper starts from - trains the
three branches of :class:`wsss.methods.asdt.ASDT` with one set of switches, and scores the
predictions that Tables 4 and 5 of the paper report: the seg-teacher P^st, the student P^s and their
fusion P (Eq. 1, by max, mean or multiply), each with and without the dense-CRF post-processing.
"""
from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

import torch

from ..evaluate import evaluate
from ..methods.asdt import ASDT, crf_label, fuse
from ..methods.rrm import upsample
from ..data.transforms import normalize
from ..train import TrainConfig, resolve_device, seed_everything, train

# what a run can score: name -> (branch or fusion, CRF post-processing)
OUTPUTS = {f"{name}{' + CRF' if crf else ''}": (src, crf)
           for name, src in (("P^st", "st"), ("P^s", "s"), ("P max", "max"), ("P mean", "mean"),
                             ("P multiply", "multiply"))
           for crf in (False, True)}


@torch.no_grad()
def branch_probs(model: ASDT, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Softmax of the seg-teacher and of the student, (B, C, H, W) each, for uint8 images (B, 3, H, W)."""
    features = model.net.backbone(normalize(images))[-1]
    size = images.shape[2:]
    return upsample(model.seg(features), size).softmax(1), upsample(model.student(features), size).softmax(1)


def predictor(model: ASDT, outputs, *, crf_bilateral: tuple[float, float, float], crf_backend: str = "auto"):
    """A ``predict(batch)`` for :func:`wsss.evaluate.evaluate` giving the named ``outputs`` (keys of
    :data:`OUTPUTS`) from one forward pass; the CRF (Gaussian 3/3, ``crf_bilateral``, 10 iterations)
    runs once per output that asks for it."""
    unknown = [o for o in outputs if o not in OUTPUTS]
    if unknown:
        raise ValueError(f"unknown outputs {unknown}; choose from {list(OUTPUTS)}")

    def predict(batch: dict) -> dict:
        images = batch["image"]
        p_st, p_s = branch_probs(model, images)
        out = {}
        for name in outputs:
            src, crf = OUTPUTS[name]
            probs = {"st": p_st, "s": p_s}.get(src)
            probs = fuse(p_st, p_s, src) if probs is None else probs
            out[name] = crf_label(images, probs, backend=crf_backend, bilateral=crf_bilateral) if crf \
                else probs.argmax(1)
        return out

    return predict


def run_variant(*, train_set, val_set, num_classes: int, model: dict, train_cfg: dict, outputs, init: str | None,
                crf_bilateral: tuple[float, float, float], seed: int = 0, save_to: str | None = None,
                resume_from: str | None = None, eval_batch: int = 16) -> dict:
    """Train one ASDT variant and score ``outputs`` on ``val_set``.

    model: keyword arguments of :class:`ASDT` (backbone, distill, T, tau, warmup, switches, kernels);
    train_cfg: of :class:`wsss.train.TrainConfig` (with ``stop_at`` and ``checkpoint_dir`` it is the
    shared first part of several runs: nothing is scored); init: a file with the class-teacher's state
    dict (``CAMNet``) to start from, or None; resume_from: the ``last.pt`` of such a shared first part to
    continue from (copied, the file is left as it is); save_to: where to keep the trained weights.
    Returns {"miou": {output: fraction}, "per_class": {output: [IoU per class]}, "history": [...],
    "train_seconds": s, "eval_seconds": s}.
    """
    seed_everything(seed)
    method = ASDT(num_classes=num_classes, **model)
    if init is not None:
        method.net.load_state_dict(torch.load(init, map_location="cpu", weights_only=True))
    cfg = TrainConfig(**{"seed": seed, "progress": False, **train_cfg})
    with tempfile.TemporaryDirectory() as tmp:
        if resume_from is not None:
            if not Path(resume_from).is_file():
                raise FileNotFoundError(f"resume_from={resume_from}: no such checkpoint")
            shutil.copy(resume_from, Path(tmp) / "last.pt")
            cfg.checkpoint_dir, cfg.resume = tmp, True
        start = time.perf_counter()
        history = train(method, train_set, cfg)
        train_seconds = time.perf_counter() - start
    if cfg.stop_at is not None:
        return {"miou": {}, "per_class": {}, "history": history, "train_seconds": train_seconds, "eval_seconds": 0.0}
    device = resolve_device(cfg.device)
    method.to(device).eval()
    start = time.perf_counter()
    cms = evaluate(predictor(method, outputs, crf_bilateral=crf_bilateral, crf_backend=model.get("crf_backend", "auto")),
                   val_set, batch_size=eval_batch, device=device)
    if save_to is not None:
        Path(save_to).parent.mkdir(parents=True, exist_ok=True)
        torch.save(method.state_dict(), save_to)
    return {"miou": {k: cm.miou() for k, cm in cms.items()}, "per_class": {k: cm.iou().tolist() for k, cm in cms.items()},
            "history": history, "train_seconds": train_seconds, "eval_seconds": time.perf_counter() - start}
