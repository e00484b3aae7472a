"""Running a paper's ablation grid: many short trainings, side by side, and the timing of one step.

A notebook's tables each need several trainings that differ in one switch. :func:`run_grid` runs a
module-level function once per named configuration, in this process or - on a CPU, where the dense
CRF of pydensecrf uses one core - in a few spawned worker processes at once. Every run seeds itself,
so its numbers do not depend on how the runs were scheduled. Paper-specific drivers live beside this
file (:mod:`wsss.experiments.asdt`).
"""
from __future__ import annotations

import multiprocessing
import os
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from typing import Any, Callable

import torch
from tqdm.auto import tqdm


def _call_in_worker(fn: Callable, config: dict, threads: int) -> Any:
    torch.set_num_threads(threads)
    return fn(**config)


def run_grid(fn: Callable[..., Any], configs: dict[str, dict], *, workers: int = 1, desc: str = "runs") -> dict[str, Any]:
    """``{name: fn(**config)}`` for every named configuration, in the order of ``configs``.

    ``workers`` > 1 runs that many spawned processes at once, each with an equal share of the CPU
    threads (``fn`` must then be importable: a function of a module, not of a notebook). A run that
    fails raises its error here, naming the configuration.
    """
    if workers < 1:
        raise ValueError(f"workers={workers!r} must be >= 1")
    results: dict[str, Any] = {}
    bar = tqdm(total=len(configs), desc=desc, dynamic_ncols=True)

    def done(name: str, get: Callable[[], Any]) -> None:
        try:
            results[name] = get()
        except Exception as err:
            raise RuntimeError(f"run {name!r} failed: {err}") from err
        bar.set_postfix_str(name)
        bar.update(1)

    try:
        if workers == 1 or len(configs) <= 1:
            for name, config in configs.items():
                done(name, lambda: fn(**config))
        else:
            threads = max(1, (os.cpu_count() or 1) // workers)
            pool = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"))
            try:
                futures = {pool.submit(_call_in_worker, fn, config, threads): name for name, config in configs.items()}
                for future in as_completed(futures):
                    done(futures[future], future.result)
            finally:
                pool.shutdown(wait=True, cancel_futures=True)      # a failed run stops the queued ones
    finally:
        bar.close()
    return {name: results[name] for name in configs}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def step_timing(method: torch.nn.Module, batch: dict, *, steps: int = 5, warmup: int = 2, step: int = 0,
                lr: float = 1e-4) -> dict:
    """Milliseconds of one training step (forward, backward, SGD update), with and without the work
    that is not a network pass, timed side by side on the same batch.

    ``method`` must have a ``timing_network_only`` switch (as :class:`wsss.methods.asdt.ASDT`): when set,
    its step reuses the labels of the step before and skips the label-only losses. ``batch`` is on the
    method's device; ``step`` is the iteration number passed to the method (it picks the teacher).
    Returns {"full_ms", "network_ms", "other_ms", "other_fraction"}; the weights change during timing.
    """
    if not hasattr(method, "timing_network_only"):
        raise TypeError(f"{type(method).__name__} has no timing_network_only switch to time it without its label work")
    device = next(method.parameters()).device
    optimizer = torch.optim.SGD(method.parameters(), lr=lr)
    method.train()

    def timed(network_only: bool) -> float:
        method.timing_network_only, method._last_targets = network_only, None
        times = []
        for i in range(warmup + steps):
            _sync(device)
            start = time.perf_counter()
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
                loss = method(batch, step)["loss"]
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            _sync(device)
            if i >= warmup:
                times.append(time.perf_counter() - start)
        return 1000 * sorted(times)[len(times) // 2]

    try:
        full, network = timed(False), timed(True)
    finally:
        method.timing_network_only, method._last_targets = False, None
    return {"full_ms": full, "network_ms": network, "other_ms": full - network,
            "other_fraction": (full - network) / full}
