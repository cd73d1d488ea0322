"""Lane reducers: integer max-pool, OR-pool and token sum (GAP) over sequences of P-lane beats."""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Shape, Signal, signed, unsigned
from amaranth.lib import data, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from .params import check_ints, check_memories, refuse

__all__ = ["LaneReducer", "MaxPool", "OrPool", "TokenSum", "pool3x3s2_windows"]


def pool3x3s2_windows(h: int, w: int) -> list[list[tuple[int, int]]]:
    """The tap schedule of a 3x3 / stride 2 / padding 1 pool on an ``h x w`` map.

    One list per output position (row-major), holding the in-map input positions ``(y, x)`` of
    its window; padding taps are left out (they never win a max). The sequencer streams these
    taps into a :class:`MaxPool` or :class:`OrPool`, ``first`` on a window's first tap and
    ``last`` on its final one.
    """
    windows = []
    for oy in range((h - 1) // 2 + 1):
        for ox in range((w - 1) // 2 + 1):
            windows.append([(y, x) for y in range(2 * oy - 1, 2 * oy + 2) for x in range(2 * ox - 1, 2 * ox + 2)
                            if 0 <= y < h and 0 <= x < w])
    return windows


class LaneReducer(wiring.Component):
    """Reduces sequences of P-lane beats lane by lane with ``op`` ("max", "or" or "add").

    Each channel group has its own partial result (a ``group_capacity``-deep memory, one
    read-modify-write per cycle), so sequences of different groups may interleave. A beat with
    ``first`` starts a new sequence for its group; a beat with ``last`` emits ``reduce(sequence)``.

    Ports
    -----
    ``i``: ``In(stream.Signature({"x": P x in_shape, "group", "first", "last"}))``
    ``o``: ``Out(stream.Signature({"y": P x out_shape, "group"}))``, one beat per sequence

    Cycle cost: one beat per cycle (full throughput), latency 1 cycle.
    """

    OPS = ("max", "or", "add")

    def __init__(self, op: str, lanes: int = 16, in_shape=signed(16), out_shape=None, group_capacity: int = 4):
        if op not in self.OPS:
            refuse(self, f"op must be one of {self.OPS}, got {op!r}")
        check_ints(self, lanes=(lanes, 1), group_capacity=(group_capacity, 1))
        self.op, self.lanes, self.group_capacity = op, lanes, group_capacity
        self.in_shape = in_shape
        self.out_shape = in_shape if out_shape is None else out_shape
        check_memories(self, partials=(group_capacity, lanes * Shape.cast(self.out_shape).width))
        groups = range(group_capacity)
        super().__init__({
            "i": In(stream.Signature(data.StructLayout({
                "x": data.ArrayLayout(self.in_shape, lanes), "group": groups, "first": 1, "last": 1}))),
            "o": Out(stream.Signature(data.StructLayout({
                "y": data.ArrayLayout(self.out_shape, lanes), "group": groups}))),
        })

    def elaborate(self, platform):
        m = Module()
        out_layout = data.ArrayLayout(self.out_shape, self.lanes)
        m.submodules.partials = partials = memory.Memory(shape=out_layout, depth=self.group_capacity, init=[])
        rd, wr = partials.read_port(domain="comb"), partials.write_port()
        m.d.comb += [rd.addr.eq(self.i.payload.group), wr.addr.eq(self.i.payload.group)]

        result = Signal(out_layout)
        for lane in range(self.lanes):
            x, acc = self.i.payload.x[lane], rd.data[lane]
            if self.op == "max":
                combined = Mux(x > acc, x, acc)
            elif self.op == "or":
                combined = x | acc
            else:
                combined = acc + x
            m.d.comb += result[lane].eq(Mux(self.i.payload.first, x, combined))

        m.d.comb += [self.i.ready.eq(~self.o.valid | self.o.ready), wr.data.eq(result)]
        with m.If(self.o.ready):
            m.d.sync += self.o.valid.eq(0)
        with m.If(self.i.valid & self.i.ready):
            with m.If(self.i.payload.last):
                m.d.sync += [self.o.valid.eq(1), self.o.payload.y.eq(result),
                             self.o.payload.group.eq(self.i.payload.group)]
            with m.Else():
                m.d.comb += wr.en.eq(1)
        return m


class MaxPool(LaneReducer):
    """Integer max over pooling windows of multi-bit membranes (``golden.max_pool``): a
    :class:`LaneReducer` with ``op="max"`` on signed ``value_bits`` lanes; taps from
    :func:`pool3x3s2_windows`."""

    def __init__(self, lanes: int = 16, value_bits: int = 16, group_capacity: int = 4):
        self.value_bits = value_bits
        super().__init__("max", lanes, signed(value_bits), group_capacity=group_capacity)


class OrPool(LaneReducer):
    """Max-pool of binary spike maps, which is an OR over the window (``golden.or_pool``): a
    :class:`LaneReducer` with ``op="or"`` on 1-bit lanes; taps from :func:`pool3x3s2_windows`."""

    def __init__(self, lanes: int = 16, group_capacity: int = 4):
        super().__init__("or", lanes, unsigned(1), group_capacity=group_capacity)


class TokenSum(LaneReducer):
    """Global average pooling without the division (``golden.token_sum``): per channel, the sum of
    ``u_bits`` membranes over N tokens into ``sum_bits`` (``first`` on token 0, ``last`` on N - 1).
    Token-outer, group-inner beat order is allowed (each group keeps its own partial sum)."""

    def __init__(self, lanes: int = 16, u_bits: int = 16, sum_bits: int = 24, group_capacity: int = 4):
        if sum_bits < u_bits:
            refuse(self, f"sum_bits {sum_bits} is narrower than u_bits {u_bits}")
        self.u_bits, self.sum_bits = u_bits, sum_bits
        super().__init__("add", lanes, signed(u_bits), signed(sum_bits), group_capacity=group_capacity)
