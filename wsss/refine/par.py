"""Local refiners of CAMs on dilated neighbours: PAMR, PAR and VARM, on one core.

All three are *pixel-adaptive* label propagation (Araslanov & Roth, CVPR 2020): every pixel i looks at
8 neighbours j at each of several dilations d (the 3x3 ring at distance d: 48 neighbours for AFA's
d = 1, 2, 4, 8, 12, 24), weighs them with a kernel k_ij computed once from the image, and the label
maps are updated ``n_iter`` times by P_i <- sum_j k_ij P_j. They differ only in the kernel:

* **PAMR** (Araslanov & Roth): k = softmax_j( -|I_i - I_j| / (0.1 sigma_i) ), mean over RGB;
* **PAR** (AFA, Ru et al., CVPR 2022): k = softmax_j( -(|I_i - I_j| / sigma_i / 0.3)^2 ), mean over
  RGB, plus 0.01 softmax_j of the same form on the neighbours' distances (a position term);
* **VARM** (TSCD, Eq. 8-11): k = softmax_j( -(alpha |I_i - I_j|)^2 / sigma_i^2 ), minus beta
  softmax_j(V_ij) with V the image's variation (Eq. 8), alpha 4, beta 0.01.

sigma_i is the standard deviation of the neighbours' values (per channel, as the AFA code). Pixels
beyond the border repeat the border (replicate padding, as the codes). :func:`neighbours` gathers the
neighbours, :func:`propagate` runs the update; each ``*_kernel`` builds its kernel.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F

DILATIONS = (1, 2, 4, 8, 12, 24)     # AFA / TSCD (and PAMR's 1, 2, 4, 8, 12, 24)
RING = ((-1, -1), (-1, 0), (-1, 1), (0, -1), (0, 1), (1, -1), (1, 0), (1, 1))   # the 8 neighbours (dy, dx)


def neighbour_offsets(dilations: Sequence[int] = DILATIONS) -> list[tuple[int, int]]:
    """(dy, dx) of every neighbour, the 8 of :data:`RING` times each dilation, in that order."""
    for d in dilations:
        if isinstance(d, bool) or int(d) != d or d < 1:
            raise ValueError(f"dilations={tuple(dilations)!r}: each must be a positive integer")
    return [(dy * d, dx * d) for d in dilations for dy, dx in RING]


def neighbours(x: torch.Tensor, dilations: Sequence[int] = DILATIONS) -> torch.Tensor:
    """The value of every neighbour: (B, C, H, W) -> (B, C, K, H, W), K = 8 len(dilations), with the
    border repeated beyond the image."""
    h, w = x.shape[-2:]
    m = max(dilations)
    padded = F.pad(x, [m, m, m, m], mode="replicate")                 # once, by the widest dilation
    return torch.stack([padded[..., m + dy: m + dy + h, m + dx: m + dx + w]
                        for dy, dx in neighbour_offsets(dilations)], 2)


def propagate(masks: torch.Tensor, kernel: torch.Tensor, dilations: Sequence[int] = DILATIONS,
              n_iter: int = 10) -> torch.Tensor:
    """Eq. (11) of TSCD (and PAMR's, PAR's update): ``n_iter`` times P_i <- sum_j k_ij P_j.
    masks (B, C, H, W); kernel (B, 1, K, H, W) from a ``*_kernel`` of the same dilations."""
    offsets, m = neighbour_offsets(dilations), max(dilations)
    h, w = masks.shape[-2:]
    weights = kernel[:, 0]                                                 # (B, K, H, W)
    for _ in range(int(n_iter)):
        padded = F.pad(masks, [m, m, m, m], mode="replicate")
        out = None
        for k, (dy, dx) in enumerate(offsets):        # sum_j k_ij P_j, one neighbour at a time: no (B, C, K, H, W)
            term = padded[..., m + dy: m + dy + h, m + dx: m + dx + w] * weights[:, k:k + 1]
            out = term if out is None else out.add_(term)
        masks = out
    return masks


def _appearance(images: torch.Tensor, dilations) -> tuple[torch.Tensor, torch.Tensor]:
    """(|I_i - I_j| (B, 3, K, H, W), sigma_i: the std over the neighbours (B, 3, 1, H, W))."""
    images = images.float()
    near = neighbours(images, dilations)
    return (near - images[:, :, None]).abs(), near.std(2, keepdim=True)


def pamr_kernel(images: torch.Tensor, dilations: Sequence[int] = DILATIONS, *, sigma_scale: float = 0.1) -> torch.Tensor:
    """PAMR's kernel: softmax_j( mean_rgb -|I_i - I_j| / (sigma_scale sigma_i) ). images float (B, 3, H, W)
    (any range). Returns (B, 1, K, H, W)."""
    diff, std = _appearance(images, dilations)
    return (-diff / (sigma_scale * std + 1e-8)).mean(1, keepdim=True).softmax(2)


def par_kernel(images: torch.Tensor, dilations: Sequence[int] = DILATIONS, *, w1: float = 0.3,
               w2: float = 0.01) -> torch.Tensor:
    """PAR's kernel (AFA): softmax_j( mean_rgb -(|I_i - I_j| / sigma_i / w1)^2 ) + w2 softmax_j(
    -(p_j / sigma_p / w1)^2 ), p_j the distance of neighbour j (d, or d sqrt 2 on the diagonals), sigma_p
    their std. images float (B, 3, H, W). Returns (B, 1, K, H, W); each pixel's weights sum to 1 + w2."""
    diff, std = _appearance(images, dilations)
    appearance = (-(diff / (std + 1e-8) / w1) ** 2).mean(1, keepdim=True).softmax(2)
    dist = torch.tensor([math.hypot(dy, dx) for dy, dx in neighbour_offsets(dilations)], device=images.device)
    position = (-(dist / (dist.std() + 1e-8) / w1) ** 2).softmax(0).view(1, 1, -1, 1, 1)
    return appearance + w2 * position


def image_variation(images: torch.Tensor) -> torch.Tensor:
    """Eq. (8) of TSCD's variation at each pixel: (I_{i,j-1} - I_{i,j})^2 + (I_{i+1,j} - I_{i,j})^2, the
    left and the lower neighbour (border repeated), averaged over RGB: (B, 3, H, W) -> (B, 1, H, W)."""
    images = images.float()
    padded = F.pad(images, [1, 0, 0, 1], mode="replicate")            # one column left, one row below
    h, w = images.shape[-2:]
    left, below = padded[..., :h, :w], padded[..., 1:h + 1, 1:w + 1]
    return ((left - images) ** 2 + (below - images) ** 2).mean(1, keepdim=True)


def varm_kernel(images: torch.Tensor, dilations: Sequence[int] = DILATIONS, *, alpha: float = 4.0,
                beta: float = 0.01) -> torch.Tensor:
    """VARM's kernel, Eq. (9)-(10) of TSCD: softmax_j( mean_rgb -(alpha |I_i - I_j|)^2 / sigma_i^2 ) -
    beta softmax_j( V_j ), with V_j the variation (Eq. 8, :func:`image_variation`) at neighbour j: the
    paper's left and lower neighbours. (The public TSCD code takes the squared differences to the down
    and right pixels at each neighbour, averaged over RGB.) images float (B, 3, H, W). (B, 1, K, H, W)."""
    diff, std = _appearance(images, dilations)
    k_rgb = (-(alpha * diff) ** 2 / (std ** 2 + 1e-8)).mean(1, keepdim=True)                     # Eq. (9)
    v = neighbours(image_variation(images), dilations)                                            # (B, 1, K, H, W)
    return k_rgb.softmax(2) - beta * v.softmax(2)                                                 # Eq. (10)


# the refiners a CAM method can train with (TSCD's Table 5): name -> kernel(images float (B, 3, H, W) in
# [0, 1], dilations) -> (B, 1, K, H, W). "varm-rgb" is VARM's k_rgb alone (beta = 0), Table 5's third row.
KERNELS = {
    "pamr": pamr_kernel,
    "par": par_kernel,
    "varm": varm_kernel,
    "varm-rgb": lambda images, dilations=DILATIONS, **kw: varm_kernel(images, dilations, **{**kw, "beta": 0.0}),
}


def refine(probs: torch.Tensor, images: torch.Tensor, refiner: str, dilations: Sequence[int] = DILATIONS,
           n_iter: int = 10, kernel: torch.Tensor | None = None, **kernel_args) -> torch.Tensor:
    """``probs`` (B, C, H, W) refined by ``refiner`` (a key of :data:`KERNELS`) on ``images`` float
    (B, 3, H, W) of the same size: :func:`propagate` with that refiner's kernel, built with ``kernel_args``
    (e.g. VARM's alpha, beta), or ``kernel``, built before for several calls."""
    if refiner not in KERNELS:
        raise ValueError(f"refiner={refiner!r} is not known; choose one of {sorted(KERNELS)}")
    kernel = KERNELS[refiner](images, dilations, **kernel_args) if kernel is None else kernel
    return propagate(probs, kernel, dilations, n_iter)
