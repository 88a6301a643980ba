# SPDX-License-Identifier: Apache-2.0
"""CCSDS 132.0-B TM transfer frames: header fields, FHP special values, FECF, bad input."""
import numpy as np
import pytest

from modem.errors import ConfigError, ShapeError
from modem.framing.bits import unpack_bytes
from modem.framing.tm import (FHP_IDLE_ONLY, FHP_NO_PACKET_START, TMFrameSpec, TMPrimaryHeader,
                              check_fecf, decode_tm_frame, encode_tm_frame, fecf)


def test_fhp_special_values_pinned():
    # 130.1-G-2 / yamcs: '11111111111' = no packet starts, '11111111110' = only idle data.
    # Some open codebases swap them; these are the CCSDS ones.
    assert FHP_NO_PACKET_START == 0b11111111111 == 0x7FF
    assert FHP_IDLE_ONLY == 0b11111111110 == 0x7FE


def test_fecf_check_values():
    assert fecf(b"123456789") == 0x29B1                                        # CRC-16/CCITT-FALSE
    assert fecf(bytes.fromhex("06000cf0000400558873c900000521")) == 0x75FB     # provoostkris/vlink


def test_header_bit_layout():
    h = TMPrimaryHeader(scid=0x2A5, vcid=5, mcfc=0x12, vcfc=0xEF, fhp=0x123, ocf_flag=True,
                        secondary_header=True, sync_flag=False, packet_order=False, segment_length_id=3)
    b = h.to_bytes()
    # 00 1010100101 101 1 | 0x12 | 0xEF | 1 0 0 11 00100100011
    assert b.hex() == f"{0b0010101001011011:04x}12ef{0b1001100100100011:04x}"
    assert TMPrimaryHeader.from_bytes(b) == h


def test_header_round_trip_all_fields(rng):
    for _ in range(200):
        h = TMPrimaryHeader(scid=int(rng.integers(1024)), vcid=int(rng.integers(8)), mcfc=int(rng.integers(256)),
                            vcfc=int(rng.integers(256)), fhp=int(rng.integers(2048)),
                            ocf_flag=bool(rng.integers(2)), secondary_header=bool(rng.integers(2)),
                            sync_flag=bool(rng.integers(2)), packet_order=bool(rng.integers(2)),
                            segment_length_id=int(rng.integers(4)))
        assert TMPrimaryHeader.from_bytes(h.to_bytes()) == h


@pytest.mark.parametrize("ocf,fec", [(False, True), (True, True), (True, False), (False, False)])
def test_frame_round_trip(rng, ocf, fec):
    spec = TMFrameSpec(frame_len=223, scid=0x1AB, vcid=3, ocf=ocf, fecf=fec)
    data = rng.integers(0, 256, spec.data_len, dtype=np.uint8).tobytes()
    clcw = b"\x01\x02\x03\x04" if ocf else None
    f = encode_tm_frame(spec, mcfc=7, vcfc=200, fhp=FHP_NO_PACKET_START, data_field=data, ocf=clcw)
    assert len(f) == 223
    d = decode_tm_frame(spec, f)
    assert d.header.scid == 0x1AB and d.header.vcid == 3 and d.header.mcfc == 7 and d.header.vcfc == 200
    assert d.header.fhp == 0x7FF and d.header.ocf_flag == ocf and d.header.segment_length_id == 3
    assert d.data_field == data and d.ocf == clcw
    assert d.fecf_ok is (True if fec else None)
    # bits in, same result
    assert decode_tm_frame(spec, unpack_bytes(f)) == d


def test_fecf_covers_whole_frame_minus_fecf(rng):
    spec = TMFrameSpec(frame_len=64, scid=1, ocf=True)
    f = encode_tm_frame(spec, mcfc=0, vcfc=0, fhp=0, data_field=bytes(spec.data_len), ocf=b"ABCD")
    assert int.from_bytes(f[-2:], "big") == fecf(f[:-2])
    for pos in [0, 3, 6, 40, 58, 61, 62, 63]:          # header, data, OCF and FECF octets
        bad = bytearray(f)
        bad[pos] ^= 0x10
        d = decode_tm_frame(spec, bytes(bad))
        assert d.fecf_ok is False                       # a result, not an exception


@pytest.mark.parametrize("fec", [True, False])
def test_ocf_may_differ_between_virtual_channels(fec):
    """OCF presence is per VC (CCSDS 132.0-B-3 VC_OCF): a frame of another VC with the other OCF
    flag is parsed by its own flag (no error, so it is not counted bad), and the depacketizer
    passes over it; on the spec's own VC a mismatch is still an error naming it."""
    from modem.framing.packets import TMDepacketizer, TMPacketizer, build_space_packet
    ours = TMFrameSpec(frame_len=80, scid=5, vcid=1, ocf=True, fecf=fec)
    other = TMFrameSpec(frame_len=80, scid=5, vcid=7, ocf=False, fecf=fec)
    f_other = encode_tm_frame(other, mcfc=1, vcfc=9, fhp=FHP_IDLE_ONLY, data_field=bytes(range(other.data_len)))
    d = decode_tm_frame(ours, f_other)
    assert d.header.vcid == 7 and d.ocf is None and d.data_field == bytes(range(other.data_len))
    assert d.fecf_ok is (True if fec else None)
    d = decode_tm_frame(other, encode_tm_frame(ours, mcfc=0, vcfc=0, fhp=0, data_field=bytes(ours.data_len),
                                               ocf=b"CLCW"))
    assert d.ocf == b"CLCW" and len(d.data_field) == ours.data_len
    pz = TMPacketizer(ours, ocf=b"CLCW")
    pk = [build_space_packet(0x100, bytes([i]) * 90, seq_count=i) for i in range(3)]
    frames, st = pz.push(pk, pz.initial_state())
    mixed = [x for f in frames for x in (f, f_other)]
    dp = TMDepacketizer(ours)
    out, dst = dp.push(mixed, dp.initial_state())
    assert [p.data for p in out.packets] == [bytes([i]) * 90 for i in range(len(out.packets))]
    assert len(out.packets) >= 2 and dst.other_vc == len(frames) and dst.gaps == 0 and not out.dropped
    same_vc_no_ocf = TMFrameSpec(frame_len=80, scid=5, vcid=1, ocf=False, fecf=fec)
    f = encode_tm_frame(same_vc_no_ocf, mcfc=0, vcfc=0, fhp=0, data_field=bytes(same_vc_no_ocf.data_len))
    with pytest.raises(ShapeError, match=r"OCF flag 0 does not match the spec \(ocf=True\) on its virtual channel"):
        decode_tm_frame(ours, f)


def test_bad_fecf_with_garbage_header_is_a_result():
    spec = TMFrameSpec(frame_len=32, scid=1)
    f = bytearray(encode_tm_frame(spec, mcfc=0, vcfc=0, fhp=0, data_field=bytes(spec.data_len)))
    f[0] |= 0xC0                                         # version 3 and a wrong CRC: channel error
    assert decode_tm_frame(spec, bytes(f)).fecf_ok is False


def test_batch_fecf_check(rng):
    spec = TMFrameSpec(frame_len=40, scid=9)
    frames = [encode_tm_frame(spec, mcfc=i, vcfc=i, fhp=0, data_field=bytes(spec.data_len)) for i in range(6)]
    bits = np.stack([unpack_bytes(f) for f in frames]).reshape(2, 3, -1).copy()
    bits[1, 2, 100] ^= 1
    np.testing.assert_array_equal(check_fecf(spec, bits), [[True] * 3, [True, True, False]])


def test_malformed_input_raises_shape_error():
    spec = TMFrameSpec(frame_len=32, scid=1)
    f = encode_tm_frame(spec, mcfc=0, vcfc=0, fhp=0, data_field=bytes(spec.data_len))
    with pytest.raises(ShapeError, match="got 31"):
        decode_tm_frame(spec, f[:-1])
    with pytest.raises(ShapeError, match="got shape"):
        decode_tm_frame(spec, np.zeros((2, 256), np.uint8))
    # version 1 (AOS) with a valid FECF: not a TM frame
    h = bytearray(f[:-2])
    h[0] |= 0x40
    c = fecf(bytes(h))
    with pytest.raises(ShapeError, match="version must be 0.*got 1"):
        decode_tm_frame(spec, bytes(h) + bytes([c >> 8, c & 0xFF]))
    with pytest.raises(ShapeError, match="data_field must be 24 octets, got 23"):
        encode_tm_frame(spec, mcfc=0, vcfc=0, fhp=0, data_field=bytes(23))


def test_config_errors_name_the_value():
    with pytest.raises(ConfigError, match="scid.*1024"):
        TMFrameSpec(frame_len=100, scid=1024)
    with pytest.raises(ConfigError, match="frame_len.*2049"):
        TMFrameSpec(frame_len=2049, scid=0)
    with pytest.raises(ConfigError, match="fhp.*2048"):
        TMPrimaryHeader(scid=0, vcid=0, mcfc=0, vcfc=0, fhp=2048)
    with pytest.raises(ConfigError, match="vcfc.*256"):
        encode_tm_frame(TMFrameSpec(frame_len=100, scid=0), mcfc=0, vcfc=256, fhp=0, data_field=bytes(92))


def test_deframer_flush_never_validates_bits_that_never_arrived():
    # Receiver TM deframer: the last frame's marker is found 2 bits late (within the slip window)
    # and the record ends 2 bits before that frame does. flush() lets the synchroniser close it with
    # 2 erased bits: the frame must come out flagged (crc_ok False), not valid with invented bits.
    from modem.receiver import ReceiverStats, TMDeframer
    from modem.sync.frame_sync import ASM_BITS
    spec = TMFrameSpec(frame_len=32, scid=5, fecf=False)            # nothing else would catch it
    frames = [encode_tm_frame(spec, mcfc=i, vcfc=i, fhp=0, data_field=bytes([0xFF]) * spec.data_len)
              for i in range(10)]
    P = 32 + spec.n_bits
    parts = [np.concatenate([ASM_BITS, unpack_bytes(f)]) for f in frames]
    stream = np.concatenate(parts[:9] + [np.array([0, 1], np.uint8), parts[9][:-2]])
    assert stream.size == 10 * P
    d = TMDeframer(spec, P, ReceiverStats())
    out = []
    for b in range(10):
        out += d.push(b, stream[b * P:(b + 1) * P], True, float(b), 1)
    assert len(out) == 9 and all(f.valid and f.data == frames[i] for i, f in enumerate(out))
    last = d.flush()
    assert len(last) == 1 and last[0].data != frames[9]             # its last 2 bits never arrived
    assert not last[0].crc_ok and not last[0].valid
    assert d.stats.frames == 10 and d.stats.frames_bad == 1


def test_deframer_flywheel_frame_on_decoded_bits_is_not_valid():
    # 8 stray bits before frame 6 (a transmitter hiccup): the synchroniser flywheels 3 frames at the
    # old alignment. Their blocks all passed their check, so their marker bits are known and are
    # not the ASM: those frames are misaligned and must not come out valid (here no FECF and a
    # header that still looks right would let them through).
    from modem.receiver import ReceiverStats, TMDeframer
    from modem.sync.frame_sync import ASM_BITS
    spec = TMFrameSpec(frame_len=32, scid=5, fecf=False)
    frames = [encode_tm_frame(spec, mcfc=i, vcfc=i, fhp=0, data_field=bytes(spec.data_len)) for i in range(12)]
    parts = [np.concatenate([ASM_BITS, unpack_bytes(f)]) for f in frames]
    stream = np.concatenate(parts[:6] + [np.zeros(8, np.uint8)] + parts[6:])
    P = parts[0].size
    stream = np.concatenate([stream, np.zeros(-stream.size % P, np.uint8)])
    d = TMDeframer(spec, P, ReceiverStats())
    out = []
    for b in range(stream.size // P):
        out += d.push(b, stream[b * P:(b + 1) * P], True, float(b), 1)
    out += d.flush()
    assert len(out) == 12
    assert all(f.data == frames[i] and f.valid for i, f in enumerate(out[:6]))
    assert all(f.data not in frames and f.crc_ok and not f.valid for f in out[6:9])   # the flywheel
    assert all(f.data == frames[9 + i] and f.valid for i, f in enumerate(out[9:]))
    assert d.stats.frames_bad == 3
