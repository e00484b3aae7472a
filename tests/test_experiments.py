"""Ablation plumbing: the run grid, step timing, the ASDT run driver, pseudo-mask datasets, verdicts."""
import numpy as np
import pytest
import torch

from wsss.data import DatasetError, PseudoMaskDataset, build_dataset
from wsss.data.transforms import TrainTransform
from wsss.experiments import run_grid, run_variant, shared_warmup, step_timing
from wsss.experiments import asdt as asdt_runs
from wsss.experiments.asdt import OUTPUTS
from wsss.methods.asdt import ASDT
from wsss.methods.rrm import RRM
from wsss.notebook import ordering_verdict, pair_verdict
from wsss import viz

SMALL = dict(backbone="resnet-tiny", mid=8, crf_backend="pydensecrf", crf_bilateral=(10, 13, 10), st_bilateral=(10, 5, 4),
             str_sigma_xy=12.0, T=4, tau=1, warmup=2)


@pytest.mark.parametrize("workers", [1, 2])
def test_run_grid_keeps_the_order_and_names_the_run_that_failed(workers):
    configs = {"b": {"x": 2}, "a": {"x": 1}, "c": {"y": 3}}
    out = run_grid(dict, configs, workers=workers)
    assert out == configs and list(out) == ["b", "a", "c"]
    with pytest.raises(RuntimeError, match="run 'bad' failed"):
        run_grid(int, {"ok": {}, "bad": {"nonsense": 1}}, workers=workers)


def test_run_grid_needs_a_worker():
    with pytest.raises(ValueError, match="workers"):
        run_grid(dict, {}, workers=0)


def _batch(b=2, size=32, num_classes=4):
    g = torch.Generator().manual_seed(0)
    labels = torch.zeros(b, num_classes - 1)
    labels[0, 0] = labels[1, 1] = 1
    return {"image": torch.randint(0, 256, (b, 3, size, size), dtype=torch.uint8, generator=g),
            "mask": torch.zeros(b, size, size, dtype=torch.int64), "labels": labels}


@pytest.mark.parametrize("make", [
    lambda: ASDT(num_classes=4, **{**SMALL, "warmup": 0}),
    lambda: RRM("resnet-tiny", 4, mid=8, crf_backend="pydensecrf", crf_bilateral=(10, 13, 10), str_sigma_xy=12.0),
], ids=["ASDT", "RRM"])
def test_step_timing_skips_the_label_work_only_in_the_network_only_step(monkeypatch, make):
    """The step-timing protocol (wsss.train.ReusableLabels) on two methods."""
    torch.manual_seed(0)
    model = make()
    calls = {"n": 0}
    real = model.pseudo_labels

    def counting(*args, **kwargs):
        calls["n"] += 1
        return real(*args, **kwargs)

    monkeypatch.setattr(model, "pseudo_labels", counting)
    timing = step_timing(model, _batch(), steps=3, warmup=1, step=4)        # t=4: an ASDT seg-teacher step
    # the whole steps build labels 4 times (1 warm-up pair + 3 timed pairs); the network-only steps once (untimed)
    assert calls["n"] == 4 + 1
    assert set(timing) == {"full_ms", "network_ms", "other_ms", "other_fraction", "noise_ms", "resolved", "pairs"}
    assert timing["pairs"] == 3 and timing["noise_ms"] >= 0
    assert timing["full_ms"] > 0 and timing["network_ms"] > 0
    assert timing["other_fraction"] == pytest.approx(timing["other_ms"] / timing["full_ms"])
    assert model.timing_network_only is False and model._reused is None
    with pytest.raises(TypeError, match="timing_network_only"):
        step_timing(torch.nn.Linear(2, 2), _batch())


def test_step_timing_interleaves_so_a_slow_phase_cannot_make_the_share_negative(monkeypatch):
    """A machine that turns slow half-way: the first version timed every whole step first and every network-only
    step after, so the slow phase fell on the network-only steps alone and the label work came out negative.
    Interleaved pairs see the same phase: the label work (a 15 ms sleep) is recovered."""
    import time as _time

    from wsss.train import ReusableLabels

    class Slowing(ReusableLabels, torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.ones(1))
            self.calls = 0

        def forward(self, batch, step=0):
            self.calls += 1
            _time.sleep(0.005 if self.calls < 8 else 0.040)            # the machine slows down after 7 steps
            self.step_labels(lambda: _time.sleep(0.015))               # the label work
            return {"loss": (self.w * 2).sum()}

    timing = step_timing(Slowing(), {}, steps=6, warmup=1)
    assert timing["other_ms"] == pytest.approx(15, abs=8) and timing["resolved"]
    assert 0 < timing["other_fraction"] < 1


def test_network_only_step_reuses_the_labels_and_drops_l_str():
    torch.manual_seed(0)
    model = ASDT(num_classes=4, **{**SMALL, "warmup": 0})
    full = model(_batch(), 4)
    assert full["s_str"] > 0
    model.timing_network_only = True
    first = model(_batch(), 4)
    again = model(_batch(), 4)
    assert first["s_str"] == 0 and again["s_str"] == 0
    assert torch.allclose(first["s_ce"], again["s_ce"]) and again["teacher_st"] == 1.0


def test_asdt_param_groups_follow_the_public_learning_rate_multipliers():
    model = ASDT(num_classes=4, **SMALL)
    groups = model.param_groups()
    assert sorted(g["lr_mult"] for g in groups) == [1.0, 2.0, 10.0, 20.0]
    seen = [id(p) for g in groups for p in g["params"]]
    assert len(seen) == len(set(seen)) == len(list(model.parameters()))
    by_mult = {g["lr_mult"]: {id(p) for p in g["params"]} for g in groups}
    assert id(model.student.conv1.bias) in by_mult[20.0] and id(model.seg.conv2.weight) in by_mult[10.0]
    assert id(model.net.classifier.weight) in by_mult[10.0]


def test_run_variant_shares_a_warm_start_and_scores_every_output(tiny_benchmark, tmp_path):
    train_set = build_dataset("synthetic", tiny_benchmark, "train_aug", transform=TrainTransform(32))
    val_set = build_dataset("synthetic", tiny_benchmark, "val")
    common = dict(method=ASDT, predictor=asdt_runs.predictor, predictor_args=dict(crf_bilateral=(10, 5, 4)),
                  train_set=train_set, val_set=val_set, init=None, model={**SMALL, "crf_backend": "auto"})
    tc = dict(steps=6, batch_size=2, lr=1e-3, optimizer="adamw", device="cpu", log_every=1)
    warm = run_variant(**common, outputs=(), train_cfg={**tc, "stop_at": 2, "checkpoint_dir": str(tmp_path / "w")})
    assert warm["miou"] == {} and warm["history"][-1]["step"] == 2
    ckpt = tmp_path / "w" / "last.pt"
    assert shared_warmup(steps=2, checkpoint_dir=tmp_path / "w2", train_cfg=tc, **common) == str(tmp_path / "w2" / "last.pt")
    assert torch.equal(torch.load(ckpt, weights_only=False)["model"]["seg.conv1.weight"],
                       torch.load(tmp_path / "w2" / "last.pt", weights_only=False)["model"]["seg.conv1.weight"])
    res = run_variant(**common, outputs=list(OUTPUTS), train_cfg=tc, resume_from=str(ckpt), save_to=str(tmp_path / "m.pt"))
    assert set(res["miou"]) == set(OUTPUTS) and all(0 <= v <= 1 for v in res["miou"].values())
    assert res["history"][-1]["step"] == 6 and ckpt.is_file() and (tmp_path / "m.pt").is_file()
    # the same run from scratch gives the same model as the one resumed from the shared warm-up
    straight = run_variant(**common, outputs=["P max + CRF"], train_cfg=tc)
    assert straight["miou"]["P max + CRF"] == pytest.approx(res["miou"]["P max + CRF"], abs=1e-6)
    with pytest.raises(ValueError, match="unknown outputs"):                # before any training
        run_variant(**common, outputs=["P min"], train_cfg={**tc, "steps": 10**6})
    with pytest.raises(FileNotFoundError, match="resume_from"):
        run_variant(**common, outputs=(), train_cfg=tc, resume_from=str(tmp_path / "none.pt"))


def test_pseudo_mask_dataset_swaps_masks_before_the_transform(tiny_benchmark):
    base = build_dataset("synthetic", tiny_benchmark, "val")
    masks = {n: torch.full(base[i]["mask"].shape, i % 3, dtype=torch.int64) for i, n in enumerate(base.names)}
    ds = PseudoMaskDataset(base, masks)
    assert len(ds) == len(base) and ds.num_classes == base.num_classes
    s = ds[4]
    assert (s["mask"] == 1).all() and torch.equal(s["image"], base[4]["image"])
    cropped = PseudoMaskDataset(base, masks, transform=TrainTransform(24))[4]
    assert cropped["image"].shape[1:] == (24, 24) and set(cropped["mask"].unique().tolist()) <= {1, 255}
    with pytest.raises(DatasetError, match="no pseudo mask for image"):
        PseudoMaskDataset(base, {n: m for n, m in list(masks.items())[1:]})
    with pytest.raises(ValueError, match="without a transform"):
        PseudoMaskDataset(build_dataset("synthetic", tiny_benchmark, "val", transform=TrainTransform(24)), masks)
    bad = dict(masks)
    bad[base.names[0]] = torch.zeros(3, 3, dtype=torch.int64)
    with pytest.raises(DatasetError, match="pseudo mask of"):
        PseudoMaskDataset(base, bad)[0]


def test_ordering_verdict_counts_pairs_and_names_the_worst_reversal():
    paper = {"a": 0.640, "b": 0.530, "c": 0.485}
    assert "held (the paper's ordering, 3 pairs: 3 held" in ordering_verdict({"a": 0.70, "b": 0.60, "c": 0.40}, paper, std=0.01)
    text = ordering_verdict({"a": 0.50, "b": 0.60, "c": 0.40}, paper, std=0.01)
    assert "did not hold (the paper's ordering, 3 pairs: 2 held, 1 did not hold" in text
    assert "a is 10.0 points below b" in text and "in part" not in text
    assert "3 pairs: 0 held, 3 did not hold" in ordering_verdict({"a": 0.1, "b": 0.2, "c": 0.3}, paper, std=0.01)
    assert "fewer than two rows" in ordering_verdict({"a": 0.1}, paper)
    # pairs the paper calls a tie are not counted
    assert "2 pairs: 2 held" in ordering_verdict({"x": 0.01, "y": 0.02, "z": 0.0}, {"x": 0.6403, "y": 0.6402, "z": 0.6299},
                                                   tie=0.0005, std=0.001)


def test_verdicts_over_seeds_say_inconclusive_under_twice_the_spread():
    assert pair_verdict([0.50, 0.52, 0.54], [0.40, 0.41, 0.42]) == "held"           # gap 11 > 2 x std 2
    assert pair_verdict([0.40, 0.41, 0.42], [0.50, 0.52, 0.54]) == "did not hold"
    assert pair_verdict([0.50, 0.54, 0.46], [0.49, 0.50, 0.51]) == "inconclusive"   # gap 0 < 2 x std 4
    assert pair_verdict(0.500, 0.499) == "inconclusive"                             # one seed each: no std, no decision
    assert pair_verdict(0.500, 0.499, std=0.0004) == "held"                         # one seed, judged by the central std
    paper = {"a": 0.640, "b": 0.530, "c": 0.485}
    text = ordering_verdict({"a": [0.50, 0.54, 0.46], "b": [0.49, 0.50, 0.51], "c": [0.30, 0.31, 0.32]}, paper)
    assert "inconclusive (the paper's ordering, 3 pairs: 2 held, 0 did not hold, 1 inconclusive" in text
    assert "a 50.0 +- 4.0 (3 runs)" in text
    text = ordering_verdict({"a": [0.50, 0.54, 0.46], "b": [0.49, 0.50, 0.51]}, paper)
    assert "inconclusive (the paper's ordering, 1 pair: 0 held" in text and "reversal" not in text


def test_miou_records_keep_fractions_the_paper_and_every_seed():
    from wsss.records import miou_record

    one = miou_record(0.5, 64.03, row="full")
    assert one == {"row": "full", "miou": 0.5, "paper": pytest.approx(0.6403)}
    three = miou_record([0.4, 0.5, 0.6], None, T=150)
    assert three["miou"] == pytest.approx(0.5) and three["miou_std"] == pytest.approx(0.1)
    assert three["miou_seeds"] == [0.4, 0.5, 0.6] and three["paper"] is None


def test_figures_helpers(tmp_path):
    fig = viz.plot_signal([0, 0, 1, 1, 0], levels=("ct", "st"), path=tmp_path / "s.png")
    assert (tmp_path / "s.png").is_file() and fig is not None
    viz.block_diagram({"a": (0.2, 0.5, "A"), "b": (0.8, 0.5, "B")}, [("a", "b", "x")], path=tmp_path / "d.png")
    assert (tmp_path / "d.png").is_file()
    with pytest.raises(KeyError, match="'c'"):
        viz.block_diagram({"a": (0.2, 0.5, "A")}, [("a", "c", "")])
    ax = viz.plot_sweep({"ours": [(1, 50.0), (2, None), (3, 52.0)]}, xlabel="T")
    assert len(ax.lines[0].get_xdata()) == 2
    import matplotlib.pyplot as plt
    plt.close("all")


def test_tscd_prediction_averages_flips_and_takes_the_max_over_scales():
    from wsss.experiments.tscd import fused_logits, predictor

    class Fixed(torch.nn.Module):
        """logits depend on the input's size and on whether it is mirrored (a left-right ramp)."""

        def predict(self, images):
            b, _, h, w = images.shape
            ramp = torch.linspace(0, 1, w).expand(b, 1, h, w) * (images[:, :1].float().mean() / 100)
            return torch.cat([ramp, torch.full_like(ramp, h / 100)], 1)

    images = torch.zeros(1, 3, 20, 20, dtype=torch.uint8)
    images[..., 10:] = 200                                                   # right half bright: not flip-symmetric
    model = Fixed()
    fused = fused_logits(model, images, scales=(1.0, 0.5), flip=True)
    by_hand = []
    for s in (1.0, 0.5):
        x = images if s == 1.0 else torch.nn.functional.interpolate(images.float(), scale_factor=s, mode="bilinear",
                                                                     align_corners=False).round().to(torch.uint8)
        up = lambda t: torch.nn.functional.interpolate(t, size=(20, 20), mode="bilinear", align_corners=False)  # noqa: E731
        by_hand.append((up(model.predict(x)) + up(model.predict(x.flip(-1))).flip(-1)) / 2)
    assert torch.allclose(fused, torch.maximum(*by_hand), atol=1e-6)
    with pytest.raises(ValueError, match="unknown outputs"):
        predictor(model, ["seg", "P^s"])


def test_partial_init_loads_what_it_has_and_names_what_the_model_lacks(tmp_path, tiny_benchmark):
    from wsss.data import build_dataset
    from wsss.data.transforms import TrainTransform
    from wsss.experiments import run_variant
    from wsss.methods.afa import AFA

    ds = build_dataset("synthetic", tiny_benchmark, "train_aug", transform=TrainTransform(48))
    donor = AFA("mit-tiny", ds.num_classes, channels=8, output_stride=8)
    good = {k: v for k, v in donor.net.state_dict().items() if k.startswith("classifier.")}
    torch.save(good, tmp_path / "good.pt")
    torch.save({**good, "nonsense.weight": torch.zeros(1)}, tmp_path / "bad.pt")
    run = dict(method=AFA, model=dict(backbone="mit-tiny", channels=8, output_stride=8, cls_only=5), train_set=ds,
               val_set=None, train_cfg=dict(steps=1, batch_size=2, device="cpu", optimizer="adamw", lr=1e-9),
               init_into="net", init_partial=True)
    run_variant(**run, init=str(tmp_path / "good.pt"))
    with pytest.raises(KeyError, match="nonsense.weight"):
        run_variant(**run, init=str(tmp_path / "bad.pt"))
