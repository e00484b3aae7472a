"""TSCD: "Self Correspondence Distillation for End-to-End Weakly-Supervised Semantic Segmentation" (Xu et al.,
AAAI 2023), built on AFA (:mod:`.afa`). Started here: the Self Correspondence Distillation loss.

SCD compares two views of an image, the image and the image downscaled by 0.3 (``wsss.ops.rescaled_view``).
For a set of sampled positions in each view it builds two correlation volumes: M, the cosine similarity
of the CAMs at every pair of positions (Eq. 3-5, no gradient: the target), and S, the same for the
segmentation logits (Eq. 6). The loss -M max(S, 0) (Eq. 7) pulls the segmentation features of pairs
together where the CAMs correlate and pushes them apart where they do not. VARM is
:func:`wsss.refine.par.varm_kernel`; the rest of TSCD (the training step, L_aux, L_equ, L_reg) is to come.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..cam import min_max_normalize

SCD_SAMPLES = 40                     # 40 x 40 random sample points per view (public code)
VIEW_SCALE = 0.3                     # the second view: the input downscaled by 0.3


def sample_points(batch: int, n: int = SCD_SAMPLES, *, generator: torch.Generator | None = None,
                  device=None) -> torch.Tensor:
    """n x n random continuous positions per image, in grid_sample's [-1, 1] coordinates: (B, n, n, 2)."""
    return torch.rand(batch, n, n, 2, generator=generator, device=device) * 2 - 1


def _sample(maps: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """maps (B, C, h, w) at points (B, n, n, 2) -> (B, n*n, C), bilinear (align_corners=False)."""
    return F.grid_sample(maps, points, mode="bilinear", align_corners=False).flatten(2).transpose(1, 2)


def correspondence(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Eq. (3) / (6): cosine similarity of every sample of ``a`` (B, P, C) with every sample of ``b``
    (B, Q, C): (B, P, Q)."""
    return F.normalize(a, dim=-1, eps=1e-8) @ F.normalize(b, dim=-1, eps=1e-8).transpose(1, 2)


def scd_loss(cam_1: torch.Tensor, cam_2: torch.Tensor, seg_1: torch.Tensor, seg_2: torch.Tensor,
             points_1: torch.Tensor, points_2: torch.Tensor) -> torch.Tensor:
    """Eq. (7) of TSCD: L_SCD = mean( -M max(S, 0) ) over the sampled pairs.

    cam_1, cam_2: the foreground CAMs of the two views (B, K, h_i, w_i), every class (not masked by the
    tags), used without gradient and min-max normalised per channel (public code); seg_1, seg_2: the raw
    segmentation logits (B, C, ., .), resized to their view's CAM size; points_i (B, n, n, 2) in [-1, 1].
    M (Eq. 5) is centred as the public code: minus its mean over the second view's samples, plus its
    global mean. The mean replaces Eq. (7)'s sum (a constant factor, n^4)."""
    with torch.no_grad():
        m = correspondence(_sample(min_max_normalize(cam_1.float()), points_1),
                           _sample(min_max_normalize(cam_2.float()), points_2))
        m = m - m.mean(-1, keepdim=True) + m.mean()
    seg_1 = F.interpolate(seg_1, size=cam_1.shape[2:], mode="bilinear", align_corners=False)
    seg_2 = F.interpolate(seg_2, size=cam_2.shape[2:], mode="bilinear", align_corners=False)
    s = correspondence(_sample(seg_1.float(), points_1), _sample(seg_2.float(), points_2))
    # $\mathcal{L}_{SCD} = -\sum M \cdot \max(S, 0)$
    return (-m * s.clamp(min=0)).mean()
