# SPDX-License-Identifier: Apache-2.0
"""The SCPPM ground receiver: raw SNSPD time tags in, checked CCSDS transfer frames out.

``SCPPMTimeTagReceiver.push(t_ps)`` takes photon time tags (int64 picoseconds, all detector
channels merged in time order) chunk by chunk and returns the transfer frames completed by that
chunk, each with its metadata. Chain (all streaming, explicit state, chunk-size invariant):

    time tags -> slot clock recovery (guard-slot folding, tracking loop, loss-of-signal detection)
              -> codeword sync (Poisson-scored CSM correlation, flywheel)
              -> SCPPM iterative decoder (CRC-32 per codeword)
              -> k-bit blocks -> soft ASM frame sync (Massey) -> TM frame, FECF check

Nothing unchecked leaves the receiver: every frame carries ``crc_ok`` (all the codewords that
carried its bits passed their CRC-32; CCSDS 142.0-B-1 3.14.2 frame quality indicator) and
``fecf_ok`` (its own CRC-16 when the spec has one); ``valid`` is both. Codewords whose CRC fails
enter the frame synchroniser as erasures (LLR 0), so their frames come out flagged, never as good
data. A loss of signal (clouds, dropped data) or a codeword-sync reset restarts frame sync.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .backend import default_decode_batch
from .errors import ConfigError, ShapeError
from .fec.scppm import SCPPMCode, SCPPMReceiver
from .framing.tm import TMFrameSpec, decode_tm_frame
from .sync.codeword_sync import CodewordSync, CodewordSyncConfig
from .sync.frame_sync import ASMFrameSync, FrameSyncConfig, SyncMode
from .sync.slot_clock import SlotClockConfig, SlotClockRecovery

#: magnitude of the LLR given to bits of a codeword whose CRC-32 checked
LLR_DECODED = 20.0


@dataclass(frozen=True)
class ReceivedFrame:
    """One transfer frame out of the receiver.

    data : the frame's octets (``spec.frame_len``), as decided (check ``valid`` before use).
    t_ps : receiver time of the first symbol of the codeword that carried the frame's ASM.
    codewords : stream indices of the codewords that carried the ASM and the frame.
    crc_ok : every one of those codewords passed its CRC-32.
    fecf_ok : the frame's CRC-16 (None when the spec has no FECF); False also for a header that
        cannot be one of the spec and for a frame the synchroniser emitted without its marker
        (flywheel) although the marker's bits passed their check (the frame is misaligned).
    iterations : most turbo iterations among those codewords.
    sync_metric : Massey metric of the frame's ASM.
    t_sample : sample receivers (:mod:`modem.sample_receiver`): input sample position (sample 0 =
        first sample pushed since ``reset``) of the first slot of the codeword that carried the
        frame's ASM; NaN for the time-tag receiver.
    fec : per carrying codeword, the decoder's status tuple (sample receivers; see
        :mod:`modem.sample_receiver` for the layout per chain); empty for the time-tag receiver.
    """

    data: bytes
    t_ps: float
    codewords: tuple
    crc_ok: bool
    fecf_ok: bool | None
    iterations: int
    sync_metric: float
    t_sample: float = float("nan")
    fec: tuple = ()

    @property
    def valid(self) -> bool:
        return self.crc_ok and self.fecf_ok is not False


@dataclass
class ReceiverStats:
    """Counters of a receiver run (all monotone)."""

    tags: int = 0
    samples: int = 0                 # sample receivers: ADC samples consumed
    codewords: int = 0
    codewords_crc_failed: int = 0
    frames: int = 0
    frames_bad: int = 0
    frame_sync_restarts: int = 0
    events: list = field(default_factory=list)   # slot-clock SyncEvents (acquired, loss_of_signal, slip)


#: Defaults of the TM-layer ASM synchroniser of every receiver. The bits it sees are decoded
#: (+-LLR_DECODED) or erased (0), so a SEARCH hit (Massey >= 12) needs the 32 marker bits exactly:
#: 2**-32 per position in random data; no CHECK frames are spent (the FECF checks every frame).
TM_SYNC_DEFAULTS = {"check_count": 0}


class TMDeframer:
    """Decoded k-bit blocks -> soft ASM frame sync -> TM frames with metadata (every receiver).

    ``push(number, u_hat, ok, t, iterations, fec)`` takes one block (``u_hat`` (k,) uint8, ``ok`` its
    CRC / FEC verdict, ``t`` the receive time of its codeword in units of ``time_unit_ps`` ps)
    and returns the frames it completes. Blocks that failed their check enter as erasures (LLR 0),
    so their frames come out flagged. ``restart()`` when the block stream is not contiguous (a frame
    in progress is lost); ``flush()`` at the end of a record. ``sample_times``: frames also carry
    ``t_sample = t`` (sample receivers, t in samples)."""

    def __init__(self, spec: TMFrameSpec, k: int, stats: ReceiverStats, time_unit_ps: float = 1.0,
                 sample_times: bool = False, options: dict | None = None):
        self.spec, self.k, self.stats = spec, int(k), stats
        self.time_unit_ps, self.sample_times = float(time_unit_ps), bool(sample_times)
        self.fs = ASMFrameSync(FrameSyncConfig(frame_len=spec.n_bits, **{**TM_SYNC_DEFAULTS, **(options or {})}))
        self.state = self.fs.initial_state()
        self.bits = 0
        self.received = 0          # stream bits that came in blocks (flush's erased bits do not)
        self.blocks: list = []     # (first stream bit, block number, t, ok, iterations, fec)

    def restart(self):
        self.state = self.fs.initial_state()
        self.bits = 0
        self.received = 0
        self.blocks = []
        self.stats.frame_sync_restarts += 1

    def push(self, number: int, u_hat, ok: bool, t: float, iterations: int, fec: tuple = ()) -> list:
        self.blocks.append((self.bits, int(number), float(t), bool(ok), int(iterations), fec))
        if ok:
            llr = (1.0 - 2.0 * np.asarray(u_hat, dtype=np.float32)) * np.float32(LLR_DECODED)
        else:
            llr = np.zeros(self.k, np.float32)
        out, self.state = self.fs.push(llr, self.state)
        self.bits += self.k
        self.received = self.bits
        return self._frames_from(out)

    def flush(self) -> list:
        """End of the block stream: ``slip`` erased bits let the synchroniser close a last frame
        that ends exactly at the end of the last block (its marker window reaches past it). A frame
        that runs into those erased bits comes out with ``crc_ok`` False."""
        out, self.state = self.fs.push(np.zeros(self.fs.cfg.slip, np.float32), self.state)
        self.bits += self.fs.cfg.slip
        return self._frames_from(out)

    def _frames_from(self, out) -> list[ReceivedFrame]:
        frames = []
        n_bits = self.fs.cfg.marker_len + self.spec.n_bits
        starts = np.array([b[0] for b in self.blocks], dtype=np.int64)
        for j in range(len(out)):
            first = int(out.offset[j])
            last = first + n_bits - 1
            lo = int(np.searchsorted(starts, first, side="right") - 1)
            hi = int(np.searchsorted(starts, last, side="right") - 1)
            carriers = self.blocks[max(lo, 0): hi + 1]
            crc_ok = bool(carriers) and all(b[3] for b in carriers) and last < self.received
            data = np.packbits((out.llr[j] < 0).astype(np.uint8)).tobytes()
            try:
                fecf_ok = decode_tm_frame(self.spec, data).fecf_ok
            except ShapeError:       # header inconsistent with the spec: not a good frame
                fecf_ok = False
            if crc_ok and out.state[j] == int(SyncMode.FLYWHEEL):
                fecf_ok = False      # its marker bits passed their check and are not the ASM: misaligned
            t = carriers[0][2] if carriers else float("nan")
            fr = ReceivedFrame(data=data, t_ps=t * self.time_unit_ps, codewords=tuple(b[1] for b in carriers),
                               crc_ok=crc_ok, fecf_ok=fecf_ok, iterations=max((b[4] for b in carriers), default=0),
                               sync_metric=float(out.metric[j]), t_sample=t if self.sample_times else float("nan"),
                               fec=tuple(b[5] for b in carriers))
            self.stats.frames += 1
            self.stats.frames_bad += int(not fr.valid)
            frames.append(fr)
        # blocks wholly before the synchroniser's look-back can be forgotten
        keep_from = self.bits - 4 * n_bits - 2 * self.k
        while len(self.blocks) > 2 and self.blocks[1][0] < keep_from:
            self.blocks.pop(0)
        return frames


def deliver_codewords(deframer: TMDeframer, stats: ReceiverStats, n_cw: int, res, src, restart, t,
                      fec=None) -> tuple[list, int]:
    """Decoded SCPPM codewords -> TM deframer, in stream order, counted in ``stats``.

    ``res`` the decoder's results of the codewords a :class:`~modem.fec.scppm.CodewordDeinterleaver`
    completed, ``src`` (G,) the received codeword that completed each, ``restart`` (F,) bool the
    received codewords that do not follow the one before (the deframer restarts there, before the
    first codeword completed at or after it: the bit stream is no longer contiguous), ``t`` (F,)
    receive times, ``fec`` None or a function ``(received index, ok, iterations) -> tuple`` for
    ``ReceivedFrame.fec``. ``n_cw`` numbers the codewords; returns (frames, next ``n_cw``).
    """
    frames = []
    done = 0                                       # received codewords whose restart is applied
    for r in range(len(src)):
        i = int(src[r])
        for j in range(done, i + 1):
            if restart[j]:
                deframer.restart()
        done = max(done, i + 1)
        ok, n_it = bool(res.crc_ok[r]), int(res.iterations[r])
        stats.codewords += 1
        stats.codewords_crc_failed += int(not ok)
        frames += deframer.push(n_cw, res.u_hat[r], ok, float(t[i]), n_it, () if fec is None else fec(i, ok, n_it))
        n_cw += 1
    for j in range(done, len(restart)):            # restarts after the last codeword out
        if restart[j]:
            deframer.restart()
    return frames, n_cw


def check_decode_batch(decode_batch) -> int:
    """``decode_batch`` as an int; ConfigError naming it unless it is an integer >= 1."""
    if isinstance(decode_batch, bool) or not isinstance(decode_batch, (int, np.integer)) or decode_batch < 1:
        raise ConfigError(f"decode_batch must be an integer >= 1 (codewords per decoder call), got {decode_batch!r}")
    return int(decode_batch)


class CodewordHold:
    """Received codewords held back from the decoder until ``decode_batch`` of them are ready.

    A stream receiver completes a few codewords per pushed chunk (tens of 16-PPM codewords per 2^18
    time tags), while a GPU decoder is filled only by thousands per call. Holding them and decoding
    once per ``decode_batch`` gives the same frames, with the same flags and receive times, later
    and in fewer, larger decoder calls: the de-interleaver is a stream (fed the held codewords in
    order, with their restarts, it gives what it gave fed piece by piece) and the decoder decodes
    each codeword on its own. ``decode_batch = 1`` decodes what each push completes.

    ``add(*arrays)``: the per-codeword arrays (batch axis first, equal lengths) of one push's
    codewords. ``take(final)`` -> those arrays of every held codeword, concatenated in stream
    order, once at least ``decode_batch`` are held (or ``final``: end of record, whatever is held),
    else None. Holds at most ``decode_batch - 1`` codewords plus one push's.
    """

    def __init__(self, decode_batch: int = 1):
        self.decode_batch = check_decode_batch(decode_batch)
        self.clear()

    def clear(self):
        self._parts: list[tuple] = []
        self.held = 0

    def add(self, *arrays):
        if len(arrays[0]):
            self._parts.append(arrays)
            self.held += len(arrays[0])

    def take(self, final: bool = False) -> tuple | None:
        if not self.held or (self.held < self.decode_batch and not final):
            return None
        out = tuple(p[0] if len(self._parts) == 1 else np.concatenate(p) for p in zip(*self._parts))
        self.clear()
        return out


class SCPPMTimeTagReceiver:
    """Time tags -> checked TM transfer frames (see the module docstring).

    Parameters
    ----------
    code : SCPPMCode of the link.   spec : TMFrameSpec of the transfer frames.
    slot_width_ps : nominal slot width.   ns, nb : detected signal photons per pulse and background
    counts per slot (all channels) used by the decoder metrics and the CSM score.
    max_iter : SCPPM decoder iteration cap.   clock_options / sync_options : extra keyword
    arguments of SlotClockConfig / CodewordSyncConfig.
    launcher : where the SCPPM decoder runs: None (default) the CPU; a kernel launcher
        (:func:`modem.backend.fec_launcher` for the GPU) the CUDA kernels, with the same decoded bits,
        CRC flags and iteration counts. The other stages (slot clock, codeword sync, frame sync) are
        sequential loops and stay on the CPU.
    decode_batch : codewords held back before each decoder call (:class:`CodewordHold`); None
        (default) :func:`modem.backend.default_decode_batch`: 1 on the CPU; on a kernel launcher
        1024, or fewer where they would hold over 256 MB (385 at 128-PPM). The frames are the same
        at any value; only when they come out changes (a held codeword's frames come out with a
        later push, or at ``flush``).
    """

    def __init__(self, code: SCPPMCode, spec: TMFrameSpec, slot_width_ps: float, ns: float, nb: float,
                 max_iter: int = 16, clock_options: dict | None = None, sync_options: dict | None = None,
                 launcher=None, decode_batch: int | None = None):
        if not isinstance(code, SCPPMCode):
            raise ConfigError(f"SCPPMTimeTagReceiver: code must be an SCPPMCode, got {code!r}")
        if not code.commutator_aligned:
            raise ConfigError(f"SCPPMTimeTagReceiver: the channel interleaver's rows N={code.interleaver_rows} must "
                              f"divide S={code.S}: the receiver locks on codewords mid-stream and restarts at "
                              "every hole, and only then does each codeword start in commutator row 0")
        if not isinstance(spec, TMFrameSpec):
            raise ConfigError(f"SCPPMTimeTagReceiver: spec must be a TMFrameSpec, got {type(spec).__name__}")
        self.code, self.spec, self.slot_width_ps = code, spec, float(slot_width_ps)
        self.clock = SlotClockRecovery(SlotClockConfig.from_code(code, slot_width_ps, **(clock_options or {})))
        self.cw_sync = CodewordSync(CodewordSyncConfig(code, ns, nb, **(sync_options or {})))
        self.launcher = launcher
        self.decoder = SCPPMReceiver(code, ns, nb, max_iter=max_iter, launcher=launcher)
        self._hold = CodewordHold(default_decode_batch(launcher, 2 * code.slots_per_codeword)   # uint16 counts
                                  if decode_batch is None else decode_batch)
        self.reset()

    @property
    def decode_batch(self) -> int:
        return self._hold.decode_batch

    def reset(self):
        self._clock_state = self.clock.initial_state()
        self._cw_state = self.cw_sync.initial_state()
        self.decoder.reset()         # the channel de-interleaver starts empty, as in a fresh receiver
        self._hold.clear()
        self._stream_key = None      # (segment, sym_index, slot offset) the next codeword of a contiguous bit stream has
        self._n_cw = 0
        self._t_seg = np.zeros(0, np.int32)
        self._t_idx = np.zeros(0, np.int64)
        self._t_ps = np.zeros(0)
        self.stats = ReceiverStats()
        self._deframer = TMDeframer(self.spec, self.code.k, self.stats)

    # ---------------------------------------------------------------------------------------------
    def push(self, t_ps) -> list[ReceivedFrame]:
        """Consume a chunk of time tags (1-D int64 ps, time-sorted); return the completed frames."""
        slots, self._clock_state = self.clock.push(t_ps, self._clock_state)
        self.stats.tags += int(np.asarray(getattr(t_ps, "t_ps", t_ps)).size)
        return self._after_clock(slots)

    def flush(self) -> list[ReceivedFrame]:
        """End of the record: process what the slot clock still holds."""
        slots, self._clock_state = self.clock.flush(self._clock_state)
        frames = self._after_clock(slots)
        cw, self._cw_state = self.cw_sync.flush(self._cw_state)
        return frames + self._decode(cw, final=True) + self._deframer.flush()

    # ---------------------------------------------------------------------------------------------
    def _after_clock(self, slots) -> list[ReceivedFrame]:
        self.stats.events.extend(slots.events)
        self._remember_times(slots)
        cw, self._cw_state = self.cw_sync.push(slots, self._cw_state)
        return self._decode(cw)

    def _decode(self, cw, final: bool = False) -> list[ReceivedFrame]:
        """Codewords from the codeword synchroniser -> [held until ``decode_batch``] -> [channel
        de-interleaver] -> decoder -> TM deframer. A hole in the codeword stream (a codeword that does not follow the one before
        it) restarts the de-interleaver and the TM frame synchroniser: the bit stream is no longer
        contiguous, a frame not finished is lost with it, and with a channel interleaver so are
        the codewords spread over the hole. Each decoded codeword gets the receive time of the
        codeword that completed it."""
        restart = np.zeros(len(cw), bool)
        t_cw = np.empty(len(cw))
        for i in range(len(cw)):
            key = (int(cw.segment[i]), int(cw.sym_index[i]), int(cw.slot_offset[i]))
            restart[i] = self._stream_key is not None and key != self._stream_key
            self._stream_key = (key[0], key[1] + self.cw_sync.cfg.period, key[2])
            t_cw[i] = self._time_of(key[0], key[1]) + key[2] * self.slot_width_ps   # its first slot
        if len(cw):
            self._hold.add(cw.counts, restart, t_cw)
        held = self._hold.take(final)
        if held is None:
            return []
        counts, restart, t_cw = held
        res, src = self.decoder.receive_stream(counts, restart)
        frames, self._n_cw = deliver_codewords(self._deframer, self.stats, self._n_cw, res, src, restart, t_cw)
        return frames

    def _remember_times(self, slots):
        """Keep (segment, sym_index) -> receive time of this batch's symbols and of the 8 codewords
        before it (codeword sync may still be holding those), bounded by the batch size. A codeword
        is ``cw_sync.cfg.period`` received symbols: repetition included."""
        if not len(slots):
            return
        keep = 8 * self.cw_sync.cfg.period + len(slots)
        for name, new in (("_t_seg", slots.segment), ("_t_idx", slots.sym_index), ("_t_ps", slots.t_sym_ps)):
            setattr(self, name, np.concatenate([getattr(self, name), np.asarray(new)])[-keep:])

    def _time_of(self, segment: int, sym_index: int) -> float:
        hit = np.flatnonzero((self._t_seg == segment) & (self._t_idx == sym_index))
        return float(self._t_ps[hit[0]]) if hit.size else float("nan")
