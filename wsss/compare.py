"""Compare a run's results with the committed ones: every number that changed, with the seeds' spread.

    python -m wsss.compare asdt                  # runs/asdt-quick/results/asdt-quick.json vs results/asdt-quick.json
    python -m wsss.compare basics --profile full
    python -m wsss.compare NEW.json OLD.json
    python -m wsss.compare asdt --strict         # CI: any changed number fails, not only those beyond the spread

Timings, the machine's description and other bookkeeping are left out; a row measured over several
seeds shows its standard deviation beside the change, so a reader can tell a real change from noise.
It says "identical" when every number matches, and otherwise names the first difference; before the
numbers it says whether the two runs saw the same benchmark (its fingerprint), the same processor and
the reproducible mode (``meta``), so a reader can tell a different benchmark from a different machine.
Fractions (mIoU, gaps, accuracies: any non-integer number within [-1, 1] in both runs, losses and
milliseconds aside) are printed in % with one decimal as the notebooks print them, their changes and
spreads in percentage points (pp); other numbers (counts, steps, IoUs a notebook already wrote in %) as
they are.

A number *moved* when it changed by more than ``--spread-factor`` (default 1) times its seeds' spread:
the larger of the two runs' seed standard deviations (``miou_std`` of its row). A number without a
spread (one run, no seeds) cannot be told from noise: it is listed, and moves only under ``--strict``,
which also counts a number found in one json only.
Exit status: 0 nothing moved (identical, or every change within the seeds' spread), 1 a number moved,
2 a usage error (a bad option, an unknown notebook, a missing or broken json).
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
        yield path, node, spread          # an int stays an int: a count, never printed in %


def differences(new: dict, old: dict, *, tolerance: float = 1e-9) -> list[dict]:
    """The numbers that differ between two results jsons (or exist in only one), in file order. A row's
    "seeds' std" is the larger of the two runs' (None where neither has one)."""
    old_values = {p: (v, s) for p, v, s in _leaves(old)}
    rows, seen = [], set()
    for path, value, spread in _leaves(new):
        seen.add(path)
        before, spread_before = old_values.get(path, (None, None))
        if before is None or abs(value - before) > tolerance:
            spreads = [s for s in (spread, spread_before) if s is not None]
            rows.append({"what": path, "committed": before, "this run": value,
                         "change": None if before is None else value - before,
                         "seeds' std": max(spreads) if spreads else None})
    rows += [{"what": p, "committed": v, "this run": None, "change": None, "seeds' std": s}
             for p, (v, s) in old_values.items() if p not in seen]
    return rows


def moved(row: dict, *, factor: float = 1.0, strict: bool = False) -> bool:
    """Whether a row of :func:`differences` moved: its change exceeds ``factor`` times its seeds' std; a
    number without a std, or found in one json only, moves only when ``strict``."""
    if row["change"] is None or row["seeds' std"] is None:
        return strict
    return abs(row["change"]) > factor * row["seeds' std"]


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


_NOT_FRACTIONS = ("loss", "_ms")     # numbers in [0, 1] that are not fractions: losses, milliseconds


def is_fraction(row: dict) -> bool:
    """Whether the row's numbers are fractions, printed in %: non-integers within [-1, 1] in both runs
    (mIoU, gaps, accuracies), losses and milliseconds aside. A number stored as an int is a count."""
    values = [v for v in (row["committed"], row["this run"]) if v is not None]
    return (not any(h in row["what"] for h in _NOT_FRACTIONS) and all(isinstance(v, float) for v in values)
            and all(-1.0 <= v <= 1.0 for v in values))


def _value(x, fraction: bool) -> str:
    """A number as the notebooks print it: a fraction in % with one decimal, any other as it is."""
    if x is None:
        return "absent"
    return f"{100 * x:.1f}%" if fraction else f"{x:.6g}"


def _delta(x, fraction: bool, sign: bool = True) -> str:
    """A change or spread: percentage points with one decimal for fractions, else 4 significant digits."""
    if x is None:
        return "-"
    if fraction:
        return f"{100 * x:{'+' if sign else ''}.1f} pp"
    return f"{x:{'+' if sign else ''}.4g}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m wsss.compare", description=__doc__.split("\n\n")[0],
        epilog="Exit status: 0 nothing moved beyond the seeds' spread, 1 a number moved, 2 a usage error. "
               "Fractions are printed in % (one decimal), their changes in percentage points (pp).")
    parser.add_argument("new", help="a notebook name (compares runs/<name>-<profile>/results/<name>-<profile>.json, "
                                    "written by python -m wsss.run_notebooks <name>), or a results .json")
    parser.add_argument("old", nargs="?", help="the results .json to compare with (default: the committed "
                                               "results/<name>-<profile>.json)")
    parser.add_argument("--profile", default="quick",
                        help="with a notebook name: the profile whose run and committed results are compared "
                             "(default quick)")
    parser.add_argument("--spread-factor", type=float, default=1.0, metavar="K",
                        help="a number moved when its change exceeds K times the seeds' standard deviation "
                             "(default 1)")
    parser.add_argument("--strict", action="store_true",
                        help="also count as moved a changed number that has no seeds' spread (one run) and a "
                             "number found in only one of the jsons: exit 1 on any difference")
    args = parser.parse_args(argv)
    if not args.spread_factor >= 0:
        parser.error(f"--spread-factor {args.spread_factor} must be >= 0")
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
            parser.error(f"{path} does not exist" + ("" if args.new.endswith(".json") or path == old else
                                                      f" (run the notebook first: python -m wsss.run_notebooks {args.new})"))
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
    first, frac = rows[0], is_fraction(rows[0])
    print(f"  {len(rows)} of {compared} numbers differ; the first: {first['what']} "
          f"({_value(first['committed'], frac)} committed, {_value(first['this run'], frac)} this run)")
    width = max([len(r["what"]) for r in rows] + [4])
    print(f"  {'what':<{width}}  {'committed':>10}  {'this run':>10}  {'change':>10}  {'seeds' + chr(39) + ' std':>10}  moved")
    verdict = {True: "MOVED", False: ""}
    moves = []
    for r in rows:
        frac, m = is_fraction(r), moved(r, factor=args.spread_factor, strict=args.strict)
        if m:
            moves.append(r)
        note = verdict[m] or ("no spread" if r["change"] is not None and r["seeds' std"] is None else
                              "one json only" if r["change"] is None else "within")
        print(f"  {r['what']:<{width}}  {_value(r['committed'], frac):>10}  {_value(r['this run'], frac):>10}  "
              f"{_delta(r['change'], frac):>10}  {_delta(r['seeds' + chr(39) + ' std'], frac, sign=False):>10}  {note}")
    rule = (f"change > {args.spread_factor:g} x the seeds' std" + ("; --strict: any change without a spread, "
            "and a number in one json only" if args.strict else "; a number without a spread counts only with --strict"))
    if moves:
        print(f"  {len(moves)} of {len(rows)} differing numbers moved beyond the seeds' spread ({rule}): exit 1")
        return 1
    print(f"  none moved beyond the seeds' spread ({rule}): exit 0")
    return 0


if __name__ == "__main__":
    sys.exit(main())
