"""The two reference points every WSSS paper reports against.

* :class:`CAMClassifier` - a classifier trained on image tags only; its class activation maps are the
  seeds all the papers refine (Zhou et al., 2016).
* :class:`FullySupervised` - the same kind of segmentation network trained on the full masks: the upper
  bound that weak supervision tries to approach.
* :class:`MaskSupervised` - a notebook's *ceiling*: its own encoder and its own kind of output (AFA's SegFormer
  decoder, RML's decoder-free map, DeepLab-v3+) trained on the full masks at the notebook's size and schedule,
  the top of the room a weakly supervised method has to climb (docs/design.md "Can a run test a claim?").
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..data.transforms import normalize
from ..losses import multilabel_soft_margin, segmentation_ce
from ..models import build_backbone
from ..models.heads import CAMNet, DeepLabV3Plus, SegFormerHead


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


class MaskSupervised(nn.Module):
    """The ceiling of a notebook: backbone ``backbone`` with ``head`` trained by cross-entropy on the full masks
    (255 ignored).

    head: "segformer" (the all-MLP decoder on the four levels, as AFA / TSCD), "linear" (a 1x1 conv on the
    deepest level: the decoder-free output RML predicts from), or "deeplab" (DeepLab-v3+, as
    :class:`FullySupervised`). The backbone and the head train with the 1x / 10x learning rates of WSSS code.
    ``freeze_norms``: the encoder's LayerNorms are not trained, as AFA's code (and so TSCD's and RML's) does
    (:class:`wsss.methods.afa.AFANet`), so that the ceiling is the same network as the method's.
    ``predict(uint8 images)`` -> logits (B, C, H, W) resized to the input, as the methods' own ``predict``.
    """

    HEADS = ("segformer", "linear", "deeplab")

    def __init__(self, backbone: str, num_classes: int, *, head: str = "segformer", output_stride: int = 16,
                 channels: int = 256, pretrained: str | None = None, freeze_norms: bool = False):
        super().__init__()
        if head not in self.HEADS:
            raise ValueError(f"head={head!r} is not known; choose one of {self.HEADS}")
        self.encoder = build_backbone(backbone, pretrained=pretrained, output_stride=output_stride)
        chans = tuple(self.encoder.out_channels)
        self.head_name = head
        if head == "segformer":
            self.head = SegFormerHead(chans, num_classes, channels=channels)
        elif head == "linear":
            self.head = nn.Conv2d(chans[-1], num_classes, 1)
        else:
            self.head = DeepLabV3Plus(self.encoder, num_classes, channels=channels)
        if freeze_norms:
            for m in self.encoder.modules():
                if isinstance(m, nn.LayerNorm):
                    m.requires_grad_(False)

    def logits(self, images: torch.Tensor) -> torch.Tensor:
        x = normalize(images) if images.dtype == torch.uint8 else images
        if self.head_name == "deeplab":
            out = self.head(x)
        else:
            features = self.encoder(x)
            out = self.head(features if self.head_name == "segformer" else features[-1])
        return F.interpolate(out.float(), size=images.shape[2:], mode="bilinear", align_corners=False)

    def forward(self, batch: dict, step: int = 0) -> dict:
        return {"loss": segmentation_ce(self.logits(batch["image"]), batch["mask"])}

    @torch.no_grad()
    def predict(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 (B, 3, H, W) -> logits (B, C, H, W) at the input's size."""
        return self.logits(images)

    def param_groups(self) -> list[dict]:
        ids = {id(p) for p in self.encoder.parameters()}
        return [{"params": [p for p in self.parameters() if id(p) in ids], "lr_mult": 1.0},
                {"params": [p for p in self.parameters() if id(p) not in ids], "lr_mult": 10.0}]


def mask_predictor(model: MaskSupervised, outputs=("seg",)):
    """A ``predict(batch)`` for :func:`wsss.evaluate.evaluate` / :func:`wsss.experiments.run_variant`: the
    argmax of the single-scale logits, under the one output name "seg"."""
    unknown = [o for o in outputs if o != "seg"]
    if unknown:
        raise ValueError(f"unknown outputs {unknown}; a ceiling has only 'seg'")

    def predict(batch: dict) -> dict:
        return {"seg": model.predict(batch["image"]).argmax(1)}

    return predict
