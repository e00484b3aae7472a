"""The levers measured for Seminar's room at quick (issue "Seminar, second pass"): one model of seminar.ipynb's quick
set-up - the pCE row (clicks only) or the fully supervised ceiling - with one lever of the click protocol or the
schedule changed. Prints the student's val mIoU (single scale, no CRF). One seed, one thread.

    python scripts/seminar_levers.py                      # pCE, the notebook's protocol (1 click per object, 2 background)
    python scripts/seminar_levers.py --full               # the same network on the full masks (the ceiling)
    python scripts/seminar_levers.py --background 0       # object clicks only (0 or 1 background clicks: --background N)
    python scripts/seminar_levers.py --background-line 9  # background from a scribble: a 9-pixel line through one point
    python scripts/seminar_levers.py --steps 1500         # a 3x longer schedule (the EMA and ramp scale with it)
    python scripts/seminar_levers.py --px 96              # images and masks upsampled to 96 px (a click stays one pixel)

The paper's protocol (Sec. 4.1): one manual click per object and background labels synthetically made from
scribbles; its pCE scores 54.7 against 78.6 with full masks (ratio 0.70).
"""
import argparse
import copy
import json
import time

import wsss  # noqa: F401  (the reproducible mode first)
import numpy as np
import torch
import torchvision.transforms.functional as TF

from wsss.data.transforms import TrainTransform
from wsss.experiments import run_variant
from wsss.experiments import seminar as sem_runs
from wsss.methods import seminar
from wsss.methods.seminar import Seminar, alpha_for_run
from wsss.notebook import head_dilation, open_data, pixels
from wsss.profiles import profile_settings


class ClickProtocol(torch.utils.data.Dataset):
    """A click dataset (no transform) with its background clicks replaced and, with ``px``, its images (bilinear)
    and masks (nearest) brought to ``px`` x ``px`` (clicks moved to the new grid, still one pixel each), then
    ``transform``. ``background``: keep the first N background clicks (None: all); ``line``: instead, a horizontal
    run of ``line`` background pixels centred on the first background click (clipped to the background)."""

    def __init__(self, base, transform, *, background=None, line=0, px=0):
        self.base, self.transform, self.background, self.line, self.px = base, transform, background, line, px
        self.num_classes, self.class_names = base.num_classes, base.class_names

    def __len__(self):
        return len(self.base)

    def __getitem__(self, i):
        s = dict(self.base[i])
        h, w = s["mask"].shape
        if self.px:
            s["image"] = TF.resize(s["image"], [self.px, self.px], antialias=True)
            s["mask"] = TF.resize(s["mask"][None], [self.px, self.px], interpolation=TF.InterpolationMode.NEAREST)[0]
        if "clicks" not in s:                      # a val set: no clicks to change
            return self.transform(s)
        clicks = s["clicks"]
        if self.px:
            clicks = torch.stack([((2 * clicks[:, 0] + 1) * self.px) // (2 * h), ((2 * clicks[:, 1] + 1) * self.px) // (2 * w),
                                  clicks[:, 2]], 1)           # the pixel centre's new pixel
        obj, bg = clicks[clicks[:, 2] != 0], clicks[clicks[:, 2] == 0]
        if self.line and len(bg):
            y, x = int(bg[0, 0]), int(bg[0, 1])
            xs = torch.arange(x - self.line // 2, x + self.line // 2 + 1)
            xs = xs[(xs >= 0) & (xs < s["mask"].shape[1])]
            xs = xs[s["mask"][y, xs] == 0]
            bg = torch.stack([torch.full_like(xs, y), xs, torch.zeros_like(xs)], 1)
        elif self.background is not None:
            bg = bg[: self.background]
        s["clicks"] = torch.cat([obj, bg]).long()
        return self.transform(s)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--full", action="store_true", help="train on the full masks (the ceiling) instead of the clicks")
    ap.add_argument("--background", type=int, default=None, help="background clicks kept per image (default: all, 2)")
    ap.add_argument("--background-line", type=int, default=0, help="a scribble-like line of this many background pixels")
    ap.add_argument("--steps", type=int, default=0)
    ap.add_argument("--px", type=int, default=0)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.set_num_threads(1)
    S = profile_settings("seminar", "quick")
    steps = args.steps or S["steps"]
    crop = S["crop"] * (args.px or S["image_px"]) // S["image_px"]
    _, train_raw, val_raw = open_data("synthetic", None, "quick", 0, with_clicks=True)
    transform = TrainTransform(crop, scale=(0.5, 2.0), blur=0.5)
    train_set = ClickProtocol(train_raw, transform, background=args.background, line=args.background_line, px=args.px)
    val_set = val_raw
    if args.px:
        val_set = ClickProtocol(copy.copy(val_raw), lambda s: s, px=args.px)
    os_ = S["output_stride"]
    rates = tuple(head_dilation(crop // os_, r, paper_crop=33) for r in (6, 12, 18))
    model = dict(backbone=S["backbone"], pretrained=S["pretrained"], output_stride=os_, channels=S["channels"], rates=rates,
                 steps=steps, alpha=alpha_for_run(0.999, steps), crf_sigma_xy=pixels(seminar.SIGMA_XY, args.px or S["image_px"]),
                 crf=False, pcons=False, full_supervision=args.full)
    train_cfg = dict(steps=steps, batch_size=S["batch"], optimizer="sgd", lr=S["lr"], momentum=0.9, weight_decay=S["weight_decay"],
                     schedule="poly", poly_power=0.9, device="cpu", log_every=50)
    counts = [len(train_set[i]["clicks"]) for i in range(100)] if not args.full else [0]
    t0 = time.perf_counter()
    r = run_variant(method=Seminar, model=model, train_set=train_set, val_set=val_set, predictor=sem_runs.predictor,
                    outputs=["student"], seed=args.seed, eval_batch=16, train_cfg=train_cfg)
    out = {"lever": {k: v for k, v in vars(args).items()}, "steps": steps, "crop": crop,
           "labelled_pixels_per_crop": float(np.mean(counts)), "miou": r["miou"]["student"],
           "seconds": time.perf_counter() - t0, "threads": 1}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
