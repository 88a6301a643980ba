# SPDX-License-Identifier: Apache-2.0
"""Codeword synchronisation of SCPPM (CCSDS 142.0-B-1) on recovered symbol-slot counts, with the CSM.

Input: symbol-aligned slot counts ``(n, M + G)`` from :class:`modem.sync.slot_clock.SlotClockRecovery`
(a :class:`~modem.sync.slot_clock.SlotCounts`: ``counts``, ``sym_index``, ``segment``). Output:
codeword-aligned blocks ``(F, slots_per_codeword)`` that :meth:`SCPPMReceiver.receive` accepts
(CSM symbols first, guard slots included).

Metric (hpe-scppm.md 5, PPM analogue of Massey's rule; sync-formats-io.md 4.1). With
``w = ln(1 + ns/nb)`` and ``y_{s,m}`` the count of data slot ``m`` of symbol ``s``, the CSM
log-likelihood ratio "CSM starts at symbol j" vs "random PPM data there" is

    Lambda(j) = sum_i [ w*y_{j+i, c_i} - ln sum_m exp(w*y_{j+i, m}) + ln M ]

(``c_i`` the CSM symbols): the reference's soft score plus ``L*ln M``. Each term is
``ln(M * P(symbol = c_i | y))``: at most ``ln M`` (a count in the CSM slot only), 0 for an erased
symbol (no counts), about ``-w`` for a count in a wrong slot. ``Lambda`` is at most ``L_csm*ln M``
(44.4 for M = 16). With symbol repetition ``q_d`` (``repeat_unit="symbol"``) every CSM symbol is
expected ``q_d`` times in a row; the codeword-unit repetition is ambiguous for the CSM and refused.

Slot offset
-----------
The slot clock places the symbol boundary from the guard gap, and under strong background the gap
is shallow: 128-PPM at nb = 0.1 photons/slot near the decoder's threshold (ns ~ 1.9) holds only
~15 signal photons per slot position over a 1024-symbol acquisition window against ~100 of
background, so the boundary it finds is often a few slots off (4 of 15 windows in a measurement,
by up to 5 slots), and the guard monitor cannot see the error either. Every symbol is then read
shifted and no codeword decodes. The CSM locates the boundary far better (its pulses, not the
guard's absence), so SEARCH scores codeword starts at slot resolution: every symbol offset *and*
every slot offset ``d`` in ``-slot_search .. slot_search`` (default ``guard // 2``) of the slot
clock's boundary, i.e. symbols re-cut from the flat slot stream ``d`` slots later. The threshold
counts the extra candidates (``ln(period * (2*slot_search + 1)) + 8``). A boundary further off
(not seen in the measurements, but then the slot clock would track it for ever) is found by a full
search: after ``full_search_after`` (4) SEARCH periods without a lock, one period tries all ``P``
slot offsets (threshold ``ln(period * P) + 8``). The offset found is kept in
LOCK (``state.slot_offset``, in ``0 .. P-1``: ``P - |d|`` for ``d < 0``, the symbol then starting in the
row before) and reported per codeword (``CodewordBlocks.slot_offset``).

State machine
-------------
SEARCH: once ``period + L - 1`` symbols (period = ``symbols_per_codeword*q_d``; one more with a slot
search) are buffered, all ``period`` symbol offsets at every slot offset are scored; the best (the
smallest ``|d|``, then the first symbol offset, on ties) is accepted if ``Lambda >= search_threshold``
(default ``ln(period * n_slot_offsets) + 8``: the prior of one candidate among them, plus margin),
the symbols before it are dropped and the synchroniser LOCKs. Otherwise, once a second period is buffered, the
scores of the two periods are added offset by offset (joint LLR of two CSMs) and the best offset is
accepted on the same threshold; failing that the first ``period`` symbols are dropped.
LOCK: every codeword's CSM is scored at its expected place; ``Lambda > lock_threshold`` (default 0,
the Bayes point; strict, so an erased CSM with ``Lambda = 0`` is a miss) is a hit, otherwise a miss. Codewords are emitted on hits and on up to ``flywheel``
consecutive misses (flagged ``locked=False``); one more miss returns to SEARCH at that codeword.
A new ``segment`` or a hole in ``sym_index`` (the slot clock lost the signal) empties the buffer
and returns to SEARCH.

Streaming: ``blocks, state = sync.push(slot_counts, state)``; the state is the whole memory and is
never mutated. Scores depend only on the symbols of their window, so any chunking gives identical
output. ``blocks, state = sync.flush(state)`` at the end of a record emits a last codeword that
lacks at most ``L`` symbols, completed with empty (erased) symbols.
"""
from __future__ import annotations

import enum
import math
import copy
from dataclasses import dataclass

import numba
import numpy as np

from ..errors import ConfigError, ShapeError

__all__ = ["CodewordSyncMode", "CodewordSyncConfig", "CodewordSyncState", "CodewordBlocks", "CodewordSync",
           "csm_llr", "csm_llr_slot_offsets"]


def csm_llr(counts, pattern, M: int, w: float) -> np.ndarray:
    """CSM log-likelihood ratio ``Lambda(j)`` at every start ``j`` of a symbol-count array.

    Parameters
    ----------
    counts : (n, >= M) non-negative counts per slot of consecutive symbols (data slots first).
    pattern : (L,) int, expected PPM symbol per position (values < M).
    M : PPM order.
    w : ``ln(1 + ns/nb)`` (> 0).

    Returns
    -------
    (max(n - L + 1, 0),) float64; summed over the pattern in a fixed order.
    """
    y = np.asarray(counts)
    if y.ndim != 2 or y.shape[1] < M:
        raise ShapeError(f"csm_llr: counts must have shape (n, >= {M}), got {y.shape}")
    pat = np.asarray(pattern, dtype=np.int64)
    if pat.ndim != 1:
        raise ShapeError(f"csm_llr: pattern must be 1-D, got shape {pat.shape}")
    bad = np.flatnonzero((pat < 0) | (pat >= M))
    if bad.size:      # -1 would silently read slot M-1, M a bare IndexError
        raise ConfigError(f"csm_llr: pattern symbols must be in 0..{M - 1}, got {int(pat[bad[0]])} at "
                          f"position {int(bad[0])}")
    L = pat.size
    n_pos = y.shape[0] - L + 1
    if n_pos <= 0:
        return np.zeros(0)
    z, lse = _symbol_terms(y, M, w)
    out = np.zeros(n_pos)
    for i in range(L):
        out += z[i:i + n_pos, pat[i]] - lse[i:i + n_pos]
    return out


def _symbol_terms(y, M: int, w: float):
    """Per symbol (row of ``y``): ``z = w * y[:, :M]`` and ``ln(sum_m exp(z_m)) - ln M`` (max-shifted);
    each row's values depend on that row only (NumPy reduces every row the same way)."""
    z = y[:, :M].astype(np.float64) * w
    zmax = z.max(axis=1)
    lse = zmax + np.log(np.exp(z - zmax[:, None]).sum(axis=1)) - math.log(M)
    return z, lse


def _csm_llr_at(counts, starts, pattern, M: int, w: float) -> np.ndarray:
    """``csm_llr(counts, ...)[starts]`` computed on the ``L`` symbols after each start only (the
    same terms added in the same order: identical values). ``starts`` (K,) int, each
    ``<= n - L``."""
    pat = np.asarray(pattern, dtype=np.int64)
    L = pat.size
    rows = (np.asarray(starts, dtype=np.int64)[:, None] + np.arange(L)).reshape(-1)
    z, lse = _symbol_terms(counts[rows], M, w)
    K = rows.size // L
    terms = np.zeros((K, L + 1))                         # 0, then the L terms: summed left to right
    terms[:, 1:] = z.reshape(K, L, M)[:, np.arange(L), pat] - lse.reshape(K, L)
    return np.cumsum(terms, axis=1)[:, -1]


@numba.njit(cache=True, nogil=True)
def csm_llr_slot_offsets(flat, P, M, w, pat, offsets, per):  # pragma: no cover - compiled
    """``Lambda`` of every codeword start ``j < per`` at every slot offset: (n_offsets, per) float64.

    ``flat`` the window's slot counts, row after row (``P`` slots per row); a start ``(j, o)`` reads
    its ``L`` CSM symbols from the slots ``(j + i)*P + o + (0 .. M-1)`` (``flat`` must hold
    ``(per + L - 1)*P + max(offsets) + M - P`` slots at least). The same sums as
    :func:`csm_llr` on the re-cut rows, computed per row once for all offsets: the exponentials
    of a row's span ``[r*P, r*P + max(offsets) + M)`` shifted by the span's maximum, summed over each
    offset's ``M`` slots (a sum that underflows, a window ~250 counts below the span's brightest
    slot, is recomputed shifted by its own maximum). Equal to ``csm_llr`` to rounding."""
    L = pat.shape[0]
    n_off = offsets.shape[0]
    n_rows = per + L - 1
    span = M
    for q in range(offsets.shape[0]):
        span = max(span, offsets[q] + M)          # slots a row's windows reach (at most P + M - 1)
    if flat.shape[0] < (n_rows - 1) * P + span:
        raise ValueError("csm_llr_slot_offsets: the window is shorter than (per + L - 2)*P + max(offsets) + M")
    lnM = math.log(M)
    lse = np.empty((n_off, n_rows))
    e = np.empty(span)
    for r in range(n_rows):
        b = r * P
        m = -math.inf
        for k in range(span):
            z = w * flat[b + k]
            e[k] = z
            if z > m:
                m = z
        for k in range(span):
            e[k] = math.exp(e[k] - m)
        for q in range(n_off):
            o = offsets[q]
            acc = 0.0
            for k in range(o, o + M):
                acc += e[k]
            if acc > 1e-280:
                lse[q, r] = m + math.log(acc) - lnM
            else:
                mo = -math.inf
                for k in range(o, o + M):
                    mo = max(mo, w * flat[b + k])
                acc = 0.0
                for k in range(o, o + M):
                    acc += math.exp(w * flat[b + k] - mo)
                lse[q, r] = mo + math.log(acc) - lnM
    out = np.zeros((n_off, per))
    for q in range(n_off):
        o = offsets[q]
        for j in range(per):
            acc = 0.0
            for i in range(L):
                acc += w * flat[(j + i) * P + o + pat[i]] - lse[q, j + i]
            out[q, j] = acc
    return out


class CodewordSyncMode(enum.IntEnum):
    SEARCH = 0
    LOCK = 1


@dataclass(frozen=True)
class CodewordSyncConfig:
    """Parameters of :class:`CodewordSync`.

    code : :class:`~modem.fec.scppm.SCPPMCode` (needs the CSM; repetition only with ``repeat_unit="symbol"``).
    ns, nb : detected mean signal counts per pulse and noise counts per slot (nb > 0), for ``w``.
    search_threshold : Lambda needed for a SEARCH hit (None: ``ln(period * (2*slot_search + 1)) + 8``).
    lock_threshold : Lambda must exceed this at the expected place in LOCK.
    flywheel : consecutive CSM misses still emitted before returning to SEARCH.
    slot_search : SEARCH also tries symbol boundaries up to this many slots either side of the slot
        clock's (None: ``guard // 2``; 0: the slot clock's boundary only).
    full_search_after : after this many SEARCH periods in a row without a lock (in one slot-clock
        segment), the next SEARCH period tries every slot offset ``0 .. P-1`` (threshold
        ``ln(period * P) + 8``), then the count starts again; 0: never. A boundary more than
        ``slot_search`` slots off is otherwise never found: the slot clock keeps tracking it.
    """

    code: object
    ns: float
    nb: float
    search_threshold: float | None = None
    lock_threshold: float = 0.0
    flywheel: int = 2
    slot_search: int | None = None
    full_search_after: int = 4

    def __post_init__(self):
        who = "CodewordSyncConfig"
        c = self.code
        if not all(hasattr(c, a) for a in ("M", "csm_symbols", "slots_per_symbol", "symbols_per_codeword")):
            raise ConfigError(f"{who}: code must be an SCPPMCode, got {c!r}")
        if c.L_csm == 0:
            raise ConfigError(f"{who}: the code has no CSM (csm=False); codeword sync needs it")
        if c.repetition > 1 and c.repeat_unit != "symbol":
            raise ConfigError(f"{who}: repeat_unit={c.repeat_unit!r} with repetition={c.repetition} repeats the CSM "
                              "with the codeword, which leaves the codeword start ambiguous; only 'symbol' is supported")
        for name in ("ns", "nb"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)) \
                    or not math.isfinite(float(v)) or v <= 0:
                raise ConfigError(f"{who}: {name} must be a finite number > 0, got {v!r}")
        top = self.pattern.size * math.log(c.M)
        st = self.search_threshold
        if st is not None and (isinstance(st, bool) or not isinstance(st, (int, float, np.integer, np.floating))
                               or not -1e9 < st < top):
            raise ConfigError(f"{who}: search_threshold must be below L*ln M = {top:.2f}, got {st!r}")
        lt = self.lock_threshold
        if isinstance(lt, bool) or not isinstance(lt, (int, float, np.integer, np.floating)) or not -1e9 < lt < top:
            raise ConfigError(f"{who}: lock_threshold must be below L*ln M = {top:.2f}, got {lt!r}")
        f = self.flywheel
        if isinstance(f, bool) or not isinstance(f, (int, np.integer)) or not 0 <= f <= 1 << 20:
            raise ConfigError(f"{who}: flywheel must be an integer >= 0, got {f!r}")
        fa = self.full_search_after
        if isinstance(fa, bool) or not isinstance(fa, (int, np.integer)) or not 0 <= fa <= 1 << 20:
            raise ConfigError(f"{who}: full_search_after must be an integer >= 0, got {fa!r}")
        d = self.slot_search
        if d is not None and (isinstance(d, bool) or not isinstance(d, (int, np.integer))
                              or not 0 <= d <= (c.slots_per_symbol - 1) // 2):
            raise ConfigError(f"{who}: slot_search must be an integer in 0..{(c.slots_per_symbol - 1) // 2} "
                              f"(half the {c.slots_per_symbol} slots of a symbol), got {d!r}")

    @property
    def pattern(self) -> np.ndarray:
        """Expected symbol at each of the first ``L_csm * q_d`` symbols of a codeword."""
        return np.repeat(self.code.csm_symbols, self.code.repetition)

    @property
    def period(self) -> int:
        """Transmitted symbols per codeword (repetition included)."""
        return self.code.symbols_per_codeword * self.code.repetition

    @property
    def w(self) -> float:
        return float(np.log1p(float(self.ns) / float(self.nb)))

    @property
    def slot_offsets(self) -> tuple:
        """Slot offsets SEARCH tries, in ``0 .. P-1`` (``P - |d|`` for ``d < 0``), nearest first:
        ``0, 1, P-1, 2, P-2, ...``."""
        D = self.code.guard // 2 if self.slot_search is None else int(self.slot_search)
        P = self.code.slots_per_symbol
        return (0, *(o for d in range(1, D + 1) for o in (d, P - d)))

    @property
    def full_offsets(self) -> tuple:
        """Every slot offset, nearest first (the full search)."""
        P = self.code.slots_per_symbol
        return (0, *(o for d in range(1, P // 2 + 1) for o in dict.fromkeys((d, P - d))))

    def search_min_for(self, n_offsets: int) -> float:
        """SEARCH threshold over ``period * n_offsets`` candidates (``search_threshold`` if given)."""
        if self.search_threshold is not None:
            return float(self.search_threshold)
        return min(math.log(self.period * n_offsets) + 8.0, 0.75 * self.pattern.size * math.log(self.code.M))

    @property
    def search_min(self) -> float:
        return self.search_min_for(len(self.slot_offsets))


@dataclass
class CodewordSyncState:
    """Memory of :class:`CodewordSync` (never mutated by ``push``).

    ``buf`` (n, slots_per_symbol) uint16 symbols not yet consumed, then ``tail``: the symbols received
    after them (a tuple of private (n_i, slots_per_symbol) uint16 arrays, ``n_tail`` symbols in all),
    joined to ``buf`` only once ``buf`` and ``tail`` hold the ``need`` symbols the state machine needs
    to move (so a small push costs its own size, not the buffer's); ``buf_index`` the ``sym_index``
    of ``buf[0]``, ``segment`` the slot-clock segment; ``misses`` consecutive CSM misses in LOCK,
    ``fresh`` the next codeword is the one SEARCH locked on; ``slot_offset`` (0 .. P-1) where the
    locked symbols start within the buffered rows (see the module docstring); ``search_fails``
    SEARCH periods without a lock since the last lock, segment start or full search.
    Counters: ``codewords`` emitted, ``flywheeled`` (emitted on a miss), ``locks``, ``lock_losses``,
    ``resets`` (segment changes / symbol holes).
    """

    buf: np.ndarray | None = None
    tail: tuple = ()
    n_tail: int = 0
    need: int = 0
    buf_index: int = 0
    segment: int | None = None
    mode: CodewordSyncMode = CodewordSyncMode.SEARCH
    misses: int = 0
    fresh: bool = False
    slot_offset: int = 0
    search_fails: int = 0
    codewords: int = 0
    flywheeled: int = 0
    locks: int = 0
    lock_losses: int = 0
    resets: int = 0


@dataclass
class CodewordBlocks:
    """Codewords emitted by one :meth:`CodewordSync.push`.

    counts : (F, slots_per_codeword) uint16, for ``SCPPMReceiver.receive``.
    sym_index : (F,) int64, slot-clock symbol index of the row holding each codeword's first slot.
    csm_llr : (F,) float64, Lambda of the codeword's CSM.
    locked : (F,) bool, False for codewords emitted by the flywheel (CSM missed).
    segment : (F,) int32.
    slot_offset : (F,) int32, slots from that row's start to the codeword's first slot (0 .. P-1).
    """

    counts: np.ndarray
    sym_index: np.ndarray
    csm_llr: np.ndarray
    locked: np.ndarray
    segment: np.ndarray
    slot_offset: np.ndarray

    def __len__(self) -> int:
        return int(self.sym_index.shape[0])

    @staticmethod
    def concat(parts) -> "CodewordBlocks":
        parts = list(parts)
        return CodewordBlocks(*(np.concatenate([getattr(p, f) for p in parts])
                                for f in ("counts", "sym_index", "csm_llr", "locked", "segment", "slot_offset")))


class CodewordSync:
    """Streaming CSM codeword synchroniser (see the module docstring)."""

    def __init__(self, config: CodewordSyncConfig):
        if not isinstance(config, CodewordSyncConfig):
            raise ConfigError(f"CodewordSync: config must be a CodewordSyncConfig, got {config!r}")
        self.cfg = config
        self.code = config.code
        self._pat = config.pattern
        self._w = config.w
        # SEARCH offsets: (tuple, int64 array, threshold), the slot search's and the full search's
        self._near = (config.slot_offsets, np.array(config.slot_offsets, np.int64),
                      config.search_min_for(len(config.slot_offsets)))
        self._full = (config.full_offsets, np.array(config.full_offsets, np.int64),
                      config.search_min_for(len(config.full_offsets)))

    def initial_state(self) -> CodewordSyncState:
        return CodewordSyncState(buf=np.zeros((0, self.code.slots_per_symbol), dtype=np.uint16))

    def _empty(self) -> CodewordBlocks:
        return CodewordBlocks(np.zeros((0, self.code.slots_per_codeword), np.uint16), np.zeros(0, np.int64),
                              np.zeros(0), np.zeros(0, bool), np.zeros(0, np.int32), np.zeros(0, np.int32))

    def push(self, symbols, state: CodewordSyncState) -> tuple[CodewordBlocks, CodewordSyncState]:
        """Consume symbol-aligned slot counts (a ``SlotCounts``); return completed codewords."""
        P = self.code.slots_per_symbol
        counts = getattr(symbols, "counts", None)
        if counts is None or not hasattr(symbols, "sym_index") or not hasattr(symbols, "segment"):
            raise ShapeError(f"CodewordSync.push: expected SlotCounts (counts, sym_index, segment), got {type(symbols)}")
        y = np.asarray(counts)
        idx = np.asarray(symbols.sym_index)
        seg = np.asarray(symbols.segment)
        if y.ndim != 2 or y.shape[1] != P:
            raise ShapeError(f"CodewordSync.push: counts must have shape (n, {P}) (M + guard slots), got {y.shape}")
        if idx.shape != (y.shape[0],) or seg.shape != (y.shape[0],):
            raise ShapeError(f"CodewordSync.push: sym_index {idx.shape} and segment {seg.shape} must have shape "
                             f"({y.shape[0]},)")
        if y.dtype.kind not in "iu":
            raise ShapeError(f"CodewordSync.push: counts must be integers, got dtype {y.dtype}")
        if y.dtype.kind == "i" and y.size and y.min() < 0:
            raise ShapeError(f"CodewordSync.push: counts must be >= 0, found {int(y.min())}")
        st = copy.copy(state)
        if st.buf is None:
            st.buf = np.zeros((0, P), dtype=np.uint16)
        if y.dtype != np.uint16:                       # the slot clock's uint16 counts pass as they are
            y = np.minimum(y, 65535).astype(np.uint16)
        parts = []
        # split the input at segment changes / index holes
        n = y.shape[0]
        if n:
            brk = np.flatnonzero((np.diff(idx) != 1) | (np.diff(seg) != 0)) + 1
            bounds = [0, *brk.tolist(), n]
            for a, b in zip(bounds[:-1], bounds[1:]):
                contiguous = (st.segment == int(seg[a])
                              and st.buf_index + st.buf.shape[0] + st.n_tail == int(idx[a]))
                if not contiguous:
                    if st.segment is not None:
                        st.resets += 1
                    st.buf = y[a:b]
                    st.tail, st.n_tail, st.need = (), 0, 0
                    st.buf_index = int(idx[a])
                    st.segment = int(seg[a])
                    st.mode = CodewordSyncMode.SEARCH
                    st.misses = 0
                    st.slot_offset = 0
                    st.search_fails = 0
                else:
                    st.tail = (*st.tail, y[a:b].copy())
                    st.n_tail += b - a
                if st.buf.shape[0] + st.n_tail >= st.need:     # fewer: the state machine could not move
                    if st.tail:
                        st.buf = np.concatenate([st.buf, *st.tail])
                        st.tail, st.n_tail = (), 0
                    self._run(st, parts)
        if not parts:
            return self._empty(), st
        return CodewordBlocks.concat(parts), st

    def flush(self, state: CodewordSyncState) -> tuple[CodewordBlocks, CodewordSyncState]:
        """End of the symbol stream: emit the last codeword in LOCK if it lacks at most ``L`` (the
        CSM length, 16 symbols: < 0.5 % of a codeword) symbols at its end, completed with empty
        slots. A record's last symbols are never emitted by the slot clock when no photon arrives
        after them, and a codeword locked at a slot offset ``o > 0`` ends ``o`` slots into a row
        that never comes; an all-empty symbol has the same likelihood under every PPM symbol, so
        it is an erasure, never wrong evidence, and the codeword's CRC decides. A codeword missing
        more stays unreceived."""
        st = copy.copy(state)
        if st.buf is None or st.mode != CodewordSyncMode.LOCK:
            return self._empty(), st
        buf = np.concatenate([st.buf, *st.tail]) if st.tail else st.buf
        missing = self.cfg.period + int(st.slot_offset > 0) - buf.shape[0]
        if not 0 < missing <= self._pat.size:
            return self._empty(), st
        st.buf = np.concatenate([buf, np.zeros((missing, buf.shape[1]), buf.dtype)])
        st.tail, st.n_tail = (), 0
        parts: list = []
        self._run(st, parts)
        st.buf = st.buf[:0]                              # the empty symbols were not received
        return (CodewordBlocks.concat(parts) if parts else self._empty()), st

    def _rows(self, buf: np.ndarray, o: int) -> np.ndarray:
        """The symbols of ``buf`` (C-contiguous rows) re-cut ``o`` slots later: a view, one row
        fewer for ``o > 0`` (the last re-cut symbol would reach past the buffer)."""
        if o == 0:
            return buf
        P = buf.shape[1]
        n = buf.shape[0] - 1
        return buf.reshape(-1)[o:o + n * P].reshape(n, P)

    def _search_set(self, st: CodewordSyncState) -> tuple:
        """(offsets, int64 offsets, threshold, extra rows, full) of the next SEARCH period."""
        full = 0 < self.cfg.full_search_after <= st.search_fails
        offs, arr, thr = self._full if full else self._near
        return offs, arr, thr, int(len(offs) > 1), full   # a re-cut symbol reaches into the next row

    def _search_scores(self, window: np.ndarray, offsets: np.ndarray) -> np.ndarray:
        """``Lambda`` of every symbol offset ``j < period`` at every slot offset: (n_offsets, period),
        from a C-contiguous window of ``period + L - 1`` rows (plus one with a slot search):
        :func:`csm_llr_slot_offsets` (the sums of :func:`csm_llr`, each row's exponentials shared by
        its offsets: 128-PPM with 33 offsets costs ~17 ms per period instead of ~200)."""
        return csm_llr_slot_offsets(window.reshape(-1), window.shape[1], self.code.M, self._w, self._pat,
                                    offsets, self.cfg.period)

    def _run(self, st: CodewordSyncState, parts: list):
        cfg = self.cfg
        per, L, P = cfg.period, self._pat.size, self.code.slots_per_symbol
        out_c, out_i, out_l, out_k, out_o = [], [], [], [], []
        buf = np.ascontiguousarray(st.buf)
        flat = buf.reshape(-1)
        pos = 0
        while True:
            avail = buf.shape[0] - pos
            if st.mode == CodewordSyncMode.SEARCH:
                offs, arr, thr, extra, full = self._search_set(st)
                if avail < per + L - 1 + extra:
                    break
                lam = self._search_scores(buf[pos:pos + per + L - 1 + extra], arr)
                k = int(np.argmax(lam))
                if lam.flat[k] < thr:
                    # not enough evidence in one period: add the next period's score at the same
                    # offsets (joint LLR of two CSMs one period apart)
                    if avail < 2 * per + L - 1 + extra:
                        break
                    lam = lam + self._search_scores(buf[pos + per:pos + 2 * per + L - 1 + extra], arr)
                    k = int(np.argmax(lam))
                if lam.flat[k] >= thr:
                    i, j = divmod(k, per)
                    pos += j
                    st.slot_offset = offs[i]
                    st.mode = CodewordSyncMode.LOCK
                    st.misses = 0
                    st.fresh = True
                    st.locks += 1
                    st.search_fails = 0
                else:
                    pos += per
                    st.search_fails = 0 if full else st.search_fails + 1
                continue
            # LOCK: the CSMs of every whole codeword buffered, scored at once
            o = st.slot_offset
            n_cw = (avail - int(o > 0)) // per
            if n_cw == 0:
                break
            lam = _csm_llr_at(self._rows(buf[pos:], o), per * np.arange(n_cw), self._pat, self.code.M, self._w)
            for lam0 in lam.tolist():
                hit = lam0 > cfg.lock_threshold
                if not hit:
                    st.misses += 1
                    # the codeword SEARCH locked on is emitted even when its own CSM misses (a
                    # two-period lock): going back to SEARCH there would find the same lock again
                    if st.misses > cfg.flywheel and not st.fresh:
                        st.mode = CodewordSyncMode.SEARCH
                        st.lock_losses += 1
                        st.misses = 0
                        break
                    st.flywheeled += 1
                else:
                    st.misses = 0
                st.fresh = False
                out_c.append(flat[pos * P + o:(pos + per) * P + o])
                out_i.append(st.buf_index + pos)
                out_l.append(lam0)
                out_k.append(hit)
                out_o.append(o)
                st.codewords += 1
                pos += per
        if pos or buf.base is not None:                  # keep a private copy of the rest only
            st.buf = buf[pos:].copy()
        st.buf_index += pos
        avail = buf.shape[0] - pos
        if st.mode == CodewordSyncMode.LOCK:
            st.need = per + int(st.slot_offset > 0)
        else:                                            # SEARCH: one period, else two periods
            extra = self._search_set(st)[3]
            st.need = (per if avail < per + L - 1 + extra else 2 * per) + L - 1 + extra
        if out_c:
            parts.append(CodewordBlocks(np.stack(out_c), np.array(out_i, np.int64), np.array(out_l),
                                        np.array(out_k, bool), np.full(len(out_c), st.segment, np.int32),
                                        np.array(out_o, np.int32)))
