"""The scaffold every paper notebook builds on: profiles in one place, the smoke override, shared
label pieces (CRF labels, the two-run background labels), and the package's layering."""
import ast
from pathlib import Path

import pytest
import torch

from wsss.cam import combine_labels, confident_labels
from wsss.data.folder import IGNORE
from wsss.notebook import check_parameters, number
from wsss.ops import channels_last, upsample
from wsss.profiles import BENCHMARK, PROFILES, default_workers, pixels, profile_settings, scaled_bilateral
from wsss.refine import crf_label, dense_crf_batch

PACKAGE = Path(__file__).resolve().parent.parent / "wsss"


@pytest.mark.parametrize("profile", ["quick", "full", "paper"])
def test_asdt_profiles_are_miniatures_of_the_paper_schedule(profile):
    """DESIGN "Profiles" and issue 10: with the paper's T=150, tau=5, every profile but smoke keeps the
    warm-up <= 10% of the run, >= 7 full PWM periods after it, the share of post-warm-up iterations on
    the seg-teacher within 10% of 1/(1 + tau), and Table 4's central rows over >= 3 seeds."""
    from wsss.methods.asdt import schedule_counts

    s = profile_settings("asdt", profile)
    assert s["warmup"] <= 0.1 * s["steps"] and s["seeds"] >= 3
    counts = schedule_counts(s["steps"], s["warmup"], "alternate", 150, 5)
    assert counts["periods"] >= 7
    share = counts["steps_from_seg_teacher"] / (s["steps"] - s["warmup"])
    assert abs(share - 1 / 6) <= 0.1 / 6
    assert 0.6 <= s["crop"] / s["image_px"] <= 0.9            # a crop of the image, as 321 of 500x375 px


def test_every_notebook_has_every_profile_and_overrides_are_checked():
    for notebook in ("basics", "asdt"):
        for profile in PROFILES:
            assert profile_settings(notebook, profile)["image_px"] > 0
    quick = profile_settings("asdt", "quick", steps=None, warmup=10)
    assert quick["steps"] == 1200 and quick["warmup"] == 10
    assert profile_settings("asdt", "quick")["warmup"] == 60           # a fresh copy each time
    with pytest.raises(ValueError, match=r"asdt settings have no \['stepz'\]"):
        profile_settings("asdt", "quick", stepz=3)
    with pytest.raises(ValueError, match="no settings for notebook 'nope'"):
        profile_settings("nope", "quick")
    assert BENCHMARK["smoke"] == "smoke" and default_workers("cpu", "smoke") == 1 and default_workers("cuda", "quick") == 1


def test_kernel_widths_scale_from_500_px_photos():
    assert pixels(80, 64) == 10.2 and pixels(83, 64) == 10.6 and pixels(100, 64) == 12.8
    assert pixels(80, 500) == 80 and pixels(3, 48) == 1.0               # never below one pixel
    assert scaled_bilateral((80, 13, 10), 64) == (10.2, 13, 10)


def test_wsss_profile_overrides_the_profile_parameter_and_says_so(monkeypatch, capsys):
    params = dict(dataset="synthetic", data_root=None, profile="quick", device="auto", seed=0, out_dir=None, T=150)
    monkeypatch.setenv("WSSS_PROFILE", "smoke")
    checked = check_parameters(params, {"T": number(1, 10_000, integer=True)})
    assert checked["profile"] == "smoke" and params["profile"] == "smoke"
    assert "WSSS_PROFILE=smoke overrides the parameter profile='quick'" in capsys.readouterr().out
    monkeypatch.setenv("WSSS_PROFILE", "turbo")
    with pytest.raises(ValueError, match="WSSS_PROFILE='turbo' must be one of"):
        check_parameters(dict(params, profile="quick"), {"T": number(1, 10_000, integer=True)})


def test_crf_label_is_the_argmax_of_the_dense_crf_for_either_layout():
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (2, 3, 20, 24), dtype=torch.uint8, generator=g)
    probs = torch.rand(2, 3, 20, 24, generator=g)
    expected = dense_crf_batch(images.permute(0, 2, 3, 1), probs / probs.sum(1, keepdim=True),
                               backend="pydensecrf", bilateral=(5, 13, 10)).argmax(1)
    for layout in (images, images.permute(0, 2, 3, 1)):
        got = crf_label(layout, probs * 7, backend="pydensecrf", bilateral=(5, 13, 10))   # renormalised inside
        assert got.dtype == torch.int64 and torch.equal(got, expected)
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\) or \(B, H, W, 3\)"):
        channels_last(torch.zeros(2, 4, 5, 6, dtype=torch.uint8))
    assert upsample(torch.zeros(1, 2, 4, 4), (8, 6)).shape == (1, 2, 8, 6)


def test_the_two_background_runs_keep_only_what_both_are_sure_of():
    # pixel 0: both runs say class 1 -> 1; pixel 1: both say background -> 0;
    # pixel 2: strong background says bg, weak says class 2 -> 255 (the band between)
    q_low = torch.tensor([[[0.1, 0.8, 0.6]], [[0.8, 0.1, 0.1]], [[0.1, 0.1, 0.3]]])[None]       # (1, 3, 1, 3)
    q_high = torch.tensor([[[0.0, 0.7, 0.2]], [[0.9, 0.2, 0.1]], [[0.1, 0.1, 0.7]]])[None]
    assert combine_labels(q_low, q_high).tolist() == [[[1, 0, IGNORE]]]
    assert combine_labels(q_low, q_high, torch.tensor([[[True, False, False]]])).tolist() == [[[IGNORE, 0, IGNORE]]]
    # on an image: a CAM peak inside an object is foreground, far background is background
    image = torch.full((1, 3, 32, 32), 40, dtype=torch.uint8)
    image[:, :, 8:24, 8:24] = 220
    cam = torch.zeros(1, 1, 32, 32)
    cam[:, :, 10:22, 10:22] = 1.0
    label = confident_labels(image, cam, bilateral=(5, 13, 10), backend="pydensecrf")
    assert label[0, 16, 16] == 1 and label[0, 1, 1] == 0


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            base = "wsss." + ".".join(path.relative_to(PACKAGE).parent.parts) if node.level else ""
            for _ in range(max(node.level - 1, 0)):
                base = base.rsplit(".", 1)[0]
            names.add(f"{base}.{node.module}".strip(".") if node.level else (node.module or ""))
        elif isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
    return names


def test_common_code_imports_no_method():
    common = [*(PACKAGE / "data").rglob("*.py"), *(PACKAGE / "models").rglob("*.py"), *(PACKAGE / "refine").rglob("*.py"),
              *(PACKAGE / n for n in ("cam.py", "losses.py", "train.py", "evaluate.py", "ops.py", "profiles.py",
                                      "records.py"))]
    offenders = {str(p.relative_to(PACKAGE)): sorted(i for i in _imports(p) if i.startswith("wsss.methods"))
                 for p in common}
    assert not {k: v for k, v in offenders.items() if v}
    # and a method module imports no other paper's module (its baseline aside)
    allowed = {"asdt": {"wsss.methods.rrm"}, "tscd": {"wsss.methods.afa"}, "rml": {"wsss.methods.afa"}}
    for path in (PACKAGE / "methods").glob("*.py"):
        methods = {i for i in _imports(path) if i.startswith("wsss.methods.")}
        assert methods <= allowed.get(path.stem, set()), (path.name, methods)


def test_show_source_puts_each_caption_right_above_its_code():
    from wsss.notebook import show_source
    from wsss.records import closing_table, headroom

    text = show_source(("**Eq. (1)**, the room:", headroom), closing_table).data
    first, second = text.index("**Eq. (1)**, the room:"), text.index("def headroom(")
    assert first < second < text.index("def closing_table(")
    assert text.count("```python") == 2
    with pytest.raises(TypeError, match="not a function"):
        show_source(("caption", 3))
    with pytest.raises(ValueError, match="at least one"):
        show_source()


def test_every_show_source_in_a_notebook_is_displayed():
    """show_source returns Markdown: it shows only as a cell's last expression or inside display()."""
    import ast

    def named(call, name):
        return isinstance(call, ast.Call) and (getattr(call.func, "id", None) == name or getattr(call.func, "attr", None) == name)

    root = Path(__file__).resolve().parents[1] / "notebooks"
    found = 0
    for path in sorted(root.glob("*.py")):
        for n, cell in enumerate(path.read_text().split("\n# %%")):
            body = "\n".join(line for line in cell.splitlines()[1:])
            tree = ast.parse(body)
            for i, stmt in enumerate(tree.body):
                calls = [c for c in ast.walk(stmt) if named(c, "show_source")]
                if not calls:
                    continue
                found += len(calls)
                last = i == len(tree.body) - 1 and isinstance(stmt, ast.Expr) and stmt.value is calls[0]
                shown = isinstance(stmt, ast.Expr) and named(stmt.value, "display") and calls[0] in stmt.value.args
                assert last or shown, f"{path.name}, cell {n}: show_source(...) is neither the cell's last expression nor displayed"
    assert found >= 15, f"only {found} show_source calls found in the notebooks: the check looked in the wrong place"
