# SPDX-License-Identifier: Apache-2.0
"""Two continuous-mode (non-burst) DPSK records back to back: the second record decodes whole.

The bug: the FEC-frame lock on the first record flywheeled 3 frames on at the first record's bit
phase into the second (all failed), lost lock at the 4th missed marker, re-locked on the second
record, and the new lock's look-back stopped at the last frame the flywheel had emitted: the
second record's first 3 FEC frames (3 of 12 TM frames) were lost at every gap and photon rate
measured (6 and 3 photons/bit, gaps 13, 700, 1040, 5555 slots, two seeds: always 9/12). A
continuous front end sees no burst grid, so no break marks the junction. Now the look-back of the
new lock reaches over the old lock's failed flywheel frames in continuous mode too, as it did in
burst mode, taking there only frames that decode valid (:meth:`DPSKSampleReceiver._look_back`).
The 3 failed flywheel frames stay counted as failed codewords. (Burst-mode records back to back:
tests/test_burst_regrid.py; here also bursts moved later by part of a burst.)"""
import numpy as np
import pytest

from modem.sample_receiver import DPSKLink, dpsk_transmit_frames, random_tm_frames
from test_burst_regrid import _decode      # (link, samples, chunk) -> (frames, receiver)


def _record_pair(link, gap_slots, seed, n):
    rng = np.random.default_rng(seed)
    f1 = random_tm_frames(link.spec, n, seed=seed)
    f2 = random_tm_frames(link.spec, n, seed=seed + 100)
    y = np.concatenate([dpsk_transmit_frames(f1, link, rng, lead_slots=1000),
                        dpsk_transmit_frames(f2, link, rng, lead_slots=gap_slots)]).astype(np.float32)
    return f1, f2, y


@pytest.mark.parametrize("ppb,gap,seed", [(6.0, 5555, 0), (6.0, 13, 1), (3.0, 700, 0), (3.0, 1040, 1)])
def test_second_continuous_record_decodes_every_tm_frame(ppb, gap, seed):
    link = DPSKLink(frame="short", rate="1/2", divider=1, ppb=ppb, ppm=-150.0)
    assert not link.burst_periodic
    f1, f2, y = _record_pair(link, gap, seed, 12)
    got, rx = _decode(link, y, 1 << 16)
    s1, s2 = {f: i for i, f in enumerate(f1)}, {f: i for i, f in enumerate(f2)}
    valid = [f.data for f in got if f.valid]
    assert all(d in s1 or d in s2 for d in valid)                 # nothing corrupted passes as valid
    assert sorted(s1[d] for d in valid if d in s1) == list(range(12))
    assert sorted(s2[d] for d in valid if d in s2) == list(range(12))      # 3..11 before
    fs = rx.fec_sync_state
    assert (fs.locks, fs.lock_losses, fs.false_locks, fs.missed) == (2, 1, 0, 3)
    assert rx.lookback_frames == 3 and rx.stats.codewords_crc_failed == 3
    assert [e.kind for e in rx.stats.events] == ["acquired", "loss_of_signal", "acquired"]


def test_second_continuous_record_is_decoded_the_same_whatever_the_chunking():
    link = DPSKLink(frame="short", rate="1/2", divider=1, ppb=6.0, ppm=-150.0)
    _, _, y = _record_pair(link, 700, 3, 6)
    a, rx_a = _decode(link, y, 1 << 16)
    b, rx_b = _decode(link, y, 12345)
    assert [(f.data, f.valid) for f in a] == [(f.data, f.valid) for f in b]
    assert sum(f.valid for f in a) == 12
    assert rx_a.fec_sync_state.same_as(rx_b.fec_sync_state) and rx_a.lookback_frames == rx_b.lookback_frames == 3
    assert [(e.kind, e.t_start_ps) for e in rx_a.stats.events] == [(e.kind, e.t_start_ps) for e in rx_b.stats.events]


@pytest.mark.parametrize("shift", [64, 200])
def test_second_burst_record_later_by_part_of_a_burst_decodes(shift):
    """Burst mode (divider 4, 256-bit bursts), the second record's bursts ``shift`` slots after
    the old grid's: the energy detector confirmed each such burst inside the old grid's burst,
    which reset the off-grid count, so the grid was kept for ever and none of the second record
    decoded (found by R16a: 0/6 at 40-220 slots; fixed in the front end, 90e43b1)."""
    link = DPSKLink(frame="short", rate="1/2", divider=4, burst_bits=256, ppb=6.0, ppm=-150.0)
    rng = np.random.default_rng(11)
    f1, f2 = random_tm_frames(link.spec, 8, seed=11), random_tm_frames(link.spec, 6, seed=1011)
    y = np.concatenate([dpsk_transmit_frames(f1, link, rng, lead_slots=1000),
                        dpsk_transmit_frames(f2, link, rng, lead_slots=(shift - 320) % 1024 + 2048)])
    got, rx = _decode(link, y.astype(np.float32), 1 << 16)
    s1, s2 = {f: i for i, f in enumerate(f1)}, {f: i for i, f in enumerate(f2)}
    valid = [f.data for f in got if f.valid]
    assert all(d in s1 or d in s2 for d in valid)
    assert sorted(s1[d] for d in valid if d in s1) == list(range(8))
    assert sorted(s2[d] for d in valid if d in s2) == list(range(6))
    assert rx._grid_state.moves >= 1
