# SPDX-License-Identifier: Apache-2.0
"""Cyclic redundancy checks on bit arrays (MSB first, no reflection).

* CRC-32 of CCSDS 142.0-B-1 §3.6: h(X) = X^32+X^29+X^18+X^14+X^3+1 (0x20044009), register preset
  to all ones, direct MSB-first algorithm, no final XOR. Check values (this convention):
  5006 zero bits -> 0xD7D88B9F; ASCII "123456789" -> 0x4FD94EA8. Not the IEEE CRC-32.
* CRC-16-CCITT of CCSDS 132.0-B (frame error control field): 0x1021, preset 0xFFFF.

Computed with a byte-wise table over the leading whole octets and a bit loop over the rest, in
Numba, over a batch of blocks at once.
"""
from __future__ import annotations

import numba as nb
import numpy as np

from .bits import check_bits

CRC32_HPE_POLY = 0x20044009
CRC16_CCITT_POLY = 0x1021


def _table(poly: int, width: int) -> np.ndarray:
    top = 1 << (width - 1)
    mask = (1 << width) - 1
    t = np.zeros(256, dtype=np.uint64)
    for byte in range(256):
        reg = byte << (width - 8)
        for _ in range(8):
            reg = ((reg << 1) ^ poly) & mask if reg & top else (reg << 1) & mask
        t[byte] = reg
    return t


_TABLES = {(CRC32_HPE_POLY, 32): _table(CRC32_HPE_POLY, 32), (CRC16_CCITT_POLY, 16): _table(CRC16_CCITT_POLY, 16)}


@nb.njit(cache=True)
def _crc_batch(bits, table, poly, width, init):
    n_blk, n = bits.shape
    out = np.empty(n_blk, dtype=np.uint64)
    mask = (np.uint64(1) << np.uint64(width)) - np.uint64(1)
    top = np.uint64(1) << np.uint64(width - 1)
    shift = np.uint64(width - 8)
    for b in range(n_blk):
        reg = np.uint64(init)
        nbytes = n // 8
        for i in range(nbytes):
            byte = np.uint64(0)
            for j in range(8):
                byte = (byte << np.uint64(1)) | np.uint64(bits[b, 8 * i + j])
            idx = ((reg >> shift) ^ byte) & np.uint64(0xFF)
            reg = ((reg << np.uint64(8)) & mask) ^ table[idx]
        for i in range(8 * nbytes, n):
            fb = ((reg & top) != 0) ^ (bits[b, i] != 0)
            reg = (reg << np.uint64(1)) & mask
            if fb:
                reg ^= np.uint64(poly)
        out[b] = reg
    return out


def crc_table(poly: int, width: int) -> np.ndarray:
    """Byte table (256,) uint64 of the MSB-first CRC of generator ``poly`` and ``width`` bits:
    entry b is the register after shifting byte b (MSB first) through a zero register (cached)."""
    table = _TABLES.get((poly, width))
    if table is None:
        table = _TABLES.setdefault((poly, width), _table(poly, width))
    return table


def crc(bits, poly: int, width: int, init: int) -> np.ndarray:
    """CRC register value after the bits of each block ``(*batch, n)`` -> ``(*batch,)`` uint64."""
    b = check_bits(bits, None, "crc", "bits")
    flat = np.ascontiguousarray(b.reshape(-1, b.shape[-1]))
    return _crc_batch(flat, crc_table(poly, width), poly, width, init).reshape(b.shape[:-1])


def crc32_hpe(bits) -> np.ndarray:
    """CCSDS 142.0-B-1 CRC-32 of each block ``(*batch, n)`` -> ``(*batch,)`` uint64."""
    return crc(bits, CRC32_HPE_POLY, 32, 0xFFFFFFFF)


def crc16_ccitt(bits) -> np.ndarray:
    """CCSDS 132.0-B frame error control CRC-16 (0x1021, preset 0xFFFF) -> ``(*batch,)`` uint64."""
    return crc(bits, CRC16_CCITT_POLY, 16, 0xFFFF)


def crc_bits(values, width: int) -> np.ndarray:
    """CRC values ``(*batch,)`` to their bits ``(*batch, width)``, MSB first (as appended)."""
    v = np.asarray(values, dtype=np.uint64)[..., None]
    sh = np.arange(width - 1, -1, -1, dtype=np.uint64)
    return ((v >> sh) & np.uint64(1)).astype(np.uint8)
