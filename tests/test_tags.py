"""The tag-informativeness report every notebook prints when it opens its data (wsss.data.tags)."""
import shutil

import numpy as np
import pytest

from wsss.data import build_dataset
from wsss.data.tags import describe_tags, tag_report


class _Tagged:
    """A stand-in dataset: class names and per-image multi-hot tags."""

    def __init__(self, tags, names=("background", "road", "sky", "car")):
        self.class_names, self.rows = list(names), [np.asarray(t) for t in tags]

    def __len__(self):
        return len(self.rows)

    def __getitem__(self, i):
        return {"labels": self.rows[i]}


def test_street_scenes_where_every_image_has_every_tag_get_a_warning():
    report = tag_report(_Tagged([[1, 1, 1]] * 9 + [[1, 1, 0]]))
    assert report["classes_per_image"] == pytest.approx(2.9) and report["common"] == ["road", "sky"]
    assert report["informative"] is False
    text = describe_tags(report)
    assert "road, sky" in text and "WARNING" in text


def test_separating_tags_pass_without_a_warning_and_name_untagged_classes():
    report = tag_report(_Tagged([[1, 0, 0], [0, 1, 0], [1, 0, 0], [0, 1, 0]]))
    assert report["informative"] and report["common"] == [] and report["untagged"] == ["car"]
    assert report["class_share"] == {"road": 0.5, "sky": 0.5, "car": 0.0}
    text = describe_tags(report)
    assert "separate the classes poorly" not in text and "never tagged: car" in text and "(33%)" in text
    assert "WARNING: 1 of the 3 object classes of the class list are held by none of the 4 images looked at: car" in text


def test_voc_names_on_an_own_folder_without_classes_txt_say_which_classes_no_image_holds(tiny_benchmark, tmp_path):
    folder = shutil.copytree(tiny_benchmark, tmp_path / "own")
    (folder / "classes.txt").unlink()
    (folder / "image_labels.txt").unlink()
    text = describe_tags(tag_report(build_dataset("voc", folder, "val")))
    assert "of the 20 object classes of the 21 PASCAL VOC classes" in text and "classes.txt does not exist" in text
    assert "tvmonitor" in text and "give the folder a classes.txt" in text


def test_a_voc_folder_is_read_from_its_masks_or_its_tag_file(tiny_benchmark, tmp_path):
    data = build_dataset("synthetic", tiny_benchmark, "train_aug")
    from_file = tag_report(data)
    assert from_file["informative"] and from_file["images"] == len(data)
    folder = tmp_path / "copy"
    shutil.copytree(tiny_benchmark, folder)
    (folder / "image_labels.txt").unlink(missing_ok=True)          # tags from the masks instead
    from_masks = tag_report(build_dataset("synthetic", folder, "train_aug"))
    assert from_masks["class_share"] == pytest.approx(from_file["class_share"], abs=1e-9)
    sample = tag_report(data, max_images=5)
    assert sample["images"] == 5
    with pytest.raises(ValueError, match="no image"):
        tag_report(_Tagged([]))
