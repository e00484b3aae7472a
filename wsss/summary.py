"""One page that says how every paper's claim fared on the miniature: ``python -m wsss.summary``.

A teacher's overview: the six notebooks each end in tables and verdicts, but nobody should have to
open six notebooks (or ten screens of README prose) to see, side by side, which claims held, which
did not, which the miniature cannot test and why, and what each run cost. This module reads the
committed results jsons (``results/<notebook>-quick.json``) and writes that overview as Markdown:

* first the benchmark's own rows from ``basics``: the floor (every pixel background), CAM, CAM + CRF
  and the fully supervised network, in percent;
* then one row per paper notebook (asdt, ssdd, tscd, seminar, rml): the supervision, the claim in one
  line, the paper's gain, our gain (mean +- std over n seeds), the verdict word (one of
  :data:`wsss.records.VERDICTS`), how many of the notebook's verdict entries got each word, the
  headroom (floor / baseline / ceiling, testable or not), profile and processor, wall time, and a
  link to the notebook; below the table, the reasons behind every "not testable here";
* in ``results/SUMMARY.md`` only: every paper notebook's closing table (every claim it judged, the paper's
  numbers, ours, the verdict and why), as stored in its json under "closing_table".

Every number comes from the jsons; the module hard-codes only the claims' text and the papers'
numbers (from the notebooks' ``PAPER_*`` tables). A field a json lacks (it was written before the
notebooks stored ``headroom`` or ``verdicts``) reads "not recorded (published before ...)"; it never
stops the summary.

The same text goes to ``results/SUMMARY.md`` and into the README between the markers
``<!-- summary:start -->`` and ``<!-- summary:end -->``, so the README's numbers cannot drift from the
results: ``python -m wsss.summary --check`` (and a test) fails when either is stale.

    python -m wsss.summary            # write results/SUMMARY.md and the README block
    python -m wsss.summary --check    # exit 1 naming what is stale, 0 when both are up to date
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from collections import Counter
from pathlib import Path

from .records import VERDICTS, format_miou, mean_std

START, END = "<!-- summary:start -->", "<!-- summary:end -->"
SUMMARY_NAME = "SUMMARY.md"
PROFILE = "quick"                      # the committed runs

NOT_RECORDED = "not recorded"
BENCHMARK_NOTEBOOK = "basics"

# The papers: the only hand-written content of the summary. ``central``: the start of the claim text of
# the notebook's verdict entry for the central claim (the first matching entry is used); ``rows``: for
# an ordering entry, the two rows whose gap is "our gain"; ``paper``: the paper's numbers (percent) of
# those two rows as the paper prints them, from the notebook's PAPER_* table.
PAPERS = {
    "asdt": {"title": "ASDT", "supervision": "image tags",
             "claim": "Alternating two teachers beats one teacher and naive fusion (Table 4, student P^s + CRF)",
             "central": "Table 4, P^s", "rows": ("Alternative dual teacher", "Single class-teacher"),
             "paper": ("62.6", "63.8")},
    "ssdd": {"title": "SSDD", "supervision": "image tags",
             "claim": "SSDD above PSA (Table 1, seg + CRF)",
             "central": "Table 1, SSDD above PSA", "paper": ("61.7", "64.9")},
    "tscd": {"title": "TSCD", "supervision": "image tags",
             "claim": "TSCD above AFA (Table 1, seg)",
             "central": "Table 1, TSCD above AFA", "paper": ("63.8", "65.0")},
    "seminar": {"title": "Seminar learning", "supervision": "clicks",
                "claim": "All four losses above pCE alone (Table 3, ResNet-101)",
                "central": "Table 3, all four above pCE", "paper": ("54.70", "72.51")},
    "rml": {"title": "RML", "supervision": "image tags",
            "claim": "RML above its baseline (Table 1)",
            "central": "Table 1, RML above the baseline", "paper": ("50.3", "64.9")},
}


class MarkersMissing(ValueError):
    """The README has no (or a broken) ``<!-- summary:start -->`` / ``<!-- summary:end -->`` pair."""


# ---------------------------------------------------------------- reading the jsons
def _published_before(feature: str) -> str:
    return f"{NOT_RECORDED} (published before `{feature}`)"


def _load(path: Path) -> dict | None:
    """A results json, or None when the notebook has not been run (no file)."""
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not valid JSON ({err})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object at the top level")
    return data


def _seeds(value) -> list[float] | None:
    """A row's per-seed fractions from a float, a list or a miou_record dict; None when absent."""
    if value is None:
        return None
    if isinstance(value, dict):
        value = value.get("miou_seeds") or value.get("miou")
        if value is None:
            return None
    if isinstance(value, (int, float)):
        return [float(value)]
    if isinstance(value, (list, tuple)):
        values = [float(v) for v in value if isinstance(v, (int, float))]
        return values or None
    return None


def _mean(value) -> float | None:
    seeds = _seeds(value)
    return None if seeds is None else mean_std(seeds)[0]


def _verdict_entries(data: dict) -> list[dict] | None:
    """The json's verdict entries as a list of dicts (None when the json has no "verdicts"). Accepts the
    current list of :func:`wsss.records.verdict_entry` dicts, and an older ``{claim: word}`` or
    ``{claim: entry}`` mapping."""
    verdicts = data.get("verdicts")
    if verdicts is None:
        return None
    if isinstance(verdicts, dict):
        verdicts = [{"claim": claim, **(v if isinstance(v, dict) else {"verdict": v})} for claim, v in verdicts.items()]
    return [e for e in verdicts if isinstance(e, dict)]


def _wall_seconds(data: dict) -> float | None:
    meta = data.get("meta") or {}
    for source in (data, meta):
        for key in ("wall_seconds", "wall_time_s"):
            if isinstance(source.get(key), (int, float)):
                return float(source[key])
    return None


def _run_cell(data: dict) -> str:
    """"quick; Intel(R) Xeon(R) Processor, 2 threads" from the json's meta."""
    meta = data.get("meta") or {}
    profile = meta.get("profile") or data.get("profile") or NOT_RECORDED
    repro = meta.get("reproducible") if isinstance(meta.get("reproducible"), dict) else {}
    processor = repro.get("processor") or meta.get("processor") or meta.get("hardware")
    if not processor:
        return f"{profile}; processor {NOT_RECORDED}"
    threads = repro.get("torch_threads") or meta.get("cpu_threads")
    device = meta.get("device")
    text = f"{profile}; {processor}"
    if device and device != "cpu":
        text += f" ({device})"
    elif threads:
        text += f", {threads} thread{'' if threads == 1 else 's'}"
    return text


def _wall_cell(data: dict) -> str:
    seconds = _wall_seconds(data)
    return NOT_RECORDED if seconds is None else f"{seconds / 60:.1f} min"


# ---------------------------------------------------------------- formatting
def _pct(x: float | None) -> str:
    return NOT_RECORDED if x is None else f"{100 * x:.1f}"


def _cell(text) -> str:
    """A Markdown table cell: pipes escaped, no line breaks."""
    return str(text).replace("|", "\\|").replace("\n", " ")


def _table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _row_miou(value) -> str:
    seeds = _seeds(value)
    if seeds is None:
        return NOT_RECORDED
    try:
        return format_miou(seeds)
    except ValueError:
        return NOT_RECORDED


def _central_entry(entries: list[dict], prefix: str) -> dict | None:
    for entry in entries:
        if str(entry.get("claim", "")).startswith(prefix):
            return entry
    return None


def _our_gain(entry: dict, rows: tuple[str, str] | None) -> str:
    """"+0.5 +- 2.5 (3 seeds)": the gap between the claim's two rows (points), +- the std the verdict
    was judged by (the seeds' std on the notebook's central rows)."""
    runs = ()
    if "ours" in entry and rows is not None:                      # an ordering entry
        ours, runs_of = entry.get("ours") or {}, entry.get("runs") or {}
        a, b = rows
        if ours.get(a) is None or ours.get(b) is None:
            return f"{NOT_RECORDED} (no {a} / {b} rows in the entry)"
        gap = ours[a] - ours[b]
        runs = tuple(r for r in (runs_of.get(a), runs_of.get(b)) if r)
    else:
        gap = entry.get("gap")
        if gap is None and entry.get("mean_a") is not None and entry.get("mean_b") is not None:
            gap = entry["mean_a"] - entry["mean_b"]
        if gap is None:
            return NOT_RECORDED
        runs = tuple(r for r in (entry.get("runs_a"), entry.get("runs_b")) if r)
    std = entry.get("std")
    text = f"{100 * gap:+.1f}"
    if std is not None:
        text += f" +- {100 * std:.1f}"
    if runs:
        n = min(runs)
        seeds = f"{n} seed{'' if n == 1 else 's'}" if len(set(runs)) == 1 else f"{' vs '.join(map(str, runs))} seeds"
        text += f" ({seeds})"
    if std is None:
        text += " (no seed std)"
    return text


def _counts_cell(entries: list[dict]) -> str:
    counts = Counter(e.get("verdict") for e in entries)
    text = " / ".join(str(counts.get(word, 0)) for word in VERDICTS)
    other = sum(n for word, n in counts.items() if word not in VERDICTS)
    return text + (f" (+{other} other)" if other else "")


def _headroom_cell(h) -> str:
    if not isinstance(h, dict):
        return _published_before("headroom")
    floor, base, ceil = (_mean(h.get(k)) for k in ("floor", "baseline", "ceiling"))
    text = f"{_pct(floor)} / {_pct(base)} / {_pct(ceil)}"
    testable = h.get("testable")
    return text + ("" if testable is None else ": testable" if testable else ": not testable")


def _link(name: str, results_dir: Path, link_base: Path) -> str:
    target = results_dir.parent / "notebooks" / f"{name}.ipynb"
    return Path(os.path.relpath(target.resolve(), link_base.resolve())).as_posix()


# ---------------------------------------------------------------- the document
def _benchmark_section(results_dir: Path, link_base: Path, profile: str) -> list[str]:
    name = BENCHMARK_NOTEBOOK
    file = f"{name}-{profile}.json"
    data = _load(results_dir / file)
    link = f"[{name}]({_link(name, results_dir, link_base)})"
    if data is None:
        return [f"**The benchmark** ({link}): not run (no `results/{file}`).", ""]
    h = data.get("headroom")
    floor = _pct(_mean(h.get("floor"))) if isinstance(h, dict) else _published_before("headroom")
    rows = [["floor: every pixel background", floor],
            ["CAM (image tags)", _row_miou(data.get("cam_miou"))],
            ["CAM + CRF", _row_miou(data.get("cam_crf_miou"))],
            ["fully supervised (full masks)", _row_miou(data.get("fully_supervised_miou"))]]
    return [f"**The benchmark** ({link}; {_run_cell(data)}; {_wall_cell(data)}): what the miniature allows, "
            "mIoU in percent on its validation set.", "",
            _table(["row", "mIoU (%)"], rows), ""]


def _closing_section(results_dir: Path, link_base: Path, profile: str) -> list[str]:
    """Every claim, notebook by notebook: each paper notebook's closing table as stored in its json."""
    lines = ["## Every claim, notebook by notebook", "",
             "Each paper notebook's closing table, as stored in its results json (\"closing_table\"): the first row is "
             "the room, then one row per judged claim; ours is mean +- std (runs), in percent.", ""]
    for name, paper in PAPERS.items():
        data = _load(results_dir / f"{name}-{profile}.json")
        link = f"[{paper['title']}]({_link(name, results_dir, link_base)})"
        rows = None if data is None else data.get("closing_table")
        if data is None:
            lines += [f"**{link}**: not run.", ""]
        elif not rows:
            lines += [f"**{link}**: {_published_before('closing_table')}.", ""]
        else:
            lines += [f"**{link}**", "", _table(["claim", "paper", "ours", "verdict", "why"],
                                                [[r.get(k, "") for k in ("claim", "paper", "ours", "verdict", "why")]
                                                 for r in rows]), ""]
    return lines


def _paper_rows(results_dir: Path, link_base: Path, profile: str) -> tuple[list[list], list[str]]:
    rows, notes = [], []
    for name, paper in PAPERS.items():
        file = f"{name}-{profile}.json"
        data = _load(results_dir / file)
        link = f"[{paper['title']}]({_link(name, results_dir, link_base)})"
        low, high = paper["paper"]
        paper_gain = f"{float(high) - float(low):+.1f} ({low} -> {high})"
        head = [link, paper["supervision"], paper["claim"], paper_gain]
        if data is None:
            rows.append(head + [f"not run (no `results/{file}`)"] + [""] * 5)
            continue
        entries = _verdict_entries(data)
        if entries is None:
            gain = verdict = counts = _published_before("verdicts")
            legacy = {k: v for k, v in data.items() if k.endswith("_verdict") and v in VERDICTS}
            for key, word in legacy.items():
                notes.append(f"{paper['title']}: the json's older field `{key}` says \"{word}\", judged before the "
                             "headroom rule existed (the miniature's room was not checked); rerun the notebook for a verdict.")
        else:
            entry = _central_entry(entries, paper["central"])
            counts = _counts_cell(entries)
            if entry is None:
                gain = verdict = f"{NOT_RECORDED} (no verdict entry for the central claim)"
            else:
                gain = _our_gain(entry, paper.get("rows"))
                verdict = entry.get("verdict") if entry.get("verdict") in VERDICTS else NOT_RECORDED
                if verdict == VERDICTS[3] and entry.get("why"):
                    notes.append(f"{paper['title']}: {VERDICTS[3]}: {entry['why']}.")
        h = data.get("headroom")
        if isinstance(h, dict) and h.get("testable") is False and h.get("why") and \
                not any(n.startswith(f"{paper['title']}: {VERDICTS[3]}: {h['why']}") for n in notes):
            notes.append(f"{paper['title']}: the room: {h['why']}.")
        rows.append(head + [gain, verdict, counts, _headroom_cell(h), _run_cell(data), _wall_cell(data)])
    return rows, notes


def build_summary(results_dir, *, link_base=None, title: bool = True, profile: str = PROFILE) -> str:
    """The summary as Markdown, built from ``results_dir/<notebook>-<profile>.json``.

    link_base: the folder the document will live in, for the notebooks' relative links (default
    ``results_dir``, where SUMMARY.md goes; the README block passes the repository root). title: start
    with a "# ..." heading (SUMMARY.md) or not (the README block, inside the README's own sections).
    """
    results_dir = Path(results_dir)
    link_base = results_dir if link_base is None else Path(link_base)
    lines = ["# Results at a glance", ""] if title else []
    lines += [f"*Written by `python -m wsss.summary` from `results/*-{profile}.json`; do not edit by hand "
              "(`python -m wsss.summary --check` says when this is stale).*", ""]
    lines += _benchmark_section(results_dir, link_base, profile)
    rows, notes = _paper_rows(results_dir, link_base, profile)
    header = ["paper", "supervision", "claim", "paper's gain", "our gain", "verdict",
              "verdicts: " + " / ".join(VERDICTS), "room: floor / baseline / ceiling", "profile; processor", "wall time"]
    lines += ["**The papers**: each paper's central claim, judged on the miniature.", "", _table(header, rows), ""]
    lines += ["*our gain*: the gap between the claim's two rows in points, mean over the seeds +- the seeds' std on "
              "the notebook's central rows (the std the verdict is judged by: a gap under twice it is "
              "\"inconclusive\"). *verdicts*: how many of the notebook's verdict entries got each word. *room*: "
              "the claim's baseline between the floor and the same network trained on full masks; a claim is "
              "\"not testable here\" when the baseline sits in the lower half of the room or the room above it is "
              "smaller than the paper's gain.", ""]
    if notes:
        lines += ["Notes:", ""] + [f"* {n}" for n in notes] + [""]
    if title:                       # SUMMARY.md also lists every claim; the README block stays one table
        lines += _closing_section(results_dir, link_base, profile)
    return "\n".join(lines).rstrip("\n") + "\n"


# ---------------------------------------------------------------- writing it
def _write_if_changed(path: Path, text: str) -> bool:
    if path.is_file() and path.read_text() == text:
        return False
    path.write_text(text)
    return True


def write_summary(results_dir, out=None, *, profile: str = PROFILE) -> bool:
    """Write the summary to ``out`` (default ``results_dir/SUMMARY.md``), only if it changed; True if written."""
    results_dir = Path(results_dir)
    out = results_dir / SUMMARY_NAME if out is None else Path(out)
    return _write_if_changed(out, build_summary(results_dir, link_base=out.parent, profile=profile))


def _replace_block(text: str, block: str, name) -> str:
    """``text`` with everything between the markers replaced by ``block``; MarkersMissing naming ``name``."""
    starts, ends = text.count(START), text.count(END)
    if starts != 1 or ends != 1 or text.index(START) > text.index(END):
        problem = ("has no summary markers" if starts == ends == 0 else
                   f"has {starts} start and {ends} end markers (need one of each, start first)")
        raise MarkersMissing(f"{name} {problem}: add the two lines\n{START}\n{END}\nwhere the summary table "
                             "should go, then run python -m wsss.summary")
    before, rest = text.split(START, 1)
    after = rest.split(END, 1)[1]
    return f"{before}{START}\n{block.strip()}\n{END}{after}"


def update_readme(readme_path, table_markdown: str) -> bool:
    """Replace the text between ``<!-- summary:start -->`` and ``<!-- summary:end -->`` in the README with
    ``table_markdown``; write only if it changed (True if written). MarkersMissing (a ValueError naming
    the file) when the markers are missing or broken."""
    readme_path = Path(readme_path)
    text = readme_path.read_text()
    return _write_if_changed(readme_path, _replace_block(text, table_markdown, readme_path))


def readme_block(repo_root, *, profile: str = PROFILE) -> str:
    """What goes between the README's markers: the summary without its title, links from the root."""
    repo_root = Path(repo_root)
    return build_summary(repo_root / "results", link_base=repo_root, title=False, profile=profile)


def is_stale(repo_root=None, *, profile: str = PROFILE) -> list[str]:
    """Which of results/SUMMARY.md and the README block differ from what would be written now (empty
    when both are up to date). A README without the markers counts as stale."""
    if repo_root is None:
        from .notebook import repo_root as _root
        repo_root = _root()
    repo_root = Path(repo_root)
    results = repo_root / "results"
    stale = []
    summary = results / SUMMARY_NAME
    if not summary.is_file() or summary.read_text() != build_summary(results, link_base=results, profile=profile):
        stale.append(f"results/{SUMMARY_NAME}")
    readme = repo_root / "README.md"
    if not readme.is_file():
        stale.append("README.md (missing)")
    else:
        text = readme.read_text()
        try:
            if _replace_block(text, readme_block(repo_root, profile=profile), "README.md") != text:
                stale.append("README.md (summary block)")
        except MarkersMissing:
            stale.append(f"README.md (no summary block: the markers {START} / {END} are missing)")
    return stale


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m wsss.summary",
        description="Write results/SUMMARY.md and the README's summary block from the committed results jsons.")
    parser.add_argument("--check", action="store_true",
                        help="write nothing; exit 1 naming what is stale, 0 when both are up to date")
    parser.add_argument("--root", type=Path, default=None,
                        help="the repository root (default: the checkout holding this package)")
    parser.add_argument("--profile", default=PROFILE, help=f"which results/<notebook>-<profile>.json to read (default {PROFILE})")
    args = parser.parse_args(argv)
    if args.root is None:
        from .notebook import repo_root
        args.root = repo_root()
    root = args.root
    if args.check:
        stale = is_stale(root, profile=args.profile)
        if stale:
            print("stale: " + "; ".join(stale) + ". Run: python -m wsss.summary", file=sys.stderr)
            return 1
        print(f"results/{SUMMARY_NAME} and the README block are up to date")
        return 0
    wrote = write_summary(root / "results", profile=args.profile)
    print(f"results/{SUMMARY_NAME}: {'written' if wrote else 'unchanged'}")
    readme = root / "README.md"
    try:
        wrote = update_readme(readme, readme_block(root, profile=args.profile))
        print(f"README.md summary block: {'written' if wrote else 'unchanged'}")
    except FileNotFoundError:
        print("README.md: not found, not written")
    except MarkersMissing as err:
        print(f"README.md not written: {err}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
