# SPDX-License-Identifier: Apache-2.0
"""Review tests (R12) of the channel models, DPSK modulation and link analysis: each test pins a
bug found in review (it failed before the fix named in its docstring)."""
import math

import numpy as np
import pytest
from scipy import integrate, special

from modem.channel.apd import APDDetector, SampleClock, apd_samples, apd_slot_moments, shape_and_sample
from modem.channel.awgn import AWGNChannel
from modem.channel.fading import LognormalScintillation
from modem.channel.optical import PreampDLIReceiver, dli_detect
from modem.errors import ConfigError, ShapeError
from modem.modulation import dpsk


# ---------------------------------------------------------------- fading


def test_scintillation_empty_chunk_is_a_no_op():
    """An empty chunk (no sample times) must return an empty intensity and keep the state, so a
    stream cut at arbitrary points (some chunks empty) equals the one-shot stream. Before the fix
    ``t.reshape(-1, 0)`` raised a bare numpy ValueError."""
    s = LognormalScintillation(0.3, 1e-3)
    t = np.linspace(0.0, 5e-3, 50)
    ref, _ = s.sample(t, np.random.default_rng(1))
    rng = np.random.default_rng(1)
    a, st = s.sample(t[:20], rng)
    b, st2 = s.sample(t[20:20], rng, st)
    assert b.shape == (0,)
    assert st2.t == st.t and st2.g == st.g
    c, _ = s.sample(t[20:], rng, st2)
    np.testing.assert_array_equal(np.concatenate([a, b, c]), ref)
    e, st3 = s.sample(np.zeros((3, 0)), rng)            # batch of 3 rows, no samples, no state yet
    assert e.shape == (3, 0) and st3 is None


# ---------------------------------------------------------------- DPSK exact LLR, many modes


def _log_bessel_scaled_quad(nu: int, z: float) -> float:
    """Oracle for ``ln I_nu(z) - nu ln(z/2)`` by quadrature of Poisson's integral
    ``I_nu(z) = (z/2)^nu / (sqrt(pi) Gamma(nu + 1/2)) int_0^pi exp(z cos t) sin(t)^(2 nu) dt``,
    integrand scaled by its maximum (no under/overflow)."""
    def f(t):
        if nu == 0:
            return z * math.cos(t)
        return z * math.cos(t) + 2 * nu * math.log(math.sin(t)) if 0 < t < math.pi else -math.inf
    # the exponent's maximum: d/dt = -z sin t + 2 nu cos t / sin t = 0 -> cos t = c
    c = (-2 * nu + math.sqrt(4 * nu * nu + 4 * z * z)) / (2 * z) if z > 0 else 0.0
    t0 = math.acos(c)
    fmax = f(t0)
    val, _ = integrate.quad(lambda t: math.exp(f(t) - fmax), 0.0, math.pi, points=[t0], limit=400,
                            epsabs=0.0, epsrel=1e-12)
    return fmax + math.log(val) - 0.5 * math.log(math.pi) - special.gammaln(nu + 0.5)


@pytest.mark.parametrize("modes", [1, 4, 300, 700, 1000])
def test_llr_exact_many_modes_matches_quadrature(modes):
    """llr_exact for wide optical filters (M up to 1000, what PreampDLIReceiver and `modem sim dpsk
    --modes` accept) equals the non-central chi-square LLR computed by quadrature. Before the fix,
    where ``ive(M-1, z)`` underflows (M >~ 300 at realistic port energies) the two-term small-z
    series was used and the LLR came out up to ~9x too small (M = 700)."""
    es, sigma2 = 4.0, 0.5
    mean_b = modes * sigma2                      # E[x_B] (no signal); x_A ~ E_b more
    xa = mean_b + np.array([es, -0.5 * es, 2.0 * es, 0.0, 0.3])
    xb = mean_b + np.array([0.0, 1.0 * es, -0.5 * es, 0.0, 3.0])
    xa, xb = np.maximum(xa, 0.05), np.maximum(xb, 0.05)

    def g(x):
        return _log_bessel_scaled_quad(modes - 1, 2 * math.sqrt(es) * math.sqrt(x) / sigma2)
    ref = np.array([g(a) - g(b) for a, b in zip(xa, xb)])
    got = dpsk.llr_exact(xa, xb, es, sigma2, modes)
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("nu", [0, 1, 5, 150, 299, 699, 999])
def test_log_bessel_i_scaled_against_quadrature(nu):
    """``log_bessel_i_scaled`` (and ``log_bessel_i``) over z from 1e-3 to 2000, including the region
    where ``ive`` underflows for large orders."""
    zs = np.array([1e-3, 0.5, 3.0, 20.0, 60.0, 150.0, 300.0, 600.0, 2000.0])
    ref = np.array([_log_bessel_scaled_quad(nu, z) for z in zs])
    got = dpsk.log_bessel_i_scaled(nu, zs)
    np.testing.assert_allclose(got, ref, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(dpsk.log_bessel_i(nu, zs), ref + nu * np.log(zs / 2), rtol=1e-9, atol=1e-8)


def test_log_bessel_scalar_zero_and_llr_scalar_ports():
    """``log_bessel_i_scaled(nu, 0)`` is ``-ln Gamma(nu+1)`` as documented, also for a scalar z; and
    llr_exact of scalar port energies with M > 1 where a port (or es) is 0 gives its limit. Before the
    fix the underflow branch assigned into a numpy scalar (TypeError)."""
    assert dpsk.log_bessel_i_scaled(3, 0.0) == pytest.approx(-math.log(6.0))
    assert np.shape(dpsk.log_bessel_i_scaled(3, 0.0)) == ()
    assert dpsk.log_bessel_i(3, np.zeros((2, 2))).shape == (2, 2)
    assert dpsk.llr_exact(0.0, 0.0, 2.0, 0.5, modes=3) == 0.0
    assert dpsk.llr_exact(3.0, 0.1, 0.0, 0.5, modes=2) == 0.0
    assert dpsk.llr_exact(3.0, 0.0, 2.0, 0.5, modes=2) > 0


@pytest.mark.parametrize("modes, ppb, n", [(3, 3.0, 200_000), (700, 12.0, 30_000)])
def test_llr_exact_consistent_on_simulated_wide_filter(modes, ppb, n):
    """Physics check of llr_exact on the pre-amplified receiver's own samples: a true LLR satisfies
    ``P(bit 0 | L) = 1/(1 + e^-L)``, hence ``E[s tanh(L/2)] = E[tanh(L/2)^2]`` (s = +-1 for bit 0/1),
    a bounded statistic (bound: 5 standard errors). Before the Bessel fix the M = 700 LLRs were
    ~3x too large (mean |L| 3.6 instead of 1.2; the statistic was off by 19 standard errors)."""
    rng = np.random.default_rng(4)
    ch = PreampDLIReceiver(ppb, modes=modes)
    c = rng.integers(0, 2, (1, n), dtype=np.uint8)
    x, _ = dpsk.differential_encode(c)
    xa, xb, _ = ch.detect(dpsk.dpsk_field(x), rng)
    L = dpsk.llr_exact(xa, xb, ch.es, ch.sigma2, modes)[0, 1:].astype(np.float64)
    b = c[0, 1:]
    s = 1.0 - 2.0 * b
    assert np.count_nonzero((L < 0) != (b == 1)) > 1000          # raw channel errors occurred
    th = np.tanh(L / 2)
    d = s * th - th * th
    assert abs(d.mean()) < 5 * d.std() / np.sqrt(d.size), (d.mean(), d.std() / np.sqrt(d.size))


# ---------------------------------------------------------------- error messages name the bad value


def _scint_after_state(t_next):
    s = LognormalScintillation(0.2, 1e-3)
    _, st = s.sample(np.array([0.0, 2e-3]), np.random.default_rng(0))
    return s.sample(np.array([t_next]), np.random.default_rng(0), st)


_RNG = np.random.default_rng(0)


@pytest.mark.parametrize("call, exc, needle", [
    (lambda: AWGNChannel(3.0)(np.ones(4, complex), _RNG, gain=np.array([1, -0.5, 1, 1])), ShapeError, r"-0\.5"),
    (lambda: AWGNChannel(3.0)(np.ones(4, complex), _RNG, gain=np.array([1, np.inf, 1, 1])), ShapeError, "inf"),
    (lambda: LognormalScintillation(0.2, 1e-3).sample(np.array([0.0, 2e-3, 1e-3]), _RNG), ShapeError,
     r"0\.002.*0\.001"),
    (lambda: LognormalScintillation(0.2, 1e-3).sample(np.array([0.0, np.nan]), _RNG), ShapeError, "nan"),
    (lambda: _scint_after_state(1e-3), ShapeError, r"0\.001.*0\.002"),
    (lambda: apd_samples(np.zeros(4, np.uint8), 1.0, 0.1, APDDetector(), SampleClock(), "x"), ConfigError,
     "apd_samples: rng .*'x'"),
    (lambda: apd_samples(np.array([0, 2], np.uint8), 1.0, 0.1, APDDetector(), SampleClock(), 0), ShapeError,
     "apd_samples: pulses .* found 2"),
    (lambda: dpsk.llr_exact([1.0, np.inf], [1.0, 1.0], 1.0, 0.5), ShapeError, "xa=inf"),
    (lambda: dpsk.llr_exact([1.0], [1.0], 1.0, "abc"), ConfigError, "sigma2.*'abc'"),
])
def test_errors_name_the_bad_value(call, exc, needle):
    """Errors name the function, the parameter and the offending value (common rules); before the
    fix these said only 'must be finite and >= 0' / 'non-decreasing' / 'precede', named
    simulate_counts for an apd_samples call, or raised a bare float() ValueError."""
    with pytest.raises(exc, match=needle):
        call()


@pytest.mark.parametrize("call, exc, needle", [
    (lambda: dli_detect(AWGNChannel(3.0), np.ones((2, 5), complex), _RNG, dark_prev=np.zeros(3, bool)), ShapeError,
     r"dark_prev of shape \(3,\)"),
    (lambda: shape_and_sample(np.array([1.0, np.nan]), SampleClock(), 0), ShapeError, "q.*nan"),
    (lambda: shape_and_sample(np.ones(4), SampleClock(), 0, thermal_sigma=-1.0), ConfigError, "thermal_sigma.*-1"),
    (lambda: apd_slot_moments(APDDetector(), -1.0, 0.1), ConfigError, "ns.*-1"),
    (lambda: apd_slot_moments(APDDetector(), 1.0, 0.1, noise_var=float("nan")), ConfigError, "noise_var.*nan"),
])
def test_bad_input_is_rejected_not_passed_on(call, exc, needle):
    """Bad inputs raise a named error instead of a bare numpy ValueError (dark_prev of the wrong
    shape) or being passed on as good data (NaN slot amplitudes -> NaN samples, a negative noise rms,
    negative mean photon numbers -> negative slot means)."""
    with pytest.raises(exc, match=needle):
        call()


# ---------------------------------------------------------------- DPSK model vs the reference's MI table


def _d_alone_llr_table(es: float, sigma2: float, grid: np.ndarray) -> np.ndarray:
    """Exact LLR of the balanced output D = x_A - x_B alone (reference 8.2), by quadrature:
    ``p(d|0) = int p_X(d + y) p_Y(y) dy`` (x_A non-central, x_B exponential, M = 1), ``p(d|1) = p(-d|0)``."""
    def log_px(x):
        z = 2 * math.sqrt(es * x) / sigma2
        return -(x + es) / sigma2 + math.log(special.i0e(z)) + z - math.log(sigma2)

    def log_pd0(d):
        lo = max(0.0, -d)
        # factor out the integrand's value at the lower end to stay in range
        ref = log_px(d + lo + 1e-300) - lo / sigma2
        val, _ = integrate.quad(lambda y: math.exp(log_px(d + y) - y / sigma2 - ref) if d + y > 0 else 0.0,
                                lo, lo + 80 * sigma2 + 40, limit=200, epsabs=0, epsrel=1e-10)
        return ref + math.log(val) - math.log(sigma2)
    return np.array([log_pd0(d) - log_pd0(-d) for d in grid])


def test_dpsk_bit_channel_mi_matches_reference_table():
    """The pre-amplified DLI model against the reference's bit-channel mutual information table
    (dvbs2-ldpc-dpsk.md 8.2, ideal preamplifier, M = 1) at Eb/N0 = 0 and 3 dB: the Gaussian-moment
    LLR gives 0.403 / 0.720 and the exact LLR *of D alone* 0.419 / 0.749 (bounds: 5 standard errors +
    the table's rounding). The table's "exact" row is the D-alone LLR: llr_exact uses both port
    energies and carries more information (0.425 / 0.757 measured), so it must exceed that row."""
    rng = np.random.default_rng(20240601)
    for db, ref_exact_d, ref_gauss in ((0.0, 0.419, 0.403), (3.0, 0.749, 0.720)):
        ch = PreampDLIReceiver(10 ** (db / 10))
        c = rng.integers(0, 2, (1, 200_001), dtype=np.uint8)
        x, _ = dpsk.differential_encode(c)
        xa, xb, _ = ch.detect(dpsk.dpsk_field(x), rng)
        s = 1.0 - 2.0 * c[0, 1:]

        def mi(L):
            v = 1.0 - np.logaddexp(0.0, -s * L) / math.log(2.0)
            return v.mean(), v.std() / math.sqrt(v.size), v
        m_g, se_g, _ = mi(dpsk.llr_gaussian(xa, xb, ch.es, ch.sigma2)[0, 1:].astype(np.float64))
        assert abs(m_g - ref_gauss) < 5 * se_g + 5e-4, (db, m_g, ref_gauss)
        D = (xa - xb)[0, 1:]
        grid = np.linspace(D.min(), D.max(), 300)
        m_d, se_d, v_d = mi(np.interp(D, grid, _d_alone_llr_table(ch.es, ch.sigma2, grid)))
        assert abs(m_d - ref_exact_d) < 5 * se_d + 5e-4, (db, m_d, ref_exact_d)
        m_e, _, v_e = mi(dpsk.llr_exact(xa, xb, ch.es, ch.sigma2)[0, 1:].astype(np.float64))
        diff = v_e - v_d                                             # paired: same samples
        assert diff.mean() > 5 * diff.std() / math.sqrt(diff.size), (db, m_e, m_d)


# ---------------------------------------------------------------- curves


def test_threshold_uses_the_last_crossing_of_a_noisy_curve():
    """curves.threshold documents 'between the last point above and the first point at or below the
    target'. With a non-monotone (noisy) FER curve, e.g. 40-error points 0.04 dB apart near 1e-2,
    it took the FIRST crossing instead: an optimistic sensitivity (here 2 instead of ~3.6)."""
    from modem.analysis import curves  # noqa: PLC0415
    xs, fers = [1.0, 2.0, 3.0, 4.0], [0.5, 0.005, 0.02, 0.001]
    got = curves.threshold(xs, fers, 1e-2, db=False)
    t = (math.log10(0.02) - math.log10(0.01)) / (math.log10(0.02) - math.log10(0.001))
    assert got == pytest.approx(3.0 + t)
    assert curves.threshold(xs[::-1], fers[::-1], 1e-2, db=False) == pytest.approx(3.0 + t)   # order-free
    # monotone curves: unchanged
    assert curves.threshold([1.0, 2.0, 4.0], [0.5, 0.1, 0.001], 1e-2, db=False) == pytest.approx(
        2.0 + 2.0 * (math.log10(0.1) - math.log10(0.01)) / (math.log10(0.1) - math.log10(0.001)))
    with pytest.raises(ConfigError, match="bracket"):
        curves.threshold([1.0, 2.0], [0.005, 0.02], 1e-2)          # ends above the target


# ---------------------------------------------------------------- SNSPD statistics (distribution, dead time)


def test_snspd_count_distribution_chi_square():
    """Number-resolving SNSPD counts follow Poisson(eta (ns x + nb) + dark) in full distribution, not only
    in mean: chi-square goodness of fit (bins 0..5 and >= 6), pulsed and empty slots apart."""
    from scipy import stats  # noqa: PLC0415

    from modem.channel.poisson import SNSPD, simulate_counts  # noqa: PLC0415
    rng = np.random.default_rng(20240601)
    pulses = np.zeros((400, 1024), np.uint8)
    pulses[:, ::8] = 1
    det = SNSPD(efficiency=0.55, dark_count_rate_per_slot=0.03, number_resolving=True)
    c = simulate_counts(pulses, 4.0, 0.4, rng, det)
    for on, mean in ((True, 0.55 * 4.4 + 0.03), (False, 0.55 * 0.4 + 0.03)):
        y = c[pulses.astype(bool) == on]
        obs = np.array([np.count_nonzero(y == k) for k in range(6)] + [np.count_nonzero(y >= 6)])
        p = np.append(stats.poisson.pmf(np.arange(6), mean), stats.poisson.sf(5, mean))
        exp = p * y.size
        keep = exp > 5
        obs_k = np.append(obs[keep], obs[~keep].sum())
        exp_k = np.append(exp[keep], exp[~keep].sum())
        if exp_k[-1] == 0:
            obs_k, exp_k = obs_k[:-1], exp_k[:-1]
        assert stats.chisquare(obs_k, exp_k).pvalue > 1e-4, (on, obs, exp)


@pytest.mark.parametrize("dead", [2, 9])
def test_snspd_dead_time_click_rate_renewal_theory(dead):
    """Non-paralyzable dead time of d slots on a click detector with click probability q per slot: the
    stationary click rate per slot is ``q / (1 + d q)`` (renewal cycle: d blind slots + a geometric
    wait of mean 1/q). 400 independent rows, the first 200 slots of each dropped (start transient);
    bound: 5 standard errors of the row means."""
    from modem.channel.poisson import SNSPD, simulate_counts  # noqa: PLC0415
    rng = np.random.default_rng(dead)
    det = SNSPD(efficiency=0.6, dark_count_rate_per_slot=0.02, dead_time_slots=dead, number_resolving=False)
    c = simulate_counts(np.zeros((400, 5200), np.uint8), 0.0, 0.3, rng, det)
    q = -math.expm1(-(0.6 * 0.3 + 0.02))
    rate = c[:, 200:].mean(axis=1)
    assert abs(rate.mean() - q / (1 + dead * q)) < 5 * rate.std() / math.sqrt(rate.size)
    assert abs(rate.mean() - q) > 20 * rate.std() / math.sqrt(rate.size)        # dead time does matter here
