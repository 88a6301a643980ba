# SPDX-License-Identifier: Apache-2.0
"""Complex baseband AWGN channel parameterized by Es/N0 per DPSK symbol.

``r = sqrt(g * Es) * x + n``, ``n ~ CN(0, N0)`` (variance N0/2 per real dimension), with ``Es = 1``
and ``N0 = 10**(-EsN0_dB/10)``; ``x`` is the unit-energy transmitted field and ``g`` an optional
power gain (fading intensity, unit mean). DPSK carries one bit per symbol, so Es/N0 = Eb/N0 of the
channel bit. Differential detection of ``r`` (``Re r_k r*_{k-1}``) is exactly the balanced DLI of
:mod:`modem.channel.optical` with M = 1, so the same port energies and LLRs apply
(``sigma2 = N0/2`` per port).
"""
from __future__ import annotations

import numpy as np

from ..errors import ConfigError, ShapeError


class FieldChannel:
    """A received field ``sqrt(gain * es) x + n``, ``n ~ CN(0, n0)``: what the AWGN channel and the
    pre-amplified receiver (signal + ASE) share. Subclasses define ``es`` and ``n0``."""

    def noise(self, shape, rng) -> np.ndarray:
        """CN(0, N0) samples of ``shape`` (complex128)."""
        sd = np.sqrt(self.n0 / 2.0)
        return sd * (rng.standard_normal(shape) + 1j * rng.standard_normal(shape))

    def __call__(self, x, rng, gain=None) -> np.ndarray:
        """Received field ``sqrt(gain*Es) x + n`` for transmitted unit-energy field ``x`` (*batch, n) complex."""
        who = type(self).__name__
        x = np.asarray(x)
        if x.ndim == 0:
            raise ShapeError(f"{who}: x must be an array (..., n), got a scalar")
        if x.size and not np.all(np.isfinite(x)):
            raise ShapeError(f"{who}: x must be finite, found NaN/inf")
        amp = np.sqrt(self.es) if gain is None else np.sqrt(self.es * _gain(gain, x.shape, who))
        return amp * x + self.noise(x.shape, rng)


class AWGNChannel(FieldChannel):
    """AWGN at a given Es/N0 (dB) per DPSK symbol, Es = 1.

    Parameters
    ----------
    esn0_db : float
        Es/N0 in dB (finite).
    """

    modes = 1

    def __init__(self, esn0_db: float):
        try:
            v = float(esn0_db)
        except (TypeError, ValueError):
            raise ConfigError(f"AWGNChannel: esn0_db must be a number, got esn0_db={esn0_db!r}") from None
        if not np.isfinite(v):
            raise ConfigError(f"AWGNChannel: esn0_db must be finite, got esn0_db={esn0_db!r}")
        self.esn0_db = v

    @property
    def es(self) -> float:
        """Mean received energy per symbol (before fading)."""
        return 1.0

    @property
    def n0(self) -> float:
        return 10.0 ** (-self.esn0_db / 10.0)

    @property
    def sigma2(self) -> float:
        """Noise variance per DLI port (per mode), N0/2."""
        return self.n0 / 2.0

    def __repr__(self):
        return f"AWGNChannel(esn0_db={self.esn0_db})"


def _gain(gain, shape, who):
    g = np.asarray(gain, dtype=np.float64)
    bad = ~(np.isfinite(g) & (g >= 0))
    if g.size and bad.any():
        raise ShapeError(f"{who}: gain (fading intensity) must be finite and >= 0, got "
                         f"{float(g[bad].ravel()[0])!r} ({int(bad.sum())} bad entries)")
    try:
        ok = np.broadcast_shapes(g.shape, shape) == tuple(shape)   # TO x's shape, not just with it
    except ValueError:
        ok = False
    if not ok:
        raise ShapeError(f"{who}: gain of shape {g.shape} does not broadcast to x of shape {shape}")
    return g
