# SPDX-License-Identifier: Apache-2.0
"""Channel interleaver sized in milliseconds: inverse, mapping, burst spreading, costs, bad input."""
import math

import numpy as np
import pytest

from modem.errors import ConfigError, ShapeError
from modem.framing.interleaver import ChannelInterleaver

SEED = 20240601


@pytest.mark.parametrize("n,depth", [(1, 1), (7, 1), (7, 5), (64, 13), (16200, 3)])
def test_inverse_identity_any_batch(n, depth):
    rng = np.random.default_rng(SEED)
    il = ChannelInterleaver(n, depth, 1e9)
    for shape in [(il.block_bits,), (2, il.block_bits), (2, 3, il.block_bits), (0, il.block_bits)]:
        x = rng.integers(0, 2, shape, dtype=np.uint8)
        y = il.interleave(x)
        np.testing.assert_array_equal(il.deinterleave(y), x)
        np.testing.assert_array_equal(il.interleave(il.deinterleave(x)), x)
        llr = rng.standard_normal(shape).astype(np.float32)
        np.testing.assert_array_equal(il.deinterleave(il.interleave(llr)), llr)
    if depth == 1:
        np.testing.assert_array_equal(il.interleave(x), x)


def test_mapping_row_column():
    il = ChannelInterleaver(4, 3, 1e9)
    x = np.arange(12)                    # codeword i = x[4i:4i+4]
    np.testing.assert_array_equal(il.interleave(x), [0, 4, 8, 1, 5, 9, 2, 6, 10, 3, 7, 11])
    y = il.interleave(x)
    for i in range(3):
        for j in range(4):
            assert y[il.channel_position(i, j)] == x[i * 4 + j]


def test_chunked_blocks_equal_one_shot():
    """Block-wise streaming: consecutive blocks processed separately == a batch of blocks at once."""
    rng = np.random.default_rng(SEED)
    il = ChannelInterleaver(50, 7, 1e9)
    stream = rng.integers(0, 2, 5 * il.block_bits, dtype=np.uint8)
    one = il.interleave(stream.reshape(5, -1)).ravel()
    parts = np.concatenate([il.interleave(b) for b in np.split(stream, 5)])
    np.testing.assert_array_equal(parts, one)


@pytest.mark.parametrize("burst", [1, 5, 16, 17, 40, 100])
def test_burst_of_erasures_spread_over_codewords(burst):
    """B consecutive channel erasures hit each codeword at most ceil(B/D) times (at most once if B <= D)."""
    n, depth = 200, 16
    il = ChannelInterleaver(n, depth, 1e9)
    for start in (0, 7, il.block_bits - burst):
        erased = np.zeros(il.block_bits, dtype=np.uint8)
        erased[start:start + burst] = 1
        per_codeword = il.deinterleave(erased).reshape(depth, n).sum(axis=1)
        assert per_codeword.sum() == burst
        assert per_codeword.max() == math.ceil(burst / depth)
        assert np.count_nonzero(per_codeword) == min(burst, depth)
    # without interleaving the same burst lands in one or two codewords
    none = ChannelInterleaver(n, 1, 1e9)
    erased = np.zeros(n, dtype=np.uint8)
    erased[:burst] = 1
    assert none.deinterleave(erased).sum() == burst


def test_depth_from_ms_and_costs():
    # 10 ms at 2.88 Gb/s, short DVB-S2 frames (16200 + 32-bit ASM on the wire)
    il = ChannelInterleaver.from_ms(10.0, 16200, 2.88e9, frame_bits=16232)
    assert il.depth == math.ceil(0.010 * 2.88e9 / 16232) == 1775
    assert il.span_s >= 0.010 and il.span_s - 16232 / 2.88e9 < 0.010
    assert il.memory_bits == 1775 * 16200
    assert il.memory_s == pytest.approx(1775 * 16200 / 2.88e9)
    assert il.latency_bits == 2 * 1775 * 16232
    assert il.latency_s == pytest.approx(2 * il.span_s)
    assert il.rx_memory_bytes(8) == il.memory_bits
    d = il.describe()
    assert d["depth_frames"] == 1775 and d["latency_s"] == il.latency_s
    # 0 ms is no interleaving, no latency
    z = ChannelInterleaver.from_ms(0, 16200, 2.88e9, 16232)
    assert z.depth == 1 and z.latency_bits == 0
    # the same depth in ms at 72 Mb/s needs 40x fewer frames
    assert ChannelInterleaver.from_ms(10.0, 16200, 72e6, 16232).depth == math.ceil(0.010 * 72e6 / 16232)


@pytest.mark.parametrize("kw,match", [
    ({"depth_ms": -1}, "depth_ms=-1"), ({"depth_ms": float("nan")}, "depth_ms=nan"),
    ({"depth_ms": "x"}, "depth_ms='x'"), ({"bit_rate": 0}, "bit_rate=0"),
    ({"bit_rate": float("inf")}, "bit_rate=inf")])
def test_from_ms_bad_values(kw, match):
    args = {"depth_ms": 1.0, "n": 100, "bit_rate": 1e9} | kw
    with pytest.raises(ConfigError, match=match):
        ChannelInterleaver.from_ms(**args)


def test_bad_construction_and_shapes():
    with pytest.raises(ConfigError, match="depth=0"):
        ChannelInterleaver(10, 0, 1e9)
    with pytest.raises(ConfigError, match="n=2.5"):
        ChannelInterleaver(2.5, 1, 1e9)
    with pytest.raises(ConfigError, match="frame_bits=5"):
        ChannelInterleaver(10, 2, 1e9, frame_bits=5)
    il = ChannelInterleaver(10, 3, 1e9)
    with pytest.raises(ShapeError, match="30"):
        il.interleave(np.zeros(29))
    with pytest.raises(ShapeError, match="30"):
        il.deinterleave(np.zeros((2, 31)))
