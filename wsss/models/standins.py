"""Stand-in pretrained backbones: the miniature of ImageNet pretraining, shared by every notebook.

Every paper starts its encoder from ImageNet weights. The embedded benchmark has no ImageNet, so each
small backbone gets one *stand-in*: a CAM classifier (the backbone, global average pooling, a 1x1
classifier; multi-label soft margin loss, as :class:`wsss.methods.baselines.CAMClassifier`) trained on
the image tags of a classification set drawn from the benchmark's generator with a random stream that no
benchmark split uses (``[seed, 2, STREAM_VERSION]``; the splits use offsets 0 and 1), with more images than
any benchmark, more steps than a run can afford and every parameter trainable (LayerNorms included).
Only the backbone's weights are kept: each method builds its own heads, as the papers do on ImageNet
weights. A method is then trained and evaluated on the benchmark (its own train / val split, never seen here).

The weights of the four tiny backbones (resnet-tiny, resnet38-tiny, mit-tiny, mobilenet-tiny) are
committed in ``wsss/models/standin_weights/`` with a record (``<name>.json``: the recipe, the data stream, the
loss, the CAM mIoU on the quick benchmark's val split, the time, the thread count and the sha256 of the
weights). Other backbones (the ``full`` profile's resnet18, mit_b0, mobilenet_v2) are built once on first
use into ``$WSSS_CACHE/standins`` (default ``~/.cache/wsss``), with a progress bar, by the same recipe at
the full benchmark's size. ``pretrained="standin"`` (see :func:`wsss.models.build_backbone`) loads them.

    python -m wsss.models.standins                    # check the committed stand-ins (sha256, record)
    python -m wsss.models.standins --build mit-tiny   # rebuild one (replaces the committed file: asks --force)
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

COMMITTED = Path(__file__).with_name("standin_weights")
RECIPE_VERSION = 1
TINY = ("resnet-tiny", "resnet38-tiny", "mit-tiny", "mobilenet-tiny")


@dataclass(frozen=True)
class Recipe:
    """How a stand-in is trained: data drawn from the generator, the schedule, the optimiser."""
    benchmark: str = "quick"         # generator profile whose image size and object sizes the set uses
    images: int = 16000              # 20x the quick benchmark's 800 training images
    stream_seed: int = 0             # the classification set's stream is [stream_seed, 2, STREAM_VERSION]
    steps: int = 3000
    batch_size: int = 32
    crop: int = 56
    scale: tuple = (0.7, 1.3)        # random rescale range before the crop (flip too)
    lr: float = 1e-3                 # AdamW, backbone x1 and classifier x10, poly decay after a linear warm-up
    weight_decay: float = 0.01
    warmup: int = 150
    output_stride: int = 8
    pooling: str = "gap"             # "gap" (CAM's global average pooling) or "gmp" (AFA's global max pooling)
    seed: int = 0                    # the model's initialisation and the batch order


RECIPES = {name: Recipe() for name in TINY}
RECIPES.update({name: Recipe(benchmark="full", images=20000, crop=140, steps=4000)
                for name in ("resnet18", "mit_b0", "mobilenet_v2")})


class ClassificationSet(torch.utils.data.Dataset):
    """``count`` images rendered by the benchmark's generator from the stream ``[seed, 2, STREAM_VERSION]``
    (no benchmark split draws from it), held in memory: items as :class:`wsss.data.VOCLayoutDataset`'s
    ("image" uint8 (3, H, W), "mask", "labels" multi-hot foreground tags (C - 1,), "name"), with an optional ``transform``."""

    def __init__(self, count: int, *, benchmark: str = "quick", seed: int = 0, transform=None, progress: bool = True):
        from tqdm import tqdm
        from ..data.synthetic import CLASSES, PROFILES, STREAM_VERSION, render_image
        rng = np.random.default_rng([seed, 2, STREAM_VERSION])
        prof = PROFILES[benchmark]
        self.num_classes, self.transform = len(CLASSES), transform
        self.images = np.empty((count, 3, prof.image_size, prof.image_size), np.uint8)
        self.masks = np.empty((count, prof.image_size, prof.image_size), np.uint8)
        self.labels = np.zeros((count, self.num_classes - 1), np.float32)
        for i in tqdm(range(count), desc=f"stand-in set ({benchmark}, {count} images)", disable=not progress):
            image, mask, _, present = render_image(rng, prof)
            self.images[i], self.masks[i] = image.transpose(2, 0, 1), mask
            self.labels[i, np.asarray(present, dtype=np.int64) - 1] = 1     # foreground tags (C - 1,)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> dict:
        sample = {"image": torch.from_numpy(self.images[i]), "mask": torch.from_numpy(self.masks[i].astype(np.int64)),
                  "labels": torch.from_numpy(self.labels[i]), "name": f"standin_{i:05d}"}
        return self.transform(sample) if self.transform is not None else sample


class _TagClassifier(torch.nn.Module):
    """The stand-in's training step: :class:`wsss.models.heads.CAMNet` (backbone + GAP + bias-free 1x1
    classifier) under the multi-label soft margin loss on the tags (as ImageNet classifiers are trained,
    one label set per image)."""

    def __init__(self, backbone: str, num_classes: int, *, output_stride: int = 8, pooling: str = "gap"):
        super().__init__()
        from .backbones import build_backbone
        from .heads import CAMNet
        if pooling not in ("gap", "gmp"):
            raise ValueError(f"pooling={pooling!r}: choose 'gap' or 'gmp'")
        self.net, self.pooling = CAMNet(build_backbone(backbone, output_stride=output_stride), num_classes - 1), pooling

    def forward(self, batch: dict, step: int = 0) -> dict:
        from ..data.transforms import normalize
        from ..losses import multilabel_soft_margin
        out = self.net(normalize(batch["image"]))
        logits = out["logits"] if self.pooling == "gap" else out["cam"].amax(dim=(2, 3))
        return {"loss": multilabel_soft_margin(logits, batch["labels"])}

    def param_groups(self) -> list[dict]:
        return self.net.param_groups()


def cache_dir() -> Path:
    return Path(os.environ.get("WSSS_CACHE", Path.home() / ".cache" / "wsss")).expanduser() / "standins"


def sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def files(name: str) -> tuple[Path, Path]:
    """(weights, record) of backbone ``name``'s stand-in: the committed pair for the tiny backbones, else the cache's."""
    folder = COMMITTED if name in TINY else cache_dir()
    return folder / f"{name}.pt", folder / f"{name}.json"


def record(name: str, *, build: bool = True) -> dict:
    """The record of ``name``'s stand-in (recipe, loss, CAM mIoU, time, sha256), after :func:`weights` has checked
    (or, for a non-tiny backbone with ``build``, built) it."""
    weights(name, build=build)
    return json.loads(files(name)[1].read_text())


def weights(name: str, *, build: bool = True, device: str = "auto") -> Path:
    """The checked weights file of ``name``'s stand-in. A committed file whose sha256 differs from its record
    raises a ValueError; a missing stand-in of a non-tiny backbone is built first (``build=True``)."""
    from .backbones import BACKBONES
    if name not in BACKBONES:
        raise ValueError(f"pretrained='standin': {name!r} is not a known backbone; choose one of {BACKBONES}")
    path, rec = files(name)
    if name not in TINY and path.is_file() and (not rec.is_file() or
                                                json.loads(rec.read_text()).get("recipe_version") != RECIPE_VERSION):
        print(f"pretrained='standin': the cached stand-in {path} has no record of this recipe (version "
              f"{RECIPE_VERSION}, an interrupted or older build); it is built again", file=sys.stderr)
        path.unlink()
    if not path.is_file():
        if name in TINY:
            raise FileNotFoundError(f"pretrained='standin': the committed stand-in {path} is missing (a partial "
                                    f"checkout?); rebuild it with `python -m wsss.models.standins --build {name}`")
        if name not in RECIPES or not build:
            raise FileNotFoundError(f"pretrained='standin': no stand-in for {name} at {path}"
                                    + ("" if name in RECIPES else f"; stand-ins exist for {sorted(RECIPES)}"))
        print(f"pretrained='standin': building the stand-in for {name} once into {path.parent} "
              f"({RECIPES[name].steps} steps; minutes on a GPU)", file=sys.stderr)
        build_standin(name, device=device)
    expected = json.loads(rec.read_text())["sha256"] if rec.is_file() else None
    if expected != sha256(path):
        fix = (f"restore it (`git checkout {path}`) or rebuild it with `python -m wsss.models.standins --build {name} "
               f"--force`" if name in TINY else f"delete it; it is built again on first use")
        raise ValueError(f"pretrained='standin': {path} does not match the sha256 in {rec} ({expected}); {fix}")
    return path


@torch.no_grad()
def cam_quality(classifier, benchmark: str = "quick", *, threshold: float = 0.3, device="cpu") -> dict:
    """CAM pseudo-label mIoU of a trained classifier on the val split of benchmark ``benchmark`` (seed 0): the CAM of
    :func:`wsss.cam.multiscale_cam` (scales 1, 0.5, 1.5, 2 with flips) restricted to the true tags, background
    where every CAM is below ``threshold`` (basics' default 0.3). Returns {"miou", "per_class", "threshold"}."""
    from ..cam import cam_to_label, multiscale_cam
    from ..data import VOCLayoutDataset
    from ..data.synthetic import ensure_benchmark
    from ..evaluate import evaluate
    val = VOCLayoutDataset(ensure_benchmark(profile=benchmark, seed=0, progress=False), "val")
    net = classifier.net.eval()

    def predict(batch):
        return {"CAM": cam_to_label(multiscale_cam(net, batch["image"], batch["labels"]), threshold=threshold)}
    cm = evaluate(predict, val, batch_size=32, device=device)["CAM"]
    return {"miou": cm.miou(), "per_class": [round(v, 4) for v in cm.iou().tolist()], "threshold": threshold,
            "benchmark": benchmark}


def build_standin(name: str, *, recipe: Recipe | None = None, out: Path | None = None, device: str = "auto",
                  progress: bool = True) -> dict:
    """Train ``name``'s stand-in by ``recipe`` (default :data:`RECIPES`) and write ``<out>/<name>.pt`` (the
    backbone's state dict) and ``<name>.json`` (its record); returns the record. The caller's random streams
    (torch's CPU generator, numpy's, Python's) are left as they were."""
    import random
    recipe = recipe or RECIPES[name]
    weights_file, record_file = (Path(out) / f"{name}.pt", Path(out) / f"{name}.json") if out else files(name)
    states = random.getstate(), np.random.get_state()
    with torch.random.fork_rng(devices=[]):           # a build on first use leaves the caller's random streams as they were
        try:
            return _build(name, recipe, weights_file, record_file, device, progress)
        finally:
            random.setstate(states[0])
            np.random.set_state(states[1])


def _build(name: str, recipe: Recipe, weights_file: Path, record_file: Path, device: str, progress: bool) -> dict:
    """The training of :func:`build_standin`."""
    from ..data.transforms import TrainTransform
    from ..train import TrainConfig, resolve_device, seed_everything, train
    from .. import reproducible
    t0 = time.perf_counter()
    data = ClassificationSet(recipe.images, benchmark=recipe.benchmark, seed=recipe.stream_seed,
                             transform=TrainTransform(recipe.crop, scale=tuple(recipe.scale)), progress=progress)
    render_seconds = time.perf_counter() - t0
    seed_everything(recipe.seed)
    classifier = _TagClassifier(name, data.num_classes, output_stride=recipe.output_stride, pooling=recipe.pooling)
    cfg = TrainConfig(steps=recipe.steps, batch_size=recipe.batch_size, optimizer="adamw", lr=recipe.lr,
                      weight_decay=recipe.weight_decay, lr_warmup=recipe.warmup, seed=recipe.seed, device=device,
                      log_every=50, progress=progress)
    history = train(classifier, data, cfg, desc=f"stand-in {name}")
    train_seconds = time.perf_counter() - t0 - render_seconds
    dev = resolve_device(device)
    quality = cam_quality(classifier, recipe.benchmark, device=dev) if recipe.benchmark in ("quick", "full") else None
    weights_file.parent.mkdir(parents=True, exist_ok=True)
    state = {k[len("backbone."):]: v.detach().cpu().contiguous()
             for k, v in classifier.net.state_dict().items() if k.startswith("backbone.")}
    tmp = weights_file.with_suffix(f".pt.{os.getpid()}.tmp")
    torch.save(state, tmp)
    losses = [h["loss"] for h in history]
    rec = {"backbone": name, "recipe_version": RECIPE_VERSION, "recipe": asdict(recipe),
           "data": f"generator profile {recipe.benchmark!r}, {recipe.images} images from stream "
                   f"[{recipe.stream_seed}, 2, STREAM_VERSION] (the benchmark's splits use offsets 0 and 1)",
           "parameters": sum(v.numel() for v in state.values()),
           "loss_first": losses[0], "loss_last": sum(losses[-5:]) / len(losses[-5:]),
           "loss_curve": [[h["step"], round(h["loss"], 4)] for h in history],
           "cam_val": quality, "device": str(dev), "threads": torch.get_num_threads(),
           "reproducible": reproducible.describe(), "render_seconds": round(render_seconds, 1),
           "train_seconds": round(train_seconds, 1), "torch": torch.__version__, "sha256": sha256(tmp)}
    tmp_rec = record_file.with_suffix(f".json.{os.getpid()}.tmp")
    tmp_rec.write_text(json.dumps(rec, indent=1) + "\n")
    os.replace(tmp, weights_file)                     # the weights, then their record: a file without a record is rebuilt
    os.replace(tmp_rec, record_file)
    return rec


def check(names=TINY) -> list[str]:
    """One line per stand-in: its sha256 check and what its record says."""
    lines = []
    for name in names:
        try:
            weights(name, build=False)
            r = record(name)
            cam = f"CAM val mIoU {100 * r['cam_val']['miou']:.1f}" if r.get("cam_val") else "no CAM score"
            lines.append(f"{name}: ok ({r['parameters']} parameters, {r['recipe']['steps']} steps, loss "
                         f"{r['loss_first']:.3f} -> {r['loss_last']:.3f}, {cam}, {r['train_seconds']:.0f} s on "
                         f"{r['device']} with {r['threads']} threads)")
        except (FileNotFoundError, ValueError) as err:
            lines.append(f"{name}: {err}")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m wsss.models.standins", description=__doc__.split("\n\n")[0])
    parser.add_argument("--build", nargs="+", metavar="BACKBONE", help="train these stand-ins")
    parser.add_argument("--force", action="store_true", help="replace a committed stand-in")
    parser.add_argument("--out", help="write into this folder instead (nothing committed is touched)")
    parser.add_argument("--steps", type=int, help="override the recipe's steps (a probe; recorded)")
    parser.add_argument("--pooling", choices=("gap", "gmp"), help="override the recipe's pooling (a probe; recorded)")
    parser.add_argument("--device", default="auto")
    args = parser.parse_args(argv)
    if not args.build:
        lines = check()
        print("\n".join(lines))
        return 0 if all(": ok" in line for line in lines) else 1
    for name in args.build:                          # every name checked before any training starts
        if name not in RECIPES:
            parser.error(f"--build {name}: no recipe; stand-ins exist for {sorted(RECIPES)}")
        target = files(name)[0]
        if args.out is None and name in TINY and target.is_file() and not args.force:
            parser.error(f"{target} is committed; pass --force to replace it, or --out DIR to write elsewhere")
    for name in args.build:
        overrides = {k: v for k, v in (("steps", args.steps), ("pooling", args.pooling)) if v is not None}
        recipe = Recipe(**{**asdict(RECIPES[name]), **overrides})
        rec = build_standin(name, recipe=recipe, out=Path(args.out) if args.out else None, device=args.device)
        cam = f", CAM val mIoU {100 * rec['cam_val']['miou']:.1f}" if rec["cam_val"] else ""
        print(f"{name}: loss {rec['loss_first']:.3f} -> {rec['loss_last']:.3f}{cam}, {rec['train_seconds']:.0f} s "
              f"({rec['threads']} threads)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
