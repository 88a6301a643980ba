# SPDX-License-Identifier: Apache-2.0
"""Channel delays measured where the link is up in a pass (``estimate_channel_delays_chunks``): a
background-only lead-in longer than a window, a link that never comes up, the same result whatever
the chunking, reading stopped as soon as the answer is in, the cap, the stride, a pixel without
signal, a reference absent from the lead-in, bad input named."""
import math

import numpy as np
import pytest

from modem.errors import ConfigError, ShapeError
from modem.fec.scppm import SCPPMCode, SCPPMTransmitter
from modem.sync.deskew import (
    STOP_REASONS,
    NoTagsError,
    estimate_channel_delays,
    estimate_channel_delays_chunks,
)
from modem.sync.timetags import TimeTagConfig, simulate_time_tags

# the 4-pixel array of tests/test_deskew.py: cable delays up to ~3 slots of 1 ns (channel 0 = 0)
DELAYS = (0.0, 1848.0, 92.0, -1285.0)
T = 1000.0
W = 10_000                       # tags per window: small, to keep the tests fast
LEAD_SLOTS = 2_600_000           # background only (nb 0.02/slot): ~50 000 tags, ~5 windows


def _pass(lead_slots, codewords, seed, **cfg):
    """16-PPM SCPPM slots after ``lead_slots`` slots without a pulse (the link not yet up: background
    and dark counts only), through a skewed 4-pixel array. Returns (t_ps, channel, tags before the
    link is up)."""
    code = SCPPMCode(M=16, rate="1/2")
    x = SCPPMTransmitter(code).modulate(np.random.default_rng(seed).integers(0, 2, (codewords, code.k),
                                                                           dtype=np.uint8))
    base = {"slot_width_ps": T, "jitter_rms_ps": 50.0, "n_channels": 4, "channel_delays_ps": DELAYS,
            "dark_count_rate_hz": 1e5, "dead_time_ps": 15000.0}
    tags = simulate_time_tags([(0, np.zeros(lead_slots, np.uint8)), (lead_slots, x.ravel())], 3.0, 0.02, seed,
                              TimeTagConfig(**{**base, **cfg}))
    return tags.t_ps, tags.channel, int(np.searchsorted(tags.t_ps, lead_slots * T))


class _Stream:
    """The tags in chunks of ``n``, as ``Capture.tagged_chunks(n)`` yields them; counts the chunks taken."""

    def __init__(self, t, ch, n):
        self.t, self.ch, self.n, self.taken = t, ch, n, 0

    @property
    def total(self):
        return math.ceil(self.t.size / self.n)

    def __iter__(self):
        for a in range(0, self.t.size, self.n):
            self.taken += 1
            yield self.t[a:a + self.n], self.ch[a:a + self.n]


def _errors(est, true=DELAYS):
    """measured - true delay of every channel (true delays relative to the estimate's reference)."""
    return [est.delays_ps.get(c, 0) - (d - true[est.reference]) for c, d in enumerate(true)]


@pytest.fixture(scope="module")
def late_link():
    """~5 windows of background, then 30 codewords (~22 windows) with the link up."""
    return _pass(LEAD_SLOTS, 30, 3)


def test_delays_found_after_a_background_lead_in_longer_than_a_window(late_link):
    t, ch, lead = late_link
    assert lead > 4 * W
    # what the first tags alone give (the old measure): nothing resolved, the pass uncompensated
    first = estimate_channel_delays(t[:W], ch[:W], T)
    assert first.delays_ps == {} and len(first.unresolved) == 3
    stream = _Stream(t, ch, 3001)
    est = estimate_channel_delays_chunks(stream, T, window_tags=W)
    s = est.search
    assert est.unresolved == () and max(abs(e) for e in _errors(est)) <= 10, est     # 50 ps jitter per photon
    # every window of background alone measured and rejected (no false tooth), then the link
    for tr in s.trials[:s.signal_at]:
        assert tr.resolved == 0 and tr.max_significance < 8
    assert all(tr.resolved == 0 for tr in s.trials if tr.first_tag + tr.tags <= lead)
    assert [tr.first_tag for tr in s.trials] == [k * W for k in range(len(s.trials))]
    assert s.signal_at >= 4 and lead - W < s.trials[s.signal_at].first_tag <= lead + W
    # the returned window is the best of the first with signal and the next one, in the link
    assert s.stop == "confirmed" and len(s.trials) == s.signal_at + 2
    assert est.first_tag == s.trials[s.chosen].first_tag >= s.trials[s.signal_at].first_tag and est.tags == W
    assert est.start_ps == t[est.first_tag] and min(est.significance.values()) > 30
    assert s.agreement_ps is not None and s.agreement_ps <= 40
    # the estimate is that of its window measured alone
    a = est.first_tag
    alone = estimate_channel_delays(t[a:a + W], ch[a:a + W], T)
    assert (alone.delays_ps, alone.reference, alone.unresolved) == (est.delays_ps, est.reference, est.unresolved)
    # reading stopped with the last window measured: the pass was not read to its end
    assert s.tags_read == s.trials[-1].first_tag + W
    assert stream.taken == math.ceil(s.tags_read / 3001) < stream.total / 2
    assert "measured on tags" in s.summary() and est.to_json()["search"]["stop"] == "confirmed"


def test_the_result_does_not_depend_on_the_chunking(late_link):
    t, ch, _ = late_link
    want = estimate_channel_delays_chunks(_Stream(t, ch, t.size), T, window_tags=W).to_json()
    for n in (997, W, 3 * W + 1):
        assert estimate_channel_delays_chunks(_Stream(t, ch, n), T, window_tags=W).to_json() == want
    # chunks of irregular sizes, some empty
    cuts = np.unique(np.random.default_rng(0).integers(0, t.size, 40))
    parts = [(t[a:b], ch[a:b]) for a, b in zip([0, *cuts, cuts[-1]], [*cuts, cuts[-1], t.size])]
    assert any(p[0].size == 0 for p in parts)
    assert estimate_channel_delays_chunks(iter(parts), T, window_tags=W).to_json() == want


def test_confirm_zero_returns_the_first_window_with_signal(late_link):
    t, ch, _ = late_link
    stream = _Stream(t, ch, 4096)
    est = estimate_channel_delays_chunks(stream, T, window_tags=W, confirm=0)
    s = est.search
    assert s.stop == "confirmed" and s.chosen == s.signal_at == len(s.trials) - 1 and s.agreement_ps is None
    assert stream.taken == math.ceil((s.trials[-1].first_tag + W) / 4096)


def test_stride_measures_every_kth_window_until_the_signal(late_link):
    t, ch, _ = late_link
    est = estimate_channel_delays_chunks(_Stream(t, ch, 5000), T, window_tags=W, stride=3)
    s = est.search
    starts = [tr.first_tag for tr in s.trials]
    assert starts[:s.signal_at + 1] == [3 * k * W for k in range(s.signal_at + 1)]
    assert starts[s.signal_at + 1] == starts[s.signal_at] + W                   # then consecutive
    assert s.stop == "confirmed" and est.unresolved == () and max(abs(e) for e in _errors(est)) <= 10
    one = estimate_channel_delays_chunks(_Stream(t, ch, 5000), T, window_tags=W)
    assert len(s.trials) < len(one.search.trials)


def test_link_that_never_comes_up_is_a_result_with_its_evidence():
    t, ch, lead = _pass(4_500_000, 0, 5)                   # ~9 windows of background and dark counts
    assert lead == t.size > 8 * W
    stream = _Stream(t, ch, 7000)
    est = estimate_channel_delays_chunks(stream, T, window_tags=W)
    s = est.search
    assert est.delays_ps == {} and len(est.unresolved) == 3 and s.signal_at is None
    assert s.stop == "end_of_pass" and stream.taken == stream.total and s.tags_read == t.size
    assert all(tr.resolved == 0 and tr.max_significance < 8 for tr in s.trials)
    # the full windows, then the last W tags of the pass (the tail joined to the window before it)
    assert [tr.first_tag for tr in s.trials] == [k * W for k in range(t.size // W)] + [t.size - W]
    assert s.summary().startswith("nothing resolved: largest significance")
    # the cap: reading stops after max_windows windows
    stream = _Stream(t, ch, 7000)
    est = estimate_channel_delays_chunks(stream, T, window_tags=W, max_windows=3)
    assert est.delays_ps == {} and est.search.stop == "max_windows" and len(est.search.trials) == 3
    assert est.search.tags_read == 3 * W and stream.taken == math.ceil(3 * W / 7000)
    assert set(STOP_REASONS) >= {"max_windows", "end_of_pass", "confirmed"}


def test_a_link_up_only_at_the_end_is_not_skipped_by_the_stride():
    t, ch, lead = _pass(LEAD_SLOTS, 2, 6)                  # ~5 windows of background, ~3 of link
    assert t.size - lead > W
    est = estimate_channel_delays_chunks(_Stream(t, ch, 8192), T, window_tags=W, stride=100)
    s = est.search
    assert [tr.first_tag for tr in s.trials] == [0, t.size - W]                # window 0, then the end
    assert s.stop == "end_of_pass" and s.chosen == s.signal_at == 1
    assert est.unresolved == () and max(abs(e) for e in _errors(est)) <= 10


def test_a_pixel_without_signal_does_not_hold_the_search():
    """Pixel 3 sees dark counts only: it never resolves; the others are measured and reading stops
    after the confirming window (not at the cap)."""
    t, ch, lead = _pass(LEAD_SLOTS, 16, 7, channel_weights=(1, 1, 1, 0), dark_count_rate_hz=2e6)
    assert np.count_nonzero(ch[lead:] == 3) > 300
    stream = _Stream(t, ch, 6000)
    est = estimate_channel_delays_chunks(stream, T, window_tags=W, max_windows=64)
    s = est.search
    assert est.unresolved == (3,) and 3 not in est.delays_ps
    assert max(abs(e) for e in _errors(est)[:3]) <= 10
    assert s.stop == "confirmed" and len(s.trials) == s.signal_at + 2 and stream.taken < stream.total / 2


def test_a_reference_absent_from_the_lead_in_windows():
    """``reference=0`` while the lead-in shows only pixels 1..3: those windows resolve nothing (no
    ConfigError); the link's windows are measured against pixel 0."""
    t, ch, _ = _pass(0, 6, 8)
    rng = np.random.default_rng(1)
    n0 = 2 * W + 500
    bt = np.sort(rng.integers(0, n0 * 50_000, n0)).astype(np.int64)
    t = np.concatenate([bt, t - t[0] + bt[-1] + 1])
    ch = np.concatenate([rng.integers(1, 4, n0).astype(np.int16), ch])
    est = estimate_channel_delays_chunks(_Stream(t, ch, 3333), T, window_tags=W, reference=0)
    s = est.search
    assert s.trials[0].resolved == 0 and s.trials[1].resolved == 0 and s.signal_at >= 2
    assert est.reference == 0 and est.unresolved == () and max(abs(e) for e in _errors(est)) <= 10


def test_bad_parameters_are_named_before_anything_is_read():
    t, ch, _ = _pass(200_000, 0, 9)
    for kw, msg in [({"window_tags": 1}, "window_tags must be an integer >= 2, got 1"),
                    ({"max_windows": 0}, "max_windows must be an integer >= 1, got 0"),
                    ({"stride": 2.0}, "stride must be an integer >= 1, got 2.0"),
                    ({"confirm": -1}, "confirm must be an integer >= 0, got -1"),
                    ({"reference": 1.5}, "reference must be a channel id"),
                    ({"max_delay_ps": 0}, "max_delay_ps must be in"),
                    ({"slot_width_ps": 0}, "slot_width_ps must be a positive number, got 0")]:
        stream = _Stream(t, ch, 1000)
        with pytest.raises(ConfigError, match="estimate_channel_delays_chunks: " + msg):
            estimate_channel_delays_chunks(stream, **{"slot_width_ps": T, **kw})
        assert stream.taken == 0


def test_bad_chunks_and_an_empty_pass():
    with pytest.raises(NoTagsError, match="no tags"):
        estimate_channel_delays_chunks(iter([]), T)
    with pytest.raises(ConfigError, match="no tags"):                  # NoTagsError is a ConfigError
        estimate_channel_delays_chunks([(np.zeros(0, np.int64), np.zeros(0, np.int16))], T)
    ch = np.zeros(2, np.int16)
    with pytest.raises(ShapeError, match=r"tag 2 of the pass is 3 < 5"):           # across chunks
        estimate_channel_delays_chunks([(np.array([1, 5]), ch), (np.array([3, 9]), ch)], T)
    with pytest.raises(ShapeError, match=r"tag 1 of the pass is 0 < 4"):           # within one
        estimate_channel_delays_chunks([(np.array([4, 0]), ch)], T)
    with pytest.raises(ShapeError, match="pair of arrays, got ndarray"):
        estimate_channel_delays_chunks([np.arange(3)], T)
    with pytest.raises(ShapeError, match="integers, got float64"):
        estimate_channel_delays_chunks([(np.array([0.0, 1e-9]), ch)], T)


def test_single_window_estimate_json_is_additive():
    """estimate_channel_delays keeps its result; its JSON gains first_tag, start_ps, search (None)."""
    t, ch, _ = _pass(0, 2, 10)
    j = estimate_channel_delays(t, ch, T).to_json()
    assert list(j)[:7] == ["delays_ps", "reference", "coincidences", "significance", "unresolved", "tags", "span_ps"]
    assert j["first_tag"] == 0 and j["start_ps"] == int(t[0]) and j["search"] is None
    # the whole pass in one window: the same estimate as estimate_channel_delays
    e = estimate_channel_delays_chunks([(t, ch)], T, window_tags=t.size + 1).to_json()
    assert {k: e[k] for k in list(j)[:8]} == {k: j[k] for k in list(j)[:8]}
    assert e["search"]["stop"] == "end_of_pass" and e["search"]["trials"][0]["tags"] == t.size
