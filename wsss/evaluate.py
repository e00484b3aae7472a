"""Evaluation: confusion matrix, mIoU and per-class tables in the papers' layout.

mIoU follows the PASCAL VOC protocol: accumulate one confusion matrix over the whole split (not a mean
of per-image scores), ignore pixels labelled 255, IoU_c = TP / (TP + FP + FN), and average over the
classes that occur in the ground truth or the predictions.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from .data.folder import IGNORE


class ConfusionMatrix:
    """Accumulates a (C, C) confusion matrix; rows are ground truth, columns predictions."""

    def __init__(self, num_classes: int):
        if num_classes < 2:
            raise ValueError(f"num_classes={num_classes} must be at least 2")
        self.num_classes = num_classes
        self.matrix = torch.zeros(num_classes, num_classes, dtype=torch.int64)

    def update(self, pred: torch.Tensor | np.ndarray, target: torch.Tensor | np.ndarray) -> None:
        """Add a batch: pred and target are integer class ids of the same shape; target 255 is ignored."""
        pred, target = torch.as_tensor(pred), torch.as_tensor(target)
        if pred.shape != target.shape:
            raise ValueError(f"prediction shape {tuple(pred.shape)} differs from target shape {tuple(target.shape)}")
        pred, target = pred.reshape(-1).long().cpu(), target.reshape(-1).long().cpu()
        keep = target != IGNORE
        pred, target = pred[keep], target[keep]
        if pred.numel() and (pred.min() < 0 or pred.max() >= self.num_classes):
            raise ValueError(f"predictions hold class ids outside 0..{self.num_classes - 1}")
        if target.numel() and target.max() >= self.num_classes:
            raise ValueError(f"targets hold class ids outside 0..{self.num_classes - 1} (255 = ignore)")
        idx = target * self.num_classes + pred
        self.matrix += torch.bincount(idx, minlength=self.num_classes**2).reshape(self.num_classes, self.num_classes)

    def iou(self) -> np.ndarray:
        """Per-class IoU (C,), NaN for a class absent from both ground truth and predictions."""
        m = self.matrix.double()
        tp = m.diag()
        union = m.sum(0) + m.sum(1) - tp
        iou = torch.where(union > 0, tp / union.clamp(min=1), torch.full_like(tp, float("nan")))
        return iou.numpy()

    def miou(self) -> float:
        """Mean IoU over the classes that occur, as a fraction in [0, 1]."""
        iou = self.iou()
        return float(np.nanmean(iou)) if np.isfinite(iou).any() else float("nan")

    def pixel_accuracy(self) -> float:
        m = self.matrix.double()
        return float(m.diag().sum() / m.sum().clamp(min=1))


def miou(preds, targets, num_classes: int) -> float:
    """mIoU of an iterable of (prediction, target) mask pairs."""
    cm = ConfusionMatrix(num_classes)
    for p, t in zip(preds, targets):
        cm.update(p, t)
    return cm.miou()


def label_coverage(labels: torch.Tensor, masks: torch.Tensor) -> dict:
    """How much of the truth a pseudo label with ignored pixels (255) speaks for, and how rightly.

    labels, masks: (B, H, W) class ids; pixels the ground truth ignores are left out. Returns pixel
    counts {"bg", "bg_labelled", "fg", "fg_labelled", "labelled", "correct"} (sum them over batches),
    from which :func:`coverage_summary` makes fractions.
    """
    valid = masks != IGNORE
    labelled = valid & (labels != IGNORE)
    bg, fg = valid & (masks == 0), valid & (masks != 0)
    count = lambda m: int(m.sum())  # noqa: E731
    return {"bg": count(bg), "bg_labelled": count(bg & labelled), "fg": count(fg), "fg_labelled": count(fg & labelled),
            "labelled": count(labelled), "correct": count(labelled & (labels == masks))}


def coverage_summary(counts: dict) -> dict:
    """Fractions from summed :func:`label_coverage` counts: the share of background and of foreground
    pixels that carry a label, and the accuracy of the labelled pixels."""
    ratio = lambda a, b: counts[a] / counts[b] if counts[b] else float("nan")  # noqa: E731
    return {"background labelled": ratio("bg_labelled", "bg"), "foreground labelled": ratio("fg_labelled", "fg"),
            "labelled pixels correct": ratio("correct", "labelled")}


def per_class_table(results: dict[str, ConfusionMatrix], class_names: Sequence[str], *, percent: bool = True):
    """A pandas DataFrame with one row per method and one column per class plus mIoU, as in the papers."""
    import pandas as pd

    scale = 100.0 if percent else 1.0
    rows = {}
    for method, cm in results.items():
        if cm.num_classes != len(class_names):
            raise ValueError(f"{method}: {cm.num_classes} classes but {len(class_names)} class names")
        iou = cm.iou() * scale
        rows[method] = dict(zip(class_names, iou), mIoU=np.nanmean(iou))
    return pd.DataFrame.from_dict(rows, orient="index").round(1)


@torch.no_grad()
def evaluate(predict, dataset, *, batch_size: int = 16, device: str | torch.device = "cpu",
             progress: bool = False, desc: str = "eval"):
    """Run ``predict`` over a dataset and accumulate confusion matrices against its masks.

    ``predict(batch)`` gets the collated sample dict (tensors on ``device``) and returns (B, H, W) class
    ids, or a dict of several such predictions (e.g. one per threshold of a sweep, so that expensive
    work such as multi-scale CAM is done once per batch). Returns a :class:`ConfusionMatrix`, or a dict
    of them with the same keys.
    """
    from tqdm import tqdm

    from .data.folder import collate

    cms: dict = {}
    single = None
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, collate_fn=collate)
    for batch in tqdm(loader, desc=desc, disable=not progress, leave=False):
        batch = {k: v.to(device) if torch.is_tensor(v) else v for k, v in batch.items()}
        out = predict(batch)
        single = not isinstance(out, dict)
        for key, labels in ({None: out} if single else out).items():
            cms.setdefault(key, ConfusionMatrix(dataset.num_classes)).update(labels, batch["mask"])
    return cms[None] if single else cms


def dataset_masks(dataset) -> dict:
    """The dataset's own masks, name -> int64 (H, W), read once (for :func:`masks_miou`)."""
    return {sample["name"]: sample["mask"] for sample in (dataset[i] for i in range(len(dataset)))}


def masks_miou(masks: dict, dataset, targets: dict | None = None) -> dict:
    """mIoU of pseudo masks against the dataset's own masks (the train-set seed quality of Fig. 6), over
    the pixels the pseudo masks label (255 in a pseudo mask: not scored): {"miou": fraction,
    "per_class": [IoU], "labelled": share of the scored ground-truth pixels that the masks label}.
    ``targets``: the :func:`dataset_masks` of ``dataset``, read once for many calls (else read here)."""
    targets = dataset_masks(dataset) if targets is None else targets
    cm = ConfusionMatrix(dataset.num_classes)
    labelled = total = 0
    for name, target in targets.items():
        pred = torch.as_tensor(masks[name]).long()
        unsure = pred == 255
        total += int((target != 255).sum())
        target = target.masked_fill(unsure, 255)
        labelled += int((target != 255).sum())
        cm.update(pred.masked_fill(unsure, 0)[None], target[None])
    return {"miou": cm.miou(), "per_class": cm.iou().tolist(), "labelled": labelled / max(total, 1)}
