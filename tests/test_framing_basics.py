# SPDX-License-Identifier: Apache-2.0
"""Randomizers and CRCs against published / computed check values."""
import numpy as np
import pytest

from modem.errors import ConfigError, ShapeError
from modem.framing.bits import pack_bits
from modem.framing.crc import crc16_ccitt, crc32_hpe
from modem.framing.randomizer import pn8, pn17, randomize

ASCII_123456789 = np.unpackbits(np.frombuffer(b"123456789", dtype=np.uint8))


def test_pn8_first_40_bits():
    # CCSDS 131.0-B §10 / 142.0-B-1 §3.5.2.1 note: 1111 1111 0100 1000 0000 1110 1100 0000 1001 1010
    assert pack_bits(pn8(40)).hex() == "ff480ec09a"


def test_pn8_period_255():
    p = pn8(255 * 3)
    assert np.array_equal(p[:255], p[255:510]) and not np.array_equal(p[:254], p[1:255])


def test_pn17_first_40_bits():
    assert pack_bits(pn17(40)).hex() == "1c71b91ba9"


def test_randomizer_is_involution(rng):
    x = rng.integers(0, 2, (3, 5, 7526), dtype=np.uint8)
    y = randomize(x)
    assert not np.array_equal(x, y)
    np.testing.assert_array_equal(randomize(y), x)


def test_crc32_hpe_check_values():
    assert int(crc32_hpe(np.zeros(5006, np.uint8))) == 0xD7D88B9F
    assert int(crc32_hpe(ASCII_123456789)) == 0x4FD94EA8


def test_crc32_hpe_matches_bitwise_definition(rng):
    def slow(bits):
        reg = 0xFFFFFFFF
        for b in bits:
            fb = (reg >> 31) ^ int(b)
            reg = (reg << 1) & 0xFFFFFFFF
            if fb:
                reg ^= 0x20044009
        return reg
    x = rng.integers(0, 2, (4, 77), dtype=np.uint8)   # not a multiple of 8
    np.testing.assert_array_equal(crc32_hpe(x), [slow(r) for r in x])


def test_crc16_ccitt_false_check_value():
    assert int(crc16_ccitt(ASCII_123456789)) == 0x29B1


def test_bad_bits_named():
    with pytest.raises(ShapeError, match="found value 2"):
        crc32_hpe(np.array([0, 1, 2]))
    with pytest.raises(ShapeError, match="dtype"):
        randomize(np.array([0.5, 1.0]))
    with pytest.raises(ConfigError, match=r"kind must be one of \['pn17', 'pn8'\], got 'pn9'"):
        randomize(np.zeros(8, np.uint8), kind="pn9")
