# SPDX-License-Identifier: Apache-2.0
"""DVB-S2 outer BCH code (ETSI EN 302 307-1 V1.4.1, 5.3.1, Tables 6a/6b).

A t-error-correcting binary BCH code shortened from length 2^m - 1 (m = 16 for normal frames,
m = 14 for short ones) to N_bch = K_ldpc. Its generator is the product of the first t minimal
polynomials g_1 .. g_t of the standard; g_1 is the primitive polynomial of GF(2^m) and g_i is the
minimal polynomial of alpha^(2i-1), so g(alpha^j) = 0 for j = 1 .. 2t (checked in the tests).

Bit order (as the standard's): message bit u[0] is the coefficient of x^(N_bch - 1); the codeword
is ``[u, parity]`` with parity = u(x) x^(N_bch - K_bch) mod g(x), highest degree first.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass, field

import numpy as np

from ...errors import ConfigError, ShapeError
from ...framing.bits import check_bits
from . import _cpu

# Minimal polynomials as exponent lists (EN 302 307-1 Table 6a, normal FECFRAME, GF(2^16)).
G_NORMAL = (
    (0, 2, 3, 5, 16),
    (0, 1, 4, 5, 6, 8, 16),
    (0, 2, 3, 4, 5, 7, 8, 9, 10, 11, 16),
    (0, 2, 4, 6, 9, 11, 12, 14, 16),
    (0, 1, 2, 3, 5, 8, 9, 10, 11, 12, 16),
    (0, 2, 4, 5, 7, 8, 9, 10, 12, 13, 14, 15, 16),
    (0, 2, 5, 6, 8, 9, 10, 11, 13, 15, 16),
    (0, 1, 2, 5, 6, 8, 9, 12, 13, 14, 16),
    (0, 5, 7, 9, 10, 11, 16),
    (0, 1, 2, 5, 7, 8, 10, 12, 13, 14, 16),
    (0, 2, 3, 5, 9, 11, 12, 13, 16),
    (0, 1, 5, 6, 7, 9, 11, 12, 16),
)
# Table 6b, short FECFRAME, GF(2^14).
G_SHORT = (
    (0, 1, 3, 5, 14),
    (0, 6, 8, 11, 14),
    (0, 1, 2, 6, 9, 10, 14),
    (0, 4, 7, 8, 10, 12, 14),
    (0, 2, 4, 6, 8, 9, 11, 13, 14),
    (0, 3, 7, 8, 9, 13, 14),
    (0, 2, 5, 6, 7, 10, 11, 13, 14),
    (0, 5, 8, 9, 10, 11, 14),
    (0, 1, 2, 3, 9, 10, 14),
    (0, 3, 6, 9, 11, 12, 14),
    (0, 4, 11, 12, 14),
    (0, 1, 2, 3, 5, 6, 7, 8, 10, 13, 14),
)


def _poly_int(exps) -> int:
    v = 0
    for e in exps:
        v |= 1 << e
    return v


def _gf2_mul(a: int, b: int) -> int:
    r = 0
    while b:
        if b & 1:
            r ^= a
        a <<= 1
        b >>= 1
    return r


def generator_polynomial(m: int, t: int) -> int:
    """g(x) = g_1 ... g_t as an integer (bit i = coefficient of x^i)."""
    polys = G_NORMAL if m == 16 else G_SHORT
    g = 1
    for exps in polys[:t]:
        g = _gf2_mul(g, _poly_int(exps))
    return g


@functools.lru_cache(maxsize=None)
def gf_tables(m: int):
    """(exp table of length 2*(2^m - 1), log table of length 2^m) of GF(2^m) built on g_1."""
    prim = _poly_int((G_NORMAL if m == 16 else G_SHORT)[0])
    order = (1 << m) - 1
    gexp = np.zeros(2 * order + 2, dtype=np.int64)
    glog = np.zeros(1 << m, dtype=np.int64)
    x = 1
    for i in range(order):
        gexp[i] = x
        glog[x] = i
        x <<= 1
        if x >> m:
            x ^= prim
    if x != 1:
        raise ConfigError(f"BCH: g1 is not primitive over GF(2^{m})")
    gexp[order:2 * order] = gexp[:order]
    gexp[2 * order:] = gexp[:2]
    return gexp, glog


def _left_aligned(value: int, nbits: int, nw: int) -> np.ndarray:
    """Words (MSB first) holding the nbits-bit value left-aligned in nw 64-bit words."""
    v = value << (64 * nw - nbits)
    return np.array([(v >> (64 * (nw - 1 - w))) & 0xFFFFFFFFFFFFFFFF for w in range(nw)], dtype=np.uint64)


@dataclass(frozen=True)
class BCHCode:
    """Shortened binary BCH code of the DVB-S2 outer code.

    Parameters
    ----------
    m : 16 (normal FECFRAME) or 14 (short).
    t : error-correcting capability (8, 10 or 12).
    n : codeword length N_bch (= K_ldpc).
    """

    m: int
    t: int
    n: int
    g: int = field(init=False, repr=False)
    k: int = field(init=False)
    nparity: int = field(init=False)

    def __post_init__(self):
        if self.m not in (14, 16):
            raise ConfigError(f"BCHCode: m must be 14 or 16, got m={self.m}")
        if not 1 <= self.t <= 12:
            raise ConfigError(f"BCHCode: t must be in 1..12, got t={self.t}")
        g = generator_polynomial(self.m, self.t)
        p = g.bit_length() - 1
        if not p < self.n < (1 << self.m):
            raise ConfigError(f"BCHCode: n must be in {p + 1}..{(1 << self.m) - 1}, got n={self.n}")
        object.__setattr__(self, "g", g)
        object.__setattr__(self, "nparity", p)
        object.__setattr__(self, "k", self.n - p)

    @functools.cached_property
    def _tables(self):
        p = self.nparity
        nw = (p + 63) // 64
        gen = _left_aligned(self.g ^ (1 << p), p, nw)
        table = np.zeros((256, nw), dtype=np.uint64)
        for idx in range(256):
            reg = _left_aligned(idx << (p - 8), p, nw)
            for _ in range(8):
                top = int(reg[0] >> np.uint64(63))
                # shift left by one across words
                for w in range(nw - 1):
                    reg[w] = (reg[w] << np.uint64(1)) | (reg[w + 1] >> np.uint64(63))
                reg[nw - 1] = reg[nw - 1] << np.uint64(1)
                if top:
                    reg ^= gen
            table[idx] = reg
        return table, gen

    def encode(self, u) -> np.ndarray:
        """Systematic BCH encoding.

        Input: u (..., k) uint8 bits. Output: c (..., n) uint8 = [u, parity].
        Raises ShapeError for a wrong last axis or values other than 0/1.
        """
        u = check_bits(u, self.k, "BCHCode.encode", "u")
        flat = np.ascontiguousarray(u.reshape(-1, self.k))
        table, gen = self._tables
        par = _cpu.bch_parity(flat, table, gen, self.nparity)
        return np.concatenate([flat, par], axis=1).reshape(u.shape[:-1] + (self.n,))

    def decode(self, c):
        """Algebraic decoding (syndromes, Berlekamp-Massey, Chien search).

        Input: c (..., n) uint8 hard bits. Output: (c_hat (..., n) uint8, corrected (...) int32):
        corrected = number of bits flipped (0 for a codeword), -1 where more errors than the
        decoder can locate were detected (c_hat is then the input unchanged). As for any bounded
        distance decoder, a pattern of more than t errors may also land within distance t of
        another codeword and be "corrected" into it (a miscorrection).
        """
        c = check_bits(c, self.n, "BCHCode.decode", "c")
        flat = np.array(c.reshape(-1, self.n), dtype=np.uint8, order="C", copy=True)
        corrected = self.decode_inplace(flat)
        return flat.reshape(c.shape), corrected.reshape(c.shape[:-1])

    def decode_inplace(self, flat: np.ndarray) -> np.ndarray:
        """Decode the C-contiguous (B, n) uint8 array in place; returns corrected counts (B,).
        Raises ShapeError for any other array (the kernel would misread it)."""
        if not isinstance(flat, np.ndarray) or flat.ndim != 2 or flat.shape[1] != self.n:
            raise ShapeError(f"BCHCode.decode_inplace: need a (B, n={self.n}) array, got "
                             f"{type(flat).__name__} of shape {np.shape(flat)}")
        if flat.dtype != np.uint8 or not flat.flags.c_contiguous or not flat.flags.writeable:
            raise ShapeError(f"BCHCode.decode_inplace: need a writeable C-contiguous uint8 array, got "
                             f"dtype {flat.dtype}, c_contiguous={flat.flags.c_contiguous}, "
                             f"writeable={flat.flags.writeable}")
        table, gen = self._tables
        gexp, glog = gf_tables(self.m)
        return _cpu.bch_decode(flat, table, gen, self.nparity, self.t, gexp, glog, (1 << self.m) - 1)
