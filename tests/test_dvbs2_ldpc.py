# SPDX-License-Identifier: Apache-2.0
"""DVB-S2 LDPC (EN 302 307-1 Annex B/C): tables, encoder, decoders, API contract."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import binomtest

from modem.errors import ConfigError, ShapeError
from modem.fec import dvbs2

ALL = dvbs2.all_codes()
SEED = 20240601

# EN 302 307-1 Tables 5a/5b and the Annex B/C tables as summarised in the reference (section 2):
# (K_ldpc, q, rows, info column-weight profile {weight: rows}, check-degree range, K_bch, t)
PROFILE = {
    ("normal", "1/4"): (16200, 135, 45, {12: 15, 3: 30}, (4, 4), 16008, 12),
    ("normal", "1/3"): (21600, 120, 60, {12: 20, 3: 40}, (5, 5), 21408, 12),
    ("normal", "2/5"): (25920, 108, 72, {12: 24, 3: 48}, (6, 6), 25728, 12),
    ("normal", "1/2"): (32400, 90, 90, {8: 36, 3: 54}, (7, 7), 32208, 12),
    ("normal", "3/5"): (38880, 72, 108, {12: 36, 3: 72}, (11, 11), 38688, 12),
    ("normal", "2/3"): (43200, 60, 120, {13: 12, 3: 108}, (10, 10), 43040, 10),
    ("normal", "3/4"): (48600, 45, 135, {12: 15, 3: 120}, (14, 14), 48408, 12),
    ("normal", "4/5"): (51840, 36, 144, {11: 18, 3: 126}, (18, 18), 51648, 12),
    ("normal", "5/6"): (54000, 30, 150, {13: 15, 3: 135}, (22, 22), 53840, 10),
    ("normal", "8/9"): (57600, 20, 160, {4: 20, 3: 140}, (27, 27), 57472, 8),
    ("normal", "9/10"): (58320, 18, 162, {4: 18, 3: 144}, (30, 30), 58192, 8),
    # short: check-degree ranges from the source tables' LINKS_MIN_CN/LINKS_MAX_CN (+1 at the
    # minimum: the first check has only one parity neighbour and is excluded from the range here)
    ("short", "1/4"): (3240, 36, 9, {12: 4, 3: 5}, (3, 4), 3072, 12),
    ("short", "1/3"): (5400, 30, 15, {12: 5, 3: 10}, (5, 5), 5232, 12),
    ("short", "2/5"): (6480, 27, 18, {12: 6, 3: 12}, (6, 6), 6312, 12),
    ("short", "1/2"): (7200, 25, 20, {8: 5, 3: 15}, (4, 7), 7032, 12),
    ("short", "3/5"): (9720, 18, 27, {12: 9, 3: 18}, (11, 11), 9552, 12),
    ("short", "2/3"): (10800, 15, 30, {13: 3, 3: 27}, (10, 10), 10632, 12),
    ("short", "3/4"): (11880, 12, 33, {12: 1, 3: 32}, (9, 13), 11712, 12),
    ("short", "4/5"): (12600, 10, 35, {3: 35}, (11, 13), 12432, 12),
    ("short", "5/6"): (13320, 8, 37, {13: 1, 3: 36}, (16, 19), 13152, 12),
    ("short", "8/9"): (14400, 5, 40, {4: 5, 3: 35}, (27, 27), 14232, 12),
}
# LINKS_TOTAL of the source tables (total number of edges of H), e.g. 226799 for normal 1/2.
EDGES = {
    ("normal", "1/4"): 194399, ("normal", "1/3"): 215999, ("normal", "2/5"): 233279,
    ("normal", "1/2"): 226799, ("normal", "3/5"): 285119, ("normal", "2/3"): 215999,
    ("normal", "3/4"): 226799, ("normal", "4/5"): 233279, ("normal", "5/6"): 237599,
    ("normal", "8/9"): 194399, ("normal", "9/10"): 194399,
    ("short", "1/4"): 48599, ("short", "1/3"): 53999, ("short", "2/5"): 58319,
    ("short", "1/2"): 48599, ("short", "3/5"): 71279, ("short", "2/3"): 53999,
    ("short", "3/4"): 47519, ("short", "4/5"): 44999, ("short", "5/6"): 49319,
    ("short", "8/9"): 48599,
}


def _awgn_llr(c, rng, esn0_db):
    """BPSK per coded bit (QPSK Es/N0 convention: each bit sees SNR Es/N0), LLR positive = 0."""
    s2 = 1.0 / 10 ** (esn0_db / 10)
    y = (1.0 - 2.0 * c) + rng.normal(0.0, np.sqrt(s2), c.shape)
    return (2.0 * y / s2).astype(np.float32)


# ------------------------------------------------------------------------------- tables
@pytest.mark.parametrize("frame,rate", ALL)
def test_table_structure(frame, rate):
    c = dvbs2.code(frame, rate)
    k_ldpc, q, nrows, weights, (dmin, dmax), k_bch, t = PROFILE[(frame, rate)]
    rows = dvbs2.load_table(frame, rate)
    assert (c.k_ldpc, c.q, c.k, c.t) == (k_ldpc, q, k_bch, t)
    assert len(rows) == nrows and len(rows) * 360 == c.k_ldpc
    m = c.n - c.k_ldpc
    assert m == 360 * q
    assert all(0 <= x < m for r in rows for x in r)
    assert all(len(set(r)) == len(r) for r in rows)
    prof = {}
    for r in rows:
        prof[len(r)] = prof.get(len(r), 0) + 1
    assert prof == weights
    # table order: the high-weight rows come first
    assert [len(r) for r in rows] == sorted((len(r) for r in rows), reverse=True)
    g = c.ldpc
    assert g.n_edges == EDGES[(frame, rate)]
    assert g.n_edges == 360 * sum(len(r) for r in rows) + 2 * m - 1
    deg = g.check_degrees
    assert (deg[1:].min(), deg[1:].max()) == (dmin, dmax)
    # column weights of H: information bits as in the table, parity bits 2 (the last one 1)
    H = g.parity_check_matrix()
    colw = np.asarray(H.sum(axis=0)).ravel()
    assert np.array_equal(colw[:c.k_ldpc], np.repeat([len(r) for r in rows], 360))
    assert np.all(colw[c.k_ldpc:-1] == 2) and colw[-1] == 1


def test_s2_not_t2_variants():
    """Normal 2/3 and short 3/5 are the DVB-S2 tables (DVB-T2 uses different ones)."""
    assert dvbs2.load_table("normal", "2/3")[0][:6] == (0, 10491, 16043, 506, 12826, 8065)
    assert dvbs2.load_table("short", "3/5")[0][:6] == (2765, 5713, 6426, 3596, 1374, 4811)
    assert dvbs2.load_table("normal", "1/2")[0] == (54, 9318, 14392, 27561, 26909, 10219, 2534, 8597)


def test_table_files_have_provenance():
    from importlib import resources
    for frame, rate in ALL:
        text = resources.files("modem.fec.dvbs2").joinpath(
            "tables", f"{frame}_{rate.replace('/', '_')}.txt").read_text()
        head = "".join(line for line in text.splitlines(True) if line.startswith("#"))
        assert "EN 302 307-1" in head and "V1.4.1" in head and "Where read" in head


# ------------------------------------------------------------------------------- encoder
def _reference_parity(rows, q, m, u):
    """The standard's accumulate procedure (EN 302 307-1 5.3.2), written independently."""
    p = np.zeros(m, dtype=np.uint8)
    j = np.arange(360)
    for g, xs in enumerate(rows):
        bits = u[360 * g:360 * (g + 1)]
        for x in xs:
            np.bitwise_xor.at(p, (x + j * q) % m, bits)
    return np.bitwise_xor.accumulate(p)


@pytest.mark.parametrize("frame,rate", ALL)
def test_encode_codeword(frame, rate):
    c = dvbs2.code(frame, rate)
    rng = np.random.default_rng(SEED)
    u = rng.integers(0, 2, (2, c.k), dtype=np.uint8)
    cw = c.encode(u)
    assert cw.shape == (2, c.n) and cw.dtype == np.uint8
    assert np.array_equal(cw[:, :c.k], u)
    H = c.ldpc.parity_check_matrix()
    for x in cw:
        assert not np.any((H @ x.astype(np.int64)) % 2), "H c != 0"
    assert np.all(c.ldpc.syndrome_ok(cw))
    # BCH part is a BCH codeword, LDPC parity equals the standard's procedure
    _, corr = c.bch.decode(cw[:, :c.k_ldpc])
    assert np.all(corr == 0)
    ref = _reference_parity(c.table, c.q, c.n - c.k_ldpc, cw[0, :c.k_ldpc])
    assert np.array_equal(cw[0, c.k_ldpc:], ref)


@pytest.mark.parametrize("frame,rate", ALL)
def test_noiseless_round_trip(frame, rate):
    c = dvbs2.code(frame, rate)
    rng = np.random.default_rng(SEED + 1)
    u = rng.integers(0, 2, (3, c.k), dtype=np.uint8)
    llr = 20.0 * (1.0 - 2.0 * c.encode(u).astype(np.float32))
    r = c.decode(llr)
    np.testing.assert_array_equal(r.u_hat, u)
    assert r.valid.all() and r.parity_ok.all()
    assert np.all(r.bch_corrected == 0) and np.all(r.iterations == 0)


def test_decoder_corrects_a_few_flipped_llrs_every_code_family():
    for frame, rate in [("short", "1/4"), ("short", "8/9"), ("normal", "9/10")]:
        c = dvbs2.code(frame, rate)
        rng = np.random.default_rng(SEED + 2)
        u = rng.integers(0, 2, (2, c.k), dtype=np.uint8)
        llr = 4.0 * (1.0 - 2.0 * c.encode(u).astype(np.float32))
        for b in range(2):
            pos = rng.choice(c.n, 20, replace=False)
            llr[b, pos] *= -0.5
        for alg in dvbs2.ALGORITHMS:
            r = c.decode(llr, algorithm=alg)
            np.testing.assert_array_equal(r.u_hat, u)
            assert r.valid.all() and np.all(r.iterations >= 1)


def test_batch_shapes_and_all_erasure():
    c = dvbs2.code("short", "1/3")
    rng = np.random.default_rng(SEED + 3)
    u = rng.integers(0, 2, (2, 3, c.k), dtype=np.uint8)
    cw = c.encode(u)
    assert cw.shape == (2, 3, c.n)
    np.testing.assert_array_equal(cw.reshape(6, c.n), c.encode(u.reshape(6, c.k)))
    np.testing.assert_array_equal(c.encode(u[0, 0]), cw[0, 0])
    llr = _awgn_llr(cw, rng, 1.0)
    r = c.decode(llr)
    assert r.u_hat.shape == (2, 3, c.k) and r.valid.shape == (2, 3) and r.iterations.shape == (2, 3)
    r2 = c.decode(llr.reshape(6, c.n))
    np.testing.assert_array_equal(r.u_hat.reshape(6, c.k), r2.u_hat)
    r1 = c.decode(llr[1, 2])
    assert r1.u_hat.shape == (c.k,) and r1.valid.shape == ()
    np.testing.assert_array_equal(r1.u_hat, r2.u_hat[5])
    # empty batch
    r0 = c.decode(np.zeros((0, c.n), np.float32))
    assert r0.u_hat.shape == (0, c.k)
    # all-erasure: no information, the all-zero word is returned without bias, and NOT as valid data
    re = c.decode(np.zeros(c.n))
    assert not re.u_hat.any() and re.parity_ok and not re.valid


@pytest.mark.parametrize("frame,rate", [("short", "1/3"), ("normal", "9/10")])
def test_frames_with_more_erasures_than_parity_bits_are_not_valid(frame, rate):
    """A frame of zero LLRs (a gap, padding) 'converges' to the all-zero codeword and passed BCH:
    it was reported valid. With more than n - k_ldpc erasures the kept bits cannot determine the
    codeword, so such a frame is never valid; a clean frame with a quarter of that many erasures,
    spread over it, decodes and is valid."""
    c = dvbs2.code(frame, rate)
    rng = np.random.default_rng(SEED + 11)
    u = rng.integers(0, 2, (3, c.k), dtype=np.uint8)
    llr = 8.0 * (1.0 - 2.0 * c.encode(u).astype(np.float32))
    llr[0] = 0.0                                   # all erased
    llr[1, c.k_ldpc - 1:] = 0.0                    # one erasure more than the parity bits
    llr[2, rng.choice(c.n, (c.n - c.k_ldpc) // 4, replace=False)] = 0.0
    r = c.decode(llr)
    assert r.parity_ok[0] and r.bch_corrected[0] == 0 and not r.valid[0]
    assert not r.valid[1]
    assert r.valid[2] and np.array_equal(r.u_hat[2], u[2])


def test_decode_does_not_mutate_input():
    c = dvbs2.code("short", "2/3")
    llr = np.full((2, c.n), 3.0, dtype=np.float32)
    llr[:, 5] = -1.0
    keep = llr.copy()
    c.decode(llr)
    np.testing.assert_array_equal(llr, keep)


# ------------------------------------------------------------------------------- errors
def test_bad_configuration():
    with pytest.raises(ConfigError, match="medium"):
        dvbs2.code("medium", "1/2")
    with pytest.raises(ConfigError, match="9/10"):
        dvbs2.code("short", "9/10")
    with pytest.raises(ConfigError, match="7/8"):
        dvbs2.code("normal", "7/8")
    c = dvbs2.code("short", "1/2")
    llr = np.zeros((1, c.n), np.float32)
    with pytest.raises(ConfigError, match="bogus"):
        c.decode(llr, algorithm="bogus")
    with pytest.raises(ConfigError, match="max_iter"):
        c.decode(llr, max_iter=0)


def test_bad_input():
    c = dvbs2.code("short", "1/2")
    with pytest.raises(ShapeError, match=str(c.k)):
        c.encode(np.zeros((2, c.k + 1), np.uint8))
    with pytest.raises(ShapeError, match="2"):
        c.encode(np.full(c.k, 2, np.uint8))
    with pytest.raises(ShapeError, match=str(c.n)):
        c.decode(np.zeros((2, c.n - 1)))
    bad = np.zeros(c.n)
    bad[7] = np.nan
    with pytest.raises(ShapeError, match="nan"):
        c.decode(bad)
    bad[7] = -np.inf
    with pytest.raises(ShapeError, match="inf"):
        c.decode(bad)
    assert issubclass(ShapeError, ValueError)


def test_code_is_cached():
    assert dvbs2.code("normal", "1/2") is dvbs2.code("normal", "1/2")
    c = dvbs2.code("normal", "1/2")
    assert (c.k, c.n, c.k_ldpc, c.t, c.frame, c.rate) == (32208, 64800, 32400, 12, "normal", "1/2")


# ------------------------------------------------------------------------------- statistics
def test_awgn_short_half_fer_bound():
    """Short 1/2 (K_ldpc/n = 4/9) at QPSK Es/N0 = 1.0 dB: the channel makes ~13 % raw bit
    errors, the decoder must reach FER < 5 % (one-sided exact binomial test at 0.1 %)."""
    c = dvbs2.code("short", "1/2")
    rng = np.random.default_rng(SEED + 4)
    nfr = 256
    u = rng.integers(0, 2, (nfr, c.k), dtype=np.uint8)
    cw = c.encode(u)
    llr = _awgn_llr(cw, rng, 1.0)
    raw = np.count_nonzero((llr < 0) != cw)
    assert raw > 0.05 * cw.size            # the channel really made errors
    r = c.decode(llr, max_iter=50)
    fe = int(np.count_nonzero(np.any(r.u_hat != u, axis=1)))
    assert binomtest(fe, nfr, 0.05, alternative="less").pvalue < 1e-3, f"FER {fe}/{nfr}"
    # decoded frames that claim validity are right
    assert np.all(np.all(r.u_hat == u, axis=1)[r.valid])


def test_minsum_vs_sum_product():
    """Both decoders agree on a moderately noisy channel; sum-product needs no more iterations."""
    c = dvbs2.code("short", "1/2")
    rng = np.random.default_rng(SEED + 5)
    nfr = 48
    u = rng.integers(0, 2, (nfr, c.k), dtype=np.uint8)
    llr = _awgn_llr(c.encode(u), rng, 0.75)
    ms = c.decode(llr, algorithm="minsum")
    sp = c.decode(llr, algorithm="sum-product")
    assert sp.valid.sum() >= ms.valid.sum() - 1
    both = ms.valid & sp.valid
    np.testing.assert_array_equal(ms.u_hat[both], sp.u_hat[both])
    assert sp.iterations.mean() <= ms.iterations.mean() + 0.5


@pytest.mark.slow
@pytest.mark.parametrize("frame,rate,esn0,bound", [("normal", "1/2", 1.5, 0.05), ("normal", "9/10", 6.8, 0.05),
                                                    ("short", "8/9", 7.0, 0.05)])
def test_awgn_fer_slow(frame, rate, esn0, bound):
    """About 0.4-0.5 dB above the EN 302 307-1 Table 13 QEF Es/N0 (QPSK, 50 iterations)."""
    c = dvbs2.code(frame, rate)
    rng = np.random.default_rng(SEED + 6)
    nfr = 192
    u = rng.integers(0, 2, (nfr, c.k), dtype=np.uint8)
    cw = c.encode(u)
    llr = _awgn_llr(cw, rng, esn0)
    assert np.count_nonzero((llr < 0) != cw) > 0
    r = c.decode(llr, max_iter=50)
    fe = int(np.count_nonzero(np.any(r.u_hat != u, axis=1)))
    assert binomtest(fe, nfr, bound, alternative="less").pvalue < 1e-3, f"FER {fe}/{nfr}"


# ------------------------------------------------------------------------------- layered 16-bit kernel
def _layer_edges(g):
    """(check position, decoder variable) pairs of the layered description of LDPCGraph g."""
    pairs = []
    for i in range(g.q):
        for e in range(g.lay_ptr[i], g.lay_ptr[i + 1]):
            jv = np.arange(g.lay_cnt[e])
            pairs.append(np.stack([i * 360 + (jv + g.lay_rho[e]) % 360, g.lay_v0[e] + jv], axis=1))
    return np.concatenate(pairs)


@pytest.mark.parametrize("frame,rate", ALL)
def test_layers_reproduce_the_graph(frame, rate):
    """The layered description (what ldpc_decode_minsum_i16 runs) is exactly H: every edge once,
    layer i = the 360 checks at positions 360 i .. 360 i + 359; the repeats (a group meeting a
    layer twice, which every DVB-S2 code has) are flagged, and only those."""
    g = dvbs2.code(frame, rate).ldpc
    pairs = _layer_edges(g)
    assert len(pairs) == g.n_edges
    ref = np.stack([np.repeat(np.arange(g.m), np.diff(g.dec_ptr)), g.dec_var], axis=1)
    got = pairs[np.lexsort((pairs[:, 1], pairs[:, 0]))]
    ref = ref[np.lexsort((ref[:, 1], ref[:, 0]))]
    np.testing.assert_array_equal(got, ref)
    assert np.all((g.lay_rho >= 0) & (g.lay_rho < 360) & (g.lay_cnt <= 360))
    # repeats: same variable run as an earlier edge of the layer <=> lay_delta
    n_rep = 0
    for i in range(g.q):
        seen = set()
        for e in range(g.lay_ptr[i], g.lay_ptr[i + 1]):
            assert bool(g.lay_delta[e]) == (int(g.lay_v0[e]) in seen)
            n_rep += int(g.lay_v0[e]) in seen
            seen.add(int(g.lay_v0[e]))
    assert n_rep == g.layer_repeats > 0
    # without the repeats, no variable appears twice in a layer
    for i in range(g.q):
        es = [e for e in range(g.lay_ptr[i], g.lay_ptr[i + 1]) if not g.lay_delta[e]]
        vs = np.concatenate([g.lay_v0[e] + np.arange(g.lay_cnt[e]) for e in es])
        assert np.unique(vs).size == vs.size
    assert g.layer_deg_max == max(np.diff(g.lay_ptr))


def _one_layered_iteration_reference(g, L, alpha):
    """One iteration of the layer-parallel min-sum in float64 (NumPy), repeats as in the kernel:
    all edges of a layer read the same posteriors, every edge adds its message change."""
    L = L.astype(np.float64).copy()
    for i in range(g.q):
        es = range(g.lay_ptr[i], g.lay_ptr[i + 1])
        rows, vars_ = [], []
        for e in es:
            jv = np.arange(g.lay_cnt[e])
            rows.append((jv + g.lay_rho[e]) % 360)
            vars_.append(g.lay_v0[e] + jv)
        rows, vars_ = np.concatenate(rows), np.concatenate(vars_)
        t = L[vars_]                                   # R = 0 in the first iteration
        m1 = np.full(360, np.inf)
        m2 = np.full(360, np.inf)
        neg = np.zeros(360, dtype=np.int64)
        for r_, a in zip(rows, np.abs(t)):
            m2[r_] = min(m2[r_], max(m1[r_], a))
            m1[r_] = min(m1[r_], a)
        np.add.at(neg, rows, (t < 0).astype(np.int64))
        mag = np.where(np.abs(t) == m1[rows], m2[rows], m1[rows]) * alpha
        sign = np.where((neg[rows] - (t < 0)) % 2 == 1, -1.0, 1.0)
        np.add.at(L, vars_, sign * mag)                # L += r_new - r_old, r_old = 0
    return L


def test_i16_iteration_matches_a_float_reference():
    """One iteration of the 16-bit kernel equals the float64 layer-parallel rule up to the
    rounding of the scaled messages (<= 0.5 per message; within one iteration the rounding of
    earlier layers feeds the later ones, so a few units at most, on values of about 1000)."""
    from modem.fec.dvbs2 import _cpu
    c = dvbs2.code("short", "1/2")
    g = c.ldpc
    rng = np.random.default_rng(SEED + 7)
    llr = _awgn_llr(c.encode(rng.integers(0, 2, (1, c.k), dtype=np.uint8)), rng, 1.0)[0]
    L0 = np.round(llr[g.dec_old] * (1024.0 / np.abs(llr).mean())).astype(np.int16)
    L = L0.copy()
    R = np.zeros(g.lay_v0.size * 360, np.int16)
    T = np.zeros(g.layer_deg_max * 360, np.int16)
    W = np.zeros(5 * 720, np.int16)
    _cpu._i16_iteration(L, R, T, g.lay_ptr, g.lay_v0, g.lay_rho, g.lay_cnt, g.lay_delta, W,
                        np.int32(round(0.8 * 32768)), np.int32(0))
    ref = _one_layered_iteration_reference(g, L0, 26214 / 32768)
    assert np.abs(ref).max() < 32767                  # no saturation in this check
    err = np.abs(L - ref)
    print(f"max |L - ref| {err.max():.2f}, mean {err.mean():.3f}")
    assert err.max() <= 16.0
    assert err.mean() < 1.0
    assert np.abs(L.astype(np.int64) - L0).max() > 1000   # the messages really moved L


def test_i16_scale_invariance_and_small_llrs():
    """The fixed-point decoder normalises each frame: LLRs times a power of two decode identically;
    a tiny negative LLR keeps its hard decision (never rounds to bit 0)."""
    c = dvbs2.code("short", "1/2")
    rng = np.random.default_rng(SEED + 8)
    u = rng.integers(0, 2, (4, c.k), dtype=np.uint8)
    cw = c.encode(u)
    llr = _awgn_llr(cw, rng, 1.5)
    r1 = c.decode(llr)
    for f in (0.25, 64.0):
        r2 = c.decode(llr * np.float32(f))
        np.testing.assert_array_equal(r1.u_hat, r2.u_hat)
        np.testing.assert_array_equal(r1.iterations, r2.iterations)
    clean = np.where(cw == 1, -5.0, 5.0).astype(np.float32)
    clean[:, 10] = np.where(cw[:, 10] == 1, -1e-6, 1e-6)
    rc = c.decode(clean)
    np.testing.assert_array_equal(rc.u_hat, u)
    assert np.all(rc.iterations == 0)


def test_i16_saturation_and_offset_minsum():
    """Huge LLRs (clipped at 1e6, saturating the 16-bit posteriors) with flipped bits still decode;
    the offset (beta) variant decodes too."""
    c = dvbs2.code("normal", "1/2")
    rng = np.random.default_rng(SEED + 9)
    u = rng.integers(0, 2, (2, c.k), dtype=np.uint8)
    llr = 1e7 * (1.0 - 2.0 * c.encode(u).astype(np.float32))
    llr[0, rng.choice(c.n, 30, replace=False)] *= -1e-6           # 30 weak wrong bits
    llr[1, rng.choice(c.n, 200, replace=False)] = 0.0              # 200 erasures
    r = c.decode(llr)
    np.testing.assert_array_equal(r.u_hat, u)
    assert r.valid.all() and np.all(r.iterations >= 1)
    noisy = _awgn_llr(c.encode(u), rng, 2.0)
    ro = c.decode(noisy, offset=0.1, scale=1.0)
    np.testing.assert_array_equal(ro.u_hat, u)


def test_i16_frames_independent_of_batch():
    """Each frame decodes the same alone or in any batch (one frame per worker, no shared state)."""
    c = dvbs2.code("short", "1/2")
    rng = np.random.default_rng(SEED + 10)
    llr = _awgn_llr(c.encode(rng.integers(0, 2, (7, c.k), dtype=np.uint8)), rng, 0.9)
    r = c.decode(llr)
    for b in (0, 3, 6):
        rb = c.decode(llr[b])
        np.testing.assert_array_equal(rb.u_hat, r.u_hat[b])
        assert rb.iterations == r.iterations[b] and rb.valid == r.valid[b]
    r3 = c.decode(llr[2:5])
    np.testing.assert_array_equal(r3.u_hat, r.u_hat[2:5])


def test_fast_minsum_agrees_with_serial_minsum():
    """'minsum' (layer-parallel, 16-bit) and 'minsum-serial' (float32, check by check) decode the
    same frames on a noisy channel, with nearly the same number of iterations."""
    c = dvbs2.code("normal", "1/2")
    rng = np.random.default_rng(SEED + 11)
    u = rng.integers(0, 2, (16, c.k), dtype=np.uint8)
    llr = _awgn_llr(c.encode(u), rng, 1.3)
    assert np.count_nonzero((llr < 0) != c.encode(u)) > 0.1 * llr.size
    fast = c.decode(llr)
    ser = c.decode(llr, algorithm="minsum-serial")
    assert fast.valid.sum() >= ser.valid.sum() - 1 and fast.valid.sum() >= 14
    both = fast.valid & ser.valid
    np.testing.assert_array_equal(fast.u_hat[both], ser.u_hat[both])
    assert abs(fast.iterations.mean() - ser.iterations.mean()) < 1.0


def test_bch_remainder_fast_path_equals_bitwise_division():
    """The packed (multiply) BCH remainder equals the byte-table path and a bit-serial division."""
    from modem.fec.dvbs2 import _cpu
    rng = np.random.default_rng(SEED + 12)
    for frame, rate in [("normal", "1/2"), ("normal", "9/10"), ("short", "1/2")]:
        bch = dvbs2.code(frame, rate).bch
        table, gen = bch._tables
        nw = table.shape[1]
        bits = rng.integers(0, 2, (3, 8 * 40), dtype=np.uint8)
        odd = np.zeros((3, 8 * 40 + 3), dtype=np.uint8)        # width not a multiple of 8: slow path
        odd[:, :8 * 40] = bits
        for b in range(3):
            fast = np.zeros(nw, np.uint64)
            slow = np.zeros(nw, np.uint64)
            _cpu._remainder(bits, b, 8 * 40, table, gen, fast)
            _cpu._remainder(odd, b, 8 * 40, table, gen, slow)
            np.testing.assert_array_equal(fast, slow)
            # bit-serial reference: r(x) = bits(x) x^P mod g(x), as Python integers
            g = int("".join(f"{int(w):064b}" for w in gen), 2) >> (64 * nw - bch.nparity)
            g |= 1 << bch.nparity
            r = 0
            for bit in bits[b]:
                r = (r << 1) | int(bit)
            r <<= bch.nparity
            for d in range(r.bit_length() - 1, bch.nparity - 1, -1):
                if r >> d & 1:
                    r ^= g << (d - bch.nparity)
            got = int("".join(f"{int(w):064b}" for w in fast), 2) >> (64 * nw - bch.nparity)
            assert got == r


def test_bench_ldpc_smoke(tmp_path, monkeypatch):
    """bench/bench_ldpc.py on a tiny configuration writes a self-describing JSON (A/B of both min-sums)."""
    import importlib.util
    import json
    from pathlib import Path
    path = Path(__file__).resolve().parents[1] / "bench" / "bench_ldpc.py"
    spec = importlib.util.spec_from_file_location("bench_ldpc_smoke", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    monkeypatch.setattr(mod, "CONFIGS", [("short", "1/2", 1.2, 50, 4)])
    out = tmp_path / "ldpc.json"
    mod.main(["--repeats", "1", "--algorithms", "minsum", "minsum-serial", "--out", str(out)])
    rep = json.loads(out.read_text())
    assert set(rep["decoders"]) == {"minsum", "minsum-serial"}
    assert [r["algorithm"] for r in rep["results"]] == ["minsum", "minsum-serial"]
    for r in rep["results"]:
        assert r["k"] == 7032 and r["frames_per_call"] == 4 and r["info_bits_per_s_best"] > 0
        assert r["frame_errors"] == 0 and 0 < r["iterations_mean"] < 50
    assert rep["backend_info"]["backend"] == "cpu" and "bench_ldpc.py" in rep["command"]
