# SPDX-License-Identifier: Apache-2.0
"""Review tests of the SCPPM chain (CCSDS 142.0-B-1): each one pins a bug found in review."""
import numpy as np
import pytest

from modem.errors import ConfigError, ShapeError
from modem.fec.scppm import (CodewordDeinterleaver, SCPPMCode, SCPPMDecoder, SCPPMEncoder, SCPPMReceiver,
                             SCPPMTransmitter, attach_asm, llr_weight, ppm_map, ppm_unmap, slice_blocks,
                             symbols_to_slots)
from modem.framing.bits import unpack_bytes
from modem.receiver import SCPPMTimeTagReceiver
from modem.sync.timetags import TimeTagConfig, simulate_time_tags

from test_receiver import LINK, NB, NB_DET, SLOT_PS, SPEC, _frames, _run


def test_frame_times_with_high_repetition_do_not_depend_on_chunking():
    """With repetition 16 a codeword spans 16 x (S + L) received symbols: the receiver kept the
    receive times of only 8 x (S + L) symbols, so fed in small chunks every frame came out with
    t_ps NaN, fed in one piece with its time (one-shot and chunked output differed)."""
    code = SCPPMCode(M=16, rate="2/3", repetition=16)
    frames = _frames(4)
    u = slice_blocks(attach_asm(np.stack([unpack_bytes(f) for f in frames])).reshape(-1), code.k)
    x = SCPPMTransmitter(code).modulate(u)
    tags = simulate_time_tags([(0, x)], 1.0, NB, np.random.default_rng(1), TimeTagConfig(**LINK))
    got = _run(SCPPMTimeTagReceiver(code, SPEC, SLOT_PS, 1.0, NB_DET), tags, 200, 5)
    one = _run(SCPPMTimeTagReceiver(code, SPEC, SLOT_PS, 1.0, NB_DET), tags, 0, 6)
    assert [f.data for f in got] == frames and all(f.valid for f in got)
    assert all(np.isfinite(f.t_ps) for f in got)
    assert [(f.data, f.t_ps, f.codewords) for f in got] == [(f.data, f.t_ps, f.codewords) for f in one]


def test_empty_batch_through_the_transmitter():
    """Zero information blocks are zero codewords, not a ValueError: the PPM mapper, its inverse,
    the slot mapper and the transmitter (modulate, and flush without a channel interleaver)
    reshaped with -1 on an empty array."""
    for M in (4, 16, 256):
        code = SCPPMCode(M=M, rate="1/3")
        u = np.zeros((0, code.k), np.uint8)
        assert SCPPMEncoder(code)(u).shape == (0, code.S)
        assert ppm_unmap(np.zeros((0, code.S), np.int64), M).shape == (0, 15120)
        assert symbols_to_slots(np.zeros((0, 5), np.int64), code).shape == (0, 5 * code.slots_per_symbol)
        tx = SCPPMTransmitter(code)
        assert tx.modulate(u).shape == (0, code.slots_per_codeword)
        assert tx.flush().shape == (0, code.slots_per_codeword)
        assert SCPPMReceiver(code, 1.0, 0.1).receive(tx.modulate(u)).crc_ok.shape == (0,)


@pytest.mark.parametrize("kw", [dict(repetition=2.0), dict(repetition=True), dict(repetition=np.float64(4)),
                                dict(interleaver_rows=True), dict(interleaver_shift=True, interleaver_rows=2)])
def test_non_integer_code_parameters_are_named(kw):
    """repetition=2.0 passed ``in (1, 2, ...)`` and gave a float slots_per_codeword (151840.0);
    True passed as 1. Each is now a ConfigError naming the value."""
    name = next(iter(kw))
    with pytest.raises(ConfigError, match=name):
        SCPPMCode(M=16, **kw)


@pytest.mark.parametrize("name, value", [("batch", 0), ("frames", 0), ("batch", -3)])
def test_simulation_run_counts_are_checked(name, value):
    """``modem simulate scppm --batch 0`` looped for ever (min(0, ...) blocks per pass, never done);
    --batch -3 was a NumPy ValueError. Now a ConfigError naming the option, as the DPSK chain does."""
    import argparse
    from modem.sim import scppm as sim
    p = argparse.ArgumentParser()
    sim.add_arguments(p)
    args = p.parse_args(["--order", "4", "--frames", "1", f"--{name}", str(value)])
    with pytest.raises(ConfigError, match=f"--{name}"):
        sim.run(args)


@pytest.mark.parametrize("call, exc, words", [
    (lambda: SCPPMDecoder(SCPPMCode(), max_iter=True), ConfigError, "max_iter=True"),
    (lambda: SCPPMDecoder(SCPPMCode(), ext_scale="a"), ConfigError, "ext_scale='a'"),
    (lambda: SCPPMDecoder(SCPPMCode(), ext_scale=None), ConfigError, "ext_scale=None"),
    (lambda: llr_weight("x", 0.1), ConfigError, "ns='x'"),
    (lambda: SCPPMReceiver(SCPPMCode(), 1.0, "y"), ConfigError, "nb='y'"),
    (lambda: slice_blocks(np.zeros(10, np.uint8), 0), ConfigError, "k=0"),
    (lambda: ppm_map(np.zeros(4, np.uint8), 5), ConfigError, "M=5"),
    (lambda: ppm_map(np.array([2, 0, 0, 0]), 4), ShapeError, "value 2"),
    (lambda: ppm_unmap(np.array([20]), 16), ShapeError, "20"),
    (lambda: ppm_unmap(np.array([1]), 3), ConfigError, "M=3"),
    (lambda: symbols_to_slots(np.array([1.5, 2.0]), SCPPMCode(M=4)), ShapeError, "1.5"),
    (lambda: CodewordDeinterleaver(SCPPMCode()).push(np.float64(1.0)), ShapeError, r"\(\)"),
    (lambda: SCPPMTimeTagReceiver("16-PPM", SPEC, SLOT_PS, 1.0, 0.1), ConfigError, "16-PPM"),
])
def test_bad_arguments_of_the_chain_are_named(call, exc, words):
    """Bad values used to pass silently (ppm_map of a '2' bit gave symbol 4, ppm_unmap of symbol 20
    for M = 16 the bits of 4, M = 5 was read as 4-PPM, symbol 1.5 became 1) or failed with a
    TypeError / ZeroDivisionError / IndexError that did not name them."""
    with pytest.raises(exc, match=words):
        call()


def _decode_after_hole(code, hole, n=10):
    """Noiseless codewords through the channel interleaver, ``hole`` received codewords from the
    third on lost, a restart at the next: (crc_ok, equal to the sent block) per output."""
    rng = np.random.default_rng(hole)
    u = rng.integers(0, 2, (n, code.k), dtype=np.uint8)
    tx = SCPPMTransmitter(code)
    x = np.concatenate([tx.modulate(u), tx.flush()])
    keep = [i for i in range(len(x)) if not 2 <= i < 2 + hole]
    restart = np.array([i == 2 + hole for i in keep])
    res, _ = SCPPMReceiver(code, 4.0, 1e-3, max_iter=4).receive_stream(x[keep] * 4, restart)
    sent = np.concatenate([u[:max(2 - code.interleaver_delay // code.S, 0)], u[2 + hole:]])  # before, after
    assert len(res.crc_ok) == len(sent)
    return res.crc_ok.tolist(), [bool((a == b).all()) for a, b in zip(res.u_hat, sent)]


def test_channel_interleaver_rows_must_divide_the_codeword():
    """The commutator runs on across codewords, so codeword c starts in row (c S) mod N. A receiver
    that locks on (or restarts after a hole at) a codeword assumes row 0: with N not dividing S
    (M = 256: S = 1890, N = 4, B = 945, which passed the B*N = 0 mod S rule) every codeword after
    a hole of an odd number of codewords failed its CRC, for ever. Such codes are now refused by
    default, and always by the time-tag receiver (which restarts at every hole); with N | S the
    codewords after a hole of any length decode."""
    with pytest.raises(ConfigError, match="N=4.*S=1890"):
        SCPPMCode(M=256, rate="1/2", interleaver_rows=4, interleaver_shift=945)
    loose = SCPPMCode(M=256, rate="1/2", interleaver_rows=4, interleaver_shift=945, check_interleaver_multiple=False)
    with pytest.raises(ConfigError, match="N=4.*S=1890"):
        SCPPMTimeTagReceiver(loose, SPEC, SLOT_PS, 1.0, 0.1)
    ok = SCPPMCode(M=256, rate="1/2", interleaver_rows=2, interleaver_shift=945)
    for hole in (1, 2, 3):
        crc, same = _decode_after_hole(ok, hole)
        assert all(crc) and all(same), (hole, crc, same)


def test_reset_receiver_equals_a_fresh_one():
    """SCPPMTimeTagReceiver.reset() left the channel de-interleaver holding the last record's
    symbols: the next record's first codeword was decoded from a mix of both (a CRC failure that
    a fresh receiver does not have: 9 codewords / 1 failed instead of 8 / 0)."""
    code = SCPPMCode(M=16, rate="1/2", interleaver_rows=2, interleaver_shift=1890)
    frames = _frames(6)
    u = slice_blocks(attach_asm(np.stack([unpack_bytes(f) for f in frames])).reshape(-1), code.k)
    tx = SCPPMTransmitter(code)
    x = np.concatenate([tx.modulate(u), tx.flush()])
    tags = simulate_time_tags([(0, x)], 3.0, NB, np.random.default_rng(2), TimeTagConfig(**LINK))
    rx = SCPPMTimeTagReceiver(code, SPEC, SLOT_PS, 3.0, NB_DET)
    _run(rx, tags, 0, 1)
    rx.reset()
    again = _run(rx, tags, 7, 1)
    fresh = SCPPMTimeTagReceiver(code, SPEC, SLOT_PS, 3.0, NB_DET)
    first = _run(fresh, tags, 7, 1)
    assert [f.data for f in first] == frames
    assert [(f.data, f.t_ps, f.codewords, f.crc_ok) for f in again] == [(f.data, f.t_ps, f.codewords, f.crc_ok)
                                                                        for f in first]
    assert (rx.stats.codewords, rx.stats.codewords_crc_failed) == (fresh.stats.codewords, 0)


@pytest.mark.parametrize("name", ["guard_slots", "csm", "check_interleaver_multiple"])
@pytest.mark.parametrize("value", ["no", 0, None])
def test_code_flags_must_be_booleans(name, value):
    """SCPPMCode's on/off fields took any truthy value: guard_slots="no" switched the guard ON."""
    with pytest.raises(ConfigError, match=f"{name}={value!r}"):
        SCPPMCode(M=16, rate="1/2", **{name: value})
    assert getattr(SCPPMCode(M=16, rate="1/2", **{name: np.bool_(False)}), name) is False
