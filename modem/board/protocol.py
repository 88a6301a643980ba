# SPDX-License-Identifier: Apache-2.0
"""Capture-board wire protocol, host side: pack and validate data messages, control registers.

Everything here is read from ``fpga/protocol.toml``, the single machine-readable definition that
also generates the firmware header ``fpga/modem_board.h`` (``python3 fpga/gen_header.py``); see
``fpga/README.md`` for the protocol document.

Data message = ZeroMQ multipart ``[header, payload]``:

* ``header``: ``HEADER_LEN`` (64) octets, little-endian, fields in :data:`HEADER_FIELDS` order
  (magic u32, version u16, header_len u16, stream_id u16, payload_kind u8, sample_dtype u8,
  flags u32, seq u64, first i64, sample_rate f64, n_items u32, payload_len u32,
  payload_crc32 u32, span u32, reserved u64).
* ``payload``: ``n_items`` items of ``sample_dtype`` (time tags: int64 ticks, non-decreasing;
  samples: float32 / int16 / complex64), ``payload_len = n_items * itemsize`` octets.

:func:`parse_message` never trusts the wire: a malformed message raises :class:`MessageError`
whose ``reason`` is one of :data:`REJECT_REASONS` (the receiver counts them per reason and goes on).
"""
from __future__ import annotations

import enum
import math
import os
import struct
import tomllib
import zlib
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..errors import ConfigError, ModemError

__all__ = ["PROTOCOL", "VERSION", "MAGIC", "HEADER_LEN", "MAX_PAYLOAD_LEN", "HEADER_FIELDS", "PayloadKind",
           "SampleDtype", "Flags", "HEADER_DTYPE", "Register", "REGISTERS", "Header", "MessageError", "REJECT_REASONS",
           "protocol_path", "pack_message", "parse_message", "numpy_dtype", "itemsize"]


def protocol_path() -> Path:
    """``$MODEM_BOARD_PROTOCOL`` -> a copy installed beside this module -> the repository's fpga/."""
    env = os.environ.get("MODEM_BOARD_PROTOCOL")
    if env:
        return Path(env)
    here = Path(__file__).resolve().parent
    for p in (here / "protocol.toml", here.parents[1] / "fpga" / "protocol.toml"):
        if p.exists():
            return p
    raise ConfigError(f"board protocol: fpga/protocol.toml not found (looked beside {here} and in the repository); "
                      "set MODEM_BOARD_PROTOCOL to its path")


with open(protocol_path(), "rb") as _f:
    PROTOCOL: dict = tomllib.load(_f)

VERSION: int = PROTOCOL["protocol"]["version"]
MAGIC: int = PROTOCOL["protocol"]["magic"]
HEADER_LEN: int = PROTOCOL["protocol"]["header_len"]
MAX_PAYLOAD_LEN: int = PROTOCOL["protocol"]["max_payload_len"]
HEADER_FIELDS: tuple = tuple((f["name"], f["type"], f["offset"]) for f in PROTOCOL["header"])

_STRUCT_CODE = {"u8": "B", "u16": "H", "u32": "I", "u64": "Q", "i64": "q", "f64": "d"}
_NUMPY_CODE = {"u8": "u1", "u16": "<u2", "u32": "<u4", "u64": "<u8", "i64": "<i8", "f64": "<f8"}
_HEADER_STRUCT = struct.Struct("<" + "".join(_STRUCT_CODE[t] for _, t, _ in HEADER_FIELDS))
#: numpy structured dtype of the header (offsets from the definition): for batch parsing / tests
HEADER_DTYPE = np.dtype({"names": [n for n, _, _ in HEADER_FIELDS], "formats": [_NUMPY_CODE[t] for _, t, _ in HEADER_FIELDS],
                         "offsets": [o for _, _, o in HEADER_FIELDS], "itemsize": HEADER_LEN})
if _HEADER_STRUCT.size != HEADER_LEN:
    raise ConfigError(f"board protocol: header fields pack to {_HEADER_STRUCT.size} octets, header_len={HEADER_LEN}")

PayloadKind = enum.IntEnum("PayloadKind", dict(PROTOCOL["payload_kind"]))
SampleDtype = enum.IntEnum("SampleDtype", {k: v["code"] for k, v in PROTOCOL["sample_dtype"].items()})
Flags = enum.IntFlag("Flags", dict(PROTOCOL["flags"]))
_DTYPES = {v["code"]: (np.dtype(v["numpy"]), v["itemsize"]) for v in PROTOCOL["sample_dtype"].values()}

REJECT_REASONS = ("parts", "short_header", "bad_magic", "bad_version", "bad_header_len", "bad_kind", "bad_dtype",
                  "bad_rate", "oversize", "length_mismatch", "crc", "bad_tags")


def numpy_dtype(code: int) -> np.dtype:
    """numpy dtype (little-endian) of a ``sample_dtype`` code."""
    try:
        return _DTYPES[int(code)][0]
    except (KeyError, ValueError, TypeError):
        raise ConfigError(f"board protocol: sample_dtype must be one of {sorted(_DTYPES)}, got {code!r}") from None


def itemsize(code: int) -> int:
    return numpy_dtype(code).itemsize


@dataclass(frozen=True)
class Register:
    """One control register (see ``[[register]]`` in protocol.toml)."""

    name: str
    address: int
    type: str
    access: str
    min: float
    max: float
    default: float
    doc: str

    def check(self, value):
        """The value converted to the register type; ConfigError naming register and value otherwise."""
        if self.access != "rw":
            raise ConfigError(f"register {self.name} is read-only")
        if self.type == "f64":
            ok = isinstance(value, (int, float)) and not isinstance(value, bool)
            v = float(value) if ok else None
        else:
            ok = isinstance(value, int) and not isinstance(value, bool)
            v = int(value) if ok else None
        if not ok or v != v or not self.min <= v <= self.max:
            raise ConfigError(f"register {self.name} must be a {self.type} in [{self.min}, {self.max}], got {value!r}")
        return v


REGISTERS: dict = {r["name"]: Register(**r) for r in PROTOCOL["register"]}


class MessageError(ModemError, ValueError):
    """A data message that is not valid protocol; ``reason`` is one of REJECT_REASONS."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class Header:
    """A data message header (field meanings in protocol.toml / fpga/README.md)."""

    stream_id: int
    payload_kind: int
    sample_dtype: int
    flags: int
    seq: int
    first: int
    sample_rate: float
    n_items: int
    payload_len: int
    payload_crc32: int = 0
    span: int = 0
    magic: int = MAGIC
    version: int = VERSION
    header_len: int = HEADER_LEN
    reserved: int = 0

    def pack(self) -> bytes:
        d = asdict(self)
        return _HEADER_STRUCT.pack(*(d[n] for n, _, _ in HEADER_FIELDS))

    @classmethod
    def unpack(cls, buf) -> "Header":
        if len(buf) < HEADER_LEN:
            raise MessageError("short_header", f"board message: header of {len(buf)} octets, need {HEADER_LEN}")
        return cls(**dict(zip((n for n, _, _ in HEADER_FIELDS), _HEADER_STRUCT.unpack_from(buf, 0), strict=True)))


def pack_message(items: np.ndarray, *, seq: int, first: int | None = None, stream_id: int = 0,
                 payload_kind: int | None = None, sample_dtype: int | None = None, flags: int = 0,
                 sample_rate: float = 1e12, crc: bool = True) -> list:
    """``[header, payload]`` octets for a 1-D item array.

    items : int64 time tags (ticks, non-decreasing) or float32 / int16 / complex64 samples; the kind
        and dtype follow the array unless given. ``first``: default = first tag (tags) or required
        first sample index (samples). ``crc``: compute payload_crc32 (else flag NO_CRC).
    """
    a = np.ascontiguousarray(items)
    if a.ndim != 1:
        raise ConfigError(f"pack_message: items must be 1-D, got shape {a.shape}")
    if sample_dtype is None:
        by = {np.dtype("<i8"): SampleDtype.INT64_TAG, np.dtype("<f4"): SampleDtype.FLOAT32,
              np.dtype("<i2"): SampleDtype.INT16, np.dtype("<c8"): SampleDtype.COMPLEX64}
        if a.dtype.newbyteorder("<") not in by:
            raise ConfigError(f"pack_message: items dtype must be int64, float32, int16 or complex64, got {a.dtype}")
        sample_dtype = by[a.dtype.newbyteorder("<")]
    dt = numpy_dtype(sample_dtype)
    a = a.astype(dt, copy=False)
    if payload_kind is None:
        payload_kind = PayloadKind.TIME_TAGS if sample_dtype == SampleDtype.INT64_TAG else PayloadKind.SAMPLES
    span = 0
    if payload_kind == PayloadKind.TIME_TAGS:
        if first is None:
            first = int(a[0]) if a.size else 0
        span = int(a[-1] - a[0]) if a.size else 0
        span = min(span, 0xFFFFFFFF)
    elif first is None:
        raise ConfigError("pack_message: first (index of the first sample) is required for samples")
    payload = a.tobytes()
    if len(payload) > MAX_PAYLOAD_LEN:
        raise ConfigError(f"pack_message: payload of {len(payload)} octets exceeds MAX_PAYLOAD_LEN={MAX_PAYLOAD_LEN}")
    if not crc:
        flags |= Flags.NO_CRC
    h = Header(stream_id=stream_id, payload_kind=int(payload_kind), sample_dtype=int(sample_dtype), flags=int(flags),
               seq=int(seq), first=int(first), sample_rate=float(sample_rate), n_items=int(a.size),
               payload_len=len(payload), payload_crc32=zlib.crc32(payload) if crc else 0, span=span)
    return [h.pack(), payload]


def parse_message(parts, max_payload_len: int = MAX_PAYLOAD_LEN, check_crc: bool = True,
                  check_tags: bool = True) -> tuple[Header, np.ndarray]:
    """Validate a received multipart message; return its header and items (read-only view).

    Raises :class:`MessageError` (``reason`` in REJECT_REASONS) for anything that is not a valid
    message of this protocol version: wrong part count, short header, bad magic / version /
    header_len / kind / dtype, a sample_rate not finite and > 0, payload above ``max_payload_len``, length not matching
    ``n_items * itemsize`` or ``payload_len``, CRC mismatch, time tags out of order.
    """
    if len(parts) != 2:
        raise MessageError("parts", f"board message: expected 2 parts [header, payload], got {len(parts)}")
    hb, pb = parts
    hb = memoryview(hb)
    if len(hb) < HEADER_LEN:
        raise MessageError("short_header", f"board message: header of {len(hb)} octets, need {HEADER_LEN}")
    h = Header.unpack(hb)
    if h.magic != MAGIC:
        raise MessageError("bad_magic", f"board message: magic 0x{h.magic:08X}, expected 0x{MAGIC:08X}")
    if h.version != VERSION:
        raise MessageError("bad_version", f"board message: protocol version {h.version}, this host speaks {VERSION}")
    if h.header_len != HEADER_LEN or len(hb) != HEADER_LEN:
        raise MessageError("bad_header_len", f"board message: header_len {h.header_len} ({len(hb)} octets received), "
                                             f"expected {HEADER_LEN}")
    if h.payload_kind not in PayloadKind._value2member_map_:
        raise MessageError("bad_kind", f"board message: payload_kind {h.payload_kind} unknown")
    if h.sample_dtype not in _DTYPES or \
            (h.payload_kind == PayloadKind.TIME_TAGS) != (h.sample_dtype == SampleDtype.INT64_TAG):
        raise MessageError("bad_dtype", f"board message: sample_dtype {h.sample_dtype} invalid for payload_kind "
                                        f"{h.payload_kind}")
    if not (math.isfinite(h.sample_rate) and h.sample_rate > 0):
        raise MessageError("bad_rate", f"board message: sample_rate {h.sample_rate} must be finite and > 0 (Hz)")
    pb = memoryview(pb)
    if len(pb) > max_payload_len or h.payload_len > max_payload_len:
        raise MessageError("oversize", f"board message: payload of {len(pb)} octets (header says {h.payload_len}) "
                                       f"exceeds the limit {max_payload_len}")
    dt, size = _DTYPES[h.sample_dtype]
    if len(pb) != h.payload_len or h.payload_len != h.n_items * size:
        raise MessageError("length_mismatch", f"board message: payload {len(pb)} octets, header payload_len "
                                              f"{h.payload_len}, n_items {h.n_items} x {size}")
    if check_crc and not h.flags & Flags.NO_CRC and zlib.crc32(pb) != h.payload_crc32:
        raise MessageError("crc", f"board message seq {h.seq}: payload CRC-32 mismatch")
    items = np.frombuffer(pb, dtype=dt)
    if check_tags and h.payload_kind == PayloadKind.TIME_TAGS and items.size:
        if int(items[0]) != h.first or (items.size > 1 and np.any(np.diff(items) < 0)):
            raise MessageError("bad_tags", f"board message seq {h.seq}: time tags not non-decreasing from first={h.first}")
    return h, items
