# SPDX-License-Identifier: Apache-2.0
"""CCSDS TM Space Data Link Protocol transfer frames (CCSDS 132.0-B-3).

Frame layout (octets, MSB first on the wire)::

    | primary header (6) | data field | OCF (4, optional) | FECF (2, optional) |

Primary header, 48 bits:

==========================  ====  =====================================================
field                       bits  notes
==========================  ====  =====================================================
transfer frame version       2    always ``00`` for TM (AOS = 1, USLP = 3)
spacecraft id (SCID)        10
virtual channel id (VCID)    3
OCF flag                     1    1 = a 4-octet operational control field is present
master channel frame count   8    mod 256
virtual channel frame count  8    mod 256
secondary header flag        1    (data field status, 16 bits, from here)
synchronisation flag         1    0 = packets (octet-synchronous) in the data field
packet order flag            1    0 when the sync flag is 0
segment length id            2    ``11`` when the sync flag is 0
first header pointer (FHP)  11    octet offset, within the data field, of the first
                                  packet header that starts in this frame; special
                                  values :data:`FHP_NO_PACKET_START` = 0x7FF and
                                  :data:`FHP_IDLE_ONLY` = 0x7FE
==========================  ====  =====================================================

Frame error control field: CRC-16, g(x) = x^16 + x^12 + x^5 + 1 (0x1021), register preset to 0xFFFF,
no reflection, no final XOR (CRC-16/CCITT-FALSE), over the whole frame except the FECF itself.
Check values: ASCII "123456789" -> 0x29B1; ``06000cf0 00040055 8873c900 000521`` -> 0x75FB.

A secondary header, when flagged, is not parsed here: it stays at the start of ``data_field``.

A frame that fails its FECF is a *result* (``TMFrame.fecf_ok`` is False), never an exception; only
input that cannot be a TM frame of the given spec raises :class:`~modem.errors.ShapeError`.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import ConfigError, ShapeError
from .bits import check_bits, pack_bits, unpack_bytes
from .crc import crc16_ccitt

TM_VERSION = 0
PRIMARY_HEADER_LEN = 6
OCF_LEN = 4
FECF_LEN = 2
MAX_FRAME_LEN = 2048                 # octets, 132.0-B-3 clause 4.1.1 / 5.1b

FHP_NO_PACKET_START = 0x7FF          # no packet header starts in this frame (continuation)
FHP_IDLE_ONLY = 0x7FE                # the data field holds only idle data ("OID")


def _check_range(who: str, name: str, value, lo: int, hi: int) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise ConfigError(f"{who}: {name} must be an integer in [{lo}, {hi}], got {value!r}")
    if not lo <= int(value) <= hi:
        raise ConfigError(f"{who}: {name} must be in [{lo}, {hi}], got {int(value)}")
    return int(value)


@dataclass(frozen=True)
class TMFrameSpec:
    """Fixed parameters of one TM physical channel / virtual channel.

    Parameters
    ----------
    frame_len : total transfer frame length in octets (header + data field + OCF + FECF),
        ``[PRIMARY_HEADER_LEN + OCF + FECF + 1, 2048]``.
    scid : spacecraft id, ``[0, 1023]``.
    vcid : virtual channel id, ``[0, 7]`` (the channel this spec builds / filters).
    ocf : True when every frame carries the 4-octet operational control field.
    fecf : True when every frame carries the 2-octet CRC-16 frame error control field.
    """

    frame_len: int
    scid: int
    vcid: int = 0
    ocf: bool = False
    fecf: bool = True

    def __post_init__(self):
        who = "TMFrameSpec"
        _check_range(who, "scid", self.scid, 0, 1023)
        _check_range(who, "vcid", self.vcid, 0, 7)
        lo = PRIMARY_HEADER_LEN + OCF_LEN * bool(self.ocf) + FECF_LEN * bool(self.fecf) + 1
        _check_range(who, "frame_len", self.frame_len, lo, MAX_FRAME_LEN)

    @property
    def data_len(self) -> int:
        """Octets in the data field."""
        return self.frame_len - PRIMARY_HEADER_LEN - OCF_LEN * bool(self.ocf) - FECF_LEN * bool(self.fecf)

    @property
    def n_bits(self) -> int:
        """Frame length in bits (what follows the ASM on the wire)."""
        return 8 * self.frame_len


@dataclass(frozen=True)
class TMPrimaryHeader:
    """The 6-octet TM primary header, field by field (see the module table)."""

    scid: int
    vcid: int
    mcfc: int
    vcfc: int
    fhp: int
    ocf_flag: bool = False
    secondary_header: bool = False
    sync_flag: bool = False
    packet_order: bool = False
    segment_length_id: int = 3
    version: int = TM_VERSION

    def __post_init__(self):
        who = "TMPrimaryHeader"
        _check_range(who, "version", self.version, 0, 3)
        _check_range(who, "scid", self.scid, 0, 1023)
        _check_range(who, "vcid", self.vcid, 0, 7)
        _check_range(who, "mcfc", self.mcfc, 0, 255)
        _check_range(who, "vcfc", self.vcfc, 0, 255)
        _check_range(who, "segment_length_id", self.segment_length_id, 0, 3)
        _check_range(who, "fhp", self.fhp, 0, 0x7FF)

    def to_bytes(self) -> bytes:
        w0 = (self.version << 14) | (self.scid << 4) | (self.vcid << 1) | int(bool(self.ocf_flag))
        status = ((int(bool(self.secondary_header)) << 15) | (int(bool(self.sync_flag)) << 14)
                  | (int(bool(self.packet_order)) << 13) | (self.segment_length_id << 11) | self.fhp)
        return bytes([w0 >> 8, w0 & 0xFF, self.mcfc, self.vcfc, status >> 8, status & 0xFF])

    @classmethod
    def from_bytes(cls, hdr: bytes) -> "TMPrimaryHeader":
        """Parse 6 octets. Any version value is returned as is (the frame decoder judges it)."""
        if len(hdr) != PRIMARY_HEADER_LEN:
            raise ShapeError(f"TMPrimaryHeader: header must be {PRIMARY_HEADER_LEN} octets, got {len(hdr)}")
        w0 = (hdr[0] << 8) | hdr[1]
        status = (hdr[4] << 8) | hdr[5]
        return cls(version=w0 >> 14, scid=(w0 >> 4) & 0x3FF, vcid=(w0 >> 1) & 0x7, ocf_flag=bool(w0 & 1),
                   mcfc=hdr[2], vcfc=hdr[3], secondary_header=bool(status >> 15),
                   sync_flag=bool((status >> 14) & 1), packet_order=bool((status >> 13) & 1),
                   segment_length_id=(status >> 11) & 0x3, fhp=status & 0x7FF)


@dataclass(frozen=True)
class TMFrame:
    """A decoded TM transfer frame.

    ``fecf_ok`` is True / False when the spec has a FECF (CRC over the frame minus the FECF matches /
    does not), and None when the spec has none (nothing was checked).
    """

    header: TMPrimaryHeader
    data_field: bytes
    ocf: bytes | None
    fecf: int | None
    fecf_ok: bool | None


def fecf(frame_wo_fecf: bytes) -> int:
    """CRC-16 (0x1021, preset 0xFFFF) of the octets, i.e. the FECF of a frame without its FECF."""
    return int(crc16_ccitt(unpack_bytes(bytes(frame_wo_fecf))))


def encode_tm_frame(spec: TMFrameSpec, *, mcfc: int, vcfc: int, fhp: int, data_field: bytes,
                    ocf: bytes | None = None, secondary_header: bool = False, sync_flag: bool = False,
                    packet_order: bool = False, segment_length_id: int = 3) -> bytes:
    """Build one frame of ``spec`` (VCID from the spec): header + data field [+ OCF] [+ FECF].

    Raises ShapeError when ``data_field`` is not ``spec.data_len`` octets or ``ocf`` is missing /
    not 4 octets while the spec has an OCF (or given while it has none); ConfigError for header
    fields out of range.
    """
    data_field = bytes(data_field)
    if len(data_field) != spec.data_len:
        raise ShapeError(f"encode_tm_frame: data_field must be {spec.data_len} octets, got {len(data_field)}")
    if spec.ocf:
        if ocf is None or len(ocf) != OCF_LEN:
            raise ShapeError(f"encode_tm_frame: spec has an OCF, ocf must be {OCF_LEN} octets, "
                             f"got {None if ocf is None else len(ocf)}")
    elif ocf is not None:
        raise ShapeError(f"encode_tm_frame: spec has no OCF, got ocf of {len(ocf)} octets")
    hdr = TMPrimaryHeader(scid=spec.scid, vcid=spec.vcid, mcfc=mcfc, vcfc=vcfc, fhp=fhp,
                          ocf_flag=spec.ocf, secondary_header=secondary_header, sync_flag=sync_flag,
                          packet_order=packet_order, segment_length_id=segment_length_id)
    frame = hdr.to_bytes() + data_field + (bytes(ocf) if spec.ocf else b"")
    if spec.fecf:
        c = fecf(frame)
        frame += bytes([c >> 8, c & 0xFF])
    return frame


def _as_frame_bytes(frame, spec: TMFrameSpec, who: str) -> bytes:
    if isinstance(frame, (bytes, bytearray, memoryview)):
        b = bytes(frame)
    else:
        a = np.asarray(frame)
        if a.ndim != 1:
            raise ShapeError(f"{who}: a frame must be bytes or a 1-D bit array, got shape {a.shape}")
        b = pack_bits(check_bits(a, spec.n_bits, who, "frame"))
    if len(b) != spec.frame_len:
        raise ShapeError(f"{who}: frame must be {spec.frame_len} octets, got {len(b)}")
    return b


def decode_tm_frame(spec: TMFrameSpec, frame) -> TMFrame:
    """Parse one frame (``bytes`` of ``spec.frame_len`` octets, or its ``8*frame_len`` bits, MSB first).

    The FECF is checked first. A frame whose FECF fails is returned as is (``fecf_ok=False``, header
    fields as received, possibly corrupt). A frame whose FECF passes, or any frame when the spec
    has no FECF, must be a TM frame of this spec: version 0 and, on the spec's virtual channel, the
    OCF flag equal to ``spec.ocf``, else ShapeError naming the value. The OCF may be a per-VC
    service (CCSDS 132.0-B-3 VC_OCF), so a frame of another VC is parsed by its own OCF flag (its
    data field then 4 octets longer or shorter than ``spec.data_len``). SCID / VCID are reported,
    not filtered.
    """
    who = "decode_tm_frame"
    b = _as_frame_bytes(frame, spec, who)
    crc_rx = crc_ok = None
    if spec.fecf:
        crc_rx = (b[-2] << 8) | b[-1]
        crc_ok = fecf(b[:-FECF_LEN]) == crc_rx
    hdr = TMPrimaryHeader.from_bytes(b[:PRIMARY_HEADER_LEN])
    if crc_ok is not False and hdr.version != TM_VERSION:
        raise ShapeError(f"{who}: transfer frame version must be {TM_VERSION} (TM), got {hdr.version}")
    ours = hdr.scid == spec.scid and hdr.vcid == spec.vcid          # the spec's virtual channel
    if crc_ok is not False and ours and hdr.ocf_flag != bool(spec.ocf):
        raise ShapeError(f"{who}: OCF flag {int(hdr.ocf_flag)} does not match the spec (ocf={spec.ocf}) "
                         f"on its virtual channel (SCID {spec.scid}, VCID {spec.vcid})")
    has_ocf = bool(spec.ocf) if (crc_ok is False or ours) else hdr.ocf_flag
    end = len(b) - FECF_LEN * bool(spec.fecf) - OCF_LEN * has_ocf
    ocf = b[end:end + OCF_LEN] if has_ocf else None
    return TMFrame(header=hdr, data_field=b[PRIMARY_HEADER_LEN:end], ocf=ocf, fecf=crc_rx, fecf_ok=crc_ok)


def check_fecf(spec: TMFrameSpec, bits) -> np.ndarray:
    """FECF check of a batch of frames given as bits ``(*batch, 8*frame_len)`` -> ``(*batch,)`` bool."""
    if not spec.fecf:
        raise ConfigError("check_fecf: spec has no FECF (fecf=False)")
    b = check_bits(bits, spec.n_bits, "check_fecf", "bits")
    rx = np.zeros(b.shape[:-1], dtype=np.uint64)
    for i in range(16):
        rx = (rx << np.uint64(1)) | b[..., spec.n_bits - 16 + i].astype(np.uint64)
    return crc16_ccitt(b[..., :-16]) == rx
