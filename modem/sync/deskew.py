# SPDX-License-Identifier: Apache-2.0
"""Per-channel delay (skew) compensation of SNSPD time tags, and its estimation from the data.

A tagger with several detector channels (the pixels of an SNSPD array behind one aperture, each
with its own readout cable, amplifier and discriminator) stamps a photon arriving at ``t`` on
channel ``c`` at ``t + d_c``. The receiver merges all channels into one stream; unequal delays
``d_c`` smear every pulse over ``max(d) - min(d)``. A quarter slot of skew cancels the slot tone
the clock recovery locks to, and a skew of a slot moves photons into the neighbouring PPM slot.

* :func:`channel_delays` reads a delay table: ``{channel: ps}`` (keys ints or decimal strings, as a
  JSON object gives them) or a list indexed by channel; channels not named have delay 0.
* :class:`ChannelDeskew` is the streaming compensation ``t' = t - d[channel]``: it re-sorts the
  corrected tags and holds back those a later chunk could still precede, so its output is the same
  whatever the chunking (the concatenation of the ``push`` outputs and ``flush`` is
  ``sort(t - d[ch])``, stable in input order).
* :func:`estimate_channel_delays` measures the delays from the data itself: photons of one PPM
  pulse detected on two channels are coincident up to the delay difference, so the histogram of
  ``t_b - t_a`` over pairs of tags within a window has its tallest tooth at ``d_b - d_a``. Pairs
  from different pulses form teeth at whole slots from it, at most 1/(slots per symbol) as tall,
  because a PPM symbol carries one pulse; background and dark counts add a flat floor. The whole-
  slot part comes from the tallest slot-wide window of the histogram, the sub-slot part from the
  mean of the differences within half a slot of it, re-centred until it stops moving (a flat floor
  then adds no bias). A channel whose tooth does not stand out from every other window by
  ``min_significance`` standard deviations is left at 0 and listed as unresolved. When no channel
  stands out against the reference alone (a reference pixel without signal, or a large array of
  pixels each too weak against any single other one), the array is aligned on the first half of
  the tags and every channel verified against all the others on the second half (independent
  data, so the significance test keeps its meaning).
* :func:`estimate_channel_delays_chunks` finds where in a pass to measure: a pass usually starts
  before the link is up (background and dark counts only, nothing to resolve), so it measures
  windows of consecutive tags along the pass's chunks until the coincidence teeth appear, returns
  the best of that window and the next (:class:`PassSearch`: every window measured, why it
  stopped) and stops reading there; a cap on the windows measured bounds the work when the link
  never comes up.

Times are int64 picoseconds; delays are whole picoseconds (rounded).
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field, replace

import numba
import numpy as np

from ..errors import ConfigError, ShapeError

__all__ = ["channel_delays", "delay_table_json", "ChannelDeskew", "DelayEstimate", "estimate_channel_delays",
           "estimate_channel_delays_chunks", "PassSearch", "WindowTrial", "NoTagsError", "STOP_REASONS",
           "MAX_DELAY_PS"]

#: largest |delay| accepted in a delay table (1 ms: far beyond any cable; guards against units)
MAX_DELAY_PS = 10 ** 9


def channel_delays(value, where: str = "channel_delays_ps") -> dict[int, int]:
    """A delay table as ``{channel: delay_ps}`` (int -> int, zero entries dropped).

    ``value``: a dict ``{channel: ps}`` with int keys or decimal-string keys (a JSON object), a
    list/tuple (index = channel), a JSON string of either, or None (no delays). Delays are finite
    numbers of picoseconds with ``|d| <= MAX_DELAY_PS``, rounded to whole ps. Anything else raises
    ConfigError naming ``where`` and the bad entry.
    """
    if value is None:
        return {}
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError as exc:
            raise ConfigError(f"{where}: not a JSON object or list of delays in ps: {value!r}") from exc
    if isinstance(value, (list, tuple)) or (isinstance(value, np.ndarray) and value.ndim >= 1):
        items = list(enumerate(np.asarray(value, dtype=object).tolist()))
    elif isinstance(value, dict):
        items = list(value.items())
    else:
        raise ConfigError(f"{where}: must be {{channel: ps}} or a list of ps per channel, got {value!r}")
    out = {}
    for k, v in items:
        if isinstance(k, str):
            try:
                ch = int(k.strip())
            except ValueError:
                raise ConfigError(f"{where}: channel {k!r} is not an integer") from None
        elif isinstance(k, (int, np.integer)) and not isinstance(k, bool):
            ch = int(k)
        else:
            raise ConfigError(f"{where}: channel {k!r} is not an integer")
        if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)) \
                or not math.isfinite(float(v)) or abs(float(v)) > MAX_DELAY_PS:
            raise ConfigError(f"{where}: delay of channel {ch} must be a finite number of ps with |d| <= "
                              f"{MAX_DELAY_PS}, got {v!r}")
        if ch in out:
            raise ConfigError(f"{where}: channel {ch} given twice")
        d = int(round(float(v)))
        out[ch] = d
    return {c: d for c, d in sorted(out.items()) if d != 0}


def delay_table_json(value) -> dict[str, int]:
    """A delay table (any form :func:`channel_delays` reads) as JSON writes it: ``{"channel": ps}``,
    sorted by channel, zero entries dropped -- the ``channel_delays_ps`` files and reports store."""
    return {str(c): d for c, d in channel_delays(value).items()}


def _int_tags(t_ps, channel, where: str):
    """``(t, ch)`` as int64 arrays: 1-D, one length, integer dtypes (ShapeError naming ``where``)."""
    t = np.asarray(t_ps)
    ch = np.asarray(channel)
    if t.ndim != 1 or ch.shape != t.shape:
        raise ShapeError(f"{where}: t_ps and channel must be 1-D of one length, got shapes {t.shape}, {ch.shape}")
    if t.size and (t.dtype.kind not in "iu" or ch.dtype.kind not in "iu"):
        raise ShapeError(f"{where}: t_ps and channel must be integers, got {t.dtype}, {ch.dtype}")
    return t.astype(np.int64, copy=False), ch.astype(np.int64, copy=False)


def _delay_of(table: dict[int, int], ch: np.ndarray) -> np.ndarray:
    """(n,) int64 delay of each tag's channel (0 for channels not in ``table``)."""
    d = np.zeros(ch.shape, np.int64)
    for c, v in table.items():
        d[ch == c] = v
    return d


class ChannelDeskew:
    """Streaming per-channel delay compensation (see the module docstring).

    ``push(t_ps, channel)`` takes a chunk of raw tags, int64 ps non-decreasing within and across
    chunks (the order a tagger streams them) and their channel ids, and returns the corrected tags
    that no later chunk can precede, as ``(t_ps, channel)`` sorted non-decreasing; ``flush()``
    returns the rest. The tags held back span at most ``max(d) - min(d, 0)`` ps of the stream.
    """

    def __init__(self, delays_ps):
        self.delays = channel_delays(delays_ps)
        self._dmax = max([0, *self.delays.values()])
        self.reset()

    def reset(self) -> None:
        """Forget the held-back tags (start of a new stream)."""
        self._t = np.zeros(0, np.int64)
        self._ch = np.zeros(0, np.int64)
        self._last = None

    @property
    def held(self) -> int:
        """Tags held back for a later chunk."""
        return int(self._t.size)

    def push(self, t_ps, channel):
        t, ch = _int_tags(t_ps, channel, "ChannelDeskew.push")
        if t.size:
            prev = t[0] if self._last is None else self._last
            back = np.flatnonzero(np.diff(t, prepend=prev) < 0)
            if back.size:
                i = int(back[0])
                before = int(t[i - 1]) if i else int(prev)
                raise ShapeError(f"ChannelDeskew.push: raw tags must be non-decreasing, t_ps[{i}]={int(t[i])} < "
                                 f"{before}")
            self._last = int(t[-1])
        c = t - _delay_of(self.delays, ch) if self.delays else t
        allt = np.concatenate([self._t, c])
        allch = np.concatenate([self._ch, ch])
        order = np.argsort(allt, kind="stable")
        allt, allch = allt[order], allch[order]
        if self._last is None:
            return allt[:0], allch[:0]
        k = int(np.searchsorted(allt, self._last - self._dmax, side="right"))
        self._t, self._ch = allt[k:], allch[k:]
        return allt[:k], allch[:k]

    def flush(self):
        """The held-back tags, sorted; the stream then starts afresh."""
        t, ch = self._t, self._ch
        self.reset()
        return t, ch


# --------------------------------------------------------------------------------------------------
@numba.njit(cache=True, nogil=True)
def _pair_histogram(ta, cha, tb, c, lo, h, nbins):  # pragma: no cover - compiled
    """hist[k] = pairs (a, b) with lo + k*h <= tb - ta < lo + (k+1)*h (ta, tb sorted; tags a of
    channel ``c`` skipped)."""
    hist = np.zeros(nbins, np.int64)
    j0 = 0
    na = ta.size
    hi = lo + h * nbins
    for i in range(tb.size):
        x = tb[i]
        while j0 < na and x - ta[j0] >= hi:
            j0 += 1
        j = j0
        while j < na and x - ta[j] >= lo:
            k = (x - ta[j] - lo) // h
            if 0 <= k < nbins and cha[j] != c:
                hist[k] += 1
            j += 1
    return hist


@numba.njit(cache=True, nogil=True)
def _pair_differences(ta, cha, tb, c, lo, hi):  # pragma: no cover - compiled
    """Every tb - ta with lo <= tb - ta < hi (ta, tb sorted; tags a of channel ``c`` skipped), in
    no particular order."""
    n = 0
    cap = 1024
    out = np.empty(cap, np.int64)
    j0 = 0
    na = ta.size
    for i in range(tb.size):
        x = tb[i]
        while j0 < na and x - ta[j0] >= hi:
            j0 += 1
        j = j0
        while j < na and x - ta[j] >= lo:
            if cha[j] == c:
                j += 1
                continue
            if n == cap:
                cap *= 2
                new = np.empty(cap, np.int64)
                new[:n] = out[:n]
                out = new
            out[n] = x - ta[j]
            n += 1
            j += 1
    return out[:n]


class NoTagsError(ConfigError):
    """No time tags to measure channel delays from (an empty capture or pass)."""


@dataclass(frozen=True)
class WindowTrial:
    """One window of a pass measured by :func:`estimate_channel_delays_chunks`.

    first_tag : index in the pass of its first tag; tags : tags in it; start_ps, end_ps : times of
    its first and last tag. resolved : channels resolved in it (the reference not counted);
    max_significance : the largest significance of any channel (below ``min_significance`` in a
    window where nothing resolved).
    """

    first_tag: int
    tags: int
    start_ps: int
    end_ps: int
    resolved: int
    max_significance: float

    def to_json(self) -> dict:
        return {"first_tag": int(self.first_tag), "tags": int(self.tags), "start_ps": int(self.start_ps),
                "end_ps": int(self.end_ps), "resolved": int(self.resolved),
                "max_significance": round(float(self.max_significance), 2)}


#: why :func:`estimate_channel_delays_chunks` stopped reading (``PassSearch.stop``)
STOP_REASONS = ("confirmed", "end_of_pass", "max_windows")


@dataclass(frozen=True)
class PassSearch:
    """Where along a pass :func:`estimate_channel_delays_chunks` measured: the evidence of its estimate.

    window_tags, stride, max_windows, confirm, min_significance : the search's parameters.
    trials : (WindowTrial, ...) the windows measured, in pass order.
    chosen : index in ``trials`` of the window whose estimate is returned.
    signal_at : index in ``trials`` of the first window in which a channel resolved (None: none).
    tags_read : tags of the pass up to where the search stopped (the end of the last window
        measured, or of the pass); the chunk holding the last of them was the last one taken from
        the stream. Like everything here, the same whatever the chunking.
    pass_start_ps, end_ps : times of the first tag of the pass and of the last of those tags.
    stop : why reading stopped -- ``"confirmed"`` (the first window with signal and the ``confirm``
        windows after it were measured), ``"end_of_pass"`` or ``"max_windows"`` (the cap on windows
        measured; the rest of the pass was not read).
    agreement_ps : the largest difference, over the channels resolved in both, of a delay (relative to
        a channel resolved in both) between the window returned and another window with signal;
        None when no other window resolved two of the same channels.
    """

    window_tags: int
    stride: int
    max_windows: int
    confirm: int
    min_significance: float
    trials: tuple
    chosen: int
    signal_at: int | None
    tags_read: int
    pass_start_ps: int
    end_ps: int
    stop: str
    agreement_ps: int | None = None

    def summary(self) -> str:
        """One line for a report: where the delays were measured, or why nothing was resolved."""
        def at(ps):
            return f"{(ps - self.pass_start_ps) * 1e-12:.6g} s"
        n = len(self.trials)
        read = (f"{n} window(s) of {self.window_tags} tags measured; read {self.tags_read} tags, to {at(self.end_ps)} "
                f"into the pass ({self.stop.replace('_', ' ')})")
        if self.signal_at is None:
            best = max(tr.max_significance for tr in self.trials)
            return (f"nothing resolved: largest significance {best:.1f} < {self.min_significance:g}; " + read)
        tr, sig = self.trials[self.chosen], self.trials[self.signal_at]
        agree = "" if self.agreement_ps is None else f"; another window agrees to {self.agreement_ps} ps"
        return (f"measured on tags {tr.first_tag}..{tr.first_tag + tr.tags - 1} ({at(tr.start_ps)} to "
                f"{at(tr.end_ps)} into the pass), the best of {n - self.signal_at} window(s) from the first "
                f"with signal (tag {sig.first_tag}, {at(sig.start_ps)}){agree}; " + read)

    def to_json(self) -> dict:
        return {"window_tags": int(self.window_tags), "stride": int(self.stride), "max_windows": int(self.max_windows),
                "confirm": int(self.confirm), "min_significance": float(self.min_significance),
                "trials": [tr.to_json() for tr in self.trials], "chosen": int(self.chosen),
                "signal_at": None if self.signal_at is None else int(self.signal_at),
                "tags_read": int(self.tags_read), "pass_start_ps": int(self.pass_start_ps),
                "end_ps": int(self.end_ps), "stop": self.stop,
                "agreement_ps": None if self.agreement_ps is None else int(self.agreement_ps),
                "summary": self.summary()}


@dataclass(frozen=True)
class DelayEstimate:
    """Result of :func:`estimate_channel_delays`.

    delays_ps : {channel: ps} to subtract from each channel's tags (``reference`` 0; unresolved
        channels 0) -- the ``channel_delays_ps`` link parameter.
    reference : the channel the others are measured against (by default the one with most tags,
        or, when nothing stands out against it, the busiest channel the second-half check resolves).
    coincidences : {channel: pairs with the reference in the tooth found} (signal evidence).
    significance : {channel: (tooth - next tallest slot-wide window) / sqrt(sum of both)}.
    unresolved : channels without a significant tooth (left at delay 0).
    tags : tags used; span_ps : time they cover.
    first_tag : index in the pass (0 = its first tag) of the first tag used; start_ps : its time.
    search : how :func:`estimate_channel_delays_chunks` found the window measured (None from
        :func:`estimate_channel_delays`, which measures the tags it is given).
    """

    delays_ps: dict
    reference: int
    coincidences: dict = field(default_factory=dict)
    significance: dict = field(default_factory=dict)
    unresolved: tuple = ()
    tags: int = 0
    span_ps: int = 0
    first_tag: int = 0
    start_ps: int = 0
    search: PassSearch | None = None

    def as_param(self) -> str:
        """``channel_delays_ps=<JSON>``: the ``--param`` that applies these delays."""
        return "channel_delays_ps=" + json.dumps(delay_table_json(self.delays_ps), separators=(",", ":"))

    def to_json(self) -> dict:
        return {"delays_ps": delay_table_json(self.delays_ps),
                "reference": int(self.reference),
                "coincidences": {str(c): int(v) for c, v in sorted(self.coincidences.items())},
                "significance": {str(c): round(float(v), 2) for c, v in sorted(self.significance.items())},
                "unresolved": [int(c) for c in self.unresolved], "tags": int(self.tags),
                "span_ps": int(self.span_ps), "first_tag": int(self.first_tag), "start_ps": int(self.start_ps),
                "search": None if self.search is None else self.search.to_json()}


def _estimator_params(slot_width_ps, max_delay_ps, min_significance, where: str):
    """``(T, max_delay_ps)`` as floats (the default search range filled in) after checking the
    estimator's parameters (ConfigError naming ``where``, the parameter and its value)."""
    if isinstance(slot_width_ps, bool) or not isinstance(slot_width_ps, (int, float, np.integer, np.floating)) \
            or not math.isfinite(float(slot_width_ps)) or slot_width_ps <= 0:
        raise ConfigError(f"{where}: slot_width_ps must be a positive number, got {slot_width_ps!r}")
    T = float(slot_width_ps)
    if max_delay_ps is None:
        max_delay_ps = min(max(64.0 * T, 20000.0), MAX_DELAY_PS)
    if isinstance(max_delay_ps, bool) or not isinstance(max_delay_ps, (int, float, np.integer, np.floating)) \
            or not math.isfinite(float(max_delay_ps)) or not 0 < max_delay_ps <= MAX_DELAY_PS:
        raise ConfigError(f"{where}: max_delay_ps must be in (0, {MAX_DELAY_PS}], got {max_delay_ps!r}")
    if isinstance(min_significance, bool) or not isinstance(min_significance, (int, float)) \
            or not math.isfinite(float(min_significance)) or min_significance <= 0:
        raise ConfigError(f"{where}: min_significance must be a positive number, got {min_significance!r}")
    return T, max_delay_ps


def estimate_channel_delays(t_ps, channel, slot_width_ps: float, max_delay_ps: float | None = None,
                            min_significance: float = 8.0, reference: int | None = None) -> DelayEstimate:
    """Measure each channel's delay relative to a reference channel from raw (un-deskewed) tags.

    Parameters
    ----------
    t_ps : (n,) integer ps tags, non-decreasing (all channels merged, as a tagger streams them).
    channel : (n,) integer channel ids (float arrays raise ShapeError).
    slot_width_ps : the link's slot width T (> 0).
    max_delay_ps : largest |delay difference| searched (default ``max(64 T, 20 ns)``, at most
        ``MAX_DELAY_PS``; a metre of cable is ~5 ns).
    min_significance : a tooth must exceed every other slot-wide window of the difference
        histogram by this many standard deviations (default 8).
    reference : the reference channel (default: the channel with most tags, unless no channel shows
        a tooth against it: see the module docstring). A reference given here is kept; without a
        signal on it every other channel is unresolved.

    Returns
    -------
    DelayEstimate : ``delays_ps[c]`` is subtracted from channel ``c``'s tags by
    :class:`ChannelDeskew`. Cost: O(n + pairs), pairs ~ n * rate * 2 * max_delay, per round; about
    ten rounds when nothing stands out against the reference (the alignment of the halves).
    """
    t, ch = _int_tags(t_ps, channel, "estimate_channel_delays")
    T, max_delay_ps = _estimator_params(slot_width_ps, max_delay_ps, min_significance, "estimate_channel_delays")
    if t.size > 1 and np.any(np.diff(t) < 0):
        i = int(np.flatnonzero(np.diff(t) < 0)[0]) + 1
        raise ShapeError(f"estimate_channel_delays: t_ps must be non-decreasing, t_ps[{i}]={int(t[i])} < {int(t[i - 1])}")
    chans, counts = np.unique(ch, return_counts=True)
    given = reference is not None
    if reference is None:
        if chans.size == 0:
            raise NoTagsError("estimate_channel_delays: no tags to estimate from")
        reference = int(chans[np.argmax(counts)])
    elif int(reference) not in set(chans.tolist()):
        raise ConfigError(f"estimate_channel_delays: reference channel {reference!r} has no tags "
                          f"(channels present: {chans.tolist()})")
    reference = int(reference)
    span = int(t[-1] - t[0]) if t.size else 0
    # fine bins: 1/16 slot (>= 1 ps); search [-W, W) with W a whole number of bins
    h = max(1, int(T // 16))
    per_slot = max(1, int(round(T / h)))
    nbins = 2 * int(math.ceil((float(max_delay_ps) + T) / h))
    lo = -(nbins // 2) * h
    by_ch = {c: t[ch == c] for c in chans.tolist()}
    delays, coinc, signif = {reference: 0}, {}, {}

    def tooth(ref, tb, c):
        return _tooth(ref[0], ref[1], tb, c, T, lo, h, per_slot, nbins)

    def measure(c, ref):
        r = tooth(ref, by_ch[c], c)
        signif[c], coinc[c] = r[1], r[2]
        if r[0] is not None and r[1] >= min_significance:
            delays[c] = r[0]

    def rounds(pending):
        while pending:
            ref = _merge(by_ch, delays)
            for c in pending:
                measure(c, ref)
            if all(c not in delays for c in pending):
                break
            pending = [c for c in pending if c not in delays]

    # Rounds: each channel is measured against the merged, aligned tags of every channel resolved so
    # far (the reference alone at first), so a pixel too weak to show a tooth against one other pixel
    # of a large array shows it against all of them; a last pass re-measures every resolved channel
    # against all the others (its own tags left out) for precision.
    others = [c for c in chans.tolist() if c != reference]
    rounds(list(others))
    if len(delays) == 1 and len(others) >= 2:
        # Nothing stands out against the reference alone: a reference without signal (a noisy
        # pixel, one outside the spot), or pixels each too weak against any single other one. The
        # array is aligned on the first half of the tags (:func:`_bootstrap`) and each channel
        # verified against the others on the second half, independent data: only a channel whose
        # tooth is significant there is resolved. The reference must be among them; by default
        # it becomes the busiest verified channel.
        boot = _bootstrap(by_ch, T, tooth)
        ok = [c for c, r in boot.items() if r[0] is not None and r[1] >= min_significance]
        anchor = reference if reference in ok else None
        if anchor is None and not given and ok:
            anchor = min(ok, key=lambda c: (-by_ch[c].size, c))
        if anchor is not None and len(ok) >= 2:
            reference = anchor
            delays = {c: boot[c][0] - boot[anchor][0] for c in ok}
            for c, r in boot.items():
                signif[c], coinc[c] = r[1], r[2]
            signif.pop(reference, None)
            coinc.pop(reference, None)
            others = [c for c in chans.tolist() if c != reference]
            rounds([c for c in others if c not in delays])
    resolved = [c for c in others if c in delays]
    if len(delays) > 2:
        ref = _merge(by_ch, delays)
        for c in resolved:
            measure(c, ref)
    unresolved = [c for c in others if c not in delays]
    return DelayEstimate(delays_ps={c: d for c, d in delays.items() if d != 0}, reference=reference,
                         coincidences=coinc, significance=signif, unresolved=tuple(unresolved),
                         tags=int(t.size), span_ps=span, start_ps=int(t[0]))


def _count_param(where: str, name: str, value, lo: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < lo:
        raise ConfigError(f"{where}: {name} must be an integer >= {lo}, got {value!r}")
    return int(value)


def estimate_channel_delays_chunks(chunks, slot_width_ps: float, max_delay_ps: float | None = None,
                                   window_tags: int = 1 << 21, max_windows: int = 32, stride: int = 1,
                                   confirm: int = 1, min_significance: float = 8.0,
                                   reference: int | None = None) -> DelayEstimate:
    """Measure the channel delays in the part of a pass where the link is up, reading only that far.

    A pass usually starts before the link is up (pointing acquisition: background and dark counts
    only), so its first tags show no coincidence tooth. The pass is cut into windows of
    ``window_tags`` consecutive tags (window ``w`` = tags ``w*window_tags`` to
    ``(w+1)*window_tags - 1``, whatever the chunking) and windows are measured with
    :func:`estimate_channel_delays` (its significance test unchanged: a window of background alone
    resolves nothing) until one resolves a channel -- the link is up -- and then the ``confirm``
    windows after it. The estimate returned is the best of these (most channels resolved, then the
    largest smallest significance among them), and reading stops there.

    Why the best of the first window with signal and the next ones, not the first: the first is
    usually the one in which the link comes up part-way, with fewer coincidences, a weaker tooth and
    less precise delays, and a weak pixel may only resolve in the next one; the significance grows
    with the coincidences, as the precision of the delays does (30 simulated 16-PPM 4-pixel passes,
    windows of 10**4 tags: the first window with signal was off by up to 24 ps, at 13.5 sigma; the
    best of it and the next by at most 7 ps, at 47 sigma or more). Why not "the first window
    where every channel resolves": a pixel without signal (dead, outside the spot) never resolves,
    and waiting for it would read the pass to the cap. ``agreement_ps`` compares the windows with
    signal: two independent measures of the same delays.

    Parameters
    ----------
    chunks : iterable of ``(t_ps, channel)`` pairs of 1-D integer arrays of one length, t_ps
        non-decreasing within and across chunks: the raw tags in time order, as
        ``Capture.tagged_chunks(n)`` yields them. Consumed only as far as needed.
    slot_width_ps, max_delay_ps, min_significance, reference : as :func:`estimate_channel_delays`
        (a ``reference`` absent from a window: nothing resolved in that window).
    window_tags : tags per window (>= 2; default 2**21). Larger windows resolve weaker signals.
    max_windows : the most windows measured before the signal is found (>= 1): when none of them
        resolves a channel, reading stops (``stop == "max_windows"``), at most
        ``max_windows * stride * window_tags`` tags read.
    stride : before the signal is found, measure every ``stride``-th window only (>= 1; the others
        are read and dropped): a long dark lead-in then costs ``1/stride`` of the estimator's time,
        and the signal is found at most ``stride - 1`` windows after the link is up. Measuring is
        what costs (about 0.5 s a window of 2**21 background tags on 4 pixels, 2.5 s on 16; reading
        is much cheaper). When the pass ends before any signal, its last ``window_tags`` tags are
        measured too, so a link up only at the end is not skipped.
    confirm : windows measured after the first window with signal (>= 0; default 1).

    Returns
    -------
    DelayEstimate : the estimate of the window chosen (``first_tag``, ``start_ps`` say where it lies
    in the pass), ``search`` (:class:`PassSearch`): every window measured, why reading stopped,
    ``summary()``. When nothing resolved anywhere: ``delays_ps == {}``, every channel unresolved, the
    window with the largest significance returned, ``search.signal_at`` None -- a result, not an
    exception.

    Raises
    ------
    NoTagsError (a ConfigError) when the pass holds no tag; ConfigError for bad parameters (before
    anything is read); ShapeError for a chunk that is not a pair of integer arrays of one length, or
    tags out of time order (naming the tag's index in the pass).
    """
    where = "estimate_channel_delays_chunks"
    T, max_delay_ps = _estimator_params(slot_width_ps, max_delay_ps, min_significance, where)
    W = _count_param(where, "window_tags", window_tags, 2)
    max_windows = _count_param(where, "max_windows", max_windows, 1)
    stride = _count_param(where, "stride", stride, 1)
    confirm = _count_param(where, "confirm", confirm, 0)
    if reference is not None and (isinstance(reference, bool) or not isinstance(reference, (int, np.integer))):
        raise ConfigError(f"{where}: reference must be a channel id (an integer) or None, got {reference!r}")

    trials, ests = [], []
    signal_at = None

    def measure(t, c, first):
        nonlocal signal_at
        present = np.unique(c)
        if reference is not None and int(reference) not in set(present.tolist()):
            est = DelayEstimate(delays_ps={}, reference=int(reference),
                                unresolved=tuple(int(x) for x in present), tags=int(t.size),
                                span_ps=int(t[-1] - t[0]))
            resolved = 0
        else:
            est = estimate_channel_delays(t, c, T, max_delay_ps, min_significance, reference)
            resolved = int(present.size) - 1 - len(est.unresolved)
        est = replace(est, first_tag=int(first), start_ps=int(t[0]))
        trials.append(WindowTrial(first_tag=int(first), tags=int(t.size), start_ps=int(t[0]), end_ps=int(t[-1]),
                                  resolved=resolved,
                                  max_significance=max([0.0, *(float(v) for v in est.significance.values())])))
        ests.append(est)
        if signal_at is None and resolved:
            signal_at = len(trials) - 1

    def done():
        """The reason to stop after the window just handled, or None to read on."""
        if signal_at is not None:
            return "confirmed" if len(trials) - 1 - signal_at >= confirm else None
        return "max_windows" if len(trials) >= max_windows else None

    pieces = []                 # (t, ch) pieces of the window being filled
    filled = 0                  # tags in them
    prev = []                   # pieces of the last complete window (for the end window)
    prev_measured = False
    w = 0                       # index of the window being filled
    read = 0                    # tags taken from the stream
    used = 0                    # tags put in windows (the search's position in the pass)
    last = None                 # time of the last of them
    pass_start = None
    stop = None
    for item in chunks:
        try:
            t_raw, c_raw = item
        except (TypeError, ValueError):
            raise ShapeError(f"{where}: each chunk must be a (t_ps, channel) pair of arrays, got "
                             f"{type(item).__name__}") from None
        t, c = _int_tags(t_raw, c_raw, where)
        if t.size == 0:
            continue
        back = np.flatnonzero(np.diff(t, prepend=t[0] if last is None else last) < 0)
        if back.size:
            i = int(back[0])
            before = int(t[i - 1]) if i else last
            raise ShapeError(f"{where}: t_ps must be non-decreasing, tag {read + i} of the pass is {int(t[i])} < "
                             f"{before}")
        t, c = t.copy(), c.copy()           # held across chunks: never a view of a reader's buffer
        if pass_start is None:
            pass_start = int(t[0])
        read += t.size
        i = 0
        while i < t.size and stop is None:
            take = min(t.size - i, W - filled)
            pieces.append((t[i:i + take], c[i:i + take]))
            filled += take
            i += take
            used += take
            last = int(t[i - 1])
            if filled < W:
                break
            prev, prev_measured = pieces, False
            pieces, filled = [], 0
            if signal_at is not None or w % stride == 0:
                measure(*_concat(prev), w * W)
                prev_measured = True
                stop = done()
            w += 1
        if stop is not None:
            break
    if stop is None:                    # the pass ended
        if read == 0:
            raise NoTagsError(f"{where}: no tags to estimate from")
        stop = "end_of_pass"
        if signal_at is not None:
            if filled:                  # a window after the signal, cut short by the end of the pass
                measure(*_concat(pieces), w * W)
        elif filled or not prev_measured:
            # no signal yet: the last window_tags tags of the pass (a link up only at its end)
            tail_t, tail_c = _concat(pieces)
            if prev:
                pt, pc = _concat(prev)
                k = max(0, pt.size - (W - filled))
                tail_t, tail_c = np.concatenate([pt[k:], tail_t]), np.concatenate([pc[k:], tail_c])
            measure(tail_t, tail_c, w * W + filled - tail_t.size)

    if signal_at is None:
        chosen = max(range(len(trials)), key=lambda j: (trials[j].max_significance, -j))
        agreement = None
    else:
        cands = range(signal_at, len(trials))
        chosen = max(cands, key=lambda j: (trials[j].resolved, _weakest_resolved(ests[j]), -j))
        gaps = [_disagreement(_resolved_table(ests[chosen]), _resolved_table(ests[j]))
                for j in cands if j != chosen and trials[j].resolved]
        gaps = [g for g in gaps if g is not None]
        agreement = max(gaps) if gaps else None
    search = PassSearch(window_tags=W, stride=stride, max_windows=max_windows, confirm=confirm,
                        min_significance=float(min_significance), trials=tuple(trials), chosen=chosen,
                        signal_at=signal_at, tags_read=used, pass_start_ps=pass_start, end_ps=last, stop=stop,
                        agreement_ps=agreement)
    return replace(ests[chosen], search=search)


def _concat(pieces):
    """The (t, ch) pieces of a window joined: two (n,) int64 arrays."""
    if not pieces:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    return np.concatenate([p[0] for p in pieces]), np.concatenate([p[1] for p in pieces])


def _resolved_table(est: DelayEstimate) -> dict:
    """{channel: delay} of the channels an estimate resolved, its reference (0) included."""
    tab = {c: est.delays_ps.get(c, 0) for c in est.significance if c not in est.unresolved}
    tab[est.reference] = 0
    return tab


def _weakest_resolved(est: DelayEstimate) -> float:
    """The smallest significance among the channels an estimate resolved (0.0 when none)."""
    return min([float(v) for c, v in est.significance.items() if c not in est.unresolved and c != est.reference],
               default=0.0)


def _disagreement(a: dict, b: dict) -> int | None:
    """Largest |(a[c] - a[x]) - (b[c] - b[x])| over the channels c in both tables, x the first of
    them: two measures of the same relative delays compared (each table relative to its own
    reference). None when fewer than two channels are in both."""
    common = sorted(set(a) & set(b))
    if len(common) < 2:
        return None
    x = common[0]
    return max(abs((a[c] - a[x]) - (b[c] - b[x])) for c in common)


def _merge(by_ch, table):
    """The tags of the channels in ``table`` ({channel: delay}), aligned (``t - delay``) and
    sorted, and their channel ids: two (n,) int64 arrays."""
    cs = sorted(table)
    if not cs:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    mt = np.concatenate([by_ch[c] - table[c] for c in cs])
    mc = np.concatenate([np.full(by_ch[c].size, c, np.int64) for c in cs])
    o = np.argsort(mt, kind="stable")
    return mt[o], mc[o]


def _bootstrap(by_ch, T, tooth, sweeps: int = 4):
    """Align every channel with all the others when none can be measured against one other alone.

    On the tags of the first half of the span: the channels, busiest first, are placed one by one
    at the tallest tooth against those placed before them, then re-placed against all the others
    (up to ``sweeps`` times, until none moves by more than T/2). On the second half: each channel
    is measured against all the others at those tentative delays. Returns ``{channel: (delay or
    None, significance, pairs)}`` of that second-half measure (delays in the frame of the busiest
    channel); no noise of the second half steered the alignment, so its significance is honest.
    """
    chs = sorted(by_ch, key=lambda c: (-by_ch[c].size, c))
    t0 = min(int(x[0]) for x in by_ch.values())
    t1 = max(int(x[-1]) for x in by_ch.values())
    mid = t0 + (t1 - t0) // 2
    first = {c: x[x < mid] for c, x in by_ch.items()}
    second = {c: x[x >= mid] for c, x in by_ch.items()}
    tent = {chs[0]: 0}
    for c in chs[1:]:
        d = tooth(_merge(first, tent), first[c], c)[0]
        tent[c] = 0 if d is None else d
    for _ in range(sweeps):
        moved = False
        for c in chs:
            d = tooth(_merge(first, {k: v for k, v in tent.items() if k != c}), first[c], c)[0]
            if d is not None:
                moved = moved or abs(d - tent[c]) > T / 2
                tent[c] = d
        if not moved:
            break
    return {c: tooth(_merge(second, {k: v for k, v in tent.items() if k != c}), second[c], c) for c in chs}


def _tooth(ta, cha, tb, c, T, lo, h, per_slot, nbins):
    """(delay or None, significance, pairs in the tooth) of ``tb`` (channel ``c``) relative to
    ``ta`` (channels ``cha``; tags of ``c`` itself skipped), see the module docstring; delay None
    when no window stands out at all."""
    hist = _pair_histogram(ta, cha, tb, c, lo, h, nbins)
    win = np.convolve(hist, np.ones(per_slot, np.int64), mode="valid")   # slot-wide windows
    k = int(np.argmax(win))
    peak = int(win[k])
    far = np.abs(np.arange(win.size) - k) >= per_slot
    rest = int(win[far].max()) if far.any() else 0
    z = (peak - rest) / math.sqrt(peak + rest) if peak + rest > 0 else 0.0
    if peak <= rest:
        return None, z, peak
    centre = lo + (k + per_slot / 2.0) * h                     # centre of the tallest window
    diffs = _pair_differences(ta, cha, tb, c, int(math.floor(centre - T)), int(math.ceil(centre + T)) + 1)
    diffs = diffs.astype(np.float64)
    mu = centre
    for _ in range(200):                                        # re-centred mean within +-T/2
        sel = diffs[np.abs(diffs - mu) <= T / 2]
        new = float(sel.mean()) if sel.size else mu
        done = abs(new - mu) < 0.05
        mu = new
        if done:
            break
    return int(round(mu)), z, int(np.count_nonzero(np.abs(diffs - mu) <= T / 2))
