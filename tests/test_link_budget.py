# SPDX-License-Identifier: Apache-2.0
"""Downlink budgets of the IOAG Optical Link Study Group report, reproduced line by line.

REPORT holds every computed line of every downlink budget the report tabulates (Figures 3/35,
27, 39, 42, 59, 60, 80), as printed. Each is checked to the report's printed precision (half a
unit of its last digit, plus 0.01 where the line is a sum of rounded terms) and, for dB lines,
to 0.05 dB. Where the report's own numbers are inconsistent, DEVIATIONS says why and the test
checks the documented difference instead:

* lunar (Fig. 35 = Fig. 3): Tx transmission 33.0 % gives -4.815 dB, printed -4.82; the report
  used a transmission a little below 33 % (it prints as 33.0 %). With 32.97 % every lunar line
  matches its printed digits (checked in test_lunar_with_unrounded_transmission).
* mars-near (Fig. 59): the printed margin 6.05 dB disagrees with the report's own photons
  7.59 / 1.89 = 6.04 dB.
* earth-relay (Fig. 80): the printed Ave Power at Rx -47.31 dBm disagrees with its own
  26.99 - 74.29 = -47.30 dBm and with its margin 3.17 dB (which needs -47.30). DPSK photons per
  "pulse" are per information bit (3.90E+08 = P / 10 Gb/s / (hc/lambda)) although the budget prints
  a 20 GHz slot rate and 0.5 bits per word; per 20 GHz channel symbol it would be 1.95E+08 and the
  Rx photons 7.26 (checked in test_relay_dpsk_photons_convention).
* leo (Fig. 27): 1 arcsec Rx depointing in a 5 arcsec FOV costs -0.046 dB with the Airy pattern
  convolved with the FOV tophat (Table 1 line 36); the report prints 0.00 dB. Rx system, total
  loss, Rx power and margin differ by 0.050 dB (0.046 plus the report's rounding of its terms:
  it prints 117.11 = 120.12 - 3.01 where the unrounded sum is 117.105); with zero Rx depointing every LEO line
  matches its printed digits (test_leo_without_rx_depointing).
"""
from __future__ import annotations

import math
import re

import numpy as np
import pytest
from scipy import special

from modem.analysis import link_budget as lb
from modem.cli import main
from modem.errors import ConfigError

# line -> attribute of LinkBudget (x100 for percentages)
ATTR = {
    "Tx Ave Power": "tx_power_dbm", "Tx Photons / Pulse": "tx_photons_per_pulse",
    "Tx Antenna Gain": "tx_antenna_gain_dbi", "Tx Transmission Loss": "tx_transmission_loss_db",
    "Tx Pointing Loss": "tx_pointing_loss_db", "Isotropic Space Loss": "isotropic_space_loss_db",
    "Atmospheric Loss": "atmospheric_loss_db", "Rx Antenna Gain": "rx_antenna_gain_dbi",
    "Array Gain": "array_gain_db", "Rx Transmission Loss": "rx_transmission_loss_db",
    "Rx Pointing Loss": "rx_pointing_loss_db", "Rx Fiber Coupling Loss": "fiber_coupling_loss_db",
    "Total Optical Path Loss": "total_optical_path_loss_db", "Ave Power at Rx Detector": "ave_power_rx_dbm",
    "Photons / Pulse at Rx Detector": "photons_per_pulse_rx", "Link Margin": "link_margin_db",
    "Tx Angular Diam": "tx_angular_diam_arcsec", "Tx Footprint Diam": "tx_footprint_diam_m",
    "Uncoded Slot Rate": "uncoded_slot_rate", "Uncoded Bits Per Word": "uncoded_bits_per_word",
    "Relative Airmass": "relative_airmass", "Atm Transmission Along LOS": "atm_transmission_los",
    "EIRP": "eirp_dbw", "Irradiance at g/s": "irradiance_above_atm_w_m2", "Rx system": "rx_system_db",
}
DB_LINES = {"Tx Ave Power", "Tx Antenna Gain", "Tx Transmission Loss", "Tx Pointing Loss", "Isotropic Space Loss",
            "Atmospheric Loss", "Rx Antenna Gain", "Array Gain", "Rx Transmission Loss", "Rx Pointing Loss",
            "Rx Fiber Coupling Loss", "Total Optical Path Loss", "Ave Power at Rx Detector", "Link Margin",
            "EIRP", "Rx system"}
SUMS = {"Total Optical Path Loss", "Ave Power at Rx Detector", "Link Margin", "EIRP", "Rx system",
        "Photons / Pulse at Rx Detector"}

_PPM16_COMMON = {"Tx Angular Diam": "3.02", "Tx Footprint Diam": "2.92E+04", "Uncoded Slot Rate": "5.6E+09",
                 "Uncoded Bits Per Word": "2.00", "Relative Airmass": "2.90", "Atm Transmission Along LOS": "86.2",
                 "Tx Ave Power": "36.99", "Tx Photons / Pulse": "1.11E+11", "Tx Antenna Gain": "108.74",
                 "Tx Transmission Loss": "-4.56", "Tx Pointing Loss": "-0.08", "Isotropic Space Loss": "-324.20",
                 "Rx Antenna Gain": "126.14", "Array Gain": "0.00", "Rx Transmission Loss": "-4.56",
                 "Rx Pointing Loss": "0.00"}
_MARS_COMMON = {"Tx Angular Diam": "1.85", "Relative Airmass": "1.99", "Atm Transmission Along LOS": "90.3",
                "Tx Ave Power": "36.02", "Tx Antenna Gain": "112.98", "Tx Transmission Loss": "-5.19",
                "Tx Pointing Loss": "-0.05", "Atmospheric Loss": "-0.64", "Rx Antenna Gain": "147.72",
                "Array Gain": "0.00", "Rx Transmission Loss": "-4.89", "Rx Pointing Loss": "0.00"}

REPORT = {
    "lunar": {  # Figure 35 (and Figure 3, LADEE: the same numbers)
        "Tx Angular Diam": "3.78", "Tx Footprint Diam": "7.04E+03", "Uncoded Slot Rate": "5.0E+09",
        "Uncoded Bits Per Word": "2.00", "Relative Airmass": "1.99", "Atm Transmission Along LOS": "90.3",
        "Tx Ave Power": "26.99", "Tx Photons / Pulse": "1.25E+10", "Tx Antenna Gain": "106.77",
        "Tx Transmission Loss": "-4.82", "Tx Pointing Loss": "-0.31", "Isotropic Space Loss": "-309.86",
        "Atmospheric Loss": "-1.44", "Rx Antenna Gain": "118.18", "Array Gain": "6.02",
        "Rx Transmission Loss": "-3.34", "Rx Pointing Loss": "0.00", "Rx Fiber Coupling Loss": "-3.57",
        "Total Optical Path Loss": "-92.38", "Ave Power at Rx Detector": "-65.39",
        "Photons / Pulse at Rx Detector": "7.26", "Link Margin": "2.88"},
    "l2": {**_PPM16_COMMON, "Atmospheric Loss": "-1.65", "Total Optical Path Loss": "-100.16",
           "Ave Power at Rx Detector": "-63.17", "Photons / Pulse at Rx Detector": "10.74", "Link Margin": "5.09"},
    "l1": {**_PPM16_COMMON, "Atmospheric Loss": "-3.15", "Total Optical Path Loss": "-101.66",
           "Ave Power at Rx Detector": "-64.67", "Photons / Pulse at Rx Detector": "7.61", "Link Margin": "3.59"},
    "mars-near": {**_MARS_COMMON, "Tx Footprint Diam": "6.17E+05", "Uncoded Slot Rate": "2.1E+09",
                  "Uncoded Bits Per Word": "2.00", "Tx Photons / Pulse": "2.40E+11", "Isotropic Space Loss": "-354.93",
                  "Total Optical Path Loss": "-105.00", "Ave Power at Rx Detector": "-68.98",
                  "Photons / Pulse at Rx Detector": "7.59", "Link Margin": "6.05"},
    "mars-far": {**_MARS_COMMON, "Tx Footprint Diam": "3.59E+06", "Uncoded Slot Rate": "365.7E+06",
                 "Uncoded Bits Per Word": "3.50", "Tx Photons / Pulse": "1.09E+13", "Isotropic Space Loss": "-370.22",
                 "Total Optical Path Loss": "-120.29", "Ave Power at Rx Detector": "-84.27",
                 "Photons / Pulse at Rx Detector": "10.22", "Link Margin": "7.38"},
    "leo": {  # Figure 27 (OOK, closed on received power)
        "Tx Angular Diam": "8.14", "Tx Footprint Diam": "5.13E+01", "Relative Airmass": "2.90",
        "Atm Transmission Along LOS": "86.2", "Tx Ave Power": "26.99", "Tx Antenna Gain": "100.12",
        "Tx Transmission Loss": "-3.01", "Tx Pointing Loss": "-0.04", "EIRP": "94.05",
        "Isotropic Space Loss": "-260.46", "Atmospheric Loss": "-2.65", "Irradiance at g/s": "1.20E-04",
        "Rx system": "117.11", "Rx Antenna Gain": "120.12", "Array Gain": "0.00", "Rx Transmission Loss": "-3.01",
        "Rx Pointing Loss": "0.00", "Total Optical Path Loss": "-48.93", "Ave Power at Rx Detector": "-21.94",
        "Link Margin": "4.06"},
    "earth-relay": {  # Figure 80 (DPSK)
        "Tx Angular Diam": "4.01", "Tx Footprint Diam": "7.73E+02", "Uncoded Slot Rate": "20.0E+09",
        "Uncoded Bits Per Word": "0.50", "Relative Airmass": "2.90", "Atm Transmission Along LOS": "86.2",
        "Tx Ave Power": "26.99", "Tx Photons / Pulse": "3.90E+08", "Tx Antenna Gain": "106.27",
        "Tx Transmission Loss": "-4.81", "Tx Pointing Loss": "-0.27", "Isotropic Space Loss": "-290.17",
        "Atmospheric Loss": "-1.65", "Rx Antenna Gain": "126.14", "Array Gain": "0.00",
        "Rx Transmission Loss": "-5.80", "Rx Pointing Loss": "0.00", "Rx Fiber Coupling Loss": "-4.00",
        "Total Optical Path Loss": "-74.29", "Ave Power at Rx Detector": "-47.31",
        "Photons / Pulse at Rx Detector": "14.51", "Link Margin": "3.17"},
}

# (scenario, line) -> (computed - printed, tolerance, why)
_LEO_RX_PT = -0.046
DEVIATIONS = {
    ("lunar", "Tx Transmission Loss"): (+0.005, 0.001, "33.0 % printed; the report used ~32.97 %"),
    ("lunar", "Photons / Pulse at Rx Detector"): (+0.0075, 0.002, "same: Tx transmission a little below 33 %"),
    ("mars-near", "Link Margin"): (-0.012, 0.002, "report's 6.05 vs its own 10 log10(7.59/1.89) = 6.04"),
    ("earth-relay", "Ave Power at Rx Detector"): (+0.008, 0.002, "report's -47.31 vs its own 26.99 - 74.29"),
    ("leo", "Rx Pointing Loss"): (_LEO_RX_PT, 0.002, "Airy x FOV tophat at 1 arcsec; report prints 0.00"),
    # these carry the Rx pointing loss plus the report's own rounding (117.11 = 120.12 - 3.01 printed,
    # 117.105 unrounded): -0.050 dB
    ("leo", "Rx system"): (-0.050, 0.003, "Rx pointing loss + the report's rounding"),
    ("leo", "Total Optical Path Loss"): (-0.050, 0.003, "Rx pointing loss + the report's rounding"),
    ("leo", "Ave Power at Rx Detector"): (-0.050, 0.003, "Rx pointing loss + the report's rounding"),
    ("leo", "Link Margin"): (-0.050, 0.003, "Rx pointing loss + the report's rounding"),
}


def _value(b: lb.LinkBudget, line: str) -> float:
    v = getattr(b, ATTR[line])
    return 100.0 * v if line == "Atm Transmission Along LOS" else v


def _unit(printed: str) -> float:
    m = re.fullmatch(r"(-?\d+)(?:\.(\d+))?(?:E([+-]\d+))?", printed)
    assert m, printed
    return 10.0 ** (-len(m.group(2) or "") + int(m.group(3) or 0))


CASES = [(sc, line) for sc, lines in REPORT.items() for line in lines]


@pytest.fixture(scope="module")
def budgets():
    return {name: lb.compute_budget(lb.load_scenario(name)) for name in REPORT}


def test_presets_cover_every_tabulated_downlink():
    assert set(lb.list_presets()) == set(REPORT)


@pytest.mark.parametrize("scenario,line", CASES, ids=[f"{s}:{line}" for s, line in CASES])
def test_report_line(budgets, scenario, line):
    printed = REPORT[scenario][line]
    got = _value(budgets[scenario], line)
    want = float(printed)
    if (scenario, line) in DEVIATIONS:
        diff, tol, _why = DEVIATIONS[(scenario, line)]
        assert got - want == pytest.approx(diff, abs=tol)
    else:
        tol = 0.5 * _unit(printed) + (0.01 if line in SUMS and line in DB_LINES else 0.0) + 1e-9
        if line == "Photons / Pulse at Rx Detector":
            tol += 0.0025 * want          # product of rounded dB terms: 0.01 dB
        assert abs(got - want) <= tol, f"{scenario} {line}: computed {got}, report {printed}"
    if line in DB_LINES and (scenario, line) not in DEVIATIONS:
        assert abs(got - want) <= 0.05, f"{scenario} {line}: {got} vs {printed} differs by more than 0.05 dB"
    elif line in ("Photons / Pulse at Rx Detector", "Tx Photons / Pulse") and scenario != "earth-relay":
        assert abs(10 * math.log10(got / want)) <= 0.05


def test_lunar_with_unrounded_transmission():
    b = lb.compute_budget(lb.load_scenario("lunar").replace(tx_transmission=0.3297))
    assert f"{100 * 0.3297:.1f}" == "33.0"
    for line, printed in REPORT["lunar"].items():
        got = _value(b, line)
        assert abs(got - float(printed)) <= 0.5 * _unit(printed) + 1e-9, (line, got, printed)


def test_leo_without_rx_depointing():
    b = lb.compute_budget(lb.load_scenario("leo").replace(rx_depointing_arcsec=0.0))
    for line, printed in REPORT["leo"].items():
        got = _value(b, line)
        assert abs(got - float(printed)) <= 0.5 * _unit(printed) + 1e-9, (line, got, printed)
    assert b.link_margin_db == pytest.approx(b.ave_power_rx_dbm + 26.0)


def test_relay_dpsk_photons_convention(budgets):
    b = budgets["earth-relay"]
    per_symbol_tx = b.scenario.tx_power_w / b.uncoded_slot_rate / lb.photon_energy(1.55e-6)
    assert per_symbol_tx == pytest.approx(1.95e8, rel=2e-3)
    assert b.tx_photons_per_pulse == pytest.approx(2 * per_symbol_tx)
    assert b.photons_per_pulse_rx / 2 == pytest.approx(7.26, abs=0.005)


def test_report_internal_consistency():
    """The report's margins are 10 log10(N_rx / N_required) of its own printed numbers (to 0.012 dB)."""
    for name in ("lunar", "l2", "l1", "mars-near", "mars-far", "earth-relay"):
        r = REPORT[name]
        req = lb.load_scenario(name).required_photons_per_pulse
        assert 10 * math.log10(float(r["Photons / Pulse at Rx Detector"]) / req) == pytest.approx(
            float(r["Link Margin"]), abs=0.0125)


# --- the individual terms ----------------------------------------------------------------------

def test_pickering_airmass():
    assert lb.pickering_airmass(90) == pytest.approx(1.0, abs=2e-4)
    assert lb.pickering_airmass(30) == pytest.approx(1.9932, abs=1e-3)
    assert lb.pickering_airmass(20) == pytest.approx(2.9002, abs=1e-3)
    assert lb.pickering_airmass(0.001) < 40          # finite at the horizon, unlike 1/sin h
    with pytest.raises(ConfigError):
        lb.pickering_airmass(0)


def test_tx_pointing_loss_is_airy_pattern():
    lam, D = 1.55e-6, 0.1076
    th = 0.5 * lb.ARCSEC
    x = math.pi * D * th / lam
    assert lb.tx_pointing_loss_db(D, lam, th) == pytest.approx(20 * math.log10(2 * special.j1(x) / x))
    assert lb.tx_pointing_loss_db(D, lam, 0.0) == 0.0
    # first null of the Airy pattern: x = 3.8317
    assert lb.tx_pointing_loss_db(D, lam, 3.8317 * lam / (math.pi * D)) < -60


def test_rx_pointing_loss_matches_brute_force_convolution():
    """Airy pattern convolved with the FOV disk, by a 2-D grid sum, vs the 1-D integral."""
    rho, delta = 6.0, 3.0                    # FOV radius and offset in units of lambda / (pi D)
    h = 0.02
    g = np.arange(-40, 40, h) + h / 2
    X, Y = np.meshgrid(g, g)
    r = np.hypot(X, Y)
    airy = (2 * special.j1(r) / r) ** 2 / (4 * np.pi)      # normalized to unit total energy
    off = (np.hypot(X - delta, Y) < rho).sum() and np.sum(airy * (np.hypot(X - delta, Y) < rho)) * h * h
    on = np.sum(airy * (r < rho)) * h * h
    assert lb._encircled_offset(rho, 0.0) == pytest.approx(on, abs=2e-3)
    assert lb._encircled_offset(rho, delta) == pytest.approx(off, abs=2e-3)
    lam, D = 1.55e-6, 1.0
    m = math.pi * D / lam
    want = 10 * math.log10(lb._encircled_offset(rho, delta) / lb._encircled_offset(rho, 0.0))
    assert lb.rx_pointing_loss_db(D, lam, 2 * rho / m, delta / m) == pytest.approx(want)


def test_rx_pointing_loss_grows_towards_fov_edge():
    lam, D, fov = 1.55e-6, 0.5, 5 * lb.ARCSEC
    losses = [lb.rx_pointing_loss_db(D, lam, fov, d * lb.ARCSEC) for d in (0.0, 0.5, 1.0, 2.0, 2.5, 3.5)]
    assert losses[0] == 0.0
    assert all(a > b for a, b in zip(losses, losses[1:]))
    assert -3.5 < losses[4] < -2.5                    # spot centred on the FOV edge: about half inside
    assert losses[5] < -15


# --- scenarios, options, required photons ------------------------------------------------------

def test_scenario_file_and_validation(tmp_path):
    p = tmp_path / "mine.toml"
    p.write_text((lb.SCENARIO_DIR / "mars-far.toml").read_text().replace("range_km = 4.00e8", "range_km = 2.0e8"))
    b = lb.compute_budget(lb.load_scenario(str(p)))
    far = lb.compute_budget(lb.load_scenario("mars-far"))
    assert b.link_margin_db - far.link_margin_db == pytest.approx(20 * math.log10(2))
    with pytest.raises(ConfigError, match="unknown scenario"):
        lb.load_scenario("jupiter")
    with pytest.raises(ConfigError, match="unknown keys"):
        lb.scenario_from_dict({"rangekm": 1})
    with pytest.raises(ConfigError, match="modulation"):
        lb.load_scenario("lunar").replace(modulation="12-PPM")
    with pytest.raises(ConfigError, match="loss"):
        lb.load_scenario("lunar").replace(scintillation_loss_db=1.0)


FAKE = [{"chain": "scppm", "M": 128, "rate": "1/2", "nb": 0.1, "ns_required": 1.80, "gap_db": 0.53,
         "target_fer": 0.01, "frames_total": 5000, "date": "2025-01-01"},
        {"chain": "dpsk", "frame": "normal", "rate": "1/2", "nf_db": 3.01, "photons_per_info_bit": 2.5,
         "target_fer": 0.01, "frames_total": 900, "date": "2025-01-01"}]


def test_required_measured_lookup_and_fallbacks():
    from modem.analysis.capacity import ns_capacity_limit
    far = lb.load_scenario("mars-far")
    r = lb.required_signal(far, "measured", sensitivity=FAKE)
    assert (r.source, r.photons_per_pulse) == ("measured", 1.80)
    r = lb.required_signal(far.replace(detector_efficiency=0.5), "measured", sensitivity=FAKE)
    assert r.photons_per_pulse == pytest.approx(3.60) and r.detected_ns == 1.80
    r = lb.required_signal(far.replace(nb=0.2), "measured", sensitivity=FAKE)      # same M, rate: measured gap
    assert r.source == "capacity+gap"
    assert r.photons_per_pulse == pytest.approx(ns_capacity_limit(128, "1/2", 0.2) * 10 ** 0.053)
    near = lb.load_scenario("mars-near")                                          # nothing for M=16
    r = lb.required_signal(near, "measured", sensitivity=FAKE)
    assert r.source == "capacity+gap" and "0.80 dB" in r.detail
    assert r.photons_per_pulse == pytest.approx(ns_capacity_limit(16, "1/2", 0.1) * 10 ** 0.08)
    r = lb.required_signal(lb.load_scenario("earth-relay"), "measured", sensitivity=FAKE)
    assert (r.source, r.photons_per_pulse) == ("measured", 2.5)
    b = lb.compute_budget(far, "measured", sensitivity=FAKE)
    assert b.study_link_margin_db == pytest.approx(7.38, abs=0.005)
    assert b.link_margin_db == pytest.approx(10 * math.log10(b.photons_per_pulse_rx / 1.80))
    with pytest.raises(ConfigError):
        lb.required_signal(far, "guess")


def test_shipped_sensitivity_file_has_provenance():
    entries = lb.load_sensitivity()
    if not entries:
        pytest.skip("no measured sensitivity file")
    for e in entries:
        assert e["target_fer"] == 0.01 and e["frames_total"] > 0 and e["date"] and e["commit"]
        if e["chain"] == "scppm":
            assert 0 < e["gap_db"] < 1.0 and e["ns_required"] > e["ns_capacity_limit"]
            assert min(e["points_frame_errors"]) < e["target_fer"] * max(e["points_frames"]) < max(e["points_frame_errors"])


def test_cli_mars_far_measured(capsys):
    assert main(["link-budget", "--scenario", "mars-far", "--required", "measured"]) == 0
    out = capsys.readouterr().out
    assert "Link Margin (study)                        7.38 dB" in out
    assert re.search(r"Link Margin \((measured|capacity\+gap)\)\s+\d+\.\d\d dB", out)
    assert "Required Photons / Pulse (study)" in out


def test_cli_options_and_json(capsys):
    import json
    assert main(["link-budget", "-s", "l2", "--scintillation-loss-db", "-2.5", "--title", "L1", "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["link_margin_db"] == pytest.approx(3.59, abs=0.005)
    assert main(["link-budget", "--list"]) == 0
    assert "mars-far" in capsys.readouterr().out
    assert main(["link-budget", "--range-km", "1000"]) == 2                       # missing parameters
    assert "missing keys" in capsys.readouterr().err
