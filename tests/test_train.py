"""The shared training loop: it learns, it repeats itself for a fixed seed, and it resumes exactly."""
import copy
import math
import re

import pytest
import torch
import torch.nn as nn

from wsss.data import build_dataset
from wsss.data.transforms import TrainTransform, normalize
from wsss.losses import multilabel_soft_margin
from wsss.train import TrainConfig, build_optimizer, lr_factor, poly_lr, train


class TinyTagger(nn.Module):
    """A two-layer CAM-style classifier with dropout (so the global RNG matters)."""

    def __init__(self, classes=6):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.ReLU(), nn.Dropout(0.2))
        self.cls = nn.Conv2d(8, classes, 1, bias=False)

    def forward(self, batch, step=0):
        logits = self.cls(self.body(normalize(batch["image"]))).mean(dim=(2, 3))
        return {"loss": multilabel_soft_margin(logits, batch["labels"]), "step_seen": float(step)}


@pytest.fixture
def data(tiny_benchmark):
    return build_dataset("synthetic", tiny_benchmark, "train_aug", transform=TrainTransform(32))


def _weights(m):
    return torch.cat([p.detach().flatten() for p in m.parameters()])


def test_training_lowers_the_loss(data):
    torch.manual_seed(0)
    m = TinyTagger()
    hist = train(m, data, TrainConfig(steps=60, batch_size=4, lr=0.01, optimizer="adamw", log_every=10, progress=False))
    assert len(hist) == 6 and hist[-1]["step"] == 60
    assert hist[-1]["loss"] < hist[0]["loss"]
    assert hist[-1]["lr"] < 0.01 * 0.5          # poly decay


def test_same_seed_same_weights(data):
    runs = []
    for _ in range(2):
        torch.manual_seed(123)
        m = TinyTagger()
        train(m, data, TrainConfig(steps=8, batch_size=4, seed=7, progress=False))
        runs.append(_weights(m))
    assert torch.equal(runs[0], runs[1])


def _straight_run(data):
    """(initial weights, a TinyTagger trained 10 steps from them without interruption)."""
    torch.manual_seed(0)
    init = TinyTagger().state_dict()
    straight = TinyTagger()
    straight.load_state_dict(init)
    train(straight, data, TrainConfig(steps=10, batch_size=4, seed=3, progress=False))
    return init, straight


def test_resume_matches_an_uninterrupted_run(data, tmp_path):
    init, straight = _straight_run(data)

    cfg = dict(batch_size=4, seed=3, progress=False, checkpoint_every=2, checkpoint_dir=str(tmp_path / "ck"))
    interrupted = TrainConfig(steps=10, **cfg)
    crashed = TinyTagger()
    crashed.load_state_dict(init)
    _stop_after(crashed, data, interrupted, 4)          # checkpoints at steps 2 and 4, then a crash
    # the restart: a fresh process builds a fresh model and resumes at step 4 (mid-epoch: 6 batches/epoch)
    resumed = TinyTagger()
    resumed.load_state_dict(init)
    hist = train(resumed, data, interrupted)
    assert hist[-1]["step"] == 10
    assert torch.allclose(_weights(resumed), _weights(straight), atol=1e-6)


def _stop_after(method, data, cfg, n, **kwargs):
    """Run ``cfg`` (and train's ``kwargs``) but stop the process (an exception) after n steps, as a crash would."""
    class Crash(Exception):
        pass

    forward = method.forward

    def crashing(batch, step=0):
        if step >= n:
            raise Crash
        return forward(batch, step)

    method.forward = crashing
    with pytest.raises(Crash):
        train(method, data, cfg, **kwargs)


def test_bad_config_and_tiny_dataset(data):
    with pytest.raises(ValueError, match="steps"):
        TrainConfig(steps=0)
    with pytest.raises(ValueError, match="optimizer"):
        TrainConfig(optimizer="lion")
    with pytest.raises(ValueError, match="checkpoint_dir"):
        TrainConfig(checkpoint_every=5)
    with pytest.raises(ValueError, match="fewer than one batch"):
        train(TinyTagger(), data, TrainConfig(steps=1, batch_size=1000, progress=False))
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            train(TinyTagger(), data, TrainConfig(steps=1, device="cuda", progress=False))


def test_ddp_under_torchrun_keeps_ranks_in_step(tiny_benchmark):
    """Two processes on the CPU (gloo): gradients are averaged, so both ranks end with the same weights."""
    import subprocess
    import sys
    from pathlib import Path

    here = Path(__file__).parent
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_port=29517",
                           str(here / "helpers" / "ddp_train.py"), str(tiny_benchmark), str(here)],
                          capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "ranks=2 steps=4 weights_equal=True" in proc.stdout


def test_stop_at_then_resume_in_another_folder_matches_an_uninterrupted_run(data, tmp_path):
    """The shared first part of several runs (stop_at), copied into a run's own folder, continues exactly."""
    import shutil

    init, straight = _straight_run(data)

    first = TinyTagger()
    first.load_state_dict(init)
    hist = train(first, data, TrainConfig(steps=10, batch_size=4, seed=3, progress=False, stop_at=4, log_every=2,
                                          checkpoint_dir=str(tmp_path / "warm")))
    assert hist[-1]["step"] == 4 and (tmp_path / "warm" / "last.pt").is_file()
    (tmp_path / "run").mkdir()
    shutil.copy(tmp_path / "warm" / "last.pt", tmp_path / "run" / "last.pt")
    second = TinyTagger()
    second.load_state_dict(init)
    hist = train(second, data, TrainConfig(steps=10, batch_size=4, seed=3, progress=False, log_every=2,
                                           checkpoint_dir=str(tmp_path / "run")))
    assert hist[-1]["step"] == 10
    assert torch.allclose(_weights(second), _weights(straight), atol=1e-6)


@pytest.mark.parametrize("kwargs", [dict(stop_at=4), dict(stop_at=0, checkpoint_dir="x"), dict(stop_at=11, checkpoint_dir="x")])
def test_stop_at_needs_a_folder_and_a_step_inside_the_run(kwargs):
    with pytest.raises(ValueError, match="stop_at"):
        TrainConfig(steps=10, **kwargs)


# ---- after-step hooks, frozen parameters ----------------------------------------------------------------------------

class EMATagger(TinyTagger):
    """TinyTagger with an EMA copy of its classifier (Seminar Learning's teacher), updated after each step."""

    def __init__(self, momentum=0.5):
        super().__init__()
        self.teacher = copy.deepcopy(self.cls).requires_grad_(False)
        self.momentum = momentum
        self.steps_seen = []

    def after_step(self, step):
        self.steps_seen.append(step)
        for t, s in zip(self.teacher.parameters(), self.cls.parameters()):
            t.mul_(self.momentum).add_(s, alpha=1 - self.momentum)


def test_after_step_keeps_an_ema_teacher_outside_the_optimizer(data):
    torch.manual_seed(0)
    m = EMATagger(momentum=0.5)
    t0 = m.teacher.weight.detach().clone()
    cfg = TrainConfig(steps=2, batch_size=4, progress=False)
    teacher_ids = {id(p) for p in m.teacher.parameters()}
    assert not teacher_ids & {id(p) for g in build_optimizer(m, cfg).param_groups for p in g["params"]}
    student, called = [], []

    def record(method, step):
        assert method is m and not torch.is_grad_enabled()
        called.append(step)
        student.append(method.cls.weight.detach().clone())

    train(m, data, cfg, after_step=record)
    assert m.steps_seen == called == [1, 2]            # the number of steps done
    expected = 0.5 * (0.5 * t0 + 0.5 * student[0]) + 0.5 * student[1]
    assert not torch.equal(m.teacher.weight, t0)
    assert torch.allclose(m.teacher.weight, expected, atol=1e-7)


def test_optimizer_drops_frozen_parameters_and_empty_groups():
    m = EMATagger()
    m.param_groups = lambda: [{"params": list(m.body.parameters()) + list(m.cls.parameters())},
                              {"params": m.teacher.parameters(), "lr_mult": 10.0}]
    opt = build_optimizer(m, TrainConfig(lr=0.1))
    assert len(opt.param_groups) == 1 and opt.param_groups[0]["initial_lr"] == 0.1
    with pytest.raises(ValueError, match="no parameter to train"):
        build_optimizer(nn.Linear(2, 2).requires_grad_(False), TrainConfig())


# ---- learning-rate schedules ----------------------------------------------------------------------------------------

R = 1e-6


@pytest.mark.parametrize("schedule, warmup, step, expected", [
    ("poly", 0, 0, 1.0), ("poly", 0, 5, 0.5 ** 0.9), ("poly", 0, 10, 0.0),
    ("cosine", 0, 0, 1.0), ("cosine", 0, 5, 0.5), ("cosine", 0, 10, 0.0),
    ("constant", 0, 0, 1.0), ("constant", 0, 9, 1.0),
    ("poly", 4, 0, R), ("poly", 4, 2, R + (1 - R) * 0.5), ("poly", 4, 4, 0.6 ** 0.9),   # decay not shifted
    ("cosine", 4, 1, R + (1 - R) * 0.25), ("cosine", 4, 4, 0.5 * (1 + math.cos(math.pi * 0.4))),
    ("constant", 4, 3, R + (1 - R) * 0.75), ("constant", 4, 4, 1.0),
])
def test_lr_factor(schedule, warmup, step, expected):
    assert lr_factor(step, TrainConfig(steps=10, schedule=schedule, lr_warmup=warmup)) == pytest.approx(expected, abs=1e-12)


def test_lr_factor_poly_matches_poly_lr_and_rejects_steps_outside_the_run():
    opt = torch.optim.SGD([{"params": [nn.Parameter(torch.zeros(1))], "initial_lr": 2.0}], lr=2.0)
    poly_lr(opt, 3, 10, 0.9)
    assert opt.param_groups[0]["lr"] == 2.0 * lr_factor(3, TrainConfig(steps=10))
    with pytest.raises(ValueError, match="step=11"):
        lr_factor(11, TrainConfig(steps=10))


def test_constant_schedule_and_warm_up_in_the_logged_lr(data):
    hist = train(TinyTagger(), data, TrainConfig(steps=4, batch_size=4, lr=0.01, schedule="constant", log_every=1,
                                                progress=False))
    assert [r["lr"] for r in hist] == [0.01] * 4
    hist = train(TinyTagger(), data, TrainConfig(steps=4, batch_size=4, lr=0.01, schedule="constant", lr_warmup=2,
                                                log_every=1, progress=False))
    assert [r["lr"] for r in hist] == pytest.approx([0.01 * R, 0.01 * (R + (1 - R) / 2), 0.01, 0.01])


# ---- frozen BatchNorm -----------------------------------------------------------------------------------------------

class BNTagger(TinyTagger):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.BatchNorm2d(8), nn.ReLU())
        with torch.no_grad():
            self.body[1].weight.uniform_(0.5, 1.5)
            self.body[1].running_mean.uniform_(-0.1, 0.1)


@pytest.mark.parametrize("freeze", [True, False])
def test_freeze_bn_keeps_statistics_and_affine_weights(data, freeze):
    torch.manual_seed(0)
    m = BNTagger()
    before = copy.deepcopy(m.state_dict())
    # after_step switches the whole method to train mode, as an evaluation or a method's own code may
    train(m, data, TrainConfig(steps=3, batch_size=4, freeze_bn=freeze, progress=False),
          after_step=lambda method, step: method.train())
    after = m.state_dict()
    for k in ("body.1.running_mean", "body.1.running_var", "body.1.weight", "body.1.bias"):
        assert torch.equal(after[k], before[k]) == freeze, k
    assert not torch.equal(after["body.0.weight"], before["body.0.weight"])
    assert not torch.equal(after["cls.weight"], before["cls.weight"])


# ---- evaluation -----------------------------------------------------------------------------------------------------

def test_evaluation_is_recorded_kept_in_checkpoints_and_leaves_training_alone(data, tmp_path):
    init, _ = _straight_run(data)
    seen = []

    def evaluate(m):
        seen.append((m.training, torch.is_grad_enabled()))
        torch.rand(3)                                 # draws on the RNG: must not change the training
        return {"score": torch.tensor(float(len(seen))), "n": len(seen)}

    cfg = dict(steps=5, batch_size=4, seed=3, log_every=2, progress=False)
    plain = TinyTagger()
    plain.load_state_dict(init)
    plain_hist = train(plain, data, TrainConfig(**cfg))
    m = TinyTagger()
    m.load_state_dict(init)
    hist = train(m, data, TrainConfig(**cfg), evaluate=evaluate, eval_every=2)
    assert seen == [(False, False)] * 3
    assert [(r["step"], r["val_score"], r["val_n"]) for r in hist if "val_score" in r] == [(2, 1.0, 1.0), (4, 2.0, 2.0),
                                                                                            (5, 3.0, 3.0)]
    assert [{k: v for k, v in r.items() if k not in ("time", "val_score", "val_n")} for r in hist] == \
        [{k: v for k, v in r.items() if k != "time"} for r in plain_hist]     # training records as without it
    assert torch.equal(_weights(m), _weights(plain))

    # eval steps off the log steps get a record of their own; a resumed run keeps the records before the crash
    ck = dict(cfg, checkpoint_dir=str(tmp_path / "ck"), checkpoint_every=3)
    crashed = TinyTagger()
    crashed.load_state_dict(init)
    _stop_after(crashed, data, TrainConfig(**ck), 4, evaluate=lambda m: {"s": 1}, eval_every=3)
    assert [r["step"] for r in torch.load(tmp_path / "ck" / "last.pt", weights_only=False)["history"]] == [2, 3]
    resumed = TinyTagger()
    resumed.load_state_dict(init)
    hist = train(resumed, data, TrainConfig(**ck), evaluate=lambda m: {"s": 2}, eval_every=3)
    assert [(r["step"], r.get("val_s")) for r in hist] == [(2, None), (3, 1.0), (4, None), (5, 2.0)]
    assert torch.allclose(_weights(resumed), _weights(plain), atol=1e-6)


def test_bad_evaluation_arguments(data):
    with pytest.raises(ValueError, match="eval_every"):
        train(TinyTagger(), data, TrainConfig(steps=1, batch_size=4, progress=False), eval_every=2)
    with pytest.raises(ValueError, match="eval_every"):
        train(TinyTagger(), data, TrainConfig(steps=1, batch_size=4, progress=False), evaluate=dict, eval_every=1.5)
    with pytest.raises(TypeError, match="miou"):
        train(TinyTagger(), data, TrainConfig(steps=1, batch_size=4, progress=False),
              evaluate=lambda m: {"miou": "high"})


# ---- checkpoints ----------------------------------------------------------------------------------------------------

def test_checkpoint_dir_alone_saves_the_last_step(data, tmp_path):
    cfg = TrainConfig(steps=3, batch_size=4, progress=False, log_every=1, checkpoint_dir=str(tmp_path))
    m = TinyTagger()
    hist = train(m, data, cfg)
    state = torch.load(tmp_path / "last.pt", weights_only=False)
    assert state["step"] == 3 and state["history"] == hist
    again = TinyTagger()
    assert train(again, data, cfg) == hist                  # done: the trained weights are loaded, nothing more
    assert torch.equal(_weights(again), _weights(m))


def _checkpointed(data, folder, **kwargs):
    train(TinyTagger(), data, TrainConfig(**{"steps": 4, "batch_size": 4, "progress": False,
                                             "checkpoint_dir": str(folder), **kwargs}))
    return folder / "last.pt"


def test_resume_with_another_config_names_the_file_and_fields(data, tmp_path):
    path = _checkpointed(data, tmp_path, lr=0.01, seed=1)
    run = dict(steps=4, batch_size=4, progress=False, checkpoint_dir=str(tmp_path))
    with pytest.raises(ValueError, match=re.escape(str(path)) + r".*\blr=0.01 there, 0.02 here.*\bseed=1 there, 2 here"):
        train(TinyTagger(), data, TrainConfig(**run, lr=0.02, seed=2))
    with pytest.raises(ValueError, match="schedule"):
        train(TinyTagger(), data, TrainConfig(**run, seed=1, schedule="cosine"))
    # fields that do not change the result may differ
    hist = train(TinyTagger(), data, TrainConfig(**run, lr=0.01, seed=1, log_every=3, checkpoint_every=2, device="cpu"))
    assert hist[-1]["step"] == 4
    with pytest.raises(ValueError, match=re.escape(str(path)) + ".*step 4.*steps=3"):
        train(TinyTagger(), data, TrainConfig(**{**run, "steps": 3}, lr=0.01, seed=1))


def test_resume_on_another_split_names_the_split(data, tiny_benchmark, tmp_path):
    path = _checkpointed(data, tmp_path, lr=0.01, seed=1)
    run = dict(steps=4, batch_size=4, progress=False, checkpoint_dir=str(tmp_path), lr=0.01, seed=1)
    val = build_dataset("synthetic", tiny_benchmark, "val", transform=TrainTransform(32))
    with pytest.raises(ValueError, match=re.escape(str(path)) + r" was trained on other data .*split='train_aug' there, "
                                         r"'val' here"):
        train(TinyTagger(), val, TrainConfig(**run))
    assert train(TinyTagger(), data, TrainConfig(**run))[-1]["step"] == 4      # the same data resumes


def _random_bytes(path):
    path.write_bytes(bytes(range(256)) * 4)


def _foreign_dict(path):
    torch.save({"weights": torch.zeros(3)}, path)


def _state_dict_only(path):
    torch.save(TinyTagger().state_dict(), path)


@pytest.mark.parametrize("spoil, fragment", [(_random_bytes, "cannot be read"), (_foreign_dict, "no model"),
                                             (_state_dict_only, "no model")])
def test_corrupt_or_foreign_checkpoint_names_the_file(data, tmp_path, spoil, fragment):
    path = tmp_path / "last.pt"
    spoil(path)
    with pytest.raises(ValueError, match=re.escape(str(path)) + ".*" + fragment):
        train(TinyTagger(), data, TrainConfig(steps=2, batch_size=4, progress=False, checkpoint_dir=str(tmp_path)))


def test_checkpoint_of_another_model_names_the_file(data, tmp_path):
    path = _checkpointed(data, tmp_path)
    with pytest.raises(ValueError, match="(?s)" + re.escape(str(path)) + ".*does not fit.*size mismatch") as info:
        train(TinyTagger(classes=3), data, TrainConfig(steps=4, batch_size=4, progress=False, checkpoint_dir=str(tmp_path)))
    assert isinstance(info.value.__cause__, RuntimeError)
    with pytest.raises(ValueError, match="(?s)" + re.escape(str(path)) + ".*does not fit.*teacher"):
        train(EMATagger(), data, TrainConfig(steps=4, batch_size=4, progress=False, checkpoint_dir=str(tmp_path)))


# ---- config validation ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs, fragment", [
    (dict(steps=2.5), "steps must be an int"), (dict(steps=True), "steps must be an int"),
    (dict(batch_size="4"), "batch_size must be an int"), (dict(batch_size=0), "batch_size"),
    (dict(checkpoint_every=1.0, checkpoint_dir="x"), "checkpoint_every must be an int"),
    (dict(checkpoint_every=-1, checkpoint_dir="x"), "checkpoint_every"),
    (dict(log_every=0), "log_every"), (dict(log_every=None), "log_every must be an int"),
    (dict(num_workers=-1), "num_workers"), (dict(num_workers=2.0), "num_workers must be an int"),
    (dict(lr_warmup=1.5), "lr_warmup must be an int"), (dict(lr_warmup=10), r"lr_warmup=10 \(in \[0, steps=10\)"),
    (dict(lr_warmup=-1), "lr_warmup"), (dict(stop_at=2.0, checkpoint_dir="x"), "stop_at must be an int"),
    (dict(seed=1.5), "seed must be an int"),
    (dict(lr="0.01"), r"\blr must be a finite number"), (dict(lr=0), r"\blr=0"), (dict(lr=float("nan")), r"\blr\b"),
    (dict(lr=True), r"\blr must be"), (dict(momentum=None), "momentum must be"), (dict(momentum=-0.1), "momentum"),
    (dict(weight_decay=float("inf")), "weight_decay must be"), (dict(poly_power="0.9"), "poly_power must be"),
    (dict(lr_warmup_ratio=2.0), "lr_warmup_ratio"), (dict(lr_warmup_ratio="1e-6"), "lr_warmup_ratio must be"),
    (dict(grad_clip=0), "grad_clip"), (dict(grad_clip="1"), "grad_clip must be"),
    (dict(schedule="step"), "schedule='step'"), (dict(optimizer="lion"), "optimizer"),
    (dict(freeze_bn="yes"), "freeze_bn must be True or False"), (dict(amp=1), "amp must be True or False"),
])
def test_bad_config_values_name_their_field(kwargs, fragment):
    with pytest.raises(ValueError, match=fragment):
        TrainConfig(**{"steps": 10, **kwargs})


def test_numpy_numbers_are_fine():
    import numpy as np

    cfg = TrainConfig(steps=np.int64(10), batch_size=np.int32(2), lr=np.float32(0.1), lr_warmup=np.int64(2),
                      grad_clip=1, freeze_bn=np.bool_(True))
    assert lr_factor(2, cfg) == pytest.approx(0.8 ** 0.9)
