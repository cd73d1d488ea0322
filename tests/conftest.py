"""Shared fixtures: the reference fixture file and the digits split (loaded once per session)."""

import os
from pathlib import Path

import pytest
import torch

FIXTURES = Path(__file__).parent / "fixtures"
REFERENCE = FIXTURES / "reference"


@pytest.fixture(scope="session")
def reference():
    """Cases, parameter counts and shapes recorded from the original BICLab code (see fixtures/reference)."""
    return torch.load(REFERENCE / "sdt_reference.pt", weights_only=True)


@pytest.fixture(scope="session")
def digits():
    from spikeforge.model.data import load_digits_split

    return load_digits_split()


@pytest.fixture(scope="session")
def qmodel8():
    """The embedded model quantized to 8-bit weights."""
    from spikeforge.model import load_embedded
    from spikeforge.model.quantize import quantize

    return quantize(load_embedded(), 8)


def pytest_addoption(parser):
    parser.addoption("--waves", action="store_true", help="dump waveforms from the cocotb benches (build/sim/... or $SPIKEFORGE_BUILD_DIR)")


@pytest.fixture(scope="session")
def waves(request):
    return request.config.getoption("--waves")


def need_simulator(simulator: str) -> None:
    """Skip a test when ``simulator`` is missing here; under CI (which installs both) fail instead."""
    from spikeforge.sim.runner import simulator_missing

    missing = simulator_missing(simulator)
    if missing:
        if os.environ.get("CI"):
            pytest.fail(missing)
        pytest.skip(missing)
