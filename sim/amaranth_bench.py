"""Plays a :class:`~spikeforge.sim.scenarios.Scenario` against a block in Amaranth's simulator.

The fast development loop: no Verilog, no external simulator. The same scenarios run on Icarus
and Verilator through cocotb (:mod:`spikeforge.sim.runner`).
"""

from __future__ import annotations

import random

from amaranth.hdl import Value

from .amaranth_streams import run_amaranth, stream_send
from .payload import payload_shape, unpack
from .scenarios import Scenario
from .scoreboard import Scoreboard

__all__ = ["run_scenario"]


def run_scenario(sc: Scenario, idle: float = 0.3, stall: float = 0.3, seed: int = 0, vcd: str | None = None,
                 max_cycles: int | None = None) -> dict:
    """Load, drive and check; returns ``{"cycles": ..., "beats": {port: n}}``. Raises on a mismatch."""
    dut = sc.component
    board = Scoreboard(sc.block, sc.expected)
    total_in = sum(len(v) for v in sc.inputs.values())
    limit = max_cycles or 100 * (total_in + sum(len(v) for v in sc.expected.values())) + 1000
    result = {}

    async def load(ctx):
        for name, value in sc.config.items():
            ctx.set(getattr(dut, name), value)
        for port, beats in sc.writes.items():
            stream = getattr(dut, port)
            for beat in beats:
                ctx.set(stream.payload, beat)
                ctx.set(stream.valid, 1)
                await ctx.tick()
            ctx.set(stream.valid, 0)

    def driver(port, k):
        async def drive(ctx):
            while not loaded:
                await ctx.tick()
            await stream_send(ctx, getattr(dut, port), sc.inputs[port], random.Random(seed * 31 + k), idle)
        return drive

    loaded = False

    async def main(ctx):
        nonlocal loaded
        await load(ctx)
        loaded = True
        rng = random.Random(seed * 17 + 5)
        ports = {port: (getattr(dut, port), payload_shape(dut, port)) for port in sc.expected}
        cycles = 0
        while not board.done():
            ready = {port: not (stall and rng.random() < stall) for port in ports}
            for port, (stream, _) in ports.items():
                ctx.set(stream.ready, ready[port])
            samples = await ctx.tick().sample(*[s for st, _ in ports.values() for s in (st.valid, Value.cast(st.payload))])
            for i, (port, (stream, shape)) in enumerate(ports.items()):
                valid, bits = samples[2 + 2 * i], samples[3 + 2 * i]
                if valid and ready[port]:
                    board.observe(port, unpack(shape, bits))
            cycles += 1
            if cycles > limit:
                raise TimeoutError(f"{sc.block}: no progress after {limit} cycles; beats seen {board.seen}")
        result["cycles"] = cycles
        result["beats"] = board.finish()

    run_amaranth(dut, main, *[driver(port, k) for k, port in enumerate(sc.inputs)], vcd=vcd)
    return result
