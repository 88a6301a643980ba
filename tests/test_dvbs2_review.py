# SPDX-License-Identifier: Apache-2.0
"""Review tests (R5): DVB-S2 LDPC/BCH decoder inputs at the edges, DPSK LLRs at the edges."""
import numpy as np
import pytest

from modem.fec import dvbs2
from modem.modulation import dpsk


# ------------------------------------------------------------------------------ DVB-S2 decode
@pytest.mark.parametrize("algorithm", ["minsum", "minsum-serial", "sum-product"])
def test_finite_llrs_beyond_float32_range_are_clipped_not_rejected(algorithm):
    """decode() documents "magnitudes are clipped at 1e6; NaN/inf raise". A finite float64 LLR of
    1e39 (a noiseless channel, LLR = 2y/sigma^2 with a tiny sigma) used to overflow to inf in the
    float32 cast and was then rejected as non-finite."""
    c = dvbs2.code("short", "1/2")
    rng = np.random.default_rng(5)
    u = rng.integers(0, 2, (2, c.k), dtype=np.uint8)
    cw = c.encode(u)
    llr = np.where(cw == 0, 1e39, -1e300)            # float64, finite, beyond float32
    llr[1, :50] = -llr[1, :50] * 1e-300              # a few flipped bits of small magnitude
    r = c.decode(llr, max_iter=10, algorithm=algorithm)
    assert np.all(r.valid) and np.array_equal(r.u_hat, u)
    with pytest.raises(Exception, match="finite"):
        c.decode(np.full(c.n, np.inf), algorithm=algorithm)


# ------------------------------------------------------------------------------ DPSK LLRs
@pytest.mark.parametrize("modes", [1, 2, 3])
def test_exact_llr_without_signal_energy_is_zero_for_every_mode_count(modes):
    """es = 0 (no signal: e.g. a fade to zero intensity): x_A and x_B have the same distribution
    under both hypotheses, so the LLR is 0. For M > 1 the (M-1)/2 ln(x_B/x_A) term used to be left
    over (both Bessel terms fell to the same small-argument value), giving confident LLRs from
    noise alone."""
    xa = np.array([1.0, 0.3, 5.0, 0.01])
    xb = np.array([4.0, 2.0, 0.2, 0.01])
    L = dpsk.llr_exact(xa, xb, 0.0, 1.0, modes=modes)
    np.testing.assert_array_equal(L, 0.0)
    es = np.array([0.0, 1.0, 0.0, 1.0])             # per-bit energies, some zero
    L2 = dpsk.llr_exact(xa, xb, es, 1.0, modes=modes)
    assert L2[0] == 0 and L2[2] == 0
    np.testing.assert_array_equal(L2[[1, 3]], dpsk.llr_exact(xa[[1, 3]], xb[[1, 3]], 1.0, 1.0, modes=modes))


def _awgn(c, nfr, esn0_db, seed):
    rng = np.random.default_rng(seed)
    u = rng.integers(0, 2, (nfr, c.k), dtype=np.uint8)
    cw = c.encode(u)
    s2 = 1.0 / 10 ** (esn0_db / 10)
    llr = (2.0 * ((1.0 - 2.0 * cw) + rng.normal(0.0, np.sqrt(s2), cw.shape)) / s2).astype(np.float32)
    return u, cw, llr, rng


@pytest.mark.parametrize("frac", [0.001, 0.01, 0.05])
def test_a_few_certain_llrs_do_not_break_the_fixed_point_decoder(frac):
    """The 16-bit decoder scales each frame so that its MEAN |LLR| maps to 1024. A few correct but
    huge LLRs (known bits, saturated front-end values at LLR_CLIP) used to inflate that mean so much
    that every ordinary LLR rounded to 0 or +-1: at 2 dB, where every frame decodes, 1 % of the bits
    set to +-1e6 with the RIGHT sign made 64/64 frames fail (minsum-serial: 0/64). The guard covers
    up to 10 % of such bits (see code.OUTLIER_RATIO)."""
    c = dvbs2.code("short", "1/2")
    u, cw, llr, rng = _awgn(c, 32, 2.0, 11)
    idx = rng.random(cw.shape) < frac
    llr[idx] = np.where(cw[idx] == 0, 1e6, -1e6)
    keep = llr.copy()
    r = c.decode(llr, max_iter=50)
    np.testing.assert_array_equal(llr, keep)                # input not modified
    assert np.all(r.valid) and np.array_equal(r.u_hat, u)
    assert r.iterations.max() < 20
    # the same through the device entry (host emulation of the 16-bit kernel)
    from modem.gpu.launch import HostEmulationLauncher      # noqa: PLC0415
    rd = c._decode_device(llr[:4], 50, "minsum", c.minsum_scale, 0.0, HostEmulationLauncher())
    np.testing.assert_array_equal(np.asarray(rd.u_hat), r.u_hat[:4])
    np.testing.assert_array_equal(np.asarray(rd.iterations), r.iterations[:4])


def test_ordinary_frames_are_decoded_exactly_as_before_the_outlier_guard():
    """Frames without outliers (and erasure-heavy ones) reach the 16-bit kernel unchanged."""
    from modem.fec.dvbs2 import _cpu                        # noqa: PLC0415
    from modem.fec.dvbs2.ldpc import LLR_CLIP               # noqa: PLC0415
    import numba                                            # noqa: PLC0415
    c = dvbs2.code("short", "1/2")
    u, cw, llr, rng = _awgn(c, 8, 1.0, 12)
    llr[0, :12000] = 0.0                                    # mostly erased frame
    llr[1] *= 1e-3                                          # tiny LLRs
    g = c.ldpc
    hard, ok, it = _cpu.ldpc_decode_minsum_i16(llr, g.lay_ptr, g.lay_v0, g.lay_rho, g.lay_cnt, g.lay_delta,
                                               g.dec_old, 30, c.minsum_scale, 0.0, g.layer_deg_max,
                                               numba.get_num_threads(), LLR_CLIP)
    r = c.decode(llr, max_iter=30)
    np.testing.assert_array_equal(r.parity_ok, ok)
    np.testing.assert_array_equal(r.iterations, it)
    same = r.bch_corrected == 0
    assert same.any()
    np.testing.assert_array_equal(r.u_hat[same], hard[same, :c.k])


def test_outlier_guard_array_module_path_flags_the_same_frames():
    """The device path (CuPy) computes the guard's frame flags with array operations; run that code
    with NumPy behind another module object and compare with the CPU kernel's flags and output."""
    import types                                            # noqa: PLC0415
    import importlib                                        # noqa: PLC0415
    code_mod = importlib.import_module("modem.fec.dvbs2.code")
    shim = types.SimpleNamespace(**{k: getattr(np, k) for k in dir(np) if not k.startswith("__")})
    c = dvbs2.code("short", "1/4")
    u, cw, llr, rng = _awgn(c, 6, 0.0, 13)
    llr[1, rng.random(c.n) < 0.02] = 1e6
    llr[2, :9000] = 0.0
    llr[3, :10000] *= 1e-4                                  # 62 % of the frame in a deep fade: unchanged
    llr[4] = 0.0
    a = code_mod._clip_outliers(llr, np)
    b = code_mod._clip_outliers(llr, shim)
    np.testing.assert_array_equal(a, b)
    changed = np.any(a != llr, axis=1)
    np.testing.assert_array_equal(changed, [False, True, False, False, False, False])


def test_check_degree_is_the_rounded_up_mean_and_short_half_keeps_the_low_degree_scale():
    """check_degree documents what it computes (it is not the largest degree of the irregular short
    1/2, 3/4 and 5/6 codes); the min-sum scale of short 1/2 stays 0.875."""
    for frame, rate in dvbs2.all_codes():
        c = dvbs2.code(frame, rate)
        links = sum(len(r) for r in c.table) * 360
        assert c.check_degree == -(-links // (c.n - c.k_ldpc)) + 2
        irregular = (frame, rate) in {("short", "1/2"), ("short", "3/4"), ("short", "5/6")}
        assert (c.check_degree < c.ldpc.dc_max) == irregular
    assert dvbs2.code("short", "1/2").minsum_scale == 0.875


@pytest.mark.parametrize("make, bad", [
    (lambda: dpsk.BurstFormat.from_data_rate(1e-300), "1e-300"),          # slot_rate / rate = inf
    (lambda: dpsk.BurstFormat.from_duty(1e-320), "1e-320"),               # 1 / duty = inf
    (lambda: dpsk.BurstFormat.from_data_rate(72e6, slot_rate=float("nan")), "nan"),
    (lambda: dpsk.BurstFormat.from_data_rate(72e6, slot_rate="fast"), "fast"),
    (lambda: dpsk.BurstFormat(slot_rate="fast"), "fast"),
])
def test_burst_format_bad_rates_are_config_errors_naming_the_value(make, bad):
    """--data-rate 1e-300 on the command line raised OverflowError (round(inf)), a NaN slot rate
    ValueError, a string slot rate TypeError: each is a ConfigError naming the value."""
    from modem.errors import ConfigError                   # noqa: PLC0415
    with pytest.raises(ConfigError, match=bad):
        make()


@pytest.mark.parametrize("fn", [dpsk.llr_exact, dpsk.llr_gaussian])
def test_llr_es_and_erase_that_do_not_broadcast_to_the_samples_are_shape_errors(fn):
    """es / erase must broadcast TO the samples' shape: a (3, 5) es for (5,) samples raised a bare
    numpy ValueError from broadcast_to instead of a ShapeError naming both shapes."""
    from modem.errors import ShapeError                    # noqa: PLC0415
    xa, xb = np.ones(5), np.full(5, 0.5)
    with pytest.raises(ShapeError, match=r"\(3, 5\).*\(5,\)"):
        fn(xa, xb, np.ones((3, 5)), 0.5)
    with pytest.raises(ShapeError, match=r"\(3, 5\).*\(5,\)"):
        fn(xa, xb, 1.0, 0.5, erase=np.zeros((3, 5), bool))
    assert fn(xa, xb, np.ones((1, 5))[0], 0.5, erase=np.zeros(1, bool)).shape == (5,)


def test_channel_gain_must_broadcast_to_the_field_shape():
    """A gain of shape (3, 5) for a (5,) field used to come back as a (3, 5) received field (the
    gain broadcast WITH x), silently changing the sample count."""
    from modem.channel.awgn import AWGNChannel             # noqa: PLC0415
    from modem.errors import ShapeError                    # noqa: PLC0415
    ch = AWGNChannel(3.0)
    rng = np.random.default_rng(1)
    x = np.ones(5, dtype=complex)
    with pytest.raises(ShapeError, match=r"\(3, 5\).*\(5,\)"):
        ch(x, rng, gain=np.ones((3, 5)))
    assert ch(x, rng, gain=np.ones(1)).shape == (5,)
    assert ch(np.ones((2, 5)), rng, gain=np.ones((2, 1))).shape == (2, 5)


def test_bch_decode_inplace_refuses_arrays_it_would_misread():
    """decode_inplace (public; the decoders call it on their own buffers) read any array through a
    uint8 C-contiguous (B, n) view: int64 codewords came back as failures (-1), a reversed view was
    "decoded", a row of the wrong length was decoded as another code. Each is a ShapeError now."""
    from modem.errors import ShapeError                    # noqa: PLC0415
    b = dvbs2.code("short", "1/2").bch
    rng = np.random.default_rng(3)
    cw = b.encode(rng.integers(0, 2, (2, b.k), dtype=np.uint8))
    for bad, what in ((cw.astype(np.int64), "uint8"), (cw[:, ::-1], "contiguous"),
                      (np.ascontiguousarray(cw[:, :-8]), str(b.n)), (cw[0], str(b.n))):
        with pytest.raises(ShapeError, match=what):
            b.decode_inplace(bad)
    ok = cw.copy()
    ok[0, 5] ^= 1
    np.testing.assert_array_equal(b.decode_inplace(ok), [1, 0])
    np.testing.assert_array_equal(ok, cw)


def test_outlier_guard_device_path_threshold_rounds_like_the_cpu():
    """The guard's device branch compared |LLR| with a float64 threshold where the CPU
    (_cpu.llr_outlier_rows) uses float32(tot / (ratio n)): values exactly at the rounded-down float32
    threshold, with the count at the 10 % boundary, were clipped on the device and not on the CPU
    (1520 values 158.96 instead of 5104). The branch runs here on NumPy through a module shim."""
    import importlib
    import types
    code_mod = importlib.import_module("modem.fec.dvbs2.code")
    shim = types.SimpleNamespace(**{k: getattr(np, k) for k in dir(np) if not k.startswith("__")})
    n, H, K = 16200, 1520, 100
    B, t = np.float32(5104.0), np.float32(30.0)
    for _ in range(20):
        row = np.ones(n, np.float32)
        row[:H] = B
        row[H:H + K] = t
        thr64 = float(row.astype(np.float64).sum()) / (16.0 * n)
        if np.float32(thr64) == t:
            break
        t = np.float32(thr64)
    assert float(t) < thr64
    np.testing.assert_array_equal(code_mod._clip_outliers(row[None], shim), code_mod._clip_outliers(row[None], np))
