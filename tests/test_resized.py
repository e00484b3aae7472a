"""Real photos at the small profiles: a downsized, cached VOC-layout copy (wsss.data.resized via open_data)."""
import hashlib

import numpy as np
import torch
from PIL import Image

from wsss.data import build_dataset
from wsss.data.resized import profile_image_px
from wsss.notebook import open_data


def _digest(folder):
    return hashlib.sha1(b"".join(p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file())).hexdigest()


def test_photos_are_downsized_once_cached_and_left_untouched(photo_folder, tmp_path, monkeypatch, capsys):
    import shutil

    monkeypatch.setenv("WSSS_DATA", str(tmp_path / "cache"))
    photos = shutil.copytree(photo_folder, tmp_path / "photos")      # this test edits a photo
    before = _digest(photos)
    root, train, val = open_data("voc", photos, "quick", 0)
    assert profile_image_px("quick") == 64 and profile_image_px("full") is None
    assert root.parent == tmp_path / "cache" / "resized" and "64 px" in capsys.readouterr().out
    sample = val[0]
    assert sample["image"].shape[1:] == (64, 64) and sample["mask"].shape == (64, 64)
    original = build_dataset("voc", photos, "val")[0]
    assert sample["name"] == original["name"] and torch.equal(sample["labels"], original["labels"])
    # the downsized mask is the original one, sampled: nearest neighbour at every 6th pixel
    assert (sample["mask"] == original["mask"][3::6, 3::6]).float().mean() > 0.9
    assert len(train) == len(build_dataset("voc", photos, "train_aug"))
    assert _digest(photos) == before                        # the user's folder is only read
    assert len(build_dataset("coco", root, "val")) == len(val)   # a copy reads as VOC layout under any name
    stamp = (root / "resized.json").stat().st_mtime_ns
    again, _, _ = open_data("voc", photos, "smoke", 0)      # smoke: 48 px, another copy
    assert again != root and build_dataset("voc", again, "val")[0]["image"].shape[1:] == (48, 48)
    assert open_data("voc", photos, "quick", 0)[0] == root and (root / "resized.json").stat().st_mtime_ns == stamp
    # an edited photo gives a new copy
    first = sorted((photos / "JPEGImages").iterdir())[0]
    Image.fromarray(np.zeros((384, 384, 3), np.uint8)).save(first)
    assert open_data("voc", photos, "quick", 0)[0] != root


def test_full_profile_reads_the_original(tiny_benchmark, tmp_path, monkeypatch):
    monkeypatch.setenv("WSSS_DATA", str(tmp_path / "cache"))
    root, train, val = open_data("voc", tiny_benchmark, "full", 0)
    assert root == tiny_benchmark and not (tmp_path / "cache" / "resized").exists()
