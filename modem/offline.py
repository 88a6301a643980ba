# SPDX-License-Identifier: Apache-2.0
"""Offline replay: decode recorded passes (``modem decode``), one by one or as a Dask batch.

``decode_capture(path)`` opens a capture (:func:`modem.io.open_capture`), builds the receiver from
its link parameters (:func:`receiver_for`), streams it chunk by chunk (memory bounded by the chunk
size, not the file size), and returns a JSON-able report::

    file, format, kind, chain, meta, backend
    frames      total / good / bad / crc_failed (a carrying codeword failed its CRC-32) /
                fecf_failed, frames_sha256 (of the good frames' octets, in order)
    packets     count (non-idle), idle, dropped_events / dropped_octets (depacketizer, including
                the packet left incomplete when the pass ends: incomplete_at_end_octets), and
                payload_sha256: SHA-256 of the concatenated non-idle space packets (primary header +
                data field) extracted from the good frames in order -- what captures/manifest.json
                pins for the shipped captures
    quality     codewords, codewords_crc_failed, codeword_error_rate, iterations mean / max over
                frames, ASM sync metric mean / min of good frames, frame_error_rate
    reencode    (SCPPM time tags) the CRC-valid codewords re-encoded: hard-decision PPM symbol
                error rate of the channel, empty-symbol rate, and the detected signal photons per
                pulse / background counts per slot measured on them (ns, nb estimates)
    sync_events slot-clock events (acquired, loss_of_signal, slip, clock_jump) with times in ps
    gaps        loss-of-signal intervals, corrupt regions found by the reader, tags dropped
                because a corrupt region made them go backwards
    photons     (time tags) tags, per-channel counts, duration, rate; slot histogram (counts per
                slot position of the recovered symbol, all symbols) -- or (samples) statistics
    throughput  wall seconds, records/s, decoded information bit rate, real-time factor
    deskew      (time tags) the per-channel delays applied (``channel_delays_ps``, from the link
                parameters or measured: ``deskew="auto"``) and, when measured, the evidence
                (:func:`measure_channel_delays`)

With ``out_dir``: ``frames.bin`` (good frames back to back), ``frames.csv`` (one row per frame out
of the frame synchroniser, good or bad, with CRC/FECF status), ``packets.bin`` (non-idle packets
back to back; self-delimiting by their length field), ``report.json``, and with ``plots=True``
``slot_histogram.png`` and ``frame_errors.png``.

``decode_many(paths, scheduler=None)`` runs one ``decode_capture`` per pass on Dask distributed: a
local cluster (threads, 2 workers) by default, or the scheduler at ``scheduler`` (``tcp://...``).
"""
from __future__ import annotations

import csv
import hashlib
import json
import os
import sys
import time

import numpy as np

from .errors import CaptureFormatError, ConfigError, ModemError
from .io import detect_format, open_capture
from .cliargs import parse_key_values

__all__ = ["receiver_for", "decode_capture", "decode_many", "measure_channel_delays", "register", "run_cli",
           "DEFAULT_CHUNK", "DESKEW_TAGS"]

#: records (time tags or samples) per chunk read from a capture
DEFAULT_CHUNK = 1 << 18
#: time tags per window in which the channel delays are measured (``deskew="auto"``, windows along the pass)
DESKEW_TAGS = 1 << 21
DESKEW_MODES = ("meta", "auto")


_TT_RECEIVER = None


def _time_tag_receiver_class():
    """SCPPMTimeTagReceiver that also keeps the slot histogram (counts per slot position of the
    recovered symbol, summed over all symbols: data slots 0..M-1 then the guard slots). Built on
    first use so that ``import modem.offline`` (the CLI) stays light."""
    global _TT_RECEIVER
    if _TT_RECEIVER is None:
        from .receiver import SCPPMTimeTagReceiver  # noqa: PLC0415
        from .fec.scppm.encoder import attach_csm, repeat  # noqa: PLC0415

        class TimeTagReceiverWithHistogram(SCPPMTimeTagReceiver):
            def __init__(self, *a, **kw):
                super().__init__(*a, **kw)
                from .fec.scppm import SCPPMTransmitter  # noqa: PLC0415
                self._tx = SCPPMTransmitter(self.code)
                receive = self.decoder.receive_stream

                def receive_and_measure(counts, restart=None):
                    res, src = receive(counts, restart)
                    self._measure(counts, res)
                    return res, src

                self.decoder.receive_stream = receive_and_measure

            def reset(self):
                super().reset()
                self.slot_histogram = np.zeros(0, np.int64)
                self.reencode = {"codewords": 0, "symbols": 0, "symbol_errors": 0, "empty_symbols": 0,
                                 "signal_counts": 0, "pulses": 0, "background_counts": 0, "empty_slots": 0}

            def _measure(self, counts, res):
                """Re-encode the CRC-valid codewords: true pulse positions -> hard-decision PPM
                symbol errors, detected signal photons per pulse and background per slot. Works on
                the transmitted symbols (CSM and repeats included), not on re-modulated slots: one
                pulse per symbol, in data slot 0..M-1 (the guard slots hold none)."""
                c = self.code
                if c.interleaver_rows > 1 or not len(counts):
                    return                                  # the interleaver spreads codewords
                ok = np.flatnonzero(np.asarray(res.crc_ok))
                if not ok.size:
                    return
                truth = repeat(attach_csm(self._tx.encoder(np.asarray(res.u_hat)[ok]), c), c)  # (F, n) symbols
                P = c.M + c.guard
                y = np.asarray(counts)[ok]
                if truth.shape[1] * P != y.shape[1]:
                    return
                ys = y.reshape(ok.size, -1, P)[..., :c.M]
                sig = np.take_along_axis(ys, truth[..., None], axis=-1)[..., 0]
                hard = ys.argmax(axis=-1)                   # first slot of the peak
                empty = np.take_along_axis(ys, hard[..., None], axis=-1)[..., 0] == 0   # (max over 16 slots: 3x slower)
                wrong = (hard != truth) | empty
                r = self.reencode
                r["codewords"] += int(ok.size)
                r["symbols"] += int(truth.size)
                r["symbol_errors"] += int(wrong.sum())
                r["empty_symbols"] += int(empty.sum())
                signal = int(sig.sum(dtype=np.int64))
                r["signal_counts"] += signal
                r["pulses"] += int(truth.size)
                r["background_counts"] += int(y.sum(dtype=np.int64)) - signal
                r["empty_slots"] += int(y.size - truth.size)

            def _after_clock(self, slots):
                if len(slots):
                    h = slots.counts.sum(axis=0, dtype=np.int64)
                    if self.slot_histogram.size != h.size:
                        self.slot_histogram = np.zeros(h.size, np.int64)
                    self.slot_histogram += h
                return super()._after_clock(slots)

        _TT_RECEIVER = TimeTagReceiverWithHistogram
    return _TT_RECEIVER


def _tm_spec(meta: dict):
    from .framing.tm import TMFrameSpec  # noqa: PLC0415
    return TMFrameSpec(frame_len=int(meta["frame_len"]), scid=int(meta["scid"]), vcid=int(meta.get("vcid", 0)),
                       ocf=bool(meta.get("ocf", False)), fecf=bool(meta.get("fecf", True)))


#: metadata keys that describe the file, not the link (not passed to the sample receivers)
_READER_KEYS = ("kind", "n_samples", "adc_lsb")


def receiver_for(meta: dict, launcher=None, decode_batch: int | None = None):
    """The receiver for a capture's link parameters: ``push(chunk) -> frames``, ``flush()``, ``stats``.

    ``meta["chain"] == "scppm"`` (time tags) -> :class:`~modem.receiver.SCPPMTimeTagReceiver`
    (keys M, rate, [interleaver_rows, interleaver_shift, repetition], slot_width_ps, ns, nb,
    frame_len, scid, [vcid, ocf, fecf, max_iter], and ``clock_<name>`` / ``cwsync_<name>`` keys passed to
    SlotClockConfig / CodewordSyncConfig, e.g. ``clock_acq_max_guard_ratio``); sample chains (``meta["kind"] == "samples"`` or
    chain ``"scppm-apd"`` / ``"dpsk"``) -> ``modem.sample_receiver.receiver_from_dict`` (its
    SCPPMAPDLink / DPSKLink keys). Raises ConfigError on bad parameters.

    launcher : where the FEC decoder runs (None: the CPU; :func:`modem.backend.fec_launcher` gives
        the GPU's); every other stage is a sequential loop on the CPU.
    decode_batch : SCPPM codewords held back before each decoder call
        (:class:`~modem.receiver.CodewordHold`; None: 1 on the CPU, up to 1024 on a kernel launcher,
        :func:`modem.backend.default_decode_batch`): the same frames, in fewer, larger decoder calls. The DPSK receiver decodes each FEC frame as its marker is found (it decodes to
        find the interleaver's phase) and takes no ``decode_batch`` (a bad value is refused all the same).
    """
    if decode_batch is not None:         # named for every chain, also those that take none
        from .receiver import check_decode_batch  # noqa: PLC0415
        check_decode_batch(decode_batch)
    chain = meta.get("chain")
    if chain == "scppm" and "slot_width_ps" in meta and meta.get("kind", "timetags") == "timetags":
        from .fec.scppm import SCPPMCode  # noqa: PLC0415
        code = SCPPMCode(**{k: meta[k] for k in ("M", "rate", "interleaver_rows", "interleaver_shift",
                                                 "repetition") if k in meta})
        clock = {k[len("clock_"):]: v for k, v in meta.items() if k.startswith("clock_")}
        sync = {k[len("cwsync_"):]: v for k, v in meta.items() if k.startswith("cwsync_")}
        return _time_tag_receiver_class()(code, _tm_spec(meta), float(meta["slot_width_ps"]), float(meta["ns"]),
                                float(meta["nb"]), max_iter=int(meta.get("max_iter", 16)),
                                clock_options=clock or None, sync_options=sync or None, launcher=launcher,
                                decode_batch=decode_batch)
    if chain in ("scppm-apd", "dpsk", "scppm"):
        try:
            from .sample_receiver import receiver_from_dict  # noqa: PLC0415
        except ImportError as exc:
            raise ConfigError(f"receiver_for: sample receivers are not available in this build ({exc})") from exc
        params = {k: v for k, v in meta.items() if k not in _READER_KEYS}
        if params.get("chain") == "scppm":
            params["chain"] = "scppm-apd"
        if params.get("chain") == "scppm-apd":
            return receiver_from_dict(params, launcher=launcher, decode_batch=decode_batch)
        return receiver_from_dict(params, launcher=launcher)
    raise ConfigError(f"receiver_for: chain must be 'scppm' or 'dpsk', got {chain!r}")


class _Sink:
    """Output files of one decode (all optional: nothing is kept when out_dir is None)."""

    FIELDS = ("index", "t_ps", "valid", "crc_ok", "fecf_ok", "iterations", "sync_metric", "vcfc", "codewords")

    def __init__(self, out_dir):
        self.dir = out_dir
        self._fr = self._pk = self._csv = self._fh = None
        if out_dir:
            try:
                os.makedirs(out_dir, exist_ok=True)
                self._fr = open(os.path.join(out_dir, "frames.bin"), "wb")
                self._pk = open(os.path.join(out_dir, "packets.bin"), "wb")
                self._fh = open(os.path.join(out_dir, "frames.csv"), "w", newline="")
            except OSError as exc:
                self.close()
                raise ConfigError(f"output folder {os.fspath(out_dir)} cannot be written "
                                  f"({exc.strerror}: {exc.filename})") from exc
            self._csv = csv.writer(self._fh)
            self._csv.writerow(self.FIELDS)

    def frame(self, row: dict, data: bytes | None):
        if self._csv is not None:
            self._csv.writerow([row[k] for k in self.FIELDS])
            if data is not None:
                self._fr.write(data)

    def packet(self, p: bytes):
        if self._pk is not None:
            self._pk.write(p)

    def close(self):
        for f in (self._fr, self._pk, self._fh):
            if f is not None:
                f.close()


class _FrameHandler:
    """Bookkeeping of the frames out of a receiver: counts, hashes, depacketizing, log rows."""

    def __init__(self, meta: dict, sink: _Sink, keep_timeline: bool = False):
        from .framing.packets import TMDepacketizer  # noqa: PLC0415
        self.spec = _tm_spec(meta)
        self.dp = TMDepacketizer(self.spec)
        self.dp_state = self.dp.initial_state()
        self.sink = sink
        self.frames_hash = hashlib.sha256()
        self.payload_hash = hashlib.sha256()
        self.n = self.good = self.crc_failed = self.fecf_failed = 0
        self.packets = 0
        # running statistics only (memory independent of the pass length) ...
        self.iter_sum = self.iter_max = 0
        self.metric_sum, self.metric_min = 0.0, float("inf")
        # ... except the (t_ps, valid) list of the frame-error plot, kept only when plotting
        self.keep_timeline = keep_timeline
        self.timeline = []

    def __call__(self, frames):
        from .framing.tm import TMPrimaryHeader  # noqa: PLC0415
        for f in frames:
            valid = bool(f.valid)
            vcfc = TMPrimaryHeader.from_bytes(f.data[:6]).vcfc if valid else ""
            t = getattr(f, "t_ps", float("nan"))
            crc_ok = getattr(f, "crc_ok", None)
            fecf_ok = getattr(f, "fecf_ok", None)
            it = int(getattr(f, "iterations", 0))
            row = {"index": self.n, "t_ps": f"{t:.0f}" if np.isfinite(t) else "", "valid": int(valid),
                   "crc_ok": "" if crc_ok is None else int(crc_ok), "fecf_ok": "" if fecf_ok is None else int(fecf_ok),
                   "iterations": it, "sync_metric": f"{float(getattr(f, 'sync_metric', float('nan'))):.3f}",
                   "vcfc": vcfc, "codewords": " ".join(str(c) for c in getattr(f, "codewords", ()))}
            self.n += 1
            self.crc_failed += int(crc_ok is False)
            self.fecf_failed += int(fecf_ok is False)
            self.iter_sum += it
            self.iter_max = max(self.iter_max, it)
            if self.keep_timeline:
                self.timeline.append((float(t), valid))
            self.sink.frame(row, f.data if valid else None)
            if not valid:
                continue
            self.good += 1
            m = float(getattr(f, "sync_metric", np.nan))
            self.metric_sum += m
            self.metric_min = min(self.metric_min, m)
            self.frames_hash.update(f.data)
            out, self.dp_state = self.dp.push([f.data], self.dp_state)
            for p in out.packets:
                b = p.to_bytes()
                self.payload_hash.update(b)
                self.sink.packet(b)
                self.packets += 1


def _event(e) -> dict:
    d = {"kind": e.kind, "t_start_ps": float(e.t_start_ps),
         "t_end_ps": None if e.t_end_ps is None else float(e.t_end_ps)}
    if e.info:
        d["info"] = {k: (v if isinstance(v, (int, float, str, bool)) or v is None else str(v))
                     for k, v in e.info.items()}
    return d


def measure_channel_delays(path, meta_overrides: dict | None = None, max_tags: int | None = None,
                           max_delay_ps: float | None = None, max_windows: int = 32, stride: int = 1):
    """Measure the per-channel delays of a time-tag capture where its link is up; returns the
    :class:`~modem.sync.deskew.DelayEstimate` (:func:`modem.sync.deskew.estimate_channel_delays_chunks`
    with the link's slot width): windows of ``max_tags`` consecutive tags (None: ``DESKEW_TAGS``)
    along the pass, every ``stride``-th one measured until a channel resolves (background-only
    windows show no coincidence tooth and are passed over), then the best of that window and the
    next; reading stops there. ``max_windows`` caps the windows measured before the signal is
    found; nothing resolved anywhere gives no delays, with the evidence (``estimate.search``).
    Any ``channel_delays_ps`` of the file is ignored: the raw tags are measured."""
    from .sync.deskew import NoTagsError, estimate_channel_delays_chunks  # noqa: PLC0415
    max_tags = DESKEW_TAGS if max_tags is None else max_tags
    if isinstance(max_tags, bool) or not isinstance(max_tags, int) or max_tags < 2:
        raise ConfigError(f"measure_channel_delays: max_tags must be an integer >= 2, got {max_tags!r}")
    with open_capture(path, meta_overrides) as cap:
        if cap.kind != "timetags":
            raise ConfigError(f"{cap.path}: channel delays apply to time-tag captures, this one holds {cap.kind}")
        try:
            return estimate_channel_delays_chunks(cap.tagged_chunks(min(max_tags, DEFAULT_CHUNK)),
                                                  cap.meta["slot_width_ps"], max_delay_ps=max_delay_ps,
                                                  window_tags=max_tags, max_windows=max_windows, stride=stride)
        except NoTagsError:
            raise NoTagsError(f"{cap.path}: no time tags to measure channel delays from") from None


def decode_capture(path, out_dir=None, progress=False, plots=False, chunk: int = DEFAULT_CHUNK,
                   meta_overrides: dict | None = None, deskew: str = "meta", backend: str | None = None,
                   launcher=None, decode_batch: int | None = None) -> dict:
    """Decode one capture; return the report (see the module docstring) and write ``out_dir``.

    deskew : ``"meta"`` applies the link parameter ``channel_delays_ps`` when the file or
        ``meta_overrides`` give one; ``"auto"`` measures the channel delays where the link is
        up, in windows of ``DESKEW_TAGS`` tags along the pass (:func:`measure_channel_delays`), and
        applies those instead (a capture without tags: no delays, ``estimate`` None, the report of 0
        frames; nothing resolved anywhere: no delays, the evidence in ``estimate.search``).
    backend : where the FEC decoder runs: ``cpu``, ``gpu`` or ``auto`` (the GPU where one is
        usable); None (default) takes ``MODEM_BACKEND``. ``gpu`` where no GPU is usable raises
        BackendUnavailable (one line) before anything is read. The decoded frames are the same
        (the kernels give the CPU's decisions); the report's ``backend`` names what ran.
    launcher : a kernel launcher to run the FEC decoder on, instead of ``backend``'s (the tests'
        host emulation of the kernels).
    decode_batch : SCPPM codewords per decoder call (see :func:`receiver_for`; None: 1 on the CPU,
        up to 1024 on the GPU). The report's ``backend.decode_batch`` says what ran.

    Raises CaptureFormatError (one line naming the file) for unreadable or inconsistent files and
    bad link parameters; channel failures are counted in the report, never raised.
    """
    from .backend import fec_launcher  # noqa: PLC0415
    if launcher is None:                 # never a silent CPU run when the GPU was asked for
        launcher = fec_launcher(backend)
    if plots and not out_dir:            # refused before the pass is decoded, not after
        raise ConfigError("decode_capture: plots need out_dir")
    if deskew not in DESKEW_MODES:
        raise ConfigError(f"decode_capture: deskew must be one of {', '.join(DESKEW_MODES)}, got {deskew!r}")
    if decode_batch is not None:         # a bad value is the caller's, not the capture's link parameters
        from .receiver import check_decode_batch  # noqa: PLC0415
        decode_batch = check_decode_batch(decode_batch)
    from .sync.deskew import NoTagsError, delay_table_json  # noqa: PLC0415
    path = os.fspath(path)
    t_wall = time.perf_counter()
    estimate = None
    if deskew == "auto" and detect_format(path) != "sigmf":
        try:
            estimate = measure_channel_delays(path, meta_overrides)
        except NoTagsError:              # an empty pass: nothing to deskew, a report of 0 frames
            estimate = None
        meta_overrides = {**(meta_overrides or {}),
                          "channel_delays_ps": {} if estimate is None else delay_table_json(estimate.delays_ps)}
    with open_capture(path, meta_overrides) as cap:
        try:
            rx = receiver_for(cap.meta, launcher, decode_batch)
        except (ConfigError, TypeError, KeyError, ValueError) as exc:
            raise CaptureFormatError(f"{path}: bad link parameters for the receiver ({exc})") from exc
        _check_sample_rate(cap, rx)
        sink = _Sink(out_dir)
        handler = _FrameHandler(cap.meta, sink, keep_timeline=bool(plots and out_dir))
        bar = None
        if progress:
            from tqdm import tqdm  # noqa: PLC0415
            bar = tqdm(total=cap.n_records, unit="rec", unit_scale=True, desc=os.path.basename(path),
                       file=sys.stderr, leave=False)
        t_first = t_last = None
        try:
            for x in cap.chunks(chunk):
                if cap.kind == "timetags" and x.size:
                    t_first = int(x[0]) if t_first is None else t_first
                    t_last = int(x[-1])
                handler(rx.push(x))
                if bar is not None:
                    bar.n = cap.stats["records"]
                    bar.refresh()
            handler(rx.flush())
        finally:
            if bar is not None:
                bar.close()
            sink.close()
        wall = time.perf_counter() - t_wall
        rep = _report(cap, rx, handler, wall, t_first, t_last)
        rep["backend"] = replay_backend_info(launcher)
        if getattr(rx, "decode_batch", None) is not None:
            rep["backend"]["decode_batch"] = rx.decode_batch
        if cap.kind == "timetags":
            rep["deskew"] = {"mode": deskew, "channel_delays_ps": delay_table_json(cap.meta.get("channel_delays_ps")),
                             "estimate": estimate.to_json() if estimate is not None else None}
    check = manifest_check(path, rep["packets"]["payload_sha256"])
    if check is not None:
        rep["manifest"] = check
    if out_dir:
        if plots:
            rep["plots"] = _plots(rep, handler, rx, out_dir)
        with open(os.path.join(out_dir, "report.json"), "w") as fh:
            json.dump(rep, fh, indent=2, default=_json_default)
    return rep


def replay_backend_info(launcher) -> dict:
    """The report's ``backend`` of a replay: :func:`modem.backend.backend_info` of the backend the
    FEC decoder ran on (``backend``: cpu, gpu, or emulated for the tests' host emulation), with
    ``stages``: which stages ran where (the clock, sync and framing loops always on the CPU)."""
    from .backend import launcher_info  # noqa: PLC0415
    info = launcher_info(launcher)
    info["stages"] = {"fec": info["backend"], "front_end_sync_framing": "cpu"}
    return info


def _check_sample_rate(cap, rx) -> None:
    """A sample recording's rate (SigMF ``core:sample_rate``) must be the one the receiver runs at
    (the link's ``slot_rate_hz * sps``): otherwise it would decode on a wrong time base."""
    file_rate = getattr(cap, "sample_rate", 0.0) or 0.0
    link = getattr(rx, "link", None)
    if cap.kind != "samples" or not file_rate or link is None:
        return
    want = float(link.sample_rate_hz)
    if abs(file_rate - want) > 1e-9 * want:
        raise CaptureFormatError(f"{cap.path}: metadata contradicts data: core:sample_rate={file_rate} Hz, the link "
                                 f"parameters give slot_rate_hz * sps = {want} Hz")


def _json_default(o):
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    return str(o)


def _report(cap, rx, h: _FrameHandler, wall: float, t_first, t_last) -> dict:
    st = rx.stats
    st_d = st if isinstance(st, dict) else st.__dict__
    events = [_event(e) for e in st_d.get("events", [])]
    cw = int(st_d.get("codewords", 0))
    cw_bad = int(st_d.get("codewords_crc_failed", 0))
    dps = h.dp_state
    tail = len(dps.buf)        # a packet begun in the last good frame and never completed: lost
    _, end = h.dp.lose_sync(dps, "incomplete_at_end")      # counted as the depacketizer counts drops
    rep = {
        "file": cap.path, "format": cap.format, "kind": cap.kind, "chain": cap.meta.get("chain"),
        "meta": cap.meta,
        "frames": {"total": h.n, "good": h.good, "bad": h.n - h.good, "crc_failed": h.crc_failed,
                   "fecf_failed": h.fecf_failed, "frames_sha256": h.frames_hash.hexdigest()},
        "packets": {"count": h.packets, "idle": dps.idle_packets, "dropped_events": end.dropped_events,
                    "dropped_octets": end.dropped_octets, "incomplete_at_end_octets": tail,
                    "frame_count_gaps": dps.gaps,
                    "payload_sha256": h.payload_hash.hexdigest()},
        "quality": {"codewords": cw, "codewords_crc_failed": cw_bad,
                    "codeword_error_rate": cw_bad / cw if cw else None,
                    "frame_error_rate": (h.n - h.good) / h.n if h.n else None,
                    "iterations_mean": h.iter_sum / h.n if h.n else 0.0, "iterations_max": h.iter_max,
                    "sync_metric_mean": h.metric_sum / h.good if h.good else None,
                    "sync_metric_min": h.metric_min if h.good else None,
                    "frame_sync_restarts": int(st_d.get("frame_sync_restarts", 0))},
        "sync_events": events,
        "reencode": _reencode_summary(getattr(rx, "reencode", None)),
        "gaps": {"loss_of_signal": [e for e in events if e["kind"] == "loss_of_signal"],
                 "corrupt_regions": cap.stats.get("corrupt_regions", []),
                 "dropped_non_monotonic": cap.stats.get("dropped_non_monotonic", 0),
                 # a Swabian tagger's own buffer overflows: every tag in [begin, end] ps lost
                 "tagger_overflows": cap.stats.get("overflow_intervals", [])},
        # every counter the format's reader keeps (PTU overflows / markers / syncs / time jumps,
        # .ttbin overflow events: tags the tagger itself lost, ...)
        "reader": {k: v for k, v in cap.stats.items()
                   if isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)},
    }
    info_bits = h.good * 8 * h.spec.frame_len
    if cap.kind == "timetags":
        dur = (t_last - t_first) * 1e-12 if t_first is not None else 0.0
        per_ch = {str(k): int(v) for k, v in sorted(cap.stats.get("per_channel", {}).items())}
        hist = getattr(rx, "slot_histogram", np.zeros(0))
        rep["photons"] = {"tags": int(cap.stats.get("photons", 0)), "records": int(cap.stats["records"]),
                          "per_channel": per_ch, "duration_s": dur,
                          "rate_hz": cap.stats.get("photons", 0) / dur if dur > 0 else None,
                          "slot_histogram": [int(v) for v in hist]}
    else:
        dur = cap.stats.get("samples", 0) / cap.sample_rate if getattr(cap, "sample_rate", 0) else 0.0
        ms = cap.stats.get("mean_square", 0.0)
        mean = cap.stats.get("mean", 0.0)
        rep["samples"] = {"count": int(cap.stats.get("samples", 0)), "sample_rate": getattr(cap, "sample_rate", None),
                          "duration_s": dur, "mean": mean, "rms": float(np.sqrt(ms)),
                          "std": float(np.sqrt(max(ms - mean * mean, 0.0)))}
    rep["throughput"] = {"wall_s": wall, "records_per_s": cap.stats["records"] / wall if wall > 0 else None,
                         "decoded_info_bits": info_bits,
                         "decoded_bits_per_s": info_bits / wall if wall > 0 else None,
                         "capture_duration_s": dur, "realtime_factor": dur / wall if wall > 0 else None}
    return rep


def _reencode_summary(r):
    """Channel estimates from the CRC-valid codewords re-encoded (time-tag SCPPM only)."""
    if not r or not r["codewords"]:
        return None
    return {"codewords": r["codewords"], "symbols": r["symbols"],
            "hard_symbol_error_rate": r["symbol_errors"] / r["symbols"],
            "empty_symbol_rate": r["empty_symbols"] / r["symbols"],
            "ns_estimate": r["signal_counts"] / r["pulses"],
            "nb_estimate": r["background_counts"] / r["empty_slots"]}


def _plots(rep: dict, h: _FrameHandler, rx, out_dir) -> list[str]:
    from matplotlib.figure import Figure  # noqa: PLC0415  (no pyplot: safe in Dask worker threads)
    paths = []
    hist = rep.get("photons", {}).get("slot_histogram") or []
    if hist:
        M = int(rep["meta"].get("M", len(hist)))
        fig = Figure(figsize=(7, 3.2))
        ax = fig.add_subplot()
        colors = ["tab:blue" if i < M else "tab:gray" for i in range(len(hist))]
        ax.bar(np.arange(len(hist)), hist, color=colors, width=0.9)
        ax.set_xlabel("slot position in the recovered PPM symbol (grey: guard slots)")
        ax.set_ylabel("photons")
        ax.set_title(f"slot histogram: {os.path.basename(rep['file'])}")
        fig.tight_layout()
        p = os.path.join(out_dir, "slot_histogram.png")
        fig.savefig(p, dpi=100)
        paths.append(p)
    if h.timeline:
        t = np.array([a for a, _ in h.timeline]) * 1e-9
        ok = np.array([b for _, b in h.timeline])
        fig = Figure(figsize=(7, 3.2))
        ax = fig.add_subplot()
        ax.plot(t[ok], np.ones(ok.sum()), "|", color="tab:green", ms=14, label="good")
        ax.plot(t[~ok], np.zeros((~ok).sum()), "|", color="tab:red", ms=14, label="bad (CRC/FECF)")
        for e in rep["gaps"]["loss_of_signal"]:
            end = e["t_end_ps"] if e["t_end_ps"] is not None else e["t_start_ps"]
            ax.axvspan(e["t_start_ps"] * 1e-9, end * 1e-9, color="tab:orange", alpha=0.3)
        ax.set_yticks([0, 1], ["bad", "good"])
        ax.set_ylim(-0.5, 1.5)
        ax.set_xlabel("receiver time (ms); shaded: loss of signal")
        ax.set_title(f"frames over the pass: {rep['frames']['good']} good, {rep['frames']['bad']} bad")
        fig.tight_layout()
        p = os.path.join(out_dir, "frame_errors.png")
        fig.savefig(p, dpi=100)
        paths.append(p)
    return paths


# --------------------------------------------------------------------------------------------------
def _decode_task(path, out_dir, chunk, meta_overrides, plots=False, deskew="meta", decode_batch=None):
    """One Dask task: decode a pass; errors come back as a report with ``error`` (one line)."""
    try:
        return decode_capture(path, out_dir=out_dir, chunk=chunk, meta_overrides=meta_overrides,
                              plots=plots and out_dir is not None, deskew=deskew, decode_batch=decode_batch)
    except ModemError as exc:
        return {"file": os.fspath(path), "error": str(exc)}


def decode_many(paths, scheduler=None, out_dir=None, chunk: int = DEFAULT_CHUNK, meta_overrides=None,
                n_workers: int = 2, plots: bool = False, deskew: str = "meta",
                decode_batch: int | None = None) -> list[dict]:
    """Decode several passes on Dask distributed, one task per pass; reports in ``paths`` order.

    scheduler : None -> a LocalCluster (``processes=False``, ``n_workers`` threads workers) created
        and closed here; a string -> the address of an existing scheduler (``tcp://host:8786``);
        a ``distributed.Client`` -> used as is.
    out_dir : when given, each pass writes to ``out_dir/<file name, dots as underscores>``.
    A pass that fails comes back as ``{"file": ..., "error": "<one line>"}``.
    """
    from dask.distributed import Client, LocalCluster  # noqa: PLC0415
    from .backend import fec_launcher  # noqa: PLC0415
    fec_launcher()                       # MODEM_BACKEND=gpu without a GPU: one line here, not one per pass
    if decode_batch is not None:
        from .receiver import check_decode_batch  # noqa: PLC0415
        check_decode_batch(decode_batch)
    paths = [os.fspath(p) for p in paths]
    outs = [None if out_dir is None else os.path.join(out_dir, n) for n in _out_names(paths)]
    cluster = None
    if isinstance(scheduler, Client):
        client, own = scheduler, False
    else:
        own = True
        if scheduler is None:
            cluster = LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=False,
                                   dashboard_address=None)
            client = Client(cluster)
        else:
            client = Client(scheduler)
    try:
        futs = [client.submit(_decode_task, p, o, chunk, meta_overrides, plots, deskew, decode_batch, pure=False)
                for p, o in zip(paths, outs)]
        return client.gather(futs)
    finally:
        if own:
            client.close()
        if cluster is not None:
            cluster.close()


def _out_names(paths) -> list[str]:
    """Distinct output folder names: the file name with its dots as underscores
    (``snspd16_pass.h5`` -> ``snspd16_pass_h5``), ``_2``, ``_3`` ... for repeats."""
    out, seen = [], {}
    for p in paths:
        b = os.path.basename(p)
        if b.endswith((".sigmf-meta", ".sigmf-data")):
            b = b[: -len(".sigmf-meta")] + ".sigmf"
        b = b.replace(".", "_")
        seen[b] = seen.get(b, 0) + 1
        out.append(b if seen[b] == 1 else f"{b}_{seen[b]}")
    return out


# --------------------------------------------------------------------------------------------------
def register(subparsers) -> None:
    """Add ``modem decode`` to the CLI's subparsers."""
    p = subparsers.add_parser(
        "decode", help="decode recorded passes (PTU, HDF5, SigMF, .ttbin, .dump): frames, packets, JSON report",
        description="Detect each capture's format, stream it through the receiver its link parameters "
                    "describe, and report frames good/bad, packets and their SHA-256, sync events, gaps, "
                    "photon/sample statistics and throughput. Several captures run as a Dask batch.")
    p.add_argument("captures", nargs="+", metavar="CAPTURE")
    p.add_argument("--out", metavar="DIR", help="write frames.bin, frames.csv, packets.bin, report.json "
                                                 "(a sub-folder per capture when several)")
    p.add_argument("--plots", action="store_true", help="also write slot_histogram.png and frame_errors.png")
    p.add_argument("--json", action="store_true", help="print the report(s) as JSON")
    p.add_argument("--scheduler", metavar="ADDR", help="Dask scheduler address for a batch (default: a local "
                                                       "cluster when several captures are given)")
    p.add_argument("--chunk", type=int, default=DEFAULT_CHUNK, metavar="N",
                   help=f"records per chunk read (default {DEFAULT_CHUNK})")
    p.add_argument("--decode-batch", type=int, default=None, metavar="N",
                   help="SCPPM codewords held back before each decoder call (default: 1 on the CPU, "
                        "up to 1024 (256 MB held) on the GPU, where one call needs thousands of codewords to "
                        "fill the device); "
                        "the decoded frames are the same at any N")
    p.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                   help="set / override a link parameter (JSON value), e.g. --param ns=2.4")
    p.add_argument("--deskew", choices=DESKEW_MODES, default="meta",
                   help="per-channel delays of an SNSPD array: 'meta' (default) applies the link parameter "
                        "channel_delays_ps when given (--param 'channel_delays_ps={\"1\":250}'); 'auto' "
                        f"measures them (photons of one pulse on two channels) in windows of {DESKEW_TAGS} "
                        "tags along the pass, where the link is up, and applies them")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(_run=run_cli)


def manifest_check(path, payload_sha256: str) -> dict | None:
    """Compare a decoded payload with the ``manifest.json`` beside the capture, when it lists the
    file (``captures/`` ships one): ``{"manifest", "expected_payload_sha256", "match"}``, else None.
    An unreadable manifest is reported in the result, never raised: it does not spoil a decode."""
    folder, name = os.path.split(os.path.abspath(os.fspath(path)))
    mpath = os.path.join(folder, "manifest.json")
    if not os.path.isfile(mpath):
        return None
    try:
        with open(mpath) as fh:
            caps = json.load(fh).get("captures", {})
        for key, entry in caps.items():
            if name == key or name in entry.get("files", ()):
                want = entry.get("payload_sha256")
                return {"manifest": mpath, "expected_payload_sha256": want, "match": want == payload_sha256}
    except (OSError, ValueError, AttributeError, TypeError) as exc:
        return {"manifest": mpath, "error": f"unreadable manifest ({type(exc).__name__}: {exc})", "match": None}
    return None


def _summary(rep: dict) -> str:
    if "error" in rep:
        return f"{rep['file']}: error: {rep['error']}"
    fr, pk, q, th = rep["frames"], rep["packets"], rep["quality"], rep["throughput"]
    m = rep["meta"]
    if rep["chain"] in ("scppm", "scppm-apd"):
        link = f"{m.get('M')}-PPM SCPPM r{m.get('rate')}" + (" over an APD" if rep["chain"] == "scppm-apd" else "")
    else:
        link = f"DPSK, DVB-S2 {m.get('frame')} r{m.get('rate')}" + (f", burst 1/{m['divider']}"
                                                                     if m.get("divider", 1) > 1 else "")
    lines = [f"{rep['file']}: {rep['format']} {rep['kind']}, {link}",
             f"  frames   {fr['good']} good, {fr['bad']} bad  (codewords {q['codewords']}, CRC failed "
             f"{q['codewords_crc_failed']}, mean iterations {q['iterations_mean']:.2f})",
             f"  packets  {pk['count']}  payload sha256 {pk['payload_sha256']}"
             + _manifest_note(rep.get("manifest")),
             "  sync     " + (", ".join(e["kind"] for e in rep["sync_events"]) or "none")]
    re = rep.get("reencode")
    if re:
        lines.append(f"  channel  ns {re['ns_estimate']:.3f} detected photons/pulse, nb {re['nb_estimate']:.4f}/slot, "
                     f"hard PPM symbol error rate {re['hard_symbol_error_rate']:.3f} (re-encoded "
                     f"{re['codewords']} codewords)")
    if "photons" in rep:
        ph = rep["photons"]
        lines.append(f"  photons  {ph['tags']} tags over {ph['duration_s'] * 1e3:.3f} ms, channels "
                     + " ".join(f"{k}:{v}" for k, v in ph["per_channel"].items()))
    dk = rep.get("deskew")
    if dk and (dk["channel_delays_ps"] or dk["estimate"]):
        est = dk["estimate"]
        lines.append(f"  deskew   {dk['mode']}: "
                     + (", ".join(f"ch{c} {d:+d} ps" for c, d in dk["channel_delays_ps"].items()) or "no delays")
                     + (f" (reference ch{est['reference']}" + (f", unresolved {est['unresolved']}"
                                                              if est["unresolved"] else "") + ")" if est else ""))
        if est and est.get("search"):
            lines.append(f"           {est['search']['summary']}")
    g = rep["gaps"]
    if g["corrupt_regions"] or g["dropped_non_monotonic"]:
        lines.append(f"  corrupt  {len(g['corrupt_regions'])} region(s), {g['dropped_non_monotonic']} tags dropped")
    lines.append(f"  time     {th['wall_s']:.2f} s, {th['decoded_bits_per_s'] / 1e3:.1f} kb/s decoded, "
                 f"backend {rep['backend'].get('backend')}"
                 + (f", {rep['backend']['decode_batch']} codewords per decoder call"
                    if rep["backend"].get("decode_batch", 1) > 1 else ""))
    return "\n".join(lines)


def _manifest_note(check: dict | None) -> str:
    if not check:
        return ""
    if check.get("match") is None:
        return f"  (manifest: {check.get('error')})"
    where = os.path.relpath(check["manifest"])
    return f"  (matches {where})" if check["match"] else f"  DIFFERS from {where} ({check['expected_payload_sha256']})"


def run_cli(args) -> int:
    """``modem decode``: returns the exit status (0 when every capture decoded, 2 on any error, 3 when
    a capture listed in a manifest beside it decoded to a different payload)."""
    meta = parse_key_values(args.param)
    if args.chunk < 1:
        raise ConfigError(f"--chunk must be >= 1, got {args.chunk}")
    if args.decode_batch is not None and args.decode_batch < 1:
        raise ConfigError(f"--decode-batch must be >= 1, got {args.decode_batch}")
    progress = not args.json and not args.no_progress and sys.stderr.isatty()
    if len(args.captures) == 1 and not args.scheduler:
        reps = [decode_capture(args.captures[0], out_dir=args.out, progress=progress, plots=args.plots,
                               chunk=args.chunk, meta_overrides=meta or None, deskew=args.deskew,
                               decode_batch=args.decode_batch)]
    else:
        reps = decode_many(args.captures, scheduler=args.scheduler, out_dir=args.out, chunk=args.chunk,
                           meta_overrides=meta or None, plots=args.plots, deskew=args.deskew,
                           decode_batch=args.decode_batch)
    if args.json:
        print(json.dumps(reps[0] if len(reps) == 1 else reps, indent=2, default=_json_default))
    else:
        for r in reps:
            print(_summary(r))
    errors = [r for r in reps if "error" in r]
    for r in errors:
        if args.json:
            print(f"modem: error: {r['error']}", file=sys.stderr)
    if errors:
        return 2
    differs = [r for r in reps if (r.get("manifest") or {}).get("match") is False]
    for r in differs:
        print(f"modem: {r['file']}: decoded payload differs from {r['manifest']['manifest']}", file=sys.stderr)
    return 3 if differs else 0

