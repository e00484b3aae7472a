"""AFA: "Learning Affinity from Attention: End-to-End Weakly-Supervised Semantic Segmentation with
Transformers" (Ru et al., CVPR 2022), the single-stage baseline of TSCD and RML.

One MiT encoder feeds three things. A **classifier** (global max pooling + a bias-free 1x1 conv) learns
the image tags; its CAMs, refined by **PAR** (:mod:`wsss.refine.par`) with a high and a low constant
background, become the pseudo label (background only where both runs agree, 255 in between). A
**SegFormer decoder** learns that label. And the encoder's own **self-attention** of its last stage is
read as a pixel affinity: the attention logits of its last blocks (all heads), made symmetric (A + A^T)
and mixed by a 1x1 conv and a sigmoid, learn pair labels taken from the pseudo label (same class 1,
different 0, within a square window). From iteration 6000 of 20k AFA replaces the CAM by the CAM walked
along the learnt affinity (:func:`walk_labels`).

This module holds only what AFA adds: the network (:class:`AFANet`), its CAM and pseudo labels, and the
affinity loss. PAR lives in :mod:`wsss.refine.par`; pair labels and the walk in :mod:`wsss.refine.affinity`;
the encoder in :mod:`wsss.models.mit`; the decoder in :mod:`wsss.models.heads`. Where the paper is silent
we follow the public AFA code (``wetr/model_attn_aff.py``, ``utils/camutils.py``, ``scripts/dist_train_voc.py``).
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..cam import min_max_normalize
from ..data.folder import IGNORE
from ..data.transforms import normalize
from ..losses import multilabel_soft_margin, split_ce
from ..models import build_backbone
from ..models.heads import SegFormerHead
from ..ops import present_classes, rescaled_view
from ..refine.affinity import downsample_labels, window_mask, window_pair_labels
from ..refine.par import DILATIONS, KERNELS, refine
from ..train import ReusableLabels

CAM_SCALES = (1.0, 0.5, 1.5)
BKG_HIGH, BKG_LOW = 0.55, 0.35            # the constant background scores of the two PAR runs (AFA code)
PAR_ITERS = 10
AFF_RADIUS = 8                            # the pair window on the 1/16 map
WALK_FROM = 6000                          # AFA's switch to the affinity-walked CAM (of 20k iterations)


class AFANet(nn.Module):
    """MiT encoder (output stride 16: strides [4, 2, 2, 1]) + GMP classifier + SegFormer decoder + the
    attention-affinity head.

    forward(uint8 images (B, 3, H, W)) -> {"logits": (B, K) tag logits, "cam": (B, K, h, w) raw CAM at
    the last stage (the classifier's weights on the last features, before ReLU), "seg": (B, C, H/4, W/4),
    "attn": (B, heads x blocks, N, N) the attention logits of the last stage's last two blocks,
    "affinity": (B, N, N) in (0, 1), "features": the encoder's four maps}. ``symmetric``: AFA adds
    A + A^T before the 1x1 conv (TSCD does not). The encoder's LayerNorms are frozen (not trained), as
    the AFA code. A backbone without attention (ResNet: TSCD's Table 4) gives no "attn" / "affinity".
    ``output_stride``: 16 in AFA and TSCD; 8 at our small-image profiles (printed by the notebook).
    ``decoder=False``: no SegFormer decoder and no "seg" output (RML's decoder-free network);
    ``forward(..., with_seg=False)`` skips the decoder for one call (the CAM pass for the labels).
    """

    def __init__(self, backbone: str, num_classes: int, *, pretrained: str | None = None, channels: int = 256,
                 symmetric: bool = True, attn_blocks: int = 2, output_stride: int = 16, decoder: bool = True):
        super().__init__()
        self.encoder = build_backbone(backbone, pretrained=pretrained, output_stride=output_stride)
        chans = self.encoder.out_channels
        self.classifier = nn.Conv2d(chans[-1], num_classes - 1, 1, bias=False)
        self.decoder = SegFormerHead(tuple(chans), num_classes, channels=channels) if decoder else None
        self.has_attention = hasattr(self.encoder, "blocks")
        self.symmetric = symmetric
        if self.has_attention:
            heads = self.encoder.blocks[-1][-1].attn.heads
            self.attn_blocks = min(attn_blocks, len(self.encoder.blocks[-1]))
            self.attn_proj = nn.Conv2d(heads * self.attn_blocks, 1, 1, bias=True)
        for m in self.encoder.modules():
            if isinstance(m, nn.LayerNorm):
                m.requires_grad_(False)

    def forward(self, images: torch.Tensor, *, with_attn: bool = True, with_seg: bool = True) -> dict:
        x = normalize(images) if images.dtype == torch.uint8 else images
        with_attn = with_attn and self.has_attention
        if with_attn:
            features, attns = self.encoder(x, return_attn=True)
            attn = torch.cat(attns[-self.attn_blocks:], 1)                      # (B, heads x blocks, N, N)
        else:
            features, attn = self.encoder(x), None
        cam = F.conv2d(features[-1], self.classifier.weight)                    # (B, K, h, w)
        logits = self.classifier(F.adaptive_max_pool2d(features[-1], 1)).flatten(1)   # global max pooling
        out = {"logits": logits, "cam": cam, "attn": attn, "features": features}
        if self.decoder is not None and with_seg:
            out["seg"] = self.decoder(features)
        if attn is not None:
            a = attn + attn.transpose(-1, -2) if self.symmetric else attn
            out["affinity"] = torch.sigmoid(self.attn_proj(a))[:, 0]             # (B, N, N)
        return out


@torch.no_grad()
def afa_cam(net: AFANet, images: torch.Tensor, tags: torch.Tensor, scales: Sequence[float] = CAM_SCALES, *,
            with_affinity: bool = False):
    """AFA's CAM for the labels (a separate no-grad pass): at each scale the ReLU'd CAM of the image and of
    its flip, their element-wise max, resized to the input; summed over the scales; each channel min-max
    normalised; zero for untagged classes. images uint8 (B, 3, H, W); tags (B, K). Returns (B, K, H, W).

    ``with_affinity``: also return the learnt affinity of the largest scale's pass (its unflipped half,
    (B, N, N)) and that pass's map size (h, w): AFA's ``multi_scale_cam_with_aff_mat`` (utils/camutils.py)
    keeps ``aff_mat[np.argmax(scales)]``, the 1.5x pass, for the walk of its labels."""
    size = images.shape[2:]
    total = 0.0
    largest = max(scales)
    affinity = map_size = None
    for s in scales:
        x = images if s == 1.0 else rescaled_view(images, s)
        keep = with_affinity and s == largest
        out = net(torch.cat([x, x.flip(-1)]), with_attn=keep, with_seg=False)            # no decoder
        if keep:
            if "affinity" not in out:
                raise ValueError("with_affinity=True needs a backbone with attention (MiT); this one has none")
            affinity, map_size = out["affinity"][: len(x)].float(), tuple(out["cam"].shape[2:])
        cam = F.interpolate(F.relu(out["cam"].float()), size=size, mode="bilinear", align_corners=False)
        total = total + torch.maximum(cam[: len(x)], cam[len(x):].flip(-1))
    tagged = tags[:, :, None, None].float()
    cams = min_max_normalize(total * tagged) * tagged
    return (cams, affinity, map_size) if with_affinity else cams


@torch.no_grad()
def two_background_label(images: torch.Tensor, runs: Sequence[torch.Tensor], tags: torch.Tensor, *,
                         refiner: str | None = "par", dilations: Sequence[int] = DILATIONS, n_iter: int = PAR_ITERS,
                         valid: torch.Tensor | None = None, kernel_args: dict | None = None,
                         probabilities: bool = False) -> torch.Tensor:
    """AFA's label from a high-background and a low-background run: each run's scores (B, K+1, H, W)
    ([background; classes], at the image size) over background + tagged classes, softmaxed (with
    ``probabilities``: taken as they are, untagged classes set to 0 - the walked probabilities of
    :func:`propagate`, which AFA's code hands to PAR without a second softmax), refined by
    ``refiner`` (a key of :data:`wsss.refine.par.KERNELS`: PAR in AFA, VARM in TSCD; None: not refined)
    at half resolution on the image in [0, 1]; the label is the argmax of the high run, 255 where the
    high run says background, 0 where both runs say background; 255 outside ``valid`` (the crop's image
    box); ``kernel_args``: keyword arguments of the refiner's kernel (e.g. VARM's alpha, beta). images uint8
    (B, 3, H, W); tags (B, K). Returns int64 (B, H, W)."""
    size = images.shape[2:]
    half = (size[0] // 2, size[1] // 2)
    present = present_classes(tags)
    kernel = None
    if refiner is not None:
        small = F.interpolate(images.float() / 255.0, size=half, mode="bilinear", align_corners=False)
        kernel = KERNELS[refiner](small, dilations, **(kernel_args or {}))     # once for both runs
    labels = []
    for scores in runs:
        probs = scores.masked_fill(~present, 0.0) if probabilities else scores.masked_fill(~present, float("-inf")).softmax(1)
        if refiner is not None:
            probs = F.interpolate(probs, size=half, mode="bilinear", align_corners=False)
            probs = refine(probs, small, refiner, dilations, n_iter, kernel=kernel)
            probs = F.interpolate(probs, size=size, mode="bilinear", align_corners=False)
        labels.append(probs.masked_fill(~present, float("-inf")).argmax(1))
    label = labels[0].clone()
    label[labels[0] == 0] = IGNORE
    label[(labels[0] == 0) & (labels[1] == 0)] = 0
    if valid is not None:
        label[~valid] = IGNORE
    return label


def _with_background(cams: torch.Tensor, score: float) -> torch.Tensor:
    """[a constant background ``score``; cams]: (B, K, H, W) -> (B, K+1, H, W)."""
    return torch.cat([torch.full_like(cams[:, :1], score), cams], 1)


@torch.no_grad()
def cam_labels(images: torch.Tensor, cams: torch.Tensor, tags: torch.Tensor, *, high: float = BKG_HIGH,
               low: float = BKG_LOW, **refined) -> torch.Tensor:
    """AFA's pseudo label: :func:`two_background_label` of the CAMs with a constant background ``high``
    (0.55) and ``low`` (0.35). cams (B, K, H, W) in [0, 1]; ``refined``: refiner, dilations, n_iter,
    valid, kernel_args. Returns int64 (B, H, W)."""
    return two_background_label(images, [_with_background(cams, high), _with_background(cams, low)], tags, **refined)


@torch.no_grad()
def walk_labels(images: torch.Tensor, cams: torch.Tensor, tags: torch.Tensor, affinity: torch.Tensor, map_size,
                *, radius: int = AFF_RADIUS, high: float = BKG_HIGH, low: float = BKG_LOW, **refined) -> torch.Tensor:
    """AFA's label after its switch (iteration 6000), as its training script builds it
    (scripts/dist_train_voc.py, the ``propagte_aff_cam_with_bkg`` calls after ``multi_scale_cam_with_aff_mat``):
    for each constant background (``low`` 0.35, ``high`` 0.55) :func:`propagate` the CAM along ``affinity``
    (B, N, N), the learnt affinity of the 1.5x CAM pass (``afa_cam(..., with_affinity=True)``), on its map
    ``map_size``, then :func:`two_background_label` of the walked probabilities (refined as before, no second
    softmax). cams (B, K, H, W) in [0, 1]; ``refined``: refiner, dilations, n_iter, valid, kernel_args.
    Returns int64 (B, H, W)."""
    runs = [propagate(_with_background(cams, score), affinity, map_size, images.shape[2:], tags, radius=radius)
            for score in (high, low)]
    return two_background_label(images, runs, tags, probabilities=True, **refined)


PROPAGATE_POWER, PROPAGATE_EPS = 2, 0.1       # AFA code: aff ** n_pow, n_pow = 2; columns / (sum + 1e-1)


def propagate(scores: torch.Tensor, affinity: torch.Tensor, map_size, out_size, tags: torch.Tensor, *,
              radius: int = AFF_RADIUS, power: float = PROPAGATE_POWER, eps: float = PROPAGATE_EPS) -> torch.Tensor:
    """AFA's propagation of class scores along the learnt affinity (utils/camutils.py,
    ``propagte_aff_cam_with_bkg``; RML's decoder-free prediction walks the same way):

    1. the scores [background; classes] (B, K+1, H, W) are resized to the affinity's map ``map_size`` (h, w)
       (bilinear) and softmaxed over background + the image's tags (``tags`` (B, K)); other classes are 0;
    2. the affinity (B, N, N), N = h w, detached, is kept inside the square ``radius`` window, raised to
       ``power`` element-wise (2), and each column divided by its sum + ``eps`` (0.1, the code's "avoid nan");
    3. **one** step: p'_j = sum_i p_i T_ij (``n_log_iter = 0``: T is not squared);
    4. the result is resized to ``out_size`` (bilinear).

    Returns (B, K+1, H', W'): non-negative, each pixel's sum <= 1 (< 1 by the eps), 0 for absent classes."""
    h, w = map_size
    if affinity.shape[1:] != (h * w, h * w):
        raise ValueError(f"affinity must be (B, N, N) with N = {h} x {w} = {h * w} (map_size), got {tuple(affinity.shape)}")
    present = present_classes(tags)
    small = F.interpolate(scores.float(), size=(h, w), mode="bilinear", align_corners=False)
    probs = small.masked_fill(~present, float("-inf")).softmax(1)
    trans = (affinity.detach().float() * window_mask(h, w, radius, affinity.device)).pow(power)
    trans = trans / (trans.sum(1, keepdim=True) + eps)
    walked = torch.bmm(probs.flatten(2), trans).reshape(probs.shape)
    return F.interpolate(walked, size=tuple(out_size), mode="bilinear", align_corners=False)


def affinity_loss(affinity: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """AFA's affinity loss: 0.5 sum_pos (1 - a) / (n_pos + 1) + 0.5 sum_neg a / (n_neg + 1), over the pairs
    labelled 1 (same class) and 0 (different) by :func:`wsss.refine.affinity.window_pair_labels`
    (255 pairs left out). affinity (B, N, N) in (0, 1); labels (B, N, N)."""
    pos, neg = (labels == 1).to(affinity.dtype), (labels == 0).to(affinity.dtype)
    return 0.5 * ((1 - affinity) * pos).sum() / (pos.sum() + 1) + 0.5 * (affinity * neg).sum() / (neg.sum() + 1)


class AFA(ReusableLabels, nn.Module):
    """AFA's training step (public code's schedule): the classification loss alone for the first
    ``cls_only`` iterations (a shared warm-up: every variant builds the same modules), then
    L_cls + ``seg_weight`` L_seg + ``aff_weight`` L_aff, with L_seg = 0.5 (background CE + foreground CE)
    on the pseudo label (:func:`cam_labels` of :func:`afa_cam`, refined by ``refiner``, 255 outside the
    crop's image box, the batch's "valid") and L_aff = :func:`affinity_loss` on the label's pairs at the
    attention's resolution (nearest) within ``radius``. From iteration ``walk_from`` (AFA: 6000 of 20k;
    None: never) the label is :func:`walk_labels`, the CAM walked one step along the affinity of the 1.5x CAM
    pass (:func:`propagate`, detached).
    ``kernel_args``: {refiner name: keyword arguments of its kernel}, e.g. {"varm": {"alpha": 4, "beta": 0.01}}.
    With ``timing_network_only`` the labels are reused.
    """

    def __init__(self, backbone: str, num_classes: int, *, pretrained: str | None = None, channels: int = 256,
                 symmetric: bool = True, cls_only: int = 2000, seg_weight: float = 0.1, aff_weight: float = 0.1,
                 cam_scales: Sequence[float] = CAM_SCALES, radius: int = AFF_RADIUS,
                 dilations: Sequence[int] = DILATIONS, refiner: str | None = "par", walk_from: int | None = WALK_FROM,
                 output_stride: int = 16, kernel_args: dict | None = None):
        super().__init__()
        if refiner is not None and refiner not in KERNELS:
            raise ValueError(f"refiner={refiner!r} is not known; choose None or one of {sorted(KERNELS)}")
        self.net = AFANet(backbone, num_classes, pretrained=pretrained, channels=channels, symmetric=symmetric,
                          output_stride=output_stride)
        self.cls_only, self.seg_weight, self.aff_weight = cls_only, seg_weight, aff_weight
        self.cam_scales, self.radius, self.dilations = tuple(cam_scales), radius, tuple(dilations)
        self.refiner, self.walk_from = refiner, walk_from
        self.kernel_args = dict(kernel_args or {})           # refiner name -> its kernel's keyword arguments

    def cams(self, images: torch.Tensor, tags: torch.Tensor, with_affinity: bool = False):
        """:func:`afa_cam` of the batch, in eval mode (no gradient; a separate pass)."""
        was = self.training
        self.net.eval()
        cams = afa_cam(self.net, images, tags, self.cam_scales, with_affinity=with_affinity)
        self.net.train(was)
        return cams

    def labels(self, images: torch.Tensor, tags: torch.Tensor, valid: torch.Tensor | None,
               walk: bool = False) -> torch.Tensor:
        """The batch's pseudo label: :func:`cam_labels`, or with ``walk`` :func:`walk_labels` (the CAM walked
        along the affinity of the 1.5x CAM pass, as AFA's code)."""
        refined = dict(refiner=self.refiner, dilations=self.dilations, valid=valid,
                       kernel_args=self.kernel_args.get(self.refiner))
        if not walk:
            return cam_labels(images, self.cams(images, tags), tags, **refined)
        cams, affinity, map_size = self.cams(images, tags, with_affinity=True)
        return walk_labels(images, cams, tags, affinity, map_size, radius=self.radius, **refined)

    def walking(self, step: int) -> bool:
        return self.walk_from is not None and step >= self.walk_from and self.net.has_attention

    def forward(self, batch: dict, step: int = 0) -> dict:
        images, tags = batch["image"], batch["labels"]
        out = self.net(images, with_attn=step >= self.cls_only)
        l_cls = multilabel_soft_margin(out["logits"], tags)
        if step < self.cls_only:
            return {"loss": l_cls, "cls": l_cls.detach()}
        label = self.step_labels(self.labels, images, tags, batch.get("valid"), self.walking(step))
        seg = F.interpolate(out["seg"], size=label.shape[1:], mode="bilinear", align_corners=False)
        l_seg = 0.5 * split_ce(seg, label)
        l_aff = self.aux_loss(out, label)
        loss = l_cls + self.seg_weight * l_seg + self.aff_weight * l_aff
        return {"loss": loss, "cls": l_cls.detach(), "seg": l_seg.detach(), "aff": l_aff.detach(),
                "ignored": (label == IGNORE).float().mean()}

    def aux_loss(self, out: dict, label: torch.Tensor) -> torch.Tensor:
        """:func:`affinity_loss` on the label's pairs at the attention's resolution (nearest) within the
        radius; 0 for a backbone without attention."""
        if "affinity" not in out:
            return out["logits"].sum() * 0.0
        pairs = self.step_labels(lambda: window_pair_labels(downsample_labels(label, out["cam"].shape[2:]), self.radius),
                                 key="pairs")
        return affinity_loss(out["affinity"], pairs)

    @torch.no_grad()
    def predict(self, images: torch.Tensor) -> torch.Tensor:
        """Segmentation logits (B, C, H, W) of uint8 images, resized to the input (the test-time output)."""
        seg = self.net(images, with_attn=False)["seg"]
        return F.interpolate(seg.float(), size=images.shape[2:], mode="bilinear", align_corners=False)

    def param_groups(self) -> list[dict]:
        """The encoder x1, the new layers (classifier, decoder, affinity conv) x10 (AFA code)."""
        ids = {id(p) for p in self.net.encoder.parameters()}
        return [{"params": [p for p in self.parameters() if id(p) in ids], "lr_mult": 1.0},
                {"params": [p for p in self.parameters() if id(p) not in ids], "lr_mult": 10.0}]
