# SPDX-License-Identifier: Apache-2.0
"""Review R16a: DPSK FEC-frame sync breaks, look-back and sync events (bugs found, each pinned here).

1. ``loss_of_signal`` ended before it started (``t_end_ps < t_start_ps``): the loss is dated at the
   expected marker after the lost lock's last frame, the next ``acquired`` at the new lock's first
   frame, and that frame can lie before the loss:
   * continuous mode, two records back to back: the new lock's look-back reaches over the old
     lock's failed flywheel frames (79b4bdd), so its first frame is 3 FEC frames before the loss;
   * burst mode, samples lost upstream inside a FEC frame whose marker was found: the frame the
     break cuts is emitted, the loss dated one period after it, and the new stream's first marker
     comes earlier than that (the lost bits are missing from the bit count).
2. A polarity flip in the middle of a record (the delay-line interferometer hopping a fringe: every
   bit after it inverted, the FEC-frame phase unchanged): the lock misses the inverted markers,
   flywheels 3 frames (failed at the old polarity), loses the lock, and the search re-locks at the
   next marker, inverted -- one period after the last flywheel frame, so the receiver took it for
   the same lock: no look-back, and the 3 FEC frames under the flywheel, which decode at the new
   polarity, were lost (4 TM frames of 16); the loss was dated one period after the acquisition.
   Now a frame of the other polarity starts a new lock whatever its offset: the look-back reads
   the 3 frames again (the TM frame across the flip is still lost: the deframer had the failed
   flywheel codewords and restarts before the look-back's).
"""
import numpy as np

from modem.sample_receiver import DPSKLink, DPSKSampleReceiver, dpsk_transmit_frames, random_tm_frames

LINK_C = DPSKLink(frame="short", rate="1/2", divider=1, ppb=6.0, ppm=-150.0)
LINK_B = DPSKLink(frame="short", rate="1/2", divider=4, burst_bits=256, ppb=6.0, ppm=-150.0)
P = 32 + LINK_C.code.n


def _decode(link, y, chunk=1 << 16):
    rx = DPSKSampleReceiver(link)
    got = []
    for a in range(0, y.size, chunk):
        got += rx.push(y[a:a + chunk])
    return got + rx.flush(), rx


def _indices(frames, got):
    sent = {f: i for i, f in enumerate(frames)}
    assert all(f.data in sent for f in got if f.valid)          # nothing corrupted passes as valid
    return sorted(sent[f.data] for f in got if f.valid)


def _loss(rx):
    ev = rx.stats.events
    assert [e.kind for e in ev] == ["acquired", "loss_of_signal", "acquired"]
    assert ev[1].t_end_ps == ev[2].t_start_ps
    return ev[1]


def test_continuous_records_loss_of_signal_ends_after_it_starts():
    """Two continuous records (gap 5555 slots): the loss ran from 107.4 us to 92.5 us. It now
    starts at the end of the first record's last FEC frame (its last frame found), before the
    second record's first FEC frame (the acquisition)."""
    rng = np.random.default_rng(0)
    f1, f2 = random_tm_frames(LINK_C.spec, 12, seed=0), random_tm_frames(LINK_C.spec, 12, seed=100)
    y1 = dpsk_transmit_frames(f1, LINK_C, rng, lead_slots=1000)
    y = np.concatenate([y1, dpsk_transmit_frames(f2, LINK_C, rng, lead_slots=5555)]).astype(np.float32)
    got, rx = _decode(LINK_C, y)
    assert _indices(f1 + f2, got) == list(range(24)) and rx.lookback_frames == 3
    loss = _loss(rx)
    assert loss.t_start_ps <= loss.t_end_ps
    to_ps = 1e12 / LINK_C.sample_rate_hz
    last1 = max(f.t_ps for f in got if f.valid and f.data in f1)
    first2 = min(f.t_ps for f in got if f.valid and f.data in f2)
    assert last1 < loss.t_start_ps and loss.t_end_ps == first2
    # the record gap: from the first record's end (its last wire bit, 64 tail slots on) to the
    # second record's first bit, read on the receiver's clock (within a few slots)
    end1 = (y1.size - 64 * LINK_C.clock.samples_per_slot) * to_ps
    gap = (5555 + 64) * LINK_C.clock.samples_per_slot * to_ps
    assert abs(loss.t_start_ps - end1) < 10 * LINK_C.clock.samples_per_slot * to_ps
    assert abs((loss.t_end_ps - loss.t_start_ps) - gap) < 10 * LINK_C.clock.samples_per_slot * to_ps


def test_break_inside_a_found_frame_loss_of_signal_ends_after_it_starts():
    """Burst mode, 5.5 burst periods of samples lost inside FEC frame 5 (its marker found): the
    grid moves (a break), the cut frame is emitted (and fails), the new lock comes at the next
    marker, 256 bits before one period after the cut frame. The loss ran from 133.88 us to 133.52
    us; it now starts at the break."""
    frames = random_tm_frames(LINK_B.spec, 12, seed=5)
    y = dpsk_transmit_frames(frames, LINK_B, np.random.default_rng(5), lead_slots=1000).astype(np.float32)
    sps = LINK_B.clock.samples_per_slot
    a = int((1000 + ((5 * P + 6000) // 256) * 1024) * sps)
    y = np.concatenate([y[:a], y[a + int(5.5 * 1024 * sps):]])
    got, rx = _decode(LINK_B, y)
    fs = rx.fec_sync_state
    assert (fs.locks, fs.lock_losses, fs.cut, fs.missed) == (2, 1, 0, 0) and rx._grid_state.moves == 1
    assert _indices(frames, got) == [0, 1, 2] + list(range(5, 12))     # 3, 4: in the cut FEC frame
    loss = _loss(rx)
    assert loss.t_start_ps < loss.t_end_ps
    to_ps = 1e12 / LINK_B.sample_rate_hz
    assert abs(loss.t_start_ps - a * to_ps) < 2 * 1024 * sps * to_ps    # the break: the first burst after the cut


def _flipped(seed=1, at=5):
    """A continuous record of 16 TM frames whose balanced-detector output is negated from the
    marker of FEC frame ``at`` on (every later bit inverted, the FEC-frame phase unchanged)."""
    frames = random_tm_frames(LINK_C.spec, 16, seed=seed)
    y = dpsk_transmit_frames(frames, LINK_C, np.random.default_rng(seed), lead_slots=1000).astype(np.float32)
    y[int((1000 + at * P) * LINK_C.clock.samples_per_slot):] *= -1.0
    return frames, y


def _across(at):
    """The TM frame whose ASM + frame bits span the start of FEC frame ``at``."""
    fb, k = 32 + LINK_C.spec.n_bits, LINK_C.code.k
    return [i for i in range(16) if i * fb < at * k < (i + 1) * fb]


def test_polarity_flip_mid_record_frames_under_the_flywheel_are_recovered():
    frames, y = _flipped()
    got, rx = _decode(LINK_C, y)
    fs = rx.fec_sync_state
    assert (fs.locks, fs.lock_losses, fs.missed, fs.inversions) == (2, 1, 3, 1)
    assert _indices(frames, got) == [i for i in range(16) if i not in _across(5)]    # 3..6 were lost
    assert _across(5) == [3]
    assert rx.lookback_frames == 3 and rx.stats.codewords_crc_failed == 3   # the flywheel's 3 stay failed
    loss = _loss(rx)
    assert loss.t_start_ps <= loss.t_end_ps
    to_ps = 1e12 / LINK_C.sample_rate_hz
    flip = (1000 + 5 * P) * LINK_C.clock.samples_per_slot * to_ps
    assert abs(loss.t_end_ps - flip) < 4 * LINK_C.clock.samples_per_slot * to_ps   # FEC frame 5, inverted
    assert rx.stats.events[2].info["inverted"]


def test_polarity_flip_is_decoded_the_same_whatever_the_chunking():
    frames, y = _flipped(seed=2, at=6)
    a, rx_a = _decode(LINK_C, y)
    b, rx_b = _decode(LINK_C, y, 12345)
    assert [(f.data, f.valid, f.t_ps) for f in a] == [(f.data, f.valid, f.t_ps) for f in b]
    assert _indices(frames, a) == [i for i in range(16) if i not in _across(6)]
    assert [(e.kind, e.t_start_ps, e.t_end_ps) for e in rx_a.stats.events] == \
        [(e.kind, e.t_start_ps, e.t_end_ps) for e in rx_b.stats.events]
    assert rx_a.lookback_frames == rx_b.lookback_frames == 3


def test_frame_sync_state_after_a_fresh_candidate_is_the_same_whatever_the_chunking():
    """A SEARCH hit refined to a candidate (CHECK, its frame not in yet) kept its buffer from
    ``cand_pos - slip`` (bits CHECK does not read before the candidate's own frame: the first
    marker is taken where it was found, ``w`` = 0), clipped to the previous buffer start: pushed
    one bit at a time the state kept it from the SEARCH position (100), one-shot from 98, so
    ``same_as`` (what the chunking tests compare) failed though the frames were the same."""
    from modem.sync import ASM_BITS, ASMFrameSync, FrameSyncConfig, SyncMode
    rng = np.random.default_rng(0)
    bits = np.concatenate([rng.integers(0, 2, 100, dtype=np.uint8), ASM_BITS, rng.integers(0, 2, 200, dtype=np.uint8)])
    llr = 8.0 * (1.0 - 2.0 * bits)
    for cfg in ({"check_count": 0}, {"check_count": 1, "search_periods": 3},
                {"check_count": 0, "rule": "hard", "slip": 3}):
        sync = ASMFrameSync(FrameSyncConfig(frame_len=200, **cfg))
        _, one = sync.push(llr[:180], sync.initial_state())
        many = sync.initial_state()
        for i in range(180):
            _, many = sync.push(llr[i:i + 1], many)
        assert one.mode == SyncMode.CHECK and one.fresh and one.cand_pos == 100
        assert one.same_as(many), (cfg, one.buf_start, many.buf_start)
        # ... and the rest of the stream gives the same frames and state from either
        f1, end1 = sync.push(llr[180:], one)
        f2, end2 = sync.push(llr[180:], many)
        assert list(f1.offset) == list(f2.offset) == [100] * (cfg["check_count"] == 0)
        assert end1.same_as(end2)
