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
