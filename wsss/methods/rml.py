"""RML: "Representation Mutual Learning for End-to-End Weakly-Supervised Semantic Segmentation", built on AFA
(:mod:`.afa`). Groundwork: the three strategies' losses, the mutual-information estimator, the decoder-free
prediction and the training step; the driver and notebooks/rml.ipynb are still to come.

RML drops AFA's segmentation decoder. The image I and its downscaled view A(I) (0.3x, :func:`wsss.ops.rescaled_view`)
go through the same network (N and N', shared weights), and three kinds of representation learn from each other:

* **CIML** (Eq. 2-4), instance level: the CAMs of the two views should be equivariant (L1, Eq. 2), and in each
  view the class prototypes should be far apart (mean pairwise cosine, Eq. 3-4);
* **MFML** (Eq. 5-8), feature level: the four stages fused into a context representation R_c (Eq. 5) are
  aligned between the views (L1, Eq. 6) while their mutual information is kept low (Eq. 7-8);
* **APML** (Eq. 9-14), pixel level: AFA's affinity loss on the attention maps, plus a mutual-information term
  tying the attention representation to the pseudo label.

The prediction (Sec. 3.6) is the multi-scale CAM walked one step along the learnt affinity.

Our readings, stated where they are used: the paper's prototype ("average-pooled CAM") is one number per class,
whose cosine is a constant; we take a vector prototype, the CAM-weighted mean of the last-stage features. Eq. (12)
as printed is identically zero; we implement Eq. (10) + (11) without their conditional terms. Mutual information
is estimated by :func:`gaussian_mi` (justified there). The public code leaves the fusion module out of its
optimiser; ours trains it.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..data.folder import IGNORE
from ..losses import equivariance_l1, multilabel_soft_margin
from ..ops import present_classes, rescaled_view
from .afa import AFA, _with_background, afa_cam, walk

ALPHA, BETA1, BETA2 = 0.1, 100.0, 100.0      # Eq. (4), (8), (14)
RML_WEIGHT = 0.1                              # Eq. (16): L_cls + 0.1 (CIML + MFML + APML)
PREDICT_SCALES = (0.5, 1.0, 1.5)
PREDICT_BKG = 0.35
MI_SAMPLES = 4096                             # pixels drawn for one mutual-information estimate


def gaussian_mi(x: torch.Tensor, y: torch.Tensor, eps: float = 1e-3) -> torch.Tensor:
    """Mutual information I(X; Y) in nats of samples x (N, Dx) and y (N, Dy), under a joint Gaussian:
    0.5 (log det S_x + log det S_y - log det S_xy), S the sample covariances (each variable standardised, eps on
    the diagonal).

    Why this estimator: it is closed-form and differentiable, exact for jointly Gaussian variables (tested on them),
    has no critic network of its own to train beside the model (MINE, InfoNCE, the DIM estimator the paper cites
    need one, and their bounds are loose or biased at our batch sizes), and is invariant to a linear map of either
    side. It measures the linear (second-order) dependence only: for non-Gaussian variables it is the information
    a Gaussian with the same covariance would carry."""
    if x.ndim != 2 or y.ndim != 2 or x.shape[0] != y.shape[0]:
        raise ValueError(f"x and y must be (N, Dx) and (N, Dy) with the same N, got {tuple(x.shape)} and {tuple(y.shape)}")
    if x.shape[0] < 2:
        raise ValueError("gaussian_mi needs at least two samples")
    # in float32 even under bfloat16 autocast (train() on CUDA): a bfloat16 covariance of standardised samples is
    # near-singular and its log-determinant nan
    with torch.autocast(device_type=x.device.type, enabled=False):
        z = torch.cat([x, y], 1).float()
        z = (z - z.mean(0)) / (z.std(0) + 1e-6)
        cov = z.T @ z / (z.shape[0] - 1) + eps * torch.eye(z.shape[1], device=z.device)
        dx = x.shape[1]
        return 0.5 * (torch.logdet(cov[:dx, :dx]) + torch.logdet(cov[dx:, dx:]) - torch.logdet(cov))


def _pixels(maps: torch.Tensor) -> torch.Tensor:
    """(B, C, h, w) -> (B h w, C): every position a sample."""
    return maps.permute(0, 2, 3, 1).reshape(-1, maps.shape[1])


def _draw(n: int, k: int, device) -> torch.Tensor:
    """Indices of at most ``k`` of ``n`` samples, drawn at random (all of them when n <= k)."""
    return torch.arange(n, device=device) if n <= k else torch.randperm(n, device=device)[:k]


def prototypes(cam: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
    """Our vector reading of the paper's semantic prototypes: p_c = sum_i relu(M_c,i) f_i / sum_i relu(M_c,i),
    the CAM-weighted mean of the features. cam (B, K, h, w); features (B, D, h, w). Returns (B, K, D)."""
    weights = F.relu(cam).flatten(2)                                          # (B, K, hw)
    weights = weights / (weights.sum(-1, keepdim=True) + 1e-5)
    return weights @ features.flatten(2).transpose(1, 2)                      # (B, K, D)


def prototype_similarity(protos: torch.Tensor) -> torch.Tensor:
    """Eq. (3)-(4): (1 / C^2) sum_i sum_j cos(p_i, p_j) over the classes (i = j included, as printed), averaged
    over the batch. protos (B, C, D)."""
    unit = F.normalize(protos, dim=-1, eps=1e-8)
    return (unit @ unit.transpose(1, 2)).mean((1, 2)).mean()


def ciml_loss(cam: torch.Tensor, cam_view: torch.Tensor, features: torch.Tensor, features_view: torch.Tensor,
              alpha: float = ALPHA) -> torch.Tensor:
    """Eq. (4) of RML: L_CIML = alpha (sim(P) + sim(P')) + D_equ, with D_equ = ||A(M) - M'||_1 (Eq. 2,
    :func:`wsss.losses.equivariance_l1`) on the CAMs of the training pass, with gradient. cam (B, K, h, w) and
    features (B, D, h, w) of the image; cam_view, features_view of the downscaled view."""
    # $\alpha (\frac{1}{C^2}\sum D(p_i, p_j) + \frac{1}{C^2}\sum D(p'_i, p'_j)) + \|A(M) - M'\|_1$
    similarity = prototype_similarity(prototypes(cam, features)) + prototype_similarity(prototypes(cam_view, features_view))
    return alpha * similarity + equivariance_l1(cam, cam_view)


class ContextFusion(nn.Module):
    """Eq. (5) of RML: R_c = Conv(Concat(f_1, f_2, f_3, f_4)), the four stage outputs resized (bilinear) to the
    last stage's size, concatenated, a 1x1 conv + BN + ReLU to ``channels``. (B, C_i, h_i, w_i) x 4 -> (B, channels, h, w)."""

    def __init__(self, in_channels: Sequence[int], channels: int = 256):
        super().__init__()
        self.proj = nn.Sequential(nn.Conv2d(sum(in_channels), channels, 1, bias=False), nn.BatchNorm2d(channels),
                                  nn.ReLU(inplace=True))

    def forward(self, features: Sequence[torch.Tensor]) -> torch.Tensor:
        size = features[-1].shape[2:]
        return self.proj(torch.cat([f if f.shape[2:] == size else
                                    F.interpolate(f, size=size, mode="bilinear", align_corners=False) for f in features], 1))


def mfml_loss(context: torch.Tensor, context_view: torch.Tensor, beta1: float = BETA1, samples: int = MI_SAMPLES) -> torch.Tensor:
    """Eq. (8) of RML: L_MFML = ||A(R_c) - R'_c||_1 + beta1 I(A(R_c); R'_c), the image's context resized to the
    view's map (as the equivariance), the mutual information over the positions (:func:`gaussian_mi`,
    at most ``samples`` positions). context (B, D, h, w); context_view (B, D, h', w')."""
    resized = F.interpolate(context, size=context_view.shape[2:], mode="bilinear", align_corners=False)
    a, b = _pixels(resized), _pixels(context_view)
    pick = _draw(a.shape[0], samples, a.device)
    # $\|R_c - R'_c\|_1 + \beta_1 I(R_c; R'_c)$
    return (resized - context_view).abs().mean() + beta1 * gaussian_mi(a[pick], b[pick])


def affinity_representation(attn: torch.Tensor, map_size) -> torch.Tensor:
    """R_a as a map: the attention maps of the last blocks (B, maps, N, N), averaged over the maps, read as one
    N-dimensional vector per query position: (B, N, h, w) with (h, w) = ``map_size``."""
    b, _, n, _ = attn.shape
    return attn.mean(1).transpose(1, 2).reshape(b, n, *map_size)


def pixel_mi_loss(rep: torch.Tensor, rep_view: torch.Tensor, label: torch.Tensor, num_classes: int,
                  samples: int = MI_SAMPLES) -> torch.Tensor:
    """APML's L_mi, our reading of Eq. (10)-(12): the printed Eq. (12) cancels to zero, so we minimise
    -[I(y; R_a) - I(R_a; R'_a)] - [I(y; R'_a) - I(R'_a; R_a)] (Eq. 10 and 11 without their conditional terms).
    rep (B, N, h, w), rep_view (B, N', h', w'): :func:`affinity_representation` of the two views, resized
    (bilinear) to the label's size; label (B, H, W), y one-hot over ``num_classes``, 255 left out; the
    estimates over at most ``samples`` labelled pixels (:func:`gaussian_mi`)."""
    size = label.shape[1:]
    r = _pixels(F.interpolate(rep, size=size, mode="bilinear", align_corners=False))
    r_view = _pixels(F.interpolate(rep_view, size=size, mode="bilinear", align_corners=False))
    flat = label.reshape(-1)
    keep = (flat != IGNORE).nonzero().flatten()
    if keep.numel() < 2:
        return rep.sum() * 0.0
    keep = keep[_draw(keep.numel(), samples, keep.device)]
    y = F.one_hot(flat[keep], num_classes).float()
    r, r_view = r[keep], r_view[keep]
    i_y_r, i_y_rv, i_r_rv = gaussian_mi(y, r), gaussian_mi(y, r_view), gaussian_mi(r, r_view)
    # $-(I(y;R_a) - I(R_a;R'_a)) - (I(y;R'_a) - I(R'_a;R_a))$
    return -(i_y_r - i_r_rv) - (i_y_rv - i_r_rv)


@torch.no_grad()
def rml_scores(net, images: torch.Tensor, *, scales: Sequence[float] = PREDICT_SCALES, radius: int = 8,
               bkg: float = PREDICT_BKG, tags: torch.Tensor | None = None) -> torch.Tensor:
    """RML's decoder-free class scores (Sec. 3.6): the multi-scale CAM (:func:`wsss.methods.afa.afa_cam`, scales
    0.5, 1, 1.5) of the present classes with a constant background ``bkg``, walked one step along the learnt
    affinity (squared element-wise, inside the radius window, columns normalised: :func:`wsss.methods.afa.walk`),
    absent classes 0. The present classes are the classifier's prediction (sigmoid > 0.5) unless ``tags``
    (B, K) are given (the public code uses the ground-truth tags at validation). images uint8 (B, 3, H, W).
    Returns (B, K+1, H, W), non-negative."""
    out = net(images, with_attn=True)
    present = (out["logits"].sigmoid() > 0.5).float() if tags is None else tags.float()
    cams = afa_cam(net, images, present, scales)
    scores = _with_background(cams, bkg) * present_classes(present).float()
    return walk(scores, out["affinity"], out["cam"].shape[2:], images.shape[2:], radius=radius, beta=2.0, logt=0)


def rml_predict(net, images: torch.Tensor, **kw) -> torch.Tensor:
    """The argmax of :func:`rml_scores` over background + the present classes: int64 (B, H, W)."""
    scores = rml_scores(net, images, **kw)
    return scores.masked_fill(scores <= 0, float("-inf")).argmax(1)


class RML(AFA):
    """RML's training step, Eq. (16): L_cls + 0.1 (L_CIML + L_MFML + L_APML), after AFA's classification-only
    warm-up of ``cls_only`` iterations; no decoder. Labels: AFA's PAR-refined two-background CAM label.

    ``aff``: APML's affinity-aware contrastive loss (AFA's affinity loss on the attention maps taken directly,
    TSCD's way; in our reading the decoder-free baseline keeps it, as its prediction walks along the learnt
    affinity, and Table 2 (e) removes it); ``ciml`` (alpha), ``mfml`` (beta1; ``fusion=False``: R_c is the last
    stage's features, Table 2 (b)), ``mi`` (beta2, APML's L_mi); ``align``: MFML's L1 term (Table 2 (c) removes
    the feature-level loss). All modules are built whatever the switches, so variants share a warm-up.
    """

    def __init__(self, backbone: str, num_classes: int, *, ciml: bool = True, mfml: bool = True, mi: bool = True,
                 aff: bool = True, fusion: bool = True, alpha: float = ALPHA, beta1: float = BETA1, beta2: float = BETA2,
                 weight: float = RML_WEIGHT, view_scale: float = 0.3, context_channels: int = 256, **afa):
        for name in ("symmetric", "walk_from", "seg_weight", "aff_weight"):
            if name in afa:
                raise TypeError(f"RML sets {name} itself; it is not a parameter of RML")
        super().__init__(backbone, num_classes, symmetric=False, walk_from=None, **afa)
        self.net.decoder = None                                                 # decoder-free (Fig. 1e)
        chans = self.net.encoder.out_channels
        self.fusion_module = ContextFusion(chans, context_channels)
        self.ciml, self.mfml, self.mi, self.aff, self.fusion = ciml, mfml, mi, aff, fusion
        self.alpha, self.beta1, self.beta2, self.weight, self.view_scale = alpha, beta1, beta2, weight, view_scale
        self.num_classes = num_classes

    def context(self, out: dict) -> torch.Tensor:
        return self.fusion_module(out["features"]) if self.fusion else out["features"][-1]

    def forward(self, batch: dict, step: int = 0) -> dict:
        images, tags, valid = batch["image"], batch["labels"], batch.get("valid")
        warm = step < self.cls_only
        out = self.net(images, with_attn=not warm)
        l_cls = multilabel_soft_margin(out["logits"], tags)
        if warm:
            return {"loss": l_cls, "cls": l_cls.detach()}
        label = self.step_labels(self.labels, images, tags, valid)
        view = self.net(rescaled_view(images, self.view_scale), with_attn=self.mi)
        terms = {}
        if self.aff:
            terms["aff"] = self.aux_loss(out, label)
        if self.ciml:
            terms["ciml"] = ciml_loss(out["cam"], view["cam"], out["features"][-1], view["features"][-1], self.alpha)
        if self.mfml:
            terms["mfml"] = mfml_loss(self.context(out), self.context(view), self.beta1)
        if self.mi and not self.timing_network_only:
            n = out["cam"].shape[2:]
            rep = affinity_representation(out["attn"], n)
            rep_view = affinity_representation(view["attn"], view["cam"].shape[2:])
            terms["mi"] = self.beta2 * pixel_mi_loss(rep, rep_view, label, self.num_classes)
        loss = l_cls + self.weight * sum(terms.values()) if terms else l_cls
        return {"loss": loss, "cls": l_cls.detach(), **{k: v.detach() for k, v in terms.items()},
                "ignored": (label == IGNORE).float().mean()}

    @torch.no_grad()
    def predict_labels(self, images: torch.Tensor, tags: torch.Tensor | None = None) -> torch.Tensor:
        """:func:`rml_predict` with this model's CAM scales and radius (the test-time output)."""
        return rml_predict(self.net, images, radius=self.radius, tags=tags)
