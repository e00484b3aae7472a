"""A paper's ablation grid: many short trainings, side by side.

A notebook's tables each need several trainings that differ in one switch. :func:`run_grid` runs a
module-level function once per named configuration, in this process or - on a CPU, where the dense
CRF of pydensecrf uses one core - in a few spawned worker processes at once, each with one share of
the CPU threads. Every run seeds itself, so its numbers do not depend on how the runs were scheduled.
"""
from __future__ import annotations

import multiprocessing
import os
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from typing import Any, Callable

import torch
from tqdm import tqdm

from .. import reproducible


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
            # one thread a worker in the reproducible mode (a sum's order depends on the thread count)
            threads = 1 if reproducible.enabled() else max(1, (os.cpu_count() or 1) // workers)
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


