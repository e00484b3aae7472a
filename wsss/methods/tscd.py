"""TSCD: "Self Correspondence Distillation for End-to-End Weakly-Supervised Semantic Segmentation" (Xu et al.,
AAAI 2023), built on AFA (:mod:`.afa`). Started here: the Self Correspondence Distillation loss.

SCD compares two views of an image, the image and the image downscaled by 0.3 (``wsss.ops.rescaled_view``).
For a set of sampled positions in each view it builds two correlation volumes: M, the cosine similarity
of the CAMs at every pair of positions (Eq. 3-5, no gradient: the target), and S, the same for the
segmentation logits (Eq. 6). The loss -M max(S, 0) (Eq. 7) pulls the segmentation features of pairs
together where the CAMs correlate and pushes them apart where they do not.

Everything else comes from AFA (:mod:`.afa`) or the shared code: **VARM** (Eq. 8-11) is
:func:`wsss.refine.par.varm_kernel`, used as the refiner of AFA's two-background CAM label (no random walk:
TSCD's segmentation and affinity labels are both the VARM-refined CAM); **L_aux** (Eq. 14) is AFA's affinity
loss on the attention maps taken directly (no A + A^T); **L_equ** (Eq. 12) is
:func:`wsss.losses.equivariance_l1` between the CAM of the downscaled view and the downscaled CAM; **L_reg**
is the dense-CRF energy loss :func:`wsss.refine.crf.dense_crf_loss`. :class:`TSCD` is the training step with
every component switchable (Tables 3-5).

Two readings of the printed paper, stated: Eq. (14) as printed pairs R^- with (1 - sigma) and R^+ with sigma,
which would push same-class pairs apart; we follow AFA's loss (positives towards 1), which the paper says
it adopts. The released TSCD code computes L_equ under ``no_grad`` (no gradient); we implement Eq. (12)
with its gradient.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F

from ..cam import min_max_normalize
from ..data.folder import IGNORE
from ..losses import equivariance_l1, multilabel_soft_margin, split_ce
from ..ops import rescaled_view
from ..refine.crf import dense_crf_loss
from .afa import AFA

SCD_SAMPLES = 40                     # 40 x 40 random sample points per view (public code)
VIEW_SCALE = 0.3                     # the second view: the input downscaled by 0.3
LAMBDA1, LAMBDA2, LAMBDA3 = 0.1, 0.01, 1.0   # Eq. (15)
REG_SIGMA_XY, REG_SIGMA_RGB, REG_SCALE = 100.0, 15.0, 0.5   # L_reg's kernel (pixels of ~500 px photos) and resolution
# L_reg's weight: the public code's 1e-7 on the energy summed per image (divided by the batch) at half of a
# 512 px crop; our dense_crf_loss(reduction="mean") divides by the pixels too, so the same weight per pixel is
# 1e-7 x 256 x 256 (then x lambda2)
REG_WEIGHT = 1e-7 * 256 * 256


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


def equ_loss(cam: torch.Tensor, cam_view: torch.Tensor) -> torch.Tensor:
    """Eq. (12) of TSCD: L_equ = || A(m_1) - m_2 ||_1, with gradient into both views. m_1, m_2: the CAMs of the
    training pass (B, K, h, w) of the image and of its downscaled view, every foreground channel, ReLU'd and
    min-max normalised per channel - the CAMs the public code compares (its label CAMs, without gradient) - so
    the loss cannot be lowered by shrinking the CAMs' scale (a first run on raw CAMs lost 4 points to it)."""
    # $\mathcal{L}_{equ} = \| A(E(I)) - E(A(I)) \|_1$
    return equivariance_l1(min_max_normalize(F.relu(cam)), min_max_normalize(F.relu(cam_view)))


def reg_gate(probs: torch.Tensor, label: torch.Tensor, valid: torch.Tensor | None) -> torch.Tensor:
    """L_reg's per-pixel weight (the public code's gate): 1 - max_c p (no gradient), 1 where the pseudo label
    is 255, 0 outside the crop's image box. probs (B, C, H, W); label (B, H, W); valid bool (B, H, W)."""
    gate = 1.0 - probs.detach().amax(1)
    gate = gate.masked_fill(label == IGNORE, 1.0)
    return gate if valid is None else gate * valid.to(gate.dtype)


class TSCD(AFA):
    """TSCD's training step, Eq. (15): lambda3 L_cls + lambda1 (L_SCD + L_seg + L_equ + L_aux) + lambda2 L_reg
    (lambda 0.1, 0.01, 1), after AFA's classification-only warm-up of ``cls_only`` iterations.

    * labels: AFA's two-background CAM label (:func:`wsss.methods.afa.cam_labels`), refined by ``refiner``
      ("varm"; Table 5: "pamr", "par", "varm-rgb"; None: the unrefined baseline), no random walk;
    * L_seg: AFA's 0.5 (background CE + foreground CE) on that label (the public code keeps AFA's);
    * ``scd``: Eq. (7) between the image and its ``view_scale`` (0.3) view, ``samples`` x ``samples`` points;
    * ``equ``: Eq. (12), :func:`equ_loss`, L1 between the first view's CAM resized to the second view's and the
      second view's CAM (ReLU'd and min-max normalised CAMs of the training pass, with gradient);
    * ``aux``: Eq. (14), AFA's affinity loss on the 1x1 conv + sigmoid of the attention maps (no transpose);
    * ``reg``: the dense-CRF energy of the softmax (``reg_sigma_xy`` in pixels at full resolution, sigma_rgb 15,
      half resolution), gated by :func:`reg_gate`, zero outside the crop, weight ``reg_weight`` per pixel.

    A backbone without attention (ResNet, Table 4) has no L_aux. With ``timing_network_only`` the labels and
    the SCD samples are reused and L_reg is skipped (see :func:`wsss.experiments.step_timing`).
    """

    def __init__(self, backbone: str, num_classes: int, *, refiner: str | None = "varm", scd: bool = True,
                 aux: bool = True, equ: bool = True, reg: bool = True, lambda1: float = LAMBDA1, lambda2: float = LAMBDA2,
                 lambda3: float = LAMBDA3, view_scale: float = VIEW_SCALE, samples: int = SCD_SAMPLES,
                 reg_sigma_xy: float = REG_SIGMA_XY, reg_weight: float = REG_WEIGHT, **afa):
        for name in ("symmetric", "walk_from", "seg_weight", "aff_weight"):
            if name in afa:
                raise TypeError(f"TSCD sets {name} itself; it is not a parameter of TSCD")
        super().__init__(backbone, num_classes, refiner=refiner, symmetric=False, walk_from=None, **afa)
        self.scd, self.aux, self.equ, self.reg = bool(scd), bool(aux) and self.net.has_attention, bool(equ), bool(reg)
        self.lambda1, self.lambda2, self.lambda3 = lambda1, lambda2, lambda3
        self.view_scale, self.samples = view_scale, int(samples)
        self.reg_sigma_xy, self.reg_weight = reg_sigma_xy, reg_weight

    def forward(self, batch: dict, step: int = 0) -> dict:
        images, tags, valid = batch["image"], batch["labels"], batch.get("valid")
        out = self.net(images, with_attn=self.aux and step >= self.cls_only)
        l_cls = multilabel_soft_margin(out["logits"], tags)
        if step < self.cls_only:
            return {"loss": self.lambda3 * l_cls, "cls": l_cls.detach()}
        label = self.step_labels(self.labels, images, tags, valid)
        seg = F.interpolate(out["seg"], size=label.shape[1:], mode="bilinear", align_corners=False)
        terms = {"seg": 0.5 * split_ce(seg, label)}
        if self.aux:
            terms["aux"] = self.aux_loss(out, label)
        if self.scd or self.equ:
            view = self.net(rescaled_view(images, self.view_scale), with_attn=False)      # A(I)
            if self.scd:
                b = images.shape[0]
                points = self.step_labels(lambda: (sample_points(b, self.samples, device=images.device),
                                                   sample_points(b, self.samples, device=images.device)), key="points")
                terms["scd"] = scd_loss(out["cam"], view["cam"], out["seg"], view["seg"], *points)
            if self.equ:
                terms["equ"] = equ_loss(out["cam"], view["cam"])
        loss = self.lambda3 * l_cls + self.lambda1 * sum(terms.values())
        if self.reg and not self.timing_network_only:
            probs = seg.softmax(1)
            terms["reg"] = self.reg_weight * dense_crf_loss(
                images.permute(0, 2, 3, 1), probs, sigma_xy=self.reg_sigma_xy, sigma_rgb=REG_SIGMA_RGB, scale=REG_SCALE,
                weight=reg_gate(probs, label, valid), mask=valid, reduction="mean")
            loss = loss + self.lambda2 * terms["reg"]
        return {"loss": loss, "cls": l_cls.detach(), **{k: v.detach() for k, v in terms.items()},
                "ignored": (label == IGNORE).float().mean()}
