"""One run of any method: seed, build, start from given weights, train, score named outputs, save.

Every paper notebook trains many variants of its method that differ in one switch. They all go
through :func:`run_variant`, so a paper's own driver module only says what its method can output and
how to predict it (``OUTPUTS`` and ``predictor``, e.g. :mod:`wsss.experiments.asdt`). Two steps that
most notebooks share come with it: :func:`pretrain_classifier`, the tag classifier that stands in for
ImageNet weights on the synthetic benchmark, and :func:`shared_warmup`, the first iterations that
several runs have in common, trained once and resumed by each.
"""
from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Callable, Iterable

import torch

from ..evaluate import evaluate
from ..methods.baselines import CAMClassifier
from ..train import TrainConfig, resolve_device, seed_everything, train


def _submodule(model: torch.nn.Module, path: str) -> torch.nn.Module:
    """``model.a.b`` for path "a.b" ("" = the model itself), with an error naming the path."""
    target = model
    for part in filter(None, path.split(".")):
        if not hasattr(target, part):
            raise AttributeError(f"init_into={path!r}: {type(model).__name__} has no submodule {part!r}")
        target = getattr(target, part)
    return target


def run_variant(*, method: Callable[..., torch.nn.Module], model: dict, train_set, val_set, train_cfg: dict,
                predictor: Callable | None = None, predictor_args: dict | None = None, outputs: Iterable[str] = (),
                init: str | None = None, init_into: str = "net", init_partial: bool = False, seed: int = 0,
                save_to: str | None = None,
                resume_from: str | None = None, eval_batch: int = 16, evaluate_every: int = 0,
                curve: Callable | None = None) -> dict:
    """Train one variant of ``method`` on ``train_set`` and score its named ``outputs`` on ``val_set``.

    method: the method's class (or a factory), called as ``method(num_classes=..., **model)``; in a
    spawned worker it must be importable (a class of the package, not of a notebook), as must
    ``predictor``. predictor: ``predictor(trained_method, outputs, **predictor_args)`` returns a
    ``predict(batch) -> {output: labels (B, H, W)}`` for :func:`wsss.evaluate.evaluate` (it should
    reject unknown outputs: it is built before training, so a typo fails at once).
    train_cfg: keyword arguments of :class:`wsss.train.TrainConfig` (seed defaults to ``seed``, no
    progress bar); with ``stop_at`` and ``checkpoint_dir`` this is the shared first part of several runs
    and nothing is scored. init: a state-dict file loaded into the submodule ``init_into`` (default
    "net", the backbone + classifier of a CAM method; ``init_partial``: the file may hold only some of the
    submodule's weights, e.g. encoder and classifier but not the decoder, while a name the submodule does
    not have is still an error); resume_from: the ``last.pt`` of such a shared
    first part to continue from (copied; the file is left as it is); save_to: where to keep the
    trained weights. curve: an evaluation callback of :func:`wsss.train.train` (``curve(model) -> {name: number}``,
    importable for spawned workers), run every ``evaluate_every`` steps and after the last one; its numbers are in
    the history as "val_<name>" (e.g. Seminar's Fig. 4 curves).
    Returns {"miou": {output: fraction}, "per_class": {output: [IoU per class]}, "history": [...],
    "train_seconds": s, "eval_seconds": s}.
    """
    outputs = list(outputs)
    seed_everything(seed)
    net = method(num_classes=train_set.num_classes, **model)
    predict = predictor(net, outputs, **(predictor_args or {})) if predictor is not None else None
    if outputs and predict is None:
        raise ValueError(f"outputs {outputs} need a predictor")
    if init is not None:
        loaded = _submodule(net, init_into).load_state_dict(torch.load(init, map_location="cpu", weights_only=True),
                                                            strict=not init_partial)
        if loaded.unexpected_keys:
            raise KeyError(f"init={init}: {init_into or 'the model'} has no weights named {loaded.unexpected_keys[:5]}")
    cfg = TrainConfig(**{"seed": seed, "progress": False, **train_cfg})
    # (inside the notebook's checkpoint folder when it made one, so a killed run leaves nothing in /tmp)
    scratch = os.environ.get("WSSS_SCRATCH")
    with tempfile.TemporaryDirectory(dir=scratch if scratch and Path(scratch).is_dir() else None) as tmp:
        if resume_from is not None:
            if not Path(resume_from).is_file():
                raise FileNotFoundError(f"resume_from={resume_from}: no such checkpoint")
            shutil.copy(resume_from, Path(tmp) / "last.pt")
            cfg.checkpoint_dir, cfg.resume = tmp, True
        start = time.perf_counter()
        history = train(net, train_set, cfg, evaluate=curve, eval_every=evaluate_every if curve is not None else 0)
        train_seconds = time.perf_counter() - start
    result = {"miou": {}, "per_class": {}, "history": history, "train_seconds": train_seconds, "eval_seconds": 0.0}
    if save_to is not None:
        Path(save_to).parent.mkdir(parents=True, exist_ok=True)
        torch.save(net.state_dict(), save_to)
    if cfg.stop_at is not None or not outputs:
        return result
    device = resolve_device(cfg.device)
    net.to(device).eval()
    start = time.perf_counter()
    cms = evaluate(predict, val_set, batch_size=eval_batch, device=device)
    result.update(miou={k: cm.miou() for k, cm in cms.items()}, per_class={k: cm.iou().tolist() for k, cm in cms.items()},
                  eval_seconds=time.perf_counter() - start)
    return result


def pretrain_classifier(train_set, *, backbone: str, steps: int, batch_size: int, lr: float = 1e-3,
                        optimizer: str = "adamw", weight_decay: float = 1e-4, pretrained: str | None = None,
                        output_stride: int = 8, seed: int = 0, device: str = "auto", save_to: str | None = None,
                        log_every: int = 25, desc: str = "tag classifier") -> tuple[CAMClassifier, list[dict]]:
    """Train a CAM classifier on the image tags alone: (classifier, history).

    On the synthetic benchmark there are no ImageNet weights; this classifier stands in for them, so
    that a method's class branch gives usable CAMs from its first iteration (each notebook says so).
    ``save_to``: where to write the state dict of ``classifier.net`` (backbone + 1x1 classifier), the
    ``init`` of :func:`run_variant`. The model is seeded before it is built, so it starts from the
    same weights whatever ran before.
    """
    seed_everything(seed)
    classifier = CAMClassifier(backbone, train_set.num_classes, output_stride=output_stride, pretrained=pretrained)
    cfg = TrainConfig(steps=steps, batch_size=batch_size, lr=lr, optimizer=optimizer, weight_decay=weight_decay,
                      seed=seed, device=device, log_every=log_every)
    history = train(classifier, train_set, cfg, desc=desc)
    if save_to is not None:
        Path(save_to).parent.mkdir(parents=True, exist_ok=True)
        torch.save(classifier.net.state_dict(), save_to)
    return classifier, history


def shared_warmup(*, steps: int, checkpoint_dir: str | Path, **run) -> str | None:
    """Train the first ``steps`` iterations that several runs share, once: the path of its ``last.pt``
    (None when ``steps`` is 0). ``run`` holds the keyword arguments of :func:`run_variant` of the run
    whose warm-up it is; each run that resumes from it (``resume_from=``) continues exactly as if it had
    trained from step 0 (the LR schedule still spans the whole run)."""
    if not steps:
        return None
    train_cfg = {**run.pop("train_cfg"), "stop_at": steps, "checkpoint_dir": str(checkpoint_dir)}
    run_variant(**{**run, "outputs": (), "train_cfg": train_cfg})
    return str(Path(checkpoint_dir) / "last.pt")


def backbone_state(classifier_file: str | Path, out_file: str | Path) -> str:
    """The backbone part of a saved tag classifier (``net`` state dict: backbone.* + classifier.*) as its
    own state-dict file, e.g. for ``init`` of a run whose ``init_into`` is its backbone (the tag classifier stands in for ImageNet)."""
    state = torch.load(classifier_file, map_location="cpu", weights_only=True)
    torch.save({k[len("backbone."):]: v for k, v in state.items() if k.startswith("backbone.")}, out_file)
    return str(out_file)
