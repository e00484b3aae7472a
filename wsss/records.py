"""Result records and verdicts that every notebook writes the same way.

Units: every mIoU handed to this module is a fraction in [0, 1] (a row's value, a seed's value, the
paper's number, a std, a gain); the texts print them in percent with one decimal, and gaps in points.

* :func:`miou_record` stores a table row for the results json: the mean over seeds, every seed's value
  and their std, and the paper's number beside them.
* A row run over several seeds prints as "55.6 +- 1.7 (3 runs)", a row of one seed as "55.6 (1 run)",
  never "+- 0" (:func:`format_miou`).
* A verdict is one of four words, :data:`VERDICTS`: "held", "did not hold", "inconclusive", "not
  testable here". No other word says how a claim fared.
* Two rows are compared by the gap of their means. A gap smaller than twice the seeds' standard
  deviation is "inconclusive". That std is the one measured on the notebook's central rows (those run
  over three seeds or more, :func:`central_std`) and is passed in as ``std=``; without it, the larger
  std of the two rows that have several seeds is used; with no std at all (one run of each row) the
  verdict is "inconclusive": a single run cannot decide. One-seed rows are judged with the central std.
* A claim is "not testable here" when the miniature leaves no room for it (:func:`headroom`): the
  baseline sits in the lower half of the room between the floor (all background) and the ceiling (the
  same network trained on full masks), or the room above the baseline is smaller than the paper's gain.
  The ordering is still shown, without a held / did-not-hold word, and the reason is given in numbers.
* An ordering of several rows "did not hold" when any pair the paper separates is decided the other way
  round here, "held" when every pair held, and is "inconclusive" otherwise.
"""
from __future__ import annotations

import math

VERDICTS = ("held", "did not hold", "inconclusive", "not testable here")
HELD, NOT_HELD, INCONCLUSIVE, NOT_TESTABLE = VERDICTS


# ---------------------------------------------------------------- values and rows
def seed_values(value) -> list[float]:
    """A number or a sequence of per-seed numbers -> a list of floats (None stays out)."""
    if isinstance(value, (int, float)):
        return [float(value)]
    return [float(v) for v in value if v is not None]


def mean_std(value) -> tuple[float, float]:
    """(mean, sample standard deviation) over the seeds (std 0 for one seed)."""
    values = seed_values(value)
    if not values:
        raise ValueError("no value to average")
    mean = sum(values) / len(values)
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1)) if len(values) > 1 else 0.0
    return mean, std


def _fraction(value, name: str) -> float:
    """``value`` as a float, or ValueError naming ``name`` when it is NaN or outside [0, 1]."""
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be an mIoU fraction in [0, 1], got {value!r}") from None
    if math.isnan(x) or not 0.0 <= x <= 1.0:
        hint = " (a percent? divide by 100)" if 1.0 < x <= 100.0 else ""
        raise ValueError(f"{name} must be an mIoU fraction in [0, 1], got {value!r}{hint}")
    return x


def _row(value, name: str) -> list[float]:
    """A row's per-seed values, each checked to be a fraction in [0, 1]."""
    if value is None:
        raise ValueError(f"{name} has no value")
    values = [_fraction(v, name) for v in seed_values(value)]
    if not values:
        raise ValueError(f"{name} has no value")
    return values


def _std_of(values: list[float]) -> float | None:
    """Sample std of a row, None for a row of one seed."""
    return mean_std(values)[1] if len(values) > 1 else None


def _pct(x: float) -> str:
    """A fraction in percent with one decimal."""
    return f"{100 * x:.1f}"


def _paper_pct(x: float) -> str:
    """A paper's number in percent, with one decimal or two where it has them (64.0, 64.03)."""
    text = f"{100 * x:.2f}"
    return text[:-1] if text.endswith("0") else text


def format_miou(value, percent: bool = True) -> str:
    """A row as printed: "55.6 +- 1.7 (3 runs)" over several seeds, "55.6 (1 run)" for one (never
    "+- 0"). ``percent=True``: the values are fractions, printed in percent; ``False``: they are printed
    as given (already in percent)."""
    values = _row(value, "value") if percent else seed_values(value)
    if not values:
        raise ValueError("value has no value")
    scale = 100.0 if percent else 1.0
    mean, std = mean_std(values)
    if len(values) == 1:
        return f"{scale * mean:.1f} (1 run)"
    return f"{scale * mean:.1f} +- {scale * std:.1f} ({len(values)} runs)"


def miou_record(ours, paper_percent: float | None = None, **fields) -> dict:
    """One table row for a results json: ``fields`` (the row's name and switches), "miou" (the mean over
    seeds, a fraction), "paper" (the paper's percent as a fraction, or None) and, for several seeds,
    "miou_std" and "miou_seeds". ``ours``: a fraction or a list of per-seed fractions."""
    mean, std = mean_std(ours)
    record = {**fields, "miou": mean, "paper": None if paper_percent is None else paper_percent / 100}
    values = seed_values(ours)
    if len(values) > 1:
        record.update(miou_std=std, miou_seeds=values)
    return record


# ---------------------------------------------------------------- the room a claim needs
def headroom(floor, baseline, ceiling, *, paper_baseline=None, paper_ceiling=None, paper_gain=None) -> dict:
    """Can the miniature test the paper's claim? (json-ready dict)

    floor: all-background mIoU; baseline: the paper's baseline row here (a fraction or per-seed
    fractions, averaged); ceiling: the same network trained on full masks (likewise); paper_*: the
    paper's baseline, ceiling and claimed gain, fractions. Not testable when baseline - floor <
    0.5 (ceiling - floor) or ceiling - baseline < paper_gain; "why" says which, in percent.
    """
    floor = _fraction(floor, "floor")
    base_seeds, ceil_seeds = _row(baseline, "baseline"), _row(ceiling, "ceiling")
    paper = {name: None if v is None else _fraction(v, name)
             for name, v in (("paper_baseline", paper_baseline), ("paper_ceiling", paper_ceiling),
                             ("paper_gain", paper_gain))}
    base, ceil = mean_std(base_seeds)[0], mean_std(ceil_seeds)[0]
    room = ceil - base
    share = (base - floor) / (ceil - floor) if ceil > floor else None
    reasons = []
    if ceil <= floor:
        reasons.append(f"the ceiling {_pct(ceil)} is not above the floor {_pct(floor)}: there is no room")
    elif base - floor < 0.5 * (ceil - floor):
        reasons.append(f"the baseline {_pct(base)} sits in the lower half of the room between the floor "
                       f"{_pct(floor)} and the ceiling {_pct(ceil)}")
    gain = paper["paper_gain"]
    if gain is not None and room < gain:
        reasons.append(f"the room above the baseline ({100 * room:.1f} points) is smaller than the paper's "
                       f"gain (+{100 * gain:.1f})")
    return {"floor": floor, "baseline": base, "ceiling": ceil, "baseline_seeds": base_seeds,
            "ceiling_seeds": ceil_seeds, "room": room, "baseline_share": share, **paper,
            "testable": not reasons, "why": "; and ".join(reasons) if reasons else None}


def headroom_line(h: dict) -> str:
    """The line a notebook prints before its tables: floor, baseline, ceiling (and the paper's), then
    "-> testable" or "-> not testable here: <why>"."""
    text = f"floor {_pct(h['floor'])} | baseline {_pct(h['baseline'])} | ceiling {_pct(h['ceiling'])}"
    paper = [f"{label} {_pct(h[key])}" for label, key in (("baseline", "paper_baseline"), ("ceiling", "paper_ceiling"))
             if h.get(key) is not None]
    if h.get("paper_gain") is not None:
        paper.append(f"gain +{_pct(h['paper_gain'])}")
    if paper:
        text += f" (paper: {', '.join(paper)})"
    return text + (" -> testable" if h["testable"] else f" -> {NOT_TESTABLE}: {h['why']}")


def _not_testable(headroom: dict | None) -> bool:
    """True when a headroom dict says the claim cannot be tested here."""
    return headroom is not None and not headroom["testable"]


# ---------------------------------------------------------------- two rows
def central_std(*rows) -> float | None:
    """The std a gap is judged by: the largest sample std among the given rows that have >= 2 seeds
    (pass the notebook's central rows); None when no row has two."""
    stds = [s for s in (_std_of(_row(r, "row")) for r in rows) if s is not None]
    return max(stds) if stds else None


def _judge(values_a: list[float], values_b: list[float], std, headroom) -> tuple[str, float | None, str | None]:
    """(verdict, std used, why) for "is a above b"."""
    if std is not None:
        std = _fraction(std, "std")
    else:
        stds = [s for s in (_std_of(values_a), _std_of(values_b)) if s is not None]
        std = max(stds) if stds else None
    gap = mean_std(values_a)[0] - mean_std(values_b)[0]
    if _not_testable(headroom):
        return NOT_TESTABLE, std, headroom["why"]
    if std is None:
        return INCONCLUSIVE, None, "no seed std is known: a single run of each row cannot decide"
    if gap == 0 or abs(gap) < 2 * std:
        return INCONCLUSIVE, std, (f"the gap ({100 * gap:+.1f} points) is smaller than twice the seeds' std "
                                   f"(2 x {100 * std:.1f} = {200 * std:.1f})")
    return (HELD if gap > 0 else NOT_HELD), std, None


def pair_verdict(a, b, *, std=None, headroom=None) -> str:
    """Is row ``a`` above row ``b``? One of :data:`VERDICTS`. a, b: a fraction or per-seed fractions;
    std: the central rows' std (:func:`central_std`); headroom: a :func:`headroom` dict."""
    return _judge(_row(a, "a"), _row(b, "b"), std, headroom)[0]


def verdict_entry(claim: str, a, b, *, std=None, headroom=None, a_name=None, b_name=None, paper_a=None,
                  paper_b=None) -> dict:
    """The json-ready verdict of "row a above row b" for the results json's "verdicts". paper_a, paper_b:
    the paper's numbers for the two rows (fractions), kept beside ours for the closing table."""
    a_name, b_name = a_name or "a", b_name or "b"
    values_a, values_b = _row(a, a_name), _row(b, b_name)
    verdict, used, why = _judge(values_a, values_b, std, headroom)
    mean_a, mean_b = mean_std(values_a)[0], mean_std(values_b)[0]
    return {"claim": claim, "verdict": verdict, "a": a_name, "b": b_name, "mean_a": mean_a, "mean_b": mean_b,
            "gap": mean_a - mean_b, "std": used, "runs_a": len(values_a), "runs_b": len(values_b),
            "std_a": _std_of(values_a), "std_b": _std_of(values_b), "why": why,
            "paper_a": None if paper_a is None else _fraction(paper_a, f"paper number of {a_name!r}"),
            "paper_b": None if paper_b is None else _fraction(paper_b, f"paper number of {b_name!r}")}


# ---------------------------------------------------------------- several pairs, one claim
def _overall(held: int, not_held: int, pairs: int, not_testable: bool = False) -> str:
    """The verdict of a claim made of ``pairs`` judged pairs: "not testable here" when the room says so, "did not
    hold" if any pair did not hold, "held" if every pair held, else "inconclusive" (also with no pair)."""
    if not_testable:
        return NOT_TESTABLE
    if not_held:
        return NOT_HELD
    return HELD if pairs and held == pairs else INCONCLUSIVE


def _pairs_text(held: int, not_held: int, inconclusive: int, std) -> str:
    """"1 of 3 pairs held, 1 did not hold, 1 inconclusive (2 x std = 4.3)"."""
    spread = "no seed std known" if std is None else f"2 x std = {200 * std:.1f}"
    return (f"{held} of {held + not_held + inconclusive} pairs held, {not_held} did not hold, {inconclusive} "
            f"inconclusive ({spread})")


# ---------------------------------------------------------------- an ordering of rows
def ordering_entry(claim: str, ours: dict, paper: dict, *, tie: float = 0.0, std=None, headroom=None) -> dict:
    """Does the paper's ranking of the rows hold here? (json-ready dict, with the sentence as "text")

    ours: row -> fraction or per-seed fractions; paper: row -> fraction (rows missing from either side
    are left out). Pairs the paper separates by at most ``tie`` are not counted; each other pair is
    judged like :func:`pair_verdict`. "did not hold" if any pair is decided the other way round, "held"
    if every pair held, else "inconclusive"; "not testable here" when the headroom says so.
    """
    rows = [r for r in paper if r in ours and paper[r] is not None and ours[r] is not None and seed_values(ours[r])]
    values = {r: _row(ours[r], f"row {r!r}") for r in rows}
    paper_of = {r: _fraction(paper[r], f"paper row {r!r}") for r in rows}
    mean = {r: mean_std(values[r])[0] for r in rows}
    if std is not None:
        std = _fraction(std, "std")
    else:
        std = central_std(*values.values()) if rows else None
    entry = {"claim": claim, "verdict": INCONCLUSIVE, "pairs": 0, "pairs_held": 0, "pairs_did_not_hold": 0,
             "pairs_inconclusive": 0, "std": std, "why": None, "ours": mean,
             "runs": {r: len(values[r]) for r in rows}, "stds": {r: _std_of(values[r]) for r in rows},
             "paper": paper_of, "largest_reversal": None}
    if len(rows) < 2:
        entry["why"] = "fewer than two rows to compare with the paper"
        entry["text"] = f"{claim}: {INCONCLUSIVE}: fewer than two rows to compare with the paper."
        return entry
    by_paper = sorted(rows, key=lambda r: -paper_of[r])
    by_ours = sorted(rows, key=lambda r: -mean[r])
    counts = {HELD: 0, NOT_HELD: 0, INCONCLUSIVE: 0}
    worst = None
    for i, a in enumerate(by_paper):
        for b in by_paper[i + 1:]:
            if paper_of[a] - paper_of[b] <= tie:
                continue
            verdict = _judge(values[a], values[b], std, None)[0]
            counts[verdict] += 1
            gap = mean[a] - mean[b]
            if verdict == NOT_HELD and (worst is None or gap < worst[2]):
                worst = (a, b, gap)
    pairs = sum(counts.values())
    verdict = _overall(counts[HELD], counts[NOT_HELD], pairs, _not_testable(headroom))
    if verdict == NOT_TESTABLE:
        why = headroom["why"]
    elif verdict != INCONCLUSIVE:
        why = None
    else:
        why = ("the paper calls every pair a tie" if not pairs else
               "no seed std is known: a single run of each row cannot decide" if std is None else
               f"{counts[INCONCLUSIVE]} of {pairs} pairs differ by less than twice the seeds' std")
    entry.update(verdict=verdict, why=why, pairs=pairs, pairs_held=counts[HELD], pairs_did_not_hold=counts[NOT_HELD],
                 pairs_inconclusive=counts[INCONCLUSIVE], order_paper=by_paper, order_ours=by_ours)
    if worst is not None:
        entry["largest_reversal"] = {"above": worst[0], "below": worst[1], "points": -100 * worst[2]}
    spread = "no seed std known" if std is None else f"2 x std = {200 * std:.1f} points"
    order = (f"Paper: {' > '.join(f'{r} {_paper_pct(paper_of[r])}' for r in by_paper)}. "
             f"Here: {' > '.join(f'{r} {format_miou(values[r])}' for r in by_ours)}.")
    if verdict == NOT_TESTABLE:   # the ordering is shown, without a held / did-not-hold word
        entry["text"] = f"{claim}: {NOT_TESTABLE}: {why}. {order}"
        return entry
    text = (f"{claim}: {verdict} (the paper's ordering, {pairs} pair{'' if pairs == 1 else 's'}: {counts[HELD]} held, "
            f"{counts[NOT_HELD]} did not hold, {counts[INCONCLUSIVE]} inconclusive; {spread}). {order}")
    if worst is not None:
        text += f" Largest reversal: {worst[0]} is {-100 * worst[2]:.1f} points below {worst[1]} here."
    entry["text"] = text
    return entry


def ordering_verdict(ours: dict, paper: dict, *, what: str = "mIoU", tie: float = 0.0, std=None,
                     headroom=None) -> str:
    """One plain sentence: the verdict on the paper's ranking of the rows, the pairs behind it, both
    orders and the largest reversal (:func:`ordering_entry`)."""
    return ordering_entry(what, ours, paper, tie=tie, std=std, headroom=headroom)["text"]


# ---------------------------------------------------------------- a claim made of several pairs
def combined_entry(claim: str, words, *, std=None, ours_text: str, paper_text: str | None = None, **extra) -> dict:
    """A claim made of several judged pairs (``words``: each pair's verdict), by the rule of an ordering:
    "not testable here" if any pair is, else "did not hold" if any pair did not hold, "held" if every pair
    held, "inconclusive" otherwise (also with no pair). ``ours_text`` / ``paper_text``: what the closing
    table shows for it (gaps, a curve); ``extra``: more json-ready fields. Returns a json-ready entry."""
    words = list(words)
    unknown = [w for w in words if w not in VERDICTS]
    if unknown:
        raise ValueError(f"{claim}: pair verdicts must be among {VERDICTS}, got {unknown!r}")
    counts = {w: words.count(w) for w in VERDICTS}
    verdict = _overall(counts[HELD], counts[NOT_HELD], len(words), bool(counts[NOT_TESTABLE]))
    std = None if std is None else _fraction(std, "std")
    why = (_pairs_text(counts[HELD], counts[NOT_HELD], counts[INCONCLUSIVE] + counts[NOT_TESTABLE], std)
           if words else "no pair to judge")
    return {"claim": claim, "verdict": verdict, "pairs": len(words), "pairs_held": counts[HELD],
            "pairs_did_not_hold": counts[NOT_HELD], "pairs_inconclusive": counts[INCONCLUSIVE], "std": std, "why": why,
            "ours_text": ours_text, "paper_text": paper_text, **extra,
            "text": f"{claim}: {verdict} ({why}). Here: {ours_text}" + (f". Paper: {paper_text}" if paper_text else "")}


# ---------------------------------------------------------------- a notebook's verdicts
class Verdicts:
    """Collects a notebook's verdicts with one central ``std`` and one ``headroom``; ``entries`` go into
    the results json under "verdicts"."""

    def __init__(self, std=None, headroom: dict | None = None):
        self.std = None if std is None else _fraction(std, "std")
        self.headroom = headroom
        self.entries: list[dict] = []

    def pair(self, claim: str, a, b, *, a_name=None, b_name=None, headroom: dict | None = None, paper_a=None,
             paper_b=None) -> dict:
        """Judge "a above b", keep the entry and return it (paper_a, paper_b: the paper's numbers, fractions)."""
        entry = verdict_entry(claim, a, b, std=self.std, headroom=self.headroom if headroom is None else headroom,
                              a_name=a_name, b_name=b_name, paper_a=paper_a, paper_b=paper_b)
        self.entries.append(entry)
        return entry

    def ordering(self, claim: str, ours: dict, paper: dict, *, tie: float = 0.0, headroom: dict | None = None) -> dict:
        """Judge the paper's ranking of rows, keep the entry and return it."""
        entry = ordering_entry(claim, ours, paper, tie=tie, std=self.std,
                               headroom=self.headroom if headroom is None else headroom)
        self.entries.append(entry)
        return entry

    def combined(self, claim: str, words, *, ours_text: str, paper_text: str | None = None, **extra) -> dict:
        """Judge a claim made of several pairs (:func:`combined_entry`) with the central std, keep it, return it."""
        entry = combined_entry(claim, words, std=self.std, ours_text=ours_text, paper_text=paper_text, **extra)
        self.entries.append(entry)
        return entry

    @staticmethod
    def line(entry: dict) -> str:
        """A printable line: "claim: verdict (a 55.6 +- 1.7 (3 runs) vs b 57.9 (1 run); gap -2.3, 2 x std =
        3.4)", plus the reason when not decided; an ordering entry's sentence."""
        if "text" in entry:
            return entry["text"]

        def row(name, mean, std, runs):
            return f"{name} {_pct(mean)} +- {100 * std:.1f} ({runs} runs)" if runs > 1 else f"{name} {_pct(mean)} (1 run)"

        spread = "no seed std known" if entry["std"] is None else f"2 x std = {200 * entry['std']:.1f}"
        text = (f"{entry['claim']}: {entry['verdict']} ({row(entry['a'], entry['mean_a'], entry['std_a'], entry['runs_a'])} vs "
                f"{row(entry['b'], entry['mean_b'], entry['std_b'], entry['runs_b'])}; gap {100 * entry['gap']:+.1f}, {spread})")
        return text + (f": {entry['why']}" if entry["verdict"] == NOT_TESTABLE else "")


# ---------------------------------------------------------------- a notebook's closing table
def _runs_text(mean: float, std, runs: int) -> str:
    """"55.6 +- 1.7 (3)" over several seeds, "55.6 (1)" for one run."""
    return f"{_pct(mean)} +- {100 * std:.1f} ({runs})" if runs > 1 and std is not None else f"{_pct(mean)} ({runs})"


def _closing_row(entry: dict) -> dict:
    """One verdict entry as a closing-table row: claim, paper, ours, verdict, why. An entry that judges
    something other than rows (gaps, a curve) says its two texts itself as "paper_text" and "ours_text"."""
    if "ours_text" in entry:
        return {"claim": entry["claim"], "paper": entry.get("paper_text") or "-", "ours": entry["ours_text"],
                "verdict": entry["verdict"], "why": entry.get("why") or ""}
    if "text" in entry:                      # an ordering: the paper's order and ours, each row with its runs
        # a json round trip turns numeric row names (T = 150) into strings: look rows up by their text
        ours, paper = ({str(k): v for k, v in entry.get(key, {}).items()} for key in ("ours", "paper"))
        runs, stds = ({str(k): v for k, v in (entry.get(key) or {}).items()} for key in ("runs", "stds"))
        order_paper = [str(r) for r in entry.get("order_paper") or paper]
        order_ours = [str(r) for r in entry.get("order_ours") or ours]
        std = entry.get("std")
        paper_text = " > ".join(f"{r} {_paper_pct(paper[r])}" for r in order_paper if r in paper)
        ours_text = " > ".join(f"{r} {_runs_text(ours[r], stds.get(r), runs.get(r, 1))}" for r in order_ours if r in ours)
        why = entry.get("why")
        if entry["verdict"] != NOT_TESTABLE and entry.get("pairs"):
            why = _pairs_text(entry["pairs_held"], entry["pairs_did_not_hold"], entry["pairs_inconclusive"], std)
            worst = entry.get("largest_reversal")
            if worst:
                why += f"; largest reversal: {worst['above']} {worst['points']:.1f} points below {worst['below']}"
        return {"claim": entry["claim"], "paper": paper_text or "-", "ours": ours_text or "-",
                "verdict": entry["verdict"], "why": why or ""}
    pa, pb = entry.get("paper_a"), entry.get("paper_b")
    if pa is not None and pb is not None:
        paper_text = f"{_paper_pct(pa)} vs {_paper_pct(pb)}; gap {100 * (pa - pb):+.1f}"
    else:
        paper_text = " vs ".join(_paper_pct(p) if p is not None else "-" for p in (pa, pb)) if (pa, pb) != (None, None) else "-"
    ours_text = (f"{entry['a']} {_runs_text(entry['mean_a'], entry.get('std_a'), entry['runs_a'])} vs "
                 f"{entry['b']} {_runs_text(entry['mean_b'], entry.get('std_b'), entry['runs_b'])}; gap {100 * entry['gap']:+.1f}")
    why = entry.get("why")
    if why is None and entry.get("std") is not None:
        why = f"gap {100 * entry['gap']:+.1f} against 2 x std = {200 * entry['std']:.1f}"
    return {"claim": entry["claim"], "paper": paper_text, "ours": ours_text,
            "verdict": entry["verdict"], "why": why or ""}


def closing_table(entries: list[dict], headroom: dict | None = None) -> list[dict]:
    """A notebook's closing table, json-ready: one row per verdict entry (:class:`Verdicts`' ``entries``)
    with "claim", "paper" (the paper's numbers, percent), "ours" (mean +- std (runs), percent), "verdict"
    (one of :data:`VERDICTS`) and "why"; with ``headroom`` a first row says whether the miniature has room
    for the claims (floor / baseline / ceiling; its verdict column reads "testable" or "not testable here":
    the room, not a claim). Runs are in brackets: "55.6 +- 1.7 (3)", "57.9 (1)"."""
    rows = []
    if headroom is not None:
        def row(seeds):
            mean, std = mean_std(seeds)
            return _runs_text(mean, std, len(seeds))

        paper = " / ".join(_paper_pct(headroom[k]) if headroom.get(k) is not None else "-"
                           for k in ("paper_baseline", "paper_ceiling"))
        rows.append({"claim": "the room: floor / baseline / ceiling (the paper: baseline / ceiling)",
                     "paper": paper if paper != "- / -" else "-",
                     "ours": f"{_pct(headroom['floor'])} / {row(headroom['baseline_seeds'])} / {row(headroom['ceiling_seeds'])}",
                     "verdict": "testable" if headroom["testable"] else NOT_TESTABLE, "why": headroom["why"] or ""})
    return rows + [_closing_row(e) for e in entries]
