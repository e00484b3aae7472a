"""What every notebook does besides teaching its paper: parameter checks, paths, data, results.

Notebooks start with a ``parameters`` cell of plain literals (papermill overrides them) and call
:func:`check_parameters` in the next cell. Paths are resolved here, through the package, because
papermill starts the kernel in the caller's folder and nbval in the notebook's.
"""
from __future__ import annotations

import difflib
import json
import os
import platform
import time
import types
from pathlib import Path
from typing import Any, Callable

import torch

from .data import DATASETS, DatasetError, build_dataset
from .data.fingerprint import fingerprint
from .data.synthetic import ensure_benchmark
from .data.resized import ensure_resized, profile_image_px
from .data.tags import describe_tags, tag_report
from .profiles import BENCHMARK, PROFILES as NOTEBOOK_PROFILES, default_workers, head_dilation, pixels, profile_settings, scaled_bilateral  # noqa: F401
from . import reproducible
from .records import (Verdicts, central_std, closing_table, format_miou, headroom, headroom_line, mean_std,  # noqa: F401
                      miou_record, ordering_verdict, pair_verdict)

# Names IPython puts in a kernel's namespace by itself.
_KERNEL_NAMES = {"In", "Out", "get_ipython", "exit", "quit", "open"}


def repo_root() -> Path:
    """The repository checkout holding this package (where notebooks/, results/ and figures/ live).

    Falls back to the current folder when the package is installed without its repository.
    """
    root = Path(__file__).resolve().parent.parent
    return root if (root / "notebooks").is_dir() else Path.cwd()


# ---- parameter checks ------------------------------------------------------------------------------

def one_of(*choices) -> Callable[[Any], str | None]:
    return lambda v: None if v in choices else f"must be one of {choices}"


def number(lo: float | None = None, hi: float | None = None, *, integer: bool = False) -> Callable[[Any], str | None]:
    def check(v):
        kind = int if integer else (int, float)
        if isinstance(v, bool) or not isinstance(v, kind):
            return f"must be {'an integer' if integer else 'a number'}"
        if (lo is not None and v < lo) or (hi is not None and v > hi):
            return f"must lie in [{lo}, {hi}]"
        return None
    return check


def optional_path(v) -> str | None:
    return None if v is None or isinstance(v, (str, Path)) else "must be a path or None"


def device_name(v) -> str | None:
    if v == "auto":
        return None
    try:
        dev = torch.device(v)
    except (RuntimeError, TypeError):
        return "must be 'auto', 'cpu', 'cuda' or 'cuda:N'"
    if dev.type == "cuda" and not torch.cuda.is_available():
        return "asks for CUDA but no GPU is available here; use 'auto' or 'cpu'"
    return None


COMMON = {"dataset": one_of(*DATASETS), "data_root": optional_path, "profile": one_of(*NOTEBOOK_PROFILES),
          "device": device_name, "seed": number(0, 2**31 - 1, integer=True), "out_dir": optional_path}


def check_parameters(namespace: dict, spec: dict[str, Callable[[Any], str | None]]) -> dict:
    """Validate a notebook's parameters; raise one ValueError naming the first bad one.

    ``spec`` maps each parameter to a checker returning an error text or None (the common ones of
    :data:`COMMON` are added). A name in ``namespace`` that no spec knows - a misspelt
    ``papermill -p`` (papermill itself only warns) - is an error too. The environment variable
    ``WSSS_PROFILE`` (the test suite sets it to "smoke") overrides ``profile`` in ``namespace``, with a
    printed line saying so. Returns the parameters as a dict.
    """
    spec = {**COMMON, **spec}
    unknown = [k for k, v in namespace.items()
               if not k.startswith("_") and k not in spec and k not in _KERNEL_NAMES
               and not isinstance(v, (types.ModuleType, types.FunctionType, type))]
    if unknown:
        hints = {k: difflib.get_close_matches(k, spec, n=1) for k in unknown}
        said = ", ".join(f"{k!r}" + (f" (did you mean {h[0]!r}?)" if h else "") for k, h in hints.items())
        raise ValueError(f"unknown parameter {said}; this notebook takes {sorted(spec)}")
    for name, check in spec.items():
        if name not in namespace:
            raise ValueError(f"parameter {name!r} is missing from the parameters cell")
        problem = check(namespace[name])
        if problem:
            raise ValueError(f"parameter {name}={namespace[name]!r} {problem}")
    forced = os.environ.get("WSSS_PROFILE")
    if forced and forced != namespace.get("profile"):
        problem = COMMON["profile"](forced)
        if problem:
            raise ValueError(f"environment variable WSSS_PROFILE={forced!r} {problem}")
        print(f"WSSS_PROFILE={forced} overrides the parameter profile={namespace.get('profile')!r}")
        namespace["profile"] = forced
    if namespace["dataset"] != "synthetic" and namespace["data_root"] is None:
        raise ValueError(f"parameter data_root is required for dataset={namespace['dataset']!r}")
    if namespace["profile"] == "paper" and namespace["dataset"] == "synthetic":
        raise ValueError("parameter profile='paper' means the paper's data and schedule: set dataset and data_root")
    return {k: namespace[k] for k in spec}


# ---- data, outputs ---------------------------------------------------------------------------------

# (train split, val split) of each dataset as the papers use them
DEFAULT_SPLITS = {"synthetic": ("train_aug", "val"), "voc": ("train_aug", "val"), "coco": ("train", "val"),
                  "cocostuff10k": ("train", "test")}


def open_data(dataset: str, data_root, profile: str, seed: int, *, train_transform=None, with_clicks: bool = False):
    """(root, train set, val set) with the dataset's usual splits (:data:`DEFAULT_SPLITS`).

    The synthetic benchmark is generated on first use and cached. A VOC-layout folder of one's own that
    has neither train_aug.txt nor SBD beside it is trained on its "train" split (and says so). At
    ``smoke`` and ``quick`` a real dataset is read from a downsized, cached copy
    (:func:`wsss.data.resized.ensure_resized`), and the returned root is that copy. Prints how
    informative the train split's tags are (:func:`wsss.data.tags.tag_report`), with a warning when
    they separate the classes poorly.
    """
    train_split, val_split = DEFAULT_SPLITS[dataset]
    if dataset == "synthetic":
        root = ensure_benchmark(data_root, BENCHMARK.get(profile) or "full", seed)
    else:
        root = Path(data_root)
        if not root.exists():
            raise FileNotFoundError(f"data_root {root} does not exist")
    image_px = None if dataset == "synthetic" else profile_image_px(profile)
    kwargs = dict(transform=None if image_px else train_transform, with_clicks=with_clicks)
    try:
        train = build_dataset(dataset, root, train_split, **kwargs)
    except DatasetError:
        splits = root / "ImageSets" / "Segmentation"
        # only a missing train_aug (and no SBD to build it) falls back; a broken train_aug.txt is the user's to fix
        if not (dataset == "voc" and not (splits / "train_aug.txt").exists() and (splits / "train.txt").is_file()):
            raise
        print(f"{root}: no train_aug split and no SBD to build it from; training on the 'train' split")
        train_split = "train"
        train = build_dataset(dataset, root, train_split, **kwargs)
    val = build_dataset(dataset, root, val_split, with_clicks=with_clicks and bool(image_px))
    if image_px:
        copy = ensure_resized(f"{dataset}{'-clicks' if with_clicks else ''}", root, {train_split: train, val_split: val},
                              image_px)
        print(f"{root}: at profile {profile!r} the notebook works on a copy with each image's short side brought to "
              f"{image_px} px (the benchmark's size), made once and cached in {copy}; 'full' and 'paper' read the "
              f"original at full resolution")
        train = build_dataset("voc", copy, train_split, transform=train_transform, with_clicks=with_clicks)
        val = build_dataset("voc", copy, val_split)
        root = copy
    print(describe_tags(tag_report(train)))
    _OPENED["root"] = root
    return root, train, val


# the data folder the notebook opened last (open_data): its fingerprint goes into the results json
_OPENED: dict = {}


def run_folder(notebook: str, profile: str) -> Path:
    """Where a run of ``notebook`` at ``profile`` writes by default: runs/<notebook>-<profile>/ in the
    repository (git ignores runs/), holding results/, figures/ and, from :mod:`wsss.run_notebooks`,
    the executed notebook."""
    return repo_root() / "runs" / f"{notebook}-{profile}"


def output_dirs(out_dir, notebook: str | None = None, profile: str | None = None) -> tuple[Path, Path]:
    """(results dir, figures dir): out_dir/results and out_dir/figures/<profile>, created.

    Without out_dir: $WSSS_OUT_DIR when set (the test suite sets it), else :func:`run_folder` of
    (notebook, profile), so a run never rewrites the committed results/ and figures/ unless it is
    asked to (``python -m wsss.run_notebooks --publish``, which sets $WSSS_PUBLISH). Figures of each
    profile live in their own folder, so a smoke or full run never replaces the quick figures. A run
    whose out_dir holds git-tracked outputs of this notebook and profile (out_dir = the repository, say)
    stops with an error naming them, unless it is a publish.
    """
    if out_dir is None:
        out_dir = os.environ.get("WSSS_OUT_DIR")
    if out_dir is None:
        if notebook is None or profile is None:
            raise ValueError("output_dirs needs out_dir, $WSSS_OUT_DIR, or the notebook and profile names")
        out_dir = run_folder(notebook, profile)
    base = Path(out_dir)
    results, figures = base / "results", base / "figures" / (profile or "any")
    if notebook is not None and profile is not None and os.environ.get("WSSS_PUBLISH") != "1":
        tracked = tracked_files(base, [f"results/{notebook}-{profile}.json", f"figures/{profile}/{notebook}_*"])
        if tracked:
            ours = base.resolve() == repo_root().resolve()
            how = (f"or refresh them on purpose with python -m wsss.run_notebooks --publish {notebook}" if ours
                   else "or, to replace them, take them out of git first (git rm --cached)")
            raise ValueError(f"out_dir={str(out_dir)!r} holds committed outputs that this run would overwrite "
                             f"({', '.join(tracked[:3])}{' ...' if len(tracked) > 3 else ''}): choose another out_dir "
                             f"(None: runs/{notebook}-{profile}/), {how}")
    results.mkdir(parents=True, exist_ok=True)
    figures.mkdir(parents=True, exist_ok=True)
    return results, figures


def git_lines(folder: Path, *args: str) -> list[str]:
    """The output lines of ``git <args>`` run in ``folder``; none when ``folder`` is missing, is not in a git
    checkout, or git is missing or fails (the checks built on it then pass, as outside a repository)."""
    import subprocess
    folder = Path(folder)
    if not folder.is_dir():
        return []
    try:
        out = subprocess.run(["git", *args], cwd=folder, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError):
        return []
    return [line for line in out.stdout.splitlines() if line.strip()] if out.returncode == 0 else []


def tracked_files(folder: Path, patterns: list[str]) -> list[str]:
    """The files git tracks under ``folder`` that match ``patterns`` (git pathspecs relative to it)."""
    return git_lines(folder, "ls-files", "--", *patterns)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True             # someone else's live process, or a platform that cannot tell: keep its files
    return True


def scratch_folder(base: Path, notebook: str, profile: str) -> Path:
    """A new, empty folder for this run's checkpoints: <base>/checkpoints/<notebook>-<profile>/run-<pid>/, where
    base is the run's output folder (``results_dir.parent``: runs/<notebook>-<profile>/ by default,
    git-ignored checkpoints/ of the repository when publishing), never the system's temporary folder.
    Each run has its own folder, marked with its process id; folders beside it whose process has ended
    (a killed run's) are removed first, those of a run still going are left alone, and so is anything
    without the package's marker. The notebook removes its folder when it ends. Sets $WSSS_SCRATCH,
    where run_variant puts its own temporary copies."""
    import shutil
    parent = Path(base) / "checkpoints" / f"{notebook}-{profile}"
    parent.mkdir(parents=True, exist_ok=True)
    for old in parent.glob("run-*"):
        marker = old / ".wsss-checkpoints"
        try:
            pid = int(marker.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            continue                          # not the package's folder: leave it
        if pid != os.getpid() and not _alive(pid):
            shutil.rmtree(old, ignore_errors=True)
    folder = parent / f"run-{os.getpid()}"
    if folder.exists():
        if not (folder / ".wsss-checkpoints").is_file():
            raise FileExistsError(f"{folder} exists without the package's marker; move it, the run needs this folder")
        shutil.rmtree(folder)                  # this process's own earlier folder (a cell run twice)
    folder.mkdir()
    (folder / ".wsss-checkpoints").write_text(f"{os.getpid()} checkpoints of a wsss notebook run; removed when it ends\n")
    os.environ["WSSS_SCRATCH"] = str(folder)
    return folder


def floor_miou(val_set, *, batch_size: int = 16) -> float:
    """The floor of the room (docs/design.md): the mIoU of predicting background everywhere on ``val_set`` (10.7% on
    the quick benchmark's val split: background covers 75% of its labelled pixels)."""
    from .evaluate import evaluate
    return evaluate(lambda batch: torch.zeros_like(batch["mask"]), val_set, batch_size=batch_size).miou()


def write_atomic(path: Path, text: str) -> Path:
    """Write ``text`` to ``path`` through a temporary file beside it, replaced only when complete (a
    full disk or a crash leaves the old file, never a truncated one)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(text)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def write_results(results_dir: Path, notebook: str, profile: str, payload: dict) -> Path:
    """Write results/<notebook>-<profile>.json with the numbers plus where and how they were made
    (atomically: a failed write leaves the previous file as it was). ``meta`` records the versions, the
    processor and the code paths of the reproducible mode (:func:`wsss.reproducible.describe`) and the
    fingerprint of the data folder :func:`open_data` opened (:mod:`wsss.data.fingerprint`)."""
    meta = {"notebook": notebook, "profile": profile, "torch": torch.__version__, "python": platform.python_version(),
            "device": torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu",
            "cpu_threads": torch.get_num_threads(), "written": time.strftime("%Y-%m-%d %H:%M:%S"),
            "reproducible": reproducible.describe()}
    if _OPENED.get("root") is not None:
        meta["data"] = {"root": Path(_OPENED["root"]).name, **fingerprint(_OPENED["root"])}
    text = json.dumps({**payload, "meta": meta}, indent=1, default=float) + "\n"
    return write_atomic(Path(results_dir) / f"{notebook}-{profile}.json", text)


class Stopwatch:
    """Wall time since creation, for the time budget printed at the end of each notebook."""

    def __init__(self):
        self.start = time.perf_counter()

    def __call__(self) -> float:
        return time.perf_counter() - self.start


def loader_throughput(dataset, *, batch_size: int = 16, num_workers: int = 0, batches: int = 20) -> float:
    """Images per second the data pipeline delivers (decode + transform + collate), to compare with
    a training step's speed: a loader slower than the GPU starves it."""
    from .data.folder import collate

    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=True, collate_fn=collate,
                                         num_workers=num_workers, generator=torch.Generator().manual_seed(0))
    start, seen = time.perf_counter(), 0
    for i, batch in enumerate(loader):
        seen += len(batch["image"])
        if i + 1 >= batches:
            break
    return seen / (time.perf_counter() - start)


# ---- reading a paper beside its code ---------------------------------------------------------------

def show_source(*items):
    """The source of functions or classes, rendered as Markdown, so that an equation sits next to the code
    that computes it. Each item is a function or class, or a pair ``(caption, function)``: the caption
    (Markdown, e.g. "Eq. (3): ...") is printed right above that function's code block, so a cell that
    shows several functions says which equation each one implements."""
    import inspect

    from IPython.display import Markdown

    if not items:
        raise ValueError("show_source needs at least one function or (caption, function) pair")
    parts = []
    for item in items:
        caption, obj = item if isinstance(item, tuple) else (None, item)
        if not callable(obj):
            raise TypeError(f"show_source: {obj!r} is not a function or class")
        code = f"```python\n{inspect.getsource(obj).rstrip()}\n```"
        parts.append(code if caption is None else f"{caption}\n\n{code}")
    return Markdown("\n\n".join(parts))


def show_closing_table(rows: list[dict]):
    """Display a notebook's closing table (:func:`wsss.records.closing_table`) whole: one row per claim,
    columns claim / paper / ours / verdict / why, no cell cut short."""
    import pandas as pd
    from IPython.display import display

    frame = pd.DataFrame(rows, columns=["claim", "paper", "ours", "verdict", "why"])
    with pd.option_context("display.max_colwidth", None, "display.width", 250):
        display(frame)
