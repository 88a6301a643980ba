# SPDX-License-Identifier: Apache-2.0
"""Codewords held back before the decoder (``decode_batch``, :class:`modem.receiver.CodewordHold`).

A replay on the GPU decodes in calls of up to 1024 codewords instead of the tens each pushed chunk
completes. Holding them must not change a single frame: the same octets, flags, iteration counts,
receive times and statistics, through a channel interleaver and a cloud (restarts in the held
stream), in any chunking. Only when the frames come out changes, and how many decoder calls run.
"""
import math
import subprocess
import sys

import numpy as np
import pytest

from modem import backend
from modem.errors import ConfigError
from modem.fec.scppm import SCPPMCode
from modem.offline import decode_capture
from modem.receiver import CodewordHold, SCPPMTimeTagReceiver
from tests.test_receiver import NB_DET, SLOT_PS, SPEC, _run, interleaved_pass_through_a_cloud

CAPTURE = "captures/snspd16_pass.h5"


def _key(frames):
    return [(f.data, f.valid, f.crc_ok, f.fecf_ok, f.iterations, f.t_ps, f.codewords, f.sync_metric,
             f.t_sample if math.isfinite(f.t_sample) else None, f.fec) for f in frames]


def _stats(rx):
    s = rx.stats
    return (s.tags, s.samples, s.codewords, s.codewords_crc_failed, s.frames, s.frames_bad,
            s.frame_sync_restarts, [(e.kind, e.t_start_ps, e.t_end_ps) for e in s.events])


def _spy_decoder_calls(rx):
    """Record the number of codewords of each decoder call of a time-tag receiver."""
    calls = []
    receive = rx.decoder.receive_stream

    def spy(counts, restart=None):
        calls.append(len(counts))
        return receive(counts, restart)

    rx.decoder.receive_stream = spy
    return calls


@pytest.fixture(scope="module")
def cloud_pass():
    """16-PPM with the channel interleaver (one codeword of delay) and symbol repetition 2, 14 TM
    frames, a 200 ms cloud after codeword 6: a restart in the held codeword stream."""
    code, frames, tags = interleaved_pass_through_a_cloud()
    rx = SCPPMTimeTagReceiver(code, SPEC, SLOT_PS, 1.5, NB_DET)
    calls = _spy_decoder_calls(rx)
    ref = _run(rx, tags, 50, 5)
    return code, frames, tags, ref, _stats(rx), calls


@pytest.mark.parametrize("decode_batch, n_chunks", [(2, 50), (5, 7), (1000, 50), (1000, 0)])
def test_time_tag_receiver_gives_the_same_frames_at_any_decode_batch(cloud_pass, decode_batch, n_chunks):
    code, frames, tags, ref, ref_stats, ref_calls = cloud_pass
    sent = set(frames)
    assert sum(f.valid for f in ref) >= 6 and all(f.data in sent for f in ref if f.valid)
    assert [e[0] for e in ref_stats[-1]] == ["acquired", "loss_of_signal", "acquired"]
    rx = SCPPMTimeTagReceiver(code, SPEC, SLOT_PS, 1.5, NB_DET, decode_batch=decode_batch)
    assert rx.decode_batch == decode_batch
    calls = _spy_decoder_calls(rx)
    got = _run(rx, tags, n_chunks, 7)
    assert _key(got) == _key(ref)
    assert _stats(rx) == ref_stats
    assert sum(calls) == sum(ref_calls)                        # every codeword decoded once
    assert all(n >= decode_batch for n in calls[:-1])          # in calls of at least decode_batch ...
    assert len(calls) < len(ref_calls) or n_chunks == 0        # ... so fewer of them
    if decode_batch > sum(ref_calls):
        assert len(calls) == 1                                 # all held to the end of the record


def test_held_codewords_come_out_at_flush_and_reset_forgets_them(cloud_pass):
    """A push that completes fewer than ``decode_batch`` codewords returns nothing; ``flush`` gives
    them; ``reset`` drops what is held (a fresh record), as it restarts every other stage."""
    code, _, tags, ref, _, _ = cloud_pass
    rx = SCPPMTimeTagReceiver(code, SPEC, SLOT_PS, 1.5, NB_DET, decode_batch=10_000)
    half = tags.t_ps[: tags.t_ps.size // 2]
    assert rx.push(half) == [] and rx._hold.held > 0 and rx.stats.codewords == 0
    rx.reset()
    assert rx._hold.held == 0
    got = rx.push(tags.t_ps)
    assert got == []
    assert _key(got + rx.flush()) == _key(ref)


def test_sample_receiver_gives_the_same_frames_at_any_decode_batch():
    """SCPPM over an APD, with the channel interleaver: the frames (with their decoder status
    tuples: CRC, iterations, CSM score, lock) are the same whether decoded per push or held."""
    from modem.sample_receiver import SCPPMSampleReceiver, link_from_dict, random_tm_frames, scppm_apd_transmit
    link = link_from_dict({"chain": "scppm-apd", "ns": 8.0, "nb": 0.1, "thermal_sigma": 20.0,
                           "interleaver_rows": 2, "interleaver_shift": 1890})
    frames = random_tm_frames(link.spec, 8, seed=4)
    y = scppm_apd_transmit(frames, link, np.random.default_rng(4), lead_slots=1000).astype(np.float32)
    out = {}
    for decode_batch, chunk in ((1, 1 << 16), (3, 1 << 16), (1000, 50_000)):
        rx = SCPPMSampleReceiver(link, decode_batch=decode_batch)
        assert rx.decode_batch == decode_batch
        got = []
        for a in range(0, y.size, chunk):
            got += rx.push(y[a:a + chunk])
        out[decode_batch] = (_key(got + rx.flush()), _stats(rx))
    assert sum(f[1] for f in out[1][0]) >= 4 and {f[0] for f in out[1][0] if f[1]} <= set(frames)
    assert out[3] == out[1] and out[1000] == out[1]


def test_decode_capture_reports_the_decode_batch_and_the_same_frames():
    ref = decode_capture(CAPTURE, backend="cpu")
    assert ref["backend"]["decode_batch"] == 1
    rep = decode_capture(CAPTURE, backend="cpu", decode_batch=7)
    assert rep["backend"]["decode_batch"] == 7
    volatile = ("throughput", "backend", "file")
    assert {k: v for k, v in rep.items() if k not in volatile} == {k: v for k, v in ref.items() if k not in volatile}
    assert rep["frames"]["good"] > 0


def test_default_decode_batch():
    """1 on the CPU; up to 1024 on a kernel launcher, fewer where they would hold over 256 MB."""
    launcher = object()
    assert backend.default_decode_batch(None) == 1
    assert backend.default_decode_batch(launcher) == backend.GPU_DECODE_BATCH == 1024
    for M, want in ((16, 1024), (128, 385)):
        code = SCPPMCode(M=M, rate="1/2")
        n = backend.default_decode_batch(launcher, 2 * code.slots_per_codeword)
        assert n == want and n * 2 * code.slots_per_codeword <= backend.GPU_HOLD_BYTES
    assert SCPPMTimeTagReceiver(SCPPMCode(M=16, rate="1/2"), SPEC, SLOT_PS, 3.0, 0.02).decode_batch == 1


@pytest.mark.parametrize("bad", [0, -3, 1.5, True, "8", None])
def test_bad_decode_batch_is_refused_naming_it(bad):
    with pytest.raises(ConfigError, match=f"decode_batch must be an integer >= 1.*got {bad!r}"):
        CodewordHold(bad)
    if bad is not None:
        with pytest.raises(ConfigError, match=f"got {bad!r}"):
            SCPPMTimeTagReceiver(SCPPMCode(M=16, rate="1/2"), SPEC, SLOT_PS, 3.0, 0.02, decode_batch=bad)
        # the caller's value, named as such before the capture is opened (not "bad link parameters")
        with pytest.raises(ConfigError, match=f"decode_batch must be.*got {bad!r}"):
            decode_capture(CAPTURE, decode_batch=bad)


def test_cli_decode_batch():
    run = [sys.executable, "-c", "import sys; from modem.cli import main; sys.exit(main())", "decode", CAPTURE,
           "--no-progress"]
    bad = subprocess.run(run + ["--decode-batch", "0"], capture_output=True, text=True)
    assert bad.returncode == 2 and bad.stderr.strip() == "modem: error: --decode-batch must be >= 1, got 0"
    ok = subprocess.run(run + ["--decode-batch", "16"], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    assert "backend cpu, 16 codewords per decoder call" in ok.stdout
    assert "frames   30 good, 0 bad" in ok.stdout
