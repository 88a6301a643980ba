# SPDX-License-Identifier: Apache-2.0
"""Compile the kernel files through NVRTC directly (ctypes), the way CuPy will at run time.

``nvcc`` accepting a file is no proof that NVRTC does: NVRTC has no host headers and CuPy adds
options of its own. :func:`compile_file` reproduces what ``cupy.RawModule(code=...,
options=..., name_expressions=...)`` does in CuPy 14 (``cupy/_core/_compile_with_cache.pyx``
and ``cupy/cuda/compiler.py``): the same source text (:func:`modem.gpu.loader.module_source`),
our options (:func:`modem.gpu.loader.compile_options`), then the options CuPy appends
(:data:`CUPY_ADDED_OPTIONS` and ``-arch=sm_XX``); every entry point registered as a name
expression and its lowered (mangled) name read back; a CUBIN produced, so ptxas runs too
(register and static shared-memory limits are checked). Needs libnvrtc only: no GPU, no CuPy.

libnvrtc is looked for (:func:`find_libnvrtc`) in ``$MODEM_NVRTC_LIB``; the NVIDIA wheels on
``sys.path`` (``nvidia/cu13/lib``, ``nvidia/cuda_nvrtc/lib``, ``nvidia/cu12/lib``);
``$CUDA_PATH/lib64`` and ``/usr/local/cuda/lib64``; the dynamic loader.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import functools
import glob
import os
import sys
from dataclasses import dataclass

from ..errors import BackendUnavailable
from .loader import KERNEL_FILES, compile_options, module_source

#: Options CuPy 14 appends to ours for NVRTC, besides ``-arch=sm_<cc>`` and its include paths
#: (which our kernels do not use): float32 denormals flushed to zero, device code by default.
CUPY_ADDED_OPTIONS = ("-ftz=true", "--device-as-default-execution-space")


def find_libnvrtc() -> str | None:
    """Path (or loader name) of a libnvrtc to load, or None where none is found."""
    env = os.environ.get("MODEM_NVRTC_LIB")
    if env:
        return env
    cands: list[str] = []
    for p in sys.path:
        for sub in ("nvidia/cu13/lib", "nvidia/cuda_nvrtc/lib", "nvidia/cu12/lib"):
            cands += sorted(glob.glob(os.path.join(p or ".", sub, "libnvrtc.so*")))
    for root in (os.environ.get("CUDA_PATH"), "/usr/local/cuda"):
        if root:
            cands += sorted(glob.glob(os.path.join(root, "lib64", "libnvrtc.so*")))
    for c in cands:
        if ".alt." not in os.path.basename(c):
            return c
    return ctypes.util.find_library("nvrtc")


@functools.lru_cache(maxsize=None)
def _lib(path: str):
    try:
        # libnvrtc dlopen()s libnvrtc-builtins by its soname: load the one beside it first
        # (a wheel's lib folder is on no loader path)
        for b in sorted(glob.glob(os.path.join(os.path.dirname(path), "libnvrtc-builtins.so*"))):
            if os.path.dirname(path) and ".alt." not in os.path.basename(b):
                ctypes.CDLL(b, mode=ctypes.RTLD_GLOBAL)
                break
        lib = ctypes.CDLL(path)
    except OSError as exc:
        raise BackendUnavailable(f"libnvrtc could not be loaded from {path!r} ({exc})") from None
    P, S, C = ctypes.c_void_p, ctypes.c_size_t, ctypes.c_char_p
    lib.nvrtcVersion.argtypes = [ctypes.POINTER(ctypes.c_int), ctypes.POINTER(ctypes.c_int)]
    lib.nvrtcCreateProgram.argtypes = [ctypes.POINTER(P), C, C, ctypes.c_int, ctypes.POINTER(C), ctypes.POINTER(C)]
    lib.nvrtcAddNameExpression.argtypes = [P, C]
    lib.nvrtcCompileProgram.argtypes = [P, ctypes.c_int, ctypes.POINTER(C)]
    lib.nvrtcGetProgramLogSize.argtypes = [P, ctypes.POINTER(S)]
    lib.nvrtcGetProgramLog.argtypes = [P, ctypes.c_char_p]
    lib.nvrtcGetLoweredName.argtypes = [P, C, ctypes.POINTER(C)]
    lib.nvrtcGetCUBINSize.argtypes = [P, ctypes.POINTER(S)]
    lib.nvrtcGetCUBIN.argtypes = [P, ctypes.c_char_p]
    lib.nvrtcDestroyProgram.argtypes = [ctypes.POINTER(P)]
    lib.nvrtcGetErrorString.argtypes = [ctypes.c_int]
    lib.nvrtcGetErrorString.restype = ctypes.c_char_p
    return lib


def nvrtc_version(path: str | None = None) -> tuple[int, int]:
    """(major, minor) of the libnvrtc at ``path`` (default :func:`find_libnvrtc`)."""
    lib = _lib(_need(path))
    major, minor = ctypes.c_int(), ctypes.c_int()
    lib.nvrtcVersion(ctypes.byref(major), ctypes.byref(minor))
    return major.value, minor.value


def _need(path):
    path = path or find_libnvrtc()
    if not path:
        raise BackendUnavailable("libnvrtc not found (set MODEM_NVRTC_LIB, CUDA_PATH, or install the "
                                 "nvidia-cuda-nvrtc wheel)")
    return path


class NVRTCError(RuntimeError):
    """NVRTC rejected a kernel file; the message holds the compiler log."""


@dataclass(frozen=True)
class NVRTCResult:
    """One kernel file compiled: ``lowered`` maps each name expression to its mangled name."""

    name: str
    options: tuple[str, ...]
    lowered: dict
    cubin_bytes: int
    log: str


def compile_source(source: str, name_expressions, options, filename: str = "kern.cu",
                   path: str | None = None) -> NVRTCResult:
    """Compile ``source`` with NVRTC (CUBIN); raises :class:`NVRTCError` with the log on failure."""
    lib = _lib(_need(path))
    prog = ctypes.c_void_p()

    def check(rc, what):
        if rc != 0:
            raise NVRTCError(f"{filename}: {what} failed: {lib.nvrtcGetErrorString(rc).decode()}")

    check(lib.nvrtcCreateProgram(ctypes.byref(prog), source.encode(), filename.encode(), 0, None, None),
          "nvrtcCreateProgram")
    try:
        for ne in name_expressions:
            check(lib.nvrtcAddNameExpression(prog, ne.encode()), f"nvrtcAddNameExpression({ne!r})")
        opts = (ctypes.c_char_p * len(options))(*[o.encode() for o in options])
        rc = lib.nvrtcCompileProgram(prog, len(options), opts)
        size = ctypes.c_size_t()
        lib.nvrtcGetProgramLogSize(prog, ctypes.byref(size))
        buf = ctypes.create_string_buffer(size.value + 1)
        lib.nvrtcGetProgramLog(prog, buf)
        log = buf.value.decode(errors="replace")
        if rc != 0:
            raise NVRTCError(f"{filename}: NVRTC compile failed ({lib.nvrtcGetErrorString(rc).decode()}), "
                             f"options {list(options)}:\n{log[-4000:]}")
        lowered = {}
        for ne in name_expressions:
            out = ctypes.c_char_p()
            check(lib.nvrtcGetLoweredName(prog, ne.encode(), ctypes.byref(out)), f"nvrtcGetLoweredName({ne!r})")
            lowered[ne] = out.value.decode()
        lib.nvrtcGetCUBINSize(prog, ctypes.byref(size))
        return NVRTCResult(filename, tuple(options), lowered, int(size.value), log)
    finally:
        lib.nvrtcDestroyProgram(ctypes.byref(prog))


def compile_file(name: str, arch: str = "sm_90", path: str | None = None) -> NVRTCResult:
    """Compile ``kernels/<name>.cu`` exactly as :func:`modem.gpu.loader.load_module` makes CuPy do
    (same source text, our options + CuPy's, every entry point as a name expression)."""
    opts = compile_options() + CUPY_ADDED_OPTIONS + (f"-arch={arch}",)
    return compile_source(module_source(name), KERNEL_FILES[name], opts, filename=f"{name}.cu", path=path)
