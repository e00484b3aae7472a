"""Seminar Learning: "Seminar Learning for Click-Level Weakly Supervised Semantic Segmentation" (Chen et al., ICCV 2021).

Click supervision gives one labelled pixel per object (plus a few background clicks). Seminar learning
lets several networks teach each other the rest:

* **teacher-student** (Eq. 1-5): a DeepLab-v3+ student learns from the clicks (partial cross-entropy, Eq. 2),
  from a dense-CRF regulariser (Eq. 4, Tang et al.'s "regularized loss") and from its own exponential moving
  average, the teacher, through a pixel consistency loss on the softmax maps (Eq. 3);
* **student-student** (Eq. 6-7): a second ("primary") model, another seed, also learns from the argmax of a
  fully trained first ("ancillary") student on each batch, the heterogeneous pseudo-labels.

There is no public code. The paper says it is built on the public rloss code "without modifying any
parameters", so where it is silent we follow rloss (stated where used): the CRF kernel (sigma_rgb 15, sigma_xy
100 px, at half resolution, images nearest-downscaled, padding excluded) and its weight 2e-9 on rloss's
reductions (converted in :func:`crf_weight`), SGD lr 0.007 poly 0.9, weight decay 5e-4, batch 12. Our readings:
the minus sign in front of Eq. 3 (and Eq. 8) is a typo (an MSE to be minimised; with the sign the student would
be pushed away from its teacher); Eq. 3 sums the squared difference over the classes and averages over the
pixels (mean-teacher code averages over both, 1/C of ours: it changes what lambda_pCons = 200 means); the
teacher is never in the optimiser and sees the same images as the student, in training mode (batch statistics,
as mean-teacher code), its BatchNorm statistics its own; Eq. 1's EMA covers the parameters.
"""
from __future__ import annotations

import copy
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..data.folder import IGNORE
from ..data.transforms import normalize
from ..models import build_backbone
from ..models.heads import DeepLabV3Plus
from ..ops import class_argmax
from ..refine.crf import dense_crf_loss
from ..train import ReusableLabels

LAMBDA_CRF, LAMBDA_PCONS, LAMBDA_PSEUDO = 1.0, 200.0, 1.0      # Sec. 4.1
ALPHA = 0.999                                                    # Sec. 4.1: EMA decay
EPOCHS, RAMP_EPOCHS = 60, 40                                     # lambda_pCons ramps 0 -> 200 over 40 of 60 epochs
PAPER_STEPS = 60 * 882                                           # 60 epochs of 10,582 images at batch 12
RLOSS_WEIGHT, RLOSS_BATCH = 2e-9, 12                             # rloss's CRF weight, on its reductions at batch 12
SIGMA_RGB, SIGMA_XY, CRF_SCALE = 15.0, 100.0, 0.5               # rloss's kernel; sigma_xy in px of the 513 px crop
PAPER_CRF_PIXELS, PAPER_CRF_SIGMA = 256 * 256, 50.0              # rloss's CRF grid: half of a 513 px crop, sigma 50


def partial_ce(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Eq. (2) of Seminar: cross-entropy over the labelled (clicked) pixels only, their mean.

    logits (B, C, H, W); target int64 (B, H, W), 255 = unlabelled. 0 (with a gradient path) when nothing is labelled."""
    if (target != IGNORE).any():
        return F.cross_entropy(logits, target, ignore_index=IGNORE)
    return logits.sum() * 0.0


def pixel_consistency(probs: torch.Tensor, teacher_probs: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
    """Eq. (3) of Seminar (without its sign typo): 1/N sum_i ||f(x_i, theta') - f(x_i, theta)||^2, the squared
    difference of the softmax maps summed over the classes and averaged over the N pixels (``valid`` (B, H, W):
    the image, not the crop's padding). No gradient reaches the teacher."""
    per_pixel = (probs - teacher_probs.detach()).pow(2).sum(1)                       # (B, H, W)
    if valid is None:
        return per_pixel.mean()
    v = valid.to(per_pixel.dtype)
    return (per_pixel * v).sum() / v.sum().clamp_min(1.0)


def pseudo_ce(logits: torch.Tensor, pseudo: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
    """Eq. (6) of Seminar: cross-entropy against the heterogeneous pseudo-labels over all N pixels (the crop's
    padding left out). pseudo int64 (B, H, W)."""
    if valid is not None:
        pseudo = pseudo.masked_fill(~valid.bool(), IGNORE)
    return partial_ce(logits, pseudo)


def crf_weight(crf_pixels: int, sigma_xy: float, *, lambda_crf: float = LAMBDA_CRF) -> float:
    """The weight of :func:`dense_crf_loss` (``reduction="sum"``: the energy summed over each image's pixels,
    averaged over the batch) that gives rloss's CRF term beside our plain-mean cross-entropy.

    rloss's loss at batch B = 12 is CE / B + 2e-9 sum_b E_b / B, its CE already a mean over the labelled pixels
    (its ``batch_average`` divides once more by B); E_b = -S'WS per image (Eq. 4 without its constant: same
    gradient). Multiplying by B: CE + (2e-9 B) mean_b E_b, i.e. ours with weight 2e-9 x 12 = 2.4e-8, and rloss's
    whole loss is 1/12 of ours (tested on a tiny case).

    The energy of one image grows with its resolution: a boundary of length L ~ k, pixels within sigma of it
    ~ k sigma, each summing ~ sigma^2 of kernel mass, so E ~ k^4 when image and sigma_xy both scale by k, while
    the cross-entropy, a mean, does not change. So that the CRF term weighs against the CE at a profile's small
    images as at rloss's (a 256 x 256 grid, sigma_xy 50), the weight is scaled by (256^2 x 50^2) / (n sigma^2),
    n the pixels of one image at the CRF's resolution and sigma its sigma_xy there: 1 at the paper's size
    (tested: weight x energy stays within 3% when an image and sigma are doubled; the diagonal W_ii and the pixel
    grid add a few % at tiny sizes)."""
    if crf_pixels <= 0 or not sigma_xy > 0:
        raise ValueError(f"crf_pixels={crf_pixels!r} and sigma_xy={sigma_xy!r} must be positive")
    return lambda_crf * RLOSS_WEIGHT * RLOSS_BATCH * (PAPER_CRF_PIXELS * PAPER_CRF_SIGMA ** 2) / (crf_pixels * sigma_xy ** 2)


def crf_loss(images: torch.Tensor, probs: torch.Tensor, valid: torch.Tensor | None, sigma_xy: float) -> torch.Tensor:
    """Eq. (4) of Seminar, the dense-CRF energy of rloss on the softmax (per image, averaged over the batch):
    Gaussian kernel on position (sigma_xy px at full resolution) and colour (sigma_rgb 15, 0-255), computed at half
    resolution with the image nearest-downscaled, the crop's padding excluded. images uint8 (B, 3, H, W)."""
    return dense_crf_loss(images.permute(0, 2, 3, 1), probs, sigma_xy=sigma_xy, sigma_rgb=SIGMA_RGB, scale=CRF_SCALE,
                          mask=valid, reduction="sum")


@torch.no_grad()
def ema_update(teacher: nn.Module, student: nn.Module, t: int, alpha: float) -> float:
    """Eq. (1) of Seminar, after training step t (t = 1, 2, ...): theta'_t = (1 - 1/t) theta'_{t-1} + (1/t) theta_t
    (a plain running average) while 1 - 1/t < alpha, then theta'_t = alpha theta'_{t-1} + (1 - alpha) theta_t.
    Applied to the parameters. Returns the weight the teacher kept (1 - 1/t or alpha)."""
    if t < 1:
        raise ValueError(f"t={t!r}: the EMA counts training steps from 1")
    keep = 1.0 - 1.0 / t if 1.0 - 1.0 / t < alpha else alpha
    for p_t, p_s in zip(teacher.parameters(), student.parameters()):
        p_t.mul_(keep).add_(p_s.detach(), alpha=1.0 - keep)
    return keep


def ema_horizon(alpha: float) -> float:
    """Steps an EMA of decay alpha averages over, 1 / (1 - alpha) (also the step where Eq. 1 leaves its running
    average); inf for alpha = 1."""
    return math.inf if alpha >= 1 else 1.0 / (1.0 - alpha)


def alpha_for_run(alpha: float, steps: int, paper_steps: int = PAPER_STEPS) -> float:
    """The decay whose horizon is the same share of a run of ``steps`` as ``alpha``'s is of the paper's 52,920 steps
    (docs/design.md: an iteration count keeps its meaning as a share of the run): 1 - 1 / (steps x h / paper_steps),
    h = 1 / (1 - alpha); 0 (the teacher is the student) when that horizon is under one step."""
    horizon = ema_horizon(alpha) * steps / paper_steps
    return 0.0 if horizon <= 1 else 1.0 - 1.0 / horizon


def pcons_weight(step: int, steps: int, lam: float = LAMBDA_PCONS, *, ramp_epochs: int = RAMP_EPOCHS,
                 epochs: int = EPOCHS) -> float:
    """lambda_pCons at training step ``step`` (0-based) of ``steps`` (Sec. 4.1): ramped linearly from 0 to ``lam`` over
    the first ``ramp_epochs`` of ``epochs`` epochs, updated once per epoch; an epoch is ``steps / epochs`` steps, so a
    shorter run keeps the ramp's share (40 of 60) and its 40 updates."""
    epoch = min(epochs, int(step * epochs // steps))
    return lam * min(1.0, epoch / ramp_epochs)


def student_state(path: str) -> dict:
    """The student's weights in a saved file: a :class:`Seminar` state dict (its "student.*" entries) or a bare
    DeepLab-v3+ one."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    if any(k.startswith("student.") for k in state):
        state = {k[len("student."):]: v for k, v in state.items() if k.startswith("student.")}
    return state


def deeplab(backbone: str, num_classes: int, *, output_stride: int = 16, channels: int = 256,
            rates: tuple[int, ...] = (6, 12, 18), pretrained: str | None = None) -> DeepLabV3Plus:
    """DeepLab-v3+ (ASPP and decoder) on ``backbone`` (MobileNet-v2 or ResNet in the paper); the low-level
    projection keeps DeepLab's 48 : 256 ratio to the head's ``channels``."""
    return DeepLabV3Plus(build_backbone(backbone, pretrained=pretrained, output_stride=output_stride), num_classes,
                         channels=channels, low_channels=max(4, round(channels * 48 / 256)), rates=tuple(rates))


class Seminar(ReusableLabels, nn.Module):
    """One model of seminar learning: a student (+ its EMA teacher), trained by Eq. (5), or Eq. (7) with an ancillary.

    Switches for Table 3: ``crf`` (L_CRF), ``pcons`` (L_pCons and the teacher), ``ancillary`` (the file of a fully
    trained model, :func:`student_state`, whose student's argmax on each batch is L_pseudo's target; None = no L_pseudo); ``full_supervision``: the
    ground-truth masks replace the clicks (Table 3's last row). ``alpha``: the EMA decay of this run (see
    :func:`alpha_for_run`); ``steps``: the run's length, for the lambda_pCons ramp; ``crf_sigma_xy``: the CRF's
    sigma_xy at full resolution in pixels of this run's images; ``backbone_init``: a state-dict file for the
    student's backbone, loaded before the teacher is copied from it. forward(batch, step) -> {"loss", "pce", ...}.
    """

    def __init__(self, backbone: str, num_classes: int, *, steps: int, crf: bool = True, pcons: bool = True,
                 ancillary: str | None = None, full_supervision: bool = False, alpha: float = ALPHA,
                 lambda_crf: float = LAMBDA_CRF, lambda_pcons: float = LAMBDA_PCONS, lambda_pseudo: float = LAMBDA_PSEUDO,
                 crf_sigma_xy: float = SIGMA_XY, crf_weight_value: float | None = None, output_stride: int = 16,
                 channels: int = 256, rates: tuple[int, ...] = (6, 12, 18), pretrained: str | None = None,
                 backbone_init: str | None = None):
        super().__init__()
        if not 0 <= alpha < 1:
            raise ValueError(f"alpha={alpha!r} must lie in [0, 1)")
        self.student = deeplab(backbone, num_classes, output_stride=output_stride, channels=channels, rates=rates,
                               pretrained=pretrained)
        if backbone_init is not None:       # a backbone state-dict file (the stand-in for ImageNet weights)
            self.student.backbone.load_state_dict(torch.load(backbone_init, map_location="cpu", weights_only=True))
        self.teacher = None
        if pcons:       # Sec. 3.1: the teacher starts as the student (same random seed), never in the optimiser
            self.teacher = copy.deepcopy(self.student).requires_grad_(False)
        self.ancillary = None
        if ancillary is not None:
            self.ancillary = deeplab(backbone, num_classes, output_stride=output_stride, channels=channels, rates=rates)
            self.ancillary.load_state_dict(student_state(ancillary))
            self.ancillary.requires_grad_(False).eval()
        self.crf, self.full_supervision, self.alpha, self.steps = crf, full_supervision, alpha, steps
        self.lambda_crf, self.lambda_pcons, self.lambda_pseudo = lambda_crf, lambda_pcons, lambda_pseudo
        self.crf_sigma_xy, self.crf_weight_value = crf_sigma_xy, crf_weight_value
        self.num_classes = num_classes

    def train(self, mode: bool = True):
        super().train(mode)
        if self.ancillary is not None:
            self.ancillary.eval()         # a fully trained model: its BatchNorm statistics stay fixed
        return self

    def _crf_weight(self, crop_hw) -> float:
        if self.crf_weight_value is not None:
            return self.crf_weight_value
        h, w = (max(1, round(s * CRF_SCALE)) for s in crop_hw)
        return crf_weight(h * w, self.crf_sigma_xy * CRF_SCALE, lambda_crf=self.lambda_crf)

    def forward(self, batch: dict, step: int = 0) -> dict:
        images, valid = batch["image"], batch.get("valid")
        x = normalize(images)
        logits = self.student(x)                                                      # (B, C, H, W)
        probs = logits.softmax(1)
        target = batch["mask"] if self.full_supervision else batch["click_mask"]
        out = {"pce": partial_ce(logits, target)}
        loss = out["pce"]
        if self.crf and not self.timing_network_only:                     # Eq. (4): label-only work, skipped in timing
            out["crf"] = crf_loss(images, probs, valid, self.crf_sigma_xy)
            loss = loss + self._crf_weight(images.shape[2:]) * out["crf"]
        if self.teacher is not None:
            with torch.no_grad():
                teacher_probs = self.teacher(x).softmax(1)
            out["pcons"] = pixel_consistency(probs, teacher_probs, valid)
            out["lambda_pcons"] = pcons_weight(step, self.steps, self.lambda_pcons)
            loss = loss + out["lambda_pcons"] * out["pcons"]
        if self.ancillary is not None:                                   # Eq. (6)-(7)
            with torch.no_grad():
                anc_logits = self.ancillary(x)
            pseudo = self.step_labels(class_argmax, anc_logits, key="pseudo")
            out["pseudo"] = pseudo_ce(logits, pseudo, valid)
            loss = loss + self.lambda_pseudo * out["pseudo"]
        out["loss"] = loss
        return out

    def after_step(self, step: int) -> None:
        """The teacher's EMA update (Eq. 1) after the optimiser's step ``step`` (1 after the first)."""
        if self.teacher is not None:
            ema_update(self.teacher, self.student, step, self.alpha)

    @torch.no_grad()
    def predict(self, images: torch.Tensor, *, teacher: bool = False) -> torch.Tensor:
        """Logits (B, C, H, W) of the student (the paper's output: single scale, no CRF) or of the teacher."""
        net = self.teacher if teacher else self.student
        if net is None:
            raise ValueError("this model has no teacher (pcons=False)")
        return net(normalize(images))

    def param_groups(self) -> list[dict]:
        """DeepLab's convention (rloss): backbone x1, ASPP and decoder x10."""
        return self.student.param_groups()
