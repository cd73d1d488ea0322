"""Cycle counts of the event-driven datapath (SpikeEncoder + SparseAccumulator), measured in
Amaranth's simulator without stalls: the numbers behind the event-driven claim.

:func:`vector_cycles` times one vector alone, from the cycle its first chunk is offered to the
cycle its final result beat transfers (both counted). The design's cost model is
``max(events, 1) * ceil(C_out / P) + SYNAPTIC_LATENCY`` for a vector that fits one chunk.
"""

from __future__ import annotations

from amaranth.sim import Simulator

from spikeforge.hdl import SynapticEngine

__all__ = ["vector_cycles", "SYNAPTIC_LATENCY", "firing_rate_table"]

#: Cycles a one-chunk vector costs beyond ``max(events, 1) * n_groups`` (measured, and asserted by
#: tests/test_hdl_cycles.py): chunk offered and loaded (1), the encoder holding an address until its
#: successor is known (1), event register (1), the accumulator's weight row address (1), weight read
#: (1), shifted weight (1), accumulate into the result register (1). Back to back, with
#: n_groups > 1, vectors overlap it (see ``firing_rate_table``).
SYNAPTIC_LATENCY = 7


def vector_cycles(engine: SynapticEngine, vectors: list[list[int]], n_groups: int) -> int:
    """Cycles to push ``vectors`` (0/1 lists) back to back through ``engine`` until the last result,
    with the output always ready and the input always valid. Weights are irrelevant to timing
    (memories stay zero)."""
    chunks = [c for v in vectors for c in engine.encoder.chunk_beats(v)]
    want = len(vectors) * n_groups
    out = {}

    async def bench(ctx):
        ctx.set(engine.n_groups, n_groups)
        ctx.set(engine.result.ready, 1)
        cycles, sent, got = 0, 0, 0
        while got < want:
            if sent < len(chunks):
                ctx.set(engine.chunks.valid, 1)
                ctx.set(engine.chunks.payload, chunks[sent])
            else:
                ctx.set(engine.chunks.valid, 0)
            _, _, c_ready, r_valid = await ctx.tick().sample(engine.chunks.ready, engine.result.valid)
            cycles += 1
            if sent < len(chunks) and c_ready:
                sent += 1
            if r_valid:
                got += 1
        out["cycles"] = cycles

    sim = Simulator(engine)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    return out["cycles"]


def firing_rate_table(lanes: int = 16, c_in: int = 64, c_out: int = 64, rates=(0.0, 0.05, 0.25, 1.0),
                      vectors: int = 32, seed: int = 0) -> list[dict]:
    """Measured cycles per vector at each firing rate (``vectors`` random vectors back to back)
    next to the event-driven bound ``events x ceil(C_out / P)``."""
    import random

    rng = random.Random(seed)
    n_groups = -(-c_out // lanes)
    rows = []
    for rate in rates:
        vecs = [[int(rng.random() < rate) for _ in range(c_in)] for _ in range(vectors)]
        events = sum(map(sum, vecs))
        engine = SynapticEngine(lanes=lanes, in_capacity=c_in, group_capacity=n_groups, chunk_width=c_in)
        cycles = vector_cycles(engine, vecs, n_groups)
        bound = events * n_groups
        rows.append({"rate": rate, "lanes": lanes, "c_in": c_in, "c_out": c_out, "vectors": vectors,
                     "events": events, "bound": bound, "cycles": cycles,
                     "cycles_per_vector": cycles / vectors,
                     "overhead_per_vector": (cycles - bound) / vectors})
    return rows
