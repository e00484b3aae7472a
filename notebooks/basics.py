# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     notebook_metadata_filter: -jupytext.text_representation.jupytext_version
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # WSSS basics: the benchmark, CAM, CRF and the fully supervised upper bound
#
# Every paper in this collection starts from the same place: a classifier trained with **image-level
# tags** only ("this picture holds a ring and a cross"), whose **class activation maps** (CAM) say
# roughly where each class is. Those maps are turned into pseudo masks, refined (a dense CRF, affinity,
# self-training, ...), and a segmentation network is trained on them. This notebook builds the pieces
# the five paper notebooks share and measures the two ends of the scale:
#
# * **CAM pseudo labels**: what tags alone give, before any of the papers' tricks;
# * **CAM + dense CRF**: the classic post-processing;
# * **full supervision**: the same kind of network trained on the real masks - the ceiling.
#
# The gap between them is the room every paper's gain has to fit in.
#
# **At a glance.** Read this notebook first: the others assume its pieces. `quick` (the committed run) takes about
# 3 minutes on a 2-core CPU; `full` (one GPU) uses larger images and networks. To browse every cell in under a minute,
# run with `profile = "smoke"` (its numbers mean nothing).

# %% tags=["parameters"]
dataset = "synthetic"      # "synthetic" (generated here, no download), "voc", "coco", "cocostuff10k"
data_root = None           # folder of the data; None: the cached synthetic benchmark
profile = "quick"          # "smoke" (tests, seconds), "quick" (laptop CPU, minutes), "full" (one GPU), "paper" (the paper's data)
device = "auto"            # "auto", "cpu", "cuda"
seed = 0
out_dir = None             # results/ and figures/ go here; None: runs/<notebook>-<profile>/ (git-ignored)
cam_bg_threshold = 0.3     # background score for CAM pseudo labels (a CAM below it is background)
crf_iterations = 10        # mean-field steps of the dense CRF
classifier_steps = 0       # training steps of the tag classifier; 0: the profile's number
segmentation_steps = 0     # training steps of the fully supervised model; 0: the profile's number

# %%
from wsss.notebook import check_parameters, number

params = check_parameters(globals(), {"cam_bg_threshold": number(0.0, 1.0),
                                      "crf_iterations": number(1, 100, integer=True),
                                      "classifier_steps": number(0, 10**7, integer=True),
                                      "segmentation_steps": number(0, 10**7, integer=True)})
params

# %% [markdown]
# ## Settings of each profile
# `smoke` only proves that every cell runs (the test suite uses it; its numbers mean nothing);
# `quick` is sized for two CPU cores and a few minutes; `full` for one GPU; `paper` follows the usual
# VOC schedule (ImageNet-pretrained ResNet-101, 321 px crops), which needs the real data and weights. All
# notebooks keep their profiles in one place, `wsss/profiles.py`.
#
# **The miniature's ImageNet.** Every paper starts its networks from ImageNet weights. Here every network starts
# from a *stand-in* (`pretrained="standin"`, `wsss/models/standins.py`): the backbone of a tag classifier trained
# once, and shared by every notebook, on a classification set that the benchmark's generator draws from a random
# stream no benchmark split uses (more images and steps than any run here). The next cell prints its record.

# %%
import time

import numpy as np
import pandas as pd
import torch
import matplotlib.pyplot as plt

from wsss import viz
from wsss.cam import cam_to_label, cam_to_probs, multiscale_cam
from wsss.data import build_dataset, collate
from wsss.data.synthetic import class_card
from wsss.data.transforms import TrainTransform
from wsss.evaluate import evaluate, per_class_table
from wsss.experiments import pretrain_classifier
from wsss.methods.baselines import FullySupervised
from wsss.models import standins
from wsss.notebook import (Stopwatch, closing_table, floor_miou, headroom, headroom_line, loader_throughput, open_data,
                           output_dirs, pixels, profile_settings, show_closing_table, write_results)
from wsss.refine import crf_label
from wsss.train import TrainConfig, resolve_device, seed_everything, train

clock = Stopwatch()
SETTINGS = profile_settings("basics", profile, cls_steps=classifier_steps or None, seg_steps=segmentation_steps or None)
dev = resolve_device(device)
seed_everything(seed)
results_dir, figures_dir = output_dirs(out_dir, "basics", profile)   # runs/basics-<profile>/ unless out_dir is set
print(f"device: {dev}; settings: {SETTINGS}")
if SETTINGS["pretrained"] == "standin":
    STANDIN = standins.record(SETTINGS["backbone"])
    print(f"stand-in {SETTINGS['backbone']}: {STANDIN['data']}; {STANDIN['recipe']['steps']} steps at batch "
          f"{STANDIN['recipe']['batch_size']}, loss {STANDIN['loss_first']:.3f} -> {STANDIN['loss_last']:.3f}; its own CAM "
          f"scores {100 * STANDIN['cam_val']['miou']:.1f} val mIoU on the {STANDIN['cam_val'].get('benchmark', 'quick')} benchmark")

# %% [markdown]
# ## 1. The benchmark
#
# With the default `dataset="synthetic"` the data is generated here (and cached), in the PASCAL VOC
# folder layout, so the same loader reads real VOC. Six object classes share their body colours; only a
# small **coloured mark** tells the class at a glance, and each class **prefers a background scene**.
# A classifier can therefore succeed by looking at the mark and the scene alone - which is exactly why
# its CAM covers part of the object and leaks onto the background, as CAMs do on real photos.

# %%
root, train_set, val_set = open_data(dataset, data_root, profile, seed,
                                     train_transform=TrainTransform(SETTINGS["crop"], scale=(0.8, 1.2)))
names = train_set.class_names
val_with_clicks = build_dataset(dataset, root, "val", with_clicks=True)
eval_batch = SETTINGS["batch"] if dataset == "synthetic" else 1   # real photos differ in size
print(f"data: {root}\nclasses: {names}\ntrain images: {len(train_set)}, val images: {len(val_set)}")

# %% [markdown]
# **The class card.** Each class's own body shape, its mark colour (which is also its colour in every mask and legend
# of these notebooks) and its preferred scene. Keep it at hand when reading a figure: a triangle labelled "ring" is a
# ring-class object (ring's mark) with another class's body.

# %%
if dataset == "synthetic":
    viz.class_card_figure(class_card(), path=figures_dir / "basics_class_card.png");
else:
    print(f"the class card describes the synthetic benchmark; dataset={dataset!r} has real photos")

# %%
shown = [val_with_clicks[i] for i in range(min(8, len(val_with_clicks)))]
fig = viz.image_grid([[viz.to_hwc(s["image"]) for s in shown], [viz.colorize(s["mask"]) for s in shown],
                      [viz.draw_clicks(s["image"], s["clicks"]) for s in shown]],
                     ["images", "masks (class colours)", "click labels (white = background)"],
                     class_names=names, path=figures_dir / "basics_benchmark.png")

# %% [markdown]
# How fast does the data pipeline deliver images (decode, random scale/crop/flip, batching)? A GPU
# training step must not wait on it.

# %%
throughput = {w: loader_throughput(train_set, batch_size=SETTINGS["batch"], num_workers=w) for w in (0, 2)}
print("loader images/s:", {f"{w} workers": round(v) for w, v in throughput.items()})

# %% [markdown]
# ## 2. A classifier trained on image tags
#
# The network is a backbone, global average pooling and a bias-free 1x1 classifier `w`; the loss is
# the multi-label soft margin loss over the tags. Because pooling and `w` commute, the class score is
# the average of the map $M_c(i) = w_c^\top f(i)$ - the **class activation map**.

# %%
t0 = time.perf_counter()
classifier, cls_history = pretrain_classifier(train_set, backbone=SETTINGS["backbone"], pretrained=SETTINGS["pretrained"],
                                              steps=SETTINGS["cls_steps"], batch_size=SETTINGS["batch"], lr=SETTINGS["lr"],
                                              optimizer=SETTINGS["optimizer"], seed=seed, device=str(dev), desc="classifier")
cls_time = time.perf_counter() - t0
print(f"classifier: {SETTINGS['cls_steps']} steps in {cls_time:.0f} s, final loss {cls_history[-1]['loss']:.3f}")

# %% [markdown]
# ## 3. CAMs and their pseudo labels
#
# CAMs are computed at scales 1, 0.5, 1.5 and 2 plus their flips, summed, restricted to the image's
# tags and divided by each class's maximum. A pixel is background where every CAM stays below
# `cam_bg_threshold`, otherwise it takes the class of the strongest CAM.
#
# ## 4. CAM + dense CRF
#
# A fully connected CRF (Krähenbühl & Koltun) sharpens the pseudo labels along colour edges: unary
# $-\log p$ from the CAM scores, a Gaussian smoothness kernel (`sxy=3, compat=3`) and a bilateral
# kernel (`sxy=80, srgb=13, compat=10` on VOC-sized photos; the spatial width is scaled here to the
# image size). On this benchmark some boundaries have no colour edge (camouflaged bodies) and
# some scenes have strong edges of their own, so the CRF can also do harm.
#
# One pass over the val split computes each image's CAM once and scores, from it, the pseudo labels at
# `cam_bg_threshold`, a sweep of other thresholds (shown, not used to pick the parameter), and CAM + CRF.

# %%
classifier.eval()
net = classifier.net
bilateral_sxy = pixels(80, SETTINGS["image_px"])          # sxy 80 on ~500 px photos
SWEEP = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6)

def crf_refine(images, cams):
    """CAM + dense CRF labels: images uint8 (B, 3, H, W), cams (B, K, H, W) -> (B, H, W)."""
    return crf_label(images.cpu(), cam_to_probs(cams, threshold=cam_bg_threshold).cpu(), n_iter=crf_iterations,
                     gaussian=(3, 3), bilateral=(bilateral_sxy, 13, 10))

def cam_predictions(batch):
    cams = multiscale_cam(net, batch["image"], batch["labels"])
    out = {f"CAM @ {th}": cam_to_label(cams, threshold=th) for th in SWEEP}
    out["CAM"] = cam_to_label(cams, threshold=cam_bg_threshold)
    out["CAM + CRF"] = crf_refine(batch["image"], cams)
    return out

cam_cms = evaluate(cam_predictions, val_set, batch_size=eval_batch, device=dev)
cam_cm, crf_cm = cam_cms["CAM"], cam_cms["CAM + CRF"]
cam_miou, cam_crf_miou = cam_cm.miou(), crf_cm.miou()
sweep = {th: cam_cms[f"CAM @ {th}"].miou() for th in SWEEP}
print(f"val mIoU: CAM {100 * cam_miou:.1f}, CAM + CRF {100 * cam_crf_miou:.1f} "
      f"(background threshold {cam_bg_threshold}, CRF bilateral sxy {bilateral_sxy})")
pd.DataFrame({"background threshold": list(sweep), "CAM val mIoU (%)": [round(100 * v, 1) for v in sweep.values()]})

# %%
batch = collate([val_set[i] for i in range(min(6, len(val_set)))]) if dataset == "synthetic" else collate([val_set[0]])
cams = multiscale_cam(net, batch["image"].to(dev), batch["labels"].to(dev)).cpu()
viz.image_grid([[viz.to_hwc(im) for im in batch["image"]],
                [viz.heatmap(im, c) for im, c in zip(batch["image"], cams.amax(dim=1))],
                [viz.colorize(m) for m in cam_to_label(cams, threshold=cam_bg_threshold)],
                [viz.colorize(m) for m in crf_refine(batch["image"], cams)],
                [viz.colorize(m) for m in batch["mask"]]],
               ["image", "CAM (max over tagged classes)", "CAM pseudo label", "CAM + CRF", "ground truth"],
               class_names=names, row_colorbars=[None, ("jet", 0, 1, "CAM (over the image)")],
               path=figures_dir / "basics_cams.png");

# %% [markdown]
# ## 5. The upper bound: full supervision
#
# DeepLab-v3+ on the same kind of backbone, trained with the ground-truth masks and cross-entropy.

# %%
cfg = dict(batch_size=SETTINGS["batch"], lr=SETTINGS["lr"], optimizer=SETTINGS["optimizer"], weight_decay=1e-4,
           seed=seed, device=str(dev), log_every=25)
seed_everything(seed)   # the model starts from the same weights, whatever ran before
fully = FullySupervised(SETTINGS["backbone"], train_set.num_classes, output_stride=8,
                        channels=SETTINGS["head_channels"], pretrained=SETTINGS["pretrained"])
t0 = time.perf_counter()
seg_history = train(fully, train_set, TrainConfig(steps=SETTINGS["seg_steps"], **cfg), desc="fully supervised")
seg_time = time.perf_counter() - t0
fully.eval()
fs_cm = evaluate(lambda b: fully.predict(b["image"]).argmax(dim=1), val_set, batch_size=eval_batch, device=dev)
fully_supervised_miou = fs_cm.miou()
print(f"fully supervised: {SETTINGS['seg_steps']} steps in {seg_time:.0f} s, val mIoU {100 * fully_supervised_miou:.1f}")
viz.plot_curves({"classifier (tags)": cls_history, "DeepLab-v3+ (masks)": seg_history},
                path=figures_dir / "basics_training.png");

# %%
preds = fully.predict(batch["image"].to(dev)).argmax(dim=1).cpu()
viz.image_grid([[viz.to_hwc(im) for im in batch["image"]], [viz.colorize(p) for p in preds],
                [viz.colorize(m) for m in batch["mask"]]],
               ["image", "fully supervised", "ground truth"], class_names=names, path=figures_dir / "basics_predictions.png");

# %% [markdown]
# ## 6. Summary: the room weak supervision has to fill

# %%
table = per_class_table({"CAM": cam_cm, "CAM + CRF": crf_cm, "fully supervised": fs_cm}, names)
table

# %% [markdown]
# **The room.** The floor is what predicting background everywhere scores (background covers most pixels); the
# ceiling is the fully supervised net; the CAM labels are the baseline every paper starts from. The paper
# notebooks print the same line for their own network and schedule, and call a claim "not testable here" when
# their baseline sits in the lower half of the room or the room above it is smaller than the paper's gain.

# %%
FLOOR = floor_miou(val_set, batch_size=eval_batch)
HEADROOM = headroom(FLOOR, cam_miou, fully_supervised_miou)
print(headroom_line(HEADROOM))
CLOSING = closing_table([], HEADROOM)      # this notebook judges no paper's claim: its closing table is the room
show_closing_table(CLOSING)

# %%
wall = clock()
headroom_ok = fully_supervised_miou >= 0.80 and 0.30 <= cam_miou <= 0.65
summary = {"headroom": HEADROOM, "verdicts": [], "closing_table": CLOSING, "fully_supervised_miou": fully_supervised_miou, "cam_miou": cam_miou, "cam_crf_miou": cam_crf_miou,
           "cam_threshold_sweep": {str(k): v for k, v in sweep.items()}, "per_class_iou": table.to_dict(orient="index"),
           "classifier_seconds": cls_time, "fully_supervised_seconds": seg_time,
           "loader_images_per_s": {str(k): v for k, v in throughput.items()}, "wall_time_s": wall,
           "dataset": dataset, "settings": SETTINGS, "parameters": {k: str(v) for k, v in params.items()},
           "headroom_target_met": headroom_ok, "standin": STANDIN if SETTINGS["pretrained"] == "standin" else None}
path = write_results(results_dir, "basics", profile, summary)
print(f"fully supervised {100 * fully_supervised_miou:.1f} | CAM {100 * cam_miou:.1f} | CAM + CRF {100 * cam_crf_miou:.1f} mIoU")
print(f"headroom target (full >= 80, CAM in 30-65): {'met' if headroom_ok else 'NOT met'}")
print(f"wall time of this notebook: {wall:.0f} s ({wall / 60:.1f} min); results in {path}")

# %% [markdown]
# ## Exercises
#
# Each is one papermill run (`python -m wsss.run_notebooks basics -p NAME VALUE` writes to `runs/basics-quick/`);
# `python -m wsss.compare basics` then lists every number that moved.
#
# 1. `-p cam_bg_threshold 0.2`, then `0.4`: the background score below which a CAM pixel is background. Which way does
#    the CAM pseudo label's mIoU move, and what happens to the background and object IoUs in the per-class table?
# 2. `-p crf_iterations 1`: one mean-field step instead of ten. How much of the CRF's gain over the plain CAM is left?
# 3. `-p classifier_steps 200`: a less trained tag classifier. Do its CAMs cover less of each object, or leak more
#    onto the background (the CAM figure)?
