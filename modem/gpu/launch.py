# SPDX-License-Identifier: Apache-2.0
"""Kernel launchers: the CuPy one (production), and a host emulation for machines without a GPU.

A launcher is called as ``launcher(file, entry, grid, block, *args)`` with device arrays and
Python scalars; scalars are converted by the entry's signature (:data:`KERNEL_SIGNATURES`).
It also names the array module its arrays live in (``launcher.xp``), so the wrappers in
``modem/fec/*/_gpu.py`` and :mod:`modem.gpu.ops` run unchanged on either.

:class:`CupyLauncher` launches on the current CUDA device and stream; it never copies between
host and device. :class:`HostEmulationLauncher` compiles the same ``.cu`` files as host C++
(``kernels/host_emulation.cuh``, g++) and runs every block with one thread, one block after the
other (or, with ``threads=True``, with the real block size, one OS thread per GPU thread and real
block barriers): a test tool that checks the kernels' index arithmetic, algorithms and (threaded)
barrier placement against the CPU reference where no GPU exists. It is slow and is never
selected by the backend logic.
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


def kernel_args(entry: str, sig: str, args, array_type) -> tuple:
    """The argument tuple of a ``cupy.RawKernel`` call, checked against the entry's signature.

    Pointer arguments ('p') must be C-contiguous arrays of ``array_type`` (``cupy.ndarray``):
    CuPy passes an array's data pointer as is, so a strided view would be read as if it were
    contiguous, and a NumPy array is host memory (the launcher never copies). Scalars become
    NumPy scalars of the exact C type of their letter (L int64, i int32, u uint32, f float32,
    d float64): CuPy passes a NumPy scalar's bytes by its dtype, while a Python int would go as
    int64 and a Python float as float64 whatever the parameter's type.
    """
    if len(sig) != len(args):
        raise ConfigError(f"{entry}: {len(sig)} arguments expected, got {len(args)}")
    conv = []
    for j, (c, a) in enumerate(zip(sig, args)):
        if c == "p":
            if not isinstance(a, array_type):
                raise ConfigError(f"{entry}: argument {j} must be a {array_type.__module__}.{array_type.__name__} "
                                  f"(device array), got {type(a).__name__}")
            if not a.flags.c_contiguous:
                raise ConfigError(f"{entry}: argument {j} must be C-contiguous (shape {a.shape}, "
                                  f"strides {a.strides})")
            conv.append(a)
        else:
            conv.append(_NP_SCALAR[c](a))
    return tuple(conv)


class CupyLauncher:
    """Launch kernels with CuPy on the current device and stream (``stream`` overrides it)."""

    def __init__(self, stream=None):
        self.xp = xp_for("gpu")
        self.stream = stream

    def __call__(self, file, entry, grid, block, *args):
        conv = kernel_args(entry, _signature(file, entry), args, self.xp.ndarray)
        if not 1 <= int(block) <= 1024:
            raise ConfigError(f"{entry}: block size must be in 1..1024, got {block}")
        fn = get_function(file, entry)       # cached per (device, file, entry)
        if self.stream is None:             # RawKernel launches on the current stream
            fn((max(int(grid), 1),), (int(block),), conv)
        else:
            with self.stream:
                fn((max(int(grid), 1),), (int(block),), conv)


def _cxx_name(entry: str) -> str:
    return "emu_" + entry.replace("<", "_").replace(">", "")


_SIGNATURE_CHECK = r"""
#include <type_traits>
// modem_sig_check(modem_letters<'L', ...>{}, &kernel): the kernel's C parameter types are exactly those of its
// KERNEL_SIGNATURES letters (p: any pointer; L long long; i int; u unsigned int; f float;
// d double). CuPy passes each scalar as the bytes of a NumPy scalar of the letter's type, so a
// mismatch (e.g. L for an int parameter) would corrupt the launch on a GPU while the host
// emulation's implicit C++ conversions would hide it: here it fails the build instead.
template <char C, class T> struct modem_arg_ok : std::false_type {};
template <class T> struct modem_arg_ok<'p', T*> : std::true_type {};
template <> struct modem_arg_ok<'L', long long> : std::true_type {};
template <> struct modem_arg_ok<'i', int> : std::true_type {};
template <> struct modem_arg_ok<'u', unsigned int> : std::true_type {};
template <> struct modem_arg_ok<'f', float> : std::true_type {};
template <> struct modem_arg_ok<'d', double> : std::true_type {};
template <char... C> struct modem_letters {};
template <char... C, class... P>
constexpr bool modem_sig_check(modem_letters<C...>, void (*)(P...)) {
  if constexpr (sizeof...(C) != sizeof...(P)) return false;
  else return (modem_arg_ok<C, P>::value && ...);
}
"""


def emulation_source(file: str, threads: bool = False) -> str:
    """C++ translation unit that includes ``<file>.cu`` and exports one C function per entry
    point: ``emu_<entry>(unsigned grid, unsigned block, <args>)`` running the kernel with blockDim
    1 (``block`` ignored), or with ``threads`` the real block size, one fiber per GPU thread
    switched at the barriers (``MODEM_EMULATE_THREADS``, see ``kernels/host_emulation.cuh``;
    ``modem_emu_set_reverse(int)`` then picks the threads' resume order). It also
    asserts at compile time that every entry point's C parameter types are exactly those its
    :data:`KERNEL_SIGNATURES` letters say (what :class:`CupyLauncher` passes on a GPU)."""
    lines = ["#define MODEM_EMULATE_THREADS"] if threads else []
    lines += ["#include <cstddef>", f'#include "{file}.cu"', _SIGNATURE_CHECK,
              "struct ModemAnyPtr { void* p; template <class T> operator T*() const { return (T*)p; } };"]
    if threads:
        lines.append('extern "C" void modem_emu_set_reverse(int r) { modem_emu_reverse = r; }')
    for entry, sig in KERNEL_SIGNATURES[file].items():
        letters = ", ".join(f"'{c}'" for c in sig)
        lines.append(f"static_assert(modem_sig_check(modem_letters<{letters}>{{}}, &{entry}), "
                     f'"{entry}: C parameter types differ from KERNEL_SIGNATURES {sig!r} (modem/gpu/loader.py)");')
        params, call = ["unsigned int grid", "unsigned int block"], []
        for j, c in enumerate(sig):
            if c == "p":
                params.append(f"void* a{j}")
                call.append(f"ModemAnyPtr{{a{j}}}")
            else:
                params.append(f"{_CXX_SCALAR[c]} a{j}")
                call.append(f"a{j}")
        lines.append(f'extern "C" void {_cxx_name(entry)}({", ".join(params)}) '
                     f'{{ MODEM_EMULATE({entry}, grid, {"block" if threads else "1"}, {", ".join(call)}); }}')
    return "\n".join(lines) + "\n"


def _emulation_library(file: str, cache_dir: str, threads: bool = False) -> ctypes.CDLL:
    """The emulation library of the kernel directory's current ``<file>.cu`` (built once per
    source digest: a changed file or MODEM_KERNEL_DIR gives another library, never a stale one)."""
    cxx = shutil.which(os.environ.get("CXX", "g++"))
    if cxx is None:
        raise BackendUnavailable("host emulation of the CUDA kernels needs a C++ compiler (g++)")
    kd = kernel_dir()
    src = emulation_source(file, threads)
    digest = hashlib.sha1((src + (kd / f"{file}.cu").read_text() + (kd / "common.cuh").read_text()
                           + (kd / "host_emulation.cuh").read_text()).encode()).hexdigest()[:16]
    out = Path(cache_dir) / f"{file}{'_mt' if threads else ''}_{digest}.so"
    if not out.exists():
        cpp = Path(cache_dir) / f"{file}_{digest}.cpp"
        cpp.write_text(src)
        tmp = out.with_suffix(f".{os.getpid()}.tmp")
        res = subprocess.run([cxx, "-std=c++17", "-O2", "-shared", "-fPIC", f"-I{kd}", "-o", str(tmp), str(cpp)], capture_output=True, text=True)
        if res.returncode:
            raise RuntimeError(f"host emulation build of {file}.cu failed:\n{res.stderr[-4000:]}")
        os.replace(tmp, out)
    return _cdll(str(out))


@functools.lru_cache(maxsize=None)
def _cdll(path: str) -> ctypes.CDLL:
    return ctypes.CDLL(path)


class HostEmulationLauncher:
    """Run the kernels as host C++ on NumPy arrays (tests only; see the module docstring).

    ``threads=True`` (or ``"reverse"``): each block runs with the block size the wrapper asked
    for, its threads as fibers that run up to a barrier and wait there for the whole block, then
    resume in thread order (reversed with ``"reverse"``); ``__shared__`` memory is the block's.
    A misplaced or missing barrier changes the result deterministically. Slower: meant for the
    kernels that cooperate inside a block (the LDPC decoders) on a few frames."""

    xp = np

    def __init__(self, cache_dir: str | None = None, threads: bool = False):
        self.cache_dir = cache_dir or os.path.join(tempfile.gettempdir(), f"modem-kernel-emu-{os.getuid()}")
        if threads not in (False, True, "reverse"):
            raise ConfigError(f"HostEmulationLauncher: threads must be False, True or 'reverse', got {threads!r}")
        self.threads = threads
        os.makedirs(self.cache_dir, exist_ok=True)

    def __call__(self, file, entry, grid, block, *args):
        sig = _signature(file, entry)
        if len(sig) != len(args):
            raise ConfigError(f"{entry}: {len(sig)} arguments expected, got {len(args)}")
        if self.threads and not 1 <= int(block) <= 1024:
            raise ConfigError(f"{entry}: block size must be in 1..1024, got {block}")
        lib = _emulation_library(file, self.cache_dir, bool(self.threads))
        if self.threads:
            lib.modem_emu_set_reverse(1 if self.threads == "reverse" else 0)
        fn = getattr(lib, _cxx_name(entry))
        conv = [ctypes.c_uint(max(int(grid), 1)), ctypes.c_uint(int(block))]
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
