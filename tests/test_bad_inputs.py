"""Bad input -> one clear error that names its culprit (the file or the parameter at fault).

``BAD_INPUTS`` is the one table of these cases. Each row is ``(id, builder, exception type, regex)``:
``builder(tmp_path)`` writes its own small bad input under ``tmp_path`` and calls a public entry point,
which must raise the exception type (or a subclass) with a message that ``re.search``-matches the regex.
To add a case (data, CRF, training loop, ...), write a builder and append a row; helpers below build a
sound VOC-layout folder to spoil. Tests of what must *not* happen (a user's files deleted or rewritten)
follow the table.
"""
import json
import os
import re
from pathlib import Path

import numpy as np
import pytest
import scipy.io
from PIL import Image

import wsss.data.synthetic as synthetic
from wsss.data import DatasetError, build_dataset
from wsss.data.folder import VOCLayoutDataset
from wsss.data.synthetic import ensure_benchmark, main as synthetic_main, palette, write_benchmark
from wsss.data.voc import build_train_aug
from wsss.compare import main as compare_main
from wsss.run_notebooks import main as run_notebooks_main
from wsss.train import resolve_device

from conftest import write_voc_folder

H, W = 16, 20   # the image size write_voc_folder uses


# ---- helpers the builders share -------------------------------------------------------------------

def cat_mask(value=1, *, ignore_row=False):
    """A 16x20 mask: background with one block of class ``value`` (optionally a row of 255)."""
    m = np.zeros((H, W), np.uint8)
    m[3:9, 4:12] = value
    if ignore_row:
        m[0, :] = 255
    return m


def voc(tmp_path, names=("a", "b"), *, masks=None, **kw) -> Path:
    """A sound VOC-layout folder tmp_path/data (classes background, cat, dog; split 'train')."""
    masks = masks if masks is not None else [cat_mask() for _ in names]
    return write_voc_folder(tmp_path / "data", list(names), masks=masks, **kw)


def read_all(name, root, split="train", **kw):
    """Open a split with build_dataset and read every sample, as training and evaluation do."""
    ds = build_dataset(name, root, split, **kw)
    for i in range(len(ds)):
        ds[i]
    return ds


def save_png(array, path, mode="P"):
    img = Image.fromarray(np.asarray(array, np.uint8), mode=mode)
    if mode == "P":
        img.putpalette(palette())
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path)


def user_folder(tmp_path) -> Path:
    """A folder of someone's own: a note and a VOC-looking layout, no benchmark.json."""
    root = voc(tmp_path)
    (root / "notes.txt").write_text("my notes, not a copy anywhere else\n")
    return root


def write_sbd(sbd: Path, masks: dict) -> Path:
    """SBD's benchmark_RELEASE/dataset: cls/<name>.mat (struct GTcls, field Segmentation), train/val.txt."""
    (sbd / "cls").mkdir(parents=True)
    for name, seg in masks.items():
        present = np.unique(seg[seg > 0]).astype(np.uint8).reshape(-1, 1)
        scipy.io.savemat(sbd / "cls" / f"{name}.mat", {"GTcls": {"Segmentation": seg, "CategoriesPresent": present}})
    names = list(masks)
    (sbd / "train.txt").write_text("\n".join(names[:-1]) + "\n")
    (sbd / "val.txt").write_text(names[-1] + "\n")
    return sbd


def voc_with_own_train_aug(tmp_path, *, with_sbd: bool) -> Path:
    """A VOC folder whose own train_aug.txt lists 'c', which has an image but no mask; SBD beside it (with
    ``with_sbd``) has masks for c and d, enough to build a train_aug of its own."""
    root = voc(tmp_path)
    for name in ("c", "d"):
        Image.fromarray(np.zeros((H, W, 3), np.uint8)).save(root / "JPEGImages" / f"{name}.jpg")
    (root / "ImageSets" / "Segmentation" / "val.txt").write_text("b\n")
    (root / "ImageSets" / "Segmentation" / "train_aug.txt").write_text("a\nc\n")
    if with_sbd:
        write_sbd(tmp_path / "SBD", {"c": cat_mask(2), "d": cat_mask(1)})
    return root


# ---- builders: each makes one bad input and calls an entry point (which must raise) -------------------

def fake_benchmark(tmp_path, meta_text) -> Path:
    root = user_folder(tmp_path)
    (root / "benchmark.json").write_text(meta_text)
    return root


def benchmark_with_user_file(tmp_path):
    root = tmp_path / "bench"
    (root / "JPEGImages").mkdir(parents=True)
    (root / "benchmark.json").write_text(json.dumps({"generator_version": synthetic.GENERATOR_VERSION,
                                                     "profile": "smoke", "seed": 0}))
    (root / "notes.txt").write_text("mine\n")
    write_benchmark(root, "smoke", 1, progress=False)


def open_data_synthetic(tmp_path):
    from wsss.notebook import open_data
    open_data("synthetic", user_folder(tmp_path), "quick", 0)


def file_as_out(tmp_path):
    (tmp_path / "out").write_text("a file\n")
    write_benchmark(tmp_path / "out", "smoke", progress=False)


def split_text(text, *, split="train", encoding="utf-8", name="voc", **kw):
    def build(tmp_path):
        root = voc(tmp_path, **kw)
        (root / "ImageSets" / "Segmentation" / f"{split}.txt").write_bytes(text.encode(encoding))
        read_all(name, root, split)
    return build


def masks_of(*masks, name="voc", classes=None):
    def build(tmp_path):
        kw = {"classes": classes} if classes else {}
        root = voc(tmp_path, names=[f"m{i}" for i in range(len(masks))], masks=list(masks), **kw)
        if classes is None:   # no classes.txt: build_voc assumes the 21 VOC classes, as for real VOC
            (root / "classes.txt").unlink()
        read_all(name, root)
    return build


def labels_file(text, masks=None):
    def build(tmp_path):
        root = voc(tmp_path, masks=masks)
        (root / "image_labels.txt").write_text(text)
        read_all("voc", root)
    return build


def clicks_file(content):
    def build(tmp_path):
        root = voc(tmp_path)
        (root / "clicks.json").write_text(content if isinstance(content, str) else json.dumps(content))
        read_all("voc", root, with_clicks=True)
    return build


def spoil(relpath, data):
    """Overwrite one file of a sound folder with ``data`` (bytes, or a callable(path) that writes it)."""
    def build(tmp_path):
        root = voc(tmp_path)
        path = root / relpath
        path.parent.mkdir(parents=True, exist_ok=True)
        data(path) if callable(data) else path.write_bytes(data)
        read_all("voc", root, with_clicks=True)
    return build


def truncated_jpeg(path):
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (H, W, 3), dtype=np.uint8)).save(path)
    path.write_bytes(path.read_bytes()[:200])


def image_upper_case_missing(tmp_path):
    root = voc(tmp_path)
    (root / "ImageSets" / "Segmentation" / "train.txt").write_text("a\nb\nz\n")
    read_all("voc", root)


def build_train_aug_over_own_split(tmp_path):
    root = voc_with_own_train_aug(tmp_path, with_sbd=True)
    build_train_aug(root, tmp_path / "SBD", progress=False)


# ---- CRF, notebook parameters, training config: bad arguments, no files needed ---------------------

def crf_pair(h=8, w=10, n_labels=3, seed=0):
    """A small uint8 image (h, w, 3) with sound probs (C, h, w): under 256x256 px, "auto" picks pydensecrf on the CPU."""
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    image[0, 0] = 255
    probs = rng.random((n_labels, h, w)).astype(np.float32) + 0.1
    return image, probs / probs.sum(0, keepdims=True)


def call_dense_crf(**kw):
    def build(tmp_path):
        from wsss.refine import dense_crf
        dense_crf(*crf_pair(), **kw)
    return build


def call_dense_crf_batch(**kw):
    def build(tmp_path):
        from wsss.refine import dense_crf_batch
        image, probs = crf_pair()
        dense_crf_batch(np.stack([image, image]), np.stack([probs, probs]), **kw)
    return build


def call_crf_label(**kw):
    def build(tmp_path):
        import torch
        from wsss.refine import crf_label
        image, probs = crf_pair()
        crf_label(torch.from_numpy(image).permute(2, 0, 1)[None], torch.from_numpy(probs)[None], **kw)
    return build


def call_crf_inference_torch(**kw):
    def build(tmp_path):
        import torch
        from wsss.refine.crf import crf_inference_torch
        image, probs = crf_pair()
        crf_inference_torch(torch.from_numpy(image)[None], torch.from_numpy(probs)[None], **kw)
    return build


def dense_crf_without_gpu(**kw):
    """dense_crf as on a machine without CUDA (torch.cuda.is_available patched), whatever this one has."""
    def build(tmp_path):
        from unittest import mock
        import torch
        from wsss.refine import dense_crf
        with mock.patch.object(torch.cuda, "is_available", return_value=False):
            dense_crf(*crf_pair(), **kw)
    return build


def dense_crf_batch_float_images(tmp_path):
    from wsss.refine import dense_crf_batch
    image, probs = crf_pair()
    dense_crf_batch(image[None].astype(np.float32), probs[None])


def dense_crf_on(image=None, probs=None):
    def build(tmp_path):
        from wsss.refine import dense_crf
        sound_image, sound_probs = crf_pair()
        dense_crf(sound_image if image is None else image(sound_image),
                  sound_probs if probs is None else probs(sound_probs))
    return build


def call_dense_crf_loss(images=None, probs=None, **kw):
    """dense_crf_loss on a batch of 2 (images (B, H, W, 3) uint8, softmax probs), one of them spoilt."""
    def build(tmp_path):
        import torch
        from wsss.refine import dense_crf_loss
        pairs = [crf_pair(seed=i) for i in range(2)]
        sound_images = torch.from_numpy(np.stack([im for im, _ in pairs]))
        logits = torch.from_numpy(np.stack([p for _, p in pairs])).log() * 3
        dense_crf_loss(sound_images if images is None else images(sound_images),
                       torch.softmax(logits, 1) if probs is None else probs(logits), **kw)
    return build


def notebook_parameters(**changes):
    def build(tmp_path):
        from wsss.notebook import check_parameters
        check_parameters({**dict(dataset="synthetic", data_root=None, profile="quick", device="auto", seed=0,
                                 out_dir=None), **changes}, {})
    return build


def train_config(**kw):
    def build(tmp_path):
        from wsss.train import TrainConfig
        TrainConfig(**kw)
    return build


def cli(main, argv):
    """Call a command line's main; its argparse error (printed to stderr, exit 2) becomes the SystemExit's message."""
    import contextlib
    import io

    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err):
            main(argv)
    except SystemExit as stop:
        raise SystemExit(err.getvalue() or str(stop.code)) from None


def a_file(t):
    path = t / "afile"
    path.write_text("not a folder")
    return path


def wsss_data_file(t):
    old = os.environ.get("WSSS_DATA")
    os.environ["WSSS_DATA"] = str(a_file(t))
    try:
        ensure_benchmark(None, "smoke", 0, progress=False)
    finally:
        if old is None:
            os.environ.pop("WSSS_DATA")
        else:
            os.environ["WSSS_DATA"] = old


def compare_truncated(t):
    (t / "new.json").write_text('{"miou": 0.5, "table": [')
    (t / "old.json").write_text('{"miou": 0.5}')
    cli(compare_main, [str(t / "new.json"), str(t / "old.json")])


BAD_INPUTS = [
    # -- the synthetic benchmark never replaces a folder it did not write ----------------------------
    ("synthetic-write-over-user-folder", lambda t: write_benchmark(user_folder(t), "smoke", progress=False),
     DatasetError, r"data: is not a generated synthetic benchmark \(no benchmark.json\)"),
    ("synthetic-ensure-over-user-folder", lambda t: ensure_benchmark(user_folder(t), "smoke", 0, progress=False),
     DatasetError, r"data: is not a generated synthetic benchmark .*use dataset=\"voc\""),
    ("synthetic-cli-over-user-folder", lambda t: synthetic_main(["--out", str(user_folder(t)), "--profile", "smoke"]),
     SystemExit, r"data: is not a generated synthetic benchmark"),
    ("synthetic-open_data-over-user-folder", open_data_synthetic,
     DatasetError, r"data: is not a generated synthetic benchmark .*dataset=\"voc\""),
    ("synthetic-foreign-benchmark-json", lambda t: ensure_benchmark(fake_benchmark(t, '{"name": "mine"}'), "smoke"),
     DatasetError, r"data: is not a generated synthetic benchmark \(its benchmark.json was not written by"),
    ("synthetic-corrupt-benchmark-json", lambda t: write_benchmark(fake_benchmark(t, "{"), "smoke"),
     DatasetError, r"data: is not a generated synthetic benchmark"),
    ("synthetic-benchmark-holding-user-file", benchmark_with_user_file,
     DatasetError, r"bench: is a generated synthetic benchmark but also holds \['notes.txt'\]"),
    ("synthetic-out-is-a-file", file_as_out, DatasetError, r"out: exists and is not a folder"),
    ("synthetic-seed-negative", lambda t: write_benchmark(t / "b", "smoke", seed=-1),
     ValueError, r"seed=-1 is not valid"),
    ("synthetic-seed-not-integer", lambda t: ensure_benchmark(t / "b", "smoke", seed=1.5), ValueError, r"seed=1.5"),
    ("synthetic-cli-seed-negative",
     lambda t: synthetic_main(["--out", str(t / "b"), "--profile", "smoke", "--seed", "-1"]),
     SystemExit, r"seed=-1 is not valid"),
    ("synthetic-profile-unknown", lambda t: ensure_benchmark(t / "b", "huge"),
     ValueError, r"profile='huge' is not known"),
    ("dataset-name-unknown", lambda t: build_dataset("imagenet", t, "train"),
     ValueError, r"dataset='imagenet' is not known; choose one of \('synthetic', 'voc', 'coco', 'cocostuff10k'\)"),
    # -- split files --------------------------------------------------------------------------------
    ("voc-own-train_aug-mask-missing-sbd-beside",
     lambda t: read_all("voc", voc_with_own_train_aug(t, with_sbd=True), "train_aug"),
     DatasetError, r"SegmentationClass.c\.png: mask listed in split 'train_aug' \(.*train_aug\.txt\) not found"),
    ("voc-own-train_aug-mask-missing-no-sbd",
     lambda t: read_all("voc", voc_with_own_train_aug(t, with_sbd=False), "train_aug"),
     DatasetError, r"SegmentationClass.c\.png: mask listed in split 'train_aug'"),
    ("voc-build_train_aug-over-own-split", build_train_aug_over_own_split,
     DatasetError, r"train_aug\.txt: exists already; it is used as it is and never rebuilt"),
    ("split-bom-then-missing-image", split_text("\ufeffz\na\n", split="train_aug"),
     DatasetError, r"JPEGImages.z\.jpg: image listed in split 'train_aug'"),
    ("split-line-with-space", split_text("a\nb c\n"),
     DatasetError, r"train\.txt:2: a split line holds one image name, found 'b c'"),
    ("split-duplicate-image", split_text("a\nb\na\n"),
     DatasetError, r"train\.txt:3: image 'a' is listed twice \(first on line 1\)"),
    ("split-not-utf8", split_text("a\nb\u00e9\n", encoding="latin-1"),
     DatasetError, r"train\.txt: not a UTF-8 text file"),
    ("split-empty", split_text("\n\n"), DatasetError, r"train\.txt: the split is empty"),
    ("split-file-missing", lambda t: read_all("voc", voc(t), "val"), DatasetError, r"val\.txt: split file not found"),
    ("image-missing-names-extensions-tried", image_upper_case_missing,
     DatasetError, r"z\.jpg: image listed in split 'train' .*not found \(tried the extensions \.jpg, .*\.JPG"),
    # -- classes and masks ----------------------------------------------------------------------------
    ("masks-255-for-objects-voc", masks_of(cat_mask(255), cat_mask(255), classes=("background", "cat", "dog")),
     DatasetError, r"split 'train' \(.*train\.txt\): none of its 2 masks .* holds a foreground class"),
    ("masks-255-for-objects-synthetic", masks_of(cat_mask(255), cat_mask(255), name="synthetic",
                                                 classes=("background", "cat", "dog")),
     DatasetError, r"split 'train' .*none of its 2 masks .* not with 255"),
    ("voc-without-classes-txt-ids-beyond-voc", masks_of(cat_mask(1), cat_mask(25)),
     DatasetError, r"m1\.png: mask holds class ids \[25\] outside the 21 PASCAL VOC .*classes\.txt does not exist"),
    ("mask-id-beyond-classes-txt", masks_of(cat_mask(1), cat_mask(5), classes=("background", "cat", "dog")),
     DatasetError, r"m1\.png: mask holds class ids \[5\] outside .*classes\.txt \(0\.\.2"),
    ("classes-txt-duplicate-name", masks_of(cat_mask(1), classes=("background", "cat", "cat")),
     DatasetError, r"classes\.txt: class names are not unique"),
    ("classes-txt-missing-synthetic", masks_of(cat_mask(1), name="synthetic"), DatasetError, r"classes\.txt not found"),
    ("mask-corrupt-bytes", spoil("SegmentationClass/a.png", os.urandom(64)), DatasetError, r"a\.png: cannot read mask"),
    ("mask-rgb", spoil("SegmentationClass/a.png", lambda p: save_png(np.zeros((H, W, 3)), p, mode="RGB")),
     DatasetError, r"a\.png: mask must be a palette or grey PNG of class ids, got mode RGB"),
    ("mask-size-differs", spoil("SegmentationClass/b.png", lambda p: save_png(cat_mask()[:8, :8], p)),
     DatasetError, r"b\.png: mask size \(8, 8\) differs from its image \(16, 20\)"),
    ("mask-missing", spoil("SegmentationClass/b.png", lambda p: p.unlink()),
     DatasetError, r"b\.png: mask listed in split 'train'"),
    ("image-corrupt-bytes", spoil("JPEGImages/b.jpg", os.urandom(64)), DatasetError, r"b\.jpg: cannot read image"),
    ("image-truncated-jpeg", spoil("JPEGImages/b.jpg", truncated_jpeg), DatasetError, r"b\.jpg: cannot read image"),
    ("instances-corrupt-bytes", spoil("SegmentationObject/a.png", os.urandom(64)),
     DatasetError, r"SegmentationObject.a\.png: cannot read instance mask"),
    ("instances-size-differs", spoil("SegmentationObject/a.png", lambda p: save_png(np.ones((8, 8)), p)),
     DatasetError, r"SegmentationObject.a\.png: instance mask is \(8, 8\), its class mask \(16, 20\)"),
    # -- image_labels.txt ------------------------------------------------------------------------------
    ("labels-all-empty", labels_file("a\nb\n"),
     DatasetError, r"image_labels\.txt: no image of split 'train' has a foreground"),
    ("labels-miss-a-mask-class", labels_file("a 1\nb 2\n"),
     DatasetError, r"image_labels\.txt: the labels of 'b' contradict its mask .*b\.png: the mask holds classes \[1\]"),
    ("labels-tag-absent-from-mask", labels_file("a 1 2\nb 1\n"),
     DatasetError, r"image_labels\.txt: the labels of 'a' contradict .*it tags classes \[2\] the mask does not hold"),
    ("labels-not-integers", labels_file("a 1\nb cat\n"),
     DatasetError, r"image_labels\.txt:2: class ids must be integers"),
    ("labels-id-out-of-range", labels_file("a 3\nb 1\n"),
     DatasetError, r"image_labels\.txt:1: class ids \[3\] outside 1\.\.2"),
    ("labels-duplicate-image", labels_file("a 1\nb 1\na 1\n"),
     DatasetError, r"image_labels\.txt:3: image 'a' is listed twice \(first on line 1\)"),
    ("labels-image-missing", labels_file("a 1\n"), DatasetError, r"image_labels\.txt: no image-level labels for 'b'"),
    # -- clicks.json: {"<name>": [[y, x, class_id], ...]} ---------------------------------------------
    ("clicks-out-of-image", clicks_file({"a": [[5, 5, 1], [100, 3, 1]], "b": []}),
     DatasetError, r"clicks\.json: click 1 of 'a' is \[100, 3, 1\], outside its 16x20 image .*a\.jpg"),
    ("clicks-pairs-not-triples", clicks_file({"a": [[1, 2], [3, 4], [5, 1]]}),
     DatasetError, r"clicks\.json: click 0 of 'a' is \[1, 2\], not a \[y, x, class_id\] triple"),
    ("clicks-dict-of-dicts", clicks_file({"a": {"y": 1, "x": 2, "class_id": 1}}),
     DatasetError, r"clicks\.json: clicks of 'a' must be a list of \[y, x, class_id\] triples .*found a JSON dict"),
    ("clicks-list-at-top", clicks_file([[1, 2, 1]]),
     DatasetError, r"clicks\.json: must be a JSON object .*found a JSON list"),
    ("clicks-not-numbers", clicks_file({"a": [["1", 2, 1]]}),
     DatasetError, r"clicks\.json: click 0 of 'a' is \[\"1\", 2, 1\]: y, x and class_id must be integers"),
    ("clicks-class-out-of-range", clicks_file({"a": [[1, 1, 9]]}),
     DatasetError, r"clicks\.json: click 0 of 'a' is \[1, 1, 9\]: class id 9 outside 0\.\.2"),
    ("clicks-negative", clicks_file({"b": [[-1, 1, 1]]}),
     DatasetError, r"clicks\.json: click 0 of 'b' is \[-1, 1, 1\]: negative"),
    ("clicks-not-json", clicks_file("{'a': []}"), DatasetError, r"clicks\.json: not valid JSON"),
    # -- dense CRF: kernel widths > 0 (a zero width segfaulted pydensecrf), compat finite, tuple lengths ---
    ("crf-bilateral-sxy-zero", call_dense_crf(bilateral=(0, 13, 10)),
     ValueError, r"bilateral=\(0, 13, 10\): sxy must be a finite number > 0"),
    ("crf-bilateral-srgb-zero", call_dense_crf(bilateral=(80, 0, 10)),
     ValueError, r"bilateral=\(80, 0, 10\): srgb must be a finite number > 0"),
    ("crf-bilateral-srgb-zero-torch", call_dense_crf(bilateral=(80, 0, 10), backend="torch"),
     ValueError, r"bilateral=\(80, 0, 10\): srgb must be a finite number > 0"),
    ("crf-gaussian-sxy-negative", call_dense_crf(gaussian=(-3, 3), backend="pydensecrf"),
     ValueError, r"gaussian=\(-3, 3\): sxy must be a finite number > 0"),
    ("crf-gaussian-sxy-nan", call_dense_crf(gaussian=(float("nan"), 3)),
     ValueError, r"gaussian=\(nan, 3\): sxy must be a finite number > 0"),
    ("crf-bilateral-compat-inf", call_dense_crf(bilateral=(80, 13, float("inf"))),
     ValueError, r"bilateral=\(80, 13, inf\): compat must be a finite number"),
    ("crf-bilateral-srgb-string", call_dense_crf(bilateral=(80, "13", 10)),
     TypeError, r"bilateral=\(80, '13', 10\): srgb must be a number"),
    ("crf-gaussian-one-value", call_dense_crf(gaussian=(3,)),
     ValueError, r"gaussian must be a tuple \(sxy, compat\) of 2 numbers or None, got \(3,\)"),
    ("crf-bilateral-two-values", call_dense_crf(bilateral=(80, 13)),
     ValueError, r"bilateral must be a tuple \(sxy, srgb, compat\) of 3 numbers or None, got \(80, 13\)"),
    ("crf-gaussian-a-number", call_dense_crf(gaussian=3),
     TypeError, r"gaussian must be a tuple \(sxy, compat\) or None, got 3"),
    ("crf-n_iter-float", call_dense_crf(n_iter=2.5), TypeError, r"n_iter must be a non-negative int, got 2\.5"),
    ("crf-n_iter-bool", call_dense_crf(n_iter=True), TypeError, r"n_iter must be a non-negative int, got True"),
    ("crf-n_iter-negative", call_dense_crf(n_iter=-1), ValueError, r"n_iter must be >= 0, got -1"),
    ("crf-batch-bilateral-sxy-zero", call_dense_crf_batch(bilateral=(0, 13, 10)),
     ValueError, r"bilateral=\(0, 13, 10\): sxy must be a finite number > 0"),
    ("crf-batch-n_iter-float", call_dense_crf_batch(n_iter=2.5), TypeError, r"n_iter must be a non-negative int"),
    ("crf_label-bilateral-srgb-zero", call_crf_label(bilateral=(80, 0, 10)),
     ValueError, r"bilateral=\(80, 0, 10\): srgb must be a finite number > 0"),
    ("crf_label-gaussian-one-value", call_crf_label(gaussian=(3,)),
     ValueError, r"gaussian must be a tuple \(sxy, compat\)"),
    ("crf_inference_torch-bilateral-sxy-zero", call_crf_inference_torch(bilateral=(0, 13, 10)),
     ValueError, r"bilateral=\(0, 13, 10\): sxy must be a finite number > 0"),
    ("crf_inference_torch-n_iter-float", call_crf_inference_torch(n_iter=2.5),
     TypeError, r"n_iter must be a non-negative int"),
    # -- dense CRF: device and backend --------------------------------------------------------------
    ("crf-device-cuda-without-gpu", dense_crf_without_gpu(device="cuda"),
     ValueError, r"device='cuda': CUDA is not available here"),
    ("crf-torch-backend-cuda-without-gpu", dense_crf_without_gpu(device="cuda:0", backend="torch"),
     ValueError, r"device='cuda:0': CUDA is not available here"),
    ("crf-pydensecrf-on-cuda", call_dense_crf(backend="pydensecrf", device="cuda"),
     ValueError, r"device='cuda' contradicts backend='pydensecrf', which runs on the CPU only"),
    ("crf-device-unknown", call_dense_crf(device="gpu"), ValueError, r"device='gpu' is not a device"),
    ("crf-backend-unknown", call_dense_crf(backend="gpu"), ValueError, r"backend='gpu' is not known"),
    # -- dense CRF: the image and the probabilities ---------------------------------------------------
    ("crf-probs-nan", dense_crf_on(probs=lambda p: np.where(np.arange(p.shape[2]) == 3, np.nan, p)),
     ValueError, r"probs must be finite, .*it holds NaN or inf"),
    ("crf-probs-logits", dense_crf_on(probs=lambda p: np.log(p)),
     ValueError, r"probs must be non-negative and sum to 1 .*\(apply softmax first\)"),
    ("crf-image-float", dense_crf_on(image=lambda im: im.astype(np.float32) / 255),
     TypeError, r"image must be uint8 \(H, W, 3\), got dtype torch\.float32"),
    ("crf-image-channels-first", dense_crf_on(image=lambda im: np.ascontiguousarray(im.transpose(2, 0, 1))),
     ValueError, r"image must have shape \(H, W, 3\), got \(3, 8, 10\)"),
    ("crf-batch-images-float", dense_crf_batch_float_images,
     TypeError, r"images must be uint8 \(B, H, W, 3\), got dtype torch\.float32"),
    # -- dense-CRF loss ------------------------------------------------------------------------------
    ("crf-loss-logits", call_dense_crf_loss(probs=lambda logits: logits),
     ValueError, r"probs must be probabilities \(in \[0, 1\], summing to 1 .*apply softmax first"),
    ("crf-loss-sigmoid-not-softmax", call_dense_crf_loss(probs=lambda logits: logits.sigmoid()),
     ValueError, r"probs must be probabilities .*sums off by up to .*apply softmax first"),
    ("crf-loss-image-0-1", call_dense_crf_loss(images=lambda im: im.float() / 255),
     ValueError, r"images must hold 0-255 values \(uint8 or float\), got max 1\.0: pass the uint8 image"),
    ("crf-loss-image-mean-std", call_dense_crf_loss(images=lambda im: (im.float() / 255 - 0.45) / 0.225),
     ValueError, r"images must hold 0-255 values \(uint8 or float\), got min -2\.0"),
    ("crf-loss-image-nan", call_dense_crf_loss(images=lambda im: im.float().fill_(float("nan"))),
     ValueError, r"images must hold 0-255 values .*got NaN"),
    ("crf-loss-sigma_xy-zero", call_dense_crf_loss(sigma_xy=0), ValueError, r"sigma_xy must be a finite number > 0, got 0"),
    ("crf-loss-sigma_rgb-negative", call_dense_crf_loss(sigma_rgb=-15),
     ValueError, r"sigma_rgb must be a finite number > 0, got -15"),
    ("crf-loss-scale-above-1", call_dense_crf_loss(scale=2), ValueError, r"scale must lie in \(0, 1\]"),
    ("crf-loss-scale-zero", call_dense_crf_loss(scale=0), ValueError, r"scale must be a finite number > 0, got 0"),
    ("crf-loss-weight-not-tensor", call_dense_crf_loss(weight=np.ones((2, 8, 10))),
     TypeError, r"weight must be a tensor \(B, H, W\) or None, got ndarray"),
    # -- notebook parameters and the training configuration -------------------------------------------
    ("notebook-device-gpu", notebook_parameters(device="gpu"),
     ValueError, r"parameter device='gpu' must be 'auto', 'cpu', 'cuda' or 'cuda:N'"),
    ("notebook-seed-2**62", notebook_parameters(seed=2 ** 62),
     ValueError, r"parameter seed=4611686018427387904 must lie in \[0, 2147483647\]"),
    ("trainconfig-lr-string", train_config(lr="0.01"), ValueError, r"TrainConfig: lr must be a finite number, got '0\.01'"),
    ("trainconfig-steps-float", train_config(steps=2.5), ValueError, r"TrainConfig: steps must be an int, got 2\.5"),
    ("trainconfig-seed-2**62", train_config(seed=2 ** 62),
     ValueError, r"TrainConfig: bad value for seed=4611686018427387904 \(an integer in \[0, 2\*\*31 - 1\]"),
    ("train-device-gpu", lambda t: resolve_device("gpu"),
     ValueError, r"device='gpu' is not a device: use 'auto', 'cpu', 'cuda' or 'cuda:N'"),
    # -- environment variables and command lines ------------------------------------------------------
    ("wsss_data-is-a-file", wsss_data_file, DatasetError,
     r"environment variable WSSS_DATA points at .*afile, which is a file, not a folder"),
    ("run_notebooks-output-dir-file", lambda t: cli(run_notebooks_main, ["basics", "--output-dir", str(a_file(t))]),
     SystemExit, r"--output-dir .*afile is a file; give a folder"),
    ("compare-unknown-notebook", lambda t: cli(compare_main, ["basicz"]),
     SystemExit, r"no notebook named 'basicz'; there are \[.*'basics'"),
    ("compare-truncated-json", compare_truncated, SystemExit,
     r"new\.json is not a complete results json \(.*\); rerun the notebook that writes it"),
]


@pytest.mark.parametrize("builder, error, match", [row[1:] for row in BAD_INPUTS], ids=[row[0] for row in BAD_INPUTS])
def test_bad_input_names_its_culprit(tmp_path, builder, error, match):
    with pytest.raises(error) as info:
        builder(tmp_path)
    message = str(info.value)
    assert re.search(match, message), f"{message!r} does not match {match!r}"


def test_table_ids_are_unique():
    ids = [row[0] for row in BAD_INPUTS]
    assert len(ids) == len(set(ids))


# ---- nothing is deleted or rewritten that is not ours ----------------------------------------------

def snapshot(root: Path) -> dict:
    """Every file under root with its bytes."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def call_open_data(root):
    from wsss.notebook import open_data
    open_data("synthetic", root, "quick", 0)


@pytest.mark.parametrize("entry", [
    lambda root: write_benchmark(root, "smoke", progress=False),
    lambda root: ensure_benchmark(root, "smoke", 0, progress=False),
    lambda root: synthetic_main(["--out", str(root), "--profile", "smoke"]),
    call_open_data,
], ids=["write_benchmark", "ensure_benchmark", "cli", "open_data"])
def test_synthetic_entry_points_leave_a_user_folder_alone(tmp_path, entry):
    root = user_folder(tmp_path)
    before = snapshot(root)
    with pytest.raises((DatasetError, SystemExit), match=re.escape(str(root))):
        entry(root)
    assert (root / "notes.txt").read_text() == "my notes, not a copy anywhere else\n"
    assert snapshot(root) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]   # no temporary folder left beside it


def test_cli_help_no_longer_promises_to_replace(capsys):
    with pytest.raises(SystemExit):
        synthetic_main(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "replaced if it exists" not in text and "only such a benchmark is replaced" in text


def test_generated_benchmark_is_reused_then_regenerated_in_place(tmp_path):
    root = ensure_benchmark(tmp_path / "b", "smoke", 0, progress=False)
    stamp = (root / "benchmark.json").stat().st_mtime_ns
    assert ensure_benchmark(root, "smoke", 0, progress=False) == root
    assert (root / "benchmark.json").stat().st_mtime_ns == stamp            # reused, not rewritten
    ensure_benchmark(root, "smoke", 1, progress=False)                        # ours: regenerated
    assert json.loads((root / "benchmark.json").read_text())["seed"] == 1
    synthetic_main(["--out", str(root), "--profile", "smoke", "--seed", "2"])  # the CLI may replace it too
    assert json.loads((root / "benchmark.json").read_text())["seed"] == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b"]               # the old one and temporaries gone
    assert len(build_dataset("synthetic", root, "train_aug")) == 24


def test_benchmark_is_the_same_whichever_way_it_was_written(tmp_path, tiny_benchmark):
    """An empty folder is filled, by renaming over it or, where that fails, by moving entries in."""
    (tmp_path / "empty").mkdir()
    write_benchmark(tmp_path / "empty", "smoke", 0, progress=False)
    (tmp_path / "empty2").mkdir()
    real_replace = os.replace

    def no_rename_over_dirs(src, dst):   # as on Windows, or when the folder is a mount point
        if Path(dst).is_dir():
            raise OSError("cannot rename over a folder here")
        return real_replace(src, dst)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(synthetic.os, "replace", no_rename_over_dirs)
        write_benchmark(tmp_path / "empty2", "smoke", 0, progress=False)
    reference = snapshot(tiny_benchmark)
    assert snapshot(tmp_path / "empty") == reference
    assert snapshot(tmp_path / "empty2") == reference
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty", "empty2"]


def test_own_train_aug_is_never_rewritten_from_sbd(tmp_path):
    root = voc_with_own_train_aug(tmp_path, with_sbd=True)
    split_file = root / "ImageSets" / "Segmentation" / "train_aug.txt"
    with pytest.raises(DatasetError, match=r"c\.png: mask listed"):
        build_dataset("voc", root, "train_aug")
    assert split_file.read_text() == "a\nc\n" and not (root / "SegmentationClassAug").exists()
    # the same SBD does build train_aug where the folder has no list of its own
    split_file.unlink()
    ds = build_dataset("voc", root, "train_aug", progress=False)
    assert ds.names == ["a", "c", "d"] and split_file.read_text().split() == ["a", "c", "d"]
    assert not [p for p in root.rglob("*.tmp")]


def test_bom_crlf_and_upper_case_extension_are_read(tmp_path):
    root = voc(tmp_path)
    (root / "JPEGImages" / "b.jpg").rename(root / "JPEGImages" / "b.JPG")
    (root / "ImageSets" / "Segmentation" / "train.txt").write_bytes(b"\xef\xbb\xbfa\r\n b \r\n\r\n")
    (root / "image_labels.txt").write_bytes(b"\xef\xbb\xbfa 1\r\nb 1\r\n")
    ds = read_all("voc", root)
    assert ds.names == ["a", "b"] and ds.image_paths[1].name == "b.JPG"


def test_tags_may_name_a_class_hidden_under_ignore(tmp_path):
    """VOC marks difficult objects 255: a tag absent from a mask with ignore pixels is not a contradiction."""
    root = voc(tmp_path, masks=[cat_mask(ignore_row=True), cat_mask()])
    (root / "image_labels.txt").write_text("a 1 2\nb 1\n")
    ds = read_all("voc", root)
    assert ds[0]["labels"].tolist() == [1.0, 1.0]


def test_clicks_from_file_are_used(tmp_path):
    root = voc(tmp_path)
    (root / "clicks.json").write_text(json.dumps({"a": [[4, 5, 1], [15, 19, 0]], "b": [], "elsewhere": [[1, 1, 1]]}))
    ds = read_all("voc", root, with_clicks=True)
    assert ds[0]["clicks"].tolist() == [[4, 5, 1], [15, 19, 0]] and ds[1]["clicks"].shape == (0, 3)
