"""wsss: weakly supervised semantic segmentation, readable PyTorch code and one notebook per paper.

Importing the package first switches on the reproducible mode (:mod:`wsss.reproducible`): the CPU
code paths of torch, MKL, OpenBLAS and numpy are pinned to AVX2 and the thread counts fixed, so that
a notebook rerun on another x86 machine gives the committed numbers. ``WSSS_REPRODUCIBLE=0`` turns it off.
"""
from . import reproducible as _reproducible

_reproducible.pin_environment()      # before torch or numpy start their kernels

import torch as _torch  # noqa: E402  (after the pins)

_reproducible.apply_torch()
