"""ASDT and its RRM baseline: the PWM signal, the fusion, RRM's reliable labels, and one training step each."""
import pytest
import torch
import torch.nn.functional as F

from wsss.data.folder import IGNORE
from wsss.methods.asdt import ASDT, fuse, pwm_periods, pwm_signal, schedule_counts
from wsss.losses import split_ce
from wsss.methods.rrm import RRM, SegHead, cam_sure_mask, reliable_labels

BACKEND = "pydensecrf"
SMALL_CRF = dict(crf_backend=BACKEND, crf_bilateral=(10, 13, 10), st_bilateral=(10, 5, 4))


# ---------------------------------------------------------------------------------------------------
# PWM signal (Eq. 3) and fusion (Eq. 1)
# ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("T, tau, t_h", [(150, 5, 25), (100, 1, 50), (60, 2, 20), (10, 4, 2), (7, 6, 1)])
def test_pwm_signal_spends_T_h_of_every_period_on_the_seg_teacher(T, tau, t_h):
    assert pwm_periods(T, tau) == (t_h, T - t_h)
    highs = [pwm_signal(t, T, tau) for t in range(3 * T)]
    for k in range(3):
        period = highs[k * T:(k + 1) * T]
        assert sum(period) == t_h
        # one pulse per period, at its start (public ASDT code): high for T_h iterations, then low for T_l
        assert period == [True] * t_h + [False] * (T - t_h)
    assert pwm_signal(0, T, tau) and pwm_signal(T, T, tau) and not pwm_signal(t_h, T, tau)


# T=150, tau=5 (T_h=25), 1200 iterations, warm-up 60, counted by hand: the pulses are [150k, 150k+25)
# for k = 0..7; the first lies inside the warm-up, so ASDT's student learns from the seg-teacher on
# 7 x 25 = 175 iterations, in 7 full periods (150-300, ..., 1050-1200); the single seg-teacher and the
# naive teachers on every iteration after the warm-up, 1200 - 60 = 1140.
@pytest.mark.parametrize("distill, seg, periods", [("alternate", 175, 7), ("class", 0, 0), ("seg", 1140, 0),
                                                   ("max", 1140, 0), ("mean", 1140, 0)])
def test_schedule_counts_match_a_hand_count(distill, seg, periods):
    counts = schedule_counts(1200, 60, distill, 150, 5)
    assert counts == {"steps_from_class_teacher": 1200 - seg, "steps_from_seg_teacher": seg, "periods": periods}


def test_schedule_counts_agree_with_the_method_step_by_step():
    # a warm-up ending mid-pulse (T=10, tau=4: pulses [0,2), [10,12), ...; warm-up 11 cuts the second)
    method = ASDT("resnet-tiny", 4, mid=8, T=10, tau=4, warmup=11)
    used = [method.uses_seg_teacher(t) for t in range(47)]
    assert used.count(True) == 1 + 2 + 2 + 2 == schedule_counts(47, 11, "alternate", 10, 4)["steps_from_seg_teacher"]
    assert schedule_counts(47, 11, "alternate", 10, 4)["periods"] == 2       # [20, 30), [30, 40)


@pytest.mark.parametrize("T, tau, name", [(0, 5, "T"), (-3, 5, "T"), (1.5, 5, "T"), (150, 0, "tau"),
                                          (150, -1, "tau"), (4, 10, "tau"), (150, 1e-4, "tau")])
def test_pwm_signal_rejects_bad_parameters(T, tau, name):
    with pytest.raises(ValueError, match=name):
        pwm_signal(0, T, tau)


def test_fuse_modes_renormalise_and_max_is_elementwise():
    torch.manual_seed(0)
    a, b = torch.rand(2, 4, 3, 3).softmax(1), torch.rand(2, 4, 3, 3).softmax(1)
    for mode in ("max", "mean", "multiply"):
        p = fuse(a, b, mode)
        assert p.shape == a.shape and torch.allclose(p.sum(1), torch.ones(2, 3, 3))
    m = torch.maximum(a, b)
    assert torch.allclose(fuse(a, b, "max"), m / m.sum(1, keepdim=True))
    assert torch.allclose(fuse(a, b, "mean"), (a + b) / 2)
    assert torch.equal(fuse(a, b, "multiply").argmax(1), (a * b).argmax(1))
    with pytest.raises(ValueError, match="mode"):
        fuse(a, b, "min")


# ---------------------------------------------------------------------------------------------------
# RRM's reliable labels, head and loss
# ---------------------------------------------------------------------------------------------------
def _blob_case(size=32, radius=8, sigma=4.0):
    """A red disc on a blue background, a CAM peaked on the disc (class 1), class 2 tagged but dim."""
    yy, xx = torch.meshgrid(torch.arange(size).float(), torch.arange(size).float(), indexing="ij")
    d = ((yy - size // 2) ** 2 + (xx - size // 2) ** 2).sqrt()
    image = torch.zeros(1, 3, size, size, dtype=torch.uint8)
    image[0, 2] = 200
    disc = d <= radius
    image[0, 0][disc], image[0, 2][disc] = 220, 30
    cams = torch.zeros(1, 2, size, size)
    cams[0, 0] = torch.exp(-d ** 2 / (2 * sigma ** 2))
    # class 2 is tagged but its CAM is all zero (no value above 0.1), as normalize_cam leaves a silent map
    return image, cams, d


def test_reliable_labels_keep_the_core_and_far_background_and_ignore_the_ring():
    image, cams, d = _blob_case()
    labels = reliable_labels(image, cams, crf_backend=BACKEND, bilateral=(10, 13, 10))
    assert labels.shape == (1, 32, 32) and labels.dtype == torch.int64
    lab = labels[0]
    assert set(lab.unique().tolist()) <= {0, 1, IGNORE}
    assert (lab[d <= 3] == 1).all()                       # the blob's core
    assert (lab[d >= 15] == 0).all()                      # far background
    assert (lab[(d >= 7) & (d <= 11)] == IGNORE).all()    # uncertain ring around the edge
    assert not (lab[d > 8] == 1).any()                    # nothing outside the disc is the object
    # channels-last input gives the same labels
    assert torch.equal(reliable_labels(image.permute(0, 2, 3, 1), cams, crf_backend=BACKEND,
                                       bilateral=(10, 13, 10)), labels)
    # without R^ct, more pixels are labelled, and those that were reliable keep their label
    loose = reliable_labels(image, cams, crf_backend=BACKEND, bilateral=(10, 13, 10), reliability=False)
    assert (loose != IGNORE).sum() > (labels != IGNORE).sum()
    keep = labels != IGNORE
    assert torch.equal(loose[keep], labels[keep])
    # the torch CRF backend agrees with pydensecrf here
    assert torch.equal(reliable_labels(image, cams, crf_backend="torch", bilateral=(10, 13, 10)), labels)


def test_cam_sure_mask_skips_a_class_without_cam_above_0_1():
    _, cams, _ = _blob_case()
    scores = torch.cat([(1 - cams.amax(1, keepdim=True)) ** 32, cams], 1)
    scores[0, 2, :4, :4] = 0.09            # class 2 wins the CAM label there, but never exceeds 0.1
    scores[0, 0, :4, :4] = 0.0
    scores[0, 1, :4, :4] = 0.0
    sure = cam_sure_mask(scores, torch.tensor([[True, True, True]]))
    assert not sure[0, :4, :4].any()
    assert sure.any()


def test_split_ce_is_the_sum_of_two_ignore_masked_ces():
    torch.manual_seed(0)
    logits = torch.randn(2, 4, 5, 6)
    target = torch.randint(0, 4, (2, 5, 6))
    target[0, 0] = IGNORE
    bg = torch.where(target == 0, target, torch.full_like(target, IGNORE))
    fg = torch.where((target != 0) & (target != IGNORE), target, torch.full_like(target, IGNORE))
    expected = F.cross_entropy(logits, bg, ignore_index=IGNORE) + F.cross_entropy(logits, fg, ignore_index=IGNORE)
    assert torch.allclose(split_ce(logits, target), expected)
    # only foreground labelled: the background part contributes 0
    only_fg = torch.where(target == 0, torch.full_like(target, IGNORE), target)
    assert torch.allclose(split_ce(logits, only_fg), F.cross_entropy(logits, only_fg, ignore_index=IGNORE))


def test_seg_head_keeps_size_and_outputs_every_class():
    head = SegHead(16, 5, mid=8)
    assert head(torch.randn(2, 16, 4, 4)).shape == (2, 5, 4, 4)


# ---------------------------------------------------------------------------------------------------
# Training steps
# ---------------------------------------------------------------------------------------------------
def _batch(b=2, size=32, num_classes=4):
    g = torch.Generator().manual_seed(0)
    labels = torch.zeros(b, num_classes - 1)
    labels[0, 0] = labels[1, 1] = labels[1, 2] = 1
    return {"image": torch.randint(0, 256, (b, 3, size, size), dtype=torch.uint8, generator=g),
            "mask": torch.zeros(b, size, size, dtype=torch.int64), "labels": labels}


def _finite_backward(method, out):
    assert torch.isfinite(out["loss"])
    out["loss"].backward()
    grads = [p.grad for p in method.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
    method.zero_grad()


def test_rrm_step_and_predict():
    torch.manual_seed(0)
    method = RRM("resnet-tiny", 4, mid=16, crf_backend=BACKEND, crf_bilateral=(10, 13, 10))
    out = method(_batch(), 0)
    assert {"loss", "cls", "seg_ce", "seg_str"} <= out.keys()
    assert all(torch.isfinite(torch.as_tensor(v)) for v in out.values())
    _finite_backward(method, out)
    probs = method.predict(_batch()["image"])
    assert probs.shape == (2, 4, 32, 32) and torch.allclose(probs.sum(1), torch.ones(2, 32, 32), atol=1e-5)
    lr_mults = sorted(g["lr_mult"] for g in method.param_groups())
    assert lr_mults == [1.0, 2.0, 10.0, 20.0]          # backbone weights, biases; new weights, biases
    n = sum(len(g["params"]) for g in method.param_groups())
    assert n == len(list(method.parameters()))
    # no weight decay on biases (RRM/ASDT code); the optimizer keeps the groups' own decay
    from wsss.train import TrainConfig, build_optimizer
    opt = build_optimizer(method, TrainConfig(steps=1, optimizer="sgd", weight_decay=1e-5))
    decay = {g["lr_mult"]: g["weight_decay"] for g in opt.param_groups}
    assert decay == {1.0: 1e-5, 2.0: 0.0, 10.0: 1e-5, 20.0: 0.0}


def test_rrm_multiscale_cam_option():
    torch.manual_seed(0)
    method = RRM("resnet-tiny", 4, mid=16, cam_scales=(1.0, 0.5), crf_backend=BACKEND, crf_bilateral=(10, 13, 10))
    _finite_backward(method, method(_batch(), 0))


def test_asdt_student_follows_the_pwm_signal():
    torch.manual_seed(0)
    method = ASDT("resnet-tiny", 4, mid=16, T=4, tau=1, warmup=0, **SMALL_CRF)
    batch = _batch()
    used = []
    for step in range(4):
        out = method(batch, step)
        used.append(out["teacher_st"])
        assert {"cls", "st_ce", "st_str", "s_ce", "s_str"} <= out.keys()
        _finite_backward(method, out)
    assert used == [float(pwm_signal(t, 4, 1)) for t in range(4)] == [1.0, 1.0, 0.0, 0.0]
    # a warm-up keeps the student on the class-teacher
    warm = ASDT("resnet-tiny", 4, mid=16, T=4, tau=1, warmup=100, **SMALL_CRF)
    assert warm(batch, 0)["teacher_st"] == 0.0
    probs = method.predict(batch["image"], fusion="mean")
    assert probs.shape == (2, 4, 32, 32) and torch.allclose(probs.sum(1), torch.ones(2, 32, 32), atol=1e-5)


@pytest.mark.parametrize("distill, teacher_st", [("class", 0.0), ("seg", 1.0), ("max", 1.0), ("mean", 1.0)])
def test_asdt_ablations_run(distill, teacher_st):
    torch.manual_seed(0)
    method = ASDT("resnet-tiny", 4, mid=16, distill=distill, warmup=0, use_reliability=False,
                  use_structure=distill != "max", **SMALL_CRF)
    out = method(_batch(), 0)
    assert out["teacher_st"] == teacher_st
    if distill == "max":
        assert out["s_str"] == 0 and out["st_str"] == 0
    _finite_backward(method, out)


def test_asdt_rejects_bad_options():
    with pytest.raises(ValueError, match="distill"):
        ASDT("resnet-tiny", 4, mid=16, distill="both")
    with pytest.raises(ValueError, match="tau"):
        ASDT("resnet-tiny", 4, mid=16, tau=0)


def test_asdt_trains_through_the_shared_loop(tiny_benchmark):
    from wsss.data import build_dataset
    from wsss.data.transforms import TrainTransform
    from wsss.train import TrainConfig, train

    data = build_dataset("synthetic", tiny_benchmark, "train_aug", transform=TrainTransform(32))
    torch.manual_seed(0)
    method = ASDT("resnet-tiny", data.num_classes, mid=16, T=2, tau=1, warmup=0, **SMALL_CRF)
    hist = train(method, data, TrainConfig(steps=4, batch_size=2, log_every=2, progress=False, device="cpu"))
    assert len(hist) == 2 and all(torch.isfinite(torch.tensor(h["loss"])) for h in hist)
    assert hist[-1]["teacher_st"] == 0.5                 # steps 2, 3: one on each teacher
