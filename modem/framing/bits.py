# SPDX-License-Identifier: Apache-2.0
"""Bit helpers and input validation shared by every bit-level stage."""
from __future__ import annotations

import numpy as np

from ..errors import ShapeError


def check_bits(x, n: int | None, who: str, name: str = "u") -> np.ndarray:
    """Validate a 0/1 bit array of shape ``(*batch, n)`` and return it as ``uint8``.

    Raises ShapeError naming the stage, the array and the bad value (wrong last axis, values
    other than 0/1, non-integer dtype).
    """
    a = np.asarray(x)
    if a.ndim == 0:
        raise ShapeError(f"{who}: {name} must be an array of bits (..., {n}), got a scalar")
    if n is not None and a.shape[-1] != n:
        raise ShapeError(f"{who}: {name} must have last axis {n}, got shape {a.shape}")
    if a.dtype.kind == "b":
        return a.astype(np.uint8)
    if a.dtype.kind not in "iu":
        if a.dtype.kind == "f" and a.size and np.all(np.isfinite(a)) and np.all((a == 0) | (a == 1)):
            return a.astype(np.uint8)
        raise ShapeError(f"{who}: {name} must hold integer bits 0/1, got dtype {a.dtype}")
    if a.size and (a.min() < 0 or a.max() > 1):
        bad = a[(a < 0) | (a > 1)].flat[0]
        raise ShapeError(f"{who}: {name} must hold only bits 0/1, found value {int(bad)}")
    return a.astype(np.uint8, copy=False)


def bits_from_int(value: int, n: int) -> np.ndarray:
    """``n`` bits of ``value``, MSB first, as uint8."""
    return np.array([(value >> (n - 1 - i)) & 1 for i in range(n)], dtype=np.uint8)


def int_from_bits(bits) -> int:
    """Integer from bits, MSB first."""
    v = 0
    for b in np.asarray(bits).ravel():
        v = (v << 1) | int(b)
    return v


def pack_bits(bits) -> bytes:
    """Bits (MSB first, length multiple of 8) to bytes."""
    return np.packbits(np.asarray(bits, dtype=np.uint8), axis=-1).tobytes()


def unpack_bytes(data: bytes) -> np.ndarray:
    return np.unpackbits(np.frombuffer(data, dtype=np.uint8))
