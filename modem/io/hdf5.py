# SPDX-License-Identifier: Apache-2.0
"""The project's canonical time-tag capture: HDF5 modelled on Photon-HDF5's ``photon_data``.

Layout (``h5py``)::

    /                                  attrs: format_name = "modem-photon-hdf5", format_version = "1.0",
                                              n_photons (int), description
    /photon_data/timestamps            int64 (n,), non-decreasing, all detectors merged
    /photon_data/timestamps_specs/timestamps_unit   float64 scalar, seconds per timestamp unit (1e-12)
    /photon_data/detectors             int16 (n,), detector channel id of each timestamp
    /modem_link                        group; its attributes are the link parameters (chain, M, rate,
                                       slot_width_ps, ns, nb, frame_len, scid, vcid, ...; a
                                       dict, e.g. channel_delays_ps, as a JSON string)

Datasets are chunked (16384 elements) with shuffle + gzip and the Fletcher-32 checksum filter, so
a corrupt region of the file is detected per chunk: the reader skips the tags of the records in
that chunk (of either dataset, whatever their chunk sizes), records the region in
``stats['corrupt_regions']`` (adjacent failing chunks of one dataset as one region, the same list
for every read size) and goes on (every tag outside it is still delivered).
"""
from __future__ import annotations

import json

import numpy as np

from .base import Capture, MonotonicFilter, check_meta, fail, writable_meta

__all__ = ["HDF5Capture", "write_timetags_hdf5", "HDF5_MAGIC", "FORMAT_NAME"]

HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
FORMAT_NAME = "modem-photon-hdf5"
H5_CHUNK = 16384


def _attr_value(v):
    if isinstance(v, bytes):
        return v.decode()
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, np.ndarray):
        return v.tolist()
    return v


def write_timetags_hdf5(path, t_ps, channel, meta: dict, description: str = "") -> None:
    """Write time tags (int64 ps, non-decreasing; channel ids) and link parameters (see module)."""
    import h5py  # noqa: PLC0415
    t = np.asarray(t_ps, dtype=np.int64)
    ch = np.asarray(channel, dtype=np.int16)
    if t.ndim != 1 or t.shape != ch.shape:
        raise ValueError(f"write_timetags_hdf5: t_ps and channel must be 1-D of equal length, got {t.shape}, "
                         f"{ch.shape}")
    if t.size and np.any(np.diff(t) < 0):
        raise ValueError("write_timetags_hdf5: t_ps must be non-decreasing")
    meta = writable_meta(meta)
    opts = dict(chunks=(min(H5_CHUNK, max(t.size, 1)),), compression="gzip", compression_opts=4,
                shuffle=True, fletcher32=True, maxshape=(None,))
    with h5py.File(path, "w") as f:
        f.attrs["format_name"] = FORMAT_NAME
        f.attrs["format_version"] = "1.0"
        f.attrs["n_photons"] = int(t.size)
        f.attrs["description"] = description
        pd = f.create_group("photon_data")
        pd.create_dataset("timestamps", data=t, **opts)
        pd.create_dataset("detectors", data=ch, **opts)
        pd.create_group("timestamps_specs").create_dataset("timestamps_unit", data=1e-12)
        g = f.create_group("modem_link")
        for k, v in meta.items():
            if v is None:
                continue
            g.attrs[k] = json.dumps(v, sort_keys=True) if isinstance(v, dict) else v   # e.g. channel_delays_ps


class HDF5Capture(Capture):
    """Reader of :func:`write_timetags_hdf5` files (and Photon-HDF5-like files with ``modem_link``)."""

    kind = "timetags"
    format = "hdf5"

    def __init__(self, path, meta_overrides: dict | None = None):
        super().__init__(path)
        import h5py  # noqa: PLC0415
        try:
            self._f = h5py.File(self.path, "r")
        except OSError as exc:
            msg = str(exc).splitlines()[0]
            raise fail(self.path, f"not a readable HDF5 file, truncated or corrupt ({msg})") from exc
        try:
            self._open(meta_overrides)
        except BaseException:
            self.close()
            raise

    def _open(self, meta_overrides):
        f = self._f
        for name in ("photon_data/timestamps", "photon_data/detectors"):
            if name not in f:
                raise fail(self.path, f"no dataset /{name} (not a {FORMAT_NAME} capture)")
        ts, det = f["photon_data/timestamps"], f["photon_data/detectors"]
        for ds in (ts, det):
            if ds.ndim != 1 or ds.dtype.kind not in "iu":
                raise fail(self.path, f"unknown datatype: {ds.name} must be 1-D integer, got {ds.dtype} "
                                      f"shape {ds.shape}")
        if ts.shape != det.shape:
            raise fail(self.path, f"metadata contradicts data: {ts.shape[0]} timestamps but {det.shape[0]} "
                                  f"detector ids")
        n_attr = _attr_value(f.attrs.get("n_photons"))
        if n_attr is not None and (isinstance(n_attr, bool) or not isinstance(n_attr, int)):
            raise fail(self.path, f"n_photons attribute must be an integer, got {n_attr!r}")
        if n_attr is not None and int(n_attr) != ts.shape[0]:
            raise fail(self.path, f"metadata contradicts data: n_photons attribute is {int(n_attr)}, "
                                  f"/photon_data/timestamps holds {ts.shape[0]}")
        try:
            unit = f["photon_data/timestamps_specs/timestamps_unit"][()]
        except KeyError as exc:
            raise fail(self.path, "no /photon_data/timestamps_specs/timestamps_unit") from exc
        if isinstance(unit, (bool, np.bool_)) or not isinstance(unit, (int, float, np.integer, np.floating)):
            raise fail(self.path, f"timestamps_unit must be a number of seconds, got {unit!r}")
        unit = float(unit)
        scale = unit * 1e12
        if not scale > 0 or abs(scale - round(scale)) > 1e-6 or round(scale) < 1:
            raise fail(self.path, f"timestamps_unit {unit!r} s is not a whole number of picoseconds")
        self._scale = int(round(scale))
        meta = {k: _attr_value(v) for k, v in f["modem_link"].attrs.items()} if "modem_link" in f else {}
        meta.update(meta_overrides or {})
        if not meta:
            raise fail(self.path, "no link parameters (/modem_link attributes); give them with --param KEY=VALUE")
        self.meta = check_meta(self.path, meta, "timetags")
        self.n_records = int(ts.shape[0])
        self.stats.update(photons=0, per_channel={})

    def _read(self, ds, a: int, b: int):
        """(ds[a:b], bad): ``bad`` None when every element read, else an (b - a,) bool mask of the
        elements in HDF5 chunks that fail their checksum (recorded as corrupt regions, adjacent
        ones merged, so the list does not depend on the read size)."""
        try:
            return ds[a:b], None
        except OSError:
            pass
        x = np.zeros(b - a, ds.dtype)
        bad = np.zeros(b - a, bool)
        c = ds.chunks[0] if ds.chunks else (b - a)
        i = a
        while i < b:
            j = min(b, (i // c + 1) * c)
            try:
                x[i - a:j - a] = ds[i:j]
            except OSError:
                bad[i - a:j - a] = True
                last = [r for r in self.stats["corrupt_regions"] if r.get("dataset") == ds.name][-1:]
                if last and last[0]["stop"] == i:
                    last[0]["stop"] = j
                else:
                    self.stats["corrupt_regions"].append({"dataset": ds.name, "start": i, "stop": j})
            i = j
        return x, bad

    def _tag_chunks(self, n: int):
        ts, det = self._f["photon_data/timestamps"], self._f["photon_data/detectors"]
        mono = MonotonicFilter()
        c = ts.chunks[0] if ts.chunks else n
        step = n if n < c else (n // c) * c               # whole HDF5 chunks per read when n allows
        for a in range(0, self.n_records, step):
            b = min(self.n_records, a + step)
            (t, bad_t), (d, bad_d) = self._read(ts, a, b), self._read(det, a, b)
            if bad_t is not None or bad_d is not None:      # drop the tags of corrupt chunks
                keep = ~((bad_t if bad_t is not None else False) | (bad_d if bad_d is not None else False))
                t, d = t[keep], d[keep]
            self.stats["records"] += b - a
            self._count_channels(d)
            t = t.astype(np.int64, copy=False)
            if self._scale != 1:
                t = t * self._scale
            keep = mono.keep(t)
            t, d = t[keep], d[keep]
            self.stats["dropped_non_monotonic"] = mono.dropped
            self.stats["photons"] += int(t.size)
            yield t, d

    def close(self) -> None:
        f = getattr(self, "_f", None)
        if f is not None:
            f.close()
            self._f = None
