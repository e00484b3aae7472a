"""Fully connected dense CRF (Krähenbühl & Koltun, 2011) behind one function.

Every paper here post-processes with a dense CRF whose energy has a unary term -log p and two Potts
pairwise kernels: a Gaussian (appearance-free smoothness, ``gaussian=(sxy, compat)``) and a bilateral
one (position and colour, ``bilateral=(sxy, srgb, compat)``); mean-field inference runs ``n_iter`` steps.
The "pydensecrf" backend calls the reference C++ implementation (the `pydensecrf2` distribution).
``backend`` is the switch a torch backend will share.
"""
from __future__ import annotations

import numpy as np
import torch

BACKENDS = ("auto", "pydensecrf")


def _check_inputs(image, probs) -> tuple[np.ndarray, np.ndarray]:
    image = image.cpu().numpy() if isinstance(image, torch.Tensor) else np.asarray(image)
    probs = probs.detach().cpu().numpy() if isinstance(probs, torch.Tensor) else np.asarray(probs)
    if image.dtype != np.uint8:
        raise TypeError(f"image must be uint8 (H, W, 3), got dtype {image.dtype}")
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"image must have shape (H, W, 3), got {image.shape}")
    if not np.issubdtype(probs.dtype, np.floating):
        raise TypeError(f"probs must be a float array (C, H, W), got dtype {probs.dtype}")
    if probs.ndim != 3 or probs.shape[1:] != image.shape[:2]:
        raise ValueError(f"probs shape {probs.shape} does not match image (H, W) = {image.shape[:2]}; "
                         f"expected (C, H, W)")
    if probs.min() < 0 or not np.allclose(probs.sum(0), 1.0, atol=1e-3):
        raise ValueError("probs must be non-negative and sum to 1 over the class axis (apply softmax first)")
    return image, probs


def dense_crf(image, probs, *, n_iter: int = 10, gaussian: tuple[float, float] = (3, 3),
              bilateral: tuple[float, float, float] = (80, 13, 10), backend: str = "auto") -> torch.Tensor:
    """Refine class probabilities with a dense CRF.

    image: uint8 (H, W, 3); probs: float (C, H, W) summing to 1 over C.
    Returns refined probabilities, float32 tensor (C, H, W).
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend={backend!r} is not known; choose one of {BACKENDS}")
    image, probs = _check_inputs(image, probs)
    return torch.from_numpy(_pydensecrf(image, probs, n_iter, gaussian, bilateral))


def _pydensecrf(image, probs, n_iter, gaussian, bilateral) -> np.ndarray:
    import pydensecrf.densecrf as dcrf
    from pydensecrf.utils import unary_from_softmax

    n_labels, h, w = probs.shape
    crf = dcrf.DenseCRF2D(w, h, n_labels)
    crf.setUnaryEnergy(np.ascontiguousarray(unary_from_softmax(probs.astype(np.float32), clip=1e-8)))
    crf.addPairwiseGaussian(sxy=gaussian[0], compat=gaussian[1])
    crf.addPairwiseBilateral(sxy=bilateral[0], srgb=bilateral[1], rgbim=np.ascontiguousarray(image),
                             compat=bilateral[2])
    q = crf.inference(n_iter)
    return np.asarray(q, dtype=np.float32).reshape(n_labels, h, w)


def dense_crf_batch(images, probs, **kwargs) -> torch.Tensor:
    """Batched :func:`dense_crf`: images uint8 (B, H, W, 3), probs (B, C, H, W) -> (B, C, H, W)."""
    if len(images) != len(probs):
        raise ValueError(f"{len(images)} images but {len(probs)} probability maps")
    return torch.stack([dense_crf(im, p, **kwargs) for im, p in zip(images, probs)])
