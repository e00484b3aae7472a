"""Execute the notebooks headless with papermill, introduction first, each into its own run folder.

    python -m wsss.run_notebooks                      # every notebook at quick -> runs/<name>-quick/
    python -m wsss.run_notebooks basics -p profile full -p device cuda
    python -m wsss.run_notebooks basics asdt -p asdt.T 150   # NOTEBOOK.NAME: a parameter of asdt only
    python -m wsss.run_notebooks --keep-going         # a failing notebook does not stop the others
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

``-p NAME VALUE`` sets a parameter of every notebook run, ``-p NOTEBOOK.NAME VALUE`` of that notebook
only (it wins over a plain ``-p NAME``). Every name is checked against the parameters cell of each
notebook it goes to before anything runs: a notebook that lacks it (papermill itself only warns; the
notebook's validation cell would stop that notebook, and with it the rest of the run) is an error
naming the notebook, the parameter and the notebook's parameters, as the validation cell's own
message does (:func:`wsss.notebook.check_parameters`).
Before each notebook an *estimate* of the time left is printed, from the wall time of the committed
results/<name>-<profile>.json at the same profile (a run on another machine, device or with other
``-p`` values takes its own time; "unknown" where no such json is committed). The run stops at the
first failing notebook unless ``--keep-going``; either way it ends with a table of the notebooks (ok,
failed or not run, wall time, output) and exits 1 if one failed.
"""
from __future__ import annotations

import argparse
import ast
import difflib
import json
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


def notebook_parameters(notebook: Path) -> list[str]:
    """The names in the parameters cell of ``notebook`` (what its validation cell accepts), in cell order."""
    return list(papermill.inspect_notebook(str(notebook)))


def split_parameters(pairs: list[tuple[str, str]], notebooks: list[Path], known: list[str],
                     parser: argparse.ArgumentParser) -> dict[str, dict]:
    """The parameters of each notebook run, from ``-p NAME VALUE`` (every notebook) and ``-p NOTEBOOK.NAME
    VALUE`` (that notebook only, winning over a plain NAME). A NOTEBOOK that is not being run, and a NAME
    that a notebook's parameters cell lacks, stop the run before anything executes (``parser.error``, with
    every problem named)."""
    running = [nb.stem for nb in notebooks]
    common, own, problems = {}, {name: {} for name in running}, []
    for key, text in pairs:
        target, dot, name = key.partition(".")
        if not dot:
            common[key] = _value(text)
        elif target not in known:
            problems.append(f"-p {key}: no notebook named {target!r}; there are {sorted(known)}")
        elif target not in own:
            problems.append(f"-p {key}: notebook {target!r} is not being run (this run: {', '.join(running)}); "
                            f"add {target} to the notebook names or leave -p {key} out")
        elif not name:
            problems.append(f"-p {key}: give a parameter name after the dot ({target}.NAME)")
        else:
            own[target][name] = _value(text)
    merged = {name: {**common, **own[name]} for name in running}
    for nb in notebooks:
        takes = notebook_parameters(nb)
        for name in merged[nb.stem]:
            if name in takes:
                continue
            hint = difflib.get_close_matches(name, takes, n=1)
            scoped = name in own[nb.stem]
            others = [other.stem for other in notebooks if other is not nb and name in notebook_parameters(other)]
            problems.append(
                f"-p {nb.stem + '.' if scoped else ''}{name}: unknown parameter {name!r} for notebook {nb.stem}"
                + (f" (did you mean {hint[0]!r}?)" if hint else "") + f"; {nb.stem} takes {sorted(takes)}"
                + ("" if scoped or not others else
                   f"; to set it only where it exists, give -p {others[0]}.{name} VALUE"))
    if problems:
        parser.error("\n  ".join(["-p parameters that do not fit the notebooks run; nothing was run:"] + problems))
    return merged


def estimate_seconds(name: str, profile: str) -> tuple[float, str] | None:
    """(seconds, what it is from) of a run of notebook ``name`` at ``profile``: the wall time ("wall_seconds"
    or "wall_time_s") of the committed results/<name>-<profile>.json when its profile matches; None if
    there is no such number."""
    path = repo_root() / "results" / f"{name}-{profile}.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict):
        return None
    meta = data.get("meta") if isinstance(data.get("meta"), dict) else {}
    if meta.get("profile", profile) != profile:
        return None
    for key in ("wall_seconds", "wall_time_s"):
        value = data.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
            where = ", ".join(str(meta[k]) + (" threads" if k == "cpu_threads" else "")
                              for k in ("device", "cpu_threads") if meta.get(k) is not None)
            return float(value), f"results/{path.name}" + (f", {where}" if where else "")
    return None


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.0f} min" if seconds < 5400 else \
        f"{seconds / 3600:.1f} h"


def estimate_line(name: str, later: list[tuple[str, str]], extra: bool) -> str:
    """The line printed before notebook ``name``: its estimated time and that of the whole rest of the run
    (``later``: (notebook, profile) of it and each one after it), or "unknown"."""
    known = {n: estimate_seconds(n, prof) for n, prof in later}
    own = known[name]
    text = "  estimate: " + (f"~{_duration(own[0])} for {name} (the committed run's wall time, {own[1]}"
                             + ("; your -p values may change it" if extra else "") + ")"
                             if own else f"unknown for {name} (no committed results/{name}-{later[0][1]}.json "
                             "with a wall time at this profile)")
    if len(later) > 1:
        missing = [n for n, v in known.items() if v is None]
        total = sum(v[0] for v in known.values() if v)
        if len(missing) == len(later):
            text += f"; left, {name} included: unknown"
        else:
            text += (f"; left, {name} included: ~{_duration(total)}"
                     + (f" plus {', '.join(missing)} (unknown)" if missing else ""))
    return text


def summary(rows: list[dict]) -> str:
    """The table printed at the end: each notebook, ok / FAILED / not run, its wall time and its output."""
    root = repo_root()

    def shown(path) -> str:
        if path is None:
            return "-"
        try:
            return str(Path(path).resolve().relative_to(root.resolve()))
        except ValueError:
            return str(path)

    ok = sum(r["result"] == "ok" for r in rows)
    lines = [f"summary: {ok} of {len(rows)} notebook(s) ok", "",
             f"  {'notebook':<10}  {'result':<8}  {'wall time':>9}  output"]
    for r in rows:
        wall = "-" if r["seconds"] is None else f"{int(r['seconds']) // 60}:{int(r['seconds']) % 60:02d}"
        lines.append(f"  {r['name']:<10}  {r['result']:<8}  {wall:>9}  {shown(r['output'])}"
                     + (" (the failed copy)" if r["result"] == "FAILED" and r["output"] else ""))
    return "\n".join(lines)


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


def dry_run(names: list[str], params: dict[str, dict], parser: argparse.ArgumentParser) -> int:
    """``--dry-run``: for each notebook its run plan at ``-p profile`` (default full) with the step times of a
    shape check on ``-p device`` (default CUDA where available); trains and writes nothing. A notebook whose
    networks fail at that size stops the dry run with its name, the model and the error. ``params`` holds each
    notebook's parameters (``-p asdt.profile quick`` sets asdt's alone)."""
    from .experiments import shapes
    from .profiles import PROFILES

    for name in names:
        profile = str(params[name].get("profile", "full"))
        if profile not in PROFILES:
            parser.error(f"--dry-run: -p profile {profile} is not known; choose one of {', '.join(PROFILES)}")
    unknown = [n for n in names if n not in shapes.NOTEBOOKS]
    if unknown:
        parser.error(f"--dry-run: no run plan for notebook(s) {unknown}; wsss.experiments.shapes knows "
                     f"{list(shapes.NOTEBOOKS)}")
    from .train import resolve_device
    devices = {}
    for name in names:
        try:
            devices[name] = str(resolve_device(str(params[name].get("device", "auto"))))
        except ValueError as err:
            parser.error(f"--dry-run: {err}")
    for name in names:
        profile, device = str(params[name].get("profile", "full")), devices[name]
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
    parser = argparse.ArgumentParser(prog="python -m wsss.run_notebooks",
                                     description="Run the notebooks headless with papermill.",
                                     epilog="Exit status: 0 every notebook ran, 1 one failed, 2 a usage error "
                                            "(nothing was run).")
    parser.add_argument("names", nargs="*", help=f"notebook names (default: all, in the order {', '.join(ORDER)})")
    parser.add_argument("-p", "--parameter", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
                        help="set a parameter: NAME for every notebook run, NOTEBOOK.NAME for that notebook only "
                             "(e.g. -p asdt.T 150); repeat for several. A notebook whose parameters cell lacks "
                             "NAME stops the run before anything executes")
    parser.add_argument("--keep-going", action="store_true",
                        help="when a notebook fails, run the rest anyway (default: stop at the first failure); "
                             "the summary at the end says which failed, and the exit status is 1")
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
    by_name = split_parameters(args.parameter, notebooks, [p.stem for p in folder.glob("*.ipynb")], parser)
    if args.dry_run:
        return dry_run([nb.stem for nb in notebooks], by_name, parser)
    if any("out_dir" in params for params in by_name.values()):
        parser.error("give --output-dir or --publish instead of -p out_dir")
    if args.publish and args.parameter:
        parser.error(f"--publish runs each notebook as its source stands; -p {' '.join(k for k, _ in args.parameter)} "
                     "would add a cell that the .py source lacks: change the default in notebooks/<name>.py's "
                     "parameters cell instead")
    problems = [p for p in map(pair_difference, notebooks) if p]
    if problems:
        parser.error("\n  ".join(["a notebook and its .py source differ; nothing was run:"] + problems))
    # the profile each kernel will run (WSSS_PROFILE overrides the parameter inside the notebook, too)
    profiles = {nb.stem: str(os.environ.get("WSSS_PROFILE") or by_name[nb.stem].get("profile") or committed_profile(nb))
                for nb in notebooks}
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
    rows = [{"name": nb.stem, "result": "not run", "seconds": None, "output": None} for nb in notebooks]
    try:
        for i, nb in enumerate(notebooks):
            if not _run_one(nb, rows[i], args, by_name[nb.stem], profiles, notebooks[i:], folder, log):
                if not args.keep_going:
                    later = [r["name"] for r in rows[i + 1:]]
                    if later:
                        print(f"stopped at the first failure; not run: {', '.join(later)} (--keep-going runs the rest)",
                              flush=True)
                    break
    finally:                        # also when interrupted: say what ran
        logger.removeHandler(handler)   # (a second main() in this process logs once, to its own stdout)
        print("\n" + summary(rows), flush=True)
    return 1 if any(r["result"] == "FAILED" for r in rows) else 0


def _run_one(nb: Path, row: dict, args: argparse.Namespace, params: dict, profiles: dict[str, str],
             rest: list[Path], folder: Path, log: _Elapsed) -> bool:
    """Run one notebook of :func:`main`, filling its summary ``row``; False if it failed (the error printed)."""
    profile = profiles[nb.stem]
    if args.publish:
        target, out = repo_root(), nb
    else:
        target = Path(args.output_dir) if args.output_dir else run_folder(nb.stem, profile)
        out = target / nb.name
    out.parent.mkdir(parents=True, exist_ok=True)
    scratch = run_folder(nb.stem, profile)
    start = time.perf_counter()
    print(f"running {nb.name} with {params or 'its defaults'} -> {out}", flush=True)
    print(estimate_line(nb.stem, [(other.stem, profiles[other.stem]) for other in rest],
                        extra=bool(set(params) - {"profile", "device", "seed"})), flush=True)
    try:
        # the output folder reaches the kernel through its environment, not as an injected parameter, so a
        # published notebook carries no machine's path (and its second cell stays the validation cell)
        saved = {k: os.environ.get(k) for k in ("WSSS_OUT_DIR", "WSSS_PUBLISH")}
        os.environ["WSSS_OUT_DIR"] = str(target)
        os.environ["WSSS_PUBLISH"] = "1" if args.publish else "0"   # output_dirs lets only a publish write over committed files
        try:
            run(nb, out, params, cwd=folder, log=log, scratch=scratch)
            if args.publish and write_twin(nb):
                print(f"  {nb.with_suffix('.py').name} rewritten to match the published notebook", flush=True)
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
    except Exception as err:        # the notebook failed (a cell raised, or the kernel died): named, then go on or stop
        failed = scratch / f"{out.stem}.failed.ipynb"
        row.update(result="FAILED", seconds=time.perf_counter() - start, output=failed if failed.exists() else None)
        if isinstance(err, papermill.PapermillExecutionError):     # its text is the cell's traceback
            print(err, file=sys.stderr, flush=True)
            what = f"{err.ename}: {err.evalue} (in cell [{err.exec_count}])"
        else:
            what = f"{type(err).__name__}: {err}"
        print(f"  {nb.name}: FAILED after {row['seconds']:.0f} s: {what}", file=sys.stderr, flush=True)
        return False
    except BaseException:           # interrupted (Ctrl-C): the summary still says what ran
        row.update(result="stopped", seconds=time.perf_counter() - start)
        raise
    row.update(result="ok", seconds=time.perf_counter() - start, output=out)
    print(f"  {nb.name}: done in {row['seconds']:.0f} s", flush=True)
    return True


if __name__ == "__main__":
    sys.exit(main())
