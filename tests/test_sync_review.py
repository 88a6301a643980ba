# SPDX-License-Identifier: Apache-2.0
"""Review of the slot-clock recovery, the soft frame synchroniser and the time-tag simulator: each
test pins a behaviour a ground station relies on (found wrong, or checked at its boundary)."""
import numpy as np
import pytest

from modem.sync.slot_clock import SlotClockConfig, SlotClockRecovery, SlotCounts
from modem.sync.timetags import TimeTagConfig, simulate_time_tags


def _ppm(rng, n_sym, m, g):
    sym = rng.integers(0, m, n_sym)
    p = np.zeros((n_sym, m + g), np.uint8)
    p[np.arange(n_sym), sym] = 1
    return p.reshape(-1), sym


def _run(rec, chunks):
    st = rec.initial_state()
    outs = []
    for c in chunks:
        o, st = rec.push(c, st)
        outs.append(o)
    o, st = rec.flush(st)
    outs.append(o)
    return SlotCounts.concat(outs, rec.cfg.P), st


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
    p, sym = _ppm(rng, n, Mq, Gq)
    link = TimeTagConfig(slot_width_ps=1000, clock_offset_ppm=100, jitter_rms_ps=50, n_channels=16)
    t = simulate_time_tags(p, 20.0, 0.0, rng, link).t_ps
    rec = SlotClockRecovery(SlotClockConfig(slot_width_ps=1000.0, M=Mq, guard=Gq))
    out, st = _run(rec, [t])
    assert [e.kind for e in out.events] == ["acquired"] and st.losses == 0
    assert n <= len(out) <= n + 8 and np.all(np.diff(out.sym_index) == 1)
    k = np.flatnonzero(out.counts[:, :Mq].sum(axis=1) > 0)
    first = k[0]
    np.testing.assert_array_equal(out.counts[first:first + n, :Mq].argmax(axis=1), sym)
    # a dropout of one block (every tag removed) is still a loss of signal, re-acquired after it
    blk = rec.cfg.block_symbols * P * 1000.0
    a = float(t[t.size // 2])
    cut = t[(t < a) | (t >= a + blk)]
    out2, st2 = _run(rec, [cut])
    assert [e.kind for e in out2.events] == ["acquired", "loss_of_signal", "acquired"] and st2.losses == 1
    assert abs(out2.events[1].t_start_ps - a) < P * 1000.0


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
