"""ASDT: "Alternative Self-Dual Teaching for Weakly Supervised Semantic Segmentation" (CVPR 2022 line of work).

On top of RRM's shared backbone, ASDT puts *two teachers and one student*: the class-teacher (the CAM
classifier, whose reliable labels B^ct, R^ct come from RRM), the seg-teacher (a segmentation branch
trained on those labels) and a student branch of the same architecture with its own weights. The student
does not learn from one teacher all the time: a pulse-width-modulated (PWM) signal picks, at every
iteration, either the class-teacher's reliable labels or the seg-teacher's CRF-refined prediction B^st
(Eq. 3). Both distillation losses add the structure loss L_str (Eq. 4-8). At test time the seg-teacher's
and the student's probabilities are fused by an element-wise max (Eq. 1).

This module holds only what ASDT adds: the PWM signal, the fusion, and the three-branch training step.
RRM's pieces (reliable labels, segmentation head, split CE, L_str) are imported from :mod:`.rrm`.
Where the paper is silent we follow the public ASDT code and say so.
"""
from __future__ import annotations

import torch

from ..cam import K_LOW, cam_to_probs
from ..data.folder import IGNORE
from ..data.transforms import normalize
from ..ops import upsample
from ..refine.crf import crf_label
from .rrm import RRM, SegHead

DISTILL = ("alternate", "class", "seg", "max", "mean")
FUSIONS = ("max", "mean", "multiply")
ST_GAUSSIAN = (3, 3)            # CRF on the seg-teacher's softmax (public ASDT code)
ST_BILATERAL = (83, 5, 4)


def pwm_periods(T: int, tau: float) -> tuple[int, int]:
    """(T_h, T_l) of the PW wave: T = T_h + T_l and tau = T_l / T_h, so T_h = round(T / (1 + tau)).

    Raises ValueError naming T or tau unless T is a positive integer, tau > 0, and both levels last
    at least one iteration.
    """
    if isinstance(T, bool) or int(T) != T or T <= 0:
        raise ValueError(f"T={T!r} must be a positive integer (the alternation period in iterations)")
    if not tau > 0:
        raise ValueError(f"tau={tau!r} must be > 0 (tau = T_l / T_h)")
    t_h = round(T / (1 + tau))
    if t_h < 1:
        raise ValueError(f"tau={tau!r} is too large for T={T}: the seg-teacher level T_h = T / (1 + tau) "
                         f"would last less than one iteration")
    if t_h >= T:
        raise ValueError(f"tau={tau!r} is too small for T={T}: the class-teacher level T_l would last "
                         f"less than one iteration")
    return t_h, int(T) - t_h


def pwm_signal(t: int, T: int = 150, tau: float = 5.0) -> bool:
    """Eq. (3) of ASDT: the selection signal Lambda_t at iteration t; True = high = seg-teacher.

    Each period of T iterations, counted from iteration 0, starts with the high level (seg-teacher) for
    T_h = T / (1 + tau) iterations and ends with the low level (class-teacher) for T_l: high iff
    (t mod T) < T_h. The paper does not say where the pulse sits; the public ASDT code puts it at the
    start of each period (``int(iter / every_part) % N == 0``, with every_part = T_h and N = 1 + tau),
    and so do we. T=150, tau=5: 25 seg-teacher then 125 class-teacher iterations per period.
    """
    t_h, _ = pwm_periods(T, tau)
    return (int(t) % int(T)) < t_h


def learns_from_seg_teacher(t: int, distill: str, T: int, tau: float, warmup: int) -> bool:
    """Whether the student learns from the seg-teacher's side at iteration t: never for "class"; never
    during the first ``warmup`` iterations (public code: 1000), while the seg-teacher is untrained;
    after it always for "seg", "max" and "mean", and Lambda_t of :func:`pwm_signal` for "alternate"."""
    if distill == "class" or t < warmup:
        return False
    return pwm_signal(t, T, tau) if distill == "alternate" else True


def schedule_counts(steps: int, warmup: int, distill: str, T: int, tau: float) -> dict:
    """How a run of ``steps`` iterations teaches the student: {"steps_from_class_teacher": n,
    "steps_from_seg_teacher": n, "periods": n}, with "periods" the full PWM periods [kT, (k+1)T) that
    start at or after the warm-up and end within the run ("alternate" only; 0 for a single or naive
    teacher, which does not alternate)."""
    if distill not in DISTILL:
        raise ValueError(f"distill={distill!r} is not known; choose one of {DISTILL}")
    seg = sum(learns_from_seg_teacher(t, distill, T, tau, warmup) for t in range(steps))
    first = -(-warmup // T)                                      # the first period starting at or after warmup
    periods = max(0, steps // T - first) if distill == "alternate" else 0
    return {"steps_from_class_teacher": steps - seg, "steps_from_seg_teacher": seg, "periods": periods}


def fuse(p_st: torch.Tensor, p_s: torch.Tensor, mode: str = "max") -> torch.Tensor:
    """Eq. (1) of ASDT: P = Delta max[P^st, P^s], element-wise, plus Table 5's "mean" and "multiply".

    p_st, p_s: probabilities (B, C, H, W). The result is renormalised to sum to 1 over C (it does not
    change the argmax, and a CRF can take it as its unary).
    """
    if mode == "max":
        fused = torch.maximum(p_st, p_s)
    elif mode == "mean":
        fused = (p_st + p_s) / 2
    elif mode == "multiply":
        fused = p_st * p_s
    else:
        raise ValueError(f"fusion mode={mode!r} is not known; choose one of {FUSIONS}")
    return fused / fused.sum(1, keepdim=True).clamp_min(1e-12)


class ASDT(RRM):
    """ASDT training step: class-teacher + seg-teacher (``self.seg``) + student (``self.student``).

    loss = L_ce (Eq. 2) + 0.5 L_d^ct of the seg-teacher (Eq. 4) + 0.5 L_ad of the student (Eq. 3), where
    L_d = split CE + ``str_weight`` * L_str (RRM's split CE also for Eq. 5, our choice). The paper does not
    weigh the two distillation losses; the public code weighs them 0.5 each (``distill_weight``).
    ``distill`` (Table 4): "alternate" (ASDT: PWM picks L_d^ct or L_d^st), "class" (single class-teacher:
    always L_d^ct), "seg" (single seg-teacher: always L_d^st), "max" / "mean" (naive dual teacher: the
    student learns the CRF argmax of the pixel-wise max / mean of the class-teacher's probabilities
    P^ct = [bg; CAM] with background (1 - max CAM)^4 - the k of RRM's low CRF - and the seg-teacher's
    P^st, as Sec. 4.3 describes). Every mode that uses the seg-teacher falls back to L_d^ct for the first
    ``warmup`` iterations (:func:`learns_from_seg_teacher`).
    ``use_reliability`` (R^ct) and ``use_structure`` (L_str) are Table 5's switches; T, tau the PWM (Fig. 6).
    ``st_bilateral``: bilateral kernel of the CRF that makes B^st (scale sxy down for small images).
    Other arguments as :class:`RRM`.
    """

    def __init__(self, backbone: str, num_classes: int, *, distill: str = "alternate", T: int = 150,
                 tau: float = 5.0, warmup: int = 1000, st_bilateral: tuple[float, float, float] = ST_BILATERAL,
                 distill_weight: float = 0.5, **rrm_kwargs):
        super().__init__(backbone, num_classes, **rrm_kwargs)
        if distill not in DISTILL:
            raise ValueError(f"distill={distill!r} is not known; choose one of {DISTILL}")
        if warmup < 0:
            raise ValueError(f"warmup={warmup!r} must be >= 0")
        pwm_periods(T, tau)                                                     # validate early
        self.student = SegHead(self.net.backbone.out_channels[-1], num_classes, self.seg.conv1.out_channels)
        self.distill, self.T, self.tau, self.warmup, self.st_bilateral = distill, T, tau, warmup, st_bilateral
        self.distill_weight = distill_weight

    def uses_seg_teacher(self, step: int) -> bool:
        """Whether the student learns from the seg-teacher's side at this step (Lambda_t of Eq. 3 for
        "alternate"; always after the warm-up for "seg", "max", "mean"; never for "class")."""
        return learns_from_seg_teacher(step, self.distill, self.T, self.tau, self.warmup)

    def targets(self, images: torch.Tensor, cams: torch.Tensor, tags: torch.Tensor, logits_st: torch.Tensor,
                step: int) -> tuple:
        """The labels of one step: ([B^ct, R^ct] for the seg-teacher, the student's label, whether that
        label came from the seg-teacher's side). All of it is CRF and label work, no network pass."""
        target_ct = self.pseudo_labels(images, cams, tags)                      # [B^ct, R^ct]
        teacher_st = self.uses_seg_teacher(step)
        if not teacher_st:
            return target_ct, target_ct, False
        p_st = logits_st.detach().float().softmax(1)
        mode = self.distill if self.distill in ("max", "mean") else "seg"
        return target_ct, self.seg_side_label(images, cams, p_st, mode), True

    @torch.no_grad()
    def seg_side_label(self, images: torch.Tensor, cams: torch.Tensor, p_st: torch.Tensor, mode: str = "seg") -> torch.Tensor:
        """The student's label on the seg-teacher's side: B^st = CRF argmax of P^st (``mode`` "seg", Eq. 5),
        or the naive dual teacher's CRF argmax of max / mean of P^ct = [(1 - max CAM)^4; CAMs] and P^st
        (``mode`` "max" / "mean", Table 4). images uint8 (B, 3, H, W); cams (B, K, H, W); p_st softmax
        (B, C, H, W). Returns int64 (B, H, W)."""
        if mode in ("max", "mean"):
            p_ct = cam_to_probs(cams, power=K_LOW)
            p_st = torch.maximum(p_ct, p_st) if mode == "max" else (p_ct + p_st) / 2
        elif mode != "seg":
            raise ValueError(f"mode={mode!r} is not known; choose 'seg', 'max' or 'mean'")
        return crf_label(images, p_st, backend=self.crf_backend, gaussian=ST_GAUSSIAN, bilateral=self.st_bilateral)

    def forward(self, batch: dict, step: int = 0) -> dict:
        images = batch["image"]
        size = images.shape[2:]
        out, l_ce, cams = self.class_teacher(images, batch["labels"])           # Eq. (2)
        features = out["features"][-1]
        logits_st = upsample(self.seg(features), size)                          # seg-teacher (B, C, H, W)
        logits_s = upsample(self.student(features), size)                       # student (B, C, H, W)
        target_ct, target_s, teacher_st = self.step_labels(self.targets, images, cams, batch["labels"],
                                                              logits_st, step)
        kernel = self.structure_kernel(images)                                  # G of Eq. (6), once per step
        # Eq. (4): the seg-teacher learns from the class-teacher
        st_ce, st_str = self.distill_loss(logits_st, target_ct, images, kernel)
        # Eq. (3): L_ad = Lambda_t(L_d^ct(P^s, [B^ct, R^ct]), L_d^st(P^s, B^st) | T, tau)
        s_ce, s_str = self.distill_loss(logits_s, target_s, images, kernel)     # Eq. (5) or Eq. (4)
        w = self.distill_weight
        loss = l_ce + w * (st_ce + self.str_weight * st_str) + w * (s_ce + self.str_weight * s_str)
        return {"loss": loss, "cls": l_ce.detach(), "st_ce": st_ce.detach(), "st_str": st_str.detach(),
                "s_ce": s_ce.detach(), "s_str": s_str.detach(), "teacher_st": float(teacher_st),
                "ignored": (target_ct == IGNORE).float().mean()}

    @torch.no_grad()
    def predict(self, images: torch.Tensor, fusion: str = "max") -> torch.Tensor:
        """Eq. (1) of ASDT: uint8 (B, 3, H, W) -> fused probabilities (B, C, H, W) of the seg-teacher and
        the student (``fusion`` "max", "mean" or "multiply"); CRF post-processing is left to callers."""
        features = self.net.backbone(normalize(images))[-1]
        p_st = upsample(self.seg(features), images.shape[2:]).softmax(1)
        p_s = upsample(self.student(features), images.shape[2:]).softmax(1)
        return fuse(p_st, p_s, fusion)
