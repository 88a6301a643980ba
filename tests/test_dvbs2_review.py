# SPDX-License-Identifier: Apache-2.0
"""Review tests (R5): DVB-S2 LDPC/BCH decoder inputs at the edges, DPSK LLRs at the edges."""
import numpy as np
import pytest

from modem.fec import dvbs2
from modem.modulation import dpsk


# ------------------------------------------------------------------------------ DVB-S2 decode
@pytest.mark.parametrize("algorithm", ["minsum", "minsum-serial", "sum-product"])
def test_finite_llrs_beyond_float32_range_are_clipped_not_rejected(algorithm):
    """decode() documents "magnitudes are clipped at 1e6; NaN/inf raise". A finite float64 LLR of
    1e39 (a noiseless channel, LLR = 2y/sigma^2 with a tiny sigma) used to overflow to inf in the
    float32 cast and was then rejected as non-finite."""
    c = dvbs2.code("short", "1/2")
    rng = np.random.default_rng(5)
    u = rng.integers(0, 2, (2, c.k), dtype=np.uint8)
    cw = c.encode(u)
    llr = np.where(cw == 0, 1e39, -1e300)            # float64, finite, beyond float32
    llr[1, :50] = -llr[1, :50] * 1e-300              # a few flipped bits of small magnitude
    r = c.decode(llr, max_iter=10, algorithm=algorithm)
    assert np.all(r.valid) and np.array_equal(r.u_hat, u)
    with pytest.raises(Exception, match="finite"):
        c.decode(np.full(c.n, np.inf), algorithm=algorithm)


# ------------------------------------------------------------------------------ DPSK LLRs
@pytest.mark.parametrize("modes", [1, 2, 3])
def test_exact_llr_without_signal_energy_is_zero_for_every_mode_count(modes):
    """es = 0 (no signal: e.g. a fade to zero intensity): x_A and x_B have the same distribution
    under both hypotheses, so the LLR is 0. For M > 1 the (M-1)/2 ln(x_B/x_A) term used to be left
    over (both Bessel terms fell to the same small-argument value), giving confident LLRs from
    noise alone."""
    xa = np.array([1.0, 0.3, 5.0, 0.01])
    xb = np.array([4.0, 2.0, 0.2, 0.01])
    L = dpsk.llr_exact(xa, xb, 0.0, 1.0, modes=modes)
    np.testing.assert_array_equal(L, 0.0)
    es = np.array([0.0, 1.0, 0.0, 1.0])             # per-bit energies, some zero
    L2 = dpsk.llr_exact(xa, xb, es, 1.0, modes=modes)
    assert L2[0] == 0 and L2[2] == 0
    np.testing.assert_array_equal(L2[[1, 3]], dpsk.llr_exact(xa[[1, 3]], xb[[1, 3]], 1.0, 1.0, modes=modes))
