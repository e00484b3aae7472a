"""The RML pipeline for notebooks/rml.ipynb: what an RML run outputs (:data:`OUTPUTS`, :func:`predictor`) and
where a step's work goes. Every training goes through :func:`wsss.experiments.run_variant` with
``method=`` :class:`wsss.methods.rml.RML`; the stand-in classifier is TSCD's (:func:`wsss.experiments.tscd.pretrain_tags`).
"""
from __future__ import annotations

import torch

from ..methods.rml import RML, affinity_representation, ciml_loss, mfml_loss, pixel_mi_loss, rml_scores
from ..ops import rescaled_view
from ..refine.crf import crf_label
from .tscd import CRF_BILATERAL, CRF_GAUSSIAN, label_pieces

# name -> (present classes from the ground-truth tags?, dense CRF?)
OUTPUTS = {"pred": (False, False), "pred + CRF": (False, True), "pred, GT tags": (True, False)}


def class_probs(scores: torch.Tensor) -> torch.Tensor:
    """Walked scores (B, K+1, H, W), non-negative, normalised to sum 1 over the classes for the dense CRF; a pixel
    whose scores all vanished (the squared affinity of its column underflowed to 0) is background."""
    total = scores.sum(1, keepdim=True)
    empty = total <= 1e-12
    background = torch.zeros_like(scores)
    background[:, 0] = 1.0
    return torch.where(empty, background, scores / total.clamp_min(1e-12))


def predictor(model: RML, outputs, *, crf_gaussian=CRF_GAUSSIAN, crf_bilateral=CRF_BILATERAL, crf_backend: str = "auto"):
    """A ``predict(batch)`` for :func:`wsss.evaluate.evaluate`: the argmax of :func:`wsss.methods.rml.rml_scores`
    with the classes the classifier predicts ("pred"), after a dense CRF of 10 iterations on the scores
    normalised to sum 1 ("pred + CRF"; pass ``crf_bilateral`` scaled to the image size), and with the
    ground-truth tags as the public code's validation does ("pred, GT tags": marked as such, not a WSSS result)."""
    unknown = [o for o in outputs if o not in OUTPUTS]
    if unknown:
        raise ValueError(f"unknown outputs {unknown}; choose from {list(OUTPUTS)}")

    def predict(batch: dict) -> dict:
        images, out, cache = batch["image"], {}, {}
        for name in outputs:
            gt, crf = OUTPUTS[name]
            if gt not in cache:
                cache[gt] = rml_scores(model.net, images, radius=model.radius, tags=batch["labels"] if gt else None)
            scores = cache[gt]
            if crf:
                probs = class_probs(scores)
                out[name] = crf_label(images, probs, gaussian=crf_gaussian, bilateral=crf_bilateral, backend=crf_backend)
            else:
                out[name] = scores.masked_fill(scores <= 0, float("-inf")).argmax(1)
        return out

    return predict


def label_work_breakdown(model: RML, batch: dict, *, repeats: int = 5) -> dict:
    """Milliseconds of each piece of an RML step beyond the training forward (median of ``repeats``): the CAM pass
    for the labels (three scales with flips, no grad), PAR's two-background label, and the three strategies'
    losses forward and backward on detached network outputs (CIML, MFML with the fusion module, L_mi)."""
    images = batch["image"]
    timed, ms, label = label_pieces(model, batch, repeats)
    with torch.no_grad():
        out = model.net(images, with_attn=True)
        view = model.net(rescaled_view(images, model.view_scale), with_attn=True)

    def grad(t):
        return t.detach().clone().requires_grad_()

    def ciml():
        loss = ciml_loss(grad(out["cam"]), grad(view["cam"]), grad(out["features"][-1]), grad(view["features"][-1]))
        loss.backward()
        return loss

    def mfml():
        loss = mfml_loss(model.context({"features": [grad(f) for f in out["features"]]}),
                         model.context({"features": [grad(f) for f in view["features"]]}), model.beta1)
        loss.backward()
        return loss

    def mi():
        rep = affinity_representation(grad(out["attn"]), out["cam"].shape[2:])
        rep_view = affinity_representation(grad(view["attn"]), view["cam"].shape[2:])
        loss = pixel_mi_loss(rep, rep_view, label, model.num_classes)
        loss.backward()
        return loss

    ms["CIML loss, forward and backward"], _ = timed(ciml)
    ms["MFML (fusion + loss), forward and backward"], _ = timed(mfml)
    ms["APML L_mi, forward and backward"], _ = timed(mi)
    return ms
