# SPDX-License-Identifier: Apache-2.0
"""SigMF recordings of APD and DPSK balanced-detector samples (``.sigmf-data`` + ``.sigmf-meta``).

The samples are real (one ADC channel): ``core:datatype`` ``rf32_le`` (float32, what the project
writes), ``rf64_le``, ``ri16_le`` or ``ri8`` (ADC codes; multiplied by ``modem:adc_lsb`` when
given). The modem's link parameters live in the global object as ``modem:<key>`` fields, declared
by the extension entry ``{"name": "modem", "version": "1.0.0", "optional": false}`` in
``core:extensions`` (``modem:chain`` is ``"scppm-apd"`` or ``"dpsk"``; the other keys are those of
the sample receiver's parameter dict, see ``modem.sample_receiver``; plus ``modem:n_samples``, the
sample count, and ``modem:adc_lsb`` for integer ADC codes). Bursts may be marked with
annotations labelled ``burst``. Files written here pass ``sigmf``'s schema validation.

Reading streams the data file through ``numpy.memmap``: ``chunks(n)`` yields float32 arrays of at
most ``n`` samples.
"""
from __future__ import annotations

import json
import os

import numpy as np

from .base import Capture, fail

__all__ = ["SigMFCapture", "write_sigmf", "MODEM_EXTENSION", "sigmf_pair"]

MODEM_EXTENSION = {"name": "modem", "version": "1.0.0", "optional": False}
_DTYPES = {"rf32_le": "<f4", "rf64_le": "<f8", "ri16_le": "<i2", "ri8": "i1", "ri32_le": "<i4"}


def sigmf_pair(path) -> tuple[str, str]:
    """(meta path, data path) of a SigMF recording given either file or the common stem."""
    p = os.fspath(path)
    for ext in (".sigmf-meta", ".sigmf-data", ".sigmf"):
        if p.endswith(ext):
            p = p[: -len(ext)]
            break
    return p + ".sigmf-meta", p + ".sigmf-data"


def write_sigmf(path, samples, meta: dict, sample_rate: float, description: str = "",
                annotations: list | None = None, adc_lsb: float | None = None) -> str:
    """Write float32 samples and link parameters as a validated SigMF recording.

    Parameters
    ----------
    path : stem or either file name of the pair.   samples : (n,) real samples (stored rf32_le).
    meta : link parameters (``chain`` required), stored as ``modem:<key>`` global fields.
    sample_rate : samples per second.   annotations : ``[(start, count, {"core:label": ...}), ...]``.
    adc_lsb : when given, the samples are ADC codes times ``adc_lsb``; they are stored as ``ri16_le``
        codes (``round(x / adc_lsb)``, must fit int16) with ``modem:adc_lsb``.
    Returns the meta file path. Raises ``jsonschema``'s ValidationError if the result is not valid.
    """
    import sigmf  # noqa: PLC0415
    from sigmf import SigMFFile  # noqa: PLC0415
    x = np.asarray(samples)
    if x.ndim != 1:
        raise ValueError(f"write_sigmf: samples must be 1-D, got shape {x.shape}")
    meta = dict(meta)
    if adc_lsb is not None:
        codes = np.round(x / adc_lsb)
        if codes.size and (codes.min() < -32768 or codes.max() > 32767):
            raise ValueError("write_sigmf: ADC codes do not fit int16")
        if codes.size and codes.min() >= -128 and codes.max() <= 127:
            x, dt = codes.astype("i1"), "ri8"
        else:
            x, dt = codes.astype("<i2"), "ri16_le"
        meta["adc_lsb"] = float(adc_lsb)
    else:
        x, dt = x.astype("<f4"), "rf32_le"
    meta["n_samples"] = int(x.size)
    meta_path, data_path = sigmf_pair(path)
    x.tofile(data_path)
    info = {sigmf.DATATYPE_KEY: dt, sigmf.SAMPLE_RATE_KEY: float(sample_rate),
            sigmf.DESCRIPTION_KEY: description or "modem capture", sigmf.EXTENSIONS_KEY: [dict(MODEM_EXTENSION)],
            "core:recorder": "modem capture generate"}
    for k, v in meta.items():
        if v is not None:
            info["modem:" + k] = v
    f = SigMFFile(data_file=data_path, global_info=info)
    f.add_capture(0, metadata={})
    for start, count, md in annotations or []:
        f.add_annotation(int(start), int(count), metadata=dict(md))
    f.validate()
    f.tofile(meta_path, overwrite=True)
    return meta_path


class SigMFCapture(Capture):
    """A SigMF recording of real detector samples (see the module docstring)."""

    kind = "samples"
    format = "sigmf"

    def __init__(self, path, meta_overrides: dict | None = None):
        meta_path, data_path = sigmf_pair(path)
        super().__init__(meta_path)
        self.data_path = data_path
        for p in (meta_path, data_path):
            if not os.path.isfile(p):
                raise fail(p, "no such file (a SigMF recording needs both .sigmf-meta and .sigmf-data)")
        try:
            with open(meta_path, "rb") as fh:
                doc = json.loads(fh.read().decode("utf-8"))
        except (ValueError, UnicodeDecodeError) as exc:
            raise fail(meta_path, f"not a SigMF metadata file (invalid JSON: {exc})") from exc
        if not isinstance(doc, dict) or not isinstance(doc.get("global"), dict):
            raise fail(meta_path, "not a SigMF metadata file (no 'global' object)")
        try:
            from sigmf import validate as sv  # noqa: PLC0415
            from sigmf.schema import get_schema  # noqa: PLC0415
            sv.validate(doc, get_schema())
        except ImportError:             # pragma: no cover - sigmf is a declared dependency
            pass
        except Exception as exc:        # jsonschema.ValidationError and friends
            first = str(exc).splitlines()[0]
            raise fail(meta_path, f"SigMF metadata fails validation: {first}") from exc
        g = doc["global"]
        dt = g.get("core:datatype")
        if dt not in _DTYPES:
            raise fail(meta_path, f"unknown datatype core:datatype={dt!r} (supported: {', '.join(_DTYPES)}; "
                                  f"samples must be real, one channel)")
        if int(g.get("core:num_channels", 1)) != 1:
            raise fail(meta_path, f"core:num_channels={g.get('core:num_channels')}, only 1 is supported")
        self.dtype = np.dtype(_DTYPES[dt])
        header = self._header_bytes(meta_path, doc)
        size = os.path.getsize(data_path) - header
        if size < 0:
            raise fail(data_path, f"truncated: {size + header} octets, shorter than core:header_bytes={header}")
        if size % self.dtype.itemsize:
            raise fail(data_path, f"truncated: {size} octets is not a whole number of {dt} samples")
        self.n_records = size // self.dtype.itemsize
        ann_end = max((int(a.get("core:sample_start", 0)) + int(a.get("core:sample_count", 0))
                       for a in doc.get("annotations", [])), default=0)
        declared = g.get("modem:n_samples")
        if declared is not None and (isinstance(declared, bool) or not isinstance(declared, (int, float))
                                     or not float(declared).is_integer() or declared < 0):
            raise fail(meta_path, f"modem:n_samples must be a non-negative integer, got {declared!r}")
        if declared is not None and int(declared) != self.n_records:
            raise fail(meta_path, f"metadata contradicts data: modem:n_samples={declared}, the data file holds "
                                  f"{self.n_records} samples")
        if ann_end > self.n_records:
            raise fail(meta_path, f"metadata contradicts data: annotations reach sample {ann_end}, the data "
                                  f"file holds {self.n_records} (truncated?)")
        exts = [e.get("name") for e in g.get("core:extensions", []) if isinstance(e, dict)]
        meta = {k[len("modem:"):]: v for k, v in g.items() if k.startswith("modem:")}
        if meta and "modem" not in exts:
            raise fail(meta_path, "modem: fields present but the 'modem' extension is not declared in "
                                  "core:extensions")
        meta.update(meta_overrides or {})
        if meta.get("chain") not in ("scppm-apd", "dpsk"):
            raise fail(meta_path, f"link parameter modem:chain must be 'scppm-apd' or 'dpsk', got "
                                  f"{meta.get('chain')!r}")
        self.meta = meta
        self.sample_rate = float(g.get("core:sample_rate", 0.0) or 0.0)
        self.annotations = doc.get("annotations", [])
        self._header = header
        self._lsb = 1.0
        if self.dtype.kind == "i" and "adc_lsb" in meta:
            lsb = meta["adc_lsb"]
            if isinstance(lsb, bool) or not isinstance(lsb, (int, float)) or not np.isfinite(lsb) or lsb <= 0:
                raise fail(meta_path, f"modem:adc_lsb must be a positive finite number, got {lsb!r}")
            self._lsb = float(lsb)
        self.stats.update(samples=0, clipped=0, mean=0.0, mean_square=0.0)

    @staticmethod
    def _header_bytes(meta_path, doc) -> int:
        """Octets before the first sample: ``core:header_bytes`` of the first capture segment (where
        SigMF puts it; also accepted in the global object). Header bytes in a later segment (inside
        the sample stream) are refused, naming the segment."""
        caps = doc.get("captures") or [{}]
        header = caps[0].get("core:header_bytes", doc["global"].get("core:header_bytes", 0)) or 0
        for i, c in enumerate(caps[1:], 1):
            if c.get("core:header_bytes"):
                raise fail(meta_path, f"core:header_bytes={c['core:header_bytes']} in capture segment {i} (sample "
                                      f"{c.get('core:sample_start')}): header octets inside the data are not supported")
        if isinstance(header, bool) or not isinstance(header, int) or header < 0:
            raise fail(meta_path, f"core:header_bytes must be a non-negative integer, got {header!r}")
        return header

    def chunks(self, n: int = 1 << 20):
        n = self._check_n(n)
        if self.n_records == 0:
            return
        mm = np.memmap(self.data_path, dtype=self.dtype, mode="r", offset=self._header, shape=(self.n_records,))
        s1 = s2 = 0.0
        try:
            for a in range(0, self.n_records, n):
                x = np.asarray(mm[a:a + n], dtype=np.float32)
                if self._lsb != 1.0:
                    x = x * np.float32(self._lsb)
                bad = ~np.isfinite(x)
                if bad.any():                      # a corrupt region: NaN/inf samples become 0
                    self.stats["corrupt_regions"].append({"start": a + int(np.flatnonzero(bad)[0]),
                                                          "samples": int(bad.sum())})
                    x = np.where(bad, np.float32(0), x)
                s1 += float(x.sum(dtype=np.float64))
                s2 += float(np.square(x, dtype=np.float64).sum())
                self.stats["records"] += int(x.size)
                self.stats["samples"] += int(x.size)
                self.stats["mean"] = s1 / self.stats["samples"]
                self.stats["mean_square"] = s2 / self.stats["samples"]
                yield x
        finally:
            del mm
