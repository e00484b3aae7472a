"""Joint image / mask / click transforms on the sample dict, and image normalisation.

Images stay uint8 through the data pipeline (cheap to move, and the dense CRF wants the raw colours);
networks call :func:`normalize` on the device. The geometric ops are torchvision's
(``transforms.v2.functional``) applied to the image (bilinear) and the mask (nearest) with the same
parameters; click points are moved with the same arithmetic and dropped only if they leave the crop.
"""
from __future__ import annotations

import math
import random

import torch
from torchvision.transforms.v2 import functional as TF

from .folder import IGNORE, clicks_to_mask  # noqa: F401  (clicks_to_mask: kept importable from here)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def normalize(images: torch.Tensor) -> torch.Tensor:
    """uint8 (B, 3, H, W) -> float, scaled to [0, 1] and standardised with the ImageNet statistics."""
    if images.dtype != torch.uint8:
        raise TypeError(f"normalize expects uint8 images, got {images.dtype}")
    mean = torch.tensor(IMAGENET_MEAN, device=images.device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=images.device).view(1, 3, 1, 1)
    return (images.float() / 255.0 - mean) / std


def denormalize(images: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`normalize`: float (B, 3, H, W) -> uint8."""
    mean = torch.tensor(IMAGENET_MEAN, device=images.device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=images.device).view(1, 3, 1, 1)
    return ((images * std + mean) * 255).round().clamp(0, 255).to(torch.uint8)


class TrainTransform:
    """Random rescale, random crop (padding with ignore where the image is smaller) and horizontal flip.
    The sample gains "valid", bool (crop, crop): True inside the image, False on the padding (AFA's
    labels are 255 outside the image box).

    The WSSS codebases use scale 0.7-1.3 (RRM/ASDT) or 0.5-2.0 (DeepLab) and crops of 321 or 512; the
    crop here is square, ``crop_size`` pixels. ``blur``: the probability of a Gaussian blur of the image
    with a radius drawn from U(0, 1) px (DeepLab-v3+ code as rloss and Seminar use it: p 0.5). The random
    numbers come from Python's ``random`` module, which the trainer seeds, so a run is repeatable.
    """

    def __init__(self, crop_size: int, scale: tuple[float, float] = (0.7, 1.3), flip: bool = True, blur: float = 0.0):
        if crop_size <= 0:
            raise ValueError(f"crop_size={crop_size} must be positive")
        if not 0 < scale[0] <= scale[1]:
            raise ValueError(f"scale={scale} must be an increasing pair of positive numbers")
        if not 0 <= blur <= 1:
            raise ValueError(f"blur={blur!r} must be a probability in [0, 1]")
        self.crop_size, self.scale, self.flip, self.blur = crop_size, scale, flip, blur

    def __call__(self, sample: dict) -> dict:
        image, mask = sample["image"], sample["mask"]
        h, w = image.shape[1:]
        s = random.uniform(*self.scale)
        nh, nw = max(1, round(h * s)), max(1, round(w * s))
        image = TF.resize(image, [nh, nw], interpolation=TF.InterpolationMode.BILINEAR, antialias=True)
        mask = TF.resize(mask[None], [nh, nw], interpolation=TF.InterpolationMode.NEAREST)[0]
        valid = torch.ones(nh, nw, dtype=torch.bool)
        # pad to at least the crop size: image with 0, mask with ignore
        ph, pw = max(self.crop_size - nh, 0), max(self.crop_size - nw, 0)
        if ph or pw:
            image = TF.pad(image, [0, 0, pw, ph], fill=0)
            mask = TF.pad(mask[None], [0, 0, pw, ph], fill=IGNORE)[0]
            valid = TF.pad(valid[None], [0, 0, pw, ph], fill=0)[0]
        top = random.randint(0, image.shape[1] - self.crop_size)
        left = random.randint(0, image.shape[2] - self.crop_size)
        image = TF.crop(image, top, left, self.crop_size, self.crop_size)
        mask = TF.crop(mask[None], top, left, self.crop_size, self.crop_size)[0]
        valid = valid[top:top + self.crop_size, left:left + self.crop_size]
        flipped = self.flip and random.random() < 0.5
        if flipped:
            image, mask, valid = TF.horizontal_flip(image), TF.horizontal_flip(mask[None])[0], valid.flip(-1)
        if self.blur and random.random() < self.blur:
            image = gaussian_blur(image, random.random())
        out = dict(sample, image=image, mask=mask, valid=valid)
        if "clicks" in sample:
            out["clicks"] = self._move_clicks(sample["clicks"], (h, w), (nh, nw), top, left, flipped)
        return out

    def _move_clicks(self, clicks, old, new, top, left, flipped):
        if clicks.numel() == 0:
            return clicks
        y = torch.floor((clicks[:, 0].double() + 0.5) * new[0] / old[0]).long() - top
        x = torch.floor((clicks[:, 1].double() + 0.5) * new[1] / old[1]).long() - left
        if flipped:
            x = self.crop_size - 1 - x
        keep = (y >= 0) & (y < self.crop_size) & (x >= 0) & (x < self.crop_size)
        return torch.stack([y, x, clicks[:, 2]], dim=1)[keep]


def gaussian_blur(image: torch.Tensor, radius: float) -> torch.Tensor:
    """A uint8 (3, H, W) image blurred by a Gaussian of standard deviation ``radius`` px (PIL's GaussianBlur
    radius), kernel 2 ceil(3 radius) + 1; the image itself for a radius under 0.01."""
    if radius < 0.01:
        return image
    k = 2 * math.ceil(3 * radius) + 1
    return TF.gaussian_blur(image, kernel_size=[k, k], sigma=[radius, radius])
