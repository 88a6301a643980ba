# SPDX-License-Identifier: Apache-2.0
"""CCSDS pseudo-randomizers.

* :func:`pn8`: the CCSDS TM randomizer h(x) = x^8 + x^7 + x^5 + x^3 + 1, register all ones at the
  start of each block, period 255 (CCSDS 131.0-B §10, reused by CCSDS 142.0-B-1 §3.5 on every k-bit
  SCPPM information block). First 40 bits: FF 48 0E C0 9A.
* :func:`pn17`: the newer x^17 + x^14 + 1 randomizer (period 131071, CCSDS 131.0-B-5): Fibonacci
  LFSR seeded 0x18E38, output = bit 0, feedback s0 xor s14 into bit 16. First 40 bits:
  1C 71 B9 1B A9 (two public implementations agree; the B-5 seed bit order is not confirmed).

Randomizing is XOR with the sequence, so it is its own inverse.
"""
from __future__ import annotations

import functools

import numpy as np

from ..errors import ConfigError
from .bits import check_bits


@functools.lru_cache(maxsize=32)
def _pn8(n: int) -> np.ndarray:
    p = np.empty(max(n, 8), dtype=np.uint8)
    p[:8] = 1
    for i in range(n - 8):
        p[i + 8] = p[i + 7] ^ p[i + 5] ^ p[i + 3] ^ p[i]
    p = p[:n]
    p.setflags(write=False)
    return p


def pn8(n: int) -> np.ndarray:
    """First ``n`` bits of the CCSDS x^8+x^7+x^5+x^3+1 sequence (read-only uint8)."""
    return _pn8(int(n))


@functools.lru_cache(maxsize=32)
def _pn17(n: int) -> np.ndarray:
    reg = 0x18E38
    out = np.empty(n, dtype=np.uint8)
    for i in range(n):
        out[i] = reg & 1
        fb = (reg ^ (reg >> 14)) & 1
        reg = (reg >> 1) | (fb << 16)
    out.setflags(write=False)
    return out


def pn17(n: int) -> np.ndarray:
    """First ``n`` bits of the x^17 + x^14 + 1 randomizer (read-only uint8)."""
    return _pn17(int(n))


def randomize(bits, kind: str = "pn8") -> np.ndarray:
    """XOR each block ``(*batch, n)`` with the randomizer restarted at its bit 0 (self-inverse)."""
    gens = {"pn8": pn8, "pn17": pn17}
    if kind not in gens:
        raise ConfigError(f"randomize: kind must be one of {sorted(gens)}, got {kind!r}")
    b = check_bits(bits, None, "randomize", "bits")
    seq = gens[kind](b.shape[-1])
    return b ^ seq
