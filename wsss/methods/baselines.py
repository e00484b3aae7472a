"""The two reference points every WSSS paper reports against.

* :class:`CAMClassifier` - a classifier trained on image tags only; its class activation maps are the
  seeds all the papers refine (Zhou et al., 2016).
* :class:`FullySupervised` - the same kind of segmentation network trained on the full masks: the upper
  bound that weak supervision tries to approach.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from ..data.transforms import normalize
from ..losses import multilabel_soft_margin, segmentation_ce
from ..models import build_backbone
from ..models.heads import CAMNet, DeepLabV3Plus


class CAMClassifier(nn.Module):
    """Training step of a multi-label classifier whose CAMs become pseudo labels."""

    def __init__(self, backbone: str, num_classes: int, *, output_stride: int = 8, pretrained: str | None = None):
        super().__init__()
        self.net = CAMNet(build_backbone(backbone, pretrained=pretrained, output_stride=output_stride), num_classes - 1)

    def forward(self, batch: dict, step: int = 0) -> dict:
        logits = self.net(normalize(batch["image"]))["logits"]
        loss = multilabel_soft_margin(logits, batch["labels"])
        return {"loss": loss}

    def param_groups(self) -> list[dict]:
        return self.net.param_groups()


class FullySupervised(nn.Module):
    """Training step of DeepLab-v3+ on full masks (cross-entropy, 255 ignored)."""

    def __init__(self, backbone: str, num_classes: int, *, output_stride: int = 16, channels: int = 256,
                 pretrained: str | None = None):
        super().__init__()
        self.net = DeepLabV3Plus(build_backbone(backbone, pretrained=pretrained, output_stride=output_stride),
                                 num_classes, channels=channels)

    def forward(self, batch: dict, step: int = 0) -> dict:
        logits = self.net(normalize(batch["image"]))
        return {"loss": segmentation_ce(logits, batch["mask"])}

    @torch.no_grad()
    def predict(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 (B, 3, H, W) -> class probabilities (B, C, H, W)."""
        return self.net(normalize(images)).softmax(dim=1)

    def param_groups(self) -> list[dict]:
        return self.net.param_groups()
