"""Execute the notebooks headless with papermill, introduction first, each into its own run folder.

    python -m wsss.run_notebooks                      # every notebook at quick -> runs/<name>-quick/
    python -m wsss.run_notebooks basics -p profile full -p device cuda
    python -m wsss.run_notebooks --publish            # maintainers: refresh the committed copies
    python -m wsss.run_notebooks --dry-run tscd       # trains nothing: tscd's full run plan, its networks checked
                                                      # at full size and its time estimated on this machine's GPU

Each notebook is executed from its paired source ``notebooks/<name>.py`` (jupytext ``py:percent``, see
:mod:`wsss.pairs`); a pair whose cells differ stops the run before anything executes, with the one
command that syncs it. After ``--publish`` the ``.ipynb`` holds the outputs and the pair stays in sync.
By default each executed notebook, its figures and its results go to the git-ignored folder
runs/<name>-<profile>/, so a run leaves the repository's files as they were. ``--publish`` executes
in place and writes figures/ and results/ of the repository: the one way to refresh what is
committed. A notebook is replaced only when its run succeeded (a failed run leaves the old file and
says where the failed copy is). While a notebook runs, each cell's start and its printed lines are
logged with the elapsed time. papermill's per-cell metadata, widget state and the overwritten
frames of text progress bars are removed, so diffs stay small and static viewers show the last frame.
"""
from __future__ import annotations

import argparse
import ast
import logging
import os
import re
import sys
import time
from pathlib import Path

import nbformat
import papermill

from .notebook import git_lines, repo_root, run_folder
from .pairs import pair_difference, source_notebook, write_twin

# the introduction first (it also builds the benchmark), then the papers in the order they build on each other
ORDER = ("basics", "asdt", "ssdd", "tscd", "seminar", "rml")
_FRAME = re.compile(r"[^\n]*\r(?!\n)")       # text up to a carriage return that a later frame overwrites


def ordered(paths: list[Path]) -> list[Path]:
    """Notebooks in :data:`ORDER`, any others after them alphabetically."""
    rank = {name: i for i, name in enumerate(ORDER)}
    return sorted(paths, key=lambda p: (rank.get(p.stem, len(ORDER)), p.stem))


def tidy(path: Path) -> None:
    """Drop papermill's per-cell metadata (timings, status), execution stamps and widget state from a
    notebook, and keep only the last frame of each text progress bar in stream outputs."""
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        cell.metadata.pop("papermill", None)
        cell.metadata.pop("execution", None)
        if cell.cell_type == "code":
            cell.outputs = _merge_streams(cell.outputs)
        for out in cell.get("outputs", []):
            data = out.get("data", {})
            if "application/vnd.jupyter.widget-view+json" in data:
                data.pop("application/vnd.jupyter.widget-view+json")
    nb.metadata.pop("papermill", None)
    nb.metadata.pop("widgets", None)
    nbformat.write(nb, path)


def _merge_streams(outputs: list) -> list:
    """Consecutive stream outputs of one stream joined as a terminal shows them: a piece that does not
    end its line (a progress bar's frame) is overwritten by the next one, and so is text before a
    carriage return."""
    merged: list = []
    for out in outputs:
        if out.get("output_type") == "stream" and merged and merged[-1].get("output_type") == "stream" \
                and merged[-1].get("name") == out.get("name"):
            text = merged[-1]["text"]
            if not text.endswith("\n") and not out["text"].startswith("\n"):
                text = text[: text.rfind("\n") + 1]            # an unfinished line: the next frame replaces it
            merged[-1]["text"] = _FRAME.sub("", text + out["text"].lstrip("\r"))
        else:
            if out.get("output_type") == "stream":
                out["text"] = _FRAME.sub("", out["text"])
            merged.append(out)
    return merged


def _value(text: str):
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


class _Elapsed(logging.Formatter):
    """papermill's log lines (cell starts, the cell's own output) prefixed with the notebook and the
    time since it started."""

    def __init__(self):
        super().__init__()
        self.name, self.start = "", time.perf_counter()

    def format(self, record: logging.LogRecord) -> str:
        elapsed = time.perf_counter() - self.start
        return f"[{self.name} {int(elapsed) // 60:02d}:{int(elapsed) % 60:02d}] {record.getMessage().rstrip()}"


def run(notebook: Path, out: Path, params: dict, *, cwd: Path, log: _Elapsed, scratch: Path) -> Path:
    """Execute ``notebook`` into ``out`` through a copy in the folder ``scratch``; ``out`` is replaced only
    when the run succeeded, else the failed copy stays in ``scratch`` (never beside the notebooks, where
    the test suite would collect it). A notebook with a ``.py`` twin runs from the twin's cells (``main`` runs
    only notebooks that have one, in sync)."""
    scratch.mkdir(parents=True, exist_ok=True)
    tmp = scratch / f".{out.stem}.running.ipynb"
    source = notebook
    if notebook.with_suffix(".py").exists():
        source = scratch / f".{out.stem}.source.ipynb"
        nbformat.write(source_notebook(notebook), source)
    log.name, log.start = notebook.stem, time.perf_counter()
    try:
        papermill.execute_notebook(str(source), str(tmp), parameters=params, cwd=str(cwd), kernel_name="python3",
                                   log_output=True, progress_bar=False)
    except BaseException:
        failed = scratch / f"{out.stem}.failed.ipynb"
        if tmp.exists():
            os.replace(tmp, failed)
            print(f"  {notebook.name} FAILED; {out} is unchanged, the failed run is in {failed}", flush=True)
        raise
    tidy(tmp)
    os.replace(tmp, out)
    return out


def committed_profile(notebook: Path) -> str:
    """The ``profile`` default of a notebook's parameters cell (the profile its committed outputs have)."""
    return str(papermill.inspect_notebook(str(notebook)).get("profile", {}).get("default", "quick")).strip("\"'")


def written_files(notebook: Path, profile: str) -> list[Path]:
    """The files a publish of ``notebook`` at ``profile`` may replace besides the notebook pair itself:
    its results json and its figures (figures/<profile>/<name>_*)."""
    root = repo_root()
    return [root / "results" / f"{notebook.stem}-{profile}.json",
            *sorted((root / "figures" / profile).glob(f"{notebook.stem}_*"))]


def _uncommitted(paths: list[Path]) -> list[str]:
    """Those of ``paths`` git reports as changed or untracked (none when git or the repository is absent)."""
    root = repo_root()
    rel = [str(p.relative_to(root)) for p in paths if p.exists()]
    return [line[3:] for line in git_lines(root, "status", "--porcelain", "--", *rel)] if rel else []


def publish_refusals(notebook: Path, forced_profile: str | None) -> list[str]:
    """Why publishing ``notebook`` would lose something: a WSSS_PROFILE other than the notebook's own
    profile (its smoke or full outputs would replace the committed ones), or uncommitted changes in the
    results and figures it would write."""
    reasons, own = [], committed_profile(notebook)
    if forced_profile and forced_profile != own:
        reasons.append(f"{notebook.name}: WSSS_PROFILE={forced_profile} would replace the committed {own!r} outputs "
                       f"with {forced_profile!r} ones (unset WSSS_PROFILE, or use --output-dir for a trial run)")
    dirty = _uncommitted(written_files(notebook, forced_profile or own))
    if dirty:
        reasons.append(f"{notebook.name}: uncommitted changes in {', '.join(dirty[:6])}"
                       + (f" and {len(dirty) - 6} more" if len(dirty) > 6 else "")
                       + " would be overwritten (commit or stash them first)")
    return reasons


def dry_run(names: list[str], params: dict, parser: argparse.ArgumentParser) -> int:
    """``--dry-run``: for each notebook its run plan at ``-p profile`` (default full) with the step times of a
    shape check on ``-p device`` (default CUDA where available); trains and writes nothing. A notebook whose
    networks fail at that size stops the dry run with its name, the model and the error."""
    from .experiments import shapes
    from .profiles import PROFILES

    profile = str(params.get("profile", "full"))
    if profile not in PROFILES:
        parser.error(f"--dry-run: -p profile {profile} is not known; choose one of {', '.join(PROFILES)}")
    unknown = [n for n in names if n not in shapes.NOTEBOOKS]
    if unknown:
        parser.error(f"--dry-run: no run plan for notebook(s) {unknown}; wsss.experiments.shapes knows "
                     f"{list(shapes.NOTEBOOKS)}")
    from .train import resolve_device
    try:
        device = str(resolve_device(str(params.get("device", "auto"))))
    except ValueError as err:
        parser.error(f"--dry-run: {err}")
    for name in names:
        start = time.perf_counter()
        print(f"dry run of {name} at {profile}: checking its networks at that profile's size on {device} ...", flush=True)
        try:
            text = shapes.dry_run(name, profile, device)
        except Exception as err:
            print(f"{name}: the dry run failed at profile {profile}: {err}", file=sys.stderr, flush=True)
            raise
        print(text, flush=True)
        print(f"  ({name}: checked in {time.perf_counter() - start:.0f} s)\n", flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run the notebooks headless with papermill.")
    parser.add_argument("names", nargs="*", help=f"notebook names (default: all, in the order {', '.join(ORDER)})")
    parser.add_argument("-p", "--parameter", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
                        help="override a parameter of every notebook run")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--output-dir", default=None,
                       help="write the executed notebooks, figures and results here (default: runs/<name>-<profile>/)")
    where.add_argument("--publish", action="store_true",
                       help="maintainers: execute in place and rewrite the committed notebooks, figures/ and results/")
    parser.add_argument("--force", action="store_true",
                        help="with --publish: publish at a WSSS_PROFILE other than the notebook's own profile, or "
                             "over uncommitted changes to its results/ and figures/ files")
    parser.add_argument("--dry-run", action="store_true",
                        help="run no notebook: print each one's run plan (trainings, steps, estimated time) at the "
                             "profile of -p profile (default full), its networks checked at that size on -p device "
                             "(default: CUDA where available) - wsss.experiments.shapes")
    args = parser.parse_args(argv)
    if args.dry_run and args.publish:
        parser.error("--dry-run runs nothing and --publish writes the committed files: give one of them")
    if args.output_dir and Path(args.output_dir).exists() and not Path(args.output_dir).is_dir():
        parser.error(f"--output-dir {args.output_dir} is a file; give a folder (it is created if missing)")
    folder = repo_root() / "notebooks"
    notebooks = ordered(list(folder.glob("*.ipynb")))
    if args.names:
        known = {p.stem: p for p in notebooks}
        missing = [n for n in args.names if n not in known]
        if missing:
            parser.error(f"no notebook named {missing} in {folder}; there are {sorted(known)}")
        notebooks = ordered([known[n] for n in args.names])
    params = {k: _value(v) for k, v in args.parameter}
    if args.dry_run:
        return dry_run([nb.stem for nb in notebooks], params, parser)
    if "out_dir" in params:
        parser.error("give --output-dir or --publish instead of -p out_dir")
    if args.publish and params:
        parser.error(f"--publish runs each notebook as its source stands; -p {' '.join(params)} would add a cell "
                     "that the .py source lacks: change the default in notebooks/<name>.py's parameters cell instead")
    problems = [p for p in map(pair_difference, notebooks) if p]
    if problems:
        parser.error("\n  ".join(["a notebook and its .py source differ; nothing was run:"] + problems))
    # the profile the kernels will run (WSSS_PROFILE overrides the parameter inside the notebook, too)
    profile = os.environ.get("WSSS_PROFILE") or params.get("profile", "quick")
    if args.publish and not args.force:
        refusals = [r for nb in notebooks for r in publish_refusals(nb, os.environ.get("WSSS_PROFILE"))]
        if refusals:
            parser.error("\n  ".join(["--publish refused; nothing was run:"] + refusals
                                      + ["pass --force to publish anyway"]))
    log = _Elapsed()
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(log)
    logger = logging.getLogger("papermill")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    for nb in notebooks:
        if args.publish:
            target, out = repo_root(), nb
        else:
            target = Path(args.output_dir) if args.output_dir else run_folder(nb.stem, profile)
            out = target / nb.name
        out.parent.mkdir(parents=True, exist_ok=True)
        start = time.perf_counter()
        print(f"running {nb.name} with {params or 'its defaults'} -> {out}", flush=True)
        # the output folder reaches the kernel through its environment, not as an injected parameter, so a
        # published notebook carries no machine's path (and its second cell stays the validation cell)
        saved = {k: os.environ.get(k) for k in ("WSSS_OUT_DIR", "WSSS_PUBLISH")}
        os.environ["WSSS_OUT_DIR"] = str(target)
        os.environ["WSSS_PUBLISH"] = "1" if args.publish else "0"   # output_dirs lets only a publish write over committed files
        try:
            run(nb, out, params, cwd=folder, log=log, scratch=run_folder(nb.stem, profile))
            if args.publish and write_twin(nb):
                print(f"  {nb.with_suffix('.py').name} rewritten to match the published notebook", flush=True)
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
        print(f"  {nb.name}: done in {time.perf_counter() - start:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
