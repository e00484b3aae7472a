"""Datasets: the embedded synthetic benchmark, PASCAL VOC 2012 (+SBD), COCO 2014, COCO-Stuff 10K, own folders.

All of them yield the same sample dict (see :mod:`wsss.data.folder`). :func:`build_dataset` is the one
entry point the notebooks and the trainer use.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

from .folder import IGNORE, VOC_CLASSES, DatasetError, PseudoMaskDataset, VOCLayoutDataset, collate

DATASETS = ("synthetic", "voc", "coco", "cocostuff10k")


def build_dataset(name: str, root: str | Path, split: str, *, transform: Callable | None = None,
                  with_clicks: bool = False, click_seed: int = 0, **kwargs):
    """Open split ``split`` of dataset ``name`` stored under ``root``.

    name: "synthetic" or "voc" read any folder in the VOC layout with a classes.txt (real VOC 2012,
    which ships none, gets the 21 VOC class names, and its "train_aug" split is built from SBD);
    "coco" reads MS COCO 2014 (80 classes + background); "cocostuff10k" reads COCO-Stuff 10K reduced to
    the 20 VOC classes. Use :func:`wsss.data.synthetic.ensure_benchmark` to write the synthetic one.

    Every problem with the files raises :class:`DatasetError` naming the file at fault; a VOC-layout
    split whose masks hold no object at all (e.g. objects drawn with 255) is refused here too.
    """
    common = dict(transform=transform, with_clicks=with_clicks, click_seed=click_seed, **kwargs)
    if name in ("coco", "cocostuff10k") and (Path(root) / "resized.json").is_file():
        name = "voc"        # a downsized copy (wsss.data.resized) is in the VOC layout, whatever it came from
    if name == "synthetic":
        dataset = VOCLayoutDataset(root, split, **common)
        dataset.check_has_foreground()
        return dataset
    if name == "voc":
        from .voc import build_voc
        return build_voc(root, split, **common)
    if name == "coco":
        from .coco import build_coco
        return build_coco(root, split, **common)
    if name == "cocostuff10k":
        from .coco import build_cocostuff10k
        return build_cocostuff10k(root, split, **common)
    raise ValueError(f"dataset={name!r} is not known; choose one of {DATASETS}")


__all__ = ["DATASETS", "IGNORE", "VOC_CLASSES", "DatasetError", "PseudoMaskDataset", "VOCLayoutDataset", "build_dataset", "collate"]
