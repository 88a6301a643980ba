# SPDX-License-Identifier: Apache-2.0
"""APD detector + ADC sample model (PPM) and a balanced-detector sample model (DPSK).

Real-valued samples at a few samples per slot, for the sample-domain front end
(:mod:`modem.sync.samples`).

Conventions (pinned here)
-------------------------
* Time is measured in **slots** (for DPSK a slot is one bit period). Slot ``k`` covers ``[k, k+1)``;
  its pulse is centred at ``k + 1/2``.
* Sample ``n`` is taken at ``t_n = phase + n / (sps (1 + ppm 1e-6))`` slots: ``sps`` nominal samples
  per slot, ``ppm`` the ADC clock offset (positive = ADC clock fast = more samples per slot), ``phase``
  the time of sample 0. Samples run while ``t_n < n_slots``.
* Pulse shape: Gaussian of rms width ``pulse_sigma`` slots, **peak-normalised**:
  ``y(t) = sum_k q_k exp(-(t - k - 1/2)^2 / (2 pulse_sigma^2)) + w(t)``; ``q_k`` is the slot
  amplitude (APD: output electrons of the slot, i.e. gain x primary photoelectrons), ``w`` white
  Gaussian thermal noise of rms ``thermal_sigma`` per sample, in the same units.
* ADC: ``adc_bits`` (None = no quantisation) over ``[-full_scale, full_scale)``; samples are clipped
  to the end codes and returned as float64 values ``code * lsb`` (``lsb = full_scale / 2**(bits-1)``).

APD statistics (:class:`APDDetector`)
-------------------------------------
Primary photoelectrons per slot ``N ~ Poisson(ns x_k + nb)`` (x_k = pulse 0/1). The avalanche gain of
``N`` primaries is drawn from a **gamma distribution** with the mean and variance of McIntyre's
distribution: mean ``G N``, variance ``G^2 (F - 1) N``, McIntyre's excess noise factor
``F = k G + (1 - k)(2 - 1/G)`` (k = ionisation ratio ``k_eff``). So ``q | N ~ Gamma(shape N/(F-1),
scale G (F-1))`` (q = 0 for N = 0), and unconditionally ``E q = G n``, ``Var q = G^2 F n``
(``n = ns x + nb``). The gamma form is the usual moment-matched approximation of McIntyre's skewed
density (exact in the first two moments, approximate in the tails); ``k_eff = 1, G = 1`` degenerates to
F = 1 (no excess noise; the gamma step is skipped, q = N).

DPSK balanced detector (:func:`dpsk_balanced_samples`)
-----------------------------------------------------
Per slot the balanced output ``D_k = sum_modes Re(r_k r*_{k-1})`` of :class:`PreampDLIReceiver`'s
field model (ports ``|r_k +- r_{k-1}|^2/4``), dark slots carry ASE only; ``D_k`` is then shaped and
sampled like the APD slot amplitudes (bit 0 -> ``D ~ +E_b``).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..errors import ConfigError, ShapeError
from .optical import PreampDLIReceiver, delay_line_ports
from .poisson import _as_rng, _check_pulses

__all__ = ["APDDetector", "SampleClock", "apd_samples", "dpsk_balanced_samples", "shape_and_sample",
           "apd_slot_moments"]


def _num(who, name, value, lo, hi, lo_open=False):
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{who}: {name} must be a number in {'(' if lo_open else '['}{lo}, {hi}], "
                          f"got {name}={value!r}") from None
    if not np.isfinite(v) or v < lo or v > hi or (lo_open and v == lo):
        raise ConfigError(f"{who}: {name} must be in {'(' if lo_open else '['}{lo}, {hi}], got {name}={value!r}")
    return v


@dataclass(frozen=True)
class APDDetector:
    """Avalanche photodiode: mean gain ``gain`` (>= 1), ionisation ratio ``k_eff`` in [0, 1].

    ``thermal_sigma`` : rms thermal (TIA) noise per sample, in output electrons at the pulse peak (>= 0).
    """

    gain: float = 50.0
    k_eff: float = 0.02
    thermal_sigma: float = 0.0

    def __post_init__(self):
        object.__setattr__(self, "gain", _num("APDDetector", "gain", self.gain, 1.0, 1e6))
        object.__setattr__(self, "k_eff", _num("APDDetector", "k_eff", self.k_eff, 0.0, 1.0))
        object.__setattr__(self, "thermal_sigma", _num("APDDetector", "thermal_sigma", self.thermal_sigma, 0.0, 1e12))

    @property
    def excess_noise_factor(self) -> float:
        """McIntyre ``F = k G + (1 - k)(2 - 1/G)``."""
        G, k = self.gain, self.k_eff
        return k * G + (1.0 - k) * (2.0 - 1.0 / G)

    def multiply(self, primaries, rng) -> np.ndarray:
        """Avalanche gain of integer primary counts ``N`` -> output electrons float64 (gamma model)."""
        N = np.asarray(primaries)
        F = self.excess_noise_factor
        if F - 1.0 < 1e-12:
            return N * self.gain + 0.0
        q = np.zeros(N.shape, dtype=np.float64)
        pos = N > 0
        q[pos] = rng.gamma(N[pos] / (F - 1.0), self.gain * (F - 1.0))
        return q


def apd_slot_moments(apd: APDDetector, ns: float, nb: float, noise_var: float = 0.0) -> dict:
    """Mean and variance of a slot amplitude ``q`` for an empty (0) and a pulsed (1) slot.

    ``noise_var`` is added to both variances (thermal / ADC noise after the matched filter, see
    :attr:`modem.sync.samples.SampleFrontEnd.noise_gain`). Returns ``{"mean0", "var0", "mean1", "var1"}``.
    """
    ns = _num("apd_slot_moments", "ns", ns, 0.0, 1e12)
    nb = _num("apd_slot_moments", "nb", nb, 0.0, 1e12)
    noise_var = _num("apd_slot_moments", "noise_var", noise_var, 0.0, 1e30)
    G, F = apd.gain, apd.excess_noise_factor
    return {"mean0": G * nb, "var0": G * G * F * nb + noise_var,
            "mean1": G * (ns + nb), "var1": G * G * F * (ns + nb) + noise_var}


@dataclass(frozen=True)
class SampleClock:
    """ADC sampling and pulse shape (see the module conventions).

    Parameters
    ----------
    sps : nominal samples per slot, in [2, 64].
    pulse_sigma : Gaussian pulse rms width in slots, in (0, 2].
    ppm : ADC clock offset in parts per million, |ppm| <= 5000.
    phase : time of sample 0 in slots, in [0, 1).
    adc_bits : ADC resolution 2..16, or None for unquantised float samples.
    full_scale : ADC clipping level (> 0), same units as the samples.
    """

    sps: float = 4.0
    pulse_sigma: float = 0.25
    ppm: float = 0.0
    phase: float = 0.0
    adc_bits: int | None = None
    full_scale: float = 1.0

    def __post_init__(self):
        object.__setattr__(self, "sps", _num("SampleClock", "sps", self.sps, 2.0, 64.0))
        object.__setattr__(self, "pulse_sigma", _num("SampleClock", "pulse_sigma", self.pulse_sigma, 0.0, 2.0, True))
        object.__setattr__(self, "ppm", _num("SampleClock", "ppm", self.ppm, -5000.0, 5000.0))
        ph = _num("SampleClock", "phase", self.phase, 0.0, 1.0)
        if ph >= 1.0:
            raise ConfigError(f"SampleClock: phase must be in [0, 1), got phase={self.phase!r}")
        object.__setattr__(self, "phase", ph)
        if self.adc_bits is not None and (isinstance(self.adc_bits, bool) or not isinstance(self.adc_bits, (int, np.integer))
                                          or not 2 <= self.adc_bits <= 16):
            raise ConfigError(f"SampleClock: adc_bits must be None or an integer in 2..16, got adc_bits={self.adc_bits!r}")
        object.__setattr__(self, "full_scale", _num("SampleClock", "full_scale", self.full_scale, 0.0, 1e15, True))

    @property
    def samples_per_slot(self) -> float:
        """Actual samples per slot ``sps (1 + ppm 1e-6)``."""
        return self.sps * (1.0 + self.ppm * 1e-6)

    @property
    def lsb(self) -> float:
        return 0.0 if self.adc_bits is None else self.full_scale / 2.0 ** (self.adc_bits - 1)

    def sample_times(self, n_slots: int) -> np.ndarray:
        """Sample instants in slots (float64) covering ``n_slots`` slots."""
        r = self.samples_per_slot
        n = max(0, math.ceil((n_slots - self.phase) * r))
        t = self.phase + np.arange(n, dtype=np.float64) / r
        return t[t < n_slots]

    def slot_of_sample(self, pos) -> np.ndarray:
        """Time in slots (float64) of a (fractional) sample position ``pos``: ``phase + pos / samples_per_slot``."""
        return self.phase + np.asarray(pos, dtype=np.float64) / self.samples_per_slot


def shape_and_sample(q, clock: SampleClock, rng, thermal_sigma: float = 0.0) -> np.ndarray:
    """Slot amplitudes ``q`` (n_slots,) -> pulse-shaped, noisy, quantised samples float64 (n_samples,)."""
    q = np.asarray(q, dtype=np.float64)
    if q.ndim != 1:
        raise ShapeError(f"shape_and_sample: q must be 1-D (n_slots,), got shape {q.shape}")
    if q.size and not np.all(np.isfinite(q)):
        i = int(np.flatnonzero(~np.isfinite(q))[0])
        raise ShapeError(f"shape_and_sample: slot amplitudes q must be finite, got q[{i}]={float(q[i])!r}")
    thermal_sigma = _num("shape_and_sample", "thermal_sigma", thermal_sigma, 0.0, 1e12)
    rng = _as_rng(rng, "shape_and_sample")
    t = clock.sample_times(q.shape[0])
    y = np.zeros(t.shape, dtype=np.float64)
    if q.size:
        k0 = np.floor(t).astype(np.int64)
        K = int(math.ceil(6.0 * clock.pulse_sigma)) + 1
        inv = 1.0 / (2.0 * clock.pulse_sigma ** 2)
        for d in range(-K, K + 1):
            k = k0 + d
            ok = (k >= 0) & (k < q.shape[0])
            dt = t[ok] - (k[ok] + 0.5)
            y[ok] += q[k[ok]] * np.exp(-dt * dt * inv)
    if thermal_sigma > 0:
        y += thermal_sigma * rng.standard_normal(y.shape)
    if clock.adc_bits is not None:
        half = 2 ** (clock.adc_bits - 1)
        y = np.clip(np.round(y / clock.lsb), -half, half - 1) * clock.lsb
    return y


def apd_samples(pulses, ns: float, nb: float, apd: APDDetector, clock: SampleClock, rng) -> np.ndarray:
    """PPM slot pulses -> APD + TIA + ADC samples.

    Input
    -----
    pulses : uint8/bool (n_slots,) slot occupancy (e.g. ``SCPPMTransmitter(code).modulate(u).ravel()``).
    ns, nb : mean signal photoelectrons per pulse and background photoelectrons per slot (>= 0).

    Output
    ------
    y : float64 (n_samples,) samples at the instants of :meth:`SampleClock.sample_times`.
    """
    x = _check_pulses(pulses, "apd_samples")
    if x.ndim != 1:
        raise ShapeError(f"apd_samples: pulses must be 1-D (n_slots,), got shape {x.shape}")
    ns = _num("apd_samples", "ns", ns, 0.0, 1e12)
    nb = _num("apd_samples", "nb", nb, 0.0, 1e12)
    rng = _as_rng(rng, "apd_samples")
    N = rng.poisson(ns * x + nb)
    return shape_and_sample(apd.multiply(N, rng), clock, rng, apd.thermal_sigma)


def dpsk_balanced_samples(field, receiver: PreampDLIReceiver, clock: SampleClock, rng,
                          thermal_sigma: float = 0.0) -> np.ndarray:
    """Transmitted DPSK field per slot -> balanced-detector output samples.

    Input
    -----
    field : complex (n_slots,) unit-energy field per slot, ``(-1)**x_k`` in on-slots, 0 in dark slots
        (burst mode: see :class:`modem.modulation.dpsk.BurstFormat`).
    receiver : :class:`PreampDLIReceiver` (photons per bit, noise figure, modes).

    Output
    ------
    y : float64 (n_samples,) samples of ``sum_k D_k p(t - k - 1/2)`` + thermal noise, ``D_k = x_A - x_B``
    in photons (bit 0 -> mean +ppb). The slot before slot 0 is dark.
    """
    f = np.asarray(field)
    if f.ndim != 1:
        raise ShapeError(f"dpsk_balanced_samples: field must be 1-D (n_slots,), got shape {f.shape}")
    if f.size and not np.all(np.isfinite(f)):
        raise ShapeError("dpsk_balanced_samples: field must be finite, found NaN/inf")
    rng = _as_rng(rng, "dpsk_balanced_samples")
    f = f.astype(np.complex128)
    D = np.zeros(f.shape, dtype=np.float64)
    for m in range(receiver.modes):
        r = np.sqrt(receiver.es) * f if m == 0 else np.zeros_like(f)
        r = r + receiver.noise(f.shape, rng)
        prev = np.concatenate([receiver.noise((1,), rng), r[:-1]])
        a, b = delay_line_ports(r, prev)
        D += a - b
    return shape_and_sample(D, clock, rng, thermal_sigma)
