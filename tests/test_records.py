"""Verdict rules on hand-made numbers: twice the central std decides, a single run never does, a
miniature without room says "not testable here", rows print as "+- std (n runs)" or "(1 run)"."""
import json
import math
from pathlib import Path

import pytest

from wsss.records import (VERDICTS, Verdicts, central_std, closing_table, combined_entry, format_miou, headroom,
                          headroom_line, ordering_entry, ordering_verdict, pair_verdict, verdict_entry)

PAPER = {"a": 0.640, "b": 0.530, "c": 0.485}
TESTABLE = dict(floor=0.107, baseline=0.55, ceiling=0.80, paper_gain=0.05)


def _verdict_word(text: str) -> str:
    """The verdict word right after "claim: " in a sentence."""
    rest = text.split(": ", 1)[1]
    words = [v for v in VERDICTS if rest.startswith(v)]
    assert len(words) == 1, text
    return words[0]


# ---------------------------------------------------------------- two rows: 2 x std decides
def test_a_gap_under_twice_the_central_std_is_inconclusive():
    assert pair_verdict(0.560, 0.550, std=0.007) == "inconclusive"        # 1.0 < 2 x 0.7
    assert pair_verdict(0.570, 0.550, std=0.007) == "held"                # 2.0 > 1.4
    assert pair_verdict(0.550, 0.570, std=0.007) == "did not hold"        # -2.0, decided
    assert pair_verdict(0.550, 0.550, std=0.0) == "inconclusive"          # no gap decides nothing


def test_without_a_given_std_the_larger_row_std_is_used():
    # stds 0.02 and 0.01 -> 2 x 0.02 = 4 points; a gap of 3 points is inside, 11 points outside
    assert pair_verdict([0.51, 0.53, 0.55], [0.49, 0.50, 0.51]) == "inconclusive"
    assert pair_verdict([0.50, 0.52, 0.54], [0.40, 0.41, 0.42]) == "held"
    assert pair_verdict([0.40, 0.41, 0.42], [0.50, 0.52, 0.54]) == "did not hold"
    # the old rule (gap > larger std) called this held; twice the std does not
    assert pair_verdict([0.52, 0.53, 0.54], [0.51, 0.515, 0.52]) == "inconclusive"   # 1.5 < 2 x 1.0


def test_one_run_cannot_decide_without_a_central_std():
    assert pair_verdict(0.70, 0.40) == "inconclusive"
    entry = verdict_entry("one vs one", 0.70, 0.40)
    assert entry["verdict"] == "inconclusive" and entry["std"] is None and "single run" in entry["why"]


def test_one_seed_rows_are_judged_by_the_central_std():
    assert pair_verdict(0.579, 0.556, std=0.017) == "inconclusive"       # 2.3 < 3.4
    assert pair_verdict(0.600, 0.556, std=0.017) == "held"               # 4.4 > 3.4
    assert pair_verdict(0.556, 0.600, std=0.017) == "did not hold"
    # a given std wins over a row's own spread
    assert pair_verdict([0.50, 0.60, 0.70], 0.55, std=0.01) == "held"


def test_central_std_is_the_largest_among_rows_of_several_seeds():
    assert central_std([0.50, 0.52, 0.54], [0.40, 0.41, 0.42], 0.9) == pytest.approx(0.02)
    assert central_std(0.5, [0.6]) is None


# ---------------------------------------------------------------- the room a claim needs
def test_headroom_lower_half_is_not_testable():
    h = headroom(0.107, 0.137, 0.60)
    assert h["testable"] is False and "lower half" in h["why"] and "13.7" in h["why"] and "10.7" in h["why"]
    assert h["baseline_share"] == pytest.approx((0.137 - 0.107) / (0.60 - 0.107))
    assert "-> not testable here: " in headroom_line(h)
    # the middle of the room (35.0 between 10.0 and 60.0) is the line
    assert headroom(0.10, 0.34, 0.60)["testable"] is False
    assert headroom(0.10, 0.36, 0.60)["testable"] is True


def test_headroom_smaller_than_the_paper_gain_is_not_testable():
    h = headroom(0.107, 0.70, 0.738, paper_gain=0.178)
    assert h["testable"] is False and h["room"] == pytest.approx(0.038)
    assert "3.8 points" in h["why"] and "+17.8" in h["why"] and "lower half" not in h["why"]


def test_headroom_with_room_is_testable_and_averages_seeds():
    h = headroom(**TESTABLE)
    assert h["testable"] is True and h["why"] is None
    h = headroom(0.107, [0.54, 0.55, 0.56], [0.79, 0.81], paper_baseline=0.547, paper_ceiling=0.786, paper_gain=0.178)
    assert h["baseline"] == pytest.approx(0.55) and h["ceiling"] == pytest.approx(0.80)
    assert h["baseline_seeds"] == [0.54, 0.55, 0.56] and h["testable"] is True
    assert headroom_line(h) == ("floor 10.7 | baseline 55.0 | ceiling 80.0 "
                                "(paper: baseline 54.7, ceiling 78.6, gain +17.8) -> testable")


def test_no_room_at_all_is_not_testable():
    h = headroom(0.107, 0.107, 0.10)
    assert h["testable"] is False and h["baseline_share"] is None and "no room" in h["why"]


def test_not_testable_beats_a_huge_gap():
    h = headroom(0.107, 0.137, 0.60)
    assert pair_verdict(0.90, 0.10, std=0.001, headroom=h) == "not testable here"
    entry = verdict_entry("huge", [0.90, 0.91, 0.92], 0.10, std=0.001, headroom=h)
    assert entry["verdict"] == "not testable here" and entry["why"] == h["why"]
    assert pair_verdict(0.90, 0.10, std=0.001, headroom=headroom(**TESTABLE)) == "held"


@pytest.mark.parametrize("kwargs, name", [
    (dict(floor=1.5, baseline=0.5, ceiling=0.8), "floor"),
    (dict(floor=0.1, baseline=[0.5, math.nan], ceiling=0.8), "baseline"),
    (dict(floor=0.1, baseline=0.5, ceiling=-0.1), "ceiling"),
    (dict(floor=0.1, baseline=0.5, ceiling=0.8, paper_gain=17.8), "paper_gain"),
    (dict(floor=math.nan, baseline=0.5, ceiling=0.8), "floor"),
])
def test_headroom_rejects_values_outside_zero_one(kwargs, name):
    with pytest.raises(ValueError, match=name):
        headroom(**kwargs)


def test_verdicts_reject_percent_and_nan():
    with pytest.raises(ValueError, match="percent"):
        pair_verdict(55.6, 0.5)
    with pytest.raises(ValueError, match="std"):
        pair_verdict(0.6, 0.5, std=math.nan)
    with pytest.raises(ValueError, match="'b'"):
        ordering_verdict({"a": 0.6, "b": 60.0}, PAPER)


# ---------------------------------------------------------------- how rows print
def test_format_one_run_and_several():
    assert format_miou(0.556) == "55.6 (1 run)"
    assert format_miou([0.556]) == "55.6 (1 run)"
    assert "+- 0" not in format_miou([0.556])
    three = format_miou([0.54, 0.556, 0.572])
    assert three == "55.6 +- 1.6 (3 runs)" and "+- " in three and "(3 runs)" in three
    assert format_miou([55.6], percent=False) == "55.6 (1 run)"


# ---------------------------------------------------------------- orderings
def test_ordering_words_are_only_the_four_verdicts():
    texts = [ordering_verdict({"a": 0.70, "b": 0.60, "c": 0.40}, PAPER, std=0.01),
             ordering_verdict({"a": 0.50, "b": 0.60, "c": 0.40}, PAPER, std=0.01),
             ordering_verdict({"a": [0.50, 0.54, 0.46], "b": [0.49, 0.50, 0.51], "c": 0.30}, PAPER),
             ordering_verdict({"a": 0.70, "b": 0.60, "c": 0.40}, PAPER),
             ordering_verdict({"a": 0.70, "b": 0.60}, PAPER, headroom=headroom(0.107, 0.137, 0.60))]
    assert [_verdict_word(t) for t in texts] == ["held", "did not hold", "inconclusive", "inconclusive",
                                                  "not testable here"]
    for text in texts:
        assert "in part" not in text and "+- 0" not in text


def test_ordering_with_one_decided_reversal_did_not_hold():
    entry = ordering_entry("T1", {"a": 0.50, "b": 0.60, "c": 0.40}, PAPER, std=0.01)
    assert entry["verdict"] == "did not hold"
    assert (entry["pairs"], entry["pairs_held"], entry["pairs_did_not_hold"], entry["pairs_inconclusive"]) == (3, 2, 1, 0)
    assert entry["largest_reversal"]["above"] == "a" and entry["largest_reversal"]["points"] == pytest.approx(10.0)
    assert "a is 10.0 points below b here" in entry["text"]
    assert "Here: b 60.0 (1 run) > a 50.0 (1 run) > c 40.0 (1 run)" in entry["text"]


def test_ordering_held_needs_every_pair_and_undecided_pairs_make_it_inconclusive():
    held = ordering_entry("T", {"a": 0.70, "b": 0.60, "c": 0.40}, PAPER, std=0.01)
    assert held["verdict"] == "held" and held["pairs_held"] == 3
    mixed = ordering_entry("T", {"a": [0.50, 0.54, 0.46], "b": [0.49, 0.50, 0.51], "c": [0.30, 0.31, 0.32]}, PAPER)
    assert mixed["verdict"] == "inconclusive" and mixed["std"] == pytest.approx(0.04)
    assert (mixed["pairs_held"], mixed["pairs_inconclusive"]) == (2, 1)
    assert "a 50.0 +- 4.0 (3 runs)" in mixed["text"] and "reversal" not in mixed["text"]


def test_ordering_ties_and_too_few_rows():
    entry = ordering_entry("T5", {"x": 0.01, "y": 0.02, "z": 0.0}, {"x": 0.6403, "y": 0.6402, "z": 0.6299},
                           tie=0.0005, std=0.001)
    assert entry["pairs"] == 2 and entry["verdict"] == "held"
    assert "x 64.03 > y 64.02 > z 62.99" in entry["text"]
    few = ordering_entry("T", {"a": 0.5}, PAPER)
    assert few["verdict"] == "inconclusive" and "fewer than two rows" in few["text"]


def test_not_testable_ordering_shows_the_order_without_a_word():
    h = headroom(0.107, 0.137, 0.60)
    entry = ordering_entry("T", {"a": 0.50, "b": 0.60, "c": 0.40}, PAPER, std=0.01, headroom=h)
    assert entry["verdict"] == "not testable here" and entry["why"] == h["why"]
    text = entry["text"].replace("not testable here", "")
    assert not any(word in text for word in ("held", "did not hold", "inconclusive"))
    assert "Here: b 60.0 (1 run) > a 50.0 (1 run) > c 40.0 (1 run)" in text


# ---------------------------------------------------------------- the collector and the json
def test_collector_entries_are_json_ready_and_lines_read_well():
    h = headroom(**TESTABLE)
    verdicts = Verdicts(std=0.017, headroom=h)
    entry = verdicts.pair("RML above the baseline", [0.539, 0.556, 0.573], 0.579, a_name="RML", b_name="Baseline")
    assert entry["verdict"] == "inconclusive" and entry["runs_a"] == 3 and entry["runs_b"] == 1
    assert entry["gap"] == pytest.approx(0.556 - 0.579) and entry["std"] == 0.017
    assert verdicts.line(entry) == ("RML above the baseline: inconclusive (RML 55.6 +- 1.7 (3 runs) vs Baseline 57.9 "
                                    "(1 run); gap -2.3, 2 x std = 3.4)")
    verdicts.pair("far above", 0.70, 0.50)
    verdicts.ordering("Table 1", {"a": 0.70, "b": 0.60, "c": 0.40}, PAPER)
    assert [e["verdict"] for e in verdicts.entries] == ["inconclusive", "held", "held"]
    assert all(e["verdict"] in VERDICTS for e in verdicts.entries)
    assert _verdict_word(verdicts.line(verdicts.entries[-1])) == "held"
    back = json.loads(json.dumps({"headroom": h, "verdicts": verdicts.entries}))
    assert back["verdicts"][0]["claim"] == "RML above the baseline" and back["headroom"]["testable"] is True
    blocked = Verdicts(std=0.017, headroom=headroom(0.107, 0.137, 0.60))
    line = blocked.line(blocked.pair("c", 0.9, 0.1))
    assert line.startswith("c: not testable here (") and "lower half" in line


# ------------------------------------------------------------------ the committed results
RESULTS = Path(__file__).resolve().parents[1] / "results"
WITH_HEADROOM = ("basics", "tscd", "rml")     # republished with the stand-ins; asdt, ssdd, seminar in their own passes


@pytest.mark.parametrize("name", WITH_HEADROOM)
def test_committed_results_carry_headroom_and_verdicts(name):
    data = json.loads((RESULTS / f"{name}-quick.json").read_text())
    room = data["headroom"]
    for key in ("floor", "baseline", "ceiling"):
        assert 0.0 <= room[key] <= 1.0, (name, key, room[key])
    assert abs(room["floor"] - 0.107) < 0.005                   # background everywhere on the quick val split
    assert isinstance(room["testable"], bool) and (room["testable"] or room["why"])
    assert isinstance(data["verdicts"], list)
    assert all(v["verdict"] in VERDICTS for v in data["verdicts"])


def test_every_committed_verdict_uses_one_of_the_four_words():
    for path in sorted(RESULTS.glob("*.json")):
        for entry in json.loads(path.read_text()).get("verdicts", []):
            assert entry["verdict"] in VERDICTS, (path.name, entry["claim"], entry["verdict"])


# ------------------------------------------------------------------ the closing table
def test_closing_table_has_one_row_per_claim_with_paper_ours_and_verdict():
    room = headroom(0.107, [0.55, 0.57, 0.53], [0.80], paper_baseline=0.547, paper_ceiling=0.786, paper_gain=0.05)
    v = Verdicts(std=0.01, headroom=room)
    v.pair("B above A", [0.60, 0.62, 0.61], [0.55, 0.57, 0.53], a_name="B", b_name="A", paper_a=0.7251, paper_b=0.547)
    v.pair("C above A (one run)", 0.56, [0.55, 0.57, 0.53], a_name="C", b_name="A")
    v.ordering("Table X", {"a": [0.70, 0.72, 0.71], "b": 0.60, "c": 0.65}, PAPER)
    rows = closing_table(v.entries, room)
    assert [r["claim"] for r in rows] == ["the room: floor / baseline / ceiling (the paper: baseline / ceiling)",
                                          "B above A", "C above A (one run)", "Table X"]
    assert set(rows[0]) == {"claim", "paper", "ours", "verdict", "why"}
    assert rows[0]["paper"] == "54.7 / 78.6" and rows[0]["ours"] == "10.7 / 55.0 +- 2.0 (3) / 80.0 (1)"
    assert rows[0]["verdict"] == "testable"
    assert rows[1]["paper"] == "72.51 vs 54.7; gap +17.8"
    assert rows[1]["ours"] == "B 61.0 +- 1.0 (3) vs A 55.0 +- 2.0 (3); gap +6.0" and rows[1]["verdict"] == "held"
    assert rows[1]["why"] == "gap +6.0 against 2 x std = 2.0"
    assert rows[2]["paper"] == "-" and rows[2]["ours"].startswith("C 56.0 (1) vs A 55.0 +- 2.0 (3)")
    assert rows[2]["verdict"] == "inconclusive" and "smaller than twice" in rows[2]["why"]
    # an ordering: both orders, each row with its own runs and std
    assert rows[3]["paper"] == "a 64.0 > b 53.0 > c 48.5"
    assert rows[3]["ours"] == "a 71.0 +- 1.0 (3) > c 65.0 (1) > b 60.0 (1)"
    assert rows[3]["verdict"] == "did not hold" and "largest reversal: b 5.0 points below c" in rows[3]["why"]
    assert all(r["verdict"] in VERDICTS + ("testable",) for r in rows)
    json.dumps(rows)


def test_closing_table_survives_the_json_round_trip_of_numeric_row_names():
    entry = ordering_entry("Fig. 6, T", {150: [0.60, 0.62, 0.61], 250: 0.50}, {150: 0.6403, 250: 0.6308}, std=0.01)
    again = json.loads(json.dumps(entry))                       # keys 150, 250 become "150", "250"
    row = closing_table([again])[0]
    assert row["paper"] == "150 64.03 > 250 63.08" and row["ours"] == "150 61.0 +- 1.0 (3) > 250 50.0 (1)"
    assert row == closing_table([entry])[0]


def test_closing_table_takes_the_texts_of_an_entry_that_judges_no_rows():
    entry = {"claim": "the gap shrinks", "verdict": "inconclusive", "why": "3 of 3 pairs inconclusive",
             "paper_text": "it shrinks", "ours_text": "gap at w 10: -0.4, 5: -0.3"}
    assert closing_table([entry]) == [{"claim": "the gap shrinks", "paper": "it shrinks",
                                       "ours": "gap at w 10: -0.4, 5: -0.3", "verdict": "inconclusive",
                                       "why": "3 of 3 pairs inconclusive"}]


def test_a_paper_number_in_percent_is_refused_naming_the_row():
    with pytest.raises(ValueError, match="paper number of 'B'.*percent"):
        verdict_entry("B above A", 0.6, 0.5, a_name="B", b_name="A", paper_a=72.5)


def test_a_not_testable_room_says_so_in_the_first_row():
    room = headroom(0.107, 0.183, 0.584, paper_baseline=0.638, paper_gain=0.012)
    rows = closing_table([verdict_entry("TSCD above AFA", 0.19, 0.183, std=0.02, headroom=room)], room)
    assert rows[0]["verdict"] == rows[1]["verdict"] == "not testable here"
    assert "lower half" in rows[0]["why"] and rows[0]["paper"] == "63.8 / -"


@pytest.mark.parametrize("name", ["basics", "asdt", "ssdd", "tscd", "seminar", "rml"])
def test_committed_results_carry_their_closing_table(name):
    data = json.loads((RESULTS / f"{name}-quick.json").read_text())
    rows = data.get("closing_table")
    assert rows, f"{name}-quick.json has no closing_table (republish the notebook)"
    assert rows == closing_table(data["verdicts"], data["headroom"]), f"{name}: the stored closing table is stale"


def test_a_claim_made_of_pairs_follows_the_ordering_rule_and_says_why():
    held, no, inc, nt = VERDICTS
    entry = combined_entry("200 the best", [held, no], std=0.08, ours_text="50: 73.3, 200: 45.4, 800: 25.6")
    assert entry["verdict"] == no and entry["why"] == "1 of 2 pairs held, 1 did not hold, 0 inconclusive (2 x std = 16.0)"
    assert combined_entry("c", [held, held], ours_text="x")["verdict"] == held
    assert combined_entry("c", [held, inc], ours_text="x")["verdict"] == inc
    assert combined_entry("c", [no, nt], ours_text="x")["verdict"] == nt
    assert combined_entry("c", [], ours_text="x")["verdict"] == inc
    with pytest.raises(ValueError, match="pair verdicts must be"):
        combined_entry("c", ["moot"], ours_text="x")
    v = Verdicts(std=0.02)
    v.combined("gaps shrink", [inc, inc, inc], ours_text="gap at 10: -0.4, 5: -0.3", paper_text="it shrinks", w=[10, 5])
    row = closing_table(v.entries)[0]
    assert row == {"claim": "gaps shrink", "paper": "it shrinks", "ours": "gap at 10: -0.4, 5: -0.3",
                   "verdict": inc, "why": "0 of 3 pairs held, 0 did not hold, 3 inconclusive (2 x std = 4.0)"}
    assert v.entries[0]["w"] == [10, 5] and Verdicts.line(v.entries[0]).startswith("gaps shrink: inconclusive (0 of 3")
    json.dumps(v.entries)
