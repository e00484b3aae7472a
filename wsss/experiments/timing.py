"""The cost of one training step, with and without the work that is not a network pass.

A WSSS step often spends more time making its labels (dense CRFs, random walks, PAR) than in the
network. :func:`step_timing` times both on the same batch, side by side, for any method that follows
the small protocol of :class:`wsss.train.ReusableLabels`: with ``timing_network_only`` set, a step
reuses the labels of the step before and skips its label-only losses (e.g. the CRF-energy loss).
"""
from __future__ import annotations

import time

import torch

from ..train import training_step


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def step_timing(method: torch.nn.Module, batch: dict, *, steps: int = 5, warmup: int = 2, step: int = 0,
                lr: float = 1e-4) -> dict:
    """Milliseconds of one training step (forward, backward, SGD update), with and without the label
    work, timed on the same batch.

    The two kinds of step are **interleaved** (whole, network-only, whole, ...: ``warmup`` untimed pairs, then
    ``steps`` timed pairs), so that a slow phase of the machine (another process, caches, the clock) falls on both
    alike; the first version timed all whole steps first, and the network-only steps, timed later, came out
    slower than the whole ones (a negative share). ``full_ms`` and ``network_ms`` are the medians of each kind;
    ``other_ms`` is the median of the paired differences, and ``noise_ms`` the spread of those differences (half
    their inter-quartile range). When the label work is below what the timer can tell (``other_ms`` under
    ``noise_ms``, negative included), ``resolved`` is False and ``other_ms`` / ``other_fraction`` are reported as
    measured - a notebook should say "within the timing noise", not quote the share.

    ``method`` follows :class:`wsss.train.ReusableLabels` (a ``timing_network_only`` switch); ``batch`` is on the
    method's device; ``step`` is the iteration number passed to the method (it may pick a teacher). A method's
    own ``after_step`` (an EMA update, ...) runs after each whole step, not in the network-only ones: it is work
    beyond the network passes. Returns {"full_ms", "network_ms", "other_ms", "other_fraction", "noise_ms",
    "resolved", "pairs"}; the weights change during timing, and the switch is off again afterwards.
    """
    if not hasattr(method, "timing_network_only"):
        raise TypeError(f"{type(method).__name__} has no timing_network_only switch to time it without its "
                        "label work (derive it from wsss.train.ReusableLabels)")
    if steps < 1 or warmup < 0:
        raise ValueError(f"steps={steps} must be >= 1 and warmup={warmup} >= 0")
    device = next(method.parameters()).device
    optimizer = torch.optim.SGD([p for p in method.parameters() if p.requires_grad], lr=lr)
    method.train()

    def one(network_only: bool) -> float:
        # the mode is switched without the property, which would forget the stored labels (ReusableLabels)
        method._network_only = network_only
        _sync(device)
        start = time.perf_counter()
        # a whole step runs the method's after_step (an EMA teacher's update: not a network pass); a network-only one not
        training_step(method, batch, step, optimizer, amp=device.type == "cuda", desc="step_timing", hooks=not network_only)
        _sync(device)
        return 1000 * (time.perf_counter() - start)

    full, network = [], []
    method.timing_network_only = False              # forget labels stored before
    try:
        one(True)                                   # untimed: makes and stores the labels the network-only steps reuse
        for i in range(warmup + steps):
            f, n = one(False), one(True)
            if i >= warmup:
                full.append(f)
                network.append(n)
    finally:
        method.timing_network_only = False
    med = lambda xs: sorted(xs)[len(xs) // 2]  # noqa: E731
    diffs = sorted(f - n for f, n in zip(full, network))
    other = med(diffs)
    noise = (diffs[(3 * len(diffs)) // 4] - diffs[len(diffs) // 4]) / 2 if len(diffs) >= 4 else abs(diffs[-1] - diffs[0]) / 2
    full_ms = med(full)
    return {"full_ms": full_ms, "network_ms": med(network), "other_ms": other, "other_fraction": other / full_ms,
            "noise_ms": noise, "resolved": other > noise, "pairs": len(diffs)}


def median_ms(fn, device: torch.device, repeats: int = 5):
    """(median milliseconds of ``repeats`` calls of ``fn()`` after one untimed call, the last result), with
    CUDA synchronised around each call: the pieces of a step's label work, timed one by one."""
    times, out = [], None
    for _ in range(repeats + 1):
        _sync(device)
        start = time.perf_counter()
        out = fn()
        _sync(device)
        times.append(1000 * (time.perf_counter() - start))
    return sorted(times[1:])[repeats // 2], out
