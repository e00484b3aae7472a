"""What an ASDT run outputs, for :func:`wsss.experiments.run_variant` (notebooks/asdt.ipynb).

Tables 4 and 5 of the paper report the seg-teacher P^st, the student P^s and their fusion P (Eq. 1,
by max, mean or multiply), each with and without the dense-CRF post-processing: :data:`OUTPUTS` names
them, :func:`predictor` computes any of them from one forward pass.
"""
from __future__ import annotations

import torch

from ..data.transforms import normalize
from ..methods.asdt import ASDT, ST_GAUSSIAN, fuse
from ..ops import upsample
from ..refine.crf import crf_label

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
