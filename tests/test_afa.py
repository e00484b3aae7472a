"""AFA's pieces: attention-affinity network, pair labels in a window, the affinity
loss, the CAM, the two-background PAR labels and the walk (against a hand computation)."""
import math

import pytest
import torch
import torch.nn.functional as F

from wsss.data.folder import IGNORE
from wsss.methods.afa import AFANet, affinity_loss, afa_cam, cam_labels
from wsss.refine.affinity import window_pair_labels


def test_window_pair_labels_on_a_hand_made_mask():
    labels = torch.tensor([[[1, 1, 0], [IGNORE, 2, 0]]])          # 2 x 3 map, N = 6
    pairs = window_pair_labels(labels, radius=1)
    assert pairs.shape == (1, 6, 6)
    p = pairs[0]
    assert p[0, 1] == 1 and p[1, 0] == 1                           # class 1 - class 1, neighbours
    assert p[0, 4] == 0 and p[1, 2] == 0                           # 1 - 2 and 1 - 0: different
    assert p[0, 2] == IGNORE                                       # two columns apart: outside radius 1
    assert (p[3] == IGNORE).all() and (p[:, 3] == IGNORE).all()    # an ignored position says nothing
    assert p[2, 5] == 1 and torch.equal(p, p.T)
    wide = window_pair_labels(labels, radius=2)[0]
    assert wide[0, 2] == 0                                         # inside a radius-2 window (|dx| <= 2)


def test_affinity_loss_by_hand():
    aff = torch.tensor([[[0.9, 0.2], [0.6, 0.5]]])
    labels = torch.tensor([[[1, 0], [0, IGNORE]]])
    expected = 0.5 * (1 - 0.9) / (1 + 1) + 0.5 * (0.2 + 0.6) / (2 + 1)
    assert affinity_loss(aff, labels).item() == pytest.approx(expected)


def test_afanet_outputs_and_symmetric_affinity():
    torch.manual_seed(0)
    net = AFANet("mit-tiny", 4, channels=16).eval()
    images = torch.randint(0, 255, (2, 3, 64, 64), dtype=torch.uint8)
    with torch.no_grad():
        out = net(images)
    n = (64 // 16) ** 2
    heads = net.encoder.blocks[-1][-1].attn.heads
    assert out["logits"].shape == (2, 3) and out["cam"].shape == (2, 3, 4, 4) and out["seg"].shape == (2, 4, 16, 16)
    assert out["attn"].shape[2:] == (n, n) and out["attn"].shape[1] == heads * net.attn_blocks
    assert out["affinity"].shape == (2, n, n) and torch.allclose(out["affinity"], out["affinity"].transpose(1, 2), atol=1e-6)
    # the tag logits: the classifier on the global max of the last features (AFA's GMP), not the max of the CAM
    gmp = out["features"][-1].amax((2, 3))
    assert torch.allclose(out["logits"], gmp @ net.classifier.weight[:, :, 0, 0].T, atol=1e-5)
    assert all(not p.requires_grad for m in net.encoder.modules() if isinstance(m, torch.nn.LayerNorm)
               for p in m.parameters())
    tscd = AFANet("mit-tiny", 4, channels=16, symmetric=False).eval()
    with torch.no_grad():
        a = tscd(images)["affinity"]
    assert not torch.allclose(a, a.transpose(1, 2), atol=1e-4)


def test_afa_cam_and_cam_labels():
    torch.manual_seed(0)
    net = AFANet("mit-tiny", 4, channels=16).eval()
    images = torch.randint(0, 255, (1, 3, 64, 64), dtype=torch.uint8)
    tags = torch.tensor([[1.0, 0.0, 1.0]])
    cams = afa_cam(net, images, tags)
    assert cams.shape == (1, 3, 64, 64) and cams[:, 1].abs().max() == 0
    assert cams.min() >= 0 and cams.max() <= 1.0 + 1e-6
    # a flat image, three CAM levels: above both backgrounds -> the class; between -> 255; below -> 0
    flat = torch.full((1, 3, 32, 32), 128, dtype=torch.uint8)
    cam = torch.zeros(1, 3, 32, 32)
    cam[0, 0, :, :10] = 1.0
    cam[0, 0, :, 11:21] = 0.45
    cam[0, 0, :, 22:] = 0.1
    label = cam_labels(flat, cam, tags, n_iter=0)
    assert (label[0, :, :9] == 1).all() and (label[0, :, 12:20] == IGNORE).all() and (label[0, :, 23:] == 0).all()
    box = torch.ones(1, 32, 32, dtype=torch.bool)
    box[:, :, -4:] = False
    assert (cam_labels(flat, cam, tags, n_iter=2, valid=box)[0, :, -4:] == IGNORE).all()


def test_afa_step_trains_classification_first_then_every_branch(tiny_benchmark):
    from wsss.data import build_dataset, collate
    from wsss.data.transforms import TrainTransform
    from wsss.methods.afa import AFA

    ds = build_dataset("synthetic", tiny_benchmark, "train_aug", transform=TrainTransform(64, scale=(1.3, 1.5)))
    batch = collate([ds[i] for i in range(2)])
    assert batch["valid"].shape == (2, 64, 64)
    torch.manual_seed(0)
    model = AFA("mit-tiny", ds.num_classes, channels=16, cls_only=2)
    model.train()
    early = model(batch, step=1)
    assert set(early) == {"loss", "cls"}
    early["loss"].backward()
    assert model.net.decoder.classifier.weight.grad is None and model.net.attn_proj.weight.grad is None
    model.zero_grad()
    late = model(batch, step=2)
    assert {"seg", "aff", "ignored"} <= late.keys() and torch.isfinite(late["loss"])
    late["loss"].backward()
    assert model.net.decoder.classifier.weight.grad.abs().sum() > 0 and model.net.attn_proj.weight.grad.abs().sum() > 0
    assert model.training and model.net.encoder.training                  # the label pass leaves train mode as it was


def _hand_propagation(scores, affinity, tags, radius, power=2.0, eps=0.1):
    """AFA's propagation written out with loops over one image's 3 x 3 map (utils/camutils.py,
    propagte_aff_cam_with_bkg): softmax over background + tags, window, aff ** 2, columns / (sum + 0.1), one step."""
    k1, h, w = scores.shape
    n = h * w
    present = [0] + [c + 1 for c in range(len(tags)) if tags[c] > 0]
    probs = [[0.0] * n for _ in range(k1)]
    for i in range(n):
        e = {c: math.exp(scores[c, i // w, i % w].item()) for c in present}
        for c in present:
            probs[c][i] = e[c] / sum(e.values())
    t = [[0.0] * n for _ in range(n)]
    for i in range(n):
        for j in range(n):
            near = abs(i // w - j // w) <= radius and abs(i % w - j % w) <= radius
            t[i][j] = affinity[i, j].item() ** power if near else 0.0
    for j in range(n):
        col = sum(t[i][j] for i in range(n)) + eps
        for i in range(n):
            t[i][j] /= col
    return torch.tensor([[sum(probs[c][i] * t[i][j] for i in range(n)) for j in range(n)] for c in range(k1)]).reshape(k1, h, w)


def test_propagate_equals_a_hand_computation_of_afas_walk_on_a_3x3_map():
    from wsss.methods.afa import propagate

    torch.manual_seed(0)
    scores = torch.rand(3, 3, 3) * 2                                # background + 2 classes on a 3 x 3 map
    affinity = torch.rand(1, 9, 9)
    tags = torch.tensor([[1.0, 0.0]])                               # class 2 is absent
    for radius in (1, 2):
        got = propagate(scores[None], affinity, (3, 3), (3, 3), tags, radius=radius)[0]
        want = _hand_propagation(scores, affinity[0], tags[0], radius)
        assert torch.allclose(got, want, atol=1e-6)
        assert (got[2] == 0).all()                                  # absent classes stay 0
        assert (got.sum(0) < 1).all()                               # the + 0.1 keeps every pixel's sum below 1
    # one step of the element-wise squared affinity, not two steps of the plain one (the first version)
    one_step = propagate(scores[None], affinity, (3, 3), (3, 3), tags, radius=2)[0]
    assert not torch.allclose(one_step, _hand_propagation(scores, affinity[0], tags[0], 2, power=1.0), atol=1e-4)


def test_rml_prediction_walks_one_step_along_its_own_affinity_as_afas_validation():
    from wsss.methods.afa import _with_background, afa_cam, propagate
    from wsss.methods.rml import rml_scores

    torch.manual_seed(0)
    net = AFANet("mit-tiny", 3, channels=8, output_stride=8, decoder=False).eval()
    images = torch.randint(0, 255, (1, 3, 24, 24), dtype=torch.uint8)
    tags = torch.tensor([[1.0, 0.0]])
    got = rml_scores(net, images, radius=1, tags=tags)
    out = net(images)
    cams = afa_cam(net, images, tags, (0.5, 1.0, 1.5))
    small = F.interpolate(_with_background(cams, 0.35), size=out["cam"].shape[2:], mode="bilinear", align_corners=False)
    h, w = out["cam"].shape[2:]
    walked = _hand_propagation(small[0], out["affinity"][0], tags[0], 1).reshape(1, 3, h, w)
    want = F.interpolate(walked, size=(24, 24), mode="bilinear", align_corners=False)
    assert torch.allclose(got, want, atol=1e-5)


def test_walk_with_the_identity_affinity_keeps_the_label_and_a_strong_pair_spreads_it():
    from wsss.methods.afa import walk_labels

    images = torch.full((1, 3, 8, 8), 100, dtype=torch.uint8)
    tags = torch.tensor([[1.0, 0.0]])
    cams = torch.zeros(1, 2, 8, 8)
    cams[0, 0, :, :4] = 1.0                                         # the left half is the class
    eye = torch.eye(4)[None]                                        # a 2 x 2 map: each position only itself
    plain = cam_labels(images, F.interpolate(F.interpolate(cams, size=(2, 2), mode="bilinear", align_corners=False),
                                             size=(8, 8), mode="bilinear", align_corners=False), tags, refiner=None)
    walked = walk_labels(images, cams, tags, eye, (2, 2), radius=1, refiner=None)
    assert torch.equal(walked, plain)                               # a scale of the softmax keeps its argmax
    full = torch.ones(1, 4, 4)                                      # every pair equally affine: one mean score
    spread = walk_labels(images, cams, tags, full, (2, 2), radius=1, refiner=None)
    assert (spread == spread[0, 0, 0]).all()


def test_afa_switches_to_the_walked_label_and_rejects_unknown_refiners(tiny_benchmark):
    from wsss.data import build_dataset, collate
    from wsss.data.transforms import TrainTransform
    from wsss.methods.afa import AFA

    ds = build_dataset("synthetic", tiny_benchmark, "train_aug", transform=TrainTransform(48, scale=(1.3, 1.5)))
    batch = collate([ds[i] for i in range(2)])
    torch.manual_seed(0)
    model = AFA("mit-tiny", ds.num_classes, channels=16, cls_only=1, walk_from=3, output_stride=8, radius=2,
                dilations=(1, 2)).train()
    assert not model.walking(2) and model.walking(3)
    calls = []
    original = model.labels
    model.labels = lambda *a: calls.append(a[-1]) or original(*a)
    model(batch, step=2)
    model(batch, step=3)
    assert calls == [False, True]                                   # the walk starts at walk_from
    cams, affinity, size = model.cams(batch["image"], batch["labels"], with_affinity=True)
    assert size == (9, 9) and affinity.shape == (2, 81, 81)         # the 1.5x pass: 72 px / 8 (AFA's code)
    with pytest.raises(ValueError, match="refiner='crf'"):
        AFA("mit-tiny", ds.num_classes, refiner="crf")


def test_refiner_kernel_arguments_reach_the_kernel_and_need_no_registration():
    """VARM's alpha / beta travel as data (spawned workers see them), not as a refiner registered at run time."""
    from wsss.refine.par import KERNELS, refine, varm_kernel

    torch.manual_seed(0)
    images = torch.randint(0, 255, (1, 3, 16, 16), dtype=torch.uint8)
    cams = torch.rand(1, 2, 16, 16)
    tags = torch.tensor([[1.0, 1.0]])
    small = F.interpolate(images.float() / 255, size=(8, 8), mode="bilinear", align_corners=False)
    probs = torch.rand(1, 3, 8, 8).softmax(1)
    assert torch.allclose(refine(probs, small, "varm", (1, 2), 3, alpha=2.0, beta=0.05),
                          refine(probs, small, "varm", (1, 2), 3, kernel=varm_kernel(small, (1, 2), alpha=2.0, beta=0.05)))
    assert torch.allclose(KERNELS["varm-rgb"](small, (1, 2), alpha=2.0), varm_kernel(small, (1, 2), alpha=2.0, beta=0.0))
    default = cam_labels(images, cams, tags, refiner="varm", dilations=(1, 2))
    same = cam_labels(images, cams, tags, refiner="varm", dilations=(1, 2), kernel_args={"alpha": 4.0, "beta": 0.01})
    assert torch.equal(default, same)
    model = __import__("wsss.methods.tscd", fromlist=["TSCD"]).TSCD(
        "mit-tiny", 3, channels=8, output_stride=8, dilations=(1, 2), kernel_args={"varm": {"alpha": 2.0}})
    assert model.kernel_args["varm"] == {"alpha": 2.0}
