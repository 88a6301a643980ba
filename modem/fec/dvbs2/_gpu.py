# SPDX-License-Identifier: Apache-2.0
"""GPU launch wrappers of the DVB-S2 decoders (``kernels/ldpc_layered_i16.cu``,
``kernels/ldpc_minsum.cu``, ``kernels/bch_syndrome.cu``).

Two min-sum kernels, each the bit-exact twin (same hard decisions, parity flags and iteration
counts) of one CPU kernel:

* 'minsum' (the default on both backends): 16-bit layer-parallel min-sum, one block per frame,
  one thread per row of a 360-check layer = :func:`modem.fec.dvbs2._cpu.ldpc_decode_minsum_i16`;
* 'minsum-serial': float32 min-sum in the serial check order = ``_cpu.ldpc_decode_minsum_f32``,
  one block per frame running *waves* of checks that share no variable (:func:`wave_schedule`).

Arrays stay on the device; the graph tables are uploaded once per device and code.
"""
from __future__ import annotations

import functools

import numpy as np

from ...errors import ConfigError, ShapeError

LDPC_BLOCK = 256
BCH_BLOCK = 128


def wave_schedule(dec_ptr: np.ndarray, dec_var: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Group the checks (processing positions 0..m-1) into waves that run in parallel.

    wave(c) = 1 + max wave of the earlier checks sharing a variable with c (0-based here), so
    checks of one wave are variable-disjoint and every earlier check on a variable runs in an
    earlier wave: executing waves in order, each in parallel, equals the serial order.
    Returns (wave_ptr (n_waves+1,) int32, wave_chk (m,) int32): the checks of wave w are
    ``wave_chk[wave_ptr[w]:wave_ptr[w+1]]``, in increasing position.
    """
    m = dec_ptr.size - 1
    last = np.full(n, -1, dtype=np.int64)
    wave = np.empty(m, dtype=np.int64)
    for c in range(m):
        vs = dec_var[dec_ptr[c]:dec_ptr[c + 1]]
        w = int(last[vs].max()) + 1
        wave[c] = w
        last[vs] = w
    order = np.argsort(wave, kind="stable").astype(np.int32)
    counts = np.bincount(wave)
    wave_ptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int32)
    return wave_ptr, order


def _check_device_input(who: str, x, dtype, ndim: int = 2):
    """The kernels read raw pointers: the array must already have the dtype and layout they read."""
    if x.dtype != dtype or x.ndim != ndim or not x.flags.c_contiguous:
        raise ShapeError(f"{who}: needs a C-contiguous {ndim}-D {np.dtype(dtype).name} array, got "
                         f"{x.dtype} shape {x.shape}{'' if x.flags.c_contiguous else ' (not C-contiguous)'}")


@functools.lru_cache(maxsize=None)
def _waves(graph):
    return wave_schedule(graph.dec_ptr, graph.dec_var, graph.n)


class _DeviceTables:
    """Device copies of an LDPCGraph's decoder tables and wave schedule (+ the BCH tables)."""

    def __init__(self, xp, graph, bch=None):
        wave_ptr, wave_chk = _waves(graph)
        self.ptr = xp.asarray(graph.dec_ptr.astype(np.int32))
        self.var = xp.asarray(graph.dec_var.astype(np.int32))
        self.old = xp.asarray(graph.dec_old.astype(np.int32))
        self.wave_ptr = xp.asarray(wave_ptr)
        self.wave_chk = xp.asarray(wave_chk)
        self.n_waves = int(wave_ptr.size - 1)
        self.n, self.m, self.E = graph.n, graph.m, int(graph.dec_var.size)
        # layered (quasi-cyclic) description for the 16-bit layer-parallel kernel
        self.lay_ptr = xp.asarray(graph.lay_ptr.astype(np.int32))
        self.lay_v0 = xp.asarray(graph.lay_v0.astype(np.int32))
        self.lay_rho = xp.asarray(graph.lay_rho.astype(np.int32))
        self.lay_cnt = xp.asarray(graph.lay_cnt.astype(np.int32))
        self.lay_delta = xp.asarray(graph.lay_delta.astype(np.uint8))
        self.q = int(graph.lay_ptr.size - 1)
        self.ne = int(graph.lay_v0.size)
        self.layer_deg_max = int(graph.layer_deg_max)
        if bch is not None:
            table, gen = bch._tables
            self.bch_table = xp.asarray(np.ascontiguousarray(table))
            self.bch_gen = xp.asarray(np.ascontiguousarray(gen))
            self.bch_nw = int(table.shape[1])


@functools.lru_cache(maxsize=64)
def _device_tables_gpu(device_id: int, graph, bch):
    import cupy  # noqa: PLC0415 - only reached with a usable GPU
    with cupy.cuda.Device(device_id):
        tab = _DeviceTables(cupy, graph, bch)
        # uploaded asynchronously on the current stream, used later from any stream (the
        # pipelines' non-blocking streams do not wait for it): finish the copies now
        cupy.cuda.get_current_stream().synchronize()
        return tab


_EMU_TABLES: dict = {}


def tables_for(graph, bch, launcher):
    """Tables on the launcher's array module (cached per device; per graph under emulation)."""
    xp = launcher.xp
    if xp is np:
        key = (id(graph), id(bch))
        if key not in _EMU_TABLES:
            _EMU_TABLES[key] = _DeviceTables(np, graph, bch)
        return _EMU_TABLES[key]
    return _device_tables_gpu(xp.cuda.Device().id, graph, bch)


def ldpc_decode_minsum_gpu(llr, graph, max_iter: int, scale: float, offset: float, launcher):
    """Layered min-sum on ``llr`` (B, n) float32 C-contiguous device array (positive = bit 0).

    Returns (hard (B, n) uint8 codeword order, parity_ok (B,) bool, iterations (B,) int32),
    device arrays of ``launcher.xp``; the same values as the CPU kernel.
    """
    xp = launcher.xp
    _check_device_input("ldpc_decode_minsum_gpu: llr", llr, np.float32)
    tab = tables_for(graph, None, launcher)
    B, n = (int(x) for x in llr.shape)
    if n != tab.n:
        raise ConfigError(f"ldpc_decode_minsum_gpu: llr has {n} columns, code needs {tab.n}")
    hard = xp.zeros((B, n), dtype=np.uint8)
    ok = xp.zeros(B, dtype=np.uint8)
    iters = xp.zeros(B, dtype=np.int32)
    if B == 0:
        return hard, ok.astype(bool), iters
    L = xp.empty(B * n, dtype=np.float32)
    mins = xp.empty(B * 2 * tab.m, dtype=np.float32)
    ef = xp.empty(B * tab.E, dtype=np.uint8)
    launcher("ldpc_minsum", "ldpc_minsum_decode_f32", B, LDPC_BLOCK, llr, tab.ptr, tab.var, tab.old,
             tab.wave_ptr, tab.wave_chk, tab.n_waves, n, tab.m, tab.E, int(max_iter), float(scale), float(offset),
             L, mins, ef, hard, ok, iters)
    return hard, ok.astype(bool), iters


I16_BLOCK = 384        # one thread per row of a 360-check layer
I16_MAXDEG = 32        # LDPC_I16_MAXDEG of kernels/ldpc_layered_i16.cu


def ldpc_decode_layered_i16_gpu(llr, graph, max_iter: int, scale: float, offset: float, launcher):
    """16-bit layer-parallel min-sum (``kernels/ldpc_layered_i16.cu``) on ``llr`` (B, n) float32,
    the twin of the CPU default ``_cpu.ldpc_decode_minsum_i16``: same hard decisions, flags and
    iteration counts. Returns (hard (B, n) uint8, parity_ok (B,) bool, iterations (B,) int32)."""
    xp = launcher.xp
    _check_device_input("ldpc_decode_layered_i16_gpu: llr", llr, np.float32)
    tab = tables_for(graph, None, launcher)
    B, n = (int(x) for x in llr.shape)
    if n != tab.n:
        raise ConfigError(f"ldpc_decode_layered_i16_gpu: llr has {n} columns, code needs {tab.n}")
    if tab.layer_deg_max > I16_MAXDEG:
        raise ConfigError(f"ldpc_decode_layered_i16_gpu: layer degree {tab.layer_deg_max} > {I16_MAXDEG}")
    hard = xp.zeros((B, n), dtype=np.uint8)
    ok = xp.zeros(B, dtype=np.uint8)
    iters = xp.zeros(B, dtype=np.int32)
    if B == 0:
        return hard, ok.astype(bool), iters
    L = xp.empty(B * n, dtype=np.int16)
    R = xp.empty(B * tab.ne * 360, dtype=np.int16)
    from .code import LLR_CLIP  # noqa: PLC0415
    A = int(np.rint(float(scale) * 32768.0))
    launcher("ldpc_layered_i16", "ldpc_layered_i16", B, I16_BLOCK, llr, tab.old, tab.lay_ptr, tab.lay_v0,
             tab.lay_rho, tab.lay_cnt, tab.lay_delta, tab.q, n, tab.ne, int(max_iter), A, float(offset),
             float(LLR_CLIP), L, R, hard, ok, iters)
    return hard, ok.astype(bool), iters


def bch_nonzero_gpu(bits, n: int, graph, bch, launcher):
    """(B,) uint8: 1 where the first ``n`` bits of a row of ``bits`` (B, stride) uint8 are no BCH codeword."""
    xp = launcher.xp
    _check_device_input("bch_nonzero_gpu: bits", bits, np.uint8)
    tab = tables_for(graph, bch, launcher)
    B, stride = (int(x) for x in bits.shape)
    if not 0 <= int(n) <= stride:
        raise ConfigError(f"bch_nonzero_gpu: n={n} exceeds the row length {stride}")
    out = xp.zeros(B, dtype=np.uint8)
    if B:
        grid = max(1, min(65535, -(-B // BCH_BLOCK)))
        launcher("bch_syndrome", "bch_remainder_nonzero", grid, BCH_BLOCK, bits, B, stride, n,
                 tab.bch_table, tab.bch_gen, tab.bch_nw, out)
    return out
