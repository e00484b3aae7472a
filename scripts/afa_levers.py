"""The levers measured for AFA's baseline at quick (issue "Miniatures that can test a claim"): one AFA run (seg, val
mIoU) of tscd.ipynb's quick schedule from a stand-in encoder, with one lever changed. One seed, one thread.

    python scripts/afa_levers.py                           # the committed mit-tiny stand-in, the notebook's schedule
    python scripts/afa_levers.py --standin none            # no pretraining at all
    python scripts/afa_levers.py --standin FILE --steps 900 # a stand-in built with --out, a 3x longer run
    python scripts/afa_levers.py --cls-only 100            # a longer classification-only warm-up (33% of the run)
    python scripts/afa_levers.py --px 96                   # 96 px inputs (the images upsampled: a 12 x 12 CAM)
    python scripts/afa_levers.py --depth 2 --standin FILE  # two MiT blocks per stage (build FILE with the same --depth)
    python scripts/afa_levers.py --depth 2 --build DIR     # build that stand-in into DIR first (the recipe of standins.py)
    python scripts/afa_levers.py --build DIR --standin-steps 10000        # a 3.3x longer stand-in
    python scripts/afa_levers.py --build DIR --standin-scale 0.5 2.0      # a stand-in trained at rescale 0.5-2.0
    python scripts/afa_levers.py --build DIR --standin-pooling gmp        # a max-pooled (AFA-like) stand-in
    python scripts/afa_levers.py --ceiling                 # the same network trained on the full masks instead
"""
import argparse
import copy
import json
import time
from dataclasses import replace
from pathlib import Path

import wsss  # noqa: F401  (the reproducible mode first)
import torch
import torchvision.transforms.functional as TF

from wsss.data.transforms import TrainTransform
from wsss.experiments import run_variant
from wsss.experiments import tscd as tscd_runs
from wsss.methods.afa import AFA
from wsss.methods.baselines import MaskSupervised, mask_predictor
from wsss.models import mit, standins
from wsss.notebook import open_data
from wsss.profiles import profile_settings, scaled_bilateral


class Upsampled(torch.utils.data.Dataset):
    """A dataset's images (bilinear) and masks (nearest) brought to ``px`` x ``px`` before ``transform``."""

    def __init__(self, base, px, transform=None):
        self.base, self.px, self.transform, self.num_classes = base, px, transform, base.num_classes

    def __len__(self):
        return len(self.base)

    def __getitem__(self, i):
        s = self.base[i]
        s = dict(s, image=TF.resize(s["image"], [self.px, self.px], antialias=True),
                 mask=TF.resize(s["mask"][None], [self.px, self.px], interpolation=TF.InterpolationMode.NEAREST)[0])
        return self.transform(s) if self.transform else s


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--standin", default="committed", help="'committed', 'none' or a stand-in .pt file")
    ap.add_argument("--steps", type=int, default=0)
    ap.add_argument("--cls-only", type=int, default=0)
    ap.add_argument("--px", type=int, default=64)
    ap.add_argument("--depth", type=int, default=1, help="MiT blocks per stage")
    ap.add_argument("--build", help="build the stand-in (with --depth) into this folder first")
    ap.add_argument("--standin-steps", type=int, help="with --build: the stand-in's steps")
    ap.add_argument("--standin-scale", type=float, nargs=2, help="with --build: the stand-in's rescale range")
    ap.add_argument("--standin-pooling", choices=("gap", "gmp"), help="with --build: the stand-in's pooling")
    ap.add_argument("--ceiling", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(1)
    if args.depth != 1:
        mit.CONFIGS["mit-tiny"] = replace(mit.CONFIGS["mit-tiny"], depths=(args.depth,) * 4)
    enc = {"committed": "standin", "none": None}.get(args.standin, args.standin)
    if args.build:
        overrides = {k: v for k, v in (("steps", args.standin_steps), ("pooling", args.standin_pooling),
                                       ("scale", tuple(args.standin_scale) if args.standin_scale else None)) if v is not None}
        recipe = standins.Recipe(**{**vars(standins.RECIPES["mit-tiny"]), **overrides})
        rec = standins.build_standin("mit-tiny", recipe=recipe, out=Path(args.build), device="cpu")
        print(f"stand-in: CAM val mIoU {100 * rec['cam_val']['miou']:.1f}")
        enc = str(Path(args.build) / "mit-tiny.pt")
    S = profile_settings("tscd", "quick")
    steps = args.steps or S["steps"]
    f = steps / S["steps"]
    _, train_raw, val_raw = open_data("synthetic", None, "quick", 0)
    scale = args.px / 64
    if args.px == 64:
        train_set, val_set = copy.copy(train_raw), val_raw
        train_set.transform = TrainTransform(S["crop"], scale=(0.5, 2.0))
    else:
        train_set, val_set = Upsampled(train_raw, args.px, TrainTransform(args.px, scale=(0.5, 2.0))), Upsampled(val_raw, args.px)
    cfg = dict(steps=steps, batch_size=S["batch"], optimizer="adamw", lr=S["lr"], weight_decay=S["weight_decay"],
               lr_warmup=round(S["lr_warmup"] * f), poly_power=1.0, device="cpu", log_every=10)
    t0 = time.time()
    if args.ceiling:
        r = run_variant(method=MaskSupervised, model=dict(backbone="mit-tiny", head="segformer", pretrained=enc, output_stride=8,
                                                          channels=S["channels"]),
                        train_set=train_set, val_set=val_set, train_cfg=cfg, predictor=mask_predictor, outputs=["seg"])
    else:
        model = dict(backbone="mit-tiny", pretrained=enc, output_stride=8, channels=S["channels"],
                     cls_only=args.cls_only or round(S["cls_only"] * f), dilations=tuple(max(1, round(d * scale)) for d in S["dilations"]),
                     radius=max(1, round(S["radius"] * scale)), walk_from=round(S["walk_from"] * f), refiner="par")
        r = run_variant(method=AFA, model=model, train_set=train_set, val_set=val_set, train_cfg=cfg, predictor=tscd_runs.predictor,
                        predictor_args=dict(crf_bilateral=scaled_bilateral(tscd_runs.CRF_BILATERAL, args.px)), outputs=["seg"])
    print(json.dumps({**vars(args), "steps": steps, "seg_miou": round(100 * r["miou"]["seg"], 1),
                      "per_class": [round(100 * v, 1) for v in r["per_class"]["seg"]], "seconds": round(time.time() - t0),
                      "threads": 1}))


if __name__ == "__main__":
    main()
