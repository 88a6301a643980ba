# SPDX-License-Identifier: Apache-2.0
"""Review tests of the SCPPM chain (CCSDS 142.0-B-1): each one pins a bug found in review."""
import numpy as np

from modem.fec.scppm import SCPPMCode, SCPPMTransmitter, attach_asm, slice_blocks
from modem.framing.bits import unpack_bytes
from modem.receiver import SCPPMTimeTagReceiver
from modem.sync.timetags import TimeTagConfig, simulate_time_tags

from test_receiver import LINK, NB, NB_DET, SLOT_PS, SPEC, _frames, _run


def test_frame_times_with_high_repetition_do_not_depend_on_chunking():
    """With repetition 16 a codeword spans 16 x (S + L) received symbols: the receiver kept the
    receive times of only 8 x (S + L) symbols, so fed in small chunks every frame came out with
    t_ps NaN, fed in one piece with its time (one-shot and chunked output differed)."""
    code = SCPPMCode(M=16, rate="2/3", repetition=16)
    frames = _frames(4)
    u = slice_blocks(attach_asm(np.stack([unpack_bytes(f) for f in frames])).reshape(-1), code.k)
    x = SCPPMTransmitter(code).modulate(u)
    tags = simulate_time_tags([(0, x)], 1.0, NB, np.random.default_rng(1), TimeTagConfig(**LINK))
    got = _run(SCPPMTimeTagReceiver(code, SPEC, SLOT_PS, 1.0, NB_DET), tags, 200, 5)
    one = _run(SCPPMTimeTagReceiver(code, SPEC, SLOT_PS, 1.0, NB_DET), tags, 0, 6)
    assert [f.data for f in got] == frames and all(f.valid for f in got)
    assert all(np.isfinite(f.t_ps) for f in got)
    assert [(f.data, f.t_ps, f.codewords) for f in got] == [(f.data, f.t_ps, f.codewords) for f in one]
