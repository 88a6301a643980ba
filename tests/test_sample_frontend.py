# SPDX-License-Identifier: Apache-2.0
"""Sample-domain front end: timing recovery under clock offset, SCPPM end to end from APD samples,
DPSK burst detection, chunking invariance, bad input."""
import numpy as np
import pytest

from modem.channel.apd import APDDetector, SampleClock, apd_samples, apd_slot_moments, dpsk_balanced_samples
from modem.channel.optical import PreampDLIReceiver
from modem.errors import ConfigError, ShapeError
from modem.fec.scppm import SCPPMCode, SCPPMDecoder, SCPPMTransmitter
from modem.modulation.dpsk import BurstFormat, differential_encode
from modem.sync.samples import (FrontEndConfig, SampleFrontEnd, SlotStatistics, gaussian_slot_llr,
                                ppm_symbol_metric)

M, GUARD = 16, 4
APD = APDDetector(gain=50.0, k_eff=0.02, thermal_sigma=20.0)


def ppm_pulses(rng, n_sym):
    sym = rng.integers(0, M, n_sym)
    p = np.zeros((n_sym, M + GUARD), np.uint8)
    p[np.arange(n_sym), sym] = 1
    return sym, p.ravel()


def true_slots(clk, stats):
    """Transmitted slot of each recovered slot and its centring error (slots)."""
    tm = clk.slot_of_sample(stats.t)
    k = np.floor(tm).astype(np.int64)
    return k, tm - k - 0.5


@pytest.mark.parametrize("ppm,phase", [(200.0, 0.37), (-150.0, 0.8)])
def test_timing_recovery_tracks_clock_offset(ppm, phase):
    rng = np.random.default_rng(11)
    sym, pulses = ppm_pulses(rng, 2500)
    clk = SampleClock(sps=4, pulse_sigma=0.25, ppm=ppm, phase=phase, adc_bits=12, full_scale=4000.0)
    y = apd_samples(pulses, 40.0, 0.05, APD, clk, rng)
    fe = SampleFrontEnd(FrontEndConfig(sps=4, pulse_sigma=0.25, loop_bw=0.002))
    s, st = fe.push(y)
    k, err = true_slots(clk, s)
    locked = slice(5000, None)
    assert np.all(np.diff(k[locked]) == 1)                   # one output per slot, no slips
    assert np.max(np.abs(err[locked])) < 0.03                 # centred within 3 % of a slot
    assert -st.frequency_offset * 1e6 == pytest.approx(ppm, abs=10)   # learnt clock offset
    z = np.full(pulses.size, -np.inf)
    z[k[locked]] = s.z[locked]
    zs = z.reshape(-1, M + GUARD)[300:-1, :M]
    assert np.array_equal(zs.argmax(axis=1), sym[300:-1])     # symbol error rate 0 at high SNR


def test_scppm_end_to_end_from_apd_samples():
    rng = np.random.default_rng(2024)
    code = SCPPMCode(M=16, rate="1/2")
    F, spc = 2, code.slots_per_codeword
    u = rng.integers(0, 2, (F, code.k), dtype=np.uint8)
    cw = SCPPMTransmitter(code).modulate(u).ravel()
    _, pre = ppm_pulses(rng, 250)                            # acquisition preamble, 5000 slots
    pulses = np.concatenate([pre, cw, np.zeros(64, np.uint8)])
    ns, nb = 8.0, 0.1
    clk = SampleClock(sps=4, pulse_sigma=0.25, ppm=180.0, phase=0.61, adc_bits=12, full_scale=3000.0)
    y = apd_samples(pulses, ns, nb, APD, clk, rng)
    fe = SampleFrontEnd(FrontEndConfig(sps=4, pulse_sigma=0.25))
    s, _ = fe.push(y)
    # codeword sync: correlate the recovered slots with the CSM pulse positions
    csm_pos = code.csm_symbols + code.slots_per_symbol * np.arange(code.L_csm)
    n_off = pre.size + 200
    score = s.z[np.arange(n_off)[:, None] + csm_pos].sum(axis=1)
    off = int(score.argmax())
    assert abs(off - pre.size) <= 2                          # recovered numbering vs transmitted slots
    moments = apd_slot_moments(APD, ns, nb, noise_var=APD.thermal_sigma ** 2 * fe.noise_gain)
    llr = gaussian_slot_llr(s.z[off: off + F * spc].reshape(F, spc), moments)
    res = SCPPMDecoder(code, max_iter=12).decode(ppm_symbol_metric(llr, code))
    assert res.crc_ok.all()
    np.testing.assert_array_equal(res.u_hat, u)


def dpsk_burst_stream(rng, n_bursts=8, lead=300):
    fmt = BurstFormat(divider=4, burst_bits=256)
    n_bits = n_bursts * fmt.burst_bits
    c = rng.integers(0, 2, n_bits, dtype=np.uint8)
    x, _ = differential_encode(c)
    slots = fmt.slot_index(np.arange(n_bits)) + lead
    field = np.zeros(slots[-1] + 200, np.complex128)
    field[slots] = (-1.0) ** x
    first = slots[:: fmt.burst_bits]
    last = slots[fmt.burst_bits - 1:: fmt.burst_bits]
    return c, slots, field, first, last


def test_dpsk_burst_detection_and_bits():
    rng = np.random.default_rng(5)
    c, slots, field, first, last = dpsk_burst_stream(rng)
    clk = SampleClock(sps=4, pulse_sigma=0.25, ppm=-150.0, phase=0.2)
    y = dpsk_balanced_samples(field, PreampDLIReceiver(ppb=40.0), clk, rng, thermal_sigma=1.0)
    fe = SampleFrontEnd(FrontEndConfig(sps=4, pulse_sigma=0.25, loop_bw=0.01, burst_threshold=16.0))
    s = fe.process(y)
    k, err = true_slots(clk, s)
    shift = k - s.index                                      # recovered numbering -> transmitted slot
    assert np.all(shift[first[1]:] == shift[-1])             # no slip after the first burst
    b = s.bursts + shift[-1]
    assert b.shape == (len(first), 2)                        # every burst, no false alarm
    assert np.all(np.abs(b[:, 0] - (first + 1)) <= 2)        # first bit has no phase reference
    assert np.all(np.abs(b[:, 1] - last) <= 2)
    # bits at the recovered timing (bursts 2..8; burst-start bits erased)
    z = np.zeros(field.size)
    z[k] = s.z
    sel = np.arange(c.size) >= 256
    sel &= np.arange(c.size) % 256 != 0
    assert np.array_equal((z[slots[sel]] < 0).astype(np.uint8), c[sel])
    on = np.zeros(field.size, bool)
    on[k] = s.in_burst
    assert on[slots[sel]].mean() > 0.98                      # in_burst rises after burst_confirm slots


def _chunked(fe, y, rng):
    cuts = np.sort(rng.integers(0, y.size + 1, 25))
    cuts = np.concatenate([[0], cuts, [y.size], [y.size]])   # includes empty chunks
    st, parts = fe.initial_state(), []
    for a, b in zip(cuts[:-1], cuts[1:]):
        out, st = fe.push(y[a:b], st)
        parts.append(out)
    return SlotStatistics.concat(parts), st


@pytest.mark.parametrize("kind", ["ppm", "dpsk"])
def test_chunking_gives_identical_output(kind):
    rng = np.random.default_rng(99)
    if kind == "ppm":
        _, pulses = ppm_pulses(rng, 400)
        clk = SampleClock(sps=4, pulse_sigma=0.25, ppm=120.0, phase=0.3)
        y = apd_samples(pulses, 20.0, 0.1, APD, clk, rng)
        fe = SampleFrontEnd(FrontEndConfig(sps=4, pulse_sigma=0.25))
    else:
        *_, field, _, _ = dpsk_burst_stream(rng, n_bursts=3, lead=50)
        y = dpsk_balanced_samples(field, PreampDLIReceiver(ppb=40.0), SampleClock(sps=3, ppm=-90.0), rng)
        fe = SampleFrontEnd(FrontEndConfig(sps=3, loop_bw=0.01, burst_threshold=16.0))
    one, st1 = fe.push(y)
    for _ in range(3):
        many, stn = _chunked(fe, y, rng)
        for f in ("z", "t", "index", "in_burst", "bursts"):
            np.testing.assert_array_equal(getattr(many, f), getattr(one, f))
        assert stn.same_as(st1)
    if kind == "dpsk":
        assert len(one.bursts) >= 2
    # int16 ADC codes are accepted
    out, _ = fe.push(np.round(y[:400]).astype(np.int16))
    assert len(out) > 0


def test_bad_input_and_config():
    fe = SampleFrontEnd(FrontEndConfig())
    with pytest.raises(ShapeError, match="nan at chunk index 2"):
        fe.push(np.array([0.0, 1.0, np.nan, 3.0]))
    with pytest.raises(ShapeError, match="dtype complex128"):
        fe.push(np.zeros(8, np.complex128))
    with pytest.raises(ShapeError, match="1-D"):
        fe.push(np.zeros((2, 8)))
    out, st = fe.push(np.zeros(0))
    assert len(out) == 0 and st.n_in == 0
    with pytest.raises(ConfigError, match="loop_bw"):
        FrontEndConfig(loop_bw=0.5)
    with pytest.raises(ConfigError, match="burst_hangover"):
        FrontEndConfig(burst_threshold=1.0, burst_hangover=0)
    with pytest.raises(ConfigError, match="gate_timing"):
        FrontEndConfig(gate_timing=True)
    with pytest.raises(ShapeError, match="slot_llr"):
        ppm_symbol_metric(np.zeros((1, 10)), SCPPMCode(M=16))


def test_burst_periodic_mode_config_and_chunking():
    """burst_period needs the burst detector and a look-ahead; burst_length < burst_period. At duty
    1/40 (256-bit bursts, -150 ppm) the burst-to-burst clock estimate finds the offset, every burst
    after the first opens at slot (first start) + n * 10240, and chunking changes nothing."""
    with pytest.raises(ConfigError, match="burst_period"):
        FrontEndConfig(burst_period=10240, acquire_slots=248)
    with pytest.raises(ConfigError, match="burst_period"):
        FrontEndConfig(burst_period=10240, burst_threshold=1.0, acquire_slots=4)
    with pytest.raises(ConfigError, match="burst_length"):
        FrontEndConfig(burst_period=512, burst_length=512, burst_threshold=1.0, acquire_slots=64)
    from modem.sample_receiver import DPSKLink, dpsk_transmit_frames, random_tm_frames
    link = DPSKLink(frame="short", rate="1/2", frame_len=256, divider=40, burst_bits=256, ppb=6.0,
                    thermal_sigma=0.5, ppm=-150.0, phase=0.3)
    y = dpsk_transmit_frames(random_tm_frames(link.spec, 4, seed=2), link, np.random.default_rng(2),
                             lead_slots=1000)[:40960 * 30]
    opts = link._burst_options()
    assert opts["burst_period"] == 10240 and opts["burst_length"] == 256
    fe = SampleFrontEnd(link._frontend_config(**opts))
    one, st1 = fe.push(y)
    parts, st = [], None
    for part in np.split(y, np.sort(np.random.default_rng(4).integers(0, y.size, 50))):
        s, st = fe.push(part, st)
        parts.append(s)
    many = SlotStatistics.concat(parts)
    assert np.array_equal(one.z, many.z) and np.array_equal(one.t, many.t)
    assert np.array_equal(one.bursts, many.bursts) and st1.same_as(st)
    assert st1.frequency_offset == pytest.approx(150e-6, abs=15e-6)
    starts = one.bursts[1:, 0]                  # detected start: the first referenced bit (or later
    assert len(starts) >= 25                    # when its first hot slots are missed)
    dev = (starts - starts[0] + 5000) % 10240 - 5000
    assert np.median(np.abs(dev)) <= 1 and np.all(np.abs(dev) <= 10)
    # without it the clock drifts off the burst period
    fe0 = SampleFrontEnd(link._frontend_config(**{**opts, "burst_period": 0, "burst_length": 0}))
    b0 = fe0.process(y).bursts[1:, 0]
    dev0 = (b0 - b0[0] + 5000) % 10240 - 5000
    assert np.any(np.abs(dev0) > 10)
