"""PSA's pixel affinities in a radius and its random walk (wsss.refine.affinity), on hand-made maps."""
import pytest
import torch

from wsss.refine.affinity import (dense_affinity, downsample_labels, feature_affinity, pair_labels, radius_offsets,
                                  random_walk)


def test_radius_offsets_list_each_pair_once_as_psa():
    offsets = radius_offsets(5)
    assert len(offsets) == 34                                   # PSA's 34 pairs at radius 5
    assert len(set(offsets)) == 34 and not any((-dy, -dx) in offsets for dy, dx in offsets)
    assert all(dy * dy + dx * dx < 25 for dy, dx in offsets) and (4, 0) in offsets and (4, 3) not in offsets
    assert radius_offsets(2) == [(0, 1), (1, -1), (1, 0), (1, 1)]
    for bad in (1, 0, 2.5, True):
        with pytest.raises(ValueError, match="radius"):
            radius_offsets(bad)


def test_pair_labels_by_hand():
    # row 0: bg bg 1 ; row 1: 255 1 2  (radius 2: offsets right, down-left, down, down-right)
    labels = torch.tensor([[[0, 0, 1], [255, 1, 2]]])
    out = pair_labels(labels, 2)
    k = {o: i for i, o in enumerate(radius_offsets(2))}
    assert out["bg_pos"][0, k[(0, 1)], 0, 0]                    # (0,0)-(0,1): both background
    assert out["neg"][0, k[(0, 1)], 0, 1]                       # (0,1)-(0,2): bg vs 1
    assert out["fg_pos"][0, k[(1, -1)], 0, 2]                   # (0,2)-(1,1): 1 and 1
    assert out["neg"][0, k[(1, 0)], 0, 2]                       # (0,2)-(1,2): 1 vs 2
    assert not any(v[0, k[(1, 0)], 0, 0] for v in out.values())  # (0,0)-(1,0): an ignored end
    assert not any(v[0, k[(0, 1)], 0, 2] for v in out.values())  # (0,2)-(0,3): outside the map
    total = sum(v.sum() for v in out.values())
    # the labelled pairs in reach: (0,0)-(0,1), (0,1)-(0,2), (0,0)-(1,1), (0,1)-(1,1), (0,1)-(1,2), (0,2)-(1,1), (0,2)-(1,2), (1,1)-(1,2)
    assert total == 8
    with pytest.raises(ValueError, match="integer map"):
        pair_labels(labels.float(), 2)


def test_feature_affinity_is_one_for_equal_features_and_zero_outside():
    f = torch.zeros(1, 4, 3, 3)
    f[:, :, :, 2] = 2.0                                          # last column differs by 2 in every channel
    a = feature_affinity(f, 2)
    k = {o: i for i, o in enumerate(radius_offsets(2))}
    assert a[0, k[(0, 1)], 0, 0] == 1.0 and torch.isclose(a[0, k[(0, 1)], 0, 1], torch.exp(torch.tensor(-2.0)))
    assert a[0, k[(0, 1)], 0, 2] == 0.0 and a[0, k[(1, 0)], 2, 0] == 0.0      # partner outside
    f.requires_grad_()
    feature_affinity(f, 2).sum().backward()
    assert f.grad is not None and torch.isfinite(f.grad).all()


def test_dense_affinity_is_symmetric_with_a_unit_diagonal():
    torch.manual_seed(0)
    pairs = torch.rand(2, len(radius_offsets(3)), 4, 5)
    a = dense_affinity(pairs, 3)
    assert a.shape == (2, 20, 20) and torch.equal(a, a.transpose(1, 2))
    assert torch.equal(a.diagonal(dim1=1, dim2=2), torch.ones(2, 20))
    k = radius_offsets(3).index((1, -1))
    assert a[1, 0 * 5 + 3, 1 * 5 + 2] == pairs[1, k, 0, 3]      # (0,3) and (1,2)
    assert a[0, 0, 3 * 5 + 4] == 0                               # beyond the radius
    with pytest.raises(ValueError, match="offsets"):
        dense_affinity(pairs, 2)


def test_random_walk_spreads_within_regions_and_not_across():
    # two halves of a 4x6 map: affinity 1 inside a half, 0 across; a CAM peak in the left half only
    labels = torch.tensor([[0, 0, 0, 1, 1, 1]] * 4)[None]
    same = pair_labels(labels, 3)
    pairs = (same["bg_pos"] | same["fg_pos"]).float()
    aff = dense_affinity(pairs, 3)
    cam = torch.zeros(1, 1, 4, 6)
    cam[0, 0, 1, 1] = 1.0
    walked = random_walk(cam, aff, beta=8, logt=6)
    left, right = walked[0, 0, :, :3], walked[0, 0, :, 3:]
    assert torch.all(right == 0) and left.min() > 0               # spread over its own region only
    assert torch.allclose(left, left.mean().expand_as(left), atol=1e-3)     # ... evenly after 64 steps
    flat = torch.full((1, 2, 4, 6), 0.3)
    assert torch.allclose(random_walk(flat, aff), flat, atol=1e-6)          # a constant map stays
    with pytest.raises(ValueError, match="affinity"):
        random_walk(cam, aff[:, :10, :10])


def test_downsample_labels_keeps_ids():
    labels = torch.tensor([[[0, 0, 255, 255], [0, 0, 255, 255], [3, 3, 1, 1], [3, 3, 1, 1]]])
    assert torch.equal(downsample_labels(labels, (2, 2)), torch.tensor([[[0, 255], [3, 1]]]))
