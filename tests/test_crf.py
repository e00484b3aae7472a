"""The dense CRF: the torch permutohedral lattice against pydensecrf and brute force, and the CRF loss.

The reference test in the spirit of minGPT's: the same input through our code and through a reference
(pydensecrf's C++ lattice, or the N x N Gaussian written out) gives the same numbers.
"""
import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from wsss.evaluate import ConfusionMatrix
from wsss.refine import crf as crf_module
from wsss.refine import dense_crf, dense_crf_batch, dense_crf_loss
from wsss.refine.lattice import LatticeOperator, PermutohedralLattice, lattice_filter

ROOT = Path(__file__).resolve().parents[1]


def _load_bench():
    spec = importlib.util.spec_from_file_location("bench_crf", ROOT / "scripts" / "bench_crf.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


bench = _load_bench()


def features(image: np.ndarray, sxy: float, srgb: float | None) -> torch.Tensor:
    """pydensecrf's features: (x / sxy, y / sxy[, rgb / srgb]) in raster order, (H*W, d)."""
    h, w, _ = image.shape
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    f = [x.ravel() / sxy, y.ravel() / sxy]
    if srgb is not None:
        f += list(image.reshape(-1, 3).T.astype(np.float32) / srgb)
    return torch.from_numpy(np.stack(f, 1))


def brute_force_gaussian(f: torch.Tensor) -> torch.Tensor:
    """K_ij = exp(-|f_i - f_j|^2 / 2), the N x N matrix written out (float64)."""
    f = f.double()
    return torch.exp(-0.5 * torch.cdist(f, f) ** 2)


def pydensecrf_filter(f: torch.Tensor, signal: np.ndarray) -> np.ndarray:
    """K s through pydensecrf's own lattice: one mean-field step of a 2-label CRF, read back from the logits.

    With unary -log(q, 1-q), no normalisation and Potts weight 1, one step gives
    log(Q0 / Q1) = log(q / (1-q)) + [K (2q - 1)], so K s is recovered for s = 2q - 1.
    """
    import pydensecrf.densecrf as dcrf
    q = np.clip((signal + 1) / 2, 1e-6, 1 - 1e-6)
    unary = -np.log(np.stack([q, 1 - q])).astype(np.float32)
    crf = dcrf.DenseCRF(len(q), 2)
    crf.setUnaryEnergy(np.ascontiguousarray(unary))
    crf.addPairwiseEnergy(np.ascontiguousarray(f.numpy().T), compat=1.0, kernel=dcrf.DIAG_KERNEL,
                          normalization=dcrf.NO_NORMALIZATION)
    out = np.asarray(crf.inference(1))
    return np.log(out[0]) - np.log(out[1]) - (unary[1] - unary[0])


@pytest.fixture(scope="module")
def scene():
    """A 40 x 56 photo-like image of the benchmark (textures, shaded objects, noise)."""
    image, mask, probs = bench.synthetic_images(40, 56, 1, n_labels=5, seed=3)[0]
    return image, mask, probs


# ---------------------------------------------------------------------------------------------------
# The lattice
# ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("sxy, srgb", [(3, None), (5, 20), (80, 13)])
def test_lattice_filter_equals_pydensecrf_lattice(scene, sxy, srgb):
    image = scene[0]
    f = features(image, sxy, srgb)
    signal = np.random.default_rng(0).uniform(-0.9, 0.9, len(f))
    ours = PermutohedralLattice(f).filter(torch.from_numpy(signal).float()[:, None])[:, 0].numpy()
    theirs = pydensecrf_filter(f, signal)
    assert np.linalg.norm(ours - theirs) / np.linalg.norm(theirs) < 1e-4


@pytest.mark.parametrize("sxy, srgb", [(3, None), (5, 20), (30, 13)])
def test_lattice_approximates_the_full_gaussian(scene, sxy, srgb):
    """Normalised filtering (K v / K 1) is within a few % of the brute-force Gaussian; raw K is ~0.5-0.9 x."""
    f = features(scene[0], sxy, srgb)
    v = torch.from_numpy(scene[2].reshape(scene[2].shape[0], -1).T).double()      # smooth signals (N, C)
    k = brute_force_gaussian(f)
    lattice = PermutohedralLattice(f)
    ones = torch.ones(len(f), 1, dtype=torch.float64)
    exact, approx = k @ v / (k @ ones), lattice.filter(v) / lattice.filter(ones)
    assert ((approx - exact).norm() / exact.norm()).item() < 0.05
    ratio = (lattice.filter(ones) / (k @ ones)).mean().item()
    assert 0.4 < ratio < 1.0


def test_lattice_is_fully_connected():
    """No window: with a wide kernel, a pixel in one corner reaches the opposite corner of a 60 x 80 image."""
    image = np.full((60, 80, 3), 128, np.uint8)
    f = features(image, 200, 13)
    impulse = torch.zeros(len(f), 1)
    impulse[0] = 1
    out = PermutohedralLattice(f).filter(impulse)
    exact = np.exp(-0.5 * (59 ** 2 + 79 ** 2) / 200 ** 2)
    assert out[-1, 0].item() > 0.5 * exact


def test_lattice_transpose_and_autograd():
    f = torch.randn(40, 5)
    lattice = PermutohedralLattice(f)
    u, v = torch.randn(40, 2, dtype=torch.float64), torch.randn(40, 2, dtype=torch.float64)
    # <u, K v> = <K^T u, v>: reverse=True is the transposed operator
    assert torch.allclose((u * lattice.filter(v)).sum(), (lattice.filter(u, reverse=True) * v).sum())
    v.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda x: lattice_filter(lattice, x), (v,))


def test_lattice_batch_keeps_images_apart(scene):
    image = scene[0]
    f1, f2 = features(image, 10, 13), features(255 - image, 10, 13)
    batch = torch.arange(2).repeat_interleave(len(f1))
    v = torch.rand(2 * len(f1), 4)
    joint = PermutohedralLattice(torch.cat([f1, f2]), batch).filter(v)
    apart = torch.cat([PermutohedralLattice(f1).filter(v[:len(f1)]), PermutohedralLattice(f2).filter(v[len(f1):])])
    assert torch.allclose(joint, apart, atol=1e-5)


def test_lattice_operator_sums_kernels(scene):
    image = scene[0]
    lg, lb = PermutohedralLattice(features(image, 3, None)), PermutohedralLattice(features(image, 30, 13))
    v = torch.rand(lg.n_points, 3)
    s = torch.rand(lg.n_points) + 0.5
    expected = 2 * s[:, None] * lg.filter(v) + lb.filter(s[:, None] * v)
    for method in ("bag", "csr"):    # the CPU and the CUDA product, both checked here
        summed = LatticeOperator([lg, lb], [None, s], [2 * s, None], method=method)(v)
        assert torch.allclose(summed, expected, rtol=1e-4, atol=1e-4)
        back = LatticeOperator([lg, lb], [None, s], [2 * s, None], method=method)(v, reverse=True)
        assert torch.allclose(back, lg.filter(2 * s[:, None] * v, reverse=True)
                              + s[:, None] * lb.filter(v, reverse=True), rtol=1e-4, atol=1e-4)


def test_lattice_rejects_bad_features():
    with pytest.raises(ValueError, match=r"\(N, d\)"):
        PermutohedralLattice(torch.zeros(10))
    with pytest.raises(ValueError, match="values must be"):
        PermutohedralLattice(torch.randn(10, 2)).filter(torch.zeros(9, 1))


# ---------------------------------------------------------------------------------------------------
# Inference: torch against pydensecrf
# ---------------------------------------------------------------------------------------------------
def _agreement_and_miou(images, masks, probs, n_labels, **kw):
    cms = {b: ConfusionMatrix(n_labels) for b in ("pydensecrf", "torch")}
    agree = []
    for im, m, p in zip(images, masks, probs):
        labels = {b: dense_crf(im, p, backend=b, **kw).argmax(0).numpy() for b in cms}
        for b, lab in labels.items():
            cms[b].update(lab, m)
        agree.append((labels["torch"] == labels["pydensecrf"]).mean())
    return float(np.mean(agree)), 100 * cms["pydensecrf"].miou(), 100 * cms["torch"].miou()


def test_torch_backend_agrees_with_pydensecrf_on_the_tiny_benchmark(tiny_benchmark):
    rng = np.random.default_rng(0)
    images, masks, probs = [], [], []
    for name in (tiny_benchmark / "ImageSets" / "Segmentation" / "val.txt").read_text().split()[:6]:
        images.append(np.asarray(Image.open(tiny_benchmark / "JPEGImages" / f"{name}.jpg").convert("RGB")))
        masks.append(np.asarray(Image.open(tiny_benchmark / "SegmentationClass" / f"{name}.png")).astype(np.int64))
        probs.append(bench.noisy_probs(masks[-1], 7, rng, smooth=2.0))
    for kw in ({}, dict(gaussian=(3, 3), bilateral=(30, 13, 10)), dict(gaussian=None, bilateral=(50, 5, 4))):
        agree, miou_ref, miou_torch = _agreement_and_miou(images, masks, probs, 7, **kw)
        assert agree >= 0.99, kw
        assert abs(miou_ref - miou_torch) <= 0.5, kw


def test_torch_backend_agrees_with_pydensecrf_on_the_benchmark_images():
    """One 500 x 375, 21-label image of scripts/bench_crf.py, 10 iterations."""
    data = bench.synthetic_images(375, 500, 1, n_labels=21, seed=0)
    agree, miou_ref, miou_torch = _agreement_and_miou(*zip(*data), 21, n_iter=10, **bench.CRF_PARAMS)
    assert agree >= 0.99
    assert abs(miou_ref - miou_torch) <= 0.5


@pytest.mark.parametrize("kw", [{}, dict(bilateral=(30, 13, 60)), dict(gaussian=(3, -1), n_iter=3)],
                         ids=["default", "strong-compat", "negative-compat"])
def test_torch_backend_probabilities_are_close(scene, kw):
    """Also through the plain-softmax path (a message bound too large to shift by) and a negative weight."""
    image, _, probs = scene
    ref = dense_crf(image, probs, backend="pydensecrf", **kw)
    ours = dense_crf(image, probs, backend="torch", **kw)
    assert (ours - ref).abs().max().item() < 1e-3


def test_batched_torch_equals_one_by_one(scene):
    image, _, probs = scene
    images = np.stack([image, image[::-1].copy()])
    probs2 = np.stack([probs, probs[:, ::-1].copy()])
    batch = dense_crf_batch(images, probs2, backend="torch")
    one = torch.stack([dense_crf(i, p, backend="torch") for i, p in zip(images, probs2)])
    assert batch.shape == (2, *probs.shape)
    assert torch.allclose(batch, one, atol=1e-5)


# ---------------------------------------------------------------------------------------------------
# Shapes, dtypes, devices, the auto backend, errors
# ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("backend", ["torch", "pydensecrf"])
def test_shapes_and_dtypes(scene, backend):
    image, _, probs = scene
    for p in (probs, probs.astype(np.float64), torch.from_numpy(probs)):
        out = dense_crf(torch.from_numpy(image), p, backend=backend)
        assert out.shape == probs.shape and out.dtype == torch.float32 and out.device.type == "cpu"
        assert torch.allclose(out.sum(0), torch.ones(out.shape[1:]), atol=1e-4)
    # zero iterations return softmax(log clip(p)) = p
    assert torch.allclose(dense_crf(image, probs, n_iter=0, backend=backend), torch.from_numpy(probs), atol=1e-5)
    # either kernel can be dropped
    assert dense_crf(image, probs, gaussian=None, backend=backend).shape == probs.shape
    assert dense_crf(image, probs, bilateral=None, backend=backend).shape == probs.shape


def test_auto_backend_choice():
    small, large = crf_module.AUTO_TORCH_MIN_PIXELS - 1, crf_module.AUTO_TORCH_MIN_PIXELS
    cpu = torch.device("cpu")
    assert crf_module._resolve("auto", np.zeros(1), cpu, small) == ("pydensecrf", cpu)
    assert crf_module._resolve("auto", np.zeros(1), cpu, large) == ("torch", cpu)
    assert crf_module._resolve("auto", np.zeros(1), "cuda:0", small)[0] == "torch"


@pytest.mark.parametrize("backend", ["torch", "pydensecrf", "auto"])
@pytest.mark.parametrize("image, probs, err, match", [
    (np.zeros((4, 4, 3), np.float32), np.full((2, 4, 4), 0.5, np.float32), TypeError, "uint8"),
    (np.zeros((4, 4, 3), np.uint8), np.full((2, 4, 5), 0.5, np.float32), ValueError, "does not match"),
    (np.zeros((4, 4, 3), np.uint8), np.full((4, 4), 0.5, np.float32), ValueError, "does not match"),
    (np.zeros((4, 4, 3), np.uint8), np.full((2, 4, 4), 0.7, np.float32), ValueError, "sum to 1"),
    (np.zeros((4, 4, 3), np.uint8), np.full((2, 4, 4), np.nan, np.float32), ValueError, "sum to 1"),
    (np.zeros((4, 4, 3), np.uint8), np.stack([np.full((4, 4), 1.5), np.full((4, 4), -0.5)]), ValueError,
     "non-negative"),
    (np.zeros((4, 4, 3), np.uint8), np.ones((1, 4, 4), np.int64), TypeError, "float"),
    (np.zeros((4, 4), np.uint8), np.full((2, 4, 4), 0.5, np.float32), ValueError, "H, W, 3"),
])
def test_bad_input_is_a_clear_error(backend, image, probs, err, match):
    with pytest.raises(err, match=match):
        dense_crf(image, probs, backend=backend)


def test_bad_arguments_are_clear_errors():
    image, probs = np.zeros((4, 4, 3), np.uint8), np.full((2, 4, 4), 0.5, np.float32)
    with pytest.raises(ValueError, match="backend"):
        dense_crf(image, probs, backend="gpu-magic")
    with pytest.raises(ValueError, match="n_iter"):
        dense_crf(image, probs, n_iter=-1)
    with pytest.raises(ValueError, match="2 images but 1"):
        dense_crf_batch(np.stack([image, image]), probs[None])
    with pytest.raises(ValueError, match="does not match"):
        dense_crf_batch(np.stack([image, image]), np.stack([probs, probs])[:, :, :3])


# ---------------------------------------------------------------------------------------------------
# The dense-CRF loss
# ---------------------------------------------------------------------------------------------------
def brute_force_loss(images, probs, sigma_xy, sigma_rgb, weight=None, mask=None, normalize=False):
    """sum_c (w m S_c)^T W (m (1 - S_c)) / (B H W) with W written out as an N x N matrix."""
    b, c, h, w = probs.shape
    total = 0
    for i in range(b):
        f = features(images[i].numpy(), sigma_xy, sigma_rgb)
        k = brute_force_gaussian(f)
        s = probs[i].reshape(c, -1).double()
        m = torch.ones(h * w, dtype=torch.float64) if mask is None else mask[i].reshape(-1).double()
        if normalize:
            k = k / (k @ m)[:, None]
        row = s * m * (1 if weight is None else weight[i].reshape(-1))
        total = total + (row * (((1 - s) * m) @ k.T)).sum()        # sum_i row_ci sum_j W_ij col_cj
    return total / (b * h * w)


@pytest.fixture(scope="module")
def loss_inputs():
    data = bench.synthetic_images(14, 18, 2, n_labels=4, seed=5)
    images = torch.from_numpy(np.stack([d[0] for d in data]))
    logits = torch.from_numpy(np.log(np.stack([d[2] for d in data]) + 1e-2)).double()
    return images, logits


@pytest.mark.parametrize("normalize", [False, True])
def test_exact_loss_matches_brute_force(loss_inputs, normalize):
    images, logits = loss_inputs
    logits = logits.clone().requires_grad_(True)
    mask = torch.ones(logits.shape[0], *logits.shape[2:], dtype=torch.float64)
    mask[:, :, -3:] = 0
    for use_weight, use_mask in ((False, False), (True, False), (True, True)):
        kw = dict(weight=1 - torch.softmax(logits, 1).amax(1) if use_weight else None,   # ASDT Eq. (8)
                  mask=mask if use_mask else None)
        ours = dense_crf_loss(images, torch.softmax(logits, 1), sigma_xy=6, sigma_rgb=20, kernel="exact",
                              normalize=normalize, **kw)
        ref = brute_force_loss(images, torch.softmax(logits, 1), 6, 20, normalize=normalize, **kw)
        g_ours, = torch.autograd.grad(ours, logits, retain_graph=True)
        g_ref, = torch.autograd.grad(ref, logits)
        assert ours.item() == pytest.approx(ref.item(), rel=1e-9)
        assert torch.allclose(g_ours, g_ref, rtol=1e-7, atol=1e-12)


def test_loss_gradcheck(loss_inputs):
    images, logits = loss_inputs
    images, logits = images[:1, :5, :6], logits[:1, :3, :5, :6].clone().requires_grad_(True)
    weight = torch.rand(1, 5, 6, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(
        lambda x, w: dense_crf_loss(images, torch.softmax(x, 1), sigma_xy=4, sigma_rgb=30, weight=w,
                                    kernel="exact", normalize=True), (logits, weight))
    assert torch.autograd.gradcheck(      # the lattice loss is exactly differentiable too (W is fixed)
        lambda x: dense_crf_loss(images[:, :4], torch.softmax(x, 1), sigma_xy=4, sigma_rgb=30),
        (logits[:, :, :4].detach().requires_grad_(True),))


def test_lattice_loss_against_brute_force(loss_inputs):
    """Normalised: value within 1% and gradient within 10%; raw: a ~0.5 x value, the same gradient direction."""
    images, logits = loss_inputs
    logits = logits.clone().requires_grad_(True)
    for sxy, srgb in ((5, 15), (80, 15)):
        for normalize in (True, False):
            ours = dense_crf_loss(images, torch.softmax(logits, 1), sigma_xy=sxy, sigma_rgb=srgb, normalize=normalize)
            ref = brute_force_loss(images, torch.softmax(logits, 1), sxy, srgb, normalize=normalize)
            g_ours, = torch.autograd.grad(ours, logits)
            g_ref, = torch.autograd.grad(ref, logits)
            cosine = torch.nn.functional.cosine_similarity(g_ours.flatten(), g_ref.flatten(), 0).item()
            if normalize:
                assert ours.item() == pytest.approx(ref.item(), rel=0.01)
                assert ((g_ours - g_ref).norm() / g_ref.norm()).item() < 0.1
            else:
                assert 0.4 < ours.item() / ref.item() < 0.8
                assert cosine > 0.99


def test_loss_options(loss_inputs):
    images, logits = loss_inputs
    probs = torch.softmax(logits, 1).float()
    mean = dense_crf_loss(images, probs)
    assert mean.ndim == 0 and mean.dtype == torch.float32 and mean.item() > 0
    total = dense_crf_loss(images, probs, reduction="sum")
    assert total.item() == pytest.approx(mean.item() * 14 * 18, rel=1e-5)
    # half resolution: the same as computing on the resized inputs with sigma_xy halved
    half = dense_crf_loss(images, probs, sigma_xy=20, scale=0.5, kernel="exact")
    small_images = torch.nn.functional.interpolate(images.permute(0, 3, 1, 2).float(), size=(7, 9),
                                                   mode="nearest").permute(0, 2, 3, 1)
    small = torch.nn.functional.interpolate(probs, size=(7, 9), mode="bilinear", align_corners=False)
    assert half.item() == pytest.approx(dense_crf_loss(small_images, small, sigma_xy=10, kernel="exact").item(),
                                        rel=1e-5)
    # a confident, edge-following segmentation costs less than a noisy one
    smooth = torch.softmax(20 * probs, 1)
    assert dense_crf_loss(images, smooth).item() < dense_crf_loss(images, torch.full_like(probs, 0.25)).item()


def test_loss_bad_input(loss_inputs):
    images, logits = loss_inputs
    probs = torch.softmax(logits, 1)
    with pytest.raises(ValueError, match="do not match"):
        dense_crf_loss(images[:, :10], probs)
    with pytest.raises(TypeError, match="float"):
        dense_crf_loss(images, probs.long())
    with pytest.raises(ValueError, match="weight must be"):
        dense_crf_loss(images, probs, weight=torch.ones(2, 3, 3))
    with pytest.raises(ValueError, match="reduction"):
        dense_crf_loss(images, probs, reduction="max")
    with pytest.raises(ValueError, match="kernel"):
        dense_crf_loss(images, probs, kernel="window")


@pytest.mark.parametrize("backend", ["torch", "pydensecrf"])
def test_several_runs_on_one_set_of_kernels_equal_separate_calls(backend):
    """dense_crf_runs (one DenseCRF / one pydensecrf object per image for all runs) gives the numbers of
    separate dense_crf_batch calls: the kernels are the same, only their set-up is shared."""
    from wsss.refine import DenseCRF, dense_crf_runs

    g = torch.Generator().manual_seed(3)
    images = torch.randint(0, 256, (2, 24, 20, 3), dtype=torch.uint8, generator=g)
    runs = [torch.rand(2, 4, 24, 20, generator=g) for _ in range(3)]
    runs = [r / r.sum(1, keepdim=True) for r in runs]
    kw = dict(n_iter=5, gaussian=(3, 3), bilateral=(6, 13, 10), backend=backend)
    shared = dense_crf_runs(images, runs, **kw)
    for q, r in zip(shared, runs):
        assert torch.allclose(q, dense_crf_batch(images, r, **kw), atol=1e-5)
    if backend == "torch":
        crf = DenseCRF(images, gaussian=(3, 3), bilateral=(6, 13, 10))
        assert torch.equal(crf.refine(runs[1], 5), crf.refine(runs[1], 5))
        with pytest.raises(ValueError, match="do not fit the CRF's images"):
            crf.refine(torch.full((1, 4, 24, 20), 0.25), 5)
    with pytest.raises(ValueError, match="at least one"):
        dense_crf_runs(images, [], **kw)


@pytest.mark.parametrize("normalize, scale, use_mask", [(False, 1.0, False), (True, 0.5, False), (True, 1.0, True)])
def test_one_energy_kernel_for_several_heads_equals_separate_losses(normalize, scale, use_mask):
    """CRFEnergy builds the lattice (and Z) once; the loss and gradient of each head on it are those of a
    separate dense_crf_loss call (ASDT's L_str of the seg-teacher and of the student in one step)."""
    from wsss.refine import CRFEnergy

    g = torch.Generator().manual_seed(4)
    images = torch.randint(0, 256, (2, 20, 24, 3), dtype=torch.uint8, generator=g)
    mask = (torch.rand(2, 20, 24, generator=g) > 0.2).float() if use_mask else None
    heads = [torch.randn(2, 5, 20, 24, generator=g).requires_grad_() for _ in range(2)]
    kw = dict(sigma_xy=6.0, sigma_rgb=15.0, scale=scale, normalize=normalize, mask=mask)
    energy = CRFEnergy(images, **kw)
    for logits in heads:
        probs = logits.softmax(1)
        weight = 1 - probs.detach().amax(1)
        shared = energy(probs, weight=weight)
        (g_shared,) = torch.autograd.grad(shared, logits)
        alone = dense_crf_loss(images, logits.softmax(1), weight=weight, **kw)
        (g_alone,) = torch.autograd.grad(alone, logits)
        assert shared.item() == pytest.approx(alone.item(), rel=1e-5, abs=1e-7)
        assert torch.allclose(g_shared, g_alone, rtol=1e-5, atol=1e-7)
    with pytest.raises(ValueError, match="do not match"):
        energy(torch.full((1, 5, 20, 24), 0.2))
    with pytest.raises(ValueError, match="apply softmax first"):
        energy(heads[0].detach())


@pytest.mark.parametrize("backend", ["torch", "pydensecrf"])
def test_background_runs_over_the_tagged_classes_only(backend):
    """With tags, each image's two background CRFs run over [bg; its tagged classes] (the PSA/RRM code's
    cam_dict): the numbers of a CRF on those channels alone, Q = 0 on the other classes, all background
    for an image without a tag; shapes that do not fit are one error naming the tags."""
    from wsss.cam import background_crf_runs, cam_to_probs

    g = torch.Generator().manual_seed(5)
    images = torch.randint(0, 256, (3, 20, 24, 3), dtype=torch.uint8, generator=g)
    tags = torch.tensor([[1, 0, 1, 0], [0, 1, 0, 0], [0, 0, 0, 0]], dtype=torch.bool)
    cams = torch.rand(3, 4, 20, 24, generator=g) * tags[:, :, None, None]
    kw = dict(n_iter=5, gaussian=(3, 3), bilateral=(6, 13, 10), backend=backend)
    q_low, q_high = background_crf_runs(images, cams, k_low=4, k_high=32, tags=tags, **kw)
    assert q_low.shape == q_high.shape == (3, 5, 20, 24)
    own = cams[:1, [0, 2]]
    assert torch.allclose(q_low[0, [0, 1, 3]], dense_crf_batch(images[:1], cam_to_probs(own, power=4), **kw)[0],
                          atol=1e-5)
    assert torch.allclose(q_high[0, [0, 1, 3]], dense_crf_batch(images[:1], cam_to_probs(own, power=32), **kw)[0],
                          atol=1e-5)
    assert q_low[0, [2, 4]].abs().max() == 0 and q_high[1, [1, 3, 4]].abs().max() == 0
    assert torch.equal(q_low[2, 0], torch.ones(20, 24)) and q_low[2, 1:].abs().max() == 0
    # on these CAMs the labels agree with the CRF over all labels (untagged classes at the 1e-5 floor)
    everything = background_crf_runs(images, cams, k_low=4, k_high=32, **kw)
    for restricted, full in zip((q_low, q_high), everything):
        assert torch.equal(restricted[:2].argmax(1), full[:2].argmax(1))
    with pytest.raises(ValueError, match="tags of shape"):
        background_crf_runs(images, cams, tags=tags[:, :3], **kw)
