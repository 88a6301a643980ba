# SPDX-License-Identifier: Apache-2.0
"""GPU launch wrapper of the SCPPM iterative decoder (``kernels/scppm_siso.cu``).

Mirrors :func:`modem.fec.scppm._cpu.turbo_decode` in its exact log-MAP mode (the decoder's
default): same schedule (inner SISO, scatter through interleaver + puncturing, outer SISO, hard
decisions, CRC-32, stop per codeword on a good CRC, gather of the outer extrinsic back), float64.
Decoded bits, CRC flags and iteration counts are expected to equal the CPU's; soft values agree to
rounding. The max-log mode has no GPU kernel: asking for it with a CuPy input raises
:class:`~modem.errors.BackendUnavailable`.

Arrays stay on the device: the input is a device array, the outputs are device arrays; the only
host-to-device transfers are the decoder's constant tables, uploaded once per device.
"""
from __future__ import annotations

import functools

import numpy as np

from ...errors import BackendUnavailable, ShapeError
from ...framing.crc import CRC32_HPE_POLY

BLOCK = 256
_FILE = "scppm_siso"


def _grid(n: int, block: int = BLOCK, cap: int = 65535 * 8) -> int:
    return max(1, min(cap, -(-int(n) // block)))


class SCPPMGPUTables:
    """Constant tables of one decoder on one array module (uploaded once)."""

    def __init__(self, xp, inner_to_mother: np.ndarray, pn: np.ndarray):
        self.itm = xp.asarray(np.ascontiguousarray(inner_to_mother, dtype=np.int32))
        self.pn = xp.asarray(np.ascontiguousarray(pn, dtype=np.uint8))


@functools.lru_cache(maxsize=64)
def _tables_cached(device_id: int, key: tuple, itm_bytes: bytes, pn_bytes: bytes):
    import cupy  # noqa: PLC0415 - only reached with a usable GPU
    with cupy.cuda.Device(device_id):
        tab = SCPPMGPUTables(cupy, np.frombuffer(itm_bytes, dtype=np.int64), np.frombuffer(pn_bytes, dtype=np.uint8))
        # the uploads ran asynchronously on the current stream; the cached tables are then used
        # from any stream (the pipelines' non-blocking ones do not wait for it): finish them now
        cupy.cuda.get_current_stream().synchronize()
        return tab


def tables_for(decoder, launcher) -> SCPPMGPUTables:
    """Device copies of the decoder's interleaver map and PN sequence (cached per device)."""
    xp = launcher.xp
    if xp is np:
        return SCPPMGPUTables(np, decoder._inner_to_mother, decoder._pn)
    dev = xp.cuda.Device().id
    c = decoder.code
    return _tables_cached(dev, (c.M, c.rate), decoder._inner_to_mother.astype(np.int64).tobytes(),
                          np.asarray(decoder._pn, dtype=np.uint8).tobytes())


def turbo_decode_gpu(metric, decoder, launcher):
    """Decode ``metric`` (F, S, M) float64 C-contiguous device array.

    Returns (u_hat (F, k) uint8 de-randomized, crc_ok (F,) bool, iterations (F,) int64), device
    arrays of ``launcher.xp``.
    """
    if decoder.max_log:
        raise BackendUnavailable("SCPPMDecoder: the GPU kernels implement exact log-MAP only; "
                                 "use max_log=False or a NumPy input")
    xp = launcher.xp
    c = decoder.code
    if metric.dtype != np.float64 or metric.ndim != 3 or not metric.flags.c_contiguous \
            or metric.shape[1:] != (c.S, c.M):
        raise ShapeError(f"turbo_decode_gpu: metric must be a C-contiguous float64 (F, {c.S}, {c.M}) array, "
                         f"got {metric.dtype} shape {metric.shape}")
    F, S, M = (int(x) for x in metric.shape)
    m, T, k = c.m, c.k_hat, c.k
    tab = tables_for(decoder, launcher)
    if F == 0:
        return (xp.zeros((0, k), dtype=np.uint8), xp.zeros(0, dtype=bool), xp.zeros(0, dtype=np.int64))
    pg = xp.empty(S * M * F, dtype=np.float64)
    trans = xp.empty(S * 4 * F, dtype=np.float64)
    alpha = xp.empty((S + 1) * 2 * F, dtype=np.float64)
    betan = xp.empty(S * 2 * F, dtype=np.float64)
    lc = xp.ones(3 * T * F, dtype=np.float64)       # punctured positions stay 1 (no information)
    le = xp.ones(3 * T * F, dtype=np.float64)       # first iteration: a priori ratio 1
    alpha_o = xp.empty((T + 1) * 4 * F, dtype=np.float64)
    bits = xp.zeros(T * F, dtype=np.uint8)
    done = xp.zeros(F, dtype=np.int32)
    iters = xp.full(F, decoder.max_iter, dtype=np.int32)
    tpl = f"<{m}>"
    n_sf = S * F
    launcher(_FILE, "scppm_channel_prob" + tpl, _grid(n_sf), BLOCK, metric, pg, F, S)
    for it in range(1, decoder.max_iter + 1):
        launcher(_FILE, "scppm_inner_trans" + tpl, _grid(n_sf), BLOCK, pg, le, tab.itm, done, trans, F, S)
        launcher(_FILE, "scppm_inner_recursions", _grid(F), BLOCK, trans, done, alpha, betan, F, S)
        launcher(_FILE, "scppm_inner_ext" + tpl, _grid(n_sf), BLOCK, pg, le, tab.itm, alpha, betan, done, lc, F, S)
        launcher(_FILE, "scppm_outer_siso", _grid(F), BLOCK, lc, le, alpha_o, bits, done, iters, F, T, k,
                 CRC32_HPE_POLY, it)
    u_hat = bits.reshape(T, F)[:k].T ^ tab.pn[None, :]
    return xp.ascontiguousarray(u_hat), done.astype(bool), iters.astype(np.int64)
