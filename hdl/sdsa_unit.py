"""SDSAUnit: spike-driven self-attention by AND gates, counters and an attention LIF."""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from .lif_array import lif_update
from .params import check_ints, check_memories

__all__ = ["SDSAUnit"]


class SDSAUnit(wiring.Component):
    """Spike-Driven Self-Attention for one time step at a time, P channels per cycle.

    Computes :func:`spikeforge.model.golden.sdsa` bit for bit::

        count[c] = sum over tokens n of (K AND V)[c, n]       # column sum: one counter per channel
        A[c]     = LIF(count[c] << 1, threshold 1, shift)      # attention LIF, membrane kept over T
        out[c, n] = Q[c, n] AND A[c]

    Three phases per time step, linear in tokens and channels (AND gates, counters, a comparator):

    1. ``kv`` beats (any order of tokens and channel groups; ``last`` on the time step's final
       beat): per lane ``count += K AND V`` (counter memory, read-modify-write in one cycle);
    2. fire: one cycle per channel group (``n_groups``): attention LIF, counters cleared;
    3. ``q`` beats (``last`` on the final one): ``out = Q AND A[group]``.

    A ``kv`` beat with ``t0`` set starts an inference: the attention membranes of that time step
    start from 0.

    Parameters
    ----------
    lanes : int
        P channels per beat.
    group_capacity : int
        Channel groups (channel capacity ``P * group_capacity``).
    token_capacity : int
        Largest token count N per time step (sets the counter width).
    shift : int
        Attention LIF leak shift (1: tau = 2).

    Ports
    -----
    ``kv``: ``In(stream.Signature({"k": P, "v": P, "group", "t0", "last"}))``
    ``q``: ``In(stream.Signature({"q": P, "group", "last"}))``, accepted only in phase 3
    ``o``: ``Out(stream.Signature({"spikes": P, "group", "last"}))``, one beat per ``q`` beat
    ``n_groups``: ``In``, channel groups in use

    Cycle cost per time step (no back-pressure): ``kv beats + n_groups + q beats``, i.e.
    ``(2 N + 1) * ceil(C / P)``.
    """

    def __init__(self, lanes: int = 16, group_capacity: int = 4, token_capacity: int = 256, shift: int = 1):
        check_ints(self, lanes=(lanes, 1), group_capacity=(group_capacity, 1),
                   token_capacity=(token_capacity, 1), shift=(shift, 0))
        self.lanes, self.group_capacity, self.token_capacity, self.shift = lanes, group_capacity, token_capacity, shift
        self.count_bits = token_capacity.bit_length()
        self.v_bits = (2 * token_capacity).bit_length() + 1  # attention membrane holds [0, 2N] unclamped
        check_memories(self, counts=(group_capacity, lanes * self.count_bits),
                       membranes=(group_capacity, lanes * self.v_bits), attention=(group_capacity, lanes))
        groups = range(group_capacity)
        super().__init__({
            "kv": In(stream.Signature(data.StructLayout(
                {"k": lanes, "v": lanes, "group": groups, "t0": 1, "last": 1}))),
            "q": In(stream.Signature(data.StructLayout({"q": lanes, "group": groups, "last": 1}))),
            "o": Out(stream.Signature(data.StructLayout({"spikes": lanes, "group": groups, "last": 1}))),
            "n_groups": In(range(1, group_capacity + 1), init=1),
        })

    def elaborate(self, platform):
        m = Module()
        p, g_cap = self.lanes, self.group_capacity
        m.submodules.counts = counts = memory.Memory(
            shape=data.ArrayLayout(unsigned(self.count_bits), p), depth=g_cap, init=[])
        m.submodules.membranes = membranes = memory.Memory(
            shape=data.ArrayLayout(signed(self.v_bits), p), depth=g_cap, init=[])
        m.submodules.attention = attention = memory.Memory(shape=p, depth=g_cap, init=[])
        cnt_rd, cnt_wr = counts.read_port(domain="comb"), counts.write_port()
        mem_rd, mem_wr = membranes.read_port(domain="comb"), membranes.write_port()
        att_rd, att_wr = attention.read_port(domain="comb"), attention.write_port()

        fire_group = Signal(range(g_cap))
        t0 = Signal()
        m.d.comb += [
            mem_rd.addr.eq(fire_group), mem_wr.addr.eq(fire_group),
            att_wr.addr.eq(fire_group), att_rd.addr.eq(self.q.payload.group),
        ]

        with m.If(self.o.ready):
            m.d.sync += self.o.valid.eq(0)

        with m.FSM():
            with m.State("COUNT"):
                m.d.comb += [self.kv.ready.eq(1), cnt_rd.addr.eq(self.kv.payload.group),
                             cnt_wr.addr.eq(self.kv.payload.group)]
                kv_and = self.kv.payload.k & self.kv.payload.v
                for lane in range(p):
                    m.d.comb += cnt_wr.data[lane].eq(cnt_rd.data[lane] + kv_and[lane])
                with m.If(self.kv.valid):
                    m.d.comb += cnt_wr.en.eq(1)
                    with m.If(self.kv.payload.t0):
                        m.d.sync += t0.eq(1)
                    with m.If(self.kv.payload.last):
                        m.d.sync += fire_group.eq(0)
                        m.next = "FIRE"
            with m.State("FIRE"):
                m.d.comb += [cnt_rd.addr.eq(fire_group), cnt_wr.addr.eq(fire_group), cnt_wr.en.eq(1),
                             mem_wr.en.eq(1), att_wr.en.eq(1)]   # cnt_wr.data stays 0: clear
                for lane in range(p):
                    v_old = Signal(signed(self.v_bits))
                    m.d.comb += v_old.eq(Mux(t0, 0, mem_rd.data[lane]))
                    spike, v_new = lif_update(m, cnt_rd.data[lane] << 1, v_old, 1, self.shift, self.v_bits)
                    m.d.comb += [att_wr.data[lane].eq(spike), mem_wr.data[lane].eq(v_new)]
                m.d.sync += fire_group.eq(fire_group + 1)
                with m.If(fire_group + 1 >= self.n_groups):
                    m.d.sync += t0.eq(0)
                    m.next = "MASK"
            with m.State("MASK"):
                m.d.comb += self.q.ready.eq(~self.o.valid | self.o.ready)
                with m.If(self.q.valid & self.q.ready):
                    m.d.sync += [
                        self.o.valid.eq(1),
                        self.o.payload.spikes.eq(self.q.payload.q & att_rd.data),
                        self.o.payload.group.eq(self.q.payload.group),
                        self.o.payload.last.eq(self.q.payload.last),
                    ]
                    with m.If(self.q.payload.last):
                        m.next = "COUNT"
        return m
