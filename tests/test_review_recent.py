# SPDX-License-Identifier: Apache-2.0
"""Review R15 of the newest code (decode_batch hold, PTU T3 re-sorting, per-codeword simulation
streams, the scattered-total Poisson sampler): each test shows one bug found, fixed with it."""
import numpy as np
import pytest

from modem.channel.poisson import SNSPD, simulate_counts


@pytest.mark.parametrize("pulses_shape, nb_shape", [((0,), (0,)), ((3, 0), (0,)), ((3, 0), (3, 0)),
                                                    ((2, 3, 0), (3, 0))])
@pytest.mark.parametrize("detector", [None, SNSPD(0.5, 0.01, 2)])
def test_simulate_counts_of_no_slots_with_a_per_slot_mean(pulses_shape, nb_shape, detector):
    """A stream of 0 slots with a per-slot nb (shape (..., 0)) gives an empty count array, as it did
    before the scattered-total sampler (which raised numpy's ValueError: the per-row means of an
    empty slot axis could not be broadcast to (rows, 1))."""
    for ns in (1.0, np.zeros(nb_shape)):
        c = simulate_counts(np.zeros(pulses_shape, np.uint8), ns, np.zeros(nb_shape), 1, detector)
        assert c.shape == pulses_shape and c.dtype == np.int32


@pytest.mark.parametrize("meta", [{"chain": "dpsk"}, {"chain": "scppm", "M": 16, "rate": "1/2", "slot_width_ps": 1000.0,
                                                       "ns": 2.4, "nb": 0.02, "frame_len": 1115, "scid": 66}])
@pytest.mark.parametrize("bad", [0, -1, 2.5, "8", True])
def test_receiver_for_refuses_a_bad_decode_batch_for_every_chain(meta, bad):
    """receiver_for (public, also the real-time receiver's factory) names a bad decode_batch for the
    DPSK chain too, as for SCPPM; it accepted any value there silently (the DPSK receiver takes none)."""
    from modem.errors import ConfigError
    from modem.offline import receiver_for
    with pytest.raises(ConfigError, match=f"decode_batch must be an integer >= 1.*got {bad!r}"):
        receiver_for(meta, decode_batch=bad)
    assert receiver_for(meta, decode_batch=3) is not None
