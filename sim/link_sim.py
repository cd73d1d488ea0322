"""Amaranth-simulator harness of the host link (:class:`~spikeforge.hdl.host_link.HostLink`).

:class:`StubAccelerator` stands in for the accelerator's ports (so the link's command logic is
checked in seconds, without the whole overlay): it records write beats, answers the read map with
logits and counters the test chooses, and after ``start`` stays busy for ``run_cycles`` cycles.
:func:`exchange` plays wire bytes into the link's ``rx`` stream and collects the ``tx`` bytes.
The whole board, accelerator included, is simulated on Verilator by the virtual board (``sim://``).
"""

from __future__ import annotations

import random

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from spikeforge.firmware.program import HardwareConfig
from spikeforge.firmware.memory_map import READ_MAP, write_layout
from spikeforge.hdl.host_link import HostLink

from .amaranth_streams import run_amaranth, stream_send

__all__ = ["StubAccelerator", "LinkHarness", "exchange"]


#: What the stub answers for results read while it runs (a controller that replies before the
#: run ends sends it).
POISON = 0xDEADBEEF


class StubAccelerator(wiring.Component):
    """The accelerator's port behaviour: ``write`` always ready; ``start`` -> busy for
    ``run_cycles`` cycles -> done (with the status ``error`` bit when ``fail``); read map: logits
    ``logits``, counter 0 (cycles) = ``run_cycles`` (:data:`POISON` while busy), status;
    ``read_data`` answers the previous cycle's ``read_addr``, as the accelerator's does."""

    def __init__(self, hw: HardwareConfig, logits: list[int], run_cycles: int = 20, fail: bool = False):
        self.logits, self.run_cycles, self.fail = logits, run_cycles, fail
        super().__init__({"write": In(stream.Signature(write_layout(hw))), "start": In(1),
                          "read_addr": In(16), "read_data": Out(32)})

    def elaborate(self, platform):
        m = Module()
        busy, done = Signal(), Signal()
        left = Signal(range(self.run_cycles + 1))
        m.d.comb += self.write.ready.eq(1)
        with m.If(self.start):
            m.d.sync += [busy.eq(1), done.eq(0), left.eq(self.run_cycles)]
        with m.Elif(busy):
            m.d.sync += left.eq(left - 1)
            with m.If(left == 1):
                m.d.sync += [busy.eq(0), done.eq(1)]
        logits = Array(Const(v & 0xFFFFFFFF, 32) for v in self.logits or [0])
        ra = self.read_addr
        m.d.sync += self.read_data.eq(0)    # synchronous, as the accelerator: one cycle of latency
        with m.If(ra < max(1, len(self.logits))):
            m.d.sync += self.read_data.eq(Mux(busy, POISON, logits[ra]))
        with m.Elif(ra == READ_MAP["counters"]):
            m.d.sync += self.read_data.eq(Mux(busy, POISON, self.run_cycles))
        with m.Elif(ra == READ_MAP["status"]):
            m.d.sync += self.read_data.eq(Cat(busy, done, done & self.fail))
        return m


class LinkHarness(wiring.Component):
    """:class:`HostLink` wired to a :class:`StubAccelerator`; ``rx`` / ``tx`` are the link's byte streams."""

    def __init__(self, hw: HardwareConfig, hello: bytes, **stub):
        self.link = HostLink(hw, hello)
        self.stub = StubAccelerator(hw, **stub)
        super().__init__({"rx": In(stream.Signature(8)), "tx": Out(stream.Signature(self.link.tx.payload.shape())),
                          "resets": Out(1)})

    def elaborate(self, platform):
        m = Module()
        m.submodules.link, m.submodules.stub = link, stub = self.link, self.stub
        wiring.connect(m, wiring.flipped(self.rx), link.rx)
        wiring.connect(m, link.tx, wiring.flipped(self.tx))
        wiring.connect(m, link.write, stub.write)
        m.d.comb += [stub.start.eq(link.start), stub.read_addr.eq(link.read_addr), link.read_data.eq(stub.read_data),
                     self.resets.eq(link.accel_reset)]
        return m


def exchange(harness: LinkHarness, sends: list[tuple[bytes, int]], idle: float = 0.0, stall: float = 0.0,
             seed: int = 0, max_cycles: int = 200_000) -> dict:
    """Play ``sends``: each ``(wire bytes, replies)`` is sent after the previous one's ``replies``
    reply frames came back (as a host waits for its answer); collects everything the link sent.

    Returns ``{"tx": bytes, "writes": [(space, addr, data)], "starts": n, "reset_cycles": n, "cycles": n}``.
    """
    rng = random.Random(seed)
    out = {"tx": bytearray(), "writes": [], "starts": 0, "reset_cycles": 0, "cycles": 0}
    link = harness.link
    frames = 0
    wanted = [sum(n for _, n in sends[:i]) for i in range(len(sends) + 1)]

    async def drive(ctx):
        for i, (wire, _) in enumerate(sends):
            while frames < wanted[i]:
                await ctx.tick()
            await stream_send(ctx, harness.rx, wire, rng, idle)

    async def main(ctx):
        nonlocal frames
        while frames < wanted[-1]:
            ready = not (stall and rng.random() < stall)
            ctx.set(harness.tx.ready, ready)
            _, _, valid, payload, wv, wp, start, rst = await ctx.tick().sample(
                harness.tx.valid, harness.tx.payload, link.write.valid, link.write.payload, link.start,
                harness.resets)
            if valid and ready:
                out["tx"].append(payload.data)
                frames += payload.last
            if wv:
                out["writes"].append((wp.space, wp.addr, wp.data))
            out["starts"] += start
            out["reset_cycles"] += rst
            out["cycles"] += 1
            if out["cycles"] > max_cycles:
                raise TimeoutError(f"host link: {frames} of {wanted[-1]} replies after {max_cycles} cycles; "
                                   f"got {bytes(out['tx'])[:64].hex()}")

    run_amaranth(harness, main, drive)
    out["tx"] = bytes(out["tx"])
    return out
