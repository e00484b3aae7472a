"""Does this machine give the committed numbers? A one-minute check of the reproducible mode.

    python -m wsss.reproduce              # hashes of two fixed trainings and of the quick benchmark
    python -m wsss.reproduce --both-paths # also the same trainings with WSSS_REPRODUCIBLE=0, side by side

Two fixed trainings run in fresh processes with one torch thread, each printing the sha256 of its
final weights:

* ``toy``: a small conv net (two 3x3 convolutions of 16 channels, ReLU, global average pooling, a
  linear layer to 4 classes), 40 AdamW steps on 8 random 32x32 images from ``torch.manual_seed(0)``;
* ``resnet-tiny``: the package's own CAM classifier (:func:`wsss.experiments.pretrain_classifier`, the
  notebooks' backbone, BN, AdamW, augmentation, data loading) for 30 steps on the ``smoke`` benchmark.

Then the fingerprint of the ``quick`` benchmark every committed run reads (:mod:`wsss.data.fingerprint`;
generated on first use, a few seconds). On another x86-64 machine with AVX2, the same commit and the
same versions of torch, numpy and Pillow must print the same hashes (the two pinned trainings and the benchmark); README "Same numbers on any
x86 machine" holds ours. ``--both-paths`` runs the trainings once more with the reproducible mode off
(each library's fastest path on this processor): on an AVX-512 machine the hashes then differ, which
shows the pins take effect.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import time


def weights_hash(module) -> str:
    """sha256 over the float32 bytes of a module's state dict, in its order (names included)."""
    digest = hashlib.sha256()
    for name, tensor in module.state_dict().items():
        digest.update(name.encode() + b"\0")
        digest.update(tensor.detach().to("cpu").contiguous().numpy().tobytes())
    return digest.hexdigest()


def toy() -> str:
    import torch
    from torch import nn

    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 16, 3, padding=1), nn.ReLU(),
                        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 4))
    images, targets = torch.randn(8, 3, 32, 32), torch.randint(0, 4, (8,))
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3)
    for _ in range(40):
        opt.zero_grad()
        nn.functional.cross_entropy(net(images), targets).backward()
        opt.step()
    return weights_hash(net)


def resnet_tiny() -> str:
    import tempfile

    from .data import build_dataset
    from .data.synthetic import ensure_benchmark
    from .data.transforms import TrainTransform
    from .experiments.driver import pretrain_classifier

    with tempfile.TemporaryDirectory(prefix="wsss-reproduce-") as tmp:
        root = ensure_benchmark(tmp, "smoke", 0, progress=False)
        train_set = build_dataset("synthetic", root, "train_aug", transform=TrainTransform(48))
        classifier, _ = pretrain_classifier(train_set, backbone="resnet-tiny", steps=30, batch_size=8, seed=0,
                                            device="cpu", log_every=10, desc="resnet-tiny")
    return weights_hash(classifier)


TRAININGS = {"toy": toy, "resnet-tiny": resnet_tiny}


def _child(name: str) -> None:
    """In a fresh process: one thread, run a training, print a json line with its hash and code paths."""
    import torch

    from . import reproducible
    torch.set_num_threads(1)
    start = time.perf_counter()
    digest = TRAININGS[name]()
    print(json.dumps({"training": name, "sha256": digest, "seconds": round(time.perf_counter() - start, 1),
                      "aten": torch.backends.cpu.get_cpu_capability(), "onednn": reproducible.onednn_isa()}))


def run_child(name: str, reproducible_mode: bool) -> dict:
    env = dict(os.environ, WSSS_REPRODUCIBLE="1" if reproducible_mode else "0")
    if not reproducible_mode:          # the pins this process set must not reach the child
        from .reproducible import PINS
        for key in PINS:
            env.pop(key, None)
    proc = subprocess.run([sys.executable, "-m", "wsss.reproduce", "--child", name], env=env,
                          capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        raise RuntimeError(f"the {name} training failed:\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--both-paths", action="store_true",
                        help="also run the trainings with the reproducible mode off, side by side")
    parser.add_argument("--child", choices=tuple(TRAININGS), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        _child(args.child)
        return 0
    import torch

    from . import reproducible
    from .data.fingerprint import fingerprint
    from .data.synthetic import ensure_benchmark
    info = reproducible.describe()
    print(f"processor: {info['processor']} ({info['processor_isa']}); torch {torch.__version__}; "
          f"python {sys.version.split()[0]}; reproducible mode {'on' if info['enabled'] else 'off'}")
    modes = [True, False] if args.both_paths else [reproducible.enabled()]
    for mode in modes:
        label = "pinned (reproducible)" if mode else "default (this processor's fastest)"
        for name in TRAININGS:
            r = run_child(name, mode)
            print(f"{name:<12} {label:<36} sha256 {r['sha256']}  (ATen {r['aten']}, oneDNN {r['onednn']}; "
                  f"1 thread, {r['seconds']} s)")
    bench = fingerprint(ensure_benchmark(None, "quick", 0, progress=False))
    print(f"{'benchmark':<12} {'quick, seed 0':<36} sha256 {bench['sha256']}  ({bench['files']} files)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
