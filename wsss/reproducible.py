"""Reproducible mode: the same numbers from the same commit on any x86-64 processor with AVX2.

torch, MKL, OpenBLAS and numpy choose their CPU kernels by the processor's instruction set: an
AVX-512 machine takes other convolution, matrix and vector code than an AVX2 one, the last bits of the
results differ, and a few hundred training steps amplify them into points of mIoU (measured: SSDD's
rows moved by 1.5-2.4 points between two x86 machines). Same machine, same seed, same threads:
bit-identical. So the package pins every such choice to the AVX2 path, which every x86-64 processor
since 2013 has, and fixes the thread counts (a parallel sum's order depends on them):

* ``ONEDNN_MAX_CPU_ISA=AVX2`` (torch's convolutions), ``ATEN_CPU_CAPABILITY=avx2`` (torch's own
  vectorised kernels), ``MKL_CBWR=AVX2`` (MKL's conditional numerical reproducibility: matrix products),
  ``OPENBLAS_CORETYPE=Haswell`` (numpy's BLAS), ``NPY_DISABLE_CPU_FEATURES`` (numpy's AVX-512 loops);
  these are read once, when each library starts its kernels, so they are set when ``wsss`` is imported
  - before torch, in every notebook kernel and, through the environment, in every spawned worker;
* :data:`THREADS` intra-op threads in the main process, one in each grid worker
  (:func:`wsss.experiments.run_grid`), two workers on any CPU (:func:`wsss.profiles.default_workers`);
* ``torch.use_deterministic_algorithms(True, warn_only=True)`` where no GPU is visible (GPUs are not
  covered, and deterministic cuDNN kernels would only slow a ``full`` run).

The mode is on for every profile: the pins must be in place before torch starts, before a notebook knows
its profile. For a ``full`` run on a many-core CPU, where 2 threads waste the machine, set
``WSSS_REPRODUCIBLE=0``.

It is on unless ``WSSS_REPRODUCIBLE=0`` is set before Python starts (or before ``wsss`` is first
imported): off, each library takes its fastest path on this processor, and numbers then match only on
the same processor. A value of a pinned variable that the user set already is kept (and recorded).
:func:`describe` is what every results json stores as ``meta["reproducible"]``.

Not covered: other architectures (ARM, POWER: other kernels altogether), GPUs (cuDNN and cuBLAS pick
their algorithms per card), other versions of torch, numpy, Pillow or libjpeg, and x86 processors
without AVX2.
"""
from __future__ import annotations

import functools
import os
import sys

#: environment variables that pin the CPU code paths (read by the libraries when they start)
PINS = {
    "ONEDNN_MAX_CPU_ISA": "AVX2",
    "ATEN_CPU_CAPABILITY": "avx2",
    "MKL_CBWR": "AVX2",
    "OPENBLAS_CORETYPE": "Haswell",
    "NPY_DISABLE_CPU_FEATURES": None,          # numpy's AVX-512 loops; the names depend on numpy's version
    "CUBLAS_WORKSPACE_CONFIG": ":4096:8",        # lets deterministic cuBLAS run on a GPU without warnings
}
#: torch's intra-op threads in the main process in reproducible mode (WSSS_THREADS overrides)
THREADS = 2

_state: dict = {}


def enabled() -> bool:
    """True unless WSSS_REPRODUCIBLE is 0 / false / off / no."""
    return os.environ.get("WSSS_REPRODUCIBLE", "1").strip().lower() not in ("0", "false", "off", "no")


def threads() -> int:
    """The pinned thread count of the main process (WSSS_THREADS, default :data:`THREADS`)."""
    value = os.environ.get("WSSS_THREADS", str(THREADS))
    if not value.isdigit() or int(value) < 1:
        raise ValueError(f"environment variable WSSS_THREADS={value!r} must be a positive integer")
    return int(value)


def _numpy_avx512() -> str:
    """numpy's names of its AVX-512 dispatch targets (read from its version, without importing it:
    importing numpy would read NPY_DISABLE_CPU_FEATURES before it is set). numpy 2.4 groups them as
    X86_V4; older versions name each feature set; a name numpy does not know only warns."""
    from importlib.metadata import PackageNotFoundError, version
    try:
        major, minor = (int(x) for x in version("numpy").split(".")[:2])
    except (PackageNotFoundError, ValueError):
        major, minor = 0, 0
    if (major, minor) >= (2, 4):
        return "X86_V4 AVX512_ICL AVX512_SPR"
    return "AVX512F AVX512CD AVX512_SKX AVX512_CLX AVX512_CNL AVX512_ICL AVX512_SPR"


def pinned_values() -> dict[str, str]:
    """:data:`PINS` with numpy's names filled in."""
    return {k: (_numpy_avx512() if v is None else v) for k, v in PINS.items()}


def has_avx2() -> bool:
    """True on an x86-64 processor that reports AVX2 and FMA (read without importing torch or numpy:
    /proc/cpuinfo on Linux, sysctl on macOS, IsProcessorFeaturePresent on Windows); False elsewhere,
    also where it cannot be told - pinning AVX2 on a processor without it would crash (SIGILL)."""
    import platform
    import subprocess
    if platform.machine().lower() not in ("x86_64", "amd64", "x64"):
        return False
    flags = processor_flags()
    if flags:
        return {"avx2", "fma"} <= flags
    try:
        if sys.platform == "darwin":
            out = subprocess.run(["sysctl", "-n", "hw.optional.avx2_0"], capture_output=True, text=True, timeout=5)
            return out.stdout.strip() == "1"
        if os.name == "nt":
            import ctypes
            return bool(ctypes.windll.kernel32.IsProcessorFeaturePresent(40))   # PF_AVX2_INSTRUCTIONS_AVAILABLE
    except Exception:   # noqa: BLE001 - any failure means: cannot tell, so do not pin
        return False
    return False


def pin_environment() -> None:
    """Set :data:`PINS` in ``os.environ`` (a value already set is kept) before torch or numpy start.
    Called by ``wsss/__init__.py``; records whether torch / numpy were imported before it. On a processor
    without AVX2 (or not x86-64) nothing is pinned, and :func:`describe` says so."""
    if _state or not enabled():
        return
    if not has_avx2():
        _state["skipped"] = "no pins: this processor is not x86-64 with AVX2 (or it could not be told)"
        return
    _state["torch_imported_first"] = "torch" in sys.modules
    _state["numpy_imported_first"] = "numpy" in sys.modules
    pins = pinned_values()
    _state["kept"] = {k: os.environ[k] for k, v in pins.items() if k in os.environ and os.environ[k] != v}
    for key, value in pins.items():
        os.environ.setdefault(key, value)


def apply_torch() -> None:
    """Thread count and deterministic algorithms (after torch is imported)."""
    if not enabled():
        return
    import torch
    torch.set_num_threads(threads())
    if not torch.cuda.is_available():       # GPUs are not covered; deterministic cuDNN would only slow them
        torch.use_deterministic_algorithms(True, warn_only=True)


def processor() -> str:
    """The processor's model name (``/proc/cpuinfo`` on Linux, else :func:`platform.processor`)."""
    import platform
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def processor_flags() -> set[str]:
    """The instruction-set flags of the processor (empty where ``/proc/cpuinfo`` is missing)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


@functools.lru_cache(maxsize=1)
def onednn_isa() -> str | None:
    """The instruction set oneDNN runs its convolutions with in this process, read from its verbose
    header (one small convolution with verbose output on, the process's stdout caught at the file
    descriptor); None where it cannot be read (a torch without oneDNN, a non-Linux stdout)."""
    if os.name == "nt":
        return None
    try:
        return _onednn_isa()
    except Exception:   # noqa: BLE001 - a report, never a reason for a run to fail
        return None


def _onednn_isa() -> str | None:
    import ctypes
    import tempfile

    import torch
    if not torch.backends.mkldnn.is_available():
        return None
    libc = ctypes.CDLL(None)
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        with tempfile.TemporaryFile(mode="w+b") as tmp:
            os.dup2(tmp.fileno(), 1)
            try:      # (a convolution this size goes to oneDNN; a tiny one takes torch's own kernel)
                with torch.backends.mkldnn.verbose(torch.backends.mkldnn.VERBOSE_ON), torch.no_grad():
                    torch.nn.functional.conv2d(torch.ones(2, 32, 32, 32), torch.ones(32, 32, 3, 3))
                libc.fflush(None)
            finally:
                os.dup2(saved, 1)
            tmp.seek(0)
            text = tmp.read().decode(errors="replace")
    except (OSError, RuntimeError):
        return None
    finally:
        os.close(saved)
    for line in text.splitlines():
        if ",isa:" in line:
            return line.split(",isa:", 1)[1].strip()
    return None


def _numpy_avx512_off() -> bool | None:
    """True when numpy dispatches none of its AVX-512 loops (None where numpy does not say)."""
    try:
        from numpy._core import _multiarray_umath as umath
    except ImportError:
        try:
            from numpy.core import _multiarray_umath as umath
        except ImportError:
            return None
    targets = [n for n in getattr(umath, "__cpu_dispatch__", []) if "512" in n or n == "X86_V4"]
    features = getattr(umath, "__cpu_features__", {})
    return not any(features.get(n) for n in targets) if targets else None


def describe() -> dict:
    """What a results json records under ``meta["reproducible"]``: the mode, the processor, the pins in
    force and the code paths actually taken (ATen's capability, oneDNN's ISA), the threads."""
    import torch
    flags = processor_flags()
    info = {"enabled": enabled(), "processor": processor(),
            "processor_isa": "AVX-512" if "avx512f" in flags else "AVX2" if "avx2" in flags else "older or unknown",
            "aten_capability": torch.backends.cpu.get_cpu_capability(), "onednn_isa": onednn_isa(),
            "torch_threads": torch.get_num_threads(), "deterministic_algorithms": torch.are_deterministic_algorithms_enabled()}
    if enabled() and _state.get("skipped"):
        info["skipped"] = _state["skipped"]
    elif enabled():
        info["pins"] = {k: os.environ.get(k) for k in PINS}
        info["numpy_avx512_off"] = _numpy_avx512_off()
        info["threads_pinned"] = threads()
        if _state.get("kept"):
            info["kept_user_values"] = _state["kept"]
        if _state.get("torch_imported_first"):
            info["warning"] = "torch was imported before wsss: its code paths may not be the pinned ones"
    return info
