# SPDX-License-Identifier: Apache-2.0
"""Burst-periodic DPSK front end: the burst grid is dropped and acquired again when the bursts are
no longer where it expects them.

The bug: once the burst-periodic front end (bursts < 1024 bits, or gaps over 4096 slots: every
LCRD rate below 720 Mb/s) had its grid, it never let go of it. When the bursts moved -- the
transmitter restarting its burst schedule, samples lost by the capture chain, two records back to
back -- the bursts due on the old grid were absent (the grid freewheeled for ever) or half-seen,
and nothing after the move decoded: 12/12 TM frames of a first record, 0/12 of a second record
appended to it, at 6 photons/bit, where the in-burst-loop front end (bursts of 1024 bits) decodes
9/12 of the second record. Now: bursts due but absent for 16 periods, or bursts found off the grid
(the energy detector confirming one where the grid says dark, or the first slots of a burst that
is due being dark) three times in a row, drop the grid, and the next detected burst acquires it
again (the clock rate learnt so far is kept).

Then the second record lost its first FEC frames (3 of 12 TM frames at divider 4): the FEC-frame
lock on the first record flywheeled 3 frames into it at the first record's bit phase (all failed),
dropped to SEARCH only at the 4th missed marker, and the look-back at the new lock stopped at the
last frame emitted. Now the burst grid reports a break where a burst is not the one after the last
(:meth:`BurstGrid.push`), the synchroniser leaves its lock there and searches from it
(:meth:`ASMFrameSync.push` ``breaks``), and where no break is seen (bursts moved by a few slots
only, gap 700) the look-back reaches over the flywheel's failed frames."""
import numpy as np
import pytest

from modem.sample_receiver import DPSKLink, DPSKSampleReceiver, dpsk_transmit_frames, random_tm_frames


def _two_records(link, gap_slots, seed, n=12):
    """Record 1 (n TM frames), then record 2 (n others) whose bursts start ``gap_slots`` after
    the end of record 1: the burst grid moves by the gap modulo the burst period."""
    rng = np.random.default_rng(seed)
    f1 = random_tm_frames(link.spec, n, seed=seed)
    f2 = random_tm_frames(link.spec, n, seed=seed + 100)
    y = np.concatenate([dpsk_transmit_frames(f1, link, rng, lead_slots=1000),
                        dpsk_transmit_frames(f2, link, rng, lead_slots=gap_slots)]).astype(np.float32)
    rx = DPSKSampleReceiver(link)
    got = []
    for a in range(0, y.size, 1 << 16):
        got += rx.push(y[a:a + (1 << 16)])
    got += rx.flush()
    s1 = {f: i for i, f in enumerate(f1)}
    s2 = {f: i for i, f in enumerate(f2)}
    assert all(f.data in s1 or f.data in s2 for f in got if f.valid)      # nothing corrupted passes as valid
    return (sorted(s1[f.data] for f in got if f.valid and f.data in s1),
            sorted(s2[f.data] for f in got if f.valid and f.data in s2), rx)


@pytest.mark.parametrize("divider,gap,n", [(4, 5555, 12), (4, 700, 12), (4, 1000 + 40, 12), (40, 7777, 5)])
def test_second_record_with_moved_bursts_decodes(divider, gap, n):
    """Moves of the grid into the old dark (most of the period; 1040: the next burst 336 slots
    late, its first slots dark), bursts 4 slots earlier than the old grid (gap 700), and divider 40
    (72 Mb/s): every TM frame of both records decodes (3 of the second's were lost before).

    With a grid move (5555, 1040, divider 40) the first burst on the new grid is a break: the
    lock on the first record ends there with its last frame emitted (the fill after it is the
    one ``cut`` frame), the search starts at the break, and no FEC frame fails. At gap 700 the
    front end follows the bursts 4 slots on (no re-acquisition: bursts within the edge search of
    the locked grid), so no break is seen: the lock flywheels 3 frames at the old bit phase (the
    3 failed codewords) and the look-back of the new lock finds the second record's first 3 FEC
    frames under them (its first 7 bursts read 4 slots late still decode at 6 photons/bit)."""
    link = DPSKLink(frame="short", rate="1/2", divider=divider, burst_bits=256, ppb=6.0, ppm=-150.0)
    assert link.burst_periodic
    g1, g2, rx = _two_records(link, gap, seed=divider, n=n)
    assert g1 == list(range(n)) and g2 == list(range(n))
    fs = rx.fec_sync_state
    assert fs.lock_losses == 1 and fs.locks == 2 and fs.false_locks == 0
    if gap == 700:
        assert rx._grid_state.moves == 0 and fs.cut == 0 and fs.missed == 3
        assert rx.stats.codewords_crc_failed == 3 and rx.lookback_frames == 3
    else:
        assert rx._grid_state.moves == 1 and fs.cut == 1 and fs.missed == 0
        assert rx.stats.codewords_crc_failed == 0 and rx.lookback_frames == 0


def _decode(link, y, chunk):
    rx = DPSKSampleReceiver(link)
    got = []
    for a in range(0, y.size, chunk):
        got += rx.push(y[a:a + chunk])
    return got + rx.flush(), rx


@pytest.mark.parametrize("gap", [3333, 700])
def test_grid_move_is_decoded_the_same_whatever_the_chunking(gap):
    """The receiver's burst grid takes, window by window, the front end's grid in force at that
    window (it took the one at the end of each push: the bursts of a record's last windows were
    read at the next record's phase when both fell in one push). The break the grid reports
    (3333: the grid moves) and the look-back over the flywheel's frames (700: it does not) give
    the same frames, sync counters and events in chunks of 12345 samples as in chunks of 65536."""
    link = DPSKLink(frame="short", rate="1/2", divider=4, burst_bits=256, ppb=6.0, ppm=-150.0)
    rng = np.random.default_rng(7)
    f1, f2 = random_tm_frames(link.spec, 6, seed=7), random_tm_frames(link.spec, 6, seed=8)
    y = np.concatenate([dpsk_transmit_frames(f1, link, rng, lead_slots=1000),
                        dpsk_transmit_frames(f2, link, rng, lead_slots=gap)]).astype(np.float32)
    a, rx_a = _decode(link, y, 1 << 16)
    b, rx_b = _decode(link, y, 12345)
    assert [(f.data, f.valid) for f in a] == [(f.data, f.valid) for f in b]
    assert sum(f.valid and f.data in f1 for f in a) == 6 and sum(f.valid and f.data in f2 for f in a) == 6
    assert rx_a.fec_sync_state.same_as(rx_b.fec_sync_state)
    assert [(e.kind, e.t_start_ps, e.t_end_ps) for e in rx_a.stats.events] == \
        [(e.kind, e.t_start_ps, e.t_end_ps) for e in rx_b.stats.events]
    assert rx_a.stats.codewords == rx_b.stats.codewords and rx_a.lookback_frames == rx_b.lookback_frames
    assert rx_a._grid_state.moves == rx_b._grid_state.moves == (1 if gap == 3333 else 0)


def test_fade_longer_than_16_bursts_drops_and_reacquires_the_grid():
    """Zero samples over 40 burst periods inside a record (a deep fade, the bursts do not move):
    the grid is dropped after 16 absent bursts and acquired again when they return; only the FEC
    frames the fade cuts are lost, and nothing corrupted passes as valid."""
    link = DPSKLink(frame="short", rate="1/2", divider=4, burst_bits=256, ppb=6.0, ppm=-150.0)
    frames = random_tm_frames(link.spec, 12, seed=5)
    y = dpsk_transmit_frames(frames, link, np.random.default_rng(5), lead_slots=1000).astype(np.float32)
    a = y.size // 2
    y[a:a + 40 * 1024 * 4] = 0.0                      # 40 periods of 1024 slots at 4 samples/slot
    got, rx = _decode(link, y, 1 << 16)
    sent = {f: i for i, f in enumerate(frames)}
    assert all(f.data in sent for f in got if f.valid)
    ok = sorted(sent[f.data] for f in got if f.valid)
    assert ok[:4] == [0, 1, 2, 3] and ok[-1] == 11 and len(ok) >= 8


def test_grid_dropped_in_every_hold_does_not_step_back_for_ever(monkeypatch):
    """Divider 40, two records, seed 0: at the second record the grid was dropped (bursts off it)
    during each burst hold, and each new acquisition stepped back 4 burst periods, to samples read
    already: the reading position cycled over three points ~0.2 M samples apart while the slot
    numbers grew, in one push, until memory ran out (> 6 GB). An acquisition less than a burst
    period past the furthest start so far may now step back once in a row, no more: the holds
    settle 5 times in this input (not for ever; the spy stops a runaway at 50) and every TM frame
    of both records decodes."""
    from modem.sync.samples import SampleFrontEnd
    fit, calls = SampleFrontEnd._fit_hold, [0]

    def counted(self, *a):
        calls[0] += 1
        assert calls[0] <= 50, "burst holds settled without end"
        return fit(self, *a)
    monkeypatch.setattr(SampleFrontEnd, "_fit_hold", counted)
    link = DPSKLink(frame="short", rate="1/2", divider=40, burst_bits=256, ppb=6.0, ppm=-150.0)
    g1, g2, rx = _two_records(link, 7777, seed=0, n=5)
    assert calls[0] <= 8
    assert g1 == g2 == list(range(5))
