"""Compare a run's results with the committed ones: every number that changed, with the seeds' spread.

    python -m wsss.compare asdt                  # runs/asdt-quick/results/asdt-quick.json vs results/asdt-quick.json
    python -m wsss.compare basics --profile full
    python -m wsss.compare NEW.json OLD.json

Timings, the machine's description and other bookkeeping are left out; a row measured over several
seeds shows its standard deviation beside the change, so a reader can tell a real change from noise.
It says "identical" when every number matches, and otherwise names the first difference; before the
numbers it says whether the two runs saw the same benchmark (its fingerprint), the same processor and
the reproducible mode (``meta``), so a reader can tell a different benchmark from a different machine.
Exit status: 0 identical, 1 different.
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


def context(new_meta: dict, old_meta: dict) -> list[str]:
    """Lines saying where the two runs differ in what they ran on: benchmark, processor, code paths."""
    lines = []
    data_new, data_old = new_meta.get("data", {}), old_meta.get("data", {})
    if data_new.get("sha256") and data_old.get("sha256"):
        same = data_new["sha256"] == data_old["sha256"]
        lines.append(f"benchmark: {'the same' if same else 'DIFFERENT'} (fingerprint {data_new['sha256'][:16]}"
                     + ("" if same else f" vs {data_old['sha256'][:16]}") + ")")
    else:
        lines.append("benchmark: no fingerprint in " + ("either json" if not (data_new or data_old) else
                                                          "the committed json" if not data_old else "this run's json"))
    rep_new, rep_old = new_meta.get("reproducible", {}), old_meta.get("reproducible", {})
    for what, key in (("processor", "processor"), ("ATen CPU path", "aten_capability"), ("oneDNN ISA", "onednn_isa")):
        a, b = rep_new.get(key), rep_old.get(key)
        lines.append(f"{what}: {a or '?'}" + ("" if a == b else f" (committed: {b or 'not recorded'})"))
    on = lambda r: "on" if r.get("enabled") else "off" if r else "not recorded"  # noqa: E731
    lines.append(f"reproducible mode: {on(rep_new)}" + ("" if on(rep_new) == on(rep_old) else f" (committed: {on(rep_old)})"))
    for key in ("torch", "python"):
        if new_meta.get(key) != old_meta.get(key):
            lines.append(f"{key}: {new_meta.get(key)} (committed: {old_meta.get(key)})")
    return lines


def _plain(x) -> str:
    return "absent" if x is None else f"{x:.6g}"


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
        known = sorted(p.stem for p in (repo_root() / "notebooks").glob("*.ipynb"))
        if args.new not in known:
            parser.error(f"no notebook named {args.new!r}; there are {known} (or give a results .json)")
        name = f"{args.new}-{args.profile}.json"
        new = run_folder(args.new, args.profile) / "results" / name
        old = Path(args.old) if args.old else repo_root() / "results" / name
    for path in (new, old):
        if not path.is_file():
            parser.error(f"{path} does not exist (run the notebook first: python -m wsss.run_notebooks {args.new})")
    loaded = []
    for path in (new, old):
        try:
            loaded.append(json.loads(path.read_text(encoding="utf-8")))
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            parser.error(f"{path} is not a complete results json ({err}); rerun the notebook that writes it")
    new_json, old_json = loaded
    rows = differences(new_json, old_json)
    compared = sum(1 for _ in _leaves(new_json))
    print(f"{new}\n  vs {old}")
    for line in context(new_json.get("meta", {}), old_json.get("meta", {})):
        print(f"  {line}")
    if not rows:
        print(f"  identical: all {compared} numbers match")
        return 0
    print(f"  {len(rows)} of {compared} numbers differ; the first: {rows[0]['what']} "
          f"({_plain(rows[0]['committed'])} committed, {_plain(rows[0]['this run'])} this run)")
    width = max([len(r["what"]) for r in rows] + [4])
    if rows:
        print(f"  {'what':<{width}}  {'committed':>10}  {'this run':>10}  {'change':>9}  seeds' std")
    for r in rows:
        print(f"  {r['what']:<{width}}  {_fmt(r['committed']):>10}  {_fmt(r['this run']):>10}  {_fmt(r['change']):>9}  "
              f"{_fmt(r['seeds' + chr(39) + ' std'])}")
    return 1


if __name__ == "__main__":
    sys.exit(main())
