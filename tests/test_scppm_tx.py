# SPDX-License-Identifier: Apache-2.0
"""SCPPM transmit chain (CCSDS 142.0-B-1 §3): every stage against vectors and invariants."""
import numpy as np
import pytest

from modem.errors import ConfigError, ShapeError
from modem.fec.scppm import (ChannelInterleaver, SCPPMCode, SCPPMEncoder, SCPPMTransmitter, accumulate,
                             attach_asm, conv_encode, deinterleave_bits, interleave_bits, ppm_map,
                             ppm_unmap, puncture, slice_blocks, symbols_to_slots)
from modem.fec.scppm.code import PPM_ORDERS, bit_deinterleaver, bit_interleaver
from modem.framing.crc import crc32_hpe
from modem.framing.randomizer import pn8

RATES = ["1/3", "1/2", "2/3"]


def test_block_sizes_table_3_1():
    for rate, k in [("1/3", 5006), ("1/2", 7526), ("2/3", 10046)]:
        c = SCPPMCode(16, rate)
        assert c.k == k and c.k_hat == k + 34 and len(c.kept_positions) == 15120


@pytest.mark.parametrize("M,S", [(4, 7560), (8, 5040), (16, 3780), (32, 3024), (64, 2520), (128, 2160), (256, 1890)])
def test_symbols_per_codeword(M, S):
    assert SCPPMCode(M, "1/2").S == S


def test_slots_per_codeword_matches_rate_table():
    # hpe-scppm.md §1.14: 16-PPM, r 1/2 -> 75920 slots/codeword, 198.3 Mb/s at 0.5 ns
    c = SCPPMCode(16, "1/2")
    assert c.slots_per_codeword == 75920
    assert c.info_rate(0.5e-9) / 1e6 == pytest.approx(198.3, abs=0.05)
    assert SCPPMCode(128, "2/3").info_rate(0.5e-9) / 1e6 == pytest.approx(57.7, abs=0.05)


def test_asm_and_slicing():
    frames = np.zeros((2, 8), np.uint8)
    smtf = attach_asm(frames)
    assert smtf.shape == (2, 40)
    assert np.packbits(smtf[0, :32]).tobytes().hex() == "1acffc1d"
    blocks = slice_blocks(smtf.reshape(-1), 30)
    assert blocks.shape == (3, 30) and blocks.reshape(-1)[80:].sum() == 0   # zero fill at the end


def test_conv_code_against_commpy(rng):
    cc = pytest.importorskip("commpy.channelcoding.convcode")
    trellis = cc.Trellis(np.array([2]), np.array([[0o5, 0o7, 0o7]]))
    u = rng.integers(0, 2, 200, dtype=np.uint8)
    u[-2:] = 0
    ref = cc.conv_encode(u, trellis, termination="cont")
    np.testing.assert_array_equal(conv_encode(u), ref.astype(np.uint8))


def test_conv_code_generators():
    # impulse response: c0 = 1 0 1 (octal 5), c1 = c2 = 1 1 1 (octal 7)
    c = conv_encode(np.array([1, 0, 0], np.uint8)).reshape(3, 3)
    np.testing.assert_array_equal(c[:, 0], [1, 0, 1])
    np.testing.assert_array_equal(c[:, 1], [1, 1, 1])
    np.testing.assert_array_equal(c[:, 2], [1, 1, 1])


@pytest.mark.parametrize("rate,pattern", [("1/3", "111111"), ("1/2", "110110"), ("2/3", "110010")])
def test_puncturing_patterns(rate, pattern):
    c = SCPPMCode(16, rate)
    serial = np.arange(c.n_mother)
    kept = puncture(serial, c)
    assert kept.size == 15120
    mask = np.array([int(ch) for ch in pattern], bool)
    np.testing.assert_array_equal(kept[: mask.sum() * 4], np.flatnonzero(np.tile(mask, 4)))


def test_bit_interleaver_vector_and_inverse(rng):
    pi = bit_interleaver()
    np.testing.assert_array_equal(pi[:10], [0, 221, 862, 1923, 3404, 5305, 7626, 10367, 13528, 1989])
    assert np.unique(pi).size == 15120
    j = np.arange(15120)
    np.testing.assert_array_equal(pi, (11 * j + 210 * j * j) % 15120)
    np.testing.assert_array_equal(pi[bit_deinterleaver()], j)
    x = rng.integers(0, 2, (2, 15120), dtype=np.uint8)
    y = interleave_bits(x)
    np.testing.assert_array_equal(y[:, 5], x[:, pi[5]])
    np.testing.assert_array_equal(deinterleave_bits(y), x)


def test_accumulator_and_ppm_map():
    v = np.array([1, 0, 0, 1, 1, 1, 0, 0], np.uint8)
    np.testing.assert_array_equal(accumulate(v), [1, 1, 1, 0, 1, 0, 0, 0])
    np.testing.assert_array_equal(ppm_map(np.array([1, 1, 1, 0, 1, 0, 0, 0]), 16), [14, 8])
    for M in PPM_ORDERS:   # every symbol value round-trips, MSB first
        s = np.arange(M)
        np.testing.assert_array_equal(ppm_map(ppm_unmap(s, M), M), s)
    assert ppm_unmap(np.array([1]), 4).tolist() == [0, 1]


def test_encoder_stages_compose(rng):
    c = SCPPMCode(16, "1/2")
    enc = SCPPMEncoder(c)
    u = rng.integers(0, 2, (3, c.k), dtype=np.uint8)
    x = enc.outer_input(u)
    np.testing.assert_array_equal(x[:, : c.k], u ^ pn8(c.k))                    # randomized first
    crc_vals = crc32_hpe(x[:, : c.k])
    np.testing.assert_array_equal(np.packbits(x[:, c.k:c.k + 32], axis=-1),
                                  np.stack([np.frombuffer(int(v).to_bytes(4, "big"), np.uint8) for v in crc_vals]))
    np.testing.assert_array_equal(x[:, -2:], 0)                                 # termination
    sym = enc(u)
    assert sym.shape == (3, c.S) and sym.min() >= 0 and sym.max() < 16
    # the accumulator + PPM map: unmap and differentiate recovers the interleaved coded bits
    a = ppm_unmap(sym, 16)
    v = a ^ np.concatenate([np.zeros((3, 1), np.uint8), a[:, :-1]], axis=1)
    np.testing.assert_array_equal(deinterleave_bits(v), enc.coded_bits(u))


def test_encoder_terminates_in_state_zero(rng):
    c = SCPPMCode(16, "1/3")
    x = SCPPMEncoder(c).outer_input(rng.integers(0, 2, (1, c.k), dtype=np.uint8))
    mother = conv_encode(x).reshape(-1, 3)
    # with the two zero termination bits, the last output triple depends only on u_{T-3}
    assert mother.shape[0] == c.k_hat


def test_batch_and_multidimension(rng):
    c = SCPPMCode(32, "2/3")
    enc = SCPPMEncoder(c)
    u = rng.integers(0, 2, (2, 3, c.k), dtype=np.uint8)
    np.testing.assert_array_equal(enc(u).reshape(6, -1), enc(u.reshape(6, -1)))


@pytest.mark.parametrize("N,B", [(2, 1890), (3, 1260), (4, 945)])
def test_channel_interleaver_inverse_and_chunking(rng, N, B):
    c = SCPPMCode(16, "1/2", interleaver_rows=N, interleaver_shift=B)
    x = rng.integers(0, 16, 5 * c.S)
    il = ChannelInterleaver(c)
    y = np.concatenate([il.process(x), il.flush()])
    assert y.size == x.size + B * N * (N - 1)
    # chunked gives the same output
    il2 = ChannelInterleaver(c)
    cuts = np.sort(rng.choice(np.arange(1, x.size), 7, replace=False))
    y2 = np.concatenate([il2.process(p) for p in np.split(x, cuts)] + [il2.flush()])
    np.testing.assert_array_equal(y, y2)
    # row j delays by j*N*B symbol periods
    i = 7
    j = i % N
    assert y[i + j * N * B] == x[i]
    de = ChannelInterleaver(c, inverse=True)
    z = np.concatenate([de.process(y), de.flush()])
    np.testing.assert_array_equal(z[c.interleaver_delay: c.interleaver_delay + x.size], x)


def test_channel_interleaver_spec_checks():
    with pytest.raises(ConfigError, match="multiple of S=3780"):
        SCPPMCode(16, "1/2", interleaver_rows=2, interleaver_shift=100)
    SCPPMCode(16, "1/2", interleaver_rows=2, interleaver_shift=100, check_interleaver_multiple=False)


def test_slot_mapper_guard_and_csm():
    c = SCPPMCode(16, "1/2")
    slots = symbols_to_slots(np.array([[3, 0]]), c)
    assert slots.shape == (1, 40)
    np.testing.assert_array_equal(np.flatnonzero(slots[0]), [3, 20])
    tx = SCPPMTransmitter(c)
    p = tx.modulate(np.zeros((1, c.k), np.uint8))
    assert p.shape == (1, c.slots_per_codeword)
    per_sym = p.reshape(-1, 20)
    np.testing.assert_array_equal(per_sym.sum(1), 1)              # exactly one pulse per symbol
    np.testing.assert_array_equal(per_sym[:, 16:], 0)             # M/4 guard slots empty
    np.testing.assert_array_equal(per_sym[:16].argmax(1), c.csm_symbols)   # CSM first


@pytest.mark.parametrize("unit", ["symbol", "codeword"])
def test_repetition(unit):
    c = SCPPMCode(16, "1/2", repetition=4, repeat_unit=unit)
    p = SCPPMTransmitter(c).modulate(np.zeros((1, c.k), np.uint8))
    assert p.shape[1] == 4 * 3796 * 20
    sym = p.reshape(-1, 20).argmax(1)
    if unit == "symbol":
        np.testing.assert_array_equal(sym[:4], c.csm_symbols[0])
    else:
        np.testing.assert_array_equal(sym[:16], sym[3796:3796 + 16])


@pytest.mark.parametrize("bad", [2, 3, 512, 0, 16.5, "16", True])
def test_unsupported_M(bad):
    with pytest.raises(ConfigError, match="M must be one of"):
        SCPPMCode(bad, "1/2")


def test_bad_arguments_named():
    with pytest.raises(ConfigError, match="rate"):
        SCPPMCode(16, "3/4")
    with pytest.raises(ConfigError, match="repetition=5"):
        SCPPMCode(16, "1/2", repetition=5)
    enc = SCPPMEncoder(SCPPMCode(16, "1/2"))
    with pytest.raises(ShapeError, match="7526"):
        enc(np.zeros((1, 7525), np.uint8))
    with pytest.raises(ShapeError, match="found value 3"):
        enc(np.full((1, 7526), 3, np.uint8))
