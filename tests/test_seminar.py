"""Seminar learning: the losses by hand, rloss's CRF weight, the EMA teacher, the ramp, the step and its switches."""
import math

import pytest
import torch
import torch.nn.functional as F

from wsss.data import build_dataset, collate
from wsss.data.transforms import TrainTransform
from wsss.experiments import step_timing
from wsss.methods import seminar
from wsss.methods.seminar import (Seminar, alpha_for_run, crf_weight, ema_update, partial_ce, pcons_weight,
                                  pixel_consistency, pseudo_ce)
from wsss.refine.crf import dense_crf_loss
from wsss.train import TrainConfig, build_optimizer

torch.set_num_threads(1)


def test_partial_ce_ignores_unclicked_pixels_and_is_ce_on_a_full_mask():
    torch.manual_seed(0)
    logits = torch.randn(2, 4, 5, 6)
    full = torch.randint(0, 4, (2, 5, 6))
    clicks = torch.full_like(full, 255)
    clicks[0, 1, 2], clicks[1, 4, 0], clicks[1, 0, 5] = full[0, 1, 2], full[1, 4, 0], full[1, 0, 5]
    changed = logits.clone()
    changed[:, :, 3] += 5.0                                      # row 3 holds no click
    assert partial_ce(changed, clicks) == pytest.approx(partial_ce(logits, clicks).item())
    by_hand = -torch.stack([F.log_softmax(logits[0, :, 1, 2], 0)[full[0, 1, 2]], F.log_softmax(logits[1, :, 4, 0], 0)[full[1, 4, 0]],
                            F.log_softmax(logits[1, :, 0, 5], 0)[full[1, 0, 5]]]).mean()
    assert partial_ce(logits, clicks) == pytest.approx(by_hand.item(), rel=1e-6)
    assert partial_ce(logits, full) == pytest.approx(F.cross_entropy(logits, full).item(), rel=1e-6)
    empty = torch.full_like(full, 255)
    assert partial_ce(logits.requires_grad_(), empty).item() == 0.0


def test_pixel_consistency_sums_classes_averages_pixels_and_stops_the_teacher_gradient():
    torch.manual_seed(1)
    student = torch.randn(2, 3, 4, 4).softmax(1).requires_grad_()
    teacher = torch.randn(2, 3, 4, 4).softmax(1).requires_grad_()
    loss = pixel_consistency(student, teacher)
    assert loss.item() == pytest.approx(((student - teacher) ** 2).sum(1).mean().item(), rel=1e-6)
    assert loss.item() == pytest.approx(3 * F.mse_loss(student, teacher).item(), rel=1e-6)   # mean-teacher's is 1/C of it
    loss.backward()
    assert teacher.grad is None and student.grad is not None
    valid = torch.zeros(2, 4, 4, dtype=torch.bool)
    valid[0, :2] = True
    assert pixel_consistency(student, teacher, valid).item() == pytest.approx(((student - teacher) ** 2).sum(1)[0, :2].mean().item(), rel=1e-6)


def test_pseudo_ce_covers_every_pixel_but_the_padding():
    torch.manual_seed(2)
    logits, pseudo = torch.randn(1, 3, 4, 4), torch.randint(0, 3, (1, 4, 4))
    valid = torch.ones(1, 4, 4, dtype=torch.bool)
    valid[0, :, 3] = False
    assert pseudo_ce(logits, pseudo).item() == pytest.approx(F.cross_entropy(logits, pseudo).item(), rel=1e-6)
    assert pseudo_ce(logits, pseudo, valid).item() == pytest.approx(
        F.cross_entropy(logits[..., :3], pseudo[..., :3]).item(), rel=1e-6)


def _rloss_energy(images, probs, sigma_xy, sigma_rgb):
    """rloss's DenseCRFLoss per image, -S'WS summed over classes, with the exact dense Gaussian W (diagonal included)."""
    b, c, h, w = probs.shape
    ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float64), torch.arange(w, dtype=torch.float64), indexing="ij")
    out = []
    for i in range(b):
        f = torch.cat([torch.stack([ys, xs], -1).reshape(-1, 2) / sigma_xy, images[i].reshape(-1, 3).double() / sigma_rgb], 1)
        W = torch.exp(-0.5 * torch.cdist(f, f) ** 2)
        s = probs[i].reshape(c, -1).double()
        out.append(-(s @ W * s).sum())
    return torch.stack(out)


def test_crf_weight_reproduces_rlosss_reductions_on_a_tiny_case():
    """rloss at batch B = 12: CE / B + 2e-9 sum_b E_b / B. Ours with crf_weight at rloss's grid: CE + 2.4e-8 mean_b E_b.
    The gradients with respect to the logits agree up to the factor 12 (rloss's whole loss is 1/12 of ours)."""
    assert crf_weight(256 * 256, 50.0) == pytest.approx(2e-9 * 12)
    torch.manual_seed(3)
    b, c, h, w = 12, 3, 5, 6
    images = torch.randint(0, 256, (b, h, w, 3)).double()
    logits = torch.randn(b, c, h, w, dtype=torch.float64)
    clicks = torch.full((b, h, w), 255)
    clicks[:, 2, 3] = torch.randint(0, c, (b,))
    clicks[:, 0, 0] = 0
    sxy, srgb = 3.0, 15.0

    def grad(fn):
        x = logits.clone().requires_grad_()
        fn(x).backward()
        return x.grad

    weight = crf_weight(256 * 256, 50.0)
    ours = grad(lambda x: partial_ce(x, clicks) + weight * dense_crf_loss(images, x.softmax(1), sigma_xy=sxy, sigma_rgb=srgb,
                                                                          reduction="sum", kernel="exact"))
    rloss = grad(lambda x: F.cross_entropy(x, clicks, ignore_index=255) / b
                 + 2e-9 * _rloss_energy(images, x.softmax(1), sxy, srgb).sum() / b)
    assert torch.allclose(ours / 12, rloss, rtol=1e-6, atol=1e-12)


def test_crf_weight_keeps_the_term_when_image_and_kernel_grow():
    """weight x energy of the same soft segmentation stays within a few % when the image and sigma_xy double."""
    m = torch.zeros(32, 32, dtype=torch.long)
    m[6:22, 8:24], m[24:, :12] = 1, 2
    image = torch.stack([m * 90.0, 200 - m * 50.0, 40 + m * 30.0], -1)[None]
    probs = 0.8 * F.one_hot(m, 3).permute(2, 0, 1)[None].float() + 0.2 / 3
    terms = []
    for k in (1, 2):
        im = F.interpolate(image.permute(0, 3, 1, 2), scale_factor=k, mode="nearest").permute(0, 2, 3, 1)
        p = F.interpolate(probs, scale_factor=k, mode="nearest")
        e = dense_crf_loss(im, p, sigma_xy=4.0 * k, sigma_rgb=15, scale=0.5, reduction="sum", kernel="exact")
        terms.append(crf_weight((16 * k) ** 2, 2.0 * k) * e.item())
    assert terms[1] == pytest.approx(terms[0], rel=0.03)      # without the scaling: 16x apart


def test_ema_is_a_running_average_then_alpha():
    student, teacher = torch.nn.Linear(1, 1, bias=False), torch.nn.Linear(1, 1, bias=False)
    teacher.weight.data.fill_(100.0)
    values, expected = [2.0, 4.0, 9.0, 1.0], []
    alpha, avg = 0.6, 100.0
    for t, v in enumerate(values, start=1):
        student.weight.data.fill_(v)
        keep = ema_update(teacher, student, t, alpha)
        want_keep = 1 - 1 / t if 1 - 1 / t < alpha else alpha       # t = 1: 0, t = 2: 0.5, then 0.6 (1 - 1/3 >= 0.6)
        avg = want_keep * avg + (1 - want_keep) * v
        expected.append(avg)
        assert keep == pytest.approx(want_keep)
        assert teacher.weight.item() == pytest.approx(avg)
    assert expected[:2] == pytest.approx([2.0, 3.0])                 # the running average of 2 and 4
    assert expected[2] == pytest.approx(0.6 * 3.0 + 0.4 * 9.0)
    with pytest.raises(ValueError, match="t=0"):
        ema_update(teacher, student, 0, alpha)


def test_alpha_keeps_its_horizon_as_a_share_of_the_run():
    assert alpha_for_run(0.999, seminar.PAPER_STEPS) == pytest.approx(0.999)
    a = alpha_for_run(0.999, 500)
    assert 1 / (1 - a) == pytest.approx(1000 * 500 / 52920)         # 9.4 steps: 1.9% of the run, as 1000 of 52,920
    assert alpha_for_run(0.99, 500) == 0.0                            # under one step: the teacher is the student


def test_pcons_ramp_rises_per_epoch_over_two_thirds_of_the_run():
    steps = 600                                                       # 60 "epochs" of 10 steps
    assert pcons_weight(0, steps) == 0.0 and pcons_weight(9, steps) == 0.0
    assert pcons_weight(10, steps) == pytest.approx(200 / 40)
    assert pcons_weight(200, steps) == pytest.approx(100.0) == pcons_weight(209, steps)
    assert pcons_weight(400, steps) == 200.0 == pcons_weight(599, steps)
    assert len({pcons_weight(s, steps) for s in range(steps)}) == 41


@pytest.fixture(scope="module")
def click_batch(tiny_benchmark):
    ds = build_dataset("synthetic", tiny_benchmark, "train_aug", transform=TrainTransform(32, (0.5, 2.0), blur=0.5),
                       with_clicks=True)
    torch.manual_seed(0)
    return ds, collate([ds[i] for i in range(4)])


def _model(ds, **kw):
    torch.manual_seed(0)
    return Seminar("resnet-tiny", ds.num_classes, steps=20, output_stride=8, channels=8, rates=(1, 2, 3),
                   crf_sigma_xy=4.0, **kw)


def test_teacher_is_no_part_of_the_optimiser_and_gets_no_gradient(click_batch):
    ds, batch = click_batch
    model = _model(ds)
    assert all(not p.requires_grad for p in model.teacher.parameters())
    opt = build_optimizer(model, TrainConfig(steps=2, lr=0.007))
    in_opt = {id(p) for g in opt.param_groups for p in g["params"]}
    assert not in_opt & {id(p) for p in model.teacher.parameters()}
    assert in_opt == {id(p) for p in model.student.parameters()}
    for a, b in zip(model.teacher.parameters(), model.student.parameters()):
        assert torch.equal(a, b)                                     # the teacher starts as the student
    out = model(batch, step=15)
    out["loss"].backward()
    assert all(p.grad is None for p in model.teacher.parameters())
    assert out["lambda_pcons"] > 0 and {"pce", "crf", "pcons"} <= set(out)
    before = [p.clone() for p in model.teacher.parameters()]
    with torch.no_grad():
        for p in model.student.parameters():
            p.add_(1.0)
    model.after_step(1)                                             # t = 1: the teacher becomes the student
    assert all(torch.equal(a, b) for a, b in zip(model.teacher.parameters(), model.student.parameters()))
    assert not torch.equal(before[0], next(model.teacher.parameters()))


def test_switches_and_the_primary_model(click_batch, tmp_path):
    ds, batch = click_batch
    pce_only = _model(ds, crf=False, pcons=False)
    out = pce_only(batch, 0)
    assert pce_only.teacher is None and set(out) == {"pce", "loss"} and out["loss"] == out["pce"]
    full = _model(ds, crf=False, pcons=False, full_supervision=True)(batch, 0)
    assert full["pce"].item() == pytest.approx(partial_ce(_model(ds, crf=False, pcons=False).student(
        __import__("wsss.data.transforms", fromlist=["normalize"]).normalize(batch["image"])), batch["mask"]).item(), rel=1e-5)
    ancillary = _model(ds)
    torch.save(ancillary.state_dict(), tmp_path / "anc.pt")
    primary = _model(ds, ancillary=str(tmp_path / "anc.pt"))
    assert all(torch.equal(a, b) for a, b in zip(primary.ancillary.parameters(), ancillary.student.parameters()))
    primary.train()
    assert not primary.ancillary.training and primary.student.training
    out = primary(batch, 5)
    assert "pseudo" in out and out["pseudo"] > 0
    opt = build_optimizer(primary, TrainConfig(steps=2, lr=0.007))
    assert not {id(p) for g in opt.param_groups for p in g["params"]} & {id(p) for p in primary.ancillary.parameters()}


def test_step_timing_counts_the_ema_and_crf_as_work_beyond_the_network(click_batch):
    ds, batch = click_batch
    model = _model(ds)
    calls = []
    original = model.after_step
    model.after_step = lambda step: (calls.append(step), original(step))
    timing = step_timing(model, batch, steps=2, warmup=1)
    assert len(calls) == 3                                           # the full steps only
    assert timing["full_ms"] > 0 and not model.timing_network_only
    model.timing_network_only = True
    assert "crf" not in model(batch, 0)


def test_clicks_are_batched_as_a_mask_and_blur_is_repeatable(click_batch):
    ds, batch = click_batch
    cm = batch["click_mask"]
    assert cm.shape == batch["mask"].shape and cm.dtype == torch.int64
    for i, clicks in enumerate(batch["clicks"]):
        assert int((cm[i] != 255).sum()) == len({(int(y), int(x)) for y, x, _ in clicks})
        for y, x, c in clicks:
            assert cm[i, y, x] == c
    from wsss.data.transforms import gaussian_blur
    image = ds[0]["image"]
    assert torch.equal(gaussian_blur(image, 0.0), image)
    blurred = gaussian_blur(image, 1.0)
    assert blurred.dtype == torch.uint8 and blurred.shape == image.shape and not torch.equal(blurred, image)
    with pytest.raises(ValueError, match="blur"):
        TrainTransform(32, blur=1.5)
    assert math.isfinite(float(blurred.float().mean()))


def test_lever_table_pairs_each_pce_run_with_the_full_run_of_its_schedule_and_size(tmp_path):
    import json

    from wsss.experiments.seminar import lever_table

    def run(full, miou, steps=500, crop=64, **lever):
        return {"lever": {"full": full, "background": None, "background_line": 0, **lever}, "steps": steps, "crop": crop,
                "labelled_pixels_per_crop": 0.0 if full else 2.5, "miou": miou}

    path = tmp_path / "levers.json"
    path.write_text(json.dumps({"runs": [run(True, 0.8), run(False, 0.6), run(False, 0.4, background=0),
                                         run(False, 0.7, steps=1500)]}))
    table = lever_table(path)
    assert len(table) == 3
    assert table["pCE / full"].tolist()[:2] == [0.75, 0.5]
    assert table["full masks"].isna().tolist() == [False, False, True]        # no full run at 1500 iterations
    assert "0 click(s)" in table.iloc[1, 0]
    assert lever_table(tmp_path / "missing.json") is None
