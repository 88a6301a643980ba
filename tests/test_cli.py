# SPDX-License-Identifier: Apache-2.0
"""The modem command-line program: help, JSON report fields, backend errors."""
import json
import os
import subprocess
import sys

import pytest

from modem import backend
from modem.cli import main

REQUIRED = {"frames", "frame_errors", "bit_errors", "info_bits", "fer", "ber", "iterations_mean", "seconds",
            "info_bits_per_s", "backend"}


def test_help_lists_subcommands(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    for word in ("simulate", "capacity", "info"):
        assert word in out
    with pytest.raises(SystemExit):
        main(["simulate", "scppm", "--help"])
    out = capsys.readouterr().out
    assert "--order" in out and "--ns" in out and "--max-iter" in out


def test_simulate_scppm_json(capsys, monkeypatch):
    monkeypatch.setenv("MODEM_BACKEND", "cpu")
    assert main(["simulate", "scppm", "--order", "16", "--rate", "1/2", "--ns", "2.0", "--nb", "0.1",
                 "--frames", "3", "--seed", "5", "--json"]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert REQUIRED <= rep.keys()
    assert rep["frames"] == 3 and rep["backend"] == "cpu" and rep["info_bits"] == 3 * 7526
    assert rep["frame_errors"] == 0 and rep["gap_db"] > 0


def test_simulate_scppm_summary_with_snsdp_detector(capsys, monkeypatch):
    monkeypatch.setenv("MODEM_BACKEND", "cpu")
    assert main(["simulate", "scppm", "--order", "16", "--ns", "3.0", "--efficiency", "0.8", "--dark", "0.001",
                 "--dead-time", "2", "--frames", "2", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "backend          cpu" in out and "FER" in out


def test_bad_order_is_one_clear_line(capsys):
    assert main(["simulate", "scppm", "--order", "12", "--frames", "1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "M=12" in err[0]


@pytest.mark.skipif(backend.gpu_available(), reason="this machine has a GPU")
def test_gpu_request_without_gpu_fails_with_one_line():
    env = dict(os.environ, MODEM_BACKEND="gpu")
    p = subprocess.run([sys.executable, "-m", "modem.cli", "simulate", "scppm", "--frames", "1"],
                       capture_output=True, text=True, env=env)
    assert p.returncode == 2
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("modem: error: MODEM_BACKEND=gpu requested but")


def test_capacity_command(capsys):
    assert main(["capacity", "--order", "16", "--rate", "1/2", "--nb", "0.1", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows[0]["ns_limit"] == pytest.approx(1.2794, abs=1e-3)
