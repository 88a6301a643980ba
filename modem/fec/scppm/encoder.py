# SPDX-License-Identifier: Apache-2.0
"""SCPPM transmitter stages (CCSDS 142.0-B-1 section 3), each a function of ``(*batch, n)`` arrays.

Order (3.3-3.13): ASM + slicing -> pseudo-randomizer -> CRC-32 -> 2 termination bits -> outer
(5,7,7) convolutional code + puncturing -> bit interleaver -> accumulator -> PPM mapper ->
channel interleaver -> CSM -> repeater -> slot mapper with M/4 guard slots.

:class:`SCPPMEncoder` runs steps 4-7 on a batch of k-bit information blocks and returns PPM
symbols; :func:`symbols_to_slots` and :class:`ChannelInterleaver` do the rest.
"""
from __future__ import annotations

import numpy as np

from ...errors import ConfigError, ShapeError
from ...framing.bits import bits_from_int, check_bits
from ...framing.crc import crc32_hpe, crc_bits
from ...framing.randomizer import pn8
from .code import ASM_HPE, PPM_ORDERS, SCPPMCode, bit_interleaver


# --- 3.3 / 3.4: ASM and slicing ---------------------------------------------------------------

def attach_asm(frames) -> np.ndarray:
    """Prepend the 32-bit ASM 0x1ACFFC1D to every transfer frame: ``(*batch, L) -> (*batch, L+32)``."""
    f = check_bits(frames, None, "attach_asm", "frames")
    asm = np.broadcast_to(bits_from_int(ASM_HPE, 32), f.shape[:-1] + (32,))
    return np.concatenate([asm, f], axis=-1)


def slice_blocks(stream, k: int) -> np.ndarray:
    """Slice a 1-D bit stream (sync-marked frames back to back) into k-bit blocks ``(n_blocks, k)``.

    The final block is zero-filled (3.4.2.1.1: only at transmission closure).
    """
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ConfigError(f"slice_blocks: k must be an integer >= 1, got k={k!r}")
    s = check_bits(stream, None, "slice_blocks", "stream")
    if s.ndim != 1:
        raise ShapeError(f"slice_blocks: stream must be 1-D, got shape {s.shape}")
    n_blocks = -(-s.size // k)
    out = np.zeros(n_blocks * k, dtype=np.uint8)
    out[: s.size] = s
    return out.reshape(n_blocks, k)


# --- 3.8 outer code ------------------------------------------------------------------------------

def conv_encode(x) -> np.ndarray:
    """Rate-1/3 (5,7,7) mother code, state 0 at the start: ``(*batch, T) -> (*batch, 3T)``.

    Serial output per input bit: c0 = u_t ^ u_{t-2}, c1 = c2 = u_t ^ u_{t-1} ^ u_{t-2}.
    The caller appends the two termination zeros (they are part of ``x``).
    """
    u = check_bits(x, None, "conv_encode", "x")
    u1 = np.zeros_like(u)
    u2 = np.zeros_like(u)
    u1[..., 1:] = u[..., :-1]
    u2[..., 2:] = u[..., :-2]
    c0 = u ^ u2
    c1 = u ^ u1 ^ u2
    return np.stack([c0, c1, c1], axis=-1).reshape(u.shape[:-1] + (3 * u.shape[-1],))


def puncture(c, code: SCPPMCode) -> np.ndarray:
    """Apply the rate's puncturing pattern cyclically: ``(*batch, 3 k_hat) -> (*batch, 15120)``."""
    c = np.asarray(c)
    if c.shape[-1] != code.n_mother:
        raise ShapeError(f"puncture: last axis must be {code.n_mother} for rate {code.rate}, got {c.shape}")
    return c[..., code.kept_positions]


def interleave_bits(c) -> np.ndarray:
    """Bit interleaver (3.8.3): ``out[..., j] = in[..., pi(j)]``, pi(j) = (11 j + 210 j^2) mod 15120."""
    c = np.asarray(c)
    if c.shape[-1] != 15120:
        raise ShapeError(f"interleave_bits: last axis must be 15120, got shape {c.shape}")
    return c[..., bit_interleaver()]


def deinterleave_bits(y) -> np.ndarray:
    """Inverse of :func:`interleave_bits` (works on bits or LLRs)."""
    y = np.asarray(y)
    if y.shape[-1] != 15120:
        raise ShapeError(f"deinterleave_bits: last axis must be 15120, got shape {y.shape}")
    out = np.empty_like(y)
    out[..., bit_interleaver()] = y
    return out


def accumulate(v) -> np.ndarray:
    """Accumulator 1/(1+D): n_j = n_{j-1} ^ v_j, n_{-1} = 0, reset at every codeword (per last axis)."""
    v = check_bits(v, None, "accumulate", "v")
    return np.bitwise_xor.accumulate(v, axis=-1).astype(np.uint8)


def _ppm_bits(M, who: str) -> int:
    """log2 M of an allowed PPM order (ConfigError naming any other)."""
    if isinstance(M, bool) or not isinstance(M, (int, np.integer)) or int(M) not in PPM_ORDERS:
        raise ConfigError(f"{who}: M must be one of {PPM_ORDERS}, got M={M!r}")
    return int(M).bit_length() - 1


def ppm_map(bits, M: int) -> np.ndarray:
    """Group log2 M bits (first bit = MSB) into PPM symbols: ``(*batch, n) -> (*batch, n/log2 M)``."""
    m = _ppm_bits(M, "ppm_map")
    b = check_bits(bits, None, "ppm_map", "bits")
    if b.shape[-1] % m:
        raise ShapeError(f"ppm_map: last axis {b.shape[-1]} is not a multiple of log2 M = {m}")
    w = (1 << np.arange(m - 1, -1, -1)).astype(np.int64)
    return (b.reshape(b.shape[:-1] + (b.shape[-1] // m, m)).astype(np.int64) @ w).astype(np.int64)


def ppm_unmap(symbols, M: int) -> np.ndarray:
    """Inverse of :func:`ppm_map`: symbols ``(*batch, S)`` -> bits ``(*batch, S log2 M)``, MSB first."""
    m = _ppm_bits(M, "ppm_unmap")
    s = _check_symbols(symbols, int(M), "ppm_unmap")
    sh = np.arange(m - 1, -1, -1)
    return ((s[..., None] >> sh) & 1).astype(np.uint8).reshape(s.shape[:-1] + (s.shape[-1] * m,))


class SCPPMEncoder:
    """Steps 4-7: k-bit information blocks -> PPM symbols of one SCPPM codeword each.

    Input  ``u``: ``(*batch, k)`` uint8 bits (already ASM-marked and sliced).
    Output ``(*batch, S)`` int64 PPM symbols in 0..M-1, S = 15120 / log2 M.
    """

    def __init__(self, code: SCPPMCode):
        if not isinstance(code, SCPPMCode):
            raise ConfigError(f"SCPPMEncoder: code must be an SCPPMCode, got {type(code).__name__}")
        self.code = code

    def outer_input(self, u) -> np.ndarray:
        """Randomized block + CRC-32 + 2 zeros: ``(*batch, k) -> (*batch, k_hat)`` (3.5-3.7)."""
        c = self.code
        u = check_bits(u, c.k, "SCPPMEncoder", "u")
        r = u ^ pn8(c.k)
        crc = crc_bits(crc32_hpe(r), 32)
        term = np.zeros(u.shape[:-1] + (2,), dtype=np.uint8)
        return np.concatenate([r, crc, term], axis=-1)

    def coded_bits(self, u) -> np.ndarray:
        """Punctured outer codeword before the bit interleaver ``(*batch, 15120)``."""
        return puncture(conv_encode(self.outer_input(u)), self.code)

    def __call__(self, u) -> np.ndarray:
        v = interleave_bits(self.coded_bits(u))
        return ppm_map(accumulate(v), self.code.M)

    encode = __call__


# --- 3.9 channel interleaver ----------------------------------------------------------------------

class ChannelInterleaver:
    """Convolutional (Forney) channel interleaver on PPM symbols, streaming with explicit state.

    Symbol i of the stream goes through row j = i mod N, which delays it by j*N*B symbol periods
    (interleaver) or (N-1-j)*N*B (de-interleaver); end-to-end latency is B*N*(N-1) symbols. Rows
    start filled with ``fill``. Works on any trailing shape (symbols ``(n,)`` or soft metrics
    ``(n, M)``): the first axis is time. ``process`` in one piece or in chunks gives the same output.
    """

    def __init__(self, code: SCPPMCode, inverse: bool = False, fill=0):
        self.N, self.B = code.interleaver_rows, code.interleaver_shift
        self.inverse = inverse
        self.fill = fill
        self.delay = self.B * self.N * (self.N - 1)
        self.reset()

    def reset(self):
        self._hist = None
        self._pos = 0   # stream index of the next input symbol

    def process(self, x) -> np.ndarray:
        x = np.asarray(x)
        if self.N == 1 or x.shape[0] == 0:
            self._pos += x.shape[0]
            return x.copy()
        D = self.delay
        if self._hist is None:
            self._hist = np.full((D,) + x.shape[1:], self.fill, dtype=x.dtype)
        buf = np.concatenate([self._hist, x.astype(self._hist.dtype, copy=False)], axis=0)
        i = np.arange(x.shape[0]) + self._pos
        row = i % self.N
        d = (self.N - 1 - row if self.inverse else row) * self.N * self.B
        out = buf[D + np.arange(x.shape[0]) - d]
        self._hist = buf[-D:].copy()
        self._pos += x.shape[0]
        return out

    def flush(self, like=None) -> np.ndarray:
        """Push ``delay`` fill symbols through, returning the tail still inside the rows."""
        if self.N == 1:
            return np.zeros((0,) + (() if like is None else np.asarray(like).shape[1:]))
        shape = (self.delay,) + (self._hist.shape[1:] if self._hist is not None else ())
        dtype = self._hist.dtype if self._hist is not None else np.int64
        return self.process(np.full(shape, self.fill, dtype=dtype))


# --- 3.10 - 3.13: CSM, repetition, slot mapping -------------------------------------------------

def attach_csm(symbols, code: SCPPMCode) -> np.ndarray:
    """Prepend the CSM to every block of S channel-interleaver output symbols: ``(*b, S) -> (*b, S+L)``."""
    s = np.asarray(symbols)
    if s.shape[-1] != code.S:
        raise ShapeError(f"attach_csm: last axis must be S={code.S}, got shape {s.shape}")
    csm = np.broadcast_to(code.csm_symbols, s.shape[:-1] + (code.L_csm,))
    return np.concatenate([csm.astype(s.dtype), s], axis=-1)


def repeat(symbols, code: SCPPMCode) -> np.ndarray:
    """Repeater (3.11): ``(F, S+L) -> (F, q_d (S+L))`` per ``code.repeat_unit``."""
    s = np.asarray(symbols)
    q = code.repetition
    if q == 1:
        return s
    if code.repeat_unit == "symbol":
        return np.repeat(s, q, axis=-1)
    return np.tile(s, (1,) * (s.ndim - 1) + (q,))


def _check_symbols(symbols, M: int, who: str) -> np.ndarray:
    """PPM symbols as int64, each an integer in 0..M-1 (ShapeError naming the first other value)."""
    a = np.asarray(symbols)
    if a.dtype.kind not in "iub":
        if a.dtype.kind != "f":
            raise ShapeError(f"{who}: PPM symbols must be integers, got dtype {a.dtype}")
        frac = ~np.isfinite(a) | (a != np.round(a))
        if frac.any():
            raise ShapeError(f"{who}: PPM symbol {a[frac].flat[0]} is not an integer")
    s = a.astype(np.int64)
    if s.size and (s.min() < 0 or s.max() >= M):
        bad = s[(s < 0) | (s >= M)].flat[0]
        raise ShapeError(f"{who}: PPM symbol {bad} is outside 0..{M - 1}")
    return s


def symbols_to_slots(symbols, code: SCPPMCode) -> np.ndarray:
    """Slot mapper + guard slots (3.12, 3.13): symbols ``(*b, n)`` -> pulses ``(*b, n (M + M/4))`` uint8."""
    s = _check_symbols(symbols, code.M, "symbols_to_slots")
    out = np.zeros(s.shape + (code.slots_per_symbol,), dtype=np.uint8)
    np.put_along_axis(out, s[..., None], 1, axis=-1)
    return out.reshape(s.shape[:-1] + (s.shape[-1] * code.slots_per_symbol,))


class SCPPMTransmitter:
    """Information blocks -> transmitted slot pulses, the whole 142.0-B-1 chain, streaming.

    ``modulate(u)`` takes ``(F, k)`` information blocks and returns ``(F_out, slots_per_codeword)``
    uint8 pulses; with a channel interleaver (N > 1) the first codewords out carry the fill, and
    ``flush()`` returns the codewords still inside the interleaver.
    """

    def __init__(self, code: SCPPMCode):
        self.code = code
        self.encoder = SCPPMEncoder(code)
        self.interleaver = ChannelInterleaver(code)

    def reset(self):
        self.interleaver.reset()

    def _frame(self, sym_stream) -> np.ndarray:
        c = self.code
        blocks = sym_stream.reshape(sym_stream.size // c.S, c.S)
        return symbols_to_slots(repeat(attach_csm(blocks, c), c), c)

    def modulate(self, u) -> np.ndarray:
        sym = self.encoder(u)
        stream = self.interleaver.process(sym.reshape(-1))
        return self._frame(stream)

    def flush(self) -> np.ndarray:
        """The codewords still inside the channel interleaver (fill symbols pad the last one)."""
        tail = np.asarray(self.interleaver.flush(), dtype=np.int64)
        pad = np.full(-tail.size % self.code.S, self.interleaver.fill, dtype=np.int64)
        return self._frame(np.concatenate([tail, pad]))
