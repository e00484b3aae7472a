"""Result records and verdicts that every notebook writes the same way.

* mIoU is stored as a fraction in [0, 1]; the paper's number, printed in percent in its tables, is
  stored beside it as a fraction too (:func:`miou_record`);
* a row run over several seeds keeps every seed's value, their mean and standard deviation;
* an ordering verdict says whether the paper's ranking of rows held here: "held", "did not hold", or
  "inconclusive" where two rows differ by less than their seeds' spread (:func:`ordering_verdict`).
"""
from __future__ import annotations

import math
from typing import Sequence


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


def pair_verdict(a, b) -> str:
    """Is row ``a`` above row ``b``? "held" / "did not hold", or "inconclusive" when the gap of the
    means is not larger than the larger of the two rows' seed standard deviations. a, b: a number or
    per-seed numbers each (single values have no spread, so they always decide)."""
    (mean_a, std_a), (mean_b, std_b) = mean_std(a), mean_std(b)
    gap = mean_a - mean_b
    if abs(gap) <= max(std_a, std_b):
        return "inconclusive"
    return "held" if gap > 0 else "did not hold"


def ordering_verdict(ours: dict, paper: dict[str, float], *, what: str = "mIoU", tie: float = 0.0) -> str:
    """One plain sentence: does the paper's ranking of the rows hold in ours, and by how much?

    ours: row -> number or list of per-seed numbers; paper: row -> number, in the same unit (rows
    missing from either side are left out). Pairs the paper separates by at most ``tie`` are not
    counted. Each other pair of rows is held, reversed, or inconclusive (:func:`pair_verdict`); the
    verdict is "held" / "did not hold" / "inconclusive" when every pair says so, else "held only in
    part". Names the largest decided reversal.
    """
    rows = [r for r in paper if r in ours and paper[r] is not None and ours[r] is not None and seed_values(ours[r])]
    if len(rows) < 2:
        return f"{what}: fewer than two rows to compare with the paper."
    mean = {r: mean_std(ours[r])[0] for r in rows}
    spread = {r: mean_std(ours[r])[1] for r in rows}
    by_paper = sorted(rows, key=lambda r: -paper[r])
    by_ours = sorted(rows, key=lambda r: -mean[r])
    counts = {"held": 0, "did not hold": 0, "inconclusive": 0}
    worst = None
    for i, a in enumerate(by_paper):
        for b in by_paper[i + 1:]:
            if paper[a] - paper[b] <= tie:
                continue
            verdict = pair_verdict(ours[a], ours[b])
            counts[verdict] += 1
            gap = mean[a] - mean[b]
            if verdict == "did not hold" and (worst is None or gap < worst[2]):
                worst = (a, b, gap)
    pairs = sum(counts.values())
    verdict = next((v for v, n in counts.items() if n == pairs), "held only in part")
    several = any(len(seed_values(ours[r])) > 1 for r in rows)
    fmt = (lambda r: f"{r} ({mean[r]:.4g} +- {spread[r]:.2g})") if several else (lambda r: f"{r} ({mean[r]:.4g})")
    text = (f"{what}: the paper's ordering {verdict} here ({counts['held']} of {pairs} pairwise orders"
            + (f"; {counts['inconclusive']} within the seeds' spread" if counts["inconclusive"] else "") + "). "
            f"Paper: {' > '.join(f'{r} ({paper[r]:.4g})' for r in by_paper)}. Here: {' > '.join(map(fmt, by_ours))}.")
    if worst is not None:
        text += f" Largest reversal: {worst[0]} is {-worst[2]:.1f} points below {worst[1]} here."
    return text
