# SPDX-License-Identifier: Apache-2.0
"""Swabian Instruments Time Tagger raw tag streams (``.dump``): read without the vendor software.

A Time Tagger hands its tags to software as a stream of 16-octet ``Tag`` records (the layout of
``struct Tag`` in Swabian's C++ API, written to disk as they are by the ``Dump`` measurement and
by custom measurements), little-endian:

======  ======  =================================================================================
octets  type    field
======  ======  =================================================================================
0       uint8   type: 0 time tag, 1 error, 2 overflow begin, 3 overflow end, 4 missed events
1       uint8   reserved (0)
2..3    uint16  missed events (type 4: tags of ``channel`` the tagger could not transfer)
4..7    int32   channel (negative numbers: falling edges)
8..15   int64   time, ps
======  ======  =================================================================================

Reading: every type-0 record is a photon. Tags the tagger lost are accounted for, never silent:
an overflow (the tagger's buffer full: every tag between ``overflow begin`` and ``overflow end``
lost) is listed in ``stats['overflow_intervals']`` ([begin, end] ps) and counted in
``stats['overflows']``, missed events are summed in ``stats['missed_events']``, error records
counted in ``stats['errors']`` and listed as corrupt regions. A record with an unknown type or a
non-zero reserved octet is garbage (a corrupt region of the file): it is skipped, counted in
``stats['bad_records']`` and listed in ``stats['corrupt_regions']`` (runs of them as one region);
a file whose size is not a whole number of records has its partial last record listed there too.
Every record carries its absolute time, so a garbled time field would, going forward, make every
later tag look as if it went backwards: a tag later than the (lower) median of the next
``SPIKE_WINDOW`` tags is dropped (:class:`SpikeFilter`, counted in ``stats['dropped_spikes']``),
then tags going backwards are dropped and counted (``MonotonicFilter``); both give the same tags
whatever the chunk size.

The file carries no link parameters: they come from a side file ``<file>.modem.json`` (a JSON
object) or from ``meta_overrides`` (``modem decode --param KEY=VALUE``), as for ``.ttbin``.
:func:`write_swabian_dump` writes such a file (tests, converters).
"""
from __future__ import annotations

import json
import os

import numpy as np

from .base import SIDE_FILE_SUFFIX, Capture, MonotonicFilter, check_meta, fail, side_file_meta

__all__ = ["SwabianDumpCapture", "write_swabian_dump", "TAG_DTYPE"]

#: one ``struct Tag`` record
TAG_DTYPE = np.dtype([("type", "u1"), ("reserved", "u1"), ("missed", "<u2"), ("channel", "<i4"), ("time", "<i8")])
TIME_TAG, ERROR, OVERFLOW_BEGIN, OVERFLOW_END, MISSED_EVENTS = range(5)
#: overflow intervals and corrupt regions listed (all are counted)
MAX_LISTED = 64
#: tags of look-ahead of the spike filter
SPIKE_WINDOW = 8


class SpikeFilter:
    """Drops tags whose time is later than the median of the next ``window`` tags' (a garbled time
    field of an absolute-time record), streaming: ``push(t, ch)`` holds back the last ``window``
    tags until the next chunk, ``flush()`` decides them with the look-ahead left. "Median" is
    the lower median, an integer. Runs of fewer
    than ``window / 2`` garbled tags are removed; a stream that really is non-decreasing passes
    untouched."""

    def __init__(self, window: int = SPIKE_WINDOW):
        self.window = int(window)
        self._t = np.zeros(0, np.int64)
        self._ch = np.zeros(0, np.int64)
        self.dropped = 0

    def push(self, t, ch):
        if np.shape(t) != np.shape(ch) or np.ndim(t) != 1:
            raise ValueError(f"SpikeFilter.push: t and ch must be 1-D of one length, got {np.shape(t)}, {np.shape(ch)}")
        u = np.concatenate([self._t, np.asarray(t, np.int64)])
        c = np.concatenate([self._ch, np.asarray(ch, np.int64)])
        m = u.size - self.window                  # tags with a full look-ahead
        if m <= 0:
            self._t, self._ch = u, c
            return u[:0], c[:0]
        ahead = np.lib.stride_tricks.sliding_window_view(u[1:], self.window)[:m]
        k = (self.window - 1) // 2               # the lower median, in integers (exact for any ps)
        keep = u[:m] <= np.partition(ahead, k, axis=1)[:, k]
        self.dropped += int(m - keep.sum())
        self._t, self._ch = u[m:], c[m:]
        return u[:m][keep], c[:m][keep]

    def flush(self):
        u, c = self._t, self._ch
        keep = np.ones(u.size, bool)
        for j in range(u.size - 1):               # the look-ahead that is left
            rest = np.sort(u[j + 1:])
            keep[j] = u[j] <= rest[(rest.size - 1) // 2]
        self.dropped += int(u.size - keep.sum())
        self._t, self._ch = u[:0], c[:0]
        return u[keep], c[keep]


class SwabianDumpCapture(Capture):
    """Reader of Time Tagger raw tag streams (see the module docstring)."""

    kind = "timetags"
    format = "swabian-dump"

    def __init__(self, path, meta_overrides: dict | None = None):
        super().__init__(path)
        self.meta = check_meta(self.path, side_file_meta(self.path, meta_overrides), "timetags")
        try:
            size = os.path.getsize(self.path)
        except OSError as exc:
            raise fail(self.path, f"cannot read ({exc.strerror})") from exc
        self.n_records = size // TAG_DTYPE.itemsize
        self._partial = size % TAG_DTYPE.itemsize
        self.stats.update(photons=0, per_channel={}, overflows=0, overflow_intervals=[], missed_events=0,
                          errors=0, bad_records=0, dropped_spikes=0)

    def _region(self, kind: str, start: int, stop: int, **info) -> None:
        """List a corrupt region (records [start, stop)), merged with the last one when adjacent."""
        regions = self.stats["corrupt_regions"]
        last = regions[-1] if regions else None
        if last is not None and last["kind"] == kind and last["stop"] == start:
            last["stop"] = stop
        elif len(regions) < MAX_LISTED:
            regions.append({"kind": kind, "start": start, "stop": stop, **info})

    def _tag_chunks(self, n: int):
        mono = MonotonicFilter()
        spikes = SpikeFilter()

        def clean(t, ch):
            keep = mono.keep(t)
            self.stats["dropped_non_monotonic"] = mono.dropped
            self.stats["dropped_spikes"] = spikes.dropped
            self.stats["photons"] += int(keep.sum())
            return t[keep], ch[keep]

        open_overflow = None                   # time of an overflow begin not yet ended
        with open(self.path, "rb") as fh:
            done = 0
            while done < self.n_records:
                rec = np.fromfile(fh, dtype=TAG_DTYPE, count=min(n, self.n_records - done))
                if rec.size == 0:
                    raise fail(self.path, f"truncated while reading: record {done} missing")
                typ = rec["type"]
                bad = (typ > MISSED_EVENTS) | (rec["reserved"] != 0)
                if bad.any():                   # runs of garbage records, one region each
                    edges = np.flatnonzero(np.diff(np.concatenate([[0], bad.view(np.int8), [0]])))
                    for a, b in zip(edges[::2].tolist(), edges[1::2].tolist()):
                        self._region("bad_record", done + a, done + b)
                self.stats["bad_records"] += int(bad.sum())
                ok = ~bad
                for i in np.flatnonzero(ok & (typ == ERROR)).tolist():
                    self._region("error", done + i, done + i + 1, t_ps=int(rec["time"][i]))
                self.stats["errors"] += int((ok & (typ == ERROR)).sum())
                missed = ok & (typ == MISSED_EVENTS)
                self.stats["missed_events"] += int(rec["missed"][missed].astype(np.int64).sum())
                for i in np.flatnonzero(ok & ((typ == OVERFLOW_BEGIN) | (typ == OVERFLOW_END))).tolist():
                    t_i = int(rec["time"][i])
                    if typ[i] == OVERFLOW_BEGIN:
                        self.stats["overflows"] += 1
                        open_overflow = t_i
                    else:
                        self._overflow(open_overflow, t_i)
                        open_overflow = None
                photon = ok & (typ == TIME_TAG)
                t = rec["time"][photon].astype(np.int64)
                ch = rec["channel"][photon].astype(np.int64)
                self.stats["records"] += int(rec.size)
                self._count_channels(ch)
                done += int(rec.size)
                yield clean(*spikes.push(t, ch))
        if open_overflow is not None:          # the stream ended inside an overflow
            self._overflow(open_overflow, None)
        if self._partial:
            self._region("truncated_record", self.n_records, self.n_records + 1, octets=self._partial)
        yield clean(*spikes.flush())

    def _overflow(self, begin, end) -> None:
        if begin is None:                      # an end without its begin (the begin was garbage)
            self.stats["overflows"] += 1
        if len(self.stats["overflow_intervals"]) < MAX_LISTED:
            self.stats["overflow_intervals"].append([begin, end])


def write_swabian_dump(path, t_ps, channel, meta: dict | None = None, extra: np.ndarray | None = None) -> int:
    """Write time tags as a raw ``struct Tag`` stream (type 0 records), and ``meta`` as the side file
    ``<path>.modem.json`` when given; ``extra`` (records of ``TAG_DTYPE``) are merged in by time
    (overflows, missed events, ...). Returns the number of records written.

    t_ps : (n,) int64 non-decreasing.   channel : (n,) integer channel ids (int32 range).
    """
    t = np.asarray(t_ps, dtype=np.int64)
    ch = np.asarray(channel)
    if t.ndim != 1 or ch.shape != t.shape:
        raise ValueError(f"write_swabian_dump: t_ps and channel must be 1-D of one length, got {t.shape}, {ch.shape}")
    if t.size and np.any(np.diff(t) < 0):
        raise ValueError("write_swabian_dump: t_ps must be non-decreasing")
    if ch.size and (ch.min() < -2 ** 31 or ch.max() >= 2 ** 31):
        raise ValueError("write_swabian_dump: channel ids must fit int32")
    rec = np.zeros(t.size, TAG_DTYPE)
    rec["time"], rec["channel"] = t, ch
    if extra is not None:
        rec = np.concatenate([rec, np.asarray(extra, TAG_DTYPE)])
        rec = rec[np.argsort(rec["time"], kind="stable")]
    rec.tofile(os.fspath(path))
    if meta is not None:
        with open(os.fspath(path) + SIDE_FILE_SUFFIX, "w") as fh:
            json.dump(meta, fh, sort_keys=True, default=float)
    return int(rec.size)
