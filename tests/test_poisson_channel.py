# SPDX-License-Identifier: Apache-2.0
"""Poisson photon-counting channel, SNSPD detector model and slot LLRs (modem.channel.poisson)."""
import math

import numpy as np
import pytest
from scipy import stats

from modem.channel.poisson import (
    SNSPD,
    apply_dead_time,
    ppm_slot_llr_weight,
    simulate_counts,
    slot_llr,
)
from modem.errors import ConfigError, ShapeError


def _ppm_pulses(rng, n_sym, M, guard=0, batch=()):
    """Random PPM slot occupancy (*batch, n_sym*(M+guard)) and the symbols."""
    sym = rng.integers(0, M, size=batch + (n_sym,))
    p = np.zeros(batch + (n_sym, M + guard), dtype=np.uint8)
    np.put_along_axis(p, sym[..., None], 1, axis=-1)
    return p.reshape(batch + (n_sym * (M + guard),)), sym


def _poisson_sum_pvalue(total, n, mu):
    """Two-sided exact p-value of observing `total` as a sum of n iid Poisson(mu)."""
    lam = n * mu
    lo = stats.poisson.cdf(total, lam)
    hi = stats.poisson.sf(total - 1, lam)
    return min(1.0, 2 * min(lo, hi))


def _dead_time_reference(counts, d):
    out = counts.copy().reshape(-1, counts.shape[-1])
    for row in out:
        ready = 0
        for i in range(row.size):
            if i < ready:
                row[i] = 0
            elif row[i] > 0:
                ready = i + 1 + d
    return out.reshape(counts.shape)


# ------------------------------------------------------------------------------- ideal counting

def test_shape_dtype_and_determinism():
    rng = np.random.default_rng(1)
    p, _ = _ppm_pulses(rng, 50, 16, guard=4, batch=(3, 2))
    c1 = simulate_counts(p, 2.0, 0.1, np.random.default_rng(7))
    c2 = simulate_counts(p, 2.0, 0.1, np.random.default_rng(7))
    assert c1.shape == p.shape == (3, 2, 50 * 20)
    assert c1.dtype == np.int32
    np.testing.assert_array_equal(c1, c2)
    assert c1.min() >= 0
    c3 = simulate_counts(p.astype(bool), 2.0, 0.1, 7)  # bool input, int seed
    np.testing.assert_array_equal(c1, c3)


@pytest.mark.parametrize("ns,nb", [(2.0, 0.1), (0.5, 1.5), (10.0, 0.0)])
def test_mean_counts_match_ns_plus_nb_and_nb(ns, nb):
    rng = np.random.default_rng(1234)
    p, _ = _ppm_pulses(rng, 20000, 16, guard=4, batch=(4,))
    c = simulate_counts(p, ns, nb, rng)
    on = p.astype(bool)
    n_on, n_off = int(on.sum()), int((~on).sum())
    assert _poisson_sum_pvalue(int(c[on].sum()), n_on, ns + nb) > 1e-4
    if nb == 0:
        assert c[~on].max() == 0
    else:
        assert _poisson_sum_pvalue(int(c[~on].sum()), n_off, nb) > 1e-4
    # The whole distribution of the pulsed counts (not only its mean): chi-square against Poisson.
    y = c[on]
    kmax = int(stats.poisson.ppf(1 - 1e-3, ns + nb))
    obs = np.bincount(np.minimum(y, kmax), minlength=kmax + 1)
    exp = stats.poisson.pmf(np.arange(kmax + 1), ns + nb) * y.size
    exp[-1] = stats.poisson.sf(kmax - 1, ns + nb) * y.size
    assert stats.chisquare(obs, exp).pvalue > 1e-4


def test_per_row_means_broadcast():
    rng = np.random.default_rng(5)
    p = np.zeros((2, 40000), dtype=np.uint8)
    ns = np.array([[0.0], [3.0]])
    c = simulate_counts(p | 1, ns, 0.5, rng)
    assert _poisson_sum_pvalue(int(c[0].sum()), 40000, 0.5) > 1e-4
    assert _poisson_sum_pvalue(int(c[1].sum()), 40000, 3.5) > 1e-4


# ------------------------------------------------------------------------------- detector

def test_efficiency_thinning_and_dark_counts():
    rng = np.random.default_rng(99)
    p, _ = _ppm_pulses(rng, 40000, 8)
    det = SNSPD(efficiency=0.4, dark_count_rate_per_slot=0.05, number_resolving=True)
    ns, nb = 3.0, 0.2
    c = simulate_counts(p, ns, nb, rng, det)
    on = p.astype(bool)
    ns_det, nb_det = det.detected_means(ns, nb)
    assert ns_det == pytest.approx(1.2) and nb_det == pytest.approx(0.4 * 0.2 + 0.05)
    assert _poisson_sum_pvalue(int(c[on].sum()), int(on.sum()), ns_det + nb_det) > 1e-4
    assert _poisson_sum_pvalue(int(c[~on].sum()), int((~on).sum()), nb_det) > 1e-4
    assert c.max() > 1  # number resolving


def test_default_detector_equals_ideal_counting_in_distribution():
    rng = np.random.default_rng(3)
    p, _ = _ppm_pulses(rng, 10000, 16)
    ideal = SNSPD(efficiency=1.0, number_resolving=True)
    a = simulate_counts(p, 1.5, 0.3, np.random.default_rng(11))
    b = simulate_counts(p, 1.5, 0.3, np.random.default_rng(11), ideal)
    np.testing.assert_array_equal(a, b)  # same means -> same draws


def test_non_number_resolving_outputs_clicks():
    rng = np.random.default_rng(17)
    p, _ = _ppm_pulses(rng, 30000, 4)
    det = SNSPD(efficiency=0.7, number_resolving=False)
    c = simulate_counts(p, 2.0, 0.3, rng, det)
    assert set(np.unique(c).tolist()) <= {0, 1}
    on = p.astype(bool)
    p_click_on = -math.expm1(-0.7 * 2.3)
    p_click_off = -math.expm1(-0.7 * 0.3)
    assert stats.binomtest(int(c[on].sum()), int(on.sum()), p_click_on).pvalue > 1e-4
    assert stats.binomtest(int(c[~on].sum()), int((~on).sum()), p_click_off).pvalue > 1e-4


@pytest.mark.parametrize("number_resolving", [False, True])
@pytest.mark.parametrize("dead", [1, 3, 17])
def test_dead_time_blocks_exactly(dead, number_resolving):
    rng = np.random.default_rng(dead)
    p, _ = _ppm_pulses(rng, 500, 16, guard=4, batch=(3, 5))
    det = SNSPD(efficiency=0.9, dark_count_rate_per_slot=0.01, dead_time_slots=dead,
                number_resolving=number_resolving)
    c = simulate_counts(p, 2.0, 0.2, rng, det)
    flat = c.reshape(-1, c.shape[-1])
    n_det = 0
    for row in flat:
        idx = np.flatnonzero(row)
        n_det += idx.size
        # consecutive detections are more than `dead` slots apart
        assert np.all(np.diff(idx) > dead)
    assert n_det > 1000
    if not number_resolving:
        assert c.max() == 1
    # the same draws without dead time, then blocked by a plain-Python reference
    det0 = SNSPD(efficiency=0.9, dark_count_rate_per_slot=0.01, dead_time_slots=0,
                 number_resolving=number_resolving)
    rng2 = np.random.default_rng(dead)
    _ppm_pulses(rng2, 500, 16, guard=4, batch=(3, 5))
    raw = simulate_counts(p, 2.0, 0.2, rng2, det0)
    np.testing.assert_array_equal(c, _dead_time_reference(raw, dead))


def test_apply_dead_time_hand_example():
    c = np.array([[1, 1, 0, 2, 0, 0, 3, 1, 1, 1]], dtype=np.int32)
    np.testing.assert_array_equal(apply_dead_time(c, 2), [[1, 0, 0, 2, 0, 0, 3, 0, 0, 1]])
    np.testing.assert_array_equal(apply_dead_time(c, 0), c)
    # rows are independent: each row starts with a ready detector
    c2 = np.array([[0, 0, 1], [1, 0, 0]], dtype=np.uint16)
    np.testing.assert_array_equal(apply_dead_time(c2, 5), c2)
    assert apply_dead_time(c2, 5).dtype == np.uint16


# ------------------------------------------------------------------------------- LLRs

def test_slot_llr_values():
    w = ppm_slot_llr_weight(1.0, 0.1)
    assert w == pytest.approx(math.log(11.0))
    c = np.array([[0, 1, 2], [5, 0, 0]], dtype=np.int32)
    llr = slot_llr(c, 1.0, 0.1)
    assert llr.dtype == np.float32 and llr.shape == c.shape
    np.testing.assert_allclose(llr, c * math.log(11.0) - 1.0, rtol=1e-6)
    # equals ln p1(y)/p0(y) of the two Poisson laws
    ref = stats.poisson.logpmf(c, 1.1) - stats.poisson.logpmf(c, 0.1)
    np.testing.assert_allclose(llr, ref, rtol=1e-5)


def test_llr_noiseless_needs_erasure_metric():
    with pytest.raises(ConfigError, match="erasure"):
        ppm_slot_llr_weight(1.0, 0.0)
    with pytest.raises(ConfigError, match="erasure"):
        slot_llr(np.zeros(4, np.int32), 1.0, 0.0)


@pytest.mark.parametrize("bad,needle", [(np.array([0.0, np.nan]), "nan"),
                                        (np.array([1, -3]), "-3"),
                                        (np.array([0.5, -0.25]), "-0.25")])
def test_slot_llr_bad_counts(bad, needle):
    with pytest.raises(ShapeError, match=needle):
        slot_llr(bad, 1.0, 0.1)


# ------------------------------------------------------------------------------- validation

@pytest.mark.parametrize("kwargs,needle", [
    (dict(ns=-1.0, nb=0.1), r"ns.*-1\.0"),
    (dict(ns=1.0, nb=-0.5), r"nb.*-0\.5"),
    (dict(ns=float("nan"), nb=0.1), r"ns.*nan"),
    (dict(ns=1.0, nb=float("nan")), r"nb.*nan"),
    (dict(ns=1.0, nb=float("inf")), r"nb.*inf"),
])
def test_simulate_counts_bad_means(kwargs, needle):
    with pytest.raises(ConfigError, match=needle):
        simulate_counts(np.zeros(8, np.uint8), rng=np.random.default_rng(0), **kwargs)


@pytest.mark.parametrize("kwargs,needle", [
    (dict(efficiency=0.0), r"efficiency.*0\.0"),
    (dict(efficiency=1.5), r"efficiency.*1\.5"),
    (dict(efficiency=-0.2), r"efficiency.*-0\.2"),
    (dict(efficiency=float("nan")), r"efficiency.*nan"),
    (dict(dead_time_slots=-1), r"dead_time_slots.*-1"),
    (dict(dead_time_slots=2.5), r"dead_time_slots.*2\.5"),
    (dict(dark_count_rate_per_slot=-0.1), r"dark_count_rate_per_slot.*-0\.1"),
])
def test_snspd_bad_arguments(kwargs, needle):
    with pytest.raises(ConfigError, match=needle):
        SNSPD(**kwargs)


def test_bad_pulses_and_llr_params():
    with pytest.raises(ShapeError, match="2"):
        simulate_counts(np.array([0, 2], np.uint8), 1.0, 0.1, 0)
    with pytest.raises(ShapeError, match="float64"):
        simulate_counts(np.array([0.0, 1.0]), 1.0, 0.1, 0)
    with pytest.raises(ConfigError, match=r"ns.*-2"):
        slot_llr(np.zeros(3, np.int32), -2.0, 0.1)
    with pytest.raises(ConfigError, match="dead_time_slots"):
        apply_dead_time(np.zeros((2, 3), np.int32), -4)
