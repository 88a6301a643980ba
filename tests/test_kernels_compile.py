# SPDX-License-Identifier: Apache-2.0
"""Every CUDA kernel file compiles with nvcc (PTX for sm_90) with every entry point instantiated,
and builds as host C++ for the kernel emulation used by tests/test_gpu_equivalence.py.

Needs no GPU: skipped only where nvcc (or g++) is absent. A compile error fails the test.
"""
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor

import pytest

from modem.gpu.launch import emulation_source
from modem.gpu.loader import KERNEL_FILES, KERNEL_SIGNATURES, kernel_dir

NVCC = shutil.which("nvcc")
CXX = shutil.which("g++")


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
