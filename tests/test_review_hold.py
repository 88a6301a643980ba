# SPDX-License-Identifier: Apache-2.0
"""Review of the DPSK burst hold (:class:`modem.sync.samples.FrontEndConfig` ``burst_hold``, the
burst-periodic front end): regressions for bugs found in review (R16b). Each test names the bug it
pins; see the commit messages."""
import numpy as np

from modem.sample_receiver import DPSKLink, DPSKSampleReceiver, dpsk_transmit_frames, random_tm_frames
from modem.sync.samples import SlotStatistics


def _chunked(fe, y, chunk):
    """Front-end slots of ``y`` pushed in chunks of ``chunk`` samples, drained and flushed (as
    :meth:`SampleFrontEnd.process` on the whole record)."""
    st, parts = fe.initial_state(), []
    for a in range(0, y.size, chunk):
        s, st = fe.push(y[a:a + chunk], st)
        parts.append(s)
    d, st = fe.drain(st)
    tail, st = fe.flush(st)
    out = SlotStatistics.concat(parts + [d])
    out.bursts = np.concatenate([out.bursts, tail])
    return out


def _same(a, b):
    for f in ("z", "t", "index", "in_burst", "bursts", "grid_start"):
        np.testing.assert_array_equal(getattr(a, f), getattr(b, f), err_msg=f)


def _decode(link, y, chunk):
    rx = DPSKSampleReceiver(link)
    got = []
    for a in range(0, y.size, chunk):
        got += rx.push(y[a:a + chunk])
    return got + rx.flush()


def test_second_step_back_in_one_push_stays_inside_the_kept_samples():
    """Divider 4, 2 photons/bit, 0 ppm, a dark lead of 30000 slots (seed 6): the first grid
    (acquired 143 slots off the bursts, its hold stepping back 4 burst periods) is dropped during
    its hold before the tracker is back where it acquired; the next acquisition steps back 4
    periods from its own edge (allowed once by the progress rule), to the record's first burst.
    Both happen in one push while the tracker re-reads kept samples, and the front end kept only
    one step back's worth (4 periods + ~140 slots before the position at the end of the last
    push): in chunks of 3000 samples the second hold read matched-filter samples from before the
    buffer (negative indices), its fit failed and the record's first FEC frame (TM frame 0) was
    lost; fed in one piece, or in chunks of 65536, it decodes."""
    rng = np.random.default_rng(6)
    link = DPSKLink(frame="short", rate="1/2", divider=4, burst_bits=256, ppb=2.0, ppm=0.0,
                    phase=float(rng.uniform(0, 1)))
    frames = random_tm_frames(link.spec, 2, seed=6)
    y = dpsk_transmit_frames(frames, link, np.random.default_rng(1006), lead_slots=30000).astype(np.float32)
    fe = DPSKSampleReceiver(link).frontend
    one = fe.process(y)
    _same(one, _chunked(fe, y, 3000))
    got = _decode(link, y, 3000)
    assert [f.data for f in got if f.valid] == frames


def test_bursts_moved_later_by_less_than_a_burst_drop_the_grid():
    """Divider 4, 6 photons/bit: 400 zero samples (100 slots) inserted before burst 80 of a record
    (samples lost upstream, a clock jump): every later burst starts 100 slots after the locked
    grid's. The re-acquisition counted each such burst off the grid (its first slots dark while
    the burst is there), but the energy detector, confirming the same burst 100 slots into it
    (inside the burst as the grid sees it), reset the count: the grid was never dropped, every
    later burst was read 100 slots early, and no TM frame of the record decoded (not even those
    whose FEC frames end before the move, the FEC-frame lock being lost). Now the count restarts
    at a burst confirmed at its start on the grid, or whose first slots have signal with no burst
    confirmed off the grid just before it; a confirmation further inside the grid's burst does
    neither, so the grid is dropped and acquired again on the moved bursts. (The hold's step back
    then reads the bursts after the move twice, so the FEC frames across the move, TM frames 0-1,
    are lost; without the hold they decode.)"""
    link = DPSKLink(frame="short", rate="1/2", divider=4, burst_bits=256, ppb=6.0, ppm=-150.0, phase=0.3)
    frames = random_tm_frames(link.spec, 6, seed=1)
    lead, Pb = 1500, 1024
    y = dpsk_transmit_frames(frames, link, np.random.default_rng(1), lead_slots=lead).astype(np.float32)
    a = int((lead + 80 * Pb) * link.clock.samples_per_slot)
    y = np.concatenate([y[:a], np.zeros(400, np.float32), y[a:]])
    fe = DPSKSampleReceiver(link).frontend
    s = fe.process(y)
    starts = link.clock.slot_of_sample(s.t[s.index == s.grid_start]) - 0.5     # grid burst starts (slots)
    moved = starts[starts > lead + 90 * Pb + 100]
    assert moved.size > 20
    d = (moved - lead - 100) % Pb
    assert np.all(np.minimum(d, Pb - d) < 1.0)                    # the grid is on the moved bursts
    got = _decode(link, y, 1 << 16)
    assert all(f.data in frames for f in got if f.valid)
    ok = sorted(frames.index(f.data) for f in got if f.valid)
    assert ok[-4:] == [2, 3, 4, 5]                                 # FEC frames after the move decode


def test_burst_hold_without_burst_length_is_refused():
    """``burst_hold`` with ``burst_period`` but ``burst_length`` 0 (unknown) was accepted and the
    hold silently not run (the fit needs the burst length): a configuration that asks for the hold
    got the front end without it. Now a ConfigError naming both values."""
    import pytest

    from modem.errors import ConfigError
    from modem.sync.samples import FrontEndConfig
    with pytest.raises(ConfigError, match=r"burst_hold=32.*burst_length=0"):
        FrontEndConfig(burst_threshold=1.0, acquire_slots=248, burst_period=1024, burst_length=0, burst_hold=32)
    assert FrontEndConfig(burst_threshold=1.0, acquire_slots=248, burst_period=1024, burst_length=0).burst_hold == 0
    assert FrontEndConfig(burst_hold=32).burst_hold == 32          # ignored without burst_period (as documented)


def test_held_slots_before_the_fit_bound_are_read_again_from_their_samples():
    """Divider 4, 2 photons/bit, +250 ppm (record 5 of the first-frame tests' generator): the
    acquisition's edge was 49 slots late, so the hold's first held slot, extrapolated 1 period back,
    was 49 slots into the record's first burst; the fit placed the grid right (the first held
    burst at the record's first slot) and the held slots were read again on it, but only from
    samples down to 24 slots before the first held slot (the fit's read bound): the first 26 slots
    of the burst (most of the first FEC frame's marker) came out as z = 0 though their samples
    are in the record. Now the re-read reaches as far back as the fit can move the grid."""
    rng = np.random.default_rng(5)
    link = DPSKLink(frame="short", rate="1/2", divider=4, burst_bits=256, ppb=2.0, ppm=250.0,
                    phase=float(rng.uniform(0, 1)))
    lead = int(rng.integers(500, 3000))
    frames = random_tm_frames(link.spec, 2, seed=5)
    y = dpsk_transmit_frames(frames, link, np.random.default_rng(1005), lead_slots=lead).astype(np.float32)
    fe = DPSKSampleReceiver(link).frontend
    s = fe.process(y)
    slot = link.clock.slot_of_sample(s.t) - 0.5
    first = (s.grid_start >= 0) & (np.abs(slot - lead - (s.index - s.grid_start)) < 0.2) & \
        (s.index - s.grid_start >= 0) & (s.index - s.grid_start < 256)
    assert np.count_nonzero(first) >= 250                           # the record's first burst
    assert np.count_nonzero(s.z[first] == 0.0) == 0
    assert _chunked(fe, y, 4099).z.tolist() == s.z.tolist()


def test_burst_grid_flush_emits_the_partial_last_burst_after_a_queued_one():
    """R16b: ``BurstGrid.flush`` emitted the burst expected after the last decided one only when no
    decided burst was still queued, so where the burst before it straddled the last complete
    window (still queued at the end), the arrived slots of a partial last burst (a capture cut
    mid-burst: the last FEC frame's final bits) were dropped. off=4 passed, off=28 did not."""
    from modem.modulation.dpsk import BurstFormat  # noqa: PLC0415
    from modem.sample_receiver import BurstGrid  # noqa: PLC0415
    L, div = 8, 4
    Pb = L * div
    for off, n in ((4, 10 * Pb + 4 + 3), (28, 10 * Pb + 28 + 3)):      # last burst: 3 of 8 slots arrived
        k = np.arange(n)
        z = np.where(((k - off) % Pb) < L, 10.0, 0.1)
        ph = np.where(k >= off, off + Pb * ((k - off) // Pb), -1).astype(np.int64)
        g = BurstGrid(BurstFormat(divider=div, burst_bits=L))
        _, t1, _, _, st = g.push(z, k.astype(float), g.initial_state(), phases=ph)
        _, t2, _, _, st = g.flush(st)
        t = np.concatenate([t1, t2]).astype(int)
        last = off + Pb * ((n - 1 - off) // Pb)
        assert {last, last + 1, last + 2} <= set(t), (off, sorted(t)[-12:])
        assert np.all(np.diff(t) > 0)                  # each slot once, in order
