"""The Seminar pipeline for notebooks/seminar.ipynb: what a Seminar run outputs (:data:`OUTPUTS`, :func:`predictor`),
the evaluation callback of Fig. 4's curves, and where a step's work goes. Every training goes through
:func:`wsss.experiments.run_variant` with ``method=`` :class:`wsss.methods.seminar.Seminar`; Table 3's rows differ
only in its switches, a primary model only in its ``ancillary`` file.
"""
from __future__ import annotations

import torch

from ..evaluate import evaluate
from ..ops import class_argmax

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
