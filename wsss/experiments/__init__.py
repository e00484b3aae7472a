"""Running a paper's experiments: one generic run driver, grids of runs side by side, step timing.

* :func:`run_variant` trains one variant of any method and scores its named outputs
  (:mod:`.driver`, with :func:`pretrain_classifier` and :func:`shared_warmup`);
* :func:`run_grid` runs many of them, in spawned CPU workers if asked (:mod:`.grid`);
* :func:`step_timing` times a step with and without its label work (:mod:`.timing`).

A paper's own module beside these (:mod:`.asdt`) holds only what its method outputs and how to
predict it.
"""
from .driver import pretrain_classifier, run_variant, shared_warmup
from .grid import run_grid
from .timing import step_timing

__all__ = ["pretrain_classifier", "run_grid", "run_variant", "shared_warmup", "step_timing"]
