# SPDX-License-Identifier: Apache-2.0
"""Second review of the CUDA kernels as a real H100 would run them (no GPU needed).

What the one-thread host emulation cannot show, checked here: every kernel run with its real
block size (threads as fibers, resumed in order and reversed) writes exactly what the one-thread
run writes; the float kernels declared BIT-EXACT compile to the same machine code with and without
FMA contraction (NVRTC/nvcc contract a*b+c by default); registers and shared memory of every entry
point fit an H100 at the block sizes the wrappers launch; and the wrappers' input errors name the
bad value as the CPU functions' do.
"""
import hashlib
import inspect
import os
import re
import shutil
import struct
import subprocess
import textwrap
from types import SimpleNamespace

import numpy as np
import pytest

from modem.errors import ConfigError, ShapeError
from modem.gpu import ops


def _emulated(threads=False):
    if shutil.which("g++") is None:
        pytest.skip("host emulation of the kernels needs g++")
    from modem.gpu.launch import HostEmulationLauncher  # noqa: PLC0415
    return HostEmulationLauncher(threads=threads)


# --------------------------------------------------------------------------------------------
# Input errors of the kernel wrappers name the bad value (as the CPU functions they mirror do)
# --------------------------------------------------------------------------------------------
def test_massey_metric_non_finite_llr_is_named():
    """CPU: 'llr must be finite, found nan'; the kernel path said 'llr must be finite'."""
    llr = np.zeros((2, 40))
    llr[1, 17] = -np.inf
    with pytest.raises(ShapeError, match="found -inf"):
        ops.massey_metric(llr)
    with pytest.raises(ShapeError, match="found -inf"):
        ops.massey_metric(llr, launcher=_emulated())


def test_slot_llr_non_finite_count_is_named():
    """CPU: 'counts contain NaN (1 entries), e.g. nan'; the kernel path: 'counts contain NaN or inf'."""
    c = np.ones(9)
    c[4] = np.nan
    with pytest.raises(ShapeError, match="NaN"):
        ops.slot_llr(c, 2.0, 0.1)
    with pytest.raises(ShapeError, match=r"NaN \(1 entries\)"):
        ops.slot_llr(c, 2.0, 0.1, launcher=_emulated())
    c[4] = np.inf
    with pytest.raises(ShapeError, match="e.g. inf"):
        ops.slot_llr(c, 2.0, 0.1, launcher=_emulated())


def test_csm_llr_pattern_symbol_out_of_range_is_named():
    counts = np.zeros((10, 16))
    with pytest.raises(ConfigError, match="pattern.*17"):
        ops.csm_llr(counts, [1, 17, 3], 16, 0.5, launcher=_emulated())
    with pytest.raises(ConfigError, match="pattern.*-2"):
        ops.csm_llr(counts, [1, -2, 3], 16, 0.5, launcher=_emulated())


@pytest.mark.parametrize("bad", [np.nan, -np.inf, -0.25])
def test_dpsk_llr_bad_port_energy_is_named(bad):
    """CPU (dpsk._ports): port, value and index; the kernel path said 'found NaN/inf' or gave only
    the smaller port's minimum."""
    xa, xb = np.ones((3, 5)), np.ones((3, 5))
    xb[2, 3] = bad
    for kind in ("gaussian", "exact"):
        fn = getattr(ops, f"dpsk_llr_{kind}")
        want = re.escape(f"xb={bad!r} at index (2, 3)")
        with pytest.raises(ShapeError, match=want):
            fn(xa, xb, 1.0, 0.5)
        with pytest.raises(ShapeError, match=want):
            fn(xa, xb, 1.0, 0.5, launcher=_emulated())


def test_dpsk_llr_bad_es_array_is_named():
    xa, xb = np.ones(6), np.ones(6)
    es = np.ones(6)
    es[3] = -2.0
    with pytest.raises(ConfigError, match="-2.0"):
        ops.dpsk_llr_gaussian(xa, xb, es, 0.5)
    with pytest.raises(ConfigError, match="-2.0"):
        ops.dpsk_llr_gaussian(xa, xb, es, 0.5, launcher=_emulated())


# --------------------------------------------------------------------------------------------
# Real block geometry and any thread order: every array every launch writes equals the
# one-thread run's (a kernel whose threads raced on an address, or read what another thread of
# the launch writes, would differ between the orders)
# --------------------------------------------------------------------------------------------
class _Recorder:
    """A launcher that runs ``la`` and logs, after every launch, a digest of every array argument."""

    def __init__(self, la):
        self.la, self.xp, self.log = la, la.xp, []

    def __call__(self, file, entry, grid, block, *args):
        self.la(file, entry, grid, block, *args)
        self.log.append((entry, grid, block, [hashlib.sha1(memoryview(a)).hexdigest() for a in args
                                              if isinstance(a, np.ndarray)]))


def _scppm_metric(M, F, ns_list, rng):
    from modem.channel.poisson import simulate_counts  # noqa: PLC0415
    from modem.fec.scppm import SCPPMCode, SCPPMReceiver, SCPPMTransmitter  # noqa: PLC0415
    code = SCPPMCode(M, "1/2")
    u = rng.integers(0, 2, (F, code.k), dtype=np.uint8)
    x = SCPPMTransmitter(code).modulate(u)
    y = np.concatenate([simulate_counts(x[f::len(ns_list)], ns, 0.1, rng) for f, ns in enumerate(ns_list)])
    order = np.concatenate([np.arange(F)[f::len(ns_list)] for f in range(len(ns_list))])
    y = y[np.argsort(order)]                    # codeword f was sent at ns_list[f % len]
    rx = SCPPMReceiver(code, ns=1.0, nb=0.1)
    return code, rx._symbol_metric(y, rx.weight)


@pytest.mark.parametrize("M,F,orders", [(4, 1, (True, "reverse")), (32, 3, (True, "reverse")),
                                        (256, 2, (True, "reverse")), (16, 257, ("reverse",))])
def test_scppm_kernels_with_real_blocks_write_what_the_one_thread_run_writes(M, F, orders):
    """All five SCPPM kernels (channel probabilities, stage sums, recursions, extrinsics scattered
    through the interleaver, outer SISO + CRC): every array after every launch, over iterations
    where some codewords stop (CRC good: later launches skip them) and others go on. M = 32 has an
    odd log2 M, M = 256 is the largest instantiation; F = 257 leaves the second block of the
    per-codeword kernels one live thread. Decisions, flags, iterations also equal the CPU's."""
    from modem.fec.scppm import SCPPMDecoder  # noqa: PLC0415
    rng = np.random.default_rng(M + F)
    code, metric = _scppm_metric(M, F, [6.0, 1.0, 3.0], rng)
    dec = SCPPMDecoder(code, max_iter=3 if F < 100 else 2)
    ref = dec.decode(metric)
    assert F < 3 or (ref.iterations == 1).any() and (ref.iterations > 1).any()
    seq = _Recorder(_emulated())
    out = dec._decode_device(metric, seq)
    for f in ("u_hat", "crc_ok", "iterations"):
        np.testing.assert_array_equal(getattr(out, f), getattr(ref, f), err_msg=f)
    for order in orders:
        thr = _Recorder(_emulated(order))
        dec._decode_device(metric, thr)
        assert [e[:3] for e in thr.log] == [e[:3] for e in seq.log]
        for k, (a, b) in enumerate(zip(thr.log, seq.log)):
            assert a[3] == b[3], f"launch {k} ({a[0]}, threads={order}): arrays {a[3]} != {b[3]}"


def test_front_end_kernels_with_real_blocks_in_any_order_write_what_the_one_thread_run_writes(rng):
    """Sync correlation (Massey, CSM), DPSK exact LLRs, BCH remainders, and slot binning with many
    tags per slot (atomic increments from threads of one block): the real block size, threads in
    order and reversed, equal the one-thread run and the CPU (tests/test_gpu_review.py covers the
    Gaussian DPSK LLRs and slot LLRs with threads in order)."""
    from modem.fec.dvbs2 import _gpu  # noqa: PLC0415
    from modem.fec.dvbs2.code import code as dvbs2_code  # noqa: PLC0415
    c = dvbs2_code("short", "1/2")
    words = rng.integers(0, 2, (130, c.k_ldpc), dtype=np.uint8)       # 130 > BCH_BLOCK: two blocks
    words[::3] = c.bch.encode(rng.integers(0, 2, (44, c.bch.k), dtype=np.uint8))
    llr = rng.normal(0.0, 3.0, (3, 301))
    counts = rng.poisson(0.3, (600, 20)).astype(np.int64)
    tags = np.sort(rng.integers(10**9, 10**9 + 4 * 10**5, 5000)).astype(np.int64)   # ~12 tags per slot
    xa, xb = rng.exponential(2.0, 1001), rng.exponential(1.0, 1001)
    pattern = rng.integers(0, 16, 24)

    def run(la):
        return {"massey": ops.massey_metric(llr, polarity_free=True, launcher=la),
                "csm": ops.csm_llr(counts, pattern, 16, 1.7, launcher=la),
                "exact1": ops.dpsk_llr_exact(xa, xb, 2.0, 0.5, 1, launcher=la),
                "exact2": ops.dpsk_llr_exact(xa, xb, 2.0, 0.5, 2, launcher=la),
                "bch": _gpu.bch_nonzero_gpu(words, c.k_ldpc, c.ldpc, c.bch, la),
                "bins": ops.bin_slots(tags, 1e9 - 0.5, 1000.0 / 3.0, 1201, launcher=la)}

    ref = run(_emulated())
    np.testing.assert_array_equal(ref["bch"], (np.arange(130) % 3 != 0).astype(np.uint8))
    np.testing.assert_array_equal(ref["bins"], ops.bin_slots(tags, 1e9 - 0.5, 1000.0 / 3.0, 1201))
    assert ref["bins"].max() > 8
    np.testing.assert_allclose(ref["csm"], ops.csm_llr(counts, pattern, 16, 1.7), rtol=1e-12, atol=1e-10)
    for order in (True, "reverse"):
        out = run(_emulated(order))
        for k in ref:
            for a, b in zip(out[k] if k == "massey" else [out[k]], ref[k] if k == "massey" else [ref[k]]):
                np.testing.assert_array_equal(a, b, err_msg=f"{k} threads={order}")


# --------------------------------------------------------------------------------------------
# FMA contraction (on by default in NVRTC and nvcc): it cannot change a BIT-EXACT kernel
# --------------------------------------------------------------------------------------------
NVCC = shutil.which("nvcc")

#: Entry points whose results kernels/README.md declares bit-exact against the CPU, by file.
BIT_EXACT = {"slot_binning": ("slot_bin_counts", "slot_llr_f32"), "dpsk_llr": ("dpsk_llr_gaussian_f32",),
             "ldpc_layered_i16": ("ldpc_layered_i16",), "bch_syndrome": ("bch_remainder_nonzero",),
             "ldpc_minsum": ("ldpc_minsum_decode_f32",)}
#: Contractions known to be exact, pinned for the comparison: ldpc_minsum's L[v] = t + s * mag
#: becomes fma(s, mag, t), and s is +-1, so the product is exact and the fused result the CPU's.
EXACT_FMA = {"ldpc_minsum": ("L[v] = t + rr;", "L[v] = __fadd_rn(t, rr);")}


def _elf_sections(data: bytes) -> dict:
    """{name: bytes} of the sections of a 64-bit little-endian ELF file (a CUBIN)."""
    assert data[:5] == b"\x7fELF\x02"
    shoff, = struct.unpack_from("<Q", data, 0x28)
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", data, 0x3A)
    hdrs = [struct.unpack_from("<IIQQQQIIQQ", data, shoff + i * shentsize) for i in range(shnum)]
    names = hdrs[shstrndx][4]
    return {data[names + h[0]:data.index(b"\0", names + h[0])].decode(): data[h[4]:h[4] + h[5]]
            for h in hdrs if h[1] != 8}                        # SHT_NOBITS has no bytes in the file


def _cubin_as_cupy(src, tmp_path, fmad):
    """The sm_90 CUBIN of ``src`` (a .cu file) compiled by nvcc with the options CuPy's NVRTC call
    gets (ours, -ftz=true) and --fmad=<fmad>."""
    from modem.gpu import loader, nvrtc  # noqa: PLC0415
    out = tmp_path / f"{src.stem}_{fmad}.cubin"
    opts = [o for o in loader.compile_options() + nvrtc.CUPY_ADDED_OPTIONS if o != "--device-as-default-execution-space"]
    subprocess.run([NVCC, *opts, "-arch=sm_90", "-cubin", f"--fmad={fmad}", "-o", str(out), str(src)],
                   check=True, capture_output=True)
    return _elf_sections(out.read_bytes())


@pytest.mark.skipif(NVCC is None, reason="nvcc not installed")
@pytest.mark.parametrize("name", sorted(BIT_EXACT))
def test_bit_exact_kernels_compile_to_the_same_code_with_and_without_fma_contraction(name, tmp_path):
    """A GPU compiler (NVVM, and ptxas on plain mul/add pairs) fuses a*b + c into one rounding where
    the source leaves it free to; the CPU twins round twice. The bit-exact kernels use __fmul_rn /
    __dadd_rn ... where a product meets a sum, or have no such pair: their sm_90 machine code is
    identical with --fmad=true (what CuPy compiles with) and --fmad=false, so contraction cannot
    change one of their results (ldpc_minsum: once its one exact contraction is pinned, above)."""
    from modem.gpu.loader import kernel_dir  # noqa: PLC0415
    text = (kernel_dir() / f"{name}.cu").read_text()
    if name in EXACT_FMA:
        old, new = EXACT_FMA[name]
        assert text.count(old) == 1
        text = text.replace(old, new)
    src = tmp_path / f"{name}.cu"
    src.write_text(text)
    on, off = _cubin_as_cupy(src, tmp_path, "true"), _cubin_as_cupy(src, tmp_path, "false")
    for entry in BIT_EXACT[name]:
        sec = [k for k in on if k.startswith(f".text._Z{len(entry)}{entry}")]
        assert len(sec) == 1, (entry, sorted(on))
        assert on[sec[0]] == off[sec[0]], f"{entry}: FMA contraction changes the machine code"


# --------------------------------------------------------------------------------------------
# Registers and shared memory of every entry point against an H100, at the wrappers' block sizes
# --------------------------------------------------------------------------------------------
def _block_sizes() -> dict:
    """Threads per block each wrapper launches an entry point with, by kernel file."""
    from modem.fec.dvbs2 import _gpu as dvb  # noqa: PLC0415
    from modem.fec.scppm import _gpu as scppm  # noqa: PLC0415
    return {"slot_binning": ops.BLOCK, "sync_correlate": ops.BLOCK, "dpsk_llr": ops.BLOCK,
            "scppm_siso": scppm.BLOCK, "ldpc_minsum": dvb.LDPC_BLOCK, "ldpc_layered_i16": dvb.I16_BLOCK,
            "bch_syndrome": dvb.BCH_BLOCK}


def test_every_entry_point_fits_an_h100_at_its_block_size():
    """NVRTC as CuPy runs it (ptxas -v): per block at most 65536 registers (allocated per warp in
    units of 256, i.e. per thread rounded up to 8) and 48 KB of static shared memory (the limit
    without an opt-in), no register spills, every entry point of every file (SCPPM up to M = 256;
    the 16-bit LDPC kernel's 360 x (32 + 4) int16 rows: 25.9 KB)."""
    from modem.gpu import loader, nvrtc  # noqa: PLC0415
    if nvrtc.find_libnvrtc() is None:
        pytest.skip("libnvrtc not found (CUDA toolkit or the nvidia-cuda-nvrtc wheel)")
    blocks, seen = _block_sizes(), {}
    for name, entries in loader.KERNEL_FILES.items():
        r = nvrtc.compile_source(loader.module_source(name), entries, loader.compile_options()
                                 + nvrtc.CUPY_ADDED_OPTIONS + ("-arch=sm_90", "--ptxas-options=-v"))
        entry_of = {v: k for k, v in r.lowered.items()}
        cur = None
        for line in r.log.splitlines():
            m = re.search(r"Compiling entry function '(\S+)'", line)
            if m:
                cur = entry_of[m.group(1)]
            m = re.search(r"(\d+) bytes spill stores, (\d+) bytes spill loads", line)
            if m:
                assert m.groups() == ("0", "0"), (cur, line)
            m = re.search(r"Used (\d+) registers(?:.*?(\d+) bytes smem)?", line)
            if m:
                regs, smem = int(m.group(1)), int(m.group(2) or 0)
                warps = -(-blocks[name] // 32)
                assert -(-regs // 8) * 8 * 32 * warps <= 65536, (cur, regs, blocks[name])
                assert smem <= 48 * 1024, (cur, smem)
                seen[cur] = (regs, smem)
    assert set(seen) == {e for es in loader.KERNEL_FILES.values() for e in es}
    # the 16-bit kernel's row buffer holds LDPC_I16_MAXDEG edges of a layer; the wrapper refuses
    # deeper layers by its own copy of that bound (a larger copy would let a layer overrun it)
    from modem.fec.dvbs2 import _gpu as dvb  # noqa: PLC0415
    src = (loader.kernel_dir() / "ldpc_layered_i16.cu").read_text()
    maxdeg = int(re.search(r"#define LDPC_I16_MAXDEG (\d+)", src).group(1))
    assert dvb.I16_MAXDEG == maxdeg
    assert seen["ldpc_layered_i16"][1] == 2 * 360 * (maxdeg + 4) + 8 + 4


# --------------------------------------------------------------------------------------------
# SCPPM decisions with GPU-like rounding: FMA contraction and a libm that is off by an ulp
# --------------------------------------------------------------------------------------------
def _gpu_like_launcher(tmp_path):
    """Host emulation built with -mfma -ffp-contract=fast (a*b + c fused where the compiler likes,
    as NVRTC does) and MODEM_EMULATE_ULP_NOISE (exp / log / log1p one ulp off, see
    kernels/host_emulation.cuh), in its own cache directory (the cache key ignores flags)."""
    from modem.gpu.launch import HostEmulationLauncher  # noqa: PLC0415
    gxx = shutil.which("g++")
    if gxx is None:
        pytest.skip("host emulation of the kernels needs g++")
    try:
        with open("/proc/cpuinfo") as f:
            has_fma = "fma" in f.read().split()
    except OSError:
        has_fma = False
    if not has_fma:
        pytest.skip("no FMA instructions on this CPU (or no /proc/cpuinfo to tell)")
    wrapper = tmp_path / "gxx_gpu_like"
    wrapper.write_text(f'#!/bin/sh\nexec "{gxx}" -mfma -ffp-contract=fast -DMODEM_EMULATE_ULP_NOISE "$@"\n')
    wrapper.chmod(0o755)
    os.environ["CXX"] = str(wrapper)
    try:
        la = HostEmulationLauncher(cache_dir=str(tmp_path / "cache"))
        la("scppm_siso", "scppm_inner_recursions", 1, 1, np.ones(4), np.zeros(1, np.int32), np.zeros(4),
           np.zeros(2), 1, 1)                                      # the library is built now
    finally:
        del os.environ["CXX"]
    return la


def test_scppm_decisions_flags_iterations_survive_gpu_like_rounding(tmp_path):
    """kernels/README.md: soft values agree to rounding, decisions / CRC / iterations are expected
    identical. On the host emulation with GPU-like rounding (FMA contraction; exp, log1p one ulp
    off), codewords near the decoding threshold (some failing, some stopping late) give the CPU's
    decoded bits, CRC flags and iteration counts, while the soft values do differ (the rounding
    really changed)."""
    from modem.analysis.capacity import ns_capacity_limit  # noqa: PLC0415
    from modem.channel.poisson import simulate_counts  # noqa: PLC0415
    from modem.fec.scppm import SCPPMCode, SCPPMDecoder, SCPPMReceiver, SCPPMTransmitter  # noqa: PLC0415
    la = _gpu_like_launcher(tmp_path)
    rng = np.random.default_rng(11)
    failed = late = 0
    for M, F in ((16, 12), (64, 8)):
        code = SCPPMCode(M, "1/2")
        ns = ns_capacity_limit(M, "1/2", 0.1) * 10 ** (0.4 / 10)
        u = rng.integers(0, 2, (F, code.k), dtype=np.uint8)
        rx = SCPPMReceiver(code, ns=ns, nb=0.1)
        metric = rx._symbol_metric(simulate_counts(SCPPMTransmitter(code).modulate(u), ns, 0.1, rng), rx.weight)
        dec = SCPPMDecoder(code, max_iter=20)
        ref = dec.decode(metric)
        gpu_like, plain = _Recorder(la), _Recorder(_emulated())
        out = dec._decode_device(metric, gpu_like)
        dec._decode_device(metric, plain)
        for f in ("u_hat", "crc_ok", "iterations"):
            np.testing.assert_array_equal(getattr(out, f), getattr(ref, f), err_msg=f"M={M} {f}")
        assert gpu_like.log[0][3] != plain.log[0][3]               # channel probabilities differ
        assert gpu_like.log[3][3] != plain.log[3][3]               # and the extrinsics
        failed += int((~ref.crc_ok).sum())
        late += int((ref.iterations[ref.crc_ok] > 10).sum())
    assert failed and late


def test_scppm_codewords_with_a_fade_give_the_cpus_flags_and_iterations():
    """Symbols without a single photon (a fade: metric 0, channel probabilities exactly 1) make
    exact ties in the a posteriori values of the bits they carry. A codeword with 5 % of its
    symbols faded still decodes (bits, flags, iterations equal the CPU's); with 12 % it fails on
    both with the same flags and iteration counts. Its decoded bits are not compared: where a bit's
    two sums are equal in exact arithmetic, the summation order (CPU butterfly vs per-bit sums)
    decides the tie, and the bits of such a failed codeword can differ (seen: a bit or two of a
    M = 16 codeword with a 10 % fade; hundreds in an almost photon-free one; kernels/README.md)."""
    from modem.fec.scppm import SCPPMDecoder  # noqa: PLC0415
    rng = np.random.default_rng(5)
    code, metric = _scppm_metric(16, 6, [3.0], rng)
    for f, frac in enumerate([0.05, 0.05, 0.05, 0.12, 0.12, 0.12]):
        n0 = int(frac * code.S)
        s0 = rng.integers(0, code.S - n0)
        metric[f, s0:s0 + n0] = 0.0
    dec = SCPPMDecoder(code, max_iter=12)
    ref = dec.decode(metric)
    assert list(ref.crc_ok) == [True] * 3 + [False] * 3
    out = dec._decode_device(metric, _emulated())
    np.testing.assert_array_equal(out.crc_ok, ref.crc_ok)
    np.testing.assert_array_equal(out.iterations, ref.iterations)
    np.testing.assert_array_equal(out.u_hat[:3], ref.u_hat[:3])


# --------------------------------------------------------------------------------------------
# modem/gpu/pipeline.py: transfer / compute ordering on a device that runs work as late as it may
# --------------------------------------------------------------------------------------------
class _LazyStream:
    def __init__(self, dev, non_blocking=True):
        self.dev, self.ops, self.done = dev, [], 0

    def __enter__(self):
        self.dev.current.append(self)
        return self

    def __exit__(self, *exc):
        self.dev.current.pop()

    def run_to(self, pos):
        while self.done < pos:
            op = self.ops[self.done]
            self.done += 1
            op()

    def record(self):
        return _LazyEvent(self, len(self.ops))

    def wait_event(self, ev):
        self.ops.append(lambda: ev.stream.run_to(ev.pos))


class _LazyEvent:
    def __init__(self, stream, pos):
        self.stream, self.pos = stream, pos

    def synchronize(self):
        self.stream.run_to(self.pos)


class _LazyArray:
    def __init__(self, dev, shape, dtype):
        self.dev, self.data, self.ready = dev, np.full(shape, -1, dtype=dtype), False
        self.shape, self.dtype, self.size = self.data.shape, self.data.dtype, self.data.size

    def set(self, pinned, stream):
        stream.ops.append(lambda: self.data.__setitem__(Ellipsis, pinned))   # reads the pinned buffer when it runs


class _LazyDevice:
    """A CuPy stand-in for pipeline._Overlap that runs device work as late as it may: a copy or a
    kernel queued on a stream runs only when a host synchronisation needs it (an event a stream
    waits for runs the other stream up to it first). A copy reads its pinned source when it runs,
    a kernel its device input: a pinned buffer refilled before its copy ran, or a device buffer
    refilled before the kernel reading it ran, gives wrong output here."""

    def __init__(self):
        self.current = []
        self.cuda = self
        self.Stream = lambda non_blocking=True: _LazyStream(self, non_blocking)

    @staticmethod
    def alloc_pinned_memory(nbytes):
        return bytearray(nbytes)

    def empty(self, shape, dtype):
        return _LazyArray(self, shape, dtype)

    def kernel(self, x):
        """out = 2 x + 1 on the current stream (a stand-in for a decoder's launches)."""
        out = _LazyArray(self, x.shape, np.float64)

        def run():
            out.data[...] = 2.0 * x.data.astype(np.float64) + 1.0
            out.ready = True
        self.current[-1].ops.append(run)
        return out


def _lazy_run(batches):
    from modem.gpu import pipeline  # noqa: PLC0415
    dev = _LazyDevice()
    ov = pipeline._Overlap(SimpleNamespace(xp=dev, stream=None))

    def finish(res):
        assert res.ready, "result read back before its kernel ran"
        return res.data.copy()
    return pipeline._run(ov, iter(batches), lambda b: {"x": b}, lambda d: dev.kernel(d["x"]), finish)


def test_pipeline_overlap_orders_transfers_and_kernels_on_a_lazy_device(rng):
    """Batches of changing sizes and dtypes (new pinned / device buffers, reused ones), every one
    run through the double-buffered path a GPU takes: each result is its own batch's."""
    batches = [rng.normal(size=n).astype(dt) for n, dt in ((5, np.float64), (7, np.float64), (3, np.float64),
                                                           (7, np.float32), (7, np.float32), (0, np.float64),
                                                           (4, np.float64))]
    out = list(_lazy_run(batches))
    assert len(out) == len(batches)
    for o, b in zip(out, batches):
        np.testing.assert_array_equal(o, 2.0 * b.astype(np.float64) + 1.0)


def test_lazy_device_catches_a_kernel_queued_before_its_transfer(rng, monkeypatch):
    """The check above can fail: without compute()'s wait for the slot's transfer, a batch's kernel
    runs on what its device buffer held before (another batch, or nothing yet). (stage()'s waits for
    the slot's last copy and last kernel cannot be shown missing this way: _run reads batch i back
    before it stages batch i+2 into the same slot, which already orders both.)"""
    from modem.gpu import pipeline  # noqa: PLC0415
    src = textwrap.dedent(inspect.getsource(pipeline._Overlap.compute))
    line = "self.compute_stream.wait_event(self.h2d_done[slot])"
    assert src.count(line) == 1
    ns = {}
    exec(src.replace(line, "pass"), vars(pipeline), ns)   # noqa: S102
    monkeypatch.setattr(pipeline._Overlap, "compute", ns["compute"])
    batches = [rng.normal(size=6) for _ in range(4)]
    out = list(_lazy_run(batches))
    assert not any(np.array_equal(o, 2.0 * b + 1.0) for o, b in zip(out, batches))


def test_pipeline_error_mid_run_on_a_lazy_device_yields_the_queued_batch_first(rng):
    """The batch source fails after two batches: the second (queued, not yet read back) still
    comes out, computed from its own data, then the error."""
    def source():
        yield rng.normal(size=4)
        yield np.arange(5.0)
        raise OSError("capture file truncated")
    got = []
    with pytest.raises(OSError, match="truncated"):
        for o in _lazy_run(source()):
            got.append(o)
    assert len(got) == 2
    np.testing.assert_array_equal(got[1], 2.0 * np.arange(5.0) + 1.0)
