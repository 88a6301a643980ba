# SPDX-License-Identifier: Apache-2.0
"""Frame synchronisation on soft bits: Massey's optimum rule, hard correlation, and a streaming
SEARCH -> CHECK -> LOCK -> FLYWHEEL synchroniser for an attached sync marker.

Conventions
-----------
* LLRs ``llr = ln P(b=0)/P(b=1)``: **positive means bit 0**; float, any scale (the Massey rule is
  exact for calibrated LLRs, e.g. ``L = 4 sqrt(Es) y / N0`` for BPSK on AWGN).
* Marker bits ``a_i`` MSB first (default the CCSDS 131.0-B ASM ``0x1ACFFC1D``, 32 bits), antipodal
  form ``s_i = 1 - 2 a_i`` (+1 for a 0 bit). A metric at position ``p`` scores the marker starting at
  stream bit ``p``, i.e. over ``llr[p : p + m]``.

Massey's rule (J. L. Massey, "Optimum Frame Synchronization", IEEE Trans. Commun. 20(2), 1972), in
LLR units with equiprobable data bits:

* known polarity: ``S(p) = sum_i [ s_i L_{p+i}/2 - ln cosh(L_{p+i}/2) ]`` -- correlation minus the
  correction term the data would give. Each term equals ``ln 2 + ln P(b_{p+i} = a_i | L)``, so ``S``
  is the log-likelihood ratio "marker here" vs "random data here", at most ``m ln 2`` (22.18 for 32
  bits), 0 on erased (zero) LLRs.
* unknown polarity (BPSK phase ambiguity, a DPSK sign-convention slip):
  ``S(p) = ln cosh(sum_i s_i L_{p+i}/2) - sum_i ln cosh(L_{p+i}/2)`` = ``|corr| - correction`` up to
  ``log1p(exp(-2|corr|)) - ln 2``; ``corr < 0`` reports an inverted stream.
* ``ln cosh(x) = |x| + log1p(exp(-2|x|)) - ln 2`` (stable).

Hard correlation: hard decisions (``llr < 0`` -> 1), number of marker bits in error; polarity-free
form ``min(e, m - e)`` with ``e > m/2`` reporting an inversion. This is the optimum rule on a BSC.

All per-position metrics are computed in a fixed summation order from the LLRs of the window only,
so a position scores identically whatever chunk it arrived in (the streaming synchroniser relies on
this for chunking invariance).
"""
from __future__ import annotations

import enum
from dataclasses import dataclass, field

import numba as nb
import numpy as np

from ..errors import ConfigError, ShapeError
from ..framing.bits import bits_from_int

ASM = 0x1ACFFC1D
ASM_LEN = 32
ASM_BITS = bits_from_int(ASM, ASM_LEN)
ASM_BITS.setflags(write=False)
LN2 = float(np.log(2.0))


# --- kernels -------------------------------------------------------------------------------------
@nb.njit(cache=True)
def _lncosh(x):
    ax = abs(x)
    return ax + np.log1p(np.exp(-2.0 * ax)) - 0.6931471805599453


@nb.njit(cache=True)
def _massey_2d(llr, s, polarity_free, metric, inverted):
    n_rows, n = llr.shape
    m = s.size
    lc = np.empty(n)
    for r in range(n_rows):
        for k in range(n):
            lc[k] = _lncosh(0.5 * llr[r, k])
        for p in range(n - m + 1):
            c = 0.0
            e = 0.0
            for i in range(m):
                c += s[i] * (0.5 * llr[r, p + i])
                e += lc[p + i]
            if polarity_free:
                metric[r, p] = _lncosh(c) - e
                inverted[r, p] = c < 0.0
            else:
                metric[r, p] = c - e
                inverted[r, p] = False


@nb.njit(cache=True)
def _hard_2d(llr, a, polarity_free, errors, inverted):
    n_rows, n = llr.shape
    m = a.size
    for r in range(n_rows):
        for p in range(n - m + 1):
            e = 0
            for i in range(m):
                h = 1 if llr[r, p + i] < 0.0 else 0
                e += h ^ a[i]
            if polarity_free and 2 * e > m:
                errors[r, p] = m - e
                inverted[r, p] = True
            else:
                errors[r, p] = e
                inverted[r, p] = False


def _check_llr(llr, m: int, who: str) -> np.ndarray:
    x = np.asarray(llr)
    if x.ndim == 0 or x.dtype.kind != "f":
        raise ShapeError(f"{who}: llr must be a float array (..., n), got dtype {x.dtype} shape {x.shape}")
    if x.shape[-1] < m:
        raise ShapeError(f"{who}: llr must have last axis >= marker length {m}, got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ShapeError(f"{who}: llr must be finite, found {x[~np.isfinite(x)].flat[0]}")
    return x


def _marker_bits(marker) -> np.ndarray:
    a = np.asarray(marker, dtype=np.uint8)
    if a.ndim != 1 or a.size == 0 or a.max() > 1:
        raise ConfigError(f"marker must be a 1-D array of bits, got shape {a.shape}")
    return a


def massey_metric(llr, marker=ASM_BITS, *, polarity_free: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Massey's optimum sync metric at every marker position.

    Input
    -----
    llr : ``(*batch, n)`` float, positive = bit 0.
    marker : ``(m,)`` bits, MSB first (default ASM 0x1ACFFC1D).
    polarity_free : use the unknown-polarity rule and report inversions.

    Output
    ------
    metric : ``(*batch, n - m + 1)`` float64, ``metric[..., p]`` scores ``llr[..., p:p+m]``.
    inverted : ``(*batch, n - m + 1)`` bool, correlation negative (always False when
        ``polarity_free`` is False).
    """
    a = _marker_bits(marker)
    x = _check_llr(llr, a.size, "massey_metric")
    flat = np.ascontiguousarray(x.reshape(-1, x.shape[-1]), dtype=np.float64)
    n_pos = flat.shape[1] - a.size + 1
    metric = np.empty((flat.shape[0], n_pos))
    inv = np.empty((flat.shape[0], n_pos), dtype=np.bool_)
    _massey_2d(flat, 1.0 - 2.0 * a.astype(np.float64), bool(polarity_free), metric, inv)
    shape = x.shape[:-1] + (n_pos,)
    return metric.reshape(shape), inv.reshape(shape)


def hard_errors(llr, marker=ASM_BITS, *, polarity_free: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Marker bits in error (hard decisions ``llr < 0`` -> 1) at every position.

    Output: ``errors`` ``(*batch, n - m + 1)`` int32 and ``inverted`` bool (polarity-free form: the
    complement marker matched better; errors are then counted against the complement).
    """
    a = _marker_bits(marker)
    x = _check_llr(llr, a.size, "hard_errors")
    flat = np.ascontiguousarray(x.reshape(-1, x.shape[-1]), dtype=np.float64)
    n_pos = flat.shape[1] - a.size + 1
    err = np.empty((flat.shape[0], n_pos), dtype=np.int32)
    inv = np.empty((flat.shape[0], n_pos), dtype=np.bool_)
    _hard_2d(flat, a.astype(np.int64), bool(polarity_free), err, inv)
    shape = x.shape[:-1] + (n_pos,)
    return err.reshape(shape), inv.reshape(shape)


# --- streaming synchroniser ----------------------------------------------------------------------
class SyncMode(enum.IntEnum):
    SEARCH = 0
    CHECK = 1
    LOCK = 2
    FLYWHEEL = 3


@dataclass(frozen=True)
class FrameSyncConfig:
    """Parameters of :class:`ASMFrameSync`.

    Parameters
    ----------
    frame_len : bits of each frame after the marker (the sync period is ``marker_len + frame_len``).
    marker, marker_len : the marker as an integer, MSB first (default CCSDS ASM 0x1ACFFC1D, 32).
    rule : ``"massey"`` (soft, thresholds on the Massey metric, at most ``marker_len ln 2``) or
        ``"hard"`` (thresholds in allowed bit errors).
    polarity_free : SEARCH with the polarity-free rule; an inverted hit fixes the polarity until
        lock is lost (the expected-position checks then use the known polarity, as CORTEX and
        RT-STPS do).
    search_threshold, lock_threshold : Massey metric needed to accept a SEARCH hit / a marker at the
        expected position (CHECK, LOCK, FLYWHEEL).
    search_max_errors, lock_max_errors : the same for ``rule="hard"``.
    check_count : further consecutive good markers at the expected place before LOCK (0: lock on
        the first hit).
    flywheel : consecutive missed markers tolerated in lock (frames still emitted, marked FLYWHEEL);
        one more drops to SEARCH.
    slip : in CHECK / LOCK / FLYWHEEL the marker is looked for at the expected position +- slip bits.
    correct_polarity : negate the LLRs of frames found on an inverted stream.
    search_periods : K >= 1, SEARCH also integrates the marker over up to K consecutive sync periods
        (``rule="massey"`` only): position ``p`` is a hit when its own polarity-free metric reaches
        ``search_threshold`` *or*, for some ``j`` in 2..K, the non-coherent sum ``S_j(p) = sum_{k<j}
        S(p - k P)`` of the per-period metrics (polarity-free if configured: each period's polarity
        is free) reaches ``integrate_threshold`` (periods before the stream start or the last lock
        loss do not count; the polarity of an integrated hit is that of the run's summed
        known-polarity metrics).
        A marker too weak to be found alone is found by integration; the hit is then the latest
        marker of the run (the earlier ones lie before it, at ``p - k P``). K = 1: the plain search.
    integrate_threshold : the threshold on ``S_j``, ``j >= 2``.

    False hits on random data (``search_periods`` > 1): with calibrated LLRs, ``exp(S)`` of one
    period is a likelihood ratio whose mean under "random data here" is 1 (also in the polarity-free
    form, the mean of the two polarities' ratios), and the windows of different periods are disjoint,
    so ``exp(S_j)`` has mean 1 too and ``P(S_j >= T) <= exp(-T)`` (Markov) for any ``j``. The search
    tests ``P`` positions per period, so the expected number of false SEARCH hits per sync period of
    random data is at most ``P (exp(-search_threshold) + (K - 1) exp(-integrate_threshold))``: the
    threshold accounts for the number of offsets and sums searched, not for ``j``. (For 1 + 3 sums at
    12 / 14 and ``P`` = 16232: <= 0.14 hits per period, each rejected by CHECK or by the caller's
    ``confirm`` of :meth:`ASMFrameSync.push`; see ``tests/test_frame_sync.py`` for the measured rate.)
    """

    frame_len: int
    marker: int = ASM
    marker_len: int = ASM_LEN
    rule: str = "massey"
    polarity_free: bool = False
    search_threshold: float = 12.0
    lock_threshold: float = 4.0
    search_max_errors: int = 4
    lock_max_errors: int = 8
    check_count: int = 2
    flywheel: int = 3
    slip: int = 2
    correct_polarity: bool = True
    search_periods: int = 1
    integrate_threshold: float = 14.0

    def __post_init__(self):
        who = "FrameSyncConfig"

        def rng_(name, lo, hi):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or not lo <= v <= hi:
                raise ConfigError(f"{who}: {name} must be an integer in [{lo}, {hi}], got {v!r}")

        rng_("marker_len", 8, 256)
        rng_("frame_len", 1, 1 << 30)
        rng_("marker", 0, (1 << self.marker_len) - 1)
        rng_("search_max_errors", 0, self.marker_len // 2 - 1)
        rng_("lock_max_errors", 0, self.marker_len // 2 - 1)
        rng_("check_count", 0, 1000)
        rng_("flywheel", 0, 1000)
        rng_("slip", 0, min(self.marker_len - 1, self.frame_len))
        rng_("search_periods", 1, 64)
        if self.rule not in ("massey", "hard"):
            raise ConfigError(f"{who}: rule must be 'massey' or 'hard', got {self.rule!r}")
        if self.search_periods > 1 and self.rule != "massey":
            raise ConfigError(f"{who}: search_periods > 1 needs rule='massey', got rule={self.rule!r} with "
                              f"search_periods={self.search_periods}")
        v = self.integrate_threshold
        if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)) or not -1e9 < v < 1e9:
            raise ConfigError(f"{who}: integrate_threshold must be a finite number, got {v!r}")
        top = self.marker_len * LN2
        for name in ("search_threshold", "lock_threshold"):
            v = getattr(self, name)
            if not isinstance(v, (int, float, np.floating)) or not -1e9 < v < top:
                raise ConfigError(f"{who}: {name} must be a number below marker_len*ln2 = {top:.3f}, got {v!r}")

    @property
    def period(self) -> int:
        return self.marker_len + self.frame_len


@dataclass(frozen=True)
class FrameSyncState:
    """Synchroniser memory (pass in, get back; never shared).

    ``buf`` holds the not yet consumed LLRs (float64, read-only) starting at stream bit
    ``buf_start``. ``search_pos``: next position SEARCH tests; ``next_pos``: expected marker
    position in CHECK / LOCK / FLYWHEEL; ``cand_pos``: the SEARCH hit being checked; ``good``:
    confirmations in CHECK; ``misses``: consecutive missed markers; ``fresh``: ``next_pos`` is a
    SEARCH hit not yet processed; ``search_floor``: the integrated search (``search_periods`` > 1)
    sums no period before this position (the stream start, where the last lock was lost: the
    periods of a lock are not retained for it, or the last break passed); ``breaks``: the stream
    discontinuities given to :meth:`ASMFrameSync.push` not acted on yet (ascending bit indices).

    Counters: ``frames_found`` (frames emitted on a marker found, CHECK->LOCK included),
    ``missed`` (frames emitted by the flywheel), ``false_locks`` (SEARCH hits rejected in CHECK or
    by the caller's ``confirm``),
    ``inversions`` (locks acquired on an inverted stream), ``locks`` (entries into LOCK from CHECK),
    ``lock_losses`` (FLYWHEEL/LOCK -> SEARCH, at a break too), ``cut`` (frames of a lock not
    emitted because a break cut them before their marker was found: the partial frame before the
    break, or the fill after a record's last frame).
    """

    buf: np.ndarray = field(default_factory=lambda: np.zeros(0))
    buf_start: int = 0
    mode: SyncMode = SyncMode.SEARCH
    search_pos: int = 0
    next_pos: int = 0
    cand_pos: int = -1
    good: int = 0
    misses: int = 0
    fresh: bool = False
    inverted: bool = False
    search_floor: int = 0
    breaks: tuple = ()
    frames_found: int = 0
    missed: int = 0
    false_locks: int = 0
    inversions: int = 0
    locks: int = 0
    lock_losses: int = 0
    cut: int = 0

    def same_as(self, other: "FrameSyncState") -> bool:
        """Equality including the buffer contents (dataclass ``==`` cannot compare arrays)."""
        a = {k: v for k, v in self.__dict__.items() if k != "buf"}
        b = {k: v for k, v in other.__dict__.items() if k != "buf"}
        return a == b and np.array_equal(self.buf, other.buf)


@dataclass(frozen=True)
class SyncedFrames:
    """Frames emitted by one :meth:`ASMFrameSync.push` call.

    llr : ``(k, frame_len)`` float32, the frame LLRs after the marker (negated when the stream was
        inverted and ``correct_polarity``).
    offset : ``(k,)`` int64, stream bit index of each frame's marker (its data starts ``marker_len``
        bits later).
    metric : ``(k,)`` float64, marker metric (Massey) or minus the bit errors (hard) at ``offset``.
    inverted : ``(k,)`` bool.
    state : ``(k,)`` int8, :class:`SyncMode` LOCK or FLYWHEEL.
    """

    llr: np.ndarray
    offset: np.ndarray
    metric: np.ndarray
    inverted: np.ndarray
    state: np.ndarray

    def __len__(self):
        return self.offset.size

    @staticmethod
    def concat(parts) -> "SyncedFrames":
        parts = list(parts)
        return SyncedFrames(*(np.concatenate([getattr(p, f) for p in parts])
                              for f in ("llr", "offset", "metric", "inverted", "state")))


class ASMFrameSync:
    """Streaming attached-sync-marker frame synchroniser (CCSDS 131.0-B ASM by default).

    ``frames, state = sync.push(llr_chunk, state)`` takes a 1-D chunk of LLRs of any size
    (positive = bit 0) and returns the frames completed so far. Output is identical for any
    chunking of the same stream.

    States (Safran CORTEX / RT-STPS style):

    * SEARCH: every position is scored (polarity-free if configured); the first position reaching
      the search threshold starts a candidate, refined to the best score among the next
      ``marker_len`` positions.
    * CHECK: ``check_count`` further markers must be found at the expected place (+- ``slip``);
      one failure rejects the candidate (``false_locks``) and SEARCH resumes one bit after it.
      Frames are not emitted in CHECK except the one that completes it.
    * LOCK: the marker is looked for at expected +- ``slip`` with the known polarity (ties go to
      the smallest shift); a found marker re-times the frame clock (bit slips are followed).
    * FLYWHEEL: after a miss, frames are still emitted at the expected place for up to
      ``flywheel`` consecutive misses; a found marker returns to LOCK, one more miss to SEARCH
      (from the last expected position - slip).

    Breaks (``breaks`` of :meth:`push`): bit indices where the stream is known to be discontinuous
    (bit ``b`` is the first after the discontinuity; e.g. a burst grid re-acquired on other bursts:
    a second record, a transmitter restarting, samples lost upstream), so that the frame phase
    after ``b`` has nothing to do with the one before. A lock does not go on across a break: the
    frames that end before ``b`` are emitted as usual; the frame that ``b`` cuts (the expected
    frame at ``q < b < q + P``) is emitted if its marker (whole window before ``b``) is found, and
    otherwise not (``cut``: the flywheel would emit the old phase's bits and then the new stream's
    at the old phase); then SEARCH from ``b`` (``lock_losses``). A candidate whose frame would
    cross ``b`` is rejected (``false_locks``) and SEARCH goes on from ``b`` (or, for a candidate
    rejected at a later marker, from the bit after it while a whole frame still fits before
    ``b``). SEARCH sums no period before a break it has passed (``search_floor``). Without breaks
    nothing changes.
    """

    SEARCH_BLOCK = 1 << 16

    def __init__(self, config: FrameSyncConfig):
        self.cfg = config
        self.marker_bits = bits_from_int(config.marker, config.marker_len)
        self._s = 1.0 - 2.0 * self.marker_bits.astype(np.float64)
        self._a = self.marker_bits.astype(np.int64)
        if config.rule == "massey":
            self._search_min, self._lock_min = float(config.search_threshold), float(config.lock_threshold)
        else:
            self._search_min, self._lock_min = -float(config.search_max_errors), -float(config.lock_max_errors)
        self._int_min = float(config.integrate_threshold)

    def initial_state(self) -> FrameSyncState:
        return FrameSyncState()

    def _score(self, seg: np.ndarray, polarity_free: bool, inverted: bool) -> tuple[np.ndarray, np.ndarray]:
        """Scores (higher = better) of every position of the 1-D float64 segment."""
        x = seg.reshape(1, -1)
        n_pos = seg.size - self.cfg.marker_len + 1
        inv = np.empty((1, n_pos), dtype=np.bool_)
        if self.cfg.rule == "massey":
            out = np.empty((1, n_pos))
            _massey_2d(x, -self._s if inverted else self._s, polarity_free, out, inv)
            score = out[0]
        else:
            err = np.empty((1, n_pos), dtype=np.int32)
            _hard_2d(x, 1 - self._a if inverted else self._a, polarity_free, err, inv)
            score = -err[0].astype(np.float64)
        inv = inv[0] ^ inverted if not polarity_free else inv[0]
        return score, inv

    def _search_stat(self, buf: np.ndarray, start: int, lo: int, hi: int, floor: int = 0):
        """SEARCH statistic of positions ``[lo, hi)`` (their marker windows inside ``buf``, which
        starts at stream bit ``start``; earlier periods before ``floor`` are not summed).

        Returns ``(hit, excess, periods, inv)``: ``hit`` bool (a SEARCH hit: the single-period metric
        reaches the search threshold, or some ``S_j``, ``2 <= j <= K``, the integrate threshold),
        ``excess`` the largest of ``S_1 - search threshold`` and ``S_j - integrate threshold`` (the
        refinement picks its maximum), ``periods`` the ``j`` giving it, ``inv`` the polarity-free
        inversion flag of ``S_1``. With ``search_periods`` 1, ``excess`` is the plain score (the
        search is exactly the single-period one)."""
        cfg, m, P = self.cfg, self.cfg.marker_len, self.cfg.period
        n = hi - lo
        s1, inv = self._score(buf[lo - start:hi - start + m - 1], cfg.polarity_free, False)
        hit = s1 >= self._search_min
        periods = np.ones(n, np.int64)
        if cfg.search_periods == 1:
            return hit, s1, periods, inv
        excess = s1 - self._search_min
        acc = s1.copy()
        for j in range(1, cfg.search_periods):
            a = lo - j * P                               # positions a .. a + n - 1, one period back each
            v = max(0, floor - a)                        # before the floor: not summed
            if v >= n:
                break
            if a + v < start:                            # (never: push retains these periods)
                raise RuntimeError(f"ASMFrameSync: period at bit {a + v} needed, buffer starts at {start}")
            sj = np.full(n, -np.inf)
            sj[v:], _ = self._score(buf[a + v - start:a + n - 1 + m - start], cfg.polarity_free, False)
            acc += sj
            e = acc - self._int_min
            hit |= e >= 0.0
            better = e > excess
            excess = np.where(better, e, excess)
            periods[better] = j + 1
        return hit, excess, periods, inv

    def _run_polarity(self, buf: np.ndarray, start: int, p: int, periods: int) -> bool:
        """Inverted stream at an integrated hit: the known-polarity metrics of the ``periods``
        markers ending at ``p`` summed for each polarity; the larger wins."""
        m, P = self.cfg.marker_len, self.cfg.period
        plus = minus = 0.0
        for k in range(periods):
            q = p - k * P
            seg = buf[q - start:q + m - start]
            plus += float(self._score(seg, False, False)[0][0])
            minus += float(self._score(seg, False, True)[0][0])
        return minus > plus

    def push(self, llr_chunk, state: FrameSyncState, confirm=None,
             breaks=None) -> tuple[SyncedFrames, FrameSyncState]:
        """Consume one chunk ``(n,)`` of LLRs; return the frames it completes and the new state.

        confirm : None, or a callable ``confirm(frame_llr, offset, inverted) -> bool`` that checks
            the first frame of every SEARCH candidate once its bits are in (``frame_llr``
            ``(frame_len,)`` float32 exactly as it would be emitted, ``offset`` its marker position,
            ``inverted`` the candidate's polarity), e.g. by decoding it. False rejects the
            candidate (``false_locks`` + 1) and SEARCH resumes at the bit after its marker, so a
            true marker inside the rejected frame is still found; True lets CHECK go on as without
            ``confirm``. Called in stream order at positions fixed by the stream, so chunking does
            not change the calls or the output (a callable that depends only on its arguments).
        breaks : None, or ascending stream bit indices of discontinuities (see the class doc), each
            at or after this chunk's first bit (``buf_start + buf.size`` of ``state``) and after
            the pending ones; give a break with the chunk that holds its bit (or earlier): the
            output is then the same for any chunking.
        """
        x = np.asarray(llr_chunk)
        if x.ndim != 1 or x.dtype.kind != "f":
            raise ShapeError(f"ASMFrameSync.push: llr_chunk must be a 1-D float array, got dtype {x.dtype} "
                             f"shape {x.shape}")
        if not np.all(np.isfinite(x)):
            raise ShapeError(f"ASMFrameSync.push: llr must be finite, found {x[~np.isfinite(x)].flat[0]}")
        cfg, m, P = self.cfg, self.cfg.marker_len, self.cfg.period
        buf = np.concatenate([state.buf, x.astype(np.float64)])
        start = state.buf_start
        end = start + buf.size
        st = dict(state.__dict__)
        del st["buf"], st["buf_start"]
        if breaks is not None and len(breaks):
            b = np.asarray(breaks)
            first = end - x.size
            lo = max(first, st["breaks"][-1] + 1 if st["breaks"] else first)
            if b.ndim != 1 or b.dtype.kind not in "iu" or b[0] < lo or np.any(np.diff(b) <= 0):
                raise ShapeError(f"ASMFrameSync.push: breaks must be ascending integer bit indices from {lo} "
                                 f"(this chunk's first bit {first}, after the pending breaks), got {breaks!r}")
            st["breaks"] = st["breaks"] + tuple(int(v) for v in b)
        out_llr, out_off, out_met, out_inv, out_state = [], [], [], [], []

        def emit(pos, metric, mode):
            f = buf[pos + m - start:pos + P - start]
            out_llr.append(-f if (st["inverted"] and cfg.correct_polarity) else f)
            out_off.append(pos)
            out_met.append(metric)
            out_inv.append(st["inverted"])
            out_state.append(int(mode))

        while True:
            mode = st["mode"]
            if mode == SyncMode.SEARCH:
                last = end - m                               # last position with a full marker window
                sp = st["search_pos"]
                brk = st["breaks"]
                if brk and brk[0] <= sp:                     # past a break: no period before it is summed
                    st.update(search_floor=max(st["search_floor"], brk[0]), breaks=brk[1:])
                    continue
                if last < sp:
                    break
                stop = brk[0] if brk else last + 1           # positions before a break first
                hi = min(last + 1, sp + self.SEARCH_BLOCK, stop)
                hit, _, _, _ = self._search_stat(buf, start, sp, hi, st["search_floor"])
                hits = np.flatnonzero(hit)
                if hits.size == 0:
                    st["search_pos"] = hi
                    continue
                p = sp + int(hits[0])
                top = min(p + m, stop)                       # refinement window p .. top - 1
                if top - 1 > last:                           # not complete yet
                    st["search_pos"] = p
                    break
                _, excess, periods, inv = self._search_stat(buf, start, p, top, st["search_floor"])
                j = int(np.argmax(excess))
                inverted = bool(inv[j])
                if periods[j] > 1 and cfg.polarity_free:    # the polarity of the run, not of its last marker
                    inverted = self._run_polarity(buf, start, p + j, int(periods[j]))
                st.update(mode=SyncMode.CHECK, cand_pos=p + j, next_pos=p + j, search_pos=p + j, good=0, misses=0, fresh=True,
                          inverted=inverted)
                continue

            # CHECK / LOCK / FLYWHEEL: look at the expected place
            nxt = st["next_pos"]
            w = 0 if st["fresh"] else cfg.slip
            if end < nxt + w + P:                            # the frame of the latest candidate
                break
            brk = st["breaks"]
            if brk and brk[0] < nxt + P:                     # a break cuts the frame at nxt (class doc)
                b = brk[0]
                if mode == SyncMode.CHECK:
                    c = st["cand_pos"] + 1
                    st.update(mode=SyncMode.SEARCH, search_pos=c if c + P <= b else b,
                              false_locks=st["false_locks"] + 1)
                    continue
                found = False
                if b >= nxt + w + m:                         # the whole marker window before the break
                    score, _ = self._score(buf[nxt - w - start:nxt + w + m - start], False, st["inverted"])
                    order = [w] + [w + d * sgn for d in range(1, w + 1) for sgn in (-1, 1)]
                    best = max(order, key=lambda k: (score[k], -order.index(k)))
                    found = float(score[best]) >= self._lock_min
                    if found:
                        st["frames_found"] += 1
                        emit(nxt - w + best, float(score[best]), SyncMode.LOCK)
                st.update(mode=SyncMode.SEARCH, search_pos=b, misses=0, lock_losses=st["lock_losses"] + 1,
                          cut=st["cut"] + int(not found and b > nxt))
                continue
            score, _ = self._score(buf[nxt - w - start:nxt + w + m - start], False, st["inverted"])
            order = [w] + [w + d * sgn for d in range(1, w + 1) for sgn in (-1, 1)]   # 0, -1, +1, -2, ...
            best = max(order, key=lambda k: (score[k], -order.index(k)))
            pos, metric = nxt - w + best, float(score[best])
            good = st["fresh"] or metric >= self._lock_min
            if mode == SyncMode.CHECK:
                if st["fresh"]:
                    st["fresh"] = False
                    if confirm is not None:
                        f = buf[pos + m - start:pos + P - start]
                        f = (-f if (st["inverted"] and cfg.correct_polarity) else f).astype(np.float32)
                        if not confirm(f, pos, st["inverted"]):
                            st.update(mode=SyncMode.SEARCH, search_pos=st["cand_pos"] + 1,
                                      false_locks=st["false_locks"] + 1)
                            continue
                elif good:
                    st["good"] += 1
                else:
                    st.update(mode=SyncMode.SEARCH, search_pos=st["cand_pos"] + 1, false_locks=st["false_locks"] + 1)
                    continue
                if st["good"] >= cfg.check_count:
                    st.update(mode=SyncMode.LOCK, locks=st["locks"] + 1, inversions=st["inversions"] + st["inverted"],
                              frames_found=st["frames_found"] + 1)
                    emit(pos, metric, SyncMode.LOCK)
                st["next_pos"] = pos + P
            elif good:                                       # LOCK or FLYWHEEL, marker found
                st.update(mode=SyncMode.LOCK, misses=0, frames_found=st["frames_found"] + 1, next_pos=pos + P)
                emit(pos, metric, SyncMode.LOCK)
            else:                                            # marker missed
                st["misses"] += 1
                if st["misses"] > cfg.flywheel:
                    st.update(mode=SyncMode.SEARCH, search_pos=nxt - cfg.slip, search_floor=nxt - cfg.slip,
                              lock_losses=st["lock_losses"] + 1)
                    continue
                st.update(mode=SyncMode.FLYWHEEL, missed=st["missed"] + 1, next_pos=nxt + P)
                emit(nxt, float(score[w]), SyncMode.FLYWHEEL)       # metric at the expected place

        mode = st["mode"]
        back = (cfg.search_periods - 1) * P                 # the earlier periods an integrated search sums
        if mode == SyncMode.SEARCH:
            keep = max(st["search_pos"] - back, st["search_floor"])
        elif mode == SyncMode.CHECK:                     # (a fresh candidate is read at next_pos, w = 0)
            keep = min(max(st["cand_pos"] + 1 - back, st["search_floor"]),
                       st["next_pos"] - (0 if st["fresh"] else cfg.slip))
        else:
            keep = st["next_pos"] - cfg.slip
        keep = min(max(keep, start), end)
        rest = buf[keep - start:].copy()
        rest.setflags(write=False)
        new_state = FrameSyncState(buf=rest, buf_start=keep, **st)
        k = len(out_off)
        frames = SyncedFrames(
            llr=np.array(out_llr, dtype=np.float32).reshape(k, cfg.frame_len),
            offset=np.array(out_off, dtype=np.int64), metric=np.array(out_met, dtype=np.float64),
            inverted=np.array(out_inv, dtype=np.bool_), state=np.array(out_state, dtype=np.int8))
        return frames, new_state
