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
      SegmentationObject/<name>.png (opt.) instance ids, used to sample one click per object

Text files are read as UTF-8 (a byte-order mark is allowed) with any line ending. Split files hold one
image name per line, each listed once; an image is found as <name>.jpg, .jpeg or .png (any case of the
extension).

A sample is a dict::

    image   uint8  (3, H, W)
    mask    int64  (H, W)      class ids, 255 = ignore (all 255 when the split has no masks)
    labels  float  (C - 1,)    multi-hot image-level tags over the foreground classes
    clicks  int64  (K, 3)      [y, x, class_id] points (only with ``with_clicks=True``)
    name    str

Image-level tags come from ``image_labels.txt`` where it exists, otherwise from the mask. Clicks come
from ``clicks.json`` where it exists (every image of the split must be in it, unless
``sample_missing_clicks=True``), otherwise they are sampled from the mask with a fixed seed
(:func:`sample_clicks`). Every problem with the files raises one error that names the file; clicks that
disagree with the mask under them but may be merely imprecise give one :class:`ClickWarning` naming
clicks.json (see :meth:`VOCLayoutDataset._check_clicks`).
"""
from __future__ import annotations

import json
import warnings
import zlib
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError
from scipy import ndimage

IGNORE = 255
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")
# Tried in this order: VOC's lower-case extensions first, then their upper-case spellings (x.JPG).
_IMAGE_EXTENSIONS_TRIED = IMAGE_EXTENSIONS + tuple(e.upper() for e in IMAGE_EXTENSIONS)

VOC_CLASSES = (
    "background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train",
    "tvmonitor",
)


# A click whose class is not the mask's under it still counts as imprecise, not wrong, within this many
# pixels (in y and in x) of a pixel of its class or of an ignore (255) band.
CLICK_SLACK_PX = 2
# How many clicks a message about clicks.json quotes as examples.
CLICK_EXAMPLES = 3


class DatasetError(ValueError):
    """A dataset file is missing, unreadable or inconsistent; the message names the file."""


class ClickWarning(UserWarning):
    """Clicks of clicks.json disagree with the masks under them (see :meth:`VOCLayoutDataset._check_clicks`)."""


def read_text(path: Path) -> str:
    """The text of a small dataset file, read as UTF-8 (a leading byte-order mark is dropped)."""
    try:
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as err:
        raise DatasetError(f"{path}: not a UTF-8 text file ({err})") from err


def read_classes(path: Path) -> list[str]:
    """Read ``classes.txt``: one class name per line, background first."""
    if not path.is_file():
        raise DatasetError(f"{path}: classes.txt not found (one class name per line, background first)")
    names = [line.strip() for line in read_text(path).splitlines() if line.strip()]
    if len(names) < 2:
        raise DatasetError(f"{path}: needs the background class and at least one object class, found {names}")
    if len(set(names)) != len(names):
        raise DatasetError(f"{path}: class names are not unique: {names}")
    return names


def read_split(path: Path) -> list[str]:
    """Read an ImageSets split file: one image name per line, each listed once.

    Blank lines and surrounding spaces are ignored; an empty or missing split, a line holding more
    than one word (a name with a space in it, or "name label" as in ImageSets/Main) and a name listed
    twice are errors naming the file and line.
    """
    if not path.is_file():
        raise DatasetError(f"{path}: split file not found")
    names, seen = [], {}
    for lineno, line in enumerate(read_text(path).splitlines(), 1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) > 1:
            raise DatasetError(f"{path}:{lineno}: a split line holds one image name, found {line.strip()!r} "
                               f"(image names cannot contain spaces)")
        name = fields[0]
        if name in seen:
            raise DatasetError(f"{path}:{lineno}: image {name!r} is listed twice (first on line {seen[name]})")
        seen[name] = lineno
        names.append(name)
    if not names:
        raise DatasetError(f"{path}: the split is empty")
    return names


_EXIF_ORIENTATION = 0x0112


def exif_orientation(path: Path) -> int:
    """The EXIF orientation tag of an image file (1 = as stored; 2-8 = mirrored and/or rotated), 1 if none."""
    try:
        with Image.open(path) as img:
            return int(img.getexif().get(_EXIF_ORIENTATION, 1) or 1)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, TypeError):
        return 1


def load_image(path: Path) -> np.ndarray:
    """Read an RGB image as uint8 (H, W, 3) as it is displayed: the EXIF orientation that phone photos
    carry is applied (PIL's ``ImageOps.exif_transpose``, as torchvision's ``decode_image`` does with
    ``apply_exif_orientation=True``), so the pixels line up with a mask drawn on the shown photo. A
    corrupt file raises DatasetError naming it."""
    try:
        with Image.open(path) as img:
            shown = ImageOps.exif_transpose(img) if img.getexif().get(_EXIF_ORIENTATION, 1) not in (None, 1) else img
            return np.asarray(shown.convert("RGB"), dtype=np.uint8).copy()
    except (UnidentifiedImageError, OSError, SyntaxError) as err:
        raise DatasetError(f"{path}: cannot read image ({err})") from err


def load_mask(path: Path, num_classes: int, *, classes_from: str = "classes.txt") -> np.ndarray:
    """Read a class-id mask (palette or grey PNG) as int64 (H, W), checking ids against the classes.

    classes_from: where the class list came from, for the error on an id outside it.
    """
    try:
        with Image.open(path) as img:
            if img.mode not in ("P", "L", "I", "I;16"):
                raise DatasetError(f"{path}: mask must be a palette or grey PNG of class ids, got mode {img.mode}")
            mask = np.asarray(img, dtype=np.int64).copy()
    except (UnidentifiedImageError, OSError, SyntaxError) as err:
        raise DatasetError(f"{path}: cannot read mask ({err})") from err
    bad = np.unique(mask[(mask < 0) | ((mask >= num_classes) & (mask != IGNORE))])
    if bad.size:
        raise DatasetError(
            f"{path}: mask holds class ids {bad.tolist()} outside {classes_from} (0..{num_classes - 1}, "
            f"255 = ignore)")
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
        click_seed: seed of the clicks sampled from masks when no clicks.json exists (and of those of the
            images missing from it with ``sample_missing_clicks=True``).
        sample_missing_clicks: with a clicks.json, sample the clicks of the split's images missing from it
            from their masks. False (the default): a missing image is an error naming clicks.json, since
            filling it in silently would mix hand-made and mask-sampled clicks in one training set.
        require_masks: every listed image must have a mask (True for training splits with masks).
        mask_dir: the folder of the class masks, relative to ``root``.

    Files listed by the split, classes.txt, image_labels.txt and clicks.json are checked when the
    dataset is made; images and masks when a sample is read (each error names its file). Reading a
    sample also checks that image_labels.txt agrees with the mask (every class of the mask is tagged;
    every tag is in the mask unless the mask has ignore pixels that may hide it) and that the clicks of
    clicks.json lie inside the image. With ``with_clicks``, the clicks of clicks.json are also checked
    against the split when the dataset is made (:meth:`_check_clicks`: every image listed, some object
    clicked, each click's class among its image's tags and, where there are masks, the class under it).
    :meth:`check_has_foreground` catches a split whose masks hold no object at all
    (:func:`wsss.data.build_dataset` calls it).
    """

    def __init__(self, root: str | Path, split: str, *, transform: Callable | None = None,
                 class_names: Sequence[str] | None = None, with_clicks: bool = False, click_seed: int = 0,
                 require_masks: bool = True, mask_dir: str = "SegmentationClass",
                 sample_missing_clicks: bool = False):
        self.root = Path(root)
        if not self.root.is_dir():
            raise DatasetError(f"{self.root}: data_root does not exist or is not a folder")
        self.split = split
        self.transform = transform
        self.with_clicks = with_clicks
        self.click_seed = click_seed
        self.sample_missing_clicks = sample_missing_clicks
        self.class_names = list(class_names) if class_names is not None else read_classes(self.root / "classes.txt")
        self.num_classes = len(self.class_names)
        self.classes_from = self._describe_classes(given=class_names is not None)
        self.split_file = self.root / "ImageSets" / "Segmentation" / f"{split}.txt"
        self.names = read_split(self.split_file)
        self.image_paths = [self._find_image(n) for n in self.names]
        mask_root = self.root / mask_dir
        self.mask_paths = [mask_root / f"{n}.png" for n in self.names]
        if require_masks:
            missing = [str(p) for p in self.mask_paths if not p.is_file()]
            if missing:
                raise DatasetError(f"{missing[0]}: mask listed in split '{split}' ({self.split_file}) not found "
                                   f"({len(missing)} missing in all)")
        self.tags_path = self.root / "image_labels.txt"
        self.tags = self._read_tags(self.tags_path)
        self.clicks_path = self.root / "clicks.json"
        self.clicks = self._read_clicks(self.clicks_path) if with_clicks else None
        if self.clicks is not None:
            self._check_clicks()

    def _describe_classes(self, given: bool) -> str:
        """Where the class list came from, as error messages name it."""
        own = self.root / "classes.txt"
        if not given:
            return str(own)
        what = ("the 21 PASCAL VOC classes" if tuple(self.class_names) == VOC_CLASSES
                else f"the {self.num_classes} classes given as class_names")
        if not own.is_file():
            what += (f" ({own} does not exist; a dataset of your own needs one: one class name per line, "
                     f"background first)")
        return what

    def _find_image(self, name: str) -> Path:
        for ext in _IMAGE_EXTENSIONS_TRIED:
            path = self.root / "JPEGImages" / f"{name}{ext}"
            if path.is_file():
                return path
        raise DatasetError(f"{self.root / 'JPEGImages' / name}.jpg: image listed in split '{self.split}' "
                           f"({self.split_file}) not found (tried the extensions {', '.join(_IMAGE_EXTENSIONS_TRIED)})")

    def _read_tags(self, path: Path) -> dict[str, np.ndarray] | None:
        """Read image_labels.txt: "<name> <id> <id> ..." per line, foreground ids 1..C-1 (none: background only)."""
        if not path.is_file():
            return None
        tags, first_line = {}, {}
        for lineno, line in enumerate(read_text(path).splitlines(), 1):
            fields = line.split()
            if not fields:
                continue
            if fields[0] in first_line:
                raise DatasetError(f"{path}:{lineno}: image {fields[0]!r} is listed twice (first on line "
                                   f"{first_line[fields[0]]})")
            first_line[fields[0]] = lineno
            try:
                ids = [int(f) for f in fields[1:]]
            except ValueError as err:
                raise DatasetError(f"{path}:{lineno}: class ids must be integers ({err})") from err
            if any(not 0 < i < self.num_classes for i in ids):
                raise DatasetError(f"{path}:{lineno}: class ids {ids} outside 1..{self.num_classes - 1} "
                                   f"(the foreground classes of {self.classes_from})")
            vec = np.zeros(self.num_classes - 1, dtype=np.float32)
            vec[np.asarray(ids, dtype=np.int64) - 1] = 1.0
            tags[fields[0]] = vec
        missing = [n for n in self.names if n not in tags]
        if missing:
            raise DatasetError(f"{path}: no image-level labels for '{missing[0]}' ({len(missing)} missing)")
        if not any(tags[n].any() for n in self.names):
            raise DatasetError(f"{path}: no image of split '{self.split}' has a foreground class: every line "
                               f"lists the image name alone, so there is nothing to learn from the tags")
        return tags

    def _read_clicks(self, path: Path) -> dict[str, np.ndarray] | None:
        """Read clicks.json, the point labels, if the folder has one.

        The format is one JSON object mapping image names to lists of clicks, each click a list of three
        integers ``[y, x, class_id]``: the row and column of the pixel (0-based, inside the image) and
        its class (0 = background .. C-1)::

            {"2008_000001": [[12, 40, 8], [30, 7, 0]], "2008_000002": []}

        An empty list means no clicks. Every image of the split must be in the file (an image missing from
        it gets clicks sampled from its mask only with ``sample_missing_clicks=True``); images of other
        splits may be too. The shape, the types and the class ids are checked here, the clicks against
        the split, its tags and its masks by :meth:`_check_clicks`, the coordinates against the image size
        when the sample is read; each error names clicks.json and the image.
        """
        if not path.is_file():
            return None
        try:
            raw = json.loads(read_text(path))
        except json.JSONDecodeError as err:
            raise DatasetError(f"{path}: not valid JSON ({err})") from err
        form = '{"<image name>": [[y, x, class_id], ...], ...}'
        if not isinstance(raw, dict):
            raise DatasetError(f"{path}: must be a JSON object {form}, found a JSON {type(raw).__name__}")
        clicks = {}
        for name, pts in raw.items():
            if not isinstance(pts, list):
                raise DatasetError(f"{path}: clicks of {name!r} must be a list of [y, x, class_id] triples "
                                   f"({form}), found a JSON {type(pts).__name__}")
            for k, pt in enumerate(pts):
                if not (isinstance(pt, list) and len(pt) == 3):
                    raise DatasetError(f"{path}: click {k} of {name!r} is {_short(pt)}, not a [y, x, class_id] "
                                       f"triple ({form})")
                if not all(_is_integer(v) for v in pt):
                    raise DatasetError(f"{path}: click {k} of {name!r} is {_short(pt)}: y, x and class_id must "
                                       f"be integers")
                y, x, c = (int(v) for v in pt)
                if y < 0 or x < 0:
                    raise DatasetError(f"{path}: click {k} of {name!r} is {pt}: negative coordinate")
                if not 0 <= c < self.num_classes:
                    raise DatasetError(f"{path}: click {k} of {name!r} is {pt}: class id {c} outside "
                                       f"0..{self.num_classes - 1} ({self.classes_from})")
            clicks[name] = np.asarray(pts, dtype=np.int64).reshape(-1, 3)
        return clicks

    def _check_clicks(self) -> None:
        """Check the clicks of clicks.json against the split, its tags and its masks, when the dataset is made.

        Three rules, each giving one message that names clicks.json:

        * **Every image of the split is in the file** (an empty list for an image without clicks), else
          a DatasetError naming the first missing images. Sampling their clicks from the masks instead
          would mix two sources of supervision without a word; ``sample_missing_clicks=True`` asks for it.
        * **Some click labels an object class**, else a DatasetError giving how many images and clicks
          were read. An error rather than a warning: the clicks are the only labels click supervision
          learns from (Seminar's partial cross-entropy), so with background clicks alone every model
          learns to predict background and the run is certain to score the all-background floor; it is
          the rule image_labels.txt and the masks already follow (no foreground anywhere is an error).
          Images sampled with ``sample_missing_clicks=True`` bring object clicks of their own, so the
          rule applies when every image's clicks come from the file.
        * **A click's class agrees with its image.** A click of an object class that is not among the
          image's tags (image_labels.txt, else the classes of its mask) is clearly wrong: a DatasetError
          giving how many and a few examples. Where tags come from the mask, a click on or within
          ``CLICK_SLACK_PX`` px of an ignore (255) pixel is exempt, since VOC draws difficult objects
          all 255. A click whose class is among the tags (or background) but differs from the mask under
          it may be a slip or a swapped (x, y): a :class:`ClickWarning` giving how many and a few
          examples, training goes on. Clicks on an ignore (255) pixel, or within ``CLICK_SLACK_PX``
          pixels of a pixel of their class or of an ignore band, are imprecise clicks at a boundary and
          are accepted without a word. Images without a mask are checked against image_labels.txt only;
          clicks outside the mask are left to the error raised when the sample is read.

        Masks are read once here (with clicks.json and ``with_clicks`` only); a mask that cannot be read
        raises its own error, naming it.
        """
        path, split = self.clicks_path, f"split '{self.split}' ({self.split_file})"
        missing = [n for n in self.names if n not in self.clicks]
        if missing and not self.sample_missing_clicks:
            raise DatasetError(
                f"{path}: no clicks for {len(missing)} of the {len(self.names)} images of {split}, first "
                f"{', '.join(repr(n) for n in missing[:5])}; give every image an entry (an empty list [] for an "
                f"image without clicks), or pass sample_missing_clicks=True to sample the missing images' clicks "
                f"from their masks")
        listed = [(i, n) for i, n in enumerate(self.names) if n in self.clicks]
        total = sum(len(self.clicks[n]) for _, n in listed)
        if not missing and not any((self.clicks[n][:, 2] > 0).any() for _, n in listed):
            raise DatasetError(
                f"{path}: no click labels an object class: the {len(listed)} images of {split} hold {total} "
                f"clicks{', all background (class 0)' if total else ''}; click supervision learns from the clicks "
                f"alone, so a model would only learn to predict background. Give each object a click [y, x, class_id] with its "
                f"class 1..{self.num_classes - 1} ({self.classes_from})")
        wrong, off = [], []
        for i, name in listed:
            pts = self.clicks[name]
            if not len(pts):
                continue
            mask_path = self.mask_paths[i]
            mask = (load_mask(mask_path, self.num_classes, classes_from=self.classes_from)
                    if mask_path.is_file() else None)
            if self.tags is not None:
                tagged = np.concatenate([[1.0], self.tags[name]]) > 0
            elif mask is not None:
                tagged = np.bincount(mask[mask != IGNORE].ravel(), minlength=self.num_classes) > 0
                tagged[0] = True
            else:
                continue        # neither tags nor a mask to check against
            for y, x, c in pts.tolist():
                if mask is None:
                    if not tagged[c]:
                        wrong.append((name, y, x, c, None))
                    continue
                if y >= mask.shape[0] or x >= mask.shape[1]:
                    continue    # outside the image: the error of __getitem__
                under = int(mask[y, x])
                if under == c:
                    continue
                r = CLICK_SLACK_PX
                window = mask[max(0, y - r):y + r + 1, max(0, x - r):x + r + 1]
                near_ignore = bool((window == IGNORE).any())
                imprecise = near_ignore or bool((window == c).any())
                if not tagged[c] and (self.tags is not None or not near_ignore):
                    wrong.append((name, y, x, c, under))
                elif not imprecise:
                    off.append((name, y, x, c, under))
        if wrong:
            source = (f"{self.tags_path}" if self.tags is not None else "the classes of its mask")
            raise DatasetError(
                f"{path}: {len(wrong)} of the {total} clicks of {split} label a class that is not among their "
                f"image's tags ({source}), e.g. {self._click_examples(wrong)}; a click labels the object under it, "
                f"so these name objects the image does not hold (is class_id the third number, [y, x, class_id]?)")
        if off:
            warnings.warn(
                f"{path}: {len(off)} of the {total} clicks of {split} disagree with the mask under them, e.g. "
                f"{self._click_examples(off)}; training learns those pixels as the click's class. A click on an "
                f"ignore (255) pixel or within {CLICK_SLACK_PX} px of its class or of an ignore band is taken as "
                f"imprecise and not counted; check these clicks (rows are [y, x, class_id], y first) or the masks",
                ClickWarning, stacklevel=3)

    def _click_examples(self, clicks: list[tuple]) -> str:
        """The first few (name, y, x, click class, mask class) of a list of bad clicks, for a message."""
        def cls(c):
            if c == IGNORE:
                return f"{IGNORE} (ignore)"
            return f"{c} ({self.class_names[c]})"
        parts = [f"{name!r} at y={y}, x={x}: click class {cls(c)}, "
                 + (f"mask class {cls(m)}" if m is not None else "no mask")
                 for name, y, x, c, m in clicks[:CLICK_EXAMPLES]]
        return "; ".join(parts) + (f"; and {len(clicks) - CLICK_EXAMPLES} more" if len(clicks) > CLICK_EXAMPLES else "")

    def check_has_foreground(self) -> None:
        """Raise DatasetError when no image of the split has a foreground class.

        That is what masks drawn with 255 (ignore) for the objects look like, and every score computed
        on such a split would be meaningless. The masks are read in order until one holds an object, so
        a sound split costs one or two reads. Images without a mask (a test split) are not counted.
        """
        if self.tags is not None:   # _read_tags has checked the tags already
            return
        mask_dirs = sorted({str(p.parent) for p in self.mask_paths})
        read = 0
        for path in self.mask_paths:
            if not path.is_file():
                continue
            read += 1
            if labels_from_mask(load_mask(path, self.num_classes, classes_from=self.classes_from),
                                self.num_classes).any():
                return
        if read:
            raise DatasetError(
                f"split '{self.split}' ({self.split_file}): none of its {read} masks in {', '.join(mask_dirs)} holds "
                f"a foreground class, only background (0) and ignore ({IGNORE}); objects must be drawn with their "
                f"class ids 1..{self.num_classes - 1} of {self.classes_from}, not with {IGNORE}")

    def __len__(self) -> int:
        return len(self.names)

    def __getitem__(self, index: int) -> dict:
        name = self.names[index]
        image = load_image(self.image_paths[index])
        mask_path = self.mask_paths[index]
        has_mask = mask_path.is_file()
        if has_mask:
            mask = load_mask(mask_path, self.num_classes, classes_from=self.classes_from)
            if mask.shape != image.shape[:2]:
                turn = exif_orientation(self.image_paths[index])
                note = (f" (the photo {self.image_paths[index].name} carries EXIF orientation {turn}, so it is read "
                        f"rotated as it is displayed, {image.shape[:2]}; draw the mask on the displayed photo, or "
                        f"remove the tag if the mask follows the stored pixels)" if turn != 1 else "")
                raise DatasetError(f"{mask_path}: mask size {mask.shape} differs from its image {image.shape[:2]}{note}")
        else:
            mask = np.full(image.shape[:2], IGNORE, dtype=np.int64)
        if self.tags is not None:
            tags = self.tags[name]
            if has_mask:
                self._check_tags_agree(name, tags, mask, mask_path)
        else:
            tags = labels_from_mask(mask, self.num_classes)
        sample = {
            "image": torch.from_numpy(image).permute(2, 0, 1).contiguous(),
            "mask": torch.from_numpy(mask),
            "labels": torch.from_numpy(tags),
            "name": name,
        }
        if self.with_clicks:
            if self.clicks is not None and name in self.clicks:
                pts = self.clicks[name]
                outside = (pts[:, 0] >= image.shape[0]) | (pts[:, 1] >= image.shape[1])
                if outside.any():
                    raise DatasetError(f"{self.clicks_path}: click {int(np.argmax(outside))} of {name!r} is "
                                       f"{pts[outside][0].tolist()}, outside its {image.shape[0]}x{image.shape[1]} "
                                       f"image {self.image_paths[index]} (clicks are [y, x, class_id])")
            else:
                pts = sample_clicks(mask, stable_seed(name, self.click_seed),
                                    instances=self._instances(name, mask.shape))
            sample["clicks"] = torch.from_numpy(pts)
        if self.transform is not None:
            sample = self.transform(sample)
        return sample

    def _check_tags_agree(self, name: str, tags: np.ndarray, mask: np.ndarray, mask_path: Path) -> None:
        """image_labels.txt must tag every class of the mask, and tag no class the mask lacks (unless the
        mask has ignore pixels, under which a tagged object may lie, as VOC marks difficult objects)."""
        counts = np.bincount(mask.ravel(), minlength=IGNORE + 1)   # ids are checked to be < C or 255
        in_mask = (counts[1:self.num_classes] > 0).astype(np.float32)
        untagged = np.flatnonzero((in_mask > 0) & (tags == 0)) + 1
        absent = np.flatnonzero((tags > 0) & (in_mask == 0)) + 1
        if untagged.size or (absent.size and not counts[IGNORE]):
            problem = (f"the mask holds classes {untagged.tolist()} it does not tag" if untagged.size
                       else f"it tags classes {absent.tolist()} the mask does not hold")
            raise DatasetError(f"{self.tags_path}: the labels of {name!r} contradict its mask "
                               f"{mask_path}: {problem} "
                               f"(tags {(np.flatnonzero(tags) + 1).tolist()}, mask classes "
                               f"{(np.flatnonzero(in_mask) + 1).tolist()})")

    def _instances(self, name: str, shape: tuple[int, int]) -> np.ndarray | None:
        """VOC's SegmentationObject/<name>.png instance ids, if present, checked to match the mask size."""
        path = self.root / "SegmentationObject" / f"{name}.png"
        if not path.is_file():
            return None
        try:
            with Image.open(path) as img:
                instances = np.asarray(img, dtype=np.int64).copy()
        except (UnidentifiedImageError, OSError, SyntaxError) as err:
            raise DatasetError(f"{path}: cannot read instance mask ({err})") from err
        if instances.shape != tuple(shape):
            raise DatasetError(f"{path}: instance mask is {instances.shape}, its class mask {tuple(shape)} "
                               f"(instance masks are palette or grey PNGs of the image's size)")
        return instances


def _is_integer(value) -> bool:
    """A JSON number holding an integer (12 or 12.0), not a string or a bool."""
    if isinstance(value, bool):
        return False
    return isinstance(value, int) or (isinstance(value, float) and value.is_integer())


def _short(value, limit: int = 60) -> str:
    """A value as JSON, cut to ``limit`` characters for an error message."""
    text = json.dumps(value) if not isinstance(value, np.ndarray) else str(value.tolist())
    return text if len(text) <= limit else text[:limit - 3] + "..."


class PseudoMaskDataset(torch.utils.data.Dataset):
    """A dataset with its masks replaced by pseudo masks: the retrain step of every WSSS paper, where a
    segmentation network learns from the masks the weakly supervised model made for the train split.

    base: a dataset without a transform (its own masks are dropped); masks: image name -> (H, W) class
    ids (255 = ignore), one for every image of ``base`` (or (M, H, W): M masks that crops and flips move
    together, e.g. SSDD's knowledge and advice); transform: applied after the swap, so crops
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
        if mask.shape[-2:] != sample["image"].shape[1:] or mask.ndim not in (2, 3):
            raise DatasetError(f"pseudo mask of {sample['name']!r} is {tuple(mask.shape)}, its image "
                               f"{tuple(sample['image'].shape[1:])}")
        sample = {**sample, "mask": mask}
        return self.transform(sample) if self.transform is not None else sample


def clicks_to_mask(clicks: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Rasterise click points (K, 3) [y, x, class] into a sparse label map (H, W), 255 elsewhere."""
    mask = torch.full(size, IGNORE, dtype=torch.int64)
    if clicks.numel():
        mask[clicks[:, 0], clicks[:, 1]] = clicks[:, 2]
    return mask


def collate(samples: list[dict]) -> dict:
    """Stack images, masks and tags of equal size; keep names and clicks as lists. With clicks, also
    "click_mask" int64 (B, H, W): each image's clicks rasterised at its size, 255 = unlabelled."""
    out = {}
    for key in samples[0]:
        values = [s[key] for s in samples]
        if key in ("image", "mask", "labels", "valid"):
            shapes = {tuple(v.shape) for v in values}
            if len(shapes) > 1:
                raise ValueError(f"cannot batch '{key}' of different sizes {sorted(shapes)}; crop or resize "
                                 f"with a transform, or use batch_size=1")
            out[key] = torch.stack(values)
        else:
            out[key] = values
    if "clicks" in out and "image" in out:
        out["click_mask"] = torch.stack([clicks_to_mask(c, tuple(out["image"].shape[2:])) for c in out["clicks"]])
    return out
