"""How much a dataset's image-level tags say about where each class is.

Image-level WSSS learns a class from the images that have it against the images that do not. When
nearly every image carries nearly every tag (street scenes: road, sky, building, car in every photo)
the tags separate little, and CAM-based methods have almost nothing to learn from: a property of the
data, not a bug. :func:`tag_report` measures it when a notebook opens its data, and says so plainly.
"""
from __future__ import annotations

import numpy as np

from .folder import VOCLayoutDataset, labels_from_mask, load_mask

COMMON_SHARE = 0.9        # a class tagged on more than this share of the images barely separates
CROWDED_SHARE = 0.5       # images carrying, on average, more than this share of the classes


def _tags(dataset, index: int) -> np.ndarray:
    """The multi-hot tags (C - 1,) of one image, without decoding the image where the dataset allows it."""
    if isinstance(dataset, VOCLayoutDataset):
        if dataset.tags is not None:
            return dataset.tags[dataset.names[index]]
        if dataset.mask_paths[index].is_file():
            mask = load_mask(dataset.mask_paths[index], dataset.num_classes, classes_from=dataset.classes_from)
            return labels_from_mask(mask, dataset.num_classes)
    return np.asarray(dataset[index]["labels"])


def tag_report(dataset, *, max_images: int = 2000, seed: int = 0) -> dict:
    """Statistics of the image-level tags of ``dataset`` (any of :func:`wsss.data.build_dataset`'s).

    Over all images, or a seeded sample of ``max_images``: "images" counted, "classes_per_image" (mean
    number of object classes tagged per image), "share_per_image" (that over the number of object
    classes), "class_share" {class name: share of the images tagged with it}, "common" (the classes on
    more than 90% of the images), "untagged" (classes on none), "classes_from" (where the class names came
    from), and "informative": False when a class
    is on more than 90% of the images or images carry more than half of the classes on average.
    """
    n = len(dataset)
    if n == 0:
        raise ValueError("the dataset holds no image")
    rng = np.random.default_rng(seed)
    indices = np.arange(n) if n <= max_images else np.sort(rng.choice(n, max_images, replace=False))
    tags = np.stack([np.asarray(_tags(dataset, int(i)), dtype=np.float64) for i in indices])   # (N, C - 1)
    names = list(dataset.class_names[1:])
    share = tags.mean(0)
    per_image = float(tags.sum(1).mean())
    common = [c for c, s in zip(names, share) if s > COMMON_SHARE]
    return {"images": len(indices), "classes_per_image": per_image, "share_per_image": per_image / len(names),
            "class_share": dict(zip(names, share.round(4).tolist())), "common": common,
            "untagged": [c for c, s in zip(names, share) if s == 0],
            "classes_from": getattr(dataset, "classes_from", None) or getattr(getattr(dataset, "base", None), "classes_from", None),
            "informative": not common and per_image / len(names) <= CROWDED_SHARE}


def describe_tags(report: dict) -> str:
    """One or two plain lines for a notebook: the report's numbers, and a warning when the tags say little."""
    text = (f"tags: {report['classes_per_image']:.1f} of {len(report['class_share'])} object classes per image on "
            f"average ({100 * report['share_per_image']:.0f}%), over {report['images']} images; tagged on more "
            f"than 90% of them: {', '.join(report['common']) or 'no class'}")
    if report["untagged"]:
        text += f"; never tagged: {', '.join(report['untagged'])}"
        source = report.get("classes_from") or "the class list"
        text += (f"\nWARNING: {len(report['untagged'])} of the {len(report['class_share'])} object classes of "
                 f"{source} are held by none of the {report['images']} images looked at: "
                 f"{', '.join(report['untagged'])}. The networks still get an output for each; if these names do "
                 f"not belong to your data, give the folder a classes.txt with only its classes (background first).")
    if not report["informative"]:
        text += ("\nWARNING: these image-level tags separate the classes poorly (a class on nearly every image, "
                 "or images carrying most classes). Methods that learn from tags alone (CAM and everything built "
                 "on it) learn a class from the images that lack it; expect low mIoU whatever the method.")
    return text
