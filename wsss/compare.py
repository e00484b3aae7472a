"""Compare a run's results with the committed ones: every number that changed, with the seeds' spread.

    python -m wsss.compare asdt                  # runs/asdt-quick/results/asdt-quick.json vs results/asdt-quick.json
    python -m wsss.compare basics --profile full
    python -m wsss.compare NEW.json OLD.json

Timings, the machine's description and other bookkeeping are left out; a row measured over several
seeds shows its standard deviation beside the change, so a reader can tell a real change from noise.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .notebook import repo_root, run_folder

SKIP = ("meta", "seconds", "wall_time", "timing", "images_per_s", "parameters", "settings", "written")


def _leaves(node, path: str = "", spread: float | None = None):
    """(path, number, seeds' std or None) for every number in a results json, bookkeeping left out."""
    if isinstance(node, dict):
        spread = node.get("miou_std", spread)
        for key, value in node.items():
            if not any(s in str(key) for s in SKIP) and key != "miou_std":
                yield from _leaves(value, f"{path}.{key}" if path else str(key), spread)
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _leaves(value, f"{path}[{i}]", spread)
    elif isinstance(node, (int, float)) and not isinstance(node, bool):
        yield path, float(node), spread


def differences(new: dict, old: dict, *, tolerance: float = 1e-9) -> list[dict]:
    """The numbers that differ between two results jsons (or exist in only one), in file order."""
    old_values = {p: (v, s) for p, v, s in _leaves(old)}
    rows, seen = [], set()
    for path, value, spread in _leaves(new):
        seen.add(path)
        before = old_values.get(path, (None, None))[0]
        if before is None or abs(value - before) > tolerance:
            rows.append({"what": path, "committed": before, "this run": value,
                         "change": None if before is None else value - before, "seeds' std": spread})
    rows += [{"what": p, "committed": v, "this run": None, "change": None, "seeds' std": s}
             for p, (v, s) in old_values.items() if p not in seen]
    return rows


def _fmt(x) -> str:
    return "-" if x is None else f"{x:+.4f}" if isinstance(x, float) and abs(x) < 1 else f"{x:.4g}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("new", help="a notebook name (its run folder's results) or a results json")
    parser.add_argument("old", nargs="?", help="the results json to compare with (default: the committed one)")
    parser.add_argument("--profile", default="quick")
    args = parser.parse_args(argv)
    if args.new.endswith(".json"):
        new = Path(args.new)
        old = Path(args.old) if args.old else repo_root() / "results" / new.name
    else:
        name = f"{args.new}-{args.profile}.json"
        new = run_folder(args.new, args.profile) / "results" / name
        old = Path(args.old) if args.old else repo_root() / "results" / name
    for path in (new, old):
        if not path.is_file():
            parser.error(f"{path} does not exist (run the notebook first: python -m wsss.run_notebooks {args.new})")
    rows = differences(json.loads(new.read_text()), json.loads(old.read_text()))
    print(f"{new}\n  vs {old}: {len(rows)} numbers differ")
    width = max([len(r["what"]) for r in rows] + [4])
    if rows:
        print(f"  {'what':<{width}}  {'committed':>10}  {'this run':>10}  {'change':>9}  seeds' std")
    for r in rows:
        print(f"  {r['what']:<{width}}  {_fmt(r['committed']):>10}  {_fmt(r['this run']):>10}  {_fmt(r['change']):>9}  "
              f"{_fmt(r['seeds' + chr(39) + ' std'])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
