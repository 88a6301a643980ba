# SPDX-License-Identifier: Apache-2.0
import numpy as np
import pytest

from modem import backend

SEED = 20240601


def pytest_addoption(parser):
    parser.addoption("--seed", type=int, default=SEED, help="base seed of the random tests")


@pytest.fixture
def rng(request):
    return np.random.default_rng(request.config.getoption("--seed"))


@pytest.fixture(params=["numpy", pytest.param("cupy", marks=pytest.mark.gpu)])
def xp(request):
    """Array module of the backend under test; the GPU half skips cleanly without a GPU."""
    if request.param == "cupy":
        if not backend.gpu_available():
            pytest.skip(f"GPU backend unavailable: {backend.unavailable_reason()}")
        return backend.xp_for("gpu")
    return np
