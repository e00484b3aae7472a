"""Heads on top of a backbone: the CAM classifier and a DeepLab-v3+ segmentation head.

A backbone (see :func:`wsss.models.build_backbone`) returns a list of feature maps, shallow to deep,
and says their channels in ``out_channels``. The networks here take that list.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


class CAMNet(nn.Module):
    """Backbone + global average pooling + a 1x1 classifier without bias (Zhou et al., CAM).

    Because the classifier is linear and bias-free, applying it before or after pooling is the same,
    so ``logits = GAP(cam)`` where ``cam_c = w_c^T f`` at every position.
    forward(images (B, 3, H, W)) -> {"logits": (B, C-1), "cam": (B, C-1, h, w) raw, "features": [..]}.
    """

    def __init__(self, backbone: nn.Module, num_foreground: int):
        super().__init__()
        self.backbone = backbone
        self.classifier = nn.Conv2d(backbone.out_channels[-1], num_foreground, kernel_size=1, bias=False)

    def forward(self, images: torch.Tensor) -> dict:
        features = self.backbone(images)
        cam = self.classifier(features[-1])            # (B, C-1, h, w)
        logits = cam.mean(dim=(2, 3))                   # GAP after the linear map = linear map after GAP
        return {"logits": logits, "cam": cam, "features": features}

    def param_groups(self) -> list[dict]:
        """Backbone and new layers, for the 1x / 10x learning-rate convention of WSSS code."""
        return [{"params": list(self.backbone.parameters()), "lr_mult": 1.0},
                {"params": list(self.classifier.parameters()), "lr_mult": 10.0}]


def _conv_bn_relu(cin: int, cout: int, k: int = 3, dilation: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, k, padding=dilation * (k // 2), dilation=dilation, bias=False),
                         nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class ASPP(nn.Module):
    """Atrous spatial pyramid pooling of DeepLab-v3: parallel dilated 3x3 convs + image pooling."""

    def __init__(self, cin: int, cout: int, rates: tuple[int, ...] = (6, 12, 18)):
        super().__init__()
        self.branches = nn.ModuleList([_conv_bn_relu(cin, cout, 1)] + [_conv_bn_relu(cin, cout, 3, r) for r in rates])
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(cin, cout, 1, bias=False), nn.ReLU(inplace=True))
        self.project = _conv_bn_relu(cout * (len(rates) + 2), cout, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = self.pool(x).expand(-1, -1, *x.shape[2:])
        return self.project(torch.cat([b(x) for b in self.branches] + [pooled], dim=1))


class DeepLabV3Plus(nn.Module):
    """DeepLab-v3+ (Chen et al., 2018): ASPP on the deepest features, fused with the shallowest ones.

    forward(images (B, 3, H, W)) -> logits (B, C, H, W), upsampled bilinearly to the input size.
    ``channels`` sets the width of the head (256 in the paper; smaller for CPU profiles).
    """

    def __init__(self, backbone: nn.Module, num_classes: int, *, channels: int = 256, low_channels: int = 48,
                 rates: tuple[int, ...] = (6, 12, 18)):
        super().__init__()
        self.backbone = backbone
        self.aspp = ASPP(backbone.out_channels[-1], channels, rates)
        self.low = _conv_bn_relu(backbone.out_channels[0], low_channels, 1)
        self.fuse = nn.Sequential(_conv_bn_relu(channels + low_channels, channels),
                                  _conv_bn_relu(channels, channels))
        self.classifier = nn.Conv2d(channels, num_classes, 1)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        features = self.backbone(images)
        low = self.low(features[0])                                         # (B, 48, H/4, W/4)
        high = F.interpolate(self.aspp(features[-1]), size=low.shape[2:], mode="bilinear", align_corners=False)
        logits = self.classifier(self.fuse(torch.cat([high, low], dim=1)))  # (B, C, H/4, W/4)
        return F.interpolate(logits, size=images.shape[2:], mode="bilinear", align_corners=False)

    def param_groups(self) -> list[dict]:
        head = [p for n, p in self.named_parameters() if not n.startswith("backbone.")]
        return [{"params": list(self.backbone.parameters()), "lr_mult": 1.0}, {"params": head, "lr_mult": 10.0}]


class SegFormerHead(nn.Module):
    """The all-MLP decoder of SegFormer (Xie et al., 2021), as AFA and TSCD use it on MiT.

    Each of the four feature levels goes through a linear layer (a 1x1 conv) to ``channels`` (256 in AFA),
    all are upsampled to the first level's size (1/4), concatenated, fused by a 1x1 conv + BN + ReLU to
    ``channels``, dropped out (0.1) and classified by a 1x1 conv. forward(features: list of 4 maps, shallow
    to deep) -> logits (B, num_classes, H/4, W/4), not upsampled to the image (callers resize).
    """

    def __init__(self, in_channels: tuple[int, ...], num_classes: int, *, channels: int = 256, dropout: float = 0.1):
        super().__init__()
        self.linear = nn.ModuleList(nn.Conv2d(c, channels, 1) for c in in_channels)
        self.fuse = _conv_bn_relu(channels * len(in_channels), channels, 1)
        self.dropout = nn.Dropout2d(dropout)
        self.classifier = nn.Conv2d(channels, num_classes, 1)

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        size = features[0].shape[2:]
        levels = [F.interpolate(lin(f), size=size, mode="bilinear", align_corners=False) if f.shape[2:] != size else lin(f)
                  for lin, f in zip(self.linear, features)]
        # (the official decoder concatenates the deepest level first)
        return self.classifier(self.dropout(self.fuse(torch.cat(levels[::-1], dim=1))))
