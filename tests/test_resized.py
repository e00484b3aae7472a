"""Real photos at the small profiles: a downsized, cached VOC-layout copy (wsss.data.resized via open_data)."""
import hashlib

import numpy as np
import pytest
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


def _rotated_photo_folder(folder):
    """One own-folder VOC photo shown 160 wide and 96 high, stored turned (96 wide, 160 high) with EXIF
    orientation 6 (turn 90 degrees clockwise to show), its mask drawn on the photo as shown: the left half."""
    from wsss.data.synthetic import palette

    shown = np.zeros((96, 160, 3), np.uint8)           # as displayed: 96 rows, 160 columns
    shown[:, :80] = (200, 40, 40)                       # the object: the left half of the shown photo
    shown[:, 80:] = (30, 120, 30)
    stored = Image.fromarray(shown).transpose(Image.Transpose.ROTATE_90)   # the sensor's pixels: 160 x 96
    exif = Image.Exif()
    exif[0x0112] = 6                                    # display: rotate 90 degrees clockwise
    for sub in ("JPEGImages", "SegmentationClass", "ImageSets/Segmentation"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    stored.save(folder / "JPEGImages" / "phone.jpg", quality=98, exif=exif)
    mask = np.zeros((96, 160), np.uint8)
    mask[:, :80] = 1
    img = Image.fromarray(mask, mode="P")
    img.putpalette(palette())
    img.save(folder / "SegmentationClass" / "phone.png")
    for split in ("train", "val"):
        (folder / "ImageSets" / "Segmentation" / f"{split}.txt").write_text("phone\n")
    (folder / "classes.txt").write_text("background\nthing\n")
    return shown, mask


def test_a_phone_photo_is_read_as_it_is_shown_in_the_loader_and_the_downsized_copy(tmp_path, monkeypatch):
    from wsss.data.folder import exif_orientation

    monkeypatch.setenv("WSSS_DATA", str(tmp_path / "cache"))
    shown, mask = _rotated_photo_folder(tmp_path / "own")
    assert exif_orientation(tmp_path / "own" / "JPEGImages" / "phone.jpg") == 6
    sample = build_dataset("voc", tmp_path / "own", "val")[0]
    image = sample["image"].permute(1, 2, 0).numpy()
    assert image.shape[:2] == mask.shape == (96, 160)
    assert np.abs(image.astype(int) - shown.astype(int)).mean() < 3       # JPEG's loss only, not a turned photo
    assert (image[:, :80, 0] > 150).all() and (image[:, 80:, 0] < 80).all()   # the object is where the mask says
    root, train, _ = open_data("voc", tmp_path / "own", "quick", 0)      # the cached 64 px copy keeps the turn
    small = train[0]
    assert small["image"].shape[1:] == small["mask"].shape and small["mask"].shape[0] < small["mask"].shape[1]
    red = small["image"][0].numpy() > 150
    assert (red == (small["mask"].numpy() == 1))[:, 4:-4].mean() > 0.95


def test_a_mask_drawn_on_the_stored_pixels_gets_an_error_that_names_the_exif_turn(tmp_path):
    from wsss.data import DatasetError

    _rotated_photo_folder(tmp_path / "own")
    stored_mask = Image.open(tmp_path / "own" / "SegmentationClass" / "phone.png").transpose(Image.Transpose.ROTATE_90)
    stored_mask.save(tmp_path / "own" / "SegmentationClass" / "phone.png")
    with pytest.raises(DatasetError, match="carries EXIF orientation 6"):
        build_dataset("voc", tmp_path / "own", "val")[0]
