"""The settings of every notebook at every profile, in one place (docs/design.md "Profiles").

| profile | where | what for |
|---|---|---|
| ``smoke`` | the test suite (nbval) | every cell runs, every figure is drawn, in <= 60 s; numbers mean nothing |
| ``quick`` | a 2-core CPU, <= 10 min | the committed run: a miniature of the paper's experiment |
| ``full`` | one GPU, <= 30 min | the same experiment, bigger images and schedules |
| ``paper`` | the paper's data and GPUs | the paper's backbone, data and schedule |

A notebook asks :func:`profile_settings` for its dict and overrides single entries from its parameters.
Kernel widths that the papers give in pixels of ~500 px photos (CRF ``sxy``, a loss's ``sigma_xy``)
are scaled to the image size of the profile with :func:`pixels`.
"""
from __future__ import annotations

import os

from . import reproducible

PHOTO_PX = 500          # the papers' kernel widths are in pixels of VOC photos, about 500 x 375
PROFILES = ("smoke", "quick", "full", "paper")
# the synthetic benchmark's size at each notebook profile (None: the paper's real data)
BENCHMARK = {"smoke": "smoke", "quick": "quick", "full": "full", "paper": None}

_SETTINGS = {
    "basics": {
        "smoke": dict(backbone="resnet-tiny", crop=48, image_px=48, batch=8, cls_steps=12, seg_steps=12, lr=1e-3,
                      optimizer="adamw", head_channels=16, pretrained="standin"),
        "quick": dict(backbone="resnet-tiny", crop=64, image_px=64, batch=16, cls_steps=1000, seg_steps=2400, lr=1e-3,
                      optimizer="adamw", head_channels=64, pretrained="standin"),
        "full": dict(backbone="resnet18", crop=160, image_px=160, batch=16, cls_steps=6000, seg_steps=6000, lr=1e-3,
                     optimizer="adamw", head_channels=128, pretrained="standin"),
        "paper": dict(backbone="resnet101", crop=321, image_px=500, batch=16, cls_steps=20000, seg_steps=30000, lr=1e-2,
                      optimizer="sgd", head_channels=256, pretrained="imagenet"),
    },
    # ASDT: crop / image as the paper's 321 px crops of 500x375 VOC photos (0.86 of the short side; 56 of 64 px
    # at quick: a 40 px crop, 0.63 as of the long side, cut the tagged objects out of too many crops and the
    # seg heads fell to ~26 mIoU in a 300-iteration probe, against ~51 at 56 and 64 px; a whole quick run at 48 px
    # crops (16 runs, no naive mean row) scored P 41.5 for ASDT against 55.7 at 56 px, and its runs took 40 s
    # each against 43 s at 56 px (grid 642 s for 16 against 736 s for 17), too little saving for that loss); warm-up
    # 5% of the run (public code: 1000 of ~21k iterations); quick and full keep >= 7 full PWM periods of
    # T=150 after it. seeds: the runs of Table 4's central rows (mean +- std); table5_runs: whether the
    # Table 5 rows that need their own training (no R^ct, no L_str) run at this profile.
    "asdt": {
        "smoke": dict(backbone="resnet-tiny", pretrained="standin", crop=40, image_px=48, batch=4, steps=8, warmup=2,
                      cls_steps=8, cls_batch=8, optimizer="adamw", lr=5e-4, weight_decay=1e-5, head_channels=16,
                      cam_scales=(1.0,), seeds=2, fig6_T=(50, 150, 250), fig6_tau=(1, 5, 9), table5_runs=True,
                      retrain_steps=4, retrain_batch=4, retrain_lr=1e-3, retrain_weight_decay=1e-4),
        "quick": dict(backbone="resnet-tiny", pretrained="standin", crop=56, image_px=64, batch=4, steps=1200, warmup=60,
                      cls_steps=0, cls_batch=16, optimizer="adamw", lr=5e-4, weight_decay=1e-5, head_channels=64,
                      cam_scales=(1.0,), seeds=3, fig6_T=(50, 150, 250), fig6_tau=(1, 5, 9), table5_runs=True,
                      retrain_steps=0, retrain_batch=10, retrain_lr=1e-3, retrain_weight_decay=1e-4),
        "full": dict(backbone="resnet18", pretrained="standin", crop=140, image_px=160, batch=4, steps=3000, warmup=150,
                     cls_steps=0, cls_batch=16, optimizer="adamw", lr=5e-4, weight_decay=1e-5, head_channels=128,
                     cam_scales=(1.0, 0.5, 1.5, 2.0), seeds=3, fig6_T=(50, 100, 150, 200, 250),
                     fig6_tau=(1, 3, 5, 7, 9), table5_runs=True, retrain_steps=6000, retrain_batch=10, retrain_lr=1e-3,
                     retrain_weight_decay=1e-4),
        # the paper: ResNet-38 (RRM's network) started, as the public code, from a classifier trained on
        # the VOC tags (here: 8 epochs of train_aug at batch 8, our choice of length); SGD lr 7e-4, momentum
        # 0.9, weight decay 1e-5, batch 4, 8 epochs (~21k iterations). Retrain: DeepLab-v2 ResNet-101 in the
        # paper, 20k iterations, batch 10, lr 2.5e-3, weight decay 5e-4 (ours: DeepLab-v3+, see the notebook).
        "paper": dict(backbone="resnet38", pretrained="imagenet", crop=321, image_px=500, batch=4, steps=21164,
                      warmup=1000, cls_steps=10580, cls_batch=8, optimizer="sgd", lr=7e-4, weight_decay=1e-5,
                      head_channels=512, cam_scales=(1.0, 0.5, 1.5, 2.0), seeds=3, fig6_T=(50, 100, 150, 200, 250),
                      fig6_tau=(1, 3, 5, 7, 9), table5_runs=True, retrain_steps=20000, retrain_batch=10,
                      retrain_lr=2.5e-3, retrain_weight_decay=5e-4),
    },
    # SSDD: the static stage (batch 16) and the dynamic stage (batch 8) keep the paper's 1 : 3 ratio of epochs
    # (10 and 30 in the paper; quick and full run 1/5 of them); crops as ASDT's (0.875 of the short side; the
    # paper's 448 px crops of 500 px photos are 0.9). PSA's walk (radius 5, beta 8, logt 8, background^16)
    # keeps the paper's values at every profile. Heads : DD-Nets channels 2 : 1 (the paper's 512 : 256).
    # seeds: the runs of Table 1 (the central comparison); tableA1_*: the dynamic-stage sweeps of Table A-1
    # (the default among them), one seed each, dynamic runs of tableA1_epochs (a shorter length reruns the
    # default point at it; quick keeps Table 1's length: at half of it the dynamic stage is still in its
    # start-up, where untrained DD-Nets pass most advice, and a probe fell from 64 to 40 mIoU); fig6_w_rgb: the
    # bilateral compat values of Fig. 6's CRF sweep (w_g = Gaussian compat stays at fig6_w_g).
    "ssdd": {
        "smoke": dict(backbone="resnet-tiny", pretrained="standin", crop=40, image_px=48, cls_steps=8, cls_batch=8,
                      aff_steps=4, aff_batch=4, aff_dims=(8, 8, 8), static_epochs=0.5, static_batch=8,
                      dynamic_epochs=1, dynamic_batch=4, tableA1_epochs=0.5, lr=1e-3, weight_decay=2e-4, head_channels=16, dd_width=8,
                      cam_scales=(1.0, 0.5), test_scales=(1.0, 0.5), seeds=2, tableA1_bdd=(0.0, 0.4),
                      tableA1_bclass=(0.0, 1.0), tableA1_alpha=(1.0, 0.5), fig6_w_g=3, fig6_w_rgb=(10, 5)),
        "quick": dict(backbone="resnet-tiny", pretrained="standin", crop=56, image_px=64, cls_steps=800, cls_batch=16,
                      aff_steps=300, aff_batch=8, aff_dims=(16, 32, 64), static_epochs=2, static_batch=16,
                      dynamic_epochs=6, dynamic_batch=8, tableA1_epochs=6, lr=1e-3, weight_decay=2e-4, head_channels=64, dd_width=32,
                      cam_scales=(1.0, 0.5, 1.5, 2.0), test_scales=(0.5, 0.75, 1.0, 1.25, 1.5), seeds=3,
                      tableA1_bdd=(0.0, 0.4, 0.5), tableA1_bclass=(0.0, 1.0, 2.0), tableA1_alpha=(1.0, 0.5, 0.0),
                      fig6_w_g=3, fig6_w_rgb=(10, 5, 2)),
        "full": dict(backbone="resnet18", pretrained="standin", crop=140, image_px=160, cls_steps=4000, cls_batch=16,
                     aff_steps=1500, aff_batch=8, aff_dims=(64, 128, 256), static_epochs=2, static_batch=16,
                     dynamic_epochs=6, dynamic_batch=8, tableA1_epochs=6, lr=1e-3, weight_decay=2e-4, head_channels=128, dd_width=64,
                     cam_scales=(1.0, 0.5, 1.5, 2.0), test_scales=(0.5, 0.75, 1.0, 1.25, 1.5), seeds=3,
                     tableA1_bdd=(0.0, 0.2, 0.4, 0.5), tableA1_bclass=(0.0, 1.0, 2.0), tableA1_alpha=(1.0, 0.5, 0.0),
                     fig6_w_g=3, fig6_w_rgb=(15, 10, 5, 2)),
        # the paper: ResNet-38 from ImageNet and a VOC-tag classifier (PSA's released weights); 448 px crops;
        # AffinityNet as PSA (8 epochs of train_aug at batch 8); static 10 epochs at batch 16, dynamic 30 at 8
        "paper": dict(backbone="resnet38", pretrained="imagenet", crop=448, image_px=500, cls_steps=10580, cls_batch=8,
                      aff_steps=10580, aff_batch=8, aff_dims=(64, 128, 256), static_epochs=10, static_batch=16,
                      dynamic_epochs=30, dynamic_batch=8, tableA1_epochs=30, lr=1e-3, weight_decay=2e-4, head_channels=512,
                      dd_width=256, cam_scales=(1.0, 0.5, 1.5, 2.0), test_scales=(0.5, 0.75, 1.0, 1.25, 1.5), seeds=3,
                      tableA1_bdd=(0.0, 0.1, 0.2, 0.3, 0.4, 0.5), tableA1_bclass=(0.0, 0.5, 1.0, 1.5, 2.0),
                      tableA1_alpha=(1.0, 0.75, 0.5, 0.25, 0.0), fig6_w_g=3, fig6_w_rgb=(15, 10, 5, 2)),
    },
    # TSCD and its AFA baseline: AdamW with the encoder x1 and the new layers x10, AFA's schedule as shares of the
    # run (classification only for 10% = 2000 of 20k, LR warm-up 7.5% = 1500, AFA's walk switch at 30% = 6000).
    # Small images keep the paper's map sizes in proportion: output stride 8 (the paper: 16 on 512 px crops, a
    # 32 x 32 map); the pair window radius, the SCD samples per side and the PAR/VARM dilations are scaled by the
    # map (radius 8, 40 samples on 32 x 32; dilations 1-24 on the 256 px half-resolution image). pretrained: the
    # stand-in backbone (wsss/models/standins.py) stands in for ImageNet weights. seeds: the runs of the central
    # comparison (AFA vs TSCD); table5_runs: whether Table 5's refiners are each trained (else their pseudo labels
    # are scored); wr38: whether Table 4's WR38 rows run. lr: the paper's 6e-5 trains our small networks too slowly
    # for a run of a few hundred iterations (a quick probe, one seed, before the stand-ins: TSCD 11.9 / AFA 10.7 val
    # mIoU at 6e-5 against 16.5 / 15.7 at 6e-4); quick and full use 6e-4.
    "tscd": {
        "smoke": dict(backbone="mit-tiny", resnet="resnet-tiny", wr38="resnet38-tiny", pretrained="standin", crop=48, image_px=48,
                      batch=4, steps=8, cls_only=2, lr_warmup=1, walk_from=3, output_stride=8,
                      lr=6e-4, weight_decay=0.01, channels=16, dilations=(1, 2, 3), radius=2, samples=6, seeds=2,
                      table5_runs=True, wr38_runs=True),
        "quick": dict(backbone="mit-tiny", resnet="resnet-tiny", wr38="resnet38-tiny", pretrained="standin", crop=64, image_px=64,
                      batch=8, steps=300, cls_only=30, lr_warmup=22, walk_from=90, output_stride=8,
                       lr=6e-4, weight_decay=0.01, channels=64, dilations=(1, 2, 3), radius=2, samples=10,
                      seeds=3, table5_runs=False, wr38_runs=False),
        "full": dict(backbone="mit_b0", resnet="resnet18", wr38="resnet38-tiny", pretrained="standin", crop=160, image_px=160,
                     batch=8, steps=3000, cls_only=300, lr_warmup=225, walk_from=900, output_stride=8,
                      lr=6e-4, weight_decay=0.01, channels=128, dilations=(1, 2, 4, 8), radius=5, samples=25,
                     seeds=3, table5_runs=True, wr38_runs=True),
        "paper": dict(backbone="mit_b1", resnet="resnet101", wr38="resnet38", pretrained="imagenet", crop=512, image_px=500,
                      batch=8, steps=20000, cls_only=2000, lr_warmup=1500, walk_from=6000, output_stride=16,
                       lr=6e-5, weight_decay=0.01, channels=256, dilations=(1, 2, 4, 8, 12, 24), radius=8,
                      samples=40, seeds=3, table5_runs=True, wr38_runs=True),
    },
    # RML: TSCD's miniature (its stand-in backbone, map sizes and scaled radius / dilations), with RML's own
    # schedule as shares (classification only 2000 and LR warm-up 1500 of 18k iterations: 11% and 8.3%); no decoder.
    # context_channels: the fusion module's width (the paper does not give it); seeds: the runs of Table 1's central
    # pair (baseline, RML); sensitivity: the alpha / beta1 / beta2 points (three each, the paper's default among
    # them), trained only where sensitivity_runs is set.
    "rml": {
        "smoke": dict(backbone="mit-tiny", pretrained="standin", crop=48, image_px=48, batch=4, steps=9, cls_only=1, lr_warmup=1,
                      output_stride=8, lr=6e-4, weight_decay=0.01, channels=16,
                      context_channels=16, dilations=(1, 2, 3), radius=2, seeds=2, sensitivity_runs=True,
                      sensitivity=dict(alpha=(0.05, 0.1), beta1=(50.0, 100.0), beta2=(50.0, 100.0))),
        "quick": dict(backbone="mit-tiny", pretrained="standin", crop=64, image_px=64, batch=8, steps=300, cls_only=33,
                      lr_warmup=25, output_stride=8, lr=6e-4, weight_decay=0.01, channels=64,
                      context_channels=64, dilations=(1, 2, 3), radius=2, seeds=3, sensitivity_runs=False,
                      sensitivity=dict(alpha=(0.05, 0.1, 0.2), beta1=(50.0, 100.0, 200.0), beta2=(50.0, 100.0, 200.0))),
        "full": dict(backbone="mit_b0", pretrained="standin", crop=160, image_px=160, batch=8, steps=3000, cls_only=333,
                     lr_warmup=250, output_stride=8, lr=6e-4, weight_decay=0.01, channels=128,
                     context_channels=128, dilations=(1, 2, 4, 8), radius=5, seeds=3, sensitivity_runs=True,
                     sensitivity=dict(alpha=(0.05, 0.1, 0.2), beta1=(50.0, 100.0, 200.0), beta2=(50.0, 100.0, 200.0))),
        "paper": dict(backbone="mit_b1", pretrained="imagenet", crop=320, image_px=500, batch=8, steps=18000, cls_only=2000,
                      lr_warmup=1500, output_stride=16, lr=6e-5, weight_decay=0.01, channels=256,
                      context_channels=256, dilations=(1, 2, 4, 8, 12, 24), radius=8, seeds=3, sensitivity_runs=True,
                      sensitivity=dict(alpha=(0.05, 0.1, 0.2), beta1=(50.0, 100.0, 200.0), beta2=(50.0, 100.0, 200.0))),
    },
    # Seminar: DeepLab-v3+ on the paper's two backbones (quick trains the ResNet column, the paper's main one; the
    # MobileNet column runs where mobilenet_runs is set), batch 12, SGD with rloss's lr 0.007, poly 0.9, weight
    # decay 5e-4, random scale 0.5-2.0, flip, Gaussian blur (p 0.5). The paper's map (513 px at output stride 16:
    # 33 x 33) is kept in proportion by output stride 8 on 64 px crops, the ASPP rates scaled to the map. steps: one
    # model's run (the paper: 60 epochs = 52,920 iterations); the EMA horizon and the lambda_pCons ramp are shares
    # of it (Seminar.alpha_for_run, pcons_weight). lr: the paper profile gives rloss's step on our loss (rloss's loss
    # is 1/12 of ours, see methods/seminar.crf_weight): lr 0.007 / 12 with weight decay 5e-4 x 12; quick and full
    # keep 0.007 on our loss (12x rloss's step: short runs; not compared with the equivalent at quick). seeds: the
    # runs of Table 3's central rows; fig5b_alpha / fig5c_lambda: the paper's decays (converted to the run's length)
    # and pCons weights, one seed each; chain: the longest student-student chain of Fig. 5(a); eval_points: the
    # evaluations along Fig. 4's runs.
    "seminar": {
        "smoke": dict(backbone="resnet-tiny", mobilenet="mobilenet-tiny", pretrained="standin", crop=48, image_px=48, batch=4,
                      steps=8, cls_steps=8, cls_batch=8, output_stride=8, channels=16, lr=0.007, weight_decay=5e-4,
                      seeds=2, mobilenet_runs=True, chain=2, eval_points=2, fig5b_alpha=(0.99, 0.999, 0.9999),
                      fig5c_lambda=(50.0, 200.0, 800.0)),
        "quick": dict(backbone="resnet-tiny", mobilenet="mobilenet-tiny", pretrained="standin", crop=64, image_px=64, batch=12,
                      steps=500, cls_steps=800, cls_batch=16, output_stride=8, channels=32, lr=0.007, weight_decay=5e-4,
                      seeds=3, mobilenet_runs=False, chain=2, eval_points=10, fig5b_alpha=(0.99, 0.999, 0.9999),
                      fig5c_lambda=(50.0, 200.0, 800.0)),
        "full": dict(backbone="resnet18", mobilenet="mobilenet_v2", pretrained="standin", crop=160, image_px=160, batch=12,
                     steps=3000, cls_steps=4000, cls_batch=16, output_stride=8, channels=128, lr=0.007, weight_decay=5e-4,
                     seeds=3, mobilenet_runs=True, chain=3, eval_points=12, fig5b_alpha=(0.99, 0.999, 0.9999),
                     fig5c_lambda=(50.0, 200.0, 800.0)),
        "paper": dict(backbone="resnet101", mobilenet="mobilenet_v2", pretrained="imagenet", crop=513, image_px=500,
                      batch=12, steps=52920, cls_steps=0, cls_batch=12, output_stride=16, channels=256, lr=0.007 / 12,
                      weight_decay=5e-4 * 12, seeds=3, mobilenet_runs=True, chain=3, eval_points=12,
                      fig5b_alpha=(0.99, 0.999, 0.9999), fig5c_lambda=(50.0, 200.0, 800.0)),
    },
}


def profile_settings(notebook: str, profile: str, **overrides) -> dict:
    """A fresh copy of ``notebook``'s settings at ``profile``, with ``overrides`` applied (an override
    of None keeps the profile's value; a name the settings do not have is an error)."""
    if notebook not in _SETTINGS:
        raise ValueError(f"no settings for notebook {notebook!r}; there are {sorted(_SETTINGS)}")
    if profile not in PROFILES:
        raise ValueError(f"profile={profile!r} is not known; choose one of {PROFILES}")
    settings = dict(_SETTINGS[notebook][profile])
    unknown = sorted(set(overrides) - set(settings))
    if unknown:
        raise ValueError(f"{notebook} settings have no {unknown}; they are {sorted(settings)}")
    settings.update({k: v for k, v in overrides.items() if v is not None})
    return settings


def pixels(width: float, image_px: float) -> float:
    """A kernel width given in pixels of a ~500 px photo, at an image of ``image_px`` pixels (rounded
    to 0.1, at least 1): e.g. the CRF's bilateral sxy 80 -> 10.2 at 64 px."""
    return max(1.0, round(width * image_px / PHOTO_PX, 1))


def scaled_bilateral(bilateral: tuple[float, float, float], image_px: float) -> tuple[float, float, float]:
    """A dense CRF's bilateral kernel (sxy, srgb, compat) with sxy scaled by :func:`pixels` (the colour
    width and the weight stay)."""
    sxy, srgb, compat = bilateral
    return (pixels(sxy, image_px), srgb, compat)


def head_dilation(crop: int, dilation: int = 12, paper_crop: int = 321) -> int:
    """A head's dilation given for the paper's ``paper_crop`` px crops, scaled to a ``crop`` px crop (the
    feature map shrinks with it): round(dilation * crop / paper_crop), at least 1; e.g. RRM's 12 at 321 px
    -> 1 at 40 px, where dilation 12 would leave a 3x3 kernel only its centre tap inside a 5x5 map."""
    return max(1, round(dilation * crop / paper_crop))


def default_workers(device_type: str, profile: str) -> int:
    """Runs trained at once by :func:`wsss.experiments.run_grid`: one on a GPU (it is busy already) and
    at smoke (spawning costs more than it saves), else up to two CPU processes of one thread each (two
    in the reproducible mode whatever the number of cores, so every machine splits the work alike)."""
    if device_type == "cuda" or profile == "smoke":
        return 1
    if reproducible.enabled():      # the same runs on every machine: two workers, one thread each
        return 2
    return max(1, min(2, os.cpu_count() or 1))
