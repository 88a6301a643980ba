# SPDX-License-Identifier: Apache-2.0
"""Review of the sample receive path (APD / balanced detector): regressions for bugs found in review.

Each test names the bug it pins; see the commit messages."""
import numpy as np
import pytest

from modem import backend
from modem.sample_receiver import (DPSKLink, DPSKSampleReceiver, SCPPMAPDLink, SCPPMSampleReceiver,
                                   dpsk_transmit_frames, random_tm_frames, scppm_apd_transmit)

SCPPM_LINK = SCPPMAPDLink(M=16, rate="1/2", frame_len=1115, scid=0x42, vcid=1, ns=8.0, nb=0.1,
                          thermal_sigma=20.0, adc_bits=12, full_scale=4000.0, ppm=150.0, phase=0.37)


def _run(rx, y, cuts=()):
    out = []
    for part in np.split(y, list(cuts)):
        out += rx.push(part)
    return out + rx.flush()


def _key(f):
    return (f.data, f.t_sample, f.codewords, f.crc_ok, f.fecf_ok, f.iterations, f.sync_metric, f.fec)


# ---------------------------------------------------------------------------------------------
# flush: a record that ends right after its last codeword / FEC frame

@pytest.mark.parametrize("tail", [0, 1])
def test_scppm_record_ending_with_the_last_codeword_decodes_it(tail):
    """The front end left the last ~2.5 slots of a record unread (interpolation window / matched
    filter delay) and the slot CSM sync wanted one slot beyond a codeword: a codeword ending within
    3 slots of the record end was dropped by flush (3 TM frames sent, 2 received)."""
    frames = random_tm_frames(SCPPM_LINK.spec, 3, seed=1)
    y = scppm_apd_transmit(frames, SCPPM_LINK, np.random.default_rng(1), lead_slots=3000, tail_slots=tail)
    rx = SCPPMSampleReceiver(SCPPM_LINK)
    got = _run(rx, y)
    assert rx.stats.codewords == 4 and rx.stats.codewords_crc_failed == 0
    assert [f.data for f in got if f.valid] == frames
    assert rx.stats.samples == y.size
    rx2 = SCPPMSampleReceiver(SCPPM_LINK)
    cuts = np.sort(np.random.default_rng(3).integers(0, y.size + 1, 25))
    assert [_key(f) for f in _run(rx2, y, cuts)] == [_key(f) for f in got]


@pytest.mark.parametrize("divider", [1, 40])
def test_dpsk_record_ending_with_the_last_fec_frame_decodes_it(divider):
    """The last FEC frame of a record that ends with it was lost (continuous: 3 bits unread by the
    front end, more than the flush's slip pad; duty 1/40: the burst-periodic front end waits for a
    look-ahead window past the last burst): 10 of 12 (6 of 8) TM frames."""
    link = DPSKLink(frame="short", rate="1/2", frame_len=256, divider=divider, burst_bits=256, ppb=8.0,
                    thermal_sigma=0.5, ppm=-150.0, phase=0.3)
    frames = random_tm_frames(link.spec, 12 if divider == 1 else 8, seed=1)
    y = dpsk_transmit_frames(frames, link, np.random.default_rng(1), lead_slots=1000, tail_slots=0)
    rx = DPSKSampleReceiver(link)
    got = _run(rx, y)
    assert rx.stats.codewords_crc_failed == 0
    assert [f.data for f in got if f.valid] == frames
    rx2 = DPSKSampleReceiver(link)
    cuts = np.sort(np.random.default_rng(5).integers(0, y.size + 1, 20))
    assert [_key(f) for f in _run(rx2, y, cuts)] == [_key(f) for f in got]


# ---------------------------------------------------------------------------------------------
# DPSK signal gate: thermal / ADC noise through the matched filter

@pytest.mark.parametrize("sps,thermal_sigma,ppb", [(2.0, 2.0, 4.0), (4.0, 3.0, 5.0), (3.0, 1.5, 3.0)])
def test_dpsk_signal_gate_stays_closed_on_thermal_noise(sps, thermal_sigma, ppb):
    """DPSKLink took the matched filter's white-noise gain as 1/4 ("a bound for sps >= 2"); it is
    sum g^2 = 0.97 at sps 2, 0.56 at sps 4: with thermal noise the z^2 signal gate's threshold sat
    below the noise-only level, the gate stayed open on noise and the timing loop integrated noise
    (-27800 ppm after 20000 dark slots at sps 2), so the signal then arrived to a clock far off."""
    from modem.channel.apd import dpsk_balanced_samples
    link = DPSKLink(frame_len=256, sps=sps, thermal_sigma=thermal_sigma, ppb=ppb, ppm=100.0, phase=0.3)
    rx = DPSKSampleReceiver(link)
    assert rx.frontend.config.signal_threshold > 1.3 * (2 * rx.link.receiver_model.sigma2 ** 2
                                                        + thermal_sigma ** 2 * rx.frontend.noise_gain)
    y = dpsk_balanced_samples(np.zeros(20000, complex), link.receiver_model, link.clock, np.random.default_rng(0),
                              thermal_sigma=thermal_sigma)
    assert rx.push(y) == []
    assert rx._fe_state.frequency_offset == 0.0 and rx._fe_state.ivars[1] == 0     # the loop never ran


def test_dpsk_first_fec_frame_after_a_long_dark_lead_with_thermal_noise():
    """The same bug end to end: 20000 dark slots, then 12 TM frames (4 FEC frames) at sps 2 with
    thermal noise 2: the first FEC frame was lost (8 of 12 TM frames)."""
    link = DPSKLink(frame_len=256, sps=2.0, thermal_sigma=2.0, ppb=4.0, ppm=100.0, phase=0.3)
    frames = random_tm_frames(link.spec, 12, seed=3)
    y = dpsk_transmit_frames(frames, link, np.random.default_rng(0), lead_slots=20000)
    rx = DPSKSampleReceiver(link)
    got = _run(rx, y)
    assert [f.data for f in got if f.valid] == frames
    assert rx.stats.codewords == 4 and rx.stats.codewords_crc_failed == 0


# ---------------------------------------------------------------------------------------------
# soft-metric parameters: bad values named, never turned into NaN / constant LLRs

def test_slot_and_bit_llr_bad_parameters_are_named():
    """APDSlotLLR took n_points=1 (a constant LLR of +4.3 for every z), noise_var=NaN (NaN LLRs)
    and raised bare 'math domain error' / 'array of sample points is empty' for ns < 0, nb < 0,
    n_points=0; gaussian_slot_llr passed a NaN mean on; dpsk_bit_llr divided by zero
    (sigma2=0, es=0) into NaN LLRs."""
    from modem.channel.apd import APDDetector
    from modem.errors import ConfigError
    from modem.sample_receiver import APDSlotLLR
    from modem.sync.samples import dpsk_bit_llr, gaussian_slot_llr
    apd = APDDetector()
    for kw, name in ((dict(n_points=1), "n_points=1"), (dict(n_points=0), "n_points=0"),
                     (dict(noise_var=float("nan")), "noise_var=nan"), (dict(noise_var=-1.0), "noise_var=-1.0"),
                     (dict(ns=-1.0), "ns=-1.0"), (dict(ns=0.0), "ns=0.0"), (dict(nb=-0.1), "nb=-0.1")):
        args = {"ns": 4.0, "nb": 0.1, "noise_var": 100.0, **kw}
        with pytest.raises(ConfigError, match=name):
            APDSlotLLR(apd, **args)
    llr = APDSlotLLR(apd, 4.0, 0.1, 100.0)
    assert np.all(np.isfinite(llr(np.array([-1e6, 0.0, 200.0, 1e6]))))
    with pytest.raises(ConfigError, match="mean1=nan"):
        gaussian_slot_llr([0.0], {"mean0": 0.0, "var0": 1.0, "mean1": float("nan"), "var1": 2.0})
    for kw, name in ((dict(es=0.0, sigma2=0.0), "sigma2=0.0"), (dict(es=float("inf"), sigma2=1.0), "es=inf"),
                     (dict(es=4.0, sigma2=1.0, modes=0), "modes=0"), (dict(es=4.0, sigma2=1.0, extra_var=-1.0),
                                                                        "extra_var=-1.0")):
        with pytest.raises(ConfigError, match=name):
            dpsk_bit_llr([1.0, -1.0], **kw)
    assert np.all(dpsk_bit_llr([1.0, -1.0], 4.0, 0.5) * [1, -1] > 0)       # positive = bit 0 (d > 0)


# ---------------------------------------------------------------------------------------------
# coverage of the brief's streaming cases (found correct in review; kept as regressions)

def test_front_end_one_sample_chunks_at_a_non_integer_sample_rate():
    """Signal gate + feed-forward acquisition at 3.7 samples per slot, 120 ppm: chunks of 1 sample
    and of sizes that split slots give the one-shot output and state bit for bit."""
    from modem.channel.apd import APDDetector, SampleClock, apd_samples
    from modem.sync.samples import FrontEndConfig, SampleFrontEnd, SlotStatistics
    rng = np.random.default_rng(5)
    p = np.zeros((150, 20), np.uint8)
    p[np.arange(150), rng.integers(0, 16, 150)] = 1
    y = apd_samples(p.ravel(), 20.0, 0.1, APDDetector(thermal_sigma=20.0), SampleClock(sps=3.7, ppm=120.0, phase=0.3),
                    rng)
    cfg = FrontEndConfig(sps=3.7, signal_threshold=FrontEndConfig(sps=3.7).gate_gain() * 50.0 * 0.6, acquire_slots=64)
    fe = SampleFrontEnd(cfg)
    one, st1 = fe.push(y)
    assert len(one) > 2900
    for sizes in ([1], [5, 1, 7, 2]):
        st, parts, a, i = None, [], 0, 0
        while a < y.size:
            b = min(y.size, a + sizes[i % len(sizes)])
            s, st = fe.push(y[a:b], st)
            parts.append(s)
            a, i = b, i + 1
        many = SlotStatistics.concat(parts)
        for f in ("z", "t", "index", "in_burst", "bursts"):
            np.testing.assert_array_equal(getattr(many, f), getattr(one, f))
        assert st.same_as(st1)
        tail, _ = fe.drain(st)
        tail1, _ = fe.drain(st1)
        np.testing.assert_array_equal(tail.z, tail1.z)
    assert len(tail1) >= 2 and np.all(tail1.t <= y.size - 1) and len(fe.drain(None)[0]) == 0


def test_dpsk_burst_mode_non_integer_sample_rate_small_chunks():
    """2.5 samples per bit, duty 1/4, chunks of 97 samples (not a multiple of a bit): every frame, as one shot."""
    link = DPSKLink(frame_len=256, divider=4, burst_bits=256, ppb=20.0, thermal_sigma=0.5, ppm=-150.0, phase=0.3,
                    sps=2.5)
    frames = random_tm_frames(link.spec, 6, seed=4)
    y = dpsk_transmit_frames(frames, link, np.random.default_rng(4), lead_slots=500, tail_slots=5)
    one = _run(DPSKSampleReceiver(link), y)
    assert [f.data for f in one if f.valid] == frames
    many = _run(DPSKSampleReceiver(link), y, np.arange(97, y.size, 97))
    assert [_key(f) for f in many] == [_key(f) for f in one]


def test_dpsk_link_too_short_bursts_name_burst_bits():
    """DPSKLink(divider=2, burst_bits=4) (a valid BurstFormat) failed with 'FrontEndConfig:
    acquire_slots must be ..., got acquire_slots=-4': a value the user never gave."""
    from modem.errors import ConfigError
    for bb in (2, 4, 8):
        with pytest.raises(ConfigError, match=f"burst_bits={bb}"):
            DPSKLink(divider=2, burst_bits=bb)
    assert DPSKLink(divider=2, burst_bits=9)._burst_options()["acquire_slots"] == 1
    assert DPSKLink(divider=1, burst_bits=4).burst_bits == 4          # unused at duty 1


# ---------------------------------------------------------------------------------------------
# DPSK sync events: one per lock gain / loss whatever the chunking

def test_dpsk_sync_events_of_two_gaps_do_not_depend_on_chunking():
    """The FEC-frame sync events were resolved once per push ('one loss and one gain per push at
    most'): a record with two long gaps pushed in one piece gave [loss_of_signal (lock_losses 2),
    acquired (locks 3)] (no first acquisition, one loss and one re-acquisition missing) where 50000-
    sample chunks gave the five events acquired, loss, acquired, loss, acquired."""
    link = DPSKLink(frame_len=256, scid=0x42, vcid=1, ppb=4.0, ppm=-150.0, phase=0.3, thermal_sigma=0.5)
    frames = random_tm_frames(link.spec, 60, seed=3)
    y = dpsk_transmit_frames(frames, link, np.random.default_rng(3), lead_slots=1000)
    n_wire, sps = link.code.n + 32, link.clock.samples_per_slot
    for lo, hi in ((3.3, 7.6), (10.3, 14.6)):
        y[int((1000 + lo * n_wire) * sps):int((1000 + hi * n_wire) * sps)] = 0.0
    runs = []
    for cuts in ((), np.arange(50000, y.size, 50000), np.sort(np.random.default_rng(8).integers(0, y.size, 30))):
        rx = DPSKSampleReceiver(link)
        got = _run(rx, y, cuts)
        runs.append(([_key(f) for f in got], [(e.kind, e.t_start_ps, e.t_end_ps, e.info) for e in rx.stats.events]))
    assert [e[0] for e in runs[0][1]] == ["acquired", "loss_of_signal", "acquired", "loss_of_signal", "acquired"]
    assert all(e[3] in ({"inverted": False, "locks": 1}, {"lock_losses": 1}) for e in runs[0][1])
    assert runs[1] == runs[0] and runs[2] == runs[0]


def test_front_end_process_reads_the_slots_up_to_the_record_end():
    """SampleFrontEnd.process (the one-shot helper) stopped ~2.5 slots before the end of the record
    (the matched filter's delay and the interpolation window): it now drains them, as a receiver's
    push + flush does, and returns exactly push's slots followed by drain's."""
    from modem.channel.apd import APDDetector, SampleClock, apd_samples
    from modem.sync.samples import FrontEndConfig, SampleFrontEnd
    rng = np.random.default_rng(8)
    p = np.zeros((120, 20), np.uint8)
    p[np.arange(120), rng.integers(0, 16, 120)] = 1
    y = apd_samples(p.ravel(), 20.0, 0.1, APDDetector(thermal_sigma=20.0), SampleClock(sps=4, ppm=80.0, phase=0.1),
                    rng)
    fe = SampleFrontEnd(FrontEndConfig(sps=4, signal_threshold=FrontEndConfig(sps=4).gate_gain() * 50.0 * 0.6,
                                       acquire_slots=64))
    s = fe.process(y)
    pushed, st = fe.push(y)
    tail, _ = fe.drain(st)
    assert len(tail) >= 2 and len(s) == len(pushed) + len(tail)
    np.testing.assert_array_equal(s.index, np.concatenate([pushed.index, tail.index]))
    assert y.size - 1 - 4 < s.t[-1] <= y.size - 1


@pytest.mark.skipif(backend.gpu_available(), reason="this machine has a GPU")
def test_samples_with_gpu_backend_fails_with_one_line():
    """MODEM_BACKEND=gpu modem samples ... ran on the CPU silently (exit 0): without a GPU, asking for
    it is one line and exit 2, as for `modem decode`."""
    import os
    import subprocess
    import sys
    out = subprocess.run([sys.executable, "-m", "modem.cli", "samples", "dpsk", "--frames", "1"],
                         env=dict(os.environ, MODEM_BACKEND="gpu"), capture_output=True, text=True, timeout=300)
    lines = out.stderr.strip().splitlines()
    assert out.returncode == 2 and len(lines) == 1 and "MODEM_BACKEND" in lines[0], out.stderr[-400:]
