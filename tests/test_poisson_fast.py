# SPDX-License-Identifier: Apache-2.0
"""The slot-count distribution of :func:`modem.channel.poisson.simulate_counts` (scattered Poisson
totals for means <= 4, per-slot Poisson draws otherwise) against the channel model: every slot
count independent, ``Poisson(mean)`` with ``mean = eff*(ns*pulse + nb) + dark``.

A battery of goodness-of-fit tests (fixed seeds) checks a simulated batch:

* ``hist``: the count histogram of the slots of each distinct mean, chi-square against
  ``scipy.stats.poisson`` (clipped at 1 for a click detector);
* ``position``: the count totals of each slot position over the rows, against their means
  (a sampler favouring some slots fails);
* ``row_total``: the count totals of each row, dispersion against Poisson (a sampler with a fixed
  or too regular total per row fails: such slots are negatively correlated);
* ``pairs``: the joint histogram of disjoint adjacent slot pairs of one mean, against the product
  of the marginals (independence between slots);
* ``on_off``: the joint histogram of each PPM symbol's pulsed slot and the total of its other slots,
  against the product law (independence between pulsed and unpulsed slots).

The same battery rejects deliberately wrong samplers (each with correct or nearly correct
marginals), so it can fail.
"""
import numpy as np
import pytest
from scipy import stats

from modem.channel import poisson as ch
from modem.channel.poisson import SNSPD, simulate_counts

M, GUARD = 16, 4
SYM = M + GUARD
ROWS, N_SYM = 600, 100          # 600 rows of 2000 slots
P_MIN = 1e-4                    # a correct sampler passes every test at this level (fixed seeds)
P_REJECT = 1e-8                 # a wrong sampler fails its test far below it


def _pulses(seed, rows=ROWS, n_sym=N_SYM):
    rng = np.random.default_rng(seed)
    sym = rng.integers(0, M, (rows, n_sym))
    p = np.zeros((rows, n_sym, SYM), np.uint8)
    np.put_along_axis(p, sym[..., None], 1, axis=-1)
    return p.reshape(rows, n_sym * SYM)


def _bins(mean, p_min, cap=None):
    """Integer bins of min(Poisson(mean), cap), each of probability >= p_min, merged from 0 upwards
    (the last bin open). Returns (edges, probs): bin i holds the values in (edges[i-1], edges[i]],
    i.e. bin = np.searchsorted(edges, value)."""
    if cap == 1:
        q0 = np.exp(-mean)
        return np.array([0]), np.array([q0, 1.0 - q0])
    top = int(stats.poisson.ppf(1 - 1e-15, mean)) + 2
    k = np.arange(top)
    pmf, sf = stats.poisson.pmf(k, mean), stats.poisson.sf(k, mean)
    edges, probs, acc = [], [], 0.0
    for i in range(top):
        acc += pmf[i]
        if acc >= p_min and sf[i] >= p_min:
            edges.append(i)
            probs.append(acc)
            acc = 0.0
    probs.append(sf[edges[-1]] if edges else 1.0)
    return np.array(edges, np.int64), np.array(probs)


def _gof(values, mean, cap):
    """Chi-square p-value of integer values against min(Poisson(mean), cap), bins of >= 20 expected."""
    if mean == 0:
        return 1.0 if np.all(values == 0) else 0.0
    edges, probs = _bins(mean, 20.0 / values.size, cap)
    obs = np.bincount(np.searchsorted(edges, values), minlength=probs.size)
    return stats.chisquare(obs, probs * values.size).pvalue


def _joint_gof(a, b, mean_a, mean_b, cap):
    """Chi-square p-value of the pairs (a, b) against independent min(Poisson, cap) laws (marginal
    bins of probability >= sqrt(20/n): >= 20 expected per cell); 1.0 when one law is a constant."""
    p_min = np.sqrt(20.0 / a.size)
    ea, pa = _bins(mean_a, p_min, cap)
    eb, pb = _bins(mean_b, p_min, cap)
    if pa.size < 2 or pb.size < 2:
        return 1.0
    cell = np.searchsorted(ea, a) * pb.size + np.searchsorted(eb, b)
    obs = np.bincount(cell, minlength=pa.size * pb.size)
    exp = np.outer(pa, pb).ravel() * a.size
    return stats.chisquare(obs, exp * obs.sum() / exp.sum()).pvalue


def _two_sided_chi2(stat, df):
    return min(1.0, 2 * min(stats.chi2.sf(stat, df), stats.chi2.cdf(stat, df)))


def battery(counts, pulses, mean, cap=None) -> dict:
    """p-values of the tests in the module docstring. counts, pulses, mean: (rows, slots)."""
    out = {}
    ps = []
    for m in np.unique(mean):
        ps.append(_gof(counts[mean == m], float(m), cap))
    out["hist"] = min(1.0, min(ps) * len(ps))            # Bonferroni over the distinct means
    if cap is None:
        exp_pos = mean.sum(axis=0)
        keep = exp_pos > 0
        stat = (((counts.sum(axis=0) - exp_pos) ** 2)[keep] / exp_pos[keep]).sum()
        out["position"] = stats.chi2.sf(stat, int(keep.sum()))
        exp_row = mean.sum(axis=1)
        keep = exp_row > 0
        stat = (((counts.sum(axis=1) - exp_row) ** 2)[keep] / exp_row[keep]).sum()
        out["row_total"] = _two_sided_chi2(stat, int(keep.sum()))
    # pairs (2i, 2i+1) of unpulsed slots, those with the most frequent pair of means
    a, b = counts[:, 0::2], counts[:, 1::2]
    ma, mb = mean[:, 0::2], mean[:, 1::2]
    off = ~pulses[:, 0::2].astype(bool) & ~pulses[:, 1::2].astype(bool)
    pairs, freq = np.unique(np.stack([ma[off], mb[off]]), axis=1, return_counts=True)
    m_a, m_b = (float(v) for v in pairs[:, np.argmax(freq)])
    sel = off & (ma == m_a) & (mb == m_b)
    out["pairs"] = _joint_gof(a[sel], b[sel], m_a, m_b, cap)
    # pulsed slot and the total of the other slots of its symbol, where those means are one value
    c3, m3 = counts.reshape(-1, SYM), mean.reshape(-1, SYM)
    on = pulses.reshape(-1, SYM).astype(bool)
    on_c, on_m = c3[on], m3[on]
    rest_c = c3.sum(axis=1) - on_c
    rest_m = m3.sum(axis=1) - on_m
    if cap is not None:
        rest_c = (c3 * ~on).max(axis=1)                   # clicks: any click in the other slots
    combos, freq = np.unique(np.stack([on_m, rest_m]).round(9), axis=1, return_counts=True)
    key_on, rest_val = (float(v) for v in combos[:, np.argmax(freq)])
    sel = (on_m.round(9) == key_on) & (rest_m.round(9) == rest_val)
    out["on_off"] = _joint_gof(on_c[sel], rest_c[sel], key_on, rest_val, cap)
    assert all(np.isfinite(v) for v in out.values()), out
    return out


def _means(p, ns, nb, det=None):
    eff, dark = (1.0, 0.0) if det is None else (det.efficiency, det.dark_count_rate_per_slot)
    return np.broadcast_to(eff * (np.asarray(ns) * p + np.asarray(nb)) + dark, p.shape)


# (ns, nb, detector): scalar means (both scattered), large means (both per slot), nb per row
# (grouped scatter), nb along the slots (per-slot noise, scattered signal), ns per row (signal per
# pulsed slot), no background, SNSPD number resolving (thinning, dark counts), SNSPD clicks
ROWVAR = np.where(np.arange(ROWS) % 2, 0.1, 0.35)[:, None]
SLOTVAR = np.tile(np.linspace(0.05, 0.5, 10), N_SYM * SYM // 10)
CONFIGS = {
    "scalar": (2.0, 0.2, None),
    "large": (6.0, 5.0, None),
    "mixed": (6.0, 0.2, None),
    "nb_per_row": (2.0, ROWVAR, None),
    "nb_along_slots": (2.0, SLOTVAR, None),
    "ns_per_row": (ROWVAR * 8, 0.2, None),
    "no_background": (3.0, 0.0, None),
    "snspd": (3.0, 0.3, SNSPD(efficiency=0.6, dark_count_rate_per_slot=0.03, number_resolving=True)),
    "snspd_clicks": (3.0, 0.3, SNSPD(efficiency=0.6, dark_count_rate_per_slot=0.03)),
}


@pytest.mark.parametrize("name", list(CONFIGS))
def test_simulate_counts_passes_the_battery(name):
    ns, nb, det = CONFIGS[name]
    p = _pulses(1)
    counts = simulate_counts(p, ns, nb, np.random.default_rng(2024), det)
    cap = 1 if det is not None and not det.number_resolving else None
    res = battery(counts, p, _means(p, ns, nb, det), cap)
    assert min(res.values()) > P_MIN, res


def test_reference_sampler_passes_the_battery():
    """numpy's per-slot Poisson draws pass too: the battery tests the law, not the method."""
    p = _pulses(3)
    mean = _means(p, 2.0, 0.2)
    res = battery(np.random.default_rng(5).poisson(mean), p, mean)
    assert min(res.values()) > P_MIN, res


def test_methods_as_documented():
    """The draws are those the docstring describes: small means scattered from Poisson totals (one
    total over all slots of one noise mean, one over all pulsed slots), large means per slot."""
    p = _pulses(1, rows=4)
    on = p.astype(bool)
    k = int(on.sum())
    g = np.random.default_rng(9)
    ref = np.bincount(g.integers(0, p.size, g.poisson(p.size * 0.2)), minlength=p.size).reshape(p.shape)
    ref[on] += np.bincount(g.integers(0, k, g.poisson(k * 2.0)), minlength=k)
    np.testing.assert_array_equal(simulate_counts(p, 2.0, 0.2, np.random.default_rng(9)), ref)
    # noise per row (row means differ), signal per slot (mean > 4)
    nb = np.array([[0.1], [0.2], [0.3], [0.4]])
    g = np.random.default_rng(9)
    tot = g.poisson(nb[:, 0] * p.shape[1])
    where = g.integers(0, p.shape[1], tot.sum()) + np.repeat(np.arange(4) * p.shape[1], tot)
    ref = np.bincount(where, minlength=p.size).reshape(p.shape)
    ref[on] += g.poisson(np.full(k, 6.0))
    np.testing.assert_array_equal(simulate_counts(p, 6.0, nb, np.random.default_rng(9)), ref)
    # the method is a function of the mean values: equal means in arrays give the same draws
    g1 = simulate_counts(p, 2.0, np.full((4, 1), 0.2), np.random.default_rng(9))
    g2 = simulate_counts(p, np.full(p.shape, 2.0), np.full(p.shape[1], 0.2), np.random.default_rng(9))
    g3 = simulate_counts(p, 2.0, 0.2, np.random.default_rng(9))
    np.testing.assert_array_equal(g1, g3)
    np.testing.assert_array_equal(g2, g3)
    # above the threshold every slot gets its own draw
    assert ch._SCATTER_MAX_MEAN == 4.0


# ------------------------------------------------------------------------------- wrong samplers

def _fixed_total(p, ns, nb, rng):
    """Wrong: round(n*nb) noise counts per row scattered uniformly (multinomial, no Poisson total)."""
    rows, n = p.shape
    t = round(n * nb)
    where = rng.integers(0, n, (rows, t)) + np.arange(rows)[:, None] * n
    noise = np.bincount(where.ravel(), minlength=rows * n).reshape(rows, n)
    return noise + rng.poisson(ns * p)


def _biased_positions(p, ns, nb, rng):
    """Wrong: a Poisson total per row, slots drawn from u**1.1 (slightly favouring the first ones)."""
    rows, n = p.shape
    tot = rng.poisson(n * nb, rows)
    where = (rng.random(tot.sum()) ** 1.1 * n).astype(np.int64) + np.repeat(np.arange(rows) * n, tot)
    noise = np.bincount(where, minlength=rows * n).reshape(rows, n)
    return noise + rng.poisson(ns * p)


def _correlated_pairs(p, ns, nb, rng):
    """Wrong: correct Poisson marginals, but slot 2i+1 reuses the uniform of slot 2i in 10% of pairs."""
    u = rng.random(p.shape)
    copy = rng.random((p.shape[0], p.shape[1] // 2)) < 0.1
    u[:, 1::2] = np.where(copy, u[:, 0::2], u[:, 1::2])
    return stats.poisson.ppf(u, ns * p + nb).astype(np.int64)


def _shared_noise(p, ns, nb, rng):
    """Wrong: the pulsed slot's noise count is that of the slot before it (marginals correct)."""
    noise = rng.poisson(nb, p.shape)
    prev = np.roll(noise, 1, axis=1)
    return np.where(p.astype(bool), prev + rng.poisson(ns, p.shape), noise)


def _binomial_signal(p, ns, nb, rng):
    """Wrong: signal counts Binomial(8, ns/8) (the right mean, too small a variance)."""
    return rng.poisson(nb, p.shape) + p * rng.binomial(8, ns / 8, p.shape)


@pytest.mark.parametrize("sampler,test", [
    (_binomial_signal, "hist"),
    (_fixed_total, "row_total"),
    (_biased_positions, "position"),
    (_correlated_pairs, "pairs"),
    (_shared_noise, "on_off"),
])
def test_battery_rejects_wrong_samplers(sampler, test):
    p = _pulses(1)
    counts = sampler(p, 2.0, 0.2, np.random.default_rng(2024))
    res = battery(counts, p, _means(p, 2.0, 0.2))
    assert res[test] < P_REJECT, res
