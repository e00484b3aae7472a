import numpy as np
import pytest
from PIL import Image

from wsss.data.synthetic import palette, write_benchmark


@pytest.fixture(scope="session")
def tiny_benchmark(tmp_path_factory):
    """The synthetic benchmark at its 'smoke' profile (48 px, 24 train + 12 val images)."""
    return write_benchmark(tmp_path_factory.mktemp("bench") / "synthetic", "smoke", seed=0, progress=False)


@pytest.fixture(scope="session")
def photo_folder(tiny_benchmark, tmp_path_factory):
    """A VOC-layout folder of one's own with photo-sized images: the smoke benchmark blown up 8x (384 px),
    classes.txt beside it, no tag file (tags come from the masks)."""
    dst = tmp_path_factory.mktemp("photos") / "photos"
    for sub in ("JPEGImages", "SegmentationClass", "ImageSets/Segmentation"):
        (dst / sub).mkdir(parents=True)
    for f in (tiny_benchmark / "ImageSets" / "Segmentation").iterdir():
        (dst / "ImageSets" / "Segmentation" / f.name).write_text(f.read_text())
    (dst / "classes.txt").write_text((tiny_benchmark / "classes.txt").read_text())
    for jpg in (tiny_benchmark / "JPEGImages").iterdir():
        im = Image.open(jpg)
        im.resize((im.width * 8, im.height * 8), Image.BILINEAR).save(dst / "JPEGImages" / jpg.name, quality=95)
    for png in (tiny_benchmark / "SegmentationClass").iterdir():
        m = Image.open(png)
        m.resize((m.width * 8, m.height * 8), Image.NEAREST).save(dst / "SegmentationClass" / png.name)
    return dst


def write_voc_folder(root, names, *, size=(16, 20), classes=("background", "cat", "dog"), masks=None):
    """A minimal VOC-layout folder: images, palette masks, one split 'train', classes.txt."""
    (root / "JPEGImages").mkdir(parents=True)
    (root / "SegmentationClass").mkdir()
    (root / "ImageSets" / "Segmentation").mkdir(parents=True)
    (root / "classes.txt").write_text("\n".join(classes) + "\n")
    rng = np.random.default_rng(0)
    for i, n in enumerate(names):
        Image.fromarray(rng.integers(0, 255, size=(*size, 3), dtype=np.uint8)).save(root / "JPEGImages" / f"{n}.jpg")
        m = masks[i] if masks is not None else np.zeros(size, np.uint8)
        png = Image.fromarray(np.asarray(m, np.uint8), mode="P")
        png.putpalette(palette())
        png.save(root / "SegmentationClass" / f"{n}.png")
    (root / "ImageSets" / "Segmentation" / "train.txt").write_text("\n".join(names) + "\n")
    return root
