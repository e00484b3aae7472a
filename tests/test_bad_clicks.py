"""Bad clicks ("Bad clicks", the robustness sweep of Seminar learning): clicks.json checked against its split.

Each bad clicks.json gets one clear message naming the file: no object click at all and a click of a
class its image is not tagged with are errors, clicks that disagree with the mask under them a
ClickWarning (imprecise clicks at a boundary or on ignore pixels pass quietly), an image missing from
the file an error unless ``sample_missing_clicks=True``. Sound files load without a word.
"""
import json
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from wsss.data import DatasetError, build_dataset
from wsss.data.folder import CLICK_SLACK_PX, ClickWarning, VOCLayoutDataset, stable_seed, sample_clicks
from wsss.data.resized import place_clicks

from conftest import write_voc_folder

H, W = 16, 20


def cat_mask(*, ignore_row=False):
    """16x20: background, a cat (class 1) block at rows 3..8, columns 4..11, optionally row 0 all 255."""
    m = np.zeros((H, W), np.uint8)
    m[3:9, 4:12] = 1
    if ignore_row:
        m[0, :] = 255
    return m


def folder(tmp_path, clicks, *, names=("a", "b"), masks=None, labels=None):
    """A VOC-layout folder (background, cat, dog; split 'train') with the given clicks.json."""
    masks = masks if masks is not None else [cat_mask() for _ in names]
    root = write_voc_folder(tmp_path / "data", list(names), masks=masks)
    if labels is not None:
        (root / "image_labels.txt").write_text(labels)
    (root / "clicks.json").write_text(json.dumps(clicks))
    return root


def no_warnings(fn, *args, **kw):
    """Call fn, failing on any warning it gives."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return fn(*args, **kw)


# ---- 1. no click labels an object ------------------------------------------------------------------

def test_all_background_clicks_are_an_error_naming_the_file_and_the_counts(tmp_path):
    root = folder(tmp_path, {"a": [[1, 1, 0], [15, 19, 0]], "b": [[0, 0, 0]], "elsewhere": [[5, 5, 1]]})
    with pytest.raises(DatasetError, match=r"data/clicks\.json: no click labels an object class: the 2 images of "
                                           r"split 'train' .* hold 3 clicks, all background \(class 0\)"):
        build_dataset("voc", root, "train", with_clicks=True)


def test_no_clicks_at_all_is_the_same_error(tmp_path):
    root = folder(tmp_path, {"a": [], "b": []})
    with pytest.raises(DatasetError, match=r"clicks\.json: no click labels an object class: the 2 images .* hold 0 "
                                           r"clicks; click supervision"):
        VOCLayoutDataset(root, "train", with_clicks=True)


def test_one_object_click_is_enough_and_without_clicks_nothing_is_checked(tmp_path):
    root = folder(tmp_path, {"a": [[1, 1, 0]], "b": [[5, 6, 1], [1, 1, 0]]})
    ds = no_warnings(build_dataset, "voc", root, "train", with_clicks=True)
    assert ds[1]["clicks"].tolist() == [[5, 6, 1], [1, 1, 0]]
    (root / "clicks.json").write_text(json.dumps({"a": [[1, 1, 0]], "b": []}))
    no_warnings(build_dataset, "voc", root, "train")     # clicks not asked for: the file is not read


# ---- 2. clicks against the masks and the tags ------------------------------------------------------

def test_clicks_disagreeing_with_the_mask_give_one_warning_with_count_and_examples(tmp_path):
    # background clicks deep inside the cat, a cat click in the far corner (cat is tagged: a slip, not an error)
    clicks = {"a": [[5, 7, 0], [5, 6, 1], [14, 1, 0]], "b": [[6, 8, 0], [14, 18, 1], [4, 5, 1]]}
    root = folder(tmp_path, clicks)
    with pytest.warns(ClickWarning) as record:
        ds = build_dataset("voc", root, "train", with_clicks=True)
    assert len(record) == 1
    message = str(record[0].message)
    assert str(root / "clicks.json") in message
    assert "3 of the 6 clicks of split 'train'" in message and "disagree with the mask under them" in message
    assert ("'a' at y=5, x=7: click class 0 (background), mask class 1 (cat); "
            "'b' at y=6, x=8: click class 0 (background), mask class 1 (cat); "
            "'b' at y=14, x=18: click class 1 (cat), mask class 0 (background)") in message
    assert ds[0]["clicks"].tolist() == clicks["a"]       # a warning: the clicks are kept as they are


def test_more_than_three_disagreements_are_counted_not_all_listed(tmp_path):
    root = folder(tmp_path, {"a": [[5, 6 + k, 0] for k in range(4)] + [[5, 6, 1]], "b": [[5, 6, 1]]})
    with pytest.warns(ClickWarning, match=r"4 of the 6 clicks .* disagree .*'a' at y=5, x=8: .*; and 1 more; "):
        build_dataset("voc", root, "train", with_clicks=True)


def test_swapped_coordinates_are_caught_by_the_warning(tmp_path):
    """[x, y, class] instead of [y, x, class]: the cat clicks land outside the cat."""
    mask = np.zeros((H, W), np.uint8)
    mask[1:4, 12:18] = 1
    root = folder(tmp_path, {"a": [[2, 15, 1]], "b": [[15, 2, 1]]}, masks=[mask, mask])
    with pytest.warns(ClickWarning, match=r"1 of the 2 clicks .*'b' at y=15, x=2: click class 1 \(cat\), mask class 0 "
                                          r"\(background\).*rows are \[y, x, class_id\], y first"):
        build_dataset("voc", root, "train", with_clicks=True)


def test_imprecise_clicks_on_ignore_or_at_a_boundary_pass_quietly(tmp_path):
    m = cat_mask(ignore_row=True)
    clicks = {"a": [[0, 10, 1],                      # on the ignore row
                    [2, 6, 1],                       # one pixel above the cat (rows 3..8)
                    [3 + 6 + CLICK_SLACK_PX - 1, 5, 1],  # just below the cat, within the slack
                    [4, 4, 0],                       # a background click on the cat's first column
                    [1, 15, 1]],                     # beside the ignore row, far from the cat
              "b": [[5, 6, 1], [12, 2, 0]]}
    root = folder(tmp_path, clicks, masks=[m, cat_mask()])
    ds = no_warnings(build_dataset, "voc", root, "train", with_clicks=True)
    assert ds[0]["clicks"].tolist() == clicks["a"]


def test_a_click_just_past_the_slack_is_reported(tmp_path):
    root = folder(tmp_path, {"a": [[3 + 6 + CLICK_SLACK_PX, 5, 1]], "b": [[5, 6, 1]]})
    with pytest.warns(ClickWarning, match=rf"'a' at y={9 + CLICK_SLACK_PX}, x=5: click class 1 \(cat\), mask class 0"):
        build_dataset("voc", root, "train", with_clicks=True)


def test_a_click_of_a_class_the_image_does_not_hold_is_an_error(tmp_path):
    # dog (2) is in no mask, and no tag file: the image's tags are its mask's classes
    root = folder(tmp_path, {"a": [[5, 6, 2], [1, 1, 0]], "b": [[5, 6, 1], [12, 15, 2]]})
    with pytest.raises(DatasetError, match=r"data/clicks\.json: 2 of the 4 clicks of split 'train' \(.*train\.txt\) "
                                           r"label a class that is not among their image's tags "
                                           r"\(the classes of its mask\), e\.g\. "
                                           r"'a' at y=5, x=6: click class 2 \(dog\), mask class 1 \(cat\); "
                                           r"'b' at y=12, x=15: click class 2 \(dog\), mask class 0 \(background\)"):
        build_dataset("voc", root, "train", with_clicks=True)


def test_tags_of_image_labels_decide_even_on_an_ignore_pixel(tmp_path):
    m = cat_mask(ignore_row=True)
    root = folder(tmp_path, {"a": [[0, 3, 2], [5, 6, 1]], "b": [[5, 6, 1]]}, masks=[m, cat_mask()],
                  labels="a 1\nb 1\n")
    with pytest.raises(DatasetError, match=r"1 of the 3 clicks .* not among their image's tags "
                                           r"\(.*image_labels\.txt\), "
                                           r"e\.g\. 'a' at y=0, x=3: click class 2 \(dog\), mask class 255 \(ignore\)"):
        build_dataset("voc", root, "train", with_clicks=True)
    # tagged dog, hidden under the ignore row (VOC's difficult objects): a sound click
    (root / "image_labels.txt").write_text("a 1 2\nb 1\n")
    ds = no_warnings(build_dataset, "voc", root, "train", with_clicks=True)
    assert ds[0]["clicks"].tolist() == [[0, 3, 2], [5, 6, 1]]


def test_a_click_on_ignore_may_name_a_class_the_mask_hides(tmp_path):
    """No tag file: a dog click on the ignore row is taken as a difficult (all 255) object, not an error."""
    root = folder(tmp_path, {"a": [[0, 3, 2], [5, 6, 1]], "b": [[5, 6, 1]]},
                  masks=[cat_mask(ignore_row=True), cat_mask()])
    no_warnings(build_dataset, "voc", root, "train", with_clicks=True)


def test_without_masks_clicks_are_checked_against_the_tags(tmp_path):
    root = folder(tmp_path, {"a": [[5, 6, 1]], "b": [[2, 2, 2]]}, labels="a 1\nb 1\n")
    for p in (root / "SegmentationClass").iterdir():
        p.unlink()
    with pytest.raises(DatasetError, match=r"1 of the 2 clicks .*'b' at y=2, x=2: click class 2 \(dog\), no mask"):
        VOCLayoutDataset(root, "train", with_clicks=True, require_masks=False)


def test_the_synthetic_benchmark_loads_without_a_word_and_a_spoiled_copy_is_reported(tiny_benchmark, tmp_path):
    no_warnings(build_dataset, "synthetic", tiny_benchmark, "train_aug", with_clicks=True)
    no_warnings(build_dataset, "synthetic", tiny_benchmark, "val", with_clicks=True)
    # the same benchmark with one object click, well inside its object, turned into background
    import shutil
    root = tmp_path / "spoiled"
    shutil.copytree(tiny_benchmark, root)
    clicks = json.loads((root / "clicks.json").read_text())
    r = CLICK_SLACK_PX

    def inside(name, y, x, c):
        mask = np.asarray(Image.open(root / "SegmentationClass" / f"{name}.png"))
        return c > 0 and (mask[max(0, y - r):y + r + 1, max(0, x - r):x + r + 1] == c).all()

    name, k, (y, x, c) = next((n, k, pt) for n in sorted(clicks) if n.startswith("train_aug")
                              for k, pt in enumerate(clicks[n]) if inside(n, *pt))
    clicks[name][k][2] = 0
    (root / "clicks.json").write_text(json.dumps(clicks))
    with pytest.warns(ClickWarning, match=rf"spoiled/clicks\.json: 1 of the \d+ clicks of split 'train_aug' .*"
                                          rf"'{name}' at y={y}, x={x}: click class 0 \(background\), mask class {c} "):
        build_dataset("synthetic", root, "train_aug", with_clicks=True)


# ---- 3. images missing from clicks.json --------------------------------------------------------------

def test_an_image_missing_from_clicks_json_is_an_error_naming_the_first(tmp_path):
    names = [f"m{i}" for i in range(8)]
    root = folder(tmp_path, {"m0": [[5, 6, 1]], "m3": [[5, 6, 1]]}, names=names)
    with pytest.raises(DatasetError, match=r"data/clicks\.json: no clicks for 6 of the 8 images of split 'train' "
                                           r"\(.*train\.txt\), first 'm1', 'm2', 'm4', 'm5', 'm6'; give every image "
                                           r"an entry .* or pass sample_missing_clicks=True"):
        build_dataset("voc", root, "train", with_clicks=True)


def test_sample_missing_clicks_fills_in_from_the_masks_when_asked(tmp_path):
    root = folder(tmp_path, {"a": [[4, 5, 1], [15, 19, 0]]})
    ds = no_warnings(build_dataset, "voc", root, "train", with_clicks=True, sample_missing_clicks=True, click_seed=2)
    assert ds[0]["clicks"].tolist() == [[4, 5, 1], [15, 19, 0]]
    expected = sample_clicks(cat_mask().astype(np.int64), stable_seed("b", 2))
    assert torch.equal(ds[1]["clicks"], torch.from_numpy(expected)) and (expected[:, 2] == 1).sum() == 1


def test_sample_missing_clicks_still_checks_the_clicks_given(tmp_path):
    root = folder(tmp_path, {"a": [[5, 6, 2]]})
    with pytest.raises(DatasetError, match=r"not among their image's tags"):
        build_dataset("voc", root, "train", with_clicks=True, sample_missing_clicks=True)


def test_without_clicks_json_clicks_are_sampled_as_before(tmp_path):
    root = write_voc_folder(tmp_path / "data", ["a", "b"], masks=[cat_mask(), cat_mask()])
    ds = no_warnings(build_dataset, "voc", root, "train", with_clicks=True)
    assert (ds[0]["clicks"][:, 2] == 1).sum() == 1


# ---- the downsized copy keeps its clicks on their class ------------------------------------------------

def test_place_clicks_moves_a_click_onto_its_class_and_keeps_ignore():
    mask = np.zeros((6, 6), np.int64)
    mask[2:4, 2:4] = 1
    mask[5, 5] = 255
    pts = np.array([[2, 2, 1], [1, 1, 1], [5, 5, 2], [0, 5, 0], [3, 3, 0]])
    placed, moved, dropped = place_clicks(pts, mask)
    assert placed.tolist() == [[2, 2, 1], [2, 2, 1], [5, 5, 2], [0, 5, 0], [3, 4, 0]]   # nearest, first in row order
    assert (moved, dropped) == (2, 0)
    placed, moved, dropped = place_clicks(np.array([[0, 0, 2]]), np.zeros((3, 3), np.int64))
    assert placed.shape == (0, 3) and (moved, dropped) == (0, 1)


def test_downsized_copy_clicks_agree_with_its_masks(photo_folder, tmp_path, monkeypatch):
    """384 px photos at 'quick' (64 px): scaled clicks would leave their class at edges; the copy loads quietly."""
    from wsss.notebook import open_data
    monkeypatch.setenv("WSSS_DATA", str(tmp_path / "cache"))
    with warnings.catch_warnings():
        warnings.simplefilter("error", ClickWarning)
        root, train, _ = open_data("voc", photo_folder, "quick", 0, with_clicks=True)
    meta = json.loads((root / "resized.json").read_text())
    assert meta["clicks"]["written"] > 0 and meta["clicks"]["dropped"] == 0
    for i in range(len(train)):
        s = train[i]
        y, x, c = s["clicks"].T
        under = s["mask"][y, x]
        assert ((under == c) | (under == 255)).all()


def test_downsizing_moves_a_boundary_click_onto_its_class_and_drops_one_whose_object_vanished(tmp_path, monkeypatch):
    """384 px -> 64 px (every 6th pixel): a click on the cat's first row lands on background, a click on a
    2 px dog stripe on a class the copy no longer holds; the copy keeps clicks on their class and loads quietly."""
    from wsss.data.resized import ensure_resized
    monkeypatch.setenv("WSSS_DATA", str(tmp_path / "cache"))
    a = np.zeros((384, 384), np.uint8)
    a[100:148, 150:250] = 1
    a[300:302, 50:150] = 2                    # rows 297 and 303 are the ones downsizing keeps: the dog goes
    b = np.zeros((384, 384), np.uint8)
    b[100:148, 150:250] = 1
    root = write_voc_folder(tmp_path / "own", ["a", "b"], size=(384, 384), masks=[a, b])
    (root / "clicks.json").write_text(json.dumps({"a": [[100, 200, 1], [300, 100, 2], [10, 10, 0]],
                                                  "b": [[120, 200, 1]]}))
    ds = no_warnings(build_dataset, "voc", root, "train", with_clicks=True)
    copy = ensure_resized("own-clicks", root, {"train": ds}, 64, progress=False)
    assert json.loads((copy / "resized.json").read_text())["clicks"] == {"written": 3, "moved": 1, "dropped": 1}
    small = no_warnings(build_dataset, "voc", copy, "train", with_clicks=True)
    s = small[0]
    assert s["clicks"].tolist() == [[17, 33, 1], [1, 1, 0]] and s["labels"].tolist() == [1.0, 0.0]
    for i in range(len(small)):
        y, x, c = small[i]["clicks"].T
        assert torch.equal(small[i]["mask"][y, x], c)
