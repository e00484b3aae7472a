"""The TSCD pipeline for notebooks/tscd.ipynb: what an AFA or TSCD run outputs (:data:`OUTPUTS`,
:func:`predictor`), the pseudo-label quality of each refiner, and where a step's label work goes.

Every training goes through :func:`wsss.experiments.run_variant` with ``method=`` :class:`wsss.methods.afa.AFA`
or :class:`wsss.methods.tscd.TSCD`; the tables differ only in their switches.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from ..data import collate
from ..train import TrainConfig, seed_everything, train
from ..evaluate import masks_miou
from ..methods.afa import AFA, cam_labels
from ..methods.tscd import REG_SCALE, REG_SIGMA_RGB, TSCD, reg_gate, sample_points, scd_loss
from ..refine.affinity import downsample_labels, window_pair_labels
from ..refine.crf import crf_label, dense_crf_loss
from ..ops import rescaled_view
from .timing import median_ms

OUTPUTS = {"seg": False, "seg + CRF": True}
TEST_SCALES = (1.0, 0.5, 0.75)        # AFA's evaluation: these scales with flip, max fusion
CRF_GAUSSIAN = (3, 3)                 # AFA's +CRF rows: 10 iterations, Gaussian (sxy 3, compat 3) ...
CRF_BILATERAL = (64, 5, 4)            # ... bilateral (sxy 64, srgb 5, compat 4), sxy in pixels of ~500 px photos


def pretrain_tags(train_set, *, backbone: str, output_stride: int, steps: int, batch_size: int, lr: float = 1e-3,
                  weight_decay: float = 0.01, channels: int = 64, seed: int = 0, device: str = "auto",
                  save_to: str | None = None, log_every: int = 50) -> tuple[AFA, list[dict]]:
    """AFA's network trained on the image tags alone (its global-max-pooling classifier; AdamW, the encoder
    x1 and the classifier x10): the stand-in for ImageNet weights on the synthetic benchmark. ``save_to``
    keeps the encoder and classifier weights ("encoder.*", "classifier.*" of ``net``), the ``init`` of a run
    with ``init_into="net"``, ``init_partial=True`` (each run builds its own decoder and affinity conv).
    (The GAP classifier of :func:`wsss.experiments.pretrain_classifier` gave our small MiT broad CAMs that
    cover the background: the notebook prints the label quality this one gives.)"""
    seed_everything(seed)
    model = AFA(backbone, train_set.num_classes, channels=channels, output_stride=output_stride, cls_only=steps + 1)
    cfg = TrainConfig(steps=steps, batch_size=batch_size, optimizer="adamw", lr=lr, weight_decay=weight_decay, seed=seed,
                      device=device, log_every=log_every)
    history = train(model, train_set, cfg, desc=f"tag classifier ({backbone})")
    if save_to is not None:
        torch.save({k: v for k, v in model.net.state_dict().items() if k.startswith(("encoder.", "classifier."))}, save_to)
    return model, history


@torch.no_grad()
def fused_logits(model: AFA, images: torch.Tensor, scales: Sequence[float] = TEST_SCALES, flip: bool = True) -> torch.Tensor:
    """AFA's test-time fusion: at each scale the segmentation logits of the image and of its mirror image
    averaged, resized to the input; the element-wise max over the scales. images uint8 (B, 3, H, W) ->
    (B, C, H, W)."""
    fused = None
    for s in scales:
        x = images if s == 1.0 else rescaled_view(images, s)
        logits = torch.nn.functional.interpolate(model.predict(x), size=images.shape[2:], mode="bilinear",
                                                 align_corners=False)
        if flip:
            mirrored = torch.nn.functional.interpolate(model.predict(x.flip(-1)), size=images.shape[2:],
                                                       mode="bilinear", align_corners=False).flip(-1)
            logits = (logits + mirrored) / 2
        fused = logits if fused is None else torch.maximum(fused, logits)
    return fused


def predictor(model: AFA, outputs, *, scales: Sequence[float] = TEST_SCALES, flip: bool = True,
              crf_gaussian=CRF_GAUSSIAN, crf_bilateral=CRF_BILATERAL, crf_backend: str = "auto"):
    """A ``predict(batch)`` for :func:`wsss.evaluate.evaluate`: the argmax of :func:`fused_logits` ("seg") and
    of its softmax after a dense CRF of 10 iterations ("seg + CRF"; pass ``crf_bilateral`` scaled to the
    image size)."""
    unknown = [o for o in outputs if o not in OUTPUTS]
    if unknown:
        raise ValueError(f"unknown outputs {unknown}; choose from {list(OUTPUTS)}")

    def predict(batch: dict) -> dict:
        images = batch["image"]
        logits = fused_logits(model, images, scales, flip)
        out = {}
        for name in outputs:
            out[name] = crf_label(images, logits.softmax(1), gaussian=crf_gaussian, bilateral=crf_bilateral,
                                  backend=crf_backend) if OUTPUTS[name] else logits.argmax(1)
        return out

    return predict


@torch.no_grad()
def refiner_labels(model: AFA, dataset, refiners: Sequence[str | None], *, device="cpu", batch_size: int = 16) -> dict:
    """The pseudo labels of one trained model's CAMs (:meth:`wsss.methods.afa.AFA.cams`) refined by each of
    ``refiners`` (keys of :data:`wsss.refine.par.KERNELS`, None: unrefined), for every image of ``dataset``
    (no transform): {refiner: {name: uint8 (H, W), 255 = no label}}. Score them with
    :func:`wsss.evaluate.masks_miou`: this is pseudo-label quality, not the mIoU of a model trained on them."""
    model.to(device).eval()
    out = {r: {} for r in refiners}
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=False, collate_fn=collate)
    for batch in loader:
        images, tags = batch["image"].to(device), batch["labels"].to(device)
        cams = model.cams(images, tags)
        for r in refiners:
            labels = cam_labels(images, cams, tags, refiner=r, dilations=model.dilations,
                                kernel_args=getattr(model, "kernel_args", {}).get(r))
            for name, lab in zip(batch["name"], labels.cpu().numpy()):
                out[r][name] = lab.astype(np.uint8)
    return out


def refiner_quality(model: AFA, dataset, refiners: Sequence[str | None], targets: dict | None = None, **kw) -> dict:
    """:func:`wsss.evaluate.masks_miou` of each refiner's :func:`refiner_labels`: {refiner: {"miou",
    "per_class", "labelled"}}."""
    labels = refiner_labels(model, dataset, refiners, **kw)
    return {r: masks_miou(labels[r], dataset, targets) for r in refiners}


def label_pieces(model: AFA, batch: dict, repeats: int = 5):
    """The label work every AFA-based step shares, timed (median of ``repeats``): the CAM pass (three scales with
    flips, no grad) and the refined two-background label. Returns (timed, {piece: ms}, label), ``timed(fn)`` ->
    (ms, fn()) for the caller's further pieces."""
    images, tags, valid = batch["image"], batch["labels"], batch.get("valid")

    def timed(fn):
        return median_ms(fn, images.device, repeats)

    model.train()
    ms = {}
    ms["CAM pass for the labels (3 scales x flip)"], cams = timed(lambda: model.cams(images, tags))
    ms[f"two-background label, refiner {model.refiner}"], label = timed(
        lambda: cam_labels(images, cams, tags, refiner=model.refiner, dilations=model.dilations, valid=valid,
                           kernel_args=model.kernel_args.get(model.refiner)))
    return timed, ms, label


def label_work_breakdown(model: TSCD, batch: dict, *, repeats: int = 5) -> dict:
    """Milliseconds of each piece of a TSCD step's work beyond its network passes, on one batch (median of
    ``repeats``), on the model's device: the CAM pass for the labels (three scales with flips, no grad), the
    refined two-background label, the affinity pair labels, the SCD loss (sampling and both correlation
    volumes, forward and backward) and L_reg (dense-CRF energy, forward and backward)."""
    images, valid = batch["image"], batch.get("valid")
    timed, ms, label = label_pieces(model, batch, repeats)
    with torch.no_grad():
        out = model.net(images, with_attn=False)
        view = model.net(rescaled_view(images, model.view_scale), with_attn=False)
    ms["affinity pair labels"], _ = timed(lambda: window_pair_labels(downsample_labels(label, out["cam"].shape[2:]),
                                                                     model.radius))

    def scd():
        seg_1, seg_2 = out["seg"].clone().requires_grad_(), view["seg"].clone().requires_grad_()
        b = images.shape[0]
        loss = scd_loss(out["cam"], view["cam"], seg_1, seg_2, sample_points(b, model.samples, device=images.device),
                        sample_points(b, model.samples, device=images.device))
        loss.backward()
        return loss

    ms["SCD loss, forward and backward"], _ = timed(scd)

    def reg():
        seg = torch.nn.functional.interpolate(out["seg"], size=images.shape[2:], mode="bilinear", align_corners=False)
        probs = seg.softmax(1).requires_grad_()
        loss = dense_crf_loss(images.permute(0, 2, 3, 1), probs, sigma_xy=model.reg_sigma_xy, sigma_rgb=REG_SIGMA_RGB,
                              scale=REG_SCALE, weight=reg_gate(probs, label, valid), mask=valid)
        loss.backward()
        return loss

    ms["L_reg (dense-CRF energy), forward and backward"], _ = timed(reg)
    return ms


PAPER_CROP = 512                      # TSCD's (and AFA's) training crop; L_reg runs at half of it


def reg_weight_conversion(image_px: int, *, crop_px: int | None = None, paper_px: int = PAPER_CROP, images: int = 16,
                          seed: int = 0) -> dict:
    """The weight of L_reg per pixel at our size, measured (the derivation printed beside Eq. (13)).

    The public code adds 1e-7 x E, E the dense-CRF energy summed over the pixels of the half-resolution
    512 px crop (256 x 256) and divided by the batch; our :func:`wsss.refine.crf.dense_crf_loss` with
    ``reduction="mean"`` is the energy per pixel e. With sigma_xy scaled to the image (100 px of a ~500 px
    photo -> ``pixels(100, size)``), a pixel's kernel reaches the same fraction of the image at both sizes,
    i.e. a number of pixels that grows with the pixel count, and so does e. The same loss value for the same
    segmentation therefore needs

        w = 1e-7 x 256^2 x e_paper / e_ours,

    not 1e-7 x 256^2 alone (which converts the pixel count only). e is measured, not assumed: the mean per-pixel
    energy of the true masks (one-hot) of the same ``images`` benchmark scenes, rendered at ``paper_px`` and
    downscaled (area average; masks nearest) to ``crop_px`` (our training crop, default ``image_px``), each
    size with its own scaled sigma_xy, sigma_rgb 15, at half resolution, lattice kernel, as in training (one
    scene's energy varies 10x with its colours, so both sizes must see the same scenes). Returns {"e_paper",
    "e_ours", "ratio", "weight", "naive_weight", "sigma_paper", "sigma_ours", "paper_px", "crop_px", "images"}."""
    from ..data.synthetic import PROFILES, render_image
    from ..methods.tscd import REG_SIGMA_XY
    from ..profiles import pixels

    crop_px = int(crop_px or image_px)
    if images < 1:
        raise ValueError(f"images={images} must be at least 1")
    if not 8 <= crop_px <= paper_px:
        raise ValueError(f"crop_px={crop_px} must lie between 8 and paper_px={paper_px}")
    base = PROFILES["quick"]
    profile = type(base)(image_size=paper_px, n_train=1, n_val=1, min_radius=base.min_radius, max_radius=base.max_radius)
    sigma_paper, sigma_ours = pixels(REG_SIGMA_XY, paper_px), pixels(REG_SIGMA_XY, crop_px)
    rng = np.random.default_rng(seed)
    e_paper = e_ours = 0.0
    for _ in range(images):
        image, mask, _, _ = render_image(rng, profile)
        img = torch.from_numpy(image).permute(2, 0, 1)[None].float()
        lab = torch.from_numpy(mask.astype(np.int64))[None, None].float()
        for size, sigma in ((paper_px, sigma_paper), (crop_px, sigma_ours)):
            im = img if size == paper_px else torch.nn.functional.interpolate(img, size=(size, size), mode="area")
            lb = lab if size == paper_px else torch.nn.functional.interpolate(lab, size=(size, size), mode="nearest")
            probs = torch.nn.functional.one_hot(lb[0, 0].long(), int(mask.max()) + 1).permute(2, 0, 1)[None].float()
            e = dense_crf_loss(im.round().clamp(0, 255).permute(0, 2, 3, 1), probs, sigma_xy=sigma,
                               sigma_rgb=REG_SIGMA_RGB, scale=REG_SCALE, reduction="mean").item()
            if size == paper_px:
                e_paper += e / images
            else:
                e_ours += e / images
    naive = 1e-7 * (paper_px * REG_SCALE) ** 2
    return {"e_paper": e_paper, "e_ours": e_ours, "ratio": e_paper / e_ours, "weight": naive * e_paper / e_ours,
            "naive_weight": naive, "sigma_paper": sigma_paper, "sigma_ours": sigma_ours, "paper_px": paper_px,
            "crop_px": crop_px, "images": images}
