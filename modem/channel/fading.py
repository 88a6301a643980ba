# SPDX-License-Identifier: Apache-2.0
"""Slow log-normal scintillation: a correlated, unit-mean intensity process I(t).

``I(t) = exp(g(t))`` with ``g`` a stationary Gaussian (Ornstein-Uhlenbeck) process, i.e. white
Gaussian noise through a first-order low-pass filter of time constant ``tau_c`` (the coherence time):

* ``Var g = sigma_g^2 = ln(1 + SI)``, ``E g = -sigma_g^2 / 2``  =>  ``E I = 1``, ``Var I = SI``
  (SI = scintillation index, ``Var I / (E I)^2``);
* ``corr(g(t), g(t + tau)) = exp(-|tau| / tau_c)``; the normalized intensity autocovariance is
  ``(exp(sigma_g^2 exp(-|tau|/tau_c)) - 1) / SI`` (-> ``exp(-|tau|/tau_c)`` for small SI).

Because the process is Markov it is sampled **exactly** at any increasing times (no grid):
``g_j = mu + rho_j (g_{j-1} - mu) + sigma_g sqrt(1 - rho_j^2) w_j``, ``rho_j = exp(-(t_j - t_{j-1})/tau_c)``.
So a simulation can evaluate the fade only at the slots it simulates (bursts, interleaved bits
spread over milliseconds) and continue a stream chunk by chunk with the returned state.
"""
from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np

from ..errors import ConfigError, ShapeError


@numba.njit(cache=True)
def _ou_sample(t, w, t0, g0, has_state, mu, sg, tau, out):  # pragma: no cover - compiled
    rows, n = t.shape
    for r in range(rows):
        tp = t0[r]
        gp = g0[r]
        have = has_state[r]
        for j in range(n):
            if have:
                rho = np.exp(-(t[r, j] - tp) / tau)
                g = mu + rho * (gp - mu) + sg * np.sqrt(max(0.0, 1.0 - rho * rho)) * w[r, j]
            else:
                g = mu + sg * w[r, j]
                have = True
            out[r, j] = g
            gp = g
            tp = t[r, j]
        t0[r] = tp
        g0[r] = gp
        has_state[r] = have


@dataclass
class ScintillationState:
    """Streaming state: time (s) and log-intensity of the last sample of each process (batch shape)."""

    t: np.ndarray
    g: np.ndarray


class LognormalScintillation:
    """Log-normal intensity scintillation with index ``scint_index`` and coherence time ``coherence_s``.

    Parameters
    ----------
    scint_index : float
        SI = Var(I) / E(I)^2 >= 0 (0: no fading, I = 1).
    coherence_s : float
        Correlation time tau_c of the log-intensity, seconds (> 0).
    """

    def __init__(self, scint_index: float, coherence_s: float):
        try:
            si, tc = float(scint_index), float(coherence_s)
        except (TypeError, ValueError):
            raise ConfigError(f"LognormalScintillation: scint_index and coherence_s must be numbers, got "
                              f"scint_index={scint_index!r}, coherence_s={coherence_s!r}") from None
        if not (np.isfinite(si) and 0 <= si <= 100):
            raise ConfigError(f"LognormalScintillation: scint_index must be in [0, 100], got scint_index={scint_index!r}")
        if not (np.isfinite(tc) and tc > 0):
            raise ConfigError(f"LognormalScintillation: coherence_s must be finite and > 0, got coherence_s={coherence_s!r}")
        self.scint_index, self.coherence_s = si, tc

    @property
    def sigma_g2(self) -> float:
        return float(np.log1p(self.scint_index))

    @property
    def mu(self) -> float:
        return -0.5 * self.sigma_g2

    def autocovariance(self, tau) -> np.ndarray:
        """Intensity autocovariance ``exp(sigma_g^2 exp(-|tau|/tau_c)) - 1`` (tau in s)."""
        return np.expm1(self.sigma_g2 * np.exp(-np.abs(np.asarray(tau, dtype=np.float64)) / self.coherence_s))

    def sample(self, t, rng, state: ScintillationState | None = None):
        """Intensity at times ``t``.

        Input
        -----
        t : float (*batch, n) seconds, non-decreasing along the last axis (and after ``state.t``);
            each batch row is an independent process.
        state : ScintillationState with arrays of the batch shape, or None (stationary start).

        Output
        ------
        I : float64 (*batch, n), unit mean; state : ScintillationState for the next chunk
        (chunked sampling with the state equals one-shot sampling given the same normal draws).
        """
        t = np.asarray(t, dtype=np.float64)
        if t.ndim == 0:
            raise ShapeError("LognormalScintillation.sample: t must be an array (..., n), got a scalar")
        if t.size and not np.all(np.isfinite(t)):
            raise ShapeError(f"LognormalScintillation.sample: t must be finite (no NaN/inf), got "
                             f"{float(t[~np.isfinite(t)].ravel()[0])!r}")
        if t.shape[-1] > 1 and np.any(np.diff(t, axis=-1) < 0):
            i = tuple(int(k) for k in np.argwhere(np.diff(t, axis=-1) < 0)[0])
            nxt = i[:-1] + (i[-1] + 1,)
            raise ShapeError(f"LognormalScintillation.sample: t must be non-decreasing along the last axis, "
                             f"got t{list(i)}={float(t[i])!r} then t{list(nxt)}={float(t[nxt])!r}")
        batch = t.shape[:-1]
        t2 = np.ascontiguousarray(t.reshape(int(np.prod(batch, dtype=np.int64)), t.shape[-1]))  # -1 fails when n = 0
        rows = t2.shape[0]
        if state is None:
            t0 = np.zeros(rows)
            g0 = np.zeros(rows)
            has = np.zeros(rows, dtype=np.bool_)
        else:
            if np.shape(state.t) != batch or np.shape(state.g) != batch:
                raise ShapeError(f"LognormalScintillation.sample: state must have batch shape {batch}, "
                                 f"got {np.shape(state.t)}")
            t0 = np.array(state.t, dtype=np.float64).reshape(rows)
            g0 = np.array(state.g, dtype=np.float64).reshape(rows)
            has = np.ones(rows, dtype=np.bool_)
            if t2.shape[1] and np.any(t2[:, 0] < t0):
                r = int(np.flatnonzero(t2[:, 0] < t0)[0])
                raise ShapeError(f"LognormalScintillation.sample: t must not precede the state's last time, "
                                 f"got t={float(t2[r, 0])!r} after state.t={float(t0[r])!r} (batch row {r})")
        w = rng.standard_normal(t2.shape)
        g = np.empty_like(t2)
        _ou_sample(t2, w, t0, g0, has, self.mu, np.sqrt(self.sigma_g2), self.coherence_s, g)
        if t2.shape[1] == 0 and state is None:     # nothing sampled: still no state
            return np.exp(g).reshape(t.shape), None
        return np.exp(g).reshape(t.shape), ScintillationState(t=t0.reshape(batch), g=g0.reshape(batch))

    def __repr__(self):
        return f"LognormalScintillation(scint_index={self.scint_index}, coherence_s={self.coherence_s})"
