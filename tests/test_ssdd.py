"""SSDD (Shimoda & Yanai, ICCV 2019): the DD-Net, Eq. (2)'s loss, the decisions of Eq. (3)/(4)/(16)/(17)
computed by hand, Eq. (8), the training steps of both stages, and the pieces the pipeline shares."""
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from wsss.data.folder import IGNORE
from wsss.methods.ssdd import (SSDD, DDNet, bad_pairs, balanced_ce, class_flags, confidence, decide,
                               difference_loss, difference_target)
from wsss.ops import multiscale_probs, present_argmax
from wsss.profiles import PROFILES, profile_settings
from wsss.refine.affinity import random_walk


def test_ddnet_shapes_detached_inputs_and_batched_pairs():
    torch.manual_seed(0)
    dd = DDNet(high_ch=8, low_ch=4, num_classes=3, width=8)
    high = torch.randn(2, 8, 6, 6, requires_grad=True)
    low = torch.randn(2, 4, 6, 6, requires_grad=True)
    head = dd.embed(high, low)
    assert head.shape == (2, 8, 6, 6)
    m1 = torch.randint(0, 3, (2, 6, 6))
    m2 = m1.clone()
    m2[:, :2] = IGNORE                                           # outside the image: an all-zero one-hot
    d = dd(head, m1)
    assert d.shape == (2, 6, 6)
    d.sum().backward()
    assert high.grad is None and low.grad is None                # theta_e is not trained by the DD-Net
    assert dd.head[1].weight.grad is not None
    dd.eval()                                                    # BatchNorm on running stats: pair == two passes
    with torch.no_grad():
        p1, p2 = dd.pair(dd.embed(high, low), m1, m2)
        assert torch.allclose(p1, dd(dd.embed(high, low), m1), atol=1e-5)
        assert torch.allclose(p2, dd(dd.embed(high, low), m2), atol=1e-5)


def test_difference_loss_by_hand():
    m_k = torch.tensor([[[1, 0, 2, 0]]])
    m_a = torch.tensor([[[0, 0, 2, 0]]])
    target = difference_target(m_k, m_a)                        # 1 where they DIFFER (the code's target)
    assert target.tolist() == [[[1.0, 0.0, 0.0, 0.0]]]
    logits = torch.tensor([[[2.0, 0.0, -1.0, 1.0]]])
    valid = torch.ones_like(target, dtype=torch.bool)
    sp = lambda x: math.log1p(math.exp(x))                      # noqa: E731 - BCE with logits: softplus(x) - x y
    differ = sp(2.0) - 2.0
    agree = (sp(0.0) + sp(-1.0) + sp(1.0)) / 3
    assert difference_loss(logits, target, valid).item() == pytest.approx((differ + agree) / 2, rel=1e-6)
    # an image whose masks agree everywhere: only the agreeing mean is left (no NaN from an empty set)
    assert difference_loss(logits, torch.zeros_like(target), valid).item() == pytest.approx(
        (sp(2.0) + sp(0.0) + sp(-1.0) + sp(1.0)) / 4, rel=1e-6)
    # a bad pair is left out; with every image left out the loss is 0
    two = torch.cat([logits, torch.zeros_like(logits)]), torch.cat([target, target]), torch.cat([valid, valid])
    assert difference_loss(*two, keep=torch.tensor([True, False])).item() == pytest.approx((differ + agree) / 2, rel=1e-6)
    assert difference_loss(*two, keep=torch.tensor([False, False])).item() == 0.0


def test_bad_pair_flags_of_eq_16():
    m_k = torch.tensor([[[1, 1, 2, 2], [1, 1, 0, 0]]])          # class 1: 4 px, class 2: 2 px
    m_a = torch.tensor([[[1, 1, 0, 0], [1, 0, 0, 0]]])          # class 1: 3 px (0.75), class 2: 0 px (0 < 0.5)
    tags = torch.tensor([[1, 1, 0]])                            # classes 1 and 2 of K = 3
    flags = class_flags(m_k, m_a, tags)
    assert flags.tolist() == [[False, False, True, False]]
    assert not bad_pairs(flags, tags, "all").item()             # the paper: every class must fail
    assert bad_pairs(flags, tags, "any").item()                 # the public code: one class is enough
    only_two = torch.tensor([[0, 1, 0]])
    assert bad_pairs(class_flags(m_k, m_a, only_two), only_two, "all").item()
    untagged = torch.zeros(1, 3, dtype=torch.long)
    assert not bad_pairs(class_flags(m_k, m_a, untagged), untagged, "all").item()
    # the ratio is advice over knowledge, with max(|S_c^K|, 1): a class the knowledge lacks is never flagged
    assert not class_flags(torch.zeros(1, 2, 2, dtype=torch.long), torch.ones(1, 2, 2, dtype=torch.long),
                           torch.tensor([[1]]))[0, 1]
    with pytest.raises(ValueError, match="bad-pair rule='some'"):
        bad_pairs(flags, tags, "some")


def test_decisions_of_eq_3_4_17_on_a_3x3_example_by_hand():
    m_k = torch.tensor([[[0, 0, 1], [1, 1, 1], [2, 2, 0]]])
    m_a = torch.tensor([[[0, 1, 1], [1, 0, 0], [0, 0, 0]]])
    tags = torch.tensor([[1, 1]])
    flags = class_flags(m_k, m_a, tags)                          # class 2 lost by the advice: flagged
    assert flags.tolist() == [[False, False, True]]
    d_k = torch.zeros(1, 3, 3)                                   # sigmoid 0.5 everywhere ...
    d_a = torch.zeros(1, 3, 3)
    d_k[0, 0, 1], d_a[0, 0, 1] = -30.0, 30.0                    # ... but here sigma(d^K) - sigma(d^A) = -1
    w = confidence(d_k, d_a, m_k, m_a, flags, b_dd=0.4, b_class=1.0, b_bg=0.1)
    # w = s_k - s_a + 0.4; -0.1 where m^K is bg, +0.1 where m^A is bg; -1 where m^K is class 2, +1 where m^A is
    expected = torch.tensor([[[0.4, -0.7, 0.4], [0.4, 0.5, 0.5], [-0.5, -0.5, 0.4]]])
    assert torch.allclose(w, expected, atol=1e-6)
    assert decide(m_k, m_a, w).tolist() == [[[0, 0, 1], [1, 0, 0], [2, 2, 0]]]
    # without the class bias the flagged class is lost to the advice
    w0 = confidence(d_k, d_a, m_k, m_a, flags, b_dd=0.4, b_class=0.0, b_bg=0.0)
    assert decide(m_k, m_a, w0)[0, 2].tolist() == [0, 0, 0]


def test_balanced_ce_of_eq_8_weighs_each_class_by_its_own_pixels():
    torch.manual_seed(0)
    logits = torch.randn(1, 3, 2, 3)
    target = torch.tensor([[[0, 0, 0], [1, 0, IGNORE]]])
    expected = sum(F.cross_entropy(logits, target.masked_fill(target != c, IGNORE), ignore_index=IGNORE)
                   for c in (0, 1))
    assert balanced_ce(logits, target).item() == pytest.approx(expected.item(), rel=1e-5)
    # uniform logits: every present class costs log 3, whatever its area
    assert balanced_ce(torch.zeros(1, 3, 2, 3), target).item() == pytest.approx(2 * math.log(3), rel=1e-6)


def test_random_walk_equals_a_dense_matrix_power():
    torch.manual_seed(0)
    n = 4
    a = torch.rand(1, n, n)
    a = (a + a.transpose(1, 2)) / 2
    a.diagonal(dim1=1, dim2=2).fill_(1.0)
    cams = torch.rand(1, 2, 2, 2)
    beta, logt = 3.0, 3
    t = a[0] ** beta
    t = t / t.sum(0, keepdim=True)                              # columns sum to 1
    expected = cams.reshape(2, n) @ torch.linalg.matrix_power(t, 2 ** logt)
    walked = random_walk(cams, a, beta=beta, logt=logt)
    assert torch.allclose(walked.reshape(2, n), expected, atol=1e-5)


def test_present_argmax_and_multiscale_probs():
    scores = torch.tensor([0.1, 0.9, 0.5]).view(1, 3, 1, 1).expand(1, 3, 2, 2)
    assert present_argmax(scores, torch.tensor([[0, 1]])).unique().tolist() == [2]    # class 1 is not tagged
    assert present_argmax(scores, torch.tensor([[0, 0]])).unique().tolist() == [0]
    images = torch.randint(0, 255, (2, 3, 8, 8), dtype=torch.uint8)
    colour = lambda x: torch.softmax(x.float() / 50, 1)          # noqa: E731 - a per-pixel function of the colour
    assert torch.allclose(multiscale_probs(colour, images, (1.0,), flip=True), colour(images), atol=1e-6)
    flat = torch.full((1, 3, 8, 8), 100, dtype=torch.uint8)
    assert torch.allclose(multiscale_probs(colour, flat, (0.5, 1.0, 1.5)), colour(flat), atol=1e-5)


def _batch(stage, b=2, size=32, k=3):
    torch.manual_seed(1)
    images = torch.randint(0, 255, (b, 3, size, size), dtype=torch.uint8)
    mask = torch.randint(0, k + 1, (b, size, size))
    mask[:, :, -4:] = IGNORE                                      # padding outside the image
    if stage == "static":
        advice = mask.clone()
        advice[:, :8] = 0
        mask = torch.stack([mask, advice], 1)
    return {"image": images, "labels": torch.ones(b, k), "mask": mask}


@pytest.mark.parametrize("stage", ["static", "dynamic", "fixed"])
def test_ssdd_steps_train_their_modules(stage):
    torch.manual_seed(0)
    model = SSDD("resnet-tiny", 4, stage=stage, mid=8, dd_width=8, head_dilation=1,
                 loop_gaussian=(1, 3), loop_bilateral=(4, 13, 10))
    model.train()
    out = model(_batch(stage))
    assert torch.isfinite(out["loss"])
    out["loss"].backward()
    trained = {name: any(p.grad is not None and p.grad.abs().sum() > 0 for p in mod.parameters())
               for name, mod in (("main", model.main), ("sub", model.sub), ("dd0", model.dd[0]), ("dd1", model.dd[1]))}
    assert trained == {"static": {"main": True, "sub": False, "dd0": True, "dd1": False},
                       "dynamic": {"main": True, "sub": True, "dd0": True, "dd1": True},
                       "fixed": {"main": True, "sub": False, "dd0": False, "dd1": False}}[stage]
    bns = [m for m in model.net.backbone.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert bns and all(not m.training and not m.weight.requires_grad for m in bns)   # frozen backbone BN


def test_ssdd_dynamic_reuses_its_labels_when_timed_without_them(monkeypatch):
    model = SSDD("resnet-tiny", 4, mid=8, dd_width=8, head_dilation=1, loop_gaussian=(1, 3), loop_bilateral=(4, 13, 10))
    calls = {"advice": 0, "decision": 0}
    advice, decision = model.advice, model.module_decision

    def count(key, fn):
        def wrapped(*a, **k):
            calls[key] += 1
            return fn(*a, **k)
        return wrapped

    monkeypatch.setattr(model, "advice", count("advice", advice))
    monkeypatch.setattr(model, "module_decision", count("decision", decision))
    batch = _batch("dynamic")
    model.timing_network_only = True
    for _ in range(3):
        model(batch)["loss"].backward()
    assert calls == {"advice": 1, "decision": 2}                 # one CRF and two decisions, made once
    model.timing_network_only = False
    model(batch)
    assert calls == {"advice": 2, "decision": 4}


def test_ssdd_seed_keeps_agreeing_pixels_and_checks_options():
    model = SSDD("resnet-tiny", 4, stage="static", mid=8, dd_width=8, head_dilation=1).eval()
    batch = _batch("static")
    m_k, m_a = batch["mask"][:, 0].clamp(max=3), batch["mask"][:, 1].clamp(max=3)
    seed = model.seed(batch["image"], m_k, m_a, batch["labels"])
    assert seed.shape == m_k.shape
    agree = m_k == m_a
    assert torch.equal(seed[agree], m_k[agree])
    assert bool(((seed == m_k) | (seed == m_a)).all())
    for bad, match in ((dict(stage="half"), "stage='half'"), (dict(bad_rule="most"), "bad_rule='most'"),
                       (dict(alpha=1.5), "alpha=1.5")):
        with pytest.raises(ValueError, match=match):
            SSDD("resnet-tiny", 4, **bad)


@pytest.mark.parametrize("profile", [p for p in PROFILES if p != "smoke"])
def test_ssdd_profiles_are_miniatures_of_the_paper(profile):
    """The static and dynamic stages keep the paper's batches (16, 8) and its 1 : 3 ratio of epochs;
    Table 1 runs over >= 3 seeds; each Table A-1 sweep and Fig. 6 have >= 3 points, the default among them."""
    s = profile_settings("ssdd", profile)
    assert s["static_batch"] == 16 and s["dynamic_batch"] == 8
    assert s["dynamic_epochs"] == 3 * s["static_epochs"] and s["seeds"] >= 3
    for key, default in (("tableA1_bdd", 0.4), ("tableA1_bclass", 1.0), ("tableA1_alpha", 0.5), ("fig6_w_rgb", 10)):
        assert len(s[key]) >= 3 and default in s[key], key
    assert 0.6 <= s["crop"] / s["image_px"] <= 0.9


def test_stacked_pseudo_masks_move_together(tiny_benchmark):
    """SSDD's static stage crops [m^K0, m^A0] as one (2, H, W) mask: both move with the image."""
    import random

    from wsss.data import PseudoMaskDataset, build_dataset
    from wsss.data.transforms import TrainTransform

    base = build_dataset("synthetic", tiny_benchmark, "train_aug")
    masks = {}
    for i in range(len(base)):
        s = base[i]
        masks[s["name"]] = np.stack([s["mask"].numpy(), (s["mask"].numpy() + 1) % 7])
    ds = PseudoMaskDataset(base, masks, transform=TrainTransform(32, scale=(0.7, 1.3)))
    random.seed(0)
    sample = ds[0]
    assert sample["mask"].shape == (2, 32, 32)
    inside = (sample["mask"][0] != IGNORE)
    assert torch.equal(sample["mask"][1][inside], (sample["mask"][0][inside] + 1) % 7)
