# SPDX-License-Identifier: Apache-2.0
"""Time-tag simulator and slot/symbol clock recovery: acquisition over +-300 ppm, tracking with
drift, dead time and dark counts, loss of signal and re-acquisition, chunking invariance, bad input."""
from math import nan

import numpy as np
import pytest

from modem.errors import ConfigError, ShapeError
from modem.sync.slot_clock import ClockMode, SlotClockConfig, SlotClockRecovery, SlotCounts
from modem.sync.timetags import (TimeTagConfig, TimeTags, apply_channel_dead_time, merge_channels,
                                 simulate_time_tags)

M, G = 16, 4
P = M + G


def ppm_pulses(rng, n_sym, m=M, g=G):
    sym = rng.integers(0, m, n_sym)
    p = np.zeros((n_sym, m + g), dtype=np.uint8)
    p[np.arange(n_sym), sym] = 1
    return p.reshape(-1), sym


def run(rec, t, chunks=None):
    st = rec.initial_state()
    outs = []
    if chunks is None:
        chunks = [t]
    for ch in chunks:
        o, st = rec.push(ch, st)
        outs.append(o)
    o, st = rec.flush(st)
    outs.append(o)
    return SlotCounts.concat(outs, P), st


def truth_starts(cfg, n_sym, first_sym=0):
    return cfg.rx_time((first_sym + np.arange(n_sym)) * P * cfg.slot_width_ps)


def check_alignment(out, cfg, sym, n_sym, tol_ps):
    """Every emitted symbol lies on a true symbol boundary (within tol) and its counts peak on the
    sent PPM slot; returns the tx symbol indices."""
    true = truth_starts(cfg, n_sym)
    k = np.clip(np.searchsorted(true, out.t_sym_ps - 0.5 * P * cfg.slot_width_ps), 0, n_sym - 1)
    err = np.abs(out.t_sym_ps - true[k])
    assert err.max() < tol_ps, err.max()
    hit = out.counts[:, :M].sum(axis=1) > 0
    dec = out.counts[:, :M].argmax(axis=1)
    ser = np.mean(dec[hit] != sym[k[hit]])
    assert ser < 0.2, ser                                          # misaligned: ~0.94
    return k


# ------------------------------------------------------------------------------------ simulator
def test_timetags_model():
    rng = np.random.default_rng(0)
    pulses, _ = ppm_pulses(rng, 20000)
    cfg = TimeTagConfig(slot_width_ps=1000, clock_offset_ppm=100, jitter_rms_ps=30, dark_count_rate_hz=2e5,
                        dead_time_ps=15000, n_channels=3, gaps=((100e6, 200e6),), dropouts=((300e6, 310e6),))
    tags = simulate_time_tags(pulses, 2.0, 0.01, rng, cfg)
    t, ch = tags.t_ps, tags.channel
    assert t.dtype == np.int64 and ch.dtype == np.int16 and np.all(np.diff(t) >= 0)
    assert set(np.unique(ch)) == {0, 1, 2}
    for c in range(3):                                            # per-channel dead time
        assert np.diff(t[ch == c]).min() >= 15000
    in_gap = (t >= 100e6) & (t < 200e6)
    assert 0 < in_gap.sum() < 60                                  # only darks (expected ~60 before dead time)
    assert not np.any((t >= 300e6) & (t < 310e6))                 # dropout: nothing
    # without dead time the signal sits on slot centres of the offset clock
    cfg2 = TimeTagConfig(slot_width_ps=1000, clock_offset_ppm=100)
    tags2 = simulate_time_tags(pulses[:2000], 5.0, 0.0, 1, cfg2)
    tau = (tags2.t_ps + 0.5) / (1 + 100e-6)                       # back to transmitter time
    frac = tau / 1000.0 - np.floor(tau / 1000.0)
    assert np.all(np.abs(frac - 0.5) < 0.01)
    idx = np.floor(tau / 1000.0).astype(int)
    assert np.all(pulses[idx] == 1)


def test_timetags_helpers_and_errors():
    m = merge_channels([np.array([5, 9]), np.array([1, 9, 12])])
    np.testing.assert_array_equal(m.t_ps, [1, 5, 9, 9, 12])
    np.testing.assert_array_equal(m.channel, [1, 0, 0, 1, 1])
    d = apply_channel_dead_time(m, 5)
    # ch1: 1 kept, 9 kept, 12 lost (< 9 + 5); ch0: 5 kept, 9 lost (< 5 + 5)
    np.testing.assert_array_equal(d.t_ps, [1, 5, 9])
    np.testing.assert_array_equal(d.channel, [1, 0, 1])
    with pytest.raises(ShapeError, match="t_ps\\[1\\]=3"):
        apply_channel_dead_time(TimeTags(np.array([5, 3]), np.array([0, 0], np.int16)), 1)
    for kw in ({"slot_width_ps": 0}, {"clock_offset_ppm": float("nan")}, {"n_channels": 0},
               {"efficiency": 1.5}, {"gaps": ((5, 1),)}, {"channel_weights": (1.0,), "n_channels": 2},
               {"resolution_ps": 0}):
        with pytest.raises(ConfigError):
            TimeTagConfig(**kw)
    with pytest.raises(ShapeError, match="dtype"):
        simulate_time_tags(np.array([0.5, 1.0]), 1.0, 0.1, 0, TimeTagConfig())
    with pytest.raises(ConfigError, match="ns"):
        simulate_time_tags(np.array([0, 1], np.uint8), -1.0, 0.1, 0, TimeTagConfig())


def test_dead_time_semantics():
    tags = TimeTags(np.array([0, 3, 4, 6, 10, 11], np.int64), np.array([0, 0, 1, 0, 0, 1], np.int16))
    d = apply_channel_dead_time(tags, 5)
    # ch0: 0 kept, 3 lost, 6 kept (>= 5 after 0), 10 lost (< 11); ch1: 4, 11 kept
    np.testing.assert_array_equal(d.t_ps, [0, 4, 6, 11])


# ------------------------------------------------------------------------------------ recovery
@pytest.mark.parametrize("ppm", [-280.0, -200.0, 0.0, 150.0, 200.0, 290.0])
def test_acquire_and_track_offsets(ppm):
    rng = np.random.default_rng(int(ppm) + 1000)
    n_sym = 12000
    pulses, sym = ppm_pulses(rng, n_sym)
    cfg = TimeTagConfig(slot_width_ps=1000, clock_offset_ppm=ppm, drift_ppm_per_s=200.0, jitter_rms_ps=50,
                        dark_count_rate_hz=1e5, dead_time_ps=20000, n_channels=4, t0_ps=777)
    tags = simulate_time_tags(pulses, 3.0, 0.02, rng, cfg)
    rec = SlotClockRecovery(SlotClockConfig.from_code(_code16(), 1000.0))
    out, st = run(rec, tags.t_ps)
    assert [e.kind for e in out.events] == ["acquired"]
    assert abs(out.events[0].info["offset_ppm"] - ppm) < 2.0
    assert st.mode == ClockMode.TRACK and st.slips == 0 and st.losses == 0
    k = check_alignment(out, cfg, sym, n_sym, tol_ps=60.0)
    assert np.all(np.diff(k) == 1) and np.all(np.diff(out.sym_index) == 1)
    assert len(out) > n_sym - 1100                                 # at most ~one window lost at the start
    true_T = cfg.slot_period_at(n_sym * P * 1000.0)
    assert abs(st.period / true_T - 1) < 0.2e-6


def test_500ps_slots_jitter():
    rng = np.random.default_rng(5)
    n_sym = 8000
    pulses, sym = ppm_pulses(rng, n_sym)
    cfg = TimeTagConfig(slot_width_ps=500, clock_offset_ppm=-150, drift_ppm_per_s=-100, jitter_rms_ps=50,
                        dark_count_rate_hz=5e4, dead_time_ps=10000, n_channels=8)
    tags = simulate_time_tags(pulses, 2.0, 0.01, rng, cfg)
    rec = SlotClockRecovery(SlotClockConfig(slot_width_ps=500.0, M=M, guard=G))
    out, st = run(rec, tags.t_ps)
    check_alignment(out, cfg, sym, n_sym, tol_ps=30.0)


def test_noise_only_never_acquires():
    rng = np.random.default_rng(9)
    cfg = TimeTagConfig(slot_width_ps=1000, dark_count_rate_hz=1e6, n_channels=2)
    tags = simulate_time_tags(np.zeros(2_000_000, np.uint8), 0.0, 0.05, rng, cfg)
    rec = SlotClockRecovery(SlotClockConfig(slot_width_ps=1000.0, M=M, guard=G))
    out, st = run(rec, tags.t_ps)
    assert len(out) == 0 and not out.events and st.acquisitions == 0 and st.failed_windows > 50


def test_acquisition_under_strong_background():
    """64-PPM at nb = 0.1 background photons per slot and ns = 1.8 (near the decoder's threshold):
    the guard holds ~0.8 of the mean photons per slot position, so the ratio rule alone (0.5)
    refuses every window, while the guard deficit is 6-9 Poisson sigma deep. The z-test acquires
    the clock offset and the slot phase; noise alone at that background (no signal) and at
    5x it still never acquires."""
    rng = np.random.default_rng(64)
    Mq, Gq, n_sym = 64, 16, 6000
    sym = rng.integers(0, Mq, n_sym)
    p = np.zeros((n_sym, Mq + Gq), np.uint8)
    p[np.arange(n_sym), sym] = 1
    link = TimeTagConfig(slot_width_ps=1000, clock_offset_ppm=-180, jitter_rms_ps=50, t0_ps=5000)
    t = simulate_time_tags(p.reshape(-1), 1.8, 0.1, rng, link).t_ps
    cfg = SlotClockConfig(slot_width_ps=1000.0, M=Mq, guard=Gq)
    rec = SlotClockRecovery(cfg)
    a = rec.acquire(t[t < t[0] + cfg.acq_window_ps], float(t[0]))
    assert a is not None and a["guard_ratio"] > 0.7 and a["guard_z"] >= cfg.acq_guard_z
    assert a["offset_ppm"] == pytest.approx(-180, abs=3)
    PT = (Mq + Gq) * link.slot_width_ps * (1 + a["offset_ppm"] * 1e-6)
    d = ((a["t_sym"] - link.t0_ps) / PT) % 1.0
    # on a slot edge, a symbol boundary or (a shallow guard) a few slots from one: within the
    # codeword synchroniser's slot search (CodewordSyncConfig.slot_search, guard // 2); here 1 slot
    off = min(d, 1 - d) * (Mq + Gq)
    assert abs(off - round(off)) < 0.2 and round(off) <= Gq // 2
    ratio_only = SlotClockRecovery(SlotClockConfig(slot_width_ps=1000.0, M=Mq, guard=Gq, acq_guard_z=1e6))
    assert ratio_only.acquire(t[t < t[0] + cfg.acq_window_ps], float(t[0])) is None
    for nb in (0.1, 0.5):
        noise = simulate_time_tags(np.zeros(n_sym * (Mq + Gq), np.uint8), 0.0, nb, rng, link).t_ps
        out, st = run(rec, noise)
        assert len(out) == 0 and st.acquisitions == 0 and st.failed_windows >= 4


@pytest.mark.parametrize("Mq, slot_ps, max_ppm", [(16, 1000.0, 300.0), (128, 1000.0, 300.0), (64, 500.0, 1000.0),
                                                  (16, 250.0, 50.0)])
def test_tone_bound_tracks_the_exact_periodogram(Mq, slot_ps, max_ppm):
    """The FFT estimate that lets acquisition skip windows of noise stays within a few percent of
    the exact candidate search's peak (>= 0.9 of it: the skip threshold is 0.5 acq_min_power), on
    noise, weak and strong signal, any offset in the search range."""
    import math
    import numba
    from modem.sync.slot_clock import _tone, _tone_bound
    rng = np.random.default_rng(Mq)
    Gq = Mq // 4
    cfg = SlotClockConfig(slot_width_ps=slot_ps, M=Mq, guard=Gq, max_offset_ppm=max_ppm)
    W = cfg.acq_window_ps
    ratios = []
    for ns in (0.0, 0.05, 0.3, 2.0):
        p, _ = ppm_pulses(rng, 3 * cfg.acq_symbols, Mq, Gq)
        link = TimeTagConfig(slot_width_ps=slot_ps, clock_offset_ppm=float(rng.uniform(-max_ppm, max_ppm)),
                             jitter_rms_ps=0.05 * slot_ps)
        t = simulate_time_tags(p, ns, 0.05, rng, link).t_ps
        for a in (t[0], t[0] + W):
            x = (t[(t >= a) & (t < a + W)] - a).astype(np.float64)
            step = slot_ps / (4 * W)
            K = int(math.ceil(max_ppm * 1e-6 / step))
            f = 1.0 / (slot_ps * (1.0 + np.arange(-K, K + 1) * step))
            exact = float((np.abs(_tone(x, f, numba.get_num_threads())) ** 2 / x.size).max())
            ratios.append(_tone_bound(x, slot_ps, W, max_ppm) / exact)
    assert 0.9 < min(ratios) and max(ratios) < 1.2, ratios


def gap_stream(seed=3):
    rng = np.random.default_rng(seed)
    n_sym = 20000
    pulses, sym = ppm_pulses(rng, n_sym)
    gap = (150e6, 300e6)                                     # 150 us cloud in a 400 us stream (20 ns symbols)
    cfg = TimeTagConfig(slot_width_ps=1000, clock_offset_ppm=150, drift_ppm_per_s=500, jitter_rms_ps=50,
                        dark_count_rate_hz=2e5, dead_time_ps=20000, n_channels=4, gaps=(gap,))
    tags = simulate_time_tags(pulses, 3.0, 0.02, rng, cfg)
    return tags, cfg, sym, n_sym, gap


def test_loss_of_signal_and_reacquisition():
    tags, cfg, sym, n_sym, gap = gap_stream()
    c = SlotClockConfig(slot_width_ps=1000.0, M=M, guard=G)
    rec = SlotClockRecovery(c)
    out, st = run(rec, tags.t_ps)
    kinds = [e.kind for e in out.events]
    assert kinds == ["acquired", "loss_of_signal", "acquired"], kinds
    los = out.events[1]
    blk = c.block_symbols * P * 1000.0
    # loss reported from where the signal ends (to 1/16 block) to where it returns (to 1/32 window)
    assert gap[0] - blk / 16 <= los.t_start_ps <= gap[0] + blk / 16, los
    assert gap[1] - c.acq_window_ps / 32 <= los.t_end_ps <= gap[1] + c.acq_window_ps / 32, los
    seg = out.segment
    assert set(seg.tolist()) == {0, 1}
    # no symbols inside the cloud except the flywheel blocks; everything emitted is aligned
    inside = (out.t_sym_ps > gap[0] + (c.flywheel_blocks + 1) * blk) & (out.t_sym_ps < gap[1] - c.acq_window_ps / 32)
    assert not inside.any()
    check_alignment(out, cfg, sym, n_sym, tol_ps=60.0)
    # re-lock: the first symbol of segment 1 within one acquisition window after the cloud
    t1 = out.t_sym_ps[seg == 1][0]
    assert gap[1] - c.acq_window_ps / 32 <= t1 <= gap[1] + c.acq_window_ps / 32 + P * 1000
    # the symbol count continues over the gap (approximately the elapsed symbols)
    true = truth_starts(cfg, n_sym)
    k0 = np.searchsorted(true, out.t_sym_ps[0] - 10000)
    k1 = np.searchsorted(true, t1 - 10000)
    i1 = out.sym_index[seg == 1][0]
    assert abs((i1 - out.sym_index[0]) - (k1 - k0)) <= 2


def test_chunked_equals_one_shot():
    tags, cfg, sym, n_sym, gap = gap_stream(seed=4)
    rec = SlotClockRecovery(SlotClockConfig(slot_width_ps=1000.0, M=M, guard=G))
    ref, st_ref = run(rec, tags.t_ps)
    rng = np.random.default_rng(1)
    t = tags.t_ps
    for trial in range(3):
        cuts = np.sort(rng.integers(0, t.size, size=[5, 60, 400][trial]))
        cuts = np.concatenate([cuts, cuts[:3]])              # repeated cuts -> empty chunks
        cuts.sort()
        chunks = np.split(t, cuts)
        if trial == 2:
            chunks = chunks + [t[:0]] + [np.array([], dtype=np.int64)]
        out, st = run(rec, None, chunks)
        np.testing.assert_array_equal(out.counts, ref.counts)
        np.testing.assert_array_equal(out.sym_index, ref.sym_index)
        np.testing.assert_array_equal(out.t_sym_ps, ref.t_sym_ps)
        np.testing.assert_array_equal(out.segment, ref.segment)
        assert out.events == ref.events
        assert st.period == st_ref.period and st.blk_start == st_ref.blk_start
    # a TimeTags object is accepted too
    out, _ = run(rec, None, [tags])
    np.testing.assert_array_equal(out.counts, ref.counts)
    # an empty chunk on a fresh state gives empty output and leaves the state untouched
    st0 = rec.initial_state()
    o, st1 = rec.push(np.zeros(0, np.int64), st0)
    assert len(o) == 0 and not o.events and st1.buf.size == 0


def test_push_does_not_mutate_state():
    tags, *_ = gap_stream(seed=5)
    rec = SlotClockRecovery(SlotClockConfig(slot_width_ps=1000.0, M=M, guard=G))
    t = tags.t_ps
    _, s1 = rec.push(t[: t.size // 3], rec.initial_state())
    snap = (s1.mode, s1.buf.copy(), s1.blk_start, s1.period, s1.sym_index, s1.rate)
    o_a, _ = rec.push(t[t.size // 3:], s1)
    o_b, _ = rec.push(t[t.size // 3:], s1)                        # same state, same result
    assert (s1.mode, s1.blk_start, s1.period, s1.sym_index, s1.rate) == (snap[0], *snap[2:])
    np.testing.assert_array_equal(s1.buf, snap[1])
    np.testing.assert_array_equal(o_a.counts, o_b.counts)


def test_bad_input_errors():
    rec = SlotClockRecovery(SlotClockConfig(slot_width_ps=1000.0, M=M, guard=G))
    st = rec.initial_state()
    with pytest.raises(ShapeError, match=r"t_ps\[2\]=7 < t_ps\[1\]=9"):
        rec.push(np.array([1, 9, 7], np.int64), st)
    _, st2 = rec.push(np.array([100, 200], np.int64), st)
    with pytest.raises(ShapeError, match="t_ps\\[0\\]=150 < last tag of the previous chunk 200"):
        rec.push(np.array([150], np.int64), st2)
    with pytest.raises(ShapeError, match="integer"):
        rec.push(np.array([1.0, 2.0]), st)
    with pytest.raises(ShapeError, match="1-D"):
        rec.push(np.zeros((2, 2), np.int64), st)
    for kw in ({"slot_width_ps": -1.0}, {"guard": 0}, {"max_offset_ppm": -1}, {"kp": 2.0}, {"block_symbols": 0}):
        args = dict(slot_width_ps=1000.0, M=M, guard=G)
        args.update(kw)
        with pytest.raises(ConfigError):
            SlotClockConfig(**args)
    with pytest.raises(ConfigError):
        SlotClockRecovery("not a config")


def _code16():
    from modem.fec.scppm import SCPPMCode
    return SCPPMCode(M=16, rate="1/2")


# ------------------------------------------------------------- recorded outputs (compiled loop)
def _thin(t, rng, a, b, keep):
    m = (t >= a) & (t < b)
    return t[~m | (rng.random(t.size) < keep)]


def _recorded_scenario(name):
    """(SlotClockConfig, int64 tags, chunk cuts) of a stream that visits every tracking path: weak
    blocks on the flywheel, loss of signal from a fade (weak blocks) and from silent runs (gap
    check), clock jumps by phase and by guard position, guard-monitor slips, a partial last block."""
    rng = np.random.default_rng({"m16": 11, "m128": 12, "m16b": 13}[name])
    if name == "m128":
        Mq, Gq, n_sym, ns, nb = 128, 32, 8000, 4.0, 0.1
        link = TimeTagConfig(slot_width_ps=1000, clock_offset_ppm=-35, drift_ppm_per_s=5, jitter_rms_ps=80,
                             dark_count_rate_hz=1e5, dead_time_ps=10000, n_channels=16)
        cfg = SlotClockConfig(slot_width_ps=1000.0, M=Mq, guard=Gq, acq_max_guard_ratio=0.9)
    elif name == "m16b":                  # no jump detection: the guard monitor slips instead
        Mq, Gq, n_sym, ns, nb = 16, 4, 60000, 3.0, 0.01
        link = TimeTagConfig(slot_width_ps=500, clock_offset_ppm=260, drift_ppm_per_s=-400, jitter_rms_ps=40,
                             dark_count_rate_hz=5e4, dead_time_ps=10000, n_channels=8)
        cfg = SlotClockConfig(slot_width_ps=500.0, M=Mq, guard=Gq, block_symbols=512, kp=0.4, ki=0.05,
                              guard_smoothing=0.5, jump_detect=False, flywheel_blocks=2, los_gap=1000.0)
    else:
        Mq, Gq, n_sym, ns, nb = 16, 4, 60000, 3.0, 0.02
        link = TimeTagConfig(slot_width_ps=1000, clock_offset_ppm=-230, drift_ppm_per_s=300, jitter_rms_ps=60,
                             dark_count_rate_hz=1e5, dead_time_ps=20000, n_channels=4, t0_ps=12345)
        cfg = SlotClockConfig(slot_width_ps=1000.0, M=Mq, guard=Gq)
    Pq = Mq + Gq
    sym = rng.integers(0, Mq, n_sym)
    p = np.zeros((n_sym, Pq), np.uint8)
    p[np.arange(n_sym), sym] = 1
    t = simulate_time_tags(p.reshape(-1), ns, nb, rng, link).t_ps
    span = float(t[-1] - t[0])
    blk = cfg.block_symbols * Pq * cfg.slot_width_ps

    def at(f):
        return t[0] + f * span

    t = _thin(t, rng, at(0.12), at(0.12) + 2.5 * blk, 0.2)           # a short fade: weak blocks, flywheel
    t = _thin(t, rng, at(0.22), at(0.22) + 12 * blk, 0.15)           # a long fade: loss of signal
    t = t[(t < at(0.33)) | (t >= at(0.33) + 3 * blk)]                # a dropout: silent run
    t = t.copy()
    t[t >= at(0.45)] += int(0.45 * cfg.slot_width_ps)                 # phase jump (0.45 slot)
    t[t >= at(0.6)] += int(7 * cfg.slot_width_ps)                     # guard moved by 7 slots
    t[t >= at(0.75)] += int(Pq * cfg.slot_width_ps * 3)               # whole symbols (invisible)
    t[t >= at(0.85)] += int(2 * cfg.slot_width_ps)                    # 2 slots
    t = np.sort(t)
    cuts = np.sort(np.random.default_rng(7).integers(0, t.size, 25))
    return cfg, t, cuts


def _digest(out, st) -> dict:
    """Integers exactly (counts, symbol numbers, segments as a hash; event kinds and info keys;
    the loop's counters); floating-point values (symbol times at a stride, event times and info,
    loop state) as numbers compared to 1e-11 relative, so that a one-ulp difference of the
    platform's libm cannot fail the test while any change of the algorithm does."""
    import hashlib

    def h(*arrays):
        return hashlib.sha256(b"".join(np.ascontiguousarray(a).tobytes() for a in arrays)).hexdigest()[:16]

    # the acquisition's ``guard_z`` diagnostic came after the recording (its acceptance rule only
    # widened, so every recorded acquisition is unchanged): left out here, checked on its own
    events = [type(e)(e.kind, e.t_start_ps, e.t_end_ps, {k: v for k, v in e.info.items() if k != "guard_z"})
              for e in out.events]

    ts = out.t_sym_ps
    return {"n": len(out), "counts": h(out.counts, out.sym_index, out.segment),
            "kinds": " ".join(e.kind for e in events),
            "info_keys": [sorted(e.info) for e in events],
            "info_text": [repr(e.info[k]) for e in events for k in sorted(e.info)
                          if not isinstance(e.info[k], (int, float, np.integer, np.floating))],
            "ints": [int(st.sym_index), int(st.losses), int(st.jumps), int(st.slips)],
            "floats": [float(x) for x in ts[::997]] + ([float(ts[-1])] if len(ts) else [])
            + [float("nan") if v is None else float(v) for e in events for v in (e.t_start_ps, e.t_end_ps)]
            + [float(e.info[k]) for e in events for k in sorted(e.info)
               if isinstance(e.info[k], (int, float, np.integer, np.floating))]
            + [float(st.period), float(st.blk_start), float(st.rate), float(st.bad0)]}


#: outputs of the NumPy implementation of the tracking loop and acquisition periodogram (commit
#: 1ea84fe, replaced by the compiled loop, which reproduced them bit for bit on the development
#: machine): counts / symbol numbers / segments, every event, the loop's counters, and the
#: floating-point values (symbol times at a stride, event times and info, final loop state)
RECORDED = {'m128': {'n': 5956,
          'counts': '9469a8bc6bc7b813',
          'kinds': 'acquired loss_of_signal acquired loss_of_signal acquired loss_of_signal acquired',
          'info_keys': [['guard_ratio', 'offset_ppm', 'period', 'power', 'rate_per_ps', 'segment',
                         't_onset', 't_sym'],
                        [],
                        ['guard_ratio', 'offset_ppm', 'period', 'power', 'rate_per_ps', 'segment',
                         't_onset', 't_sym'],
                        [],
                        ['guard_ratio', 'offset_ppm', 'period', 'power', 'rate_per_ps', 'segment',
                         't_onset', 't_sym'],
                        [],
                        ['guard_ratio', 'offset_ppm', 'period', 'power', 'rate_per_ps', 'segment',
                         't_onset', 't_sym']],
          'info_text': [],
          'ints': [8188, 3, 0, 0],
          'floats': [159987.65363576103, 159834448.651684, 319348792.37963474, 805897239.9403682,
                     965573652.8968309, 1125088081.1779628, 1280282669.2871368, 159987.65363576103, nan,
                     156472623.0, 156837451.0, 156954550.8020607, nan, 422366737.0, 770677453.0,
                     770698466.9344784, nan, 959946658.0, 960445585.0, 960453831.729802, nan,
                     0.8271885568553529, -35.00171631654059, 999.9649982836835, 468.682083777011,
                     0.00011009521484375, 0.0, 958.0, 159987.65363576103, 0.8625084976206663,
                     -35.46888079897226, 999.9645311192011, 126.47055658160996, 3.5919189453125e-05, 1.0,
                     156837451.0, 156954550.8020607, 0.8425535302077529, -34.85778722300825,
                     999.965142212777, 320.04094282433846, 0.00011248046875, 2.0, 770677453.0,
                     770698466.9344784, 0.8270676691729324, -34.92831466322954, 999.9650716853367,
                     469.5328926486003, 0.000115277099609375, 3.0, 960445585.0, 960453831.729802,
                     999.9650752049638, 1288122389.617004, 4617.92506663811, 0.5884968434900545]},
 'm16': {'n': 59322,
         'counts': '6e7c4c0d2c1e94b3',
         'kinds': 'acquired loss_of_signal acquired loss_of_signal acquired clock_jump acquired clock_jump '
                  'acquired clock_jump acquired',
         'info_keys': [['guard_ratio', 'offset_ppm', 'period', 'power', 'rate_per_ps', 'segment', 't_onset',
                        't_sym'],
                       [],
                       ['guard_ratio', 'offset_ppm', 'period', 'power', 'rate_per_ps', 'segment', 't_onset',
                        't_sym'],
                       [],
                       ['guard_ratio', 'offset_ppm', 'period', 'power', 'rate_per_ps', 'segment', 't_onset',
                        't_sym'],
                       ['offset_ps', 'reason'],
                       ['guard_ratio', 'offset_ppm', 'period', 'power', 'rate_per_ps', 'segment', 't_onset',
                        't_sym'],
                       ['offset_ps', 'reason'],
                       ['guard_ratio', 'offset_ppm', 'period', 'power', 'rate_per_ps', 'segment', 't_onset',
                        't_sym'],
                       ['offset_ps', 'reason'],
                       ['guard_ratio', 'offset_ppm', 'period', 'power', 'rate_per_ps', 'segment', 't_onset',
                        't_sym']],
         'info_text': ["'phase'", "'guard'", "'guard'"],
         'ints': [60136, 2, 3, 0],
         'floats': [32327.29843343556, 19967751.69062376, 39903165.07797272, 59838577.31087144,
                    79773986.69991183, 99709397.85337947, 119644811.83122498, 139580230.2064597,
                    159515641.6773669, 179451057.91454905, 199386472.2501033, 219321887.668479,
                    239257301.11339492, 259192716.10288507, 279128134.5789131, 299083552.10070175,
                    319018965.8052737, 338954380.5996848, 358889791.12762284, 378825206.4108237,
                    412257523.37072134, 432192937.9124645, 452128350.3953667, 472063765.351582,
                    491999184.0745568, 511934600.5229257, 531870015.30404925, 551825883.9630243,
                    571761304.4549676, 591696716.7225268, 611632136.4217079, 631567553.040995,
                    651502969.4250923, 671438388.7074316, 691373804.2496151, 711309222.302463,
                    731291630.5968492, 751227047.996071, 771162467.1727568, 791097884.4661889,
                    811033304.7051283, 830968726.3733196, 850904142.8304819, 870839562.8291006,
                    890774983.7454311, 910710405.9430703, 930645831.0607115, 950581254.4350919,
                    970516675.9043913, 990452096.584875, 1010387513.1212742, 1030344925.4103047,
                    1050280354.8818573, 1070215773.0971159, 1090151193.3294501, 1110086610.9608588,
                    1130022028.246844, 1149957450.4300628, 1169892871.5852418, 1189828293.0215654,
                    1199786005.7356882, 32327.29843343556, nan, 271329927.7540582, 290297097.0,
                    290305566.17867905, nan, 395915732.0, 411289170.0, 411297744.13611686, nan,
                    539888171.4671363, 539908619.964325, 539908619.964325, nan, 719747284.2904807,
                    719794274.7942781, 719794274.7942781, nan, 1021804890.5772631, 1021826878.292545,
                    1021826878.292545, nan, 0.17173423423423423, -229.4619377398721, 999.7705380622601,
                    1095.6791029445708, 8.681640625e-05, 0.0, 14784.0, 32327.29843343556,
                    0.21978021978021978, -229.73506692214318, 999.7702649330779, 173.19076493869488,
                    1.337890625e-05, 1.0, 290297097.0, 290305566.17867905, 0.12785636561479868,
                    -229.96395369068168, 999.7700360463093, 1208.4066971541513, 8.984375e-05, 2.0,
                    411289170.0, 411297744.13611686, 453.0955330574561, 0.13001083423618634,
                    -229.50441546620848, 999.7704955845338, 1192.5834265739338, 9.0185546875e-05, 3.0,
                    539899030.0, 539908619.964325, 6999.695229699704, 0.14642082429501085,
                    -229.94561193490082, 999.7700543880651, 1150.0078256925221, 9.0087890625e-05, 4.0,
                    719780808.0, 719794274.7942781, 1992.3089394668586, 0.14135254988913526,
                    -229.1094785538128, 999.7708905214462, 1164.9455550710527, 8.8232421875e-05, 5.0,
                    1021822284.0, 1021826878.292545, 999.7703224448438, 1200985728.1112192,
                    441.7520718584313, 0.11717347152672399]},
 'm16b': {'n': 59487,
          'counts': '1277224683046bb9',
          'kinds': 'acquired loss_of_signal acquired slip slip',
          'info_keys': [['guard_ratio', 'offset_ppm', 'period', 'power', 'rate_per_ps', 'segment',
                         't_onset', 't_sym'],
                        [],
                        ['guard_ratio', 'offset_ppm', 'period', 'power', 'rate_per_ps', 'segment',
                         't_onset', 't_sym'],
                        ['slots'], ['slots']],
          'info_text': [],
          'ints': [60419, 1, 0, 2],
          'floats': [9998.18886907407, 9982590.213577226, 19955181.27960575, 29927773.43754862,
                     39900366.72100776, 49872958.151042655, 59845549.55620078, 69818142.96096063,
                     79790734.89537148, 89763326.44389567, 99735919.00405426, 109708509.80395702,
                     119681101.13987705, 129653692.64772047, 139626284.2143866, 154750212.73689985,
                     164722800.67411226, 174695394.47624707, 184667985.54295075, 194640575.85178804,
                     204613167.6515855, 214585757.08852765, 224558351.72706228, 234530946.25177008,
                     244503537.9680051, 254476128.1358015, 264448718.8741357, 274421318.03508466,
                     284394068.27929944, 294366730.7171013, 304339345.39560986, 314311940.54346603,
                     324284525.9652063, 334257109.53231484, 344229693.016214, 354202276.97760147,
                     364174862.88103807, 374150950.13109434, 384123540.27065957, 394096130.33541477,
                     404068718.58891124, 414041309.7083097, 424013898.78592473, 433986489.0686244,
                     443959080.8446356, 453931669.58552265, 463904253.6574281, 473876841.9411008,
                     483849431.6741357, 493822022.86090374, 503794612.7124171, 513767203.4358682,
                     523740793.0719551, 533713384.0476593, 543685974.9916437, 553658563.6076205,
                     563631153.2971523, 573603743.7536794, 583576333.9822234, 593548925.126169,
                     600180645.8730606, 9998.18886907407, nan, 132204355.50849244, 148550892.0,
                     148558607.63045204, nan, 368776060.27751625, nan, 522419450.5954504, nan,
                     0.05658669081032141, 259.9565163343698, 500.12997825816717, 1508.4648888509444,
                     0.000216015625, 0.0, 7181.0, 9998.18886907407, 0.06269592476489029, 259.31832351200336,
                     500.12965916175597, 218.77579788183016, 3.125e-05, 1.0, 148550892.0,
                     148558607.63045204, 7.0, 2.0, 500.1298827025579, 604361731.692454, 1148.919403375528,
                     0.104230675298664]}}


@pytest.mark.parametrize("name", sorted(RECORDED))
def test_tracking_matches_recorded_outputs(name):
    """The compiled tracking loop gives the outputs of the NumPy implementation it replaced: the
    same IEEE operations in the same order, NumPy's pairwise summation order reproduced, so every
    integer output is exact and floating-point values agree to 1e-11 (exactly where libm's sin/cos
    round as on the development machine)."""
    cfg, t, cuts = _recorded_scenario(name)
    rec = SlotClockRecovery(cfg)
    st = rec.initial_state()
    outs = []
    for part in np.split(t, cuts):
        o, st = rec.push(part, st)
        outs.append(o)
    o, st = rec.flush(st)
    outs.append(o)
    _assert_recorded(_digest(SlotCounts.concat(outs, cfg.P), st), RECORDED[name])
    o1, st1 = rec.push(t, rec.initial_state())                     # one-shot == chunked
    o2, st1 = rec.flush(st1)
    _assert_recorded(_digest(SlotCounts.concat([o1, o2], cfg.P), st1), RECORDED[name])


def _assert_recorded(got, want):
    assert {k: v for k, v in got.items() if k != "floats"} == {k: v for k, v in want.items() if k != "floats"}
    assert got["floats"] == pytest.approx(want["floats"], rel=1e-11, abs=1e-9, nan_ok=True)


def test_pairwise_sums_match_numpy():
    """The compiled sums reproduce NumPy's summation order (float64 and complex128) exactly."""
    from modem.sync.slot_clock import _pairwise_csum, _pairwise_sum
    rng = np.random.default_rng(2)
    for n in [*range(0, 300), 1000, 4097, 8192, 8193, 70001]:
        a = rng.standard_normal(n) * 10 ** rng.uniform(-3, 3, n)
        assert _pairwise_sum(a, 0, n) == a.sum()
        z = np.exp(2j * np.pi * rng.random(n))
        r, i = _pairwise_csum(np.ascontiguousarray(z.real), np.ascontiguousarray(z.imag), 0, n)
        assert (r, i) == (z.sum().real, z.sum().imag)
