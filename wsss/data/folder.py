"""A segmentation dataset stored in the PASCAL VOC directory layout.

Every dataset in `wsss` ends up as samples of one shape, whatever its source: the embedded synthetic
benchmark, PASCAL VOC 2012, COCO, or a user's own folder. The layout read here is VOC's::

    root/
      JPEGImages/<name>.jpg (or .png)     RGB images
      SegmentationClass/<name>.png        palette (mode "P") or grey masks: class ids, 255 = ignore
      ImageSets/Segmentation/<split>.txt  one image name per line
      classes.txt                         one class name per line; line 1 is the background class
      image_labels.txt   (optional)       "<name> <id> <id> ..." foreground class ids per image
      clicks.json        (optional)       {"<name>": [[y, x, class_id], ...]} point labels

A sample is a dict::

    image   uint8  (3, H, W)
    mask    int64  (H, W)      class ids, 255 = ignore (all 255 when the split has no masks)
    labels  float  (C - 1,)    multi-hot image-level tags over the foreground classes
    clicks  int64  (K, 3)      [y, x, class_id] points (only with ``with_clicks=True``)
    name    str

Image-level tags come from ``image_labels.txt`` where it exists, otherwise from the mask. Clicks come
from ``clicks.json`` where it exists, otherwise they are sampled from the mask with a fixed seed
(:func:`sample_clicks`). Every problem with the files raises one error that names the file.
"""
from __future__ import annotations

import json
import zlib
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from scipy import ndimage

IGNORE = 255
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")

VOC_CLASSES = (
    "background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train",
    "tvmonitor",
)


class DatasetError(ValueError):
    """A dataset file is missing, unreadable or inconsistent; the message names the file."""


def read_classes(path: Path) -> list[str]:
    """Read ``classes.txt``: one class name per line, background first."""
    if not path.is_file():
        raise DatasetError(f"{path}: classes.txt not found (one class name per line, background first)")
    names = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    if len(names) < 2:
        raise DatasetError(f"{path}: needs the background class and at least one object class, found {names}")
    if len(set(names)) != len(names):
        raise DatasetError(f"{path}: class names are not unique: {names}")
    return names


def read_split(path: Path) -> list[str]:
    """Read an ImageSets split file; an empty or missing split is an error."""
    if not path.is_file():
        raise DatasetError(f"{path}: split file not found")
    names = [line.split()[0] for line in path.read_text().splitlines() if line.strip()]
    if not names:
        raise DatasetError(f"{path}: the split is empty")
    return names


def load_image(path: Path) -> np.ndarray:
    """Read an RGB image as uint8 (H, W, 3); a corrupt file raises DatasetError naming it."""
    try:
        with Image.open(path) as img:
            return np.asarray(img.convert("RGB"), dtype=np.uint8).copy()
    except (UnidentifiedImageError, OSError, SyntaxError) as err:
        raise DatasetError(f"{path}: cannot read image ({err})") from err


def load_mask(path: Path, num_classes: int) -> np.ndarray:
    """Read a class-id mask (palette or grey PNG) as int64 (H, W), checking ids against the classes."""
    try:
        with Image.open(path) as img:
            if img.mode not in ("P", "L", "I", "I;16"):
                raise DatasetError(f"{path}: mask must be a palette or grey PNG of class ids, got mode {img.mode}")
            mask = np.asarray(img, dtype=np.int64).copy()
    except (UnidentifiedImageError, OSError, SyntaxError) as err:
        raise DatasetError(f"{path}: cannot read mask ({err})") from err
    bad = np.unique(mask[(mask >= num_classes) & (mask != IGNORE)])
    if bad.size:
        raise DatasetError(
            f"{path}: mask holds class ids {bad.tolist()} outside classes.txt (0..{num_classes - 1}, 255 = ignore)")
    return mask


def labels_from_mask(mask: np.ndarray, num_classes: int) -> np.ndarray:
    """Multi-hot foreground tags (C - 1,) of the classes present in a mask."""
    present = np.unique(mask)
    tags = np.zeros(num_classes - 1, dtype=np.float32)
    fg = present[(present > 0) & (present < num_classes)]
    tags[fg - 1] = 1.0
    return tags


def sample_clicks(mask: np.ndarray, seed: int, *, instances: np.ndarray | None = None,
                  background_points: int = 2) -> np.ndarray:
    """Sample click labels from a mask: one point per object instance plus background points.

    Instances come from ``instances`` (VOC's SegmentationObject ids) when given, else from the
    connected components of each class. Each point is drawn uniformly inside its region, so a
    fixed ``seed`` gives the same clicks every time. Returns int64 (K, 3) rows [y, x, class_id].
    """
    rng = np.random.default_rng(seed)
    points = []
    classes = [c for c in np.unique(mask) if 0 < c < IGNORE]
    for c in classes:
        region = mask == c
        if instances is not None:
            ids = [i for i in np.unique(instances[region]) if 0 < i < IGNORE]
            parts = [region & (instances == i) for i in ids]
        else:
            comp, n = ndimage.label(region)
            parts = [comp == i for i in range(1, n + 1)]
        for part in parts:
            ys, xs = np.nonzero(part)
            if ys.size:
                k = rng.integers(ys.size)
                points.append((ys[k], xs[k], c))
    ys, xs = np.nonzero(mask == 0)
    for k in rng.choice(ys.size, size=min(background_points, ys.size), replace=False) if ys.size else []:
        points.append((ys[k], xs[k], 0))
    return np.asarray(points, dtype=np.int64).reshape(-1, 3)


def stable_seed(name: str, seed: int) -> int:
    """A per-image seed that does not depend on Python's hash randomisation."""
    return (zlib.crc32(name.encode()) + 1_000_003 * seed) % (2**32)


class VOCLayoutDataset(torch.utils.data.Dataset):
    """Images, masks, tags and clicks from a folder in the VOC layout (see the module docstring).

    Args:
        root: the folder holding JPEGImages/, SegmentationClass/, ImageSets/Segmentation/.
        split: name of the split file in ImageSets/Segmentation/ (e.g. "train_aug", "val").
        transform: a callable on the sample dict (see :mod:`wsss.data.transforms`).
        class_names: overrides classes.txt (used for real VOC, which ships none).
        with_clicks: add the "clicks" key.
        click_seed: seed of the clicks sampled from masks when no clicks.json exists.
        require_masks: every listed image must have a mask (True for training splits with masks).
    """

    def __init__(self, root: str | Path, split: str, *, transform: Callable | None = None,
                 class_names: Sequence[str] | None = None, with_clicks: bool = False, click_seed: int = 0,
                 require_masks: bool = True, mask_dir: str = "SegmentationClass"):
        self.root = Path(root)
        if not self.root.is_dir():
            raise DatasetError(f"{self.root}: data_root does not exist or is not a folder")
        self.split = split
        self.transform = transform
        self.with_clicks = with_clicks
        self.click_seed = click_seed
        self.class_names = list(class_names) if class_names is not None else read_classes(self.root / "classes.txt")
        self.num_classes = len(self.class_names)
        self.names = read_split(self.root / "ImageSets" / "Segmentation" / f"{split}.txt")
        self.image_paths = [self._find_image(n) for n in self.names]
        mask_root = self.root / mask_dir
        self.mask_paths = [mask_root / f"{n}.png" for n in self.names]
        if require_masks:
            missing = [str(p) for p in self.mask_paths if not p.is_file()]
            if missing:
                raise DatasetError(f"{missing[0]}: mask listed in split '{split}' not found "
                                   f"({len(missing)} missing in all)")
        self.tags = self._read_tags(self.root / "image_labels.txt")
        self.clicks = self._read_clicks(self.root / "clicks.json") if with_clicks else None

    def _find_image(self, name: str) -> Path:
        for ext in IMAGE_EXTENSIONS:
            path = self.root / "JPEGImages" / f"{name}{ext}"
            if path.is_file():
                return path
        raise DatasetError(f"{self.root / 'JPEGImages' / name}.jpg: image listed in split '{self.split}' "
                           f"not found")

    def _read_tags(self, path: Path) -> dict[str, np.ndarray] | None:
        if not path.is_file():
            return None
        tags = {}
        for lineno, line in enumerate(path.read_text().splitlines(), 1):
            fields = line.split()
            if not fields:
                continue
            try:
                ids = [int(f) for f in fields[1:]]
            except ValueError as err:
                raise DatasetError(f"{path}:{lineno}: class ids must be integers ({err})") from err
            if any(not 0 < i < self.num_classes for i in ids):
                raise DatasetError(f"{path}:{lineno}: class ids {ids} outside 1..{self.num_classes - 1}")
            vec = np.zeros(self.num_classes - 1, dtype=np.float32)
            vec[np.asarray(ids, dtype=np.int64) - 1] = 1.0
            tags[fields[0]] = vec
        missing = [n for n in self.names if n not in tags]
        if missing:
            raise DatasetError(f"{path}: no image-level labels for '{missing[0]}' ({len(missing)} missing)")
        return tags

    def _read_clicks(self, path: Path) -> dict[str, np.ndarray] | None:
        if not path.is_file():
            return None
        try:
            raw = json.loads(path.read_text())
        except json.JSONDecodeError as err:
            raise DatasetError(f"{path}: not valid JSON ({err})") from err
        clicks = {}
        for name, pts in raw.items():
            arr = np.asarray(pts, dtype=np.int64).reshape(-1, 3)
            if arr.size and (arr[:, 2].max() >= self.num_classes or arr.min() < 0):
                raise DatasetError(f"{path}: clicks of '{name}' hold a class id or coordinate out of range")
            clicks[name] = arr
        return clicks

    def __len__(self) -> int:
        return len(self.names)

    def __getitem__(self, index: int) -> dict:
        name = self.names[index]
        image = load_image(self.image_paths[index])
        mask_path = self.mask_paths[index]
        if mask_path.is_file():
            mask = load_mask(mask_path, self.num_classes)
            if mask.shape != image.shape[:2]:
                raise DatasetError(f"{mask_path}: mask size {mask.shape} differs from its image {image.shape[:2]}")
        else:
            mask = np.full(image.shape[:2], IGNORE, dtype=np.int64)
        tags = self.tags[name] if self.tags is not None else labels_from_mask(mask, self.num_classes)
        sample = {
            "image": torch.from_numpy(image).permute(2, 0, 1).contiguous(),
            "mask": torch.from_numpy(mask),
            "labels": torch.from_numpy(tags),
            "name": name,
        }
        if self.with_clicks:
            if self.clicks is not None and name in self.clicks:
                pts = self.clicks[name]
            else:
                pts = sample_clicks(mask, stable_seed(name, self.click_seed), instances=self._instances(name))
            sample["clicks"] = torch.from_numpy(pts)
        if self.transform is not None:
            sample = self.transform(sample)
        return sample

    def _instances(self, name: str) -> np.ndarray | None:
        path = self.root / "SegmentationObject" / f"{name}.png"
        if not path.is_file():
            return None
        with Image.open(path) as img:
            return np.asarray(img, dtype=np.int64)


class PseudoMaskDataset(torch.utils.data.Dataset):
    """A dataset with its masks replaced by pseudo masks: the retrain step of every WSSS paper, where a
    segmentation network learns from the masks the weakly supervised model made for the train split.

    base: a dataset without a transform (its own masks are dropped); masks: image name -> (H, W) class
    ids (255 = ignore), one for every image of ``base``; transform: applied after the swap, so crops
    and flips move image and pseudo mask together.
    """

    def __init__(self, base, masks: dict, transform: Callable | None = None):
        if getattr(base, "transform", None) is not None:
            raise ValueError("PseudoMaskDataset: give the base dataset without a transform (it would crop "
                             "the image before the pseudo mask is put in)")
        missing = [n for n in base.names if n not in masks]
        if missing:
            raise DatasetError(f"no pseudo mask for image {missing[0]!r} ({len(missing)} of {len(base.names)} missing)")
        self.base, self.masks, self.transform = base, masks, transform
        self.names, self.class_names, self.num_classes = base.names, base.class_names, base.num_classes

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, index: int) -> dict:
        sample = self.base[index]
        mask = torch.as_tensor(self.masks[sample["name"]], dtype=torch.int64)
        if mask.shape != sample["image"].shape[1:]:
            raise DatasetError(f"pseudo mask of {sample['name']!r} is {tuple(mask.shape)}, its image "
                               f"{tuple(sample['image'].shape[1:])}")
        sample = {**sample, "mask": mask}
        return self.transform(sample) if self.transform is not None else sample


def collate(samples: list[dict]) -> dict:
    """Stack images, masks and tags of equal size; keep names and clicks as lists."""
    out = {}
    for key in samples[0]:
        values = [s[key] for s in samples]
        if key in ("image", "mask", "labels"):
            shapes = {tuple(v.shape) for v in values}
            if len(shapes) > 1:
                raise ValueError(f"cannot batch '{key}' of different sizes {sorted(shapes)}; crop or resize "
                                 f"with a transform, or use batch_size=1")
            out[key] = torch.stack(values)
        else:
            out[key] = values
    return out
