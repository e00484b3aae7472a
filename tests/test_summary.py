"""The cross-paper summary (wsss/summary.py): built from small hand-made results jsons, and once from the
committed results/ (without asserting that the committed SUMMARY.md / README block are fresh)."""
import json
import subprocess
import sys

import pytest

from wsss import summary
from wsss.notebook import repo_root
from wsss.records import VERDICTS

META = {"profile": "quick", "device": "cpu", "cpu_threads": 2,
        "reproducible": {"enabled": True, "processor": "Test CPU 9000", "torch_threads": 2}}
HEADROOM = {"floor": 0.1, "baseline": 0.2, "ceiling": 0.6, "testable": False,
            "why": "the baseline 20.0 sits in the lower half of the room between the floor 10.0 and the ceiling 60.0"}


def _entry(claim, verdict, gap=0.01, std=0.02, runs=3):
    return {"claim": claim, "verdict": verdict, "a": "A", "b": "B", "mean_a": 0.2 + gap, "mean_b": 0.2, "gap": gap,
            "std": std, "runs_a": runs, "runs_b": runs}


@pytest.fixture
def repo(tmp_path):
    """A repository-shaped folder: results/ with basics (headroom), tscd (headroom and verdicts), ssdd (neither,
    an older table1_verdict), rml (verdicts, no entry for its central claim); asdt and seminar not run."""
    results = tmp_path / "results"
    results.mkdir()
    (tmp_path / "notebooks").mkdir()
    files = {
        "basics": {"cam_miou": 0.6039, "cam_crf_miou": 0.6948, "fully_supervised_miou": 0.8623, "wall_time_s": 190.0,
                   "headroom": {"floor": 0.1071, "baseline": 0.6039, "ceiling": 0.8623, "testable": True, "why": None},
                   "verdicts": [], "meta": META},
        "tscd": {"headroom": HEADROOM, "wall_seconds": 360.0, "meta": META,
                 "verdicts": [_entry("Table 1, TSCD above AFA (seg)", "not testable here", gap=0.0051, std=0.0253),
                              _entry("Table 1, TSCD above AFA (seg + CRF)", "not testable here"),
                              _entry("Table 4, R-SCD above R-Base", "inconclusive", gap=-0.027, runs=1),
                              _entry("Table 4, other", "held", gap=0.1)]},
        "ssdd": {"table1_verdict": "held", "wall_time_s": 376.0, "meta": {"profile": "quick"}},
        "rml": {"headroom": {**HEADROOM, "testable": True, "why": None}, "meta": META,
                "verdicts": [_entry("Table 2, something else", "did not hold", gap=-0.1)]},
    }
    for name, data in files.items():
        (results / f"{name}-quick.json").write_text(json.dumps(data))
    return tmp_path


def _row(text, title):
    """The line of the papers' table that starts with the linked title."""
    return next(line for line in text.splitlines() if line.startswith(f"| [{title}]"))


def test_benchmark_rows_come_from_basics(repo):
    text = summary.build_summary(repo / "results")
    assert "| floor: every pixel background | 10.7 |" in text
    assert "| CAM (image tags) | 60.4 (1 run) |" in text
    assert "| CAM + CRF | 69.5 (1 run) |" in text
    assert "| fully supervised (full masks) | 86.2 (1 run) |" in text
    assert "[basics](../notebooks/basics.ipynb); quick; Test CPU 9000, 2 threads; 3.2 min" in text


def test_paper_row_with_headroom_and_verdicts(repo):
    text = summary.build_summary(repo / "results")
    cells = [c.strip() for c in _row(text, "TSCD").strip("|").split(" | ")]
    assert cells[0] == "[TSCD](../notebooks/tscd.ipynb)"
    assert cells[1] == "image tags"
    assert cells[3] == "+1.2 (63.8 -> 65.0)"                   # the paper's numbers
    assert cells[4] == "+0.5 +- 2.5 (3 seeds)"                 # the first entry of the central claim
    assert cells[5] == "not testable here"
    assert cells[6] == "1 / 0 / 1 / 2"                        # held / did not hold / inconclusive / not testable here
    assert cells[7] == "10.0 / 20.0 / 60.0: not testable"
    assert cells[8] == "quick; Test CPU 9000, 2 threads"
    assert cells[9] == "6.0 min"
    assert "TSCD: the room: the baseline 20.0 sits in the lower half" in text        # the headroom's why
    assert " / ".join(VERDICTS) in text                       # the counts' header names the four words


def test_missing_fields_say_not_recorded(repo):
    text = summary.build_summary(repo / "results")
    ssdd = _row(text, "SSDD")
    assert ssdd.count("not recorded (published before `verdicts`)") == 3
    assert "not recorded (published before `headroom`)" in ssdd
    assert "quick; processor not recorded" in ssdd
    assert "6.3 min" in ssdd
    assert "`table1_verdict` says \"held\"" in text           # the older field is mentioned, not used as the verdict
    rml = _row(text, "RML")
    assert "not recorded (no verdict entry for the central claim)" in rml
    assert "0 / 1 / 0 / 0" in rml
    assert "10.0 / 20.0 / 60.0: testable" in rml
    assert rml.rstrip().endswith("| not recorded |")      # no wall time in the json
    for title in ("ASDT", "Seminar learning"):
        assert "not run (no `results/" in _row(text, title)


def test_ordering_entry_and_legacy_verdict_mapping(repo):
    results = repo / "results"
    (results / "asdt-quick.json").write_text(json.dumps({"meta": META, "verdicts": {
        "Table 4, P^s, central rows over 3 seeds": {
            "verdict": "inconclusive", "std": 0.015, "ours": {"Alternative dual teacher": 0.57, "Single class-teacher": 0.545},
            "runs": {"Alternative dual teacher": 3, "Single class-teacher": 3}}}}))
    (results / "seminar-quick.json").write_text(json.dumps({"meta": META, "verdicts": {
        "Table 3, all four above pCE (3 seeds)": "did not hold"}}))
    text = summary.build_summary(results)
    asdt = _row(text, "ASDT")
    assert "+2.5 +- 1.5 (3 seeds)" in asdt and "| inconclusive |" in asdt
    seminar = _row(text, "Seminar learning")
    assert "| did not hold |" in seminar and "+17.8 (54.70 -> 72.51)" in seminar


def test_update_readme_replaces_only_the_block(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text(f"# Title\n\nBefore.\n\n{summary.START}\nold table\n{summary.END}\n\nAfter.\n")
    assert summary.update_readme(readme, "| new | table |\n")
    assert readme.read_text() == f"# Title\n\nBefore.\n\n{summary.START}\n| new | table |\n{summary.END}\n\nAfter.\n"
    assert not summary.update_readme(readme, "| new | table |")     # unchanged: not rewritten


@pytest.mark.parametrize("text", ["# no markers\n", f"{summary.END}\n{summary.START}\n",
                                  f"{summary.START}\n{summary.START}\n{summary.END}\n"])
def test_update_readme_raises_without_markers(tmp_path, text):
    readme = tmp_path / "README.md"
    readme.write_text(text)
    with pytest.raises(summary.MarkersMissing, match="README.md"):
        summary.update_readme(readme, "table")
    assert readme.read_text() == text


def test_check_detects_stale_and_passes_after_write(repo, capsys):
    readme = repo / "README.md"
    readme.write_text(f"# Project\n\n{summary.START}\nstale numbers\n{summary.END}\n")
    assert summary.is_stale(repo) == ["results/SUMMARY.md", "README.md (summary block)"]
    assert summary.main(["--check", "--root", str(repo)]) == 1
    assert "README.md (summary block)" in capsys.readouterr().err
    assert summary.main(["--root", str(repo)]) == 0
    assert summary.is_stale(repo) == []
    assert summary.main(["--check", "--root", str(repo)]) == 0
    block = readme.read_text()
    assert "(notebooks/tscd.ipynb)" in block and "# Results at a glance" not in block     # links from the root, no title
    assert "(../notebooks/tscd.ipynb)" in (repo / "results" / "SUMMARY.md").read_text()
    # a new result makes both stale again
    data = json.loads((repo / "results" / "tscd-quick.json").read_text())
    data["wall_seconds"] = 720.0
    (repo / "results" / "tscd-quick.json").write_text(json.dumps(data))
    assert summary.is_stale(repo) == ["results/SUMMARY.md", "README.md (summary block)"]


def test_cli_without_markers_writes_summary_and_says_how(repo):
    (repo / "README.md").write_text("# Project\n")
    run = subprocess.run([sys.executable, "-m", "wsss.summary", "--root", str(repo)], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert "README.md not written" in run.stdout and summary.START in run.stdout
    assert (repo / "README.md").read_text() == "# Project\n"
    check = subprocess.run([sys.executable, "-m", "wsss.summary", "--check", "--root", str(repo)],
                           capture_output=True, text=True)
    assert check.returncode == 1 and "markers" in check.stderr and "SUMMARY.md" not in check.stderr


def test_builds_from_the_committed_results():
    results = repo_root() / "results"
    text = summary.build_summary(results)
    for name in ("basics", *summary.PAPERS):
        assert f"notebooks/{name}.ipynb" in text
    assert "| floor: every pixel background |" in text
    assert summary.readme_block(repo_root()).strip() in text.replace("../notebooks/", "notebooks/")


def test_the_committed_summary_and_readme_block_are_fresh():
    """results/SUMMARY.md and the README's block say what the committed results say (rerun `python -m wsss.summary`)."""
    from wsss.summary import is_stale
    assert is_stale() == []


def test_summary_md_lists_every_closing_table_and_the_readme_block_does_not(repo):
    results = repo / "results"
    data = json.loads((results / "tscd-quick.json").read_text())
    data["closing_table"] = [{"claim": "Table 1, TSCD above AFA (seg)", "paper": "65.0 vs 63.8; gap +1.2",
                              "ours": "TSCD 19.1 +- 1.6 (3) vs AFA 18.3 +- 1.6 (3); gap +0.8",
                              "verdict": "not testable here", "why": "the baseline | sits low"}]
    (results / "tscd-quick.json").write_text(json.dumps(data))
    text = summary.build_summary(results)
    section = text.split("## Every claim, notebook by notebook", 1)[1]
    assert "| Table 1, TSCD above AFA (seg) | 65.0 vs 63.8; gap +1.2 | TSCD 19.1 +- 1.6 (3) vs AFA 18.3 +- 1.6 (3); gap +0.8 " \
           "| not testable here | the baseline \\| sits low |" in section          # a pipe in a cell is escaped
    assert "**[RML](../notebooks/rml.ipynb)**: not recorded (published before `closing_table`)." in section
    assert "**[ASDT](../notebooks/asdt.ipynb)**: not run." in section
    assert "Every claim" not in summary.build_summary(results, title=False)
