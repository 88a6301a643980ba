# SPDX-License-Identifier: Apache-2.0
"""DVB-S2 outer BCH code (EN 302 307-1 5.3.1, Tables 6a/6b): generator, encoder, algebraic decoder."""
from __future__ import annotations

import numpy as np
import pytest

from modem.errors import ConfigError, ShapeError
from modem.fec import dvbs2
from modem.fec.dvbs2.bch import BCHCode, generator_polynomial, gf_tables

SEED = 20240601
# one code per (field, t): normal t = 12 / 10 / 8, short t = 12
CODES = [("normal", "1/2"), ("normal", "2/3"), ("normal", "9/10"), ("short", "1/2"), ("short", "8/9")]


def _poly_eval(poly: int, j: int, m: int) -> int:
    """poly (bit i = coefficient of x^i) evaluated at alpha^j in GF(2^m)."""
    gexp, glog = gf_tables(m)
    order = (1 << m) - 1
    acc = 0
    for i in range(poly.bit_length() - 1, -1, -1):
        acc = 0 if acc == 0 else int(gexp[(int(glog[acc]) + j) % order])
        acc ^= (poly >> i) & 1
    return acc


def _gf2_mod(a: int, g: int) -> int:
    dg = g.bit_length() - 1
    while a and a.bit_length() - 1 >= dg:
        a ^= g << (a.bit_length() - 1 - dg)
    return a


@pytest.mark.parametrize("m,t", [(16, 8), (16, 10), (16, 12), (14, 12)])
def test_generator_roots_and_degree(m, t):
    g = generator_polynomial(m, t)
    assert g.bit_length() - 1 == m * t          # 128/160/192 (normal), 168 (short) parity bits
    for j in range(1, 2 * t + 1):
        assert _poly_eval(g, j, m) == 0, f"g(alpha^{j}) != 0"
    assert _poly_eval(g, 2 * t + 1, m) != 0     # designed distance exactly 2t + 1


@pytest.mark.parametrize("frame,rate", dvbs2.all_codes())
def test_bch_dimensions(frame, rate):
    c = dvbs2.code(frame, rate)
    assert c.bch.n == c.k_ldpc and c.bch.k == c.k
    assert c.bch.nparity == (16 if frame == "normal" else 14) * c.t


@pytest.mark.parametrize("frame,rate", CODES)
def test_encoder_is_systematic_and_divisible(frame, rate):
    b = dvbs2.code(frame, rate).bch
    rng = np.random.default_rng(SEED)
    u = rng.integers(0, 2, (3, b.k), dtype=np.uint8)
    cw = b.encode(u)
    np.testing.assert_array_equal(cw[:, :b.k], u)
    for row in cw:                        # c(x), first bit = highest degree, is a multiple of g(x)
        assert _gf2_mod(int("".join(map(str, row)), 2), b.g) == 0
    np.testing.assert_array_equal(b.encode(np.zeros(b.k, np.uint8)), np.zeros(b.n, np.uint8))


@pytest.mark.parametrize("frame,rate", CODES)
def test_corrects_up_to_t_errors(frame, rate):
    b = dvbs2.code(frame, rate).bch
    rng = np.random.default_rng(SEED + 1)
    ntr = 120
    u = rng.integers(0, 2, (ntr, b.k), dtype=np.uint8)
    cw = b.encode(u)
    rx = cw.copy()
    nerr = np.arange(ntr) % (b.t + 1)          # 0 .. t errors, every count many times
    for i in range(ntr):
        if i % 4 == 0:                         # some patterns entirely in the parity part
            pos = b.k + rng.choice(b.nparity, nerr[i], replace=False)
        elif i % 4 == 1:                       # first and last positions included
            pos = np.unique(np.r_[0, b.n - 1, rng.choice(b.n, nerr[i], replace=False)])[:nerr[i]]
        else:
            pos = rng.choice(b.n, nerr[i], replace=False)
        rx[i, pos] ^= 1
    keep = rx.copy()
    dec, corr = b.decode(rx)
    np.testing.assert_array_equal(rx, keep)    # input not modified
    np.testing.assert_array_equal(dec, cw)
    np.testing.assert_array_equal(corr, nerr)


@pytest.mark.parametrize("frame,rate", CODES)
def test_t_plus_one_errors_detected(frame, rate):
    """t+1 errors: a bounded-distance decoder can never return the sent word (it is at distance
    t+1); it either reports failure (-1) or miscorrects into another codeword within distance t
    of the received word. For these codes, shortened from 2^m - 1 to N << 2^m, a miscorrection
    needs the error locator to have all its roots inside the N used positions, which is rare:
    we require failure in at least 95 % of the trials and never a "success" on the sent word."""
    b = dvbs2.code(frame, rate).bch
    rng = np.random.default_rng(SEED + 2)
    ntr = 100
    u = rng.integers(0, 2, (ntr, b.k), dtype=np.uint8)
    cw = b.encode(u)
    rx = cw.copy()
    for i in range(ntr):
        rx[i, rng.choice(b.n, b.t + 1, replace=False)] ^= 1
    dec, corr = b.decode(rx)
    assert not np.any(np.all(dec == cw, axis=1))
    assert np.mean(corr == -1) >= 0.95
    fail = corr == -1
    np.testing.assert_array_equal(dec[fail], rx[fail])   # failures leave the word unchanged
    # a claimed correction of c bits must land on a codeword at distance c
    for i in np.nonzero(~fail)[0]:
        assert np.count_nonzero(dec[i] != rx[i]) == corr[i] <= b.t
        _, again = b.decode(dec[i])
        assert again == 0


def test_many_errors_reported_as_failure():
    b = dvbs2.code("short", "1/2").bch
    rng = np.random.default_rng(SEED + 3)
    rx = rng.integers(0, 2, (50, b.n), dtype=np.uint8)      # random words: far from any codeword
    _, corr = b.decode(rx)
    assert np.mean(corr == -1) >= 0.95


def test_bch_bad_input():
    b = dvbs2.code("short", "1/4").bch
    with pytest.raises(ShapeError, match=str(b.k)):
        b.encode(np.zeros(b.k - 1, np.uint8))
    with pytest.raises(ShapeError, match=str(b.n)):
        b.decode(np.zeros(b.n + 1, np.uint8))
    with pytest.raises(ShapeError, match="3"):
        b.decode(np.full(b.n, 3, np.uint8))
    with pytest.raises(ConfigError, match="t="):
        BCHCode(m=16, t=13, n=32400)
    with pytest.raises(ConfigError, match="m="):
        BCHCode(m=15, t=12, n=32400)


def test_bch_batch_shapes():
    b = dvbs2.code("short", "1/3").bch
    rng = np.random.default_rng(SEED + 4)
    u = rng.integers(0, 2, (2, 2, b.k), dtype=np.uint8)
    cw = b.encode(u)
    assert cw.shape == (2, 2, b.n)
    rx = cw.copy()
    rx[1, 0, [3, 50]] ^= 1
    dec, corr = b.decode(rx)
    assert corr.shape == (2, 2)
    np.testing.assert_array_equal(corr, [[0, 0], [2, 0]])
    np.testing.assert_array_equal(dec, cw)
