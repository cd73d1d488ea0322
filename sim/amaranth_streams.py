"""Stream driver and simulation runner for Amaranth's own simulator (fast development tests).

The cocotb equivalents for Icarus and Verilator are in :mod:`spikeforge.sim.cocotb_streams`.
Sources insert random idle cycles (``idle``: probability a source withholds ``valid``); the
sinks with random back-pressure are in :func:`spikeforge.sim.amaranth_bench.run_scenario`.
"""

from __future__ import annotations

import random

from amaranth.sim import Simulator

__all__ = ["stream_send", "run_amaranth"]


async def stream_send(ctx, port, payloads, rng: random.Random | None = None, idle: float = 0.0):
    """Drive ``payloads`` (values ``ctx.set`` accepts, e.g. dicts for structs) into a stream port."""
    rng = rng or random.Random(0)
    for payload in payloads:
        while idle and rng.random() < idle:
            await ctx.tick()
        ctx.set(port.valid, 1)
        ctx.set(port.payload, payload)
        while True:  # (a plain loop: a pending .until() is reported when a failing run is cut short)
            _, _, ready = await ctx.tick().sample(port.ready)
            if ready:
                break
        ctx.set(port.valid, 0)


def run_amaranth(dut, main, *background, vcd: str | None = None):
    """Run the async testbench ``main`` (and ``background`` ones, e.g. drivers) against ``dut`` on a
    1 MHz clock until ``main`` returns; ``vcd`` writes waveforms."""
    sim = Simulator(dut)
    sim.add_clock(1e-6)
    for tb in background:
        sim.add_testbench(tb, background=True)
    sim.add_testbench(main)
    if vcd:
        with sim.write_vcd(vcd):
            sim.run()
    else:
        sim.run()
