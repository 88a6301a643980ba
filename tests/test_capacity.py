# SPDX-License-Identifier: Apache-2.0
"""PPM Poisson-channel capacity, capacity-limit ns and uncoded SER (modem.analysis.capacity)."""
import itertools
import math

import numpy as np
import pytest
from scipy import special, stats

from modem.analysis.capacity import (
    CapacityEstimate,
    gap_db,
    info_bits_per_symbol,
    ns_capacity_limit,
    ppm_poisson_capacity,
    ppm_uncoded_ser,
)
from modem.channel.poisson import simulate_counts
from modem.errors import ConfigError


def _capacity_brute_force(M, ns, nb, kmax):
    """C by explicit enumeration of all count vectors (y_0..y_{M-1}) with counts <= kmax."""
    L = math.log1p(ns / nb)
    k = np.arange(kmax + 1)
    p0 = stats.poisson.pmf(k, ns + nb)
    pb = stats.poisson.pmf(k, nb)
    total = 0.0
    for y in itertools.product(range(kmax + 1), repeat=M):
        y = np.array(y)
        w = p0[y[0]] * np.prod(pb[y[1:]])
        total += w * special.logsumexp(L * (y - y[0])) / math.log(2)
    return math.log2(M) - total


# ------------------------------------------------------------------------------- capacity

@pytest.mark.parametrize("M", [2, 16, 256])
@pytest.mark.parametrize("ns", [0.1, 1.0, 5.0])
def test_erasure_formula_nb0(M, ns):
    c = ppm_poisson_capacity(M, ns, 0.0)
    assert c == pytest.approx(math.log2(M) * (1 - math.exp(-ns)), rel=1e-14)
    # the numerical evaluation tends to it as nb -> 0
    c_small = ppm_poisson_capacity(M, ns, 1e-10)
    assert abs(c_small - c) < 1e-6


@pytest.mark.parametrize("M,ns,nb,kmax", [(2, 1.0, 0.5, 25), (2, 3.0, 0.05, 25), (4, 1.5, 0.2, 11)])
def test_exact_matches_brute_force_enumeration(M, ns, nb, kmax):
    est = ppm_poisson_capacity(M, ns, nb, return_error=True)
    ref = _capacity_brute_force(M, ns, nb, kmax)
    assert est.error < 1e-10
    assert est.value == pytest.approx(ref, abs=1e-9)


def test_capacity_monotone_bounded_and_vanishing():
    for M, nb in [(16, 0.1), (64, 1.0), (128, 0.01)]:
        ns = np.geomspace(1e-4, 50, 25)
        c = np.array([ppm_poisson_capacity(M, x, nb) for x in ns])
        assert np.all(np.diff(c) > 0)
        assert np.all(c >= 0) and np.all(c <= math.log2(M))
        assert c[0] < 1e-3
        assert c[-1] > math.log2(M) - 1e-3
    # more noise -> less capacity
    assert ppm_poisson_capacity(16, 2.0, 0.5) < ppm_poisson_capacity(16, 2.0, 0.1) \
        < ppm_poisson_capacity(16, 2.0, 0.0)
    assert ppm_poisson_capacity(16, 0.0, 0.3) == 0.0


@pytest.mark.parametrize("M,ns,nb", [(16, 1.0, 0.1), (64, 2.0, 0.5), (128, 4.0, 1.0), (16, 1.0, 0.0)])
def test_monte_carlo_agrees_with_exact(M, ns, nb):
    exact = ppm_poisson_capacity(M, ns, nb, return_error=True)
    mc = ppm_poisson_capacity(M, ns, nb, method="mc", n_mc=40_000, seed=2024, return_error=True)
    assert isinstance(mc, CapacityEstimate) and mc.method == "mc"
    assert 0 < mc.error < 0.02
    assert abs(mc.value - exact.value) < 4.5 * mc.error + exact.error
    # fixed seed -> reproducible
    assert ppm_poisson_capacity(M, ns, nb, method="mc", n_mc=40_000, seed=2024) == mc.value


# ------------------------------------------------------------------------------- capacity limit

def test_info_bits_per_symbol():
    assert info_bits_per_symbol(16, 0.5) == pytest.approx(7526 / 3780)
    assert info_bits_per_symbol(64, "1/3") == pytest.approx(5006 / 2520)
    assert info_bits_per_symbol(128, 2 / 3) == pytest.approx(10046 / 2160)
    assert info_bits_per_symbol(16, 0.5, overhead="none") == 2.0
    with pytest.raises(ConfigError, match="0.4"):
        info_bits_per_symbol(16, 0.4)
    with pytest.raises(ConfigError, match="512"):
        info_bits_per_symbol(512, 0.5)
    with pytest.raises(ConfigError, match="overhead"):
        info_bits_per_symbol(16, 0.5, overhead="crc")


def test_capacity_limit_m16_rate_half():
    ns = ns_capacity_limit(16, 0.5, 0.1)
    print(f"\ncapacity-limit ns (M=16, r=1/2, nb=0.1): {ns:.6f} photons/pulse "
          f"({ns / (7526 / 3780):.4f} photons/info bit)")
    target = 7526 / 3780
    assert ppm_poisson_capacity(16, ns, 0.1) == pytest.approx(target, abs=1e-9)
    # above the noiseless (erasure) limit, and a sensible number of photons
    assert -math.log(1 - target / 4) < ns < 3.0
    assert ppm_poisson_capacity(16, 0.99 * ns, 0.1) < target < ppm_poisson_capacity(16, 1.01 * ns, 0.1)
    # no CRC/termination overhead -> slightly more information per symbol -> slightly more ns
    assert ns < ns_capacity_limit(16, 0.5, 0.1, overhead="none")


def test_capacity_limit_orderings_and_closed_form():
    lim = {r: ns_capacity_limit(16, r, 0.1) for r in ("1/3", "1/2", "2/3")}
    assert lim["1/3"] < lim["1/2"] < lim["2/3"]
    assert ns_capacity_limit(16, 0.5, 0.1) < ns_capacity_limit(64, 0.5, 0.1) < ns_capacity_limit(128, 0.5, 0.1)
    # nb = 0: closed form, per repeated pulse
    t = 7526 / 3780
    assert ns_capacity_limit(16, 0.5, 0.0) == pytest.approx(-math.log(1 - t / 4), rel=1e-14)
    assert ns_capacity_limit(16, 0.5, 0.0, repetition=4) == pytest.approx(-math.log(1 - t / 4) / 4)


def test_capacity_limit_with_repetition():
    q = 3
    ns = ns_capacity_limit(64, 0.5, 0.2, repetition=q)
    assert ppm_poisson_capacity(64, q * ns, q * 0.2) == pytest.approx(7526 / 2520, abs=1e-9)
    assert ns < ns_capacity_limit(64, 0.5, 0.2)  # fewer photons per pulse, more pulses


def test_gap_db():
    assert gap_db(2.0, 1.0) == pytest.approx(10 * math.log10(2))
    assert gap_db(1.0, 1.0) == 0.0
    with pytest.raises(ConfigError, match="ns_limit"):
        gap_db(1.0, 0.0)
    with pytest.raises(ConfigError, match="-1"):
        gap_db(-1.0, 1.0)


# ------------------------------------------------------------------------------- uncoded SER

def _ser_brute_force(M, ns, nb, kmax):
    """Enumerate (y0, max of others, multiplicity) exactly for M = 2 or 3."""
    p0 = stats.poisson.pmf(np.arange(kmax + 1), ns + nb)
    pb = stats.poisson.pmf(np.arange(kmax + 1), nb)
    pc = 0.0
    for y in itertools.product(range(kmax + 1), repeat=M):
        w = p0[y[0]] * np.prod(pb[list(y[1:])])
        top = max(y)
        if y[0] == top:
            pc += w / y.count(top)
    return 1 - pc


def test_ser_nb0_closed_form_and_brute_force():
    for M, ns in [(2, 1.0), (16, 3.0), (256, 0.2)]:
        assert ppm_uncoded_ser(M, ns, 0.0) == pytest.approx((1 - 1 / M) * math.exp(-ns), rel=1e-13)
    for M, ns, nb in [(2, 2.0, 0.3), (3, 1.0, 1.0)]:
        assert ppm_uncoded_ser(M, ns, nb) == pytest.approx(_ser_brute_force(M, ns, nb, 30), abs=1e-12)
    assert ppm_uncoded_ser(16, 0.0, 0.5) == pytest.approx(15 / 16, rel=1e-12)


@pytest.mark.parametrize("M,ns,nb", [(16, 2.0, 0.2), (64, 3.0, 0.5), (4, 0.5, 1.0)])
def test_ser_against_monte_carlo(M, ns, nb):
    rng = np.random.default_rng(M)
    n = 100_000
    pulses = np.zeros((n, M), dtype=np.uint8)
    pulses[:, 0] = 1  # symmetric channel: the pulse position does not matter
    counts = simulate_counts(pulses, ns, nb, rng)
    # ML = largest count; ties broken uniformly at random
    key = counts + 0.5 * rng.random(counts.shape)
    errors = int(np.count_nonzero(np.argmax(key, axis=1) != 0))
    ser = ppm_uncoded_ser(M, ns, nb)
    assert stats.binomtest(errors, n, ser).pvalue > 1e-3


def test_ser_tiny_values_stay_accurate():
    s = [ppm_uncoded_ser(16, x, 0.01) for x in (50.0, 200.0, 700.0)]
    assert all(0 < v for v in s) and s[0] > s[1] > s[2]
    assert s[2] < 1e-290
    # large ns, nb = 0: (1 - 1/M) e^{-ns} down near the double range
    assert ppm_uncoded_ser(16, 700.0, 0.0) == pytest.approx(15 / 16 * math.exp(-700.0), rel=1e-12)


# ------------------------------------------------------------------------------- validation

@pytest.mark.parametrize("call,needle", [
    (lambda: ppm_poisson_capacity(16, -1.0, 0.1), r"ns.*-1\.0"),
    (lambda: ppm_poisson_capacity(16, 1.0, float("nan")), r"nb.*nan"),
    (lambda: ppm_poisson_capacity(1, 1.0, 0.1), r"M.*1"),
    (lambda: ppm_poisson_capacity(16, 1.0, 0.1, method="bogus"), "bogus"),
    (lambda: ppm_poisson_capacity(16, 1.0, 0.1, method="mc", n_mc=1), "n_mc"),
    (lambda: ns_capacity_limit(16, 0.5, -0.1), r"nb.*-0\.1"),
    (lambda: ns_capacity_limit(16, 0.5, 0.1, repetition=0), r"repetition.*0"),
    (lambda: ns_capacity_limit(16, 1.0, 0.1, overhead="none"), "log2 M"),
    (lambda: ppm_uncoded_ser(16, float("inf"), 0.1), r"ns.*inf"),
])
def test_bad_arguments(call, needle):
    with pytest.raises(ConfigError, match=needle):
        call()
