# SPDX-License-Identifier: Apache-2.0
"""Compute backend selection: the data decides, an explicit override wins, fallback is loud.

* ``cpu``: NumPy + Numba, always available.
* ``gpu``: CuPy on an NVIDIA GPU, where CuPy imports and a device is visible.

The type of the input array selects the backend of a stage (``cupy.ndarray`` -> gpu). The
environment variable ``MODEM_BACKEND=cpu|gpu|auto`` overrides that for entry points that create
arrays (simulations, replays, benchmarks); asking for ``gpu`` where it cannot run raises
:class:`~modem.errors.BackendUnavailable` with the reason, never a silent CPU run.
"""
from __future__ import annotations

import functools
import os
import platform
import subprocess
from pathlib import Path

import numpy as np

from .errors import BackendUnavailable, ConfigError

_BACKENDS = ("cpu", "gpu", "auto")


@functools.lru_cache(maxsize=1)
def _probe_cupy():
    """Return (cupy module or None, reason string when unavailable)."""
    try:
        import cupy  # noqa: PLC0415
    except Exception as exc:  # ImportError, or a broken CUDA install
        return None, f"CuPy is not importable ({type(exc).__name__}: {exc})"
    try:
        n = cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:
        return None, f"CuPy imported but no CUDA device is usable ({type(exc).__name__}: {exc})"
    if n < 1:
        return None, "CuPy imported but no CUDA device is visible"
    try:        # the kernels are compiled at run time: without NVRTC the first launch would fail
        from cupy.cuda import nvrtc  # noqa: PLC0415
        nvrtc.getVersion()
    except Exception as exc:
        first = (str(exc).strip().splitlines() or [""])[0]
        return None, f"CuPy sees {n} CUDA device(s) but cannot load NVRTC ({type(exc).__name__}: {first})"
    return cupy, ""


def gpu_available() -> bool:
    return _probe_cupy()[0] is not None


def unavailable_reason() -> str:
    """Why the GPU backend cannot run here ('' when it can)."""
    return _probe_cupy()[1]


def requested_backend() -> str:
    """The backend named by ``MODEM_BACKEND`` (default ``auto``)."""
    name = os.environ.get("MODEM_BACKEND", "auto").strip().lower() or "auto"
    if name not in _BACKENDS:
        raise ConfigError(f"MODEM_BACKEND must be one of {_BACKENDS}, got {name!r}")
    return name


def resolve_backend(name: str | None = None) -> str:
    """Turn a requested backend (``cpu``/``gpu``/``auto``/None=env) into ``cpu`` or ``gpu``.

    ``auto`` picks the GPU where one is usable. ``gpu`` where none is raises BackendUnavailable.
    """
    name = requested_backend() if name is None else name.lower()
    if name not in _BACKENDS:
        raise ConfigError(f"backend must be one of {_BACKENDS}, got {name!r}")
    if name == "gpu":
        if not gpu_available():
            raise BackendUnavailable(f"MODEM_BACKEND=gpu requested but {unavailable_reason()}")
        return "gpu"
    if name == "auto":
        return "gpu" if gpu_available() else "cpu"
    return "cpu"


def xp_for(backend: str):
    """The array module (numpy or cupy) of a resolved backend name."""
    if backend == "gpu":
        cp, reason = _probe_cupy()
        if cp is None:
            raise BackendUnavailable(reason)
        return cp
    return np


def get_array_module(x):
    """numpy or cupy, from the type of ``x`` (the data decides)."""
    cp = _probe_cupy()[0] if "cupy" in type(x).__module__ else None
    return cp if cp is not None else np


def backend_of(x) -> str:
    return "gpu" if get_array_module(x) is not np else "cpu"


def to_numpy(x) -> np.ndarray:
    """Bring an array to the host (no-op for NumPy). Chain edges and I/O only."""
    if get_array_module(x) is np:
        return np.asarray(x)
    return x.get()


def fec_launcher(backend: str | None = None):
    """The kernel launcher the stream receivers' FEC decoders run on, for a backend name
    (``cpu``/``gpu``/``auto``; None = ``MODEM_BACKEND``): None where they run on the CPU (NumPy +
    Numba), the CuPy launcher (:class:`modem.gpu.launch.CupyLauncher`) where on the GPU. ``gpu``
    where no GPU is usable raises BackendUnavailable (one line, with the reason)."""
    if resolve_backend(backend) != "gpu":
        return None
    from .gpu.launch import default_launcher  # noqa: PLC0415
    return default_launcher()


#: codewords a replay on a kernel launcher holds back before each decoder call, at most (offline
#: decode of a capture: latency does not matter there, and the per-codeword sequential SCPPM kernels
#: need thousands of codewords per call to fill a GPU; ``kernels/README.md``) ...
GPU_DECODE_BATCH = 1024
#: ... and at most this many bytes of held codewords on the host (1024 16-PPM codewords of uint16 slot
#: counts are 155 MB; 128-PPM ones are 696 kB each, so 385 of them). This bounds the hold, not the
#: peak: each decoder call also builds the float64 symbol metrics of its codewords, (F, S, M) x 8
#: bytes, on the device (about 0.5 GB for 1024 16-PPM codewords, 0.85 GB for 385 128-PPM ones;
#: from the uploaded counts, ``SCPPMReceiver.receive_stream``), and with a channel interleaver on
#: the host too (the deinterleaver runs there)
GPU_HOLD_BYTES = 256 << 20


def default_decode_batch(launcher, codeword_bytes: int = 0) -> int:
    """Codewords a stream receiver holds before each decoder call, by default: 1 on the CPU (decode
    what each pushed chunk completes; the CPU decoder is as fast per codeword at any batch size); on
    a kernel launcher :data:`GPU_DECODE_BATCH`, or fewer where that many would hold more than
    :data:`GPU_HOLD_BYTES` (``codeword_bytes``: host bytes one held codeword takes)."""
    if launcher is None:
        return 1
    if codeword_bytes > 0:
        return max(1, min(GPU_DECODE_BATCH, GPU_HOLD_BYTES // int(codeword_bytes)))
    return GPU_DECODE_BATCH


def launcher_name(launcher) -> str:
    """The backend a launcher stands for in reports: ``cpu`` (None), ``gpu`` (CuPy arrays), or
    ``emulated`` (the tests' host emulation of the kernels on NumPy arrays)."""
    if launcher is None:
        return "cpu"
    return "emulated" if launcher.xp is np else "gpu"


def launcher_info(launcher) -> dict:
    """:func:`backend_info` of the backend a launcher stands for (:func:`launcher_name`; the host
    emulation reports the CPU's device with ``backend: emulated``)."""
    name = launcher_name(launcher)
    info = backend_info("gpu" if name == "gpu" else "cpu")
    info["backend"] = name
    return info


def results_to_host(res):
    """A decoder's result dataclass with every array field brought to the host (NumPy)."""
    return type(res)(**{k: to_numpy(v) for k, v in vars(res).items()})


@functools.lru_cache(maxsize=1)
def git_commit() -> str:
    """Short commit of the source tree (``-dirty`` if tracked files changed); ``$MODEM_COMMIT``
    where set (a copy of the tree without ``.git``, e.g. on a lent GPU machine); else 'unknown'."""
    env = os.environ.get("MODEM_COMMIT", "").strip()
    if env:
        return env
    root = Path(__file__).resolve().parent.parent
    try:
        out = subprocess.run(["git", "-C", str(root), "rev-parse", "--short=12", "HEAD"],
                             capture_output=True, text=True, timeout=5)
        sha = out.stdout.strip()
        if out.returncode == 0 and sha:
            # results written by the benchmarks themselves do not make the measured code dirty
            dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no",
                                    "--", ".", ":!bench/results"],
                                   capture_output=True, text=True, timeout=5).stdout.strip()
            return sha + ("-dirty" if dirty else "")
    except Exception:
        pass
    return "unknown"


def backend_info(backend: str | None = None) -> dict:
    """What ran: backend, device, library versions, commit. Goes into every report."""
    backend = resolve_backend(backend)
    info = {
        "backend": backend,
        "device": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "numpy": np.__version__,
        "commit": git_commit(),
        "python": platform.python_version(),
    }
    try:
        import numba  # noqa: PLC0415
        info["numba"] = numba.__version__
    except ImportError:  # pragma: no cover - numba is a hard dependency
        pass
    cpu_name = _cpu_model()
    if cpu_name:
        info["device"] = cpu_name
    if backend == "gpu":
        cp = xp_for("gpu")
        dev = cp.cuda.Device()
        props = cp.cuda.runtime.getDeviceProperties(dev.id)
        info.update(device=props["name"].decode() if isinstance(props["name"], bytes) else props["name"],
                    cupy=cp.__version__, cuda_runtime=cp.cuda.runtime.runtimeGetVersion(),
                    cuda_driver=cp.cuda.runtime.driverGetVersion(),
                    compute_capability=dev.compute_capability,
                    nvrtc=".".join(map(str, cp.cuda.nvrtc.getVersion())))   # compiles the kernels
    return info


@functools.lru_cache(maxsize=1)
def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return ""
