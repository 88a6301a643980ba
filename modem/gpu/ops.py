# SPDX-License-Identifier: Apache-2.0
"""Backend-following front ends of the front-end kernels: slot binning, Poisson slot LLRs, sync
correlation (Massey metric, SCPPM CSM), DPSK LLRs.

Each function takes NumPy or CuPy arrays; the array type decides (a NumPy input runs the
project's CPU reference, a CuPy input the kernel of ``kernels/``); ``launcher`` forces the kernel
path on that launcher's arrays (the tests pass the host emulation). Outputs live where the
inputs are; nothing is copied between host and device. Conventions are the CPU references':
LLRs positive = bit 0; counts int32; metrics float64; LLR outputs float32.
"""
from __future__ import annotations

import math

import numpy as np

from ..backend import get_array_module
from ..errors import ConfigError, ShapeError

BLOCK = 256


def _grid(n: int) -> int:
    return max(1, min(65535 * 8, -(-int(n) // BLOCK)))


def _first(mask):
    """Index tuple of the first True of a device or host boolean array (error paths only: it reads
    the index back to the host)."""
    from ..backend import to_numpy  # noqa: PLC0415
    flat = int(to_numpy(mask.ravel().nonzero()[0][:1])[0])
    return tuple(int(k) for k in np.unravel_index(flat, mask.shape))


def _launcher_for(x, launcher):
    """(launcher or None for the CPU reference) from the input's array type."""
    if launcher is not None:
        return launcher
    if get_array_module(x) is np:
        return None
    from .launch import default_launcher  # noqa: PLC0415
    return default_launcher()


# --------------------------------------------------------------------------------------------
# slot binning
# --------------------------------------------------------------------------------------------
def bin_slots_reference(tags, start_ps: float, period_ps: float, n_slots: int) -> np.ndarray:
    """CPU reference of the slot clock's binning (modem/sync/slot_clock.py, TRACK step).

    tags : (N,) int64 ps, those in ``[start, start + n_slots * period)`` (earlier ones are ignored).
    Returns counts (n_slots,) int32: ``j = min(floor((float64(tag) - start) / period), n_slots - 1)``.
    """
    t = np.asarray(tags)
    x = t.astype(np.float64) - start_ps
    x = x[x >= 0]
    u = x / period_ps
    j = np.minimum(np.floor(u).astype(np.int64), n_slots - 1)
    return np.bincount(j, minlength=n_slots).astype(np.int32)


def bin_slots(tags, start_ps: float, period_ps: float, n_slots: int, launcher=None):
    """Photon time tags (N,) int64 ps -> slot counts (n_slots,) int32 (see :func:`bin_slots_reference`)."""
    if not np.isfinite(start_ps):      # NaN: the CPU dropped every tag, the kernel binned them all into slot 0
        raise ConfigError(f"bin_slots: start_ps must be finite, got {start_ps!r}")
    if not (np.isfinite(period_ps) and period_ps > 0):
        raise ConfigError(f"bin_slots: period_ps must be > 0, got {period_ps!r}")
    if int(n_slots) < 1:
        raise ConfigError(f"bin_slots: n_slots must be >= 1, got {n_slots!r}")
    if tags.ndim != 1 or tags.dtype != np.int64:
        raise ShapeError(f"bin_slots: tags must be a 1-D int64 array (ps), got {tags.dtype} {tags.shape}")
    la = _launcher_for(tags, launcher)
    if la is None:
        return bin_slots_reference(tags, start_ps, period_ps, n_slots)
    xp = la.xp
    t = xp.ascontiguousarray(tags)
    counts = xp.zeros(int(n_slots), dtype=np.int32)
    if t.size:
        la("slot_binning", "slot_bin_counts", _grid(t.size), BLOCK, t, t.size, float(start_ps), float(period_ps),
           int(n_slots), counts)
    return counts


def slot_llr(counts, ns: float, nb: float, launcher=None):
    """Poisson PPM slot LLR ``counts * ln(1 + ns/nb) - ns`` float32 (modem.channel.poisson.slot_llr)."""
    from ..channel.poisson import ppm_slot_llr_weight, slot_llr as slot_llr_cpu  # noqa: PLC0415
    la = _launcher_for(counts, launcher)
    if la is None:
        return slot_llr_cpu(counts, ns, nb)
    w = ppm_slot_llr_weight(ns, nb)
    xp = la.xp
    c = counts
    if c.dtype.kind not in "iufb":
        raise ShapeError(f"slot_llr: counts must be numeric, got dtype {c.dtype}")
    if c.dtype.kind == "f" and c.size and not bool(xp.isfinite(c).all()):
        nan = xp.isnan(c)
        if bool(nan.any()):           # the CPU's message (modem.channel.poisson.slot_llr)
            raise ShapeError(f"slot_llr: counts contain NaN ({int(nan.sum())} entries), e.g. "
                             f"{float(c[_first(nan)])!r}")
        raise ShapeError(f"slot_llr: counts contain inf, e.g. {float(c[_first(xp.isinf(c))])!r}")
    if c.dtype.kind != "b" and c.size and bool((c < 0).any()):
        raise ShapeError(f"slot_llr: counts must be >= 0, found {c[c < 0].ravel()[0]!r}")
    cf = xp.ascontiguousarray(c, dtype=np.float32)
    out = xp.empty(c.shape, dtype=np.float32)
    if c.size:
        la("slot_binning", "slot_llr_f32", _grid(c.size), BLOCK, cf, c.size, float(np.float32(w)),
           float(np.float32(float(ns))), out)
    return out


# --------------------------------------------------------------------------------------------
# sync correlation
# --------------------------------------------------------------------------------------------
def massey_metric(llr, marker=None, *, polarity_free: bool = False, launcher=None):
    """Massey's sync metric at every position (modem.sync.frame_sync.massey_metric).

    llr (*batch, n) float, positive = bit 0 -> (metric (*batch, n-m+1) float64, inverted bool).
    """
    from ..sync import frame_sync  # noqa: PLC0415
    marker = frame_sync.ASM_BITS if marker is None else marker
    la = _launcher_for(llr, launcher)
    if la is None:
        return frame_sync.massey_metric(llr, marker, polarity_free=polarity_free)
    xp = la.xp
    a = frame_sync._marker_bits(np.asarray(marker) if get_array_module(marker) is np else marker.get())
    if llr.ndim == 0 or llr.dtype.kind != "f":
        raise ShapeError(f"massey_metric: llr must be a float array (..., n), got dtype {llr.dtype} shape {llr.shape}")
    if llr.shape[-1] < a.size:
        raise ShapeError(f"massey_metric: llr must have last axis >= marker length {a.size}, got shape {llr.shape}")
    if llr.size and not bool(xp.isfinite(llr).all()):
        raise ShapeError(f"massey_metric: llr must be finite, found {float(llr[_first(~xp.isfinite(llr))])}")
    n = llr.shape[-1]
    flat = xp.ascontiguousarray(llr.reshape(-1, n), dtype=np.float64)
    rows, n_pos = flat.shape[0], n - a.size + 1
    sgn = xp.asarray(1.0 - 2.0 * a.astype(np.float64))
    metric = xp.empty((rows, n_pos), dtype=np.float64)
    inv = xp.empty((rows, n_pos), dtype=np.uint8)
    if rows:
        la("sync_correlate", "massey_metric_f64", _grid(rows * n_pos), BLOCK, flat, sgn, a.size, rows, n,
           int(bool(polarity_free)), metric, inv)
    shape = llr.shape[:-1] + (n_pos,)
    return metric.reshape(shape), inv.astype(bool).reshape(shape)


def csm_llr(counts, pattern, M: int, w: float, launcher=None):
    """SCPPM CSM log-likelihood ratio at every start (modem.sync.codeword_sync.csm_llr).

    counts (n, >= M) -> (max(n - L + 1, 0),) float64.
    """
    from ..sync import codeword_sync  # noqa: PLC0415
    la = _launcher_for(counts, launcher)
    if la is None:
        return codeword_sync.csm_llr(counts, pattern, M, w)
    xp = la.xp
    if counts.ndim != 2 or counts.shape[1] < M:
        raise ShapeError(f"csm_llr: counts must have shape (n, >= {M}), got {counts.shape}")
    pat = np.asarray(pattern, dtype=np.int32) if get_array_module(pattern) is np else pattern.get().astype(np.int32)
    if pat.size and (pat.min() < 0 or pat.max() >= M):
        i = int(np.flatnonzero((pat < 0) | (pat >= M))[0])
        raise ConfigError(f"csm_llr: pattern symbols must be in 0..{M - 1}, got {int(pat.ravel()[i])} at position {i}")
    n_sym, stride = (int(x) for x in counts.shape)
    n_pos = n_sym - pat.size + 1
    if n_pos <= 0:
        return xp.zeros(0)
    y = xp.ascontiguousarray(counts, dtype=np.float64)
    lse = xp.empty(n_sym, dtype=np.float64)
    out = xp.empty(n_pos, dtype=np.float64)
    la("sync_correlate", "csm_symbol_lse_f64", _grid(n_sym), BLOCK, y, n_sym, stride, int(M), float(w), lse)
    la("sync_correlate", "csm_llr_f64", _grid(n_pos), BLOCK, y, n_sym, stride, xp.asarray(pat), int(pat.size),
       float(w), lse, out)
    return out


# --------------------------------------------------------------------------------------------
# DPSK LLRs
# --------------------------------------------------------------------------------------------
def check_dpsk_kernel_parameters(who: str, sigma2, modes, kind: str, instead: str) -> float:
    """The dpsk_llr kernels' scalar parameters, checked as the CPU's dpsk.llr_* check them (the
    kernels take them as they are): sigma2 finite > 0 (returned as float), modes an integer >= 1,
    and for kind 'exact' at most 2 (Bessel I_0, I_1); ``instead`` ends that error's message."""
    try:
        s2 = float(sigma2)
    except (TypeError, ValueError):
        raise ConfigError(f"{who}: sigma2 must be a real number, got sigma2={sigma2!r}") from None
    if not (math.isfinite(s2) and s2 > 0):
        raise ConfigError(f"{who}: sigma2 (noise variance per port and mode, N0/2) must be finite and > 0, "
                          f"got sigma2={sigma2!r}")
    if isinstance(modes, bool) or not isinstance(modes, (int, np.integer)) or modes < 1:
        raise ConfigError(f"{who}: modes (M = B_o T per polarization) must be an integer >= 1, got modes={modes!r}")
    if kind == "exact" and modes > 2:
        raise ConfigError(f"{who}: the exact-LLR kernel supports modes 1 and 2 (Bessel I_0, I_1), got modes={modes}; "
                          f"{instead}")
    return s2


def _dpsk(kind, xa, xb, es, sigma2, modes, erase, launcher):
    from ..modulation import dpsk  # noqa: PLC0415
    la = _launcher_for(xa, launcher)
    if la is None:
        fn = dpsk.llr_gaussian if kind == "gaussian" else dpsk.llr_exact
        return fn(xa, xb, es, sigma2, modes, erase)
    xp = la.xp
    who = f"llr_{kind}"
    if xa.shape != xb.shape:
        raise ShapeError(f"{who}: xa and xb must have the same shape, got {xa.shape} and {xb.shape}")
    if get_array_module(xb) is not get_array_module(xa):      # no hidden host <-> device copy
        raise ShapeError(f"{who}: xa and xb must live in the same array module, got {type(xa).__name__} "
                         f"and {type(xb).__name__}")
    a = xp.ascontiguousarray(xa, dtype=np.float64)
    b = xp.ascontiguousarray(xb, dtype=np.float64)
    for name, v in (("xa", a), ("xb", b)):       # the CPU's messages (modem.modulation.dpsk._ports)
        if v.size and not bool(xp.isfinite(v).all()):
            i = _first(~xp.isfinite(v))
            raise ShapeError(f"{who}: port energies must be finite (no NaN/inf), got {name}={float(v[i])!r} "
                             f"at index {i}")
    for name, v in (("xa", a), ("xb", b)):
        if v.size and float(v.min()) < 0:
            i = _first(v < 0)
            raise ShapeError(f"{who}: port energies must be >= 0, got {name}={float(v[i])!r} at index {i} "
                             f"(min {float(v.min())})")
    sigma2 = check_dpsk_kernel_parameters(who, sigma2, modes, kind, "pass NumPy arrays for the CPU path")
    for name, v in (("es", es), ("erase", erase)):         # no hidden host -> device upload either
        if v is not None and np.ndim(v) > 0 and get_array_module(v) is not get_array_module(xa):
            raise ShapeError(f"{who}: {name} must live in the ports' array module ({type(xa).__name__}) or be a "
                             f"scalar, got {type(v).__name__} of shape {np.shape(v)}")
    if np.ndim(es) == 0 and get_array_module(es) is np:
        esv = float(es)
        if not (math.isfinite(esv) and esv >= 0):
            raise ConfigError(f"{who}: es (signal energy per bit) must be finite and >= 0, got {es!r}")
        es_arr, es_stride = xp.full(1, esv, dtype=np.float64), 0
    else:
        dpsk._broadcasts_to(tuple(np.shape(es)), a.shape, who, "es")
        es_arr = xp.ascontiguousarray(xp.broadcast_to(xp.asarray(es, dtype=np.float64), a.shape))
        if es_arr.size and (not bool(xp.isfinite(es_arr).all()) or float(es_arr.min()) < 0):
            raise ConfigError(f"{who}: es (signal energy per bit) must be finite and >= 0, got array with min "
                              f"{float(es_arr.min())}")
        es_stride = 1
    if erase is None:
        er, er_stride = xp.zeros(1, dtype=np.uint8), 0
    else:
        dpsk._broadcasts_to(tuple(np.shape(erase)), a.shape, who, "erase")
        er = xp.ascontiguousarray(xp.broadcast_to(xp.asarray(erase, dtype=bool), a.shape), dtype=np.uint8)
        er_stride = 1
    out = xp.empty(a.shape, dtype=np.float32)
    if a.size:
        la("dpsk_llr", f"dpsk_llr_{kind}_f32", _grid(a.size), BLOCK, a, b, es_arr, es_stride, sigma2, int(modes),
           er, er_stride, a.size, out)
    return out


def dpsk_llr_gaussian(xa, xb, es, sigma2: float, modes: int = 1, erase=None, launcher=None):
    """DPSK Gaussian-moment LLR float32 (modem.modulation.dpsk.llr_gaussian); positive = bit 0."""
    return _dpsk("gaussian", xa, xb, es, sigma2, modes, erase, launcher)


def dpsk_llr_exact(xa, xb, es, sigma2: float, modes: int = 1, erase=None, launcher=None):
    """DPSK exact LLR float32 (modem.modulation.dpsk.llr_exact); the kernel covers modes 1 and 2."""
    return _dpsk("exact", xa, xb, es, sigma2, modes, erase, launcher)
