# SPDX-License-Identifier: Apache-2.0
"""APD + ADC sample model: avalanche statistics vs McIntyre moments, pulse shape, clock, ADC, errors."""
import numpy as np
import pytest

from modem.channel.apd import (APDDetector, SampleClock, apd_samples, apd_slot_moments, dpsk_balanced_samples,
                               shape_and_sample)
from modem.channel.optical import PreampDLIReceiver
from modem.errors import ConfigError, ShapeError


def test_excess_noise_factor_mcintyre():
    assert APDDetector(gain=1.0, k_eff=0.3).excess_noise_factor == pytest.approx(1.0)
    G, k = 100.0, 0.02
    assert APDDetector(gain=G, k_eff=k).excess_noise_factor == pytest.approx(k * G + (1 - k) * (2 - 1 / G))
    assert APDDetector(gain=10.0, k_eff=1.0).excess_noise_factor == pytest.approx(10.0)


@pytest.mark.parametrize("n", [0.3, 5.0])
def test_apd_slot_mean_variance_match_theory(n):
    rng = np.random.default_rng(7)
    apd = APDDetector(gain=40.0, k_eff=0.05)
    q = apd.multiply(rng.poisson(n, 400_000), rng)
    m = apd_slot_moments(apd, ns=n, nb=0.0)
    mean_th, var_th = m["mean1"], m["var1"]
    assert q.mean() == pytest.approx(mean_th, rel=0.01)
    assert q.var() == pytest.approx(var_th, rel=0.03)
    # conditional on N primaries: mean G N, variance G^2 (F-1) N
    qn = apd.multiply(np.full(200_000, 3), rng)
    F = apd.excess_noise_factor
    assert qn.mean() == pytest.approx(3 * 40.0, rel=0.01)
    assert qn.var() == pytest.approx(40.0 ** 2 * (F - 1) * 3, rel=0.03)


def test_apd_samples_statistics_at_pulse_centres():
    # sps = 4, phase = 0.25: sample 4k + 1 sits exactly on the centre of slot k (peak-normalised pulse)
    rng = np.random.default_rng(3)
    n_slots = 200_000
    pulses = np.zeros(n_slots, np.uint8)
    pulses[::8] = 1
    apd = APDDetector(gain=30.0, k_eff=0.02, thermal_sigma=5.0)
    clk = SampleClock(sps=4, pulse_sigma=0.2, phase=0.25)
    y = apd_samples(pulses, 4.0, 0.2, apd, clk, rng)
    assert y.shape == (4 * n_slots - 1,)     # t_n = 0.25 + n/4 < n_slots
    c = y[1::4]
    m = apd_slot_moments(apd, 4.0, 0.2, noise_var=5.0 ** 2)
    isi = np.exp(-1.0 / (2 * 0.2 ** 2))     # neighbour pulse tail at one slot (about 4e-6)
    on, off = c[::8], c[1::8]
    assert on.mean() == pytest.approx(m["mean1"], rel=0.01)
    assert on.var() == pytest.approx(m["var1"], rel=0.04)
    assert off.mean() == pytest.approx(m["mean0"] + isi * m["mean1"], rel=0.05)
    assert off.var() == pytest.approx(m["var0"], rel=0.05)


def test_pulse_shape_clock_and_adc():
    clk = SampleClock(sps=4, pulse_sigma=0.3, phase=0.0)
    q = np.zeros(10)
    q[5] = 100.0
    y = shape_and_sample(q, clk, 0)
    t = clk.sample_times(10)
    np.testing.assert_allclose(y, 100.0 * np.exp(-(t - 5.5) ** 2 / (2 * 0.3 ** 2)), rtol=1e-12, atol=1e-9)
    # clock offset: +250 ppm = more samples per slot
    fast = SampleClock(sps=4, ppm=250.0)
    assert fast.sample_times(100_000).shape[0] == pytest.approx(400_100, abs=1)
    assert fast.slot_of_sample(4 * 1.00025 * 10) == pytest.approx(10.0)
    # ADC: 4 bits over +-8: lsb 1, codes -8..7, clipping
    adc = SampleClock(sps=2, pulse_sigma=0.01, phase=0.5, adc_bits=4, full_scale=8.0)
    yq = shape_and_sample(np.array([2.4, -20.0, 30.0, 3.6]), adc, 0)
    np.testing.assert_array_equal(yq[0::2], [2.0, -8.0, 7.0, 4.0])


def test_dpsk_balanced_samples_sign_and_mean():
    rng = np.random.default_rng(5)
    bits = rng.integers(0, 2, 20_000)
    x = np.bitwise_xor.accumulate(bits)
    field = (-1.0) ** x
    rx = PreampDLIReceiver(ppb=30.0)
    y = dpsk_balanced_samples(field, rx, SampleClock(sps=2, pulse_sigma=0.1, phase=0.5), rng)
    d = y[::2][1:]                              # samples at slot centres (ISI ~ 1e-11)
    sgn = 1 - 2 * bits[1:]
    assert np.mean(d * sgn) == pytest.approx(30.0, rel=0.02)
    assert np.var(d * sgn) == pytest.approx(rx.port_moments()["var_d"], rel=0.05)
    assert np.mean((d < 0) != (bits[1:] == 1)) < 1e-3


def test_bad_parameters_and_input():
    with pytest.raises(ConfigError, match="gain"):
        APDDetector(gain=0.5)
    with pytest.raises(ConfigError, match="k_eff"):
        APDDetector(k_eff=1.5)
    with pytest.raises(ConfigError, match="ppm"):
        SampleClock(ppm=1e5)
    with pytest.raises(ConfigError, match="phase"):
        SampleClock(phase=1.0)
    with pytest.raises(ConfigError, match="adc_bits"):
        SampleClock(adc_bits=1)
    with pytest.raises(ShapeError, match="0/1"):
        apd_samples(np.array([0, 2], np.uint8), 1.0, 0.1, APDDetector(), SampleClock(), 0)
    with pytest.raises(ShapeError, match="1-D"):
        apd_samples(np.zeros((2, 3), np.uint8), 1.0, 0.1, APDDetector(), SampleClock(), 0)
    with pytest.raises(ConfigError, match="ns"):
        apd_samples(np.zeros(3, np.uint8), -1.0, 0.1, APDDetector(), SampleClock(), 0)
    with pytest.raises(ShapeError, match="finite"):
        dpsk_balanced_samples(np.array([1.0, np.nan]), PreampDLIReceiver(10.0), SampleClock(), 0)
