# SPDX-License-Identifier: Apache-2.0
"""Capture file formats: recorded passes in, time-tag or sample chunks plus link parameters out.

``open_capture(path)`` detects the format from the magic bytes (PTU ``PQTTTR``, HDF5) or the
extension (``.sigmf-meta``/``.sigmf-data``, ``.ttbin``) and returns a :class:`Capture` (a context
manager): ``.kind`` ``"timetags"`` (chunks of int64 ps, merged over channels, time-sorted) or
``"samples"`` (chunks of float32), ``.meta`` the link parameters, ``.chunks(n)`` streaming at most
``n`` records per chunk. Swabian Time Tagger raw tag streams are read from ``.dump`` files without
the vendor software (:mod:`modem.io.swabian`). Every problem with a file raises :class:`~modem.errors.CaptureFormatError`
with one line ``"<path>: <problem>"``.

Writers: :func:`write_timetags_hdf5` (the canonical time-tag format), :func:`write_ptu_t2`
(PicoQuant PTU, GenericT2 records), :func:`write_sigmf` (samples).
"""
from __future__ import annotations

import os

from ..errors import CaptureFormatError
from .base import Capture, check_meta, fail
from .hdf5 import HDF5_MAGIC, HDF5Capture, write_timetags_hdf5
from .ptu import PTU_MAGIC, PTUCapture, write_ptu_t2
from .sigmf_io import SigMFCapture, sigmf_pair, write_sigmf
from .swabian import SwabianDumpCapture, write_swabian_dump
from .ttbin import TTBinCapture

__all__ = ["open_capture", "detect_format", "Capture", "CaptureFormatError", "check_meta",
           "HDF5Capture", "PTUCapture", "SigMFCapture", "SwabianDumpCapture", "TTBinCapture",
           "write_timetags_hdf5", "write_ptu_t2", "write_sigmf", "write_swabian_dump", "sigmf_pair"]

_EXPECTED = {".ptu": ("PTU", PTU_MAGIC), ".h5": ("HDF5", HDF5_MAGIC), ".hdf5": ("HDF5", HDF5_MAGIC),
             ".hdf": ("HDF5", HDF5_MAGIC)}


def detect_format(path) -> str:
    """``"ptu"``, ``"hdf5"``, ``"sigmf"``, ``"ttbin"`` or ``"swabian-dump"`` (CaptureFormatError when
    none fits)."""
    p = os.fspath(path)
    if p.endswith((".sigmf-meta", ".sigmf-data")):
        meta, data = sigmf_pair(p)
        if not os.path.exists(meta) and not os.path.exists(data):
            raise fail(p, "no such file")
        return "sigmf"
    if not os.path.exists(p):
        if os.path.exists(sigmf_pair(p)[0]):
            return "sigmf"
        raise fail(p, "no such file")
    if os.path.isdir(p):
        raise fail(p, "is a directory, not a capture file")
    if p.endswith(".ttbin"):
        return "ttbin"
    if p.endswith(".dump"):
        return "swabian-dump"
    try:
        with open(p, "rb") as fh:
            magic = fh.read(8)
    except OSError as exc:
        raise fail(p, f"cannot read ({exc.strerror})") from exc
    if magic == PTU_MAGIC:
        return "ptu"
    if magic == HDF5_MAGIC:
        return "hdf5"
    ext = os.path.splitext(p)[1].lower()
    if len(magic) < 8:
        raise fail(p, f"truncated: {len(magic)} octets, too short for any capture format")
    if ext in _EXPECTED:
        name, want = _EXPECTED[ext]
        raise fail(p, f"wrong magic for a {name} file: expected {want!r}, found {magic!r}")
    raise fail(p, f"unknown capture format (magic {magic!r}; expected PTU, HDF5, SigMF, .ttbin or .dump)")


def open_capture(path, meta_overrides: dict | None = None) -> Capture:
    """Open a capture for streaming (see the module docstring).

    Parameters
    ----------
    path : capture file (for SigMF either file of the pair, or their stem).
    meta_overrides : link parameters that replace / complete the file's (e.g. for a PTU file
        recorded by other software, which carries none).
    """
    fmt = detect_format(path)
    cls = {"ptu": PTUCapture, "hdf5": HDF5Capture, "sigmf": SigMFCapture, "ttbin": TTBinCapture,
           "swabian-dump": SwabianDumpCapture}[fmt]
    return cls(path, meta_overrides)
