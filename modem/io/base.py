# SPDX-License-Identifier: Apache-2.0
"""The :class:`Capture` interface every capture reader implements, and helpers shared by them.

A capture is a recorded pass: SNSPD photon time tags (``kind == "timetags"``) or detector samples
(``kind == "samples"``), plus the link parameters the receiver needs (``meta``). Readers stream:
``chunks(n)`` reads at most ``n`` records (time tags) or samples per step, so memory stays bounded
whatever the file size.

Time-tag chunks are 1-D int64 picoseconds, all detector channels merged, non-decreasing across
the whole capture (a reader drops, and counts in ``stats['dropped_non_monotonic']``, tags that a
corrupt region would otherwise make go backwards). When the link parameters carry a delay table
``channel_delays_ps`` (``{channel: ps}``, the cable delays of an SNSPD array), ``chunks`` returns
the tags compensated, ``t - d[channel]``, re-sorted (:class:`~modem.sync.deskew.ChannelDeskew`:
the same tags whatever ``n``); ``tagged_chunks`` gives the raw tags with their channel ids.
Sample chunks are 1-D float32.

Every problem with a file raises :class:`~modem.errors.CaptureFormatError` with one line
``"<path>: <problem>"``.
"""
from __future__ import annotations

import json
import os

import numpy as np

from ..errors import CaptureFormatError, ConfigError

__all__ = ["Capture", "fail", "check_meta", "side_file_meta", "SIDE_FILE_SUFFIX", "MonotonicFilter", "ReorderWindow",
           "meta_to_json", "meta_from_json", "TIMETAG_META_KEYS"]

#: link parameters a time-tag capture must carry (meta keys, all chains "scppm")
TIMETAG_META_KEYS = ("chain", "M", "rate", "slot_width_ps", "ns", "nb", "frame_len", "scid")


#: side file of the link parameters of a format that cannot carry them (``<file>.modem.json``)
SIDE_FILE_SUFFIX = ".modem.json"


def fail(path, problem: str) -> CaptureFormatError:
    """The one-line error every reader raises: ``"<path>: <problem>"``."""
    return CaptureFormatError(f"{os.fspath(path)}: {problem}")


def side_file_meta(path: str, overrides: dict | None) -> dict:
    """Link parameters of a format that cannot carry them: ``<path>.modem.json`` (a JSON object),
    updated with ``overrides``; a one-line CaptureFormatError when there are none or the side file
    is not a JSON object."""
    meta = {}
    side = path + SIDE_FILE_SUFFIX
    if os.path.isfile(side):
        with open(side) as fh:
            try:
                meta = json.load(fh)
            except ValueError as exc:
                raise fail(side, f"link parameters are not valid JSON ({exc})") from exc
        if not isinstance(meta, dict):
            raise fail(side, f"link parameters must be a JSON object, got {type(meta).__name__}")
    meta.update(overrides or {})
    if not meta:
        raise fail(path, f"no link parameters: write them to {side} or give --param KEY=VALUE")
    return meta


def meta_to_json(meta: dict) -> str:
    """Link parameters as a compact JSON object (keys sorted)."""
    return json.dumps(meta, sort_keys=True, default=float)


def writable_meta(meta: dict | None) -> dict | None:
    """``meta`` for a writer: its ``channel_delays_ps`` (any form :func:`~modem.sync.deskew.channel_delays`
    reads, numpy keys included) as a JSON-able ``{"channel": ps}`` dict, checked before the file is
    opened (ConfigError naming the bad entry)."""
    if not meta or meta.get("channel_delays_ps") is None:
        return meta
    from ..sync.deskew import delay_table_json  # noqa: PLC0415
    return {**meta, "channel_delays_ps": delay_table_json(meta["channel_delays_ps"])}


def meta_from_json(path, text) -> dict:
    try:
        meta = json.loads(text)
    except (TypeError, ValueError) as exc:
        raise fail(path, f"link parameters are not valid JSON ({exc})") from exc
    if not isinstance(meta, dict):
        raise fail(path, f"link parameters must be a JSON object, got {type(meta).__name__}")
    return meta


def check_meta(path, meta: dict, kind: str) -> dict:
    """Validate the link parameters of a capture (keys present, values in range).

    Builds the receiver's spec objects once so that a bad value is reported at open time with the
    file name (``CaptureFormatError``), not deep inside the decode.
    """
    chain = meta.get("chain")
    if chain not in ("scppm", "dpsk"):
        raise fail(path, f"link parameter 'chain' must be 'scppm' or 'dpsk', got {chain!r}")
    if kind == "timetags":
        if chain != "scppm":
            raise fail(path, f"time tags need chain 'scppm', metadata says {chain!r}")
        missing = [k for k in TIMETAG_META_KEYS if k not in meta]
        if missing:
            raise fail(path, f"link parameters lack {', '.join(missing)}")
        from ..fec.scppm import SCPPMCode  # noqa: PLC0415
        from ..framing.tm import TMFrameSpec  # noqa: PLC0415
        from ..sync.deskew import channel_delays  # noqa: PLC0415
        try:
            channel_delays(meta.get("channel_delays_ps"))
            SCPPMCode(**{k: meta[k] for k in ("M", "rate", "interleaver_rows", "interleaver_shift", "repetition")
                         if k in meta})
            TMFrameSpec(frame_len=meta["frame_len"], scid=meta["scid"], vcid=meta.get("vcid", 0),
                        ocf=meta.get("ocf", False), fecf=meta.get("fecf", True))
        except (ConfigError, TypeError) as exc:
            raise fail(path, f"bad link parameters: {exc}") from exc
        for k in ("slot_width_ps", "ns", "nb"):
            v = meta[k]
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not np.isfinite(v) or v < 0 \
                    or (k != "nb" and v == 0):
                raise fail(path, f"link parameter {k} must be a positive number, got {v!r}")
    return meta


class MonotonicFilter:
    """Keeps a time-tag stream non-decreasing across chunks: a tag earlier than the latest kept one
    (garbage in a corrupt region) is dropped and counted."""

    def __init__(self):
        self.last = np.iinfo(np.int64).min
        self.dropped = 0

    def keep(self, t: np.ndarray) -> np.ndarray:
        """(n,) bool: the tags of ``t`` that are kept; the state advances (the readers keep the
        channel ids of the same tags)."""
        if t.size == 0:
            return np.zeros(0, bool)
        run = np.maximum.accumulate(np.concatenate([[self.last], t]))[:-1]
        keep = t >= run
        self.dropped += int(t.size - keep.sum())
        kept = np.flatnonzero(keep)
        if kept.size:
            self.last = int(t[kept[-1]])
        return keep


_T_MIN = int(np.iinfo(np.int64).min)


class ReorderWindow:
    """Re-sorts a stream of time tags whose arrival order may run up to ``window_ps`` behind their
    times (PTU T3: records of one sync period are written as each channel delivers them, so two
    channels' photons of the same period can come in either order of their TCSPC delays).

    ``push(t, *payload)``: a chunk in arrival order (``t`` 1-D int64 ps, each payload array the same
    length) -> ``(t, *payload)`` sorted by ``t`` (stable: equal times keep their arrival order): the
    tags no later one can precede, those at most ``newest - window_ps`` (``newest``: the latest time
    seen so far). The rest are held (they span at most ``window_ps``); ``flush()`` gives them at the
    end. A tag more than ``window_ps`` earlier than a tag that arrived before it is dropped and
    counted (``dropped``), as :class:`MonotonicFilter` drops a tag that goes backwards: garbage of a
    corrupt region, not reordering. Which tags are dropped depends only on the arrival order, so the
    output is the same whatever the chunking: every other tag, sorted.
    """

    def __init__(self, window_ps: int):
        self.window = int(window_ps)
        self.dropped = 0
        self._newest = _T_MIN
        self._held: tuple = ()

    def push(self, t: np.ndarray, *payload) -> tuple:
        if t.size:
            seen = np.maximum.accumulate(np.concatenate([[self._newest], t]))   # latest before each tag
            keep = t >= np.maximum(seen[:-1], _T_MIN + self.window) - self.window    # (no wrap-around)
            self._newest = int(seen[-1])
            if not keep.all():
                self.dropped += int(t.size - keep.sum())
                t, payload = t[keep], tuple(p[keep] for p in payload)
        if self._held:
            t = np.concatenate([self._held[0], t])
            payload = tuple(np.concatenate([h, p]) for h, p in zip(self._held[1:], payload))
        order = np.argsort(t, kind="stable")
        t, payload = t[order], tuple(p[order] for p in payload)
        k = int(np.searchsorted(t, max(self._newest, _T_MIN + self.window) - self.window, side="right"))
        self._held = (t[k:], *(p[k:] for p in payload))
        return (t[:k], *(p[:k] for p in payload))

    def flush(self) -> tuple:
        """The held tags (sorted), or ``()`` when nothing was pushed."""
        out, self._held = self._held, ()
        return out


class Capture:
    """A recorded pass opened for streaming (a context manager).

    Attributes
    ----------
    path : str, the file (for SigMF the ``.sigmf-meta`` file).
    format : str, e.g. ``"ptu-t2"``, ``"ptu-t3"``, ``"hdf5"``, ``"sigmf"``, ``"ttbin"``.
    kind : ``"timetags"`` or ``"samples"``.
    meta : dict of link parameters (chain ``"scppm"``/``"dpsk"`` and the receiver's parameters).
    stats : dict of running reader counters (records, photons per channel, dropped tags, corrupt
        regions, ...), complete once ``chunks`` is exhausted.
    n_records : records (tags, or samples) in the file as its header states, or None.
    """

    format = "?"
    kind = "timetags"

    def __init__(self, path):
        self.path = os.fspath(path)
        self.meta: dict = {}
        self.stats: dict = {"records": 0, "corrupt_regions": [], "dropped_non_monotonic": 0}
        self.n_records: int | None = None

    def chunks(self, n: int = 1 << 20):
        """Iterate over the data, at most ``n`` records read per chunk (see the module docstring).

        Time tags come compensated for ``meta["channel_delays_ps"]`` when it is set; a chunk then
        holds the tags no later read can precede (so it may be shorter or longer than a read), and
        one more chunk follows the last read.
        """
        n = self._check_n(n)
        if self.kind != "timetags":
            raise NotImplementedError
        from ..sync.deskew import ChannelDeskew, channel_delays  # noqa: PLC0415
        delays = channel_delays(self.meta.get("channel_delays_ps"))
        if not delays:
            for t, _ in self._tag_chunks(n):
                yield t
            return
        deskew = ChannelDeskew(delays)
        for t, ch in self._tag_chunks(n):
            yield deskew.push(t, ch)[0]
        yield deskew.flush()[0]

    def tagged_chunks(self, n: int = 1 << 20):
        """Time tags as the tagger stamped them, ``(t_ps, channel)`` per read of at most ``n``
        records: int64 ps non-decreasing, int channel ids; no delay compensation."""
        n = self._check_n(n)
        if self.kind != "timetags":
            raise CaptureFormatError(f"{self.path}: a {self.kind} capture has no time tags")
        return self._tag_chunks(n)

    def _tag_chunks(self, n: int):
        """Readers of time tags: yield ``(t_ps, channel)`` per read (after the monotonic filter)."""
        raise NotImplementedError

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self):
        return f"<{type(self).__name__} {self.path!r} {self.format} {self.kind}>"

    def _count_channels(self, channels: np.ndarray) -> None:
        """Add the records of each detector channel in ``channels`` to ``stats["per_channel"]``."""
        if channels.size:
            per_ch = self.stats.setdefault("per_channel", {})
            u, c = np.unique(channels, return_counts=True)
            for a, b in zip(u.tolist(), c.tolist()):
                per_ch[a] = per_ch.get(a, 0) + b

    @staticmethod
    def _check_n(n) -> int:
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
            raise ConfigError(f"Capture.chunks: n must be an integer >= 1, got {n!r}")
        return int(n)
