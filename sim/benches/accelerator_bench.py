"""cocotb bench of the whole accelerator: loads a compiled model through the ``write`` port (the
port the host link drives), then per image loads its pixels, pulses ``start``, waits for ``done``
and reads logits and counters through ``read_addr`` / ``read_data``.

Environment (set by :func:`spikeforge.sim.accelerator_sim.run_rtl`): ``SPIKEFORGE_JOB`` (JSON:
``load`` and per-image ``images`` write beats as the write port's payload bits
(:func:`spikeforge.firmware.memory_map.write_word`), ``reads``
addresses, ``timeout_cycles``) and ``SPIKEFORGE_RESULT`` (JSON written at the end; with
``loop_seconds`` and ``loop_clock_cycles``, the wall time and clock cycles of the image loop).
"""

from __future__ import annotations

import json
import os
import sys
import time

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge, First, ReadOnly, RisingEdge, Timer
from cocotb.utils import get_sim_time

from spikeforge.sim.cocotb_streams import reset


def _signed32(v: int) -> int:
    return v - (1 << 32) if v & (1 << 31) else v


@cocotb.test()
async def accelerator_runs_program(dut):
    job = json.loads(open(os.environ["SPIKEFORGE_JOB"]).read())
    out = {"images": [], "error": None}
    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    await FallingEdge(dut.clk)
    dut.write__valid.value = 0
    dut.start.value = 0
    dut.read_addr.value = 0
    await reset(dut)

    async def write(beats):
        for word in beats:
            dut.write__payload.value = word
            dut.write__valid.value = 1
            await FallingEdge(dut.clk)
        dut.write__valid.value = 0

    async def read(addr):   # the read port answers at the next clock edge
        dut.read_addr.value = addr
        await RisingEdge(dut.clk)
        await ReadOnly()
        v = dut.read_data.value.to_unsigned()
        await FallingEdge(dut.clk)
        return v

    try:
        await write(job["load"])
        t0, sim0 = time.time(), get_sim_time("ns")
        for k, beats in enumerate(job["images"]):
            await write(beats)
            dut.start.value = 1
            await FallingEdge(dut.clk)
            dut.start.value = 0
            timeout = Timer(10 * job["timeout_cycles"], unit="ns")   # no per-cycle Python callbacks
            fired = await First(RisingEdge(dut.done), timeout)
            if fired is timeout:
                raise TimeoutError(f"image {k}: no done after {job['timeout_cycles']} cycles")
            await FallingEdge(dut.clk)
            values = {}
            for name, addrs in job["reads"].items():
                values[name] = [await read(a) for a in addrs]
            values["logits"] = [_signed32(v) for v in values["logits"]]
            out["images"].append(values)
            print(f"image {k + 1}/{len(job['images'])} done ({time.time() - t0:.1f} s)", file=sys.stderr, flush=True)
        # Simulation speed of the image loop alone (no simulator start-up, no model load).
        out["loop_seconds"] = time.time() - t0
        out["loop_clock_cycles"] = round((get_sim_time("ns") - sim0) / 10)
    except Exception as exc:  # reported through the result file
        out["error"] = f"{type(exc).__name__}: {exc}"
    with open(os.environ["SPIKEFORGE_RESULT"], "w") as f:
        json.dump(out, f)
    assert out["error"] is None, out["error"]
