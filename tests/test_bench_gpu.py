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


def load_bench_script(name):
    """A fresh module object of ``bench/<name>.py`` (the scripts are not a package)."""
    import importlib.util  # noqa: PLC0415
    path = Path(__file__).resolve().parents[1] / "bench" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _gpu_validate():
    return load_bench_script("gpu_validate")


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


def test_modem_bench_bad_counts_are_one_line(capsys):
    """`modem bench --frames 0` printed "0.000 Mb/s it_mean=nan" (and --json would hold a NaN);
    frames, repeats, max_iter, batch must be >= 1 and commpy_frames >= 0, named in one line."""
    for opt, val in (("--frames", "0"), ("--repeats", "0"), ("--max-iter", "0"), ("--commpy-frames", "-1")):
        rc = main(["bench", "--chain", "ldpc", "--backend", "cpu", opt, val, "--no-write"])
        err = capsys.readouterr().err.strip().splitlines()
        name = opt[2:].replace("-", "_")
        assert rc == 2 and len(err) == 1 and f"{name}={val}" in err[0], (opt, err)


def test_bench_gpu_script_without_gpu_is_one_line_and_writes_after_every_configuration(tmp_path, monkeypatch):
    """bench/bench_gpu.py --backend gpu without a GPU printed a traceback; its summary JSON was
    written only at the very end, so a run stopped at its time limit lost every figure."""
    from modem import backend  # noqa: PLC0415
    root = Path(__file__).resolve().parents[1]
    if not backend.gpu_available():
        out = subprocess.run([sys.executable, str(root / "bench" / "bench_gpu.py"), "--backend", "gpu",
                              "--out-dir", str(tmp_path)], capture_output=True, text=True, timeout=300)
        lines = out.stderr.strip().splitlines()
        assert out.returncode == 2 and len(lines) == 1 and "gpu" in lines[0].lower(), out.stderr[-400:]
    mod = load_bench_script("bench_gpu")
    seen = []

    def fake_run(chain, backend_name, **kw):
        files = list(tmp_path.glob("gpu_bench_cpu_*.json"))
        seen.append(len(json.loads(files[0].read_text())["reports"]) if files else 0)
        if len(seen) == 3:
            raise KeyboardInterrupt            # the time limit, mid-run
        return {"chain": chain, "results": [], "backend_info": {}}

    monkeypatch.setattr(mod.bench, "run", fake_run)
    monkeypatch.setattr(mod.bench, "summary_lines", lambda rep: ["", rep["chain"]])
    try:
        mod.main(["--backend", "cpu", "--small", "--out-dir", str(tmp_path)])
    except KeyboardInterrupt:
        pass
    assert seen == [0, 1, 2]
    (f,) = tmp_path.glob("gpu_bench_cpu_*.json")
    rep = json.loads(f.read_text())
    assert len(rep["reports"]) == 2 and rep["backend_info"]["backend"] == "cpu" and "command" in rep


def test_bench_replay_runs_and_reports_the_decoder_share(capsys):
    """bench/bench_replay.py on the CPU: a generated pass decoded at two decode_batch values gives
    the same frames, the decoder's calls and share of the time, and leaves the decoder unpatched."""
    from modem.fec.scppm.decoder import SCPPMReceiver  # noqa: PLC0415
    before = SCPPMReceiver.receive_stream
    mod = load_bench_script("bench_replay")
    assert mod.main(["--scale", "1", "--backend", "cpu", "--cpu-decode-batch", "1,1000", "--no-write",
                     "--json"]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert SCPPMReceiver.receive_stream is before
    assert out["same_frames"] and [r["decode_batch"] for r in out["runs"]] == [1, 1000]
    one, held = out["runs"]
    assert one["frames_good"] > 15 and one["codewords"] == held["codewords"] > 20
    assert held["decoder_calls"] == 1 < one["decoder_calls"]
    assert 0 < one["decoder_s"] < one["wall_s"] and one["info_bits_per_s"] > 0
    assert out["devices"]["cpu"]["backend"] == "cpu" and out["commit"]


def test_bench_simulate_times_the_cli_loop_and_writes_its_parameters(tmp_path, capsys):
    """bench/bench_simulate.py times ``modem simulate`` itself: the command it names, run through
    the CLI, gives the same frames and errors as the benchmark's run; the JSON names the backend,
    the commit and the per-order operating point (0.8 dB above capacity unless --ns is given)."""
    from modem.analysis.capacity import ns_capacity_limit  # noqa: PLC0415
    mod = load_bench_script("bench_simulate")
    out = tmp_path / "sim.json"
    assert mod.main(["--orders", "16", "--frames", "6", "--repeats", "2", "--dpsk-frames", "1", "--esn0", "3",
                     "--out", str(out)]) == 0
    rep = json.loads(out.read_text())
    assert rep["backend_info"]["backend"] == "cpu" and rep["backend_info"]["commit"] and rep["repeats"] == 2
    scppm, dpsk = rep["runs"]
    assert scppm["params"]["M"] == 16 and len(scppm["seconds"]) == 2 and scppm["frames"] == 6
    assert abs(scppm["params"]["ns"] - ns_capacity_limit(16, "1/2", 0.2) * 10 ** 0.08) < 1e-3
    assert 0 < scppm["info_bits_per_s_median"] <= scppm["info_bits_per_s_best"] < scppm["decode_info_bits_per_s_best"]
    assert dpsk["chain"] == "dpsk" and dpsk["params"]["esn0_db"] == 3.0 and dpsk["info_bits_per_s_best"] > 0
    capsys.readouterr()
    argv = scppm["command"].split()[1:] + ["--no-progress"]
    assert main(argv) == 0
    cli = json.loads(capsys.readouterr().out)
    assert cli["params"] == scppm["params"]
    assert (cli["frames"], cli["frame_errors"], cli["bit_errors"], cli["iterations_mean"]) == \
        (scppm["frames"], scppm["frame_errors"], scppm["bit_errors"], scppm["iterations_mean"])
