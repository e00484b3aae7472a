"""The SSDD pipeline for notebooks/ssdd.ipynb: PSA's knowledge, the static stage's seed, the runs of
Table 1, Table A-1 and Fig. 6, and what a run outputs (:data:`OUTPUTS`, :func:`predictor`).

Every training goes through :func:`wsss.experiments.run_variant`; the functions here are module-level
so that :func:`wsss.experiments.run_grid` can run them in spawned workers.
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from ..data import PseudoMaskDataset, collate
from ..data.transforms import TrainTransform
from ..methods.psa import PSA, psa_probs
from ..methods.ssdd import PAPER_MAP_PX, SSDD
from ..ops import multiscale_probs
from ..refine.crf import crf_label, dense_crf_batch
from ..train import resolve_device
from ..evaluate import dataset_masks, masks_miou  # noqa: F401  (used by the notebook as ssdd_runs.*)
from .driver import backbone_state, run_variant  # noqa: F401
from .timing import median_ms

OUTPUTS = {"seg": False, "seg + CRF": True}
PSA_GAUSSIAN = (3, 3)                 # PSA's CRF (and SSDD's, Sec. 5.2): Gaussian (sxy, compat w_g) ...
PSA_BILATERAL = (80, 13, 10)          # ... bilateral (sxy, srgb, compat w_rgb), sxy in pixels of ~500 px photos
TEST_SCALES = (0.5, 0.75, 1.0, 1.25, 1.5)


def loop_kernels(map_px: int, gaussian=PSA_GAUSSIAN, bilateral=PSA_BILATERAL) -> tuple[tuple, tuple]:
    """The dynamic stage's in-loop CRF kernels for maps of ``map_px`` pixels: the paper runs PSA's kernels
    on 112 x 112 maps, so the widths keep their share of the map (sxy x map_px / 112, at least 0.5)."""
    f = map_px / PAPER_MAP_PX
    return (max(0.5, round(gaussian[0] * f, 2)), gaussian[1]), (max(0.5, round(bilateral[0] * f, 2)), *bilateral[1:])


def _batches(dataset, batch_size: int):
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=False, collate_fn=collate)
    yield from loader


@torch.no_grad()
def psa_knowledge(affnet, cam_net, dataset, *, cam_scales, crfs: dict, device="cpu", batch_size: int = 16,
                  crf_iters: int = 10, backend: str = "auto", radius: int = 5, logt: int = 8) -> tuple[dict, dict]:
    """The static stage's inputs for every image of ``dataset`` (no transform): knowledge m^K0 = PSA's
    label (:func:`wsss.methods.psa.psa_probs`) and, for each named CRF setting of ``crfs`` (key ->
    (gaussian (sxy, w_g), bilateral (sxy, srgb, w_rgb))), advice m^A0 = the argmax (background + tags)
    of PSA's map after that dense CRF (``crf_iters`` iterations at full resolution; the untagged classes have
    probability 0 in PSA's map, so the CRF keeps to background + tags as the public code's). PSA's walk
    (pair ``radius``, 2^``logt`` steps: :func:`wsss.methods.psa.scaled_walk` for a miniature) runs once per
    image for all settings. Returns (knowledge, {key: advice}), each name -> uint8 (H, W)."""
    from ..ops import present_argmax
    affnet.to(device).eval()
    cam_net.to(device).eval()
    knowledge, advice = {}, {key: {} for key in crfs}
    for batch in _batches(dataset, batch_size):
        images, tags = batch["image"].to(device), batch["labels"].to(device)
        probs, m_k = psa_probs(affnet, cam_net, images, tags, cam_scales=cam_scales, radius=radius, logt=logt)
        hwc = images.permute(0, 2, 3, 1)
        for name, k in zip(batch["name"], m_k.cpu().numpy()):
            knowledge[name] = k.astype(np.uint8)
        for key, (gaussian, bilateral) in crfs.items():
            q = dense_crf_batch(hwc.cpu() if backend == "pydensecrf" else hwc, probs, n_iter=crf_iters,
                                gaussian=gaussian, bilateral=bilateral, backend=backend)
            for name, a in zip(batch["name"], present_argmax(q.to(device), tags).cpu().numpy()):
                advice[key][name] = a.astype(np.uint8)
    return knowledge, advice


@torch.no_grad()
def static_seed(model: SSDD, dataset, knowledge: dict, advice: dict, *, device="cpu", batch_size: int = 16, **biases) -> dict:
    """Eq. (10) for every image of ``dataset`` (no transform): the trained static model's seed m^D0
    (:meth:`wsss.methods.ssdd.SSDD.seed`, with ``biases`` b_dd, b_class, b_bg). name -> uint8 (H, W)."""
    model.to(device).eval()
    seeds = {}
    for batch in _batches(dataset, batch_size):
        names = batch["name"]
        m_k = torch.stack([torch.as_tensor(knowledge[n]) for n in names]).long().to(device)
        m_a = torch.stack([torch.as_tensor(advice[n]) for n in names]).long().to(device)
        m_d = model.seed(batch["image"].to(device), m_k, m_a, batch["labels"].to(device), **biases)
        for name, m in zip(names, m_d.cpu().numpy()):
            seeds[name] = m.astype(np.uint8)
    return seeds


def predictor(model: SSDD, outputs, *, crf_gaussian=PSA_GAUSSIAN, crf_bilateral=PSA_BILATERAL, scales=TEST_SCALES,
              flip: bool = True, crf_backend: str = "auto"):
    """A ``predict(batch)`` for :func:`wsss.evaluate.evaluate`: the main head's probabilities over
    ``scales`` and flips (:func:`wsss.ops.multiscale_probs`), argmax ("seg") and after a dense CRF of 10
    iterations ("seg + CRF"), as the paper's test (Sec. 5.3, PSA's kernels). ``model``: an :class:`SSDD`, or
    the notebook's ceiling (a :class:`wsss.methods.baselines.MaskSupervised`, whose logits get a softmax)."""
    unknown = [o for o in outputs if o not in OUTPUTS]
    if unknown:
        raise ValueError(f"unknown outputs {unknown}; choose from {list(OUTPUTS)}")
    probs_fn = model.predict if isinstance(model, SSDD) else (lambda x: model.predict(x).softmax(1))

    def predict(batch: dict) -> dict:
        images = batch["image"]
        probs = multiscale_probs(probs_fn, images, scales, flip)
        out = {}
        for name in outputs:
            out[name] = crf_label(images, probs, gaussian=crf_gaussian, bilateral=crf_bilateral,
                                  backend=crf_backend) if OUTPUTS[name] else probs.argmax(1)
        return out

    return predict


def train_affinity(*, base, labels: dict, crop: int, backbone: str, init_backbone: str, train_cfg: dict, seed: int = 0,
                   radius: int = 5, dims=(64, 128, 256), save_to: str | None = None) -> dict:
    """Train PSA's AffinityNet on the confident labels ``labels`` (name -> (H, W), 255 = unsure) of ``base``
    (a dataset without transform; random crops of ``crop`` px, scale 0.7-1.3, flips). ``init_backbone``:
    a backbone state-dict file (the tag classifier's, standing in for ImageNet). Returns run_variant's dict."""
    train_set = PseudoMaskDataset(base, labels, transform=TrainTransform(crop, scale=(0.7, 1.3)))
    return run_variant(method=PSA, model=dict(backbone=backbone, radius=radius, dims=dims), train_set=train_set,
                       val_set=None, train_cfg=train_cfg, init=init_backbone, init_into="aff.backbone", seed=seed,
                       save_to=save_to)


def train_ssdd(*, base, masks: dict, val_set, crop: int, model: dict, train_cfg: dict, init: str | None, seed: int,
               outputs=(), predictor_args: dict | None = None, save_to: str | None = None, eval_batch: int = 16,
               method=SSDD) -> dict:
    """One SSDD-network run (any stage): ``masks`` name -> (H, W) (stage "fixed", "dynamic") or (2, H, W)
    ([m^K0, m^A0], "static") for every image of ``base`` (no transform), random crops of ``crop`` px with
    scale 0.7-1.3 and flips; weights ``init`` (the tag classifier's ``net``); scored on ``val_set`` for
    ``outputs``. ``method``: :class:`SSDD`, or :class:`wsss.methods.baselines.MaskSupervised` for the ceiling
    (``masks``: the true masks; ``init`` None: ``model``'s own pretrained backbone). Returns run_variant's
    dict plus "seconds"."""
    start = time.perf_counter()
    train_set = PseudoMaskDataset(base, masks, transform=TrainTransform(crop, scale=(0.7, 1.3)))
    result = run_variant(method=method, model=model, train_set=train_set, val_set=val_set, train_cfg=train_cfg,
                         predictor=predictor if outputs else None, predictor_args=predictor_args, outputs=outputs,
                         init=init, seed=seed, save_to=save_to, eval_batch=eval_batch)
    result["seconds"] = time.perf_counter() - start
    return result


def load_ssdd(path: str | Path, num_classes: int, model: dict, device="cpu") -> SSDD:
    """An :class:`SSDD` built with ``model`` and the weights of ``path`` (a run's ``save_to``)."""
    net = SSDD(num_classes=num_classes, **model)
    net.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    return net.to(resolve_device(str(device)) if isinstance(device, str) else device).eval()


def label_work_breakdown(model: SSDD, batch: dict, *, repeats: int = 5) -> dict:
    """Milliseconds of each piece of a dynamic-stage step on one batch (median of ``repeats``), on the
    model's device: the network's forward pass (for reference), the in-loop CRF of the main head
    (m^K1, m^A1), and one SSDD decision (flags, Eq. 3/17 confidence, Eq. 4 choice; a step makes two).
    Shows where :func:`wsss.experiments.step_timing`'s "the rest" goes."""
    from ..methods.ssdd import nearest
    from ..data.folder import IGNORE

    images, tags = batch["image"], batch["labels"]

    def timed(fn):
        return median_ms(fn, images.device, repeats)

    model.train()
    size = (images.shape[2] // 4, images.shape[3] // 4)
    m_d0 = nearest(batch["mask"], size)
    ms = {}
    with torch.no_grad():
        ms["network forward (backbone, both heads)"], enc = timed(lambda: model.encode(images, heads=("main", "sub")))
        logits, features = enc["main"]
        ms["in-loop CRF of the main head (m^K1, m^A1)"], (m_k1, m_a1) = timed(
            lambda: model.advice(images, logits, tags, m_d0 == IGNORE))
        head = model.dd[0].embed(features, enc["low"])
        d_k, d_a = model.dd[0].pair(head, m_k1, m_a1)
        ms["one SSDD decision (flags, Eq. 3/17, Eq. 4)"], _ = timed(lambda: model.module_decision(d_k, d_a, m_k1, m_a1, tags))
    return ms
