"""The reproducible mode: pins set before torch starts, recorded in every results json; the benchmark's
fingerprint; the hash check of wsss.reproduce."""
import json
import os
import shutil
import subprocess
import sys

import pytest
import torch

from wsss import reproducible
from wsss.data.fingerprint import fingerprint
from wsss.reproduce import run_child, toy, weights_hash

AVX2 = "avx2" in reproducible.processor_flags()


def _python(code: str, **env) -> dict:
    """Run ``code`` in a fresh interpreter (nothing imported yet) and parse the json it prints."""
    clean = {k: v for k, v in os.environ.items() if k not in reproducible.PINS and k != "WSSS_REPRODUCIBLE"}
    proc = subprocess.run([sys.executable, "-c", code], env={**clean, **env}, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


DESCRIBE = "import json, os, wsss, wsss.reproducible as r; print(json.dumps({**r.describe(), 'env': dict(os.environ)}))"


@pytest.mark.skipif(not AVX2, reason="the pinned path is AVX2; this processor lacks it")
def test_importing_wsss_pins_the_cpu_paths_before_torch_starts():
    info = _python(DESCRIBE)
    assert info["enabled"] and info["aten_capability"] == "AVX2" and info["torch_threads"] == reproducible.THREADS
    assert info["onednn_isa"] is None or "AVX2" in info["onednn_isa"]
    assert info["env"]["ONEDNN_MAX_CPU_ISA"] == "AVX2" and info["env"]["MKL_CBWR"] == "AVX2"
    assert info["numpy_avx512_off"] in (True, None) and "warning" not in info
    assert info["deterministic_algorithms"] is (not torch.cuda.is_available())


def test_the_mode_switches_off_and_keeps_a_value_the_user_set():
    off = _python(DESCRIBE, WSSS_REPRODUCIBLE="0")
    assert not off["enabled"] and "ONEDNN_MAX_CPU_ISA" not in off["env"] and "pins" not in off
    kept = _python(DESCRIBE, MKL_CBWR="COMPATIBLE")
    assert kept["env"]["MKL_CBWR"] == "COMPATIBLE" and kept["kept_user_values"] == {"MKL_CBWR": "COMPATIBLE"}
    late = _python("import torch; " + DESCRIBE)
    assert "torch was imported before wsss" in late["warning"]


def test_a_bad_thread_count_is_named(monkeypatch):
    monkeypatch.setenv("WSSS_THREADS", "two")
    with pytest.raises(ValueError, match="WSSS_THREADS='two' must be a positive integer"):
        reproducible.threads()


def test_grid_workers_run_one_thread_each():
    from wsss.experiments import run_grid
    from wsss.profiles import default_workers

    out = run_grid(torch.get_num_threads, {"a": {}, "b": {}}, workers=2)
    assert out == {"a": 1, "b": 1}
    assert default_workers("cpu", "quick") == 2


def test_results_record_the_mode_the_processor_and_the_benchmark(tiny_benchmark, tmp_path):
    from wsss import notebook

    root, _, _ = notebook.open_data("synthetic", tiny_benchmark, "smoke", 0)
    meta = json.loads(notebook.write_results(tmp_path, "basics", "smoke", {"miou": 0.5}).read_text())["meta"]
    assert meta["reproducible"]["enabled"] and meta["reproducible"]["processor"] == reproducible.processor()
    assert meta["data"]["sha256"] == fingerprint(tiny_benchmark)["sha256"] and meta["data"]["kind"] == "contents"


def test_the_fingerprint_sees_one_changed_byte_and_hashes_real_data_by_names_and_sizes(tiny_benchmark, tmp_path):
    copy = shutil.copytree(tiny_benchmark, tmp_path / "bench")
    before = fingerprint(copy)
    assert before == fingerprint(tiny_benchmark) and before["files"] > 36
    mask = sorted((copy / "SegmentationClass").iterdir())[0]
    data = bytearray(mask.read_bytes())
    data[-20] ^= 1
    mask.write_bytes(bytes(data))
    assert fingerprint(copy)["sha256"] != before["sha256"]
    (copy / "benchmark.json").unlink()
    assert fingerprint(copy)["kind"] == "names and sizes"
    with pytest.raises(FileNotFoundError, match="nowhere"):
        fingerprint(tmp_path / "nowhere")


def test_the_weights_hash_is_stable_and_sensitive():
    net = torch.nn.Linear(3, 2)
    first = weights_hash(net)
    assert weights_hash(net) == first
    with torch.no_grad():
        net.weight[0, 0] = torch.nextafter(net.weight[0, 0], torch.tensor(2.0))   # one last bit
    assert weights_hash(net) != first


@pytest.mark.skipif(not AVX2, reason="the pinned path is AVX2; this processor lacks it")
def test_the_toy_training_gives_the_same_hash_in_two_fresh_processes():
    a, b = run_child("toy", True), run_child("toy", True)
    assert a["sha256"] == b["sha256"] and a["aten"] == "AVX2"
    assert len(toy()) == 64


def test_a_processor_without_avx2_gets_no_pins_and_says_so(monkeypatch):
    monkeypatch.setattr(reproducible, "_state", {})
    monkeypatch.setattr(reproducible, "has_avx2", lambda: False)
    for key in reproducible.PINS:
        monkeypatch.delenv(key, raising=False)
    monkeypatch.delenv("WSSS_REPRODUCIBLE", raising=False)
    reproducible.pin_environment()
    assert not any(key in os.environ for key in reproducible.PINS)
    info = reproducible.describe()
    assert "not x86-64 with AVX2" in info["skipped"] and "pins" not in info
    monkeypatch.setattr("platform.machine", lambda: "arm64")
    assert reproducible.has_avx2() is False
