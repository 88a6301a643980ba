# SPDX-License-Identifier: Apache-2.0
"""Streaming slot / symbol clock recovery from photon time tags (PPM with inter-symbol guard time).

Input: photon time tags ``t_ps`` (int64 ps of the receiver clock, all detector channels merged and
sorted in time -- the order a tagger streams them; :func:`modem.sync.timetags.merge_channels` merges
per-channel streams). Output: slot counts binned per PPM symbol frame, ``(n_symbols, M + G)``, aligned
to the recovered symbol boundaries (slot 0 = first data slot, slots ``M .. M+G-1`` = the guard),
counts of all channels summed.

Waveform (hpe-scppm.md 1.12, 5): a symbol is ``M`` data slots with one pulse, then ``G = M/4`` empty
guard slots; symbol period ``P*T`` with ``P = M + G`` slots of width ``T``. Pulses sit in the slot
centre; photons arrive at ``t = t_sym + (j + 1/2)*T + jitter``.

Algorithm
---------
ACQUIRE (epoch folding / periodogram, no pilots)
    On a window of ``acq_symbols`` nominal symbol periods of tags: (1) the periodogram
    ``|sum_k exp(-2 pi i f t_k)|^2 / n`` of the slot tone over candidate slot frequencies
    ``f = 1 / (T0 (1 + eps))``, ``|eps| <= max_offset_ppm`` on a grid of ``T0 / (4 W)``, parabolic
    peak interpolation, then a least-squares fit of the tone phase over the window's four quarters
    (frequency refinement); the tone phase gives the slot centres. (2) Epoch folding modulo the
    symbol period: the histogram of slot index mod ``P``; the ``G`` consecutive positions with the
    fewest photons are the guard (the ISGT gap), so the next slot starts a symbol. Acquisition
    succeeds when the tone power reaches ``acq_min_power`` and the guard holds at most
    ``acq_max_guard_ratio`` of the mean photons per position. The window's tags are then re-used by
    tracking (no data lost to acquisition).
TRACK (second-order loop, per block)
    Blocks of ``block_symbols`` symbols on the current clock model ``(t_start, T)``. Each tag's
    offset from its slot centre (in slots, in [-1/2, 1/2)) is a phase sample; the circular mean
    ``angle(sum exp(2 pi i e_k)) / 2 pi`` is the block's phase error (uniform background averages
    out). PI update: ``T += ki*err/(block_symbols*P)``, next start ``+= kp*err``: a type-2 loop, zero
    steady-state error for a frequency offset, a constant error ``~ rate/ki`` for a linear drift.
    A guard monitor (exponentially averaged histogram per slot position) re-aligns the symbol
    boundary if the guard is found elsewhere (a slot slip, reported as an event).
LOSS OF SIGNAL
    A block with fewer photons than ``max(los_min_photons, los_fraction * running mean)`` is weak:
    it is still emitted (flywheel, no loop update) for up to ``flywheel_blocks`` weak blocks in a
    row; one more declares loss of signal, drops back to ACQUIRE, and the ``loss_of_signal`` event
    is reported at re-acquisition: start = where the signal ends (to 1/16 of a block, found in
    the last good block or the first weak one), end = the signal onset found in the
    successful acquisition window (to 1/32 of the window); tracking resumes at the first symbol
    boundary after the onset. Each acquisition opens a new ``segment``: symbols of different
    segments are not contiguous and a codeword synchroniser must restart.
    A run with no tag at all longer than ``los_gap`` (32) mean inter-arrival times at the tracked
    rate is a loss of signal at once (from the last tag before it; re-acquisition starts at the
    first tag after it) -- a dropout or a forward jump of the tags' time base.
CLOCK JUMP
    Every tracked block is also checked against its own clock model: a phase error above
    ``jump_phase`` slots with a strong slot tone, or the guard gap clearly elsewhere in the block
    alone, means the time base jumped (a tagger resync). The jump is placed at the CUSUM change
    point of the per-photon misalignment (within the block; a jump late in a block is usually
    found in the next one), the symbols before it are emitted, and the clock re-acquires from
    there (new segment); ``clock_jump`` is reported at re-acquisition with the jump modulo the
    symbol period. A jump of whole symbols is invisible to the slot clock; the codeword
    synchroniser's CSM check catches it.

Streaming and chunking
----------------------
``out, state = rec.push(t_ps_chunk, state)``; the state (:class:`SlotClockState`) is the whole
memory, ``push`` never mutates the state it is given. A block (or acquisition window) is processed
only once a tag at or after its end has arrived, and always from exactly the tags inside it, so any
chunking of the same tag stream gives bit-identical output (empty chunks give empty output).
``flush(state)`` ends the stream (emits the pending partial block up to the last tag and an open
loss-of-signal event). Timestamps must be non-decreasing across the whole stream (all channels
merged); a decrease raises :class:`ShapeError` naming the offending value.

Dark counts and dead time need no special handling: darks are uniform (background) and dead time
only thins the signal photons; the guard contrast test tolerates both.
"""
from __future__ import annotations

import enum
import math
from dataclasses import dataclass, field, replace

import numpy as np

from ..errors import ConfigError, ShapeError

__all__ = ["ClockMode", "SlotClockConfig", "SlotClockState", "SlotCounts", "SyncEvent", "SlotClockRecovery"]

TWO_PI = 2.0 * math.pi


class ClockMode(enum.IntEnum):
    ACQUIRE = 0
    TRACK = 1




def _window_sums(h: np.ndarray, G: int) -> np.ndarray:
    """Circular window sums ``out[g] = h[g] + h[g+1] + ... + h[g+G-1]`` (indices mod ``h.size``),
    added in that order (the same floating-point result as summing ``np.roll(h, -i)``, i < G)."""
    P = h.size
    ext = np.concatenate([h, h[:G - 1]])
    out = ext[:P] + 0                       # a copy, in the promoted dtype of the additions
    for i in range(1, G):
        out += ext[i:i + P]
    return out

def _first_at_or_after(buf: np.ndarray, x) -> int:
    """``np.searchsorted(buf, x, "left")`` for int64 tags ``buf`` and a real time ``x`` (ps).

    An integer tag is ``>= x`` exactly when it is ``>= ceil(x)``, so the search runs on an int64 key:
    a float key would make NumPy convert the whole buffer to float64 on every call (O(n) per block,
    which dominated the receiver's run time)."""
    return int(np.searchsorted(buf, np.int64(math.ceil(x)), "left"))

@dataclass(frozen=True)
class SyncEvent:
    """A synchronisation event. ``kind``: ``"acquired"`` (t_start = first symbol start),
    ``"loss_of_signal"`` ([t_start, t_end) receiver ps; t_end None if still lost at flush),
    ``"slip"`` (symbol boundary moved by ``info['slots']`` slots at t_start), ``"clock_jump"``
    (the tags' time base jumped at ~t_start: phase or symbol boundary no longer where the loop
    predicts; t_end = the re-acquired first symbol, None if not re-acquired at flush;
    ``info['offset_ps']`` the jump modulo the symbol period, ``info['reason']`` "phase"/"guard")."""

    kind: str
    t_start_ps: float
    t_end_ps: float | None = None
    info: dict = field(default_factory=dict)


@dataclass(frozen=True)
class SlotClockConfig:
    """Parameters of :class:`SlotClockRecovery`.

    Parameters
    ----------
    slot_width_ps : nominal slot width T0 (ps, > 0).
    M : PPM order (data slots per symbol, >= 2).
    guard : guard slots per symbol G (>= 1: the guard gap is what the recovery locks on).
    max_offset_ppm : acquisition search range of the clock offset (+-, ppm, default 300).
    acq_symbols : acquisition window in nominal symbol periods.
    acq_min_photons : fewest tags in a window worth an acquisition attempt.
    acq_min_power : slot-tone periodogram peak ``|sum exp(-2 pi i f t)|^2 / n`` needed (noise alone
        gives ~ Exp(1) per candidate).
    acq_max_guard_ratio : guard photons / mean photons per slot position must be at most this.
    block_symbols : tracking block length (symbols).
    kp, ki : loop gains (phase, frequency), per block; stable for 0 < ki < kp < 1 roughly.
    los_fraction, los_min_photons : weak-block threshold ``max(los_min_photons, los_fraction*mean)``.
    flywheel_blocks : weak blocks still emitted before loss of signal is declared.
    rate_smoothing : EMA factor of the photons-per-block mean.
    guard_smoothing : EMA factor of the guard monitor; 0 disables slip correction.
    los_gap : a run with no tag at all longer than ``los_gap`` mean inter-arrival times at the
        tracked rate (probability ``exp(-los_gap)`` per tag) is a loss of signal at once.
    jump_detect : check every tracked block for a clock jump (phase or symbol boundary moved).
    jump_phase : block phase error (slots) above which the clock has jumped ...
    jump_min_power : ... when the block's slot tone ``|sum exp(2 pi i e_k)|^2 / n`` is at least this.
    """

    slot_width_ps: float
    M: int
    guard: int
    max_offset_ppm: float = 300.0
    acq_symbols: int = 1024
    acq_min_photons: int = 200
    acq_min_power: float = 30.0
    acq_max_guard_ratio: float = 0.5
    block_symbols: int = 256
    kp: float = 0.25
    ki: float = 0.03
    los_fraction: float = 0.25
    los_min_photons: int = 8
    flywheel_blocks: int = 4
    rate_smoothing: float = 0.125
    guard_smoothing: float = 0.25
    los_gap: float = 32.0
    jump_detect: bool = True
    jump_phase: float = 0.3
    jump_min_power: float = 25.0

    def __post_init__(self):
        who = "SlotClockConfig"

        def num(name, lo, hi, lo_open=False):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)) \
                    or not math.isfinite(float(v)) or not (lo < v if lo_open else lo <= v) or v > hi:
                rng = f"({lo}, {hi}]" if lo_open else f"[{lo}, {hi}]"
                raise ConfigError(f"{who}: {name} must be in {rng}, got {v!r}")

        def integer(name, lo, hi):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or not lo <= v <= hi:
                raise ConfigError(f"{who}: {name} must be an integer in [{lo}, {hi}], got {v!r}")

        num("slot_width_ps", 0.0, 1e9, lo_open=True)
        integer("M", 2, 1 << 16)
        integer("guard", 1, 1 << 16)
        num("max_offset_ppm", 0.0, 1e4)
        integer("acq_symbols", 16, 1 << 24)
        integer("acq_min_photons", 2, 1 << 30)
        num("acq_min_power", 0.0, 1e12)
        num("acq_max_guard_ratio", 0.0, 1.0, lo_open=True)
        integer("block_symbols", 1, 1 << 24)
        num("kp", 0.0, 1.0)
        num("ki", 0.0, 1.0)
        num("los_fraction", 0.0, 1.0)
        integer("los_min_photons", 0, 1 << 30)
        integer("flywheel_blocks", 0, 1 << 20)
        num("rate_smoothing", 0.0, 1.0, lo_open=True)
        num("guard_smoothing", 0.0, 1.0)
        num("los_gap", 1.0, 1e9)
        if not isinstance(self.jump_detect, (bool, np.bool_)):
            raise ConfigError(f"{who}: jump_detect must be a bool, got {self.jump_detect!r}")
        num("jump_phase", 0.0, 0.5, lo_open=True)
        num("jump_min_power", 0.0, 1e12)
        if self.guard >= self.M + self.guard - 1:
            raise ConfigError(f"{who}: guard must leave at least 2 data slots, got M={self.M}, guard={self.guard}")

    @classmethod
    def from_code(cls, code, slot_width_ps: float, **kw) -> "SlotClockConfig":
        """Config for an :class:`~modem.fec.scppm.SCPPMCode` (M, guard = M/4) and a slot width."""
        if code.guard < 1:
            raise ConfigError(f"SlotClockConfig.from_code: the code has no guard slots ({code.describe()}); "
                              "guard-time clock recovery needs them")
        return cls(slot_width_ps=float(slot_width_ps), M=code.M, guard=code.guard, **kw)

    @property
    def P(self) -> int:
        """Slots per symbol, M + guard."""
        return self.M + self.guard

    @property
    def acq_window_ps(self) -> float:
        return self.acq_symbols * self.P * self.slot_width_ps


@dataclass
class SlotClockState:
    """Memory of :class:`SlotClockRecovery` (pass in, get back; ``push`` never mutates it).

    ``buf``: tags (int64 ps) received but not yet consumed; ``last_t``: the last tag seen (for the
    monotonicity check). ACQUIRE: ``acq_anchor`` start of the current window (None: the first
    buffered tag). TRACK: block ``blk_start`` (ps, float), slot period ``period`` (ps),
    ``sym_index`` of the symbol at ``blk_start``, ``rate`` mean photons per block, ``weak_run`` weak
    blocks in a row (from ``weak_start``), ``guard_hist`` guard-monitor histogram,
    ``last_good_t`` where the signal ended (last good block or first weak one).
    ``los_since``: start of the current loss of signal (None when not lost); ``jump_since`` /
    ``jump_info``: a clock jump awaiting re-acquisition; ``bad0``: mean per-photon misalignment
    of the good blocks (jump localisation). Counters: ``acquisitions``, ``failed_windows``,
    ``losses``, ``slips``, ``jumps``.
    """

    mode: ClockMode = ClockMode.ACQUIRE
    buf: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    last_t: int | None = None
    acq_anchor: float | None = None
    blk_start: float = 0.0
    period: float = 0.0
    sym_index: int = 0
    segment: int = -1
    rate: float = 0.0
    weak_run: int = 0
    weak_start: float = 0.0
    guard_hist: np.ndarray | None = None
    last_good_t: float | None = None
    los_since: float | None = None
    jump_since: float | None = None
    jump_info: dict | None = None
    bad0: float | None = None
    acquisitions: int = 0
    failed_windows: int = 0
    losses: int = 0
    slips: int = 0
    jumps: int = 0


@dataclass
class SlotCounts:
    """Symbol-aligned slot counts emitted by one :meth:`SlotClockRecovery.push`.

    counts : (n, P) uint16, counts per slot (all channels), slot 0 = first data slot.
    sym_index : (n,) int64, symbol number on the recovered clock (continues across gaps by the
        estimated elapsed symbols; contiguous within a segment).
    t_sym_ps : (n,) float64, receiver time of each symbol's leading edge.
    segment : (n,) int32, acquisition count - 1 (changes after every loss of signal).
    events : list of :class:`SyncEvent`.
    """

    counts: np.ndarray
    sym_index: np.ndarray
    t_sym_ps: np.ndarray
    segment: np.ndarray
    events: list

    def __len__(self) -> int:
        return int(self.sym_index.shape[0])

    @staticmethod
    def empty(P: int) -> "SlotCounts":
        return SlotCounts(np.zeros((0, P), np.uint16), np.zeros(0, np.int64), np.zeros(0), np.zeros(0, np.int32), [])

    @staticmethod
    def concat(parts, P: int | None = None) -> "SlotCounts":
        parts = list(parts)
        if not parts:
            if P is None:
                raise ShapeError("SlotCounts.concat: no parts and no P")
            return SlotCounts.empty(P)
        return SlotCounts(np.concatenate([p.counts for p in parts]), np.concatenate([p.sym_index for p in parts]),
                          np.concatenate([p.t_sym_ps for p in parts]), np.concatenate([p.segment for p in parts]),
                          [e for p in parts for e in p.events])


def _check_tags(t_ps, last_t, who: str) -> np.ndarray:
    if hasattr(t_ps, "t_ps") and hasattr(t_ps, "channel"):
        t_ps = t_ps.t_ps
    t = np.asarray(t_ps)
    if t.ndim != 1:
        raise ShapeError(f"{who}: t_ps must be a 1-D array of int64 ps, got shape {t.shape}")
    if t.size == 0:
        return np.zeros(0, dtype=np.int64)
    if not np.issubdtype(t.dtype, np.integer):
        raise ShapeError(f"{who}: t_ps must be integer picoseconds, got dtype {t.dtype}")
    t = t.astype(np.int64, copy=False)
    d = np.diff(t)
    if d.size and d.min() < 0:
        i = int(np.flatnonzero(d < 0)[0]) + 1
        raise ShapeError(f"{who}: time tags must be non-decreasing (merge channels by sorting first), "
                         f"t_ps[{i}]={int(t[i])} < t_ps[{i - 1}]={int(t[i - 1])}")
    if last_t is not None and t[0] < last_t:
        raise ShapeError(f"{who}: time tags must be non-decreasing across chunks, t_ps[0]={int(t[0])} < "
                         f"last tag of the previous chunk {int(last_t)}")
    return t


class SlotClockRecovery:
    """Streaming slot/symbol clock recovery (see the module docstring).

    ``out, state = rec.push(t_ps, state)`` with ``t_ps`` a 1-D int64 array of sorted tags (or a
    :class:`~modem.sync.timetags.TimeTags`); ``out`` is a :class:`SlotCounts`.
    """

    def __init__(self, config: SlotClockConfig):
        if not isinstance(config, SlotClockConfig):
            raise ConfigError(f"SlotClockRecovery: config must be a SlotClockConfig, got {config!r}")
        self.cfg = config

    def initial_state(self) -> SlotClockState:
        return SlotClockState()

    # ---------------------------------------------------------------------------------- acquire
    def _tone(self, x: np.ndarray, f: np.ndarray) -> np.ndarray:
        """sum_k exp(-2 pi i f_j x_k) for every candidate f_j, in bounded-memory blocks."""
        out = np.empty(f.size, dtype=np.complex128)
        step = max(1, int(2_000_000 // max(1, x.size)))
        for i in range(0, f.size, step):
            ph = np.multiply.outer(f[i:i + step], x)
            ph -= np.floor(ph)                       # keep the argument small (precision)
            out[i:i + step] = np.exp(-TWO_PI * 1j * ph).sum(axis=1)
        return out

    def acquire(self, tags, t_anchor: float):
        """One acquisition attempt on the tags of ``[t_anchor, t_anchor + window)``.

        Returns None (no clock found) or a dict: ``period`` (slot period ps), ``t_sym`` (first
        symbol start >= t_anchor, ps), ``offset_ppm``, ``power`` (tone power), ``guard_ratio``.
        """
        cfg = self.cfg
        n = tags.size
        if n < cfg.acq_min_photons:
            return None
        T0, P, G, W = cfg.slot_width_ps, cfg.P, cfg.guard, cfg.acq_window_ps
        x = (tags - t_anchor).astype(np.float64) if tags.dtype != np.float64 else tags - t_anchor
        step = T0 / (4.0 * W)
        K = int(math.ceil(cfg.max_offset_ppm * 1e-6 / step))
        eps = np.arange(-K, K + 1) * step
        f = 1.0 / (T0 * (1.0 + eps))
        pw = np.abs(self._tone(x, f)) ** 2 / n
        k = int(np.argmax(pw))
        if pw[k] < cfg.acq_min_power:
            return None
        e_hat = eps[k]
        if 0 < k < eps.size - 1:
            y0, y1, y2 = pw[k - 1], pw[k], pw[k + 1]
            den = y0 - 2 * y1 + y2
            if den < 0:
                e_hat += 0.5 * (y0 - y2) / den * step
        fh = 1.0 / (T0 * (1.0 + e_hat))
        # refinement: tone phase on the window's quarters, least-squares slope
        q = np.minimum((x * (4.0 / W)).astype(np.int64), 3)
        z = np.array([np.exp(-TWO_PI * 1j * (fh * x[q == i] % 1.0)).sum() for i in range(4)])
        ok = np.abs(z) >= 0.25 * np.abs(z).max()             # quarters with signal (not a fade / darks)
        if ok.sum() >= 2:
            ph = np.unwrap(np.angle(z[ok]))
            xm = np.array([x[q == i].mean() for i in range(4)])[ok]
            slope = np.polyfit(xm, ph, 1)[0]
            fh = fh + slope / TWO_PI
        T = 1.0 / fh
        c = (-np.angle(np.exp(-TWO_PI * 1j * (fh * x % 1.0)).sum()) / TWO_PI) % 1.0 * T   # slot centre
        s0 = (c - 0.5 * T) % T                                                               # slot edge
        j = np.floor((x - s0) / T).astype(np.int64)
        j = j[j >= 0]
        hist = np.bincount(j % P, minlength=P).astype(np.float64)
        gs = _window_sums(hist, G)                           # gs[g] = photons in positions g..g+G-1
        g = int(np.argmin(gs))
        ratio = float(gs[g] / (G * max(hist.mean(), 1e-300)))
        if ratio > cfg.acq_max_guard_ratio:
            return None
        # signal onset inside the window (a window anchored on a dark count before the signal
        # returns): the first of 32 sub-windows holding >= 1/4 of the busy sub-windows' mean
        nb_sub = 32
        sub = np.bincount(np.minimum((x * (nb_sub / W)).astype(np.int64), nb_sub - 1), minlength=nb_sub)
        busy = np.sort(sub)[nb_sub // 2:].mean()
        onset = int(np.flatnonzero(sub >= 0.25 * busy)[0]) * (W / nb_sub)
        first = (g + G) % P
        t_sym = s0 + first * T
        if t_sym < onset:
            t_sym += math.ceil((onset - t_sym) / (P * T)) * (P * T)
        n_sig = int(np.count_nonzero(x >= onset))
        return {"period": float(T), "t_sym": float(t_anchor + t_sym), "t_onset": float(t_anchor + onset),
                "rate_per_ps": n_sig / max(W - onset, 1.0), "offset_ppm": float((T / T0 - 1.0) * 1e6),
                "power": float(pw[k]), "guard_ratio": ratio}

    def _signal_end(self, counts, s: float, T: float, rate: float) -> float | None:
        """End time of the last of <= 16 sub-blocks of a block holding >= 1/4 of the running mean
        photons per sub-block (where a fade began), or None when no sub-block does."""
        B, P = counts.shape
        nsub = min(16, B)
        starts = np.arange(nsub) * B // nsub
        sub = np.add.reduceat(counts.sum(axis=1), starts)
        lens = np.diff(np.append(starts, B))
        good = np.flatnonzero(sub >= 0.25 * rate * lens / B)
        if good.size == 0:
            return None
        return float(s + (starts[good[-1]] + lens[good[-1]]) * P * T)

    @staticmethod
    def _emit(parts_c, parts_i, parts_t, parts_s, counts, st, t_sym):
        n = counts.shape[0]
        parts_c.append(np.minimum(counts, 65535).astype(np.uint16))
        parts_i.append(st.sym_index + np.arange(n, dtype=np.int64))
        parts_t.append(t_sym)
        parts_s.append(np.full(n, st.segment, dtype=np.int32))

    def _find_gap(self, buf, i0: int, i1: int, blk_ps: float, rate: float):
        """Index ``k`` (into ``buf``) of the first tag of the block ``buf[i0:i1]`` followed by a run
        with no tag longer than ``los_gap`` mean inter-arrival times (the next tag, ``buf[k+1]``,
        may lie after the block: it is there whenever the block is processed before flush), or
        None. Gaps are charged to the block holding their first tag, so chunking cannot matter."""
        if i1 <= i0 or rate <= 0:
            return None
        thr = self.cfg.los_gap * blk_ps / rate
        hi = min(i1 + 1, buf.size)
        d = np.diff(buf[i0:hi])
        big = np.flatnonzero(d > thr)
        return None if big.size == 0 else i0 + int(big[0])

    def _check_jump(self, counts, u, j, n_ph: int, T: float, bad0):
        """Is the clock model of this (non-weak) block wrong -- the tags' time base jumped?

        ``"phase"``: the block's slot-phase error exceeds ``jump_phase`` slots with a strong slot
        tone (``|z|^2/n >= jump_min_power``; a clean lock has error ~0). ``"guard"``: the guard gap
        is clearly elsewhere in this block alone (G positions holding < half the photons of the
        expected guard, by 4 sigma). Returns ``(k, reason, mean)`` with ``k`` the first symbol after
        the jump (CUSUM change point of the per-photon misalignment ``(1 - cos 2 pi e)/2 + [guard
        slot]`` against the threshold halfway between the good blocks' mean and this block's), or None."""
        cfg = self.cfg
        B, P = counts.shape
        M, G = cfg.M, cfg.guard
        if n_ph < max(2, cfg.los_min_photons):
            return None
        frac = u - j - 0.5
        ph = TWO_PI * frac
        zc = complex(np.cos(ph).sum(), np.sin(ph).sum())
        power = abs(zc) ** 2 / n_ph
        err = math.atan2(zc.imag, zc.real) / TWO_PI
        reason = None
        if power >= cfg.jump_min_power and abs(err) > cfg.jump_phase:
            reason = "phase"
        else:
            h = counts.sum(axis=0).astype(np.float64)
            gs = _window_sums(h, G)
            g = int(np.argmin(gs))
            if g != M and gs[g] < 0.5 * gs[M] and gs[M] - gs[g] > 4.0 * math.sqrt(gs[M] + 1.0):
                reason = "guard"
        if reason is None:
            return None
        pos = j % P
        bad = 0.5 * (1.0 - np.cos(ph)) + (pos >= M)
        sym = j // P
        b = np.bincount(sym, weights=bad, minlength=B)
        n = np.bincount(sym, minlength=B)
        m1 = float(bad.mean())
        m0 = min(bad0, m1) if bad0 is not None else 0.0
        S = np.concatenate([[0.0], np.cumsum(b - n * 0.5 * (m0 + m1))])
        return int(np.argmin(S)), reason, m1

    # ---------------------------------------------------------------------------------- streaming
    def push(self, t_ps, state: SlotClockState) -> tuple[SlotCounts, SlotClockState]:
        """Consume a chunk of sorted time tags; return the symbols completed and the new state."""
        if not isinstance(state, SlotClockState):
            raise ConfigError(f"SlotClockRecovery.push: state must be a SlotClockState, got {type(state)}")
        t = _check_tags(t_ps, state.last_t, "SlotClockRecovery.push")
        st = replace(state)
        if t.size:
            st.buf = np.concatenate([state.buf, t]) if state.buf.size else t
            st.last_t = int(t[-1])
        return self._run(st, final=False)

    def flush(self, state: SlotClockState) -> tuple[SlotCounts, SlotClockState]:
        """End of stream: emit the pending partial block (symbols starting before the last tag) and an
        open ``loss_of_signal`` event if the signal is lost. Returns the output and a fresh-ish state
        (buffer emptied)."""
        st = replace(state)
        out, st = self._run(st, final=True)
        if st.los_since is not None:
            out.events.append(SyncEvent("loss_of_signal", st.los_since, None, {}))
        if st.jump_since is not None:
            info = {k: v for k, v in (st.jump_info or {}).items() if not k.startswith("_")}
            out.events.append(SyncEvent("clock_jump", st.jump_since, None, info))
        st.buf = np.zeros(0, dtype=np.int64)
        return out, st

    def _run(self, st: SlotClockState, final: bool) -> tuple[SlotCounts, SlotClockState]:
        cfg = self.cfg
        P, B, G, M = cfg.P, cfg.block_symbols, cfg.guard, cfg.M
        parts_c, parts_i, parts_t, parts_s, events = [], [], [], [], []
        buf = st.buf
        while buf.size:
            if st.mode == ClockMode.ACQUIRE:
                a = float(buf[0]) if st.acq_anchor is None else st.acq_anchor
                end = a + cfg.acq_window_ps
                if buf[-1] < end:
                    st.acq_anchor = a
                    buf = buf[_first_at_or_after(buf, a):]
                    break
                i0 = _first_at_or_after(buf, a)
                i1 = _first_at_or_after(buf, end)
                res = self.acquire(buf[i0:i1], a)
                if res is None:
                    st.failed_windows += 1
                    st.acq_anchor = None
                    buf = buf[i1:]
                    continue
                st.mode = ClockMode.TRACK
                st.acq_anchor = None
                st.period = res["period"]
                Tsym = P * st.period
                if st.segment >= 0:                       # continue the symbol count over the gap
                    st.sym_index += max(0, int(round((res["t_sym"] - st.blk_start) / Tsym)))
                st.blk_start = res["t_sym"]
                st.segment += 1
                st.acquisitions += 1
                st.rate = res["rate_per_ps"] * (B * Tsym)
                st.weak_run = 0
                st.guard_hist = np.zeros(P)
                st.last_good_t = None
                if st.los_since is not None:
                    events.append(SyncEvent("loss_of_signal", st.los_since, res["t_onset"], {}))
                    st.los_since = None
                if st.jump_since is not None:
                    info = dict(st.jump_info or {})
                    ref, Tref = info.pop("_ref"), info.pop("_Tsym")
                    info["offset_ps"] = float((res["t_sym"] - ref + 0.5 * Tref) % Tref - 0.5 * Tref)
                    events.append(SyncEvent("clock_jump", st.jump_since, res["t_sym"], info))
                    st.jump_since, st.jump_info = None, None
                st.bad0 = None
                events.append(SyncEvent("acquired", res["t_sym"], None, dict(res, segment=st.segment)))
                buf = buf[i0:]
                continue
            # ---- TRACK
            T = st.period
            s = st.blk_start
            e = s + B * P * T
            if buf[-1] < e and not final:
                break
            i0 = _first_at_or_after(buf, s)
            i1 = _first_at_or_after(buf, e)
            x = buf[i0:i1].astype(np.float64) - s
            u = x / T
            j = np.minimum(np.floor(u).astype(np.int64), B * P - 1)
            counts = np.bincount(j, minlength=B * P).reshape(B, P)
            n_ph = i1 - i0
            weak = n_ph < max(cfg.los_min_photons, cfg.los_fraction * st.rate)
            t_sym = s + np.arange(B) * (P * T)
            n_emit = B
            if final:
                n_emit = int(np.searchsorted(t_sym, float(buf[-1]), "right"))
            rate_before = st.rate
            # -- a silent run far longer than expected at the tracked rate: loss of signal at once
            gap = self._find_gap(buf, i0, i1, B * P * T, st.rate)
            if gap is not None:
                k_a = gap                                   # buf[k_a] last tag before, buf[k_a+1] first after
                t_a = float(buf[k_a])
                # the block's symbols that end before the next tag (those after the last tag are
                # empty -- erasures, as on the flywheel), counted from the tags before the gap only
                n_g = min(n_emit, int(np.searchsorted(t_sym + P * T, float(buf[k_a + 1]), "right")))
                if n_g:
                    cg = np.bincount(j[:k_a + 1 - i0], minlength=B * P).reshape(B, P)
                    self._emit(parts_c, parts_i, parts_t, parts_s, cg[:n_g], st, t_sym[:n_g])
                st.los_since = (st.last_good_t if st.last_good_t is not None else st.weak_start) \
                    if st.weak_run > 0 else t_a
                st.sym_index += B
                st.blk_start = e
                buf = buf[k_a + 1:]
                st.mode = ClockMode.ACQUIRE
                st.losses += 1
                st.acq_anchor = None
                st.weak_run = 0
                if final:
                    break
                continue
            jump = None if weak or not cfg.jump_detect else self._check_jump(counts, u, j, n_ph, T, st.bad0)
            if jump is not None:
                k_j, reason, bad_mean = jump
                t_j = float(t_sym[k_j]) if k_j < B else e
                n_j = min(n_emit, k_j)
                if n_j:
                    self._emit(parts_c, parts_i, parts_t, parts_s, counts[:n_j], st, t_sym[:n_j])
                st.jumps += 1
                st.jump_since = t_j
                st.jump_info = {"reason": reason, "_ref": float(s), "_Tsym": float(P * T)}
                # blk_start / sym_index stay at this block: the symbol count continues from here
                buf = buf[_first_at_or_after(buf, t_j):]
                st.mode = ClockMode.ACQUIRE
                st.acq_anchor = None
                st.weak_run = 0
                if final:
                    break
                continue
            if not weak:
                frac = u - j - 0.5
                zc = np.exp(TWO_PI * 1j * frac).sum()
                err = math.atan2(zc.imag, zc.real) / TWO_PI * T       # ps, + = photons late
                if n_ph:
                    mb = float((0.5 * (1.0 - np.cos(TWO_PI * frac)) + (j % P >= M)).mean())
                    st.bad0 = mb if st.bad0 is None else st.bad0 + cfg.rate_smoothing * (mb - st.bad0)
                st.period = T + cfg.ki * err / (B * P)
                nxt = e + cfg.kp * err
                st.rate += cfg.rate_smoothing * (n_ph - st.rate)
                st.weak_run = 0
                st.last_good_t = self._signal_end(counts, s, T, rate_before)
                if cfg.guard_smoothing > 0:
                    h = counts.sum(axis=0).astype(np.float64)
                    st.guard_hist = st.guard_hist + cfg.guard_smoothing * (h - st.guard_hist)
                    gh = st.guard_hist
                    if gh.sum() >= 50.0 * P:
                        gs = _window_sums(gh, G)
                        g = int(np.argmin(gs))
                        if g != M and gs[g] < 0.5 * gs[M]:
                            d = (g - M + P // 2) % P - P // 2
                            nxt += d * T
                            st.slips += 1
                            st.guard_hist = np.zeros(P)
                            events.append(SyncEvent("slip", e, None, {"slots": d}))
                emit = True
            else:
                if st.weak_run == 0:
                    st.weak_start = s
                    end = self._signal_end(counts, s, T, st.rate)   # a fade that began in this block
                    if end is not None:
                        st.last_good_t = end
                st.weak_run += 1
                nxt = e
                emit = st.weak_run <= cfg.flywheel_blocks
            if emit and n_emit:
                self._emit(parts_c, parts_i, parts_t, parts_s, counts[:n_emit], st, t_sym[:n_emit])
            st.sym_index += B
            st.blk_start = nxt
            buf = buf[i1:]
            if not emit:                                   # loss of signal declared
                st.mode = ClockMode.ACQUIRE
                st.los_since = st.weak_start if st.last_good_t is None else st.last_good_t
                st.losses += 1
                st.acq_anchor = None
                st.weak_run = 0
            if final:
                break
        st.buf = buf
        if not parts_c:
            out = SlotCounts.empty(P)
            out.events = events
            return out, st
        return SlotCounts(np.concatenate(parts_c), np.concatenate(parts_i), np.concatenate(parts_t),
                          np.concatenate(parts_s), events), st
