"""One training loop for every method.

A *method* is an ``nn.Module`` whose ``forward(batch, step)`` is one training step: it takes a batch
dict (tensors already on the device) and returns a dict with the scalar ``"loss"`` to minimise plus any
other numbers to log. The loop around it is the same for all papers:

* SGD (or AdamW) over the parameters with ``requires_grad`` (frozen ones, e.g. an EMA teacher, are left
  out), with the per-group ``lr_mult`` a method's ``param_groups()`` may declare (new layers 10x, ...);
* a learning-rate schedule, :func:`lr_factor`: DeepLab's poly decay ``lr_t = lr (1 - t/T)^0.9`` (the
  default), cosine or constant, after an optional linear warm-up (``lr_warmup`` steps);
* optionally frozen BatchNorm (``freeze_bn``): eval mode throughout, affine weights not trained;
* after each optimizer step, the method's ``after_step(step)`` if it has one (an EMA teacher, ...) and the
  ``after_step(method, step)`` passed to :func:`train`;
* optionally an evaluation ``evaluate(method)`` every ``eval_every`` steps and after the last one,
  recorded in the history;
* mixed precision (bfloat16 autocast) on CUDA;
* with ``checkpoint_dir``, a checkpoint every ``checkpoint_every`` steps and after the last one, and
  resume from it when restarted (a checkpoint from another config, of another model or damaged is an
  error that names the file);
* repeatable on the CPU for a fixed seed, also across a resume (data order and random states are
  part of the checkpoint);
* unchanged under ``torchrun`` with DDP on several GPUs (one process per GPU, a sharded sampler);
* a tqdm progress bar.

A method whose step makes labels (CRFs, random walks) derives from :class:`ReusableLabels`, so that
:func:`wsss.experiments.step_timing` can time its step with and without that work.
"""
from __future__ import annotations

import hashlib
import math
import numbers
import os
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from tqdm import tqdm

from .data.folder import collate

SCHEDULES = ("poly", "cosine", "constant")
# The fields that change what a run computes: a checkpoint resumed from must agree with the config on these
# (the others, e.g. stop_at, checkpoint_dir, log_every or device, may differ).
RESULT_FIELDS = ("steps", "batch_size", "lr", "optimizer", "momentum", "weight_decay", "schedule", "poly_power",
                 "lr_warmup", "lr_warmup_ratio", "seed", "grad_clip", "freeze_bn", "amp")
_INT_FIELDS = ("steps", "batch_size", "checkpoint_every", "log_every", "num_workers", "lr_warmup", "seed", "stop_at")
_REAL_FIELDS = ("lr", "momentum", "weight_decay", "poly_power", "lr_warmup_ratio", "grad_clip")
_BOOL_FIELDS = ("amp", "freeze_bn", "resume", "progress")
_CHECKPOINT_KEYS = ("model", "optimizer", "step", "history", "config", "py_rng", "np_rng", "torch_rng")


@dataclass
class TrainConfig:
    steps: int = 1000
    batch_size: int = 8
    lr: float = 0.01
    optimizer: str = "sgd"          # "sgd" or "adamw"
    momentum: float = 0.9
    weight_decay: float = 1e-4
    schedule: str = "poly"          # "poly", "cosine" or "constant": see lr_factor
    poly_power: float = 0.9
    lr_warmup: int = 0              # linear LR warm-up over this many steps (0 = none) ...
    lr_warmup_ratio: float = 1e-6   # ... starting from this fraction of lr (AFA's value)
    amp: bool = True                # bfloat16 autocast, used only on CUDA
    freeze_bn: bool = False         # BatchNorm layers in eval mode, their weight and bias not trained
    checkpoint_every: int = 0       # 0 = only after the last step (with checkpoint_dir)
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
        for name in _INT_FIELDS:        # bool is an int to Python, 2.5 steps would run 3
            v = getattr(self, name)
            if not (v is None and name == "stop_at") and (isinstance(v, bool) or not isinstance(v, numbers.Integral)):
                raise ValueError(f"TrainConfig: {name} must be an int, got {v!r}")
        for name in _REAL_FIELDS:
            v = getattr(self, name)
            if not (v is None and name == "grad_clip") and (isinstance(v, bool) or not isinstance(v, numbers.Real)
                                                            or not math.isfinite(v)):
                raise ValueError(f"TrainConfig: {name} must be a finite number, got {v!r}")
        for name in _BOOL_FIELDS:
            if not isinstance(getattr(self, name), (bool, np.bool_)):
                raise ValueError(f"TrainConfig: {name} must be True or False, got {getattr(self, name)!r}")
        checks = {"steps": self.steps > 0, "batch_size": self.batch_size > 0, "lr": self.lr > 0,
                  "optimizer": self.optimizer in ("sgd", "adamw"), "schedule": self.schedule in SCHEDULES,
                  "momentum": self.momentum >= 0, "weight_decay": self.weight_decay >= 0,
                  "poly_power": self.poly_power >= 0, "lr_warmup": 0 <= self.lr_warmup < self.steps,
                  "lr_warmup_ratio": 0 <= self.lr_warmup_ratio <= 1,
                  "grad_clip": self.grad_clip is None or self.grad_clip > 0,
                  "checkpoint_every": self.checkpoint_every >= 0, "num_workers": self.num_workers >= 0,
                  "log_every": self.log_every > 0, "seed": 0 <= self.seed < 2**31}
        bad = [k for k, ok in checks.items() if not ok]
        if bad:
            rule = {"optimizer": "'sgd' or 'adamw'", "schedule": " or ".join(map(repr, SCHEDULES)),
                    "lr_warmup": f"in [0, steps={self.steps})", "lr_warmup_ratio": "in [0, 1]",
                    "seed": "an integer in [0, 2**31 - 1]: the epoch order is seeded from seed * 100003 + epoch"
                    }.get(bad[0], "out of range")
            raise ValueError(f"TrainConfig: bad value for {bad[0]}={getattr(self, bad[0])!r} ({rule})")
        if self.checkpoint_every and not self.checkpoint_dir:
            raise ValueError("TrainConfig: checkpoint_every needs checkpoint_dir")
        if self.stop_at is not None and not (0 < self.stop_at <= self.steps and self.checkpoint_dir):
            raise ValueError(f"TrainConfig: stop_at={self.stop_at!r} must lie in [1, steps={self.steps}] "
                             "and needs checkpoint_dir (the run is meant to be resumed)")


def resolve_device(device: str = "auto") -> torch.device:
    """"auto" picks CUDA when available; otherwise the named device (error if it is not usable)."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise ValueError(f"device={device!r} is not a device: use 'auto', 'cpu', 'cuda' or 'cuda:N'") from err
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
    """SGD or AdamW over ``model.param_groups()`` (or all its parameters), lr = cfg.lr x a group's ``lr_mult``.

    Parameters with ``requires_grad=False`` (an EMA teacher, frozen BatchNorm, ...) are left out, and groups
    left empty are dropped.
    """
    groups = model.param_groups() if hasattr(model, "param_groups") else [{"params": model.parameters()}]
    kept = []
    for g in groups:
        params = [g["params"]] if torch.is_tensor(g["params"]) else list(g["params"])
        params = [p for p in params if p.requires_grad]
        if params:
            lr = cfg.lr * g.get("lr_mult", 1.0)
            kept.append({**g, "params": params, "lr": lr, "initial_lr": lr})
    if not kept:
        raise ValueError(f"{type(model).__name__} has no parameter to train (all have requires_grad=False)")
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(kept, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    return torch.optim.AdamW(kept, lr=cfg.lr, weight_decay=cfg.weight_decay)


def lr_factor(step: int, cfg: TrainConfig) -> float:
    """The learning rate of the step after ``step`` steps done (0 = the first), as a fraction of ``cfg.lr``.

    During the warm-up (``step < cfg.lr_warmup``) it rises linearly from ``lr_warmup_ratio``:
    ``ratio + (1 - ratio) step / lr_warmup`` (AFA's code warms from 1e-6). Then ``cfg.schedule``:
    poly ``(1 - step/steps)^poly_power``, cosine ``0.5 (1 + cos(pi step/steps))`` or constant 1. As in
    AFA's code, the decay keeps ``step/steps`` over the whole run, not shifted by the warm-up (so it
    resumes a little below 1 where the warm-up ends).
    """
    if not 0 <= step <= cfg.steps:
        raise ValueError(f"lr_factor: step={step} outside [0, steps={cfg.steps}]")
    if step < cfg.lr_warmup:
        return cfg.lr_warmup_ratio + (1 - cfg.lr_warmup_ratio) * step / cfg.lr_warmup
    if cfg.schedule == "poly":
        return (1 - step / cfg.steps) ** cfg.poly_power
    if cfg.schedule == "cosine":
        return 0.5 * (1 + math.cos(math.pi * step / cfg.steps))
    return 1.0


def poly_lr(optimizer: torch.optim.Optimizer, step: int, total: int, power: float) -> None:
    """DeepLab's poly schedule: lr = initial_lr * (1 - step / total)^power for every group."""
    factor = (1 - step / total) ** power
    for g in optimizer.param_groups:
        g["lr"] = g["initial_lr"] * factor


def _freeze_bn(method: torch.nn.Module) -> list[torch.nn.Module]:
    """The BatchNorm layers (SyncBatchNorm included) of ``method``, their weight and bias set to requires_grad=False."""
    layers = [m for m in method.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    for m in layers:
        m.requires_grad_(False)
    return layers


def _save(path: Path, state: dict) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def data_identity(dataset) -> dict:
    """What a checkpoint remembers of its training data, so that a resume on other data is refused: the
    folder and split (found on the dataset or on the dataset it wraps, ``.base`` / ``.dataset``), the
    number of samples and a hash of the image names where the dataset has them."""
    info, node = {"samples": len(dataset)}, dataset
    for _ in range(4):
        if getattr(node, "root", None) is not None and "root" not in info:
            info["root"] = str(Path(node.root).resolve())
        if isinstance(getattr(node, "split", None), str) and "split" not in info:
            info["split"] = node.split
        names = getattr(node, "names", None)
        if isinstance(names, (list, tuple)) and "names_sha1" not in info:
            info["names_sha1"] = hashlib.sha1("\n".join(map(str, names)).encode()).hexdigest()
        node = getattr(node, "base", None) or getattr(node, "dataset", None)
        if node is None:
            break
    return info


def _resume(path: Path, method: torch.nn.Module, optimizer: torch.optim.Optimizer, cfg: TrainConfig,
            data: dict | None = None) -> tuple[int, list[dict]]:
    """Load the checkpoint ``path`` into method, optimizer and the random generators; returns (step, history)."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:
        raise ValueError(f"checkpoint {path} cannot be read ({type(err).__name__}: {err}); "
                         "delete it or pass resume=False") from err
    missing = [k for k in _CHECKPOINT_KEYS if k not in state] if isinstance(state, dict) else list(_CHECKPOINT_KEYS)
    if missing:
        raise ValueError(f"checkpoint {path} is not one written by wsss.train.train (no {', '.join(missing)})")
    if state["step"] > cfg.steps:
        raise ValueError(f"checkpoint {path} is at step {state['step']}, beyond this run's steps={cfg.steps}")
    default = {f.name: f.default for f in fields(TrainConfig)}
    saved = {k: state["config"].get(k, default[k]) for k in RESULT_FIELDS}     # older checkpoints lack new fields
    changed = [f"{k}={saved[k]!r} there, {getattr(cfg, k)!r} here" for k in RESULT_FIELDS if saved[k] != getattr(cfg, k)]
    if changed:
        raise ValueError(f"checkpoint {path} is from a run with another config ({'; '.join(changed)}); "
                         "use another checkpoint_dir or resume=False")
    theirs = state.get("data")          # (checkpoints written before it was recorded have none)
    if data is not None and theirs is not None and theirs != data:
        diff = [f"{k}={theirs.get(k)!r} there, {data.get(k)!r} here" for k in sorted(set(theirs) | set(data))
                if theirs.get(k) != data.get(k)]
        raise ValueError(f"checkpoint {path} was trained on other data ({'; '.join(diff)}); "
                         "use another checkpoint_dir or resume=False")
    try:
        method.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        random.setstate(state["py_rng"])
        np.random.set_state(state["np_rng"])
        torch.set_rng_state(state["torch_rng"])
    except Exception as err:
        raise ValueError(f"checkpoint {path} does not fit this {type(method).__name__} "
                         f"({type(err).__name__}: {err})") from err
    return state["step"], state["history"]


def _evaluate(evaluate: Callable, method: torch.nn.Module, device: torch.device) -> dict[str, float]:
    """``evaluate(method)`` in eval mode without gradients, as "val_<name>" numbers; training's random
    generators are left as they were (a run gives the same weights with or without evaluations)."""
    py_rng, np_rng = random.getstate(), np.random.get_state()
    method.eval()
    with torch.no_grad(), torch.random.fork_rng(devices=[torch.cuda.current_device()] if device.type == "cuda" else []):
        scores = evaluate(method)
    random.setstate(py_rng)
    np.random.set_state(np_rng)
    method.train()
    if not isinstance(scores, Mapping):
        raise TypeError(f"evaluate={evaluate!r} must return a dict of numbers, got {type(scores).__name__}")
    out = {}
    for k, v in scores.items():
        try:
            out[f"val_{k}"] = float(v)
        except (TypeError, ValueError, RuntimeError) as err:
            raise TypeError(f"evaluate={evaluate!r} returned {k}={v!r}, not a number") from err
    return out


def training_step(model: torch.nn.Module, batch: dict, step: int, optimizer, *, amp: bool = False,
                  grad_clip: float = 0.0, desc: str = "train", method: torch.nn.Module | None = None,
                  hooks: bool = True) -> dict:
    """One optimizer step as :func:`train` takes it, the one place that does so (the shape checks and the step
    timing call it too): ``model(batch, step)`` (under bfloat16 autocast with ``amp``), an error if the loss is not
    finite, backward, gradient clipping to ``grad_clip`` (0: none), the update, then - with ``hooks`` - the method's
    own ``after_step(step + 1)`` under ``torch.no_grad()`` (an EMA teacher, ...). ``method``: the module whose
    parameters are clipped and whose hook runs, when ``model`` wraps it (DDP); default ``model``. Returns the
    forward's dict."""
    method = model if method is None else method
    device_type = next(method.parameters()).device.type
    with torch.autocast(device_type, dtype=torch.bfloat16, enabled=amp):
        out = model(batch, step)
    loss = out["loss"]
    if not torch.isfinite(loss):
        raise FloatingPointError(f"{desc}: loss became {loss.item()} at step {step}")
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if grad_clip:
        torch.nn.utils.clip_grad_norm_(method.parameters(), grad_clip)
    optimizer.step()
    if hooks and callable(getattr(method, "after_step", None)):
        with torch.no_grad():
            method.after_step(step + 1)
    return out


def train(method: torch.nn.Module, dataset, cfg: TrainConfig, *, desc: str = "train",
          evaluate: Callable[[torch.nn.Module], Mapping] | None = None, eval_every: int = 0,
          after_step: Callable[[torch.nn.Module, int], None] | None = None) -> list[dict]:
    """Train ``method`` on ``dataset`` for ``cfg.steps`` steps and return the logged history.

    History: one dict per ``log_every`` steps, at the last step and at each evaluation, with "step",
    "lr" (of the last step), "time" and the method's numbers (averaged over the steps since the previous
    record). With ``checkpoint_dir`` the state after the last step is in ``last.pt`` there (also every
    ``checkpoint_every`` steps); a run restarted with the same config resumes from it. With ``stop_at``
    the run stops (and saves) after that step: several runs that share their first steps can start
    from one such checkpoint, copied into each run's own ``checkpoint_dir``, and continue exactly as if
    each had run from step 0.

    after_step: called as ``after_step(method, step)`` after each optimizer step, after the method's own
    ``method.after_step(step)`` if it defines one; both run under ``torch.no_grad()``, with ``step`` the
    number of steps done (1 after the first). For updates outside the optimizer, e.g. an EMA teacher
    (keep its parameters ``requires_grad=False``: the optimizer leaves them out).
    evaluate: ``evaluate(method) -> {name: number}``, called every ``eval_every`` steps (0 = only at
    the end) and after the last step (of this run: ``stop_at`` if set), on every process, with the
    method in eval mode under ``torch.no_grad()`` and the training's random state set aside. Its
    numbers join that step's record as "val_<name>" (so records keep their "loss"; pick them with
    ``[r for r in history if "val_<name>" in r]``) and are kept in the checkpoints like the rest.
    """
    if (evaluate is not None and not callable(evaluate)) or (after_step is not None and not callable(after_step)):
        raise ValueError("train: evaluate and after_step must be callables (or None)")
    if isinstance(eval_every, bool) or not isinstance(eval_every, numbers.Integral) or eval_every < 0 \
            or (eval_every and evaluate is None):
        raise ValueError(f"train: eval_every={eval_every!r} must be an int >= 0, and > 0 only with evaluate")
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
    frozen_bn = _freeze_bn(method) if cfg.freeze_bn else []
    optimizer = build_optimizer(method, cfg)
    model = method
    if world > 1:
        model = torch.nn.parallel.DistributedDataParallel(method, device_ids=[device.index] if device.type == "cuda" else None)
    step, history = 0, []
    ckpt = Path(cfg.checkpoint_dir) / "last.pt" if cfg.checkpoint_dir else None
    data = data_identity(dataset) if ckpt is not None else None
    if ckpt is not None and cfg.resume and ckpt.is_file():
        step, history = _resume(ckpt, method, optimizer, cfg, data)
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
            for bn in frozen_bn:            # frozen BatchNorm stays in eval mode, whoever called method.train()
                bn.eval()
            factor = lr_factor(step, cfg)
            for g in optimizer.param_groups:
                g["lr"] = g["initial_lr"] * factor
            batch = _to_device(batch, device)
            out = training_step(model, batch, step, optimizer, amp=use_amp, grad_clip=cfg.grad_clip, desc=desc,
                                method=method)
            step += 1                       # from here on: the number of steps done
            if after_step is not None:
                with torch.no_grad():
                    after_step(method, step)
            for k, v in out.items():
                sums[k] = sums.get(k, 0.0) + float(v.detach() if torch.is_tensor(v) else v)
            summed += 1
            evaluating = evaluate is not None and (step == end or (eval_every and step % eval_every == 0))
            if step % cfg.log_every == 0 or step == end or evaluating:
                n, summed = summed, 0       # the steps summed since the last record (fewer after a resume)
                record = {"step": step, "lr": optimizer.param_groups[0]["lr"],
                          "time": time.perf_counter() - start, **{k: v / n for k, v in sums.items()}}
                if evaluating:
                    record.update(_evaluate(evaluate, method, device))
                history.append(record)
                sums = {}
                bar.set_postfix(loss=f"{record['loss']:.4f}")
            bar.update(1)
            if ckpt is not None and rank == 0 and (step == end or (cfg.checkpoint_every and step % cfg.checkpoint_every == 0)):
                ckpt.parent.mkdir(parents=True, exist_ok=True)
                _save(ckpt, {"model": method.state_dict(), "optimizer": optimizer.state_dict(), "step": step,
                             "history": history, "config": asdict(cfg), "data": data,
                             "py_rng": random.getstate(),
                             "np_rng": np.random.get_state(), "torch_rng": torch.get_rng_state()})
            if step >= end:
                break
    bar.close()
    method.eval()
    return history


def steps_for_epochs(n_samples: int, batch_size: int, epochs: float) -> int:
    return max(1, math.ceil(n_samples / batch_size * epochs))


class ReusableLabels:
    """The step-timing protocol of a method (a mixin for its ``nn.Module`` class).

    Many WSSS steps make labels (dense CRFs, random walks, PAR) before they compute their losses. To
    time a step without that work (:func:`wsss.experiments.step_timing`), a method makes its labels
    through :meth:`step_labels` and skips its label-only losses (e.g. a CRF-energy loss) while
    ``timing_network_only`` is set: the first step then makes labels as usual and every later step
    reuses them, so only the network passes and their backward are left. A step may make several
    pieces of labels (SSDD: a CRF, then two decisions between network passes); each call names its
    piece with ``key`` and is reused apart. Setting the switch, either way, forgets the stored labels
    (:func:`~wsss.experiments.step_timing` interleaves whole and network-only steps by setting
    ``_network_only`` directly, which keeps them).
    """

    _network_only: bool = False
    _reused: dict | None = None

    @property
    def timing_network_only(self) -> bool:
        return self._network_only

    @timing_network_only.setter
    def timing_network_only(self, on: bool) -> None:
        self._network_only, self._reused = bool(on), None

    def step_labels(self, make, *args, key: str = "labels", **kwargs):
        """``make(*args, **kwargs)``; while ``timing_network_only`` is set, the piece ``key`` of the step before."""
        if self._network_only and self._reused is not None and key in self._reused:
            return self._reused[key]
        labels = make(*args, **kwargs)
        if self._network_only:
            self._reused = {**(self._reused or {}), key: labels}
        return labels
