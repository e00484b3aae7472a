"""Pictures for the notebooks: palettes, mask overlays, image grids, CAM heat maps, training curves."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import matplotlib

import numpy as np
import torch

from .data.folder import IGNORE
from .data.synthetic import palette


def colorize(mask) -> np.ndarray:
    """Class-id mask (H, W) -> RGB uint8 (H, W, 3) in the VOC colours; 255 (ignore) is white."""
    mask = mask.cpu().numpy() if torch.is_tensor(mask) else np.asarray(mask)
    pal = np.asarray(palette(), dtype=np.uint8).reshape(256, 3).copy()
    pal[IGNORE] = 255
    return pal[mask.astype(np.int64)]


def to_hwc(image) -> np.ndarray:
    """uint8 (3, H, W) tensor or array -> (H, W, 3) array."""
    image = image.cpu().numpy() if torch.is_tensor(image) else np.asarray(image)
    return image.transpose(1, 2, 0) if image.ndim == 3 and image.shape[0] == 3 else image


def overlay(image, mask, alpha: float = 0.5) -> np.ndarray:
    """Blend a coloured mask over an image (background left as it is)."""
    image, colours = to_hwc(image).astype(np.float32), colorize(mask).astype(np.float32)
    mask = mask.cpu().numpy() if torch.is_tensor(mask) else np.asarray(mask)
    blend = np.where((mask > 0)[..., None], (1 - alpha) * image + alpha * colours, image)
    return blend.astype(np.uint8)


def heatmap(image, cam, alpha: float = 0.5) -> np.ndarray:
    """A CAM (H, W) in [0, 1] drawn over an image with the 'jet' colour map."""
    cam = cam.cpu().numpy() if torch.is_tensor(cam) else np.asarray(cam)
    jet = matplotlib.colormaps["jet"](np.clip(cam, 0, 1))[..., :3] * 255
    return ((1 - alpha) * to_hwc(image) + alpha * jet).astype(np.uint8)


def image_grid(rows: Sequence[Sequence[np.ndarray]], row_titles: Sequence[str] = (), *, scale: float = 1.6,
               path: str | Path | None = None, title: str | None = None):
    """Show panels (each an (H, W, 3) array) in a grid, one list per row; save to ``path`` if given."""
    import matplotlib.pyplot as plt

    n_rows, n_cols = len(rows), max(len(r) for r in rows)
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(scale * n_cols, scale * n_rows), squeeze=False)
    for i, row in enumerate(rows):
        for j in range(n_cols):
            ax = axes[i][j]
            ax.axis("off")
            if j < len(row):
                ax.imshow(row[j], interpolation="nearest")
        if i < len(row_titles):
            axes[i][0].set_title(row_titles[i], loc="left", fontsize=9)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=110, bbox_inches="tight")
    return fig


def draw_clicks(image, clicks, radius: int = 1) -> np.ndarray:
    """Mark click points (K, 3) [y, x, class] on an image with their class colours."""
    out = to_hwc(image).copy()
    pal = np.asarray(palette(), dtype=np.uint8).reshape(256, 3)
    h, w = out.shape[:2]
    for y, x, c in np.asarray(clicks):
        y0, y1, x0, x1 = max(0, y - radius), min(h, y + radius + 1), max(0, x - radius), min(w, x + radius + 1)
        out[y0:y1, x0:x1] = 255 if c == 0 else pal[c]
    return out


def plot_curves(histories: dict[str, list[dict]], key: str = "loss", *, path: str | Path | None = None):
    """Training curves: one line per named history (records from :func:`wsss.train.train`)."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3))
    for name, hist in histories.items():
        ax.plot([r["step"] for r in hist], [r[key] for r in hist], label=name)
    ax.set_xlabel("step")
    ax.set_ylabel(key)
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=110, bbox_inches="tight")
    return fig


def legend_patches(class_names: Sequence[str]):
    """Matplotlib legend handles for the class colours."""
    from matplotlib.patches import Patch

    pal = np.asarray(palette(), dtype=np.float32).reshape(256, 3) / 255
    return [Patch(color=pal[i], label=n) for i, n in enumerate(class_names)]


def plot_signal(signal: Sequence[float], *, levels: tuple[str, str] = ("low", "high"), xlabel: str = "iteration t",
                title: str | None = None, path: str | Path | None = None):
    """A two-level signal over iterations (e.g. ASDT's PWM selection Lambda_t) as a step plot."""
    import matplotlib.pyplot as plt

    values = np.asarray(signal, dtype=float)
    fig, ax = plt.subplots(figsize=(7, 1.8))
    ax.step(np.arange(len(values)), values, where="post", lw=1.2)
    ax.fill_between(np.arange(len(values)), values, step="post", alpha=0.25)
    ax.set_yticks([0, 1], levels)
    ax.set_ylim(-0.15, 1.25)
    ax.set_xlim(0, len(values))
    ax.set_xlabel(xlabel)
    return _finish(fig, ax, title, path, fontsize=10)


def _finish(fig, ax, title: str | None, path, *, fontsize: int = 11):
    """Title, tight layout, and a PNG at ``path`` when one is given; returns the figure."""
    if title:
        ax.set_title(title, fontsize=fontsize)
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=110, bbox_inches="tight")
    return fig


def block_diagram(boxes: dict[str, tuple[float, float, str]], arrows: Sequence[tuple[str, str, str]], *,
                  size: tuple[float, float] = (9, 4), title: str | None = None, path: str | Path | None = None):
    """A method's architecture as labelled boxes and arrows.

    boxes: name -> (x, y, text) with x, y the box centre in [0, 1]; arrows: (from, to, label) by box
    name, drawn from edge to edge. Meant for the notebooks' architecture figures.
    """
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=size)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.axis("off")
    style = dict(boxstyle="round,pad=0.4", fc="#eef3fb", ec="#3b5b92")
    for name, (x, y, text) in boxes.items():
        ax.text(x, y, text, ha="center", va="center", fontsize=9, bbox=style)
    for a, b, label in arrows:
        if a not in boxes or b not in boxes:
            raise KeyError(f"arrow {a!r} -> {b!r} names a box that is not drawn; boxes: {list(boxes)}")
        (xa, ya, _), (xb, yb, _) = boxes[a], boxes[b]
        ax.annotate("", xy=(xb, yb), xytext=(xa, ya),
                    arrowprops=dict(arrowstyle="->", color="#444", shrinkA=28, shrinkB=28, lw=1.1))
        if label:
            ax.text((xa + xb) / 2, (ya + yb) / 2 + 0.03, label, ha="center", fontsize=8, color="#7a2e2e")
    return _finish(fig, ax, title, path)


def plot_sweep(points: dict[str, Sequence[tuple[float, float]]], *, xlabel: str, ylabel: str = "val mIoU (%)",
               ax=None, title: str | None = None):
    """Lines of (x, y) points, one per name (ours, the paper's, ...), for a hyper-parameter sweep."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(4, 3))
    for name, xy in points.items():
        xy = [(x, y) for x, y in xy if y is not None]
        if xy:
            ax.plot(*zip(*xy), marker="o", label=name)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title, fontsize=10)
    return ax
