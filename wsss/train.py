"""One training loop for every method.

A *method* is an ``nn.Module`` whose ``forward(batch, step)`` is one training step: it takes a batch
dict (tensors already on the device) and returns a dict with the scalar ``"loss"`` to minimise plus any
other numbers to log. The loop around it is the same for all papers:

* SGD (or AdamW) with the poly learning-rate decay of DeepLab, ``lr_t = lr (1 - t/T)^0.9``, and the
  per-group ``lr_mult`` a method's ``param_groups()`` may declare (new layers 10x, ...);
* mixed precision (bfloat16 autocast) on CUDA;
* a checkpoint every ``checkpoint_every`` steps, and resume from the last one when restarted;
* repeatable on the CPU for a fixed seed, also across a resume (data order and random states are
  part of the checkpoint);
* unchanged under ``torchrun`` with DDP on several GPUs (one process per GPU, a sharded sampler);
* a tqdm progress bar.
"""
from __future__ import annotations

import math
import os
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from tqdm.auto import tqdm

from .data.folder import collate


@dataclass
class TrainConfig:
    steps: int = 1000
    batch_size: int = 8
    lr: float = 0.01
    optimizer: str = "sgd"          # "sgd" or "adamw"
    momentum: float = 0.9
    weight_decay: float = 1e-4
    poly_power: float = 0.9
    amp: bool = True                # bfloat16 autocast, used only on CUDA
    checkpoint_every: int = 0       # 0 = never
    checkpoint_dir: str | None = None
    resume: bool = True
    seed: int = 0
    device: str = "auto"
    num_workers: int = 0
    log_every: int = 10
    progress: bool = True
    grad_clip: float | None = None
    stop_at: int | None = None      # stop after this step (the LR schedule still spans `steps`), checkpointed
    extra: dict = field(default_factory=dict)

    def __post_init__(self):
        checks = {"steps": self.steps > 0, "batch_size": self.batch_size > 0, "lr": self.lr > 0,
                  "optimizer": self.optimizer in ("sgd", "adamw"), "checkpoint_every": self.checkpoint_every >= 0,
                  "num_workers": self.num_workers >= 0, "log_every": self.log_every > 0}
        bad = [k for k, ok in checks.items() if not ok]
        if bad:
            raise ValueError(f"TrainConfig: bad value for {bad[0]}={getattr(self, bad[0])!r}")
        if self.checkpoint_every and not self.checkpoint_dir:
            raise ValueError("TrainConfig: checkpoint_every needs checkpoint_dir")
        if self.stop_at is not None and not (0 < self.stop_at <= self.steps and self.checkpoint_dir):
            raise ValueError(f"TrainConfig: stop_at={self.stop_at!r} must lie in [1, steps={self.steps}] "
                             "and needs checkpoint_dir (the run is meant to be resumed)")


def resolve_device(device: str = "auto") -> torch.device:
    """"auto" picks CUDA when available; otherwise the named device (error if it is not usable)."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={device!r} but CUDA is not available here; use 'cpu' or 'auto'")
    return dev


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _distributed() -> tuple[int, int]:
    """(rank, world size); initialises the process group when launched by torchrun."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return (dist.get_rank(), world) if world > 1 else (0, 1)


def _epoch_batches(n: int, batch_size: int, seed: int, epoch: int, rank: int, world: int) -> list[list[int]]:
    """The batches of one epoch: a permutation fixed by (seed, epoch), sharded across ranks, last partial batch dropped."""
    g = torch.Generator().manual_seed(seed * 100_003 + epoch)
    order = torch.randperm(n, generator=g).tolist()[rank::world]
    return [order[i:i + batch_size] for i in range(0, len(order) - batch_size + 1, batch_size)]


def _to_device(batch: dict, device: torch.device) -> dict:
    return {k: v.to(device, non_blocking=True) if torch.is_tensor(v) else v for k, v in batch.items()}


def build_optimizer(model: torch.nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    groups = model.param_groups() if hasattr(model, "param_groups") else [{"params": list(model.parameters())}]
    for g in groups:
        g["lr"] = cfg.lr * g.get("lr_mult", 1.0)
        g["initial_lr"] = g["lr"]
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    return torch.optim.AdamW(groups, lr=cfg.lr, weight_decay=cfg.weight_decay)


def poly_lr(optimizer: torch.optim.Optimizer, step: int, total: int, power: float) -> None:
    """DeepLab's poly schedule: lr = initial_lr * (1 - step / total)^power for every group."""
    factor = (1 - step / total) ** power
    for g in optimizer.param_groups:
        g["lr"] = g["initial_lr"] * factor


def _save(path: Path, state: dict) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def train(method: torch.nn.Module, dataset, cfg: TrainConfig, *, desc: str = "train") -> list[dict]:
    """Train ``method`` on ``dataset`` for ``cfg.steps`` steps and return the logged history.

    History: one dict per ``log_every`` steps with "step", "lr", "time" and the method's numbers
    (averaged over those steps). With ``checkpoint_dir`` the state after the last step is in
    ``last.pt`` there; a run restarted with the same config resumes from it. With ``stop_at`` the run
    stops (and saves) after that step: several runs that share their first steps can start from one
    such checkpoint, copied into each run's own ``checkpoint_dir``, and continue exactly as if
    each had run from step 0.
    """
    rank, world = _distributed()
    device = resolve_device(cfg.device)
    if world > 1 and device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
        torch.cuda.set_device(device)
    if len(dataset) < cfg.batch_size * world:
        raise ValueError(f"the dataset has {len(dataset)} samples, fewer than one batch "
                         f"(batch_size={cfg.batch_size} x {world} processes)")
    seed_everything(cfg.seed + rank)
    method.to(device)
    optimizer = build_optimizer(method, cfg)
    model = method
    if world > 1:
        model = torch.nn.parallel.DistributedDataParallel(method, device_ids=[device.index] if device.type == "cuda" else None)
    step, history = 0, []
    ckpt = Path(cfg.checkpoint_dir) / "last.pt" if cfg.checkpoint_dir else None
    if ckpt is not None and cfg.resume and ckpt.is_file():
        state = torch.load(ckpt, map_location="cpu", weights_only=False)
        method.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        step, history = state["step"], state["history"]
        random.setstate(state["py_rng"])
        np.random.set_state(state["np_rng"])
        torch.set_rng_state(state["torch_rng"])
        if step >= (cfg.stop_at or cfg.steps):
            return history

    use_amp = cfg.amp and device.type == "cuda"
    per_epoch = len(_epoch_batches(len(dataset), cfg.batch_size, cfg.seed, 0, rank, world))
    bar = tqdm(total=cfg.steps, initial=step, desc=desc, disable=not cfg.progress or rank != 0, dynamic_ncols=True,
               mininterval=1.0)
    sums: dict[str, float] = {}
    summed = 0
    start = time.perf_counter()
    method.train()
    end = cfg.stop_at or cfg.steps
    while step < end:
        epoch, offset = divmod(step, per_epoch)
        batches = _epoch_batches(len(dataset), cfg.batch_size, cfg.seed, epoch, rank, world)[offset:]
        # A private generator keeps the loader from drawing on the global RNG (repeatable resumes).
        loader = torch.utils.data.DataLoader(dataset, batch_sampler=batches, collate_fn=collate,
                                             num_workers=cfg.num_workers, pin_memory=device.type == "cuda",
                                             generator=torch.Generator().manual_seed(cfg.seed + epoch))
        for batch in loader:
            poly_lr(optimizer, step, cfg.steps, cfg.poly_power)
            batch = _to_device(batch, device)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_amp):
                out = model(batch, step)
            loss = out["loss"]
            if not torch.isfinite(loss):
                raise FloatingPointError(f"{desc}: loss became {loss.item()} at step {step}")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.grad_clip:
                torch.nn.utils.clip_grad_norm_(method.parameters(), cfg.grad_clip)
            optimizer.step()
            step += 1
            for k, v in out.items():
                sums[k] = sums.get(k, 0.0) + float(v.detach() if torch.is_tensor(v) else v)
            summed += 1
            if step % cfg.log_every == 0 or step == end:
                n, summed = summed, 0       # the steps summed since the last record (fewer after a resume)
                record = {"step": step, "lr": optimizer.param_groups[0]["lr"],
                          "time": time.perf_counter() - start, **{k: v / n for k, v in sums.items()}}
                history.append(record)
                sums = {}
                bar.set_postfix(loss=f"{record['loss']:.4f}")
            bar.update(1)
            if ckpt is not None and (cfg.checkpoint_every or cfg.stop_at) and rank == 0 \
                    and (step == end or (cfg.checkpoint_every and step % cfg.checkpoint_every == 0)):
                ckpt.parent.mkdir(parents=True, exist_ok=True)
                _save(ckpt, {"model": method.state_dict(), "optimizer": optimizer.state_dict(), "step": step,
                             "history": history, "config": asdict(cfg), "py_rng": random.getstate(),
                             "np_rng": np.random.get_state(), "torch_rng": torch.get_rng_state()})
            if step >= end:
                break
    bar.close()
    method.eval()
    return history


def steps_for_epochs(n_samples: int, batch_size: int, epochs: float) -> int:
    return max(1, math.ceil(n_samples / batch_size * epochs))
