# SPDX-License-Identifier: Apache-2.0
"""CUDA kernel sources: where they are, and their compiled ``cupy.RawModule`` per device.

Lookup order of the kernel directory (:func:`kernel_dir`): ``$MODEM_KERNEL_DIR``; the copy
installed inside the package (``modem/kernels/``, package data of the wheel); the source tree's
``kernels/`` next to the ``modem`` package. Modules are compiled by NVRTC on first use with
``-std=c++17`` and the kernel directory on the include path (:func:`compile_options`), and cached
per (device, file, templates); CuPy's disk cache makes later processes fast. CuPy keys that disk
cache on the source text and options only, not on included headers, so the compiled text
(:func:`module_source`) ends with a digest of the ``*.cuh`` headers: editing ``common.cuh``
recompiles. CuPy itself appends ``-ftz=true`` (float32 denormals flushed to zero),
``--device-as-default-execution-space`` and ``-arch=sm_<cc>`` (see :mod:`modem.gpu.nvrtc`,
which compiles the files the same way without a GPU).
"""
from __future__ import annotations

import functools
import hashlib
import os
from pathlib import Path

from ..backend import xp_for
from ..errors import BackendUnavailable, ConfigError

#: Every kernel file: its entry points (template instantiations included) and their argument
#: signatures, one letter per argument: p pointer (device array), L int64, i int32, u uint32,
#: f float32, d float64. Launchers convert Python scalars by these letters.
_SCPPM_T = {"scppm_channel_prob": "ppLL", "scppm_inner_trans": "pppppLL", "scppm_inner_ext": "pppppppLL"}
KERNEL_SIGNATURES = {
    "slot_binning": {"slot_bin_counts": "pLddLp", "slot_llr_f32": "pLffp"},
    "scppm_siso": {**{f"{k}<{m}>": sig for m in range(2, 9) for k, sig in _SCPPM_T.items()},
                   "scppm_inner_recursions": "ppppLL", "scppm_outer_siso": "ppppppLLLui"},
    "ldpc_minsum": {"ldpc_minsum_decode_f32": "ppppppiLLLiffpppppp"},
    "ldpc_layered_i16": {"ldpc_layered_i16": "pppppppiLLiiddppppp"},
    "bch_syndrome": {"bch_remainder_nonzero": "pLLLppip"},
    "sync_correlate": {"massey_metric_f64": "ppiLLipp", "csm_symbol_lse_f64": "pLLidp",
                       "csm_llr_f64": "pLLpidpp"},
    "dpsk_llr": {"dpsk_llr_gaussian_f32": "pppidipiLp", "dpsk_llr_exact_f32": "pppidipiLp"},
}
KERNEL_FILES = {name: tuple(sigs) for name, sigs in KERNEL_SIGNATURES.items()}

COMPILE_OPTIONS = ("-std=c++17",)


def kernel_dir() -> Path:
    """Directory holding ``*.cu``/``*.cuh`` (env override, installed copy, source tree)."""
    env = os.environ.get("MODEM_KERNEL_DIR")
    if env:
        p = Path(env)
        if not (p / "common.cuh").is_file():
            raise ConfigError(f"MODEM_KERNEL_DIR={env!r} holds no common.cuh")
        return p
    pkg = Path(__file__).resolve().parent.parent
    for cand in (pkg / "kernels", pkg.parent / "kernels"):
        if (cand / "common.cuh").is_file():
            return cand
    raise BackendUnavailable(f"CUDA kernel sources not found (looked in {pkg / 'kernels'} and "
                             f"{pkg.parent / 'kernels'}; set MODEM_KERNEL_DIR)")


def kernel_source(name: str) -> str:
    """Text of ``kernels/<name>.cu``."""
    if name not in KERNEL_FILES:
        raise ConfigError(f"unknown kernel file {name!r}; known: {sorted(KERNEL_FILES)}")
    return (kernel_dir() / f"{name}.cu").read_text()


def compile_options() -> tuple[str, ...]:
    """NVRTC options of every kernel file (a tuple: ``cupy.RawModule`` requires one)."""
    return COMPILE_OPTIONS + (f"-I{kernel_dir()}",)


def module_source(name: str) -> str:
    """The text handed to NVRTC for ``kernels/<name>.cu``: the file, then a comment naming the
    SHA-256 of the ``*.cuh`` headers of the kernel directory (CuPy's disk cache key covers the
    source text but not the headers it includes)."""
    kd = kernel_dir()
    h = hashlib.sha256()
    for hdr in sorted(kd.glob("*.cuh")):
        h.update(hdr.name.encode() + b"\0" + hdr.read_bytes() + b"\0")
    return kernel_source(name) + f"\n// modem kernel headers sha256 {h.hexdigest()}\n"


def load_module(name: str, templates: tuple[str, ...] | None = None):
    """The compiled ``cupy.RawModule`` of ``kernels/<name>.cu`` on the current device (cached)."""
    cp = xp_for("gpu")
    if name not in KERNEL_FILES:
        raise ConfigError(f"unknown kernel file {name!r}; known: {sorted(KERNEL_FILES)}")
    return _load(cp.cuda.runtime.getDevice(), name, tuple(templates) if templates else KERNEL_FILES[name])


@functools.lru_cache(maxsize=None)
def _load(device_id: int, name: str, templates: tuple[str, ...]):
    cp = xp_for("gpu")
    with cp.cuda.Device(device_id):
        mod = cp.RawModule(code=module_source(name), options=compile_options(), name_expressions=templates)
        mod.compile()
    return mod


def get_function(name: str, entry: str):
    """Kernel ``entry`` (as listed in :data:`KERNEL_FILES`) of ``kernels/<name>.cu`` on this device:
    a ``cupy.RawKernel``, cached per (device, file, entry) -- ``RawModule.get_function`` builds a
    new RawKernel and looks the function up in the driver on every call."""
    if entry not in KERNEL_SIGNATURES.get(name, {}):
        raise ConfigError(f"kernel {entry!r} is not an entry point of {name}.cu")
    return _function(xp_for("gpu").cuda.runtime.getDevice(), name, entry)


@functools.lru_cache(maxsize=None)
def _function(device_id: int, name: str, entry: str):
    cp = xp_for("gpu")
    with cp.cuda.Device(device_id):
        return _load(device_id, name, KERNEL_FILES[name]).get_function(entry)


def compile_all() -> list[str]:
    """Compile every kernel file on the current device (warm-up before timing); returns names."""
    for name in KERNEL_FILES:
        load_module(name)
    return list(KERNEL_FILES)
