"""Notebook plumbing: parameter checks (including misspelt papermill names) and the runner."""
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import papermill
import pytest

from wsss.notebook import check_parameters, number, output_dirs, write_results
from wsss.run_notebooks import tidy

ROOT = Path(__file__).resolve().parent.parent
GOOD = dict(dataset="synthetic", data_root=None, profile="quick", device="auto", seed=0, out_dir=None, T=150)
SPEC = {"T": number(1, 10_000, integer=True)}


def test_good_parameters_pass():
    assert check_parameters(dict(GOOD, In=[], _oh={}, np=json), SPEC)["T"] == 150


@pytest.mark.parametrize("change, match", [
    ({"Tt": 150}, r"unknown parameter 'Tt' \(did you mean 'T'\?\)"),
    ({"T": 0}, r"parameter T=0 must lie in"),
    ({"T": 1.5}, r"parameter T=1.5 must be an integer"),
    ({"profile": "fast"}, r"parameter profile='fast' must be one of"),
    ({"dataset": "imagenet"}, r"parameter dataset='imagenet'"),
    ({"dataset": "voc"}, r"data_root is required"),
    ({"device": "tpu"}, r"parameter device='tpu'"),
    ({"seed": -1}, r"parameter seed=-1"),
])
def test_bad_parameters_are_named(change, match):
    with pytest.raises(ValueError, match=match):
        check_parameters(dict(GOOD, **change), SPEC)


def test_missing_parameter():
    params = dict(GOOD)
    del params["T"]
    with pytest.raises(ValueError, match="'T' is missing"):
        check_parameters(params, SPEC)


def test_outputs_go_where_asked(tmp_path):
    results, figures = output_dirs(tmp_path)
    path = write_results(results, "basics", "quick", {"cam_miou": 0.5})
    assert path == tmp_path / "results" / "basics-quick.json" and figures.is_dir()
    assert json.loads(path.read_text())["cam_miou"] == 0.5


def test_every_notebook_follows_the_conventions():
    notebooks = sorted((ROOT / "notebooks").glob("*.ipynb"))
    assert notebooks, "no notebooks found"
    for path in notebooks:
        nb = nbformat.read(path, as_version=4)
        assert nb.metadata["kernelspec"]["name"] == "python3", path
        # (a cell papermill injected for parameters given on its command line may follow the parameters cell)
        code = [c for c in nb.cells if c.cell_type == "code" and "injected-parameters" not in c.metadata.get("tags", [])]
        assert "parameters" in code[0].metadata.get("tags", []), f"{path}: first code cell must be tagged parameters"
        assert "check_parameters(globals()" in code[1].source, f"{path}: second code cell must validate the parameters"
        for line in code[0].source.splitlines():
            stmt = line.split("#")[0].strip()
            if stmt:
                name, _, value = stmt.partition("=")
                compile(value.strip(), str(path), "eval")     # a plain expression ...
                assert value.strip()[0] in "\"'-0123456789NTF", f"{path}: {line!r} is not a plain literal"
        assert any(c.get("outputs") for c in code), f"{path}: committed without outputs"
        # papermill must see every parameter (its parser trips over some comments, e.g. ones holding "=")
        assigned = {line.split("=")[0].strip() for line in code[0].source.splitlines() if "=" in line.split("#")[0]}
        assert set(papermill.inspect_notebook(str(path))) == assigned, path


def test_papermill_rejects_a_misspelt_parameter(tmp_path):
    """papermill only warns about an unknown -p name; the notebook's validation cell must stop it."""
    out = tmp_path / "out.ipynb"
    proc = subprocess.run([sys.executable, "-m", "papermill", str(ROOT / "notebooks" / "basics.ipynb"), str(out),
                           "-p", "cam_bg_treshold", "0.3", "--cwd", str(tmp_path)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0
    assert "unknown parameter 'cam_bg_treshold' (did you mean 'cam_bg_threshold'?)" in proc.stderr + proc.stdout


def test_tidy_removes_papermill_metadata_widgets_and_old_progress_frames(tmp_path):
    cell = nbformat.v4.new_code_cell("1")
    cell.outputs = [nbformat.v4.new_output("stream", name="stderr", text="train:   0%|   | 0/10"),
                    nbformat.v4.new_output("stream", name="stderr", text="train:  10%|#  | 1/10\rtrain: 100%|##| 10/10\ndone\n"),
                    nbformat.v4.new_output("display_data", data={"text/plain": "bar",
                                                                 "application/vnd.jupyter.widget-view+json": {"model_id": "x"}})]
    nb = nbformat.v4.new_notebook(cells=[cell])
    nb.cells[0].metadata["papermill"] = {"duration": 1.0}
    nb.metadata["papermill"] = {"parameters": {}}
    nb.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {}}
    path = tmp_path / "n.ipynb"
    nbformat.write(nb, path)
    tidy(path)
    again = nbformat.read(path, as_version=4)
    assert "papermill" not in again.metadata and "papermill" not in again.cells[0].metadata
    assert "widgets" not in again.metadata
    assert again.cells[0].outputs[0]["text"] == "train: 100%|##| 10/10\ndone\n"
    assert again.cells[0].outputs[1]["data"] == {"text/plain": "bar"}


def test_runs_go_to_an_ignored_run_folder_and_the_introduction_runs_first(monkeypatch, tmp_path):
    from wsss.notebook import run_folder
    from wsss.run_notebooks import ORDER, ordered

    monkeypatch.delenv("WSSS_OUT_DIR", raising=False)
    results, figures = output_dirs(None, "asdt", "quick")
    assert results == run_folder("asdt", "quick") / "results" == ROOT / "runs" / "asdt-quick" / "results"
    assert "/runs/" in (ROOT / ".gitignore").read_text().split()
    with pytest.raises(ValueError, match="needs out_dir"):
        output_dirs(None)
    names = [p.stem for p in ordered([Path(f"{n}.ipynb") for n in ("zzz", "rml", "asdt", "basics", "aaa")])]
    assert names == ["basics", "asdt", "rml", "aaa", "zzz"] and ORDER[0] == "basics"


def test_results_are_written_whole_or_not_at_all(tmp_path, monkeypatch):
    from wsss import notebook

    path = write_results(tmp_path, "basics", "quick", {"cam_miou": 0.5})
    before = path.read_text()

    real_write = Path.write_text

    def full_disk(self, text):                  # writes half of it, then the disk is full
        real_write(self, text[: len(text) // 2])
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(notebook.Path, "write_text", full_disk)
    with pytest.raises(OSError, match="No space"):
        write_results(tmp_path, "basics", "quick", {"cam_miou": 0.9})
    monkeypatch.undo()
    assert path.read_text() == before and [p.name for p in tmp_path.iterdir()] == [path.name]


def test_compare_prints_what_changed_with_the_seeds_spread(tmp_path, capsys):
    from wsss.compare import differences, main

    old = {"table5": [{"row": "full", "miou": 0.50, "miou_std": 0.02, "paper": 0.64}], "wall_time_s": 200,
           "cam_miou": 0.4, "meta": {"written": "x"}}
    new = {"table5": [{"row": "full", "miou": 0.53, "miou_std": 0.02, "paper": 0.64}], "wall_time_s": 150,
           "cam_miou": 0.4, "extra": 1.0, "meta": {"written": "y"}}
    rows = differences(new, old)
    assert [r["what"] for r in rows] == ["table5[0].miou", "extra"]
    assert rows[0]["change"] == pytest.approx(0.03) and rows[0]["seeds' std"] == 0.02
    (tmp_path / "new.json").write_text(json.dumps(new))
    (tmp_path / "old.json").write_text(json.dumps(old))
    assert main([str(tmp_path / "new.json"), str(tmp_path / "old.json")]) == 1      # +3.0 pp, beyond the 2.0 pp spread
    out = capsys.readouterr().out
    assert "2 of 4 numbers differ; the first: table5[0].miou (50.0% committed, 53.0% this run)" in out
    assert re.search(r"\+3\.0 pp +2\.0 pp +MOVED", out) and "extra" in out and "one json only" in out
    assert "1 of 2 differing numbers moved beyond the seeds' spread" in out
    assert "wall_time" not in out and "identical" not in out
    assert main([str(tmp_path / "old.json"), str(tmp_path / "old.json")]) == 0
    assert "identical: all 3 numbers match" in capsys.readouterr().out


def test_compare_exits_1_only_when_a_number_moved_beyond_the_seeds_spread(tmp_path, capsys):
    """CI can use the exit status: 0 when every change lies within the seeds' spread (a number without a spread
    counts only with --strict), 1 when one moved beyond it, 2 for a usage error; fractions print in %."""
    from wsss.compare import is_fraction, main, moved

    def write(name, data):
        (tmp_path / name).write_text(json.dumps(data))
        return str(tmp_path / name)

    old = write("old.json", {"table4": [{"row": "ASDT", "miou": 0.500, "miou_std": 0.010}], "cam_miou": 0.40,
                             "steps": 1200, "per_class_iou": {"disc": 61.0}})
    within = write("within.json", {"table4": [{"row": "ASDT", "miou": 0.508, "miou_std": 0.012}], "cam_miou": 0.41,
                                   "steps": 1200, "per_class_iou": {"disc": 62.5}})
    beyond = write("beyond.json", {"table4": [{"row": "ASDT", "miou": 0.470, "miou_std": 0.010}], "cam_miou": 0.40,
                                   "steps": 1200, "per_class_iou": {"disc": 61.0}})
    assert main([within, old]) == 0
    out = capsys.readouterr().out
    assert re.search(r"table4\[0\]\.miou +50\.0% +50\.8% +\+0\.8 pp +1\.2 pp +within", out)   # the larger std of the two
    assert "40.0%" in out and "41.0%" in out and "no spread" in out and "none moved beyond the seeds' spread" in out
    assert "62.5" in out and "6250" not in out                 # a number already in % is not multiplied again
    assert main([within, old, "--strict"]) == 1                # single-run changes count under --strict
    assert main([within, old, "--spread-factor", "0.5"]) == 1  # 0.8 pp > 0.5 x 1.2 pp
    capsys.readouterr()
    assert main([beyond, old]) == 1
    out = capsys.readouterr().out
    assert re.search(r"-3\.0 pp +1\.0 pp +MOVED", out) and "1 of 1 differing numbers moved" in out
    row = {"what": "x.loss", "committed": 0.3, "this run": 0.2, "change": -0.1, "seeds' std": None}
    assert not is_fraction(row) and not moved(row) and moved(row, strict=True)
    assert not is_fraction({"what": "seeds[1]", "committed": 1, "this run": 0, "change": -1, "seeds' std": None})
    for argv in ([str(tmp_path / "missing.json"), old], [within, old, "--spread-factor", "-1"], [within, old, "--bogus"]):
        with pytest.raises(SystemExit) as stop:
            main(argv)
        assert stop.value.code == 2
    assert "missing.json does not exist" in capsys.readouterr().err


def test_compare_says_whether_the_benchmark_and_the_machine_were_the_same(tmp_path, capsys):
    from wsss.compare import main

    meta = {"data": {"sha256": "a" * 64}, "reproducible": {"enabled": True, "processor": "X", "aten_capability": "AVX2"}}
    other = {"data": {"sha256": "b" * 64}, "reproducible": {"enabled": False, "processor": "Y", "aten_capability": "AVX512"}}
    (tmp_path / "new.json").write_text(json.dumps({"miou": 0.5, "meta": meta}))
    (tmp_path / "old.json").write_text(json.dumps({"miou": 0.5, "meta": other}))
    assert main([str(tmp_path / "new.json"), str(tmp_path / "old.json")]) == 0
    out = capsys.readouterr().out
    assert "benchmark: DIFFERENT (fingerprint aaaaaaaaaaaaaaaa vs bbbbbbbbbbbbbbbb)" in out
    assert "processor: X (committed: Y)" in out and "reproducible mode: on (committed: off)" in out
    assert "ATen CPU path: AVX2 (committed: AVX512)" in out and "identical" in out


def test_basics_runs_on_any_voc_layout_folder(tmp_path, photo_folder, monkeypatch):
    """`papermill basics.ipynb out.ipynb -p dataset voc -p data_root DIR` on a folder of photo-sized images
    with a classes.txt: at the small profiles the notebook works on a downsized, cached copy."""
    import papermill

    monkeypatch.setenv("WSSS_DATA", str(tmp_path / "cache"))         # the kernel inherits it
    monkeypatch.delenv("WSSS_PROFILE", raising=False)                 # quick's own downsizing (64 px), few steps
    out = tmp_path / "out"
    nb = papermill.execute_notebook(str(ROOT / "notebooks" / "basics.ipynb"), str(tmp_path / "basics.ipynb"),
                               parameters={"dataset": "voc", "data_root": str(photo_folder), "profile": "quick",
                                           "classifier_steps": 4,
                                           "segmentation_steps": 4, "out_dir": str(out)},
                               cwd=str(tmp_path), kernel_name="python3", progress_bar=False)
    result = json.loads((out / "results" / "basics-quick.json").read_text())
    for key in ("fully_supervised_miou", "cam_miou", "cam_crf_miou"):
        assert 0.0 <= result[key] <= 1.0
    assert result["wall_time_s"] > 0 and result["dataset"] == "voc"
    assert (out / "figures" / "quick" / "basics_cams.png").is_file()
    printed = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    assert "short side brought to 64 px" in printed and "object classes per image" in printed
    assert list((tmp_path / "cache" / "resized").iterdir())


def _run_on_voc_folder(name: str, tmp_path: Path, data_root: Path, **parameters) -> tuple[dict, Path]:
    """Run notebooks/<name>.ipynb with papermill on a VOC-layout folder (one worker, outputs under tmp_path/out):
    (its smoke results json, the output folder)."""
    out = tmp_path / "out"
    papermill.execute_notebook(str(ROOT / "notebooks" / f"{name}.ipynb"), str(tmp_path / f"{name}.ipynb"),
                               parameters={"dataset": "voc", "data_root": str(data_root), "workers": 1,
                                           "out_dir": str(out), **parameters},
                               cwd=str(tmp_path), kernel_name="python3", progress_bar=False)
    return json.loads((out / "results" / f"{name}-smoke.json").read_text()), out


def test_asdt_runs_every_table_on_a_voc_layout_folder(tmp_path, tiny_benchmark):
    """`papermill asdt.ipynb out.ipynb -p T 20 ...`: a few iterations of every run, the retrain step
    included, on a VOC-layout folder; the results file carries every table with mIoU fractions."""
    result, out = _run_on_voc_folder("asdt", tmp_path, tiny_benchmark, T=20, tau=3, steps=6, warmup=2, classifier_steps=4,
                                     retrain=True)
    assert [r["strategy"] for r in result["table4"]][-1] == "Alternative dual teacher"
    assert len(result["table5"]) == 6 and {r["tau"] for r in result["fig6_tau"]} == {1, 3, 5, 9}
    assert {r["T"] for r in result["fig6_T"]} == {20, 50, 150, 250}
    values = [r["miou"] for r in result["table5"] + result["fig6_T"] + result["fig6_tau"]]
    values += [r[k]["miou"] for r in result["table4"] for k in ("P^st", "P^s", "P") if r[k] is not None]
    assert values and all(0.0 <= v <= 1.0 for v in values)
    # the central rows over the smoke profile's 2 seeds, each seed's value kept
    seeds = result["table4_seeds"]
    assert seeds["seeds"] == [0, 1] and len(seeds["Alternative dual teacher"]["P"]) == 2
    assert "Naive dual teacher (mean)" not in seeds and seeds["Single class-teacher"].keys() == {"P^s"}
    # how each variant's student was taught, counted for steps=6, warmup=2, T=20, tau=3 (T_h=5: pulse 0-4)
    assert result["schedule"]["Alternative dual teacher"] == {"steps_from_class_teacher": 3, "steps_from_seg_teacher": 3,
                                                              "periods": 0}
    assert result["schedule"]["Single seg-teacher"]["steps_from_seg_teacher"] == 4
    assert 0.0 <= result["retrain"]["deeplab_val_miou"] <= 1.0
    assert result["step_timing_ms"] and result["label_work_ms"] and result["parameters"]["T"] == "20"
    for name in ("architecture", "pwm", "training", "branches", "rrm_labels", "fig6"):
        assert (out / "figures" / "smoke" / f"asdt_{name}.png").is_file(), name


def test_ssdd_runs_every_table_on_a_voc_layout_folder(tmp_path, tiny_benchmark):
    """`papermill ssdd.ipynb out.ipynb -p b_dd 0.3 ...` on a VOC-layout folder at the smoke profile: PSA,
    the static stages of Fig. 6, Table 1's rows over 2 seeds and Table A-1's points all run; the results
    carry every table with mIoU fractions, and a parameter moves the default point of its sweep."""
    result, out = _run_on_voc_folder("ssdd", tmp_path, tiny_benchmark, b_dd=0.3, bad_rule="any")
    assert [r["row"] for r in result["table1"]] == ["PSA", "static SSDD", "SSDD"]
    assert result["table1"][0]["seg + CRF"]["paper"] == pytest.approx(0.617)
    assert result["table1"][1]["seg + CRF"]["paper"] is None
    assert len(result["table1_seeds"]["SSDD"]["seg + CRF"]) == 2 == len(result["table1_seeds"]["seeds"])
    assert {r["b_dd"] for r in result["tableA1_bdd"]} == {0.0, 0.3, 0.4}     # the sweep and the notebook's default
    assert {r["b_class"] for r in result["tableA1_bclass"]} == {0.0, 1.0} and result["tableA1_alpha"]
    values = [r["miou"] for k in ("tableA1_bdd", "tableA1_bclass", "tableA1_alpha") for r in result[k]]
    values += [r[k] for r in result["fig6"] for k in ("raw PSA", "CRF", "SSDD + CRF")]
    values += [r[o]["miou"] for r in result["table1"] for o in ("seg", "seg + CRF")]
    assert values and all(0.0 <= v <= 1.0 for v in values)
    assert {r["w_rgb"] for r in result["fig6"]} == {10, 5}
    assert result["step_timing_ms"]["dynamic step"]["full_ms"] > 0 and result["label_work_ms"]
    assert result["parameters"]["bad_rule"] == "any"
    for name in ("architecture", "fig7", "training", "tableA1", "fig6"):
        assert (out / "figures" / "smoke" / f"ssdd_{name}.png").is_file(), name


def test_tscd_runs_every_table_on_a_voc_layout_folder(tmp_path, tiny_benchmark):
    """`papermill tscd.ipynb out.ipynb -p alpha 3 ...` on a VOC-layout folder at the smoke profile: AFA and TSCD
    over 2 seeds, Table 3's components, Table 4's backbones (ResNet and WR38 at smoke) and Table 5's trained
    refiners all run; the results hold every table with mIoU fractions, the schedule's shares and the maps."""
    result, out = _run_on_voc_folder("tscd", tmp_path, tiny_benchmark, alpha=3.0)
    assert [r["row"] for r in result["table1"]] == ["AFA", "TSCD"]
    assert result["table1"][1]["seg + CRF"]["paper"] == pytest.approx(0.673)
    assert len(result["table1_seeds"]["TSCD"]["seg"]) == 2 == len(result["table1_seeds"]["seeds"])
    assert [r["row"] for r in result["table3"]] == ["Baseline", "+VARM", "+VARM +SCD", "+VARM +SCD +L_aux", "TSCD"]
    assert {r["row"] for r in result["table4"]} == {"R-Base", "R-SCD", "WR38-Base", "WR38-SCD", "TSCD w/o SCD", "TSCD"}
    assert result["table5"]["kind"].startswith("val mIoU of a model trained")
    assert [r["row"] for r in result["table5"]["rows"]] == ["Baseline", "PAMR", "PAR", "VARM k_rgb only", "VARM"]
    values = [r["miou"] for k in ("table3", "table4") for r in result[k]] + [r["miou"] for r in result["table5"]["rows"]]
    values += [r[o]["miou"] for r in result["table1"] for o in ("seg", "seg + CRF")]
    assert values and all(0.0 <= v <= 1.0 for v in values)
    assert result["schedule"]["shares"]["classification_only"] == pytest.approx(0.25)
    assert result["maps"]["view_cam_map"] == [2, 2] and result["parameters"]["alpha"] == "3.0"
    assert result["step_timing"]["TSCD"]["full_ms"] > 0 and result["step_timing"]["pieces_ms"]
    for name in ("refiners", "correspondence", "training"):
        assert (out / "figures" / "smoke" / f"tscd_{name}.png").is_file(), name


def test_rml_runs_every_table_on_a_voc_layout_folder(tmp_path, tiny_benchmark):
    """`papermill rml.ipynb out.ipynb -p alpha 0.2 ...` on a VOC-layout folder at the smoke profile: the baseline and
    RML over 2 seeds, Table 1's steps, Table 2's five removals and the sensitivity points all run; the results hold
    every table with mIoU fractions, and the AFA pair says where its number would come from."""
    result, out = _run_on_voc_folder("rml", tmp_path, tiny_benchmark, alpha=0.2)
    assert [r["row"] for r in result["table1"]] == ["Baseline", "+CIML", "+CIML +MFML", "RML"]
    assert result["table1"][0]["paper"] == pytest.approx(0.503)
    assert len(result["table1_seeds"]["RML"]["pred"]) == 2 == len(result["table1_seeds"]["seeds"])
    assert len(result["table2"]) == 6 and result["table2"][-1]["row"] == "RML"
    assert {(r["parameter"], r["value"]) for r in result["sensitivity"]} >= {("alpha", 0.2), ("alpha", 0.05), ("beta1", 50.0)}
    assert all(r["paper"] is None for r in result["sensitivity"])
    assert result["table3_pair"]["AFA"] is None                     # no AFA result for a user's VOC folder
    values = [r["miou"] for k in ("table1", "table2") for r in result[k]] + [r["miou"] for r in result["sensitivity"]]
    assert values and all(0.0 <= v <= 1.0 for v in values)
    assert result["parameters"]["alpha"] == "0.2" and result["step_timing"]["full_ms"] > 0
    for name in ("training", "cams"):
        assert (out / "figures" / "smoke" / f"rml_{name}.png").is_file(), name


def test_seminar_runs_every_table_on_a_voc_layout_folder(tmp_path, tiny_benchmark):
    """`papermill seminar.ipynb out.ipynb -p lambda_pcons 100 ...` on a VOC-layout folder at the smoke profile: Table 3's
    rows on both backbones (the central ones over 2 seeds), Fig. 4's curves, the chain of Fig. 5(a) and both sweeps
    run; the results hold every key with mIoU fractions, the EMA horizon and the click counts."""
    result, out = _run_on_voc_folder("seminar", tmp_path, tiny_benchmark, lambda_pcons=100.0)
    rows = [(r["column"], r["row"]) for r in result["table3"]]
    assert ("ResNet", "all four") in rows and ("MobileNet", "pCE + CRF + pCons") in rows
    assert result["table3"][0]["paper"] == pytest.approx(0.547)
    assert len(result["table3_seeds"]["all four"]) == 2 == len(result["table3_seeds"]["seeds"])
    assert len(result["fig4"]["curves"]) == 4 and all(len(c["miou"]) >= 2 for c in result["fig4"]["curves"].values())
    assert [r["modules"] for r in result["fig5a"]] == [0, 1, 2]
    assert {r["lambda_pCons"] for r in result["fig5c"]} == {50.0, 100.0, 200.0, 800.0}
    assert len(result["fig5b"]) == 3 and result["schedule"]["ema_horizon_steps"] >= 1
    # a decay whose horizon is under 2 iterations of the run is not trained: no number, and a note saying why
    skipped = [r for r in result["fig5b"] if r["miou"] is None]
    assert all(r["note"].startswith("not representable") and r["horizon (iterations)"] < 2 for r in skipped)
    values = [r["miou"] for k in ("table3", "fig5a", "fig5b", "fig5c") for r in result[k] if r.get("miou") is not None]
    assert values and all(0.0 <= v <= 1.0 for v in values)
    assert result["room_ratio"]["paper"] == pytest.approx(54.70 / 78.59) and set(result["convergence"]) == {"pCE", "pCE + CRF + pCons", "all four"}
    assert result["clicks"]["clicks_per_image"] > 1 and result["step_timing"]["full_ms"] > 0
    for name in ("clicks", "training", "mechanism", "fig4", "fig5"):
        assert (out / "figures" / "smoke" / f"seminar_{name}.png").is_file(), name


def test_asdt_rejects_a_warmup_that_leaves_no_teaching(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "papermill", str(ROOT / "notebooks" / "asdt.ipynb"), str(tmp_path / "o.ipynb"),
                           "-p", "steps", "10", "-p", "warmup", "10", "--cwd", str(tmp_path)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0 and "parameter warmup=10 leaves no iteration" in proc.stderr + proc.stdout


def test_a_failed_run_leaves_the_notebook_and_keeps_the_failed_copy_aside(tmp_path):
    from wsss.run_notebooks import _Elapsed, run

    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1", metadata={"tags": ["parameters"]}),
                                         nbformat.v4.new_code_cell("raise RuntimeError('boom')")])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    source = tmp_path / "n.ipynb"
    nbformat.write(nb, source)
    committed = source.read_text()
    with pytest.raises(papermill.PapermillExecutionError, match="boom"):
        run(source, source, {}, cwd=tmp_path, log=_Elapsed(), scratch=tmp_path / "scratch")
    assert source.read_text() == committed
    assert (tmp_path / "scratch" / "n.failed.ipynb").is_file() and sorted(p.name for p in tmp_path.iterdir()) == ["n.ipynb", "scratch"]


def test_a_notebook_pointed_at_a_users_folder_without_dataset_voc_stops_and_deletes_nothing(tmp_path):
    """`papermill basics.ipynb out.ipynb -p data_root /my/VOC2012` (forgetting `-p dataset voc`) used to
    replace the folder with the synthetic benchmark."""
    mine = tmp_path / "VOC2012"
    (mine / "JPEGImages").mkdir(parents=True)
    (mine / "notes.txt").write_text("my annotations")
    with pytest.raises(papermill.PapermillExecutionError, match="not a generated synthetic benchmark") as err:
        papermill.execute_notebook(str(ROOT / "notebooks" / "basics.ipynb"), str(tmp_path / "out.ipynb"),
                                   parameters={"data_root": str(mine), "out_dir": str(tmp_path / "out")},
                                   cwd=str(tmp_path), kernel_name="python3", progress_bar=False)
    assert 'dataset="voc"' in str(err.value) or "dataset='voc'" in str(err.value)
    assert (mine / "notes.txt").read_text() == "my annotations" and sorted(p.name for p in mine.iterdir()) == ["JPEGImages", "notes.txt"]


def _published_repo(tmp_path):
    """A git repository holding basics' pair, its quick results and one figure, all committed."""
    import shutil

    (tmp_path / "notebooks").mkdir()
    for suffix in (".ipynb", ".py"):
        shutil.copy(ROOT / "notebooks" / f"basics{suffix}", tmp_path / "notebooks")
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "basics-quick.json").write_text('{"miou": 0.5}\n')
    (tmp_path / "figures" / "quick").mkdir(parents=True)
    (tmp_path / "figures" / "quick" / "basics_cams.png").write_bytes(b"quick figure")
    for cmd in (["init", "-q"], ["add", "-A"], ["-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "x"]):
        subprocess.run(["git", *cmd], cwd=tmp_path, check=True, capture_output=True)
    return tmp_path


def test_publish_refuses_a_profile_override_and_uncommitted_outputs_and_says_how_to_force(tmp_path, monkeypatch, capsys):
    from wsss import run_notebooks

    repo = _published_repo(tmp_path)
    monkeypatch.setattr(run_notebooks, "repo_root", lambda: repo)
    monkeypatch.setenv("WSSS_PROFILE", "smoke")
    with pytest.raises(SystemExit):
        run_notebooks.main(["--publish", "basics"])
    err = capsys.readouterr().err
    assert "WSSS_PROFILE=smoke would replace the committed 'quick' outputs" in err and "--force" in err
    monkeypatch.delenv("WSSS_PROFILE")
    (repo / "figures" / "quick" / "basics_cams.png").write_bytes(b"my edit")
    with pytest.raises(SystemExit):
        run_notebooks.main(["--publish", "basics"])
    err = capsys.readouterr().err
    assert "uncommitted changes in figures/quick/basics_cams.png would be overwritten" in err and "nothing was run" in err
    assert (repo / "figures" / "quick" / "basics_cams.png").read_bytes() == b"my edit"
    assert run_notebooks.publish_refusals(repo / "notebooks" / "basics.ipynb", None) != []
    subprocess.run(["git", "checkout", "--", "figures"], cwd=repo, check=True)
    assert run_notebooks.publish_refusals(repo / "notebooks" / "basics.ipynb", None) == []


def test_a_run_never_writes_over_committed_outputs_and_profiles_keep_their_own_figures(tmp_path, monkeypatch):
    repo = _published_repo(tmp_path)
    monkeypatch.delenv("WSSS_PUBLISH", raising=False)
    with pytest.raises(ValueError, match=r"holds committed outputs that this run would overwrite \(figures/quick/basics_cams.png, "
                                         r"results/basics-quick.json\).*take them out of git first"):
        output_dirs(repo, "basics", "quick")                         # a repository of one's own
    from wsss import notebook
    monkeypatch.setattr(notebook, "repo_root", lambda: repo)         # this package's repository: publish
    with pytest.raises(ValueError, match=r"refresh them on purpose with python -m wsss.run_notebooks --publish basics"):
        output_dirs(repo, "basics", "quick")
    results, figures = output_dirs(repo, "basics", "smoke")          # another profile: its own files
    assert figures == repo / "figures" / "smoke" and results == repo / "results"
    monkeypatch.setenv("WSSS_PUBLISH", "1")
    assert output_dirs(repo, "basics", "quick")[1] == repo / "figures" / "quick"


def test_checkpoints_live_in_the_run_folder_and_a_killed_runs_files_are_cleared(tmp_path, monkeypatch):
    from wsss import notebook

    monkeypatch.setenv("WSSS_SCRATCH", "")                       # restored after the test
    results, _ = output_dirs(tmp_path / "run", "asdt", "quick")
    first = notebook.scratch_folder(results.parent, "asdt", "quick")
    parent = tmp_path / "run" / "checkpoints" / "asdt-quick"
    assert first == parent / f"run-{os.getpid()}" and os.environ["WSSS_SCRATCH"] == str(first)
    # a killed run's folder (its process is gone) is cleared; a live run's and a foreign folder stay
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    killed, live, mine = parent / f"run-{int(dead.stdout)}", parent / "run-1", parent / "run-mine"
    for folder, pid in ((killed, int(dead.stdout)), (live, 1)):
        folder.mkdir()
        (folder / ".wsss-checkpoints").write_text(f"{pid} checkpoints\n")
        (folder / "warm.pt").write_bytes(b"weights")
    mine.mkdir()
    (mine / "notes.txt").write_text("not the package's")
    again = notebook.scratch_folder(results.parent, "asdt", "quick")
    assert again == first and not killed.exists()
    assert (live / "warm.pt").exists() and (mine / "notes.txt").read_text() == "not the package's"
    (first / ".wsss-checkpoints").unlink()                       # this process's folder, no longer marked: kept
    (first / "mine.txt").write_text("kept")
    with pytest.raises(FileExistsError, match="without the package's marker"):
        notebook.scratch_folder(results.parent, "asdt", "quick")
    assert (first / "mine.txt").read_text() == "kept"
    assert "/checkpoints/" in (ROOT / ".gitignore").read_text().split()      # a publish's base is the repository


def _runner_repo(tmp_path, monkeypatch, fail=()):
    """A repository with basics' and asdt's pairs and asdt's committed quick results (a wall time), the
    notebooks' execution replaced by a stand-in that records each run's parameters (and fails those named
    in ``fail``): the runner's own logic, without starting a kernel."""
    import shutil

    from wsss import notebook, run_notebooks

    (tmp_path / "notebooks").mkdir()
    for name in ("basics", "asdt"):
        for suffix in (".ipynb", ".py"):
            shutil.copy(ROOT / "notebooks" / f"{name}{suffix}", tmp_path / "notebooks")
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "asdt-quick.json").write_text(json.dumps(
        {"wall_time_s": 600.0, "meta": {"profile": "quick", "device": "cpu", "cpu_threads": 2}}))
    monkeypatch.setattr(run_notebooks, "repo_root", lambda: tmp_path)
    monkeypatch.setattr(notebook, "repo_root", lambda: tmp_path)
    monkeypatch.delenv("WSSS_PROFILE", raising=False)
    ran = {}

    def fake_run(nb, out, params, *, cwd, log, scratch):
        ran[nb.stem] = dict(params)
        if nb.stem in fail:
            scratch.mkdir(parents=True, exist_ok=True)
            (scratch / f"{out.stem}.failed.ipynb").write_text("{}")
            raise papermill.PapermillExecutionError(0, 1, "x", "RuntimeError", "boom", [])
        out.write_text("{}")
        return out

    monkeypatch.setattr(run_notebooks, "run", fake_run)
    return run_notebooks, ran


def test_parameters_go_to_every_notebook_or_to_one_and_are_checked_before_anything_runs(tmp_path, monkeypatch, capsys):
    run_notebooks, ran = _runner_repo(tmp_path, monkeypatch)
    out = ["--output-dir", str(tmp_path / "out")]
    assert run_notebooks.main(["basics", "asdt", "-p", "asdt.T", "150", "-p", "seed", "1", *out]) == 0
    assert ran == {"basics": {"seed": 1}, "asdt": {"seed": 1, "T": 150}}
    for argv, messages in [
        (["-p", "tau", "5"], ["-p tau: unknown parameter 'tau' for notebook basics; basics takes ['cam_bg_threshold'",
                              "give -p asdt.tau VALUE"]),
        (["basics", "-p", "asdt.T", "150"], ["-p asdt.T: notebook 'asdt' is not being run (this run: basics)"]),
        (["asdt", "-p", "asdt.TT", "150"], ["-p asdt.TT: unknown parameter 'TT' for notebook asdt (did you mean 'T'?); "
                                            "asdt takes ['T', "]),
        (["-p", "nope.T", "1"], ["-p nope.T: no notebook named 'nope'; there are ['asdt', 'basics']"]),
    ]:
        ran.clear()
        with pytest.raises(SystemExit) as stop:
            run_notebooks.main([*argv, *out])
        err = capsys.readouterr().err
        assert stop.value.code == 2 and "nothing was run" in err and not ran, argv
        for message in messages:
            assert message in err, (argv, err)
    with pytest.raises(SystemExit):
        run_notebooks.main(["--help"])
    assert capsys.readouterr().out.startswith("usage: python -m wsss.run_notebooks")


def test_keep_going_runs_the_rest_and_a_summary_ends_every_run(tmp_path, monkeypatch, capsys):
    run_notebooks, ran = _runner_repo(tmp_path, monkeypatch, fail=("basics",))
    out = ["--output-dir", str(tmp_path / "out")]
    assert run_notebooks.main(["basics", "asdt", *out]) == 1              # stops at the first failure
    text = capsys.readouterr()
    assert list(ran) == ["basics"] and "basics.ipynb: FAILED" in text.err and "boom" in text.err
    assert "not run: asdt (--keep-going runs the rest)" in text.out
    assert re.search(r"summary: 0 of 2 notebook\(s\) ok\n\n +notebook +result +wall time +output\n"
                     r" +basics +FAILED +0:00 +runs/basics-quick/basics\.failed\.ipynb \(the failed copy\)\n"
                     r" +asdt +not run +- +-", text.out), text.out
    # the estimate: the committed quick run's wall time where there is one, "unknown" where not
    assert "estimate: unknown for basics (no committed results/basics-quick.json with a wall time at this profile); " \
           "left, basics included: ~10 min plus basics (unknown)" in text.out
    ran.clear()
    assert run_notebooks.main(["basics", "asdt", "--keep-going", *out]) == 1
    text = capsys.readouterr().out
    assert list(ran) == ["basics", "asdt"] and "summary: 1 of 2 notebook(s) ok" in text
    assert re.search(r" +asdt +ok +0:00 +.*out/asdt\.ipynb", text)
    assert "estimate: ~10 min for asdt (the committed run's wall time, results/asdt-quick.json, cpu, 2 threads)" in text
    ran.clear()
    assert run_notebooks.main(["asdt", "-p", "steps", "10", *out]) == 0     # (basics lacks steps: asdt alone)
    assert "; your -p values may change it" in capsys.readouterr().out
    monkeypatch.setenv("WSSS_PROFILE", "smoke")                           # no committed smoke results: unknown
    run_notebooks.main(["asdt", *out])
    assert "estimate: unknown for asdt (no committed results/asdt-smoke.json" in capsys.readouterr().out
