# SPDX-License-Identifier: Apache-2.0
"""ASMFrameSync with known stream discontinuities (``breaks``): a lock does not flywheel across one.

The bug (DPSK burst mode, a second record appended to a first): the FEC-frame lock on the first
record flywheeled 3 frames into the second one, whose frames lie at another bit phase, emitting
frames at the old phase that all failed, dropped to SEARCH only at the 4th missed marker, and the
look-back at the new lock stopped at the end of the last frame emitted: the second record's first
3 FEC frames were lost. A break (the burst grid re-acquired elsewhere) now ends the lock there and
the search starts at it."""
import numpy as np
import pytest

from modem.errors import ShapeError
from modem.sync import ASM_BITS, ASMFrameSync, FrameSyncConfig, SyncedFrames, SyncMode

FL = 256
P = 32 + FL


def _frames(rng, n):
    data = rng.integers(0, 2, (n, FL), dtype=np.uint8)
    return np.concatenate([np.concatenate([ASM_BITS, d]) for d in data])


def _two_streams(rng, n1=6, fill=100, n2=6, tail=64):
    """Stream A (n1 frames from bit 0), ``fill`` random bits (the rest of A's last burst, noise
    bursts), stream B (n2 frames) from bit ``b``; B's frames are off A's period by ``fill``."""
    bits = np.concatenate([_frames(rng, n1), rng.integers(0, 2, fill, dtype=np.uint8), _frames(rng, n2),
                           rng.integers(0, 2, tail, dtype=np.uint8)])
    b = n1 * P + fill
    llr = 8.0 * (1.0 - 2.0 * bits) + rng.normal(0.0, 2.0, bits.size)
    return llr, b, list(range(0, n1 * P, P)), list(range(b, b + n2 * P, P))


def _run(sync, llr, breaks=(), cuts=()):
    """Chunks cut at ``cuts``; each break given with the chunk that holds its bit."""
    st = sync.initial_state()
    parts, a = [], 0
    for chunk in np.split(llr, cuts):
        brk = [b for b in breaks if a <= b < a + chunk.size]
        f, st = sync.push(chunk, st, breaks=brk or None)
        parts.append(f)
        a += chunk.size
    return SyncedFrames.concat(parts), st


CFG = dict(frame_len=FL, check_count=0, polarity_free=True)


@pytest.mark.parametrize("fill", [100, P // 2, 3])
def test_lock_ends_at_a_break_and_the_search_starts_there(fill):
    rng = np.random.default_rng(fill)
    llr, b, off_a, off_b = _two_streams(rng, fill=fill)
    sync = ASMFrameSync(FrameSyncConfig(**CFG))
    old, st_old = _run(sync, llr)
    # without the break: the lock flywheels 3 frames at A's phase into B; B's first frames are lost
    assert list(old.offset[:6]) == off_a and list(old.offset[6:9]) == [b - fill + k * P for k in range(3)]
    assert list(old.state[6:9]) == [SyncMode.FLYWHEEL] * 3 and st_old.lock_losses == 1
    assert not set(off_b[:3]) & set(old.offset.tolist())
    new, st = _run(sync, llr, breaks=[b])
    assert list(new.offset) == off_a + off_b                 # every frame of both, nothing else
    assert (new.state == SyncMode.LOCK).all() and st.missed == 0
    assert st.lock_losses == 1 and st.cut == 1 and st.locks == 2 and st.breaks == ()
    assert st.search_floor == b


def test_break_cutting_a_frame_whose_marker_is_found():
    """Samples lost upstream inside a frame: the frame the break cuts is still emitted (its marker
    was found; the decoder reports it failed), then the lock ends and the search finds the next
    marker of the new phase at once."""
    rng = np.random.default_rng(1)
    bits_a = _frames(rng, 6)
    bits_b = _frames(rng, 6)
    cut_at = 3 * P + 100                        # inside A's 4th frame; B starts there
    bits = np.concatenate([bits_a[:cut_at], bits_b, rng.integers(0, 2, 64, dtype=np.uint8)])
    llr = 8.0 * (1.0 - 2.0 * bits)
    sync = ASMFrameSync(FrameSyncConfig(**CFG))
    out, st = _run(sync, llr, breaks=[cut_at])
    assert list(out.offset) == [0, P, 2 * P, 3 * P] + [cut_at + k * P for k in range(6)]
    assert st.cut == 0 and st.lock_losses == 1 and st.missed == 0


@pytest.mark.parametrize("seed", range(4))
def test_breaks_give_the_same_output_whatever_the_chunking(seed):
    rng = np.random.default_rng(seed)
    llr, b, _, _ = _two_streams(rng, n1=5, fill=int(rng.integers(1, P)), n2=5)
    llr2, b2, _, _ = _two_streams(rng, n1=3, fill=int(rng.integers(1, P)), n2=4)
    llr = np.concatenate([llr, llr2])
    breaks = [b, llr.size - llr2.size, llr.size - llr2.size + b2]
    for cfg in (CFG, dict(CFG, search_periods=4), dict(frame_len=FL, check_count=1)):
        sync = ASMFrameSync(FrameSyncConfig(**cfg))
        one, st1 = _run(sync, llr, breaks)
        cuts = np.sort(rng.choice(np.arange(1, llr.size), 25, replace=False))
        many, st2 = _run(sync, llr, breaks, cuts)
        for f in ("llr", "offset", "metric", "inverted", "state"):
            np.testing.assert_array_equal(getattr(one, f), getattr(many, f))
        assert st1.same_as(st2) and st1.lock_losses >= 3


def test_candidate_crossing_a_break_is_rejected():
    """CHECK (a candidate confirmed by the next marker): the candidate's next marker lies after a
    break, so the candidate is rejected and the search goes on from the break."""
    rng = np.random.default_rng(3)
    llr, b, off_a, off_b = _two_streams(rng, n1=1, fill=50, n2=4)
    sync = ASMFrameSync(FrameSyncConfig(frame_len=FL, check_count=1))
    out, st = _run(sync, llr, breaks=[b])
    assert list(out.offset) == off_b[1:]           # CHECK emits from the confirming marker on
    assert st.false_locks == 1 and st.locks == 1


def test_breaks_are_checked():
    sync = ASMFrameSync(FrameSyncConfig(**CFG))
    st = sync.initial_state()
    _, st = sync.push(np.ones(100), st, breaks=[50])
    with pytest.raises(ShapeError, match="breaks"):
        sync.push(np.ones(100), st, breaks=[99])        # before this chunk
    with pytest.raises(ShapeError, match="breaks"):
        sync.push(np.ones(100), st, breaks=[150, 120])  # not ascending
    with pytest.raises(ShapeError, match="breaks"):
        sync.push(np.ones(100), st, breaks=[120.5])
    _, st2 = sync.push(np.ones(100), st, breaks=[])
    _, st3 = sync.push(np.ones(100), st)
    assert st2.same_as(st3)
