"""Benchmark: the torch dense CRF against pydensecrf, side by side on the same images, and the CRF loss.

Run on demand (not part of the test suite)::

    python scripts/bench_crf.py                       # CPU, and CUDA too when a GPU is present
    python scripts/bench_crf.py --out results/bench_crf.json --repeat 5

For every image size it renders photo-like images of the embedded benchmark (textured scenes, shaded
objects, noise, soft edges; ``wsss.data.synthetic.render_image``) with their ground truth, makes noisy
21-label probability maps from the ground truth, and times ``dense_crf`` with each backend on the
same inputs (median over repeats, per image; inputs already on the device, as inside a training loop).
It also reports how far the two backends agree (argmax agreement; mIoU against the ground truth of
the raw probabilities, of pydensecrf and of torch) and runs one real photo (matplotlib's sample
``grace_hopper.jpg``, probabilities from colour clusters) for agreement. Last, it times the forward and
backward pass of ``dense_crf_loss`` for a batch of 8 at 321 x 321.
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from wsss.data.synthetic import Profile, render_image  # noqa: E402
from wsss.evaluate import ConfusionMatrix  # noqa: E402
from wsss.refine.crf import dense_crf, dense_crf_batch, dense_crf_loss  # noqa: E402

CRF_PARAMS = dict(gaussian=(3, 3), bilateral=(80, 13, 10))   # the values most WSSS code uses


def blur(x: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur over the last two axes."""
    from scipy.ndimage import gaussian_filter
    return gaussian_filter(x, (0,) * (x.ndim - 2) + (sigma, sigma))


def noisy_probs(mask: np.ndarray, n_labels: int, rng: np.random.Generator, *, noise: float = 1.0,
                smooth: float = 4.0, confidence: float = 1.2) -> np.ndarray:
    """Probability map (C, H, W) that prefers the true label but errs in smooth blobs, like a CAM/segmenter."""
    h, w = mask.shape
    logits = blur(rng.normal(0, noise, (n_labels, h, w)).astype(np.float32), smooth) * smooth
    onehot = np.zeros((n_labels, h, w), np.float32)
    onehot[mask % n_labels, np.arange(h)[:, None], np.arange(w)[None]] = 1
    logits += confidence * blur(onehot, 2.0)
    p = np.exp(logits - logits.max(0))
    return (p / p.sum(0)).astype(np.float32)


def synthetic_images(height: int, width: int, count: int, n_labels: int = 21, seed: int = 0):
    """``count`` photo-like images uint8 (H, W, 3), their masks (H, W) and probabilities (C, H, W)."""
    rng = np.random.default_rng([seed, height, width])
    prof = Profile(image_size=max(height, width), n_train=1, n_val=1, min_radius=0.14, max_radius=0.26)
    out = []
    for _ in range(count):
        image, mask, _, _ = render_image(rng, prof)
        image, mask = np.ascontiguousarray(image[:height, :width]), np.ascontiguousarray(mask[:height, :width])
        out.append((image, mask, noisy_probs(mask, n_labels, rng)))
    return out


def photo(n_labels: int = 21, seed: int = 0):
    """A real photo (matplotlib's sample grace_hopper.jpg) and probabilities from colour-position clusters."""
    from matplotlib import cbook
    from PIL import Image
    with cbook.get_sample_data("grace_hopper.jpg") as f:
        image = np.array(Image.open(f).convert("RGB"))
    h, w, _ = image.shape
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    feats = np.concatenate([image.reshape(-1, 3) / 40.0, np.stack([yy, xx], -1).reshape(-1, 2) / 120.0], 1)
    centres = feats[rng.choice(len(feats), n_labels, replace=False)]
    for _ in range(5):   # a few k-means steps
        label = ((feats[:, None] - centres[None]) ** 2).sum(-1).argmin(1)
        centres = np.stack([feats[label == k].mean(0) if (label == k).any() else centres[k] for k in range(n_labels)])
    dist = ((feats[:, None] - centres[None]) ** 2).sum(-1).T.reshape(n_labels, h, w).astype(np.float32)
    logits = -dist + blur(rng.normal(0, 1.0, (n_labels, h, w)).astype(np.float32), 3.0) * 3.0
    p = np.exp(logits - logits.max(0))
    return np.ascontiguousarray(image), (p / p.sum(0)).astype(np.float32)


def timed(fn, repeat: int, device: torch.device) -> float:
    """Median wall time of ``fn()`` in seconds over ``repeat`` runs, after one warm-up run."""
    fn()
    times = []
    for _ in range(repeat):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        t = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def miou(preds, masks, n_labels: int) -> float:
    cm = ConfusionMatrix(n_labels)
    for p, m in zip(preds, masks):
        cm.update(np.asarray(p), m)
    return 100 * cm.miou()


def bench_size(height: int, width: int, args, devices) -> dict:
    data = synthetic_images(height, width, args.images, args.labels, args.seed)
    row = {"size": f"{width}x{height}", "labels": args.labels, "iterations": args.iters, "images": len(data)}
    kw = dict(n_iter=args.iters, **CRF_PARAMS)
    # pydensecrf, per image
    t = [timed(lambda: dense_crf(im, p, backend="pydensecrf", **kw), args.repeat, torch.device("cpu"))
         for im, _, p in data]
    row["pydensecrf_s"] = statistics.mean(t)
    ref = [dense_crf(im, p, backend="pydensecrf", **kw).argmax(0).numpy() for im, _, p in data]
    masks = [m for _, m, _ in data]
    row["miou_probs"] = miou([p.argmax(0) for _, _, p in data], masks, args.labels)
    row["miou_pydensecrf"] = miou(ref, masks, args.labels)
    for device in devices:
        ims = [torch.from_numpy(im).to(device) for im, _, _ in data]
        prs = [torch.from_numpy(p).to(device) for _, _, p in data]
        t = [timed(lambda: dense_crf(im, p, backend="torch", **kw), args.repeat, device) for im, p in zip(ims, prs)]
        row[f"torch_{device.type}_s"] = statistics.mean(t)
        row[f"ratio_{device.type}"] = row["pydensecrf_s"] / row[f"torch_{device.type}_s"]
        if len(ims) > 1:   # the whole set as one batch, on one lattice
            ib, pb = torch.stack(ims), torch.stack(prs)
            row[f"torch_{device.type}_batched_s"] = timed(lambda: dense_crf_batch(ib, pb, backend="torch", **kw),
                                                          args.repeat, device) / len(ims)
        out = [dense_crf(im, p, backend="torch", **kw).argmax(0).cpu().numpy() for im, p in zip(ims, prs)]
        row[f"agreement_{device.type}"] = float(np.mean([(a == b).mean() for a, b in zip(out, ref)]))
        row[f"miou_torch_{device.type}"] = miou(out, masks, args.labels)
    return row


def bench_photo(args, devices) -> dict:
    image, probs = photo(args.labels, args.seed)
    kw = dict(n_iter=args.iters, **CRF_PARAMS)
    row = {"size": f"{image.shape[1]}x{image.shape[0]}", "labels": args.labels, "image": "grace_hopper.jpg"}
    row["pydensecrf_s"] = timed(lambda: dense_crf(image, probs, backend="pydensecrf", **kw), args.repeat,
                                torch.device("cpu"))
    ref = dense_crf(image, probs, backend="pydensecrf", **kw).argmax(0).numpy()
    for device in devices:
        im, p = torch.from_numpy(image).to(device), torch.from_numpy(probs).to(device)
        row[f"torch_{device.type}_s"] = timed(lambda: dense_crf(im, p, backend="torch", **kw), args.repeat, device)
        row[f"ratio_{device.type}"] = row["pydensecrf_s"] / row[f"torch_{device.type}_s"]
        out = dense_crf(im, p, backend="torch", **kw).argmax(0).cpu().numpy()
        row[f"agreement_{device.type}"] = float((out == ref).mean())
    return row


def bench_loss(args, device: torch.device) -> dict:
    b, s = args.loss_batch, args.loss_size
    data = synthetic_images(s, s, b, args.labels, args.seed + 1)
    images = torch.from_numpy(np.stack([im for im, _, _ in data])).to(device)
    logits = torch.from_numpy(np.log(np.stack([p for _, _, p in data]) + 1e-6)).to(device).requires_grad_(True)
    row = {"device": device.type, "batch": b, "size": f"{s}x{s}", "labels": args.labels}
    for scale in (1.0, 0.5):
        def step():
            loss = dense_crf_loss(images, torch.softmax(logits, 1), sigma_xy=80, sigma_rgb=15, scale=scale)
            loss.backward()
            logits.grad = None
        row[f"fwd_bwd_scale{scale}_ms"] = 1000 * timed(step, args.repeat, device)
    return row


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="500x375,321x321", help="comma-separated WxH list")
    ap.add_argument("--labels", type=int, default=21)
    ap.add_argument("--iters", type=int, default=10)
    ap.add_argument("--images", type=int, default=3, help="images per size")
    ap.add_argument("--repeat", type=int, default=3, help="timed runs per image (median)")
    ap.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                    help="torch backend devices: auto = CPU, and CUDA too when available")
    ap.add_argument("--loss-batch", type=int, default=8)
    ap.add_argument("--loss-size", type=int, default=321)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    ap.add_argument("--out", type=Path, help="write the numbers to this JSON file")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    devices = [torch.device("cpu")] if args.device in ("auto", "cpu") else []
    if args.device in ("auto", "cuda") and torch.cuda.is_available():
        devices.append(torch.device("cuda"))
    elif args.device == "cuda":
        ap.error("--device cuda but CUDA is not available")
    env = {"torch": torch.__version__, "python": platform.python_version(), "cpu_threads": torch.get_num_threads(),
           "cuda": torch.cuda.get_device_name() if torch.cuda.is_available() else None}
    print(f"torch {env['torch']}, {env['cpu_threads']} CPU threads, GPU: {env['cuda']}")
    results = {"env": env, "crf": [], "photo": None, "loss": []}
    for size in args.sizes.split(","):
        w, h = (int(v) for v in size.lower().split("x"))
        row = bench_size(h, w, args, devices)
        results["crf"].append(row)
        line = f"{row['size']:>8} C={row['labels']}: pydensecrf {row['pydensecrf_s']:.3f} s/image"
        for d in devices:
            line += (f" | torch {d.type} {row[f'torch_{d.type}_s']:.4f} s (x{row[f'ratio_{d.type}']:.1f})"
                     f", agreement {100 * row[f'agreement_{d.type}']:.2f}%")
        print(line)
        print(f"{'':>8} mIoU: probs {row['miou_probs']:.2f}, pydensecrf {row['miou_pydensecrf']:.2f}, "
              + ", ".join(f"torch {d.type} {row[f'miou_torch_{d.type}']:.2f}" for d in devices)
              + "".join(f" | batched torch {d.type} {row[f'torch_{d.type}_batched_s']:.4f} s/image" for d in devices
                        if f"torch_{d.type}_batched_s" in row))
    row = results["photo"] = bench_photo(args, devices)
    print(f"photo {row['size']} C={row['labels']}: pydensecrf {row['pydensecrf_s']:.3f} s"
          + "".join(f" | torch {d.type} {row[f'torch_{d.type}_s']:.4f} s (x{row[f'ratio_{d.type}']:.1f}), "
                    f"agreement {100 * row[f'agreement_{d.type}']:.2f}%" for d in devices))
    for d in devices:
        row = bench_loss(args, d)
        results["loss"].append(row)
        print(f"loss fwd+bwd, batch {row['batch']} at {row['size']}, {d.type}: "
              f"{row['fwd_bwd_scale1.0_ms']:.1f} ms (scale 1), {row['fwd_bwd_scale0.5_ms']:.1f} ms (scale 0.5)")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=1))
        print(f"wrote {args.out}")
    return results


if __name__ == "__main__":
    main()
