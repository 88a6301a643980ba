# SPDX-License-Identifier: Apache-2.0
"""Every CUDA kernel file compiles with nvcc (PTX for sm_90) with every entry point instantiated,
compiles through NVRTC exactly as CuPy will compile it at run time (same source text, our options
plus CuPy's, every entry point a name expression, CUBIN for sm_90), and builds as host C++ for the
kernel emulation used by tests/test_gpu_equivalence.py -- a build that also asserts each entry
point's C parameter types against its KERNEL_SIGNATURES letters.

Needs no GPU: skipped only where nvcc, libnvrtc (or g++) is absent. A compile error fails the test.
"""
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor

import pytest

from modem.gpu import loader, nvrtc
from modem.gpu.launch import emulation_source
from modem.gpu.loader import KERNEL_FILES, KERNEL_SIGNATURES, kernel_dir

NVCC = shutil.which("nvcc")
CXX = shutil.which("g++")
LIBNVRTC = nvrtc.find_libnvrtc()


def _instantiation_unit(name: str) -> str:
    """The .cu plus a table of pointers to every entry point: instantiates each template the
    way NVRTC name expressions do, and fails to compile if an entry point is missing."""
    entries = ", ".join(f"(void*)&{e}" for e in KERNEL_FILES[name])
    return (f'#include "{name}.cu"\n'
            f"__device__ void* modem_entry_points[] = {{{entries}}};\n")


def _nvcc(src: str, tmp_path, stem: str) -> subprocess.CompletedProcess:
    cu = tmp_path / f"{stem}_all.cu"
    cu.write_text(src)
    return subprocess.run([NVCC, "-std=c++17", "-arch=sm_90", "--ptx", "-O1", f"-I{kernel_dir()}",
                           "-o", str(tmp_path / f"{stem}.ptx"), str(cu)], capture_output=True, text=True)


def test_kernel_table_matches_files():
    files = {p.stem for p in kernel_dir().glob("*.cu")}
    assert files == set(KERNEL_FILES), "kernels/*.cu and modem.gpu.loader.KERNEL_SIGNATURES disagree"
    assert all(set(KERNEL_FILES[k]) == set(KERNEL_SIGNATURES[k]) for k in KERNEL_FILES)


@pytest.mark.skipif(NVCC is None, reason="nvcc not installed")
def test_every_kernel_compiles_with_nvcc(tmp_path):
    names = sorted(KERNEL_FILES)
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(lambda n: _nvcc(_instantiation_unit(n), tmp_path, n), names))
    failures = {n: r.stderr[-3000:] for n, r in zip(names, results) if r.returncode != 0}
    assert not failures, f"nvcc failed: {failures}"
    for n in names:
        ptx = (tmp_path / f"{n}.ptx").read_text()
        assert ptx.count(".entry") >= len(KERNEL_FILES[n]), f"{n}: missing entry points in the PTX"


@pytest.mark.skipif(NVCC is None, reason="nvcc not installed")
def test_a_compile_error_fails(tmp_path):
    bad = '#include "common.cuh"\n__global__ void broken(int* x) { x[0] = undefined_symbol; }\n'
    assert _nvcc(bad, tmp_path, "broken").returncode != 0


@pytest.mark.skipif(CXX is None, reason="g++ not installed")
def test_every_kernel_builds_for_host_emulation(tmp_path):
    def build(name):
        cpp = tmp_path / f"{name}_emu.cpp"
        cpp.write_text(emulation_source(name))
        return subprocess.run([CXX, "-std=c++17", "-O0", "-fsyntax-only", "-Wno-unknown-pragmas",
                               f"-I{kernel_dir()}", str(cpp)], capture_output=True, text=True)
    names = sorted(KERNEL_FILES)
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(build, names))
    failures = {n: r.stderr[-3000:] for n, r in zip(names, results) if r.returncode != 0}
    assert not failures, f"host emulation build failed: {failures}"


def _emulation_syntax_check(name: str, tmp_path) -> subprocess.CompletedProcess:
    cpp = tmp_path / f"{name}_sig.cpp"
    cpp.write_text(emulation_source(name))
    return subprocess.run([CXX, "-std=c++17", "-O0", "-fsyntax-only", "-Wno-unknown-pragmas",
                           f"-I{kernel_dir()}", str(cpp)], capture_output=True, text=True)


@pytest.mark.skipif(CXX is None, reason="g++ not installed")
@pytest.mark.parametrize("entry,wrong", [("slot_bin_counts", "pLddip"),      # int64 n_slots passed as int32
                                         ("slot_llr_f32", "pLfdp"),          # float ns passed as double
                                         ("slot_llr_f32", "pLffpp")])        # one argument too many
def test_a_signature_letter_that_differs_from_the_c_parameter_fails_the_build(monkeypatch, tmp_path, entry, wrong):
    """CuPy passes each scalar by the NumPy type of its letter: a letter that is not the C type
    would corrupt the launch on a GPU, so the emulation build rejects it at compile time."""
    monkeypatch.setitem(KERNEL_SIGNATURES["slot_binning"], entry, wrong)
    r = _emulation_syntax_check("slot_binning", tmp_path)
    assert r.returncode != 0
    assert "C parameter types differ from KERNEL_SIGNATURES" in r.stderr


@pytest.mark.skipif(LIBNVRTC is None, reason="libnvrtc not found (CUDA toolkit or the nvidia-cuda-nvrtc wheel)")
def test_every_kernel_compiles_with_nvrtc_as_cupy_does():
    """What cupy.RawModule(code=loader.module_source(f), options=loader.compile_options(),
    name_expressions=KERNEL_FILES[f]) runs at first use (CuPy 14 appends -ftz=true,
    --device-as-default-execution-space and -arch=sm_90 on an H100/H200)."""
    major, minor = nvrtc.nvrtc_version()
    failures, results = {}, {}
    for name in sorted(KERNEL_FILES):
        try:
            results[name] = nvrtc.compile_file(name, arch="sm_90")
        except nvrtc.NVRTCError as exc:
            failures[name] = str(exc)[-3000:]
    assert not failures, f"NVRTC {major}.{minor} ({LIBNVRTC}) failed: {failures}"
    for name, r in results.items():
        assert set(r.lowered) == set(KERNEL_FILES[name])
        for entry, mangled in r.lowered.items():
            base = entry.split("<")[0]
            assert mangled.startswith(f"_Z{len(base)}{base}"), (entry, mangled)   # a C++ (mangled) kernel
        assert r.cubin_bytes > 0
        assert "error" not in r.log.lower(), r.log
        for opt in loader.compile_options() + nvrtc.CUPY_ADDED_OPTIONS:
            assert opt in r.options


@pytest.mark.skipif(LIBNVRTC is None, reason="libnvrtc not found (CUDA toolkit or the nvidia-cuda-nvrtc wheel)")
def test_nvrtc_rejects_what_only_a_host_compiler_accepts():
    """NVRTC has no host headers: a kernel including <cstdio> must fail here (nvcc would pass)."""
    src = '#include <cstdio>\n#include "common.cuh"\n__global__ void k(int* x) { x[0] = 1; }\n'
    with pytest.raises(nvrtc.NVRTCError, match="cstdio"):
        nvrtc.compile_source(src, ["k"], loader.compile_options() + nvrtc.CUPY_ADDED_OPTIONS + ("-arch=sm_90",))
    bad = '#include "common.cuh"\n__global__ void broken(int* x) { x[0] = undefined_symbol; }\n'
    with pytest.raises(nvrtc.NVRTCError, match="undefined_symbol"):
        nvrtc.compile_source(bad, ["broken"], loader.compile_options() + ("-arch=sm_90",))


def test_module_source_changes_with_the_headers(monkeypatch, tmp_path):
    """CuPy's disk cache keys on the source text, not on included headers: the text handed to
    NVRTC carries the headers' digest, so editing common.cuh cannot reuse a stale CUBIN."""
    for f in kernel_dir().iterdir():
        if f.suffix in (".cu", ".cuh"):
            (tmp_path / f.name).write_text(f.read_text())
    monkeypatch.setenv("MODEM_KERNEL_DIR", str(tmp_path))
    before = loader.module_source("slot_binning")
    assert before.startswith(loader.kernel_source("slot_binning"))
    assert loader.compile_options() == ("-std=c++17", f"-I{tmp_path}")
    (tmp_path / "common.cuh").write_text((tmp_path / "common.cuh").read_text() + "\n// edited\n")
    after = loader.module_source("slot_binning")
    assert after != before and after.startswith(loader.kernel_source("slot_binning"))
