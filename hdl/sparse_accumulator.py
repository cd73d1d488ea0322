"""SparseAccumulator: address events in, one weight column added per event into P accumulators."""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal, signed
from amaranth.lib import data, memory, stream, wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from .params import check_ints, check_memories, refuse
from .spike_encoder import EventLayout

__all__ = ["SparseAccumulator"]


class SparseAccumulator(wiring.Component):
    """Event-driven accumulation ``acc[o] = bias[o] + sum over events c of (w[o, c] << shift)``.

    The synaptic operation of every spike-input layer (1x1 convs, linear layers; the sequencer turns
    3x3 convs and the head into the same event stream). Equals
    :func:`spikeforge.model.golden.sparse_accumulate` bit for bit.

    Output channels are processed in *groups* of P lanes: with ``n_groups = ceil(C_out / P)``, the
    events of a vector are taken from ``events`` for group 0 (and kept in an event buffer), then
    replayed from the buffer for groups 1 .. n_groups - 1. Per event and group one P-wide weight row
    is read from the weight memory and added to the P accumulators; the accumulators start from the
    group's bias row. Nothing is multiplied: ``w << weight_shift`` is wiring plus a shifter.

    Parameters
    ----------
    lanes : int
        P, output channels updated per cycle.
    weight_bits : int
        Signed weight width.
    acc_bits : int
        Signed accumulator (and bias) width; the compiler guarantees results fit it.
    in_capacity : int
        Largest C_in (rounded up to a power of two: the weight row address is ``group:c``).
    group_capacity : int
        Largest ``n_groups``, i.e. C_out capacity ``P * group_capacity``.
    max_shift : int
        Largest ``weight_shift``.
    weight_depth, bias_depth : int or None
        Rows of the weight and bias memories; by default one layer's worth
        (``in_capacity * group_capacity`` and ``group_capacity``). An accelerator holding every
        layer gives larger memories and places each layer with ``weight_base`` / ``bias_base``.
    plane_bits : int
        Width of the events' ``plane`` field (bit-plane inputs, see :class:`SpikeEncoder`): an
        event adds ``w << (weight_shift + plane)``.
    dense : bool
        Events carry ``zero`` (dense baseline): such an event costs its cycles but adds nothing.

    Ports
    -----
    ``events``: ``In(stream.Signature(EventLayout))``
        Address events of one input vector, ``last`` on the final one (see :class:`SpikeEncoder`).
    ``result``: ``Out(stream.Signature({"acc": P x signed(acc_bits), "group", "last"}))``
        ``n_groups`` beats per vector: group ``g`` holds output channels ``g*P .. g*P + P - 1``;
        ``last`` on the final group.
    ``weight_write``: ``In(stream.Signature({"addr", "data": P x signed(weight_bits)}))``, always ready
        Loads weight row ``addr = g * 2**ceil(log2(in_capacity)) + c`` (see :meth:`weight_rows`).
        The weight memory has one port (it maps to single-port RAM such as iCE40 SPRAM): a write
        takes it for one cycle, in which the pipeline holds still.
    ``bias_write``: ``In(stream.Signature({"addr", "data": P x signed(acc_bits)}))``, always ready
        Loads the bias row of group ``addr``.
    ``n_groups``, ``weight_shift``: ``In``
        Layer configuration, held constant while a layer runs.
    ``busy``: ``Out(1)``
        An (event, group) pair enters the pipeline this cycle (for performance counters).
    ``weight_base``, ``n_columns``, ``bias_base``: ``In``
        Layer placement: group ``g``'s weight column ``c`` is row ``weight_base + g * n_columns + c``
        (the group offset is a running sum, no multiplier), its bias row ``bias_base + g``. The
        defaults (0, ``in_capacity``, 0) give the single-layer layout of :meth:`weight_rows`.

    Cycle cost (no back-pressure)
    -----------------------------
    ``max(events, 1) * n_groups`` cycles per vector: one event and group per cycle, the group
    boundaries and the bias preload cost nothing (the bias row is read alongside the group's first
    weight row, one stage behind it; results leave through a separate output register). Latency
    from the last event to the result: 4 cycles (stage A registers the weight row address, B the
    shifted weight row, C the sum, so that no path runs from one block RAM's output into another's
    address or through the shifter into the adder). Group 0 runs at the rate events arrive.
    """

    def __init__(self, lanes: int = 16, weight_bits: int = 8, acc_bits: int = 16, in_capacity: int = 256,
                 group_capacity: int = 4, max_shift: int = 16, weight_depth: int | None = None,
                 bias_depth: int | None = None, plane_bits: int = 0, dense: bool = False):
        check_ints(self, lanes=(lanes, 1), weight_bits=(weight_bits, 2), acc_bits=(acc_bits, 2),
                   in_capacity=(in_capacity, 1), group_capacity=(group_capacity, 1), max_shift=(max_shift, 0),
                   plane_bits=(plane_bits, 0))
        if acc_bits < weight_bits:
            refuse(self, f"acc_bits {acc_bits} is narrower than weight_bits {weight_bits}")
        self.lanes, self.weight_bits, self.acc_bits = lanes, weight_bits, acc_bits
        self.addr_bits = max(1, ceil_log2(in_capacity))
        self.in_capacity = 1 << self.addr_bits
        self.group_capacity, self.max_shift = group_capacity, max_shift
        self.group_bits = max(1, ceil_log2(group_capacity))
        self.weight_depth = self.in_capacity * group_capacity if weight_depth is None else weight_depth
        self.bias_depth = group_capacity if bias_depth is None else bias_depth
        check_ints(self, weight_depth=(self.weight_depth, 1), bias_depth=(self.bias_depth, 1))
        check_memories(self, weights=(self.weight_depth, lanes * weight_bits), biases=(self.bias_depth, lanes * acc_bits),
                       events=(self.in_capacity, self.addr_bits + self.group_bits))
        self.plane_bits, self.dense = plane_bits, dense
        self.event_layout = EventLayout(self.addr_bits, plane_bits, dense)
        super().__init__({
            "events": In(stream.Signature(self.event_layout)),
            "result": Out(stream.Signature(data.StructLayout({
                "acc": data.ArrayLayout(signed(acc_bits), lanes),
                "group": range(group_capacity),
                "last": 1,
            }))),
            "weight_write": In(stream.Signature(data.StructLayout({
                "addr": range(self.weight_depth),
                "data": data.ArrayLayout(signed(weight_bits), lanes),
            }))),
            "bias_write": In(stream.Signature(data.StructLayout({
                "addr": range(self.bias_depth),
                "data": data.ArrayLayout(signed(acc_bits), lanes),
            }))),
            "n_groups": In(range(1, group_capacity + 1), init=1),
            "weight_shift": In(range(max_shift + 1)),
            "weight_base": In(range(self.weight_depth)),
            "n_columns": In(range(self.in_capacity + 1), init=self.in_capacity),
            "bias_base": In(range(self.bias_depth)),
            "busy": Out(1),
        })

    # ------------------------------------------------------------------ memory image (for loaders)

    def weight_rows(self, weight) -> list[tuple[int, list[int]]]:
        """``(addr, P weights)`` rows that load an integer ``weight [C_out, C_in]`` matrix."""
        c_out, c_in = len(weight), len(weight[0]) if len(weight) else 0
        self._check_shape(c_out, c_in)
        rows = []
        for g in range(-(-c_out // self.lanes)):
            for c in range(c_in):
                lanes = [int(weight[o][c]) if o < c_out else 0 for o in range(g * self.lanes, (g + 1) * self.lanes)]
                rows.append((g * self.in_capacity + c, lanes))
        return rows

    def bias_rows(self, bias) -> list[tuple[int, list[int]]]:
        """``(group, P biases)`` rows that load an integer ``bias [C_out]`` vector."""
        c_out = len(bias)
        self._check_shape(c_out, 1)
        return [(g, [int(bias[o]) if o < c_out else 0 for o in range(g * self.lanes, (g + 1) * self.lanes)])
                for g in range(-(-c_out // self.lanes))]

    def _check_shape(self, c_out: int, c_in: int):
        if c_in > self.in_capacity:
            raise ValueError(f"SparseAccumulator: C_in {c_in} exceeds in_capacity {self.in_capacity}")
        if c_out > self.lanes * self.group_capacity:
            raise ValueError(f"SparseAccumulator: C_out {c_out} exceeds lanes x group_capacity "
                             f"= {self.lanes * self.group_capacity}")

    # ------------------------------------------------------------------ gateware

    def elaborate(self, platform):
        m = Module()
        p = self.lanes
        m.submodules.weights = weights = memory.Memory(
            shape=data.ArrayLayout(signed(self.weight_bits), p), depth=self.weight_depth, init=[])
        m.submodules.biases = biases = memory.Memory(
            shape=data.ArrayLayout(signed(self.acc_bits), p), depth=self.bias_depth, init=[])
        stored = data.StructLayout({k: v.shape for k, v in self.event_layout if k not in ("last", "empty")})
        m.submodules.event_buffer = event_buffer = memory.Memory(shape=stored, depth=self.in_capacity, init=[])

        b_wr = biases.write_port()
        m.d.comb += [b_wr.addr.eq(self.bias_write.payload.addr), b_wr.data.eq(self.bias_write.payload.data),
                     b_wr.en.eq(self.bias_write.valid), self.bias_write.ready.eq(1)]
        # The weight memory is single-ported (one address for reads and writes), so that it maps to
        # single-port RAM such as the iCE40UP5K's SPRAM: a weight write takes the port for its cycle
        # and the pipeline holds still (no read) in that cycle.
        w_wr = weights.write_port()
        w_rd = weights.read_port()
        m.d.comb += [w_wr.data.eq(self.weight_write.payload.data), w_wr.en.eq(self.weight_write.valid),
                     self.weight_write.ready.eq(1)]
        b_rd = biases.read_port()
        e_wr = event_buffer.write_port()
        e_rd = event_buffer.read_port(transparent_for=(e_wr,))  # synchronous: a block RAM, not flip-flops

        # ---- stage 0: one (event, group) per cycle, from the input (group 0) or the event buffer.
        group = Signal(range(self.group_capacity))
        count = Signal(range(self.in_capacity + 1))    # events of the vector stored so far
        replay = Signal(range(self.in_capacity + 1))   # index of the next replayed event
        replay_next = Signal.like(replay)              # its value next cycle: the buffer's read address
        row_base = Signal(range(self.weight_depth))    # weight_base + group * n_columns for groups >= 1
        group_base = Signal.like(row_base)             # the current group's first weight row
        m.d.comb += group_base.eq(Mux(group == 0, self.weight_base, row_base))
        s0_valid, s0_first, s0_last, s0_empty = Signal(), Signal(), Signal(), Signal()
        s0_ev = Signal(stored)

        # pipeline registers: stage A (event, group, weight row address), B (the same, aligned with the
        # weight row read at A's address), C (the shifted weight, aligned with the bias row)
        ctl = data.StructLayout({"valid": 1, "first": 1, "last": 1, "empty": 1, "zero": 1,
                                 "shift": range(self.max_shift + (1 << self.plane_bits)), "group": self.group_bits})
        a, b = Signal(ctl), Signal(ctl)
        c = Signal(data.StructLayout({"valid": 1, "first": 1, "last": 1, "group": self.group_bits}))
        # the pipeline moves; low only while a vector's final sum waits for the output register, or
        # while a weight or bias write takes its memory (no read collides with a write: see
        # ``spikeforge.toolchain.boards.COLLISION_FREE``)
        advance = Signal()
        m.d.comb += advance.eq(~(c.valid & c.last & self.result.valid & ~self.result.ready)
                               & ~self.weight_write.valid & ~self.bias_write.valid)

        m.d.comb += [replay_next.eq(replay), e_rd.addr.eq(replay_next)]
        m.d.sync += replay.eq(replay_next)
        with m.If(group == 0):
            m.d.comb += [
                s0_valid.eq(self.events.valid),
                *[getattr(s0_ev, k).eq(getattr(self.events.payload, k)) for k, _ in stored],
                s0_first.eq(count == 0),
                s0_last.eq(self.events.payload.last),
                s0_empty.eq(self.events.payload.empty),
                self.events.ready.eq(advance),
            ]
        with m.Else():
            m.d.comb += [
                s0_valid.eq(1),
                s0_ev.eq(e_rd.data),
                s0_first.eq(replay == 0),
                s0_last.eq((replay + 1 >= count)),
                s0_empty.eq(count == 0),
            ]

        with m.If(s0_valid & advance):
            with m.If(group == 0):
                with m.If(~self.events.payload.empty):
                    m.d.comb += [e_wr.addr.eq(count), *[getattr(e_wr.data, k).eq(getattr(self.events.payload, k)) for k, _ in stored], e_wr.en.eq(1)]
                    m.d.sync += count.eq(count + 1)
            with m.Else():
                m.d.comb += replay_next.eq(replay + 1)
            with m.If(s0_last):
                m.d.comb += replay_next.eq(0)
                with m.If(group + 1 >= self.n_groups):
                    m.d.sync += [group.eq(0), count.eq(0)]
                with m.Else():
                    m.d.sync += [group.eq(group + 1), row_base.eq(group_base + self.n_columns)]

        m.d.comb += self.busy.eq(s0_valid & advance)

        # ---- stage A: the (event, group) pair and its weight row address, registered: the weight
        # memory's address comes from a register, not from the event buffer's read data.
        a_row = Signal.like(row_base)
        with m.If(advance):
            m.d.sync += [a.valid.eq(s0_valid), a.first.eq(s0_first), a.last.eq(s0_last), a.empty.eq(s0_empty),
                         a.zero.eq(s0_ev.zero if self.dense else 0), a.group.eq(group),
                         a.shift.eq(self.weight_shift + (s0_ev.plane if self.plane_bits else 0)),
                         a_row.eq(group_base + s0_ev.addr), b.eq(a)]
        m.d.comb += [
            w_rd.addr.eq(Mux(self.weight_write.valid, self.weight_write.payload.addr, a_row)), w_rd.en.eq(advance),
            w_wr.addr.eq(w_rd.addr),
        ]

        # ---- stage B: the weight row arrives; ``w << shift`` (0 for an empty or zero event) is
        # registered, and the group's bias row is read for stage C.
        addend = Signal(data.ArrayLayout(signed(self.acc_bits), p))
        with m.If(advance):
            m.d.sync += [c.valid.eq(b.valid), c.first.eq(b.first), c.last.eq(b.last), c.group.eq(b.group)]
            for lane in range(p):
                m.d.sync += addend[lane].eq(Mux(b.empty | b.zero, 0, w_rd.data[lane] << b.shift))
        m.d.comb += [b_rd.addr.eq(self.bias_base + b.group), b_rd.en.eq(advance)]

        # ---- stage C: acc = (first ? bias : acc) + addend, for P lanes.
        acc = Signal(data.ArrayLayout(signed(self.acc_bits), p))
        acc_next = Signal(data.ArrayLayout(signed(self.acc_bits), p))
        for lane in range(p):
            m.d.comb += acc_next[lane].eq(Mux(c.first, b_rd.data[lane], acc[lane]) + addend[lane])

        with m.If(self.result.ready):
            m.d.sync += self.result.valid.eq(0)
        with m.If(c.valid & advance):
            m.d.sync += acc.eq(acc_next)
            with m.If(c.last):
                m.d.sync += [
                    self.result.valid.eq(1),
                    self.result.payload.acc.eq(acc_next),
                    self.result.payload.group.eq(c.group),
                    self.result.payload.last.eq(c.group + 1 >= self.n_groups),
                ]
        return m
