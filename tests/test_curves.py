# SPDX-License-Identifier: Apache-2.0
"""Error-rate curves and the sensitivity measurement (small runs; the committed curves under
docs/curves/ and modem/analysis/scenarios/_sensitivity.toml come from `python3 -m
modem.analysis.curves --scppm --dpsk ...`)."""
from __future__ import annotations

import csv
import json
import math

import pytest

from modem.analysis import curves
from modem.analysis.capacity import ns_capacity_limit
from modem.cli import main
from modem.errors import ConfigError


def test_limits():
    assert curves.shannon_esn0_db("1/2") == pytest.approx(10 * math.log10(math.sqrt(2) - 1))
    assert curves.bpsk_esn0_db("1/2") == pytest.approx(0.187 - 3.0103, abs=0.01)   # Eb/N0 0.187 dB
    assert curves.bpsk_esn0_db("1/2") > curves.shannon_esn0_db("1/2")


def test_threshold_interpolation():
    x = curves.threshold([1.0, 2.0, 4.0], [0.5, 0.1, 0.001])
    # between 2 and 4 (in dB): log10 FER from -1 to -3, target -2 -> halfway in dB -> sqrt(8)
    assert x == pytest.approx(math.sqrt(8.0))
    assert curves.threshold([1.0, 2.0], [0.5, 0.0]) == 2.0                 # no error at the upper point
    assert curves.threshold([1.0, 2.0], [0.5, 0.02], 0.1, db=False) == pytest.approx(
        1 + (math.log10(0.5) - math.log10(0.1)) / (math.log10(0.5) - math.log10(0.02)))
    with pytest.raises(ConfigError, match="bracket"):
        curves.threshold([1.0, 2.0], [0.5, 0.2])


def test_scppm_points_stop_early_and_count():
    ticks = []
    lim = ns_capacity_limit(16, "1/2", 0.1)
    low = curves.scppm_point(16, "1/2", 0.1, lim, 64, chunk=16, max_errors=4, progress=ticks.append)
    assert low["frames"] == 16 and low["frame_errors"] >= 4 and low["fer"] > 0.2 and low["ber"] > 0
    assert sum(ticks) == 64                  # the bar advances by the budgeted frames of the point
    high = curves.scppm_point(16, "1/2", 0.1, 4.0, 32, chunk=16)
    assert high["frames"] == 32 and high["frame_errors"] == 0 and high["fer_ci_high"] < 0.11


def test_measure_sensitivity_entry_and_files(tmp_path):
    rows = []
    e = curves.measure_sensitivity(16, "1/2", 0.1, gaps_db=(0.0, 2.0), frames=32, max_errors=4,
                                   refine_db=10.0, rows_out=rows)
    lim = ns_capacity_limit(16, "1/2", 0.1)
    assert e["ns_capacity_limit"] == pytest.approx(lim, abs=1e-5)
    assert e["ns_required"] == pytest.approx(lim * 10 ** 0.2, abs=1e-4)      # upper point, no errors
    assert e["frames_total"] == sum(r["frames"] for r in rows) and e["commit"] and e["date"]
    path = curves.write_sensitivity({"scppm": [e]}, tmp_path / "s.toml")
    from modem.analysis.link_budget import load_sensitivity
    back = load_sensitivity(path)
    assert back[0]["ns_required"] == e["ns_required"] and back[0]["points_frames"] == e["points_frames"]
    c, p = curves.scppm_curve_files(rows, 16, "1/2", 0.1, tmp_path / "c")
    assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    lines = c.read_text().splitlines()
    assert any(line.startswith("# capacity_limit_ns:") for line in lines)
    data = list(csv.DictReader(line for line in lines if not line.startswith("#")))
    assert [float(r["x"]) for r in data] == [r["x"] for r in rows]


def test_cli_curve_scppm_and_dpsk(tmp_path, capsys):
    out = tmp_path / "s"
    assert main(["curve", "scppm", "--order", "16", "--ns", "1.2", "3.0", "--frames", "16", "--max-errors", "2",
                 "--out", str(out), "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert len(d["points"]) == 2 and (tmp_path / "s.png").exists() and (tmp_path / "s.csv").exists()
    assert d["points"][0]["fer"] > d["points"][1]["fer"]
    out = tmp_path / "d"
    assert main(["curve", "dpsk", "--frame", "short", "--channel", "awgn", "--points", "-3", "6", "--frames", "8",
                 "--max-errors", "2", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "wrote" in text and (tmp_path / "d.png").exists()
    rows = list(csv.DictReader(line for line in (tmp_path / "d.csv").read_text().splitlines()
                               if not line.startswith("#")))
    assert float(rows[0]["fer"]) > float(rows[1]["fer"]) and rows[0]["x_unit"] == "Es/N0 dB"
    assert "Shannon_limit_Es/N0_dB" in (tmp_path / "d.csv").read_text()
