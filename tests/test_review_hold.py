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
