"""PSA: "Learning Pixel-level Semantic Affinity with Image-level Supervision" (Ahn & Kwak, CVPR 2018).

PSA turns CAMs into segmentation labels in three steps. (1) The confident part of the CAM labels - two
dense CRFs with a strong and a weak background, :func:`wsss.cam.confident_labels` - says, for pairs of
nearby pixels, whether they belong to the same class. (2) AffinityNet learns that: from the features of
an image it predicts an affinity a_ij = exp(-mean_c |f_i - f_j|) for every pair within a radius (5 at
1/8 resolution), trained with a cross-entropy that weighs background positives, foreground positives
and negatives apart (Eq. 3-5). (3) A random walk spreads each CAM (and a background score) along the
predicted affinities (Eq. 5-6 of :mod:`wsss.refine.affinity`); its argmax is the label.

This module holds only what PSA adds: AffinityNet and its loss, and the random-walk labels. The pairs,
affinity labels and the walk live in :mod:`wsss.refine.affinity` (AFA and RML use them too); the CAMs
and the two-run CRF labels in :mod:`wsss.cam`. Where the paper is silent we follow the public PSA code
(``resnet38_aff.py``, ``train_aff.py``, ``infer_aff.py``), naming each choice where it is made.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..data.transforms import normalize
from ..models import build_backbone
from ..ops import upsample
from ..cam import multiscale_cam
from ..ops import present_argmax, present_classes
from ..refine.affinity import dense_affinity, downsample_labels, feature_affinity, pair_labels, random_walk

AFF_RADIUS = 5          # pairs within 5 pixels of the 1/8-resolution map (training)
RW_BETA, RW_LOGT = 8, 8  # the walk: affinity ** 8, 2 ** 8 steps (PSA code's defaults)
RW_BG_POWER = 16        # the walk's background score (1 - max CAM) ** 16 (PSA code)
PAPER_CROP = 448        # AffinityNet's training crop in PSA: a 56 x 56 map at stride 8


def scaled_walk(crop_px: int, *, paper_crop: int = PAPER_CROP, radius: int = AFF_RADIUS, logt: int = RW_LOGT) -> dict:
    """PSA's pair radius and walk length for a miniature whose crop is ``crop_px`` (PSA: radius 5 on the 56 x 56
    map of a 448 px crop, 2^8 steps). The radius keeps its share of the map, but at least 2 (radius 1 pairs no
    pixels); the number of steps t keeps the walk's reach relative to the map, sqrt(t) x radius / map (a
    diffusion's spread grows with the square root of its steps): t = 2^logt x (radius_paper / map_paper)^2 /
    (radius / map)^2, rounded to a power of two (at least one step). Returns {"radius", "logt", "reach",
    "paper_reach", "map", "paper_map"}."""
    if crop_px < 16:
        raise ValueError(f"crop_px={crop_px} is too small for a stride-8 map with pairs (at least 16)")
    paper_map, small_map = paper_crop / 8, crop_px / 8
    r = max(2, round(radius * small_map / paper_map))
    paper_reach = 2 ** (logt / 2) * radius / paper_map
    t = 2 ** logt * (radius / paper_map) ** 2 / (r / small_map) ** 2
    lt = max(0, min(logt, round(torch.log2(torch.tensor(t)).item())))
    return {"radius": r, "logt": lt, "reach": 2 ** (lt / 2) * r / small_map, "paper_reach": paper_reach,
            "map": small_map, "paper_map": paper_map}


class AffinityNet(nn.Module):
    """AffinityNet of the PSA code: the last three backbone stages, each through a bias-free 1x1 conv and
    an ELU (64, 128, 256 channels on ResNet-38), concatenated and mixed by a bias-free 1x1 conv + ELU
    (448 channels). forward(uint8 images (B, 3, H, W)) -> features (B, sum(dims), h, w) at the last
    stage's resolution (1/8 with output stride 8)."""

    def __init__(self, backbone: str, *, pretrained: str | None = None, output_stride: int = 8,
                 dims: tuple[int, int, int] = (64, 128, 256)):
        super().__init__()
        self.backbone = build_backbone(backbone, pretrained=pretrained, output_stride=output_stride)
        chans = self.backbone.out_channels[-3:]
        self.project = nn.ModuleList(nn.Conv2d(c, d, 1, bias=False) for c, d in zip(chans, dims))
        self.mix = nn.Conv2d(sum(dims), sum(dims), 1, bias=False)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        stages = self.backbone(normalize(images))[-3:]
        size = stages[-1].shape[2:]
        f = [F.elu(p(upsample(s, size) if s.shape[2:] != size else s)) for p, s in zip(self.project, stages)]
        return F.elu(self.mix(torch.cat(f, 1)))

    def affinity(self, images: torch.Tensor, radius: int = AFF_RADIUS) -> torch.Tensor:
        """Eq. (2) of PSA for every pair within ``radius`` of the feature map: (B, P, h, w)."""
        return feature_affinity(self(images), radius)


def affinity_loss(affinity: torch.Tensor, labels: dict[str, torch.Tensor], eps: float = 1e-5) -> tuple:
    """Eq. (3)-(5) of PSA: L = L_bg+ / 4 + L_fg+ / 4 + L- / 2, with L_bg+ = -mean over background-positive
    pairs of log a_ij, L_fg+ the same over foreground positives, L- = -mean over negatives of
    log(1 - a_ij) (``eps`` inside the logs, as the code's 1e-5). affinity: (B, P, h, w);
    labels: :func:`wsss.refine.affinity.pair_labels` of the same layout. A set with no pair adds 0.
    Returns (loss, {"bg_pos": ..., "fg_pos": ..., "neg": ...} detached)."""
    parts = {}
    for key, log_term in (("bg_pos", lambda a: torch.log(a + eps)), ("fg_pos", lambda a: torch.log(a + eps)),
                          ("neg", lambda a: torch.log(1 + eps - a))):
        mask = labels[key].to(affinity.dtype)
        parts[key] = -(mask * log_term(affinity)).sum() / mask.sum().clamp_min(1.0)
    loss = parts["bg_pos"] / 4 + parts["fg_pos"] / 4 + parts["neg"] / 2
    return loss, {k: v.detach() for k, v in parts.items()}


@torch.no_grad()
def random_walk_scores(model: AffinityNet, images: torch.Tensor, cams: torch.Tensor, *, beta: float = RW_BETA,
                       logt: int = RW_LOGT, bg_power: float = RW_BG_POWER, radius: int = AFF_RADIUS) -> torch.Tensor:
    """PSA's labels before the argmax: [(1 - max CAM)^bg_power; CAMs] at the feature map's resolution,
    walked along AffinityNet's affinities (:func:`wsss.refine.affinity.random_walk`) and upsampled to
    the image. images uint8 (B, 3, H, W); cams (B, K, H, W) in [0, 1], zero for untagged classes.
    Returns (B, K+1, H, W); its argmax over axis 1 is the random-walk label."""
    features = model(images)
    size = features.shape[2:]
    small = F.adaptive_avg_pool2d(cams.float(), size)                             # (B, K, h, w)
    scores = torch.cat([(1 - small.amax(1, keepdim=True)).clamp(min=0) ** bg_power, small], 1)
    walked = random_walk(scores, dense_affinity(feature_affinity(features, radius), radius), beta=beta, logt=logt)
    return upsample(walked, images.shape[2:])


class PSA(nn.Module):
    """AffinityNet's training step (PSA Sec. 3.3): batch["mask"] holds the confident CAM labels
    (:func:`wsss.cam.confident_labels`, 255 = not confident) at the image's resolution; they are brought
    to the feature map by nearest neighbour (PSA code), paired within ``radius`` and learnt with
    :func:`affinity_loss`. ``self.aff`` is the :class:`AffinityNet`."""

    def __init__(self, backbone: str, num_classes: int, *, pretrained: str | None = None, output_stride: int = 8,
                 dims: tuple[int, int, int] = (64, 128, 256), radius: int = AFF_RADIUS):
        super().__init__()
        self.aff = AffinityNet(backbone, pretrained=pretrained, output_stride=output_stride, dims=dims)
        self.radius = radius

    def forward(self, batch: dict, step: int = 0) -> dict:
        features = self.aff(batch["image"])
        labels = downsample_labels(batch["mask"], features.shape[2:])
        loss, parts = affinity_loss(feature_affinity(features.float(), self.radius), pair_labels(labels, self.radius))
        return {"loss": loss, **parts}

    def param_groups(self) -> list[dict]:
        """Backbone x1, the new 1x1 layers x10 (PSA code)."""
        ids = {id(p) for p in self.aff.backbone.parameters()}
        return [{"params": [p for p in self.parameters() if id(p) in ids], "lr_mult": 1.0},
                {"params": [p for p in self.parameters() if id(p) not in ids], "lr_mult": 10.0}]


@torch.no_grad()
def psa_probs(model: AffinityNet, cam_net: nn.Module, images: torch.Tensor, tags: torch.Tensor, *,
              cam_scales=(1.0, 0.5, 1.5, 2.0), beta: float = RW_BETA, logt: int = RW_LOGT,
              bg_power: float = RW_BG_POWER, radius: int = AFF_RADIUS) -> tuple[torch.Tensor, torch.Tensor]:
    """PSA's map of a batch: the multi-scale, flipped CAM of ``cam_net`` (scales 1, 0.5, 1.5, 2 as PSA),
    walked by :func:`random_walk_scores`, each pixel's scores divided by their sum (so a dense CRF can take
    them as its unary), and the label = argmax over background + tagged classes. images uint8
    (B, 3, H, W), tags (B, K). Returns (probs (B, K+1, H, W), label int64 (B, H, W))."""
    cams = multiscale_cam(cam_net, images, tags, scales=cam_scales)
    scores = random_walk_scores(model, images, cams, beta=beta, logt=logt, bg_power=bg_power, radius=radius)
    present = present_classes(tags).float()
    scores = scores.clamp_min(0) * present + 1e-5 * present
    probs = scores / scores.sum(1, keepdim=True)
    return probs, present_argmax(probs, tags)
