# SPDX-License-Identifier: Apache-2.0
"""GPU (CuPy) support: CUDA kernel source lookup, per-device module cache, launch helpers and
the streaming GPU pipelines.

Importing this package never imports CuPy; the functions that need it import it on first use
and raise :class:`~modem.errors.BackendUnavailable` (one line, with the reason) where CuPy or a
device is missing. Kernel sources live in ``kernels/*.cu`` of the source tree and are shipped
inside the installed package as ``modem/kernels/*.cu`` (see :func:`kernel_dir`).
"""
from .loader import KERNEL_FILES, get_function, kernel_dir, kernel_source, load_module

__all__ = ["KERNEL_FILES", "get_function", "kernel_dir", "kernel_source", "load_module"]
