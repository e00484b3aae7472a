"""Fully connected dense CRF (Krähenbühl & Koltun, 2011) and the dense-CRF energy as a loss, one module.

**Inference.** Every paper here post-processes with a dense CRF over labels l_i of pixels i:

    E(l) = sum_i psi_u(l_i) + sum_{i<j} mu(l_i, l_j) [w_g k_g(f_i, f_j) + w_b k_b(f_i, f_j)],

with unary psi_u(l) = -log p_i(l), Potts compatibility mu(l, l') = [l != l'], a Gaussian kernel on
positions (``gaussian=(sxy, compat)``: f = p / sxy) and a bilateral one on positions and colours
(``bilateral=(sxy, srgb, compat)``: f = (p / sxy, rgb / srgb)), each k = exp(-|f_i - f_j|^2 / 2).
Mean-field inference (Krähenbühl & Koltun, Alg. 1) repeats ``n_iter`` times

    Q_i(l) ∝ exp( log p_i(l) + sum_m w_m [K~_m Q(l)]_i ),    K~ = D^-1/2 K D^-1/2,  D = diag(K 1),

starting from Q = softmax(log p), and returns Q. These are pydensecrf's conventions exactly: the
unary is ``-log(clip(p, 1e-8))`` (``unary_from_softmax``), the kernels are normalised symmetrically
(``NORMALIZE_SYMMETRIC``, D computed by filtering a vector of ones with the same lattice), the filter
includes the pixel itself, and the Potts term enters with +w (``PottsCompatibility`` gives -w, which
the update subtracts), which is the Potts message up to a per-pixel constant.

Two backends, one result: ``"pydensecrf"`` calls the reference C++ code (one CPU core); ``"torch"``
runs :mod:`wsss.refine.lattice`, a plain-torch permutohedral lattice (both kernels on the lattice, as
pydensecrf does), on CPU or CUDA, one lattice per image (or per batch) reused for all iterations
and classes. ``"auto"`` picks torch on CUDA and, on CPU, torch from :data:`AUTO_TORCH_MIN_PIXELS`
pixels up (see the constant for the benchmark behind it).

**Loss.** :func:`dense_crf_loss` is the relaxed dense-CRF (Potts) energy used as a regulariser by Tang
et al. "On regularized losses for weakly-supervised CNN segmentation" (ECCV 2018), ASDT's structure
loss L_str (Eq. 6-8), Seminar's L_CRF (Eq. 4) and TSCD's L_reg:

    E(S) = sum_c S_c^T W (1 - S_c),     W_ij = exp(-|p_i - p_j|^2 / 2 sigma_xy^2 - |I_i - I_j|^2 / 2 sigma_rgb^2).
"""
from __future__ import annotations

import math
import numbers

import numpy as np
import torch
import torch.nn.functional as F

from ..ops import channels_last, class_argmax
from .lattice import LatticeOperator, PermutohedralLattice, lattice_filter

BACKENDS = ("auto", "torch", "pydensecrf")
UNARY_CLIP = 1e-8        # p is clipped to [1e-8, 1] before -log, as unary_from_softmax(clip=1e-8)
# backend="auto" on CPU: torch from this many pixels per image up, pydensecrf below. Measured by
# scripts/bench_crf.py (10 iterations, 21 labels; results/bench_crf*.json, README "Dense CRF speed"):
# with ONE thread, as every notebook's training worker, torch took 2x pydensecrf's time at 32x32, 1.25x
# at 64x64, and 0.9-1.1x from 160x160 to 500x375; with two threads it was 1.7-1.8x faster from 160x160
# up. Below the threshold, on one thread, its ~200 small tensor ops per call cost more than they save.
AUTO_TORCH_MIN_PIXELS = 256 * 256


# ---------------------------------------------------------------------------------------------------
# Input checks
# ---------------------------------------------------------------------------------------------------
def _is_real(v) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, (bool, np.bool_))


def _check_n_iter(n_iter) -> None:
    """n_iter: a non-negative int (not a float such as 2.5, not a bool)."""
    if isinstance(n_iter, (bool, np.bool_)) or not isinstance(n_iter, numbers.Integral):
        raise TypeError(f"n_iter must be a non-negative int, got {n_iter!r}")
    if n_iter < 0:
        raise ValueError(f"n_iter must be >= 0, got {n_iter}")


def _check_kernels(gaussian, bilateral) -> None:
    """gaussian (sxy, compat) and bilateral (sxy, srgb, compat), each a tuple (or list) or None.

    The widths sxy and srgb must be finite numbers > 0: they divide the features, and a zero width
    crashes pydensecrf (a segfault) and breaks the torch lattice. compat, the Potts weight, must be a
    finite number; 0 switches the kernel off and a negative weight (an attractive-to-differ term that
    pydensecrf accepts, as the torch backend does) is allowed.
    """
    for name, value, fields in (("gaussian", gaussian, ("sxy", "compat")),
                                ("bilateral", bilateral, ("sxy", "srgb", "compat"))):
        if value is None:
            continue
        form = f"({', '.join(fields)})"
        if not isinstance(value, (tuple, list)):
            raise TypeError(f"{name} must be a tuple {form} or None, got {value!r}")
        if len(value) != len(fields):
            raise ValueError(f"{name} must be a tuple {form} of {len(fields)} numbers or None, "
                             f"got {tuple(value)!r}")
        for field, v in zip(fields, value):
            if not _is_real(v):
                raise TypeError(f"{name}={tuple(value)!r}: {field} must be a number, got {v!r}")
            if field == "compat":
                if not math.isfinite(v):
                    raise ValueError(f"{name}={tuple(value)!r}: compat must be a finite number, got {v!r}")
            elif not (math.isfinite(v) and v > 0):
                raise ValueError(f"{name}={tuple(value)!r}: {field} must be a finite number > 0 "
                                 f"(a kernel width), got {v!r}")


def _check_device(backend: str, device) -> None:
    """device: None, or a usable torch device; pydensecrf runs on the CPU only, so a GPU device with
    backend="pydensecrf" is a contradiction (an error, not silently ignored)."""
    if device is None:
        return
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise ValueError(f"device={device!r} is not a device; use None, 'cpu', 'cuda' or 'cuda:N'") from None
    if backend == "pydensecrf" and dev.type != "cpu":
        raise ValueError(f"device={device!r} contradicts backend='pydensecrf', which runs on the CPU only; "
                         f"use backend='torch' (or 'auto') to run on {dev.type}, or device=None or 'cpu'")
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device={device!r}: CUDA is not available here; use device=None (CUDA only "
                             f"when there is one) or 'cpu'")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ValueError(f"device={device!r}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    elif dev.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"device={device!r}: MPS is not available here; use device=None or 'cpu'")


def _check_options(n_iter, gaussian, bilateral, backend, device) -> None:
    """The CRF's parameters, checked before any tensor work and before any backend runs."""
    if backend not in BACKENDS:
        raise ValueError(f"backend={backend!r} is not known; choose one of {BACKENDS}")
    _check_n_iter(n_iter)
    _check_kernels(gaussian, bilateral)
    _check_device(backend, device)


def _as_tensor(x) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        return x
    x = np.ascontiguousarray(x)
    return torch.from_numpy(x if x.flags.writeable else x.copy())


def _check_batch(images, probs) -> tuple[torch.Tensor, torch.Tensor]:
    """Validate images uint8 (B, H, W, 3) and probs float (B, C, H, W) summing to 1 over C."""
    images, probs = _as_tensor(images), _as_tensor(probs).detach()
    if images.dtype != torch.uint8:
        raise TypeError(f"images must be uint8 (B, H, W, 3), got dtype {images.dtype}")
    if images.ndim != 4 or images.shape[3] != 3:
        raise ValueError(f"images must have shape (B, H, W, 3), got {tuple(images.shape)}")
    if not probs.is_floating_point():
        raise TypeError(f"probs must be a float array (C, H, W), got dtype {probs.dtype}")
    if probs.ndim != 4 or probs.shape[2:] != images.shape[1:3] or probs.shape[0] != images.shape[0]:
        raise ValueError(f"probs shape {tuple(probs.shape[1:])} does not match image (H, W) = "
                         f"{tuple(images.shape[1:3])}; expected (C, H, W)")
    if probs.numel() == 0 or probs.shape[1] < 1:
        raise ValueError("probs must hold at least one class and one pixel")
    low = probs.amin().item()
    err = (probs.float().sum(1) - 1.0).abs().amax().item()
    if not (math.isfinite(low) and math.isfinite(err)):
        raise ValueError("probs must be finite, non-negative and sum to 1 over the class axis; it holds NaN or inf")
    if not (low >= 0 and err <= 1e-3):
        raise ValueError("probs must be non-negative and sum to 1 over the class axis (apply softmax first)")
    return images, probs


def _check_pair(image, probs) -> tuple[torch.Tensor, torch.Tensor]:
    """One image (H, W, 3) and its probs (C, H, W), validated through the batched check."""
    image, probs = _as_tensor(image), _as_tensor(probs)
    if image.dtype != torch.uint8:
        raise TypeError(f"image must be uint8 (H, W, 3), got dtype {image.dtype}")
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"image must have shape (H, W, 3), got {tuple(image.shape)}")
    if probs.ndim != 3:
        raise ValueError(f"probs shape {tuple(probs.shape)} does not match image (H, W) = "
                         f"{tuple(image.shape[:2])}; expected (C, H, W)")
    return _check_batch(image[None], probs[None])


def _resolve(backend: str, probs, device, n_pixels: int) -> tuple[str, torch.device]:
    """(backend, device) to run on; ``probs`` is the caller's object (tensor or array)."""
    if backend not in BACKENDS:
        raise ValueError(f"backend={backend!r} is not known; choose one of {BACKENDS}")
    if device is None:
        if isinstance(probs, torch.Tensor) and probs.device.type != "cpu":
            device = probs.device
        elif backend != "pydensecrf" and torch.cuda.is_available():
            device = torch.device("cuda", torch.cuda.current_device())
        else:
            device = torch.device("cpu")
    device = torch.device(device)
    if backend == "auto":
        backend = "torch" if device.type != "cpu" or n_pixels >= AUTO_TORCH_MIN_PIXELS else "pydensecrf"
    return backend, device


# ---------------------------------------------------------------------------------------------------
# Inference
# ---------------------------------------------------------------------------------------------------
def dense_crf(image, probs, *, n_iter: int = 10, gaussian: tuple[float, float] | None = (3, 3),
              bilateral: tuple[float, float, float] | None = (80, 13, 10), backend: str = "auto",
              device=None) -> torch.Tensor:
    """Refine class probabilities with a dense CRF (mean field, ``n_iter`` steps).

    image: uint8 (H, W, 3); probs: float (C, H, W) summing to 1 over C (numpy arrays or tensors).
    gaussian: (sxy, compat) of the position kernel; bilateral: (sxy, srgb, compat); None drops a kernel.
    backend: "torch", "pydensecrf" or "auto"; device: where the torch backend runs (default: probs'
    device if it is a GPU tensor, else CUDA when available, else the CPU).
    Returns the refined probabilities Q, float32 tensor (C, H, W), on probs' device if probs is a
    tensor, else on the CPU.

    Checked before any backend runs (one error naming the parameter): n_iter a non-negative int;
    gaussian / bilateral tuples of 2 / 3 numbers (or None), widths sxy and srgb finite and > 0, compat
    finite (negative allowed, as pydensecrf allows it); device usable here (CUDA present for "cuda").
    backend="pydensecrf" runs on the CPU only: with a non-CPU device it is an error, not ignored.
    """
    _check_options(n_iter, gaussian, bilateral, backend, device)
    image_t, probs_t = _check_pair(image, probs)
    return _refine(image_t, probs_t, probs, n_iter, gaussian, bilateral, backend, device)[0]


def dense_crf_batch(images, probs, *, n_iter: int = 10, gaussian: tuple[float, float] | None = (3, 3),
                    bilateral: tuple[float, float, float] | None = (80, 13, 10), backend: str = "auto",
                    device=None) -> torch.Tensor:
    """Batched :func:`dense_crf`: images uint8 (B, H, W, 3), probs (B, C, H, W) -> Q (B, C, H, W).

    The torch backend filters the whole batch on one lattice (the images' vertices kept apart), so a
    batch costs about as much as one image with B times the pixels. Arguments are checked as there.
    """
    _check_options(n_iter, gaussian, bilateral, backend, device)
    if len(images) != len(probs):
        raise ValueError(f"{len(images)} images but {len(probs)} probability maps")
    image_t, probs_t = _check_batch(images, probs)
    return _refine(image_t, probs_t, probs, n_iter, gaussian, bilateral, backend, device)


def dense_crf_runs(images, runs, *, n_iter: int = 10, gaussian: tuple[float, float] | None = (3, 3),
                   bilateral: tuple[float, float, float] | None = (80, 13, 10), backend: str = "auto",
                   device=None) -> list[torch.Tensor]:
    """:func:`dense_crf_batch` of the same images for each probability map (B, C, H, W) of ``runs``, with
    the kernels built once for all of them (torch: one :class:`DenseCRF`; pydensecrf: one CRF object per
    image, a new unary per run). The same numbers as separate calls, less set-up. Returns a list of Q."""
    _check_options(n_iter, gaussian, bilateral, backend, device)
    if not runs:
        raise ValueError("runs must hold at least one probability map")
    checked = []
    for probs in runs:
        if len(images) != len(probs):
            raise ValueError(f"{len(images)} images but {len(probs)} probability maps")
        checked.append(_check_batch(images, probs))
    image_t = checked[0][0]
    backend, device = _resolve(backend, runs[0], device, image_t.shape[1] * image_t.shape[2])
    if backend == "pydensecrf":
        per_image = [_pydensecrf_runs(im.cpu().numpy(), [p[i].cpu().numpy() for _, p in checked], n_iter,
                                      gaussian, bilateral) for i, im in enumerate(image_t)]
        qs = [torch.stack([torch.from_numpy(q[r]) for q in per_image]) for r in range(len(runs))]
    else:
        crf = DenseCRF(image_t.to(device), gaussian=gaussian, bilateral=bilateral)
        qs = [crf.refine(p.to(device), n_iter) for _, p in checked]
    return [q.to(r.device if isinstance(r, torch.Tensor) else "cpu") for q, r in zip(qs, runs)]


@torch.no_grad()
def crf_label(images: torch.Tensor, probs: torch.Tensor, *, n_iter: int = 10,
              gaussian: tuple[float, float] | None = (3, 3),
              bilateral: tuple[float, float, float] | None = (80, 13, 10), backend: str = "auto") -> torch.Tensor:
    """The label map of a dense CRF: argmax of :func:`dense_crf_batch` -> int64 (B, H, W) on probs' device.

    images: uint8 (B, 3, H, W) or (B, H, W, 3); probs: (B, C, H, W), non-negative (renormalised over C
    here, so a fused or thresholded map can go in as it is). Used for CRF post-processing at test time
    and for the CRF-refined labels of a network's own prediction (ASDT's B^st, SSDD's advice m^A).
    """
    _check_options(n_iter, gaussian, bilateral, backend, None)
    if not isinstance(probs, torch.Tensor):
        raise TypeError(f"probs must be a torch tensor (B, C, H, W), got {type(probs).__name__}")
    images = channels_last(images)
    probs = probs.detach().float()
    probs = probs / probs.sum(1, keepdim=True).clamp_min(1e-12)
    q = dense_crf_batch(images.cpu() if backend == "pydensecrf" else images, probs, n_iter=n_iter,
                        gaussian=gaussian, bilateral=bilateral, backend=backend)
    return class_argmax(q).to(probs.device)


def _refine(images, probs, probs_arg, n_iter, gaussian, bilateral, backend, device) -> torch.Tensor:
    """Run the chosen backend on checked inputs (B, H, W, 3), (B, C, H, W); result on probs_arg's device."""
    backend, device = _resolve(backend, probs_arg, device, images.shape[1] * images.shape[2])
    if backend == "pydensecrf":
        q = torch.stack([torch.from_numpy(_pydensecrf(im.cpu().numpy(), p.cpu().numpy(), n_iter,
                                                      gaussian, bilateral))
                         for im, p in zip(images, probs)])
    else:
        q = crf_inference_torch(images.to(device), probs.to(device), n_iter=n_iter, gaussian=gaussian,
                                bilateral=bilateral)
    return q.to(probs_arg.device if isinstance(probs_arg, torch.Tensor) else "cpu")


def _pydensecrf(image, probs, n_iter, gaussian, bilateral) -> np.ndarray:
    return _pydensecrf_runs(image, [probs], n_iter, gaussian, bilateral)[0]


def _pydensecrf_runs(image, runs, n_iter, gaussian, bilateral) -> list[np.ndarray]:
    """pydensecrf on one image for each probability map (C, H, W) of ``runs``, with the kernels set up once
    (a new unary replaces the last one; the pairwise terms stay)."""
    import pydensecrf.densecrf as dcrf
    from pydensecrf.utils import unary_from_softmax

    n_labels, h, w = runs[0].shape
    crf = dcrf.DenseCRF2D(w, h, n_labels)
    if gaussian is not None:
        crf.addPairwiseGaussian(sxy=gaussian[0], compat=gaussian[1])
    if bilateral is not None:
        crf.addPairwiseBilateral(sxy=bilateral[0], srgb=bilateral[1], rgbim=np.ascontiguousarray(image),
                                 compat=bilateral[2])
    out = []
    for probs in runs:
        crf.setUnaryEnergy(np.ascontiguousarray(unary_from_softmax(probs.astype(np.float32), clip=UNARY_CLIP)))
        out.append(np.asarray(crf.inference(n_iter), dtype=np.float32).reshape(n_labels, h, w))
    return out


def _pixel_features(images: torch.Tensor, sxy: float, srgb: float | None = None):
    """Features of every pixel of a batch, (B*H*W, 2) or (B*H*W, 5), and each pixel's image index.

    f = (x / sxy, y / sxy[, r / srgb, g / srgb, b / srgb]) with x the column, y the row, in pixels
    (the order and scaling of DenseCRF2D::addPairwiseGaussian / addPairwiseBilateral).
    """
    b, h, w = images.shape[:3]
    dev = images.device
    y, x = torch.meshgrid(torch.arange(h, device=dev, dtype=torch.float32),
                          torch.arange(w, device=dev, dtype=torch.float32), indexing="ij")
    pos = torch.stack([x / sxy, y / sxy], -1).expand(b, h, w, 2)                     # (B, H, W, 2)
    feats = pos if srgb is None else torch.cat([pos, images.float() / srgb], -1)      # (B, H, W, 5)
    batch = torch.arange(b, device=dev).repeat_interleave(h * w) if b > 1 else None
    return feats.reshape(b * h * w, -1), batch


class DenseCRF:
    """The kernels of a dense CRF on one batch of images, built once (the torch backend).

    images: uint8 (B, H, W, 3) on the device to run on; gaussian (sxy, compat), bilateral (sxy, srgb,
    compat) as in :func:`dense_crf`. Building the permutohedral lattices of the kernels, their
    symmetric normalisation and the message operator is most of a CRF's cost on small images; every
    :meth:`refine` of the same images and kernels (RRM's two background runs, say) reuses them.
    """

    def __init__(self, images: torch.Tensor, *, gaussian: tuple[float, float] | None = (3, 3),
                 bilateral: tuple[float, float, float] | None = (80, 13, 10)):
        _check_kernels(gaussian, bilateral)
        self.shape = tuple(images.shape[:3])                                       # (B, H, W)
        n = self.shape[0] * self.shape[1] * self.shape[2]
        kernels = []                                   # (sxy, srgb or None, compat w)
        if gaussian is not None:
            kernels.append((gaussian[0], None, gaussian[1]))
        if bilateral is not None:
            kernels.append(bilateral)
        self.message = None
        self.bound = None
        with torch.no_grad(), torch.autocast(device_type=images.device.type, enabled=False):
            ones = torch.ones(n, 1, device=images.device)
            lattices, d_inv_sqrt = [], []
            for sxy, srgb, _ in kernels:
                lattices.append(PermutohedralLattice(*_pixel_features(images, sxy, srgb)))
                # NORMALIZE_SYMMETRIC: K~ = D^-1/2 K D^-1/2 with D = K 1 (the same lattice filters the ones)
                d_inv_sqrt.append(lattices[-1].filter(ones)[:, 0].add_(1e-20).rsqrt_())
            if kernels:
                # one operator for sum_m w_m K~_m: both kernels' vertices stacked, compat w_m folded in
                self.message = LatticeOperator(lattices, d_inv_sqrt, [k[2] * s for k, s in zip(kernels, d_inv_sqrt)])
                if all(k[2] >= 0 for k in kernels):
                    # Q sums to 1 over labels and K~ >= 0, so the message of label l at pixel i is at most
                    # b_i = sum_m w_m (K~_m 1)_i (see refine)
                    self.bound = self.message(ones)

    @torch.no_grad()
    def refine(self, probs: torch.Tensor, n_iter: int = 10) -> torch.Tensor:
        """Mean-field inference (Krähenbühl & Koltun 2011, Alg. 1, with the filtering of their Sec. 4) from
        probs float (B, C, H, W) summing to 1 over C, on the images' device: Q float32 (B, C, H, W)."""
        _check_n_iter(n_iter)
        b, c, h, w = probs.shape
        if (b, h, w) != self.shape:
            raise ValueError(f"probs of shape {tuple(probs.shape)} do not fit the CRF's images (B, H, W) = {self.shape}")
        with torch.autocast(device_type=probs.device.type, enabled=False):
            # unary: psi_u = -log clip(p)  ->  we carry log p                       (B*H*W, C)
            log_p = probs.float().clamp(UNARY_CLIP, 1.0).log().permute(0, 2, 3, 1).reshape(b * h * w, c)
            q = torch.softmax(log_p, 1)
            shifted = False
            if self.bound is not None and self.bound.max().item() < 50.0:
                # log p <= 0: shifting log p by -b_i keeps every exponent <= 0, and the softmax needs no
                # per-iteration max (slow over a short label axis on CPU). A huge bound (exp(-b) could
                # underflow for all labels) falls back to torch.softmax.
                log_p, shifted = log_p - self.bound, True
            for _ in range(n_iter):
                # Q_i(l) ∝ exp(log p_i(l) + sum_m w_m [K~_m Q(l)]_i)
                energy = self.message(q).add_(log_p) if self.message is not None else log_p.clone()
                if shifted:
                    q = energy.exp_()
                    q.div_(q.sum(1, keepdim=True))
                else:
                    q = torch.softmax(energy, 1)
        return q.reshape(b, h, w, c).permute(0, 3, 1, 2).contiguous()


def crf_inference_torch(images: torch.Tensor, probs: torch.Tensor, *, n_iter: int = 10,
                        gaussian: tuple[float, float] | None = (3, 3),
                        bilateral: tuple[float, float, float] | None = (80, 13, 10)) -> torch.Tensor:
    """Mean-field inference of the dense CRF on the permutohedral lattice (the torch backend):
    :meth:`DenseCRF.refine` of a :class:`DenseCRF` built for these images.

    The tensors are not checked here; n_iter and the kernel tuples are, as in :func:`dense_crf`.
    images: uint8 (B, H, W, 3); probs: float (B, C, H, W) summing to 1 over C; same device.
    Returns Q float32 (B, C, H, W).
    """
    _check_n_iter(n_iter)
    return DenseCRF(images, gaussian=gaussian, bilateral=bilateral).refine(probs, n_iter)


# ---------------------------------------------------------------------------------------------------
# The dense-CRF energy as a loss
# ---------------------------------------------------------------------------------------------------
class _ExactGaussian(torch.autograd.Function):
    """K x with K_ij = exp(-|f_i - f_j|^2 / 2) summed over all pairs of each image, in row blocks.

    O(N^2) time, O(block) memory: no N x N matrix is stored. K is symmetric, so the backward pass is
    the same product.
    """

    @staticmethod
    def forward(ctx, values, features, n_per_image):
        ctx.features, ctx.n_per_image = features, n_per_image
        return exact_gaussian_filter(features, values, n_per_image)

    @staticmethod
    def backward(ctx, grad):
        return exact_gaussian_filter(ctx.features, grad, ctx.n_per_image), None, None


def exact_gaussian_filter(features: torch.Tensor, values: torch.Tensor, n_per_image: int | None = None,
                          block: int = 2 ** 24) -> torch.Tensor:
    """out_i = sum_j exp(-|f_i - f_j|^2 / 2) values_j over the j of i's image: (N, d), (N, C) -> (N, C)."""
    n_per_image = n_per_image or features.shape[0]
    out = torch.empty_like(values)
    for lo in range(0, features.shape[0], n_per_image):       # no kernel across images
        f, v = features[lo:lo + n_per_image].to(values.dtype), values[lo:lo + n_per_image]
        rows = max(1, block // f.shape[0])
        for start in range(0, f.shape[0], rows):
            end = min(start + rows, f.shape[0])
            sq = torch.cdist(f[start:end], f).square_()                           # (rows, N)
            out[lo + start:lo + end] = torch.exp(sq.mul_(-0.5)) @ v
    return out


def _check_image_values(images: torch.Tensor) -> None:
    """A CRF loss's images hold 0-255 values: uint8, or integer / float values in [0, 255] (not [0, 1]-scaled,
    not mean/std-normalised, no NaN)."""
    if images.dtype == torch.bool or images.is_complex():
        raise TypeError(f"images must be uint8 (B, H, W, 3) or hold 0-255 values, got dtype {images.dtype}")
    if images.dtype == torch.uint8 or images.numel() == 0:
        return
    lo, hi = (v.item() for v in torch.aminmax(images.double()))
    problem = ("NaN" if math.isnan(lo) or math.isnan(hi) else f"min {round(lo, 4)!r}" if lo < 0
               else f"max {round(hi, 4)!r}" if hi > 255.5 or (images.is_floating_point() and 0 < hi <= 1)
               else None)
    if problem:
        raise ValueError(f"images must hold 0-255 values (uint8 or float), got {problem}: pass the uint8 "
                         f"image, not a normalised one")


def _check_loss_values(probs: torch.Tensor, mask: torch.Tensor | None) -> None:
    """A CRF loss's probs are probabilities over axis 1 (within 1e-3, or 2 eps of a half dtype; over the
    mask's pixels), one sync; NaN passes (a diverged network: the training loop reports the NaN loss)."""
    if probs.numel() == 0:
        raise ValueError("probs must hold at least one class and one pixel")
    p = probs.detach()
    stats = list(torch.aminmax(p))
    sums = p.sum(1, dtype=torch.float32) if p.dtype in (torch.float16, torch.bfloat16) else p.sum(1)
    off = (sums - 1).abs()
    if mask is not None:
        off = off.masked_fill(mask.to(off.device) == 0, 0)
    stats.append(off.amax())
    lo, hi, err = torch.stack([v.double() for v in stats]).tolist()
    if any(math.isnan(v) for v in (lo, hi, err)):
        return
    tol = max(1e-3, 2 * torch.finfo(p.dtype).eps)
    if not (lo >= -tol and hi <= 1 + tol and err <= tol):
        raise ValueError(f"probs must be probabilities (in [0, 1], summing to 1 over the class axis 1), got "
                         f"values in [{lo:.4g}, {hi:.4g}] with sums off by up to {err:.3g}: apply softmax first")


def dense_crf_loss(images, probs: torch.Tensor, *, sigma_xy: float = 80.0, sigma_rgb: float = 15.0,
                   scale: float = 1.0, weight: torch.Tensor | None = None, mask: torch.Tensor | None = None,
                   normalize: bool = False, reduction: str = "mean", kernel: str = "lattice") -> torch.Tensor:
    """Dense-CRF energy as a loss: E(S) = sum_c (w ⊙ S_c)^T W (1 - S_c), differentiable in S (and w).

    The relaxed Potts energy of Tang et al., "On regularized losses for weakly-supervised CNN
    segmentation" (ECCV 2018), with the bilateral Gaussian W_ij = exp(-|p_i - p_j|^2 / 2 sigma_xy^2
    - |I_i - I_j|^2 / 2 sigma_rgb^2). The same loss is ASDT's structure loss L_str, Eq. (6)-(8)
    (``normalize=True`` for G = W / Z of Eq. 6, ``weight = 1 - probs.amax(1)`` for Eq. 8), Seminar's
    L_CRF, Eq. (4), and TSCD's L_reg.

    images: uint8 (B, H, W, 3) (or float in [0, 255]); probs S: float (B, C, H, W), softmax output.
    sigma_xy, sigma_rgb: kernel widths in pixels and intensity levels, at full resolution.
    scale: compute at this fraction of the resolution (Tang et al. use 0.5): probs and weight are
      resized bilinearly, images and mask nearest (as the rloss code), and sigma_xy is multiplied by scale.
    weight: optional (B, H, W) weight w_i of row pixel i (ASDT's 1 - max_c p_c,i); pass it detached or
      not, as the method wants: the loss is differentiable in it too.
    mask: optional (B, H, W) 0/1 region of interest (e.g. not padding): S and 1 - S are zeroed outside.
    normalize: divide each row of W by Z_i = sum_j W_ij (over the mask), ASDT's 1/Z; the row sums are
      computed with the same kernel, so the lattice's approximation cancels out.
    reduction: "mean" divides the energy by the number of pixels B*H*W (at the computed resolution), so
      the loss weight does not depend on image size; "sum" divides by B only, as the rloss code does
      (``densecrf_loss /= N``, N the batch size; its loss weights, e.g. 2e-9, assume that scale).
    kernel: "lattice" (permutohedral, O(HW): the filter rloss and pydensecrf use) or "exact" (W summed
      over all pixel pairs, O((HW)^2): for small images and for checking).

    What to expect from kernel="lattice": without ``normalize``, W is underestimated by a factor of
    ~0.5 on images (the sparse lattice loses mass; measured 0.50-0.55 with a per-pixel spread of ~5%,
    tests check the bounds), while the gradient direction matches the exact one (cosine > 0.99): the
    same approximation Tang et al.'s loss was tuned with. With ``normalize`` the two kernels agree
    to ~0.1%.

    W includes the diagonal (i = j), as the lattice does; ASDT's sum over j != i differs by
    sum_i w_i sum_c S_ic (1 - S_ic) W_ii. rloss computes -sum_c S_c^T W S_c, which differs from E(S) by
    the constant sum_i (W 1)_i (as sum_c S_c = 1); the gradients differ by W 1, the same for every class,
    so both give the same gradient with respect to the logits of a softmax.

    Checked (one error naming the parameter): sigma_xy, sigma_rgb finite and > 0; 0 < scale <= 1;
    weight and mask tensors or None; probs in [0, 1] summing to 1 over C (within 1e-3, or 2 eps of a
    half dtype; over the mask's pixels when a mask is given) - logits are refused ("apply softmax
    first"), while NaN probs (a diverged network) pass and give a NaN loss for the training loop to
    report; images uint8, or integer / float values in [0, 255] - a floating image whose max lies in
    (0, 1] (a [0, 1]-scaled image) or with negative values (a mean/std-normalised one) is refused.
    These value checks cost one min/max pass over images and probs and one sum over C, one sync.
    :class:`CRFEnergy` builds the kernel once for several calls on the same images.
    """
    _check_loss_options(sigma_xy, sigma_rgb, scale, kernel)
    if reduction not in ("mean", "sum"):
        raise ValueError(f"reduction={reduction!r} is not known; choose 'mean' or 'sum'")
    images = _check_loss_shapes(images, probs, {"weight": weight, "mask": mask})
    energy = CRFEnergy(images, sigma_xy=sigma_xy, sigma_rgb=sigma_rgb, scale=scale, mask=mask, normalize=normalize,
                       kernel=kernel)
    return energy(probs, weight=weight, reduction=reduction)


def _check_loss_options(sigma_xy, sigma_rgb, scale, kernel) -> None:
    for name, v in (("sigma_xy", sigma_xy), ("sigma_rgb", sigma_rgb), ("scale", scale)):
        if not _is_real(v):
            raise TypeError(f"{name} must be a number, got {v!r}")
        if not (math.isfinite(v) and v > 0):
            raise ValueError(f"{name} must be a finite number > 0, got {v!r}")
    if scale > 1:
        raise ValueError(f"scale must lie in (0, 1] (a fraction of the resolution), got {scale!r}")
    if kernel not in ("lattice", "exact"):
        raise ValueError(f"kernel={kernel!r} is not known; choose 'lattice' or 'exact'")


def _check_loss_shapes(images, probs, maps: dict) -> torch.Tensor:
    """Types and shapes of a CRF loss's inputs: images (B, H, W, 3) as a tensor on probs' device."""
    if not isinstance(probs, torch.Tensor) or not probs.is_floating_point():
        raise TypeError(f"probs must be a float tensor (B, C, H, W), got {getattr(probs, 'dtype', type(probs))}")
    images = _as_tensor(images).to(probs.device)
    if probs.ndim != 4 or images.ndim != 4 or images.shape[3] != 3 or \
            tuple(images.shape[:3]) != (probs.shape[0], *probs.shape[2:]):
        raise ValueError(f"images {tuple(images.shape)} and probs {tuple(probs.shape)} do not match: "
                         f"expected (B, H, W, 3) and (B, C, H, W)")
    for name, t in maps.items():
        if t is not None and not isinstance(t, torch.Tensor):
            raise TypeError(f"{name} must be a tensor (B, H, W) or None, got {type(t).__name__}")
        if t is not None and tuple(t.shape) != (probs.shape[0], *probs.shape[2:]):
            raise ValueError(f"{name} must be (B, H, W) = {(probs.shape[0], *probs.shape[2:])}, "
                             f"got {tuple(t.shape)}")
    return images


class CRFEnergy:
    """The dense-CRF energy of :func:`dense_crf_loss` with its kernel built once per batch of images.

    images: uint8 (B, H, W, 3) (or 0-255 values); sigma_xy, sigma_rgb, scale, mask, normalize, kernel as in
    :func:`dense_crf_loss`. The pixel features, the permutohedral lattice and (``normalize``) the row sums
    Z are computed here, once; every call ``energy(probs, weight=None, reduction="mean")`` on the same
    images reuses them, e.g. ASDT's L_str of the seg-teacher and of the student in one step. A call gives
    the value :func:`dense_crf_loss` gives for the same arguments (the tests hold them to 1e-5).
    """

    def __init__(self, images, *, sigma_xy: float = 80.0, sigma_rgb: float = 15.0, scale: float = 1.0,
                 mask: torch.Tensor | None = None, normalize: bool = False, kernel: str = "lattice"):
        _check_loss_options(sigma_xy, sigma_rgb, scale, kernel)
        images = _as_tensor(images)
        if images.ndim != 4 or images.shape[3] != 3:
            raise ValueError(f"images must be (B, H, W, 3), got {tuple(images.shape)}")
        if mask is not None:
            if not isinstance(mask, torch.Tensor):
                raise TypeError(f"mask must be a tensor (B, H, W) or None, got {type(mask).__name__}")
            if tuple(mask.shape) != tuple(images.shape[:3]):
                raise ValueError(f"mask must be (B, H, W) = {tuple(images.shape[:3])}, got {tuple(mask.shape)}")
        _check_image_values(images)
        self.images, self.mask, self.scale, self.normalize = images, mask, scale, normalize
        b, h, w = images.shape[:3]
        self.size = (max(1, round(h * scale)), max(1, round(w * scale))) if scale != 1.0 else (h, w)
        with torch.no_grad(), torch.autocast(device_type=images.device.type, enabled=False):
            img = images.float()
            m = None if mask is None else mask.to(images.device, torch.float32)
            if scale != 1.0:    # images and mask nearest, as the rloss code
                img = F.interpolate(img.permute(0, 3, 1, 2), size=self.size, mode="nearest").permute(0, 2, 3, 1)
                m = None if m is None else F.interpolate(m[:, None], size=self.size, mode="nearest")[:, 0]
            self._m = None if m is None else m.reshape(-1, 1)                           # (B*h*w, 1)
            self._img, self._sigmas, self._kernel = img, (sigma_xy * scale, sigma_rgb), kernel
            self._lattice = PermutohedralLattice(*_pixel_features(img, *self._sigmas)) if kernel == "lattice" else None
        self._by_dtype: dict = {}       # dtype -> (W x, Z): the exact kernel and Z in the probs' precision

    def _kernel_and_z(self, dtype: torch.dtype):
        if dtype not in self._by_dtype:
            if self._lattice is not None:
                lattice = self._lattice

                def kernel_times(x):
                    return lattice_filter(lattice, x)
            else:
                feats, _ = _pixel_features(self._img.to(dtype), *self._sigmas)
                n_per_image = self.size[0] * self.size[1]

                def kernel_times(x):
                    return _ExactGaussian.apply(x, feats, n_per_image)
            z = None
            if self.normalize:       # Z_i = sum_j W_ij m_j, a constant of S
                n = self._img.shape[0] * self.size[0] * self.size[1]
                ones = torch.ones(n, 1, dtype=dtype, device=self._img.device) if self._m is None else self._m.to(dtype)
                with torch.no_grad():
                    z = kernel_times(ones).clamp_min(1e-20)                             # (B*h*w, 1)
            self._by_dtype[dtype] = kernel_times, z
        return self._by_dtype[dtype]

    def __call__(self, probs: torch.Tensor, weight: torch.Tensor | None = None,
                 reduction: str = "mean") -> torch.Tensor:
        """E(S) of probs S float (B, C, H, W) (softmax output) with row weight ``weight`` (B, H, W) or None."""
        if reduction not in ("mean", "sum"):
            raise ValueError(f"reduction={reduction!r} is not known; choose 'mean' or 'sum'")
        images = _check_loss_shapes(self.images, probs, {"weight": weight})
        _check_loss_values(probs, self.mask)
        with torch.autocast(device_type=probs.device.type, enabled=False):
            s = probs.float() if probs.dtype in (torch.float16, torch.bfloat16) else probs
            w = None if weight is None else weight.to(s.dtype)
            if self.scale != 1.0:
                s = F.interpolate(s, size=self.size, mode="bilinear", align_corners=False)
                w = None if w is None else F.interpolate(w[:, None], size=self.size, mode="bilinear",
                                                         align_corners=False)[:, 0]
            b, c, h, wd = s.shape
            flat = s.permute(0, 2, 3, 1).reshape(b * h * wd, c)                        # (B*H*W, C)
            row, col = flat, 1.0 - flat                                                 # S and 1 - S
            if self._m is not None:
                m = self._m.to(s.dtype)
                row, col = row * m, col * m
            if w is not None:
                row = row * w.reshape(-1, 1)
            kernel_times, z = self._kernel_and_z(s.dtype)
            if z is not None:
                row = row / z
            energy = (row * kernel_times(col)).sum()                              # sum_c row_c^T W col_c
            return energy / (b * h * wd if reduction == "mean" else b)
