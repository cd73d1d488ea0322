"""ShortcutAdder: the membrane shortcut ``U + X`` on P lanes, with overflow detection."""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from .params import check_ints

__all__ = ["ShortcutAdder"]


class ShortcutAdder(wiring.Component):
    """Membrane shortcut (``golden.shortcut_add``): ``u' = u + x`` lane by lane, both at the residual
    stream's scale, into ``u_bits``.

    A sum that does not fit ``u_bits`` is never wrapped silently: it sets the sticky ``overflow``
    output (cleared by reset); the compiler's width analysis guarantees it stays low for an
    accepted model.

    Ports
    -----
    ``i``: ``In(stream.Signature({"u": P x signed(u_bits), "x": P x signed(x_bits)}))``
    ``o``: ``Out(stream.Signature({"u": P x signed(u_bits)}))``
    ``overflow``: ``Out(1)``, sticky

    Cycle cost: one beat per cycle (full throughput), latency 1 cycle.
    """

    def __init__(self, lanes: int = 16, u_bits: int = 16, x_bits: int = 16):
        check_ints(self, lanes=(lanes, 1), u_bits=(u_bits, 2), x_bits=(x_bits, 2))
        self.lanes, self.u_bits, self.x_bits = lanes, u_bits, x_bits
        stream_u = data.ArrayLayout(signed(u_bits), lanes)
        super().__init__({
            "i": In(stream.Signature(data.StructLayout({"u": stream_u, "x": data.ArrayLayout(signed(x_bits), lanes)}))),
            "o": Out(stream.Signature(data.StructLayout({"u": stream_u}))),
            "overflow": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        lo, hi = -(1 << (self.u_bits - 1)), (1 << (self.u_bits - 1)) - 1
        overflow = Signal()
        sums = []
        for lane in range(self.lanes):
            s = Signal(signed(max(self.u_bits, self.x_bits) + 1))
            m.d.comb += s.eq(self.i.payload.u[lane] + self.i.payload.x[lane])
            sums.append(s)
        m.d.comb += overflow.eq(Cat(*[(s < lo) | (s > hi) for s in sums]).any())

        m.d.comb += self.i.ready.eq(~self.o.valid | self.o.ready)
        with m.If(self.o.ready):
            m.d.sync += self.o.valid.eq(0)
        with m.If(self.i.valid & self.i.ready):
            m.d.sync += self.o.valid.eq(1)
            for lane, s in enumerate(sums):
                m.d.sync += self.o.payload.u[lane].eq(s)
            with m.If(overflow):
                m.d.sync += self.overflow.eq(1)
        return m
