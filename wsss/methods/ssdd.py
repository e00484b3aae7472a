"""SSDD: "Self-Supervised Difference Detection for Weakly-Supervised Semantic Segmentation" (Shimoda &
Yanai, ICCV 2019).

A refinement step (a dense CRF, a segmentation network) turns a mask m^K, the *knowledge*, into a mask
m^A, the *advice*. Advice is right in some places and wrong in others. SSDD learns, with no labels, to
tell the two apart: a small network, the **DD-Net**, sees the image features and one of the masks and
predicts where that mask differs from the other one (Eq. 1-2). Where the DD-Net is much surer that the
knowledge differs than that the advice does, the advice is a predictable, so trustworthy, correction
and replaces the knowledge; elsewhere the knowledge stays (Eq. 3-4). That is one **SSDD module**
(Eq. 5).

SSDD uses such modules twice. **Static stage** (Sec. 4.1): knowledge = PSA's map m^K0, advice = its
dense CRF m^A0; a segmentation network learns m^K0 (Eq. 7-8) to give the DD-Net its features, the DD-Net
learns the differences (Eq. 6, 9); the module's output m^D0 is the *seed* (Eq. 10). **Dynamic stage**
(Sec. 4.2): a new network learns from the seed while it trains; each step its main head's mask m^K1 and
that mask's CRF m^A1 give m^D1, and a second module between the seed and m^D1 gives m^D2, the main
head's label (Eq. 11-15); a sub head, half-way between m^D0 and m^D1 (Eq. 14), keeps the second
DD-Net from a constant answer.

This module holds only what SSDD adds: the DD-Net, the difference loss, the bad-pair flags and biases
(Eq. 16-17, the supplement), the decision, the class-balanced CE (Eq. 8) and the training step of both
stages. PSA (the knowledge source) is :mod:`.psa`; the CRF is :mod:`wsss.refine.crf`. Where the paper
is silent we follow the public SSDD code (``network.py``, ``ssdd_function.py``, ``train_dssdd.py``) and
say so; where they differ, the paper is implemented and the difference named here and in the notebook.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..data.folder import IGNORE
from ..data.transforms import normalize
from ..models import build_backbone
from ..models.heads import CAMNet
from ..ops import channels_last, present_argmax, present_classes, upsample
from ..refine.affinity import downsample_labels as nearest   # nearest resize of int masks (B, H, W)
from ..refine.crf import dense_crf_batch
from ..train import ReusableLabels

STAGES = ("static", "dynamic", "fixed")
BAD_RULES = ("all", "any")
B_DD, B_CLASS, B_BG = 0.4, 1.0, 0.0            # the training modules (Table A-1's best; code's bg bias 0)
SEED_B_DD, SEED_B_BG = 0.1, 0.1                 # the seed builder m^D0 (public code)
BAD_RATIO = 0.5                                 # Eq. (16): advice keeps < half of a class's knowledge area
ALPHA = 0.5                                     # Eq. (14)
LOOP_CRF_ITERS = 3                              # the dynamic stage's in-loop CRF (public code)
PAPER_MAP_PX = 112                              # the paper's maps: 112 x 112 for 448 px inputs
HEAD_DILATION = 12


def _conv_bn_relu(cin: int, cout: int, k: int, dilation: int = 1, bias: bool = False) -> nn.Sequential:
    """conv (reflection padding, as the SSDD code) + BN + ReLU."""
    pad = dilation * (k // 2)
    return nn.Sequential(nn.ReflectionPad2d(pad), nn.Conv2d(cin, cout, k, dilation=dilation, bias=bias),
                         nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class SegBranch(nn.Module):
    """SSDD's segmentation head (PSA-style, public code): 3x3 conv (dilation 12) + BN + ReLU -> ``mid``
    features, then a 3x3 conv (dilation 12) -> C logits, reflection-padded. forward(features (B, in, h, w))
    -> (logits (B, C, h, w), features (B, mid, h, w)); the features are the DD-Net's high-level input."""

    def __init__(self, in_ch: int, num_classes: int, mid: int = 512, dilation: int = HEAD_DILATION):
        super().__init__()
        self.conv1 = _conv_bn_relu(in_ch, mid, 3, dilation, bias=True)
        self.pad = nn.ReflectionPad2d(dilation)
        self.conv2 = nn.Conv2d(mid, num_classes, 3, dilation=dilation)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.conv1(x)
        return self.conv2(self.pad(features)), features


class Bottleneck(nn.Module):
    """The DD-Net's residual block (Fig. 2): 1x1 -> 3x3 (reflection pad) -> 1x1, BN after each, ReLU,
    with a 1x1 conv + BN on the shortcut (cin -> cout)."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(cin, cout, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
                                  nn.ReflectionPad2d(1), nn.Conv2d(cout, cout, 3, bias=False), nn.BatchNorm2d(cout),
                                  nn.ReLU(inplace=True), nn.Conv2d(cout, cout, 1, bias=False), nn.BatchNorm2d(cout))
        self.short = nn.Sequential(nn.Conv2d(cin, cout, 1, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.body(x) + self.short(x))


class DDNet(nn.Module):
    """The Difference Detection Network (Fig. 2). :meth:`embed` mixes the high-level segmentation
    features e^h and a low-level backbone feature e^l (both detached: "theta_e is independent of the
    optimization of theta_d") by a 3x3 conv + BN + ReLU into ``width`` channels, once per module;
    :meth:`forward` takes that and a mask, whose one-hot map goes through a 1x1 conv + BN + ReLU to
    ``width`` channels, concatenates both, and a bottleneck block (2 width -> width) and a bias-free
    1x1 conv give one logit per pixel: d, the confidence that this mask differs from the other."""

    def __init__(self, high_ch: int, low_ch: int, num_classes: int, width: int = 256):
        super().__init__()
        self.num_classes = num_classes
        self.head = _conv_bn_relu(high_ch + low_ch, width, 3)
        self.mask_in = _conv_bn_relu(num_classes, width, 1)
        self.block = Bottleneck(2 * width, width)
        self.out = nn.Conv2d(width, 1, 1, bias=False)

    def embed(self, high: torch.Tensor, low: torch.Tensor) -> torch.Tensor:
        """(B, high_ch, h, w), (B, low_ch, h, w) -> the module's shared head (B, width, h, w)."""
        return self.head(torch.cat([high.detach(), low.detach()], 1))

    def forward(self, head: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """head (B, width, h, w), mask int (B, h, w) (255: an all-zero one-hot) -> logits d (B, h, w)."""
        one_hot = F.one_hot(mask.clamp(max=self.num_classes), self.num_classes + 1)[..., :self.num_classes]
        x = self.mask_in(one_hot.permute(0, 3, 1, 2).to(head.dtype))
        return self.out(self.block(torch.cat([head, x], 1)))[:, 0]

    def pair(self, head: torch.Tensor, m_1: torch.Tensor, m_2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(d_1, d_2) of two masks of the same images in one batched pass (half the calls of two passes on
        small maps; the new layers' BatchNorm then takes its batch statistics over both masks at once)."""
        d = self(torch.cat([head, head]), torch.cat([m_1, m_2]))
        return d[:len(m_1)], d[len(m_1):]


def difference_target(m_k: torch.Tensor, m_a: torch.Tensor) -> torch.Tensor:
    """Eq. (1) as the public code trains it: 1 where the masks DIFFER, 0 where they agree (the paper
    prints M = 1 where they agree; only the "differ" target makes w = d^K - d^A of Eq. 3 choose the
    advice where the knowledge is the one that looks wrong). (B, h, w) float."""
    return (m_k != m_a).float()


def difference_loss(logits: torch.Tensor, target: torch.Tensor, valid: torch.Tensor,
                    keep: torch.Tensor | None = None) -> torch.Tensor:
    """Eq. (2) for one mask: J is the binary cross-entropy of sigmoid(d) against the target, averaged per
    image over the differing pixels and over the agreeing pixels apart, then the two means averaged
    (public code: ``(loss0 + loss1) / 2``; a set without pixels is left out of that average, where the
    code would give NaN). Images with ``keep`` False (bad pairs, Eq. 16) are left out; the result is the
    mean over the kept images (0 if none). logits, target (B, h, w); valid bool (B, h, w); keep bool (B,)."""
    bce = F.binary_cross_entropy_with_logits(logits.float(), target, reduction="none")
    means, have = [], []
    for value in (1.0, 0.0):
        part = valid & (target == value)
        n = part.sum((1, 2))
        means.append((bce * part).sum((1, 2)) / n.clamp_min(1))
        have.append((n > 0).float())
    per_image = (means[0] * have[0] + means[1] * have[1]) / (have[0] + have[1]).clamp_min(1)
    keep = torch.ones_like(per_image, dtype=torch.bool) if keep is None else keep
    return (per_image * keep).sum() / keep.sum().clamp_min(1)


def class_flags(m_k: torch.Tensor, m_a: torch.Tensor, tags: torch.Tensor, ratio: float = BAD_RATIO) -> torch.Tensor:
    """The hat-C of Eq. (16)-(17): the tagged classes c whose advice area is under ``ratio`` of their
    knowledge area, |S_c^A| / max(|S_c^K|, 1) < ratio (the max as the public code). m_k, m_a int
    (B, h, w); tags multi-hot (B, K). Returns bool (B, K+1), column 0 (background) always False."""
    k = tags.shape[1]
    classes = torch.arange(1, k + 1, device=m_k.device)[None, :, None]              # (1, K, 1)
    area_k = (m_k.flatten(1)[:, None] == classes).sum(-1)                          # (B, K)
    area_a = (m_a.flatten(1)[:, None] == classes).sum(-1)
    flagged = (area_a.float() / area_k.clamp_min(1).float() < ratio) & tags.bool()
    return torch.cat([torch.zeros_like(flagged[:, :1]), flagged], 1)


def bad_pairs(flags: torch.Tensor, tags: torch.Tensor, rule: str = "all") -> torch.Tensor:
    """Eq. (16): an image is a bad training pair when the flag holds for ALL its tagged classes (the
    paper, ``rule="all"``) or for ANY of them (the public code, ``rule="any"``). An image without tags
    is kept (there is no class to judge). flags (B, K+1), tags (B, K) -> bool (B,)."""
    if rule not in BAD_RULES:
        raise ValueError(f"bad-pair rule={rule!r} is not known; choose one of {BAD_RULES}")
    tagged = tags.bool()
    hit = flags[:, 1:] & tagged
    bad = (hit == tagged).all(1) if rule == "all" else hit.any(1)
    return bad & tagged.any(1)


def confidence(d_k: torch.Tensor, d_a: torch.Tensor, m_k: torch.Tensor, m_a: torch.Tensor, flags: torch.Tensor, *,
               b_dd: float = B_DD, b_class: float = B_CLASS, b_bg: float = B_BG) -> torch.Tensor:
    """Eq. (3) with the bias of Eq. (17): w = sigmoid(d^K) - sigmoid(d^A) + bias, where bias = b_dd,
    minus b_class where the knowledge pixel is a flagged class and plus b_class where the advice pixel
    is one (both favour the class the advice lost); b_bg likewise minus where the knowledge is
    background and plus where the advice is (public code's ``add_class_weights``). d_k, d_a logits
    (B, h, w); m_k, m_a int (B, h, w); flags bool (B, K+1) of :func:`class_flags`. Returns w (B, h, w).

    The public seed builder computes sigmoid(d^A) - sigmoid(d^K); we follow the paper's Eq. (3)."""
    # $w_u = d^K_u - d^A_u + bias_u$
    w = torch.sigmoid(d_k.float()) - torch.sigmoid(d_a.float()) + b_dd
    bias = flags.float() * b_class
    bias[:, 0] = b_bg

    def at(mask):                                                                 # bias of each pixel's class
        return bias.gather(1, mask.flatten(1).clamp(max=bias.shape[1] - 1)).view_as(mask) * (mask != IGNORE)

    return w - at(m_k) + at(m_a)


def decide(m_k: torch.Tensor, m_a: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """Eq. (4): m^D = m^A where w >= 0, else m^K. (B, h, w) int."""
    return torch.where(w >= 0, m_a, m_k)


def balanced_ce(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Eq. (8): L_seg = -sum_k (1 / |S_k|) sum_{u in S_k} log h_u^k, per image, then the batch mean: each
    class present in the mask weighs the same whatever its area (255 ignored). The public code uses a
    plain pixel-mean CE; we use the paper's. logits (B, C, h, w), target int (B, h, w)."""
    log_p = F.log_softmax(logits.float(), 1)
    c = logits.shape[1]
    valid = target != IGNORE
    nll = -log_p.gather(1, target.clamp(max=c - 1)[:, None])[:, 0] * valid           # (B, h, w)
    one_hot = F.one_hot(target.clamp(max=c), c + 1)[..., :c].float()                   # (B, h, w, C), 255 -> 0
    per_class = (nll[..., None] * one_hot).sum((1, 2)) / one_hot.sum((1, 2)).clamp_min(1)   # (B, C)
    return per_class.sum(1).mean()


class SSDD(ReusableLabels, nn.Module):
    """The segmentation network of both stages, with its SSDD modules.

    ``stage``: "static" (Sec. 4.1, Eq. 9: the batch's "mask" holds [m^K0, m^A0] (B, 2, H, W); loss =
    L_base (balanced CE of the main head on m^K0) + L_diff0 of DD-Net 0), "dynamic" (Sec. 4.2, Eq. 15:
    "mask" is the fixed seed m^D0 (B, H, W)) or "fixed" (the main head learns its "mask" alone: the
    baselines trained on PSA's map or on the static seed, with the dynamic stage's schedule).
    Every stage builds the same modules: backbone + classifier (``net``, started from the tag
    classifier), heads ``main`` and ``sub`` (:class:`SegBranch`), DD-Nets ``dd[0]`` (theta_d0 / theta_d1)
    and ``dd[1]`` (theta_d2; its head takes the sub head's features, as the public code). The heads' logits and features are upsampled x2 (stride 4: the paper's
    112 x 112 maps of 448 px inputs, "upsampling rate 2"); e^l is the first backbone stage (stride 4,
    "before the second pooling layer"), average-pooled to the map size if it differs; all losses and
    decisions run at that map size, with the masks resized by nearest neighbour.
    b_dd, b_class, b_bg: Eq. (17); alpha: Eq. (14); bad_rule: Eq. (16), "all" (paper) or "any" (code).
    loop_gaussian, loop_bilateral, loop_crf_iters: the dynamic stage's CRF of the main head (present
    classes only, on the image resized to the map; PSA's kernels, sxy to give in map pixels).
    Backbone BatchNorm is frozen (eval, not trained), as the ResNet-38 of PSA and SSDD; the new layers'
    BatchNorm trains. With ``timing_network_only`` set the CRF and the decisions are reused.
    """

    def __init__(self, backbone: str, num_classes: int, *, stage: str = "dynamic", output_stride: int = 8,
                 pretrained: str | None = None, mid: int = 512, dd_width: int = 256, head_dilation: int = HEAD_DILATION,
                 b_dd: float = B_DD, b_class: float = B_CLASS, b_bg: float = B_BG, alpha: float = ALPHA,
                 bad_rule: str = "all", loop_crf_iters: int = LOOP_CRF_ITERS,
                 loop_gaussian: tuple[float, float] = (3, 3), loop_bilateral: tuple[float, float, float] = (80, 13, 10),
                 crf_backend: str = "auto"):
        super().__init__()
        if stage not in STAGES:
            raise ValueError(f"stage={stage!r} is not known; choose one of {STAGES}")
        if bad_rule not in BAD_RULES:
            raise ValueError(f"bad_rule={bad_rule!r} is not known; choose one of {BAD_RULES}")
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"alpha={alpha!r} must lie in [0, 1] (Eq. 14's mixing ratio)")
        self.net = CAMNet(build_backbone(backbone, pretrained=pretrained, output_stride=output_stride), num_classes - 1)
        chans = self.net.backbone.out_channels
        self.main = SegBranch(chans[-1], num_classes, mid, head_dilation)
        self.sub = SegBranch(chans[-1], num_classes, mid, head_dilation)
        self.dd = nn.ModuleList(DDNet(mid, chans[0], num_classes, dd_width) for _ in range(2))
        self.stage, self.b_dd, self.b_class, self.b_bg, self.alpha, self.bad_rule = stage, b_dd, b_class, b_bg, alpha, bad_rule
        self.loop_crf_iters, self.loop_gaussian, self.loop_bilateral = loop_crf_iters, loop_gaussian, loop_bilateral
        self.crf_backend = crf_backend
        for m in self.net.backbone.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.requires_grad_(False)

    def train(self, mode: bool = True):
        super().train(mode)
        for m in self.net.backbone.modules():                       # frozen backbone BatchNorm
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.eval()
        return self

    # -- network passes ---------------------------------------------------------------------------
    def encode(self, images: torch.Tensor, heads=("main",)) -> dict:
        """uint8 (B, 3, H, W) -> {"low": e^l, head: (logits, features)} at stride 4 (the map size)."""
        stages = self.net.backbone(normalize(images))
        size = (images.shape[2] // 4, images.shape[3] // 4)
        low = stages[0] if stages[0].shape[2:] == size else F.adaptive_avg_pool2d(stages[0], size)
        out = {"low": low}
        for name in heads:
            logits, features = getattr(self, name)(stages[-1])
            out[name] = (upsample(logits, size), upsample(features, size))
        return out

    @torch.no_grad()
    def predict(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 (B, 3, H, W) -> the main head's class probabilities (B, C, H, W) at the image size."""
        logits, _ = self.encode(images)["main"]
        return upsample(logits.float(), images.shape[2:]).softmax(1)

    # -- label work -------------------------------------------------------------------------------
    @torch.no_grad()
    def advice(self, images: torch.Tensor, logits: torch.Tensor, tags: torch.Tensor, outside: torch.Tensor) -> tuple:
        """(m^K1, m^A1) of Sec. 4.2: the main head's mask and its dense CRF (``loop_crf_iters`` iterations),
        both over background + tagged classes, on the image resized to the map; 255 ``outside`` the image."""
        size = logits.shape[2:]
        small = F.interpolate(images.float(), size=size, mode="bilinear", align_corners=False, antialias=True)
        small = channels_last(small.round().clamp(0, 255).to(torch.uint8))
        probs = logits.detach().float().softmax(1) * present_classes(tags)
        probs = probs / probs.sum(1, keepdim=True).clamp_min(1e-12)
        q = dense_crf_batch(small.cpu() if self.crf_backend == "pydensecrf" else small, probs,
                            n_iter=self.loop_crf_iters, gaussian=self.loop_gaussian, bilateral=self.loop_bilateral,
                            backend=self.crf_backend).to(logits.device)
        m_k, m_a = present_argmax(probs, tags), present_argmax(q, tags)
        return m_k.masked_fill(outside, IGNORE), m_a.masked_fill(outside, IGNORE)

    @torch.no_grad()
    def module_decision(self, d_k: torch.Tensor, d_a: torch.Tensor, m_k: torch.Tensor, m_a: torch.Tensor,
                        tags: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One SSDD module's output (Eq. 3-5 with Eq. 16-17) and its bad-pair flags per image:
        (m^D (B, h, w), bad (B,))."""
        flags = class_flags(m_k, m_a, tags)
        w = confidence(d_k, d_a, m_k, m_a, flags, b_dd=self.b_dd, b_class=self.b_class, b_bg=self.b_bg)
        return decide(m_k, m_a, w), bad_pairs(flags, tags, self.bad_rule)

    @torch.no_grad()
    def seed(self, images: torch.Tensor, m_k: torch.Tensor, m_a: torch.Tensor, tags: torch.Tensor, *,
             b_dd: float = SEED_B_DD, b_class: float = B_CLASS, b_bg: float = SEED_B_BG) -> torch.Tensor:
        """Eq. (10): the seed m^D0 = SSDD(e(x), m^K0, m^A0; theta_d0) of the trained static stage, at the
        image's resolution (the DD-Net's logits upsampled bilinearly to it). images uint8 (B, 3, H, W);
        m_k, m_a int (B, H, W); tags (B, K). Biases of the public seed builder: b_dd 0.1, b_bg 0.1."""
        size = (images.shape[2] // 4, images.shape[3] // 4)
        enc = self.encode(images)
        head = self.dd[0].embed(enc["main"][1], enc["low"])
        d_k, d_a = (upsample(d[:, None].float(), images.shape[2:])[:, 0]
                    for d in self.dd[0].pair(head, nearest(m_k, size), nearest(m_a, size)))
        flags = class_flags(m_k, m_a, tags)
        return decide(m_k, m_a, confidence(d_k, d_a, m_k, m_a, flags, b_dd=b_dd, b_class=b_class, b_bg=b_bg))

    # -- the training step ------------------------------------------------------------------------
    def forward(self, batch: dict, step: int = 0) -> dict:
        images, tags, mask = batch["image"], batch["labels"], batch["mask"]
        size = (images.shape[2] // 4, images.shape[3] // 4)
        if self.stage == "fixed":
            logits, _ = self.encode(images)["main"]
            loss = balanced_ce(logits, nearest(mask, size))
            return {"loss": loss, "seg": loss.detach()}
        if self.stage == "static":
            return self._static(images, tags, mask, size)
        return self._dynamic(images, tags, mask, size)

    def _static(self, images, tags, mask, size) -> dict:
        m_k, m_a = nearest(mask[:, 0], size), nearest(mask[:, 1], size)
        enc = self.encode(images)
        logits, features = enc["main"]
        l_base = balanced_ce(logits, m_k)                                            # Eq. (7)-(8)
        head = self.dd[0].embed(features, enc["low"])
        target, valid = difference_target(m_k, m_a), (m_k != IGNORE) & (m_a != IGNORE)
        keep = ~bad_pairs(class_flags(m_k, m_a, tags), tags, self.bad_rule)
        # Eq. (6): the DD-Net on the knowledge and on the advice, against the same difference map; the paper sums
        # the two terms (the public code, train_sssdd.py, averages them)
        d_k, d_a = self.dd[0].pair(head, m_k, m_a)
        l_diff = difference_loss(d_k, target, valid, keep) + difference_loss(d_a, target, valid, keep)
        loss = l_base + l_diff                                                       # Eq. (9)
        return {"loss": loss, "base": l_base.detach(), "diff0": l_diff.detach(), "kept": keep.float().mean()}

    def _dynamic(self, images, tags, mask, size) -> dict:
        m_d0 = nearest(mask, size)                                                   # the fixed seed
        outside = m_d0 == IGNORE
        enc = self.encode(images, heads=("main", "sub"))
        (logits, features), (logits_sub, features_sub) = enc["main"], enc["sub"]
        head1 = self.dd[0].embed(features, enc["low"])                              # module 1 sees the main head
        head2 = self.dd[1].embed(features_sub, enc["low"])                          # module 2 the sub head (code)
        # first module: knowledge m^K1 = the main head's mask, advice m^A1 = its CRF
        m_k1, m_a1 = self.step_labels(self.advice, images, logits, tags, outside, key="advice")
        target1 = difference_target(m_k1, m_a1)
        d_k1, d_a1 = self.dd[0].pair(head1, m_k1, m_a1)
        m_d1, bad1 = self.step_labels(self.module_decision, d_k1.detach(), d_a1.detach(), m_k1, m_a1, tags, key="d1")
        # second module: knowledge the seed m^D0, advice m^D1; its DD-Net learns against the sub head (Eq. 13)
        m_sub = present_argmax(logits_sub.detach(), tags).masked_fill(outside, IGNORE)
        d_d0, d_d1 = self.dd[1].pair(head2, m_d0, m_d1)
        m_d2, bad2 = self.step_labels(self.module_decision, d_d0.detach(), d_d1.detach(), m_d0, m_d1, tags, key="d2")
        valid1 = (m_k1 != IGNORE) & (m_a1 != IGNORE)
        l_diff1 = difference_loss(d_k1, target1, valid1, ~bad1) + difference_loss(d_a1, target1, valid1, ~bad1)   # Eq. (12)
        valid2 = (m_d0 != IGNORE) & (m_sub != IGNORE)
        l_diff2 = (difference_loss(d_d0, difference_target(m_d0, m_sub), valid2, ~bad2) +                      # Eq. (13)
                   difference_loss(d_d1, difference_target(m_sub, m_d1), valid2 & (m_d1 != IGNORE), ~bad2))
        l_main = balanced_ce(logits, m_d2)                                           # Eq. (11)
        # Eq. (14) as printed: the sub head between m^D0 and m^D1 (the public code, train_dssdd.py, trains it on
        # 0.5 m^D0 + 0.5 m^D2 with alpha fixed, so its alpha = 0 would learn the main head's target m^D2)
        l_sub = self.alpha * balanced_ce(logits_sub, m_d0) + (1 - self.alpha) * balanced_ce(logits_sub, m_d1)
        # Eq. (15): the four DD-Net terms summed as printed (the public code averages them: / 4)
        loss = l_main + l_sub + l_diff1 + l_diff2
        changed = ((m_d2 != m_d0) & ~outside).float().sum() / (~outside).float().sum().clamp_min(1)
        return {"loss": loss, "main": l_main.detach(), "sub": l_sub.detach(), "diff1": l_diff1.detach(),
                "diff2": l_diff2.detach(), "changed": changed, "bad1": bad1.float().mean(), "bad2": bad2.float().mean()}

    def param_groups(self) -> list[dict]:
        """Backbone x1, everything new (classifier, heads, DD-Nets) x10 (Sec. 5.1 and the public code);
        frozen BatchNorm parameters are left out by the loop."""
        ids = {id(p) for p in self.net.backbone.parameters()}
        return [{"params": [p for p in self.parameters() if id(p) in ids], "lr_mult": 1.0},
                {"params": [p for p in self.parameters() if id(p) not in ids], "lr_mult": 10.0}]
