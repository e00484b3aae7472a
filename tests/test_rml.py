"""RML's pieces: the mutual-information estimators, prototypes, the three strategies' losses,
the decoder-free prediction and the step."""
import math

import pytest
import torch

from wsss.data.folder import IGNORE
from wsss.methods.rml import (RML, ContextFusion, affinity_representation, ciml_loss, class_gaussian_mi, key_resized,
                              matched_gaussian_mi, mfml_loss, pixel_mi_loss, prototype_similarity, prototypes, rml_predict)


@pytest.mark.parametrize("rho", [0.0, 0.5, 0.9])
def test_matched_gaussian_mi_recovers_the_closed_form_of_a_gaussian_pair(rho):
    torch.manual_seed(0)
    n = 20000
    x = torch.randn(n, 1)
    y = rho * x + math.sqrt(1 - rho ** 2) * torch.randn(n, 1)
    truth = -0.5 * math.log(1 - rho ** 2)
    assert matched_gaussian_mi(x, y).item() == pytest.approx(truth, abs=0.01)


def test_matched_gaussian_mi_averages_over_channels_and_ignores_scale():
    torch.manual_seed(0)
    n, rhos = 20000, (0.6, 0.8, 0.0)
    x = torch.randn(n, 3)
    y = torch.stack([r * x[:, i] + math.sqrt(1 - r ** 2) * torch.randn(n) for i, r in enumerate(rhos)], 1)
    truth = sum(-0.5 * math.log(1 - r ** 2) for r in rhos) / 3
    assert matched_gaussian_mi(x, y).item() == pytest.approx(truth, abs=0.01)
    assert matched_gaussian_mi(5 * x + 1, y).item() == pytest.approx(matched_gaussian_mi(x, y).item(), abs=1e-4)
    with pytest.raises(ValueError, match="same shape"):
        matched_gaussian_mi(x, y[:10])


@pytest.mark.parametrize("n, d", [(72, 64), (72, 256), (288, 512)])
def test_mi_of_independent_noise_at_the_profiles_sample_counts_is_about_zero(n, d):
    """The first estimator (the joint Gaussian MI of all channels) returned 141 nats on independent noise of
    72 x 128; the per-channel estimators stay near their small-sample bias (1 / 2N, (C - 1) / 2N)."""
    torch.manual_seed(1)
    x, y = torch.randn(n, d), torch.randn(n, d)
    assert 0.0 <= matched_gaussian_mi(x, y).item() < 2.0 / n
    labels = torch.randint(0, 5, (n,))
    assert 0.0 <= class_gaussian_mi(labels, x, 5).item() < 8.0 / n


def test_class_gaussian_mi_equals_the_closed_form_of_a_two_class_gaussian_mixture_channel():
    """x = class mean (+-m) + unit noise: eta^2 = m^2 / (m^2 + 1), so I = 1/2 log(1 + m^2)."""
    torch.manual_seed(0)
    n, m = 40000, 1.5
    labels = torch.randint(0, 2, (n,))
    x = (2 * labels.float() - 1)[:, None] * m + torch.randn(n, 1)
    assert class_gaussian_mi(labels, x, 2).item() == pytest.approx(0.5 * math.log(1 + m * m), abs=0.01)
    assert class_gaussian_mi(labels, torch.randn(n, 1), 2).item() == pytest.approx(0.0, abs=1e-3)


def test_key_resized_keeps_the_place_a_channel_means():
    """A representation whose channel k is 1 at query positions attending to key (0, 0) only: after bringing a
    4 x 4 key grid to 2 x 2, the weight lands on the view's key (0, 0)."""
    rep = torch.zeros(1, 16, 4, 4)
    rep[:, 0] = 1.0                                          # every query attends to key (0, 0)
    out = key_resized(rep, (2, 2))
    assert out.shape == (1, 4, 4, 4)
    assert (out[:, 0] > out[:, 1:]).all()


def test_prototypes_and_their_similarity_on_hand_made_maps():
    features = torch.zeros(1, 2, 2, 2)
    features[0, 0, 0, 0] = 1.0                      # position (0, 0) has feature e0
    features[0, 1, 1, 1] = 3.0                      # position (1, 1) has feature 3 e1
    cam = torch.full((1, 2, 2, 2), -1.0)            # ReLU'd away everywhere ...
    cam[0, 0, 0, 0] = 2.0                           # ... but class 0 at (0, 0)
    cam[0, 1, 1, 1] = 0.5                           # and class 1 at (1, 1)
    p = prototypes(cam, features)
    assert torch.allclose(p, torch.tensor([[[1.0, 0.0], [0.0, 3.0]]]), atol=1e-4)
    assert prototype_similarity(p).item() == pytest.approx(0.5, abs=1e-5)       # (1 + 0 + 0 + 1) / 2^2
    same = prototypes(cam.flip(1).flip(1), features.new_ones(1, 2, 2, 2))
    assert prototype_similarity(same).item() == pytest.approx(1.0, abs=1e-5)


def test_ciml_loss_has_a_gradient_into_the_cam_and_the_features():
    torch.manual_seed(0)
    cam = torch.randn(2, 3, 8, 8, requires_grad=True)
    cam_view = torch.randn(2, 3, 3, 3, requires_grad=True)
    feats = torch.randn(2, 4, 8, 8, requires_grad=True)
    feats_view = torch.randn(2, 4, 3, 3, requires_grad=True)
    ciml_loss(cam, cam_view, feats, feats_view).backward()
    for t in (cam, cam_view, feats, feats_view):
        assert t.grad is not None and t.grad.abs().sum() > 0


def test_mfml_and_pixel_mi_losses_are_finite_nonzero_and_differentiable():
    torch.manual_seed(0)
    fusion = ContextFusion([4, 6, 8, 8], channels=5)
    feats = [torch.randn(2, c, s, s) for c, s in ((4, 16), (6, 8), (8, 8), (8, 8))]
    rc = fusion(feats)
    assert rc.shape == (2, 5, 8, 8)
    rc_view = torch.randn(2, 5, 3, 3)
    loss = mfml_loss(rc, rc_view, beta1=1.0)
    loss.backward()
    assert torch.isfinite(loss) and fusion.proj[0].weight.grad.abs().sum() > 0
    attn = torch.randn(2, 4, 16, 16, requires_grad=True)
    rep = affinity_representation(attn, (4, 4))
    assert rep.shape == (2, 16, 4, 4)
    rep_view = affinity_representation(torch.randn(2, 4, 4, 4), (2, 2))
    label = torch.randint(0, 3, (2, 8, 8))
    label[:, :2] = IGNORE
    l_mi = pixel_mi_loss(rep, rep_view, label, num_classes=3)
    assert torch.isfinite(l_mi) and abs(l_mi.item()) > 1e-4              # Eq. (12) as printed would be exactly 0
    l_mi.backward()
    assert attn.grad.abs().sum() > 0


def test_decoder_free_prediction_and_step(tiny_benchmark):
    from wsss.data import build_dataset, collate
    from wsss.data.transforms import TrainTransform

    ds = build_dataset("synthetic", tiny_benchmark, "train_aug", transform=TrainTransform(48, scale=(1.3, 1.5)))
    batch = collate([ds[i] for i in range(2)])
    torch.manual_seed(0)
    model = RML("mit-tiny", ds.num_classes, channels=8, output_stride=8, radius=2, dilations=(1, 2), cls_only=1,
                context_channels=8).train()
    assert model.net.decoder is None
    assert set(model(batch, step=0)) == {"loss", "cls"}
    out = model(batch, step=1)
    assert {"aff", "ciml", "mfml", "mi", "ignored"} <= out.keys() and torch.isfinite(out["loss"])
    out["loss"].backward()
    assert model.fusion_module.proj[0].weight.grad.abs().sum() > 0     # the fusion module trains (public code: never)
    base = RML("mit-tiny", ds.num_classes, channels=8, output_stride=8, radius=2, dilations=(1, 2), cls_only=1,
               ciml=False, mfml=False, mi=False, context_channels=8).train()
    assert set(base(batch, step=1)) == {"loss", "cls", "aff", "ignored"}
    model.eval()
    pred = model.predict_labels(batch["image"])
    assert pred.shape == (2, 48, 48) and pred.dtype == torch.int64
    tags = batch["labels"]
    given = rml_predict(model.net, batch["image"], radius=2, tags=tags)
    allowed = torch.cat([torch.ones(2, 1), tags], 1).bool()
    for i in range(2):
        assert allowed[i, given[i].unique()].all()                      # only background and the given classes


def test_crf_probabilities_of_walked_scores_sum_to_one_even_where_the_walk_left_nothing():
    from wsss.experiments.rml import class_probs

    scores = torch.tensor([[[[0.35, 0.0]], [[0.7, 0.0]]]])             # (1, 2, 1, 2): the second pixel is empty
    probs = class_probs(scores)
    assert torch.allclose(probs.sum(1), torch.ones(1, 1, 2))
    assert torch.allclose(probs[0, :, 0, 0], torch.tensor([1 / 3, 2 / 3])) and probs[0, 0, 0, 1] == 1.0
