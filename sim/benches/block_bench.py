"""The cocotb bench for every block: plays a scenario file and scores the outputs against the golden
model's expected beats (computed by :mod:`spikeforge.sim.scenarios` with ``spikeforge.model.golden``).

Environment (set by :func:`spikeforge.sim.runner.run_cocotb`): ``SPIKEFORGE_SCENARIO`` (JSON file:
block, params, config, writes, inputs, expected, idle, stall, seed) and ``SPIKEFORGE_RESULT``
(JSON file written at the end: cycles, beats per port, error).
"""

from __future__ import annotations

import json
import os
import random

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge, ReadOnly

from spikeforge.hdl import make_block
from spikeforge.sim.cocotb_streams import StreamSink, StreamSource, port, reset
from spikeforge.sim.payload import pack, payload_shape
from spikeforge.sim.scoreboard import Scoreboard


@cocotb.test()
async def block_matches_golden(dut):
    spec = json.loads(open(os.environ["SPIKEFORGE_SCENARIO"]).read())
    result_path = os.environ["SPIKEFORGE_RESULT"]
    block = make_block(spec["block"], elaborated=False, **spec["params"])
    seed, idle, stall = spec["seed"], spec["idle"], spec["stall"]
    result = {"cycles": None, "beats": None, "error": None}

    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    await FallingEdge(dut.clk)  # writes before the simulation has run can be lost (seen on Icarus)
    sources = {name: StreamSource(dut, name, payload_shape(block, name), random.Random(seed * 31 + k), idle)
               for k, name in enumerate(spec["inputs"])}
    sinks = {name: StreamSink(dut, name, payload_shape(block, name), random.Random(seed * 17 + k), stall)
             for k, name in enumerate(spec["expected"])}
    for name in spec["writes"]:
        port(dut, name, "valid").value = 0
    await reset(dut)
    for name, value in spec["config"].items():
        getattr(dut, name).value = value
    for name, beats in spec["writes"].items():  # memory loads through always-ready ports
        shape = payload_shape(block, name)
        for beat in beats:
            port(dut, name, "payload").value = pack(shape, beat)
            port(dut, name, "valid").value = 1
            await FallingEdge(dut.clk)
        port(dut, name, "valid").value = 0

    for name, source in sources.items():
        cocotb.start_soon(source.send(spec["inputs"][name]))
    board = Scoreboard(spec["block"], spec["expected"])
    total = sum(len(v) for v in spec["inputs"].values()) + sum(len(v) for v in spec["expected"].values())
    limit = 100 * total + 1000
    cycles = 0
    try:
        while not board.done():
            for sink in sinks.values():
                sink.offer_ready()
            await ReadOnly()
            for name, sink in sinks.items():
                beat = sink.take()
                if beat is not None:
                    board.observe(name, beat)
            cycles += 1
            if cycles > limit:
                raise TimeoutError(f"{spec['block']}: no progress after {limit} cycles; beats seen {board.seen}")
            await FallingEdge(dut.clk)
        result["cycles"], result["beats"] = cycles, board.finish()
    except Exception as exc:  # recorded for the pytest side, then re-raised for cocotb's verdict
        result["error"] = f"{type(exc).__name__}: {exc}"
        raise
    finally:
        with open(result_path, "w") as f:
            json.dump(result, f)
