"""The notebooks' figure helpers (wsss.viz): legends, error bars, axis labels, readable diagrams.

Set WSSS_VIZ_DIR to a folder to keep one PNG of each kind of figure there (to look at them).
"""
import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from matplotlib.collections import PathCollection  # noqa: E402
from matplotlib.container import ErrorbarContainer  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402
from matplotlib.text import Annotation  # noqa: E402

from wsss import viz  # noqa: E402

NAMES = ["background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
         "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor"]

# the ASDT notebook's architecture, with its maths typeset
ASDT_BOXES = {
    "img": (0.07, 0.5, "image"), "bb": (0.24, 0.5, "shared\nbackbone $F$"),
    "ct": (0.46, 0.84, "class-teacher $f_{ct}$\nGAP + 1x1 classifier"),
    "st": (0.46, 0.5, "seg-teacher $f_{st}$\n2 dilated 3x3 convs"),
    "s": (0.46, 0.16, "student $f_s$\n2 dilated 3x3 convs"),
    "crf": (0.72, 0.84, "CAM -> 2 dense CRFs\n$[B^{ct}, R^{ct}]$ (RRM)"),
    "bst": (0.72, 0.5, "CRF($P^{st}$) -> $B^{st}$"), "pwm": (0.92, 0.33, "PWM switch\n$\\Lambda_t(T, \\tau)$"),
    "fuse": (0.72, 0.16, "$P = \\max(P^{st}, P^s)$\n+ CRF (Eq. 1)")}
ASDT_ARROWS = [("img", "bb", ""), ("bb", "ct", ""), ("bb", "st", ""), ("bb", "s", ""), ("ct", "crf", "CAMs"),
               ("crf", "st", "$L_d^{ct}$ (Eq. 4)"), ("st", "bst", "$P^{st}$"), ("crf", "pwm", "low"),
               ("bst", "pwm", "high"), ("pwm", "s", "$L_{ad}$ (Eq. 3)"), ("s", "fuse", "$P^s$"), ("st", "fuse", "")]


@pytest.fixture
def out(tmp_path):
    keep = os.environ.get("WSSS_VIZ_DIR")
    folder = Path(keep) if keep else tmp_path
    folder.mkdir(parents=True, exist_ok=True)
    yield folder
    plt.close("all")


def _masks(n=4, size=24, classes=21):
    rng = np.random.default_rng(0)
    masks = []
    for _ in range(n):
        m = np.zeros((size, size), np.uint8)
        m[4:14, 5:15] = rng.integers(1, classes)
        m[15:22, 12:22] = rng.integers(1, classes)
        m[14, :] = 255
        masks.append(m)
    return masks


def _labelled(ax):
    return bool(ax.get_xlabel().strip()) and bool(ax.get_ylabel().strip())


def test_image_grid_class_legend_below_panels(out):
    masks = _masks()
    rows = [[np.full((24, 24, 3), 128, np.uint8)] * 4, [viz.colorize(m) for m in masks]]
    fig = viz.image_grid(rows, ["images", "masks"], class_names=NAMES, title="masks", path=out / "image_grid.png")
    assert len(fig.legends) == 1
    legend = fig.legends[0]
    assert [t.get_text() for t in legend.get_texts()] == NAMES + ["ignore (255)"]
    assert all(t.get_fontsize() >= 8 for t in legend.get_texts())
    fig.draw_without_rendering()
    box = legend.get_window_extent()
    assert box.y1 <= min(ax.get_window_extent().y0 for ax in fig.axes) + 1   # below every panel
    assert box.x0 >= -1 and box.x1 <= fig.bbox.x1 + 1                          # not wider than the figure
    # the saved file holds the legend: taller than the same grid saved without one
    plain = viz.image_grid(rows, ["images", "masks"], title="masks", path=out / "image_grid_plain.png")
    assert plain.legends == []
    h_legend = plt.imread(out / "image_grid.png").shape[0]
    h_plain = plt.imread(out / "image_grid_plain.png").shape[0]
    assert h_legend > h_plain + 0.2 * 110


def test_plot_sweep_per_seed_values_draw_error_bars_and_seeds(out):
    points = {"ours": [(100, [61.0, 63.0, 62.0]), (150, None), (250, [60.0, 64.0]), (300, 59.0)],
              "paper (text)": [(150, 64.03), (250, 63.08), (300, None)]}
    fig, axes = plt.subplots(1, 2, figsize=(9, 3))
    ax = viz.plot_sweep(points, xlabel="period T", ax=axes[0])
    viz.plot_sweep({"ours": [(1, 50.0), (2, None), (3, 52.0)]}, xlabel="ratio tau", ax=axes[1])
    fig.tight_layout()
    fig.savefig(out / "plot_sweep.png", dpi=110, bbox_inches="tight")
    bars = [c for c in ax.containers if isinstance(c, ErrorbarContainer)]
    assert len(bars) == 1
    line = bars[0].lines[0]
    assert list(line.get_xdata()) == [100, 250, 300]
    assert np.allclose(line.get_ydata(), [62.0, 62.0, 59.0])
    segs = bars[0].lines[2][0].get_segments()   # the vertical error bars: mean -+ std (over seeds, ddof=1)
    assert np.allclose([s[1][1] - s[0][1] for s in segs], [2.0, 2 * np.std([60.0, 64.0], ddof=1), 0.0])
    dots = [c for c in ax.collections if isinstance(c, PathCollection)]
    seeds = np.concatenate([c.get_offsets() for c in dots])
    assert sorted(map(tuple, seeds.tolist())) == sorted([(100, 61.0), (100, 63.0), (100, 62.0), (250, 60.0),
                                                        (250, 64.0), (300, 59.0)])
    assert all(c.get_alpha() is not None and c.get_alpha() < 1 for c in dots)
    labels = ax.get_legend_handles_labels()[1]
    # points with 3, 2 and 1 values: the legend says which points are seeds' means and which ran once
    assert set(labels) == {"paper (text)", "ours (mean ± std over the seeds at 100, 250; 1 run elsewhere)"}
    assert all(_labelled(a) for a in axes)
    assert [len(ln.get_xdata()) for ln in axes[1].lines] == [2]   # plain numbers: one line, as before


def test_plot_curves_labels_both_axes(out):
    hist = [{"step": s, "loss": 1 / (s + 1)} for s in range(0, 50, 5)]
    fig = viz.plot_curves({"a": hist, "b": hist[::2]}, path=out / "plot_curves.png")
    ax = fig.axes[0]
    assert ax.get_xlabel() == "iteration" and ax.get_ylabel() == "loss"
    fig = viz.plot_curves({"a": hist}, "loss", ylabel="training loss", xlabel="step")
    assert fig.axes[0].get_xlabel() == "step" and fig.axes[0].get_ylabel() == "training loss"


def _plain(text):
    """The notebook's older labels, without maths."""
    for a, b in (("$", ""), ("{", ""), ("}", ""), ("\\max", "max"), ("\\Lambda", "Lambda"), ("\\tau", "tau")):
        text = text.replace(a, b)
    return text


@pytest.mark.parametrize("maths", [True, False], ids=["maths", "plain"])
def test_block_diagram_labels_readable(out, maths):
    boxes = ASDT_BOXES if maths else {k: (x, y, _plain(t)) for k, (x, y, t) in ASDT_BOXES.items()}
    arrows = ASDT_ARROWS if maths else [(a, b, _plain(lab)) for a, b, lab in ASDT_ARROWS]
    name = "block_diagram.png" if maths else "block_diagram_plain.png"
    fig = viz.block_diagram(boxes, arrows, title="ASDT: two teachers, one student, a shared backbone",
                            path=out / name)
    assert (out / name).stat().st_size > 0
    w, h = fig.get_size_inches()
    assert w >= 11 and h >= 5.5
    ax = fig.axes[0]
    box_texts = {t for _, _, t in boxes.values()}
    texts = [t for t in ax.texts if not isinstance(t, Annotation)]
    box_t = [t for t in texts if t.get_text() in box_texts]
    labels = [t for t in texts if t.get_text() not in box_texts]
    assert len(box_t) == len(ASDT_BOXES)
    assert sorted(t.get_text() for t in labels) == sorted(lab for _, _, lab in arrows if lab)
    if maths:   # the maths is passed on as written (no escaped "$")
        assert "$[B^{ct}, R^{ct}]$" in "".join(t.get_text() for t in box_t)
        assert "$L_d^{ct}$ (Eq. 4)" in [t.get_text() for t in labels]
    assert all(t.get_fontsize() >= 10 for t in box_t) and all(t.get_fontsize() >= 9 for t in labels)
    assert all(t.get_bbox_patch() is not None for t in labels)
    # arrows run from box edge to box edge
    drawn = [c for c in ax.get_children() if isinstance(c, Annotation)]
    assert len(drawn) == len(ASDT_ARROWS)
    assert all(a.arrow_patch.patchA is not None and a.arrow_patch.patchB is not None for a in drawn)
    # no label on a box, no two labels on each other
    fig.draw_without_rendering()
    box_ext = [t.get_bbox_patch().get_window_extent() for t in box_t]
    lab_ext = [t.get_bbox_patch().get_window_extent() for t in labels]
    for i, lab in enumerate(lab_ext):
        assert not any(lab.overlaps(b) for b in box_ext), labels[i].get_text()
        assert not any(lab.overlaps(o) for o in lab_ext[i + 1:]), labels[i].get_text()


def test_block_diagram_small_case_and_size(out):
    fig = viz.block_diagram({"a": (0.2, 0.5, "A"), "b": (0.8, 0.5, "B")}, [("a", "b", "$B^{ct}$")],
                            size=(12, 6), path=out / "block_small.png")
    assert tuple(fig.get_size_inches()) == (12, 6)
    label = [t for t in fig.axes[0].texts if t.get_text() == "$B^{ct}$"][0]
    fig.draw_without_rendering()
    a, b = (t.get_bbox_patch().get_window_extent() for t in fig.axes[0].texts[:2])
    ext = label.get_bbox_patch().get_window_extent()
    assert a.x1 < ext.x0 < ext.x1 < b.x0     # between the boxes, ...
    y = fig.axes[0].transData.transform((0.5, 0.5))[1]
    assert ext.y0 > y                       # ... beside (above) the horizontal arrow, not on it
    with pytest.raises(KeyError, match="'c'"):
        viz.block_diagram({"a": (0.2, 0.5, "A")}, [("a", "c", "")])


def test_plot_signal_shade(out):
    wave = [t >= 20 and (t // 10) % 2 == 0 for t in range(80)]
    fig = viz.plot_signal(wave, levels=("class-teacher", "seg-teacher"), shade=(0, 20, "warm-up"),
                          title="Lambda_t for T=10, tau=5: T_h=5, T_l=5; the seg-teacher is silent for the first "
                                "20 iterations (warm-up)", path=out / "plot_signal.png")
    ax = fig.axes[0]
    spans = [p for p in ax.patches if isinstance(p, Rectangle) and p.get_label() == "warm-up"]
    assert len(spans) == 1
    assert spans[0].get_x() == pytest.approx(0) and spans[0].get_width() == pytest.approx(20)
    assert "warm-up" in [t.get_text() for t in ax.get_legend().get_texts()]
    assert _labelled(ax)
    plain = viz.plot_signal([0, 0, 1, 1, 0], levels=("ct", "st"))
    assert plain.axes[0].get_legend() is None and _labelled(plain.axes[0])


def test_image_grid_row_colorbars_add_one_bar_beside_the_row_without_shrinking_panels():
    import matplotlib
    matplotlib.use("Agg")
    import numpy as np
    from wsss import viz

    panels = [[np.zeros((8, 8, 3), np.uint8)] * 3, [np.full((8, 8, 3), 100, np.uint8)] * 3]
    plain = viz.image_grid(panels, ["a", "b"])
    barred = viz.image_grid(panels, ["a", "b"], row_colorbars=[None, ("coolwarm", -1, 1, "confidence")])
    assert len(barred.axes) == len(plain.axes)                       # the bar is an inset of the row's last panel
    bars = barred.axes[5].child_axes
    assert len(bars) == 1 and bars[0].get_ylabel() == "confidence" and not barred.axes[2].child_axes
    sizes = lambda fig: [tuple(round(v, 4) for v in ax.get_position().bounds[2:]) for ax in fig.axes[:6]]  # noqa: E731
    assert sizes(barred) == sizes(plain)


def test_display_colours_read_on_a_black_background_and_masks_on_disk_keep_voc():
    import numpy as np
    from wsss import viz
    from wsss.data.synthetic import palette

    pal = viz.display_palette()
    assert tuple(pal[0]) == (0, 0, 0) and tuple(pal[255]) == (255, 255, 255)
    luminance = 0.299 * pal[1:21, 0] + 0.587 * pal[1:21, 1] + 0.114 * pal[1:21, 2]
    assert luminance.min() > 60                                    # VOC's class 1 (128, 0, 0) has 38, navy 15
    assert len({tuple(c) for c in pal[:21]}) == 21                 # every class its own colour
    assert palette()[3:6] == [128, 0, 0]                            # the PNG palette stays VOC's
    assert (viz.colorize(np.array([[0, 1], [255, 2]]))[0, 1] == pal[1]).all()


def test_heat_draws_a_colour_bar_with_its_label(out):
    fig, axes = plt.subplots(1, 2)
    values = np.linspace(-2, 1, 36).reshape(6, 6)
    im = viz.heat(axes[0], values, cmap="coolwarm", centered=True, title="difference", label="weight")
    assert im.get_clim() == (-2.0, 2.0)                          # centred: 0 in the middle of the scale
    viz.heat(axes[1], values.clip(0, 1), vmin=0, vmax=1, label="CAM")
    bars = [ax for ax in fig.axes if ax not in axes]
    assert len(bars) == 2 and {b.get_ylabel() for b in bars} == {"weight", "CAM"}
    fig.savefig(out / "heat.png")
    with pytest.raises(ValueError, match="2-D map"):
        viz.heat(axes[0], np.zeros((2, 3, 3)))
    gaps = np.array([[np.nan, -0.5], [0.25, np.nan]])                 # NaN (no data) does not poison the scale
    assert viz.heat(axes[0], gaps, centered=True).get_clim() == (-0.5, 0.5)
    assert viz.heat(axes[1], np.zeros((3, 3)), centered=True).get_clim() == (-1.0, 1.0)


def test_clicks_are_drawn_as_disks_with_a_dark_rim():
    image = np.full((64, 64, 3), 128, np.uint8)
    drawn = viz.draw_clicks(image, [[20, 30, 3], [50, 10, 0]])
    colour = viz.display_palette()[3]
    disk = (drawn == colour).all(-1)
    assert disk.sum() >= 13 and disk[20, 30]                       # radius 2 at 64 px: not a single pixel
    assert (drawn[20, 33] == 0).all() and (drawn[50, 10] == 255).all()   # the rim, and background clicks in white
    assert (drawn[0, 0] == 128).all()
    edge = viz.draw_clicks(image, [[0, 63, 1]], radius=4)          # a click at the border does not wrap around
    assert (edge[0, 63] == viz.display_palette()[1]).all() and (edge[63, 0] == 128).all()


def test_plot_sweep_band_and_log_axis_ticks_at_the_swept_values(out):
    ax = viz.plot_sweep({"ours": [(50, 73.3), (200, 45.4), (800, 25.6)], "every seed": [(200, [45.4, 52.0, 53.1])]},
                        xlabel="lambda", band=(41.0, 49.8, "default +- 2 x std"), logx=True)
    assert ax.get_xscale() == "log"
    assert [t.get_text() for t in ax.get_xticklabels()] == ["50", "200", "800"]
    from matplotlib.ticker import NullLocator

    assert isinstance(ax.xaxis.get_minor_locator(), NullLocator)      # no minor ticks to crowd the swept values
    assert "default +- 2 x std" in [t.get_text() for t in ax.get_legend().get_texts()]
    ax.figure.savefig(out / "sweep_band_log.png")
    with pytest.raises(ValueError, match="low <= high"):
        viz.plot_sweep({"ours": [(1, 2)]}, xlabel="x", band=(3, 1, "bad"))
    with pytest.raises(ValueError, match=r"logx needs x > 0, got \[0\]"):
        viz.plot_sweep({"ours": [(0, 2), (10, 3)]}, xlabel="x", logx=True)


def test_class_card_shows_each_class_with_its_mark_shape_and_scene(out):
    from wsss.data.synthetic import CLASSES, MARK_COLOURS, SCENES, class_card

    card = class_card(size=48)
    assert [e["name"] for e in card] == list(CLASSES[1:])
    for e in card:
        assert e["scene"] in SCENES and e["shape"] == e["name"] and e["image"].shape == (48, 48, 3)
        mark = (e["image"].astype(int) == MARK_COLOURS[e["class"] - 1].astype(int)).all(-1)
        assert mark.sum() > 10 and np.argwhere(mark)[:, 0].mean() < 24          # the mark sits in the upper half
        assert tuple(viz.display_palette()[e["class"]]) == e["mark_colour"]    # the display colour is the mark's
    fig = viz.class_card_figure(card, path=out / "class_card.png")
    assert [ax.get_title() for ax in fig.axes] == [f"{e['class']}: {e['name']}" for e in card]
    with pytest.raises(ValueError, match="empty"):
        viz.class_card_figure([])


def test_plot_room_draws_seeds_means_the_paper_and_the_room(out):
    ax = viz.plot_room({"baseline": [54.0, 53.0, 57.0], "method": [56.2, 55.0, 57.4], "one run": 50.0},
                       floor=10.7, ceiling=82.3, paper={"baseline": 62.6, "method": 63.8}, path=out / "room.png")
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert {"a seed", "the paper (its data)", "mean +- std over the seeds"} <= set(labels)
    assert any("floor 10.7" in t for t in labels) and any("ceiling 82.3" in t for t in labels)
    assert [t.get_text() for t in ax.get_xticklabels()] == ["baseline", "method", "one run"]
    seeds = [c for c in ax.collections if isinstance(c, PathCollection)]
    assert sum(len(c.get_offsets()) for c in seeds) == 3 + 3 + 1 + 2       # every seed, and two paper diamonds
    low, high = ax.patches[0].get_y(), ax.patches[0].get_y() + ax.patches[0].get_height()
    assert (round(low, 2), round(high, 2)) == (10.7, 46.5)                 # the lower half of the room is shaded
    flat = viz.plot_room({"a": [1.0]}, floor=50, ceiling=40)               # a smoke run: no room, said on the plot
    assert not flat.patches and any("no room" in t.get_text() for t in flat.texts)
    with pytest.raises(ValueError, match="no row"):
        viz.plot_room({}, floor=1, ceiling=2)
