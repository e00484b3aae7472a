"""PAMR, PAR and VARM kernels against a direct per-neighbour computation on a tiny image."""
import math

import pytest
import torch

from wsss.refine.par import (RING, image_variation, neighbour_offsets, neighbours, pamr_kernel, par_kernel, propagate,
                             varm_kernel)

DIL = (1, 2)


def _direct(images, fn):
    """fn(values at pixel (3,), neighbour values (K, 3), neighbour offsets, y, x) per pixel, by loops."""
    b, c, h, w = images.shape
    offsets = neighbour_offsets(DIL)
    out = torch.zeros(b, 1, len(offsets), h, w)
    for n in range(b):
        for y in range(h):
            for x in range(w):
                near = torch.stack([images[n, :, min(max(y + dy, 0), h - 1), min(max(x + dx, 0), w - 1)]
                                    for dy, dx in offsets])                           # (K, 3), border repeated
                out[n, 0, :, y, x] = fn(images[n, :, y, x], near, offsets, n, y, x)
    return out


def test_neighbours_follow_the_offsets_with_the_border_repeated():
    x = torch.arange(25.0).view(1, 1, 5, 5)
    near = neighbours(x, DIL)
    assert near.shape == (1, 1, 16, 5, 5) and neighbour_offsets(DIL)[:8] == list(RING)
    k = neighbour_offsets(DIL).index((2, -2))                   # two rows down, two columns left
    assert near[0, 0, k, 1, 3].item() == x[0, 0, 3, 1].item()
    assert near[0, 0, k, 4, 0].item() == x[0, 0, 4, 0].item()   # beyond the corner: the corner itself
    with pytest.raises(ValueError, match="dilations"):
        neighbour_offsets((1, 0))


def test_par_kernel_equals_the_direct_computation():
    torch.manual_seed(0)
    images = torch.rand(1, 3, 5, 6)
    dist = torch.tensor([math.hypot(dy, dx) for dy, dx in neighbour_offsets(DIL)])
    position = torch.softmax(-(dist / dist.std() / 0.3) ** 2, 0)

    def par(v, near, offsets, n, y, x):
        a = -((near - v).abs() / near.std(0) / 0.3) ** 2                 # (K, 3), std over the neighbours
        return torch.softmax(a.mean(1), 0) + 0.01 * position

    assert torch.allclose(par_kernel(images, DIL), _direct(images, par), atol=1e-5)


def test_pamr_kernel_equals_the_direct_computation():
    torch.manual_seed(1)
    images = torch.rand(1, 3, 4, 5)

    def pamr(v, near, offsets, n, y, x):
        return torch.softmax((-(near - v).abs() / (0.1 * near.std(0))).mean(1), 0)

    assert torch.allclose(pamr_kernel(images, DIL), _direct(images, pamr), atol=1e-5)


def test_varm_kernel_equals_eq_8_to_10_computed_directly():
    torch.manual_seed(2)
    images = torch.rand(1, 3, 5, 5)
    h, w = images.shape[-2:]

    def variation(y, x):                                        # Eq. (8): left and lower neighbour, mean over RGB
        left = images[0, :, y, max(x - 1, 0)]
        below = images[0, :, min(y + 1, h - 1), x]
        return (((left - images[0, :, y, x]) ** 2) + ((below - images[0, :, y, x]) ** 2)).mean()

    assert torch.allclose(image_variation(images)[0, 0, 2, 3], variation(2, 3))

    def varm(v, near, offsets, n, y, x):
        k_rgb = (-(4.0 * (near - v).abs()) ** 2 / near.std(0) ** 2).mean(1)
        var = torch.stack([variation(min(max(y + dy, 0), h - 1), min(max(x + dx, 0), w - 1)) for dy, dx in offsets])
        return torch.softmax(k_rgb, 0) - 0.01 * torch.softmax(var, 0)

    assert torch.allclose(varm_kernel(images, DIL), _direct(images, varm), atol=1e-5)


def test_propagation_keeps_a_flat_image_flat_and_stops_at_an_edge():
    flat = torch.full((1, 3, 6, 6), 0.5)
    masks = torch.rand(1, 2, 6, 6)
    for kernel, total in ((pamr_kernel(flat + torch.rand(1, 3, 6, 6) * 1e-3, DIL), 1.0), (par_kernel(flat, DIL), 1.01),
                          (varm_kernel(flat, DIL), 0.99)):
        assert torch.allclose(kernel.sum(2), torch.full((1, 1, 6, 6), total), atol=1e-5)
    const = torch.ones(1, 2, 6, 6)
    assert torch.allclose(propagate(const, par_kernel(flat, DIL), DIL, n_iter=3), const * 1.01 ** 3, atol=1e-5)
    # two colour halves: the label of the left half does not leak into the right half
    images = torch.zeros(1, 3, 8, 8)
    images[..., 4:] = 1.0
    images += torch.rand(1, 3, 8, 8) * 0.01
    label = torch.zeros(1, 1, 8, 8)
    label[..., :4] = 1.0
    out = propagate(label, par_kernel(images, (1, 2)), (1, 2), n_iter=10)
    assert out[..., 5:].max() < 0.05 and out[..., :3].min() > 0.9
    assert masks.shape == propagate(masks, varm_kernel(images[..., :6, :6], DIL), DIL, 2).shape
