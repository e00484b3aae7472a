import numpy as np
import pytest
from PIL import Image

from wsss.data.synthetic import palette, write_benchmark


@pytest.fixture(scope="session")
def tiny_benchmark(tmp_path_factory):
    """The synthetic benchmark at its 'tiny' profile (48 px, 24 train + 12 val images)."""
    return write_benchmark(tmp_path_factory.mktemp("bench") / "synthetic", "tiny", seed=0, progress=False)


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
