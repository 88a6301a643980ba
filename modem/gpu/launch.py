# SPDX-License-Identifier: Apache-2.0
"""Kernel launchers: the CuPy one (production), and a host emulation for machines without a GPU.

A launcher is called as ``launcher(file, entry, grid, block, *args)`` with device arrays and
Python scalars; scalars are converted by the entry's signature (:data:`KERNEL_SIGNATURES`).
It also names the array module its arrays live in (``launcher.xp``), so the wrappers in
``modem/fec/*/_gpu.py`` and :mod:`modem.gpu.ops` run unchanged on either.

:class:`CupyLauncher` launches on the current CUDA device and stream; it never copies between
host and device. :class:`HostEmulationLauncher` compiles the same ``.cu`` files as host C++
(``kernels/host_emulation.cuh``, g++) and runs every block with one thread, one block after the
other: a test tool that checks the kernels' index arithmetic and algorithms against the CPU
reference where no GPU exists. It is slow and is never selected by the backend logic.
"""
from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from ..backend import xp_for
from ..errors import BackendUnavailable, ConfigError
from .loader import KERNEL_SIGNATURES, get_function, kernel_dir

_NP_SCALAR = {"L": np.int64, "i": np.int32, "u": np.uint32, "f": np.float32, "d": np.float64}
_C_SCALAR = {"L": ctypes.c_longlong, "i": ctypes.c_int, "u": ctypes.c_uint, "f": ctypes.c_float,
             "d": ctypes.c_double}
_CXX_SCALAR = {"L": "long long", "i": "int", "u": "unsigned int", "f": "float", "d": "double"}


def _signature(file: str, entry: str) -> str:
    try:
        return KERNEL_SIGNATURES[file][entry]
    except KeyError:
        raise ConfigError(f"kernel {entry!r} is not an entry point of {file}.cu") from None


class CupyLauncher:
    """Launch kernels with CuPy on the current device and stream (``stream`` overrides it)."""

    def __init__(self, stream=None):
        self.xp = xp_for("gpu")
        self.stream = stream

    def __call__(self, file, entry, grid, block, *args):
        sig = _signature(file, entry)
        if len(sig) != len(args):
            raise ConfigError(f"{entry}: {len(sig)} arguments expected, got {len(args)}")
        conv = []
        for c, a in zip(sig, args):
            if c == "p":
                if a is None:
                    raise ConfigError(f"{entry}: a device array is required for every pointer argument")
                conv.append(a)
            else:
                conv.append(_NP_SCALAR[c](a))
        fn = get_function(file, entry)
        if self.stream is None:             # RawKernel launches on the current stream
            fn((max(int(grid), 1),), (int(block),), tuple(conv))
        else:
            with self.stream:
                fn((max(int(grid), 1),), (int(block),), tuple(conv))


def _cxx_name(entry: str) -> str:
    return "emu_" + entry.replace("<", "_").replace(">", "")


def emulation_source(file: str) -> str:
    """C++ translation unit that includes ``<file>.cu`` and exports one C function per entry
    point: ``emu_<entry>(unsigned grid, <args>)`` running the kernel with blockDim 1."""
    lines = ["#include <cstddef>", f'#include "{file}.cu"',
             "struct ModemAnyPtr { void* p; template <class T> operator T*() const { return (T*)p; } };"]
    for entry, sig in KERNEL_SIGNATURES[file].items():
        params, call = ["unsigned int grid"], []
        for j, c in enumerate(sig):
            if c == "p":
                params.append(f"void* a{j}")
                call.append(f"ModemAnyPtr{{a{j}}}")
            else:
                params.append(f"{_CXX_SCALAR[c]} a{j}")
                call.append(f"a{j}")
        lines.append(f'extern "C" void {_cxx_name(entry)}({", ".join(params)}) '
                     f'{{ MODEM_EMULATE({entry}, grid, 1, {", ".join(call)}); }}')
    return "\n".join(lines) + "\n"


@functools.lru_cache(maxsize=None)
def _emulation_library(file: str, cache_dir: str) -> ctypes.CDLL:
    cxx = shutil.which(os.environ.get("CXX", "g++"))
    if cxx is None:
        raise BackendUnavailable("host emulation of the CUDA kernels needs a C++ compiler (g++)")
    kd = kernel_dir()
    src = emulation_source(file)
    digest = hashlib.sha1((src + (kd / f"{file}.cu").read_text() + (kd / "common.cuh").read_text()
                           + (kd / "host_emulation.cuh").read_text()).encode()).hexdigest()[:16]
    out = Path(cache_dir) / f"{file}_{digest}.so"
    if not out.exists():
        cpp = Path(cache_dir) / f"{file}_{digest}.cpp"
        cpp.write_text(src)
        tmp = out.with_suffix(f".{os.getpid()}.tmp")
        res = subprocess.run([cxx, "-std=c++17", "-O2", "-shared", "-fPIC", f"-I{kd}", "-o", str(tmp), str(cpp)],
                             capture_output=True, text=True)
        if res.returncode:
            raise RuntimeError(f"host emulation build of {file}.cu failed:\n{res.stderr[-4000:]}")
        os.replace(tmp, out)
    return ctypes.CDLL(str(out))


class HostEmulationLauncher:
    """Run the kernels as host C++ on NumPy arrays (tests only; see the module docstring)."""

    xp = np

    def __init__(self, cache_dir: str | None = None):
        self.cache_dir = cache_dir or os.path.join(tempfile.gettempdir(), f"modem-kernel-emu-{os.getuid()}")
        os.makedirs(self.cache_dir, exist_ok=True)

    def __call__(self, file, entry, grid, block, *args):
        sig = _signature(file, entry)
        if len(sig) != len(args):
            raise ConfigError(f"{entry}: {len(sig)} arguments expected, got {len(args)}")
        lib = _emulation_library(file, self.cache_dir)
        fn = getattr(lib, _cxx_name(entry))
        conv = [ctypes.c_uint(max(int(grid), 1))]
        for c, a in zip(sig, args):
            if c == "p":
                if a is None:
                    conv.append(ctypes.c_void_p(0))
                else:
                    if not (isinstance(a, np.ndarray) and a.flags.c_contiguous):
                        raise ConfigError(f"{entry}: pointer arguments must be C-contiguous NumPy arrays")
                    conv.append(ctypes.c_void_p(a.ctypes.data))
            else:
                conv.append(_C_SCALAR[c](a))
        fn(*conv)


def default_launcher():
    """The CuPy launcher (raises BackendUnavailable, one line, where the GPU backend cannot run)."""
    return CupyLauncher()
