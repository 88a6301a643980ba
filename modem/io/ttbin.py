# SPDX-License-Identifier: Apache-2.0
"""Swabian Instruments Time Tagger ``.ttbin`` files, read through the vendor's ``TimeTagger``
Python module (an optional extra: install Swabian's Time Tagger software; this module imports it
lazily and raises :class:`~modem.errors.CaptureFormatError` naming the file when it is absent).

``TimeTagger.FileReader(path)`` streams the file: ``getData(n)`` returns at most ``n`` events whose
``getTimestamps()`` are int64 ps and ``getChannels()`` the (signed) channel numbers; ``getEventTypes()``
marks overflow/error events, which are counted and skipped. A ``.ttbin`` file cannot carry the
modem's link parameters, so they come from a side file ``<file>.modem.json`` (a JSON object) or
from ``meta_overrides`` (``modem decode --param KEY=VALUE``).
"""
from __future__ import annotations

import numpy as np

from .base import SIDE_FILE_SUFFIX, Capture, MonotonicFilter, check_meta, fail, side_file_meta

__all__ = ["TTBinCapture", "SIDE_FILE_SUFFIX"]


class TTBinCapture(Capture):
    kind = "timetags"
    format = "ttbin"

    def __init__(self, path, meta_overrides: dict | None = None):
        super().__init__(path)
        self.meta = check_meta(self.path, side_file_meta(self.path, meta_overrides), "timetags")
        try:
            import TimeTagger  # noqa: PLC0415
        except ImportError as exc:
            raise fail(self.path, "reading .ttbin needs Swabian Instruments' TimeTagger Python module, which is "
                                  "not installed (install the Time Tagger software or convert the file to "
                                  "HDF5/PTU)") from exc
        self._tt = TimeTagger
        try:
            self._reader = TimeTagger.FileReader(self.path)
        except Exception as exc:  # the vendor module raises its own types
            raise fail(self.path, f"TimeTagger.FileReader cannot read it ({exc})") from exc
        self.stats.update(photons=0, per_channel={}, overflow_events=0)

    def _tag_chunks(self, n: int):
        mono = MonotonicFilter()
        while self._reader.hasData():
            buf = self._reader.getData(n)
            t = np.asarray(buf.getTimestamps(), dtype=np.int64)
            ch = np.asarray(buf.getChannels())
            ok = np.ones(t.size, bool)
            if hasattr(buf, "getEventTypes"):
                et = np.asarray(buf.getEventTypes())
                ok = et == 0                                  # 0 = TimeTag, others overflow/error/missed
                self.stats["overflow_events"] += int((~ok).sum())
            t, ch = t[ok], ch[ok]
            self.stats["records"] += int(ok.size)
            self._count_channels(ch)
            keep = mono.keep(t)
            t, ch = t[keep], ch[keep]
            self.stats["dropped_non_monotonic"] = mono.dropped
            self.stats["photons"] += int(t.size)
            yield t, ch

    def close(self) -> None:
        self._reader = None
