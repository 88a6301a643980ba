# SPDX-License-Identifier: Apache-2.0
"""Review of the link-budget / capacity / curve tools and the command line: bad values are one-line
errors naming them (exit 2), never tracebacks and never silently accepted; --json is strict JSON."""
from __future__ import annotations

import json

import pytest

from modem.analysis import curves
from modem.analysis import link_budget as lb
from modem.cli import main
from modem.errors import ConfigError


def _one_line_error(capsys, *needles):
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("modem: error:"), err
    for n in needles:
        assert n in err[0], (n, err[0])


# --- link budget: the required signal must be a usable number ----------------------------------

@pytest.mark.parametrize("value", ["0", "-1", "nan", "inf"])
def test_required_photons_per_pulse_must_be_positive_and_finite(capsys, value):
    assert main(["link-budget", "-s", "lunar", "--required-photons-per-pulse", value]) == 2
    _one_line_error(capsys, "required_photons_per_pulse", value)
    with pytest.raises(ConfigError, match="required_photons_per_pulse"):
        lb.load_scenario("lunar").replace(required_photons_per_pulse=float(value))


@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
def test_required_power_dbm_must_be_finite(capsys, value):
    assert main(["link-budget", "-s", "leo", f"--required-power-dbm={value}", "--json"]) == 2
    _one_line_error(capsys, "required_power_dbm", value)


def test_scenario_file_with_wrongly_typed_values_is_a_config_error(tmp_path, capsys):
    text = (lb.SCENARIO_DIR / "lunar.toml").read_text()
    for old, new, name in [("elevation_deg = 30", 'elevation_deg = "30"', "elevation_deg"),
                           ('title = "Moon"', "title = 5", "title"),
                           ("required_photons_per_pulse = 3.74", "required_photons_per_pulse = true",
                            "required_photons_per_pulse"),
                           ("tx_transmission = 0.33", "tx_transmission = true", "tx_transmission"),
                           ("rx_depointing_arcsec = 0.0", "rx_depointing_arcsec = false", "rx_depointing_arcsec"),
                           ("scintillation_loss_db = -1.0", "scintillation_loss_db = false", "scintillation_loss_db")]:
        p = tmp_path / f"bad_{name}.toml"
        assert old in text
        p.write_text(text.replace(old, new))
        with pytest.raises(ConfigError, match=name):
            lb.load_scenario(str(p))
        assert main(["link-budget", "-s", str(p)]) == 2
        _one_line_error(capsys, name)


def test_link_budget_list_json_is_json(capsys):
    assert main(["link-budget", "--list", "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert {e["name"] for e in d} == set(lb.list_presets())
    assert all(e["title"] for e in d)


# --- curves: frame budgets and error limits ------------------------------------------------------

@pytest.mark.parametrize("args,needle", [
    (["--frames", "0"], "frames"),
    (["--frames", "-3"], "frames"),
    (["--max-errors", "-1"], "max_errors"),
])
def test_curve_bad_frame_budget_is_one_line(tmp_path, capsys, args, needle):
    assert main(["curve", "scppm", "--ns", "3", "--frames", "2", *args, "--out", str(tmp_path / "c")]) == 2
    _one_line_error(capsys, needle, args[1])
    assert not (tmp_path / "c.csv").exists()
    assert main(["curve", "dpsk", "--points", "3", "--frames", "2", *args, "--out", str(tmp_path / "d")]) == 2
    _one_line_error(capsys, needle, args[1])


def test_curve_point_api_refuses_bad_budgets():
    with pytest.raises(ConfigError, match="frames"):
        curves.scppm_point(16, "1/2", 0.1, 3.0, 0)
    with pytest.raises(ConfigError, match="max_errors"):
        curves.scppm_point(16, "1/2", 0.1, 3.0, 4, max_errors=-1)
    with pytest.raises(ConfigError, match="frames"):
        curves.dpsk_point("short", "1/2", "awgn", 3.0, 0)
    with pytest.raises(ConfigError, match="chunk"):
        curves.scppm_point(16, "1/2", 0.1, 3.0, 4, chunk=0)


def test_dpsk_optical_curve_files_name_the_noise_figure_used(tmp_path):
    """The optical axis and limits depend on the preamplifier NF: the CSV header (and plot label)
    must say which NF, not 'ideal NF' when another was simulated."""
    row = {"x": 3.0, "x_unit": "photons/bit", "frames": 2, "frame_errors": 0, "bit_errors": 0, "info_bits": 14064,
           "fer": 0.0, "fer_ci_low": 0.0, "fer_ci_high": 0.84, "ber": 0.0, "iterations_mean": 5.0, "seconds": 1.0}
    c, _ = curves.dpsk_curve_files([row], "short", "1/2", "optical", tmp_path / "nf5", nf_db=5.0)
    head = [line for line in c.read_text().splitlines() if line.startswith("#")]
    x_line = next(line for line in head if line.startswith("# x:"))
    assert "ideal" not in x_line and "NF 5" in x_line, x_line
    assert "# nf_db: 5.0" in head
    n_sp = 10 ** 0.5 / 2
    sh = next(line for line in head if line.startswith("# Shannon_limit_photons/bit:"))
    assert float(sh.split(":")[1]) == pytest.approx((2 ** 0.5 - 1) * n_sp, abs=1e-5)
    c, _ = curves.dpsk_curve_files([row], "short", "1/2", "optical", tmp_path / "ideal")
    x_line = next(line for line in c.read_text().splitlines() if line.startswith("# x:"))
    assert "ideal NF" in x_line


# --- bench scripts: the same self-describing schema ----------------------------------------------

def _load_bench(name):
    import importlib.util
    from pathlib import Path
    path = Path(__file__).resolve().parents[1] / "bench" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"{name}_review", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_bench_scppm_json_has_the_common_schema(tmp_path):
    """Like bench_ldpc / bench_frontend / bench_acquisition / receiver_sensitivity: top-level
    backend_info (device, commit) and the command that made the file; rates from information bits."""
    mod = _load_bench("bench_scppm")
    mod.main(["--orders", "16", "--frames", "2", "--repeats", "1", "--out", str(tmp_path)])
    (path,) = tmp_path.iterdir()
    rep = json.loads(path.read_text())
    assert {"benchmark", "date", "backend_info", "command", "results"} <= rep.keys()
    assert rep["backend_info"]["device"] and rep["backend_info"]["commit"]
    assert "bench_scppm.py" in rep["command"] and "--frames 2" in rep["command"]
    (r,) = rep["results"]
    assert r["M"] == 16 and r["frames"] == 2 and r["decode_info_bits_per_s"] > 0


@pytest.mark.parametrize("script", ["bench_scppm.py", "frame_sync_figures.py", "bench_ldpc.py", "bench_gpu.py",
                                    "bench_frontend.py", "bench_acquisition.py", "receiver_sensitivity.py",
                                    "ldpc_fer_curves.py", "bench_replay_memory.py", "bench_ingest.py"])
def test_bench_scripts_run_from_a_plain_checkout(tmp_path, script):
    """`python bench/X.py` as bench/README.md shows it: without the package installed or PYTHONPATH."""
    import os
    import subprocess
    import sys
    from pathlib import Path
    root = Path(__file__).resolve().parents[1]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    p = subprocess.run([sys.executable, str(root / "bench" / script), "--help"], cwd=tmp_path, env=env,
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr[-500:]
    assert "usage:" in p.stdout


def test_bench_figure_scripts_json_has_the_common_schema(tmp_path):
    """frame_sync_figures.py and ldpc_fer_curves.py (tiny runs): top-level backend_info with the
    device and commit, and the command line, like the other bench JSON files (was 'machine')."""
    fs = _load_bench("frame_sync_figures")
    fs.main(["--esn0", "4.0", "--n-markers", "200", "--n-positions", "2000", "--n-trials", "2",
             "--max-frames", "4", "--out", str(tmp_path / "fs")])
    lf = _load_bench("ldpc_fer_curves")
    lf.main(["--rates", "9/10", "--frames", "4", "--max-fe", "1", "--no-sp", "--out", str(tmp_path / "lf")])
    for sub, script in (("fs", "frame_sync_figures.py"), ("lf", "ldpc_fer_curves.py")):
        (path,) = (tmp_path / sub).iterdir()
        rep = json.loads(path.read_text())
        assert {"benchmark", "date", "backend_info", "command"} <= rep.keys(), rep.keys()
        assert "machine" not in rep
        assert rep["backend_info"]["device"] and rep["backend_info"]["commit"]
        assert script in rep["command"]


@pytest.mark.parametrize("argv", [
    ["simulate", "scppm", "--frames", "1", "--seed", "-1"],
    ["simulate", "dpsk", "--frame", "short", "--frames", "1", "--seed", "-1"],
    ["curve", "scppm", "--ns", "3", "--frames", "1", "--seed", "-1", "--out", "{tmp}/c"],
    ["curve", "dpsk", "--points", "3", "--frames", "1", "--seed", "-1", "--out", "{tmp}/d"],
])
def test_negative_seed_is_one_line(tmp_path, capsys, argv):
    """numpy refuses negative seeds with a traceback (exit 1); the CLI names the bad seed (exit 2)."""
    assert main([a.format(tmp=tmp_path) for a in argv]) == 2
    _one_line_error(capsys, "seed", "-1")


def test_curve_point_api_refuses_negative_seed():
    with pytest.raises(ConfigError, match="seed"):
        curves.scppm_point(16, "1/2", 0.1, 3.0, 1, seed=-1)
    with pytest.raises(ConfigError, match="seed"):
        curves.dpsk_point("short", "1/2", "awgn", 3.0, 1, seed=-1)
