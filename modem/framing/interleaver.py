# SPDX-License-Identifier: Apache-2.0
"""Channel interleaver between the FEC encoder and the DPSK modulator, sized in milliseconds.

A block (row-column) interleaver over ``D`` consecutive codewords of ``n`` bits: codeword ``i``
is written into row ``i`` of a ``D x n`` matrix and the matrix is read column by column, so

    ``out[j * D + i] = in[i * n + j]``     (codeword i, bit j -> channel position j*D + i)

Consecutive channel bits come from different codewords: a burst of ``B`` consecutive channel
erasures hits each codeword at most ``ceil(B / D)`` times, and each codeword's bits are spread
uniformly over the whole block (the interleaver span), so a fade shorter than the span is shared
among all D codewords instead of wiping out one. ``D = 1`` is the identity (no interleaving).

Depth in time: ``D = max(1, ceil(depth_s * bit_rate / frame_bits))``, where ``frame_bits`` is the
number of channel bits one codeword occupies on the wire (``n`` plus the 32-bit ASM in the DPSK
chain) and ``bit_rate`` the channel data rate. The interleaver is block-wise: it acts on whole
blocks of ``D*n`` bits (``(*batch, D*n) -> (*batch, D*n)``); blocks are independent, so streaming
is processing consecutive blocks (no carried state).

Cost (each stated as a property, in bits and seconds):

* memory: ``D * n`` entries per side (transmitter: bits; receiver: one LLR per entry, see
  :meth:`ChannelInterleaver.rx_memory_bytes`), double-buffered hardware needs twice that;
* latency added end to end: ``2 * D * frame_bits`` channel-bit times (the transmitter must hold a
  whole block before sending its first column, the receiver a whole block before releasing the
  first codeword).
"""
from __future__ import annotations

import functools
import math

import numpy as np

from ..errors import ConfigError, ShapeError


@functools.lru_cache(maxsize=16)
def _perm(depth: int, n: int) -> np.ndarray:
    """``out[q] = in[perm[q]]``; q = j*D + i -> i*n + j."""
    q = np.arange(depth * n, dtype=np.int64)
    p = (q % depth) * n + q // depth
    p.setflags(write=False)
    return p


@functools.lru_cache(maxsize=16)
def _inv(depth: int, n: int) -> np.ndarray:
    p = np.empty(depth * n, dtype=np.int64)
    p[_perm(depth, n)] = np.arange(depth * n, dtype=np.int64)
    p.setflags(write=False)
    return p


class ChannelInterleaver:
    """Block interleaver of ``depth`` codewords of ``n`` bits.

    Parameters
    ----------
    n : int
        Codeword length (bits per row), >= 1.
    depth : int
        D, codewords per interleaver block (rows), >= 1; 1 = no interleaving.
    bit_rate : float
        Channel data rate in bit/s (for the properties in seconds), > 0.
    frame_bits : int, optional
        Channel bits per codeword on the wire (n + sync marker); default ``n``.
    """

    def __init__(self, n: int, depth: int, bit_rate: float, frame_bits: int | None = None):
        for name, v, lo in (("n", n, 1), ("depth", depth, 1)):
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < lo:
                raise ConfigError(f"ChannelInterleaver: {name} must be an integer >= {lo}, got {name}={v!r}")
        frame_bits = n if frame_bits is None else frame_bits
        if isinstance(frame_bits, bool) or not isinstance(frame_bits, (int, np.integer)) or frame_bits < n:
            raise ConfigError(f"ChannelInterleaver: frame_bits must be an integer >= n={n}, got frame_bits={frame_bits!r}")
        try:
            r = float(bit_rate)
        except (TypeError, ValueError):
            raise ConfigError(f"ChannelInterleaver: bit_rate must be a number, got bit_rate={bit_rate!r}") from None
        if not (np.isfinite(r) and r > 0):
            raise ConfigError(f"ChannelInterleaver: bit_rate must be finite and > 0, got bit_rate={bit_rate!r}")
        if int(depth) * int(n) > 2 ** 40:
            raise ConfigError(f"ChannelInterleaver: depth*n must be <= 2**40, got depth={depth}, n={n}")
        self.n, self.depth, self.bit_rate, self.frame_bits = int(n), int(depth), r, int(frame_bits)

    @classmethod
    def from_ms(cls, depth_ms: float, n: int, bit_rate: float, frame_bits: int | None = None) -> "ChannelInterleaver":
        """Interleaver whose block spans at least ``depth_ms`` milliseconds on the wire (0 = none)."""
        try:
            ms = float(depth_ms)
        except (TypeError, ValueError):
            raise ConfigError(f"ChannelInterleaver: depth_ms must be a number, got depth_ms={depth_ms!r}") from None
        if not (np.isfinite(ms) and 0 <= ms <= 1e5):
            raise ConfigError(f"ChannelInterleaver: depth_ms must be in [0, 1e5] ms, got depth_ms={depth_ms!r}")
        fb = n if frame_bits is None else frame_bits
        try:
            rate = float(bit_rate)
        except (TypeError, ValueError):
            raise ConfigError(f"ChannelInterleaver: bit_rate must be a number, got bit_rate={bit_rate!r}") from None
        if not (np.isfinite(rate) and rate > 0):
            raise ConfigError(f"ChannelInterleaver: bit_rate must be finite and > 0, got bit_rate={bit_rate!r}")
        if isinstance(fb, bool) or not isinstance(fb, (int, np.integer)) or fb < 1:
            raise ConfigError(f"ChannelInterleaver: frame_bits must be a positive integer, got frame_bits={fb!r}")
        depth = max(1, math.ceil(ms * 1e-3 * rate / fb - 1e-9))
        return cls(n, depth, rate, frame_bits)

    # --- sizes -----------------------------------------------------------------------------
    @property
    def block_bits(self) -> int:
        """Codeword bits per interleaver block, D*n (the ``n_in`` = ``n_out`` of a call)."""
        return self.depth * self.n

    @property
    def span_s(self) -> float:
        """Time one block occupies on the wire, ``D * frame_bits / bit_rate``."""
        return self.depth * self.frame_bits / self.bit_rate

    @property
    def memory_bits(self) -> int:
        """Entries held per side (transmitter bits or receiver LLRs): D*n."""
        return self.block_bits

    @property
    def memory_s(self) -> float:
        """The memory expressed as wire time: D*n / bit_rate."""
        return self.block_bits / self.bit_rate

    def rx_memory_bytes(self, llr_bits: int = 8) -> float:
        """De-interleaver memory in bytes for ``llr_bits``-bit LLRs (single buffer)."""
        return self.block_bits * llr_bits / 8.0

    @property
    def latency_bits(self) -> int:
        """Added end-to-end latency in channel-bit times: 2 * D * frame_bits (0 for D = 1)."""
        return 0 if self.depth == 1 else 2 * self.depth * self.frame_bits

    @property
    def latency_s(self) -> float:
        return self.latency_bits / self.bit_rate

    def describe(self) -> dict:
        """The figures a report prints."""
        return {"depth_frames": self.depth, "n": self.n, "frame_bits": self.frame_bits,
                "span_s": self.span_s, "latency_bits": self.latency_bits, "latency_s": self.latency_s,
                "memory_bits": self.memory_bits, "memory_s": self.memory_s,
                "rx_memory_bytes_int8": self.rx_memory_bytes(8)}

    # --- mapping -----------------------------------------------------------------------------
    def channel_position(self, i, j) -> np.ndarray:
        """Channel index within the block of bit ``j`` of codeword ``i`` (int64): ``j*D + i``."""
        return np.asarray(j, dtype=np.int64) * self.depth + np.asarray(i, dtype=np.int64)

    def _check(self, x, who):
        x = np.asarray(x)
        if x.ndim == 0 or x.shape[-1] != self.block_bits:
            raise ShapeError(f"ChannelInterleaver.{who}: input must have last axis D*n = {self.depth}*{self.n} "
                             f"= {self.block_bits}, got shape {x.shape}")
        return x

    def interleave(self, x) -> np.ndarray:
        """(*batch, D*n) -> (*batch, D*n), any dtype (bits or LLRs); a new array."""
        x = self._check(x, "interleave")
        return np.take(x, _perm(self.depth, self.n), axis=-1)

    def deinterleave(self, y) -> np.ndarray:
        """Inverse of :meth:`interleave`."""
        y = self._check(y, "deinterleave")
        return np.take(y, _inv(self.depth, self.n), axis=-1)

    def __repr__(self):
        return (f"ChannelInterleaver(n={self.n}, depth={self.depth}, bit_rate={self.bit_rate:g}, "
                f"frame_bits={self.frame_bits})")
