# SPDX-License-Identifier: Apache-2.0
"""CCSDS 133.0-B space packets; packetizer / depacketizer over TM frames (FHP, idle fill, resync)."""
from dataclasses import replace

import numpy as np
import pytest

from modem.errors import ConfigError, ShapeError
from modem.framing.packets import (IDLE_APID, SpacePacketHeader, TMDepacketizer, TMPacketizer,
                                   build_space_packet, idle_packet, parse_space_packet)
from modem.framing.tm import FHP_IDLE_ONLY, FHP_NO_PACKET_START, TMFrameSpec, decode_tm_frame

SPEC = TMFrameSpec(frame_len=64, scid=0x2C, vcid=2, fecf=True)       # 56-octet data field


def _packets(rng, n, lo=7, hi=200):
    out = []
    for i in range(n):
        L = int(rng.integers(lo, hi + 1))
        apid = int(rng.integers(0, IDLE_APID))                           # never the idle APID
        out.append(build_space_packet(apid, rng.integers(0, 256, L - 6, dtype=np.uint8).tobytes(),
                                      seq_count=i % 16384))
    return out


def _frames(packets, spec=SPEC, chunks=None):
    pz = TMPacketizer(spec)
    st = pz.initial_state()
    frames = []
    for chunk in (chunks or [packets]):
        f, st = pz.push(chunk, st)
        frames += f
    f, st = pz.flush(st)
    return frames + f, st


def test_header_bit_layout():
    p = build_space_packet(0x123, b"\x01\x02\x03", seq_count=0x2ABC, packet_type=1, secondary_header=True)
    # 000 1 1 00100100011 | 11 10101010111100 | 0x0002
    assert p.hex() == f"{0b0001100100100011:04x}{0b1110101010111100:04x}0002010203"
    q = parse_space_packet(p)
    assert q.header == SpacePacketHeader(apid=0x123, seq_count=0x2ABC, data_length=2, packet_type=1,
                                         secondary_header=True, seq_flags=3)
    assert q.data == b"\x01\x02\x03" and q.to_bytes() == p and q.header.packet_len == 9


def test_header_round_trip(rng):
    for _ in range(200):
        h = SpacePacketHeader(apid=int(rng.integers(2048)), seq_count=int(rng.integers(16384)),
                              data_length=int(rng.integers(65536)), packet_type=int(rng.integers(2)),
                              secondary_header=bool(rng.integers(2)), seq_flags=int(rng.integers(4)))
        assert SpacePacketHeader.from_bytes(h.to_bytes()) == h


def test_idle_packet():
    p = parse_space_packet(idle_packet(9, seq_count=5))
    assert p.is_idle and p.header.apid == 0x7FF and p.header.seq_count == 5 and len(p.data) == 3


def test_bad_packets():
    p = build_space_packet(1, b"abc")
    with pytest.raises(ShapeError, match="says 9 octets, got 8"):
        parse_space_packet(p[:-1])
    with pytest.raises(ShapeError, match="version must be 0, got 1"):
        parse_space_packet(bytes([p[0] | 0x20]) + p[1:])
    with pytest.raises(ConfigError, match="got 0"):
        build_space_packet(1, b"")
    with pytest.raises(ConfigError, match="apid.*2048"):
        build_space_packet(2048, b"a")
    with pytest.raises(ConfigError, match="n_octets.*6"):
        idle_packet(6)


def test_packetizer_fhp_and_round_trip(rng):
    pk = _packets(rng, 120)
    frames, _ = _frames(pk)
    stream = b"".join(pk)
    starts = np.cumsum([0] + [len(p) for p in pk])          # the last one: the idle packet
    D = SPEC.data_len
    for k, f in enumerate(frames):
        fr = decode_tm_frame(SPEC, f)
        assert fr.fecf_ok and fr.header.vcid == 2 and fr.header.scid == 0x2C
        assert fr.header.vcfc == k % 256 and fr.header.mcfc == k % 256
        inside = starts[(starts >= k * D) & (starts < (k + 1) * D)]
        want = int(inside[0] - k * D) if inside.size else FHP_NO_PACKET_START
        assert fr.header.fhp == want
        if (k + 1) * D <= len(stream):
            assert fr.data_field == stream[k * D:(k + 1) * D]
    # the tail is one idle packet filling the last frame exactly
    dp = TMDepacketizer(SPEC, keep_idle=True)
    out, st = dp.push(frames, dp.initial_state())
    assert [p.to_bytes() for p in out.packets[:-1]] == pk and out.packets[-1].is_idle
    assert not out.dropped and st.idle_packets == 1
    out, st = TMDepacketizer(SPEC).push(frames, dp.initial_state())
    assert [p.to_bytes() for p in out.packets] == pk and st.packets == 120


def test_fhp_7ff_for_a_frame_inside_one_long_packet():
    pk = [build_space_packet(5, bytes(300))]
    frames, _ = _frames(pk)
    fhps = [decode_tm_frame(SPEC, f).header.fhp for f in frames]
    assert fhps[0] == 0 and fhps[1:5] == [FHP_NO_PACKET_START] * 4     # 306 octets over 56-octet fields
    assert fhps[5] == 306 - 5 * 56                                      # the idle packet starts there


@pytest.mark.parametrize("left", [0, 1, 6, 7, 55])
def test_idle_fill_sizes(left):
    # leave `left` octets free in the last frame; fewer than 7 need an idle packet spanning two frames
    D = SPEC.data_len
    pk = [build_space_packet(1, bytes(D * 2 - left - 6))] if left else [build_space_packet(1, bytes(D * 2 - 6))]
    frames, st = _frames(pk)
    assert st.pending == b""
    n_frames = 2 + (0 < left < 7)
    assert len(frames) == n_frames
    if 0 < left < 7:
        assert decode_tm_frame(SPEC, frames[-1]).header.fhp == FHP_NO_PACKET_START
    out, st = TMDepacketizer(SPEC).push(frames, TMDepacketizer(SPEC).initial_state())
    assert [p.to_bytes() for p in out.packets] == pk and st.idle_packets == (1 if left else 0)


def test_idle_frame_is_oid_and_transparent(rng):
    pz = TMPacketizer(SPEC)
    pk = _packets(rng, 10)
    f1, st = pz.push(pk[:5], pz.initial_state())
    f2, st = pz.idle_frame(st)
    f3, st = pz.push(pk[5:], st)
    f4, st = pz.flush(st)
    frames = f1 + f2 + f3 + f4
    assert decode_tm_frame(SPEC, f2[-1]).header.fhp == FHP_IDLE_ONLY
    out, st = TMDepacketizer(SPEC).push(frames, TMDepacketizer(SPEC).initial_state())
    assert [p.to_bytes() for p in out.packets] == pk and not out.dropped


def test_packetizer_chunking_invariant(rng):
    pk = _packets(rng, 60)
    a, sa = _frames(pk)
    cuts = np.sort(rng.choice(np.arange(1, 60), 9, replace=False))
    b, sb = _frames(pk, chunks=[list(c) for c in np.split(np.array(pk, dtype=object), cuts)])
    c, sc = _frames(pk, chunks=[[p] for p in pk])
    assert a == b == c and sa == sb == sc


def _intact(pk, lost_frames, D):
    """Packets whose octets do not touch any lost frame's data field."""
    ends = np.cumsum([len(p) for p in pk])
    keep = []
    for p, e in zip(pk, ends):
        s = e - len(p)
        if not any(s < (k + 1) * D and e > k * D for k in lost_frames):
            keep.append(p)
    return keep


@pytest.mark.parametrize("how", ["lost", "bad_fecf"])
def test_resync_after_lost_or_bad_frame(rng, how):
    pk = _packets(rng, 150)
    frames, _ = _frames(pk)
    bad = [7, 8, 30, 31, 32, 60]                   # single and consecutive losses
    if how == "lost":
        rx = [f for k, f in enumerate(frames) if k not in bad]
    else:
        rx = [bytes([f[0], f[1], f[2], f[3], f[4] ^ 0x01]) + f[5:] if k in bad else f for k, f in enumerate(frames)]
    dp = TMDepacketizer(SPEC)
    out, st = dp.push(rx, dp.initial_state())
    got = [p.to_bytes() for p in out.packets]
    assert got == _intact(pk, bad, SPEC.data_len)  # every intact packet, in order, nothing corrupt
    assert out.dropped and all(d.n_octets > 0 for d in out.dropped)
    reasons = {d.reason for d in out.dropped}
    if how == "lost":
        assert st.gaps == 3 and st.frames_lost == 6 and "frame_gap" in reasons
    else:
        assert st.bad_fecf == 6 and st.gaps == 0 and "bad_fecf" in reasons
    assert st.dropped_events == len(out.dropped)


def test_depacketizer_chunking_invariant(rng):
    pk = _packets(rng, 200)
    frames, _ = _frames(pk)
    frames = [f for k, f in enumerate(frames) if k not in (11, 40, 41)]
    dp = TMDepacketizer(SPEC)
    one, s1 = dp.push(frames, dp.initial_state())
    st, pk_b, dr_b = dp.initial_state(), [], []
    cuts = np.sort(rng.choice(np.arange(1, len(frames)), 20, replace=False))
    for chunk in np.split(np.arange(len(frames)), cuts):
        o, st = dp.push([frames[i] for i in chunk], st)
        pk_b += o.packets
        dr_b += o.dropped
    assert pk_b == one.packets and dr_b == one.dropped and st == s1
    st, pk_c = dp.initial_state(), []
    for f in frames:
        o, st = dp.push([f], st)
        pk_c += o.packets
    assert pk_c == one.packets and st == s1


def _with_other_vc(rng, frames, corrupt=()):
    """``frames`` with a frame of VC 5 (another SCID too) after each of the first ones; the VC-5
    frames whose index is in ``corrupt`` get a flipped header bit (a bad FECF). Returns (mixed,
    number of VC-5 frames)."""
    of, _ = _frames(_packets(rng, 20), spec=TMFrameSpec(frame_len=64, scid=0x2C, vcid=5))
    mixed = []
    for i, f in enumerate(frames):
        mixed.append(f)
        if i < len(of):
            mixed.append(bytes([of[i][0] ^ 0x01]) + of[i][1:] if i in corrupt else of[i])
    return mixed, len(of)


def test_other_virtual_channels_ignored(rng):
    pk = _packets(rng, 40)
    frames, _ = _frames(pk)
    mixed, n_other = _with_other_vc(rng, frames)
    out, st = TMDepacketizer(SPEC).push(mixed, TMDepacketizer(SPEC).initial_state())
    assert [p.to_bytes() for p in out.packets] == pk and st.other_vc == n_other and st.gaps == 0


def test_starting_mid_stream_resyncs_on_fhp(rng):
    pk = _packets(rng, 80)
    frames, _ = _frames(pk)
    out, st = TMDepacketizer(SPEC).push(frames[5:], TMDepacketizer(SPEC).initial_state())
    assert [p.to_bytes() for p in out.packets] == _intact(pk, range(5), SPEC.data_len)
    assert {d.reason for d in out.dropped} <= {"no_packet_start"}


def _frames_with_secondary_header(packets, sh: bytes, spec=SPEC):
    """Frames whose data field starts with a TM secondary header ``sh`` (ID octet: version 00, length
    field = len(sh) - 1); the FHP counts from the first octet after it (132.0-B-3 4.1.2.7, 4.1.3)."""
    from modem.framing.tm import encode_tm_frame
    zone = spec.data_len - len(sh)
    stream = b"".join(packets)
    stream += idle_packet(zone - len(stream) % zone + (zone if zone - len(stream) % zone < 7 else 0))
    starts = set(np.cumsum([0] + [len(p) for p in packets]).tolist())
    frames = []
    for k in range(len(stream) // zone):
        inside = sorted(s - k * zone for s in starts if k * zone <= s < (k + 1) * zone)
        fhp = inside[0] if inside else FHP_NO_PACKET_START
        frames.append(encode_tm_frame(spec, mcfc=k % 256, vcfc=k % 256, fhp=fhp, secondary_header=True,
                                      data_field=sh + stream[k * zone:(k + 1) * zone]))
    return frames


def test_secondary_header_is_not_packet_data(rng):
    # A frame with the secondary header flag carries the secondary header (its first octet: version
    # 00 + total length - 1) before the packet zone; the FHP is counted after it.
    sh = bytes([0x03, 0xAA, 0xBB, 0xCC])                 # 4-octet secondary header
    pk = _packets(rng, 40)
    frames = _frames_with_secondary_header(pk, sh)
    assert decode_tm_frame(SPEC, frames[0]).header.secondary_header
    out, st = TMDepacketizer(SPEC).push(frames, TMDepacketizer(SPEC).initial_state())
    assert [p.to_bytes() for p in out.packets] == pk and not out.dropped
    assert st.packets == 40 and st.idle_packets == 1


def test_bad_fecf_on_another_virtual_channel_is_no_gap(rng):
    # Frames of VC 5 interleaved with ours (VC 2); one VC-5 frame arrives with a bad FECF. Our VC's
    # frame count is continuous across it: no gap, no frames lost, no packet of ours lost.
    pk = _packets(rng, 40)
    frames, _ = _frames(pk)
    mixed, _ = _with_other_vc(rng, frames, corrupt={3})
    dp = TMDepacketizer(SPEC)
    out, st = dp.push(mixed, dp.initial_state())
    assert st.bad_fecf == 1
    assert st.gaps == 0 and st.frames_lost == 0
    assert [p.to_bytes() for p in out.packets] == pk and not out.dropped
    # chunk invariance across the bad frame
    st2, got = dp.initial_state(), []
    for f in mixed:
        o, st2 = dp.push([f], st2)
        got += o.packets
    assert got == out.packets and st2 == st


def test_bad_fecf_then_real_gap_counts_only_the_missing_frames(rng):
    # frames 10 (bad FECF) and 11 (never received) of our VC: one bad, one lost
    pk = _packets(rng, 80)
    frames, _ = _frames(pk)
    rx = [bytes([f[0] ^ 0x01]) + f[1:] if k == 10 else f for k, f in enumerate(frames) if k != 11]
    dp = TMDepacketizer(SPEC)
    out, st = dp.push(rx, dp.initial_state())
    assert st.bad_fecf == 1 and st.gaps == 1 and st.frames_lost == 1
    assert [p.to_bytes() for p in out.packets] == _intact(pk, [10, 11], SPEC.data_len)


def test_flush_with_a_data_field_shorter_than_an_idle_packet():
    # data field of 3 octets: the idle packet completing a partial frame needs >= 7 octets, so it
    # runs over as many frames as it takes
    spec = TMFrameSpec(frame_len=11, scid=1, vcid=0)
    assert spec.data_len == 3
    pk = [build_space_packet(9, b"\x01")]                # 7 octets: 2 frames + 1 octet
    frames, st = _frames(pk, spec=spec)
    assert st.pending == b""
    out, dst = TMDepacketizer(spec).push(frames, TMDepacketizer(spec).initial_state())
    assert [p.to_bytes() for p in out.packets] == pk and dst.idle_packets == 1 and not out.dropped


def test_sync_flag_frame_is_not_parsed_as_packets(rng):
    # sync flag 1: the data field holds a VCA_SDU, not packets, and the FHP is undefined
    # (132.0-B-3 4.1.2.7.3); octets that happen to look like a packet must not come out as one
    from modem.framing.tm import encode_tm_frame
    pk = _packets(rng, 30)
    frames, _ = _frames(pk)
    n = len(frames)
    fake = build_space_packet(0x123, bytes(SPEC.data_len - 6))           # fills the data field exactly
    vca = encode_tm_frame(SPEC, mcfc=n, vcfc=n, fhp=0, sync_flag=True, data_field=fake)
    more = _packets(rng, 10)
    pz = TMPacketizer(SPEC)
    f2, st2 = pz.push(more, replace(pz.initial_state(), mcfc=n + 1, vcfc=n + 1))
    f3, _ = pz.flush(st2)
    dp = TMDepacketizer(SPEC)
    out, st = dp.push(frames + [vca] + f2 + f3, dp.initial_state())
    assert all(p.header.apid != 0x123 for p in out.packets)
    assert [p.to_bytes() for p in out.packets] == pk + more
    assert [d.reason for d in out.dropped] == ["not_packets"] and out.dropped[0].n_octets == SPEC.data_len


def test_frame_count_gap_across_the_256_wrap(rng):
    # frames 254, 255 and 256 (counts 254, 255, 0) lost: one gap of 3 frames, seen across the wrap
    pk = _packets(rng, 250)
    frames, _ = _frames(pk)
    assert len(frames) > 260
    bad = [254, 255, 256]
    dp = TMDepacketizer(SPEC)
    out, st = dp.push([f for k, f in enumerate(frames) if k not in bad], dp.initial_state())
    assert st.gaps == 1 and st.frames_lost == 3
    assert [p.to_bytes() for p in out.packets] == _intact(pk, bad, SPEC.data_len)


def test_lose_sync_drops_the_packet_in_progress(rng):
    """A caller that knows of a gap (the real-time receiver at a stream gap) makes the depacketizer
    drop the packet in progress (counted, reason stream_gap) and find the next from an FHP."""
    pk = _packets(rng, 40)
    frames, _ = _frames(pk)
    dp = TMDepacketizer(SPEC)
    out, st = dp.push(frames[:3], dp.initial_state())
    partial = len(st.buf)
    assert partial                                     # a packet begun in frame 3 goes on in frame 4
    lost, st = dp.lose_sync(st)
    assert [(d.reason, d.n_octets) for d in lost.dropped] == [("stream_gap", partial)]
    assert st.dropped_events == 1 and st.dropped_octets == partial and not st.buf
    out2, st = dp.push(frames[3:], st)
    got = [p.to_bytes() for p in out.packets + out2.packets]
    assert set(got) <= set(pk) and len(got) < len(pk) and got[-1] == pk[-1]
    _, st2 = dp.lose_sync(dp.initial_state())          # nothing in progress: nothing dropped
    assert st2.dropped_events == 0
