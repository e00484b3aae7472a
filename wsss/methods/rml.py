"""RML: "Representation Mutual Learning for End-to-End Weakly-Supervised Semantic Segmentation", built on AFA
(:mod:`.afa`): the three strategies' losses, the mutual-information estimators, the decoder-free prediction and
the training step (notebooks/rml.ipynb runs them).

RML drops AFA's segmentation decoder. The image I and its downscaled view A(I) (0.3x, :func:`wsss.ops.rescaled_view`)
go through the same network (N and N', shared weights), and three kinds of representation learn from each other:

* **CIML** (Eq. 2-4), instance level: the CAMs of the two views should be equivariant (L1, Eq. 2), and in each
  view the class prototypes should be far apart (mean pairwise cosine, Eq. 3-4);
* **MFML** (Eq. 5-8), feature level: the four stages fused into a context representation R_c (Eq. 5) are
  aligned between the views (L1, Eq. 6) while their mutual information is kept low (Eq. 7-8);
* **APML** (Eq. 9-14), pixel level: AFA's affinity loss on the attention maps, plus a mutual-information term
  tying the attention representation to the pseudo label.

The prediction: the paper says only that RML predicts the masks directly, without a decoder (Sec. 1); as AFA's
validation code (which RML builds on), it is the multi-scale CAM walked one step along the learnt affinity.

Our readings, stated where they are used: the paper's prototype ("average-pooled CAM") is one number per class,
whose cosine is a constant; we take a vector prototype, the CAM-weighted mean of the last-stage features. Eq. (12)
as printed is identically zero; we implement Eq. (10) + (11) without their conditional terms. Mutual information
is estimated one channel at a time (:func:`matched_gaussian_mi`, :func:`class_gaussian_mi`; justified there). The public code leaves the fusion module out of its
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
from .afa import AFA, _with_background, afa_cam, propagate

ALPHA, BETA1, BETA2 = 0.1, 100.0, 100.0      # Eq. (4), (8), (14)
RML_WEIGHT = 0.1                              # Eq. (16): L_cls + 0.1 (CIML + MFML + APML)
PREDICT_SCALES = (0.5, 1.0, 1.5)
PREDICT_BKG = 0.35
MI_SAMPLES = 4096                             # pixels drawn for one mutual-information estimate


RHO2_MAX = 1 - 1e-6                           # |rho| below 1: at most 6.9 nats per channel


def _standardised(z: torch.Tensor) -> torch.Tensor:
    """Columns of (N, D) samples to zero mean and unit variance (a constant column stays 0)."""
    z = z - z.mean(0)
    return z / (z.pow(2).mean(0).sqrt() + 1e-6)


def matched_gaussian_mi(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mutual information in nats between matched channels, averaged over the channels: samples x and y
    (N, D), channel k of x paired with channel k of y, each pair read as a Gaussian pair:
    (1/D) sum_k -1/2 log(1 - rho_k^2), rho_k the sample correlation of x[:, k] and y[:, k].

    Why this estimator (and not the joint Gaussian MI of all D channels at once, which the first version used):
    the joint estimate needs a D x D covariance of full rank, i.e. many more samples than 2D; at quick MFML
    has 72 samples (3 x 3 positions x 8 images) of 256 + 256 dimensions, so the covariance is singular and the
    value is set by the diagonal jitter - on independent noise it returned 141 nats, where the truth is 0,
    and the loss could only be lowered by collapsing the features. One correlation per channel needs only
    N > 2: on independent noise its expectation is about -1/2 log(1 - 1/N) ~ 1/(2N) (0.007 nats at N = 72).
    It is exact for jointly Gaussian pairs (tested), differentiable, needs no critic network (MINE, InfoNCE
    and the DIM estimator the paper cites do), and is invariant to the scale of either side. The public code
    also compares matched channels (its KL between the two views' channel distributions). It ignores the
    dependence between different channels: the information of the matched pairs only. Computed in float32,
    also under bfloat16 autocast (train() on CUDA). Returns a 0-d tensor."""
    if x.ndim != 2 or y.ndim != 2 or x.shape != y.shape:
        raise ValueError(f"x and y must be (N, D) of the same shape (matched channels), got {tuple(x.shape)} and {tuple(y.shape)}")
    if x.shape[0] < 3:
        raise ValueError(f"matched_gaussian_mi needs at least three samples, got {x.shape[0]}")
    with torch.autocast(device_type=x.device.type, enabled=False):
        rho = (_standardised(x.float()) * _standardised(y.float())).mean(0)
        return (-0.5 * torch.log1p(-rho.pow(2).clamp(max=RHO2_MAX))).mean()


def class_gaussian_mi(labels: torch.Tensor, x: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Mutual information in nats between a class label y and each channel of x, averaged over the channels:
    labels int64 (N,) in [0, num_classes), x (N, D): (1/D) sum_k -1/2 log(1 - eta_k^2), eta_k^2 the share of
    channel k's variance explained by the class means (the correlation ratio). This is the joint Gaussian MI
    of x[:, k] and the one-hot y (the best linear fit of x_k on one-hot y is its class mean, so R^2 = eta^2):
    the same Gaussian reading as :func:`matched_gaussian_mi`, one channel at a time, well conditioned with
    N > num_classes samples (bias about (C - 1) / (2N) on independent data). float32. Returns a 0-d tensor."""
    if labels.ndim != 1 or x.ndim != 2 or labels.shape[0] != x.shape[0]:
        raise ValueError(f"labels (N,) and x (N, D) must share N, got {tuple(labels.shape)} and {tuple(x.shape)}")
    with torch.autocast(device_type=x.device.type, enabled=False):
        z = _standardised(x.float())                                               # unit variance per channel
        onehot = F.one_hot(labels, num_classes).float()                            # (N, C)
        counts = onehot.sum(0)                                                     # (C,)
        means = (onehot.T @ z) / counts.clamp_min(1)[:, None]                      # class means (C, D)
        eta2 = (counts[:, None] * means.pow(2)).sum(0) / z.shape[0]                # between-class share of variance
        return (-0.5 * torch.log1p(-eta2.clamp(max=RHO2_MAX))).mean()


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
    view's map (as the equivariance), the mutual information over the positions between matched channels
    (:func:`matched_gaussian_mi`, at most ``samples`` positions). context (B, D, h, w); context_view (B, D, h', w')."""
    resized = F.interpolate(context, size=context_view.shape[2:], mode="bilinear", align_corners=False)
    a, b = _pixels(resized), _pixels(context_view)
    pick = _draw(a.shape[0], samples, a.device)
    # $\|R_c - R'_c\|_1 + \beta_1 I(R_c; R'_c)$
    return (resized - context_view).abs().mean() + beta1 * matched_gaussian_mi(a[pick], b[pick])


def affinity_representation(attn: torch.Tensor, map_size) -> torch.Tensor:
    """R_a as a map: the attention maps of the last blocks (B, maps, N, N), averaged over the maps, read as one
    N-dimensional vector per query position: (B, N, h, w) with (h, w) = ``map_size``."""
    b, _, n, _ = attn.shape
    return attn.mean(1).transpose(1, 2).reshape(b, n, *map_size)


def key_resized(rep: torch.Tensor, key_size) -> torch.Tensor:
    """R_a's channels are key positions of the attention's map: (B, N, h, w) with N = h_k w_k, the key grid
    taken as the query grid (h, w) (self-attention); the key axis resized (bilinear) to ``key_size`` (h', w'),
    so that channel k means the same place as channel k of the view's R'_a: (B, h' w', h, w). This is the
    transform A applied to the key side, the matching :func:`pixel_mi_loss` needs."""
    b, n, h, w = rep.shape
    keys = rep.permute(0, 2, 3, 1).reshape(b * h * w, 1, h, w)
    keys = F.interpolate(keys, size=tuple(key_size), mode="bilinear", align_corners=False)
    return keys.reshape(b, h, w, -1).permute(0, 3, 1, 2)


def pixel_mi_loss(rep: torch.Tensor, rep_view: torch.Tensor, label: torch.Tensor, num_classes: int,
                  samples: int = MI_SAMPLES) -> torch.Tensor:
    """APML's L_mi, our reading of Eq. (10)-(12): the printed Eq. (12) cancels to zero, so we minimise
    -[I(y; R_a) - I(R_a; R'_a)] - [I(y; R'_a) - I(R'_a; R_a)] (Eq. 10 and 11 without their conditional terms).
    rep (B, N, h, w), rep_view (B, N', h', w'): :func:`affinity_representation` of the two views; the image's
    key axis brought to the view's key grid (:func:`key_resized`), both resized (bilinear) to the label's size;
    label (B, H, W), 255 left out; I(y; .) by :func:`class_gaussian_mi`, I(R_a; R'_a) by
    :func:`matched_gaussian_mi` (matched key positions), over at most ``samples`` labelled pixels."""
    size = label.shape[1:]
    rep = key_resized(rep, rep_view.shape[2:])
    r = _pixels(F.interpolate(rep, size=size, mode="bilinear", align_corners=False))
    r_view = _pixels(F.interpolate(rep_view, size=size, mode="bilinear", align_corners=False))
    flat = label.reshape(-1)
    keep = (flat != IGNORE).nonzero().flatten()
    if keep.numel() < 3:
        return rep.sum() * 0.0
    keep = keep[_draw(keep.numel(), samples, keep.device)]
    y = flat[keep]
    r, r_view = r[keep], r_view[keep]
    i_y_r, i_y_rv = class_gaussian_mi(y, r, num_classes), class_gaussian_mi(y, r_view, num_classes)
    i_r_rv = matched_gaussian_mi(r, r_view)
    # $-(I(y;R_a) - I(R_a;R'_a)) - (I(y;R'_a) - I(R'_a;R_a))$
    return -(i_y_r - i_r_rv) - (i_y_rv - i_r_rv)


@torch.no_grad()
def rml_scores(net, images: torch.Tensor, *, scales: Sequence[float] = PREDICT_SCALES, radius: int = 8,
               bkg: float = PREDICT_BKG, tags: torch.Tensor | None = None) -> torch.Tensor:
    """RML's decoder-free class scores (the paper: masks predicted directly, no decoder, Sec. 1; how, it does not
    say, so we follow AFA's validation code, on which RML builds: the CAM walked along the learnt affinity): the multi-scale
    CAM (:func:`wsss.methods.afa.afa_cam`, scales 0.5, 1, 1.5) with a constant background ``bkg`` (0.35), walked
    by AFA's propagation (:func:`wsss.methods.afa.propagate`: softmax over background + the present classes,
    the affinity of the image's own 1x pass squared element-wise inside the radius window, columns / (sum +
    0.1), one step), as AFA's validation does (``propagte_aff_cam_with_bkg(..., bkg_score=0.35)`` on the
    forward pass's ``attn_pred``). The present classes are the classifier's prediction (sigmoid > 0.5) unless
    ``tags`` (B, K) are given (the public code uses the ground-truth tags at validation). images uint8
    (B, 3, H, W). Returns (B, K+1, H, W), non-negative, 0 for absent classes."""
    out = net(images, with_attn=True)
    present = (out["logits"].sigmoid() > 0.5).float() if tags is None else tags.float()
    cams = afa_cam(net, images, present, scales)
    return propagate(_with_background(cams, bkg), out["affinity"], out["cam"].shape[2:], images.shape[2:], present,
                     radius=radius)


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
