# SPDX-License-Identifier: Apache-2.0
"""Optical downlink budgets in the format of the IOAG Optical Link Study Group report.

Every term is computed exactly as the report's Table 1 (IOAG.T.OLSG.2012.V1, section 2.3.1)
defines it, with ``lambda`` the wavelength, ``R`` the range, ``D`` the aperture diameters:

====  ============================  ==============================================================
 #    quantity                      definition
====  ============================  ==============================================================
 7    Uncoded Slot Rate             PPM: pulse rate x M, no dead time; pulse rate = data rate /
                                    (bits per word); DPSK: channel symbol rate = data rate / r
 8    Uncoded Bits Per Word         log2(M) x code rate (PPM); 1 x code rate (DPSK)
 10   Tx Angular Diam               theta_TX = 4 lambda / (pi D_TX) (1/e^2 diffraction limit)
 11   Tx Footprint Diam             R x theta_TX
 15   Relative Airmass              Pickering (2002): 1 / sin(h + 244 / (165 + 47 h^1.1)), h in deg
 16   Atm Transmission Along LOS    T = exp(M ln T_ATM)
 27   Tx Photons / Pulse            E_pulse / (h c / lambda), E_pulse = P_TX / pulse rate
 28   Tx Antenna Gain               20 log10(pi D_TX / lambda)
 29   Tx Transmission Loss          10 log10 T_TX
 30   Tx Pointing Loss              10 log10 (2 J1(m theta) / (m theta))^2, m = pi D_TX / lambda
 31   Isotropic Space Loss          -20 log10(4 pi R / lambda)
 32   Atmospheric Loss              10 log10 T + L_SCINT
 33   Rx Antenna Gain               20 log10(pi D_RX / lambda)
 34   Array Gain                    10 log10 N_array
 35   Rx Transmission Loss          10 log10 T_RX
 36   Rx Pointing Loss              Airy pattern of the Rx aperture convolved with the FOV tophat
                                    (diameter Rx FOV), at the Rx depointing, relative to on-axis
 37   Total Optical Path Loss       sum of 28..36 and the fiber coupling loss
 38   Ave Power at Rx Detector      P_TX [dBm] + L_OPT
 39   Photons / Pulse at Rx         N_TX pulse x 10^(L_OPT / 10)
 40   Link Margin                   10 log10(N_RX pulse / N_required) (PPM, DPSK);
                                    P_RX - P_required [dBm] (OOK, where the report gives a power)
====  ============================  ==============================================================

Losses are negative dB numbers, gains positive, as printed in the report. Two conventions the
report's own numbers imply and that this module follows (the tests document both):

* Rx pointing loss is normalized to the on-axis value: the absolute encircled energy of the Airy
  pattern in a 5 arcsec FOV is 0.23 dB below 1 for a 0.5 m aperture, yet the report prints
  0.00 dB (LEO, with 1 arcsec Rx depointing).
* DPSK photons per "pulse" are photons per information bit: the relay budget prints a 20 GHz
  slot rate and 0.5 bits per word, but its 3.90E+08 Tx photons/pulse is P_TX / 10 Gb/s / (hc/lambda)
  (per channel symbol it would be 1.95E+08, 3.01 dB less).

Required photons per pulse (line 24) come either from the study (``required="study"``) or from
this modem's own SCPPM decoder (``required="measured"``): the detected signal photons per pulse at
which the decoder reaches FER 1e-2 for the scenario's M, code rate and background ``nb`` (detected
counts per slot, as the receiver and the measurements see it: efficiency already applied), from ``scenarios/_sensitivity.toml`` (written by :func:`modem.analysis.curves.measure_sensitivity`),
divided by the detector efficiency to refer it to the detector input like the study's figure.
Where no measurement exists for that (M, rate, nb), the fallback is the Poisson capacity limit
plus the decoder's measured gap (from a measurement at the same M and rate, else the 0.8 dB that
``tests/test_scppm_decoder.py`` verifies at M = 16/64/128, rate 1/2, nb = 0.1); the result
says which source was used.
"""
from __future__ import annotations

import dataclasses
import math
import tomllib
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

from scipy import integrate, special

from ..errors import ConfigError

__all__ = [
    "PLANCK", "LIGHT_SPEED", "ARCSEC", "SCENARIO_DIR", "SENSITIVITY_FILE",
    "Scenario", "LinkBudget", "RequiredSignal",
    "pickering_airmass", "antenna_gain_db", "tx_pointing_loss_db", "rx_pointing_loss_db",
    "isotropic_space_loss_db", "photon_energy",
    "compute_budget", "required_signal", "list_presets", "load_scenario", "scenario_from_dict",
    "load_sensitivity", "format_budget",
]

PLANCK = 6.62607015e-34        # J s (exact, SI 2019)
LIGHT_SPEED = 299792458.0      # m/s (exact)
ARCSEC = math.pi / (180.0 * 3600.0)
SCENARIO_DIR = Path(__file__).with_name("scenarios")
SENSITIVITY_FILE = SCENARIO_DIR / "_sensitivity.toml"
#: Gap to capacity (dB) at which tests/test_scppm_decoder.py verifies FER < 1e-2 (M = 16/64/128,
#: rate 1/2, nb = 0.1): the fallback when no measurement exists.
FALLBACK_GAP_DB = 0.8


# --------------------------------------------------------------------------------------------
# physics of the individual terms
# --------------------------------------------------------------------------------------------

def photon_energy(wavelength_m: float) -> float:
    """h c / lambda in J."""
    return PLANCK * LIGHT_SPEED / wavelength_m


def pickering_airmass(elevation_deg: float) -> float:
    """Relative airmass at apparent elevation ``h`` (deg), Pickering (2002):
    ``1 / sin(h + 244 / (165 + 47 h^1.1))`` (arguments in degrees)."""
    h = float(elevation_deg)
    if not 0.0 < h <= 90.0:
        raise ConfigError(f"pickering_airmass: elevation must be in (0, 90] deg, got {elevation_deg!r}")
    return 1.0 / math.sin(math.radians(h + 244.0 / (165.0 + 47.0 * h ** 1.1)))


def antenna_gain_db(diameter_m: float, wavelength_m: float) -> float:
    """Telescope gain 20 log10(pi D / lambda) (Table 1, lines 28 and 33)."""
    return 20.0 * math.log10(math.pi * diameter_m / wavelength_m)


def isotropic_space_loss_db(range_m: float, wavelength_m: float) -> float:
    """-20 log10(4 pi R / lambda) (negative, Table 1 line 31)."""
    return -20.0 * math.log10(4.0 * math.pi * range_m / wavelength_m)


def _airy(x: float) -> float:
    """(2 J1(x) / x)^2, the far-field intensity of a uniformly lit circular aperture."""
    if abs(x) < 1e-8:
        return 1.0
    return (2.0 * special.j1(x) / x) ** 2


def tx_pointing_loss_db(diameter_m: float, wavelength_m: float, depointing_rad: float) -> float:
    """10 log10 (2 J1(m theta) / (m theta))^2 with m = pi D / lambda (negative, Table 1 line 30)."""
    return 10.0 * math.log10(_airy(math.pi * diameter_m / wavelength_m * depointing_rad))


def _encircled_offset(rho: float, delta: float) -> float:
    """Fraction of the Airy pattern's energy inside a disk of radius ``rho`` whose center is offset
    by ``delta`` from the pattern's center (both in units of lambda / (pi D)).

    The energy density in radius x is 2 J1(x)^2 / x (the derivative of 1 - J0^2 - J1^2); the
    circle of radius x around the pattern center lies inside the disk for a fraction
    arccos((x^2 + delta^2 - rho^2) / (2 x delta)) / pi of its length.
    """
    if delta <= 0.0:
        return 1.0 - special.j0(rho) ** 2 - special.j1(rho) ** 2
    inner = 0.0
    if delta < rho:
        x0 = rho - delta
        inner = 1.0 - special.j0(x0) ** 2 - special.j1(x0) ** 2

    def f(x):
        c = (x * x + delta * delta - rho * rho) / (2.0 * x * delta)
        return 2.0 * special.j1(x) ** 2 / x * math.acos(min(1.0, max(-1.0, c))) / math.pi

    lo, hi = abs(rho - delta), rho + delta
    part, _ = integrate.quad(f, lo, hi, limit=max(200, int(hi - lo) * 4), epsabs=1e-13, epsrel=1e-11)
    return inner + part


def rx_pointing_loss_db(diameter_m: float, wavelength_m: float, fov_rad: float, depointing_rad: float) -> float:
    """Rx pointing loss (Table 1 line 36): the Airy pattern of the Rx aperture convolved with the
    tophat FOV (diameter ``fov_rad``), at ``depointing_rad`` off axis, relative to on-axis
    (so 0 dB at zero depointing, as every budget of the report prints)."""
    if depointing_rad == 0.0:
        return 0.0
    m = math.pi * diameter_m / wavelength_m
    rho, delta = m * fov_rad / 2.0, m * depointing_rad
    return 10.0 * math.log10(_encircled_offset(rho, delta) / _encircled_offset(rho, 0.0))


# --------------------------------------------------------------------------------------------
# scenario
# --------------------------------------------------------------------------------------------

def _f(unit, help_, **kw):
    return field(metadata={"unit": unit, "help": help_}, **kw)


@dataclass(frozen=True)
class Scenario:
    """Inputs of a downlink budget (Table 1, lines 1-25). Fractions (transmissions) are 0..1;
    losses are negative dB."""

    name: str = _f("", "preset name")
    title: str = _f("", "heading of the budget")
    range_km: float = _f("km", "range Tx-Rx")
    elevation_deg: float = _f("deg", "elevation of the Rx line of sight")
    modulation: str = _f("", "'<M>-PPM', 'DPSK' or 'OOK'")
    wavelength_um: float = _f("um", "Tx wavelength")
    tx_power_w: float = _f("W", "Tx average power")
    data_rate_bps: float = _f("bit/s", "Tx (information) data rate")
    tx_aperture_m: float = _f("m", "Tx aperture diameter")
    tx_transmission: float = _f("", "Tx optical transmission (0..1)")
    tx_depointing_arcsec: float = _f("arcsec", "Tx pointing error")
    atm_zenith_transmittance: float = _f("", "atmospheric zenith transmittance (0..1)")
    scintillation_loss_db: float = _f("dB", "scintillation loss (<= 0)")
    rx_aperture_m: float = _f("m", "Rx aperture diameter")
    rx_fov_arcsec: float = _f("arcsec", "Rx field of view diameter")
    rx_depointing_arcsec: float = _f("arcsec", "Rx pointing error")
    rx_transmission: float = _f("", "Rx optical transmission (0..1)")
    rx_array_size: int = _f("", "number of Rx apertures", default=1)
    fiber_coupling_loss_db: float = _f("dB", "fiber coupling loss (<= 0)", default=0.0)
    code_rate: str = _f("", "code rate (1/2, 1, ...)", default="1")
    required_photons_per_pulse: float | None = _f("", "the study's required photons/pulse", default=None)
    required_power_dbm: float | None = _f("dBm", "the study's required power (OOK)", default=None)
    nb: float = _f("", "detected background counts per slot, dark counts included, as the receiver measures "
                       "them: not referred to the detector input (for --required measured)", default=0.1)
    detector_efficiency: float = _f("", "detection efficiency (for --required measured)", default=1.0)
    range_label: str = _f("", "'Range' or 'Slant Range'", default="Range")
    notes: str = _f("", "free text", default="")

    def __post_init__(self):
        for name in ("range_km", "wavelength_um", "tx_power_w", "data_rate_bps", "tx_aperture_m",
                     "rx_aperture_m", "rx_fov_arcsec"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v > 0):
                raise ConfigError(f"Scenario {self.name!r}: {name} must be a number > 0, got {v!r}")
        for name in ("tx_transmission", "rx_transmission", "atm_zenith_transmittance", "detector_efficiency"):
            v = getattr(self, name)
            if isinstance(v, bool) or not (isinstance(v, (int, float)) and 0 < v <= 1):
                raise ConfigError(f"Scenario {self.name!r}: {name} must be in (0, 1], got {v!r}")
        for name in ("tx_depointing_arcsec", "rx_depointing_arcsec", "nb"):
            v = getattr(self, name)
            if isinstance(v, bool) or not (isinstance(v, (int, float)) and math.isfinite(v) and v >= 0):
                raise ConfigError(f"Scenario {self.name!r}: {name} must be >= 0, got {v!r}")
        for name in ("scintillation_loss_db", "fiber_coupling_loss_db"):
            v = getattr(self, name)
            if isinstance(v, bool) or not (isinstance(v, (int, float)) and math.isfinite(v) and v <= 0):
                raise ConfigError(f"Scenario {self.name!r}: {name} is a loss and must be <= 0 dB, got {v!r}")
        for name in ("title", "range_label", "notes"):
            v = getattr(self, name)
            if not isinstance(v, str):
                raise ConfigError(f"Scenario {self.name!r}: {name} must be a string, got {v!r}")
        e = self.elevation_deg
        if isinstance(e, bool) or not isinstance(e, (int, float)) or not 0 < e <= 90:
            raise ConfigError(f"Scenario {self.name!r}: elevation_deg must be a number in (0, 90], got {e!r}")
        v = self.required_photons_per_pulse
        if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v)
                              or v <= 0):
            raise ConfigError(f"Scenario {self.name!r}: required_photons_per_pulse must be a number > 0, got {v!r}")
        v = self.required_power_dbm
        if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v)):
            raise ConfigError(f"Scenario {self.name!r}: required_power_dbm must be a finite number (dBm), got {v!r}")
        if isinstance(self.rx_array_size, bool) or not isinstance(self.rx_array_size, int) or self.rx_array_size < 1:
            raise ConfigError(f"Scenario {self.name!r}: rx_array_size must be an integer >= 1, got {self.rx_array_size!r}")
        self.ppm_order  # validates modulation
        r = self.rate
        if not 0 < r <= 1:
            raise ConfigError(f"Scenario {self.name!r}: code_rate must be in (0, 1], got {self.code_rate!r}")

    @property
    def rate(self) -> Fraction:
        try:
            return Fraction(str(self.code_rate)).limit_denominator(1000)
        except (ValueError, ZeroDivisionError):
            raise ConfigError(f"Scenario {self.name!r}: code_rate must be a number like 1/2, got {self.code_rate!r}") from None

    @property
    def ppm_order(self) -> int | None:
        """M for '<M>-PPM', None for DPSK/OOK."""
        mod = str(self.modulation).strip().upper()
        if mod in ("DPSK", "OOK"):
            return None
        if mod.endswith("-PPM"):
            try:
                M = int(mod[:-4])
            except ValueError:
                M = 0
            if M >= 2 and M & (M - 1) == 0:
                return M
        raise ConfigError(f"Scenario {self.name!r}: modulation must be '<M>-PPM' (M a power of 2), "
                          f"'DPSK' or 'OOK', got {self.modulation!r}")

    def replace(self, **changes) -> "Scenario":
        return dataclasses.replace(self, **changes)


def scenario_from_dict(d: dict, name: str = "") -> Scenario:
    known = {f.name for f in dataclasses.fields(Scenario)}
    unknown = sorted(set(d) - known)
    if unknown:
        raise ConfigError(f"scenario {name or d.get('name', '')!r}: unknown keys {unknown} (known: {sorted(known)})")
    d = dict(d)
    d.setdefault("name", name)
    if "code_rate" in d:
        d["code_rate"] = str(d["code_rate"])
    missing = [f.name for f in dataclasses.fields(Scenario)
               if f.default is dataclasses.MISSING and f.name not in d and f.name != "title"]
    if missing:
        raise ConfigError(f"scenario {d['name']!r}: missing keys {missing}")
    d.setdefault("title", d["name"])
    return Scenario(**d)


def list_presets() -> list[str]:
    """Names of the shipped scenarios (``scenarios/<name>.toml``)."""
    return sorted(p.stem for p in SCENARIO_DIR.glob("*.toml") if not p.stem.startswith("_"))


def load_scenario(name_or_path) -> Scenario:
    """A preset by name (see :func:`list_presets`) or a TOML file path."""
    p = Path(name_or_path)
    if not (p.suffix == ".toml" and p.exists()):
        p = SCENARIO_DIR / f"{name_or_path}.toml"
        if not p.exists() or str(name_or_path).startswith("_"):
            raise ConfigError(f"unknown scenario {str(name_or_path)!r}: not a TOML file, and not one of the "
                              f"presets {list_presets()}")
    try:
        with open(p, "rb") as fh:
            data = tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"scenario file {p}: {exc}") from None
    return scenario_from_dict(data, p.stem)


# --------------------------------------------------------------------------------------------
# required signal: the study's or this decoder's
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class RequiredSignal:
    """Required photons per pulse at the detector input and where it came from."""

    photons_per_pulse: float | None
    source: str            # "study", "measured", "capacity+gap", "none"
    detail: str = ""
    detected_ns: float | None = None      # at the decoder (before dividing by the efficiency)


def load_sensitivity(path=None) -> list[dict]:
    """Measured decoder sensitivities (``[[scppm]]`` / ``[[dpsk]]`` tables) from the data file."""
    p = Path(path) if path is not None else SENSITIVITY_FILE
    if not p.exists():
        return []
    with open(p, "rb") as fh:
        data = tomllib.load(fh)
    out = []
    for chain in ("scppm", "dpsk"):
        for e in data.get(chain, []):
            out.append({"chain": chain, **e})
    return out


def _rate_eq(a, b) -> bool:
    return Fraction(str(a)).limit_denominator(1000) == Fraction(str(b)).limit_denominator(1000)


def required_signal(sc: Scenario, mode: str = "study", *, sensitivity=None) -> RequiredSignal:
    """Required photons/pulse for ``sc``: ``mode="study"`` (the report's figure) or ``"measured"``
    (this modem's decoder at FER 1e-2; see the module docstring)."""
    if mode == "study":
        if sc.required_photons_per_pulse is None:
            if sc.required_power_dbm is not None:
                return RequiredSignal(None, "study", f"IOAG OLSG report: required power {sc.required_power_dbm:.2f} dBm")
            return RequiredSignal(None, "none", "the study gives no required photons/pulse for this scenario")
        return RequiredSignal(float(sc.required_photons_per_pulse), "study", "IOAG OLSG report")
    if mode != "measured":
        raise ConfigError(f"required must be 'study' or 'measured', got {mode!r}")
    entries = load_sensitivity() if sensitivity is None else sensitivity
    M = sc.ppm_order
    eta = sc.detector_efficiency
    if M is not None:
        from .capacity import ns_capacity_limit  # noqa: PLC0415
        same = [e for e in entries if e["chain"] == "scppm" and e["M"] == M and _rate_eq(e["rate"], sc.code_rate)]
        exact = [e for e in same if abs(e["nb"] - sc.nb) <= 1e-12 * max(1.0, sc.nb)]
        if exact:
            e = exact[0]
            ns = float(e["ns_required"])
            return RequiredSignal(ns / eta, "measured",
                                  f"SCPPM decoder, FER {e['target_fer']:g} at ns = {ns:.4f} detected photons/pulse "
                                  f"(M={M}, rate {sc.code_rate}, nb={sc.nb:g}, {e['frames_total']} frames, "
                                  f"{e['date']}), / efficiency {eta:g}", detected_ns=ns)
        limit = ns_capacity_limit(M, str(sc.code_rate), sc.nb)
        if same:
            gap = float(same[0]["gap_db"])
            why = f"gap {gap:.2f} dB measured at nb={same[0]['nb']:g}"
        else:
            gap = FALLBACK_GAP_DB
            why = (f"gap {gap:.2f} dB, the bound tests/test_scppm_decoder.py verifies "
                   f"(FER < 1e-2 at M=16/64/128, rate 1/2, nb=0.1)")
        ns = limit * 10.0 ** (gap / 10.0)
        return RequiredSignal(ns / eta, "capacity+gap",
                              f"no measurement for M={M}, rate {sc.code_rate}, nb={sc.nb:g}: capacity limit "
                              f"{limit:.4f} + {why}, / efficiency {eta:g}", detected_ns=ns)
    if str(sc.modulation).upper() == "DPSK":
        hits = [e for e in entries if e["chain"] == "dpsk" and _rate_eq(e["rate"], sc.code_rate)]
        if not hits:
            return RequiredSignal(None, "none", f"no measured DPSK sensitivity for rate {sc.code_rate}")
        e = hits[0]
        ppib = float(e["photons_per_info_bit"])
        return RequiredSignal(ppib, "measured",
                              f"DVB-S2 {e['frame']} {e['rate']} LDPC+BCH, DPSK pre-amplified receiver "
                              f"(NF {e['nf_db']:.2f} dB), FER {e['target_fer']:g} at {ppib:.3f} photons per "
                              f"information bit ({e['frames_total']} frames, {e['date']})", detected_ns=ppib)
    return RequiredSignal(None, "none", "OOK: the study gives a required power, no decoder measurement")


# --------------------------------------------------------------------------------------------
# the budget
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class LinkBudget:
    scenario: Scenario
    tx_power_dbm: float
    uncoded_slot_rate: float | None
    uncoded_bits_per_word: float | None
    pulse_rate: float | None
    tx_angular_diam_arcsec: float
    tx_footprint_diam_m: float
    relative_airmass: float
    atm_transmission_los: float
    tx_photons_per_pulse: float | None
    tx_antenna_gain_dbi: float
    tx_transmission_loss_db: float
    tx_pointing_loss_db: float
    eirp_dbw: float
    isotropic_space_loss_db: float
    irradiance_above_atm_w_m2: float
    atmospheric_loss_db: float
    rx_antenna_gain_dbi: float
    array_gain_db: float
    rx_transmission_loss_db: float
    rx_pointing_loss_db: float
    fiber_coupling_loss_db: float
    rx_system_db: float
    total_optical_path_loss_db: float
    ave_power_rx_dbm: float
    photons_per_pulse_rx: float | None
    required: RequiredSignal
    link_margin_db: float | None
    study_required: RequiredSignal | None = None
    study_link_margin_db: float | None = None

    def as_dict(self) -> dict:
        d = {k: getattr(self, k) for k in self.__dataclass_fields__ if k not in ("scenario", "required", "study_required")}
        d["scenario"] = dataclasses.asdict(self.scenario)
        d["required"] = dataclasses.asdict(self.required)
        d["study_required"] = None if self.study_required is None else dataclasses.asdict(self.study_required)
        return d


def _margin(sc: Scenario, n_rx, p_rx_dbm, req: RequiredSignal):
    if req.photons_per_pulse is not None and n_rx is not None:
        return 10.0 * math.log10(n_rx / req.photons_per_pulse)
    if req.source == "study" and sc.required_power_dbm is not None:
        return p_rx_dbm - sc.required_power_dbm
    return None


def compute_budget(sc: Scenario, required: str = "study", *, sensitivity=None) -> LinkBudget:
    """The downlink budget of ``sc`` (Table 1). ``required``: "study" or "measured"; with
    "measured" the study's margin is computed too (``study_link_margin_db``)."""
    lam = sc.wavelength_um * 1e-6
    R = sc.range_km * 1e3
    M = sc.ppm_order
    mod = str(sc.modulation).upper()
    r = float(sc.rate)
    p_dbm = 10.0 * math.log10(sc.tx_power_w * 1e3)
    theta_tx = 4.0 * lam / (math.pi * sc.tx_aperture_m)
    if M is not None:
        bits_word = math.log2(M) * r
        pulse_rate = sc.data_rate_bps / bits_word
        slot_rate = pulse_rate * M
    elif mod == "DPSK":
        bits_word = r
        slot_rate = sc.data_rate_bps / r
        pulse_rate = sc.data_rate_bps      # the report's convention: photons per information bit
    else:
        bits_word = slot_rate = pulse_rate = None
    n_tx = sc.tx_power_w / pulse_rate / photon_energy(lam) if pulse_rate else None
    airmass = pickering_airmass(sc.elevation_deg)
    t_los = math.exp(airmass * math.log(sc.atm_zenith_transmittance))
    g_tx = antenna_gain_db(sc.tx_aperture_m, lam)
    l_tx = 10.0 * math.log10(sc.tx_transmission)
    l_tx_pt = tx_pointing_loss_db(sc.tx_aperture_m, lam, sc.tx_depointing_arcsec * ARCSEC)
    eirp_dbw = p_dbm - 30.0 + g_tx + l_tx + l_tx_pt
    l_fs = isotropic_space_loss_db(R, lam)
    irr = 10.0 ** (eirp_dbw / 10.0) / (4.0 * math.pi * R * R)
    l_atm = 10.0 * math.log10(t_los) + sc.scintillation_loss_db
    g_rx = antenna_gain_db(sc.rx_aperture_m, lam)
    g_arr = 10.0 * math.log10(sc.rx_array_size)
    l_rx = 10.0 * math.log10(sc.rx_transmission)
    l_rx_pt = rx_pointing_loss_db(sc.rx_aperture_m, lam, sc.rx_fov_arcsec * ARCSEC, sc.rx_depointing_arcsec * ARCSEC)
    rx_system = g_rx + l_rx + l_rx_pt
    l_opt = g_tx + l_tx + l_tx_pt + l_fs + l_atm + g_rx + g_arr + l_rx + l_rx_pt + sc.fiber_coupling_loss_db
    p_rx = p_dbm + l_opt
    n_rx = n_tx * 10.0 ** (l_opt / 10.0) if n_tx is not None else None
    req = required_signal(sc, required, sensitivity=sensitivity)
    study = required_signal(sc, "study") if required != "study" else None
    return LinkBudget(
        scenario=sc, tx_power_dbm=p_dbm, uncoded_slot_rate=slot_rate, uncoded_bits_per_word=bits_word,
        pulse_rate=pulse_rate, tx_angular_diam_arcsec=theta_tx / ARCSEC, tx_footprint_diam_m=R * theta_tx,
        relative_airmass=airmass, atm_transmission_los=t_los, tx_photons_per_pulse=n_tx,
        tx_antenna_gain_dbi=g_tx, tx_transmission_loss_db=l_tx, tx_pointing_loss_db=l_tx_pt, eirp_dbw=eirp_dbw,
        isotropic_space_loss_db=l_fs, irradiance_above_atm_w_m2=irr, atmospheric_loss_db=l_atm,
        rx_antenna_gain_dbi=g_rx, array_gain_db=g_arr, rx_transmission_loss_db=l_rx, rx_pointing_loss_db=l_rx_pt,
        fiber_coupling_loss_db=sc.fiber_coupling_loss_db, rx_system_db=rx_system,
        total_optical_path_loss_db=l_opt, ave_power_rx_dbm=p_rx, photons_per_pulse_rx=n_rx, required=req,
        link_margin_db=_margin(sc, n_rx, p_rx, req), study_required=study,
        study_link_margin_db=None if study is None else _margin(sc, n_rx, p_rx, study))


def _sci(v):
    return "-" if v is None else f"{v:.2E}"


def format_budget(b: LinkBudget) -> str:
    """The budget as text, in the report's order and precision."""
    sc = b.scenario
    pct = lambda v: f"{100 * v:.1f} %"   # noqa: E731
    inputs = [
        ("INPUT PARAMETERS", None, None),
        (sc.range_label, f"{sc.range_km:.4g}", "km"), ("Elevation", f"{sc.elevation_deg:g}", "deg"),
        ("Modulation Type", str(sc.modulation), ""),
        ("TRANSMITTER", None, None),
        ("Tx Wavelength", f"{sc.wavelength_um:.2f}", "um"), ("Tx Ave Power", f"{sc.tx_power_w:g}", "W"),
        ("Tx Data Rate", f"{sc.data_rate_bps:.4g}", "bit/s"),
        ("Uncoded Slot Rate", _sci(b.uncoded_slot_rate), "1/s"),
        ("Uncoded Bits Per Word", "-" if b.uncoded_bits_per_word is None else f"{b.uncoded_bits_per_word:.2f}", ""),
        ("Tx Aperture Diam", f"{sc.tx_aperture_m:g}", "m"),
        ("Tx Angular Diam", f"{b.tx_angular_diam_arcsec:.2f}", "arcsec"),
        ("Tx Footprint Diam", _sci(b.tx_footprint_diam_m), "m"),
        ("Tx Optical Transmission", pct(sc.tx_transmission), ""),
        ("Tx Depointing", f"{sc.tx_depointing_arcsec:.2f}", "arcsec"),
        ("ATMOSPHERIC LOSSES", None, None),
        ("Atm Zenith Transmittance", pct(sc.atm_zenith_transmittance), ""),
        ("Relative Airmass", f"{b.relative_airmass:.2f}", ""),
        ("Atm Transmission Along LOS", pct(b.atm_transmission_los), ""),
        ("Scintillation Loss", f"{sc.scintillation_loss_db:.1f}", "dB"),
        ("RECEIVER", None, None),
        ("Rx Aperture Diam", f"{sc.rx_aperture_m:.2f}", "m"), ("Rx FOV", f"{sc.rx_fov_arcsec:.2f}", "arcsec"),
        ("Rx Depointing", f"{sc.rx_depointing_arcsec:.2f}", "arcsec"),
        ("Rx Optical Transmission", pct(sc.rx_transmission), ""),
        ("Rx Array Size", f"{sc.rx_array_size}", "apertures"),
        ("Fiber Coupling Loss", f"{sc.fiber_coupling_loss_db:.2f}", "dB"),
        ("Code Rate", f"{float(sc.rate):.2f}", ""),
    ]
    budget = [
        ("LINK BUDGET", None, None),
        ("Tx Ave Power", f"{b.tx_power_dbm:.2f}", "dBm"),
        ("Tx Photons / Pulse", _sci(b.tx_photons_per_pulse), ""),
        ("Tx Antenna Gain", f"{b.tx_antenna_gain_dbi:.2f}", "dBi"),
        ("Tx Transmission Loss", f"{b.tx_transmission_loss_db:.2f}", "dB"),
        ("Tx Pointing Loss", f"{b.tx_pointing_loss_db:.2f}", "dB"),
        ("EIRP", f"{b.eirp_dbw:.2f}", "dBW"),
        ("Isotropic Space Loss", f"{b.isotropic_space_loss_db:.2f}", "dB"),
        ("Irradiance above atmosphere", _sci(b.irradiance_above_atm_w_m2), "W/m^2"),
        ("Atmospheric Loss", f"{b.atmospheric_loss_db:.2f}", "dB"),
        ("Rx Antenna Gain", f"{b.rx_antenna_gain_dbi:.2f}", "dBi"),
        ("Array Gain", f"{b.array_gain_db:.2f}", "dB"),
        ("Rx Transmission Loss", f"{b.rx_transmission_loss_db:.2f}", "dB"),
        ("Rx Pointing Loss", f"{b.rx_pointing_loss_db:.2f}", "dB"),
        ("Rx Fiber Coupling Loss", f"{b.fiber_coupling_loss_db:.2f}", "dB"),
        ("Rx system", f"{b.rx_system_db:.2f}", "dB"),
        ("Total Optical Path Loss", f"{b.total_optical_path_loss_db:.2f}", "dB"),
        ("Ave Power at Rx Detector", f"{b.ave_power_rx_dbm:.2f}", "dBm"),
        ("Photons / Pulse at Rx Detector", "-" if b.photons_per_pulse_rx is None else f"{b.photons_per_pulse_rx:.3g}", ""),
    ]
    if sc.required_power_dbm is not None:
        budget.append(("Required Power (study)", f"{sc.required_power_dbm:.2f}", "dBm"))
    reqs = [(b.study_required, b.study_link_margin_db, "study")] if b.study_required is not None else []
    reqs.append((b.required, b.link_margin_db, b.required.source))
    for req, margin, tag in reqs:
        if req.photons_per_pulse is not None:
            budget.append((f"Required Photons / Pulse ({tag})", f"{req.photons_per_pulse:.3g}", ""))
        budget.append((f"Link Margin ({tag})", "-" if margin is None else f"{margin:.2f}", "dB"))
    lines = [f"{sc.title.upper()} DOWNLINK BUDGET  [{sc.name}]", ""]
    for label, val, unit in inputs + [(None, None, None)] + budget:
        if label is None:
            lines.append("")
        elif val is None:
            lines.append(label)
        else:
            lines.append(f"  {label:<34} {val:>12} {unit}")
    for req in ([b.study_required] if b.study_required is not None else []) + [b.required]:
        if req.detail:
            lines.append(f"  required ({req.source}): {req.detail}")
    if sc.notes:
        lines.append(f"  note: {sc.notes}")
    return "\n".join(lines)
