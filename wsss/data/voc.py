"""PASCAL VOC 2012, and its "train_aug" split built from the Semantic Boundaries Dataset (SBD).

WSSS papers train on VOC 2012 "train_aug": 10,582 images, the union of VOC train (1,464) and SBD
train + val (8,498 + 2,857) less every image of VOC val (1,449), which is kept for evaluation. VOC
ships masks for its own 2,913 images only; the others have SBD masks, stored by SBD as MATLAB files
(``cls/<name>.mat``). :func:`build_voc` writes them once, next to VOC's own folders, as the cache
most WSSS code expects::

    VOC2012/SegmentationClassAug/<name>.png       palette PNGs (VOC's own mask where VOC has one)
    VOC2012/ImageSets/Segmentation/train_aug.txt  the 10,582 names, written last

after which the split reads like any other (:class:`wsss.data.folder.VOCLayoutDataset`). An existing
train_aug.txt (e.g. from the usual DeepLab "SegmentationClassAug" download, or one's own) is used as it
is, with its masks in SegmentationClassAug/ where that folder exists, else in SegmentationClass/; it is
never rewritten: train_aug is built from SBD only when the file does not exist.
torchvision's :class:`~torchvision.datasets.SBDataset` reads SBD's split lists and .mat files.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image
from tqdm import tqdm

from .folder import VOC_CLASSES, DatasetError, VOCLayoutDataset, read_split
from .synthetic import palette

AUG_SPLIT = "train_aug"
AUG_MASKS = "SegmentationClassAug"


def find_voc_root(root: str | Path) -> Path:
    """The folder holding JPEGImages/: ``root`` itself, ``root/VOC2012`` or ``root/VOCdevkit/VOC2012``."""
    root = Path(root)
    tried = [root, root / "VOC2012", root / "VOCdevkit" / "VOC2012"]
    for folder in tried:
        if (folder / "JPEGImages").is_dir():
            return folder
    raise DatasetError(f"{root}: no VOC folder (with JPEGImages/) found; looked in "
                       + ", ".join(str(p) for p in tried))


def _is_sbd(folder: Path) -> bool:
    return (folder / "cls").is_dir() and (folder / "train.txt").is_file() and (folder / "val.txt").is_file()


def find_sbd_root(root: str | Path, voc: Path, sbd_root: str | Path | None = None) -> Path:
    """SBD's ``benchmark_RELEASE/dataset`` folder (cls/, img/, train.txt, val.txt).

    Looks at ``sbd_root`` when given, else at SBD/ and benchmark_RELEASE/dataset beside or inside the
    VOC folders; each place is also searched for a nested ``benchmark_RELEASE/dataset``.
    """
    if sbd_root is not None:
        places = [Path(sbd_root)]
    else:
        places = []
        for base in dict.fromkeys([Path(root), voc, voc.parent]):
            places += [base / "SBD", base.parent / "SBD", base.parent / "benchmark_RELEASE" / "dataset"]
    tried = []
    for place in dict.fromkeys(places):
        for folder in (place, place / "benchmark_RELEASE" / "dataset", place / "dataset"):
            tried.append(folder)
            if _is_sbd(folder):
                return folder
    raise DatasetError(
        f"split '{AUG_SPLIT}' needs the SBD dataset (benchmark_RELEASE/dataset with cls/*.mat, train.txt, "
        f"val.txt) to build {voc / AUG_MASKS}, but none was found; looked in: "
        + ", ".join(str(p) for p in tried) + ". Pass sbd_root=... or put it at one of those places.")


def _train_aug_mask_dir(voc: Path) -> str | None:
    """The mask folder of an existing train_aug split, or None when there is no train_aug.txt to use.

    An existing train_aug.txt is never rebuilt (it may be the user's own list): its masks are in
    SegmentationClassAug/ where that folder exists, else in SegmentationClass/ (e.g. the synthetic
    benchmark); a missing mask is then an error naming it.
    """
    if not (voc / "ImageSets" / "Segmentation" / f"{AUG_SPLIT}.txt").is_file():
        return None
    return AUG_MASKS if (voc / AUG_MASKS).is_dir() else "SegmentationClass"


def _tmp_path(path: Path) -> Path:
    """A temporary name beside ``path``, private to this process (DDP ranks may build at once)."""
    return path.with_name(f"{path.name}.{os.getpid()}.tmp")


def _create_text(path: Path, text: str) -> bool:
    """Write a new file atomically, never replacing an existing one; False if ``path`` already exists.

    The text goes to a private temporary file, which is then hard-linked to ``path`` (which fails if
    ``path`` exists) or, on file systems without hard links, renamed to it after a last check.
    """
    tmp = _tmp_path(path)
    tmp.write_text(text)
    try:
        try:
            os.link(tmp, path)
        except FileExistsError:
            return False
        except OSError:   # no hard links here (e.g. some network or FAT file systems)
            if path.exists():
                return False
            os.replace(tmp, path)
        return True
    finally:
        tmp.unlink(missing_ok=True)


def _write_atomic_png(mask: np.ndarray, path: Path) -> None:
    png = Image.fromarray(mask.astype(np.uint8), mode="P")
    png.putpalette(palette())
    tmp = _tmp_path(path)
    png.save(tmp, format="PNG")
    os.replace(tmp, path)


def build_train_aug(voc: Path, sbd: Path, *, progress: bool = True) -> list[str]:
    """Write SegmentationClassAug/ and ImageSets/Segmentation/train_aug.txt from VOC and SBD.

    train_aug = (VOC train ∪ SBD train ∪ SBD val) − VOC val. Each mask is written atomically and
    the split file last, so an interrupted build resumes where it stopped and is never mistaken for
    a finished one. An existing train_aug.txt is never replaced: the build refuses to start when there
    is one, and if one appears meanwhile (another process built it) that one is kept. Returns the names,
    sorted.
    """
    sets = voc / "ImageSets" / "Segmentation"
    split_file = sets / f"{AUG_SPLIT}.txt"
    if split_file.exists():
        raise DatasetError(f"{split_file}: exists already; it is used as it is and never rebuilt from SBD "
                           f"(move it away to build {AUG_SPLIT} from VOC and SBD)")
    from torchvision.datasets import SBDataset

    voc_train, voc_val = read_split(sets / "train.txt"), read_split(sets / "val.txt")
    sbd_masks = {}
    for image_set in ("train", "val"):
        sbd_split = SBDataset(str(sbd), image_set=image_set, mode="segmentation")
        sbd_masks.update({Path(p).stem: p for p in sbd_split.masks})
    # SBDataset's own reader of the .mat field GTcls.Segmentation (it has no public per-file accessor,
    # and indexing the dataset would also decode every image).
    read_sbd_mask = sbd_split._get_segmentation_target
    names = sorted((set(voc_train) | set(sbd_masks)) - set(voc_val))

    out = voc / AUG_MASKS
    out.mkdir(exist_ok=True)
    for name in tqdm(names, desc=f"writing {out}", disable=not progress):
        dst = out / f"{name}.png"
        if dst.is_file():
            continue
        voc_mask = voc / "SegmentationClass" / f"{name}.png"
        if voc_mask.is_file():  # VOC's own annotation takes precedence over SBD's
            tmp = _tmp_path(dst)
            shutil.copyfile(voc_mask, tmp)
            os.replace(tmp, dst)
        elif name in sbd_masks:
            try:
                target = read_sbd_mask(sbd_masks[name])
            except (OSError, KeyError, IndexError, TypeError, ValueError) as err:
                raise DatasetError(f"{sbd_masks[name]}: cannot read the SBD mask ({err})") from err
            _write_atomic_png(np.asarray(target), dst)
        else:
            raise DatasetError(f"{voc_mask}: VOC train image '{name}' has no mask")

    _create_text(split_file, "\n".join(names) + "\n")
    return names


def build_voc(root: str | Path, split: str, *, transform: Callable | None = None, with_clicks: bool = False,
              click_seed: int = 0, sbd_root: str | Path | None = None, progress: bool = True,
              **kwargs) -> VOCLayoutDataset:
    """Open split ``split`` of PASCAL VOC 2012 (or any folder in its layout).

    root: the VOC2012 folder, or a VOCdevkit folder holding it (or the folder above VOCdevkit).
    split: a file of ImageSets/Segmentation ("train", "val", ...) or "train_aug", built from SBD on
        first use (see the module docstring); SBD is looked for at ``sbd_root``, else beside ``root``.
        An existing train_aug.txt is used as it is, never rebuilt.
    Classes come from classes.txt where the folder has one, else the 21 VOC classes. Other keyword
    arguments go to :class:`~wsss.data.folder.VOCLayoutDataset`; its clicks use SegmentationObject/
    for instances where VOC has it, and connected components for SBD-only images. A split whose masks
    hold no object at all is an error (:meth:`~wsss.data.folder.VOCLayoutDataset.check_has_foreground`).
    """
    voc = find_voc_root(root)
    if "class_names" not in kwargs and not (voc / "classes.txt").is_file():
        kwargs["class_names"] = VOC_CLASSES
    if split == AUG_SPLIT and "mask_dir" not in kwargs:
        mask_dir = _train_aug_mask_dir(voc)
        if mask_dir is None:
            build_train_aug(voc, find_sbd_root(root, voc, sbd_root), progress=progress)
            mask_dir = AUG_MASKS
        kwargs["mask_dir"] = mask_dir
    dataset = VOCLayoutDataset(voc, split, transform=transform, with_clicks=with_clicks, click_seed=click_seed,
                               **kwargs)
    dataset.check_has_foreground()
    return dataset
