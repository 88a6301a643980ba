# SPDX-License-Identifier: Apache-2.0
"""Review of the GPU path (kernels, launch wrappers, streaming pipelines, GPU validation script)
on machines without a GPU: the ``emulated`` backend runs the CUDA kernels as host C++ through the
wrappers' real index arithmetic (see tests/test_gpu_equivalence.py); ``gpu`` runs them on CuPy
and is skipped cleanly without one."""
import shutil

import numpy as np
import pytest

from modem import backend
from modem.errors import ConfigError, ShapeError
from modem.fec.dvbs2.code import all_codes, code as dvbs2_code
from modem.gpu import ops
from modem.modulation import dpsk


def _launcher(name):
    if name == "gpu":
        if not backend.gpu_available():
            pytest.skip(f"GPU backend unavailable: {backend.unavailable_reason()}")
        from modem.gpu.launch import CupyLauncher  # noqa: PLC0415
        return CupyLauncher()
    if shutil.which("g++") is None:
        pytest.skip("host emulation of the kernels needs g++")
    from modem.gpu.launch import HostEmulationLauncher  # noqa: PLC0415
    return HostEmulationLauncher()


@pytest.fixture(params=["emulated", pytest.param("gpu", marks=pytest.mark.gpu)])
def la(request):
    return _launcher(request.param)


def _dpsk_ports(c, F, es, sigma2, rng, modes=1):
    """Port energies (F, n) of random codewords of ``c`` (bit 0 -> port A), ``modes`` noise modes."""
    u = rng.integers(0, 2, (F, c.k), dtype=np.uint8)
    x = 1.0 - 2.0 * c.encode(u)
    na = rng.normal(0, np.sqrt(sigma2), (2 * modes,) + x.shape)
    nb = rng.normal(0, np.sqrt(sigma2), (2 * modes,) + x.shape)
    xa = (np.sqrt(es) * (x > 0) + na[0]) ** 2 + (na[1:] ** 2).sum(0)
    xb = (np.sqrt(es) * (x < 0) + nb[0]) ** 2 + (nb[1:] ** 2).sum(0)
    return u, x, xa, xb


# --------------------------------------------------------------------------------------------
# DPSKGPUPipeline: the CPU chain's output, and its parameters checked like the CPU chain's
# --------------------------------------------------------------------------------------------
def test_dpsk_pipeline_applies_the_cpu_chains_outlier_guard(la, rng):
    """1 % of the bits with a huge port energy (a strong pulse): DVBS2Code.decode ('minsum') clips
    such frames before its 16-bit kernel (_clip_outliers) and decodes both frames in ~15
    iterations; the pipeline called the LDPC kernel directly, without the guard, and lost both
    frames (30 iterations, parity failed)."""
    from modem.gpu.pipeline import DPSKGPUPipeline  # noqa: PLC0415
    c = dvbs2_code("short", "1/2")
    es, sigma2 = 1.0, 0.2
    u, x, xa, xb = _dpsk_ports(c, 2, es, sigma2, np.random.default_rng(3))
    idx = np.random.default_rng(4).choice(c.n, c.n // 100, replace=False)
    xa[:, idx] += np.where(x[:, idx] > 0, 1e5, 0.0)
    xb[:, idx] += np.where(x[:, idx] < 0, 1e5, 0.0)
    ref = c.decode(dpsk.llr_gaussian(xa, xb, es, sigma2), max_iter=30)
    assert ref.valid.all() and (ref.u_hat == u).all()
    out = list(DPSKGPUPipeline(c, es, sigma2, max_iter=30, launcher=la).run([(xa[:1], xb[:1]), (xa[1:], xb[1:])]))
    for f in ("u_hat", "parity_ok", "bch_corrected", "valid", "iterations"):
        np.testing.assert_array_equal(np.concatenate([np.atleast_1d(getattr(p, f)) for p in out]),
                                      getattr(ref, f), err_msg=f)


def test_dpsk_pipeline_exact_llr_with_more_than_two_modes_is_refused(la):
    """The exact-LLR kernel covers M = 1, 2 (Bessel I_0, I_1); with modes=3 it silently used I_1
    (wrong LLRs, different decisions from the CPU chain). Now a ConfigError naming modes, as
    modem.gpu.ops.dpsk_llr_exact raises."""
    from modem.gpu.pipeline import DPSKGPUPipeline  # noqa: PLC0415
    c = dvbs2_code("short", "1/2")
    with pytest.raises(ConfigError, match="modes=3"):
        DPSKGPUPipeline(c, 1.0, 0.3, modes=3, llr="exact", launcher=la)
    DPSKGPUPipeline(c, 1.0, 0.3, modes=3, llr="gaussian", launcher=la)     # the Gaussian LLR has any M


@pytest.mark.parametrize("kw,name", [({"sigma2": 0.0}, "sigma2=0.0"), ({"sigma2": float("nan")}, "sigma2=nan"),
                                     ({"es": -1.0}, "es=-1.0"), ({"es": float("inf")}, "es=inf"),
                                     ({"modes": 0}, "modes=0"), ({"modes": 1.5}, "modes=1.5"),
                                     ({"max_iter": 0}, "max_iter=0")])
def test_dpsk_pipeline_bad_parameters_are_named(la, kw, name):
    """Were passed to the kernels as they were: sigma2 = 0 gave inf/NaN LLRs, es < 0 NaN LLRs,
    max_iter = 0 'decoded' every frame with 0 iterations as a parity failure (the CPU chain
    raises ConfigError for each)."""
    from modem.gpu.pipeline import DPSKGPUPipeline  # noqa: PLC0415
    args = {"es": 1.0, "sigma2": 0.3, "modes": 1, "max_iter": 10, **kw}
    with pytest.raises(ConfigError, match=name.replace("(", r"\(")):
        DPSKGPUPipeline(dvbs2_code("short", "1/2"), launcher=la, **args)


# --------------------------------------------------------------------------------------------
# SCPPMGPUPipeline: counts validated as SCPPMReceiver does
# --------------------------------------------------------------------------------------------
def test_scppm_pipeline_refuses_negative_counts(la):
    """SCPPMReceiver raises ShapeError for a negative count; the pipeline decoded it."""
    from modem.fec.scppm import SCPPMCode  # noqa: PLC0415
    from modem.gpu.pipeline import SCPPMGPUPipeline  # noqa: PLC0415
    code = SCPPMCode(16, "1/2")
    y = np.zeros((2, code.slots_per_codeword), dtype=np.int32)
    y[1, 77] = -3
    pipe = SCPPMGPUPipeline(code, 1.3, 0.1, max_iter=2, launcher=la)
    with pytest.raises(ShapeError, match="-3"):
        list(pipe.run([y]))


# --------------------------------------------------------------------------------------------
# ops.bin_slots: a non-finite start is named (CPU: every tag silently dropped; kernel: (i64)NaN)
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("where", ["cpu", "emulated"])
@pytest.mark.parametrize("start", [float("nan"), float("inf"), -float("inf")])
def test_bin_slots_non_finite_start_is_a_config_error(where, start):
    tags = np.arange(0, 10_000, 97, dtype=np.int64)
    launcher = None if where == "cpu" else _launcher("emulated")
    with pytest.raises(ConfigError, match="start_ps"):
        ops.bin_slots(tags, start, 250.0, 40, launcher=launcher)


@pytest.mark.parametrize("bad", [-0.5, float("nan"), float("inf")])
def test_dpsk_pipeline_bad_port_energy_is_named(la, bad):
    """The ShapeError said 'port energies must be finite and >= 0' without the value or the port."""
    from modem.gpu.pipeline import DPSKGPUPipeline  # noqa: PLC0415
    c = dvbs2_code("short", "1/2")
    xa, xb = np.ones((1, c.n)), np.ones((1, c.n))
    xb[0, 123] = bad
    with pytest.raises(ShapeError, match=rf"xb.*{bad}"):
        list(DPSKGPUPipeline(c, 1.0, 0.3, launcher=la).run([(xa, xb)]))


# --------------------------------------------------------------------------------------------
# bench/gpu_validate.py: one call on a lent GPU machine
# --------------------------------------------------------------------------------------------
def _gpu_validate():
    from test_bench_gpu import load_bench_script  # noqa: PLC0415
    return load_bench_script("gpu_validate")


def _fake_validate(monkeypatch, tmp_path, durations):
    """gpu_validate.main with a fake ``modem info`` and steps that take ``durations[i]`` seconds
    of a fake clock; returns (module, [(cmd, limit)])."""
    import json  # noqa: PLC0415
    import subprocess  # noqa: PLC0415
    from types import SimpleNamespace  # noqa: PLC0415
    gv = _gpu_validate()
    clock = [1000.0]
    calls = []
    monkeypatch.setattr(gv, "RESULTS", tmp_path)
    monkeypatch.setattr(gv.time, "monotonic", lambda: clock[0])
    monkeypatch.setattr(gv.subprocess, "run", lambda *a, **k: SimpleNamespace(
        returncode=0, stdout=json.dumps({"backend": "gpu", "device": "fake"}), stderr=""))
    monkeypatch.setattr(gv.shutil, "which", lambda name: None)

    def fake_step(cmd, timeout, log=None, header=""):
        calls.append((list(map(str, cmd)), timeout))
        clock[0] += durations[len(calls) - 1]
        return 0
    monkeypatch.setattr(gv, "run_step", fake_step)
    assert subprocess  # (the real module stays untouched outside gv)
    return gv, calls


def test_gpu_validate_gives_a_later_step_the_time_earlier_steps_left(monkeypatch, tmp_path):
    """Fixed shares of --budget wasted whatever smoke and equivalence left unused: with budget 540
    the bench step (CPU comparisons at GPU batch sizes included) was killed at 216 s even when the
    steps before it had taken 20 s of their 243 s."""
    gv, calls = _fake_validate(monkeypatch, tmp_path, [10.0, 10.0, 100.0])
    assert gv.main(["--steps", "smoke,equivalence,bench", "--budget", "540", "--copy-to", str(tmp_path)]) == 0
    limits = [t for _, t in calls]
    share = gv.SHARE["smoke"] + gv.SHARE["equivalence"] + gv.SHARE["bench"]
    assert limits[0] == pytest.approx(540 * gv.SHARE["smoke"] / share)
    assert limits[2] == pytest.approx(540 - 20.0)          # the last step gets everything that is left
    assert limits[1] == pytest.approx(530 - 540 * gv.SHARE["bench"] / share)   # the rest minus the later steps' shares


def test_gpu_validate_runs_every_gpu_marked_test(monkeypatch, tmp_path):
    """The equivalence step named two test files; GPU tests elsewhere (tests/test_gpu_review.py)
    never ran on the GPU. It now runs ``-m gpu`` over the whole test directory."""
    gv, calls = _fake_validate(monkeypatch, tmp_path, [1.0])
    assert gv.main(["--steps", "equivalence", "--copy-to", str(tmp_path)]) == 0
    cmd = calls[0][0]
    assert "-m" in cmd and cmd[cmd.index("-m") + 1] == "pytest" and cmd[cmd.index("-m", cmd.index("pytest")) + 1] == "gpu"
    assert "tests" in cmd and not any(a.startswith("tests/test_") for a in cmd)


# --------------------------------------------------------------------------------------------
# Host emulation: faithful to the kernel files it is given, and to block-level cooperation
# --------------------------------------------------------------------------------------------
def _kernel_copy(tmp_path, edits: dict):
    """A copy of kernels/ with ``edits`` {file: [(old, new), ...]} applied (each old found once)."""
    from modem.gpu.loader import kernel_dir  # noqa: PLC0415
    d = tmp_path / "kernels"
    shutil.copytree(kernel_dir(), d)
    for name, subs in edits.items():
        text = (d / name).read_text()
        for old, new in subs:
            assert text.count(old) == 1, (name, old)
            text = text.replace(old, new)
        (d / name).write_text(text)
    return d


def test_host_emulation_rebuilds_when_the_kernel_directory_changes(monkeypatch, tmp_path):
    """The compiled emulation library was cached per (file, cache dir): a launcher in the same
    process after MODEM_KERNEL_DIR changed ran the first directory's kernels."""
    from modem.gpu.launch import HostEmulationLauncher  # noqa: PLC0415
    if shutil.which("g++") is None:
        pytest.skip("host emulation of the kernels needs g++")
    counts = np.arange(6, dtype=np.int32)
    cache = str(tmp_path / "cache")
    ref = ops.slot_llr(counts, 2.0, 0.5, launcher=HostEmulationLauncher(cache_dir=cache))
    d = _kernel_copy(tmp_path, {"slot_binning.cu": [("out[g] = __fsub_rn(", "out[g] = 1.0f + __fsub_rn(")]})
    monkeypatch.setenv("MODEM_KERNEL_DIR", str(d))
    out = ops.slot_llr(counts, 2.0, 0.5, launcher=HostEmulationLauncher(cache_dir=cache))
    np.testing.assert_array_equal(out, ref + np.float32(1.0))



def _ldpc_kernel_state(c, llr, max_iter, la, kind):
    """Run one LDPC kernel directly (as modem/fec/dvbs2/_gpu.py launches it) and return every
    array it wrote: work arrays (posteriors, messages) and outputs."""
    from modem.fec.dvbs2 import _gpu  # noqa: PLC0415
    from modem.fec.dvbs2.code import LLR_CLIP  # noqa: PLC0415
    tab = _gpu.tables_for(c.ldpc, None, la)
    B, n = llr.shape
    hard, ok, it = np.zeros((B, n), np.uint8), np.zeros(B, np.uint8), np.zeros(B, np.int32)
    if kind == "minsum":
        L, R = np.zeros(B * n, np.int16), np.zeros(B * tab.ne * 360, np.int16)
        la("ldpc_layered_i16", "ldpc_layered_i16", B, _gpu.I16_BLOCK, llr, tab.old, tab.lay_ptr, tab.lay_v0,
           tab.lay_rho, tab.lay_cnt, tab.lay_delta, tab.q, n, tab.ne, max_iter, int(np.rint(c.minsum_scale * 32768)),
           0.0, float(LLR_CLIP), L, R, hard, ok, it)
        return {"L": L, "R": R, "hard": hard, "ok": ok, "iters": it}
    L, mins, ef = np.zeros(B * n, np.float32), np.zeros(B * 2 * tab.m, np.float32), np.zeros(B * tab.E, np.uint8)
    la("ldpc_minsum", "ldpc_minsum_decode_f32", B, _gpu.LDPC_BLOCK, llr, tab.ptr, tab.var, tab.old, tab.wave_ptr,
       tab.wave_chk, tab.n_waves, n, tab.m, tab.E, max_iter, float(c.minsum_scale), 0.0, L, mins, ef, hard, ok, it)
    return {"L": L, "mins": mins, "ef": ef, "hard": hard, "ok": ok, "iters": it}


def _noisy_llr(c, sigma, F, seed):
    rng = np.random.default_rng(seed)
    x = 1.0 - 2.0 * c.encode(rng.integers(0, 2, (F, c.k), dtype=np.uint8))
    return np.ascontiguousarray((2.0 * (x + sigma * rng.standard_normal(x.shape)) / sigma ** 2).astype(np.float32))



@pytest.mark.parametrize("frame,rate", all_codes())
def test_ldpc_kernels_with_real_blocks_write_what_the_sequential_emulation_writes(frame, rate):
    """Each LDPC kernel run with its real block (384 / 256 threads as fibers that wait for each
    other at every barrier, resumed in thread order and reversed) writes exactly the posteriors,
    messages and outputs of the one-thread run (which tests/test_gpu_equivalence.py pins to the
    CPU): the barriers are where the layer / wave dependencies need them, for every code's shape
    (repeated edges, layer degree up to 30). Two noisy frames, 2 iterations (no early stop)."""
    from modem.gpu.launch import HostEmulationLauncher  # noqa: PLC0415
    seq = _launcher("emulated")
    c = dvbs2_code(frame, rate)
    llr = _noisy_llr(c, 1.4, 2, 11)
    for kind in ("minsum", "minsum-serial"):
        ref = _ldpc_kernel_state(c, llr, 2, seq, kind)
        assert (ref["iters"] == 2).all()
        for order in (True, "reverse"):
            out = _ldpc_kernel_state(c, llr, 2, HostEmulationLauncher(threads=order), kind)
            for k in ref:
                np.testing.assert_array_equal(out[k], ref[k], err_msg=f"{kind} {order} {k}")


_BARRIER_REMOVALS = {
    "i16 rows before pass 2": ("ldpc_layered_i16.cu", "        sM2s[j] = (short)((d2 * A + 16384) >> 15);\n      }\n"
                               "      __syncthreads();", "        sM2s[j] = (short)((d2 * A + 16384) >> 15);\n      }\n"),
    "i16 repeated edge": ("ldpc_layered_i16.cu", "        if (delta) __syncthreads();", ""),
    "f32 between waves": ("ldpc_minsum.cu", "ldpc_check_update(L, mins, ef, ptr, var, wave_chk[x], alpha, beta);\n"
                          "      __syncthreads();", "ldpc_check_update(L, mins, ef, ptr, var, wave_chk[x], alpha, beta);\n"),
}


@pytest.mark.parametrize("which", sorted(_BARRIER_REMOVALS))
def test_threaded_emulation_catches_a_missing_barrier(which, monkeypatch, tmp_path):
    """The check above can fail: with any one of the LDPC kernels' barriers removed, the real-block
    run differs from the one-thread run (which cannot see barriers at all)."""
    from modem.gpu.launch import HostEmulationLauncher  # noqa: PLC0415
    name, old, new = _BARRIER_REMOVALS[which]
    monkeypatch.setenv("MODEM_KERNEL_DIR", str(_kernel_copy(tmp_path, {name: [(old, new)]})))
    seq = _launcher("emulated")
    c = dvbs2_code("short", "1/2")
    llr = _noisy_llr(c, 1.1, 1, 5)
    kind = "minsum" if name.startswith("ldpc_layered") else "minsum-serial"
    ref = _ldpc_kernel_state(c, llr, 2, seq, kind)
    for order in (True, "reverse"):
        out = _ldpc_kernel_state(c, llr, 2, HostEmulationLauncher(threads=order), kind)
        assert not np.array_equal(out["L"], ref["L"]), order


def test_grid_stride_kernels_with_real_blocks_equal_cpu(rng):
    """blockDim 256 instead of 1: global_tid / global_stride with real block geometry (the
    one-thread emulation never multiplies by blockDim), and a batch that is not a multiple of the
    block (SCPPM: 3 codewords, 3 x 945 stage pairs)."""
    from modem.channel.poisson import simulate_counts  # noqa: PLC0415
    from modem.fec.scppm import SCPPMCode, SCPPMDecoder, SCPPMReceiver, SCPPMTransmitter  # noqa: PLC0415
    from modem.gpu.launch import HostEmulationLauncher  # noqa: PLC0415
    _launcher("emulated")
    la = HostEmulationLauncher(threads=True)
    tags = np.sort(rng.integers(5 * 10**11, 5 * 10**11 + 2 * 10**6, 3001)).astype(np.int64)
    np.testing.assert_array_equal(ops.bin_slots(tags, 5e11 - 0.37, 250.0123, 7000, launcher=la),
                                  ops.bin_slots(tags, 5e11 - 0.37, 250.0123, 7000))
    counts = rng.poisson(0.4, (5, 37)).astype(np.int32)
    np.testing.assert_array_equal(ops.slot_llr(counts, 2.5, 0.07, launcher=la), ops.slot_llr(counts, 2.5, 0.07))
    xa, xb, es = rng.exponential(2.0, 777), rng.exponential(1.0, 777), rng.uniform(0.5, 4.0, 777)
    np.testing.assert_array_equal(ops.dpsk_llr_gaussian(xa, xb, es, 0.5, 2, launcher=la),
                                  ops.dpsk_llr_gaussian(xa, xb, es, 0.5, 2))
    code = SCPPMCode(4, "1/2")
    u = rng.integers(0, 2, (3, code.k), dtype=np.uint8)
    y = simulate_counts(SCPPMTransmitter(code).modulate(u), 1.6, 0.1, rng)
    rx = SCPPMReceiver(code, ns=1.6, nb=0.1)
    metric = rx._symbol_metric(y, rx.weight)
    dec = SCPPMDecoder(code, max_iter=6)
    ref, out = dec.decode(metric), dec._decode_device(metric, la)
    for f in ("u_hat", "crc_ok", "iterations"):
        np.testing.assert_array_equal(getattr(out, f), getattr(ref, f), err_msg=f)


def test_dpsk_pipeline_frame_of_zero_port_energies_is_not_valid(la, rng):
    """A gap (both ports 0: every LLR exactly 0) converges to the all-zero codeword; DVBS2Code.decode
    reports it not valid (more erasures than parity bits), the pipeline reported it valid data."""
    from modem.gpu.pipeline import DPSKGPUPipeline  # noqa: PLC0415
    c = dvbs2_code("short", "1/2")
    es, sigma2 = 1.0, 0.2
    _, _, xa, xb = _dpsk_ports(c, 2, es, sigma2, rng)
    xa[0], xb[0] = 0.0, 0.0
    ref = c.decode(dpsk.llr_gaussian(xa, xb, es, sigma2), max_iter=30)
    assert list(ref.valid) == [False, True] and ref.parity_ok[0]
    out = list(DPSKGPUPipeline(c, es, sigma2, max_iter=30, launcher=la).run([(xa, xb)]))[0]
    for f in ("u_hat", "parity_ok", "bch_corrected", "valid", "iterations"):
        np.testing.assert_array_equal(getattr(out, f), getattr(ref, f), err_msg=f)


@pytest.mark.parametrize("frame,rate", all_codes())
def test_every_dvbs2_code_decodes_on_the_kernels_exactly_as_on_the_cpu(frame, rate):
    """tests/test_gpu_equivalence.py covers 4 of the 21 codes; the others have other layer degrees,
    repeated-edge counts and (short 1/2, 3/4, 5/6) irregular check degrees. One frame that fails
    and one that needs many iterations, both algorithms, every output field."""
    la = _launcher("emulated")
    c = dvbs2_code(frame, rate)
    rng = np.random.default_rng(17)
    x = 1.0 - 2.0 * c.encode(rng.integers(0, 2, (2, c.k), dtype=np.uint8))
    esn0 = np.array([-8.5, -7.2]) + 12.0 * c.k / c.n            # just below / near the decoder threshold
    sigma = np.sqrt(1.0 / (2.0 * 10 ** (esn0 / 10)))[:, None]
    llr = (2.0 * (x + sigma * rng.standard_normal(x.shape)) / sigma ** 2).astype(np.float32)
    for alg in ("minsum", "minsum-serial"):
        ref = c.decode(llr, max_iter=20, algorithm=alg)
        out = c._decode_device(llr, 20, alg, c.minsum_scale, 0.0, la)
        for f in ("u_hat", "parity_ok", "bch_corrected", "valid", "iterations"):
            np.testing.assert_array_equal(getattr(out, f), getattr(ref, f), err_msg=f"{alg} {f}")


def test_gpu_validate_warns_when_the_commit_is_unknown(monkeypatch, tmp_path, capsys):
    """On a lent machine the tree is a copy without .git: every report said commit 'unknown'
    without a word. The run now says how to name it (MODEM_COMMIT) before any step."""
    import json  # noqa: PLC0415
    from types import SimpleNamespace  # noqa: PLC0415
    gv, calls = _fake_validate(monkeypatch, tmp_path, [1.0])
    monkeypatch.setattr(gv.subprocess, "run", lambda *a, **k: SimpleNamespace(
        returncode=0, stdout=json.dumps({"backend": "gpu", "device": "fake", "commit": "unknown"}), stderr=""))
    assert gv.main(["--steps", "smoke", "--copy-to", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "MODEM_COMMIT" in out and "WARNING" in out


def test_pipeline_yields_the_batch_before_a_bad_one_then_raises(la, rng):
    """The pipeline reads batch i back only after queueing batch i+1: a bad batch i+1 (here a last,
    partial record) raised before batch i's result was yielded, so a good batch was lost while
    SCPPMReceiver batch by batch returns it. Now batch i comes out first, then the error."""
    from modem.channel.poisson import simulate_counts  # noqa: PLC0415
    from modem.fec.scppm import SCPPMCode, SCPPMReceiver, SCPPMTransmitter  # noqa: PLC0415
    from modem.gpu.pipeline import SCPPMGPUPipeline  # noqa: PLC0415
    code = SCPPMCode(16, "1/2")
    u = rng.integers(0, 2, (2, code.k), dtype=np.uint8)
    y = simulate_counts(SCPPMTransmitter(code).modulate(u), 2.0, 0.1, rng)
    ref = SCPPMReceiver(code, ns=2.0, nb=0.1, max_iter=8).receive(y)
    got = []
    with pytest.raises(ShapeError, match="counts must have shape"):
        for part in SCPPMGPUPipeline(code, 2.0, 0.1, max_iter=8, launcher=la).run([y, y[:, :-5]]):
            got.append(part)
    assert len(got) == 1
    np.testing.assert_array_equal(got[0].u_hat, ref.u_hat)
    np.testing.assert_array_equal(got[0].crc_ok, ref.crc_ok)
