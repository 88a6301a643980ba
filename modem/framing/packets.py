# SPDX-License-Identifier: Apache-2.0
"""CCSDS space packets (133.0-B-2) and their transport in TM transfer frames (132.0-B-3).

Space packet primary header, 6 octets, MSB first:

=======================  ====  ===========================================================
field                    bits  notes
=======================  ====  ===========================================================
packet version number     3    ``000``
packet type               1    0 = telemetry, 1 = telecommand
secondary header flag     1
APID                     11    0x7FF = idle packet (:data:`IDLE_APID`)
sequence flags            2    ``01`` first, ``00`` continuation, ``10`` last, ``11`` unsegmented
sequence count           14    mod 16384
packet data length       16    octets in the packet data field **minus 1** (so 1..65536 octets)
=======================  ====  ===========================================================

:class:`TMPacketizer` fills fixed-length frames of one virtual channel from a packet stream
(packets span frame boundaries; the frame's first header pointer gives the offset of the first
packet that *starts* in it, 0x7FF when none does; :meth:`TMPacketizer.flush` completes a partial
frame with an idle packet). :class:`TMDepacketizer` reassembles packets across frames; it tracks
the virtual channel frame count and, after a gap, a frame with a bad FECF or any inconsistency,
drops the partial packet (reported in :class:`DroppedData`) and resynchronises on the next
first header pointer. A corrupted packet is never emitted (as far as the FECF detects corruption).

Both keep their memory in an explicit frozen state object passed in and returned; feeding frames
one at a time or all at once gives identical output.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Iterable

from ..errors import ConfigError, ShapeError
from .tm import (FHP_IDLE_ONLY, FHP_NO_PACKET_START, TMFrame, TMFrameSpec, _check_range, decode_tm_frame,
                 encode_tm_frame)

PACKET_HEADER_LEN = 6
IDLE_APID = 0x7FF
MIN_PACKET_LEN = PACKET_HEADER_LEN + 1
MAX_PACKET_LEN = PACKET_HEADER_LEN + 65536
SEQ_FIRST, SEQ_CONTINUATION, SEQ_LAST, SEQ_UNSEGMENTED = 0b01, 0b00, 0b10, 0b11
IDLE_FILL = 0x55                     # idle packet data octet (mission-specific in 133.0-B)


@dataclass(frozen=True)
class SpacePacketHeader:
    """The 6-octet space packet primary header; ``data_length`` = data field octets - 1."""

    apid: int
    seq_count: int
    data_length: int
    packet_type: int = 0
    secondary_header: bool = False
    seq_flags: int = SEQ_UNSEGMENTED
    version: int = 0

    def __post_init__(self):
        who = "SpacePacketHeader"
        _check_range(who, "version", self.version, 0, 7)
        _check_range(who, "packet_type", self.packet_type, 0, 1)
        _check_range(who, "apid", self.apid, 0, 0x7FF)
        _check_range(who, "seq_flags", self.seq_flags, 0, 3)
        _check_range(who, "seq_count", self.seq_count, 0, 0x3FFF)
        _check_range(who, "data_length", self.data_length, 0, 0xFFFF)

    @property
    def packet_len(self) -> int:
        """Total packet length in octets (header + data field)."""
        return self.data_length + 1 + PACKET_HEADER_LEN

    def to_bytes(self) -> bytes:
        w0 = (self.version << 13) | (self.packet_type << 12) | (int(bool(self.secondary_header)) << 11) | self.apid
        w1 = (self.seq_flags << 14) | self.seq_count
        return bytes([w0 >> 8, w0 & 0xFF, w1 >> 8, w1 & 0xFF, self.data_length >> 8, self.data_length & 0xFF])

    @classmethod
    def from_bytes(cls, hdr: bytes) -> "SpacePacketHeader":
        if len(hdr) < PACKET_HEADER_LEN:
            raise ShapeError(f"SpacePacketHeader: need {PACKET_HEADER_LEN} octets, got {len(hdr)}")
        w0 = (hdr[0] << 8) | hdr[1]
        w1 = (hdr[2] << 8) | hdr[3]
        return cls(version=w0 >> 13, packet_type=(w0 >> 12) & 1, secondary_header=bool((w0 >> 11) & 1),
                   apid=w0 & 0x7FF, seq_flags=w1 >> 14, seq_count=w1 & 0x3FFF, data_length=(hdr[4] << 8) | hdr[5])


@dataclass(frozen=True)
class SpacePacket:
    """A parsed packet: header and packet data field (secondary header, if any, included)."""

    header: SpacePacketHeader
    data: bytes

    @property
    def is_idle(self) -> bool:
        return self.header.apid == IDLE_APID

    def to_bytes(self) -> bytes:
        return self.header.to_bytes() + self.data


def build_space_packet(apid: int, data: bytes, *, seq_count: int = 0, packet_type: int = 0,
                       secondary_header: bool = False, seq_flags: int = SEQ_UNSEGMENTED) -> bytes:
    """Header + ``data`` (1..65536 octets) as bytes. ConfigError for fields out of range."""
    data = bytes(data)
    if not 1 <= len(data) <= 65536:
        raise ConfigError(f"build_space_packet: data must be 1..65536 octets, got {len(data)}")
    h = SpacePacketHeader(apid=apid, seq_count=seq_count, data_length=len(data) - 1, packet_type=packet_type,
                          secondary_header=secondary_header, seq_flags=seq_flags)
    return h.to_bytes() + data


def parse_space_packet(buf: bytes) -> SpacePacket:
    """Parse exactly one packet. ShapeError when the length field disagrees with ``len(buf)`` or the
    version is not 0."""
    buf = bytes(buf)
    h = SpacePacketHeader.from_bytes(buf[:PACKET_HEADER_LEN])
    if h.version != 0:
        raise ShapeError(f"parse_space_packet: packet version must be 0, got {h.version}")
    if h.packet_len != len(buf):
        raise ShapeError(f"parse_space_packet: length field says {h.packet_len} octets, got {len(buf)}")
    return SpacePacket(header=h, data=buf[PACKET_HEADER_LEN:])


def idle_packet(n_octets: int, seq_count: int = 0) -> bytes:
    """An idle packet (APID 0x7FF, data octets :data:`IDLE_FILL`) of ``n_octets`` in total (>= 7)."""
    if not MIN_PACKET_LEN <= n_octets <= MAX_PACKET_LEN:
        raise ConfigError(f"idle_packet: n_octets must be in [{MIN_PACKET_LEN}, {MAX_PACKET_LEN}], got {n_octets}")
    return build_space_packet(IDLE_APID, bytes([IDLE_FILL]) * (n_octets - PACKET_HEADER_LEN),
                              seq_count=seq_count % 0x4000)


# --- packetizer ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class PacketizerState:
    """Packetizer memory: octets queued for the next frames, offsets (in ``pending``) where packets
    start, the next master / virtual channel frame counts and the idle packet sequence count."""

    pending: bytes = b""
    starts: tuple[int, ...] = ()
    mcfc: int = 0
    vcfc: int = 0
    idle_seq: int = 0


class TMPacketizer:
    """Fill fixed-length TM frames of ``spec`` (its SCID and VCID) with space packets.

    ``frames, state = pz.push(packets, state)`` queues whole packets (bytes) and returns every frame
    that is full; ``pz.flush(state)`` completes the partial frame with one idle packet (if fewer than
    7 octets are left, the idle packet runs on to fill the next frame(s) too, whose FHP is then 0x7FF);
    ``pz.idle_frame(state)`` flushes, then emits one frame of only idle data (FHP 0x7FE). Frame
    counts run mod 256 (both counts advance together: one VC on the master channel).
    """

    def __init__(self, spec: TMFrameSpec, ocf: bytes | None = None):
        if spec.ocf and (ocf is None or len(ocf) != 4):
            raise ConfigError("TMPacketizer: spec has an OCF, give ocf=<4 octets>")
        self.spec = spec
        self.ocf = bytes(ocf) if spec.ocf else None

    def initial_state(self) -> PacketizerState:
        return PacketizerState()

    def _frame(self, state: PacketizerState, data: bytes, fhp: int) -> tuple[bytes, PacketizerState]:
        f = encode_tm_frame(self.spec, mcfc=state.mcfc, vcfc=state.vcfc, fhp=fhp, data_field=data, ocf=self.ocf)
        return f, replace(state, mcfc=(state.mcfc + 1) % 256, vcfc=(state.vcfc + 1) % 256)

    def _emit_full(self, state: PacketizerState) -> tuple[list[bytes], PacketizerState]:
        D = self.spec.data_len
        pend, starts, frames = state.pending, state.starts, []
        while len(pend) >= D:
            first = [s for s in starts if s < D]
            fhp = first[0] if first else FHP_NO_PACKET_START
            f, state = self._frame(state, pend[:D], fhp)
            frames.append(f)
            pend, starts = pend[D:], tuple(s - D for s in starts if s >= D)
        return frames, replace(state, pending=pend, starts=starts)

    def push(self, packets: Iterable[bytes], state: PacketizerState) -> tuple[list[bytes], PacketizerState]:
        """Queue packets (each a complete packet as bytes; checked) and return the full frames."""
        pend, starts = bytearray(state.pending), list(state.starts)
        for p in packets:
            p = bytes(p)
            parse_space_packet(p)                       # ShapeError on a malformed packet
            starts.append(len(pend))
            pend += p
        return self._emit_full(replace(state, pending=bytes(pend), starts=tuple(starts)))

    def flush(self, state: PacketizerState) -> tuple[list[bytes], PacketizerState]:
        """Complete the partial frame (if any) with an idle packet and return the frame(s)."""
        if not state.pending:
            return [], state
        r = self.spec.data_len - len(state.pending)
        n = r
        while n < MIN_PACKET_LEN:                       # runs on over whole frames (data fields < 7 too)
            n += self.spec.data_len
        pkt = idle_packet(n, state.idle_seq)
        return self.push([pkt], replace(state, idle_seq=(state.idle_seq + 1) % 0x4000))

    def idle_frame(self, state: PacketizerState) -> tuple[list[bytes], PacketizerState]:
        """Flush, then one Only-Idle-Data frame (FHP 0x7FE, data field of :data:`IDLE_FILL` octets)."""
        frames, state = self.flush(state)
        f, state = self._frame(state, bytes([IDLE_FILL]) * self.spec.data_len, FHP_IDLE_ONLY)
        return frames + [f], state


# --- depacketizer --------------------------------------------------------------------------------
@dataclass(frozen=True)
class DroppedData:
    """Octets the depacketizer discarded instead of emitting a possibly corrupt packet.

    ``reason``: ``frame_gap`` (VC frame count jumped), ``bad_fecf`` (the jump is explained by frames
    that failed their FECF: detected at the next good frame of the VC), ``fhp_mismatch`` (the FHP
    disagrees with the packet lengths), ``bad_packet_header`` (packet version != 0, an impossible
    FHP, or a frame secondary header that leaves no packet zone), ``idle_frame_in_packet`` (an OID
    frame arrived mid-packet), ``no_packet_start`` (octets before the first packet header after a
    resynchronisation), ``not_packets`` (a frame with the synchronisation flag set: its data field
    is a VCA_SDU, not packets), ``stream_gap`` / ``incomplete_at_end`` (the caller's
    :meth:`TMDepacketizer.lose_sync`: a gap in the stream before the frames, the end of a pass). ``vcfc``: count of the frame at which it was detected
    (as received; None for ``stream_gap``).
    """

    reason: str
    n_octets: int
    vcfc: int | None


@dataclass(frozen=True)
class DepacketizerState:
    """Depacketizer memory and counters.

    ``buf``: octets of the packet being reassembled (starts at a packet header when ``in_sync``);
    ``expected_vcfc``: VC frame count of the next frame (None before the first frame);
    ``unknown_frames``: frames with a bad FECF since the last good frame of this VC (of any VC: the
    header of a bad frame is not trusted). ``gaps`` / ``frames_lost`` count the frame-count jumps not
    explained by those bad frames; ``bad_fecf`` counts the bad frames themselves.
    """

    buf: bytes = b""
    in_sync: bool = False
    expected_vcfc: int | None = None
    frames: int = 0
    packets: int = 0
    idle_packets: int = 0
    gaps: int = 0
    frames_lost: int = 0
    bad_fecf: int = 0
    other_vc: int = 0
    dropped_events: int = 0
    dropped_octets: int = 0
    unknown_frames: int = 0


@dataclass(frozen=True)
class DepacketizerOutput:
    packets: list[SpacePacket] = field(default_factory=list)
    dropped: list[DroppedData] = field(default_factory=list)


class TMDepacketizer:
    """Extract space packets from the TM frames of ``spec``'s SCID / VCID.

    ``out, state = dp.push(frames, state)`` with frames as bytes (or bits, decoded here) or
    :class:`~modem.framing.tm.TMFrame` results. Frames of other SCID / VCID are counted and ignored.
    Idle packets are counted and dropped unless ``keep_idle``. A frame secondary header (flagged in
    the primary header; its first octet gives its length) is skipped: the FHP counts from the octet
    after it. A frame-count gap of exactly a multiple of 256 frames cannot be seen in the 8-bit count.
    """

    def __init__(self, spec: TMFrameSpec, keep_idle: bool = False):
        self.spec = spec
        self.keep_idle = keep_idle

    def initial_state(self) -> DepacketizerState:
        return DepacketizerState()

    def push(self, frames: Iterable, state: DepacketizerState) -> tuple[DepacketizerOutput, DepacketizerState]:
        out = DepacketizerOutput()
        for f in frames:
            fr = f if isinstance(f, TMFrame) else decode_tm_frame(self.spec, f)
            state = self._one(fr, state, out)
        return out, state

    def lose_sync(self, state: DepacketizerState, reason: str = "stream_gap") -> tuple[DepacketizerOutput, DepacketizerState]:
        """The frames that follow do not continue the stream (a gap the caller knows of): the
        packet in progress is dropped (``reason``, counted) and the next one is found again from a
        first header pointer, never completed with another packet's tail."""
        out = DepacketizerOutput()
        return out, self._lose_sync(state, out, reason, None)

    # internals
    @staticmethod
    def _drop(state, out, reason, n, vcfc):
        if n:
            out.dropped.append(DroppedData(reason, n, vcfc))
            state = replace(state, dropped_events=state.dropped_events + 1, dropped_octets=state.dropped_octets + n)
        return state

    def _lose_sync(self, state, out, reason, vcfc):
        state = self._drop(state, out, reason, len(state.buf), vcfc)
        return replace(state, buf=b"", in_sync=False)

    def _one(self, fr: TMFrame, state: DepacketizerState, out: DepacketizerOutput) -> DepacketizerState:
        h = fr.header
        if fr.fecf_ok is False:
            # its VCID is unknown: the next good frame of this VC tells (by its frame count) whether
            # frames of ours were among the bad ones
            return replace(state, bad_fecf=state.bad_fecf + 1, unknown_frames=state.unknown_frames + 1)
        if h.scid != self.spec.scid or h.vcid != self.spec.vcid:
            return replace(state, other_vc=state.other_vc + 1)
        state = replace(state, frames=state.frames + 1)
        if state.expected_vcfc is not None and h.vcfc != state.expected_vcfc:
            missing = (h.vcfc - state.expected_vcfc) % 256
            lost = missing - min(missing, state.unknown_frames)     # not explained by bad frames
            if lost:
                state = replace(state, gaps=state.gaps + 1, frames_lost=state.frames_lost + lost)
            state = self._lose_sync(state, out, "frame_gap" if lost else "bad_fecf", h.vcfc)
        state = replace(state, expected_vcfc=(h.vcfc + 1) % 256, unknown_frames=0)
        d, fhp = fr.data_field, h.fhp
        if h.sync_flag:                                 # a VCA_SDU, not packets; the FHP is undefined
            state = self._lose_sync(state, out, "not_packets", h.vcfc)
            return self._drop(state, out, "not_packets", len(d), h.vcfc)
        if h.secondary_header:                          # 132.0-B-3 4.1.3: ID octet = version(2) | length-1 (6)
            n_sh = (d[0] & 0x3F) + 1
            if n_sh >= len(d):
                state = self._lose_sync(state, out, "bad_packet_header", h.vcfc)
                return self._drop(state, out, "bad_packet_header", len(d), h.vcfc)
            d = d[n_sh:]                                # the FHP counts from the first octet after it
        D = len(d)
        if fhp == FHP_IDLE_ONLY:
            return self._lose_sync(state, out, "idle_frame_in_packet", h.vcfc)
        if state.in_sync and self._expected_fhp(state.buf, d) != fhp:
            state = self._lose_sync(state, out, "fhp_mismatch", h.vcfc)
        if not state.in_sync:
            if fhp == FHP_NO_PACKET_START:
                return self._drop(state, out, "no_packet_start", D, h.vcfc)
            if fhp >= D:
                return self._drop(state, out, "bad_packet_header", D, h.vcfc)
            state = self._drop(state, out, "no_packet_start", fhp, h.vcfc)
            state, d = replace(state, in_sync=True, buf=b""), d[fhp:]
        return self._extract(replace(state, buf=state.buf + d), out, h.vcfc)

    @staticmethod
    def _expected_fhp(buf: bytes, d: bytes) -> int:
        """FHP this frame must carry if ``buf`` (aligned at a packet start) is right."""
        nb = len(buf)
        if nb == 0:
            return 0
        hdr = buf[:PACKET_HEADER_LEN] if nb >= PACKET_HEADER_LEN else buf + d[:PACKET_HEADER_LEN - nb]
        if len(hdr) < PACKET_HEADER_LEN:
            return FHP_NO_PACKET_START                  # still inside the header of this packet
        rem = ((hdr[4] << 8) | hdr[5]) + 1 + PACKET_HEADER_LEN - nb
        return rem if rem < len(d) else FHP_NO_PACKET_START

    def _extract(self, state, out, vcfc):
        buf, pos, n_pk, n_idle = state.buf, 0, 0, 0
        while len(buf) - pos >= PACKET_HEADER_LEN:
            if buf[pos] >> 5 != 0:                      # packet version must be 0
                state = replace(state, buf=buf[pos:])
                state = self._lose_sync(state, out, "bad_packet_header", vcfc)
                return replace(state, packets=state.packets + n_pk, idle_packets=state.idle_packets + n_idle)
            L = ((buf[pos + 4] << 8) | buf[pos + 5]) + 1 + PACKET_HEADER_LEN
            if len(buf) - pos < L:
                break
            p = parse_space_packet(buf[pos:pos + L])
            pos += L
            if p.is_idle:
                n_idle += 1
                if not self.keep_idle:
                    continue
            out.packets.append(p)
            n_pk += 1
        return replace(state, buf=buf[pos:], packets=state.packets + n_pk, idle_packets=state.idle_packets + n_idle)
