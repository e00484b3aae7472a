"""The readers of real datasets (VOC 2012 + SBD, COCO 2014, COCO-Stuff 10K), each on a tiny fixture
written here in that dataset's own format."""
import json

import numpy as np
import pytest
import scipy.io
import torch
from PIL import Image

from wsss.data import VOC_CLASSES, DatasetError, VOCLayoutDataset, build_dataset
from wsss.data.coco import build_coco, build_cocostuff10k, cocostuff_to_voc_table
from wsss.data.synthetic import palette
from wsss.data.voc import build_voc

# pycocotools' mask.decode still calls np.array(copy=False) under numpy 2; harmless here.
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")

H, W = 20, 24
CAT, DOG, PERSON, AEROPLANE, BIRD, CAR, BUS, SHEEP, TV, SOFA, PLANT, TABLE = (VOC_CLASSES.index(c) for c in (
    "cat", "dog", "person", "aeroplane", "bird", "car", "bus", "sheep", "tvmonitor", "sofa", "pottedplant",
    "diningtable"))


def save_png(array, path):
    """A palette PNG of class (or instance) ids, as VOC stores its masks."""
    path.parent.mkdir(parents=True, exist_ok=True)
    img = Image.fromarray(np.asarray(array, np.uint8), mode="P")
    img.putpalette(palette())
    img.save(path)


def save_jpg(path, size, seed=0):
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 255, size=(*size, 3), dtype=np.uint8)).save(path)


def rect(shape, boxes):
    """A label map with value v in each box (y0, y1, x0, x1, v), exclusive ends."""
    m = np.zeros(shape, np.uint8)
    for y0, y1, x0, x1, v in boxes:
        m[y0:y1, x0:x1] = v
    return m


# ------------------------------------------------------------------------------------------ VOC + SBD
V1, V2, V3, S1, S2 = "2008_000001", "2008_000002", "2008_000003", "2008_000004", "2008_000005"

# VOC's own masks (with a 255 boundary line, as in VOC) and instance maps.
VOC_MASKS = {
    V1: rect((H, W), [(4, 12, 2, 10, CAT), (4, 12, 10, 18, CAT), (12, 13, 2, 18, 255)]),  # two touching cats
    V2: rect((H, W), [(2, 9, 2, 9, DOG)]),
    V3: rect((H, W), [(5, 15, 5, 15, AEROPLANE)]),
}
VOC_OBJECTS = {
    V1: rect((H, W), [(4, 12, 2, 10, 1), (4, 12, 10, 18, 2), (12, 13, 2, 18, 255)]),
    V2: rect((H, W), [(2, 9, 2, 9, 1)]),
    V3: rect((H, W), [(5, 15, 5, 15, 1)]),
}
# SBD's masks: V2 differs from VOC's (VOC must win), V3 is VOC val (must be left out).
SBD_MASKS = {
    V2: rect((H, W), [(10, 18, 10, 20, PERSON)]),
    V3: rect((H, W), [(1, 6, 1, 6, BIRD)]),
    S1: rect((H, W), [(2, 8, 2, 8, CAR), (10, 18, 12, 22, BUS)]),
    S2: rect((H, W), [(6, 14, 4, 20, SHEEP)]),
}


def write_voc(voc, *, classes=None):
    """A VOC2012 folder: JPEGImages for every image, masks for VOC's own, ImageSets train/val."""
    for i, name in enumerate([V1, V2, V3, S1, S2]):
        save_jpg(voc / "JPEGImages" / f"{name}.jpg", (H, W), seed=i)
    for name in VOC_MASKS:
        save_png(VOC_MASKS[name], voc / "SegmentationClass" / f"{name}.png")
        save_png(VOC_OBJECTS[name], voc / "SegmentationObject" / f"{name}.png")
    sets = voc / "ImageSets" / "Segmentation"
    sets.mkdir(parents=True)
    (sets / "train.txt").write_text(f"{V1}\n{V2}\n")
    (sets / "val.txt").write_text(f"{V3}\n")
    if classes:
        (voc / "classes.txt").write_text("\n".join(classes) + "\n")
    return voc


def write_sbd(sbd):
    """SBD's benchmark_RELEASE/dataset: cls/<name>.mat holding the struct GTcls with field Segmentation."""
    (sbd / "cls").mkdir(parents=True)
    for i, (name, seg) in enumerate(SBD_MASKS.items()):
        present = np.unique(seg[seg > 0]).astype(np.uint8).reshape(-1, 1)
        scipy.io.savemat(sbd / "cls" / f"{name}.mat",
                         {"GTcls": {"Segmentation": seg, "CategoriesPresent": present}})
        save_jpg(sbd / "img" / f"{name}.jpg", (H, W), seed=10 + i)
    (sbd / "train.txt").write_text(f"{V2}\n{V3}\n{S1}\n")
    (sbd / "val.txt").write_text(f"{S2}\n")
    return sbd


@pytest.fixture
def voc_sbd(tmp_path):
    """tmp/VOCdevkit/VOC2012 and tmp/SBD/benchmark_RELEASE/dataset (the tgz unpacked into SBD/)."""
    voc = write_voc(tmp_path / "VOCdevkit" / "VOC2012")
    sbd = write_sbd(tmp_path / "SBD" / "benchmark_RELEASE" / "dataset")
    return tmp_path, voc, sbd


def test_sbd_fixture_is_what_torchvision_reads(voc_sbd):
    from torchvision.datasets import SBDataset
    _, _, sbd = voc_sbd
    ds = SBDataset(str(sbd), image_set="train", mode="segmentation")
    _, target = ds[2]
    np.testing.assert_array_equal(np.asarray(target), SBD_MASKS[S1])


def test_train_aug_is_built_from_voc_and_sbd(voc_sbd):
    tmp, voc, _ = voc_sbd
    ds = build_voc(tmp / "VOCdevkit", "train_aug", progress=False)   # VOCdevkit root: VOC2012 is found
    assert isinstance(ds, VOCLayoutDataset) and ds.root == voc
    # (VOC train ∪ SBD train ∪ SBD val) − VOC val
    assert ds.names == sorted([V1, V2, S1, S2])
    assert (voc / "ImageSets" / "Segmentation" / "train_aug.txt").read_text().split() == ds.names
    assert not (voc / "SegmentationClassAug" / f"{V3}.png").exists()
    assert not list((voc / "SegmentationClassAug").glob("*.tmp"))
    assert ds.class_names == list(VOC_CLASSES)
    expected = {V1: VOC_MASKS[V1], V2: VOC_MASKS[V2], S1: SBD_MASKS[S1], S2: SBD_MASKS[S2]}  # VOC wins for V2
    for i, name in enumerate(ds.names):
        with Image.open(voc / "SegmentationClassAug" / f"{name}.png") as png:
            assert png.mode == "P"
        sample = ds[i]
        assert sample["name"] == name
        assert sample["image"].shape == (3, H, W) and sample["image"].dtype == torch.uint8
        np.testing.assert_array_equal(sample["mask"].numpy(), expected[name])
        present = set(np.unique(expected[name])) - {0, 255}
        assert set((torch.nonzero(sample["labels"]).flatten() + 1).tolist()) == present


def test_train_aug_is_a_cache(voc_sbd):
    tmp, voc, sbd = voc_sbd
    build_voc(voc, "train_aug", progress=False)
    split_file = voc / "ImageSets" / "Segmentation" / "train_aug.txt"
    stamp = split_file.stat().st_mtime_ns
    sbd.parent.parent.rename(tmp / "elsewhere")   # SBD gone: the cache alone must do
    ds = build_dataset("voc", voc, "train_aug")
    assert len(ds) == 4 and split_file.stat().st_mtime_ns == stamp


def test_train_aug_finds_sbd_given_explicitly(tmp_path):
    voc = write_voc(tmp_path / "data" / "VOC2012")
    sbd = write_sbd(tmp_path / "somewhere" / "benchmark_RELEASE" / "dataset")
    ds = build_voc(voc, "train_aug", sbd_root=sbd.parent.parent, progress=False)
    assert ds.names == sorted([V1, V2, S1, S2])


def test_train_aug_without_sbd_says_where_it_looked(tmp_path):
    voc = write_voc(tmp_path / "VOC2012")
    with pytest.raises(DatasetError, match="SBD") as err:
        build_voc(voc, "train_aug", progress=False)
    assert str(tmp_path / "SBD") in str(err.value)
    assert not (voc / "ImageSets" / "Segmentation" / "train_aug.txt").exists()
    with pytest.raises(DatasetError, match="nowhere"):
        build_voc(voc, "train_aug", sbd_root=tmp_path / "nowhere", progress=False)


def test_voc_plain_splits_and_classes(tmp_path):
    voc = write_voc(tmp_path / "VOC2012")
    val = build_voc(voc, "val")
    assert val.names == [V3] and val.class_names == list(VOC_CLASSES)
    np.testing.assert_array_equal(val[0]["mask"].numpy(), VOC_MASKS[V3])
    assert val[0]["labels"].shape == (20,) and val[0]["labels"][AEROPLANE - 1] == 1
    with pytest.raises(DatasetError, match="nope.txt"):
        build_voc(voc, "nope")
    with pytest.raises(DatasetError, match="no VOC folder"):
        build_voc(tmp_path / "empty", "val")

    classes = ["background"] + [f"c{i}" for i in range(1, 21)]
    own = write_voc(tmp_path / "own" / "VOC2012", classes=classes)
    assert build_voc(own, "train").class_names == classes


def test_voc_clicks_one_per_instance_and_deterministic(voc_sbd):
    tmp, voc, _ = voc_sbd
    ds = build_voc(voc, "train_aug", with_clicks=True, click_seed=3, progress=False)
    again = build_voc(voc, "train_aug", with_clicks=True, click_seed=3, progress=False)
    other = build_voc(voc, "train_aug", with_clicks=True, click_seed=4, progress=False)
    differs = False
    for i, name in enumerate(ds.names):
        clicks = ds[i]["clicks"].numpy()
        np.testing.assert_array_equal(clicks, again[i]["clicks"].numpy())
        differs |= not np.array_equal(clicks, other[i]["clicks"].numpy())
        mask = ds[i]["mask"].numpy()
        assert (mask[clicks[:, 0], clicks[:, 1]] == clicks[:, 2]).all()   # every click on its class
        assert (clicks[:, 2] == 0).sum() == 2                              # 2 background points
        if name == V1:   # two touching cats: instances from SegmentationObject, not one component
            cats = clicks[clicks[:, 2] == CAT]
            assert len(cats) == 2
            assert sorted(VOC_OBJECTS[V1][cats[:, 0], cats[:, 1]].tolist()) == [1, 2]
        if name == S1:   # SBD-only image: one click per connected object
            assert sorted(clicks[clicks[:, 2] > 0, 2].tolist()) == sorted([CAR, BUS])
    assert differs


# ----------------------------------------------------------------------------------------- COCO 2014
def rle_uncompressed(m):
    """COCO's uncompressed RLE (column-major runs, starting with a run of zeros), as crowd annotations use."""
    flat = m.flatten(order="F")
    change = np.flatnonzero(np.diff(flat)) + 1
    bounds = np.concatenate([[0], change, [flat.size]])
    counts = np.diff(bounds).tolist()
    if flat[0]:
        counts = [0] + counts
    return {"counts": counts, "size": list(m.shape)}


def box_polygon(x0, y0, x1, y1):
    return [[x0, y0, x1, y0, x1, y1, x0, y1]]


CH, CW = 30, 40


def write_coco(root, split="train2014"):
    """instances_<split>.json with 3 categories (ids 18, 1, 3, listed out of order) and 3 images."""
    crowd = np.zeros((CH, CW), np.uint8)
    crowd[8:15, 33:40] = 1           # overlaps the second person at rows 8..9
    anns = [
        {"id": 1, "image_id": 1, "category_id": 1, "segmentation": box_polygon(2, 2, 30, 26), "iscrowd": 0},
        {"id": 2, "image_id": 1, "category_id": 18, "segmentation": box_polygon(10, 8, 18, 16), "iscrowd": 0},
        {"id": 3, "image_id": 1, "category_id": 1, "segmentation": box_polygon(32, 2, 38, 10), "iscrowd": 0},
        {"id": 4, "image_id": 1, "category_id": 3, "segmentation": rle_uncompressed(crowd), "iscrowd": 1},
        {"id": 5, "image_id": 2, "category_id": 3, "segmentation": box_polygon(4, 4, 16, 12), "iscrowd": 0},
    ]
    for a in anns:
        a.update(area=100.0, bbox=[0, 0, 1, 1])
    images = [
        {"id": 1, "file_name": f"COCO_{split}_000000000001.jpg", "height": CH, "width": CW},
        {"id": 2, "file_name": f"COCO_{split}_000000000002.jpg", "height": 20, "width": 24},
        {"id": 3, "file_name": f"COCO_{split}_000000000003.jpg", "height": 20, "width": 24},  # no annotation
    ]
    categories = [{"id": 18, "name": "dog", "supercategory": "animal"},
                  {"id": 1, "name": "person", "supercategory": "person"},
                  {"id": 3, "name": "car", "supercategory": "vehicle"}]
    (root / "annotations").mkdir(parents=True, exist_ok=True)
    (root / "annotations" / f"instances_{split}.json").write_text(
        json.dumps({"images": images, "annotations": anns, "categories": categories}))
    for img in images:
        save_jpg(root / split / img["file_name"], (img["height"], img["width"]), seed=img["id"])
    return root


def test_coco_masks_tags_and_class_names(tmp_path):
    root = write_coco(tmp_path / "coco")
    ds = build_dataset("coco", root, "train")
    assert ds.class_names == ["background", "person", "car", "dog"] and ds.num_classes == 4
    assert ds.names == ["COCO_train2014_000000000001", "COCO_train2014_000000000002"]   # empty image left out
    assert build_coco(root, "train2014").names == ds.names
    assert len(build_coco(root, "train", skip_empty=False)) == 3

    s = ds[0]
    assert s["image"].shape == (3, CH, CW) and s["image"].dtype == torch.uint8
    mask = s["mask"].numpy()
    assert mask.dtype == np.int64 and mask.shape == (CH, CW)
    assert mask[4, 4] == 1 and mask[20, 25] == 1      # the large person
    assert mask[12, 14] == 3                          # the dog, on top of the person
    assert mask[5, 35] == 1 and mask[8, 35] == 1      # second person, also where the crowd overlaps it
    assert (mask[11:15, 33:40] == 255).all()          # crowd-only pixels: ignore
    assert mask[28, 5] == 0 and mask[20, 36] == 0
    assert set(np.unique(mask)) == {0, 1, 3, 255}
    # tags: person, dog, and car from the crowd annotation
    assert s["labels"].tolist() == [1.0, 1.0, 1.0]
    s2 = ds[1]
    assert s2["labels"].tolist() == [0.0, 1.0, 0.0] and s2["mask"].shape == (20, 24)
    assert (s2["mask"][6:10, 6:14] == 2).all()


def test_coco_clicks_one_per_instance(tmp_path):
    root = write_coco(tmp_path / "coco")
    ds = build_coco(root, "train", with_clicks=True, click_seed=0)
    clicks = ds[0]["clicks"].numpy()
    np.testing.assert_array_equal(clicks, build_coco(root, "train", with_clicks=True)[0]["clicks"].numpy())
    mask = ds[0]["mask"].numpy()
    assert (mask[clicks[:, 0], clicks[:, 1]] == clicks[:, 2]).all()
    assert sorted(clicks[:, 2].tolist()) == [0, 0, 1, 1, 3]      # 2 persons, 1 dog, 2 background
    persons = clicks[clicks[:, 2] == 1]
    assert sorted((persons[:, 1] >= 32).tolist()) == [False, True]   # one click in each person


def test_coco_errors(tmp_path):
    root = write_coco(tmp_path / "coco")
    (root / "val2014").mkdir()
    with pytest.raises(DatasetError, match="instances_val2014.json"):
        build_coco(root, "val")
    with pytest.raises(DatasetError, match="test2014"):
        build_coco(root, "test2014")
    (root / "annotations" / "instances_val2014.json").write_text("{not json")
    with pytest.raises(DatasetError, match="instances_val2014.json"):
        build_coco(root, "val")


# ------------------------------------------------------------------------------------ COCO-Stuff 10K
# COCO ids of the VOC classes, typed independently of wsss.data.coco (VOC id: COCO id).
VOC_FROM_COCO = {1: 15, 2: 2, 3: 7, 4: 14, 5: 1, 6: 6, 7: 19, 9: 4, 16: 3, 17: 8, 18: 12, 19: 13, 20: 17,
                 21: 10, 44: 5, 62: 9, 63: 18, 64: 16, 67: 11, 72: 20}


def test_cocostuff_table_reduces_to_voc():
    table = cocostuff_to_voc_table()
    assert table.shape == (183,) and table[0] == 255
    for label in range(1, 183):
        assert table[label] == VOC_FROM_COCO.get(label, 0), label
    assert sorted(VOC_FROM_COCO.values()) == list(range(1, 21))


def write_cocostuff(root):
    names = {"train": ["COCO_train2014_000000000077", "COCO_train2014_000000000078"],
             "test": ["COCO_train2014_000000000079"]}
    labels = {
        # unlabeled strip, person, airplane, tv, couch, truck (thing, not VOC), a stuff class
        names["train"][0]: rect((16, 20), [(0, 2, 0, 20, 0), (2, 16, 0, 20, 120), (2, 6, 0, 5, 1), (2, 6, 5, 10, 5),
                                           (6, 10, 0, 5, 72), (6, 10, 5, 10, 63), (10, 14, 0, 5, 8)]),
        names["train"][1]: rect((16, 20), [(0, 16, 0, 20, 150), (3, 9, 3, 9, 64), (10, 15, 10, 19, 64)]),
        names["test"][0]: rect((16, 20), [(0, 16, 0, 20, 100), (4, 8, 4, 8, 67)]),
    }
    for split, split_names in names.items():
        (root / "imageLists").mkdir(parents=True, exist_ok=True)
        (root / "imageLists" / f"{split}.txt").write_text("\n".join(split_names) + "\n")
    for i, (name, S) in enumerate(labels.items()):
        save_jpg(root / "images" / f"{name}.jpg", S.shape, seed=i)
        (root / "annotations").mkdir(exist_ok=True)
        scipy.io.savemat(root / "annotations" / f"{name}.mat", {"S": S, "names": np.array(["x"], dtype=object)})
    return names, labels


def test_cocostuff10k_reduction_tags_and_clicks(tmp_path):
    names, labels = write_cocostuff(tmp_path / "cocostuff" / "dataset")
    ds = build_dataset("cocostuff10k", tmp_path / "cocostuff", "train", with_clicks=True)   # finds dataset/
    assert ds.names == names["train"] and ds.class_names == list(VOC_CLASSES)
    s = ds[0]
    mask = s["mask"].numpy()
    expected = rect((16, 20), [(0, 2, 0, 20, 255), (2, 6, 0, 5, PERSON), (2, 6, 5, 10, AEROPLANE),
                               (6, 10, 0, 5, TV), (6, 10, 5, 10, SOFA)])
    np.testing.assert_array_equal(mask, expected)       # truck and stuff -> background, unlabeled -> 255
    tags = set((torch.nonzero(s["labels"]).flatten() + 1).tolist())
    assert tags == {PERSON, AEROPLANE, TV, SOFA}
    plants = ds[1]["clicks"].numpy()
    assert sorted(plants[:, 2].tolist()) == [0, 0] + [PLANT] * 2   # 2 plants
    np.testing.assert_array_equal(plants, ds[1]["clicks"].numpy())

    test = build_cocostuff10k(tmp_path / "cocostuff" / "dataset", "val")
    assert test.names == names["test"]
    assert set(np.unique(test[0]["mask"].numpy())) == {0, TABLE}
    with pytest.raises(DatasetError, match="unknown"):
        build_cocostuff10k(tmp_path / "cocostuff", "unknown")


def test_cocostuff10k_bad_files(tmp_path):
    names, _ = write_cocostuff(tmp_path)
    ds = build_cocostuff10k(tmp_path, "train")
    scipy.io.savemat(tmp_path / "annotations" / f"{names['train'][0]}.mat", {"L": np.zeros((16, 20), np.uint8)})
    with pytest.raises(DatasetError, match=names["train"][0]):
        ds[0]
    (tmp_path / "annotations" / f"{names['train'][1]}.mat").unlink()
    with pytest.raises(DatasetError, match=names["train"][1]):
        ds[1]
    with pytest.raises(DatasetError, match="train.txt"):
        build_cocostuff10k(tmp_path / "nothing", "train")
