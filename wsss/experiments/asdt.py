"""What an ASDT run outputs, for :func:`wsss.experiments.run_variant` (notebooks/asdt.ipynb).

Tables 4 and 5 of the paper report the seg-teacher P^st, the student P^s and their fusion P (Eq. 1,
by max, mean or multiply), each with and without the dense-CRF post-processing: :data:`OUTPUTS` names
them, :func:`predictor` computes any of them from one forward pass. :func:`ceiling_predictor` scores
the notebook's ceiling (:class:`wsss.methods.baselines.MaskSupervised`) with the same test-time CRF.
"""
from __future__ import annotations

import torch

from ..data.transforms import normalize
from ..evaluate import evaluate
from ..methods.asdt import ASDT, ST_GAUSSIAN, fuse
from ..ops import upsample
from ..refine.crf import crf_label
from .timing import median_ms

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


def predictor(model: ASDT, outputs, *, crf_bilateral: tuple[float, float, float], crf_backend: str | None = None):
    """A ``predict(batch)`` for :func:`wsss.evaluate.evaluate` giving the named ``outputs`` (keys of
    :data:`OUTPUTS`) from one forward pass; the CRF (Gaussian 3/3, ``crf_bilateral``, 10 iterations,
    ``crf_backend`` or else the model's) runs once per output that asks for it."""
    crf_backend = crf_backend or model.crf_backend
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
            out[name] = crf_label(images, probs, backend=crf_backend, gaussian=ST_GAUSSIAN, bilateral=crf_bilateral) \
                if crf else probs.argmax(1)
        return out

    return predict


class BranchCurve:
    """The evaluation callback of :func:`wsss.train.train` for the mechanism plot (the paper's Fig. 4 argues from
    trajectories): val mIoU of the seg-teacher P^st and of the student P^s (argmax, single scale, no CRF) on the
    first ``images`` images of ``dataset``, every ``evaluate_every`` iterations of a run. An importable class, so
    that spawned workers can run it. Returns {"seg_teacher": fraction, "student": fraction}."""

    def __init__(self, dataset, images: int = 64, batch_size: int = 32):
        if images < 1:
            raise ValueError(f"images={images} must be at least 1")
        self.dataset, self.n, self.batch_size = dataset, min(images, len(dataset)), batch_size

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int):
        return self.dataset[i]

    @property
    def num_classes(self) -> int:
        return self.dataset.num_classes

    def __call__(self, model) -> dict:
        device = next(model.parameters()).device
        cms = evaluate(predictor(model, ["P^st", "P^s"], crf_bilateral=(1.0, 1.0, 1.0)), self, batch_size=self.batch_size,
                       device=device)
        return {"seg_teacher": cms["P^st"].miou(), "student": cms["P^s"].miou()}


CEILING_OUTPUTS = {"seg": False, "seg + CRF": True}


def ceiling_predictor(model, outputs, *, crf_bilateral: tuple[float, float, float], crf_backend: str = "auto"):
    """A ``predict(batch)`` for the ceiling (a :class:`wsss.methods.baselines.MaskSupervised`, whose
    ``predict`` gives logits): the argmax of its softmax ("seg") and after the dense CRF that scores ASDT's
    outputs ("seg + CRF": Gaussian 3/3, ``crf_bilateral``, 10 iterations), the ceiling of "... + CRF"."""
    unknown = [o for o in outputs if o not in CEILING_OUTPUTS]
    if unknown:
        raise ValueError(f"unknown outputs {unknown}; a ceiling has {list(CEILING_OUTPUTS)}")

    def predict(batch: dict) -> dict:
        images = batch["image"]
        probs = model.predict(images).softmax(1)                                 # (B, C, H, W)
        return {name: crf_label(images, probs, backend=crf_backend, gaussian=ST_GAUSSIAN, bilateral=crf_bilateral)
                if CEILING_OUTPUTS[name] else probs.argmax(1) for name in outputs}

    return predict


def label_work_breakdown(model: ASDT, batch: dict, *, repeats: int = 5) -> dict:
    """Milliseconds of each piece of an ASDT step's label work on one batch (median of ``repeats``), on
    the model's device: the class-teacher's CAM (a forward pass, for reference), RRM's two CRF runs, the
    reliability masks and label, B^st's CRF, L_str's kernel (Eq. 6, built once per step) and the two
    heads' L_str forward and backward on it. Shows where the time of :func:`wsss.experiments.step_timing`'s
    "the rest" goes."""
    from ..cam import background_crf_runs, combine_labels
    from ..methods.rrm import CAM_GAUSSIAN, structure_kernel, structure_loss, unreliable_mask

    images, tags = batch["image"], batch["labels"]

    def timed(fn):
        return median_ms(fn, images.device, repeats)

    model.train()
    ms = {}
    ms["class-teacher forward and CAM"], (_, _, cams) = timed(lambda: model.class_teacher(images, tags))
    ms["RRM: two CRF runs (k=4, k=32)"], (q_low, q_high) = timed(lambda: background_crf_runs(
        images, cams, gaussian=CAM_GAUSSIAN, bilateral=model.crf_bilateral, backend=model.crf_backend, tags=tags))

    ms["RRM: reliability masks and label"], target = timed(
        lambda: combine_labels(q_low, q_high, unreliable_mask(q_low, q_high, cams)))
    with torch.no_grad():
        p_st, p_s = branch_probs(model, images)
    ms["B^st: CRF of P^st"], _ = timed(lambda: model.seg_side_label(images, cams, p_st))
    ms["L_str: kernel G (Eq. 6), once per step"], kernel = timed(lambda: structure_kernel(images, sigma_xy=model.str_sigma_xy))

    def two_losses():
        probs = [p.clone().requires_grad_() for p in (p_st, p_s)]
        loss = sum(structure_loss(images, p, target, kernel=kernel) for p in probs)
        loss.backward()
        return loss

    ms["L_str: both heads, forward and backward"], _ = timed(two_losses)
    return ms
