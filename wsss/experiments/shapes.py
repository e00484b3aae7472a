"""Before a GPU comes: every notebook's networks at the real size of a profile, and what its run would cost.

No ``full`` or ``paper`` run has happened yet, and a lent GPU is short-lived: a shape, dtype or device error
at full size would waste it. This module rebuilds, without running a notebook, each network a notebook
trains at a profile (its backbone, widths, output stride, crop and map-scaled settings, as the notebook's
settings cell computes them, but with random weights: ``pretrained=None``, so no stand-in is built and no
ImageNet file is read) and checks it:

* :func:`models` - the (label, method, keyword arguments, ...) of each distinct network a notebook trains;
* :func:`shape_check` - two training steps of each (forward, backward, optimizer step, bfloat16 autocast on
  CUDA as :func:`wsss.train.train`) on a random batch at the profile's crop, with the step number past any
  classification-only warm-up so that the whole loss runs, then one evaluation with the notebook's own
  predictor on one image at the profile's image size; seconds per step for each;
* :func:`run_plan` / :func:`plan_text` - the trainings the notebook's profile would run and their time,
  estimated from the measured seconds per step.

    python -m pytest -m full_shapes                    # every notebook, full and paper, on the CPU (or WSSS_TEST_DEVICE)
    python -m wsss.run_notebooks --dry-run tscd        # tscd's full plan with times measured on this machine's GPU

The model dictionaries mirror the notebooks' settings cells (``MODEL``, ``TRAIN`` and the ``runs`` dicts of
notebooks/<name>.py); a notebook that changes what it builds should change its entry here too.
"""
from __future__ import annotations

import gc
import tempfile
import time
from pathlib import Path
from typing import Callable, NamedTuple

import torch

from ..profiles import PROFILES, head_dilation, pixels, profile_settings, scaled_bilateral

NOTEBOOKS = ("basics", "asdt", "ssdd", "tscd", "seminar", "rml")
VOC_TRAIN_AUG = 10_582          # the paper profile's train images (VOC 2012 train_aug)
VOC_CLASSES = 21
PAPER_ASPECT = 0.75             # a VOC photo is about 500 x 375: the paper profile evaluates a landscape image


class ShapeCheckError(RuntimeError):
    """A network failed at a profile's real size; the message names the notebook, the profile and the model."""


class Spec(NamedTuple):
    """One network a notebook trains: ``method(num_classes=C, **kwargs)``, its batch, its step numbers and how
    the notebook evaluates it."""
    label: str
    method: Callable
    kwargs: dict
    batch: str = "plain"                 # "plain" (image, tags, mask, valid, clicks) or "pair" (SSDD's static [m^K0, m^A0])
    steps: tuple[int, int] = (0, 1)      # the step numbers of the two training steps (past any warm-up)
    train: dict | None = None            # optimizer, lr, momentum, weight_decay (the notebook's TRAIN)
    evaluate: Callable | None = None     # evaluate(model, batch) -> (1, H, W) labels or {name: labels}
    setup: Callable | None = None        # setup(folder) -> extra kwargs (e.g. a saved ancillary model)


def _check(notebook: str, profile: str) -> dict:
    if notebook not in NOTEBOOKS:
        raise ValueError(f"no notebook named {notebook!r}; there are {list(NOTEBOOKS)}")
    if profile not in PROFILES:
        raise ValueError(f"profile={profile!r} is not known; choose one of {PROFILES}")
    return profile_settings(notebook, profile)


def num_classes(profile: str) -> int:
    """Classes with background: the synthetic benchmark's 7, VOC's 21 at ``paper``."""
    from ..data.synthetic import CLASSES
    return VOC_CLASSES if profile == "paper" else len(CLASSES)


def train_images(profile: str) -> int:
    """Train images at ``profile``: the synthetic benchmark's train split, VOC's train_aug at ``paper``."""
    from ..data.synthetic import PROFILES as BENCH
    from ..profiles import BENCHMARK
    return VOC_TRAIN_AUG if profile == "paper" else BENCH[BENCHMARK[profile]].n_train


def eval_size(profile: str, image_px: int) -> tuple[int, int]:
    """(H, W) of the evaluation image: square synthetic images, a 375 x 500 VOC-like photo at ``paper``."""
    return (round(image_px * PAPER_ASPECT), image_px) if profile == "paper" else (image_px, image_px)


def _bb(name: str, backbone: str) -> str:
    return f"{name} [{backbone}]"


# -- the networks of each notebook ------------------------------------------------------------------------

def _basics(profile: str, s: dict) -> list[Spec]:
    from ..cam import cam_to_label, cam_to_probs, multiscale_cam
    from ..methods.baselines import CAMClassifier, FullySupervised
    from ..refine import crf_label

    bb, sxy = s["backbone"], pixels(80, s["image_px"])
    train = dict(optimizer=s["optimizer"], lr=s["lr"], weight_decay=1e-4)

    def cam_eval(model, batch):
        cams = multiscale_cam(model.net, batch["image"], batch["labels"])
        return {"CAM": cam_to_label(cams, threshold=0.3),
                "CAM + CRF": crf_label(batch["image"].cpu(), cam_to_probs(cams, threshold=0.3).cpu(), n_iter=10,
                                       gaussian=(3, 3), bilateral=(sxy, 13, 10))}

    return [Spec(_bb("CAM classifier", bb), CAMClassifier, dict(backbone=bb, output_stride=8, pretrained=None),
                 train=train, evaluate=cam_eval),
            Spec(_bb("DeepLab-v3+ on masks (fully supervised)", bb), FullySupervised,
                 dict(backbone=bb, output_stride=8, channels=s["head_channels"], pretrained=None), train=train,
                 evaluate=lambda m, b: m.predict(b["image"]).argmax(1))]


def _asdt(profile: str, s: dict) -> list[Spec]:
    from ..cam import cam_to_label, multiscale_cam
    from ..experiments import asdt as asdt_runs
    from ..methods import asdt, rrm
    from ..methods.asdt import ASDT, pwm_signal
    from ..methods.baselines import CAMClassifier, FullySupervised, MaskSupervised

    T, tau, image_px, bb = 150, 5, s["image_px"], s["backbone"]
    st_crf = scaled_bilateral(asdt.ST_BILATERAL, image_px)
    model = dict(backbone=bb, pretrained=None, mid=s["head_channels"], head_dilation=head_dilation(s["crop"]),
                 cam_scales=s["cam_scales"], crf_bilateral=scaled_bilateral(rrm.CAM_BILATERAL, image_px),
                 st_bilateral=st_crf, str_sigma_xy=pixels(rrm.STR_SIGMA_XY, image_px), T=T, tau=tau,
                 warmup=s["warmup"], distill="alternate")
    train = dict(optimizer=s["optimizer"], lr=s["lr"], momentum=0.9, weight_decay=s["weight_decay"])
    # one step where the seg-teacher teaches the student (B^st: a CRF of P^st) and one of the class-teacher
    seg_step = next(t for t in range(s["warmup"], s["warmup"] + T) if pwm_signal(t, T, tau))
    cls_step = next(t for t in range(s["warmup"], s["warmup"] + T) if not pwm_signal(t, T, tau))
    specs = []
    if s["cls_steps"]:
        specs.append(Spec(_bb("tag classifier", bb), CAMClassifier, dict(backbone=bb, output_stride=8, pretrained=None),
                          train=dict(optimizer=s["optimizer"], lr=1e-3, weight_decay=1e-4),
                          evaluate=lambda m, b: cam_to_label(threshold=0.3, cam=multiscale_cam(m.net, b["image"], b["labels"],
                                                                            scales=s["cam_scales"]))))
    specs += [
        Spec(_bb("ASDT (alternate)", bb), ASDT, model, steps=(seg_step, cls_step), train=train,
             evaluate=lambda m, b: asdt_runs.predictor(m, ["P^st", "P max", "P max + CRF"], crf_bilateral=st_crf)(b)),
        Spec(_bb("Ceiling: MaskSupervised DeepLab-v3+", bb), MaskSupervised,
             dict(backbone=bb, head="deeplab", pretrained=None, output_stride=8, channels=s["head_channels"]), train=train,
             evaluate=lambda m, b: asdt_runs.ceiling_predictor(m, ["seg", "seg + CRF"], crf_bilateral=st_crf)(b))]
    if profile != "quick" and s["retrain_steps"]:        # the notebook's retrain="auto"
        specs.append(Spec(_bb("DeepLab-v3+ retrained on pseudo masks", bb), FullySupervised,
                          dict(backbone=bb, output_stride=8, channels=s["head_channels"], pretrained=None),
                          train=dict(optimizer=s["optimizer"], lr=s["retrain_lr"], momentum=0.9,
                                     weight_decay=s["retrain_weight_decay"]),
                          evaluate=lambda m, b: m.predict(b["image"]).argmax(1)))
    return specs


def _ssdd(profile: str, s: dict) -> list[Spec]:
    from ..cam import confident_labels, multiscale_cam
    from ..experiments import ssdd as ssdd_runs
    from ..methods.baselines import CAMClassifier, MaskSupervised
    from ..methods.psa import PSA, psa_probs
    from ..methods.ssdd import SSDD
    from ..models import build_backbone
    from ..models.heads import CAMNet
    from ..refine.crf import dense_crf_batch

    bb, crop, image_px = s["backbone"], s["crop"], s["image_px"]
    gaussian, bilateral = ssdd_runs.PSA_GAUSSIAN, scaled_bilateral(ssdd_runs.PSA_BILATERAL, image_px)
    loop_gaussian, loop_bilateral = ssdd_runs.loop_kernels(crop // 4)
    model = dict(backbone=bb, pretrained=None, mid=s["head_channels"], dd_width=s["dd_width"],
                 head_dilation=head_dilation(crop), b_dd=0.4, b_class=1.0, alpha=0.5, bad_rule="all",
                 loop_gaussian=loop_gaussian, loop_bilateral=loop_bilateral)
    train = dict(optimizer="sgd", lr=s["lr"], momentum=0.9, weight_decay=s["weight_decay"])
    predict = dict(crf_gaussian=gaussian, crf_bilateral=bilateral, scales=s["test_scales"])

    def cls_eval(m, b):
        cams = multiscale_cam(m.net, b["image"], b["labels"], scales=s["cam_scales"])
        return confident_labels(b["image"], cams, gaussian=gaussian, bilateral=bilateral)

    def psa_eval(m, b):           # PSA's map and its CRF for the static stage (ssdd_runs.psa_knowledge)
        cam_net = CAMNet(build_backbone(bb, output_stride=8), b["labels"].shape[1])     # random weights, as the check's
        cam_net.to(b["image"].device).eval()
        probs, m_k = psa_probs(m.aff, cam_net, b["image"], b["labels"], cam_scales=s["cam_scales"])
        q = dense_crf_batch(b["image"].permute(0, 2, 3, 1), probs, n_iter=10, gaussian=gaussian, bilateral=bilateral)
        return {"m^K0": m_k, "m^A0": q.argmax(1)}

    def static_eval(m, b):        # Eq. (10): the seed at the image's resolution, then the test-time prediction
        seed = m.seed(b["image"], b["mask"], b["mask"].flip(-1), b["labels"])
        return {"seed m^D0": seed, **ssdd_runs.predictor(m, ["seg"], **predict)(b)}

    return [
        Spec(_bb("tag classifier", bb), CAMClassifier, dict(backbone=bb, output_stride=8, pretrained=None),
             train=dict(optimizer="adamw", lr=1e-3, weight_decay=1e-4), evaluate=cls_eval),
        Spec(_bb("PSA AffinityNet", bb), PSA, dict(backbone=bb, radius=5, dims=s["aff_dims"], pretrained=None),
             train=dict(optimizer="adamw", lr=1e-3, weight_decay=1e-4), evaluate=psa_eval),
        Spec(_bb("SSDD static stage", bb), SSDD, {**model, "stage": "static"}, batch="pair", train=train,
             evaluate=static_eval),
        Spec(_bb("SSDD dynamic stage", bb), SSDD, {**model, "stage": "dynamic"}, train=train,
             evaluate=lambda m, b: ssdd_runs.predictor(m, ["seg", "seg + CRF"], **predict)(b)),
        Spec(_bb("SSDD fixed (PSA / static seed rows)", bb), SSDD, {**model, "stage": "fixed"}, train=train,
             evaluate=lambda m, b: ssdd_runs.predictor(m, ["seg"], **predict)(b)),
        Spec(_bb("Ceiling: MaskSupervised DeepLab-v3+", bb), MaskSupervised,
             dict(backbone=bb, head="deeplab", pretrained=None, output_stride=8, channels=s["head_channels"]), train=train,
             evaluate=lambda m, b: ssdd_runs.predictor(m, ["seg", "seg + CRF"], **predict)(b))]


def _tscd_models(s: dict) -> tuple[dict, dict, dict]:
    """(TSCD's, AFA's model dicts without backbone, the backbones by key) as the notebook's settings cell."""
    from ..methods import tscd

    kernel_args = {"varm": dict(alpha=4.0, beta=0.01), "varm-rgb": dict(alpha=4.0)}
    common = dict(pretrained=None, output_stride=s["output_stride"], channels=s["channels"], cls_only=s["cls_only"],
                  dilations=s["dilations"], radius=s["radius"], kernel_args=kernel_args)
    tscd_model = dict(**common, samples=s["samples"], reg_sigma_xy=pixels(tscd.REG_SIGMA_XY, s["image_px"]), lambda1=0.1,
                      lambda2=0.01, view_scale=0.3, refiner="varm")
    afa_model = dict(**common, walk_from=s["walk_from"], refiner="par")
    return tscd_model, afa_model, {"mit": s["backbone"], "resnet": s["resnet"], "wr38": s["wr38"]}


def _tscd(profile: str, s: dict) -> list[Spec]:
    from ..experiments import tscd as tscd_runs
    from ..methods.afa import AFA
    from ..methods.baselines import MaskSupervised
    from ..methods.tscd import TSCD

    tscd_model, afa_model, backbone = _tscd_models(s)
    crf = scaled_bilateral(tscd_runs.CRF_BILATERAL, s["image_px"])
    train = dict(optimizer="adamw", lr=s["lr"], weight_decay=s["weight_decay"])
    cls_only = s["cls_only"]

    def ev(m, b):
        return tscd_runs.predictor(m, ["seg", "seg + CRF"], crf_bilateral=crf)(b)

    def tscd_spec(name, key):
        return Spec(_bb(name, backbone[key]), TSCD, {**tscd_model, "backbone": backbone[key]},
                    steps=(cls_only, cls_only + 1), train=train, evaluate=ev)

    def ceiling(key):
        return Spec(_bb("Ceiling: MaskSupervised SegFormer head", backbone[key]), MaskSupervised,
                    dict(backbone=backbone[key], head="segformer", pretrained=None, output_stride=s["output_stride"],
                         channels=s["channels"], freeze_norms=True), train=train, evaluate=ev)

    # AFA: one step on the CAM label, one on the label walked along the affinity (from walk_from)
    specs = [Spec(_bb("AFA", backbone["mit"]), AFA, {**afa_model, "backbone": backbone["mit"]},
                  steps=(cls_only, max(s["walk_from"], cls_only + 1)), train=train, evaluate=ev),
             tscd_spec("TSCD", "mit"), ceiling("mit"), tscd_spec("TSCD R-SCD (Table 4)", "resnet"), ceiling("resnet")]
    if s["wr38_runs"]:
        specs.append(tscd_spec("TSCD WR38-SCD (Table 4)", "wr38"))
    return specs


def _seminar(profile: str, s: dict) -> list[Spec]:
    from ..experiments import seminar as sem_runs
    from ..methods import seminar
    from ..methods.seminar import Seminar, alpha_for_run, deeplab

    steps, os_, crop = s["steps"], s["output_stride"], s["crop"]
    rates = tuple(head_dilation(crop // os_, r, paper_crop=33) for r in (6, 12, 18))
    model = dict(pretrained=None, output_stride=os_, channels=s["channels"], rates=rates, steps=steps,
                 alpha=alpha_for_run(0.999, steps), lambda_crf=1.0, lambda_pcons=200.0, lambda_pseudo=1.0,
                 crf_sigma_xy=pixels(seminar.SIGMA_XY, s["image_px"]), backbone_init=None)
    train = dict(optimizer="sgd", lr=s["lr"], momentum=0.9, weight_decay=s["weight_decay"])
    mid = (steps // 2, steps // 2 + 1)          # inside the lambda_pCons ramp: every loss weighs something

    def ev(outputs):
        return lambda m, b: sem_runs.predictor(m, outputs)(b)

    def ancillary(backbone):
        def setup(folder: Path) -> dict:          # a "fully trained" model's file: random weights of the same network
            path = folder / f"ancillary-{backbone}.pt"
            net = deeplab(backbone, num_classes(profile), output_stride=os_, channels=s["channels"], rates=rates)
            torch.save(net.state_dict(), path)
            return {"ancillary": str(path)}
        return setup

    cols = {"ResNet": s["backbone"], **({"MobileNet": s["mobilenet"]} if s["mobilenet_runs"] else {})}
    specs = []
    for col, bb in cols.items():
        specs += [Spec(_bb("Seminar pCE + CRF + pCons", bb), Seminar, {**model, "backbone": bb}, steps=mid, train=train,
                       evaluate=ev(["student", "teacher"])),
                  Spec(_bb("Seminar primary (all four, with ancillary)", bb), Seminar,
                       {**model, "backbone": bb, "ancillary": None}, steps=mid, train=train,
                       evaluate=ev(["student", "teacher"]), setup=ancillary(bb))]
    specs.append(Spec(_bb("Seminar full supervision", s["backbone"]), Seminar,
                      {**model, "backbone": s["backbone"], "crf": False, "pcons": False, "full_supervision": True},
                      steps=mid, train=train, evaluate=ev(["student"])))
    return specs


def _rml(profile: str, s: dict) -> list[Spec]:
    from ..experiments import rml as rml_runs
    from ..experiments import tscd as tscd_runs
    from ..methods.baselines import MaskSupervised, mask_predictor
    from ..methods.rml import RML

    bb, cls_only = s["backbone"], s["cls_only"]
    crf = scaled_bilateral(tscd_runs.CRF_BILATERAL, s["image_px"])
    model = dict(backbone=bb, pretrained=None, output_stride=s["output_stride"], channels=s["channels"], cls_only=cls_only,
                 dilations=s["dilations"], radius=s["radius"], context_channels=s["context_channels"], alpha=0.1,
                 beta1=100.0, beta2=100.0, view_scale=0.3)
    train = dict(optimizer="adamw", lr=s["lr"], weight_decay=s["weight_decay"])
    return [Spec(_bb("RML", bb), RML, model, steps=(cls_only, cls_only + 1), train=train,
                 evaluate=lambda m, b: rml_runs.predictor(m, ["pred", "pred + CRF", "pred, GT tags"], crf_bilateral=crf)(b)),
            Spec(_bb("Ceiling: MaskSupervised linear head", bb), MaskSupervised,
                 dict(backbone=bb, head="linear", pretrained=None, output_stride=s["output_stride"], freeze_norms=True),
                 train=train, evaluate=lambda m, b: mask_predictor(m)(b))]


_MODELS = {"basics": _basics, "asdt": _asdt, "ssdd": _ssdd, "tscd": _tscd, "seminar": _seminar, "rml": _rml}


def models(notebook: str, profile: str) -> list[Spec]:
    """The distinct networks ``notebook`` trains at ``profile`` (each method / backbone / code path once),
    with random weights (``pretrained=None``): a list of :class:`Spec` (label, method, keyword arguments of
    ``method(num_classes=C, **kwargs)``, ...). Nothing is built here."""
    return _MODELS[notebook](profile, _check(notebook, profile))


# -- the check -------------------------------------------------------------------------------------------

def make_batch(batch_size: int, size: tuple[int, int], classes: int, *, kind: str = "plain", device="cpu",
               seed: int = 0) -> dict:
    """A plausible random batch as the loaders give it: "image" uint8 (B, 3, H, W); "labels" float multi-hot
    (B, C-1), one or two tags; "mask" int64 (B, H, W): a box of each tagged class on background, a 255 band at
    their edges and on the crop's padding (for ``kind="pair"``: (B, 2, H, W), SSDD's knowledge and advice);
    "valid" bool (B, H, W), False on a padded strip at the bottom; "clicks" [(K, 3) y, x, class] and "click_mask"."""
    from ..data.folder import IGNORE, clicks_to_mask

    g = torch.Generator().manual_seed(seed)
    h, w = size
    images = torch.randint(0, 256, (batch_size, 3, h, w), dtype=torch.uint8, generator=g)
    masks = torch.zeros(batch_size, h, w, dtype=torch.int64)
    valid = torch.ones(batch_size, h, w, dtype=torch.bool)
    tags = torch.zeros(batch_size, classes - 1)
    clicks = []
    for i in range(batch_size):
        present = torch.randperm(classes - 1, generator=g)[:1 + i % 2] + 1
        pts = [[h - 1 - h // 8, 0, 0], [0, w - 1, 0]]          # two background clicks
        for k, c in enumerate(present.tolist()):
            y0, x0 = (h // 8) * (1 + k), (w // 8) * (1 + 2 * k)
            y1, x1 = min(h, y0 + h // 2), min(w, x0 + w // 3)
            masks[i, y0:y1, x0:x1] = c
            masks[i, y0:y1, max(0, x0 - 1)] = IGNORE                 # an ignore band at an edge
            images[i, :, y0:y1, x0:x1] = torch.tensor([40 * c, 255 - 30 * c, 120])[:, None, None].to(torch.uint8)
            tags[i, c - 1] = 1
            pts.append([(y0 + y1) // 2, (x0 + x1) // 2, c])
        pad = max(1, h // 10)                                          # the crop reached past the image
        valid[i, h - pad:] = False
        masks[i, h - pad:] = IGNORE
        images[i, :, h - pad:] = 0
        clicks.append(torch.tensor(pts, dtype=torch.int64))
    batch = {"image": images, "labels": tags, "mask": masks, "valid": valid, "clicks": clicks,
             "click_mask": torch.stack([clicks_to_mask(c, (h, w)) for c in clicks]),
             "name": [f"shape-{i}" for i in range(batch_size)]}
    if kind == "pair":           # [m^K0, m^A0]: the advice differs from the knowledge at the boxes' right halves
        advice = masks.clone()
        advice[..., :, w // 2:] = torch.where(masks[..., :, w // 2:] == IGNORE, IGNORE, 0)
        batch["mask"] = torch.stack([masks, advice], 1)
    return {k: v.to(device) if torch.is_tensor(v) else v for k, v in batch.items()}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _train_steps(model, spec: Spec, batch: dict, device: torch.device, amp: bool) -> float:
    """Two training steps as :func:`wsss.train.train` runs them (``amp``: under bfloat16 autocast); the seconds
    of the second."""
    from ..train import TrainConfig, build_optimizer, training_step

    cfg = TrainConfig(steps=max(spec.steps) + 2, batch_size=batch["image"].shape[0], **(spec.train or {}))
    optimizer = build_optimizer(model, cfg)
    model.train()
    seconds = 0.0
    for step in spec.steps:
        _sync(device)
        start = time.perf_counter()
        training_step(model, batch, step, optimizer, amp=amp, grad_clip=cfg.grad_clip, desc="shape check")
        _sync(device)
        seconds = time.perf_counter() - start
    return seconds


def _check_prediction(out, size: tuple[int, int]) -> None:
    for name, labels in (out.items() if isinstance(out, dict) else [("prediction", out)]):
        if not torch.is_tensor(labels) or labels.ndim < 3 or tuple(labels.shape[-2:]) != tuple(size):
            shape = tuple(labels.shape) if torch.is_tensor(labels) else type(labels).__name__
            raise ValueError(f"evaluation output {name!r} is {shape}, not (1, {size[0]}, {size[1]}) labels of the image")


def shape_check(notebook: str, profile: str, device: str = "cpu", batch_size: int = 2, *,
                only: str | None = None, amp: bool | None = None) -> dict[str, float]:
    """Each network of :func:`models`: two training steps on a random batch of ``batch_size`` at the profile's
    crop, then one evaluation with the notebook's predictor on one image at the profile's image size, on
    ``device``. Returns {label: seconds of a training step}. Nothing is caught: a failure raises
    :class:`ShapeCheckError` naming the notebook, profile and model (the original error chained).
    ``only``: check just the models whose label contains this text. ``amp``: the training steps under bfloat16
    autocast; None: as :func:`wsss.train.train` does, on CUDA only (True on a CPU tries CPU autocast's bfloat16
    there, a stand-in for the GPU's dtypes: its list of ops in bfloat16 is not CUDA's)."""
    from ..train import resolve_device, seed_everything

    s = _check(notebook, profile)
    dev = resolve_device(device)
    classes, crop = num_classes(profile), s["crop"]
    image_size = eval_size(profile, s["image_px"])
    specs = [m for m in models(notebook, profile) if only is None or only in m.label]
    timings: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="wsss-shapes-") as folder:
        for spec in specs:
            where = (f"{notebook} at {profile}, {spec.label} (crop {crop}, batch {batch_size}, {dev}"
                     f"{', bfloat16 autocast' if (dev.type == 'cuda' if amp is None else amp) else ''})")
            model = None
            try:
                seed_everything(0)
                kwargs = {**spec.kwargs, **(spec.setup(Path(folder)) if spec.setup else {})}
                model = spec.method(num_classes=classes, **kwargs).to(dev)
                batch = make_batch(batch_size, (crop, crop), classes, kind=spec.batch, device=dev)
                timings[spec.label] = _train_steps(model, spec, batch, dev, dev.type == "cuda" if amp is None else amp)
                if spec.evaluate is not None:
                    model.eval()
                    one = make_batch(1, image_size, classes, device=dev, seed=1)
                    with torch.no_grad():
                        _check_prediction(spec.evaluate(model, one), image_size)
            except Exception as err:
                raise ShapeCheckError(f"{where}: {type(err).__name__}: {err}") from err
            finally:
                del model
                gc.collect()
                if dev.type == "cuda":
                    torch.cuda.empty_cache()
    return timings


# -- what a run of the notebook costs ----------------------------------------------------------------------

def _run(name: str, steps: int, batch: int, model: str) -> dict:
    return {"name": name, "steps": int(steps), "batch": int(batch), "model": model}


def _plan_basics(s: dict) -> list[dict]:
    m = _basics("", s)
    return [_run("tag classifier", s["cls_steps"], s["batch"], m[0].label),
            _run("fully supervised DeepLab-v3+", s["seg_steps"], s["batch"], m[1].label)]


def _plan_asdt(s: dict, profile: str) -> list[dict]:
    labels = [m.label for m in _asdt(profile, s)]
    asdt_label = next(x for x in labels if x.startswith("ASDT"))
    ceiling = next(x for x in labels if x.startswith("Ceiling"))
    seeds, after = range(s["seeds"]), s["steps"] - s["warmup"]
    runs = [_run("tag classifier", s["cls_steps"], s["cls_batch"], labels[0])] if s["cls_steps"] else []
    runs += [_run(f"shared warm-up seed={k}", s["warmup"], s["batch"], asdt_label) for k in seeds]
    runs += [_run(f"{mode} seed={k}", after, s["batch"], asdt_label) for k in seeds
             for mode in ("class", "seg", "max", "alternate")]
    runs.append(_run("mean", after, s["batch"], asdt_label))
    runs += [_run(f"T={t}", after, s["batch"], asdt_label) for t in s["fig6_T"] if t != 150]
    runs += [_run(f"tau={r}", after, s["batch"], asdt_label) for r in s["fig6_tau"] if r != 5]
    runs.append(_run("Ceiling (full masks)", s["steps"], s["batch"], ceiling))
    if s["table5_runs"]:
        runs += [_run(name, s["steps"], s["batch"], asdt_label) for name in ("no R^ct", "no L_str")]
    if profile != "quick" and s["retrain_steps"]:
        runs.append(_run("DeepLab retrain on the pseudo masks", s["retrain_steps"], s["retrain_batch"], labels[-1]))
    return runs


def _plan_ssdd(s: dict, profile: str) -> list[dict]:
    from ..train import steps_for_epochs

    cls_l, psa_l, static_l, dynamic_l, fixed_l, ceiling_l = (m.label for m in _ssdd(profile, s))
    n = train_images(profile)
    static = steps_for_epochs(n, s["static_batch"], s["static_epochs"])
    dynamic = steps_for_epochs(n, s["dynamic_batch"], s["dynamic_epochs"])
    a1 = steps_for_epochs(n, s["dynamic_batch"], s["tableA1_epochs"])
    points = [(s["fig6_w_g"], w) for w in s["fig6_w_rgb"]]
    if (3, 10) not in points:
        points.insert(0, (3, 10))
    runs = [_run("tag classifier", s["cls_steps"], s["cls_batch"], cls_l),
            _run("AffinityNet", s["aff_steps"], s["aff_batch"], psa_l)]
    runs += [_run(f"static w_g={g} w_rgb={w}", static, s["static_batch"], static_l) for g, w in points]
    for k in range(s["seeds"]):
        runs += [_run(f"PSA seed={k}", dynamic, s["dynamic_batch"], fixed_l),
                 _run(f"static SSDD seed={k}", dynamic, s["dynamic_batch"], fixed_l),
                 _run(f"SSDD seed={k}", dynamic, s["dynamic_batch"], dynamic_l)]
    runs.append(_run("Ceiling (full masks)", dynamic, s["dynamic_batch"], ceiling_l))
    if a1 != dynamic:
        runs.append(_run("Table A-1 default", a1, s["dynamic_batch"], dynamic_l))
    sweeps = {"b_dd": ("tableA1_bdd", 0.4), "b_class": ("tableA1_bclass", 1.0), "alpha": ("tableA1_alpha", 0.5)}
    runs += [_run(f"{name}={v}", a1, s["dynamic_batch"], dynamic_l)
             for name, (key, default) in sweeps.items() for v in s[key] if v != default]
    return runs


def _plan_tscd(s: dict, profile: str) -> list[dict]:
    specs = {m.label: m for m in _tscd(profile, s)}
    _, _, backbone = _tscd_models(s)
    label = {("AFA", "mit"): _bb("AFA", backbone["mit"]), ("TSCD", "mit"): _bb("TSCD", backbone["mit"]),
             ("TSCD", "resnet"): _bb("TSCD R-SCD (Table 4)", backbone["resnet"]),
             ("TSCD", "wr38"): _bb("TSCD WR38-SCD (Table 4)", backbone["wr38"]),
             ("ceiling", "mit"): _bb("Ceiling: MaskSupervised SegFormer head", backbone["mit"]),
             ("ceiling", "resnet"): _bb("Ceiling: MaskSupervised SegFormer head", backbone["resnet"])}
    assert set(label.values()) >= set(specs), "tscd: a model without a run"
    steps, cls_only, b, seeds = s["steps"], s["cls_only"], s["batch"], range(s["seeds"])
    keys = [("mit", k) for k in seeds] + [("resnet", 0)] + ([("wr38", 0)] if s["wr38_runs"] else [])
    runs = [_run(f"shared warm-up {key} seed={k}", cls_only, b, label["TSCD", key]) for key, k in keys]
    for k in seeds:
        runs += [_run(f"AFA seed={k}", steps - cls_only, b, label["AFA", "mit"]),
                 _run(f"TSCD seed={k}", steps - cls_only, b, label["TSCD", "mit"])]
    runs += [_run("Ceiling (full masks)", steps, b, label["ceiling", "mit"]),
             _run("Ceiling, ResNet (full masks)", steps, b, label["ceiling", "resnet"])]
    runs += [_run(row, steps - cls_only, b, label["TSCD", "mit"])
             for row in ("Baseline", "+VARM", "+VARM +SCD", "+VARM +SCD +L_aux", "TSCD w/o SCD")]
    runs += [_run(row, steps - cls_only, b, label["TSCD", "resnet"]) for row in ("R-Base", "R-SCD")]
    if s["wr38_runs"]:
        runs += [_run(row, steps - cls_only, b, label["TSCD", "wr38"]) for row in ("WR38-Base", "WR38-SCD")]
    if s["table5_runs"]:
        runs += [_run(f"Baseline + {r}", steps - cls_only, b, label["TSCD", "mit"]) for r in ("pamr", "par", "varm-rgb")]
    return runs


def _plan_seminar(s: dict, profile: str) -> list[dict]:
    steps, b = s["steps"], s["batch"]
    cols = {"ResNet": s["backbone"], **({"MobileNet": s["mobilenet"]} if s["mobilenet_runs"] else {})}
    single = {col: _bb("Seminar pCE + CRF + pCons", bb) for col, bb in cols.items()}
    primary = {col: _bb("Seminar primary (all four, with ancillary)", bb) for col, bb in cols.items()}
    runs = []
    if s["pretrained"] is None:           # no stand-in or ImageNet weights: a tag classifier per backbone
        runs += [_run(f"tag classifier {col}", s["cls_steps"], s["cls_batch"], single[col]) for col in cols]
    for k in range(s["seeds"]):
        runs += [_run(f"pCE seed={k}", steps, b, single["ResNet"]),
                 _run(f"pCE + CRF + pCons seed={k}", steps, b, single["ResNet"])]
    runs += [_run(row, steps, b, single["ResNet"]) for row in ("pCE + CRF", "pCE + pCons")]
    runs.append(_run("full supervision", steps, b, _bb("Seminar full supervision", s["backbone"])))
    runs += [_run(f"alpha={a}", steps, b, single["ResNet"]) for a in s["fig5b_alpha"] if a != 0.999]
    runs += [_run(f"lambda_pCons={lam:g}", steps, b, single["ResNet"]) for lam in s["fig5c_lambda"] if lam != 200.0]
    if "MobileNet" in cols:
        runs += [_run(f"MobileNet {row}", steps, b, single["MobileNet"])
                 for row in ("pCE", "pCE + CRF", "pCE + pCons", "pCE + CRF + pCons")]
    runs += [_run(f"all four seed={k}", steps, b, primary["ResNet"]) for k in range(s["seeds"])]
    runs.append(_run("primary at 1/6", max(1, steps // 6), b, primary["ResNet"]))
    if "MobileNet" in cols:
        runs.append(_run("MobileNet all four", steps, b, primary["MobileNet"]))
    runs += [_run(f"self-generation, LR {how}", steps, b, primary["ResNet"]) for how in ("reset", "unchanged")]
    runs += [_run(f"chain {k}", steps, b, primary["ResNet"]) for k in range(2, s["chain"] + 1)]
    return runs


def _plan_rml(s: dict, profile: str) -> list[dict]:
    rml_l, ceiling_l = (m.label for m in _rml(profile, s))
    steps, cls_only, b, seeds = s["steps"], s["cls_only"], s["batch"], range(s["seeds"])
    after = steps - cls_only
    runs = [_run(f"shared warm-up seed={k}", cls_only, b, rml_l) for k in seeds]
    for k in seeds:
        runs += [_run(f"Baseline seed={k}", after, b, rml_l), _run(f"RML seed={k}", after, b, rml_l)]
    runs.append(_run("Ceiling (full masks)", steps, b, ceiling_l))
    runs += [_run(row, after, b, rml_l) for row in ("+CIML", "+CIML +MFML", "(a) w/o CIML", "(b) w/o multi-scale context fusion",
                                                   "(c) w/o feature-level mutual learning loss", "(d) w/o pixel-level MI loss",
                                                   "(e) w/o affinity-aware contrastive loss")]
    if s["sensitivity_runs"]:
        defaults = {"alpha": 0.1, "beta1": 100.0, "beta2": 100.0}
        runs += [_run(f"{key}={v}", after, b, rml_l) for key, values in s["sensitivity"].items() for v in values
                 if v != defaults[key]]
    return runs


def run_plan(notebook: str, profile: str) -> list[dict]:
    """The trainings a run of ``notebook`` at ``profile`` makes, as the notebook's cells build them with their
    default parameters: [{"name", "steps", "batch", "model"}] ("model": the :func:`models` label whose step it
    is). Approximations: a shared warm-up counts once per seed and backbone and its runs count their steps
    after it (its classification-only steps are timed as the method's full step, an overestimate); runs that switch losses off (pCE alone, a baseline without SCD) count as the full method's
    step; Seminar's tag classifiers (only without pretrained weights) as a Seminar step; evaluations, CAM and
    pseudo-label passes between the trainings, and data loading are not counted. SSDD's epochs are counted
    on the profile's train images (the benchmark's, or VOC's 10,582 at ``paper``)."""
    s = _check(notebook, profile)
    if notebook == "basics":
        return _plan_basics(s)
    return {"asdt": _plan_asdt, "ssdd": _plan_ssdd, "tscd": _plan_tscd, "seminar": _plan_seminar,
            "rml": _plan_rml}[notebook](s, profile)


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 2 * 3600:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def plan_text(notebook: str, profile: str, step_seconds: dict[str, float] | None = None, *, device: str | None = None,
              measured_batch: int = 2) -> str:
    """The run plan of ``notebook`` at ``profile`` as text: each run, its steps and batch, the total, and the
    estimated time = each run's steps x the measured seconds per step of its model, scaled linearly from
    ``measured_batch`` to the run's batch (an upper bound on a GPU, which a small batch leaves idle).
    ``step_seconds``: {model label: seconds} of :func:`shape_check` at ``measured_batch``; None measures them
    now on ``device`` (default "cuda" where available, else "cpu"). On CUDA the line says "estimated GPU
    time", elsewhere the device it was measured on."""
    plan = run_plan(notebook, profile)
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if step_seconds is None:
        step_seconds = shape_check(notebook, profile, device, measured_batch)
    dev = torch.device(device)
    where = "estimated GPU time" if dev.type == "cuda" else \
        f"estimated time on this {dev.type} ({torch.get_num_threads()} thread{'s' * (torch.get_num_threads() > 1)}; " \
        "a GPU takes a fraction of it)"
    width = max(len(r["name"]) for r in plan)
    lines = [f"{notebook} at {profile}: {len(plan)} trainings (steps x batch; seconds per step measured at batch "
             f"{measured_batch} on {dev.type}, scaled to the run's batch)"]
    total_steps, total_seconds, unknown = 0, 0.0, set()
    for r in plan:
        sec = step_seconds.get(r["model"])
        if sec is None:
            unknown.add(r["model"])
            est = ""
        else:
            run_seconds = r["steps"] * sec * r["batch"] / measured_batch
            total_seconds += run_seconds
            est = f"  ~{_duration(run_seconds)}"
        total_steps += r["steps"]
        lines.append(f"  {r['name']:<{width}}  {r['steps']:>7} steps x {r['batch']:>3}{est}   ({r['model']})")
    lines.append(f"total: {total_steps} steps; {where}: {_duration(total_seconds)} of training steps "
                 "(evaluations and label passes between them not counted)")
    if unknown:
        lines.append(f"no step time measured for {sorted(unknown)}: their runs are not in the estimate")
    return "\n".join(lines)


def dry_run(notebook: str, profile: str = "full", device: str = "auto", batch_size: int = 2) -> str:
    """:func:`plan_text` with the step times of a :func:`shape_check` on ``device`` ("auto": CUDA where
    available); what ``python -m wsss.run_notebooks --dry-run`` prints for each notebook."""
    from ..train import resolve_device

    dev = str(resolve_device(device))
    timings = shape_check(notebook, profile, dev, batch_size)
    return plan_text(notebook, profile, timings, device=dev, measured_batch=batch_size)


__all__ = ["NOTEBOOKS", "ShapeCheckError", "Spec", "dry_run", "make_batch", "models", "plan_text", "run_plan",
           "shape_check"]
