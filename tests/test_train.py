"""The shared training loop: it learns, it repeats itself for a fixed seed, and it resumes exactly."""
import pytest
import torch
import torch.nn as nn

from wsss.data import build_dataset
from wsss.data.transforms import TrainTransform, normalize
from wsss.losses import multilabel_soft_margin
from wsss.train import TrainConfig, train


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


def _stop_after(method, data, cfg, n):
    """Run ``cfg`` but stop the process (an exception) after n steps, as a crash would."""
    class Crash(Exception):
        pass

    forward = method.forward

    def crashing(batch, step=0):
        if step >= n:
            raise Crash
        return forward(batch, step)

    method.forward = crashing
    with pytest.raises(Crash):
        train(method, data, cfg)


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
