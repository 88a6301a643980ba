# SPDX-License-Identifier: Apache-2.0
"""The real-time receiver back end: board (or GNU Radio) stream -> ring buffer -> decoder -> outputs.

Threads and data flow::

    ZeroMQ PULL/SUB --ingest thread--> parse + validate (protocol.parse_message) -> SequenceTracker
        (duplicates discarded, reordering within ``reorder_window`` restored, every gap declared)
        -> RingBuffer (bounded: ``ring_messages`` messages / ``ring_bytes`` octets)
    RingBuffer --decode thread--> batches of ~``batch_items`` items -> decoder.push -> frames
        -> files (frames.bin / frames.jsonl, packets.bin / packets.jsonl, events.jsonl)
        -> PUB socket (topics b"frame", b"packet", b"event", b"status")

Drops and gaps (never silent): a missing sequence number, an OVERFLOW flag from the board, a
RESTART, or a chunk dropped here because the ring was full (backpressure) each put a *gap marker*
in the ring in stream order. The decode thread then flushes the decoder and resets it (slot clock,
codeword and frame sync re-acquire from scratch on the data after the gap) and logs the gap with
its span (sequence numbers and stream time / sample index before and after). For time tags a gap
is a silent interval; resetting at the marker makes the re-acquisition explicit whatever the gap
length (the slot clock alone would only notice gaps longer than ``los_gap`` inter-arrival times).
A raw (GNU Radio) message that is rejected puts a ``rejected`` marker there too. At stop, messages
still held for reordering are delivered (behind their gap marker) and the decode thread ends only
after the ingest thread's last entry. An exception in the decode thread (decoder, outputs) loses
that batch only: counted (``decode_errors`` / ``decode_error_items``), logged as a ``decode_error``
event, and the decoder replaced by a fresh one.

Time tags reach the decoder in ps whatever the board's tick rate (header ``sample_rate``; 1e12 =
ps, passed as is); the recorded ``stream.i64`` keeps the board's ticks.

Decoders: any object with ``push(items) -> list[frame]``, ``flush() -> list[frame]`` and ``stats``
(``modem.receiver.SCPPMTimeTagReceiver`` for time tags; a sample receiver for samples); frames
need ``data`` (bytes) and ``valid``. ``decoder_factory=None`` records the raw stream only
(``stream.i64`` / ``stream.f32`` ...), which is also what ``record=True`` adds beside decoding.

Status (``status()``, published every ``status_interval_s`` and exported as Prometheus metrics
through :meth:`RealtimeReceiver.metrics_registry`): lock state, item rate (photons/s of stream
time for tags, samples/s), frames / frame errors / FER, backlog, and every drop counter.
"""
from __future__ import annotations

import collections
import json
import logging
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ..errors import BackendUnavailable, ConfigError
from .control import bind_socket, connect_socket, is_loopback
from .protocol import (MAX_PAYLOAD_LEN, REJECT_REASONS, Flags, Header, MessageError, PayloadKind, SampleDtype,
                       parse_message)

__all__ = ["RealtimeConfig", "RealtimeStats", "SequenceTracker", "RingBuffer", "RealtimeReceiver"]

log = logging.getLogger("modem.board.realtime")

_EXT = {SampleDtype.INT64_TAG: "i64", SampleDtype.FLOAT32: "f32", SampleDtype.INT16: "i16",
        SampleDtype.COMPLEX64: "c64"}


@dataclass(frozen=True)
class RealtimeConfig:
    """Parameters of :class:`RealtimeReceiver`.

    ring_messages, ring_bytes : ring buffer bounds (messages, payload octets); a chunk that does
        not fit is dropped whole and accounted (backpressure).
    batch_items : items per decoder batch (the decode thread concatenates consecutive messages up
        to this many items; a gap marker always ends a batch).
    reorder_window : out-of-order messages held while waiting for a missing sequence number;
        more held than this (or held longer than ``reorder_timeout_s``) declares the missing ones lost.
    max_payload_len : larger payloads are rejected (``oversize``).
    status_interval_s : status publishing period.
    stream_id : accept only this stream id (None: the first one seen).
    """

    ring_messages: int = 1024
    ring_bytes: int = 256 << 20
    batch_items: int = 1 << 17
    reorder_window: int = 8
    reorder_timeout_s: float = 0.2
    max_payload_len: int = MAX_PAYLOAD_LEN
    status_interval_s: float = 1.0
    stream_id: int | None = None

    def __post_init__(self):
        for name, lo in (("ring_messages", 1), ("ring_bytes", 1), ("batch_items", 1), ("reorder_window", 0),
                         ("max_payload_len", 0)):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < lo:
                raise ConfigError(f"RealtimeConfig: {name} must be an int >= {lo}, got {v!r}")
        for name in ("reorder_timeout_s", "status_interval_s"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not v > 0:
                raise ConfigError(f"RealtimeConfig: {name} must be > 0 s, got {v!r}")
        if self.ring_bytes < self.max_payload_len:
            raise ConfigError(f"RealtimeConfig: ring_bytes {self.ring_bytes} < max_payload_len {self.max_payload_len}: "
                              "a valid message could never enter the ring (every one dropped as backpressure)")


@dataclass
class RealtimeStats:
    """Counters of a receiver run (monotone except the backlog gauges)."""

    messages: int = 0                # valid data messages received (duplicates included)
    bytes: int = 0                   # payload octets of those
    items: int = 0                   # items delivered to the ring (after dedup)
    rejected: dict = field(default_factory=lambda: {r: 0 for r in REJECT_REASONS + ("foreign_stream", "kind_changed")})
    gaps: int = 0                    # sequence gaps declared
    lost_messages: int = 0           # sequence numbers never received
    duplicates: int = 0              # messages discarded as already delivered
    late: int = 0                    # messages arriving after their seq was declared lost (discarded)
    reordered: int = 0               # messages that arrived after a later one and were put back in order
    overflows: int = 0               # OVERFLOW flags from the board
    restarts: int = 0                # RESTART flags
    seq_resets: int = 0              # seq went back without RESTART (new data, not duplicates): handled as a restart
    time_jumps: int = 0              # tag messages starting before the previous one ended (no RESTART): decoder reset
    index_jumps: int = 0             # sample messages not continuing the sample index (no gap / OVERFLOW): decoder reset
    backpressure_chunks: int = 0     # chunks dropped here because the ring was full
    backpressure_items: int = 0
    backlog_messages: int = 0
    backlog_items: int = 0
    backlog_max_messages: int = 0
    batches: int = 0
    decoded_items: int = 0
    resyncs: int = 0                 # decoder resets after a gap
    frames: int = 0
    frames_valid: int = 0
    frames_bad: int = 0
    packets: int = 0
    eos: int = 0
    discarded_at_stop: int = 0       # items left in the ring at stop(drain=False)
    decode_errors: int = 0           # exceptions in the decode thread (decoder, outputs): batch lost, decoder reset
    decode_error_items: int = 0      # items of the batches lost that way
    stream_time_s: float = 0.0       # stream time decoded (tags: span of tags; samples: n / rate)


def _ticks_to_ps(ticks: np.ndarray, tick_rate: float) -> np.ndarray:
    """int64 tags in ticks of ``1 / tick_rate`` s -> int64 ps (exact for an integer ps per tick,
    else rounded to the nearest ps: still non-decreasing)."""
    f = 1e12 / tick_rate
    if f == round(f):
        return ticks * np.int64(round(f))
    return np.rint(ticks * f).astype(np.int64)


# ------------------------------------------------------------------------------------------------
class SequenceTracker:
    """Order restoration and gap accounting on message sequence numbers (pure, no I/O).

    ``push(h, items, now)`` returns a list of entries to deliver in order: ``("data", h, items)``,
    ``("gap", info)`` (lost sequence numbers ``info["first_seq"] .. info["last_seq"]``),
    ``("restart", info)``, ``("seq_reset", info)`` (seq went back without RESTART),
    ``("overflow", info)``, ``("time_jump", info)`` (tags going back across
    messages without RESTART), ``("index_jump", info)`` (samples not continuing the sample index
    without a gap or OVERFLOW), ``("eos", info)``. ``expire(now)`` releases
    messages held longer than the timeout; ``drain()`` releases everything (end of stream).
    """

    def __init__(self, window: int, timeout_s: float, stats: RealtimeStats):
        self.window, self.timeout_s, self.stats = window, timeout_s, stats
        self.expected = None
        self.held = {}                  # seq -> (arrival time, header, items)
        self.recent = collections.deque(maxlen=4096)
        self.recent_h = {}              # seq -> header of the last 4096 delivered (a duplicate repeats it)
        self.last_end = None            # stream position after the last delivered message
        self.max_seen = None            # highest seq accepted since the last (re)start

    def _remember(self, h):
        if len(self.recent) == self.recent.maxlen:
            self.recent_h.pop(self.recent[0], None)
        self.recent.append(h.seq)
        self.recent_h[h.seq] = h

    def _restart(self, h, out, kind):
        """The board's sequence starts again at ``h`` (``kind`` "restart": RESTART flag;
        "seq_reset": seq went back without it). Nothing to cut on the first message seen."""
        if self.expected is not None:
            self.drain(out)
            if kind == "restart":
                self.stats.restarts += 1
            else:
                self.stats.seq_resets += 1
            out.append((kind, {"kind": kind, "seq": h.seq, "before": self.last_end, "after": h.first}))
        self.last_end = None             # the time base may restart
        self.expected = h.seq
        self.max_seen = None
        self.recent.clear()
        self.recent_h.clear()

    @staticmethod
    def _end(h: Header, items) -> int:
        """Stream position after the message: the last tag (not first + span: span is a saturating
        u32, 4.3 ms of ps ticks) or the index after the last sample."""
        return int(items[-1]) if h.payload_kind == PayloadKind.TIME_TAGS else h.first + h.n_items

    def _deliver(self, h, items, out, after_gap: bool = False):
        if h.flags & Flags.OVERFLOW:
            self.stats.overflows += 1
            out.append(("overflow", {"kind": "overflow", "seq": h.seq, "before": self.last_end, "after": h.first}))
        elif h.payload_kind == PayloadKind.SAMPLES and h.n_items and self.last_end is not None \
                and not after_gap and h.first != self.last_end:
            # samples: first = index since the start, so contiguous messages continue it exactly;
            # samples lost or repeated in the board without OVERFLOW are marked, not spliced
            self.stats.index_jumps += 1
            out.append(("index_jump", {"kind": "index_jump", "seq": h.seq, "before": self.last_end, "after": h.first}))
        if h.payload_kind == PayloadKind.TIME_TAGS and h.n_items and self.last_end is not None \
                and int(items[0]) < self.last_end:
            # tags must be non-decreasing across messages too: the time base went back without a
            # RESTART; the decoder restarts here instead of being fed a decreasing batch
            self.stats.time_jumps += 1
            out.append(("time_jump", {"kind": "time_jump", "seq": h.seq, "before": self.last_end, "after": h.first}))
        self._remember(h)
        self.expected = h.seq + 1
        if h.n_items:
            self.last_end = self._end(h, items)
        out.append(("data", h, items))
        if h.flags & Flags.END_OF_STREAM:
            out.append(("eos", {"kind": "eos", "seq": h.seq}))

    def _release_lowest(self, out):
        s = min(self.held)
        if s > self.expected:
            n = s - self.expected
            self.stats.gaps += 1
            self.stats.lost_messages += n
            _, h, _ = self.held[s]
            out.append(("gap", {"kind": "seq_gap", "first_seq": self.expected, "last_seq": s - 1, "n": n,
                                "before": self.last_end, "after": h.first}))
        _, h, items = self.held.pop(s)
        self._deliver(h, items, out, after_gap=s > self.expected)
        self._drain_consecutive(out)

    def _drain_consecutive(self, out):
        while self.expected in self.held:
            _, h, items = self.held.pop(self.expected)
            self._deliver(h, items, out)

    def push(self, h: Header, items, now: float) -> list:
        """Entries to deliver after message ``h`` (see the class docstring)."""
        out = []
        if h.flags & Flags.RESTART and self.recent_h.get(h.seq) != h:   # (a second copy is a duplicate)
            self._restart(h, out, "restart")
            if h.seq > 0:                    # the new run's seq 0 .. seq-1 never arrived
                self.stats.gaps += 1
                self.stats.lost_messages += h.seq
                out.append(("gap", {"kind": "seq_gap", "first_seq": 0, "last_seq": h.seq - 1, "n": h.seq,
                                    "before": None, "after": h.first}))
        if self.expected is None:
            self.expected = h.seq            # joined the stream here: not a gap
        s = h.seq
        if s in self.held:
            self.stats.duplicates += 1
            return out
        if s < self.expected:
            prev = self.recent_h.get(s)
            if prev == h:
                self.stats.duplicates += 1
                return out
            if prev is None and self.expected - s <= self.recent.maxlen:
                self.stats.late += 1         # its gap was declared already
                return out
            # same seq with other content, or far behind any reorder window: the board's sequence
            # went back without RESTART (a restart without the flag, a counter that wrapped)
            self._restart(h, out, "seq_reset")
        if self.max_seen is not None and s < self.max_seen:
            self.stats.reordered += 1        # arrived after a later message: put back in order
        self.max_seen = s if self.max_seen is None else max(self.max_seen, s)
        if s == self.expected:
            self._deliver(h, items, out)
            self._drain_consecutive(out)
        else:
            self.held[s] = (now, h, items)
            if len(self.held) > self.window or h.flags & Flags.END_OF_STREAM:
                while self.held and (len(self.held) > self.window or h.flags & Flags.END_OF_STREAM):
                    self._release_lowest(out)
        return out

    def expire(self, now: float) -> list:
        out = []
        while self.held and min(t for t, _, _ in self.held.values()) < now - self.timeout_s:
            self._release_lowest(out)
        return out

    def drain(self, out=None) -> list:
        out = [] if out is None else out
        while self.held:
            self._release_lowest(out)
        return out


# ------------------------------------------------------------------------------------------------
class RingBuffer:
    """Bounded FIFO between the ingest and decode threads.

    Data entries count against ``max_messages`` / ``max_bytes``; markers (gaps, restarts, end of
    stream) never do. ``put_data`` returns False instead of blocking when full: the caller drops
    the chunk and accounts for it, and :meth:`mark_dropped` makes the next admitted data carry a gap
    marker (several consecutive dropped chunks give one marker with the summed span).
    """

    def __init__(self, max_messages: int, max_bytes: int):
        self.max_messages, self.max_bytes = max_messages, max_bytes
        self.q = collections.deque()
        self.n_msgs = self.n_bytes = self.n_items = 0
        self.cv = threading.Condition()
        self.pending_drop = None

    def put_marker(self, kind: str, info: dict):
        with self.cv:
            self._flush_pending(info.get("before"))
            self.q.append((kind, info))
            self.cv.notify()

    def flush_pending(self):
        """Queue the marker of chunks dropped since the last admitted entry (end of ingest)."""
        with self.cv:
            self._flush_pending(None)
            self.cv.notify()

    def _flush_pending(self, after):
        """``after``: stream position where the stream resumes (first item of what follows)."""
        if self.pending_drop is not None:
            self.q.append(("backpressure", {**self.pending_drop, "after": after}))
            self.pending_drop = None

    def put_data(self, h, items) -> bool:
        with self.cv:
            if self.n_msgs + 1 > self.max_messages or self.n_bytes + h.payload_len > self.max_bytes:
                return False
            self._flush_pending(h.first)
            self.q.append(("data", h, items))
            self.n_msgs += 1
            self.n_bytes += h.payload_len
            self.n_items += h.n_items
            self.cv.notify()
            return True

    def mark_dropped(self, h, before):
        with self.cv:
            if self.pending_drop is None:
                self.pending_drop = {"kind": "backpressure", "first_seq": h.seq, "last_seq": h.seq, "n": 1,
                                     "items": h.n_items, "before": before, "after": None}
            else:
                self.pending_drop.update(last_seq=h.seq, n=self.pending_drop["n"] + 1,
                                         items=self.pending_drop["items"] + h.n_items)

    def get(self, max_items: int, timeout: float):
        """Next entry: a marker tuple, or ``("batch", [(h, items), ...])`` of consecutive data up to
        ``max_items`` items (at least one message); None on timeout."""
        with self.cv:
            if not self.q and not self.cv.wait_for(lambda: bool(self.q), timeout):
                return None
            if self.q[0][0] != "data":
                return self.q.popleft()
            out, n = [], 0
            while self.q and self.q[0][0] == "data" and (not out or n + self.q[0][1].n_items <= max_items):
                _, h, items = self.q.popleft()
                out.append((h, items))
                n += h.n_items
                self.n_msgs -= 1
                self.n_bytes -= h.payload_len
                self.n_items -= h.n_items
            return ("batch", out)


# ------------------------------------------------------------------------------------------------
class RealtimeReceiver:
    """Real-time receiver (see the module docstring).

    Parameters
    ----------
    board : board data endpoint to connect a PULL socket to (the board binds PUSH), or None.
    gnuradio : GNU Radio ZMQ sink endpoint (raw items, no header), or None. Exactly one of the two.
    decoder_factory : zero-argument callable returning a decoder, or None (record only).
    out_dir : directory for frames / packets / events / raw stream files (None: no files).
    publish : endpoint to bind the PUB socket (frames, packets, events, status), or None.
    status : optional separate endpoint for the status PUB stream.
    spec : TMFrameSpec for space-packet extraction (default: ``decoder.spec`` when it has one).
    gnuradio_dtype, gnuradio_rate, gnuradio_socket : raw stream item type (numpy name), sample
        rate (Hz) and socket type ("pull" for a PUSH sink, "sub" for a PUB sink).
    record : also write the raw accepted stream to ``out_dir/stream.<ext>``.
    curve_dir : CURVE keys (needed to bind a non-loopback publish/status endpoint, and used as
        client keys towards a CURVE board).
    keep_frames : also keep every frame and packet in memory (``.frames`` / ``.packets``); for
        tests and short runs: a long-running receiver (``modem receive``) passes False.
    append : ``out_dir`` may already hold a run's output files; this run's frames, packets,
        events and raw stream are appended to them (``stats.json`` is this run's). Without it such
        an ``out_dir`` is refused (:class:`ConfigError` naming the files), so two runs are never
        mixed by accident.
    """

    #: the files a run writes in ``out_dir`` (and ``stream.<ext>``)
    OUTPUT_FILES = ("frames.bin", "frames.jsonl", "packets.bin", "packets.jsonl", "events.jsonl", "stats.json")

    def __init__(self, *, board: str | None = None, gnuradio: str | None = None, decoder_factory=None,
                 config: RealtimeConfig | None = None, out_dir=None, publish: str | None = None,
                 status: str | None = None, spec=None, gnuradio_dtype: str = "float32", gnuradio_rate: float = 1.0,
                 gnuradio_socket: str = "pull", record: bool = False, curve_dir=None, context=None,
                 keep_frames: bool = True, append: bool = False):
        import zmq  # noqa: PLC0415
        if (board is None) == (gnuradio is None):
            raise ConfigError("RealtimeReceiver: give exactly one of board= and gnuradio= endpoints")
        if out_dir is not None and not append and Path(out_dir).is_dir():
            old = sorted(p.name for p in Path(out_dir).iterdir()
                         if p.name in self.OUTPUT_FILES or p.name.startswith("stream."))
            if old:
                raise ConfigError(f"RealtimeReceiver: out_dir {str(out_dir)!r} already holds a run's output "
                                  f"({', '.join(old)}); give another directory, or append=True (--append) "
                                  "to add this run to it")
        if gnuradio_socket not in ("pull", "sub"):
            raise ConfigError(f"RealtimeReceiver: gnuradio_socket must be 'pull' or 'sub', got {gnuradio_socket!r}")
        gr_codes = {"float32": SampleDtype.FLOAT32, "int16": SampleDtype.INT16, "complex64": SampleDtype.COMPLEX64}
        if gnuradio is not None and gnuradio_dtype not in gr_codes:
            raise ConfigError(f"RealtimeReceiver: gnuradio_dtype must be one of {sorted(gr_codes)}, got {gnuradio_dtype!r}")
        for ep in (board, gnuradio):
            if ep is not None:
                is_loopback(ep)          # validates the endpoint syntax
        self.cfg = config or RealtimeConfig()
        self.stats = RealtimeStats()
        self.decoder_factory = decoder_factory
        self.decoder = decoder_factory() if decoder_factory is not None else None
        # the backend the FEC decoder runs on (the decoder's ``launcher``: modem.offline.receiver_for(meta,
        # modem.backend.fec_launcher(), decode_batch=1); decode_batch=1 keeps the latency to one push: the
        # GPU default holds up to 1024 codewords), reported in status; MODEM_BACKEND=gpu with a decoder on the CPU
        # is refused rather than silently run on the CPU
        from ..backend import launcher_name, requested_backend  # noqa: PLC0415
        self.backend = launcher_name(getattr(self.decoder, "launcher", None))
        if requested_backend() == "gpu" and self.decoder is not None and self.backend == "cpu":
            raise BackendUnavailable("RealtimeReceiver: MODEM_BACKEND=gpu requested, but the decoder_factory's "
                                     "decoder runs on the CPU (give it launcher=modem.backend.fec_launcher())")
        self.spec = spec if spec is not None else getattr(self.decoder, "spec", None)
        self.record = record or decoder_factory is None
        self.out_dir = Path(out_dir) if out_dir is not None else None
        self.ctx = context or zmq.Context.instance()
        self._raw_code = gr_codes.get(gnuradio_dtype)
        self._gr_rate = float(gnuradio_rate)
        if gnuradio is not None:
            self.sock = self.ctx.socket(zmq.SUB if gnuradio_socket == "sub" else zmq.PULL)
            if gnuradio_socket == "sub":
                self.sock.setsockopt(zmq.SUBSCRIBE, b"")
        else:
            self.sock = self.ctx.socket(zmq.PULL)
        self.sock.rcvhwm = 10000
        self.sock.linger = 0
        connect_socket(self.sock, board or gnuradio, curve_dir)
        self.raw = gnuradio is not None
        self.pub = self.status_sock = None
        self.publish_endpoint = self.status_endpoint = None
        if publish is not None:
            self.pub = self.ctx.socket(zmq.PUB)
            self.pub.linger = 0
            self.publish_endpoint = bind_socket(self.pub, publish, curve_dir)
        if status is not None:
            self.status_sock = self.ctx.socket(zmq.PUB)
            self.status_sock.linger = 0
            self.status_endpoint = bind_socket(self.status_sock, status, curve_dir)
        self.ring = RingBuffer(self.cfg.ring_messages, self.cfg.ring_bytes)
        self.tracker = SequenceTracker(self.cfg.reorder_window, self.cfg.reorder_timeout_s, self.stats)
        self.events: list = []
        self.frames: list = []           # every frame out (valid or not), kept for tests when keep_frames
        self.packets: list = []
        self.keep = bool(keep_frames)
        self._files = {}
        self._stream_kind = None         # (payload_kind, sample_dtype, stream_id) fixed by the first message
        self._gr_index = 0
        self._stop = threading.Event()
        self._ingest_done = threading.Event()   # the ingest thread has put its last entry in the ring
        self._discard = threading.Event()
        self.eos_event = threading.Event()
        self._decoder_totals = collections.Counter()   # counters of the decoders reset so far
        self._decoder_live: dict = {}                   # + the running decoder's, after each batch
        self._lock_state = "search"
        self._last_status = 0.0
        self._rate = {"t": time.monotonic(), "items": 0, "value": 0.0}
        self._stream_rate = 0.0
        self._depack = None
        if self.spec is not None:
            from ..framing.packets import TMDepacketizer  # noqa: PLC0415
            self._depack = TMDepacketizer(self.spec)
            self._depack_state = self._depack.initial_state()
        if self.out_dir is not None:
            self.out_dir.mkdir(parents=True, exist_ok=True)
        self._threads = []

    # ------------------------------------------------------------------------------------ control
    def start(self) -> "RealtimeReceiver":
        for target, name in ((self._ingest_loop, "modem-ingest"), (self._decode_loop, "modem-decode")):
            t = threading.Thread(target=target, name=name, daemon=True)
            t.start()
            self._threads.append(t)
        return self

    def wait_eos(self, timeout: float | None = None) -> bool:
        """Block until an END_OF_STREAM message has been decoded and flushed (True) or timeout."""
        return self.eos_event.wait(timeout)

    def stop(self, drain: bool = True) -> RealtimeStats:
        """Stop both threads, close files and sockets; return the stats. ``drain``: decode what is
        still in the ring first; otherwise it is discarded and counted (``discarded_at_stop``).
        The decoder is flushed either way."""
        if not drain:
            self._discard.set()
        self._stop.set()
        for t in self._threads:
            t.join()
        self._threads = []
        for f in self._files.values():
            f.close()
        self._files = {}
        if self.out_dir is not None:
            (self.out_dir / "stats.json").write_text(json.dumps(self.status(), indent=1, default=str))
        self.sock.close()
        for s in (self.pub, self.status_sock):   # what is queued for a connected subscriber still goes
            if s is not None:                    # out (the context's I/O thread, up to 2 s; close does not wait)
                s.close(linger=2000)
        return self.stats

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # ------------------------------------------------------------------------------------ ingest
    def _reject(self, reason: str, msg: str):
        self.stats.rejected[reason] = self.stats.rejected.get(reason, 0) + 1
        log.warning("rejected message (%s): %s", reason, msg)

    def _ingest_loop(self):
        try:
            self._ingest()
        finally:
            # what is still held for reordering is delivered (behind its gap marker), chunks dropped
            # since the last admitted entry get their marker, and only then may the decoder end
            try:
                if not self.raw:
                    for e in self.tracker.drain():
                        self._enqueue(e)
                self.ring.flush_pending()
            finally:
                self._ingest_done.set()

    def _ingest(self):
        import zmq  # noqa: PLC0415
        poller = zmq.Poller()
        poller.register(self.sock, zmq.POLLIN)
        while not self._stop.is_set():
            if poller.poll(20):
                while True:
                    try:
                        parts = self.sock.recv_multipart(flags=zmq.NOBLOCK, copy=False)
                    except zmq.Again:
                        break
                    now = time.monotonic()
                    if self.raw:
                        self._ingest_raw(parts)
                    else:
                        self._ingest_board(parts, now)
            if not self.raw:
                for e in self.tracker.expire(time.monotonic()):
                    self._enqueue(e)

    def _ingest_raw(self, parts):
        """GNU Radio ZMQ sink: each message is raw items (no header); index counts items."""
        from .protocol import itemsize, numpy_dtype  # noqa: PLC0415
        code = self._raw_code
        buf = b"".join(p.buffer for p in parts) if len(parts) > 1 else parts[0].buffer
        size = itemsize(code)
        reason = None
        if len(buf) % size:
            reason, msg = "length_mismatch", f"raw message of {len(buf)} octets is not whole {size}-octet items"
        elif len(buf) > self.cfg.max_payload_len:
            reason, msg = "oversize", f"raw message of {len(buf)} octets exceeds {self.cfg.max_payload_len}"
        if reason is not None:
            # no sequence numbers here: the hole in the sample stream is marked where it happened,
            # so the decoder re-acquires after it instead of splicing across it
            self._reject(reason, msg)
            self._enqueue(("rejected", {"kind": "rejected", "reason": reason, "octets": len(buf),
                                        "before": self._gr_index, "after": None}))
            return
        items = np.frombuffer(buf, dtype=numpy_dtype(code))
        h = Header(stream_id=0, payload_kind=int(PayloadKind.SAMPLES), sample_dtype=int(code), flags=0,
                   seq=self.stats.messages, first=self._gr_index, sample_rate=self._gr_rate, n_items=items.size,
                   payload_len=len(buf))
        self._gr_index += items.size
        self.stats.messages += 1
        self.stats.bytes += len(buf)
        self._enqueue(("data", h, items))

    def _ingest_board(self, parts, now):
        try:
            h, items = parse_message([p.buffer for p in parts], self.cfg.max_payload_len)
        except MessageError as exc:
            self._reject(exc.reason, str(exc))
            return
        want = self.cfg.stream_id
        if want is None and self._stream_kind is not None:
            want = self._stream_kind[2]
        if want is not None and h.stream_id != want:
            self._reject("foreign_stream", f"stream id {h.stream_id}, receiving {want}")
            return
        kind = (h.payload_kind, h.sample_dtype, h.stream_id)
        if self._stream_kind is None:
            self._stream_kind = kind
        elif kind != self._stream_kind:
            self._reject("kind_changed", f"payload kind/dtype {kind[:2]} after {self._stream_kind[:2]}")
            return
        self.stats.messages += 1
        self.stats.bytes += h.payload_len
        for e in self.tracker.push(h, items, now):
            self._enqueue(e)

    def _enqueue(self, e):
        kind = e[0]
        if kind == "data":
            _, h, items = e
            if h.n_items == 0:
                return
            if self.ring.put_data(h, items):
                self.stats.items += h.n_items
            else:
                self.stats.backpressure_chunks += 1
                self.stats.backpressure_items += h.n_items
                self.ring.mark_dropped(h, h.first)
            self.stats.backlog_messages = self.ring.n_msgs
            self.stats.backlog_items = self.ring.n_items
            self.stats.backlog_max_messages = max(self.stats.backlog_max_messages, self.ring.n_msgs)
        else:
            self.ring.put_marker(kind, e[1])

    # ------------------------------------------------------------------------------------ decode
    def _decode_loop(self):
        while True:
            e = self.ring.get(self.cfg.batch_items, 0.05)
            if e is None:
                if self._ingest_done.is_set():      # set after the ingest thread's last entry
                    break
            elif self._discard.is_set():
                if e[0] == "batch":
                    self.stats.discarded_at_stop += sum(h.n_items for h, _ in e[1])
                else:                                 # markers discarded with it are still logged
                    self._event(e[1])
            else:
                try:
                    self._decode_entry(e)
                except Exception as exc:  # noqa: BLE001  (counted, logged, decoder reset: the stream goes on)
                    self._decode_error(e, exc)
            self.stats.backlog_messages = self.ring.n_msgs
            self.stats.backlog_items = self.ring.n_items
            now = time.monotonic()
            if now - self._last_status >= self.cfg.status_interval_s:
                self._last_status = now
                self._publish_status()
        try:
            self._resync(None)
        except Exception as exc:  # noqa: BLE001
            self._decode_error(("flush",), exc)
        self._publish_status()

    def _decode_entry(self, e):
        if e[0] == "batch":
            self._decode_batch(e[1])
        elif e[0] == "eos":
            try:
                self._resync(None)
            finally:                              # counted and logged even if the decoder's flush raises
                self.stats.eos += 1
                self._event(e[1])
                self.eos_event.set()
        else:
            self._resync(e[1])

    def _decode_error(self, e, exc):
        """An exception while decoding / writing an entry: the entry's data are lost (counted, an
        event), the decoder is replaced by a fresh one, and the decode thread goes on."""
        info = {"kind": "decode_error", "error": f"{type(exc).__name__}: {exc}", "during": e[0]}
        if e[0] == "batch":
            n = sum(h.n_items for h, _ in e[1])
            self.stats.decode_error_items += n
            info.update(first_seq=e[1][0][0].seq, last_seq=e[1][-1][0].seq, items=n)
        self.stats.decode_errors += 1
        log.error("decode thread: %s on %s; decoder reset, stream goes on", info["error"], e[0], exc_info=exc)
        if self.decoder_factory is not None:
            self._decoder_totals.update(self._decoder_counts())
            self.decoder = self.decoder_factory()
            self._decoder_live = dict(self._decoder_totals)
            self._lock_state = "search"
            self._valid_since_resync = False
        if e[0] == "eos":
            self.eos_event.set()
        try:
            self._event(info)
        except Exception:  # noqa: BLE001  (the outputs themselves fail: the counter and the log remain)
            log.exception("decode thread: could not record the decode_error event")

    def _decode_batch(self, batch):
        h0 = batch[0][0]
        items = np.concatenate([b[1] for b in batch]) if len(batch) > 1 else batch[0][1]
        self.stats.batches += 1
        self.stats.decoded_items += items.size
        if self.record and self.out_dir is not None:
            self._file(f"stream.{_EXT[SampleDtype(h0.sample_dtype)]}").write(items.tobytes())
        if h0.payload_kind == PayloadKind.TIME_TAGS and items.size > 1:
            span_s = (int(items[-1]) - int(items[0])) / h0.sample_rate
            self.stats.stream_time_s += span_s
            if span_s > 0:
                self._stream_rate = items.size / span_s
        elif h0.payload_kind == PayloadKind.SAMPLES:
            self.stats.stream_time_s += items.size / h0.sample_rate
            self._stream_rate = h0.sample_rate
        if self.decoder is not None:
            if h0.payload_kind == PayloadKind.TIME_TAGS and any(h.sample_rate != 1e12 for h, _ in batch):
                # tags in board ticks of 1/sample_rate s: the decoders take ps
                items = np.concatenate([_ticks_to_ps(b, h.sample_rate) for h, b in batch])
            self._frames_out(self.decoder.push(items))
            self._update_lock()
            live = collections.Counter(self._decoder_totals)
            live.update(self._decoder_counts())
            self._decoder_live = dict(live)      # status() reads this snapshot (decode thread writes it)

    def _resync(self, info):
        """Flush and reset the decoder (gap, overflow, restart, backpressure drop, end of stream).
        The marker is counted and logged even if the decoder's flush raises."""
        try:
            if self.decoder is not None:
                self._frames_out(self.decoder.flush())
                self._decoder_totals.update(self._decoder_counts())
                if hasattr(self.decoder, "reset"):
                    self.decoder.reset()
                else:
                    self.decoder = self.decoder_factory()
                self._decoder_live = dict(self._decoder_totals)
                self._lock_state = "search"
                self._valid_since_resync = False
        finally:
            if info is not None:
                if self._depack is not None:
                    # the frames after the gap do not continue the bit stream: the packet in progress
                    # is dropped (counted in the depacketizer state), never completed with another's
                    # tail (the VC frame count is only 8 bits and the FHP may match by chance)
                    _, self._depack_state = self._depack.lose_sync(self._depack_state)
                self.stats.resyncs += 1
                self._event(info)
                log.warning("stream %s: seq %s..%s (%s messages), stream position %s -> %s; decoder re-acquires",
                            info.get("kind"), info.get("first_seq", info.get("seq")), info.get("last_seq", ""),
                            info.get("n", ""), info.get("before"), info.get("after"))

    def _decoder_counts(self) -> dict:
        """The current decoder's counters (numbers; lists as ``<name>_count``) since its last reset."""
        st = getattr(self.decoder, "stats", None)
        out = {}
        for k in getattr(st, "__dataclass_fields__", ()):
            v = getattr(st, k)
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                out[k] = v
            elif isinstance(v, list):
                out[k + "_count"] = len(v)
        return out

    def _update_lock(self):
        """"frame": a valid frame came out since the last resync; "clock": the slot clock tracks
        (time-tag decoders); "search" otherwise."""
        cs = getattr(self.decoder, "_clock_state", None)
        if self._valid_since_resync:
            self._lock_state = "frame"
        elif cs is not None and int(getattr(cs, "mode", 0)) == 1:
            self._lock_state = "clock"
        else:
            self._lock_state = "search"

    _valid_since_resync = False

    def _frames_out(self, frames):
        for fr in frames:
            valid = bool(fr.valid)
            self.stats.frames += 1
            self.stats.frames_valid += int(valid)
            self.stats.frames_bad += int(not valid)
            self._valid_since_resync |= valid
            meta = {"n": self.stats.frames - 1, "valid": valid, "len": len(fr.data)}
            for k in ("t_ps", "crc_ok", "fecf_ok", "iterations", "sync_metric", "codewords"):
                if hasattr(fr, k):
                    v = getattr(fr, k)
                    meta[k] = list(v) if isinstance(v, tuple) else v
            if self.keep:
                self.frames.append(fr)
            if self.out_dir is not None:
                self._file("frames.jsonl", "a").write(json.dumps(meta, default=float) + "\n")
                if valid:
                    self._file("frames.bin").write(fr.data)
            if not valid:
                continue                  # never passed on as good data
            if self.pub is not None:
                self.pub.send_multipart([b"frame", json.dumps(meta, default=float).encode(), fr.data])
            if self._depack is not None:
                out, self._depack_state = self._depack.push([fr.data], self._depack_state)
                for pk in out.packets:
                    self._packet_out(pk)

    def _packet_out(self, pk):
        raw = pk.to_bytes()
        self.stats.packets += 1
        meta = {"n": self.stats.packets - 1, "apid": pk.header.apid, "seq_count": pk.header.seq_count,
                "len": len(raw)}
        if self.keep:
            self.packets.append(raw)
        if self.out_dir is not None:
            self._file("packets.jsonl", "a").write(json.dumps(meta) + "\n")
            self._file("packets.bin").write(raw)
        if self.pub is not None:
            self.pub.send_multipart([b"packet", json.dumps(meta).encode(), raw])

    def _event(self, info):
        info = {**info, "wall_time": time.time()}
        self.events.append(info)
        if self.out_dir is not None:
            self._file("events.jsonl", "a").write(json.dumps(info, default=str) + "\n")
        if self.pub is not None:
            self.pub.send_multipart([b"event", json.dumps(info, default=str).encode()])

    def _file(self, name, mode="ab"):
        """Output file ``out_dir/name`` opened once for appending ("ab" binary, "a" text)."""
        if name not in self._files:
            self._files[name] = open(self.out_dir / name, mode)
        return self._files[name]

    # ------------------------------------------------------------------------------------ status
    def status(self) -> dict:
        """Live status: lock state, rates, FER, backlog, drop counters (a JSON-able dict)."""
        s = self.stats
        now = time.monotonic()
        r = self._rate
        if now - r["t"] >= 0.5:
            r["value"] = (s.decoded_items - r["items"]) / (now - r["t"])
            r.update(t=now, items=s.decoded_items)
        d = asdict(s)
        d.update(backend=self.backend, lock=self._lock_state, item_rate_stream=self._stream_rate, ingest_items_per_s=r["value"],
                 fer=(s.frames_bad / s.frames) if s.frames else None,
                 dropped_messages=s.lost_messages + s.backpressure_chunks,
                 rejected_total=sum(s.rejected.values()), decoder=dict(self._decoder_live),
                 depacketizer=None if self._depack is None else
                 {k: v for k, v in asdict(self._depack_state).items() if isinstance(v, int)},
                 kind=("timetags" if self._stream_kind and self._stream_kind[0] == PayloadKind.TIME_TAGS
                       else "samples" if self.raw or self._stream_kind else None))
        return d

    def _publish_status(self):
        st = json.dumps(self.status(), default=str).encode()
        for s in (self.pub, self.status_sock):
            if s is not None:
                s.send_multipart([b"status", st])

    def metrics_registry(self):
        """A prometheus_client CollectorRegistry (own, not the global one) exporting :meth:`status`."""
        from prometheus_client import CollectorRegistry  # noqa: PLC0415
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily  # noqa: PLC0415
        rx = self

        class _Collector:
            def collect(self):
                st = rx.status()
                for name, key, doc in (("messages", "messages", "valid data messages received"),
                                       ("payload_bytes", "bytes", "payload octets received"),
                                       ("gaps", "gaps", "sequence gaps"),
                                       ("lost_messages", "lost_messages", "sequence numbers never received"),
                                       ("duplicates", "duplicates", "duplicate messages discarded"),
                                       ("late_messages", "late", "messages after their gap was declared"),
                                       ("reordered", "reordered", "messages put back in order"),
                                       ("overflows", "overflows", "board FIFO overflows flagged"),
                                       ("restarts", "restarts", "board restarts"),
                                       ("seq_resets", "seq_resets", "seq went back without RESTART"),
                                       ("time_jumps", "time_jumps", "tag time base went back without RESTART"),
                                       ("index_jumps", "index_jumps", "sample index discontinuities without a flag"),
                                       ("backpressure_chunks", "backpressure_chunks", "chunks dropped, ring full"),
                                       ("backpressure_items", "backpressure_items", "items dropped, ring full"),
                                       ("resyncs", "resyncs", "decoder resets after a gap"),
                                       ("decode_errors", "decode_errors", "decode-thread exceptions (batch lost)"),
                                       ("decode_error_items", "decode_error_items", "items lost to decode errors"),
                                       ("packets", "packets", "space packets out")):
                    yield CounterMetricFamily(f"modem_rx_{name}", doc, value=st[key])
                c = CounterMetricFamily("modem_rx_rejected", "malformed messages rejected", labels=["reason"])
                for reason, n in st["rejected"].items():
                    c.add_metric([reason], n)
                yield c
                c = CounterMetricFamily("modem_rx_frames", "transfer frames out", labels=["valid"])
                c.add_metric(["true"], st["frames_valid"])
                c.add_metric(["false"], st["frames_bad"])
                yield c
                for name, val, doc in (("backlog_messages", st["backlog_messages"], "messages waiting in the ring"),
                                       ("backlog_items", st["backlog_items"], "items waiting in the ring"),
                                       ("item_rate", st["item_rate_stream"], "photons (tags) or samples per "
                                                                             "second of stream time"),
                                       ("fer", st["fer"] if st["fer"] is not None else float("nan"),
                                        "frames bad / frames out"),
                                       ("lock", {"search": 0, "clock": 1, "frame": 2}[st["lock"]],
                                        "0 search, 1 slot clock tracking, 2 frames valid")):
                    yield GaugeMetricFamily(f"modem_rx_{name}", doc, value=val)

        reg = CollectorRegistry()
        reg.register(_Collector())
        return reg
