# SPDX-License-Identifier: Apache-2.0
"""Smoke test of the throughput benchmark harness (``modem bench``) on tiny inputs, CPU backend."""
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from modem.cli import main
from modem.gpu import bench


def test_modem_bench_ldpc_cpu_writes_a_self_describing_report(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("MODEM_BACKEND", "cpu")
    rc = main(["bench", "--chain", "ldpc", "--frame", "short", "--frames", "2", "--repeats", "1",
               "--max-iter", "10", "--out-dir", str(tmp_path)])
    assert rc == 0
    files = list(tmp_path.glob("bench_ldpc_cpu_*.json"))
    assert len(files) == 1
    rep = json.loads(files[0].read_text())
    info = rep["backend_info"]
    assert info["backend"] == "cpu" and info["commit"] and info["device"]
    dec, ref = rep["results"]
    assert dec["stage"] == "decoder" and dec["info_bits_per_s"] > 0 and dec["max_iter"] == 10
    assert ref["decoder"].startswith("scikit-commpy") and ref["frames"] == 1
    assert dec["ratio_vs_commpy"] == dec["info_bits_per_s"] / ref["info_bits_per_s"]
    assert "Mb/s" in capsys.readouterr().out


def test_bench_scppm_and_dpsk_cpu_tiny():
    for chain, params in (("scppm", dict(M=16, frames=1, max_iter=2, repeats=1)),
                          ("dpsk", dict(frame="short", frames=1, max_iter=5, repeats=1))):
        rep = bench.run(chain, "cpu", write=False, **params)
        assert all(r["info_bits_per_s"] > 0 and r["chain"] == chain for r in rep["results"])


def test_modem_bench_gpu_without_gpu_fails_with_one_line():
    from modem import backend  # noqa: PLC0415
    if backend.gpu_available():
        return
    out = subprocess.run([sys.executable, "-m", "modem.cli", "bench", "--chain", "scppm", "--backend", "gpu",
                          "--no-write"], capture_output=True, text=True)
    lines = out.stderr.strip().splitlines()
    assert out.returncode == 2 and len(lines) == 1 and "gpu" in lines[0].lower()


def _gpu_validate():
    import importlib.util  # noqa: PLC0415
    path = Path(__file__).resolve().parents[1] / "bench" / "gpu_validate.py"
    spec = importlib.util.spec_from_file_location("gpu_validate", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_gpu_validate_keeps_carried_pythonpath(monkeypatch):
    gv = _gpu_validate()
    monkeypatch.setenv("PYTHONPATH", "/tmp/site")
    env = gv.environment()
    assert env["PYTHONPATH"].split(os.pathsep) == [str(gv.ROOT), "/tmp/site"]
    assert env["MODEM_BACKEND"] == "gpu"


def test_gpu_validate_step_limit_kills_a_hung_step(tmp_path):
    gv = _gpu_validate()
    log = tmp_path / "step.txt"
    t0 = time.monotonic()
    rc = gv.run_step([sys.executable, "-c", "import time; print('started', flush=True); time.sleep(60)"],
                     2.0, log, "device: test\n")
    assert rc == 124 and time.monotonic() - t0 < 20
    text = log.read_text()
    assert text.startswith("device: test") and "started" in text and "time limit" in text
    assert gv.run_step([sys.executable, "-c", "raise SystemExit(3)"], 30.0) == 3


def test_modem_commit_override(monkeypatch):
    from modem import backend  # noqa: PLC0415
    monkeypatch.setenv("MODEM_COMMIT", "0123456789ab")
    backend.git_commit.cache_clear()
    try:
        assert backend.git_commit() == "0123456789ab"
    finally:
        backend.git_commit.cache_clear()
