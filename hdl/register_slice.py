"""RegisterSlice: a full-throughput stream register that cuts the combinational valid/ready path."""

from __future__ import annotations

from amaranth.hdl import Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["RegisterSlice"]


class RegisterSlice(wiring.Component):
    """A two-entry skid buffer (an AXI4-Stream "register slice"): ``o`` carries the beats of ``i`` in
    order, unchanged.

    Both ``o.valid`` / ``o.payload`` and ``i.ready`` come from flip-flops, so no combinational path
    crosses the slice in either direction: what places it between two engines splits their timing
    paths (the handshake chain of a pipeline is the usual critical path).

    Ports
    -----
    ``i``: ``In(stream.Signature(shape))``, ``o``: ``Out(stream.Signature(shape))``.

    Cycle cost
    ----------
    Latency 1 cycle; one beat per cycle when ``o`` is never back-pressured. A stall of ``o`` is
    absorbed by the second (skid) entry, and ``i.ready`` falls one cycle later.
    """

    def __init__(self, shape):
        super().__init__({"i": In(stream.Signature(shape)), "o": Out(stream.Signature(shape))})

    def elaborate(self, platform):
        m = Module()
        skid = Signal.like(self.i.payload)
        skid_valid = Signal()
        m.d.comb += self.i.ready.eq(~skid_valid)
        take = self.i.valid & ~skid_valid
        with m.If(~self.o.valid | self.o.ready):           # the output register is free this cycle
            with m.If(skid_valid):
                m.d.sync += [self.o.payload.eq(skid), self.o.valid.eq(1), skid_valid.eq(0)]
            with m.Else():
                m.d.sync += [self.o.payload.eq(self.i.payload), self.o.valid.eq(take)]
        with m.Elif(take):                                  # output stalled: park the beat
            m.d.sync += [skid.eq(self.i.payload), skid_valid.eq(1)]
        return m
