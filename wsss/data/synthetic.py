"""The embedded WSSS benchmark: a procedurally generated dataset written in the VOC layout.

Real datasets cannot be downloaded here, so every notebook defaults to this one. It is built so that
weak supervision is a real problem, with the failure modes WSSS papers fight:

* **Discriminative part.** Each object class has a body shape (disc, box, triangle, ring, cross,
  diamond; 30% of bodies take another class's shape) painted in a colour drawn from a palette *shared
  by all classes*, and a small *class-coloured mark* near its top. Only the mark tells the class for
  sure, so a classifier trained on image tags looks at the mark and its CAM covers part of the object
  (objects span several CAM cells); the body, and which mark it carries, is what a mask-supervised
  model must learn.
* **Co-occurring context.** Each class prefers one background scene (grass, water, sky, ...; 85% of
  images show the first object's scene), so the scene predicts the tag and CAM leaks onto the background.
* **Edges that mostly help, sometimes mislead.** Most bodies contrast with their scene, so a dense CRF
  snaps to the true boundary; some bodies are camouflaged (painted close to the scene's colour), some
  scenes have strong edges of their own (bricks, waves), and the mark's own edge invites a CRF to cut
  the object down to its mark.
* One to three objects per image, several sizes, rotation, occlusion (later objects cover earlier ones),
  pixel noise.
* A thin ignore band (255) around every object in the masks, as real VOC masks have (1 px at 64 px,
  2 px at 160 px): metrics and losses skip it, so a label's exact boundary pixel does not count
  (:func:`ignore_band`).

Everything is deterministic from ``seed``. Profiles set the size, named as the notebooks' profiles
(:mod:`wsss.profiles`): ``smoke`` for the test suite and smoke runs, ``quick`` for CPU notebooks, ``full`` for one
GPU. ``tiny``, the old name of ``smoke``, is still accepted (deprecated, :data:`ALIASES`): it gives the same
images, written as the ``smoke`` benchmark. The files written are those :class:`wsss.data.VOCLayoutDataset`
reads: JPEGImages/, SegmentationClass/ (palette PNGs), SegmentationObject/ (instance ids),
ImageSets/Segmentation/{train_aug,val}.txt, classes.txt, image_labels.txt, clicks.json, benchmark.json.

Command line::

    python -m wsss.data.synthetic --out DIR --profile quick --seed 0
    python -m wsss.data.synthetic --out DIR --profile smoke     # 48 px, 24 train + 12 val images

Only folders this generator made are ever replaced: ``out`` must be new, empty, or a benchmark written
here before (its benchmark.json has a "generator_version"); any other folder is refused with a
:class:`~wsss.data.DatasetError` naming it, and nothing in it is touched.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from .folder import IGNORE, DatasetError, sample_clicks, stable_seed

GENERATOR_VERSION = 3      # 3: the 255 band around objects (images and objects as in version 2)
STREAM_VERSION = 2         # seeds the random stream: kept, so that version 3 draws the same images
BAND_FRACTION = 0.01       # width of the ignore band: ~5 px on a 500 px VOC photo, 1 px at 64, 2 px at 160
CLASSES = ("background", "disc", "box", "triangle", "ring", "cross", "diamond")
SCENES = ("grass", "water", "sky", "sand", "bricks", "night")
# Scene each class prefers (index into SCENES), in class order 1..6.
PREFERRED_SCENE = (0, 1, 2, 3, 4, 5)
# Class-coloured marks: saturated hues that no body or scene uses.
MARK_COLOURS = np.array([
    (255, 20, 20), (20, 220, 255), (255, 230, 0), (255, 0, 200), (0, 255, 60), (255, 120, 0)], dtype=np.float32)
# Body colours shared by all classes (muted, so the mark stays the most telling cue).
BODY_COLOURS = np.array([
    (150, 110, 80), (120, 120, 130), (200, 190, 170), (90, 70, 110), (60, 90, 140), (140, 140, 70),
    (180, 130, 150), (100, 60, 50)], dtype=np.float32)


@dataclass(frozen=True)
class Profile:
    """Sizes of one benchmark profile."""
    image_size: int
    n_train: int
    n_val: int
    min_radius: float   # object radius, as a fraction of the image size
    max_radius: float


# Old profile names, still accepted (deprecated): "tiny" was the smoke profile's name here while the notebooks,
# wsss.profiles and the docs called it smoke. It draws the same images; a benchmark is written (benchmark.json,
# the cache folder's name) under the new name.
ALIASES = {"tiny": "smoke"}


def _alias_warning(old: str) -> str:
    return (f"the benchmark profile {old!r} is now called {ALIASES[old]!r} (the same images); "
            f"{old!r} is deprecated and will be removed")


def profile_name(profile: str, *, stacklevel: int = 2) -> str:
    """``profile`` under its current name: an old name (:data:`ALIASES`) gives the new one, with a
    DeprecationWarning; any other name is returned as it is (not checked)."""
    if isinstance(profile, str) and profile in ALIASES:
        warnings.warn(_alias_warning(profile), DeprecationWarning, stacklevel=stacklevel + 1)
        return ALIASES[profile]
    return profile


class _Profiles(dict):
    """The profiles by name. Iterating lists the current names only; indexing by an old name
    (:data:`ALIASES`) finds its profile too, with a DeprecationWarning."""

    def __missing__(self, key):
        if key in ALIASES:
            return self[profile_name(key, stacklevel=3)]
        raise KeyError(key)


PROFILES = _Profiles({
    "smoke": Profile(image_size=48, n_train=24, n_val=12, min_radius=0.18, max_radius=0.34),
    "quick": Profile(image_size=64, n_train=800, n_val=200, min_radius=0.18, max_radius=0.34),
    "full": Profile(image_size=160, n_train=4000, n_val=600, min_radius=0.14, max_radius=0.34),
})

# The top-level entries of a benchmark folder, all written by write_benchmark.
BENCHMARK_ENTRIES = frozenset({"JPEGImages", "SegmentationClass", "SegmentationObject", "ImageSets", "classes.txt",
                               "image_labels.txt", "clicks.json", "benchmark.json"})

# Probabilities of the scene being the class's preferred one, of a camouflaged body, of 1/2/3 objects.
P_CONTEXT = 0.85
P_CAMOUFLAGE = 0.15
P_CLASS_SHAPE = 0.7   # probability that a body has its class's own shape (else one of the other shapes)
N_OBJECTS_P = (0.5, 0.3, 0.2)

VOC_PALETTE = None  # filled lazily by palette()


def palette() -> list[int]:
    """The PASCAL VOC colour map (256 entries, flattened RGB), used for the palette PNG masks."""
    global VOC_PALETTE
    if VOC_PALETTE is None:
        pal = []
        for i in range(256):
            r = g = b = 0
            c = i
            for j in range(8):
                r |= ((c >> 0) & 1) << (7 - j)
                g |= ((c >> 1) & 1) << (7 - j)
                b |= ((c >> 2) & 1) << (7 - j)
                c >>= 3
            pal += [r, g, b]
        VOC_PALETTE = pal
    return VOC_PALETTE


def render_scene(kind: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """A textured background of scene ``kind`` as float (H, W, 3) in [0, 255]."""
    y, x = np.mgrid[0:size, 0:size].astype(np.float32) / size
    jitter = rng.uniform(-15, 15, size=3).astype(np.float32)
    noise = rng.normal(0, 1, size=(size, size)).astype(np.float32)
    name = SCENES[kind]
    if name == "grass":      # green, fine vertical blades
        base = np.array([70, 140, 55], np.float32)
        tex = 18 * noise[..., None] + 10 * np.sin(2 * np.pi * (x * size / 3 + rng.uniform()))[..., None]
    elif name == "water":    # blue waves: strong horizontal stripes
        base = np.array([40, 90, 170], np.float32)
        phase = rng.uniform(0, 2 * np.pi)
        tex = 35 * np.sin(2 * np.pi * 6 * y + 1.5 * np.sin(2 * np.pi * 2 * x) + phase)[..., None] + 6 * noise[..., None]
    elif name == "sky":      # smooth vertical gradient
        base = np.array([150, 190, 235], np.float32)
        tex = (-60 * (y - 0.5))[..., None] + 4 * noise[..., None]
    elif name == "sand":     # warm, speckled
        base = np.array([205, 175, 120], np.float32)
        tex = 22 * noise[..., None]
    elif name == "bricks":   # grey bricks: strong edges that are not object boundaries
        base = np.array([150, 95, 80], np.float32)
        rows = np.floor(y * 6)
        cols = np.floor(x * 4 + 0.5 * (rows % 2))
        mortar = (np.abs(y * 6 - np.round(y * 6)) < 0.08) | (np.abs(x * 4 + 0.5 * (rows % 2) - np.round(x * 4 + 0.5 * (rows % 2))) < 0.06)
        tex = (12 * np.sin(rows * 3.1 + cols * 1.7))[..., None] + np.where(mortar, 70, 0)[..., None] + 6 * noise[..., None]
    else:                    # night: dark with bright speckles
        base = np.array([25, 25, 45], np.float32)
        tex = np.where(rng.uniform(size=(size, size)) < 0.02, 160, 0)[..., None].astype(np.float32) + 5 * noise[..., None]
    return np.clip(base + jitter + tex, 0, 255)


def shape_mask(cls: int, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Body of class ``cls`` (1..6) in object coordinates u (right), v (down), both scaled to [-1, 1]."""
    name = CLASSES[cls]
    if name == "disc":
        return u**2 + v**2 <= 1
    if name == "box":
        return np.maximum(np.abs(u), np.abs(v)) <= 0.82
    if name == "triangle":
        return (v <= 0.85) & (v >= -1.05 + 2.0 * np.abs(u))
    if name == "ring":
        r2 = u**2 + v**2
        return (r2 <= 1) & (r2 >= 0.42**2)
    if name == "cross":
        inside = np.maximum(np.abs(u), np.abs(v)) <= 0.95
        return inside & ((np.abs(u) <= 0.36) | (np.abs(v) <= 0.36))
    if name == "diamond":
        return np.abs(u) + np.abs(v) <= 1.05
    raise ValueError(f"unknown class {cls}")


def mark_region(body: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """The class-coloured mark of a body: a small disc near its top, inside the body."""
    return body & ((u**2 + (v + 0.55) ** 2) <= 0.3**2)


def class_card(size: int = 72, seed: int = 0) -> list[dict]:
    """The benchmark's class card: for each object class 1..6, its name, mark colour, own body shape and
    preferred scene, with one picture of it (its own shape, a muted body colour, its mark, on its scene).

    A reader needs it to read the figures: the class is the *mark's* colour, not the body's shape; a share
    1 - ``P_CLASS_SHAPE`` (30%) of bodies take another class's shape (a triangle labelled "ring" is a
    ring-class object with a triangle body), and ``P_CONTEXT`` (85%) of images show the first object's
    preferred scene. Each entry carries those two shares."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) + 0.5
    u, v = (xx - size / 2) / (0.38 * size), (yy - size / 2) / (0.38 * size)
    card = []
    for cls in range(1, len(CLASSES)):
        image = render_scene(PREFERRED_SCENE[cls - 1], size, rng)
        body = shape_mask(cls, u, v)
        shade = 1.0 - 0.25 * np.clip(v, -1, 1)[..., None]
        image = np.where(body[..., None], BODY_COLOURS[cls % len(BODY_COLOURS)] * shade, image)
        image = np.where(mark_region(body, u, v)[..., None], MARK_COLOURS[cls - 1], image)
        card.append({"class": cls, "name": CLASSES[cls], "mark_colour": tuple(int(c) for c in MARK_COLOURS[cls - 1]),
                     "shape": CLASSES[cls], "own_shape_share": P_CLASS_SHAPE, "scene": SCENES[PREFERRED_SCENE[cls - 1]],
                     "scene_share": P_CONTEXT,
                     "image": np.clip(image, 0, 255).astype(np.uint8)})
    return card


def render_image(rng: np.random.Generator, profile: Profile):
    """One image with its class mask, instance mask and tags.

    Returns image uint8 (H, W, 3), mask uint8 (H, W) class ids, instances uint8 (H, W), classes [int].
    """
    size = profile.image_size
    n_obj = rng.choice(len(N_OBJECTS_P), p=N_OBJECTS_P) + 1
    classes = rng.integers(1, len(CLASSES), size=n_obj)
    # The scene follows the first object's class with probability P_CONTEXT.
    scene = PREFERRED_SCENE[classes[0] - 1] if rng.uniform() < P_CONTEXT else rng.integers(len(SCENES))
    image = render_scene(scene, size, rng)
    scene_mean = image.mean(axis=(0, 1))
    mask = np.zeros((size, size), np.uint8)
    instances = np.zeros((size, size), np.uint8)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) + 0.5
    for k, cls in enumerate(classes, 1):
        radius = rng.uniform(profile.min_radius, profile.max_radius) * size
        cy, cx = rng.uniform(0.5 * radius, size - 0.5 * radius, size=2)
        theta = np.deg2rad(rng.uniform(-20, 20))
        dy, dx = (yy - cy) / radius, (xx - cx) / radius
        u = np.cos(theta) * dx + np.sin(theta) * dy
        v = -np.sin(theta) * dx + np.cos(theta) * dy
        shape = cls if rng.uniform() < P_CLASS_SHAPE else rng.choice([c for c in range(1, len(CLASSES)) if c != cls])
        body = shape_mask(int(shape), u, v)
        if body.sum() < 4:
            continue
        if rng.uniform() < P_CAMOUFLAGE:   # painted close to the scene: no edge for a CRF to follow
            colour = scene_mean + rng.uniform(-18, 18, size=3)
        else:
            colour = BODY_COLOURS[rng.integers(len(BODY_COLOURS))] + rng.uniform(-15, 15, size=3)
        shade = 1.0 - 0.25 * np.clip(v, -1, 1)[..., None]          # light from the top
        body_rgb = np.clip(colour * shade + rng.normal(0, 6, size=(size, size, 1)), 0, 255)
        image = np.where(body[..., None], body_rgb, image)
        mark = mark_region(body, u, v)
        image = np.where(mark[..., None], MARK_COLOURS[cls - 1] + rng.uniform(-20, 20, size=3), image)
        mask[body] = cls
        instances[body] = k
    image = image + rng.normal(0, 5, size=image.shape)
    # Soften every edge a little, as a camera would (3x3 box blur).
    pad = np.pad(image, ((1, 1), (1, 1), (0, 0)), mode="edge")
    image = sum(pad[i:i + size, j:j + size] for i in range(3) for j in range(3)) / 9.0
    # Relabel instances to the visible ones only; an object hidden entirely by others is dropped.
    visible = [k for k in np.unique(instances) if k > 0]
    inst = np.zeros_like(instances)
    for new, k in enumerate(visible, 1):
        inst[instances == k] = new
    band = ignore_band(inst, max(1, round(size * BAND_FRACTION)))
    mask[band], inst[band] = IGNORE, IGNORE
    present = sorted({int(c) for c in np.unique(mask) if 0 < c < IGNORE})
    return np.clip(image, 0, 255).astype(np.uint8), mask, inst, present


def ignore_band(instances: np.ndarray, width: int) -> np.ndarray:
    """The thin "void" band real VOC masks draw around each object: bool (H, W), True on the pixels
    within ``width`` pixels (4-connected steps) outside an object instance that belong to the
    background or to an object drawn before it (a lower id: later objects cover earlier ones). So an
    object keeps every pixel where it is on top, and an occluded one gives up a rim where it is covered."""
    band = np.zeros(instances.shape, bool)
    for k in np.unique(instances):
        if k == 0 or k == IGNORE:
            continue
        region = instances == k
        grown = region.copy()
        for _ in range(width):
            step = grown.copy()
            step[1:] |= grown[:-1]
            step[:-1] |= grown[1:]
            step[:, 1:] |= grown[:, :-1]
            step[:, :-1] |= grown[:, 1:]
            grown = step
        band |= grown & (instances < k)
    return band


def _check_profile_and_seed(profile: str, seed) -> tuple[str, int]:
    """Validate the arguments of the generator; returns (the profile's current name, the seed as a plain int)."""
    name = profile_name(profile, stacklevel=4) if isinstance(profile, str) else profile
    if not isinstance(name, str) or name not in PROFILES:
        raise ValueError(f"profile={profile!r} is not known; choose one of {tuple(PROFILES)}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed={seed!r} is not valid: the benchmark's seed must be an integer >= 0")
    return name, int(seed)


def benchmark_meta(folder: str | Path) -> dict | None:
    """The contents of ``folder/benchmark.json`` if this generator wrote it, else None.

    A marker counts only if it parses as a JSON object with a "generator_version" key; a missing,
    unreadable or foreign benchmark.json gives None.
    """
    try:
        meta = json.loads((Path(folder) / "benchmark.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):   # missing, unreadable, not UTF-8, not JSON
        return None
    return meta if isinstance(meta, dict) and "generator_version" in meta else None


def _check_replaceable(out: Path) -> str:
    """How ``out`` may be written: "new" (absent), "empty" (an empty folder) or "benchmark" (ours).

    Anything else is refused with a DatasetError naming the folder: a file, a folder holding anything
    but a generated benchmark, or a benchmark to which files of someone else's were added.
    """
    if not out.exists() and not out.is_symlink():
        return "new"
    if not out.is_dir() or out.is_symlink():
        what = "is a symbolic link" if out.is_symlink() else "exists and is not a folder"
        raise DatasetError(f"{out}: {what}; the synthetic benchmark is written only to a new or empty folder, "
                           f"or over a benchmark it wrote before")
    entries = sorted(p.name for p in out.iterdir())
    if not entries:
        return "empty"
    if benchmark_meta(out) is None:
        why = "no benchmark.json" if not (out / "benchmark.json").exists() else \
            "its benchmark.json was not written by this generator"
        raise DatasetError(
            f"{out}: is not a generated synthetic benchmark ({why}) and is not empty, so it is left as it is. "
            f"To read your own VOC-layout folder, use dataset=\"voc\" (build_dataset(\"voc\", root, split)); "
            f"for the synthetic benchmark give a new or empty folder (or data_root=None for the default cache)")
    foreign = [e for e in entries if e not in BENCHMARK_ENTRIES]
    if foreign:
        raise DatasetError(f"{out}: is a generated synthetic benchmark but also holds {foreign[:5]}, which the "
                           f"generator did not write, so it is not replaced; move them away, or pick another folder")
    return "benchmark"


def _move_into(src: Path, dst: Path) -> None:
    """Move the entries of folder ``src`` into the existing empty folder ``dst``, benchmark.json last."""
    entries = sorted(src.iterdir(), key=lambda p: p.name == "benchmark.json")
    for entry in entries:
        shutil.move(str(entry), str(dst / entry.name))


def write_benchmark(out: str | Path, profile: str = "quick", seed: int = 0, *, progress: bool = True) -> Path:
    """Write the benchmark of ``profile`` and ``seed`` to folder ``out`` and return it.

    ``out`` must be a new folder, an empty one, or a benchmark this generator wrote (which is replaced,
    whatever its profile and seed); any other folder raises :class:`~wsss.data.DatasetError` and is left
    untouched. The benchmark is written to a temporary folder beside ``out`` and moved in place when
    complete (benchmark.json last), so an interrupted run leaves no half-written benchmark behind.
    ``profile`` is "smoke", "quick" or "full" ("tiny", the old name of "smoke", still works, deprecated).
    """
    profile, seed = _check_profile_and_seed(profile, seed)
    prof = PROFILES[profile]
    out = Path(out)
    _check_replaceable(out)   # refuse before any work
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
    try:
        for sub in ("JPEGImages", "SegmentationClass", "SegmentationObject", "ImageSets/Segmentation"):
            (tmp / sub).mkdir(parents=True)
        (tmp / "classes.txt").write_text("\n".join(CLASSES) + "\n")
        tags_lines, clicks = [], {}
        pal = palette()
        for split, count, offset in (("train_aug", prof.n_train, 0), ("val", prof.n_val, 1)):
            rng = np.random.default_rng([seed, offset, STREAM_VERSION])
            names = []
            for i in tqdm(range(count), desc=f"synthetic {profile} {split}", disable=not progress):
                name = f"{split}_{i:05d}"
                image, mask, inst, present = render_image(rng, prof)
                Image.fromarray(image).save(tmp / "JPEGImages" / f"{name}.jpg", quality=95)
                for folder, arr in (("SegmentationClass", mask), ("SegmentationObject", inst)):
                    png = Image.fromarray(arr, mode="P")
                    png.putpalette(pal)
                    png.save(tmp / folder / f"{name}.png")
                tags_lines.append(" ".join([name] + [str(c) for c in present]))
                clicks[name] = sample_clicks(mask.astype(np.int64), stable_seed(name, seed),
                                             instances=inst.astype(np.int64)).tolist()
                names.append(name)
            (tmp / "ImageSets" / "Segmentation" / f"{split}.txt").write_text("\n".join(names) + "\n")
        (tmp / "image_labels.txt").write_text("\n".join(tags_lines) + "\n")
        (tmp / "clicks.json").write_text(json.dumps(clicks))
        meta = {"generator_version": GENERATOR_VERSION, "profile": profile, "seed": seed, **asdict(prof),
                "classes": list(CLASSES), "scenes": list(SCENES), "p_context": P_CONTEXT,
                "p_camouflage": P_CAMOUFLAGE, "p_class_shape": P_CLASS_SHAPE}
        (tmp / "benchmark.json").write_text(json.dumps(meta, indent=1))
        _install(tmp, out, meta)
    finally:
        if tmp.exists():   # made above by mkdtemp: ours
            shutil.rmtree(tmp, ignore_errors=True)
    return out


def _install(tmp: Path, out: Path, meta: dict) -> None:
    """Put the finished benchmark ``tmp`` at ``out``, checking ``out`` again just before.

    new: renamed into place; if another process put the same benchmark there meanwhile, that one is kept.
    empty: renamed over the empty folder where the system allows it, else moved into it entry by entry.
    benchmark: the old one is renamed aside, the new one renamed in, then the old one (checked to be a
    generated benchmark by :func:`_check_replaceable`) is removed.
    """
    kind = _check_replaceable(out)
    if kind == "new":
        try:
            os.replace(tmp, out)
        except OSError:
            theirs = benchmark_meta(out)
            if theirs is None or any(theirs.get(k) != meta[k] for k in ("generator_version", "profile", "seed")):
                raise
    elif kind == "empty":
        try:
            os.replace(tmp, out)   # POSIX renames a folder over an empty one, atomically
        except OSError:            # Windows, a mount point, or it is no longer empty
            if any(out.iterdir()):
                raise DatasetError(f"{out}: is no longer empty; the synthetic benchmark was not written") from None
            _move_into(tmp, out)
    else:
        old = tmp.with_name(tmp.name + "-old")   # tmp's name is unique (mkdtemp), so is this one
        os.replace(out, old)
        try:
            os.replace(tmp, out)
        except OSError:
            os.replace(old, out)
            raise
        if benchmark_meta(old) is None:      # swapped in after the check above: not ours, so keep it
            raise DatasetError(f"{out}: changed while the benchmark was written; what was there is kept at {old}")
        shutil.rmtree(old, ignore_errors=True)


def default_root() -> Path:
    """Where generated benchmarks are cached: $WSSS_DATA, else ~/.cache/wsss (an error if it is a file)."""
    root = Path(os.environ.get("WSSS_DATA", Path.home() / ".cache" / "wsss"))
    if root.exists() and not root.is_dir():
        where = "environment variable WSSS_DATA" if os.environ.get("WSSS_DATA") else "the cache folder"
        raise DatasetError(f"{where} points at {root}, which is a file, not a folder: point WSSS_DATA at a folder "
                           f"for the generated benchmarks and the downsized copies")
    return root


def ensure_benchmark(root: str | Path | None = None, profile: str = "quick", seed: int = 0,
                     *, progress: bool = True) -> Path:
    """Return the folder of the benchmark for (profile, seed), writing it first if it is not cached.

    ``root`` is the folder itself; by default ``default_root()/synthetic-<profile>-seed<seed>``. A cached
    folder is reused only if its benchmark.json matches this generator version, profile and seed; a
    benchmark of another profile or seed is regenerated in place. A folder that exists, is not empty
    and is not a generated benchmark (e.g. one's own VOC folder) raises DatasetError and is left alone.
    ``profile`` "tiny", the old name of "smoke", still works (deprecated); the benchmark is the smoke one, in
    synthetic-smoke-seed<seed> (a cached synthetic-tiny-seed<seed> is no longer read: regenerating it takes
    about a second, and one name keeps the smoke benchmark's fingerprint the same on every machine).
    """
    profile, seed = _check_profile_and_seed(profile, seed)
    folder = Path(root) if root is not None else default_root() / f"synthetic-{profile}-seed{seed}"
    meta = benchmark_meta(folder)
    if meta is not None and (meta.get("generator_version"), meta.get("profile"), meta.get("seed")) == \
            (GENERATOR_VERSION, profile, seed):
        return folder
    return write_benchmark(folder, profile, seed, progress=progress)


def _cli_profile(text: str) -> str:
    """--profile's value under its current name; an old name prints a note (the command still runs)."""
    if text in ALIASES:
        print(f"note: {_alias_warning(text)}; use --profile {ALIASES[text]}", file=sys.stderr)
        return ALIASES[text]
    if text not in PROFILES:
        raise argparse.ArgumentTypeError(f"invalid choice: {text!r} (choose from {', '.join(PROFILES)})")
    return text


def main(argv: list[str] | None = None) -> None:
    """The command line (see the module docstring); a refused folder or bad argument exits with its message."""
    parser = argparse.ArgumentParser(prog="python -m wsss.data.synthetic", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True,
                        help="folder to write: a new or empty folder, or a benchmark written here before "
                             "(only such a benchmark is replaced; any other folder is refused, untouched)")
    parser.add_argument("--profile", default="quick", type=_cli_profile, metavar="{" + ",".join(PROFILES) + "}",
                        help="the benchmark's size: " + "; ".join(
                            f"{name}: {p.image_size} px, {p.n_train} train + {p.n_val} val images"
                            for name, p in PROFILES.items()) + " (default quick; 'tiny' is the old name of smoke)")
    parser.add_argument("--seed", type=int, default=0, help="an integer >= 0")
    args = parser.parse_args(argv)
    try:
        path = write_benchmark(args.out, args.profile, args.seed)
    except ValueError as err:   # DatasetError (a refused folder) or a bad seed
        raise SystemExit(f"{parser.prog}: error: {err}") from err
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
