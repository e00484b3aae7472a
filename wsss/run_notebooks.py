"""Execute every notebook in notebooks/ headless with papermill, in place, and tidy their metadata.

    python -m wsss.run_notebooks                      # all notebooks, quick profile
    python -m wsss.run_notebooks basics -p profile full -p device cuda

The executed notebooks keep their outputs (so they read well without running); figures go to
figures/ and numbers to results/. papermill's per-cell timing metadata is removed so diffs stay small.
"""
from __future__ import annotations

import argparse
import ast
import sys
import time
from pathlib import Path

import nbformat
import papermill

from .notebook import repo_root


def tidy(path: Path) -> None:
    """Drop papermill's per-cell metadata (timings, status) and execution stamps from a notebook."""
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        cell.metadata.pop("papermill", None)
        cell.metadata.pop("execution", None)
    nb.metadata.pop("papermill", None)
    nbformat.write(nb, path)


def _value(text: str):
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run the notebooks headless with papermill.")
    parser.add_argument("names", nargs="*", help="notebook names (default: all), e.g. basics asdt")
    parser.add_argument("-p", "--parameter", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
                        help="override a parameter of every notebook run")
    parser.add_argument("--output-dir", default=None, help="write executed copies here instead of in place")
    args = parser.parse_args(argv)
    folder = repo_root() / "notebooks"
    notebooks = sorted(folder.glob("*.ipynb"))
    if args.names:
        known = {p.stem: p for p in notebooks}
        missing = [n for n in args.names if n not in known]
        if missing:
            parser.error(f"no notebook named {missing} in {folder}; there are {sorted(known)}")
        notebooks = [known[n] for n in args.names]
    params = {k: _value(v) for k, v in args.parameter}
    for nb in notebooks:
        out = Path(args.output_dir) / nb.name if args.output_dir else nb
        out.parent.mkdir(parents=True, exist_ok=True)
        start = time.perf_counter()
        print(f"running {nb.name} with {params or 'its defaults'} ...", flush=True)
        papermill.execute_notebook(str(nb), str(out), parameters=params, cwd=str(folder), kernel_name="python3")
        tidy(out)
        print(f"  {nb.name}: done in {time.perf_counter() - start:.0f} s -> {out}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
