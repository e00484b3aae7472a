"""Class activation maps (Zhou et al., 2016) and the pseudo labels every paper here starts from.

With a bias-free 1x1 classifier ``w`` after global average pooling, the CAM of class c at position i is
``M_c(i) = ReLU(w_c^T f(i))``. WSSS code then (1) sums CAMs over several image scales and their flips,
(2) keeps only the classes the image is tagged with, (3) divides each class map by its maximum, and
(4) adds a background score, either a constant threshold or ``(1 - max_c M_c)^k`` (PSA, RRM), before
taking the argmax as the pseudo label. PSA and RRM run a dense CRF twice, with a strong and a weak
background, and keep only the labels both runs agree are confident (:func:`confident_labels`).
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F

from .data.folder import IGNORE
from .data.transforms import normalize
from .ops import channels_last, class_argmax
from .refine.crf import dense_crf_runs

# PSA's and RRM's background powers: (1 - max CAM)^4 is a strong background, ^32 a weak one
K_LOW, K_HIGH = 4, 32


def normalize_cam(cam: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """Divide each class map by its spatial maximum: (B, K, H, W) -> values in [0, 1]."""
    cam = F.relu(cam)
    return cam / (cam.amax(dim=(2, 3), keepdim=True) + eps)


def min_max_normalize(cam: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """Each class map minus its minimum, divided by its range (AFA's and TSCD's CAM normalisation):
    (B, K, H, W) -> values in [0, 1]."""
    low = cam.amin(dim=(2, 3), keepdim=True)
    return (cam - low) / (cam.amax(dim=(2, 3), keepdim=True) - low + eps)


@torch.no_grad()
def multiscale_cam(model: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor | None = None, *,
                   scales: Sequence[float] = (1.0, 0.5, 1.5, 2.0), flip: bool = True) -> torch.Tensor:
    """Multi-scale (and flipped) CAM of a :class:`wsss.models.CAMNet`, normalised per class.

    images: uint8 or normalised float (B, 3, H, W); labels: multi-hot (B, K) tags, used to zero the
    maps of absent classes. Returns (B, K, H, W) in [0, 1]: ReLU'd CAMs of every scale and flip, resized
    to (H, W) and summed, then divided by each class's maximum.
    """
    if images.dtype == torch.uint8:
        images = normalize(images)
    size = images.shape[2:]
    total = 0.0
    for s in scales:
        x = images if s == 1.0 else F.interpolate(images, scale_factor=s, mode="bilinear", align_corners=False)
        batch = torch.cat([x, x.flip(-1)]) if flip else x
        cam = F.relu(model(batch)["cam"])
        cam = F.interpolate(cam, size=size, mode="bilinear", align_corners=False)
        if flip:
            cam = cam[: len(x)] + cam[len(x):].flip(-1)
        total = total + cam
    if labels is not None:
        total = total * labels[:, :, None, None].to(total)
    return normalize_cam(total)


def add_background(cam: torch.Tensor, *, threshold: float | None = None, power: float | None = None) -> torch.Tensor:
    """Prepend a background channel to normalised CAMs: (B, K, H, W) -> (B, K+1, H, W).

    Either a constant ``threshold`` (the background wins where every CAM is below it), or
    ``power`` k with background score ``(1 - max_c M_c)^k`` as in PSA and RRM.
    """
    if (threshold is None) == (power is None):
        raise ValueError("give exactly one of threshold= or power=")
    if threshold is not None:
        if not 0.0 <= threshold <= 1.0:
            raise ValueError(f"threshold={threshold} must lie in [0, 1]")
        bg = torch.full_like(cam[:, :1], threshold)
    else:
        if power <= 0:
            raise ValueError(f"power={power} must be positive")
        bg = (1 - cam.amax(dim=1, keepdim=True)).clamp(min=0) ** power
    return torch.cat([bg, cam], dim=1)


def cam_to_label(cam: torch.Tensor, **background) -> torch.Tensor:
    """Pseudo label (B, H, W) with class ids (0 = background): argmax over [background; CAMs]."""
    return add_background(cam, **background).argmax(dim=1)


def cam_to_probs(cam: torch.Tensor, **background) -> torch.Tensor:
    """[background; CAMs] scores rescaled to sum to 1 over classes, e.g. as a dense CRF's unary input."""
    scores = add_background(cam, **background).clamp(min=1e-5)
    return scores / scores.sum(dim=1, keepdim=True)


@torch.no_grad()
def background_crf_runs(images: torch.Tensor, cams: torch.Tensor, *, k_low: float = K_LOW, k_high: float = K_HIGH,
                        n_iter: int = 10, gaussian: tuple[float, float] = (3, 3),
                        bilateral: tuple[float, float, float] = (80, 13, 10),
                        backend: str = "auto", tags: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The two dense-CRF runs of PSA and RRM: (Q_low, Q_high), each (B, K+1, H, W) on cams' device.

    images: uint8 (B, 3, H, W) or (B, H, W, 3); cams: (B, K, H, W) in [0, 1], zero for untagged classes.
    Run "low" has the strong background (1 - max CAM)^k_low, run "high" the weak one (1 - max CAM)^k_high.
    ``bilateral`` sxy is in pixels: scale it down for small images.

    ``tags`` (B, K), the image-level labels: each image's CRFs then run over [background; its tagged
    classes] only, as the public PSA and RRM code (``_crf_with_alpha`` builds the CRF of the classes in
    its ``cam_dict``); the other classes get Q = 0. An image without a tag is all background. Without
    ``tags`` every CRF runs over all K+1 labels, the untagged classes keeping the ~1e-5 floor of
    :func:`cam_to_probs` (negligible in the CRF, but each label costs filtering time).
    """
    images = channels_last(images)
    images = images.cpu() if backend == "pydensecrf" else images
    cams = cams.float()
    crf = dict(n_iter=n_iter, gaussian=gaussian, bilateral=bilateral, backend=backend)
    if tags is None:
        # one set of kernels for both runs: same images, same CRF, two unaries
        q_low, q_high = dense_crf_runs(images, [cam_to_probs(cams, power=k_low), cam_to_probs(cams, power=k_high)],
                                       **crf)
        return q_low.to(cams.device), q_high.to(cams.device)
    if tags.shape != cams.shape[:2]:
        raise ValueError(f"tags of shape {tuple(tags.shape)} do not fit the CAMs {tuple(cams.shape[:2])} (B, K)")
    q_low, q_high = cams.new_zeros(2, cams.shape[0], cams.shape[1] + 1, *cams.shape[2:])
    for b, present in enumerate(tags.bool().cpu()):
        classes = present.nonzero().flatten().tolist()
        if not classes:
            q_low[b, 0] = q_high[b, 0] = 1.0
            continue
        own = cams[b:b + 1, classes]
        q = dense_crf_runs(images[b:b + 1], [cam_to_probs(own, power=k_low), cam_to_probs(own, power=k_high)], **crf)
        rows = [0] + [c + 1 for c in classes]
        q_low[b, rows], q_high[b, rows] = q[0][0].to(cams.device), q[1][0].to(cams.device)
    return q_low, q_high


def combine_labels(q_low: torch.Tensor, q_high: torch.Tensor, unreliable: torch.Tensor | None = None) -> torch.Tensor:
    """The confident label of the two CRF runs: (B, K+1, H, W) x 2 -> int64 (B, H, W), 255 = ignore.

    Foreground where the strong-background run (low k) still says foreground, background where the
    weak-background run (high k) still says background, 255 in the band between; then 255 wherever
    ``unreliable`` (B, H, W) bool is set (RRM's reliability masks).
    """
    label = class_argmax(q_low)
    label[label == 0] = IGNORE
    label[class_argmax(q_high) == 0] = 0
    if unreliable is not None:
        label[unreliable] = IGNORE
    return label


@torch.no_grad()
def confident_labels(images: torch.Tensor, cams: torch.Tensor, **crf) -> torch.Tensor:
    """PSA's confident pseudo labels: :func:`combine_labels` of :func:`background_crf_runs` (same
    keyword arguments). int64 (B, H, W): class ids 0..K where both runs are sure, 255 elsewhere.
    PSA's code runs the CRFs over each image's tagged classes only (pass ``tags``); the committed SSDD
    notebook run used every label (untagged classes at the 1e-5 floor)."""
    return combine_labels(*background_crf_runs(images, cams, **crf))
