"""PSA's AffinityNet, its loss (Eq. 3-5) and its random-walk labels, on small inputs."""
import math

import pytest
import torch

from wsss.methods.psa import AffinityNet, affinity_loss, random_walk_scores
from wsss.refine.affinity import pair_labels, radius_offsets


def test_affinity_loss_by_hand():
    aff = torch.tensor([0.9, 0.5, 0.2, 0.6]).view(1, 4, 1, 1)
    labels = {"bg_pos": torch.tensor([1, 0, 0, 0]).bool().view(1, 4, 1, 1),
              "fg_pos": torch.tensor([0, 1, 0, 0]).bool().view(1, 4, 1, 1),
              "neg": torch.tensor([0, 0, 1, 1]).bool().view(1, 4, 1, 1)}
    loss, parts = affinity_loss(aff, labels, eps=0.0)
    assert parts["bg_pos"].item() == pytest.approx(-math.log(0.9))
    assert parts["fg_pos"].item() == pytest.approx(-math.log(0.5))
    assert parts["neg"].item() == pytest.approx(-(math.log(0.8) + math.log(0.4)) / 2)
    assert loss.item() == pytest.approx(parts["bg_pos"] / 4 + parts["fg_pos"] / 4 + parts["neg"] / 2)
    empty = {k: torch.zeros_like(v) for k, v in labels.items()}
    assert affinity_loss(aff, empty)[0].item() == 0.0


def test_affinitynet_learns_the_pairs_of_a_label_map():
    """A few steps on one batch: the loss falls, and same-class pairs end above different-class ones."""
    torch.manual_seed(0)
    images = torch.zeros(2, 3, 32, 32, dtype=torch.uint8)
    images[:, 0, :, 16:] = 200                                  # a red right half
    labels = torch.zeros(2, 4, 4, dtype=torch.long)
    labels[:, :, 2:] = 1                                        # at 1/8: class 1 on the right half
    net = AffinityNet("resnet-tiny", dims=(8, 8, 8))
    pairs = pair_labels(labels, 3)
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    losses = []
    for _ in range(30):
        aff = net.affinity(images, 3)
        assert aff.shape == (2, len(radius_offsets(3)), 4, 4)
        loss, _ = affinity_loss(aff, pairs)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]
    aff = net.affinity(images, 3).detach()
    assert aff[pairs["bg_pos"] | pairs["fg_pos"]].mean() > aff[pairs["neg"]].mean() + 0.3


def test_random_walk_scores_shape_and_background():
    torch.manual_seed(0)
    net = AffinityNet("resnet-tiny", dims=(8, 8, 8)).eval()
    images = torch.randint(0, 255, (1, 3, 32, 32), dtype=torch.uint8)
    cams = torch.zeros(1, 2, 32, 32)
    scores = random_walk_scores(net, images, cams, radius=3)
    assert scores.shape == (1, 3, 32, 32)
    assert torch.all(scores.argmax(1) == 0)                     # no CAM anywhere: background everywhere


def test_scaled_walk_keeps_psas_settings_at_its_size_and_its_reach_when_smaller():
    from wsss.methods.psa import scaled_walk

    paper = scaled_walk(448)
    assert (paper["radius"], paper["logt"]) == (5, 8) and paper["reach"] == pytest.approx(paper["paper_reach"])
    small = scaled_walk(56)                                     # a 7 x 7 map: radius 5 * 7 / 56 -> at least 2
    assert small["radius"] == 2 and small["logt"] < 8
    assert small["reach"] == pytest.approx(paper["paper_reach"], rel=0.5)   # the same reach, up to a power of two
    with pytest.raises(ValueError, match="crop_px"):
        scaled_walk(8)
