# SPDX-License-Identifier: Apache-2.0
"""Optically pre-amplified DPSK receiver: EDFA -> optical filter -> 1-bit DLI -> balanced detection.

Model (``shared/reference/dvbs2-ldpc-dpsk.md`` section 8.2; ASE-limited, high preamplifier gain):

* Field units are sqrt(photons) referred to the preamplifier input. Slot k carries
  ``r_k = sqrt(I_k n_s) e^{j theta_k} + n_k`` per mode, ``n_k ~ CN(0, N0)``, ``N0 = n_sp`` photons,
  where ``n_s`` = received photons per DPSK bit (``ppb``), ``I_k`` the fading intensity (unit mean)
  and ``n_sp = NF / 2`` (linear noise figure; high-gain limit ``NF = 2 n_sp (G-1)/G -> 2 n_sp``). An
  ideal preamplifier (NF = 3.01 dB) gives ``Eb/N0 = n_s`` (the quantum-limited DPSK reference).
* The optical filter passes ``M`` modes per polarization (``M = B_o T``, x2 for a
  polarization-insensitive filter); the signal occupies one mode, ASE fills all M.
* The DLI ports carry ``A = (r_k + r_{k-1})/2`` and ``B = (r_k - r_{k-1})/2``; balanced photodiodes
  deliver the port energies ``x_A = sum_modes |A|^2``, ``x_B = sum_modes |B|^2`` and
  ``D = x_A - x_B = Re(r_k r*_{k-1})``. Simulating the fields exactly gives the exact statistics:
  signal-ASE beat and ASE-ASE beat noise, non-central chi-square with 2M degrees of freedom per
  port, ``sigma^2 = N0/2`` per port and mode. Moments (bit 0, ``E_b = I n_s``):
  ``E[x_A] = E_b + M sigma^2``, ``Var[x_A] = 2 E_b sigma^2 + M sigma^4``, ``E[x_B] = M sigma^2``,
  ``Var[x_B] = M sigma^4``, ``E[D] = E_b``, ``Var[D] = 2 E_b sigma^2 + 2 M sigma^4``.
  Bit 1 swaps the ports. Hard-decision BER (M = 1): ``P_b = exp(-Eb/N0)/2``.
* Shot noise and thermal/ADC noise are neglected (ASE-limited preamplified receiver).

At a burst start the previous slot is dark: its field is ASE only. The same detector applies to a
baseband AWGN channel (:class:`modem.channel.awgn.AWGNChannel`, M = 1): differential detection of
complex baseband samples is the same arithmetic.
"""
from __future__ import annotations

import numpy as np

from ..errors import ConfigError, ShapeError
from .awgn import FieldChannel

#: Noise figure of an ideal phase-insensitive amplifier, dB (n_sp = 1).
NF_IDEAL_DB = 10.0 * np.log10(2.0)


class PreampDLIReceiver(FieldChannel):
    """Pre-amplified DLI + balanced detection at ``ppb`` photons per DPSK bit and noise figure ``nf_db``.

    Parameters
    ----------
    ppb : float
        Mean received photons per DPSK (channel) bit at the preamplifier input, > 0.
    nf_db : float
        Preamplifier noise figure in dB, >= 3.0103 (ideal).
    modes : int
        M, optical modes per polarization passed by the filter (1 = matched filter).
    """

    def __init__(self, ppb: float, nf_db: float = NF_IDEAL_DB, modes: int = 1):
        try:
            ppb_v, nf_v = float(ppb), float(nf_db)
        except (TypeError, ValueError):
            raise ConfigError(f"PreampDLIReceiver: ppb and nf_db must be numbers, got ppb={ppb!r}, "
                              f"nf_db={nf_db!r}") from None
        if not (np.isfinite(ppb_v) and ppb_v > 0):
            raise ConfigError(f"PreampDLIReceiver: ppb (photons per bit) must be finite and > 0, got ppb={ppb!r}")
        if not np.isfinite(nf_v) or nf_v < NF_IDEAL_DB - 1e-6:
            raise ConfigError(f"PreampDLIReceiver: nf_db must be finite and >= {NF_IDEAL_DB:.4f} dB "
                              f"(quantum limit of a phase-insensitive amplifier), got nf_db={nf_db!r}")
        if isinstance(modes, bool) or not isinstance(modes, (int, np.integer)) or not 1 <= modes <= 1000:
            raise ConfigError(f"PreampDLIReceiver: modes must be an integer in 1..1000, got modes={modes!r}")
        self.ppb, self.nf_db, self.modes = ppb_v, nf_v, int(modes)

    @property
    def n_sp(self) -> float:
        """Spontaneous-emission factor ``NF_lin / 2`` (high gain)."""
        return 10.0 ** (self.nf_db / 10.0) / 2.0

    @property
    def es(self) -> float:
        """Mean signal photons per bit (before fading)."""
        return self.ppb

    @property
    def n0(self) -> float:
        """ASE power spectral density per mode referred to the input, photons (= n_sp)."""
        return self.n_sp

    @property
    def sigma2(self) -> float:
        """Noise variance per DLI port and mode, N0/2."""
        return self.n0 / 2.0

    @property
    def ebn0_db(self) -> float:
        return 10.0 * np.log10(self.es / self.n0)

    def detect(self, x, rng, gain=None, dark_prev=None, state=None):
        """Transmitted field -> port energies; see :func:`dli_detect`."""
        return dli_detect(self, x, rng, gain=gain, dark_prev=dark_prev, state=state)

    def port_moments(self, es=None) -> dict:
        """Theoretical means/variances of x_A, x_B and D for bit 0 (``es`` default: ppb)."""
        return port_moments(self.es if es is None else es, self.sigma2, self.modes)

    def __repr__(self):
        return f"PreampDLIReceiver(ppb={self.ppb}, nf_db={self.nf_db}, modes={self.modes})"


def port_moments(es, sigma2: float, modes: int = 1) -> dict:
    """Bit-0 moments of the balanced detector: E/Var of x_A, x_B and D = x_A - x_B."""
    M = modes
    return {"mean_xa": es + M * sigma2, "var_xa": 2 * es * sigma2 + M * sigma2 ** 2,
            "mean_xb": M * sigma2, "var_xb": M * sigma2 ** 2,
            "mean_d": es, "var_d": 2 * es * sigma2 + 2 * M * sigma2 ** 2}


def dpsk_ber(ebn0) -> np.ndarray:
    """Uncoded hard-decision DPSK BER with a matched filter (M = 1): ``exp(-Eb/N0)/2`` (Eb/N0 linear)."""
    return 0.5 * np.exp(-np.asarray(ebn0, dtype=np.float64))


def delay_line_ports(r, r_prev):
    """Balanced DLI port energies ``|r + r_prev|^2/4`` and ``|r - r_prev|^2/4`` (mode axis summed by caller)."""
    a = r + r_prev
    b = r - r_prev
    return 0.25 * (a.real ** 2 + a.imag ** 2), 0.25 * (b.real ** 2 + b.imag ** 2)


def dli_detect(channel, x, rng, gain=None, dark_prev=None, state=None):
    """Transmit ``x`` through ``channel`` and detect with a 1-bit DLI and balanced photodiodes.

    Parameters
    ----------
    channel : PreampDLIReceiver or AWGNChannel (anything with ``__call__(x, rng, gain)``,
        ``noise(shape, rng)`` and ``modes``).
    x : complex (*batch, n) unit-energy transmitted field of consecutive on-slots.
    gain : float array broadcastable to x, optional -- fading intensity per slot.
    dark_prev : bool array broadcastable to x, optional -- True where the previous slot is dark
        (burst start): the DLI then sees ASE only in its delayed arm.
    state : complex (*batch, M) received fields of the slot before ``x[..., 0]`` (all modes), or
        None: that slot is dark (stream start).

    Returns
    -------
    xa, xb : float64 (*batch, n) port energies (summed over the M modes); state : complex (*batch, M)
    fields of the last slot, to pass to the next chunk (chunking does not change the statistics; with
    the same random stream it does change the draws).
    """
    x = np.asarray(x)
    if x.ndim == 0:
        raise ShapeError("dli_detect: x must be an array (..., n), got a scalar")
    M = int(channel.modes)
    batch, n = x.shape[:-1], x.shape[-1]
    if state is not None:
        state = np.asarray(state)
        if state.shape != batch + (M,):
            raise ShapeError(f"dli_detect: state must have shape {batch + (M,)}, got {state.shape}")
    xa = np.zeros(x.shape)
    xb = np.zeros(x.shape)
    new_state = np.empty(batch + (M,), dtype=np.complex128)
    dark = None
    if dark_prev is not None:
        d = np.asarray(dark_prev, dtype=bool)
        try:
            dark = np.broadcast_to(d, x.shape)
        except ValueError:
            raise ShapeError(f"dli_detect: dark_prev of shape {d.shape} does not broadcast to x of shape {x.shape}") from None
    for m in range(M):
        if m == 0:
            r = channel(x, rng, gain)           # signal mode
        else:
            r = channel.noise(x.shape, rng)     # ASE-only modes
        if n == 0:
            new_state[..., m] = state[..., m] if state is not None else channel.noise(batch, rng)
            continue
        first = channel.noise(batch, rng) if state is None else state[..., m]
        prev = np.concatenate([np.asarray(first)[..., None], r[..., :-1]], axis=-1)
        if dark is not None and dark.any():
            prev[dark] = channel.noise(int(np.count_nonzero(dark)), rng)
        a, b = delay_line_ports(r, prev)
        xa += a
        xb += b
        new_state[..., m] = r[..., -1]
    return xa, xb, new_state
