"""MS COCO 2014 and COCO-Stuff 10K, yielding the sample dict of :mod:`wsss.data.folder`.

**COCO 2014** (:func:`build_coco`) is read with pycocotools from its own layout::

    root/train2014/*.jpg  root/val2014/*.jpg  root/annotations/instances_{train,val}2014.json

The 80 categories become classes 1..80 in order of COCO category id (background is 0), named as in
the annotation file. Masks are rendered from the instance polygons / RLE on the fly. As is common in
WSSS COCO setups, crowd regions (``iscrowd=1``) are set to 255 (ignore) wherever no single instance
covers them. Image-level tags are the categories of all the image's annotations, crowd ones included.
Images without any annotation are left out (``skip_empty``); that gives the 82,081 train / 40,137 val
images WSSS papers report.

**COCO-Stuff 10K** (:func:`build_cocostuff10k`, release v1.1)::

    root/images/<name>.jpg  root/annotations/<name>.mat  root/imageLists/{train,test}.txt

Each .mat holds ``S``, the label map: 0 = unlabeled, 1..91 = COCO things *by COCO category id*
(person = 1, ..., toothbrush = 90), 92..182 = stuff (the v1.1 README: "91 thing classes (1-91), 91
stuff classes (92-182) and 1 class unlabeled (0)"). Following ASDT (after EDAM), it is reduced to the
21 VOC classes: the 20 COCO categories that are VOC classes keep their VOC id, every other thing and
stuff class becomes background 0, and unlabeled becomes 255. The v1.0 release (HDF5 .mat files,
1 = unlabeled) is not supported.
"""
from __future__ import annotations

import contextlib
import io
import json
from collections import defaultdict
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import scipy.io
import torch

from .folder import (IGNORE, VOC_CLASSES, DatasetError, labels_from_mask, load_image, read_split, sample_clicks,
                     stable_seed)

# The COCO categories that are VOC classes: (COCO category id, COCO name, VOC name).
COCO_VOC_CATEGORIES = (
    (5, "airplane", "aeroplane"), (2, "bicycle", "bicycle"), (16, "bird", "bird"), (9, "boat", "boat"),
    (44, "bottle", "bottle"), (6, "bus", "bus"), (3, "car", "car"), (17, "cat", "cat"), (62, "chair", "chair"),
    (21, "cow", "cow"), (67, "dining table", "diningtable"), (18, "dog", "dog"), (19, "horse", "horse"),
    (4, "motorcycle", "motorbike"), (1, "person", "person"), (64, "potted plant", "pottedplant"),
    (20, "sheep", "sheep"), (63, "couch", "sofa"), (7, "train", "train"), (72, "tv", "tvmonitor"),
)
COCOSTUFF_LABELS = 183  # 0 = unlabeled, 1..182 things and stuff


def cocostuff_to_voc_table() -> np.ndarray:
    """Look-up table (183,) from a COCO-Stuff 10K label to a VOC class id (255 for unlabeled)."""
    table = np.zeros(COCOSTUFF_LABELS, dtype=np.int64)
    table[0] = IGNORE
    for coco_id, _, voc_name in COCO_VOC_CATEGORIES:
        table[coco_id] = VOC_CLASSES.index(voc_name)
    return table


class _SegmentationDataset(torch.utils.data.Dataset):
    """Builds the sample dict; a subclass reads one image with its mask, instances and tags."""

    def __init__(self, class_names: Sequence[str], names: list[str], transform: Callable | None,
                 with_clicks: bool, click_seed: int):
        self.class_names = list(class_names)
        self.num_classes = len(self.class_names)
        self.names = names
        self.transform = transform
        self.with_clicks = with_clicks
        self.click_seed = click_seed

    def _read(self, index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None]:
        """image uint8 (H, W, 3), mask int64 (H, W), instance ids (H, W) or None, tags (C - 1,) or None."""
        raise NotImplementedError

    def __len__(self) -> int:
        return len(self.names)

    def __getitem__(self, index: int) -> dict:
        name = self.names[index]
        image, mask, instances, tags = self._read(index)
        if tags is None:
            tags = labels_from_mask(mask, self.num_classes)
        sample = {
            "image": torch.from_numpy(image).permute(2, 0, 1).contiguous(),  # (3, H, W)
            "mask": torch.from_numpy(mask),                                  # (H, W)
            "labels": torch.from_numpy(tags),                                # (C - 1,)
            "name": name,
        }
        if self.with_clicks:
            clicks = sample_clicks(mask, stable_seed(name, self.click_seed), instances=instances)
            sample["clicks"] = torch.from_numpy(clicks)                      # (K, 3) [y, x, class]
        if self.transform is not None:
            sample = self.transform(sample)
        return sample


class COCOSegmentation(_SegmentationDataset):
    """MS COCO 2014 with masks rendered by pycocotools (see the module docstring).

    Clicks: one point inside each (visible part of each) non-crowd instance, plus 2 background points.
    Instances are painted largest first, so a small object lying on a large one stays visible.
    """

    SPLITS = {"train": "train2014", "train2014": "train2014", "val": "val2014", "val2014": "val2014"}

    def __init__(self, root: str | Path, split: str, *, transform: Callable | None = None,
                 with_clicks: bool = False, click_seed: int = 0, skip_empty: bool = True):
        from pycocotools.coco import COCO

        self.root = Path(root)
        if split not in self.SPLITS:
            raise DatasetError(f"COCO split {split!r} is not known; choose one of {sorted(self.SPLITS)}")
        self.split = self.SPLITS[split]
        ann_file = self.root / "annotations" / f"instances_{self.split}.json"
        self.image_dir = self.root / self.split
        if not ann_file.is_file():
            raise DatasetError(f"{ann_file}: COCO annotation file not found")
        if not self.image_dir.is_dir():
            raise DatasetError(f"{self.image_dir}: COCO image folder not found")
        try:
            with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints its progress
                self.coco = COCO(str(ann_file))
        except (json.JSONDecodeError, KeyError, TypeError, AssertionError) as err:
            raise DatasetError(f"{ann_file}: not a COCO instances annotation file ({err!r})") from err
        cat_ids = sorted(self.coco.getCatIds())
        self.class_of_category = {cat: i + 1 for i, cat in enumerate(cat_ids)}  # COCO id -> 1..80
        self.image_ids = sorted(self.coco.getImgIds())
        if skip_empty:
            self.image_ids = [i for i in self.image_ids if self.coco.imgToAnns[i]]
        names = [Path(self.coco.imgs[i]["file_name"]).stem for i in self.image_ids]
        class_names = ["background"] + [self.coco.cats[c]["name"] for c in cat_ids]
        super().__init__(class_names, names, transform, with_clicks, click_seed)

    def render(self, image_id: int) -> tuple[np.ndarray, np.ndarray]:
        """Class mask int64 (H, W) (crowd-only pixels 255) and instance ids (H, W), numbered within each class."""
        info = self.coco.imgs[image_id]
        mask = np.zeros((info["height"], info["width"]), dtype=np.int64)
        instances = np.zeros_like(mask)
        anns = self.coco.imgToAnns[image_id]
        for ann in anns:
            if ann.get("iscrowd", 0):
                mask[self.coco.annToMask(ann) > 0] = IGNORE
        objects = [(self.coco.annToMask(a) > 0, a) for a in anns if not a.get("iscrowd", 0)]
        objects.sort(key=lambda obj: -obj[0].sum())  # largest first: small objects end on top
        count = defaultdict(int)
        for region, ann in objects:
            cls = self.class_of_category[ann["category_id"]]
            count[cls] += 1
            mask[region] = cls
            instances[region] = count[cls]
        return mask, instances

    def _read(self, index: int):
        image_id = self.image_ids[index]
        path = self.image_dir / self.coco.imgs[image_id]["file_name"]
        image = load_image(path)
        mask, instances = self.render(image_id)
        if mask.shape != image.shape[:2]:
            raise DatasetError(f"{path}: image size {image.shape[:2]} differs from its annotation {mask.shape}")
        tags = np.zeros(self.num_classes - 1, dtype=np.float32)
        for ann in self.coco.imgToAnns[image_id]:
            tags[self.class_of_category[ann["category_id"]] - 1] = 1.0
        return image, mask, instances, tags


class COCOStuff10K(_SegmentationDataset):
    """COCO-Stuff 10K (v1.1) reduced to the 21 VOC classes (see the module docstring)."""

    SPLITS = {"train": "train", "test": "test", "val": "test"}

    def __init__(self, root: str | Path, split: str, *, transform: Callable | None = None,
                 with_clicks: bool = False, click_seed: int = 0):
        root = Path(root)
        # The release unpacks into dataset/ of the cocostuff10k repository; accept the folder above it too.
        self.root = root / "dataset" if (root / "dataset" / "imageLists").is_dir() else root
        if split not in self.SPLITS:
            raise DatasetError(f"COCO-Stuff 10K split {split!r} is not known; choose one of {sorted(self.SPLITS)}")
        self.split = self.SPLITS[split]
        names = read_split(self.root / "imageLists" / f"{self.split}.txt")
        self.table = cocostuff_to_voc_table()
        super().__init__(VOC_CLASSES, names, transform, with_clicks, click_seed)

    def load_mask(self, name: str) -> np.ndarray:
        """The VOC-reduced mask int64 (H, W) of one image."""
        path = self.root / "annotations" / f"{name}.mat"
        try:
            labels = np.asarray(scipy.io.loadmat(str(path), variable_names=["S"])["S"], dtype=np.int64)
        except NotImplementedError as err:  # scipy cannot read MATLAB v7.3 (HDF5) files
            raise DatasetError(f"{path}: an HDF5 .mat file (COCO-Stuff 10K v1.0?); v1.1 is needed") from err
        except KeyError as err:
            raise DatasetError(f"{path}: no label map 'S' in the .mat file") from err
        except (OSError, ValueError) as err:
            raise DatasetError(f"{path}: cannot read the .mat file ({err})") from err
        bad = np.unique(labels[(labels < 0) | (labels >= COCOSTUFF_LABELS)])
        if bad.size:
            raise DatasetError(f"{path}: labels {bad.tolist()} outside COCO-Stuff's 0..182")
        return self.table[labels]

    def _read(self, index: int):
        name = self.names[index]
        image = load_image(self.root / "images" / f"{name}.jpg")
        mask = self.load_mask(name)
        if mask.shape != image.shape[:2]:
            raise DatasetError(f"{self.root / 'annotations' / name}.mat: mask size {mask.shape} differs from "
                               f"its image {image.shape[:2]}")
        return image, mask, None, None


def build_coco(root: str | Path, split: str, *, transform: Callable | None = None, with_clicks: bool = False,
               click_seed: int = 0, **kwargs) -> COCOSegmentation:
    """MS COCO 2014, split "train" or "val" (or "train2014" / "val2014"): 80 classes + background."""
    return COCOSegmentation(root, split, transform=transform, with_clicks=with_clicks, click_seed=click_seed,
                            **kwargs)


def build_cocostuff10k(root: str | Path, split: str, *, transform: Callable | None = None,
                       with_clicks: bool = False, click_seed: int = 0, **kwargs) -> COCOStuff10K:
    """COCO-Stuff 10K reduced to VOC's 21 classes, split "train" (9,000) or "test" (1,000; alias "val")."""
    return COCOStuff10K(root, split, transform=transform, with_clicks=with_clicks, click_seed=click_seed,
                        **kwargs)
