# SPDX-License-Identifier: Apache-2.0
"""Capture-board emulator: streams time tags or samples over ZeroMQ in the board wire protocol.

``BoardEmulator(source, data_endpoint, control_endpoint=None, ...)`` binds a PUSH data socket (the
board end; receivers connect PULL) and optionally a REP control socket (configure / start / stop /
status, :mod:`modem.board.control`). It cuts the source into messages of ``items_per_message``
items, numbers them (``seq`` +1 per message from 0), and sends them at ``rate_factor`` times real
time (1 = real time, 0 = as fast as the socket takes them), with fault injection
(:class:`FaultPlan`): dropped, duplicated and reordered messages, a FIFO overflow (a lost message
and the OVERFLOW flag on the next one) and a restart (seq back to 0 with the RESTART flag). The first message of every :meth:`run`
carries RESTART too (the firmware rule for the first message after a start).
Every injected fault is logged in ``emulator.log`` (a list of ``(kind, seq)``) so tests can
compare the receiver's accounting with what was done.

Sources (anything with ``kind``, ``sample_dtype``, ``sample_rate``, ``meta`` and ``items()``
yielding 1-D arrays): :class:`SimulatedLink` (a live SCPPM link: random space packets -> TM frames
-> SCPPM -> SNSPD time tags, optionally looped forever), :class:`ArraySource` (an array in
memory) and :func:`capture_source` (a capture file through ``modem.io.open_capture``).

Pacing: message ``i`` leaves at wall time ``start + (stream time at its last item) / rate_factor``
where stream time is ``(tag - first tag) / tick rate`` for tags and ``sample index / sample rate``
for samples. Sending: with ``rate_factor > 0`` a board cannot wait, so a full send queue (receiver
not reading, ``sndhwm`` messages queued) loses the message and flags OVERFLOW on the next one
(counted in register ``overflows``); with ``rate_factor == 0`` sends block (lossless replay).
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, field

import numpy as np

from ..errors import ConfigError
from .control import RegisterFile, bind_socket, handle_request
from .protocol import Flags, PayloadKind, SampleDtype, pack_message

__all__ = ["FaultPlan", "SimulatedLink", "ArraySource", "capture_source", "BoardEmulator"]


# ------------------------------------------------------------------------------------------ faults
def _seq_set(name, v) -> frozenset:
    try:
        s = frozenset(int(x) for x in v)
    except (TypeError, ValueError):
        raise ConfigError(f"FaultPlan: {name} must be message numbers, got {v!r}") from None
    if any(x < 0 for x in s):
        raise ConfigError(f"FaultPlan: {name} must be message numbers >= 0, got {sorted(s)}")
    return s


@dataclass(frozen=True)
class FaultPlan:
    """Faults to inject, by message number ``n`` (0-based count of source messages, restarts included).

    drop : messages not sent (the receiver sees a sequence gap).
    duplicate : messages sent twice in a row.
    reorder : message ``n`` is held and sent after message ``n+1`` (a swap; keep swaps apart). The
        log has only the swaps made: none for the last message, one before a restart or the
        RESTART message itself (sent in order), and a held message that a full send queue then
        loses is logged as a ``drop``.
    overflow : message ``n`` is lost in the board FIFO; ``n+1`` carries the OVERFLOW flag (seq contiguous).
    restart : the board restarts before message ``n``: seq back to 0 and the RESTART flag on it.
    drop_rate, duplicate_rate, reorder_rate : random faults per message (seeded by ``seed``) on top.
    """

    drop: frozenset = frozenset()
    duplicate: frozenset = frozenset()
    reorder: frozenset = frozenset()
    overflow: frozenset = frozenset()
    restart: frozenset = frozenset()
    drop_rate: float = 0.0
    duplicate_rate: float = 0.0
    reorder_rate: float = 0.0
    seed: int = 0

    def __post_init__(self):
        for name in ("drop", "duplicate", "reorder", "overflow", "restart"):
            object.__setattr__(self, name, _seq_set(name, getattr(self, name)))
        for name in ("drop_rate", "duplicate_rate", "reorder_rate"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0.0 <= v <= 0.5:
                raise ConfigError(f"FaultPlan: {name} must be in [0, 0.5], got {v!r}")
        if 0 in self.restart:
            raise ConfigError("FaultPlan: restart must be at message >= 1 (message 0 always starts the stream)")

    @property
    def any(self) -> bool:
        return bool(self.drop or self.duplicate or self.reorder or self.overflow or self.restart
                    or self.drop_rate or self.duplicate_rate or self.reorder_rate)


# ------------------------------------------------------------------------------------------ sources
@dataclass(frozen=True)
class SimulatedLink:
    """A live simulated SCPPM downlink as SNSPD time tags (the transmitter side of the test link).

    Random space packets (APIDs 0x100..0x104, 50..899 octets) -> TMPacketizer(frame_len, scid,
    vcid) -> ASM + SCPPM(M, rate) -> simulate_time_tags(ns, nb, slot_ps, clock_offset_ppm,
    jitter_rms_ps, dark counts, n_channels). ``loop``: repeat the same codewords forever, shifted
    by the exact duration of the block (continuous slot clock), for long real-time runs.
    """

    order: int = 16
    rate: str = "1/2"
    frame_len: int = 1115
    scid: int = 0x42
    vcid: int = 1
    n_frames: int = 14
    ns: float = 3.0
    nb: float = 0.02
    slot_ps: float = 1000.0
    clock_offset_ppm: float = 20.0
    jitter_rms_ps: float = 50.0
    dark_count_rate_hz: float = 1e4
    n_channels: int = 2
    t0_ps: float = 12345.0
    seed: int = 1
    loop: bool = False

    kind = PayloadKind.TIME_TAGS
    sample_dtype = SampleDtype.INT64_TAG
    sample_rate = 1e12

    def __post_init__(self):
        if not isinstance(self.n_frames, int) or self.n_frames < 1:
            raise ConfigError(f"SimulatedLink: n_frames must be an int >= 1, got {self.n_frames!r}")

    @property
    def code(self):
        from ..fec.scppm import SCPPMCode  # noqa: PLC0415
        return SCPPMCode(M=self.order, rate=self.rate)

    @property
    def spec(self):
        from ..framing.tm import TMFrameSpec  # noqa: PLC0415
        return TMFrameSpec(frame_len=self.frame_len, scid=self.scid, vcid=self.vcid)

    @property
    def nb_detected(self) -> float:
        """Background counts per slot the receiver sees (background + dark counts of all channels)."""
        return self.nb + self.dark_count_rate_hz * self.n_channels * self.slot_ps * 1e-12

    @property
    def meta(self) -> dict:
        """Link parameters in the capture-metadata schema of ``modem.offline.receiver_for``."""
        return {"chain": "scppm", "kind": "timetags", "M": self.order, "rate": self.rate,
                "frame_len": self.frame_len, "scid": self.scid, "vcid": self.vcid, "slot_width_ps": self.slot_ps,
                "ns": self.ns, "nb": self.nb_detected}

    def frames(self) -> list:
        """The transfer frames (bytes) the link carries, in order."""
        from ..framing.packets import TMPacketizer, build_space_packet  # noqa: PLC0415
        rng = np.random.default_rng(self.seed)
        pz = TMPacketizer(self.spec)
        st = pz.initial_state()
        out, i = [], 0
        while len(out) < self.n_frames:
            pk = build_space_packet(0x100 + (i % 5), rng.bytes(int(rng.integers(50, 900))), seq_count=i % 16384)
            got, st = pz.push([pk], st)
            out += got
            i += 1
        return out[:self.n_frames]

    def _block(self):
        from ..fec.scppm import SCPPMTransmitter, attach_asm, slice_blocks  # noqa: PLC0415
        from ..framing.bits import unpack_bytes  # noqa: PLC0415
        from ..sync.timetags import TimeTagConfig, simulate_time_tags  # noqa: PLC0415
        frames = self.frames()
        bits = np.stack([unpack_bytes(f) for f in frames])
        u = slice_blocks(attach_asm(bits).reshape(-1), self.code.k)
        x = SCPPMTransmitter(self.code).modulate(u)
        cfg = TimeTagConfig(slot_width_ps=self.slot_ps, clock_offset_ppm=self.clock_offset_ppm,
                            jitter_rms_ps=self.jitter_rms_ps, dark_count_rate_hz=self.dark_count_rate_hz,
                            n_channels=self.n_channels, t0_ps=self.t0_ps)
        tags = simulate_time_tags(x, self.ns, self.nb, np.random.default_rng(self.seed + 1), cfg)
        period = round(x.size * self.slot_ps * (1 + self.clock_offset_ppm * 1e-6))
        return tags.t_ps, period, x.shape[0]

    def tags(self) -> np.ndarray:
        """One pass of the link's time tags (int64 ps, non-decreasing)."""
        return self._block()[0]

    def items(self):
        t, period, _ = self._block()
        rep = 0
        last = None
        while True:
            tt = t + rep * period
            if last is not None and tt[0] < last:       # jitter across the loop seam
                tt = np.maximum(tt, last)
            yield tt
            last = int(tt[-1])
            rep += 1
            if not self.loop:
                return


@dataclass
class ArraySource:
    """A 1-D array in memory as a board stream (time tags int64, or samples)."""

    data: np.ndarray
    sample_rate: float = 1e12
    meta: dict = field(default_factory=dict)
    loop: bool = False

    def __post_init__(self):
        a = np.asarray(self.data)
        if a.ndim != 1:
            raise ConfigError(f"ArraySource: data must be 1-D, got shape {a.shape}")
        codes = {np.dtype("int64"): SampleDtype.INT64_TAG, np.dtype("float32"): SampleDtype.FLOAT32,
                 np.dtype("int16"): SampleDtype.INT16, np.dtype("complex64"): SampleDtype.COMPLEX64}
        if a.dtype not in codes:
            raise ConfigError(f"ArraySource: dtype must be int64 tags or float32/int16/complex64 samples, got {a.dtype}")
        self.data = a
        self.sample_dtype = codes[a.dtype]
        self.kind = PayloadKind.TIME_TAGS if self.sample_dtype == SampleDtype.INT64_TAG else PayloadKind.SAMPLES

    def items(self):
        while True:
            yield self.data
            if not self.loop:
                return


def capture_source(path, chunk_items: int = 1 << 16):
    """A capture file (``modem.io.open_capture``) as a board stream (tags or float32 samples)."""
    try:
        from ..io import open_capture  # noqa: PLC0415
    except ImportError as exc:
        raise ConfigError(f"capture_source: modem.io.open_capture is not available in this build ({exc})") from None

    class _Capture:
        def __init__(self):
            with open_capture(path) as cap:
                self.meta = dict(cap.meta)
                # the stream is the capture's tags with its channel delays applied (a board merges its
                # channels with their input delays applied, fpga/README.md): not to be applied again
                self.meta.pop("channel_delays_ps", None)
                self.kind = PayloadKind.TIME_TAGS if cap.kind == "timetags" else PayloadKind.SAMPLES
                rate = getattr(cap, "sample_rate", 0.0) or self.meta.get("sample_rate_hz") or \
                    self.meta.get("sample_rate") or \
                    float(self.meta.get("slot_rate_hz", 0.0)) * float(self.meta.get("sps", 0.0)) or 1.0
            self.sample_dtype = SampleDtype.INT64_TAG if self.kind == PayloadKind.TIME_TAGS else SampleDtype.FLOAT32
            self.sample_rate = 1e12 if self.kind == PayloadKind.TIME_TAGS else float(rate)

        def items(self):
            with open_capture(path) as cap:
                for c in cap.chunks(chunk_items):
                    yield np.asarray(c, dtype=np.int64 if self.kind == PayloadKind.TIME_TAGS else np.float32)

    return _Capture()


# ------------------------------------------------------------------------------------------ emulator
class BoardEmulator:
    """Board emulator (see the module docstring).

    Parameters
    ----------
    source : a stream source (SimulatedLink, ArraySource, capture_source(...)).
    data_endpoint : where the PUSH data socket binds (``tcp://127.0.0.1:*`` picks a free port).
    control_endpoint : REP control socket, or None (then streaming starts at :meth:`run`).
    items_per_message, stream_id, rate_factor : initial register values.
    faults : FaultPlan.   curve_dir : CURVE keys for non-loopback binds.   sndhwm : send queue depth.
    """

    def __init__(self, source, data_endpoint: str = "tcp://127.0.0.1:*", control_endpoint: str | None = None, *,
                 items_per_message: int = 4096, stream_id: int = 0, rate_factor: float = 0.0,
                 faults: FaultPlan | None = None, curve_dir=None, sndhwm: int = 1000, context=None):
        import zmq  # noqa: PLC0415
        self.source = source
        self.faults = faults or FaultPlan()
        self.regs = RegisterFile(stream_id=stream_id, payload_kind=int(source.kind), sample_dtype=int(source.sample_dtype),
                                 sample_rate_hz=float(source.sample_rate))
        resp = handle_request(self.regs, json.dumps({"cmd": "configure", "set": {
            "items_per_message": items_per_message, "stream_id": stream_id, "rate_factor": rate_factor}}).encode())
        if not resp["ok"]:
            raise ConfigError(f"BoardEmulator: {resp['error']}")
        self.ctx = context or zmq.Context.instance()
        self.data = self.ctx.socket(zmq.PUSH)
        self.data.sndhwm = sndhwm
        self.data.linger = 1000
        self.data_endpoint = bind_socket(self.data, data_endpoint, curve_dir)
        self.control = None
        self.control_endpoint = None
        if control_endpoint is not None:
            self.control = self.ctx.socket(zmq.REP)
            self.control.linger = 0
            self.control_endpoint = bind_socket(self.control, control_endpoint, curve_dir)
        self.log: list = []              # (kind, message number n, seq) of every injected fault
        self.sent_seq: list = []         # seq of every message put on the wire, in order
        self._stop = False

    # -------------------------------------------------------------------------------------------
    def _on_configure(self, new):
        if new["payload_kind"] != int(self.source.kind) or new["sample_dtype"] != int(self.source.sample_dtype):
            raise ConfigError(f"configure: this source streams payload_kind {int(self.source.kind)} sample_dtype "
                              f"{int(self.source.sample_dtype)}")

    def _serve_control(self, timeout_ms: int) -> None:
        if self.control is None:
            return
        if self.control.poll(timeout_ms):
            raw = self.control.recv()
            rep = handle_request(self.regs, raw, self._on_configure)
            if rep.get("ok"):                    # link parameters of the source, for the receiver
                rep["meta"] = getattr(self.source, "meta", {})
            self.control.send(json.dumps(rep).encode())

    def stop(self):
        self._stop = True

    def _messages(self):
        """(items, index of the first item) per message of items_per_message items from the source
        (views where a message lies inside one source array; no re-copying of the source)."""
        n = int(self.regs.snapshot()["items_per_message"])
        pending, have, index = [], 0, 0
        for a in self.source.items():
            pos = 0
            if have:
                if have + a.size < n:
                    pending.append(a)
                    have += a.size
                    continue
                pos = n - have
                yield np.concatenate(pending + [a[:pos]]), index
                index += n
                pending, have = [], 0
            while a.size - pos >= n:
                yield a[pos:pos + n], index
                index += n
                pos += n
            if pos < a.size:
                pending, have = [a[pos:]], a.size - pos
        if have:
            yield np.concatenate(pending), index

    def run(self, autostart: bool | None = None, max_messages: int | None = None) -> dict:
        """Stream the source (blocking) until it ends, :meth:`stop`, or ``max_messages``; return the stats.

        Without a control socket (or with ``autostart``) streaming starts at once; otherwise it
        waits for a ``start`` request and pauses on ``stop``.
        """
        import zmq  # noqa: PLC0415
        if autostart or (autostart is None and self.control is None):
            self.regs.set("running", 1)
        while not self.regs.snapshot()["running"] and not self._stop:
            self._serve_control(100)
        regs = self.regs.snapshot()
        rate = float(regs["rate_factor"])
        tags = self.source.kind == PayloadKind.TIME_TAGS
        rng = np.random.default_rng(self.faults.seed)
        fp = self.faults
        # the first message of a run carries RESTART (firmware rule: first message after a start), so a
        # receiver that stayed up across runs restarts its sequence instead of taking it for duplicates
        seq, held, held_n, overflow_next, restart_next = 0, None, None, False, True
        t_wall0, t_stream0 = time.perf_counter(), None
        n_msg = 0

        def send_held():
            # a held message that cannot be sent (queue full) is lost after its seq was used: the
            # receiver sees a sequence gap, so it is logged as a drop, not as the reorder planned
            if not send(*held):
                self.log[self.log.index(("reorder", held_n, held[1]))] = ("drop", held_n, held[1])

        def send_held_in_order():
            i = self.log.index(("reorder", held_n, held[1]))
            if send(*held):
                del self.log[i]
            else:
                self.log[i] = ("drop", held_n, held[1])

        def send(parts, s):
            flags_nb = 0 if rate == 0 else zmq.NOBLOCK
            try:
                self.data.send_multipart(parts, flags=flags_nb, copy=False)
            except zmq.Again:
                return False
            self.sent_seq.append(s)
            self.regs.add("messages_sent")
            return True

        for items, index in self._messages():
            if self._stop or (max_messages is not None and n_msg >= max_messages):
                break
            self._serve_control(0)
            while not self.regs.snapshot()["running"] and not self._stop:   # paused by 'stop'
                self._serve_control(100)
            n = n_msg
            n_msg += 1
            if n in fp.restart:
                if held is not None:             # never swapped across a restart (the board's FIFO restarts)
                    send_held_in_order()
                    held = None
                seq, restart_next = 0, True
                self.log.append(("restart", n, 0))
            flags = Flags.SIMULATED
            if restart_next:
                flags |= Flags.RESTART
            if overflow_next:
                flags |= Flags.OVERFLOW
            first = int(items[0]) if tags and items.size else index
            parts = pack_message(items, seq=seq, first=first, stream_id=int(regs["stream_id"]),
                                 sample_rate=float(regs["sample_rate_hz"]), flags=int(flags))
            this_seq = seq
            seq += 1
            # pacing on the stream time at the end of this message
            if rate > 0 and items.size:
                t_end = (int(items[-1]) if tags else index + items.size)
                if t_stream0 is None:
                    t_stream0 = int(items[0]) if tags else 0
                due = t_wall0 + (t_end - t_stream0) / float(regs["sample_rate_hz"]) / rate
                while (dt := due - time.perf_counter()) > 0:
                    if self.control is not None:
                        self._serve_control(max(1, int(min(dt, 0.05) * 1000)))
                    else:
                        time.sleep(min(dt, 0.05))
            # faults (an overflow loses the data inside the board: its seq is not used)
            if n in fp.overflow:
                self.log.append(("overflow", n, this_seq))
                self.regs.add("overflows")
                overflow_next = True
                seq -= 1
                continue
            if n in fp.drop or (fp.drop_rate and rng.random() < fp.drop_rate):
                self.log.append(("drop", n, this_seq))
                continue
            if held is None and not restart_next and \
                    (n in fp.reorder or (fp.reorder_rate and rng.random() < fp.reorder_rate)):   # never the RESTART one
                self.log.append(("reorder", n, this_seq))
                held, held_n = (parts, this_seq), n
                overflow_next = restart_next = False
                continue
            if not send(parts, this_seq):       # send queue full: the board FIFO overflows
                self.regs.add("overflows")
                self.log.append(("overflow", n, this_seq))
                overflow_next = True
                seq -= 1
                continue
            overflow_next = restart_next = False
            if n in fp.duplicate or (fp.duplicate_rate and rng.random() < fp.duplicate_rate):
                if send(parts, this_seq):           # logged only if the copy went out (queue full: none)
                    self.log.append(("duplicate", n, this_seq))
            if held is not None:
                send_held()
                held = None
            self.regs.set("next_seq", seq)
        if held is not None:                     # nothing came after it: it goes out in order, no reorder made
            send_held_in_order()
        # end of stream marker (blocking: the receiver must learn that the stream ended)
        end = pack_message(np.zeros(0, self.source.sample_dtype == SampleDtype.INT64_TAG and np.int64 or np.float32),
                           seq=seq, first=0, stream_id=int(regs["stream_id"]), sample_rate=float(regs["sample_rate_hz"]),
                           flags=int(Flags.SIMULATED | Flags.END_OF_STREAM
                                     | (Flags.OVERFLOW if overflow_next else 0) | (Flags.RESTART if restart_next else 0)),
                           payload_kind=int(self.source.kind), sample_dtype=int(self.source.sample_dtype))
        self.data.send_multipart(end)
        self.sent_seq.append(seq)
        self.regs.add("messages_sent")
        self.regs.set("next_seq", seq + 1)
        self.regs.set("running", 0)
        return {"messages": n_msg, "sent": len(self.sent_seq), "faults": list(self.log),
                "seconds": time.perf_counter() - t_wall0, "registers": self.regs.snapshot()}

    def serve_forever(self) -> None:
        """Answer control requests until :meth:`stop` (use after run() to keep status readable)."""
        while not self._stop:
            self._serve_control(100)

    def close(self):
        self.data.close()
        if self.control is not None:
            self.control.close()
