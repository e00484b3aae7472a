"""Each notebook and its plain-text twin: ``notebooks/<name>.ipynb`` (executed outputs, what readers see)
and ``notebooks/<name>.py`` (the jupytext ``py:percent`` source, what reviewers read and editors edit).

The pairing is declared once in ``jupytext.toml`` at the repository root; JupyterLab keeps both files
up to date through jupytext's contents manager, a text editor changes only the ``.py``, and
``jupytext --sync notebooks/<name>.ipynb`` brings the other file along. The test suite and
``run_notebooks --publish`` refuse a pair whose cells differ (:func:`pair_difference`).

    python -m wsss.pairs            # prints each pair's state; exit 1 if any is out of sync
"""
from __future__ import annotations

import sys
from pathlib import Path

import jupytext
import nbformat
from jupytext.combine import combine_inputs_with_outputs

FORMAT = "py:percent"


def twin(notebook: Path) -> Path:
    """The paired source of ``notebooks/<name>.ipynb``: ``notebooks/<name>.py``."""
    return Path(notebook).with_suffix(".py")


def _cells(nb) -> list[tuple[str, str, tuple]]:
    """What the pair must agree on: each cell's type, source and tags (an empty tag list = none)."""
    return [(c.cell_type, c.source, tuple(c.metadata.get("tags") or ())) for c in nb.cells]


def _sync_hint(notebook: Path) -> str:
    return f"run `jupytext --sync notebooks/{notebook.name}` (the file edited last wins)"


def pair_difference(notebook: Path) -> str | None:
    """None when ``notebook`` and its ``.py`` twin hold the same cells (type, source, tags); otherwise one
    message naming the notebook, the first differing cell and the command that syncs the pair."""
    notebook = Path(notebook)
    source = twin(notebook)
    if not source.exists():
        return (f"{notebook.name} has no paired source {source.name}; create it with "
                f"`jupytext --set-formats ipynb,{FORMAT} notebooks/{notebook.name}`")
    # the .ipynb through the same text form as its twin: what the text format cannot hold (a cell's trailing
    # newline, which JupyterLab keeps and jupytext drops) is not a difference
    a = _cells(jupytext.reads(jupytext.writes(nbformat.read(notebook, as_version=4), fmt=FORMAT), fmt=FORMAT))
    b = _cells(jupytext.read(source))
    if a == b:
        return None
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            what = ("type differs" if x[0] != y[0] else "source differs" if x[1] != y[1] else "tags differ")
            detail = what
            if what == "source differs":
                la, lb = x[1].split("\n"), y[1].split("\n")
                n = next((k for k, (u, v) in enumerate(zip(la, lb)) if u != v), min(len(la), len(lb)))
                shown = lambda lines: repr(lines[n][:60]) if n < len(lines) else "nothing"  # noqa: E731
                detail += f" at its line {n + 1}: {shown(la)} in the .ipynb, {shown(lb)} in the .py"
            return f"{notebook.name} and {source.name} are out of sync: cell {i + 1} ({detail}); {_sync_hint(notebook)}"
    return (f"{notebook.name} has {len(a)} cells but {source.name} has {len(b)}; {_sync_hint(notebook)}")


def source_notebook(notebook: Path):
    """The notebook to execute: the cells of the ``.py`` source, with the ``.ipynb``'s notebook metadata
    (kernelspec) and cell ids kept so a publish does not churn them; no outputs."""
    notebook = Path(notebook)
    text_nb = jupytext.read(twin(notebook))
    paired = nbformat.read(notebook, as_version=4)
    nb = combine_inputs_with_outputs(text_nb, paired, fmt=FORMAT)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    return nb


def write_twin(notebook: Path) -> bool:
    """Rewrite the ``.py`` twin from ``notebook`` if its text would change; True when it was rewritten.
    Its modification time is refreshed either way, so jupytext sees the source as the newer file."""
    notebook = Path(notebook)
    text = jupytext.writes(nbformat.read(notebook, as_version=4), fmt=FORMAT)
    source = twin(notebook)
    changed = not source.exists() or source.read_text(encoding="utf-8") != text
    if changed:
        source.write_text(text, encoding="utf-8")
    else:
        source.touch()
    return changed


def main(argv: list[str] | None = None) -> int:
    from .notebook import repo_root
    folder = repo_root() / "notebooks"
    bad = 0
    for path in sorted(folder.glob("*.ipynb")):
        problem = pair_difference(path)
        print(f"{path.name}: {problem or 'in sync with ' + twin(path).name}")
        bad += problem is not None
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
