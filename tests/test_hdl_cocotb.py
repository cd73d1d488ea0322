"""Every block's Verilog on Icarus and Verilator through cocotb: at least 1000 random transactions
with random idle cycles and back-pressure, two parameterisations each, scored bit for bit against
the golden op functions (``spikeforge.model.golden``)."""

import pytest

from spikeforge.sim.runner import SIMULATORS, run_cocotb
from spikeforge.sim.scenarios import BENCH_CONFIGS, make_scenario

from conftest import need_simulator

CASES = [(block, k) for block, configs in BENCH_CONFIGS.items() for k in range(len(configs))]
TRANSACTIONS = 1000


@pytest.mark.parametrize("simulator", SIMULATORS)
@pytest.mark.parametrize("block,config", CASES, ids=[f"{b}-{k}" for b, k in CASES])
def test_block_on_simulator_equals_golden(simulator, block, config, waves, tmp_path_factory):
    need_simulator(simulator)
    params = BENCH_CONFIGS[block][config]
    sc = make_scenario(block, params, transactions=TRANSACTIONS, seed=10 + config)
    assert sc.transactions >= TRANSACTIONS
    result = run_cocotb(sc, simulator, idle=0.25, stall=0.25, seed=config, waves=waves)
    assert result["beats"] == {port: len(beats) for port, beats in sc.expected.items()}
    # With random stalls on both sides, the run takes more cycles than beats.
    assert result["cycles"] > max(len(b) for b in sc.expected.values())


@pytest.mark.parametrize("simulator", SIMULATORS)
def test_cocotb_bench_fails_on_a_wrong_expectation(simulator):
    """A corrupted golden expectation must fail the cocotb run (the bench can fail)."""
    need_simulator(simulator)
    sc = make_scenario("lif_array", BENCH_CONFIGS["lif_array"][0], transactions=50, seed=2)
    sc.expected["o"][17]["v"][1] += 1
    with pytest.raises(AssertionError, match="beat 17 differs from the golden model"):
        run_cocotb(sc, simulator)
