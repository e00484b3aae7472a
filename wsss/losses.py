"""Losses shared by several papers.

Method-specific losses live in their method module; what two or more papers use lives here once.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .data.folder import IGNORE


def multilabel_soft_margin(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Image-level classification loss of every CAM method: mean over classes of the binary
    cross-entropy ``-[y log s(x) + (1 - y) log(1 - s(x))]`` (PyTorch's MultiLabelSoftMarginLoss).
    logits, labels: (B, K)."""
    return F.multilabel_soft_margin_loss(logits, labels.to(logits.dtype))


def segmentation_ce(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Pixel-wise cross-entropy ignoring 255. logits (B, C, H, W), target (B, H, W) int64.
    Returns 0 (with a gradient path) when every pixel is ignored."""
    if (target != IGNORE).any():
        return F.cross_entropy(logits, target, ignore_index=IGNORE)
    return logits.sum() * 0.0


def split_ce(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """RRM's and ASDT's segmentation loss: CE on the background pixels + CE on the foreground pixels.

    Each part is a mean over its own pixels (255 ignored), so background and foreground weigh the same
    however many pixels each has (the RRM code's ``bg_label`` / ``fg_label``). logits (B, C, H, W),
    target (B, H, W) int64.
    """
    bg = target.masked_fill((target != 0) & (target != IGNORE), IGNORE)
    fg = target.masked_fill(target == 0, IGNORE)
    return segmentation_ce(logits, bg) + segmentation_ce(logits, fg)


def equivariance_l1(maps: torch.Tensor, maps_view: torch.Tensor) -> torch.Tensor:
    """The L1 equivariance of two views (TSCD's L_equ, RML's CIML/MFML alignment): mean |A(M) - M'|, with
    A(M) the first view's maps (B, C, h, w) resized (bilinear) to the second view's (B, C, h', w')."""
    resized = F.interpolate(maps, size=maps_view.shape[2:], mode="bilinear", align_corners=False)
    return (resized - maps_view).abs().mean()
