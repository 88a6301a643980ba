# SPDX-License-Identifier: Apache-2.0
"""Review of the slot-clock recovery, the soft frame synchroniser and the time-tag simulator: each
test pins a behaviour a ground station relies on (found wrong, or checked at its boundary)."""
import numpy as np
import pytest
from test_slot_clock import ppm_pulses, run

from modem.sync.slot_clock import SlotClockConfig, SlotClockRecovery
from modem.sync.timetags import TimeTagConfig, simulate_time_tags


# ------------------------------------------------------------------------------ slot clock
def test_strong_signal_is_not_a_loss_of_signal():
    """A strong, clean 16-PPM signal (20 detected photons per pulse on 16 channels, no background):
    the photons come in bunches, one per symbol, so the silence between two pulses is up to ~2
    symbol periods whatever the photon rate. The silent-run check (``los_gap`` mean inter-arrival
    times, 1.6 symbols here) declared a loss of signal hundreds of times (583 losses, symbols
    dropped and emitted twice). It must track it as one segment; a real dropout (one block of no
    tags) is still a loss of signal."""
    Mq, Gq = 16, 4
    P = Mq + Gq
    rng = np.random.default_rng(1)
    n = 20000
    p, sym = ppm_pulses(rng, n, Mq, Gq)
    link = TimeTagConfig(slot_width_ps=1000, clock_offset_ppm=100, jitter_rms_ps=50, n_channels=16)
    t = simulate_time_tags(p, 20.0, 0.0, rng, link).t_ps
    rec = SlotClockRecovery(SlotClockConfig(slot_width_ps=1000.0, M=Mq, guard=Gq))
    out, st = run(rec, t)
    assert [e.kind for e in out.events] == ["acquired"] and st.losses == 0
    assert n <= len(out) <= n + 8 and np.all(np.diff(out.sym_index) == 1)
    k = np.flatnonzero(out.counts[:, :Mq].sum(axis=1) > 0)
    first = k[0]
    np.testing.assert_array_equal(out.counts[first:first + n, :Mq].argmax(axis=1), sym)
    # a dropout of one block (every tag removed) is still a loss of signal, re-acquired after it
    blk = rec.cfg.block_symbols * P * 1000.0
    a = float(t[t.size // 2])
    cut = t[(t < a) | (t >= a + blk)]
    out2, st2 = run(rec, cut)
    assert [e.kind for e in out2.events] == ["acquired", "loss_of_signal", "acquired"] and st2.losses == 1
    assert abs(out2.events[1].t_start_ps - a) < P * 1000.0


def test_slot_clock_any_chunking_down_to_single_tags():
    """A stream with a cloud (loss of signal), a dropout (silent run) and a 0.45-slot time-base jump
    (clock jump), at +250 ppm on 4 channels with dead time and dark counts: one tag per push,
    every tag followed by an empty push, and cuts exactly at the tags that complete a block or an
    acquisition window give the one-shot output and state."""
    Mq, Gq = 16, 4
    rng = np.random.default_rng(1)
    p, _ = ppm_pulses(rng, 8000, Mq, Gq)
    link = TimeTagConfig(slot_width_ps=1000, clock_offset_ppm=250, jitter_rms_ps=50, dark_count_rate_hz=1e5,
                         dead_time_ps=20000, n_channels=4, gaps=((40e6, 70e6),), dropouts=((110e6, 110.5e6),))
    t = simulate_time_tags(p, 3.0, 0.02, rng, link).t_ps
    t[t >= 130e6] += 450
    rec = SlotClockRecovery(SlotClockConfig(slot_width_ps=1000.0, M=Mq, guard=Gq))
    ref, st_ref = run(rec, t)
    assert [e.kind for e in ref.events] == ["acquired", "loss_of_signal", "acquired", "loss_of_signal", "acquired",
                                            "clock_jump", "acquired"]
    # the tags at which the one-shot run completes blocks / windows: first tag >= each symbol start
    edges = np.unique(np.searchsorted(t, ref.t_sym_ps[::rec.cfg.block_symbols]))
    for chunks in (np.split(t, np.arange(1, t.size)),
                   [x for c in np.split(t, np.arange(1, t.size)) for x in (c, t[:0])],
                   np.split(t, np.sort(np.concatenate([edges, edges + 1])))):
        out, st = run(rec, None, chunks)
        for f in ("counts", "sym_index", "t_sym_ps", "segment"):
            np.testing.assert_array_equal(getattr(out, f), getattr(ref, f))
        assert out.events == ref.events
        assert (st.period, st.blk_start, st.sym_index, st.losses, st.jumps, st.acquisitions) == \
            (st_ref.period, st_ref.blk_start, st_ref.sym_index, st_ref.losses, st_ref.jumps, st_ref.acquisitions)


# ------------------------------------------------------------------------------ time tags
def test_channel_dead_time_refuses_what_it_would_misread():
    """``apply_channel_dead_time(tags, dead, n_channels)`` with a channel id >= ``n_channels`` read
    past its per-channel table (compiled, unchecked): every tag of channels 2..4 vanished silently
    when ``n_channels=2``. Times and channels of different lengths gave NumPy's IndexError. Both
    are ShapeErrors naming the bad value; a valid call is unchanged."""
    from modem.errors import ShapeError
    from modem.sync.timetags import TimeTags, apply_channel_dead_time
    tags = TimeTags(np.arange(100, dtype=np.int64), (np.arange(100) % 5).astype(np.int16))
    with pytest.raises(ShapeError, match="channel id 4.*n_channels=2"):
        apply_channel_dead_time(tags, 10, n_channels=2)
    with pytest.raises(ShapeError, match=r"\(10,\).*\(5,\)"):
        apply_channel_dead_time(TimeTags(np.arange(10, dtype=np.int64), np.zeros(5, np.int16)), 3)
    d = apply_channel_dead_time(tags, 10, n_channels=5)
    np.testing.assert_array_equal(d.t_ps, np.concatenate([np.arange(0, 100, 10) + c for c in range(5)]).reshape(5, -1)
                                  .T.reshape(-1))
    assert len(apply_channel_dead_time(tags, 10)) == 50


def test_simulated_tags_have_the_statistics_the_model_claims():
    """simulate_time_tags on a seeded run: the counts it claims hold within 5 sigma (Poisson,
    binomial, chi-square on the channel split), the jitter's rms within 3 %, every jitter-free tag
    on its slot centre of the drifting clock (floored to the ps), non-paralyzable dead time per
    channel at its closed-form rate, output int64 / int16, sorted, and within the pass."""
    from scipy import stats
    rng = np.random.default_rng(2024)
    Mq, Gq, n = 16, 4, 50000
    P = Mq + Gq
    p, _ = ppm_pulses(rng, n, Mq, Gq)
    span_ps = n * P * 1000.0
    # signal and background counts, efficiency, channel weights, dark counts per channel
    w = (0.1, 0.2, 0.3, 0.4)
    cfg = TimeTagConfig(slot_width_ps=1000, efficiency=0.5, channel_weights=w, n_channels=4, dark_count_rate_hz=2e5,
                        clock_offset_ppm=-120, drift_ppm_per_s=3e4, t0_ps=-5e3)
    ns, nb = 2.0, 0.01
    tags = simulate_time_tags(p, ns, nb, rng, cfg)
    t, ch = tags.t_ps, tags.channel
    assert t.dtype == np.int64 and ch.dtype == np.int16 and np.all(np.diff(t) >= 0)
    lo, hi = cfg.rx_time(0.0), cfg.rx_time(span_ps)
    assert lo <= t[0] and t[-1] < hi
    mean_sig_bg = 0.5 * (ns * n + nb * n * P)
    mean_dark = 2e5 * (hi - lo) * 1e-12                                     # per channel
    total = mean_sig_bg + 4 * mean_dark
    assert abs(t.size - total) < 5 * np.sqrt(total), (t.size, total)
    per_ch = np.bincount(ch, minlength=4)
    expect = mean_sig_bg * np.asarray(w) + mean_dark
    assert stats.chisquare(per_ch, expect * per_ch.sum() / expect.sum()).pvalue > 1e-4, (per_ch, expect)
    # jitter-free, no background: every tag on its slot centre of the drifting clock
    cfg0 = TimeTagConfig(slot_width_ps=1000, clock_offset_ppm=250, drift_ppm_per_s=5e4, t0_ps=123.0)
    t0 = simulate_time_tags(p, 1.0, 0.0, rng, cfg0).t_ps
    pulsed = np.flatnonzero(p)
    centres = cfg0.rx_time((pulsed + 0.5) * 1000.0)
    k = np.searchsorted(centres, t0 - 500.0)
    assert np.all((t0 - centres[k] > -1.0) & (t0 - centres[k] <= 0.0))
    assert abs(t0.size - n) < 5 * np.sqrt(n)
    # jitter rms
    cfgj = TimeTagConfig(slot_width_ps=1000, jitter_rms_ps=40.0)
    tj = simulate_time_tags(p, 1.0, 0.0, rng, cfgj).t_ps
    cj = (pulsed + 0.5) * 1000.0
    d = tj - cj[np.clip(np.searchsorted(cj, tj - 500.0), 0, cj.size - 1)] + 0.5   # floor's mean -0.5 ps
    assert abs(d.mean()) < 5 * 40.0 / np.sqrt(d.size) and abs(d.std() / 40.0 - 1.0) < 0.03
    # dead time, non-paralyzable per channel: rate r -> r / (1 + r tau) on each of 2 channels
    cfgd = TimeTagConfig(slot_width_ps=1000, dead_time_ps=5000, n_channels=2)
    td = simulate_time_tags(np.zeros(400_000, np.uint8), 0.0, 0.4, rng, cfgd)
    r = 0.2 / 1000.0                                                       # per ps, per channel
    want = 2 * 400_000 * 1000.0 * r / (1 + r * 5000.0)
    assert abs(len(td) - want) < 5 * np.sqrt(want), (len(td), want)
    for c in range(2):
        assert np.diff(td.t_ps[td.channel == c]).min() >= 5000


# ------------------------------------------------------------------------------ frame sync
def _frames_with_marker_errors(rng, errors, fl=256, lead=77):
    """Noiseless LLR stream (|L| = 8) of frames whose markers carry ``errors[k]`` flipped bits (the
    first ones), a random lead and tail; returns (llr, marker offsets)."""
    from modem.sync import ASM_BITS
    parts = [rng.integers(0, 2, lead, dtype=np.uint8)]
    offs = []
    pos = lead
    for e in errors:
        mk = ASM_BITS.copy()
        mk[:e] ^= 1
        parts += [mk, rng.integers(0, 2, fl, dtype=np.uint8)]
        offs.append(pos)
        pos += 32 + fl
    parts.append(rng.integers(0, 2, 64, dtype=np.uint8))
    return 8.0 * (1.0 - 2.0 * np.concatenate(parts)), np.array(offs)


def _sync_run(sync, llr, cuts=()):
    from modem.sync import SyncedFrames
    st = sync.initial_state()
    parts = []
    for c in np.split(llr, cuts):
        f, st = sync.push(c, st)
        parts.append(f)
    return SyncedFrames.concat(parts), st


def test_frame_sync_state_machine_at_exactly_its_thresholds():
    """Hard rule, search_max_errors 1, lock_max_errors 3, check_count 1, flywheel 2: a marker with
    exactly the allowed errors passes, one more error fails, at every state: 2 errors no SEARCH hit,
    1 a hit; 3 confirms (LOCK); 4 twice = 2 flywheel frames, 3 back to LOCK; 4 three times = 2
    flywheel frames then SEARCH (lock lost, nothing emitted for the third); then a clean
    re-acquisition. Any chunking, down to one LLR per push, gives the same frames and state."""
    from modem.sync import ASMFrameSync, FrameSyncConfig, SyncMode
    rng = np.random.default_rng(7)
    errors = [2, 1, 3, 4, 4, 3, 4, 4, 4, 0, 0, 0]
    L, offs = _frames_with_marker_errors(rng, errors)
    sync = ASMFrameSync(FrameSyncConfig(frame_len=256, rule="hard", search_max_errors=1, lock_max_errors=3,
                                        check_count=1, flywheel=2))
    fr, st = _sync_run(sync, L)
    F, Lk = int(SyncMode.FLYWHEEL), int(SyncMode.LOCK)
    want = [(2, Lk), (3, F), (4, F), (5, Lk), (6, F), (7, F), (10, Lk), (11, Lk)]
    np.testing.assert_array_equal(fr.offset, offs[[k for k, _ in want]])
    np.testing.assert_array_equal(fr.state, [s for _, s in want])
    np.testing.assert_array_equal(fr.metric, [-errors[k] for k, _ in want])   # flywheel: at the expected place
    assert (st.frames_found, st.missed, st.locks, st.lock_losses, st.false_locks) == (4, 4, 2, 1, 0)
    for cuts in (np.arange(1, L.size), [offs[3] + 1, offs[3] + 31, offs[5] + 16, offs[9] + 300]):
        fr2, st2 = _sync_run(sync, L, cuts)
        for f in ("llr", "offset", "metric", "inverted", "state"):
            np.testing.assert_array_equal(getattr(fr2, f), getattr(fr, f))
        assert st2.same_as(st)


def test_frame_sync_massey_threshold_is_inclusive():
    """Massey rule: a marker whose metric equals ``lock_threshold`` exactly is found (LOCK); with the
    threshold one ulp above it, it is missed (FLYWHEEL); ``search_threshold`` likewise for SEARCH."""
    from modem.sync import ASMFrameSync, FrameSyncConfig, SyncMode, massey_metric
    rng = np.random.default_rng(8)
    L, offs = _frames_with_marker_errors(rng, [0, 0, 0, 0, 0, 0])
    L[offs[4]:offs[4] + 9] = 0.0                                 # 9 marker bits erased
    m = float(massey_metric(L[offs[4]:offs[4] + 32])[0][0])
    assert 10 < m < 20
    for thr, state in ((m, SyncMode.LOCK), (np.nextafter(m, np.inf), SyncMode.FLYWHEEL)):
        fr, _ = _sync_run(ASMFrameSync(FrameSyncConfig(frame_len=256, check_count=0, lock_threshold=thr)), L)
        np.testing.assert_array_equal(fr.offset, offs)
        assert fr.state[4] == state and fr.metric[4] == m
    L2 = L.copy()
    L2[offs[0]:offs[0] + 9] = 0.0                               # the first marker: the SEARCH hit or not
    for thr, first in ((m, 0), (np.nextafter(m, np.inf), 1)):
        fr, _ = _sync_run(ASMFrameSync(FrameSyncConfig(frame_len=256, check_count=0, search_threshold=thr,
                                                       lock_threshold=0.0)), L2)
        np.testing.assert_array_equal(fr.offset, offs[first:])


def test_simulated_times_beyond_int64_are_refused():
    """A pass whose receiver times do not fit int64 ps (t0_ps = 1.7e21: ps since 1970) came back as
    int64 garbage, every tag -2**63 (a NumPy cast warning only): a ConfigError naming t0_ps and the
    time now. Times within int64 are unchanged."""
    from modem.errors import ConfigError
    p = np.zeros(200, np.uint8)
    p[::20] = 1
    for t0 in (1.7e21, -1e19):
        with pytest.raises(ConfigError, match=r"int64.*t0_ps"):
            simulate_time_tags(p, 2.0, 0.01, 0, TimeTagConfig(t0_ps=t0))
    t = simulate_time_tags(p, 2.0, 0.0, 0, TimeTagConfig(t0_ps=4e15)).t_ps
    assert t.dtype == np.int64 and t.size > 0 and t.min() >= 4e15 and t.max() < 4e15 + 200e3


@pytest.mark.parametrize("frac", [0.05, 0.2])
def test_stream_ending_early_in_a_block_keeps_its_last_symbols(frac):
    """The last, partial block at flush was judged weak against a whole block's photons: with
    ``flywheel_blocks=0`` a stream ending in the first quarter of a block lost its last symbols
    (up to 64) and reported a loss of signal that never happened. Its threshold is now scaled to
    the symbols it holds: they come out, no event; the same with the default flywheel."""
    Mq, Gq = 16, 4
    P = Mq + Gq
    rng = np.random.default_rng(3)
    p, _ = ppm_pulses(rng, 8100, Mq, Gq)
    t = simulate_time_tags(p, 3.0, 0.01, rng, TimeTagConfig(slot_width_ps=1000, clock_offset_ppm=100,
                                                            jitter_rms_ps=50, n_channels=2)).t_ps
    for fw in (0, 4):
        rec = SlotClockRecovery(SlotClockConfig(slot_width_ps=1000.0, M=Mq, guard=Gq, flywheel_blocks=fw))
        _, st = rec.push(t, rec.initial_state())
        end = st.blk_start + frac * rec.cfg.block_symbols * P * 1000.0
        out, st2 = run(rec, t[t < end])
        assert st2.losses == 0 and [e.kind for e in out.events] == ["acquired"]
        n_tail = np.count_nonzero(out.t_sym_ps > st.blk_start - 1.0)
        assert abs(n_tail - frac * rec.cfg.block_symbols) <= 1, n_tail


def test_overlapping_segments_are_refused():
    """Segments ``[(first_slot, pulses), ...]`` that share transmitter slots were simulated on top of
    each other (both pulse streams and twice the background in the shared slots): a ConfigError
    naming both segments. Segments in any order that do not overlap are fine."""
    from modem.errors import ConfigError
    p = np.zeros(100, np.uint8)
    p[::20] = 1
    with pytest.raises(ConfigError, match=r"segments 0 and 1 overlap.*\[0, 100\).*\[60, 160\)"):
        simulate_time_tags([(0, p), (60, p)], 1.0, 0.1, 0, TimeTagConfig())
    with pytest.raises(ConfigError, match=r"overlap"):
        simulate_time_tags([(500, p), (0, p), (450, p)], 1.0, 0.1, 0, TimeTagConfig())
    with pytest.raises(ConfigError, match=r"segments 0 and 2 overlap"):
        simulate_time_tags([(0, p), (50, p[:0]), (60, p)], 1.0, 0.1, 0, TimeTagConfig())
    a = simulate_time_tags([(100, p), (0, p)], 1.0, 0.0, 1, TimeTagConfig())
    assert a.t_ps.size > 0 and np.all(np.diff(a.t_ps) >= 0)


@pytest.mark.parametrize("drop_us", [0.5, 2.0, 20.0])
def test_symbol_count_continues_across_a_short_dropout(drop_us):
    """``sym_index`` continues across a loss of signal by the elapsed symbols. After a dropout
    shorter than a tracking block (a silent-run loss of signal: the signal is back inside the same
    block) the count was advanced to the block's end, then by nothing: 108 symbols too many after
    0.5 us (25 symbols), 34 after 2 us. It is now within one symbol, as after a long one."""
    Mq, Gq = 16, 4
    P = Mq + Gq
    rng = np.random.default_rng(1)
    n = 12000
    p, _ = ppm_pulses(rng, n, Mq, Gq)
    link = TimeTagConfig(slot_width_ps=1000, clock_offset_ppm=250, jitter_rms_ps=50, n_channels=4,
                         dropouts=((110e6, 110e6 + drop_us * 1e6),))
    t = simulate_time_tags(p, 3.0, 0.02, np.random.default_rng(2), link).t_ps
    out, _ = run(SlotClockRecovery(SlotClockConfig(slot_width_ps=1000.0, M=Mq, guard=Gq)), t)
    assert [e.kind for e in out.events] == ["acquired", "loss_of_signal", "acquired"]
    true = link.rx_time(np.arange(-8, n) * P * 1000.0)
    k = np.searchsorted(true, out.t_sym_ps - 0.5 * P * 1000.0)
    assert np.abs(out.t_sym_ps - true[k]).max() < 60.0
    d = (out.sym_index - out.sym_index[0]) - (k - k[0])
    assert np.abs(d).max() <= 1, np.unique(d)
