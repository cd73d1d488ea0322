"""LIFArray: P integer leaky integrate-and-fire neurons updated per cycle."""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal, signed
from amaranth.lib import data, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from .params import check_ints, check_memories

__all__ = ["LIFArray", "lif_update"]


def lif_update(m: Module, x, v, threshold, shift: int, v_bits: int):
    """Combinational integer LIF step for one neuron (the arithmetic of ``golden.lif``)::

        H = clamp(V + ((X - V) >> shift), v_bits)    # arithmetic shift, saturating
        S = H >= threshold;  V' = 0 if S else H       # hard reset

    Returns ``(S, V')`` as new signals. Adders, a shifter by a constant and comparators only. For
    ``shift = 1`` (tau = 2) ``H`` is one adder, ``(X + V) >> 1``, which equals
    ``V + ((X - V) >> 1)`` for all integers (both are ``floor((X + V) / 2)``): the membrane's
    update path is an adder, the saturation and the threshold comparator.
    """
    lo, hi = -(1 << (v_bits - 1)), (1 << (v_bits - 1)) - 1
    h = Signal(signed(max(len(x), len(v)) + 2))
    hc = Signal(signed(v_bits))
    spike = Signal()
    v_next = Signal(signed(v_bits))
    m.d.comb += [
        h.eq((x + v) >> 1 if shift == 1 else v + ((x - v) >> shift)),
        hc.eq(Mux(h > hi, hi, Mux(h < lo, lo, h))),
        spike.eq(hc >= threshold),
        v_next.eq(Mux(spike, 0, hc)),
    ]
    return spike, v_next


class LIFArray(wiring.Component):
    """P LIF neurons per cycle: input current, leak shift, per-channel threshold, hard reset,
    saturating membrane. Equals one time step of :func:`spikeforge.model.golden.lif`.

    The membrane state lives outside (the sequencer's membrane buffer): each beat brings the
    currents ``x`` and membranes ``v`` of P neurons and gets back their spikes and new membranes.
    Thresholds are per output channel: a threshold memory holds one P-wide row per channel group.

    Parameters
    ----------
    lanes : int
        P neurons per beat.
    in_bits : int
        Signed width of the input current (the accumulator width).
    v_bits : int
        Signed membrane width; ``H`` saturates to it. Thresholds are stored in ``v_bits`` too.
    group_capacity : int
        Threshold rows (channel capacity ``P * group_capacity``).
    shift : int
        Leak shift k = log2(tau) (1 for tau = 2), fixed at generation.

    Ports
    -----
    ``i``: ``In(stream.Signature({"x": P x signed(in_bits), "v": P x signed(v_bits), "group"}))``
    ``o``: ``Out(stream.Signature({"spikes": P bits, "v": P x signed(v_bits), "group"}))``
    ``threshold_write``: ``In(stream.Signature({"addr", "data": P x signed(v_bits)}))``, always ready

    Cycle cost: one beat per cycle (full throughput), latency 1 cycle.
    """

    def __init__(self, lanes: int = 16, in_bits: int = 16, v_bits: int = 16, group_capacity: int = 4,
                 shift: int = 1):
        check_ints(self, lanes=(lanes, 1), in_bits=(in_bits, 2), v_bits=(v_bits, 2),
                   group_capacity=(group_capacity, 1), shift=(shift, 0))
        check_memories(self, thresholds=(group_capacity, lanes * v_bits), membranes=(group_capacity, lanes * v_bits))
        self.lanes, self.in_bits, self.v_bits = lanes, in_bits, v_bits
        self.group_capacity, self.shift = group_capacity, shift
        membranes = data.ArrayLayout(signed(v_bits), lanes)
        super().__init__({
            "i": In(stream.Signature(data.StructLayout({
                "x": data.ArrayLayout(signed(in_bits), lanes), "v": membranes, "group": range(group_capacity)}))),
            "o": Out(stream.Signature(data.StructLayout({
                "spikes": lanes, "v": membranes, "group": range(group_capacity)}))),
            "threshold_write": In(stream.Signature(data.StructLayout({
                "addr": range(group_capacity), "data": membranes}))),
        })

    def threshold_rows(self, thresholds) -> list[tuple[int, list[int]]]:
        """``(group, P thresholds)`` rows for per-channel integer ``thresholds [C]``."""
        lo, hi = -(1 << (self.v_bits - 1)), (1 << (self.v_bits - 1)) - 1
        if len(thresholds) > self.lanes * self.group_capacity:
            raise ValueError(f"LIFArray: {len(thresholds)} channels exceed lanes x group_capacity "
                             f"= {self.lanes * self.group_capacity}")
        for c, th in enumerate(thresholds):
            if not lo <= int(th) <= hi:
                raise ValueError(f"LIFArray: threshold of channel {c} = {int(th)} does not fit v_bits "
                                 f"{self.v_bits} [{lo}, {hi}]")
        n = len(thresholds)
        return [(g, [int(thresholds[c]) if c < n else hi for c in range(g * self.lanes, (g + 1) * self.lanes)])
                for g in range(-(-n // self.lanes))]

    def elaborate(self, platform):
        m = Module()
        m.submodules.thresholds = th_mem = memory.Memory(
            shape=data.ArrayLayout(signed(self.v_bits), self.lanes), depth=self.group_capacity, init=[])
        wp = th_mem.write_port()
        m.d.comb += [wp.addr.eq(self.threshold_write.payload.addr), wp.data.eq(self.threshold_write.payload.data),
                     wp.en.eq(self.threshold_write.valid), self.threshold_write.ready.eq(1)]
        rd = th_mem.read_port(domain="comb")
        m.d.comb += rd.addr.eq(self.i.payload.group)

        spikes = Signal(self.lanes)
        v_next = Signal(data.ArrayLayout(signed(self.v_bits), self.lanes))
        for lane in range(self.lanes):
            s, v = lif_update(m, self.i.payload.x[lane], self.i.payload.v[lane], rd.data[lane],
                              self.shift, self.v_bits)
            m.d.comb += [spikes[lane].eq(s), v_next[lane].eq(v)]

        m.d.comb += self.i.ready.eq(~self.o.valid | self.o.ready)
        with m.If(self.o.ready):
            m.d.sync += self.o.valid.eq(0)
        with m.If(self.i.valid & self.i.ready):
            m.d.sync += [self.o.valid.eq(1), self.o.payload.spikes.eq(spikes), self.o.payload.v.eq(v_next),
                         self.o.payload.group.eq(self.i.payload.group)]
        return m
