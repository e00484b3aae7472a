"""The cost of one training step, with and without the work that is not a network pass.

A WSSS step often spends more time making its labels (dense CRFs, random walks, PAR) than in the
network. :func:`step_timing` times both on the same batch, side by side, for any method that follows
the small protocol of :class:`wsss.train.ReusableLabels`: with ``timing_network_only`` set, a step
reuses the labels of the step before and skips its label-only losses (e.g. the CRF-energy loss).
"""
from __future__ import annotations

import time

import torch


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def step_timing(method: torch.nn.Module, batch: dict, *, steps: int = 5, warmup: int = 2, step: int = 0,
                lr: float = 1e-4) -> dict:
    """Milliseconds of one training step (forward, backward, SGD update), with and without the label
    work, timed on the same batch; the median of ``steps`` timed steps after ``warmup`` untimed ones.

    ``method`` follows :class:`wsss.train.ReusableLabels` (a ``timing_network_only`` switch);
    ``batch`` is on the method's device; ``step`` is the iteration number passed to the method (it may
    pick a teacher). A method's own ``after_step`` (an EMA update, ...) runs after each full step, not in
    the network-only ones: it is work beyond the network passes. Returns {"full_ms", "network_ms", "other_ms", "other_fraction"}; the weights change
    during timing, and the switch is off again afterwards.
    """
    if not hasattr(method, "timing_network_only"):
        raise TypeError(f"{type(method).__name__} has no timing_network_only switch to time it without its "
                        "label work (derive it from wsss.train.ReusableLabels)")
    device = next(method.parameters()).device
    optimizer = torch.optim.SGD([p for p in method.parameters() if p.requires_grad], lr=lr)
    method.train()

    def timed(network_only: bool) -> float:
        method.timing_network_only = network_only
        times = []
        for i in range(warmup + steps):
            _sync(device)
            start = time.perf_counter()
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
                loss = method(batch, step)["loss"]
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if not network_only and callable(getattr(method, "after_step", None)):
                with torch.no_grad():
                    method.after_step(step + 1)         # e.g. an EMA teacher's update: not a network pass
            _sync(device)
            if i >= warmup:
                times.append(time.perf_counter() - start)
        return 1000 * sorted(times)[len(times) // 2]

    try:
        full, network = timed(False), timed(True)
    finally:
        method.timing_network_only = False
    return {"full_ms": full, "network_ms": network, "other_ms": full - network,
            "other_fraction": (full - network) / full}


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
