"""Stream driver and monitor for Amaranth's own simulator (fast development tests).

The cocotb equivalents for Icarus and Verilator are in :mod:`spikeforge.sim.cocotb_streams`.
Both insert random idle cycles (``idle``: probability a source withholds ``valid``) and random
back-pressure (``stall``: probability a sink withholds ``ready``).
"""

from __future__ import annotations

import random

from amaranth.sim import Simulator

__all__ = ["stream_send", "stream_collect", "run_amaranth"]


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


async def stream_collect(ctx, port, count: int, rng: random.Random | None = None, stall: float = 0.0,
                         on_beat=None) -> list:
    """Accept ``count`` beats from a stream port; returns their payloads (``ctx.get`` values)."""
    rng = rng or random.Random(1)
    beats = []
    while len(beats) < count:
        ready = not (stall and rng.random() < stall)
        ctx.set(port.ready, ready)
        _, _, valid, payload = await ctx.tick().sample(port.valid, port.payload)
        if ready and valid:
            beats.append(payload)
            if on_beat:
                on_beat(payload)
    ctx.set(port.ready, 0)
    return beats


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
