"""Event-driven cost of SpikeEncoder + SparseAccumulator: cycles = max(events, 1) * ceil(C_out / P)
+ SYNAPTIC_LATENCY for a vector, so work grows with spikes, not with the vector length."""

import random

import pytest

from spikeforge.hdl import SynapticEngine
from spikeforge.sim.cycles import SYNAPTIC_LATENCY, firing_rate_table, vector_cycles


@pytest.mark.parametrize("lanes,c_in,c_out", [(1, 8, 3), (4, 16, 10), (16, 64, 64), (16, 64, 16), (64, 32, 100)])
def test_vector_cycles_follow_the_event_driven_cost(lanes, c_in, c_out):
    rng = random.Random(lanes * 1000 + c_in)
    n_groups = -(-c_out // lanes)
    for rate in (0.0, 0.05, 0.25, 1.0, rng.random()):
        spikes = [int(rng.random() < rate) for _ in range(c_in)]
        engine = SynapticEngine(lanes=lanes, in_capacity=c_in, group_capacity=n_groups, chunk_width=c_in)
        events = sum(spikes)
        assert vector_cycles(engine, [spikes], n_groups) == max(events, 1) * n_groups + SYNAPTIC_LATENCY


def test_all_zero_chunks_cost_one_cycle_each_not_one_per_bit():
    engine = SynapticEngine(lanes=4, in_capacity=64, group_capacity=1, chunk_width=16)
    silent = vector_cycles(engine, [[0] * 64], 1)
    engine = SynapticEngine(lanes=4, in_capacity=64, group_capacity=1, chunk_width=16)
    one = vector_cycles(engine, [[0] * 63 + [1]], 1)
    assert silent == one == 1 * 1 + SYNAPTIC_LATENCY + 3  # 4 chunks: 3 extra chunk cycles, no per-bit cost


def test_cycles_grow_with_firing_rate_and_stay_near_the_bound():
    rows = firing_rate_table(lanes=16, c_in=64, c_out=64, vectors=16)
    cycles = [r["cycles"] for r in rows]
    assert cycles == sorted(cycles) and cycles[-1] > 10 * cycles[0]
    for r in rows:
        if r["events"]:
            assert r["bound"] <= r["cycles"] <= r["bound"] + SYNAPTIC_LATENCY + r["vectors"]
