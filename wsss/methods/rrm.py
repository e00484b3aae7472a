"""RRM: "Reliability Does Matter: An End-to-End Weakly Supervised Semantic Segmentation Approach"
(Zhang et al., AAAI 2020), the single-stage baseline ASDT builds on.

One backbone feeds two branches: a CAM classifier (GAP + bias-free 1x1 classifier, trained on image
tags) and a segmentation branch (two dilated 3x3 convs). At every step the classifier's CAMs are turned
into *reliable* pixel labels - dense CRF at two background strengths, kept only where both the CAM and
the CRF are confident, the rest ignored (255) - and the segmentation branch learns from them with a
cross-entropy split into a background and a foreground part, plus the dense-CRF energy as a
regulariser on its softmax output (ASDT calls it the structure loss L_str, Eq. 6-8 of ASDT).

Where the RRM paper is silent, we follow the public RRM code (``compute_seg_label`` and
``_crf_with_alpha`` in its training script); each such choice is named in the docstring that makes it.
Shared parts come from the package: CAM (:mod:`wsss.cam`), dense CRF and its energy
(:mod:`wsss.refine.crf`), the classification loss (:mod:`wsss.losses`).
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..cam import K_HIGH, K_LOW, background_crf_runs, combine_labels, multiscale_cam, normalize_cam
from ..data.folder import IGNORE
from ..data.transforms import normalize
from ..losses import multilabel_soft_margin, split_ce
from ..models import build_backbone
from ..models.heads import CAMNet
from ..ops import channels_last, class_argmax, upsample
from ..refine.crf import CRFEnergy
from ..train import ReusableLabels

# the RRM code's constants (K_LOW, K_HIGH: the background powers of the two CRFs, shared with PSA)
CAM_GAUSSIAN = (3, 3)               # (sxy, compat)
CAM_BILATERAL = (80, 13, 10)        # (sxy, srgb, compat)
FG_MIN, FG_QUANTILE, BG_SURE, CRF_SURE = 0.1, 0.6, 0.8, 0.8
# L_str (Eq. 6-8 of ASDT): sigma_rgb=15, sigma_xy=100 px (the values of the RRM/ASDT code; the ASDT paper's
# text names them the other way round, sigma_D=15, sigma_I=100), at half resolution as that code.
# We implement the paper: G = W / Z (Eq. 6) and L_d = CE + L_str with weight 1 (Eq. 4-5), both per-pixel
# means. The public code (rloss) has no 1/Z and weighs the summed energy by 1e-7 (see structure_loss).
STR_SIGMA_RGB, STR_SIGMA_XY, STR_SCALE = 15.0, 100.0, 0.5
STR_WEIGHT = 1.0
HEAD_DILATION = 12                  # the seg branch's dilation on ResNet-38's 41x41 map of a 321 crop


# ---------------------------------------------------------------------------------------------------
# Reliable pseudo labels from CAMs
# ---------------------------------------------------------------------------------------------------
def cam_sure_mask(scores: torch.Tensor, present: torch.Tensor, *, fg_min: float = FG_MIN,
                  fg_quantile: float = FG_QUANTILE, bg_sure: float = BG_SURE) -> torch.Tensor:
    """Where the CAM itself is confident (RRM): (B, K+1, H, W) scores [bg; CAMs] -> bool (B, H, W).

    With the CAM label l = argmax(scores): a foreground class c is sure where l = c and its score
    exceeds the ``fg_quantile`` quantile of its scores above ``fg_min`` inside l = c (the RRM code sorts
    those values and takes the one at index int(0.6 n), a strict ">"); background is sure where l = 0
    and the background score exceeds ``bg_sure``. Only the classes in ``present`` (B, K+1) bool are
    checked (the RRM code walks the classes of the low-k CRF label). A class with no score above
    ``fg_min`` has no sure pixels (the RRM code would fail on an empty list there).
    """
    label = class_argmax(scores)                                               # (B, H, W)
    sure = torch.zeros_like(label, dtype=torch.bool)
    for b in range(scores.shape[0]):
        for c in present[b].nonzero().flatten().tolist():
            own = torch.where(label[b] == c, scores[b, c], torch.zeros_like(scores[b, c]))
            if c == 0:
                sure[b] |= own > bg_sure
                continue
            values = own[own > fg_min].sort().values
            if values.numel() == 0:
                continue
            sure[b] |= own > values[int(values.numel() * fg_quantile)]
    return sure


def crf_unsure_mask(q_low: torch.Tensor, q_high: torch.Tensor, *, crf_sure: float = CRF_SURE) -> torch.Tensor:
    """Where the two CRFs are not confident (RRM): max over [Q_high background; Q_low foreground] < 0.8.

    q_low, q_high: (B, K+1, H, W) CRF marginals with background power k_low and k_high. Returns bool (B, H, W).
    """
    return torch.cat([q_high[:, :1], q_low[:, 1:]], 1).amax(1) < crf_sure


@torch.no_grad()
def reliable_labels(images: torch.Tensor, cams: torch.Tensor, *, crf_backend: str = "auto", k_low: float = K_LOW,
                    k_high: float = K_HIGH, gaussian: tuple[float, float] = CAM_GAUSSIAN,
                    bilateral: tuple[float, float, float] = CAM_BILATERAL, n_iter: int = 10,
                    reliability: bool = True, tags: torch.Tensor | None = None) -> torch.Tensor:
    """RRM's reliable pseudo labels (ASDT's B^ct with R^ct: reliable pixels keep their label, the rest 255).

    images: uint8 (B, H, W, 3) or (B, 3, H, W); cams: (B, K, H, W) in [0, 1], zero for untagged classes.
    Background score (1 - max_c CAM)^k; dense CRF with k_low and k_high (one set of kernels for both),
    over [background; the image's ``tags``] (B, K) as the RRM code, or over all labels without them;
    label by :func:`wsss.cam.combine_labels`; unreliable = CRF-unsure or not CAM-sure (the CAM label uses
    k_high, as the RRM code's ``cam_all``). ``bilateral`` sxy is in pixels: scale it down for small
    images. ``reliability=False`` skips the two masks (the ablation without R^ct): the band between
    the two CRFs stays 255, as it is part of RRM's label before the reliability step.
    Returns int64 (B, H, W) with class ids 0..K and 255.
    """
    cams = cams.float()
    q_low, q_high = background_crf_runs(images, cams, k_low=k_low, k_high=k_high, n_iter=n_iter,
                                        gaussian=gaussian, bilateral=bilateral, backend=crf_backend, tags=tags)
    if not reliability:
        return combine_labels(q_low, q_high)
    return combine_labels(q_low, q_high, unreliable_mask(q_low, q_high, cams, k_high=k_high))


def unreliable_mask(q_low: torch.Tensor, q_high: torch.Tensor, cams: torch.Tensor, *, k_high: float = K_HIGH) -> torch.Tensor:
    """RRM's R^ct, inverted: where the two CRFs are not sure (:func:`crf_unsure_mask`) or the CAM is not
    (:func:`cam_sure_mask`, on [(1 - max CAM)^k_high; CAMs] for the classes of the low-k CRF label).
    q_low, q_high (B, K+1, H, W); cams (B, K, H, W). Returns bool (B, H, W), True = ignored (255)."""
    scores = torch.cat([(1 - cams.amax(1, keepdim=True)).clamp(min=0) ** k_high, cams], 1)
    present = F.one_hot(class_argmax(q_low).flatten(1), scores.shape[1]).amax(1).bool()  # (B, K+1)
    return crf_unsure_mask(q_low, q_high) | ~cam_sure_mask(scores, present)


# ---------------------------------------------------------------------------------------------------
# Segmentation branch and its losses
# ---------------------------------------------------------------------------------------------------
class SegHead(nn.Module):
    """Segmentation branch of RRM (ASDT's seg-teacher and student): 3x3 conv (dilation 12) - ReLU -
    3x3 conv (dilation 12), e.g. 4096 -> 512 -> C on ResNet-38. forward: (B, in_ch, h, w) -> logits
    (B, num_classes, h, w), background included; callers apply the softmax.

    Dilation 12 on the 41x41 feature map of a 321 px crop reaches 12/41 of the map; on a small image
    scale it with :func:`wsss.profiles.head_dilation` (on an 8x8 map, dilation 12 would leave only the
    centre tap of each 3x3 kernel inside the map: a 1x1 head)."""

    def __init__(self, in_ch: int, num_classes: int, mid: int = 512, dilation: int = HEAD_DILATION):
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, mid, 3, padding=dilation, dilation=dilation)
        self.conv2 = nn.Conv2d(mid, num_classes, 3, padding=dilation, dilation=dilation)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.conv2(F.relu(self.conv1(features)))


def structure_kernel(images: torch.Tensor, *, sigma_rgb: float = STR_SIGMA_RGB, sigma_xy: float = STR_SIGMA_XY,
                     scale: float = STR_SCALE) -> CRFEnergy:
    """Eq. (6) of ASDT for a batch of images: G_ij = exp(-|D_i - D_j|^2 / 2 sigma_xy^2 - |I_i - I_j|^2 /
    2 sigma_rgb^2) / Z_i, built once (a permutohedral lattice at ``scale`` of the resolution, as the
    RRM/ASDT code) and shared by every :func:`structure_loss` of the step (seg-teacher and student).
    images: uint8 (B, 3, H, W) or (B, H, W, 3)."""
    return CRFEnergy(channels_last(images), sigma_rgb=sigma_rgb, sigma_xy=sigma_xy, scale=scale, normalize=True)


def structure_loss(images: torch.Tensor, probs: torch.Tensor, target: torch.Tensor | None = None, *,
                   sigma_rgb: float = STR_SIGMA_RGB, sigma_xy: float = STR_SIGMA_XY, scale: float = STR_SCALE,
                   kernel: CRFEnergy | None = None) -> torch.Tensor:
    """Eq. (6)-(8) of ASDT: L_str = sum_i (1 - max_c p_c,i) sum_j G_ij sum_c p_c,i (1 - p_c,j).

    The dense-CRF energy of :class:`wsss.refine.crf.CRFEnergy` with G = W / Z (Eq. 6; the per-pixel
    mean, half resolution) and the row weight w_i = 1 - max_c p_c,i of Eq. (8), detached (it weighs, it
    is not a target), clamped >= 0 and set to 1 on the pixels ``target`` (B, H, W) ignores (255), where no
    label speaks for them. images: uint8 (B, 3, H, W) or (B, H, W, 3); probs: softmax (B, C, H, W);
    kernel: the :func:`structure_kernel` of these images, built once per step (else built here).

    The paper's 1/Z differs from the public RRM/ASDT code, which uses the rloss energy without it
    (weight 1e-7 on the sum over a 161x161 half-resolution crop). Both are the same loss up to a factor:
    the mean row sum Z of the kernel (on the quick benchmark ~36 with the lattice).
    """
    weight = (1 - probs.detach().amax(1)).clamp(min=0)                          # (B, H, W)
    if target is not None:
        weight = weight.masked_fill(target == IGNORE, 1.0)
    if kernel is None:
        kernel = structure_kernel(images, sigma_rgb=sigma_rgb, sigma_xy=sigma_xy, scale=scale)
    return kernel(probs, weight=weight)


# ---------------------------------------------------------------------------------------------------
# The method
# ---------------------------------------------------------------------------------------------------
class RRM(ReusableLabels, nn.Module):
    """RRM training step: class-teacher (CAMNet) + one segmentation branch on a shared backbone.

    loss = L_ce (multilabel soft margin, Eq. 2 of ASDT) + split CE of the seg branch on
    :func:`reliable_labels` of the CAM (no gradient) + ``str_weight`` * L_str of the seg branch.
    ``cam_scales``: scales of the CAM behind the labels; (1.0,) (default, fast on CPU) reuses the
    training forward's CAM, anything else runs :func:`wsss.cam.multiscale_cam` (RRM and ASDT: 1, 0.5,
    1.5, 2 with flips) in the current train/eval mode. ``crf_bilateral``: the CAM CRF's bilateral
    kernel, sxy to scale down on small images, as ``str_sigma_xy`` (L_str's spatial width in pixels) and
    ``head_dilation`` (the seg branch's dilation, 12 on a 321 px crop). Seg logits are upsampled to the image before the losses. With ``timing_network_only`` set
    (:class:`wsss.train.ReusableLabels`) a step reuses the labels of the step before and skips L_str.
    """

    def __init__(self, backbone: str, num_classes: int, *, output_stride: int = 8, pretrained: str | None = None,
                 mid: int = 512, cam_scales: Sequence[float] = (1.0,), crf_backend: str = "auto",
                 crf_bilateral: tuple[float, float, float] = CAM_BILATERAL, use_reliability: bool = True,
                 use_structure: bool = True, str_weight: float = STR_WEIGHT, str_sigma_xy: float = STR_SIGMA_XY,
                 head_dilation: int = HEAD_DILATION):
        super().__init__()
        if isinstance(head_dilation, bool) or int(head_dilation) != head_dilation or head_dilation < 1:
            raise ValueError(f"head_dilation={head_dilation!r} must be a positive integer")
        self.net = CAMNet(build_backbone(backbone, pretrained=pretrained, output_stride=output_stride),
                          num_classes - 1)
        self.seg = SegHead(self.net.backbone.out_channels[-1], num_classes, mid, int(head_dilation))
        self.cam_scales, self.crf_backend, self.crf_bilateral = tuple(cam_scales), crf_backend, crf_bilateral
        self.use_reliability, self.use_structure, self.str_weight = use_reliability, use_structure, str_weight
        self.str_sigma_xy = str_sigma_xy

    def class_teacher(self, images: torch.Tensor, labels: torch.Tensor) -> tuple[dict, torch.Tensor, torch.Tensor]:
        """Forward the backbone and classifier; returns (CAMNet output, L_ce, CAMs (B, K, H, W) in [0, 1])."""
        out = self.net(normalize(images))
        l_ce = multilabel_soft_margin(out["logits"], labels)
        with torch.no_grad():
            if self.cam_scales == (1.0,):
                cams = upsample(F.relu(out["cam"].detach().float()), images.shape[2:])
                cams = normalize_cam(cams * labels[:, :, None, None].float())
            else:
                cams = multiscale_cam(self.net, images, labels, scales=self.cam_scales)
        return out, l_ce, cams

    def pseudo_labels(self, images: torch.Tensor, cams: torch.Tensor, tags: torch.Tensor) -> torch.Tensor:
        """B^ct with R^ct (255 = unreliable) of :func:`reliable_labels`, with this model's settings; the CRFs
        run over [background; ``tags``] (B, K), the image's classes, as the RRM code."""
        return reliable_labels(images, cams, crf_backend=self.crf_backend, bilateral=self.crf_bilateral,
                               reliability=self.use_reliability, tags=tags).to(images.device)

    def structure_kernel(self, images: torch.Tensor) -> CRFEnergy | None:
        """The step's L_str kernel (:func:`structure_kernel`), built once for every head; None when the model
        has no L_str or the step is timed without its label work."""
        if not self.use_structure or self.timing_network_only:
            return None
        return structure_kernel(images, sigma_xy=self.str_sigma_xy)

    def distill_loss(self, logits: torch.Tensor, target: torch.Tensor, images: torch.Tensor,
                     kernel: CRFEnergy | None) -> tuple:
        """Split CE of full-size logits (B, C, H, W) on target (B, H, W) and L_str of their softmax on the
        step's ``kernel`` (:meth:`structure_kernel`): (ce, str) with str = 0 when ``kernel`` is None.
        The total is ce + str_weight * str."""
        ce = split_ce(logits, target)
        if kernel is None:
            return ce, logits.new_zeros(())
        return ce, structure_loss(images, logits.float().softmax(1), target, kernel=kernel)

    def forward(self, batch: dict, step: int = 0) -> dict:
        images = batch["image"]
        out, l_ce, cams = self.class_teacher(images, batch["labels"])
        target = self.step_labels(self.pseudo_labels, images, cams, batch["labels"])
        ce, l_str = self.distill_loss(upsample(self.seg(out["features"][-1]), images.shape[2:]), target, images,
                                      self.structure_kernel(images))
        loss = l_ce + ce + self.str_weight * l_str
        return {"loss": loss, "cls": l_ce.detach(), "seg_ce": ce.detach(), "seg_str": l_str.detach(),
                "ignored": (target == IGNORE).float().mean()}

    @torch.no_grad()
    def predict(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 (B, 3, H, W) -> seg-branch class probabilities (B, C, H, W)."""
        features = self.net.backbone(normalize(images))[-1]
        return upsample(self.seg(features), images.shape[2:]).softmax(1)

    def param_groups(self) -> list[dict]:
        """The parameter groups of the RRM/ASDT code: learning rate x1 for backbone weights, x2 for backbone
        biases, x10 for the new layers' weights (classifier and segmentation heads), x20 for their biases;
        no weight decay on any bias (``weight_decay`` 0 in the bias groups; the others take the config's)."""
        ids = {id(p) for p in self.net.backbone.parameters()}
        groups = {(True, False): 1.0, (True, True): 2.0, (False, False): 10.0, (False, True): 20.0}
        params: dict = {key: [] for key in groups}
        for name, p in self.named_parameters():
            params[(id(p) in ids, name.endswith("bias"))].append(p)
        return [{"params": params[key], "lr_mult": mult, **({"weight_decay": 0.0} if key[1] else {})}
                for key, mult in groups.items() if params[key]]
