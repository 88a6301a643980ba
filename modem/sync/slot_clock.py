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
    ``acq_max_guard_ratio`` of the mean photons per position, or its deficit below the mean is at
    least ``acq_guard_z`` Poisson standard deviations (strong background: 64- and 128-PPM at
    nb = 0.1 leave the guard ~0.8-0.9 of the mean, yet 6-9 sigma deep). A shallow gap places the
    boundary less precisely (a few slots off, at 128-PPM near threshold): the codeword
    synchroniser's slot-resolution CSM search corrects that. The window's tags are then re-used by
    tracking, from 1-8 symbols before the signal's first photons (``_signal_start``: the
    maximum-likelihood change point of the tag rate near the onset), so nothing is lost to
    acquisition: the first codeword of a pass or after a cloud keeps its first CSM symbol. A
    window whose signal began late in it (``acq_refine_onset``, a window anchored on a dark count)
    is acquired again from the signal's start, so the clock comes from a whole window of signal
    (falling back on the first result if that fails or the stream ends first); a window that fails
    but whose tag rate steps up inside it (``acq_step_z``: a signal back too late in it to acquire)
    is followed by a window from the signal's start, not from its end. A window whose FFT
    estimate of the tone peak (``_tone_bound``: one phasor per tag, binned, FFT'd onto the same
    grid) is below half ``acq_min_power`` is skipped before the exact search: windows of noise
    cost ~1 % of it. The exact sums are then computed only where the peak can be
    (``_tone_screen``: every candidate's sum from binned Taylor moments, to within a proven error
    ~1e-9 of the tag count; the candidates that can still be the largest, and their neighbours
    for the interpolation), with the same result bit for bit: a weak tone whose guard fails
    (128-PPM below threshold) costs ~3 % of the full search.
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
    successful acquisition window (to 1/32 of the window); tracking resumes 1-8 symbols before
    the signal's first photons (a few symbols of background first, never a cut CSM). Each
    acquisition opens a new ``segment``: symbols of different segments are not contiguous and a
    codeword synchroniser must restart.
    A run with no tag at all longer than ``los_gap`` (32) mean inter-arrival times at the tracked
    rate plus two symbol periods (the photons come in one bunch per symbol: a strong signal is
    silent from one pulse to the next for up to ~2 symbols) is a loss of signal at once (from the
    last tag before it; re-acquisition starts at the first tag after it) -- a dropout or a forward
    jump of the tags' time base.
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
``flush(state)`` ends the stream (emits the pending partial block up to the last tag, judged weak
or not on the photons of the symbols it holds, and an open loss-of-signal event). Timestamps must be non-decreasing across the whole stream (all channels
merged); a decrease raises :class:`ShapeError` naming the offending value. Inside, times are float64
ps of the tags' own time base: exact to the ps up to 2**53 ps (~2.5 h), a 16 ps step at 1e17 ps
(28 h; symbol times then within 16 ps), 128 ps at 1e18 ps (11.6 days: 250-ps slots then see false
clock jumps). Tags of a tagger left running for days should be re-based (a whole number of ps
subtracted, the output's times shifted by it) before they are pushed.

Implementation: the tracking loop and the acquisition periodogram are compiled (Numba, ``_track``,
``_tone``); ``push`` makes one compiled call for all the blocks its tags complete (the loop used
to cost ~0.3 ms of Python per 256-symbol block). They reproduce the former NumPy formulation bit
for bit (same operations in the same order, NumPy's pairwise summation order); recorded outputs
of that formulation are checked in tests/test_slot_clock.py.

Dark counts and dead time need no special handling: darks are uniform (background) and dead time
only thins the signal photons; the guard contrast test tolerates both.
"""
from __future__ import annotations

import copy
import enum
import math
from dataclasses import dataclass, field

import numba
import numpy as np

from ..errors import ConfigError, ShapeError

__all__ = ["ClockMode", "SlotClockConfig", "SlotClockState", "SlotCounts", "SyncEvent", "SlotClockRecovery"]

TWO_PI = 2.0 * math.pi


class ClockMode(enum.IntEnum):
    ACQUIRE = 0
    TRACK = 1




@numba.njit(cache=True, nogil=True)
def _window_sums(h, G):
    """Circular window sums ``out[g] = h[g] + h[g+1] + ... + h[g+G-1]`` (indices mod ``h.size``) of a
    float64 ``h``, added in that order."""
    P = h.size
    out = np.empty(P)
    for g in range(P):
        acc = h[g] + 0.0
        for i in range(1, G):
            acc += h[(g + i) % P]
        out[g] = acc
    return out


def _first_at_or_after(buf: np.ndarray, x) -> int:
    """``np.searchsorted(buf, x, "left")`` for int64 tags ``buf`` and a real time ``x`` (ps).

    An integer tag is ``>= x`` exactly when it is ``>= ceil(x)``, so the search runs on an int64 key:
    a float key would make NumPy convert the whole buffer to float64 on every call (O(n) per block,
    which dominated the receiver's run time). The compiled search of the tracking loop."""
    return int(_search(buf, 0, buf.size, x))

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
    acq_symbols : acquisition window in nominal symbol periods (the guard histogram's span: its
        deficit grows as ``sqrt(acq_symbols)``).
    acq_tone_symbols : the slot tone is searched on the window's last this many symbols (at most
        ``acq_symbols``; the frequency, refined then over the whole window): the candidate search
        costs ~ tags x candidates, both growing with the span, so a long guard window need not
        pay it.
    acq_min_photons : fewest tags in a window worth an acquisition attempt.
    acq_min_power : slot-tone periodogram peak ``|sum exp(-2 pi i f t)|^2 / n`` needed (noise alone
        gives ~ Exp(1) per candidate).
    acq_max_guard_ratio : the guard is accepted when its photons / the mean photons per slot
        position are at most this ...
    acq_guard_z : ... or when its deficit below the mean is at least this many Poisson standard
        deviations, ``(G*mean - guard) / sqrt(G*mean)``: under strong background (64-PPM at
        nb = 0.1 photons/slot, say) the guard holds mostly background and its ratio stays near
        ``nb*P / (ns + nb*P)`` (0.8 there), yet a window of ``acq_symbols`` symbols makes the
        deficit many sigma deep.
    acq_refine_onset : an accepted window whose signal onset lies at least this fraction of the
        window after its start (a window anchored on a dark count before the signal) is acquired
        again from the signal's start, on a whole window of signal (default 0.25; 1 disables):
        the clock estimated from the signal's tail is the poorer (ppm off at 128-PPM with the
        signal in the window's last few percent, enough for the tracking loop to declare a clock
        jump).
    acq_step_z : a window that fails is followed by one starting at the signal's start, not at its
        end, when its tag rate steps up inside it by at least this many Poisson sigma (a signal
        that came back too late in the window to acquire there).
    block_symbols : tracking block length (symbols).
    kp, ki : loop gains (phase, frequency), per block; stable for 0 < ki < kp < 1 roughly.
    los_fraction, los_min_photons : weak-block threshold ``max(los_min_photons, los_fraction*mean)``.
    flywheel_blocks : weak blocks still emitted before loss of signal is declared.
    rate_smoothing : EMA factor of the photons-per-block mean.
    guard_smoothing : EMA factor of the guard monitor; 0 disables slip correction.
    los_gap : a run with no tag at all longer than ``los_gap`` mean inter-arrival times at the
        tracked rate, plus two symbol periods (the silence between two pulses), is a loss of
        signal at once (probability ``exp(-los_gap)`` per tag for Poisson arrivals; bunched ones
        need ``los_gap`` mean inter-arrival times of whole silent symbols too).
    jump_detect : check every tracked block for a clock jump (phase or symbol boundary moved).
    jump_phase : block phase error (slots) above which the clock has jumped ...
    jump_min_power : ... when the block's slot tone ``|sum exp(2 pi i e_k)|^2 / n`` is at least this.
    """

    slot_width_ps: float
    M: int
    guard: int
    max_offset_ppm: float = 300.0
    acq_symbols: int = 1024
    acq_tone_symbols: int = 1024
    acq_min_photons: int = 200
    acq_min_power: float = 30.0
    acq_max_guard_ratio: float = 0.5
    acq_guard_z: float = 6.0
    acq_refine_onset: float = 0.25
    acq_step_z: float = 6.0
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
        integer("acq_tone_symbols", 16, 1 << 24)
        integer("acq_min_photons", 2, 1 << 30)
        num("acq_min_power", 0.0, 1e12)
        num("acq_max_guard_ratio", 0.0, 1.0, lo_open=True)
        num("acq_guard_z", 0.0, 1e6, lo_open=True)
        num("acq_refine_onset", 0.0, 1.0, lo_open=True)
        num("acq_step_z", 0.0, 1e6, lo_open=True)
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
        """Config for an :class:`~modem.fec.scppm.SCPPMCode` (M, guard = M/4) and a slot width.

        128- and 256-PPM get a 2048- and 4096-symbol acquisition window (``acq_symbols``; the tone
        still searched on 1024): the guard deficit in N symbols is ``sqrt(G N/P) ns / sqrt(ns + nb P)``,
        near threshold under nb = 0.1 in 1024 symbols ~6 sigma at 128-PPM (one window in five
        refused) and ~4-6 at 256-PPM (records never acquired); ~9 and ~10 in the longer windows.
        """
        if code.guard < 1:
            raise ConfigError(f"SlotClockConfig.from_code: the code has no guard slots ({code.describe()}); "
                              "guard-time clock recovery needs them")
        if code.M >= 128:
            kw.setdefault("acq_symbols", 4096 if code.M >= 256 else 2048)
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
    buffered tag); ``acq_pending`` an accepted window's result whose signal started late in it,
    kept while the window from the signal's start is acquired (the fallback). TRACK: block
    ``blk_start`` (ps, float), slot period ``period`` (ps), ``sym_index`` of the symbol at
    ``blk_start``, ``rate`` mean photons per block, ``weak_run`` weak blocks in a row (from
    ``weak_start``), ``guard_hist`` guard-monitor histogram, ``last_good_t`` where the signal
    ended (last good block or first weak one).
    ``los_since``: start of the current loss of signal (None when not lost); ``jump_since`` /
    ``jump_info``: a clock jump awaiting re-acquisition; ``bad0``: mean per-photon misalignment
    of the good blocks (jump localisation). Counters: ``acquisitions``, ``failed_windows``,
    ``refined_windows`` (accepted windows acquired again from the signal's start), ``losses``,
    ``slips``, ``jumps``.
    """

    mode: ClockMode = ClockMode.ACQUIRE
    buf: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    last_t: int | None = None
    acq_anchor: float | None = None
    acq_pending: dict | None = None
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
    refined_windows: int = 0
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
    i = _first_decrease(t)
    if i > 0:
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
        c = config
        self._ip = np.array([c.block_symbols, c.P, c.M, c.guard, c.los_min_photons, c.flywheel_blocks,
                             int(bool(c.jump_detect))], dtype=np.int64)
        self._fp = np.array([c.los_fraction, c.rate_smoothing, c.guard_smoothing, c.los_gap, c.jump_phase,
                             c.jump_min_power, c.kp, c.ki, 2.0], dtype=np.float64)
        self._max_blocks = float(max(1, (8 << 20) // (2 * c.block_symbols * c.P)))

    def initial_state(self) -> SlotClockState:
        return SlotClockState()

    # ---------------------------------------------------------------------------------- acquire
    def acquire(self, tags, t_anchor: float):
        """One acquisition attempt on the tags of ``[t_anchor, t_anchor + window)``.

        Returns None (no clock found) or a dict: ``period`` (slot period ps), ``t_sym`` (first
        symbol start, ps: 1-8 symbols before the signal's first photons, ``_signal_start``, so
        possibly before ``t_anchor``: the window's first tag usually falls inside the first symbol
        sent), ``t_onset`` (start of the first of 32 sub-windows holding signal),
        ``rate_per_ps`` (tags per ps after it), ``offset_ppm``, ``power`` (tone power),
        ``guard_ratio``, ``guard_z``.
        """
        cfg = self.cfg
        n = tags.size
        if n < cfg.acq_min_photons:
            return None
        T0, P, G, W = cfg.slot_width_ps, cfg.P, cfg.guard, cfg.acq_window_ps
        x = (tags - t_anchor).astype(np.float64) if tags.dtype != np.float64 else tags - t_anchor
        # the slot tone is searched on the window's last acq_tone_symbols (all of it by default)
        W1 = min(W, cfg.acq_tone_symbols * P * T0)
        x1 = x[x >= W - W1] - (W - W1)
        n1 = x1.size
        if n1 < cfg.acq_min_photons:
            return None
        ph = _phasors(x1, T0)                 # exp(-2 pi i x/T0), shared by the two screens
        if _tone_bound(x1, T0, W1, cfg.max_offset_ppm, ph) < 0.5 * cfg.acq_min_power:
            return None                       # no slot tone near threshold (noise alone): skip the exact search
        step = T0 / (4.0 * W1)
        K = int(math.ceil(cfg.max_offset_ppm * 1e-6 / step))
        eps = np.arange(-K, K + 1) * step
        f = 1.0 / (T0 * (1.0 + eps))
        # the exact sums only where the peak can be: |S_j| within +-err of the Taylor evaluation
        a, err = _tone_screen(x1, f, T0, W1, ph)
        if (a.max() + err) ** 2 / n1 < cfg.acq_min_power:
            return None                       # every candidate provably below acq_min_power
        top = np.flatnonzero(a + err >= a.max() - err)
        idx = np.unique(np.clip(np.concatenate([top - 1, top, top + 1]), 0, f.size - 1))
        pw = np.zeros(f.size)                 # exact values at idx; the rest are below pw[idx].max()
        pw[idx] = np.abs(_tone(x1, f[idx], numba.get_num_threads())) ** 2 / n1   # NumPy's |z|, as before
        k = int(np.argmax(pw))
        if pw[k] < cfg.acq_min_power:
            return None
        e_hat = eps[k]
        if 0 < k < eps.size - 1:
            y0, y1, y2 = pw[k - 1], pw[k], pw[k + 1]
            den = y0 - 2 * y1 + y2
            if den < 0:
                e_hat += 0.5 * (y0 - y2) / den * step
        fh = _refine_frequency(x1, 1.0 / (T0 * (1.0 + e_hat)), W1)
        if W1 < W:                            # then over the whole window (its tone phase, from the tone's)
            fh = _refine_frequency(x, fh, W)
        T = 1.0 / fh
        c = (-np.angle(np.exp(-TWO_PI * 1j * (fh * x % 1.0)).sum()) / TWO_PI) % 1.0 * T   # slot centre
        s0 = (c - 0.5 * T) % T                                                               # slot edge
        j = np.floor((x - s0) / T).astype(np.int64)
        j = j[j >= 0]
        hist = np.bincount(j % P, minlength=P).astype(np.float64)
        gs = _window_sums(hist, G)                           # gs[g] = photons in positions g..g+G-1
        g = int(np.argmin(gs))
        mu = G * max(hist.mean(), 1e-300)                    # guard photons expected with no guard
        ratio = float(gs[g] / mu)
        z = float((mu - gs[g]) / math.sqrt(mu))
        if ratio > cfg.acq_max_guard_ratio and z < cfg.acq_guard_z:
            return None
        # signal onset inside the window (a window anchored on a dark count before the signal
        # returns): the first of 32 sub-windows holding >= 1/4 of the busy sub-windows' mean
        nb_sub = 32
        sub = np.bincount(np.minimum((x * (nb_sub / W)).astype(np.int64), nb_sub - 1), minlength=nb_sub)
        onset = _first_busy(sub) * (W / nb_sub)
        first = (g + G) % P
        n_sig = int(np.count_nonzero(x >= onset))
        rate = n_sig / max(W - onset, 1.0)
        # tracking starts a few symbols before the signal's first photons (a cut CSM costs a
        # codeword; a few symbols of background first cost nothing), at a symbol boundary, which
        # may be before the window's first tag: that tag usually falls inside the first symbol
        PT = P * T
        tau = _signal_start(x, onset, W / nb_sub, rate)
        lead = min(8, max(1, math.ceil(8.0 / max(rate * PT, 1e-300)))) * PT
        t_sym = s0 + first * T
        t_sym += math.floor((tau - lead - t_sym) / PT) * PT
        return {"period": float(T), "t_sym": float(t_anchor + t_sym), "t_onset": float(t_anchor + onset),
                "rate_per_ps": rate, "offset_ppm": float((T / T0 - 1.0) * 1e6),
                "power": float(pw[k]), "guard_ratio": ratio, "guard_z": z}

    # ---------------------------------------------------------------------------------- streaming
    def push(self, t_ps, state: SlotClockState) -> tuple[SlotCounts, SlotClockState]:
        """Consume a chunk of sorted time tags; return the symbols completed and the new state."""
        if not isinstance(state, SlotClockState):
            raise ConfigError(f"SlotClockRecovery.push: state must be a SlotClockState, got {type(state)}")
        t = _check_tags(t_ps, state.last_t, "SlotClockRecovery.push")
        st = copy.copy(state)
        if t.size:
            st.buf = np.concatenate([state.buf, t]) if state.buf.size else t
            st.last_t = int(t[-1])
        return self._run(st, final=False)

    def flush(self, state: SlotClockState) -> tuple[SlotCounts, SlotClockState]:
        """End of stream: emit the pending partial block (symbols starting before the last tag) and an
        open ``loss_of_signal`` event if the signal is lost. Returns the output and a fresh-ish state
        (buffer emptied)."""
        st = copy.copy(state)
        out, st = self._run(st, final=True)
        if st.los_since is not None:
            out.events.append(SyncEvent("loss_of_signal", st.los_since, None, {}))
        if st.jump_since is not None:
            info = {k: v for k, v in (st.jump_info or {}).items() if not k.startswith("_")}
            out.events.append(SyncEvent("clock_jump", st.jump_since, None, info))
        st.buf = np.zeros(0, dtype=np.int64)
        return out, st

    def _step_in_window(self, tags, t_anchor: float) -> float | None:
        """Where the next acquisition window starts after the window ``[t_anchor, +window)`` failed:
        None (its end) unless the tag rate steps up inside it, by at least ``acq_step_z`` Poisson
        sigma, from a sub-window on (of 32; the onset rule of :meth:`acquire`): a signal that
        came back late in the window, too little of it there to acquire. Then the next window
        starts a few symbols before the signal's first photons (``_signal_start``), not at the
        window's end, which would cut up to the whole window's share of signal (a codeword's CSM
        with it). A later start always: at most two windows per step."""
        cfg = self.cfg
        W, nb_sub = cfg.acq_window_ps, 32
        if tags.size < 16:
            return None
        # sub-window counts from 31 searches of the sorted tags (a window of noise costs no pass)
        cut = np.searchsorted(tags, t_anchor + np.arange(1, nb_sub) * (W / nb_sub), side="left")
        sub = np.diff(np.concatenate([[0], cut, [tags.size]]))
        k = _first_busy(sub)
        if k == 0:
            return None
        n_after = int(sub[k:].sum())
        expected = n_after * k / (nb_sub - k)             # before the step, at the rate after it
        if (expected - sub[:k].sum()) < cfg.acq_step_z * math.sqrt(max(expected, 1.0)):
            return None
        onset = k * (W / nb_sub)
        x = (tags - t_anchor).astype(np.float64)
        tau = _signal_start(x, onset, W / nb_sub, n_after / (W - onset))
        nxt = tau - 4 * cfg.P * cfg.slot_width_ps
        if nxt <= 0.0:
            nxt = tau
        return t_anchor + nxt if nxt > 0.0 else None

    def _start_tracking(self, st: SlotClockState, res: dict, events: list):
        """ACQUIRE -> TRACK on an acquisition result ``res`` (see :meth:`acquire`): clock model, a new
        segment, the symbol count carried over the gap, and the events this closes."""
        P = self.cfg.P
        st.mode = ClockMode.TRACK
        st.acq_anchor = None
        st.acq_pending = None
        st.period = res["period"]
        Tsym = P * st.period
        if st.segment >= 0:                       # continue the symbol count over the gap
            st.sym_index += max(0, int(round((res["t_sym"] - st.blk_start) / Tsym)))
        st.blk_start = res["t_sym"]
        st.segment += 1
        st.acquisitions += 1
        st.rate = res["rate_per_ps"] * (self.cfg.block_symbols * Tsym)
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

    def _run(self, st: SlotClockState, final: bool) -> tuple[SlotCounts, SlotClockState]:
        cfg = self.cfg
        P, B = cfg.P, cfg.block_symbols
        parts_c, parts_i, parts_t, parts_s, events = [], [], [], [], []
        buf = st.buf
        while buf.size:
            if st.mode == ClockMode.ACQUIRE:
                a = float(buf[0]) if st.acq_anchor is None else st.acq_anchor
                end = a + cfg.acq_window_ps
                i0 = _first_at_or_after(buf, a)
                if buf[-1] < end:
                    if final and st.acq_pending is not None:    # the stream ended: keep the first
                        self._start_tracking(st, st.acq_pending, events)
                        buf = buf[i0:]
                        continue
                    st.acq_anchor = a
                    buf = buf[i0:]
                    break
                i1 = _first_at_or_after(buf, end)
                res = self.acquire(buf[i0:i1], a)
                if res is None and st.acq_pending is not None:
                    res = st.acq_pending                        # the second window failed: the first
                elif res is None:
                    st.failed_windows += 1
                    nxt = self._step_in_window(buf[i0:i1], a)
                    if nxt is None:
                        st.acq_anchor = None
                        buf = buf[i1:]
                    else:                  # the signal came back late in it: a window from there
                        st.acq_anchor = nxt
                        buf = buf[_first_at_or_after(buf, nxt):]
                    continue
                elif res["t_onset"] - a >= cfg.acq_refine_onset * cfg.acq_window_ps and res["t_sym"] > a:
                    # the signal started late in the window, and its clock estimate is the poorer
                    # for it (``acq_refine_onset``): acquire again on a whole window from where
                    # tracking would start (always later), falling back on this result if that
                    # fails or the stream ends first
                    st.refined_windows += 1
                    st.acq_pending = res
                    st.acq_anchor = res["t_sym"]
                    buf = buf[i0:]
                    continue
                self._start_tracking(st, res, events)
                buf = buf[i0:]
                continue
            # ---- TRACK: compiled, as many blocks as the buffered tags complete (``_track``)
            s = st.blk_start
            blk_ps = B * P * st.period
            if buf[-1] < s + blk_ps and not final:
                break
            # at the end of the stream, the whole blocks first (there are some only when tracking
            # began in this flush, on a window's fallback result), then the last, partial one
            fin = final and buf[-1] < s + blk_ps
            # output room for the blocks the buffer should complete (at most ~8 MB of counts per call)
            cap = 1 if fin else int(min(max((float(buf[-1]) - s) / blk_ps, 0.0), self._max_blocks)) + 2
            out_c = np.empty((cap * B, P), np.uint16)
            out_i = np.empty(cap * B, np.int64)
            out_t = np.empty(cap * B)
            ev_t = np.empty(cap)
            ev_d = np.empty(cap, np.int64)
            gh = st.guard_hist.copy()
            (status, base, n_out, n_ev, _, st.blk_start, st.period, st.rate, st.weak_run, st.weak_start, lgt, bad0,
             st.sym_index, t_event, reason, ref_s) = _track(
                buf, 0, fin, cap, s, st.period, st.rate, st.weak_run, st.weak_start,
                math.nan if st.last_good_t is None else st.last_good_t, math.nan if st.bad0 is None else st.bad0,
                st.sym_index, gh, self._ip, self._fp, out_c, out_i, out_t, ev_t, ev_d)
            st.guard_hist = gh
            st.last_good_t = None if math.isnan(lgt) else lgt
            st.bad0 = None if math.isnan(bad0) else bad0
            if n_out:
                parts_c.append(out_c[:n_out])
                parts_i.append(out_i[:n_out])
                parts_t.append(out_t[:n_out])
                parts_s.append(np.full(n_out, st.segment, dtype=np.int32))
            for k in range(n_ev):
                events.append(SyncEvent("slip", float(ev_t[k]), None, {"slots": int(ev_d[k])}))
            st.slips += n_ev
            buf = buf[base:]
            if status in (_GAP, _JUMP, _LOS):
                st.mode = ClockMode.ACQUIRE
                st.acq_anchor = None
                if status == _JUMP:
                    st.jumps += 1
                    st.jump_since = float(t_event)
                    st.jump_info = {"reason": _REASONS[reason], "_ref": float(ref_s), "_Tsym": float(P * st.period)}
                else:
                    st.losses += 1
                    st.los_since = float(t_event)
            if fin:
                break
        st.buf = buf
        if not parts_c:
            out = SlotCounts.empty(P)
            out.events = events
            return out, st
        return SlotCounts(np.concatenate(parts_c), np.concatenate(parts_i), np.concatenate(parts_t),
                          np.concatenate(parts_s), events), st


# ------------------------------------------------------------------------ compiled tracking loop
# The tracking loop runs block after block in one compiled call (one Python call per push, not a
# dozen NumPy calls per 256-symbol block). It reproduces the NumPy formulation of the loop bit for
# bit: the same IEEE operations in the same order, NumPy's pairwise summation for the sums whose
# order is not fixed by the algorithm (``_pairwise_sum``, ``_pairwise_csum``), libm's cos / sin /
# atan2 / hypot / pow as NumPy and CPython call them, integer counts for everything else.
# tests/test_slot_clock.py::test_tracking_matches_recorded_outputs holds the outputs of the NumPy
# implementation this replaced.

_NEED_MORE, _FULL, _FINAL, _GAP, _JUMP, _LOS = 0, 1, 2, 3, 4, 5
_REASONS = (None, "phase", "guard")


@numba.njit(cache=True, nogil=True)
def _pw_leaf(a, lo, n):  # pragma: no cover - compiled
    """NumPy's pairwise-sum leaf (n <= 128): 8 accumulators, then the rest in order."""
    if n < 8:
        r = 0.0
        for i in range(lo, lo + n):
            r += a[i]
        return r
    r0, r1, r2, r3 = a[lo], a[lo + 1], a[lo + 2], a[lo + 3]
    r4, r5, r6, r7 = a[lo + 4], a[lo + 5], a[lo + 6], a[lo + 7]
    m = n - n % 8
    i = 8
    while i < m:
        k = lo + i
        r0 += a[k]
        r1 += a[k + 1]
        r2 += a[k + 2]
        r3 += a[k + 3]
        r4 += a[k + 4]
        r5 += a[k + 5]
        r6 += a[k + 6]
        r7 += a[k + 7]
        i += 8
    r = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
    while i < n:
        r += a[lo + i]
        i += 1
    return r


@numba.njit(cache=True, nogil=True)
def _pw_cleaf(re, im, lo, m):  # pragma: no cover - compiled
    """NumPy's complex pairwise-sum leaf (2m <= 128 scalars): 4 accumulators per part."""
    if 2 * m < 8:
        rr = 0.0
        ri = 0.0
        for k in range(lo, lo + m):
            rr += re[k]
            ri += im[k]
        return rr, ri
    a0, b0, a1, b1 = re[lo], im[lo], re[lo + 1], im[lo + 1]
    a2, b2, a3, b3 = re[lo + 2], im[lo + 2], re[lo + 3], im[lo + 3]
    mm = (2 * m - (2 * m) % 8) // 2
    i = 4
    while i < mm:
        k = lo + i
        a0 += re[k]
        b0 += im[k]
        a1 += re[k + 1]
        b1 += im[k + 1]
        a2 += re[k + 2]
        b2 += im[k + 2]
        a3 += re[k + 3]
        b3 += im[k + 3]
        i += 4
    rr = (a0 + a1) + (a2 + a3)
    ri = (b0 + b1) + (b2 + b3)
    while i < m:
        rr += re[lo + i]
        ri += im[lo + i]
        i += 1
    return rr, ri


@numba.njit(cache=True, nogil=True)
def _pairwise_csum(re, im, lo, m):  # pragma: no cover - compiled
    """Sum of the complex numbers ``re[k] + 1j*im[k]``, k in [lo, lo+m), in NumPy's pairwise order
    for complex128 (real and imaginary parts interleaved as n = 2m scalars; above 128 scalars the
    range splits at n/2 rounded down to a multiple of 8 and the halves' sums are added):
    bit-identical to ``np.sum`` of the contiguous complex array. Returns (real, imag). Iterative
    (an explicit stack): Numba's cache cannot hold recursive functions."""
    if 2 * m <= 128:
        return _pw_cleaf(re, im, lo, m)
    s_lo = np.empty(256, np.int64)
    s_m = np.empty(256, np.int64)
    s_join = np.empty(256, np.bool_)
    v_re = np.empty(256)
    v_im = np.empty(256)
    s_lo[0], s_m[0], s_join[0] = lo, m, False
    top, vt = 1, 0
    while top:
        top -= 1
        lo_, m_, join = s_lo[top], s_m[top], s_join[top]
        if join:                                   # both halves done: left + right
            v_re[vt - 2] = v_re[vt - 2] + v_re[vt - 1]
            v_im[vt - 2] = v_im[vt - 2] + v_im[vt - 1]
            vt -= 1
        elif 2 * m_ <= 128:
            v_re[vt], v_im[vt] = _pw_cleaf(re, im, lo_, m_)
            vt += 1
        else:
            n2 = m_                                # (2m)//2 scalars
            n2 -= n2 % 8
            h = n2 // 2                            # complex elements in the left half
            s_lo[top], s_m[top], s_join[top] = lo_, m_, True
            s_lo[top + 1], s_m[top + 1], s_join[top + 1] = lo_ + h, m_ - h, False
            s_lo[top + 2], s_m[top + 2], s_join[top + 2] = lo_, h, False
            top += 3
    return v_re[0], v_im[0]


@numba.njit(cache=True, nogil=True)
def _pairwise_sum(a, lo, n):  # pragma: no cover - compiled
    """``a[lo:lo+n].sum()`` of a float64 array in NumPy's pairwise order (leaves of <= 128 with 8
    accumulators; above, split at n/2 rounded down to a multiple of 8): bit-identical to ``np.sum``
    (and ``np.mean * n``) of a contiguous array. Iterative, as ``_pairwise_csum``."""
    if n <= 128:
        return _pw_leaf(a, lo, n)
    s_lo = np.empty(256, np.int64)
    s_n = np.empty(256, np.int64)
    s_join = np.empty(256, np.bool_)
    v = np.empty(256)
    s_lo[0], s_n[0], s_join[0] = lo, n, False
    top, vt = 1, 0
    while top:
        top -= 1
        lo_, n_, join = s_lo[top], s_n[top], s_join[top]
        if join:
            v[vt - 2] = v[vt - 2] + v[vt - 1]
            vt -= 1
        elif n_ <= 128:
            v[vt] = _pw_leaf(a, lo_, n_)
            vt += 1
        else:
            n2 = n_ // 2
            n2 -= n2 % 8
            s_lo[top], s_n[top], s_join[top] = lo_, n_, True
            s_lo[top + 1], s_n[top + 1], s_join[top + 1] = lo_ + n2, n_ - n2, False
            s_lo[top + 2], s_n[top + 2], s_join[top + 2] = lo_, n2, False
            top += 3
    return v[0]


@numba.njit(cache=True, nogil=True, parallel=True)
def _tone(x, f, nw):  # pragma: no cover - compiled
    """Slot-tone sums ``sum_k exp(-2 pi i f_j x_k)`` (complex128 (m,)) for every candidate ``f_j``
    (x (n,) float64 ps from the window anchor, f (m,) 1/ps); the argument is reduced to
    ``f x - floor(f x)`` (precision). Bit-identical to ``np.exp(-2j*pi*ph).sum(axis=-1)``.
    Candidates are split over ``nw`` worker threads (each candidate's sum is serial)."""
    n = x.size
    m = f.size
    out = np.empty(m, np.complex128)
    nw = max(1, min(m, nw))
    for w in numba.prange(nw):
        cs = np.empty(n)
        sn = np.empty(n)
        for i in range(w * m // nw, (w + 1) * m // nw):
            fi = f[i]
            for k in range(n):
                ph = fi * x[k]
                ph -= math.floor(ph)
                y = -TWO_PI * ph
                cs[k] = math.cos(y)
                sn[k] = math.sin(y)
            zr, zi = _pairwise_csum(cs, sn, 0, n)
            out[i] = complex(zr, zi)
    return out


@numba.njit(cache=True, nogil=True, parallel=True)
def _tone_taylor(x, ar, ai, W, nu, B, order, nw):  # pragma: no cover - compiled
    """Slot-tone sums ``S_j = sum_k exp(-2 pi i (1/T0 + nu_j) x_k)`` (complex128 (m,)) for residual
    frequencies ``nu`` (1/ps) near the nominal, from ``B`` bins of the window ``[0, W)``
    (``W = B w``, ``x`` (n,) float64 ps in it) instead of one phasor per tag and candidate: with
    ``a_k = exp(-2 pi i x_k / T0) = ar_k + i ai_k`` (:func:`_phasors`), bin centre ``c_b`` and ``x_k = c_b + v_k w / 2`` (``|v_k| <= 1``),
    ``exp(-2 pi i nu x_k) = exp(-2 pi i nu c_b) sum_p (-i theta)^p v_k^p / p!``, ``theta = pi nu w``,
    cut after ``p = order``: ``S_j = sum_b exp(-2 pi i nu_j c_b) sum_p (-i theta_j)^p Z_bp`` with the
    bin moments ``Z_bp = sum_{k in b} a_k v_k^p / p!``, computed once. Cost ``n (order+1)`` for the
    moments and ``B (order+1)`` per candidate, against ``n`` sincos per candidate exactly.
    Truncation error ``<= n |theta|^(order+1) / (order+1)!`` (Taylor remainder of ``exp(i y)``).
    The moments are summed over up to ``nw`` threads' shares of the tags, the candidates split
    over the threads (the values vary with ``nw`` only by rounding)."""
    n = x.size
    m = nu.size
    w = W / B
    inv = 1.0 / np.arange(1.0, order + 2.0)
    nt = max(1, min(nw, n // 4096))                       # moments: a share of the tags per thread
    Zt = np.zeros((nt, 2, B, order + 1))
    for t in numba.prange(nt):
        for k in range(t * n // nt, (t + 1) * n // nt):
            b = min(max(int(x[k] / w), 0), B - 1)
            v = (x[k] - (b + 0.5) * w) / (0.5 * w)
            tr = ar[k]
            ti = ai[k]
            for p in range(order + 1):
                Zt[t, 0, b, p] += tr
                Zt[t, 1, b, p] += ti
                c = v * inv[p]
                tr *= c
                ti *= c
    Zr = Zt[0, 0].copy()
    Zi = Zt[0, 1].copy()
    for t in range(1, nt):
        Zr += Zt[t, 0]
        Zi += Zt[t, 1]
    out = np.empty(m, np.complex128)
    for j in numba.prange(m):
        tau = math.pi * nu[j] * w                  # s * (-i tau) = (tau s_i, -tau s_r)
        ar = 0.0
        ai = 0.0
        for b in range(B):
            sr = Zr[b, order]
            si = Zi[b, order]
            for p in range(order - 1, -1, -1):
                sr, si = tau * si + Zr[b, p], Zi[b, p] - tau * sr
            ang = -TWO_PI * nu[j] * (b + 0.5) * w
            cr = math.cos(ang)
            ci = math.sin(ang)
            ar += sr * cr - si * ci
            ai += sr * ci + si * cr
        out[j] = complex(ar, ai)
    return out


def _tone_screen(x, f, T0: float, W: float, ph=None):
    """``|S_j|`` of the slot-tone sums ``S_j = sum_k exp(-2 pi i f_j x_k)`` (x (n,) float64 ps in
    ``[0, W)``, f (m,) 1/ps near ``1/T0``) to within a proven ``err``: returns ``(a (m,) float64,
    err)`` with ``| |S_j| - a_j | <= err`` for every candidate, from :func:`_tone_taylor` (bins of
    width ``w`` with ``pi max|nu| w <= pi/2``, series cut where its remainder is ``<= 1e-12 n``). ``err``
    also covers rounding: phases ``f x`` lose ``~ W/T0 * 2**-52`` cycles on both sides, and the
    sums ``~ 1e-16`` of their terms. Candidates whose exact sum cannot be the largest are then
    skipped (:meth:`SlotClockRecovery.acquire`), with bit-identical results."""
    n = x.size
    nu = f - 1.0 / T0
    nu_max = float(np.abs(nu).max())
    B = 1 << max(3, int(math.ceil(math.log2(max(2.0 * nu_max * W, 1.0)))))
    theta = math.pi * nu_max * (W / B) * (1.0 + 1e-9)
    order, rem = 0, theta
    while rem > 1e-12:                        # rem = theta^(order+1) / (order+1)!
        order += 1
        rem *= theta / (order + 1)
    ar, ai = _phasors(x, T0) if ph is None else ph
    a = np.abs(_tone_taylor(x, ar, ai, W, nu, B, order, numba.get_num_threads()))
    err = n * (rem + 1e-9 + 1e-14 * (W / T0))
    return a, err


def _refine_frequency(x, fh: float, W: float) -> float:
    """Refined slot frequency: the tone phase at ``fh`` on the four quarters of ``[0, W)`` (those
    holding signal: not a fade or darks), least-squares slope added to ``fh``."""
    q = np.minimum((x * (4.0 / W)).astype(np.int64), 3)
    z = np.array([np.exp(-TWO_PI * 1j * (fh * x[q == i] % 1.0)).sum() for i in range(4)])
    ok = np.abs(z) >= 0.25 * np.abs(z).max()
    if ok.sum() >= 2:
        ph = np.unwrap(np.angle(z[ok]))
        xm = np.array([x[q == i].mean() for i in np.flatnonzero(ok)])
        fh = fh + np.polyfit(xm, ph, 1)[0] / TWO_PI
    return fh


def _tone_bound(x, T0: float, W: float, max_offset_ppm: float, ph=None) -> float:
    """A cheap estimate of the slot-tone periodogram's peak ``max_f |sum_k exp(-2 pi i f x_k)|^2 / n``
    over ``|f T0 - 1| <= max_offset_ppm``, from one phasor per tag instead of one per tag and
    candidate: the tags' phasors at the nominal slot rate ``exp(-2 pi i x/T0)``, summed in ``B``
    time bins of the window ``W``, then zero-padded 4x and FFT'd: the residual tone
    (``|delta f| <= max_offset/T0``) on the candidate search's own grid ``1/(4W)``. Binning
    attenuates a residual tone by ``sinc(delta f W/B) >= 0.99`` (B >= 16 W max_offset/T0), and the
    grid points lie within a quarter step of the exact search's (power >= ~0.9 of its peak),
    so a window this estimate puts below half ``acq_min_power`` is one the exact search rejects
    too: acquisition takes the same windows, at ~100x less cost on a window of noise (128-PPM at
    nb = 0.1: ~16 k tags x ~800 candidates)."""
    n = x.size
    d_max = max_offset_ppm * 1e-6 / T0                                   # residual tone, 1/ps
    B = 1 << max(6, int(math.ceil(math.log2(max(16.0 * W * d_max, 1.0)))))
    ar, ai = _phasors(x, T0) if ph is None else ph
    spec = np.abs(np.fft.fft(_binned_sum(x, ar, ai, W, B), 4 * B)) ** 2 / n   # bins of 1/(4W)
    k = int(math.ceil(d_max * 4 * W)) + 1                                # +-max offset, one bin spare
    return float(max(spec[:k + 1].max(), spec[-k:].max()))


def _phasors(x, T0: float):
    """Each tag's phasor at the nominal slot rate, ``exp(-2 pi i x_k / T0)`` as ``(re, im)``
    float64 (n,) arrays (x (n,) float64 ps; the phase reduced to ``x/T0 - floor(x/T0)``); split
    over the worker threads for large windows (the same values either way)."""
    ar = np.empty(x.size)
    ai = np.empty(x.size)
    nt = min(numba.get_num_threads(), x.size // 8192)
    if nt > 1:
        _phasors_mt(x, T0, ar, ai, nt)
    else:
        _phasor_range(x, T0, ar, ai, 0, x.size)
    return ar, ai


@numba.njit(cache=True, nogil=True)
def _phasor_range(x, T0, ar, ai, lo, hi):  # pragma: no cover - compiled
    for k in range(lo, hi):
        ph = x[k] / T0
        y = -TWO_PI * (ph - math.floor(ph))
        ar[k] = math.cos(y)
        ai[k] = math.sin(y)


@numba.njit(cache=True, nogil=True, parallel=True)
def _phasors_mt(x, T0, ar, ai, nt):  # pragma: no cover - compiled
    for t in numba.prange(nt):
        _phasor_range(x, T0, ar, ai, t * x.size // nt, (t + 1) * x.size // nt)


@numba.njit(cache=True, nogil=True)
def _binned_sum(x, ar, ai, W, B):  # pragma: no cover - compiled
    """``z_b = sum_{k in bin b} (ar_k + i ai_k)`` (complex128 (B,)) over ``B`` equal bins of
    ``[0, W)`` (x (n,) float64 ps; a tag at ``W`` or beyond goes to the last bin)."""
    zr = np.zeros(B)
    zi = np.zeros(B)
    for k in range(x.size):
        b = min(int(x[k] * (B / W)), B - 1)
        zr[b] += ar[k]
        zi[b] += ai[k]
    return zr + 1j * zi


def _first_busy(sub) -> int:
    """Index of the first sub-window holding at least 1/4 of the busy ones' mean count (the mean of
    the upper half): where the signal begins in a window (0 when it fills the window, or none)."""
    busy = np.sort(sub)[sub.size // 2:].mean()
    return int(np.flatnonzero(sub >= 0.25 * busy)[0])


def _signal_start(x, onset: float, width: float, rate: float) -> float:
    """Start of the signal in an acquisition window: the maximum-likelihood change point of a
    Poisson process from rate ``lam0`` to ``rate`` (photons/ps) among the tags ``x`` (sorted, ps
    from the window start) of ``[onset - width, onset + width)``, ``onset`` the first busy
    sub-window's start and ``width`` a sub-window's length. ``lam0`` is the rate before that
    interval, kept within ``[rate/1000, rate/4]``: with no tag before it, a stray tag is taken for
    the signal unless ~7 mean inter-arrival times of silence follow it. Between tags the
    log-likelihood of a start ``tau`` grows as ``(rate - lam0) * tau`` and drops by
    ``ln(rate / lam0)`` at each tag left before it, so the maximum is at a tag ``x_i``:
    ``argmax_i (i * ln(lam0 / rate) + (rate - lam0) * x_i)``. Returns ``onset`` when the interval
    holds no tag."""
    a = max(onset - width, 0.0)
    i_a = int(np.searchsorted(x, a, side="left"))
    i_b = int(np.searchsorted(x, onset + width, side="left"))
    if i_b <= i_a or rate <= 0:
        return onset
    lam0 = min(max(i_a / a if a > 0 else 0.0, 1e-3 * rate), 0.25 * rate)
    xi = x[i_a:i_b]
    score = np.arange(xi.size) * math.log(lam0 / rate) + (rate - lam0) * xi
    return float(xi[int(np.argmax(score))])


@numba.njit(cache=True, nogil=True)
def _first_decrease(t):  # pragma: no cover - compiled
    """Index ``i`` of the first tag below its predecessor (``t[i] < t[i-1]``), or -1."""
    for i in range(1, t.size):
        if t[i] < t[i - 1]:
            return i
    return -1


@numba.njit(cache=True, nogil=True)
def _search(buf, lo, hi, x):  # pragma: no cover - compiled
    """First index in [lo, hi) of the sorted int64 ``buf`` with ``buf[i] >= x`` (x real ps; an
    integer tag is >= x exactly when it is >= ceil(x)); ``hi`` if none."""
    key = np.int64(math.ceil(x))
    while lo < hi:
        mid = (lo + hi) >> 1
        if buf[mid] < key:
            lo = mid + 1
        else:
            hi = mid
    return lo


@numba.njit(cache=True, nogil=True)
def _signal_end(rows, B, P, s, T, rate):  # pragma: no cover - compiled
    """End time of the last of <= 16 sub-blocks of a block (``rows`` (B,) photons per symbol)
    holding >= 1/4 of the running mean photons per sub-block (where a fade began); NaN when none."""
    nsub = min(16, B)
    end_sym = -1
    for k in range(nsub):
        a = k * B // nsub
        b = (k + 1) * B // nsub
        sub = 0
        for i in range(a, b):
            sub += rows[i]
        if sub >= 0.25 * rate * (b - a) / B:
            end_sym = b
    if end_sym < 0:
        return np.nan
    return s + (end_sym * P) * T


@numba.njit(cache=True, nogil=True)
def _bin(out_counts, r0, B, P, jq, jr, n):  # pragma: no cover - compiled
    """Slot counts of the tags in symbol ``jq[:n]``, slot position ``jr[:n]`` of a block into rows
    ``r0 .. r0+B-1`` of ``out_counts`` (zeroed first; uint16 saturating at 65535, as
    ``np.minimum(counts, 65535)``)."""
    for r in range(r0, r0 + B):
        for c in range(P):
            out_counts[r, c] = 0
    for k in range(n):
        r = r0 + jq[k]
        c = jr[k]
        if out_counts[r, c] < 65535:
            out_counts[r, c] += 1


@numba.njit(cache=True, nogil=True)
def _stamp(out_idx, out_t, n_out, rows, sym_index, s, PT):  # pragma: no cover - compiled
    """Symbol numbers and start times of ``rows`` symbols emitted from a block starting at ``s``."""
    for r in range(rows):
        out_idx[n_out + r] = sym_index + r
        out_t[n_out + r] = s + r * PT
    return n_out + rows


@numba.njit(cache=True, nogil=True)
def _track(buf, base, final, max_blocks, s, T, rate, weak_run, weak_start, last_good_t, bad0, sym_index,
           guard_hist, ip, fp, out_counts, out_idx, out_t, ev_t, ev_d):  # pragma: no cover - compiled
    """Tracking blocks of ``SlotClockRecovery`` from ``buf[base:]`` until a mode change, the end of
    the buffered tags, ``max_blocks`` blocks, or one block when ``final`` (see the module docstring
    and ``SlotClockRecovery._run``).

    ``last_good_t`` / ``bad0`` NaN stand for None; ``guard_hist`` (P,) is updated in place.
    ``ip`` = (B, P, M, G, los_min_photons, flywheel_blocks, jump_detect); ``fp`` = (los_fraction,
    rate_smoothing, guard_smoothing, los_gap, jump_phase, jump_min_power, kp, ki, 2.0) -- the
    exponent 2.0 comes in as data so that ``pow(|z|, 2)`` stays libm's pow as in CPython's ``**``.
    Emits into ``out_counts`` (max_blocks*B, P) uint16 / ``out_idx`` / ``out_t``, slip events into
    ``ev_t`` / ``ev_d``. Returns (status, base, n_out, n_ev, blocks, s, T, rate, weak_run,
    weak_start, last_good_t, bad0, sym_index, t_event, reason, ref_s)."""
    B, P, M, G = ip[0], ip[1], ip[2], ip[3]
    los_min, flywheel, jump_detect = ip[4], ip[5], ip[6] != 0
    los_fraction, rate_smoothing, guard_smoothing, los_gap = fp[0], fp[1], fp[2], fp[3]
    jump_phase, jump_min_power, kp, ki, two = fp[4], fp[5], fp[6], fp[7], fp[8]
    n = buf.size
    BP = B * P
    n_out = 0
    n_ev = 0
    blocks = 0
    status = _NEED_MORE
    t_event = np.nan
    reason = 0
    ref_s = np.nan
    rows = np.zeros(B, np.int64)            # photons per symbol of the block
    cols = np.zeros(P, np.int64)            # photons per slot position of the block
    hcol = np.zeros(P)
    cap = 0
    jq = np.empty(0, np.int64)              # per tag: symbol in the block,
    jr = np.empty(0, np.int64)              # slot position in the symbol
    inv_P = 1.0 / P
    frac = np.empty(0)
    cs = np.empty(0)
    sn = np.empty(0)
    bad = np.empty(0)
    while base < n:
        if blocks == max_blocks:
            status = _FULL
            break
        e = s + BP * T
        if buf[n - 1] < e and not final:
            break
        i0 = _search(buf, base, n, s)
        i1 = _search(buf, base, n, e)
        nt = i1 - i0
        if nt > cap:                                   # per-tag scratch, grown as needed
            cap = max(nt, 2 * cap)
            jq = np.empty(cap, np.int64)
            jr = np.empty(cap, np.int64)
            frac = np.empty(cap)
            cs = np.empty(cap)
            sn = np.empty(cap)
            bad = np.empty(cap)
        rows[:] = 0
        cols[:] = 0
        for k in range(nt):
            u = (float(buf[i0 + k]) - s) / T
            j = np.int64(math.floor(u))
            if j > BP - 1:
                j = BP - 1
            q = np.int64(j * inv_P)                    # j // P without an integer division
            if q * P > j:
                q -= 1
            elif (q + 1) * P <= j:
                q += 1
            jq[k] = q
            jr[k] = j - q * P
            rows[q] += 1
            cols[j - q * P] += 1
            frac[k] = u - j - 0.5
        _bin(out_counts, n_out, B, P, jq, jr, nt)
        PT = P * T
        n_emit = B
        if final:
            last = float(buf[n - 1])
            n_emit = 0
            while n_emit < B and s + n_emit * PT <= last:
                n_emit += 1
            if n_emit == 0:                            # no symbol starts by the last tag: nothing to judge
                status = _FINAL
                break
        # a weak block holds too few photons for the symbols it emits: the last, partial block of a
        # stream (flush) is judged on its own length, not on a whole block's photons
        weak_min = max(float(los_min), los_fraction * rate)
        if n_emit < B:
            weak_min = weak_min * n_emit / B
        weak = nt < weak_min
        # -- a silent run far longer than expected at the tracked rate: loss of signal at once
        gap = -1
        if nt > 0 and rate > 0:
            # a silent run counts in mean inter-arrival times, plus two symbol periods: the photons
            # come in bunches (one pulse per symbol), so a strong signal is silent from one pulse to
            # the next for up to ~2 symbols whatever its photon rate
            thr = los_gap * (BP * T) / rate + 2.0 * (P * T)
            hi = min(i1 + 1, n)
            for k in range(i0, hi - 1):
                if buf[k + 1] - buf[k] > thr:
                    gap = k
                    break
        if gap >= 0:
            t_a = float(buf[gap])
            t_next = float(buf[gap + 1])
            n_g = 0
            while n_g < B and (s + n_g * PT) + PT <= t_next:
                n_g += 1
            n_g = min(n_emit, n_g)
            if n_g:                                     # symbols before the gap, from its tags only
                _bin(out_counts, n_out, B, P, jq, jr, gap + 1 - i0)
                n_out = _stamp(out_idx, out_t, n_out, n_g, sym_index, s, PT)
            if weak_run > 0:
                t_event = weak_start if math.isnan(last_good_t) else last_good_t
            else:
                t_event = t_a
            # the clock model stays at this block's start (as for a clock jump): the symbol count
            # continues from there to the re-acquired first symbol, which may lie inside this block
            base = gap + 1
            weak_run = 0
            blocks += 1
            status = _GAP
            break
        if not weak:
            for k in range(nt):
                ph = TWO_PI * frac[k]
                cs[k] = math.cos(ph)
                sn[k] = math.sin(ph)
                bad[k] = 0.5 * (1.0 - cs[k]) + (1.0 if jr[k] >= M else 0.0)
            for c in range(P):
                hcol[c] = float(cols[c])
        # -- the clock model of this block is wrong: the tags' time base jumped
        if not weak and jump_detect and nt >= max(2, los_min):
            zr = _pairwise_sum(cs, 0, nt)
            zi = _pairwise_sum(sn, 0, nt)
            power = math.pow(math.hypot(zr, zi), two) / nt
            err_j = math.atan2(zi, zr) / TWO_PI
            why = 0
            if power >= jump_min_power and abs(err_j) > jump_phase:
                why = 1
            else:
                gs = _window_sums(hcol, G)
                g = int(np.argmin(gs))
                if g != M and gs[g] < 0.5 * gs[M] and gs[M] - gs[g] > 4.0 * math.sqrt(gs[M] + 1.0):
                    why = 2
            if why:
                # CUSUM change point of the per-photon misalignment against the threshold halfway
                # between the good blocks' mean and this block's
                bsum = np.zeros(B)
                for k in range(nt):
                    bsum[jq[k]] += bad[k]
                m1 = _pairwise_sum(bad, 0, nt) / nt
                m0 = 0.0 if math.isnan(bad0) else (m1 if m1 < bad0 else bad0)
                run = 0.0
                low = 0.0
                k_j = 0
                for q in range(B):
                    run += bsum[q] - rows[q] * 0.5 * (m0 + m1)
                    if run < low:
                        low = run
                        k_j = q + 1
                t_j = s + k_j * PT if k_j < B else e
                n_j = min(n_emit, k_j)
                if n_j:
                    n_out = _stamp(out_idx, out_t, n_out, n_j, sym_index, s, PT)
                t_event = t_j
                ref_s = s
                reason = why
                base = _search(buf, base, n, t_j)
                weak_run = 0
                blocks += 1
                status = _JUMP
                break
        if not weak:
            zr, zi = _pairwise_csum(cs, sn, 0, nt)
            err = math.atan2(zi, zr) / TWO_PI * T                 # ps, + = photons late
            if nt:
                mb = _pairwise_sum(bad, 0, nt) / nt
                bad0 = mb if math.isnan(bad0) else bad0 + rate_smoothing * (mb - bad0)
            T_next = T + ki * err / BP
            nxt = e + kp * err
            rate_before = rate
            rate += rate_smoothing * (nt - rate)
            weak_run = 0
            last_good_t = _signal_end(rows, B, P, s, T, rate_before)
            if guard_smoothing > 0:
                for c in range(P):
                    guard_hist[c] = guard_hist[c] + guard_smoothing * (hcol[c] - guard_hist[c])
                if _pairwise_sum(guard_hist, 0, P) >= 50.0 * P:
                    gs = _window_sums(guard_hist, G)
                    g = int(np.argmin(gs))
                    if g != M and gs[g] < 0.5 * gs[M]:
                        d = (g - M + P // 2) % P - P // 2
                        nxt += d * T
                        guard_hist[:] = 0.0
                        ev_t[n_ev] = e
                        ev_d[n_ev] = d
                        n_ev += 1
            emit = True
        else:
            T_next = T
            if weak_run == 0:
                weak_start = s
                end = _signal_end(rows, B, P, s, T, rate)         # a fade that began in this block
                if not math.isnan(end):
                    last_good_t = end
            weak_run += 1
            nxt = e
            emit = weak_run <= flywheel
        if emit and n_emit:
            n_out = _stamp(out_idx, out_t, n_out, n_emit, sym_index, s, PT)
        sym_index += B
        s = nxt
        T = T_next
        base = i1
        blocks += 1
        if not emit:                                               # loss of signal declared
            t_event = weak_start if math.isnan(last_good_t) else last_good_t
            weak_run = 0
            status = _LOS
            break
        if final:
            status = _FINAL
            break
    return (status, base, n_out, n_ev, blocks, s, T, rate, weak_run, weak_start, last_good_t, bad0, sym_index,
            t_event, reason, ref_s)
