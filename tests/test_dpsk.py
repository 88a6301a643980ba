# SPDX-License-Identifier: Apache-2.0
"""DPSK modulation, AWGN / pre-amplified DLI channels, soft LLRs and log-normal scintillation."""
import numpy as np
import pytest
from scipy import stats

from modem.channel.awgn import AWGNChannel
from modem.channel.fading import LognormalScintillation
from modem.channel.optical import NF_IDEAL_DB, PreampDLIReceiver, dli_detect, dpsk_ber, port_moments
from modem.errors import ConfigError, ShapeError
from modem.framing.randomizer import pn8
from modem.modulation import dpsk

SEED = 20240601


@pytest.fixture
def rng():
    return np.random.default_rng(SEED)


# ---------------------------------------------------------------- differential coding


@pytest.mark.parametrize("shape", [(0,), (1,), (37,), (3, 50), (2, 3, 17)])
def test_differential_round_trip(rng, shape):
    c = rng.integers(0, 2, shape, dtype=np.uint8)
    x, s = dpsk.differential_encode(c)
    c2, s2 = dpsk.differential_decode(x)
    np.testing.assert_array_equal(c2, c)
    assert x.dtype == np.uint8 and x.shape == c.shape
    if shape[-1]:
        np.testing.assert_array_equal(s, x[..., -1])
        np.testing.assert_array_equal(s2, x[..., -1])


def test_differential_known_vector():
    x, _ = dpsk.differential_encode(np.array([1, 0, 1, 1, 0, 0, 1], dtype=np.uint8))
    np.testing.assert_array_equal(x, [1, 1, 0, 1, 1, 1, 0])
    x, _ = dpsk.differential_encode(np.array([1, 0], dtype=np.uint8), state=np.uint8(1))
    np.testing.assert_array_equal(x, [0, 0])


def test_differential_chunked_equals_one_shot(rng):
    c = rng.integers(0, 2, (3, 1000), dtype=np.uint8)
    x_ref, _ = dpsk.differential_encode(c)
    cuts = np.sort(rng.choice(np.arange(1, 1000), 9, replace=False))
    xs, ds, se, sd = [], [], None, None
    for part in np.split(c, cuts, axis=-1):
        x, se = dpsk.differential_encode(part, se)
        d, sd = dpsk.differential_decode(x, sd)
        xs.append(x)
        ds.append(d)
    np.testing.assert_array_equal(np.concatenate(xs, axis=-1), x_ref)
    np.testing.assert_array_equal(np.concatenate(ds, axis=-1), c)


def test_differential_bad_input():
    with pytest.raises(ShapeError, match="value 2"):
        dpsk.differential_encode(np.array([0, 2, 1]))
    with pytest.raises(ShapeError, match="state"):
        dpsk.differential_encode(np.zeros((2, 4), np.uint8), state=np.zeros(3, np.uint8))
    with pytest.raises(ShapeError, match="dtype"):
        dpsk.differential_decode(np.array([0.5, np.nan]))


# ---------------------------------------------------------------- burst format


def test_burst_format_rates():
    assert dpsk.BurstFormat().data_rate == 2.88e9
    assert dpsk.BurstFormat.from_duty(1 / 40).data_rate == pytest.approx(72e6)
    assert dpsk.BurstFormat.from_data_rate(72e6).divider == 40
    assert dpsk.BurstFormat.from_data_rate(1.44e9).duty == dpsk.Fraction(1, 2)
    for m in (1, 2, 4, 8, 16, 32, 40):
        assert dpsk.BurstFormat.from_duty(1 / m).divider == m


@pytest.mark.parametrize("duty", [0.3, 1 / 41, 1.5, 0, -0.5, float("nan"), "x"])
def test_burst_format_bad_duty(duty):
    with pytest.raises(ConfigError, match="duty"):
        dpsk.BurstFormat.from_duty(duty)


@pytest.mark.parametrize("rate", [1e9, 7e7, 3e9, float("nan"), -1.0])
def test_burst_format_bad_rate(rate):
    with pytest.raises(ConfigError, match="data_rate"):
        dpsk.BurstFormat.from_data_rate(rate)


def test_burst_format_bad_params():
    with pytest.raises(ConfigError, match="divider=41"):
        dpsk.BurstFormat(divider=41)
    with pytest.raises(ConfigError, match="burst_bits=1"):
        dpsk.BurstFormat(divider=2, burst_bits=1)


def test_burst_timing():
    f = dpsk.BurstFormat(divider=4, burst_bits=10)
    j = np.arange(25)
    np.testing.assert_array_equal(f.slot_index(j)[[0, 9, 10, 19, 20]], [0, 9, 40, 49, 80])
    np.testing.assert_array_equal(np.flatnonzero(f.burst_start(j)), [0, 10, 20])
    # average bit rate over whole periods = slot rate x duty
    assert (f.bit_time(1000) - f.bit_time(0)) == pytest.approx(1000 / f.data_rate)
    assert not dpsk.BurstFormat().burst_start(np.arange(100)).any()


# ---------------------------------------------------------------- framing


def test_frame_build_and_strip(rng):
    c = rng.integers(0, 2, (2, 3, 200), dtype=np.uint8)
    f = dpsk.build_frame(c)
    assert f.shape == (2, 3, 232)
    np.testing.assert_array_equal(f[..., :32], np.broadcast_to(dpsk.ASM_BITS, (2, 3, 32)))
    assert np.packbits(dpsk.ASM_BITS).tobytes() == bytes.fromhex("1ACFFC1D")
    np.testing.assert_array_equal(f[..., 32:], c ^ pn8(200))
    llr = (1.0 - 2.0 * f) * 3.0                           # noiseless LLRs of the frame
    back = dpsk.unbuild_frame(llr, 200)
    np.testing.assert_array_equal((back < 0).astype(np.uint8), c)
    np.testing.assert_array_equal(np.abs(back), 3.0)
    with pytest.raises(ShapeError, match="232"):
        dpsk.unbuild_frame(llr[..., 1:], 200)


# ---------------------------------------------------------------- channels


def test_awgn_esn0_calibration(rng):
    ch = AWGNChannel(3.0)
    x = dpsk.dpsk_field(rng.integers(0, 2, 400_000, dtype=np.uint8))
    r = ch(x, rng)
    n = r - x
    n0 = np.mean(np.abs(n) ** 2)
    assert n0 == pytest.approx(10 ** -0.3, rel=0.01)
    assert np.var(n.real) == pytest.approx(n0 / 2, rel=0.01)
    assert abs(np.mean(n.real * n.imag)) < 0.01 * n0
    esn0 = 10 * np.log10(np.mean(np.abs(x) ** 2) / n0)
    assert esn0 == pytest.approx(3.0, abs=0.05)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), "a"])
def test_awgn_bad_esn0(bad):
    with pytest.raises(ConfigError, match="esn0_db"):
        AWGNChannel(bad)


def test_awgn_rejects_nan_field(rng):
    with pytest.raises(ShapeError, match="NaN"):
        AWGNChannel(0.0)(np.array([1.0, np.nan]), rng)


def test_dpsk_hard_ber_vs_theory(rng):
    """Uncoded DPSK over AWGN at Es/N0 = 6.2 (linear): BER = exp(-6.2)/2 ~ 1.0e-3 (quantum limit at 6.2 ppb)."""
    n = 2_000_000
    ch = AWGNChannel(10 * np.log10(6.2))
    c = rng.integers(0, 2, (4, n // 4), dtype=np.uint8)
    x, _ = dpsk.differential_encode(c)
    xa, xb, _ = dli_detect(ch, dpsk.dpsk_field(x), rng)
    err = int(np.count_nonzero(dpsk.hard_decision(xa, xb)[:, 1:] != c[:, 1:]))
    assert err > 0
    p = dpsk_ber(6.2)
    # DPSK errors come in pairs (one noisy sample affects two bits): widen the binomial by 2
    ci = stats.binomtest(err // 2, (c[:, 1:].size) // 2).proportion_ci(0.999, method="exact")
    assert ci.low <= p <= ci.high, (err, p)


def test_optical_moments_vs_theory(rng):
    """x_A, x_B, D means and variances for bit 0 against the non-central chi-square moments."""
    for ppb, nf, modes in ((3.0, NF_IDEAL_DB, 1), (5.0, 5.0, 2)):
        ch = PreampDLIReceiver(ppb, nf, modes)
        n = 400_000
        xa, xb, _ = ch.detect(np.ones((1, n)), rng)          # all bits 0 (constant phase)
        xa, xb = xa[:, 1:], xb[:, 1:]
        th = port_moments(ppb, ch.sigma2, modes)
        for name, v in (("xa", xa), ("xb", xb), ("d", xa - xb)):
            m, var = th[f"mean_{name}"], th[f"var_{name}"]
            # sample mean within 5 standard errors (adjacent samples share one noise term: x2 variance)
            assert abs(v.mean() - m) < 5 * np.sqrt(2 * var / v.size), (name, v.mean(), m)
            assert v.var() == pytest.approx(var, rel=0.03), (name, v.var(), var)


def test_optical_equals_awgn_at_ideal_nf():
    ch = PreampDLIReceiver(4.0)           # ideal preamplifier: Eb/N0 = n_s
    assert ch.n_sp == pytest.approx(1.0)
    assert ch.ebn0_db == pytest.approx(10 * np.log10(4.0))
    assert PreampDLIReceiver(4.0, nf_db=6.0).ebn0_db == pytest.approx(10 * np.log10(4.0) - (6.0 - NF_IDEAL_DB))


@pytest.mark.parametrize("kw,match", [({"ppb": 0}, "ppb"), ({"ppb": float("nan")}, "ppb"),
                                      ({"ppb": 1.0, "nf_db": 2.0}, "nf_db"),
                                      ({"ppb": 1.0, "nf_db": float("nan")}, "nf_db"),
                                      ({"ppb": 1.0, "modes": 0}, "modes")])
def test_optical_bad_params(kw, match):
    with pytest.raises(ConfigError, match=match):
        PreampDLIReceiver(**kw)


def test_dark_previous_slot_gives_no_information(rng):
    """At a burst start the delayed arm holds ASE only: x_A and x_B are identically distributed."""
    ch = PreampDLIReceiver(5.0)
    n = 200_000
    xa, xb, _ = ch.detect(np.ones((n, 2)), rng, dark_prev=np.array([True, False]))
    assert abs(xa[:, 0].mean() - xb[:, 0].mean()) < 0.02 * xa[:, 0].mean()
    assert xa[:, 1].mean() > 4 * xb[:, 1].mean()


def test_detect_state_continuation(rng):
    """With the returned state, a chunk boundary is not a dark slot: same statistics as one shot."""
    ch = PreampDLIReceiver(4.0)
    x = np.ones((20000, 2))
    _, _, st = ch.detect(x[:, :1], rng)
    xa, xb, _ = ch.detect(x[:, 1:], rng, state=st)
    assert xa.mean() == pytest.approx(port_moments(4.0, ch.sigma2)["mean_xa"], rel=0.03)
    with pytest.raises(ShapeError, match="state"):
        ch.detect(x, rng, state=st[:10])


# ---------------------------------------------------------------- LLRs


def test_llr_exact_matches_ncx2(rng):
    """Exact LLR = ratio of non-central chi-square densities (scipy.stats.ncx2 as the oracle)."""
    for modes, es, sigma2 in ((1, 2.0, 0.5), (3, 4.0, 0.7)):
        xa = rng.uniform(0.01, 8, 200)
        xb = rng.uniform(0.01, 8, 200)
        df, nc = 2 * modes, 2 * es / sigma2
        # x = sigma^2/2 * chi2'(2M, 2 s^2/sigma^2)
        pa1 = stats.ncx2.logpdf(2 * xa / sigma2, df, nc) + stats.chi2.logpdf(2 * xb / sigma2, df)
        pb1 = stats.chi2.logpdf(2 * xa / sigma2, df) + stats.ncx2.logpdf(2 * xb / sigma2, df, nc)
        ref = pa1 - pb1
        got = dpsk.llr_exact(xa, xb, es, sigma2, modes)
        np.testing.assert_allclose(got, ref, rtol=2e-5, atol=2e-5)


def test_llr_signs_symmetry_and_erasure(rng):
    L = dpsk.llr_exact([3.0, 0.1, 1.0], [0.1, 3.0, 1.0], 2.0, 0.5)
    assert L[0] > 0 and L[1] < 0 and L[2] == 0 and L[0] == pytest.approx(-L[1])
    assert np.all(dpsk.llr_exact([3.0, 1.0], [0.1, 2.0], 0.0, 0.5) == 0)    # no signal, no information
    Le = dpsk.llr_exact([3.0, 3.0], [0.1, 0.1], 2.0, 0.5, erase=[True, False])
    assert Le[0] == 0 and Le[1] > 0
    g = dpsk.llr_gaussian([3.0, 0.1], [0.1, 3.0], 2.0, 0.5)
    assert g[0] == pytest.approx(2 * 2.0 * 2.9 / (2 * 0.25 + 2 * 2.0 * 0.5))
    assert g[1] == pytest.approx(-g[0])


def test_llr_calibrated_monte_carlo(rng):
    """LLR consistency on channel samples: in every LLR bin, P(bit 0) = 1/(1+exp(-L)), and
    E[exp(-L) | bit 0] = 1. Raw channel errors must occur."""
    ch = PreampDLIReceiver(1.5)                     # ~1.76 dB Eb/N0: many raw errors
    c = rng.integers(0, 2, (1, 600_000), dtype=np.uint8)
    x, _ = dpsk.differential_encode(c)
    xa, xb, _ = ch.detect(dpsk.dpsk_field(x), rng)
    L = dpsk.llr_exact(xa, xb, ch.es, ch.sigma2)[0, 1:].astype(np.float64)
    b = c[0, 1:]
    assert np.count_nonzero((L < 0) != (b == 1)) > 10_000
    edges = np.linspace(-6, 6, 13)
    idx = np.digitize(L, edges)
    for k in range(1, len(edges)):
        sel = idx == k
        if sel.sum() < 2000:
            continue
        p0 = np.mean(b[sel] == 0)
        pred = np.mean(1 / (1 + np.exp(-L[sel])))
        # 5 sigma of the bin's binomial mean, no absolute slack: LLRs scaled by 0.95 or 1.05 fail
        # (8.7 and 8.6 sigma in the worst bin, seed 1), the exact ones stay within 2 sigma
        assert abs(p0 - pred) < 5 * np.sqrt(pred * (1 - pred) / sel.sum()), (k, p0, pred)
    assert np.mean(np.exp(-np.clip(L[b == 0], -30, 30))) == pytest.approx(1.0, rel=0.05)
    # the exact LLR carries more information than the Gaussian-moment one (reference 8.2)
    G = dpsk.llr_gaussian(xa, xb, ch.es, ch.sigma2)[0, 1:].astype(np.float64)
    s = 1 - 2.0 * b
    mi = lambda l: 1 - np.mean(np.logaddexp(0, -s * l)) / np.log(2)   # noqa: E731
    assert mi(L) > mi(G)
    assert mi(L) == pytest.approx(0.644 + (0.749 - 0.644) * (10 * np.log10(1.5) - 2.0), abs=0.015)


def test_llr_bad_input():
    with pytest.raises(ShapeError, match="NaN"):
        dpsk.llr_exact([np.nan], [1.0], 1.0, 0.5)
    with pytest.raises(ShapeError, match="same shape"):
        dpsk.llr_exact([1.0, 2.0], [1.0], 1.0, 0.5)
    with pytest.raises(ConfigError, match="sigma2"):
        dpsk.llr_exact([1.0], [1.0], 1.0, 0.0)
    with pytest.raises(ConfigError, match="modes"):
        dpsk.llr_gaussian([1.0], [1.0], 1.0, 0.5, modes=0)
    with pytest.raises(ConfigError, match="es"):
        dpsk.llr_exact([1.0], [1.0], np.nan, 0.5)
    with pytest.raises(ShapeError, match=">= 0"):
        dpsk.llr_exact([-1.0], [1.0], 1.0, 0.5)


# ---------------------------------------------------------------- scintillation


def test_scintillation_statistics(rng):
    """Unit mean, variance = SI, log-intensity correlation exp(-tau/tau_c), from 4000 independent
    processes (bounds: 5 standard errors of the ensemble estimators)."""
    si, tc = 0.2, 5e-3
    f = LognormalScintillation(si, tc)
    lags = np.array([0.0, 1e-3, 5e-3, 10e-3, 20e-3])
    t = np.tile(lags, (4000, 1))
    I, _ = f.sample(t, rng)
    i0 = I[:, 0]
    assert abs(i0.mean() - 1) < 5 * np.sqrt(si / i0.size)
    # Var of the sample variance of a log-normal: (m4 - s^4)/n, m4 from the log-normal moments
    sg2 = np.log1p(si)
    m4 = np.exp(6 * sg2) - 4 * np.exp(3 * sg2) + 6 * np.exp(sg2) - 3     # 4th central moment, unit mean
    assert abs(i0.var() - si) < 5 * np.sqrt((m4 - si ** 2) / i0.size)
    g = np.log(I)
    for k, tau in enumerate(lags[1:], start=1):
        rho = np.corrcoef(g[:, 0], g[:, k])[0, 1]
        assert abs(rho - np.exp(-tau / tc)) < 5 * (1 - np.exp(-2 * tau / tc)) / np.sqrt(g.shape[0]) + 0.01
        cov = np.mean((I[:, 0] - 1) * (I[:, k] - 1))
        assert abs(cov - f.autocovariance(tau)) < 0.05


def test_scintillation_time_average_and_chunking(rng):
    """One long process: time-averaged mean 1 and SI (T = 2000 tau_c); chunked == one shot."""
    f = LognormalScintillation(0.2, 5e-3)
    t = np.arange(200_000) * 5e-5                   # 10 s at 50 us
    I, _ = f.sample(t, np.random.default_rng(5))
    # effective independent samples ~ T/(2 tau_c) = 1000
    assert abs(I.mean() - 1) < 5 * np.sqrt(0.2 / 1000)
    assert abs(I.var() - 0.2) < 0.1
    # chunking with the state reproduces the one-shot process given the same normal draws
    r1, r2 = np.random.default_rng(9), np.random.default_rng(9)
    one, _ = f.sample(t[None, :3000], r1)
    parts, st = [], None
    for a, b in ((0, 1000), (1000, 1001), (1001, 3000)):
        p, st = f.sample(t[None, a:b], r2, st)
        parts.append(p)
    # the one-shot call drew 3000 normals, the chunked calls 3000 too, in the same order
    np.testing.assert_allclose(np.concatenate(parts, axis=-1), one, rtol=1e-12)


def test_scintillation_bad_input(rng):
    with pytest.raises(ConfigError, match="scint_index"):
        LognormalScintillation(-0.1, 1e-3)
    with pytest.raises(ConfigError, match="coherence_s"):
        LognormalScintillation(0.2, 0.0)
    with pytest.raises(ConfigError, match="coherence_s"):
        LognormalScintillation(0.2, float("nan"))
    f = LognormalScintillation(0.2, 1e-3)
    with pytest.raises(ShapeError, match="non-decreasing"):
        f.sample(np.array([0.0, 2e-3, 1e-3]), rng)
    with pytest.raises(ShapeError, match="NaN"):
        f.sample(np.array([0.0, np.nan]), rng)
    I, _ = LognormalScintillation(0.0, 1e-3).sample(np.arange(10.0), rng)
    np.testing.assert_allclose(I, 1.0)
