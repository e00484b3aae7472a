"""A cached, downsized copy of a real dataset for the small profiles.

At ``smoke`` and ``quick`` the notebooks train on small crops (48-64 px) of the synthetic benchmark's
small images. A real dataset of ~500 px photos would have every training step decode and rescale
full-size photos before cropping, and the evaluation run CAMs and CRFs at full size: several times
slower than the benchmark, for a miniature that is no more faithful. So at those profiles a real
dataset is brought, once, to the benchmark's image size (the short side of each image to
``image_px``, the aspect ratio kept; masks by nearest neighbour) and cached in the VOC layout, for
training and evaluation alike. ``full`` and ``paper`` read the original at full resolution.

The copy is keyed by the dataset, its resolved path, the size and a signature of its files (names,
sizes, modification times), so an edited dataset gets a new copy. It is written beside the synthetic
benchmarks (``$WSSS_DATA``, else ~/.cache/wsss) to a temporary folder and renamed into place when
complete. The original files are only read. Tags come from the downsized masks (an object that
downsizing erases loses its tag too), clicks are rescaled with their image and kept on their class in
the downsized mask (:func:`place_clicks`), so the copy's clicks.json passes the loader's checks of clicks
against masks (:meth:`wsss.data.folder.VOCLayoutDataset._check_clicks`); resized.json counts the clicks
moved and dropped.
"""
from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm.auto import tqdm

from .folder import IGNORE
from .synthetic import PROFILES as BENCHMARK_SIZES, default_root, palette

RESIZE_VERSION = 3      # 2: photos read with their EXIF orientation applied; 3: clicks kept on their class
# the notebook profiles that work on a downsized copy, and the synthetic benchmark whose size they take
DOWNSIZED_PROFILES = {"smoke": "smoke", "quick": "quick"}


def profile_image_px(profile: str) -> int | None:
    """The short side real images are brought to at ``profile`` (the benchmark's image size), or None
    (full resolution) for ``full`` and ``paper``."""
    bench = DOWNSIZED_PROFILES.get(profile)
    return None if bench is None else BENCHMARK_SIZES[bench].image_size


def _signature(datasets: dict) -> str:
    """A hash of each split's names and of its files' sizes and modification times (where the dataset
    lists its files), so an edited dataset is copied again."""
    h = hashlib.sha1()
    for split, ds in sorted(datasets.items()):
        h.update(f"{split}:{type(ds).__name__}:{len(ds)}".encode())
        for name in ds.names:
            h.update(name.encode())
        for path in list(getattr(ds, "image_paths", [])) + list(getattr(ds, "mask_paths", [])):
            p = Path(path)
            if p.is_file():
                st = p.stat()
                h.update(f"{p}:{st.st_size}:{st.st_mtime_ns}".encode())
    return h.hexdigest()


def _scaled_size(h: int, w: int, image_px: int) -> tuple[int, int]:
    """(H, W) with the short side at ``image_px`` (never enlarged), the aspect ratio kept."""
    scale = min(1.0, image_px / min(h, w))
    return max(1, round(h * scale)), max(1, round(w * scale))


def place_clicks(pts: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, int, int]:
    """Clicks (K, 3) [y, x, class] already scaled to the downsized ``mask`` (H, W), put on their class there.

    Scaling a point and resizing a mask by nearest neighbour can part a click from its class at a boundary
    or on a thin object. A click on its class or on an ignore (255) pixel stays; any other moves to the
    nearest pixel of its class, or, where downsizing erased the class (and so the image's tag), to the
    nearest ignore pixel (which may hide the object); with neither it is dropped. Returns (clicks, moved,
    dropped)."""
    out, moved, dropped = [], 0, 0
    for y, x, c in np.asarray(pts, dtype=np.int64).reshape(-1, 3).tolist():
        if mask[y, x] in (c, IGNORE):
            out.append((y, x, c))
            continue
        ys, xs = np.nonzero(mask == c)
        if not ys.size:
            ys, xs = np.nonzero(mask == IGNORE)
        if not ys.size:
            dropped += 1
            continue
        k = int(np.argmin((ys - y) ** 2 + (xs - x) ** 2))
        out.append((int(ys[k]), int(xs[k]), c))
        moved += 1
    return np.asarray(out, dtype=np.int64).reshape(-1, 3), moved, dropped


def ensure_resized(name: str, root: str | Path, datasets: dict, image_px: int, *, progress: bool = True) -> Path:
    """The folder of a downsized VOC-layout copy of ``datasets`` {split: dataset of :func:`build_dataset`
    (no transform)} read from ``root``, written on first use: JPEGImages (quality 95), SegmentationClass
    (palette PNGs, nearest neighbour), ImageSets/Segmentation/<split>.txt, classes.txt, clicks.json
    (each image's clicks, scaled with it and kept on their class: :func:`place_clicks`). Reused while the
    signature of the original files holds."""
    key = hashlib.sha1(f"{RESIZE_VERSION}|{name}|{Path(root).resolve()}|{image_px}|{_signature(datasets)}"
                       .encode()).hexdigest()[:16]
    cache = default_root() / "resized"
    out = cache / f"{name}-{Path(root).resolve().name}-{image_px}px-{key}"
    if (out / "resized.json").is_file():
        return out
    cache.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=cache))
    try:
        for sub in ("JPEGImages", "SegmentationClass", "ImageSets/Segmentation"):
            (tmp / sub).mkdir(parents=True)
        class_names = next(iter(datasets.values())).class_names
        (tmp / "classes.txt").write_text("\n".join(class_names) + "\n")
        pal, clicks, sizes = palette(), {}, {}
        moved = dropped = 0
        for split, ds in datasets.items():
            names = []
            for i in tqdm(range(len(ds)), desc=f"downsizing {name} {split} to {image_px} px", disable=not progress):
                sample = ds[i]
                image = sample["image"].permute(1, 2, 0).numpy()
                h, w = image.shape[:2]
                size = _scaled_size(h, w, image_px)
                small = Image.fromarray(image).resize(size[::-1], Image.BILINEAR, reducing_gap=None)
                small.save(tmp / "JPEGImages" / f"{sample['name']}.jpg", quality=95)
                mask = Image.fromarray(sample["mask"].numpy().astype(np.uint8), mode="P")
                mask.putpalette(pal)
                small_mask = mask.resize(size[::-1], Image.NEAREST)
                small_mask.save(tmp / "SegmentationClass" / f"{sample['name']}.png")
                if "clicks" in sample:
                    pts = sample["clicks"].numpy().astype(np.float64)
                    pts[:, 0] = np.clip(np.floor(pts[:, 0] * size[0] / h), 0, size[0] - 1)
                    pts[:, 1] = np.clip(np.floor(pts[:, 1] * size[1] / w), 0, size[1] - 1)
                    placed, m, d = place_clicks(pts.astype(np.int64), np.asarray(small_mask, dtype=np.int64))
                    clicks[sample["name"]] = placed.tolist()
                    moved, dropped = moved + m, dropped + d
                sizes[sample["name"]] = [h, w]
                names.append(sample["name"])
            (tmp / "ImageSets" / "Segmentation" / f"{split}.txt").write_text("\n".join(names) + "\n")
        if clicks:
            (tmp / "clicks.json").write_text(json.dumps(clicks))
        meta = {"resize_version": RESIZE_VERSION, "dataset": name, "source": str(Path(root).resolve()),
                "image_px": image_px, "splits": {s: len(d) for s, d in datasets.items()}, "original_sizes": sizes}
        if clicks:
            meta["clicks"] = {"written": sum(map(len, clicks.values())), "moved": moved, "dropped": dropped}
        (tmp / "resized.json").write_text(json.dumps(meta))
        try:
            tmp.rename(out)
        except OSError:
            if not (out / "resized.json").is_file():   # another process may have written the same copy
                raise
    finally:
        if tmp.exists():   # made above by mkdtemp: ours
            shutil.rmtree(tmp, ignore_errors=True)
    return out
