"""The VOC-layout loader, the synthetic benchmark, transforms, and clear errors on bad data."""
import json

import numpy as np
import pytest
import torch
from PIL import Image

from wsss.data import DatasetError, build_dataset, collate
from wsss.data.folder import VOCLayoutDataset, labels_from_mask, sample_clicks
from wsss.data.synthetic import CLASSES, ensure_benchmark, main as synthetic_main, write_benchmark
from wsss.data.transforms import TrainTransform, clicks_to_mask, denormalize, normalize

from conftest import write_voc_folder


# ---- the synthetic benchmark ------------------------------------------------------------------------

def test_benchmark_layout_and_samples(tiny_benchmark):
    root = tiny_benchmark
    for sub in ("JPEGImages", "SegmentationClass", "SegmentationObject", "ImageSets/Segmentation"):
        assert (root / sub).is_dir()
    assert (root / "classes.txt").read_text().split() == list(CLASSES)
    train = build_dataset("synthetic", root, "train_aug", with_clicks=True)
    val = build_dataset("synthetic", root, "val")
    assert (len(train), len(val)) == (24, 12)
    s = train[0]
    assert s["image"].dtype == torch.uint8 and s["image"].shape == (3, 48, 48)
    assert s["mask"].dtype == torch.int64 and s["mask"].shape == (48, 48)
    assert s["labels"].shape == (len(CLASSES) - 1,)
    for i in range(len(train)):
        s = train[i]
        # tags of image_labels.txt agree with the mask
        assert torch.equal(s["labels"], torch.from_numpy(labels_from_mask(s["mask"].numpy(), len(CLASSES))))
        assert s["labels"].sum() >= 1
        # every click lies on a pixel of its own class; one per instance; background points too
        y, x, c = s["clicks"].T
        assert torch.equal(s["mask"][y, x], c)
        inst = np.asarray(Image.open(root / "SegmentationObject" / f"{s['name']}.png"))
        assert (c > 0).sum() == len(np.unique(inst[(inst > 0) & (inst < 255)]))    # 255: the void band
        assert (c == 0).sum() >= 1


def test_benchmark_is_deterministic_and_seeded(tmp_path, tiny_benchmark):
    again = write_benchmark(tmp_path / "again", "smoke", seed=0, progress=False)
    other = write_benchmark(tmp_path / "other", "smoke", seed=1, progress=False)
    name = "train_aug_00003"
    same = [(tiny_benchmark / d / f"{name}{e}").read_bytes() == (again / d / f"{name}{e}").read_bytes()
            for d, e in (("JPEGImages", ".jpg"), ("SegmentationClass", ".png"))]
    assert all(same)
    assert (other / "SegmentationClass" / f"{name}.png").read_bytes() != (again / "SegmentationClass" / f"{name}.png").read_bytes()


def test_benchmark_has_context_bias_and_several_objects(tiny_benchmark):
    meta = json.loads((tiny_benchmark / "benchmark.json").read_text())
    assert meta["profile"] == "smoke" and 0.5 < meta["p_context"] < 1
    counts = [len(json.loads((tiny_benchmark / "clicks.json").read_text())[f"train_aug_{i:05d}"]) for i in range(24)]
    assert max(counts) > min(counts)   # images hold different numbers of objects


def test_ensure_benchmark_caches(tmp_path):
    root = ensure_benchmark(tmp_path / "b", "smoke", 0, progress=False)
    stamp = (root / "benchmark.json").stat().st_mtime_ns
    assert ensure_benchmark(tmp_path / "b", "smoke", 0, progress=False) == root
    assert (root / "benchmark.json").stat().st_mtime_ns == stamp
    with pytest.raises(ValueError, match="profile"):
        ensure_benchmark(tmp_path / "c", "huge", 0)


def test_command_line(tmp_path, capsys):
    synthetic_main(["--out", str(tmp_path / "cli"), "--profile", "smoke", "--seed", "3"])
    assert json.loads((tmp_path / "cli" / "benchmark.json").read_text())["seed"] == 3


def test_tiny_is_the_old_name_of_the_smoke_profile_and_still_works(tmp_path, tiny_benchmark, capsys, monkeypatch):
    """The benchmark's smallest profile is called smoke, as everywhere else; "tiny" (its old name) still gives
    the same benchmark, with a deprecation note, and is written (benchmark.json, the cache folder) as smoke."""
    from wsss.data.synthetic import ALIASES, PROFILES

    assert tuple(PROFILES) == ("smoke", "quick", "full") and ALIASES == {"tiny": "smoke"}
    with pytest.warns(DeprecationWarning, match="'tiny' is now called 'smoke'"):
        assert PROFILES["tiny"] is PROFILES["smoke"]
    with pytest.warns(DeprecationWarning, match="'tiny' is now called 'smoke'"):
        old = write_benchmark(tmp_path / "old", "tiny", seed=0, progress=False)
    assert json.loads((old / "benchmark.json").read_text())["profile"] == "smoke"
    for d, e in (("JPEGImages", ".jpg"), ("SegmentationClass", ".png"), ("SegmentationObject", ".png")):
        assert (old / d / f"val_00005{e}").read_bytes() == (tiny_benchmark / d / f"val_00005{e}").read_bytes()
    stamp = (old / "benchmark.json").stat().st_mtime_ns
    with pytest.warns(DeprecationWarning):
        assert ensure_benchmark(old, "tiny", 0, progress=False) == old          # the cached smoke one is reused
    assert (old / "benchmark.json").stat().st_mtime_ns == stamp
    meta = json.loads((old / "benchmark.json").read_text())                  # a benchmark cached under the old name
    (old / "benchmark.json").write_text(json.dumps(dict(meta, profile="tiny")))
    assert ensure_benchmark(old, "smoke", 0, progress=False) == old           # is ours: rewritten as smoke, not refused
    assert json.loads((old / "benchmark.json").read_text())["profile"] == "smoke"
    monkeypatch.setenv("WSSS_DATA", str(tmp_path / "cache"))
    with pytest.warns(DeprecationWarning):
        assert ensure_benchmark(None, "tiny", 0, progress=False) == tmp_path / "cache" / "synthetic-smoke-seed0"
    synthetic_main(["--out", str(tmp_path / "cli"), "--profile", "tiny"])   # an old command still runs
    assert "use --profile smoke" in capsys.readouterr().err
    assert json.loads((tmp_path / "cli" / "benchmark.json").read_text())["profile"] == "smoke"
    with pytest.raises(SystemExit) as stop:
        synthetic_main(["--out", str(tmp_path / "x"), "--profile", "huge"])
    assert stop.value.code == 2 and "invalid choice: 'huge' (choose from smoke, quick, full)" in capsys.readouterr().err


# ---- own folders and their errors -------------------------------------------------------------------

def test_own_folder_tags_from_masks_and_sampled_clicks(tmp_path):
    mask = np.zeros((16, 20), np.uint8)
    mask[2:6, 2:6] = 1
    mask[10:14, 12:18] = 1       # a second cat instance
    mask[0, :] = 255
    root = write_voc_folder(tmp_path / "own", ["a"], masks=[mask])
    ds = build_dataset("voc", root, "train", with_clicks=True, click_seed=5)
    s = ds[0]
    assert ds.class_names == ["background", "cat", "dog"]
    assert s["labels"].tolist() == [1.0, 0.0]
    assert (s["clicks"][:, 2] == 1).sum() == 2      # one click per connected instance
    again = build_dataset("voc", root, "train", with_clicks=True, click_seed=5)[0]["clicks"]
    assert torch.equal(s["clicks"], again)


def test_sample_clicks_uses_instances():
    mask = np.zeros((8, 8), np.int64)
    mask[:, :4] = 2
    inst = np.zeros((8, 8), np.int64)
    inst[:4, :4], inst[4:, :4] = 1, 2     # one connected region, two instances
    pts = sample_clicks(mask, 0, instances=inst)
    assert (pts[:, 2] == 2).sum() == 2 and (pts[:, 2] == 0).sum() == 2


@pytest.mark.parametrize("problem, match", [
    ("missing_root", "data_root does not exist"),
    ("missing_image", "b.jpg: image listed"),
    ("corrupt_image", "a.jpg: cannot read image"),
    ("bad_mask_ids", "a.png: mask holds class ids \\[7\\]"),
    ("empty_split", "train.txt: the split is empty"),
    ("missing_split", "val.txt: split file not found"),
    ("missing_classes", "classes.txt not found"),
    ("missing_mask", "a.png: mask listed"),
])
def test_bad_data_gives_one_clear_error(tmp_path, problem, match):
    root = write_voc_folder(tmp_path / "d", ["a"])
    split = "train"
    if problem == "missing_root":
        root = tmp_path / "nowhere"
    elif problem == "missing_image":
        (root / "ImageSets/Segmentation/train.txt").write_text("a\nb\n")
    elif problem == "corrupt_image":
        (root / "JPEGImages/a.jpg").write_bytes(b"not a jpeg at all")
    elif problem == "bad_mask_ids":
        Image.fromarray(np.full((16, 20), 7, np.uint8)).save(root / "SegmentationClass/a.png")  # grey ids
    elif problem == "empty_split":
        (root / "ImageSets/Segmentation/train.txt").write_text("\n")
    elif problem == "missing_split":
        split = "val"
    elif problem == "missing_classes":
        (root / "classes.txt").unlink()
    elif problem == "missing_mask":
        (root / "SegmentationClass/a.png").unlink()
    with pytest.raises((DatasetError, FileNotFoundError), match=match):
        ds = VOCLayoutDataset(root, split)
        ds[0]


def test_unknown_dataset_name(tmp_path):
    with pytest.raises(ValueError, match="dataset='vocc' is not known"):
        build_dataset("vocc", tmp_path, "train")


# ---- transforms ---------------------------------------------------------------------------------------

def test_train_transform_moves_image_mask_and_clicks_together(tiny_benchmark):
    import random
    ds = build_dataset("synthetic", tiny_benchmark, "train_aug", with_clicks=True,
                       transform=TrainTransform(40, scale=(0.7, 1.3)))
    random.seed(0)
    for i in range(12):
        s = ds[i]
        assert s["image"].shape == (3, 40, 40) and s["mask"].shape == (40, 40)
        if not len(s["clicks"]):
            continue
        y, x, c = s["clicks"].T
        # nearest-neighbour masks and moved clicks still agree (a point may land on an edge pixel)
        assert (s["mask"][y, x] == c).float().mean() >= 0.75
    padded = TrainTransform(80, scale=(1.0, 1.0), flip=False)(build_dataset("synthetic", tiny_benchmark, "val")[0])
    band = (build_dataset("synthetic", tiny_benchmark, "val")[0]["mask"] == 255).sum()
    assert (padded["mask"] == 255).sum() == 80 * 80 - 48 * 48 + band


def test_collate_and_normalize(tiny_benchmark):
    ds = build_dataset("synthetic", tiny_benchmark, "val", with_clicks=True)
    batch = collate([ds[0], ds[1]])
    assert batch["image"].shape == (2, 3, 48, 48) and isinstance(batch["clicks"], list)
    assert torch.equal(denormalize(normalize(batch["image"])), batch["image"])
    sparse = clicks_to_mask(batch["clicks"][0], (48, 48))
    assert (sparse != 255).sum() == len(batch["clicks"][0])
    with pytest.raises(ValueError, match="cannot batch 'image'"):
        collate([ds[0], TrainTransform(40)(ds[1])])


def test_benchmark_masks_have_a_thin_ignore_band_around_objects_as_voc():
    """Version 3 of the benchmark: a 255 band one pixel wide (at 48-64 px) outside every object, as real
    VOC masks have; the object on top keeps all its pixels."""
    import numpy as np

    from wsss.data.synthetic import PROFILES, ignore_band, render_image

    rng = np.random.default_rng([0, 0, 2])
    image, mask, inst, present = render_image(rng, PROFILES["smoke"])
    band = mask == 255
    assert band.any() and (inst[band] == 255).all()
    assert sorted(set(np.unique(mask)) - {0, 255}) == present             # tags follow the masks
    # each band pixel touches an object pixel; background far from objects is untouched
    objects = (mask > 0) & (mask < 255)
    near = np.zeros_like(objects)
    near[1:] |= objects[:-1]; near[:-1] |= objects[1:]; near[:, 1:] |= objects[:, :-1]; near[:, :-1] |= objects[:, 1:]
    assert near[band].all()
    assert band.mean() < 0.15
    two = ignore_band(np.pad(np.ones((2, 2), np.uint8), 3), 2)
    assert two.sum() == 20 and not two[3:5, 3:5].any() and not two[0].any()      # a 2-step ring around the 2x2 square
