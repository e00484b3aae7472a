"""Pixel affinities in a radius and the random walk that spreads CAMs along them (PSA: Ahn & Kwak, CVPR 2018).

PSA learns, from the confident part of CAM pseudo labels, whether two nearby pixels belong to the same
class, and then lets each CAM diffuse along those affinities:

1. **pairs in a radius** (:func:`radius_offsets`): each pixel is paired with the pixels at offsets
   (dy, dx) with dy^2 + dx^2 < r^2; only half of the disc is kept (a pair is listed once, from the
   pixel above or to the left), as in the PSA code's ``get_indices_of_pairs``;
2. **affinity labels** (:func:`pair_labels`): a pair of labelled pixels is a positive if both are
   background or both the same foreground class, a negative if they differ; pairs with an ignored
   (255) end say nothing. PSA weighs background positives, foreground positives and negatives
   separately, so they are returned apart;
3. **predicted affinity** (:func:`feature_affinity`): a_ij = exp(-mean_c |f_i,c - f_j,c|) from the
   AffinityNet features (Eq. 2 of PSA, its L1 distance averaged over channels as in the code);
4. **random walk** (:func:`random_walk`): the transition matrix T = D^-1 A^beta (A with its diagonal,
   A^beta element-wise, each column normalised), applied 2^logt times by squaring T logt times,
   then vec(CAM) T (Eq. 5-6 of PSA; beta 8, logt 8 in its code).

AFA and RML learn affinities from attention with other radii; they use the same pair layout.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..data.folder import IGNORE


def radius_offsets(radius: int) -> list[tuple[int, int]]:
    """Offsets (dy, dx) of the pairs within ``radius``: dy^2 + dx^2 < radius^2, one of each (o, -o) kept
    (dy > 0, or dy = 0 and dx > 0). radius 5 -> 34 offsets, as PSA's ``get_indices_of_pairs(5, ...)``."""
    if isinstance(radius, bool) or int(radius) != radius or radius < 2:
        raise ValueError(f"radius={radius!r} must be an integer >= 2 (radius 1 pairs no pixels)")
    r = int(radius)
    return [(0, dx) for dx in range(1, r)] + [(dy, dx) for dy in range(1, r) for dx in range(-r + 1, r)
                                              if dy * dy + dx * dx < r * r]


def _shifted(x: torch.Tensor, dy: int, dx: int, fill) -> torch.Tensor:
    """x[..., y + dy, x + dx] at (y, x), ``fill`` where (y + dy, x + dx) lies outside: (..., H, W)."""
    h, w = x.shape[-2:]
    out = torch.full_like(x, fill)
    ys, xs = slice(max(0, -dy), min(h, h - dy)), slice(max(0, -dx), min(w, w - dx))
    yd, xd = slice(max(0, dy), min(h, h + dy)), slice(max(0, dx), min(w, w + dx))
    out[..., ys, xs] = x[..., yd, xd]
    return out


def pair_labels(labels: torch.Tensor, radius: int, ignore: int = IGNORE) -> dict[str, torch.Tensor]:
    """PSA's affinity labels of every pair within ``radius`` (:func:`radius_offsets`).

    labels: int (B, H, W), class ids with 0 = background and ``ignore`` = no label. Returns bool tensors
    (B, P, H, W), P = len(radius_offsets(radius)), for the pair of pixel (y, x) and (y + dy, x + dx):
    "bg_pos" (both background), "fg_pos" (both the same foreground class), "neg" (both labelled,
    different classes). A pair with an ignored end or an end outside the map is in none of them.
    """
    if labels.ndim != 3 or labels.is_floating_point():
        raise ValueError(f"labels must be an integer map (B, H, W), got {labels.dtype} {tuple(labels.shape)}")
    labels = labels.long()
    other = torch.stack([_shifted(labels, dy, dx, ignore) for dy, dx in radius_offsets(radius)], 1)   # (B, P, H, W)
    here = labels[:, None].expand_as(other)
    known = (here != ignore) & (other != ignore)
    same = known & (here == other)
    return {"bg_pos": same & (here == 0), "fg_pos": same & (here != 0), "neg": known & (here != other)}


def feature_affinity(features: torch.Tensor, radius: int) -> torch.Tensor:
    """Eq. (2) of PSA: a_ij = exp(-mean_c |f_i,c - f_j,c|) for every pair within ``radius``.

    features: float (B, C, H, W). Returns (B, P, H, W) in (0, 1], 0 where the partner lies outside the
    map; differentiable (AffinityNet's loss goes through it).
    """
    if features.ndim != 4:
        raise ValueError(f"features must be (B, C, H, W), got {tuple(features.shape)}")
    h, w = features.shape[-2:]
    out = []
    for dy, dx in radius_offsets(radius):
        partner = _shifted(features, dy, dx, 0.0)
        inside = _shifted(torch.ones(1, 1, h, w, device=features.device), dy, dx, 0.0)
        out.append(torch.exp(-(features - partner).abs().mean(1)) * inside[:, 0])
    return torch.stack(out, 1)


def dense_affinity(pairs: torch.Tensor, radius: int) -> torch.Tensor:
    """The full affinity matrix A (B, N, N), N = H*W, of pair affinities (B, P, H, W) within ``radius``:
    A_ij = A_ji = a of their pair, A_ii = 1, 0 beyond the radius. Dense, so meant for small maps (PSA
    walks at 1/8 of the image: 56 x 56 = 3136 nodes for a 448 crop)."""
    b, p, h, w = pairs.shape
    offsets = radius_offsets(radius)
    if p != len(offsets):
        raise ValueError(f"pairs hold {p} offsets but radius {radius} has {len(offsets)}")
    n = h * w
    index = torch.arange(n, device=pairs.device).reshape(h, w)
    dense = torch.zeros(b, n, n, device=pairs.device, dtype=pairs.dtype)
    for k, (dy, dx) in enumerate(offsets):
        partner = _shifted(index, dy, dx, -1)
        valid = partner >= 0
        i, j = index[valid], partner[valid]
        dense[:, i, j] = pairs[:, k][:, valid]
        dense[:, j, i] = pairs[:, k][:, valid]
    dense.diagonal(dim1=1, dim2=2).fill_(1.0)
    return dense


def random_walk(cams: torch.Tensor, affinity: torch.Tensor, *, beta: float = 8.0, logt: int = 8) -> torch.Tensor:
    """Eq. (5)-(6) of PSA: CAMs (B, C, H, W) diffused by the affinity matrix (B, N, N), N = H*W.

    T = A^beta (element-wise) with each column divided by its sum; T is squared ``logt`` times (2^logt
    steps of the walk); the result is vec(CAM) T, i.e. each pixel's new score is a weighted mean of the
    scores of the pixels that reach it. Returns (B, C, H, W).
    """
    b, c, h, w = cams.shape
    if affinity.shape != (b, h * w, h * w):
        raise ValueError(f"affinity must be (B, N, N) = {(b, h * w, h * w)} for these CAMs, got {tuple(affinity.shape)}")
    if isinstance(logt, bool) or int(logt) != logt or logt < 0:
        raise ValueError(f"logt={logt!r} must be a non-negative integer")
    trans = affinity.float().pow(beta)
    trans = trans / trans.sum(1, keepdim=True).clamp_min(1e-12)                  # columns sum to 1
    for _ in range(int(logt)):
        trans = torch.bmm(trans, trans)
    walked = torch.bmm(cams.float().reshape(b, c, h * w), trans)                 # (B, C, N)
    return walked.reshape(b, c, h, w)


def downsample_labels(labels: torch.Tensor, size) -> torch.Tensor:
    """Nearest-neighbour resize of int label maps (B, H, W) to ``size`` (h, w), as PSA brings its
    confident labels to the feature map's 1/8 resolution before taking pairs."""
    return F.interpolate(labels[:, None].float(), size=size, mode="nearest")[:, 0].long()


def window_mask(h: int, w: int, radius: int, device=None) -> torch.Tensor:
    """bool (N, N), N = h w: True where two positions of an h x w map lie within a square window
    (|dy| and |dx| <= ``radius``), AFA's pair window."""
    ys, xs = torch.meshgrid(torch.arange(h, device=device), torch.arange(w, device=device), indexing="ij")
    ys, xs = ys.flatten(), xs.flatten()
    return ((ys[:, None] - ys[None]).abs() <= radius) & ((xs[:, None] - xs[None]).abs() <= radius)


def window_pair_labels(labels: torch.Tensor, radius: int, ignore: int = IGNORE) -> torch.Tensor:
    """AFA's affinity labels of every pair of positions of a small label map: (B, h, w) -> (B, N, N) int64,
    N = h w, 1 where both positions hold the same class, 0 where they hold different classes, ``ignore``
    where either is ignored or where they lie outside a square window (|dy| and |dx| <= ``radius``; AFA:
    radius 8 on the 1/16 map). The label map is the refined pseudo label brought to the attention's
    resolution by nearest neighbour (:func:`downsample_labels`)."""
    if labels.ndim != 3 or labels.is_floating_point():
        raise ValueError(f"labels must be an integer map (B, h, w), got {labels.dtype} {tuple(labels.shape)}")
    b, h, w = labels.shape
    flat = labels.reshape(b, -1).long()
    same = (flat[:, :, None] == flat[:, None, :]).long()                           # (B, N, N)
    inside = window_mask(h, w, radius, labels.device)                              # (N, N)
    unknown = (flat == ignore)
    same[unknown[:, :, None] | unknown[:, None, :] | ~inside[None]] = ignore
    return same
