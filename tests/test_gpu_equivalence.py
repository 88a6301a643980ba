# SPDX-License-Identifier: Apache-2.0
"""CPU/GPU equivalence: one test body per algorithm, run on every backend.

Backends: ``cpu`` (the project's NumPy/Numba reference), ``emulated`` (the CUDA kernels of
``kernels/`` compiled as host C++ and run thread by thread -- the kernels' own code and the
wrappers' index arithmetic, checked on machines without a GPU) and ``gpu`` (CuPy arrays, marked
``gpu``, skipped cleanly without CuPy or a device). Each body computes the CPU reference and
asserts the backend's output equals it: decoded bits, flags, iteration counts and counts exactly;
float metrics to the tolerance stated in the kernel's header.
"""
from types import SimpleNamespace

import numpy as np
import pytest

from modem import backend
from modem.channel.poisson import simulate_counts
from modem.errors import BackendUnavailable, ShapeError
from modem.fec.dvbs2.code import code as dvbs2_code
from modem.fec.scppm import SCPPMCode, SCPPMDecoder, SCPPMReceiver, SCPPMTransmitter
from modem.gpu import ops


class Backend:
    """How a test body runs on one backend: where inputs go and which launcher runs kernels."""

    def __init__(self, name):
        self.name = name
        self.launcher = None
        if name == "gpu":
            if not backend.gpu_available():
                pytest.skip(f"GPU backend unavailable: {backend.unavailable_reason()}")
            self.xp = backend.xp_for("gpu")
        else:
            self.xp = np
            if name == "emulated":
                import shutil  # noqa: PLC0415
                if shutil.which("g++") is None:
                    pytest.skip("host emulation of the kernels needs g++")
                from modem.gpu.launch import HostEmulationLauncher  # noqa: PLC0415
                self.launcher = HostEmulationLauncher()

    def put(self, x):
        return self.xp.asarray(x)

    def scppm_decode(self, dec, metric):
        if self.launcher is not None:
            return dec._decode_device(metric, self.launcher)
        return dec.decode(self.put(metric))

    def dvbs2_decode(self, c, llr, max_iter, algorithm="minsum"):
        if self.name == "cpu":
            return SimpleNamespace(**_cpu_reference(c, llr, max_iter, algorithm))
        if self.launcher is not None:
            return c._decode_device(llr, max_iter, algorithm, c.minsum_scale, 0.0, self.launcher)
        return c.decode(self.put(llr), max_iter=max_iter, algorithm=algorithm)


@pytest.fixture(params=["cpu", "emulated", pytest.param("gpu", marks=pytest.mark.gpu)])
def be(request):
    return Backend(request.param)


def host(x):
    return backend.to_numpy(x)


# --------------------------------------------------------------------------------------------
# SCPPM decoder (kernels/scppm_siso.cu): decoded bits, CRC flags and iterations equal the CPU's
# --------------------------------------------------------------------------------------------
def _scppm_metric(code, F, ns, nb, rng):
    u = rng.integers(0, 2, (F, code.k), dtype=np.uint8)
    y = simulate_counts(SCPPMTransmitter(code).modulate(u), ns, nb, rng)
    rx = SCPPMReceiver(code, ns=ns, nb=nb)
    return u, rx._symbol_metric(y, rx.weight)


@pytest.mark.parametrize("M,rate,ns,max_iter", [(16, "1/2", 2.0, 12), (4, "1/2", 1.6, 8), (64, "1/2", 2.6, 10),
                                                (128, "1/2", 2.4, 6), (8, "1/3", None, 16), (32, "2/3", None, 16),
                                                (256, "1/2", None, 16)])
def test_scppm_decode_equals_cpu(be, M, rate, ns, max_iter, rng):
    code = SCPPMCode(M, rate)
    if ns is None:                               # 1.2 dB above the Poisson capacity limit
        from modem.analysis.capacity import ns_capacity_limit  # noqa: PLC0415
        ns = ns_capacity_limit(M, rate, 0.1) * 10 ** (1.2 / 10)
    u, metric = _scppm_metric(code, 3, ns, 0.1, rng)
    dec = SCPPMDecoder(code, max_iter=max_iter)
    ref = dec.decode(metric)
    out = be.scppm_decode(dec, metric)
    np.testing.assert_array_equal(host(out.u_hat), ref.u_hat)
    np.testing.assert_array_equal(host(out.crc_ok), ref.crc_ok)
    np.testing.assert_array_equal(host(out.iterations), ref.iterations)
    assert ref.iterations.max() > 1          # the turbo loop really iterated


def test_scppm_failures_and_batch_shapes_equal_cpu(be, rng):
    code = SCPPMCode(16, "2/3")
    u, metric = _scppm_metric(code, 4, 1.2, 0.2, rng)         # well below threshold: CRC failures
    metric = metric.reshape(2, 2, code.S, 16)
    dec = SCPPMDecoder(code, max_iter=4)
    ref = dec.decode(metric)
    out = be.scppm_decode(dec, metric)
    assert host(out.u_hat).shape == (2, 2, code.k)
    np.testing.assert_array_equal(host(out.u_hat), ref.u_hat)
    np.testing.assert_array_equal(host(out.crc_ok), ref.crc_ok)
    np.testing.assert_array_equal(host(out.iterations), ref.iterations)
    assert not ref.crc_ok.all()


def test_scppm_all_erasure_and_empty_batch(be):
    code = SCPPMCode(16, "1/2")
    dec = SCPPMDecoder(code, max_iter=2)
    out = be.scppm_decode(dec, np.zeros((1, code.S, 16)))
    assert not host(out.crc_ok).any() and (host(out.iterations) == 2).all()
    out = be.scppm_decode(dec, np.zeros((0, code.S, 16)))
    assert host(out.u_hat).shape == (0, code.k)


def test_scppm_bad_input_raises_the_same_error(be):
    code = SCPPMCode(16, "1/2")
    dec = SCPPMDecoder(code)
    with pytest.raises(ShapeError, match="shape"):
        be.scppm_decode(dec, np.zeros((1, code.S, 8)))
    bad = np.zeros((1, code.S, 16))
    bad[0, 3, 2] = np.nan
    with pytest.raises(ShapeError, match="non-finite"):
        be.scppm_decode(dec, bad)


def test_scppm_max_log_has_no_kernel(be):
    if be.name == "cpu":
        pytest.skip("the CPU runs max-log")
    code = SCPPMCode(16, "1/2")
    with pytest.raises(BackendUnavailable, match="log-MAP"):
        be.scppm_decode(SCPPMDecoder(code, max_log=True), np.zeros((1, code.S, 16)))


# --------------------------------------------------------------------------------------------
# DVB-S2 LDPC min-sum + BCH (kernels/ldpc_minsum.cu, bch_syndrome.cu): bit-exact
# --------------------------------------------------------------------------------------------
def _cpu_reference(c, llr, max_iter, algorithm="minsum"):
    """DVBS2Code.decode on the CPU (LDPC kernel of ``algorithm``, then the BCH decoder), as a dict."""
    r = c.decode(llr, max_iter=max_iter, algorithm=algorithm)
    return {f: getattr(r, f) for f in ("u_hat", "parity_ok", "bch_corrected", "valid", "iterations")}


def _awgn_llr(c, ebn0_db, rng):
    ebn0 = np.atleast_1d(np.asarray(ebn0_db, dtype=float))
    u = rng.integers(0, 2, (ebn0.size, c.k), dtype=np.uint8)
    x = 1.0 - 2.0 * c.encode(u)
    sigma = np.sqrt(1.0 / (2.0 * c.k / c.n * 10 ** (ebn0 / 10)))[:, None]
    y = x + sigma * rng.standard_normal(x.shape)
    return u, (2.0 * y / sigma ** 2).astype(np.float32)


ALGS = ["minsum", "minsum-serial"]     # 16-bit layer-parallel (default) and float32 serial-order


@pytest.mark.parametrize("algorithm", ALGS)
@pytest.mark.parametrize("frame,rate,ebn0", [
    ("short", "1/2", [0.4, 1.2, 1.6, 4.0]),       # a failure, slow and fast convergence
    ("normal", "1/2", [1.1, 1.4]),
    ("short", "8/9", [3.4, 4.2]),
    ("short", "1/4", [0.2, 3.0]),
])
def test_ldpc_decode_equals_cpu(be, frame, rate, ebn0, algorithm, rng):
    c = dvbs2_code(frame, rate)
    u, llr = _awgn_llr(c, ebn0, rng)
    ref = _cpu_reference(c, llr, 25, algorithm)
    out = be.dvbs2_decode(c, llr, 25, algorithm)
    for f in ("u_hat", "parity_ok", "bch_corrected", "valid", "iterations"):
        np.testing.assert_array_equal(host(getattr(out, f)), ref[f], err_msg=f)
    assert ref["iterations"].max() > 1 and ref["parity_ok"].any()


@pytest.mark.parametrize("algorithm", ALGS)
def test_ldpc_noiseless_frames_take_zero_iterations(be, algorithm, rng):
    c = dvbs2_code("short", "3/5")
    u = rng.integers(0, 2, (2, c.k), dtype=np.uint8)
    llr = (4.0 * (1.0 - 2.0 * c.encode(u))).astype(np.float32)
    ref = _cpu_reference(c, llr, 50, algorithm)
    out = be.dvbs2_decode(c, llr, 50, algorithm)
    np.testing.assert_array_equal(host(out.u_hat), u)
    np.testing.assert_array_equal(host(out.iterations), ref["iterations"])
    assert (ref["iterations"] == 0).all()


@pytest.mark.parametrize("algorithm", ALGS)
def test_ldpc_hard_decisions_equal_cpu_with_offset_min_sum(be, algorithm, rng):
    c = dvbs2_code("short", "2/3")
    _, llr = _awgn_llr(c, [1.8, 2.2, 2.6], rng)
    ref = c.ldpc.decode(llr, 20, algorithm, 0.75, 0.25)
    if be.launcher is not None:
        out = c.ldpc.decode_device(llr, 20, algorithm, 0.75, 0.25, be.launcher)
    else:
        out = c.ldpc.decode(be.put(llr), 20, algorithm, 0.75, 0.25)
    for a, b in zip(out, ref):
        np.testing.assert_array_equal(host(a), b)


@pytest.mark.parametrize("algorithm", ALGS)
def test_ldpc_huge_and_zero_llrs_equal_cpu(be, algorithm, rng):
    """LLR magnitudes beyond the 1e6 clip and exact zeros (erasures) take the same path."""
    c = dvbs2_code("short", "1/2")
    _, llr = _awgn_llr(c, [1.4, 1.6], rng)
    llr[0, ::97] *= 3.0e6
    llr[1, ::13] = 0.0
    ref = _cpu_reference(c, llr, 25, algorithm)
    out = be.dvbs2_decode(c, llr, 25, algorithm)
    for f in ("u_hat", "parity_ok", "bch_corrected", "valid", "iterations"):
        np.testing.assert_array_equal(host(getattr(out, f)), ref[f], err_msg=f)


def test_ldpc_bch_residual_errors_are_corrected_like_the_cpu(be, rng):
    """LDPC codewords whose BCH part carries 2 (frame 0) or no (frame 1) bit errors: the LDPC
    checks hold at once, the BCH check kernel flags frame 0 and the algebraic decoder fixes it."""
    c = dvbs2_code("short", "1/2")
    u = rng.integers(0, 2, (2, c.k), dtype=np.uint8)
    bch_cw = np.ascontiguousarray(c.bch.encode(u))
    bch_cw[0, [5, 777]] ^= 1
    cw = c.ldpc.encode(bch_cw)
    llr = (3.0 * (1.0 - 2.0 * cw)).astype(np.float32)
    ref = _cpu_reference(c, llr, 30)
    out = be.dvbs2_decode(c, llr, 30)
    assert list(ref["bch_corrected"]) == [2, 0] and (ref["u_hat"] == u).all()
    for f in ("u_hat", "parity_ok", "bch_corrected", "valid", "iterations"):
        np.testing.assert_array_equal(host(getattr(out, f)), ref[f], err_msg=f)


# --------------------------------------------------------------------------------------------
# slot binning and Poisson slot LLRs (kernels/slot_binning.cu): bit-exact
# --------------------------------------------------------------------------------------------
def test_slot_binning_equals_cpu(be, rng):
    tags = np.sort(rng.integers(5 * 10**11, 5 * 10**11 + 2 * 10**7, 20000)).astype(np.int64)
    start, period, n = 5e11 - 0.37, 250.0123, 70000   # tags past the end clip into the last slot
    ref = ops.bin_slots(tags, start, period, n)
    out = ops.bin_slots(be.put(tags), start, period, n, launcher=be.launcher)
    np.testing.assert_array_equal(host(out), ref)
    assert ref.sum() == tags.size and ref[-1] > 10 * ref[:-1].max()


def test_slot_llr_equals_cpu(be, rng):
    counts = rng.poisson(0.4, (5, 37)).astype(np.int32)
    ref = ops.slot_llr(counts, 2.5, 0.07)
    out = ops.slot_llr(be.put(counts), 2.5, 0.07, launcher=be.launcher)
    assert host(out).dtype == np.float32
    np.testing.assert_array_equal(host(out), ref)
    with pytest.raises(ShapeError, match=">= 0"):
        ops.slot_llr(be.put(-counts - 1), 2.5, 0.07, launcher=be.launcher)


# --------------------------------------------------------------------------------------------
# sync correlation (kernels/sync_correlate.cu): float64 to rtol 1e-12, flags exact
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("polarity_free", [False, True])
def test_massey_metric_equals_cpu(be, polarity_free, rng):
    llr = rng.normal(0.0, 4.0, (3, 301))
    ref_m, ref_i = ops.massey_metric(llr, polarity_free=polarity_free)
    m, i = ops.massey_metric(be.put(llr), polarity_free=polarity_free, launcher=be.launcher)
    np.testing.assert_allclose(host(m), ref_m, rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(host(i), ref_i)


def test_csm_llr_equals_cpu(be, rng):
    code = SCPPMCode(16, "1/2")
    counts = rng.poisson(0.2, (500, 20)).astype(np.int64)
    counts[123 + np.arange(code.L_csm), code.csm_symbols] += 3       # a marker at 123
    w = float(np.log1p(2.0 / 0.2))
    ref = ops.csm_llr(counts, code.csm_symbols, 16, w)
    out = ops.csm_llr(be.put(counts), code.csm_symbols, 16, w, launcher=be.launcher)
    np.testing.assert_allclose(host(out), ref, rtol=1e-12, atol=1e-10)
    assert int(np.argmax(ref)) == 123


# --------------------------------------------------------------------------------------------
# DPSK LLRs (kernels/dpsk_llr.cu): Gaussian bit-exact, exact (Bessel) to float32 rtol 1e-6
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("modes", [1, 2])
def test_dpsk_llrs_equal_cpu(be, modes, rng):
    xa = rng.exponential(2.0, 2000)
    xb = rng.exponential(1.0, 2000)
    xa[:3] = 0.0                       # zero port energy: the small-argument branches
    xa[3:6] *= 1e5                     # large Bessel arguments: the asymptotic branch
    es = rng.uniform(0.5, 4.0, 2000)
    erase = rng.random(2000) < 0.05
    g_ref = ops.dpsk_llr_gaussian(xa, xb, es, 0.5, modes, erase)
    g = ops.dpsk_llr_gaussian(be.put(xa), be.put(xb), be.put(es), 0.5, modes, be.put(erase), launcher=be.launcher)
    np.testing.assert_array_equal(host(g), g_ref)
    e_ref = ops.dpsk_llr_exact(xa, xb, 2.0, 0.5, modes)
    e = ops.dpsk_llr_exact(be.put(xa), be.put(xb), 2.0, 0.5, modes, launcher=be.launcher)
    np.testing.assert_allclose(host(e), e_ref, rtol=1e-6, atol=1e-6)
    assert np.all(host(g)[erase] == 0) and np.any(g_ref != 0)


@pytest.mark.parametrize("modes", [1, 2])
def test_dpsk_exact_llr_limits_equal_cpu(be, modes):
    """Zero port energy and es = 0 on every backend: the LLR is its limit (finite, es = 0 gives 0).
    The old form ``(M-1)/2 ln(xB/xA)`` with clamps gave -347.7 instead of -1.585 at xA = 0, M = 2,
    and the kernel kept 0.5 ln(xB/xA) at es = 0."""
    xa = np.array([0.0, 1e-200, 0.0, 3.0, 0.0, 2.0])
    xb = np.array([4.0, 4.0, 0.0, 0.0, 5.0, 1.0])
    es = np.array([1.0, 1.0, 1.0, 1.0, 0.0, 0.0])
    ref = ops.dpsk_llr_exact(xa, xb, es, 1.0, modes)
    out = host(ops.dpsk_llr_exact(be.put(xa), be.put(xb), be.put(es), 1.0, modes, launcher=be.launcher))
    np.testing.assert_allclose(out, ref, rtol=1e-6, atol=1e-6)
    assert np.all(np.isfinite(ref)) and ref[0] == pytest.approx(ref[1], abs=1e-5) and ref[2] == 0
    assert ref[0] == pytest.approx({1: -2.424973, 2: -1.585090}[modes], abs=1e-5)
    assert np.all(ref[4:] == 0) and np.all(out[4:] == 0)


def test_dpsk_llr_es_and_erase_that_only_broadcast_with_the_samples_are_shape_errors(be):
    """An es or erase of shape (3, 5) broadcasts *with* (5,) samples but not *to* them: a ShapeError
    naming both shapes on every backend (the device path raised NumPy's bare ValueError)."""
    xa, xb = np.ones(5), np.zeros(5)
    with pytest.raises(ShapeError, match=r"es of shape \(3, 5\).*\(5,\)"):
        ops.dpsk_llr_exact(be.put(xa), be.put(xb), be.put(np.ones((3, 5))), 1.0, 1, launcher=be.launcher)
    with pytest.raises(ShapeError, match=r"erase of shape \(3, 5\).*\(5,\)"):
        ops.dpsk_llr_gaussian(be.put(xa), be.put(xb), 1.0, 1.0, 1, be.put(np.zeros((3, 5), bool)), launcher=be.launcher)


# --------------------------------------------------------------------------------------------
# streaming GPU pipelines (modem/gpu/pipeline.py): any batching gives the CPU receivers' output
# --------------------------------------------------------------------------------------------
@pytest.fixture(params=["emulated", pytest.param("gpu", marks=pytest.mark.gpu)])
def kernel_be(request):
    return Backend(request.param)


def _launcher(be):
    if be.launcher is not None:
        return be.launcher
    from modem.gpu.launch import CupyLauncher  # noqa: PLC0415
    return CupyLauncher()


def test_scppm_pipeline_equals_cpu_receiver_in_any_batching(kernel_be, rng):
    from modem.gpu.pipeline import SCPPMGPUPipeline  # noqa: PLC0415
    code = SCPPMCode(16, "1/2", repetition=2)
    u = rng.integers(0, 2, (5, code.k), dtype=np.uint8)
    y = simulate_counts(SCPPMTransmitter(code).modulate(u), 1.3, 0.1, rng)
    ref = SCPPMReceiver(code, ns=1.3, nb=0.1, max_iter=10).receive(y)
    pipe = SCPPMGPUPipeline(code, 1.3, 0.1, max_iter=10, launcher=_launcher(kernel_be))
    parts = list(pipe.run([y[:2], y[2:3], y[3:]]))
    assert len(parts) == 3
    for f in ("u_hat", "crc_ok", "iterations"):
        np.testing.assert_array_equal(np.concatenate([getattr(p, f) for p in parts]), getattr(ref, f), err_msg=f)
    assert ref.crc_ok.any() and ref.iterations.max() > 1


@pytest.mark.parametrize("repetition,unit", [(1, "symbol"), (2, "symbol"), (2, "codeword")])
def test_scppm_receiver_on_a_launcher_builds_the_metric_from_uploaded_counts(kernel_be, rng, monkeypatch,
                                                                              repetition, unit):
    """SCPPMReceiver with a kernel launcher (the replay's decoder on a GPU) and no channel
    interleaver uploads the uint16 slot counts and builds the float64 symbol metric on the device
    (it built it on the host and uploaded that: 3.2x the bytes at 16-PPM); the decoded bits, CRC
    flags, iterations and source indices equal the CPU receiver's."""
    from modem.fec.scppm import decoder as dec_mod  # noqa: PLC0415
    code = SCPPMCode(16, "1/2", repetition=repetition, repeat_unit=unit)
    u = rng.integers(0, 2, (3, code.k), dtype=np.uint8)
    ns, nb = 1.8 / repetition, 0.1 / repetition                  # per copy; the copies are summed
    y = simulate_counts(SCPPMTransmitter(code).modulate(u), ns, nb, rng).astype(np.uint16)
    restart = np.array([False, True, False])
    ref, ref_src = SCPPMReceiver(code, ns=ns, nb=nb, max_iter=10).receive_stream(y, restart)
    launcher = _launcher(kernel_be)
    seen = []
    inner = dec_mod.symbol_metric

    def spy(counts, code_, weight, xp=np):
        seen.append((counts.dtype, xp is launcher.xp, type(counts).__module__.split(".")[0]))
        return inner(counts, code_, weight, xp)
    monkeypatch.setattr(dec_mod, "symbol_metric", spy)
    monkeypatch.setattr(SCPPMDecoder, "decode", lambda *a, **k: pytest.fail("host metric path used"))
    out, src = SCPPMReceiver(code, ns=ns, nb=nb, max_iter=10, launcher=launcher).receive_stream(y, restart)
    assert seen == [(np.dtype(np.uint16), True, launcher.xp.__name__.split(".")[0])]
    np.testing.assert_array_equal(src, ref_src)
    for f in ("u_hat", "crc_ok", "iterations"):
        got = getattr(out, f)
        assert isinstance(got, np.ndarray), f                     # host results, as before
        np.testing.assert_array_equal(got, getattr(ref, f), err_msg=f)
    assert ref.crc_ok.any() and ref.iterations.max() > 1


def test_dpsk_pipeline_equals_cpu_chain_in_any_batching(kernel_be, rng):
    from modem.gpu.pipeline import DPSKGPUPipeline  # noqa: PLC0415
    from modem.modulation import dpsk  # noqa: PLC0415
    c = dvbs2_code("short", "1/2")
    u = rng.integers(0, 2, (3, c.k), dtype=np.uint8)
    x = 1.0 - 2.0 * c.encode(u)                       # +1: bit 0 (constructive port)
    es, sigma2 = 1.0, 0.45
    na = rng.normal(0, np.sqrt(sigma2), (2,) + x.shape)
    nb_ = rng.normal(0, np.sqrt(sigma2), (2,) + x.shape)
    xa = ((np.sqrt(es) * (x > 0) + na[0]) ** 2 + na[1] ** 2)
    xb = ((np.sqrt(es) * (x < 0) + nb_[0]) ** 2 + nb_[1] ** 2)
    llr = dpsk.llr_gaussian(xa, xb, es, sigma2)
    ref = _cpu_reference(c, llr, 30)
    pipe = DPSKGPUPipeline(c, es, sigma2, max_iter=30, launcher=_launcher(kernel_be))
    parts = list(pipe.run([(xa[:1], xb[:1]), (xa[1:], xb[1:])]))
    f32 = list(pipe.run([(xa.astype(np.float32), xb.astype(np.float32))]))[0]     # float32 transfer
    ref32 = _cpu_reference(c, dpsk.llr_gaussian(xa.astype(np.float32), xb.astype(np.float32), es, sigma2), 30)
    for f in ("u_hat", "iterations"):
        np.testing.assert_array_equal(getattr(f32, f), ref32[f], err_msg=f)
    for f in ("u_hat", "parity_ok", "bch_corrected", "valid", "iterations"):
        np.testing.assert_array_equal(np.concatenate([np.atleast_1d(getattr(p, f)) for p in parts]), ref[f], err_msg=f)
    assert ref["iterations"].max() > 1


# --------------------------------------------------------------------------------------------
# CuPy launch arguments (modem/gpu/launch.py kernel_args): what CupyLauncher hands to RawKernel
# --------------------------------------------------------------------------------------------
def test_kernel_args_give_numpy_scalars_of_the_exact_c_type():
    from modem.gpu.launch import kernel_args  # noqa: PLC0415
    a, b = np.zeros(4, np.int64), np.zeros(3, np.int32)
    conv = kernel_args("slot_bin_counts", "pLddLp", (a, 4, 1.5, 2, 7, b), np.ndarray)
    assert conv[0] is a and conv[5] is b
    assert [type(x) for x in conv[1:5]] == [np.int64, np.float64, np.float64, np.int64]
    conv = kernel_args("scppm_outer_siso", "ppppppLLLui", (a,) * 6 + (1, 2, 3, 0x20044009, 5), np.ndarray)
    assert [type(x) for x in conv[6:]] == [np.int64, np.int64, np.int64, np.uint32, np.int32]
    assert type(kernel_args("slot_llr_f32", "pLffp", (a, 4, 0.1, 2.0, b), np.ndarray)[2]) is np.float32
    with pytest.raises(OverflowError):                   # never a silently wrapped int32
        kernel_args("k", "i", (2**40,), np.ndarray)


def test_kernel_args_reject_host_or_strided_arrays_and_wrong_counts():
    from modem.errors import ConfigError  # noqa: PLC0415
    from modem.gpu.launch import kernel_args  # noqa: PLC0415
    a = np.zeros((4, 4))
    with pytest.raises(ConfigError, match="C-contiguous"):
        kernel_args("k", "pL", (a[:, 1], 4), np.ndarray)        # a strided view would be read as contiguous
    with pytest.raises(ConfigError, match="argument 0 must be a"):
        kernel_args("k", "pL", ([0.0] * 4, 4), np.ndarray)     # not an array of the launcher's module
    with pytest.raises(ConfigError, match="argument 1 must be a"):
        kernel_args("k", "pp", (a, None), np.ndarray)
    with pytest.raises(ConfigError, match="2 arguments expected, got 1"):
        kernel_args("k", "pL", (a,), np.ndarray)


@pytest.mark.gpu
def test_dpsk_llr_refuses_mixed_host_and_device_ports(rng):
    if not backend.gpu_available():
        pytest.skip(f"GPU backend unavailable: {backend.unavailable_reason()}")
    cp = backend.xp_for("gpu")
    xa = rng.exponential(1.0, 16)
    with pytest.raises(ShapeError, match="same array module"):
        ops.dpsk_llr_gaussian(cp.asarray(xa), xa, 1.0, 0.5)
    # a host es / erase array would be uploaded behind the caller's back: refused too (scalars are fine)
    with pytest.raises(ShapeError, match="es must live in the ports' array module"):
        ops.dpsk_llr_gaussian(cp.asarray(xa), cp.asarray(xa), np.ones(16), 0.5)
    with pytest.raises(ShapeError, match="erase must live in the ports' array module"):
        ops.dpsk_llr_exact(cp.asarray(xa), cp.asarray(xa), 1.0, 0.5, erase=np.zeros(16, bool))


def test_kernel_wrappers_refuse_arrays_the_kernels_would_misread(rng):
    """A float64 or strided input would be read through a float32 / contiguous pointer."""
    from modem.fec.dvbs2 import _gpu as dvb_gpu  # noqa: PLC0415
    from modem.fec.scppm import _gpu as scppm_gpu  # noqa: PLC0415
    from modem.gpu.launch import HostEmulationLauncher  # noqa: PLC0415
    la = HostEmulationLauncher()
    c = dvbs2_code("short", "1/2")
    llr = np.zeros((2, c.n), dtype=np.float32)
    for algorithm in ALGS:
        with pytest.raises(ShapeError, match="float32"):
            c.ldpc.decode_device(llr.astype(np.float64), 5, algorithm, 0.75, 0.0, la)
        with pytest.raises(ShapeError, match="not C-contiguous"):
            c.ldpc.decode_device(np.zeros((2, 2 * c.n), np.float32)[:, ::2], 5, algorithm, 0.75, 0.0, la)
    with pytest.raises(ShapeError, match="uint8"):
        dvb_gpu.bch_nonzero_gpu(np.zeros((1, c.k_ldpc), np.int32), c.k_ldpc, c.ldpc, c.bch, la)
    code = SCPPMCode(16, "1/2")
    with pytest.raises(ShapeError, match="float64"):
        scppm_gpu.turbo_decode_gpu(np.zeros((1, code.S, 16), np.float32), SCPPMDecoder(code), la)


@pytest.mark.gpu
def test_pipeline_refuses_a_launcher_bound_to_another_stream():
    if not backend.gpu_available():
        pytest.skip(f"GPU backend unavailable: {backend.unavailable_reason()}")
    from modem.errors import ConfigError  # noqa: PLC0415
    from modem.gpu.launch import CupyLauncher  # noqa: PLC0415
    from modem.gpu.pipeline import SCPPMGPUPipeline  # noqa: PLC0415
    cp = backend.xp_for("gpu")
    with pytest.raises(ConfigError, match="current stream"):
        SCPPMGPUPipeline(SCPPMCode(16, "1/2"), 1.3, 0.1, launcher=CupyLauncher(stream=cp.cuda.Stream()))
