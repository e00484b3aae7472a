"""Pictures for the notebooks: palettes, mask overlays, image grids, CAM heat maps, training curves."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import matplotlib

import numpy as np
import torch

from .data.folder import IGNORE
from .data.synthetic import palette
from .records import mean_std


# Display colours of classes 1-20, bright enough to read on the black background: 1-6 are the synthetic
# benchmark's mark colours (its class card: class k carries mark colour k), 7-20 a bright qualitative set.
BRIGHT = [(255, 20, 20), (20, 220, 255), (255, 230, 0), (255, 0, 200), (0, 255, 60), (255, 120, 0),
          (200, 110, 255), (140, 160, 255), (190, 240, 60), (250, 170, 212), (0, 190, 170), (220, 190, 255),
          (210, 150, 90), (255, 250, 200), (170, 255, 195), (190, 190, 100), (255, 215, 180), (90, 160, 255),
          (180, 180, 180), (255, 255, 120)]


def display_palette() -> np.ndarray:
    """(256, 3) uint8 colours for pictures of class-id masks: background 0 black, classes 1-20 :data:`BRIGHT`
    (the VOC palette's navy and dark red vanish on black), classes above 20 the VOC palette brightened,
    ignore (255) white. Masks on disk keep the VOC palette (:func:`wsss.data.synthetic.palette`)."""
    pal = np.asarray(palette(), dtype=np.uint8).reshape(256, 3).copy()
    pal[1:len(BRIGHT) + 1] = BRIGHT
    pal[len(BRIGHT) + 1:IGNORE] = np.maximum(pal[len(BRIGHT) + 1:IGNORE], 70)
    pal[0] = 0
    pal[IGNORE] = 255
    return pal


def colorize(mask) -> np.ndarray:
    """Class-id mask (H, W) -> RGB uint8 (H, W, 3) in the display colours (:func:`display_palette`); 255 is white."""
    mask = mask.cpu().numpy() if torch.is_tensor(mask) else np.asarray(mask)
    return display_palette()[mask.astype(np.int64)]


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
               path: str | Path | None = None, title: str | None = None,
               class_names: Sequence[str] | None = None, legend_fontsize: float = 9,
               row_colorbars: Sequence[tuple | None] = ()):
    """Show panels (each an (H, W, 3) array) in a grid, one list per row; save to ``path`` if given.

    ``class_names``: when given, one legend of the class colours (``class_names[i]`` in colour ``i``, plus
    "ignore (255)" in white) is drawn below the grid, in room added to the figure for it (so it never covers
    a panel and is part of the saved file).
    ``row_colorbars``: per row, None or (cmap name, vmin, vmax, label): a colour bar at the row's right end
    for rows whose panels are heat maps already turned into RGB with that colour map.
    """
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
    for i, bar in enumerate(row_colorbars):
        if bar is not None:
            from matplotlib.cm import ScalarMappable
            from matplotlib.colors import Normalize

            cmap, vmin, vmax, label = bar
            cax = axes[i][-1].inset_axes([1.05, 0.05, 0.06, 0.9])           # beside the last panel: no panel shrinks
            cb = fig.colorbar(ScalarMappable(Normalize(vmin, vmax), cmap), cax=cax)
            cb.set_label(label, fontsize=8)
            cb.ax.tick_params(labelsize=7)
    if class_names is not None:
        _class_legend(fig, class_names, fontsize=legend_fontsize)
    if path is not None:
        fig.savefig(path, dpi=110, bbox_inches="tight")
    return fig


def _class_legend(fig, class_names: Sequence[str], *, fontsize: float = 9):
    """A legend of the class colours (and the ignore colour) in a strip added below a laid-out figure's panels."""
    from matplotlib.patches import Patch

    ignore_colour = colorize(np.array([[IGNORE]]))[0, 0] / 255
    handles = [*legend_patches(class_names), Patch(facecolor=ignore_colour, edgecolor="0.35", label=f"ignore ({IGNORE})")]
    width_px = fig.get_figwidth() * fig.dpi

    def make(ncol):
        return fig.legend(handles=handles, loc="lower center", bbox_to_anchor=(0.5, 0.0), ncol=ncol,
                          fontsize=max(fontsize, 8), frameon=False, handlelength=1.4, columnspacing=1.2,
                          borderaxespad=0.3)

    probe = make(1)   # one column: its width is about the widest entry's
    entry = probe.get_window_extent().width
    probe.remove()
    ncol = int(max(1, min(len(handles), width_px * 0.98 // max(entry, 1.0))))
    legend = make(ncol)
    while ncol > 1 and legend.get_window_extent().width > width_px * 0.98:
        legend.remove()
        ncol -= 1
        legend = make(ncol)
    # a strip added below the panels, which keep their size and spacing in inches
    strip = legend.get_window_extent().height / fig.dpi + 0.1   # inches, with a small gap above the legend
    w, h = fig.get_size_inches()
    sp = fig.subplotpars
    fig.set_size_inches(w, h + strip)
    fig.subplots_adjust(bottom=(sp.bottom * h + strip) / (h + strip), top=(sp.top * h + strip) / (h + strip))
    return legend


def class_card_figure(card: Sequence[dict], *, path: str | Path | None = None, scale: float = 1.7):
    """The benchmark's class card (:func:`wsss.data.synthetic.class_card`) as one row of panels: each class's
    picture, titled with its id and name, its display colour (= its mark colour) as a swatch, its own body
    shape and preferred scene. Returns the figure."""
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    if not card:
        raise ValueError("class_card_figure: the card is empty")
    pal = display_palette()
    fig, axes = plt.subplots(1, len(card), figsize=(scale * len(card), scale * 1.45), squeeze=False)
    for ax, entry in zip(axes[0], card):
        ax.imshow(entry["image"], interpolation="nearest")
        ax.axis("off")
        h = entry["image"].shape[0]
        ax.add_patch(Rectangle((1, 1), 0.16 * h, 0.16 * h, facecolor=pal[entry["class"]] / 255, edgecolor="black", lw=1))
        ax.set_title(f"{entry['class']}: {entry['name']}", fontsize=10, color="black")
        ax.text(0.5, -0.06, f"own body: {entry['shape']} ({100 * entry['own_shape_share']:.0f}%)\n"
                f"preferred scene: {entry['scene']}", transform=ax.transAxes, ha="center", va="top", fontsize=8)
    other = 100 * (1 - card[0]["own_shape_share"])
    fig.suptitle(f"The class is its mark's colour (the swatch, top left), not the body: {other:.0f}% of bodies take another "
                 f"class's shape; {100 * card[0]['scene_share']:.0f}% of images show the first object's preferred scene",
                 fontsize=9, y=0.99)
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=110, bbox_inches="tight")
    return fig


def heat(ax, values, *, title: str = "", cmap: str = "viridis", vmin: float | None = None, vmax: float | None = None,
         label: str = "", centered: bool = False):
    """Draw a map of numbers (H, W) on ``ax`` with its colour bar (a heat map without a scale reads as
    decoration). ``centered``: a diverging map with 0 in the middle (vmin = -vmax = the largest |value|
    unless given). Returns the image artist."""
    import matplotlib.pyplot as plt

    values = values.detach().cpu().numpy() if torch.is_tensor(values) else np.asarray(values)
    if values.ndim != 2 or values.size == 0:
        raise ValueError(f"heat: values must be a non-empty 2-D map, got shape {values.shape}")
    if centered and vmin is None and vmax is None:
        finite = np.abs(values[np.isfinite(values)])
        vmax = float(finite.max()) if finite.size and finite.max() > 0 else 1.0
        vmin = -vmax
    im = ax.imshow(values, cmap=cmap, vmin=vmin, vmax=vmax, interpolation="nearest")
    bar = plt.colorbar(im, ax=ax, fraction=0.046, pad=0.03)
    bar.ax.tick_params(labelsize=7)
    if label:
        bar.set_label(label, fontsize=8)
    if title:
        ax.set_title(title, fontsize=9)
    ax.axis("off")
    return im


def draw_clicks(image, clicks, radius: int | None = None) -> np.ndarray:
    """Mark click points (K, 3) [y, x, class] on an image: a disk in the class's display colour (white for
    background) with a black rim, so a click reads on any colour. ``radius`` in pixels; None: about 1/32
    of the image's shorter side, at least 2 (a one-pixel click is invisible in a notebook)."""
    out = to_hwc(image).copy()
    pal = display_palette()
    h, w = out.shape[:2]
    r = max(2, round(min(h, w) / 32)) if radius is None else int(radius)
    if r < 0:
        raise ValueError(f"draw_clicks: radius must be >= 0, got {radius}")
    yy, xx = np.mgrid[-r - 1:r + 2, -r - 1:r + 2]
    dist2 = yy ** 2 + xx ** 2
    rim, disk = dist2 <= (r + 1) ** 2, dist2 <= r ** 2
    for y, x, c in np.asarray(clicks).reshape(-1, 3):
        colour = 255 if c == 0 else pal[c]
        for mask, value in ((rim, 0), (disk, colour)):
            ys, xs = yy[mask] + y, xx[mask] + x
            keep = (ys >= 0) & (ys < h) & (xs >= 0) & (xs < w)
            out[ys[keep], xs[keep]] = value
    return out


def plot_curves(histories: dict[str, list[dict]], key: str = "loss", *, path: str | Path | None = None,
                xlabel: str = "iteration", ylabel: str | None = None, title: str | None = None):
    """Training curves: one line per named history (records from :func:`wsss.train.train`).

    The x axis is each record's ``step``, labelled ``xlabel``; the y axis is ``key``, labelled ``ylabel``
    (default: ``key``).
    """
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3))
    for name, hist in histories.items():
        ax.plot([r["step"] for r in hist], [r[key] for r in hist], label=name)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(key if ylabel is None else ylabel)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=9)
    ax.grid(alpha=0.3)
    return _finish(fig, ax, title, path)


def legend_patches(class_names: Sequence[str]):
    """Matplotlib legend handles for the class colours."""
    from matplotlib.patches import Patch

    pal = display_palette().astype(np.float32) / 255
    return [Patch(facecolor=pal[i], edgecolor="0.35", label=n) for i, n in enumerate(class_names)]


def plot_signal(signal: Sequence[float], *, levels: tuple[str, str] = ("low", "high"), xlabel: str = "iteration t",
                title: str | None = None, path: str | Path | None = None, ylabel: str = "level",
                shade: tuple[float, float, str] | None = None):
    """A two-level signal over iterations (e.g. ASDT's PWM selection Lambda_t) as a step plot.

    ``shade=(start, end, label)`` greys the x span [start, end) (e.g. a warm-up) and names it in a legend.
    """
    import matplotlib.pyplot as plt

    values = np.asarray(signal, dtype=float)
    fig, ax = plt.subplots(figsize=(8, 2.2))
    ax.step(np.arange(len(values)), values, where="post", lw=1.2)
    ax.fill_between(np.arange(len(values)), values, step="post", alpha=0.25)
    ax.set_yticks([0, 1], levels)
    ax.set_ylim(-0.15, 1.25)
    ax.set_xlim(0, len(values))
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if shade is not None:
        start, end, label = shade
        ax.axvspan(start, end, facecolor="0.6", alpha=0.3, edgecolor="none", zorder=0, label=label)
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=9, frameon=False, borderaxespad=0)
    return _finish(fig, ax, title, path, fontsize=10)


def _wrap(title: str, width_in: float, fontsize: float) -> str:
    """Break a long plain-text title into lines about as wide as ``width_in`` inches (maths is left whole)."""
    import textwrap

    if "$" in title or "\n" in title:
        return title
    chars = max(20, int(width_in * 72 / (0.55 * fontsize)))
    return textwrap.fill(title, chars) if len(title) > chars else title


def _finish(fig, ax, title: str | None, path, *, fontsize: int = 11):
    """Title, tight layout, and a PNG at ``path`` when one is given; returns the figure."""
    if title:
        ax.set_title(_wrap(title, fig.get_figwidth(), fontsize), fontsize=fontsize)
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=110, bbox_inches="tight")
    return fig


def block_diagram(boxes: dict[str, tuple[float, float, str]], arrows: Sequence[tuple[str, str, str]], *,
                  size: tuple[float, float] = (11, 5.5), title: str | None = None, path: str | Path | None = None,
                  fontsize: float = 11, label_fontsize: float = 10):
    """A method's architecture as labelled boxes and arrows.

    boxes: name -> (x, y, text) with x, y the box centre in [0, 1]; arrows: (from, to, label) by box
    name, drawn from box edge to box edge. Texts and labels may hold maths (``"$B^{ct}$"``, matplotlib
    mathtext). Each label sits beside its arrow's midpoint (on a white background), moved along the arrow
    or to its other side when it would cover a box, another label or another arrow. ``size``: figure
    size in inches; ``fontsize``/``label_fontsize``: box text and arrow-label sizes in points.
    """
    import matplotlib.pyplot as plt
    from matplotlib.transforms import Bbox

    for a, b, _ in arrows:
        if a not in boxes or b not in boxes:
            raise KeyError(f"arrow {a!r} -> {b!r} names a box that is not drawn; boxes: {list(boxes)}")
    fig, ax = plt.subplots(figsize=size)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.axis("off")
    style = dict(boxstyle="round,pad=0.4", fc="#eef3fb", ec="#3b5b92", lw=1.2)
    texts = {name: ax.text(x, y, text, ha="center", va="center", fontsize=fontsize, bbox=style, zorder=2)
             for name, (x, y, text) in boxes.items()}
    if title:
        ax.set_title(_wrap(title, size[0], 12), fontsize=12)
    fig.tight_layout()
    fig.draw_without_rendering()   # lays the boxes out, so their sizes on the page are known
    box_px = {name: t.get_bbox_patch().get_window_extent() for name, t in texts.items()}
    to_px = ax.transData.transform
    pt = fig.dpi / 72   # pixels per point

    # the visible part of each arrow, from the edge of its first box to the edge of its second, in pixels
    segments = []
    for a, b, label in arrows:
        p, q = to_px(boxes[a][:2]), to_px(boxes[b][:2])
        t0, t1 = _leave(box_px[a], p, q), 1 - _leave(box_px[b], q, p)
        if t0 >= t1:   # overlapping boxes: fall back to the centres' midpoint
            t0 = t1 = 0.5
        segments.append((p + t0 * (q - p), p + t1 * (q - p)))
    for a, b, _ in arrows:
        ax.annotate("", xy=boxes[b][:2], xytext=boxes[a][:2], zorder=3,
                    arrowprops=dict(arrowstyle="-|>", color="#444", lw=1.3, mutation_scale=14,
                                    patchA=texts[a].get_bbox_patch(), patchB=texts[b].get_bbox_patch(),
                                    shrinkA=2, shrinkB=2))

    placed: list = []
    obstacles = [bb.padded(5 * pt) for bb in box_px.values()]   # keep a little air around boxes
    pad = 0.3   # label background padding, in units of the font size
    for k, ((a, b, label), (s0, s1)) in enumerate(zip(arrows, segments)):
        if not label:
            continue
        txt = ax.text(0, 0, label, ha="center", va="center", fontsize=label_fontsize, color="#7a2e2e", zorder=4,
                      bbox=dict(boxstyle=f"round,pad={pad}", fc="white", ec="#d9c7c7", lw=0.6, alpha=0.95))
        ext = txt.get_window_extent()
        half = np.array([ext.width, ext.height]) / 2 + pad * label_fontsize * pt
        d = s1 - s0
        norm = np.hypot(*d)
        normal = np.array([-d[1], d[0]]) / norm if norm > 0 else np.array([0.0, 1.0])
        if normal[1] < -1e-6 or (abs(normal[1]) <= 1e-6 and normal[0] < 0):
            normal = -normal   # the first side tried is above (or right of) the arrow
        gap = 3 * pt
        others = [seg for j, seg in enumerate(segments) if j != k]
        best = None
        for frac in (0.5, 0.38, 0.62, 0.26, 0.74):
            for side in (1, -1):
                n = side * normal
                centre = s0 + frac * d + n * (abs(n[0]) * half[0] + abs(n[1]) * half[1] + gap)
                rect = Bbox.from_extents(*(centre - half), *(centre + half))
                cost = (sum(_overlap(rect, o) for o in obstacles) * 100 + sum(_overlap(rect, o) for o in placed) * 10
                        + sum(_crosses(rect, *seg) for seg in others) * 1e3)
                if best is None or cost < best[0]:
                    best = (cost, centre, rect)
                if cost == 0:
                    break
            if best[0] == 0:
                break
        _, centre, rect = best
        txt.set_position(ax.transData.inverted().transform(centre))
        placed.append(rect)
    if path is not None:
        fig.savefig(path, dpi=110, bbox_inches="tight")
    return fig


def _leave(box, p, q) -> float:
    """The fraction of the way from ``p`` (inside ``box``) to ``q`` at which the segment leaves the box."""
    t = 1.0
    for i, (lo, hi) in enumerate(((box.x0, box.x1), (box.y0, box.y1))):
        step = q[i] - p[i]
        if step > 0:
            t = min(t, (hi - p[i]) / step)
        elif step < 0:
            t = min(t, (lo - p[i]) / step)
    return float(np.clip(t, 0.0, 1.0))


def _overlap(r, s) -> float:
    """Area (pixels^2) shared by two boxes."""
    return max(0.0, min(r.x1, s.x1) - max(r.x0, s.x0)) * max(0.0, min(r.y1, s.y1) - max(r.y0, s.y0))


def _crosses(rect, p, q) -> bool:
    """Whether the segment p -> q passes through ``rect``."""
    ts = np.linspace(0, 1, 64)[:, None]
    pts = p + ts * (q - p)
    return bool(np.any((pts[:, 0] > rect.x0) & (pts[:, 0] < rect.x1) & (pts[:, 1] > rect.y0) & (pts[:, 1] < rect.y1)))


def plot_sweep(points: dict[str, Sequence[tuple[float, float | Sequence[float] | None]]], *, xlabel: str,
               ylabel: str = "val mIoU (%)", ax=None, title: str | None = None,
               band: tuple[float, float, str] | None = None, logx: bool = False):
    """Lines of (x, y) points, one per name (ours, the paper's, ...), for a hyper-parameter sweep.

    y is a number, None (the point is skipped) or a list of per-seed values: a series with per-seed
    lists is drawn as its mean with error bars (one standard deviation over the seeds) and the seeds'
    own values as small faint dots. ``band``: (low, high, label), a grey horizontal band, e.g. the
    default point +- twice the seeds' std (a point inside it differs from the default by less than a
    verdict can decide). ``logx``: a log x axis, ticks at the swept values.
    """
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(4, 3))
    if band is not None:
        low, high, band_label = band
        if not low <= high:
            raise ValueError(f"plot_sweep: band must be (low, high, label) with low <= high, got {band!r}")
        ax.axhspan(low, high, color="grey", alpha=0.18, lw=0, label=band_label)
    for name, xy in points.items():
        if not any(_is_seeds(y) for _, y in xy):
            xy = [(x, y) for x, y in xy if y is not None]
            if xy:
                ax.plot(*zip(*xy), marker="o", label=name)
            continue
        xs, means, stds, seeds = [], [], [], []
        for x, y in xy:
            vals = [float(v) for v in (y if _is_seeds(y) else [y]) if v is not None]
            if vals:
                xs.append(x)
                mean, std = mean_std(vals)
                means.append(mean)
                stds.append(std)
                seeds.append(vals)
        if not xs:
            continue
        counts = sorted({len(v) for v in seeds})
        if counts == [1]:
            label = name
        elif len(counts) == 1:
            label = f"{name} (mean ± std, {counts[0]} seeds)"
        else:                                   # points with different seed counts: say which ran once
            several = [x for x, v in zip(xs, seeds) if len(v) > 1]
            label = f"{name} (mean ± std over the seeds at {', '.join(f'{x:g}' for x in several)}; 1 run elsewhere)"
        bars = ax.errorbar(xs, means, yerr=stds, marker="o", capsize=3, elinewidth=1, label=label)
        colour = bars.lines[0].get_color()
        ax.scatter([x for x, v in zip(xs, seeds) for _ in v], [u for v in seeds for u in v], s=12, alpha=0.45,
                   color=colour, edgecolors="none", zorder=3)
    if logx:
        from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator

        bad = sorted({x for xy in points.values() for x, y in xy if x is not None and y is not None and x <= 0})
        if bad:
            raise ValueError(f"plot_sweep: logx needs x > 0, got {bad} (they would vanish from a log axis)")
        xs_all = sorted({x for xy in points.values() for x, _ in xy if x is not None and x > 0})
        ax.set_xscale("log")
        ax.xaxis.set_major_locator(FixedLocator(xs_all))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:.3g}"))
        ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8)
    if title:
        ax.set_title(title, fontsize=10)
    return ax


def plot_room(rows: dict[str, Sequence[float] | float], *, floor: float, ceiling: float,
              paper: dict[str, float | None] | None = None, ax=None, title: str | None = None,
              ylabel: str = "val mIoU (%)", path: str | Path | None = None):
    """A notebook's central comparison inside the room it is judged in (percent): for each row its seeds
    as dots, their mean +- std as a bar, the paper's number as a hollow diamond; the floor (every pixel
    background) and the ceiling (the same network on full masks) as lines, and the lower half of the
    room shaded (a baseline there makes the claim "not testable here"); a ceiling not above the floor
    (a tiny run) is said on the plot. Returns the axes."""
    import matplotlib.pyplot as plt

    if not rows:
        raise ValueError("plot_room: no row to draw")
    if ax is None:
        _, ax = plt.subplots(figsize=(1.5 + 1.3 * len(rows), 3.4))
    paper = paper or {}
    if floor < ceiling:
        middle = floor + 0.5 * (ceiling - floor)
        ax.axhspan(floor, middle, color="0.85", lw=0, zorder=0, label="lower half of the room (a baseline here: not testable)")
    else:                                # a tiny run: the network on full masks is not above all-background
        ax.text(0.5, 0.97, "no room: the ceiling is not above the floor", transform=ax.transAxes, ha="center",
                va="top", fontsize=8, color="tab:red")
    ax.axhline(floor, color="0.35", ls="--", lw=1, label=f"floor {floor:.1f} (all background)")
    ax.axhline(ceiling, color="0.1", ls="--", lw=1, label=f"ceiling {ceiling:.1f} (full masks)")
    rng = np.random.default_rng(0)
    drawn_paper = False
    for i, (name, values) in enumerate(rows.items()):
        vals = [float(v) for v in (values if _is_seeds(values) else [values]) if v is not None]
        if not vals:
            continue
        mean, std = mean_std(vals)
        ax.scatter(i + rng.uniform(-0.12, 0.12, len(vals)), vals, s=16, color="tab:blue", alpha=0.6, zorder=3,
                   label="a seed" if i == 0 else None)
        ax.errorbar([i + 0.25], [mean], yerr=[std] if len(vals) > 1 else None, fmt="_", ms=14, mew=2, capsize=4,
                    color="tab:blue", zorder=4, label="mean +- std over the seeds" if i == 0 else None)
        if paper.get(name) is not None:
            ax.scatter([i], [paper[name]], marker="D", s=40, facecolors="none", edgecolors="tab:red", lw=1.5, zorder=5,
                       label=None if drawn_paper else "the paper (its data)")
            drawn_paper = True
    ax.set_xticks(range(len(rows)))
    ax.set_xticklabels([_wrap(n, 1.3, 8) for n in rows], fontsize=8)
    ax.set_xlim(-0.6, len(rows) - 0.4)
    ax.set_ylabel(ylabel)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)
    if title:
        ax.set_title(title, fontsize=10)
    if path is not None:
        ax.figure.savefig(path, dpi=110, bbox_inches="tight")
    return ax


def _is_seeds(y) -> bool:
    """A list (tuple, array) of per-seed values rather than one number or None."""
    return isinstance(y, (list, tuple)) or (isinstance(y, np.ndarray) or torch.is_tensor(y)) and y.ndim > 0
