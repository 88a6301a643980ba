# SPDX-License-Identifier: Apache-2.0
"""PicoQuant PTU time-tag files: T2 and T3 reading through ``ptufile``, and a T2 writer.

File layout (PicoQuant unified TTTR format, public): the 8-octet magic ``PQTTTR\\0\\0``, an 8-octet
version, then tags of 48 octets (32-octet ident, int32 index, uint32 type code, 8-octet value;
strings and blobs follow their tag, padded to 8 octets) up to ``Header_End``, then 32-bit
little-endian TTTR records.

Reading: ``ptufile.PtuFile`` parses the header and decodes the records of each chunk
(``decode_records``); this module reads the records chunk by chunk from the file and carries the
time-tag overflow count from one chunk to the next (``ptufile`` decodes each chunk as if it were a
file's first), so memory is bounded by the chunk size. Photon records become time tags in ps:

* T2: ``t = time * MeasDesc_GlobalResolution`` (overflow-corrected).
* T3: ``t = nsync * sync period + dtime * MeasDesc_Resolution`` (sync period =
  ``MeasDesc_GlobalResolution``). The photons of one sync period come in the order each channel
  delivers them, not by ``dtime``: they are re-sorted within two sync periods
  (:class:`~modem.io.base.ReorderWindow`), the same whatever the chunk size.

Markers, sync and overflow records carry no photon and are skipped (a HydraHarp-family T2 sync
record, special bit with channel 0, is counted in ``stats['syncs']``: ptufile 2026.2.6 decodes it
as a photon of channel 0). Overflow bookkeeping per record
type (counts ``c`` added to the time base ``c * wrap``):

===================  =================  ==========  ==============================================
record type          code               wrap        overflow record
===================  =================  ==========  ==============================================
PicoHarp T2          0x00010203         210698240   channel 15, low 4 time bits 0: c = 1
HydraHarp V1 T2      0x00010204         33552000    special, channel 63: c = 1
HH V2 / TH260 / Gen. 0x01010204 ...     2**25       special, channel 63: c = time field or 1 if 0
PicoHarp T3          0x00010303         65536       channel 15, dtime 0: c = 1
HydraHarp V1 T3      0x00010304         1024        special, channel 63: c = 1
HH V2 / TH260 / Gen. 0x01010304 ...     1024        special, channel 63: c = nsync field or 1 if 0
===================  =================  ==========  ==============================================

Writing (:func:`write_ptu_t2`): record type GenericT2 (MultiHarp / PicoHarp 330), 1 ps global
resolution, photon record ``channel << 25 | (t mod 2**25)`` for detector ``channel`` 0..62,
overflow records ``1 << 31 | 63 << 25 | c`` before a photon whose time base is ahead, with
``c <= 127`` per record: PicoQuant's format allows 2**25 - 1, but ptufile 2026.2.6 reads the
count modulo 128, and records of at most 127 read the same in both. The modem's link parameters go in the AnsiString tag ``Modem_LinkParams``
(JSON object).
"""
from __future__ import annotations

import datetime as _dt
import os
import struct
import uuid

import numpy as np

from .base import Capture, MonotonicFilter, ReorderWindow, check_meta, fail, meta_from_json, meta_to_json, writable_meta

__all__ = ["PTUCapture", "write_ptu_t2", "PTU_MAGIC", "RECTYPE_GENERIC_T2", "META_TAG"]

PTU_MAGIC = b"PQTTTR\x00\x00"
RECTYPE_GENERIC_T2 = 0x00010207
META_TAG = "Modem_LinkParams"
T2_WRAP = 1 << 25
#: a silence longer than this between two tags is reported as a suspected corrupt region (1 s)
JUMP_PS = 10 ** 12
#: time jumps listed in ``stats['corrupt_regions']`` (all are counted in ``stats['time_jumps']``)
MAX_JUMPS_LISTED = 64
OVF_MAX = 127                    # overflow count per written record (see the module docstring)

# tag type codes (PicoQuant unified format)
_TY_EMPTY8, _TY_BOOL8, _TY_INT8, _TY_FLOAT8 = 0xFFFF0008, 0x00000008, 0x10000008, 0x20000008
_TY_TDATETIME, _TY_ANSISTRING = 0x21000008, 0x4001FFFF

# record type -> (is_t3, wrap, overflow rule)   rule: "ph" PicoHarp, "v1" count 1, "v2" count field
_RECTYPES = {
    0x00010203: (False, 210698240, "ph"),
    0x00010204: (False, 33552000, "v1"),
    0x01010204: (False, T2_WRAP, "v2"),
    0x00010205: (False, T2_WRAP, "v2"),
    0x00010206: (False, T2_WRAP, "v2"),
    0x00010207: (False, T2_WRAP, "v2"),
    0x00010303: (True, 65536, "ph"),
    0x00010304: (True, 1024, "v1"),
    0x01010304: (True, 1024, "v2"),
    0x00010305: (True, 1024, "v2"),
    0x00010306: (True, 1024, "v2"),
    0x00010307: (True, 1024, "v2"),
}


def _syncs(rec: np.ndarray, rectype: int) -> np.ndarray:
    """True for the sync records of the HydraHarp-family T2 formats (special bit, channel 0)."""
    is_t3, _, rule = _RECTYPES[rectype]
    if is_t3 or rule == "ph":
        return np.zeros(rec.shape, bool)
    return (rec >> 31 == 1) & ((rec >> 25) & 63 == 0)


def _overflows(rec: np.ndarray, rectype: int) -> np.ndarray:
    """Overflow count carried by each raw record (int64, 0 for non-overflow records)."""
    is_t3, _, rule = _RECTYPES[rectype]
    rec = rec.astype(np.int64)
    if rule == "ph":
        ch = rec >> 28
        low = ((rec >> 16) & 0xF) if is_t3 else (rec & 0xF)   # marker bits; 0 on an overflow record
        return ((ch == 15) & (low == 0)).astype(np.int64)
    special = (rec >> 31) & 1
    ch = (rec >> 25) & 63
    ov = (special == 1) & (ch == 63)
    if rule == "v1":
        return ov.astype(np.int64)
    field = rec & (0x3FF if is_t3 else (T2_WRAP - 1))
    return np.where(ov, np.where(field == 0, 1, field), 0)


class PTUCapture(Capture):
    """A PicoQuant PTU T2/T3 file (see the module docstring). ``chunks(n)`` reads ``n`` records."""

    kind = "timetags"

    def __init__(self, path, meta_overrides: dict | None = None):
        super().__init__(path)
        import ptufile  # noqa: PLC0415
        try:
            self._pf = ptufile.PtuFile(self.path)
        except (ptufile.PqFileError, ValueError, OSError, struct.error, KeyError) as exc:
            msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise fail(self.path, f"not a readable PTU file ({msg})") from exc
        try:
            self._open(meta_overrides)
        except BaseException:
            self.close()
            raise

    def _open(self, meta_overrides):
        pf, tags = self._pf, self._pf.tags
        if pf.type.name != "PTU":
            raise fail(self.path, f"PicoQuant file of type {pf.type.name}, not a PTU (TTTR) file")
        rectype = tags.get("TTResultFormat_TTTRRecType")
        if rectype not in _RECTYPES:
            raise fail(self.path, f"unknown TTTR record type {rectype!r} (datatype not supported)")
        self.rectype = int(rectype)
        self.is_t3 = _RECTYPES[self.rectype][0]
        self.format = "ptu-t3" if self.is_t3 else "ptu-t2"
        mode = tags.get("Measurement_Mode")
        if mode is not None and mode != (3 if self.is_t3 else 2):
            raise fail(self.path, f"Measurement_Mode {mode} contradicts record type 0x{self.rectype:08x} "
                                  f"({'T3' if self.is_t3 else 'T2'})")
        bits = tags.get("TTResultFormat_BitsPerRecord", 32)
        if bits not in (0, 32):
            raise fail(self.path, f"TTResultFormat_BitsPerRecord is {bits}, only 32-bit records are supported")
        self.global_res_ps = float(tags.get("MeasDesc_GlobalResolution", 0.0)) * 1e12
        self.res_ps = float(tags.get("MeasDesc_Resolution", 0.0)) * 1e12
        if not self.global_res_ps > 0 or (self.is_t3 and not self.res_ps > 0):
            raise fail(self.path, f"resolution tags missing or not positive (MeasDesc_GlobalResolution="
                                  f"{tags.get('MeasDesc_GlobalResolution')!r}, MeasDesc_Resolution="
                                  f"{tags.get('MeasDesc_Resolution')!r})")
        if not self.is_t3 and abs(self.global_res_ps - round(self.global_res_ps)) > 1e-6:
            raise fail(self.path, f"T2 global resolution {self.global_res_ps} ps is not a whole number of ps")
        self._offset = int(pf.record_offset)
        if "TTResult_NumberOfRecords" not in tags:
            raise fail(self.path, "header lacks TTResult_NumberOfRecords")
        n = int(tags["TTResult_NumberOfRecords"])
        size = os.path.getsize(self.path) - self._offset
        if n < 0:
            raise fail(self.path, f"TTResult_NumberOfRecords is {n}, not a record count")
        if size < 4 * n:
            raise fail(self.path, f"truncated: header says {n} records ({4 * n} octets), the file holds "
                                  f"{size} octets of records")
        if size > 4 * n + 4:
            raise fail(self.path, f"metadata contradicts data: header says {n} records, the file holds "
                                  f"{size // 4}")
        self.n_records = n
        if size > 4 * n:                  # tolerated, but not dropped unseen: reported with the gaps
            self.stats["corrupt_regions"].append({"kind": "trailing_octets", "record": n, "octets": size - 4 * n})
        meta = {}
        if META_TAG in tags:
            meta = meta_from_json(self.path, tags[META_TAG])
        meta.update(meta_overrides or {})
        if not meta:
            raise fail(self.path, f"no link parameters (tag {META_TAG} absent); give them with --param KEY=VALUE")
        self.meta = check_meta(self.path, meta, "timetags")
        self.stats.update(photons=0, overflows=0, markers=0, syncs=0, time_jumps=0, per_channel={})

    def _tag_chunks(self, n: int):
        wrap = _RECTYPES[self.rectype][1]
        ofl = 0                                          # overflow count carried into the chunk
        prev = None
        mono = MonotonicFilter()
        # T3: the photons of one sync period come as each channel delivers them, not by TCSPC delay:
        # re-sorted within two sync periods (T2 records are written in time order)
        reorder = ReorderWindow(int(np.ceil(2 * self.global_res_ps))) if self.is_t3 else None
        with open(self.path, "rb") as fh:
            fh.seek(self._offset)
            left = self.n_records
            while left > 0:
                m = min(n, left)
                raw = np.fromfile(fh, dtype="<u4", count=m)
                if raw.size < m:
                    raise fail(self.path, f"truncated: record {self.n_records - left + raw.size} missing")
                left -= m
                rec = raw.astype(np.uint32, copy=False)
                dec = self._pf.decode_records(rec)
                ov = _overflows(rec, self.rectype)
                base = ofl + np.cumsum(ov)                 # overflows up to and including each record
                sync = _syncs(rec, self.rectype)
                photon = (dec["channel"] >= 0) & ~sync
                # ptufile decodes each record (channel, dtime, markers, time field); the time base
                # is carried here across chunks (and ptufile 2026.2.6 takes V2 overflow counts
                # modulo 128, so the full count is applied from the raw records)
                field = dec["time"][photon].astype(np.int64) % wrap
                tt = base[photon] * wrap + field
                if self.is_t3:
                    t = np.floor(tt * self.global_res_ps + dec["dtime"][photon] * self.res_ps).astype(np.int64)
                else:
                    t = tt * int(round(self.global_res_ps))
                ofl = int(base[-1]) if base.size else ofl
                ch = dec["channel"][photon]
                start = self.stats["records"]
                self.stats["records"] += int(m)
                self.stats["overflows"] += int((ov > 0).sum())
                self.stats["markers"] += int(((dec["channel"] < 0) & (dec["marker"] > 0)).sum())
                self.stats["syncs"] += int(sync.sum())
                self._count_channels(ch)
                rec_idx = start + np.flatnonzero(photon)
                if reorder is not None:
                    t, rec_idx, ch = reorder.push(t, rec_idx, ch)
                prev = yield from self._emit(t, rec_idx, ch, mono, reorder, prev)
        if reorder is not None and (held := reorder.flush()):
            yield from self._emit(*held, mono, reorder, prev)

    def _emit(self, t, rec_idx, ch, mono, reorder, prev):
        """Tags in time order -> monotonic filter, time-jump reports, counters -> yield (t, ch).
        Returns the last tag time (None if none yet)."""
        keep = mono.keep(t)
        t, rec_idx, ch = t[keep], rec_idx[keep], ch[keep]
        self.stats["dropped_non_monotonic"] = mono.dropped + (reorder.dropped if reorder is not None else 0)
        if t.size:                                 # a corrupt overflow record: time leaps
            d = np.diff(t, prepend=t[0] if prev is None else prev)
            jumps = np.flatnonzero(d > JUMP_PS)
            self.stats["time_jumps"] += int(jumps.size)
            room = max(0, MAX_JUMPS_LISTED - len(self.stats["corrupt_regions"]))
            for i in jumps[:room].tolist():         # where the time leaps: record, tag time
                self.stats["corrupt_regions"].append(
                    {"kind": "time_jump", "record": int(rec_idx[i]), "t_ps": int(t[i]),
                     "jump_s": float(d[i]) * 1e-12})
            prev = int(t[-1])
        self.stats["photons"] += int(t.size)
        yield t, ch
        return prev

    def close(self) -> None:
        pf = getattr(self, "_pf", None)
        if pf is not None:
            pf.close()
            self._pf = None


# --------------------------------------------------------------------------------------------------
def _tag(ident: str, value, typ: int, index: int = -1) -> bytes:
    head = ident.encode("ascii").ljust(32, b"\0")
    if typ == _TY_ANSISTRING:
        s = value.encode("windows-1252") + b"\0"
        s = s.ljust(-(-len(s) // 8) * 8, b"\0")
        return head + struct.pack("<iIq", index, typ, len(s)) + s
    if typ in (_TY_FLOAT8, _TY_TDATETIME):
        return head + struct.pack("<iId", index, typ, float(value))
    return head + struct.pack("<iIq", index, typ, int(value or 0))


def encode_t2_generic(t_ps: np.ndarray, channel: np.ndarray) -> np.ndarray:
    """GenericT2 records (uint32) of time-sorted tags at 1 ps resolution (see the module docstring)."""
    t = np.asarray(t_ps, dtype=np.int64)
    ch = np.asarray(channel, dtype=np.int64)
    if t.size and (t[0] < 0 or np.any(np.diff(t) < 0)):
        raise ValueError("write_ptu_t2: t_ps must be >= 0 and non-decreasing")
    if ch.size and (ch.min() < 0 or ch.max() > 62):
        raise ValueError(f"write_ptu_t2: channels must be in 0..62, got {int(ch.min())}..{int(ch.max())}")
    base = t // T2_WRAP
    need = np.diff(np.concatenate([[0], base]))            # overflows to insert before each photon
    n_ov = -(-need // OVF_MAX)                              # records needed (each counts <= OVF_MAX)
    out = np.empty(int(t.size + n_ov.sum()), dtype=np.uint32)
    pos = np.arange(t.size) + np.cumsum(n_ov)               # index of each photon record
    out[pos] = ((ch << 25) | (t - base * T2_WRAP)).astype(np.uint32)
    ov_idx = np.flatnonzero(n_ov)
    for i in ov_idx:                                        # one per 33.5 us ... 4.3 ms of silence
        k = int(need[i])
        p = int(pos[i] - n_ov[i])
        while k > 0:
            c = min(k, OVF_MAX)
            out[p] = (1 << 31) | (63 << 25) | c
            p += 1
            k -= c
    return out


def write_ptu_t2(path, t_ps, channel, meta: dict | None = None, comment: str = "", chunk: int = 1 << 20) -> int:
    """Write time tags as a PicoQuant PTU file with GenericT2 records (1 ps resolution).

    Parameters
    ----------
    path : output file.
    t_ps : (n,) int64, non-decreasing, >= 0.   channel : (n,) integer detector ids 0..62.
    meta : link parameters stored as JSON in the ``Modem_LinkParams`` tag.
    Returns the number of records written.
    """
    meta = writable_meta(meta)
    t = np.asarray(t_ps, dtype=np.int64)
    ch = np.asarray(channel)
    if t.shape != ch.shape or t.ndim != 1:
        raise ValueError(f"write_ptu_t2: t_ps and channel must be 1-D of equal length, got {t.shape}, {ch.shape}")
    n_ch = int(ch.max()) + 1 if ch.size else 1
    now = _dt.datetime.now(_dt.timezone.utc).replace(tzinfo=None)
    days = (now - _dt.datetime(1899, 12, 30)).total_seconds() / 86400.0
    hdr = [PTU_MAGIC, b"1.0.00\0\0",
           _tag("File_GUID", f"{{{uuid.uuid4()}}}", _TY_ANSISTRING),
           _tag("File_CreatingTime", days, _TY_TDATETIME),
           _tag("File_Comment", comment, _TY_ANSISTRING),
           _tag("CreatorSW_Name", "modem.io.ptu", _TY_ANSISTRING),
           _tag("Measurement_Mode", 2, _TY_INT8),
           _tag("Measurement_SubMode", 0, _TY_INT8),
           _tag("TTResultFormat_TTTRRecType", RECTYPE_GENERIC_T2, _TY_INT8),
           _tag("TTResultFormat_BitsPerRecord", 32, _TY_INT8),
           _tag("MeasDesc_GlobalResolution", 1e-12, _TY_FLOAT8),
           _tag("MeasDesc_Resolution", 1e-12, _TY_FLOAT8),
           _tag("HW_InpChannels", n_ch + 1, _TY_INT8),
           _tag("TTResult_SyncRate", 0, _TY_INT8),
           _tag("TTResult_NumberOfRecords", 0, _TY_INT8)]
    if meta is not None:
        hdr.append(_tag(META_TAG, meta_to_json(meta), _TY_ANSISTRING))
    hdr.append(_tag("Header_End", None, _TY_EMPTY8))
    header = b"".join(hdr)
    n_off = header.find(b"TTResult_NumberOfRecords") + 40
    total = 0
    last = 0
    with open(path, "wb") as fh:
        fh.write(header)
        for a in range(0, max(t.size, 1), chunk):
            tc, cc = t[a:a + chunk], ch[a:a + chunk]
            if not tc.size:
                break
            # encode relative to the last written time base so overflows continue across chunks
            b0 = (last // T2_WRAP) * T2_WRAP
            if tc[0] < last:
                raise ValueError("write_ptu_t2: t_ps must be non-decreasing")
            rec = encode_t2_generic(tc - b0, cc)
            rec.tofile(fh)
            total += rec.size
            last = int(tc[-1])
        fh.seek(n_off)
        fh.write(struct.pack("<q", total))
    return total
