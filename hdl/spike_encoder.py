"""SpikeEncoder: a bit-packed spike vector in, the addresses of its set bits out (zeros skipped)."""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from .params import check_ints, refuse

__all__ = ["SpikeEncoder", "EventLayout", "ChunkLayout"]


class EventLayout(data.StructLayout):
    """One beat of an address-event stream: the address of a set spike of a vector.

    * ``addr``: the index of the spike in its vector (input channel ``c``; the weight column);
    * ``last``: the beat ends the vector;
    * ``empty``: the beat carries no spike (only an all-zero vector produces one, with ``last``),
      so that every vector, even an empty one, ends with exactly one ``last`` beat;
    * ``plane`` (only with ``plane_bits``): the bit-plane of a multi-bit input (the first layer's
      pixels): the column is added shifted left by ``plane``;
    * ``zero`` (only in a dense encoder): the position was visited but holds no spike (adds nothing).
    """

    def __init__(self, addr_bits: int, plane_bits: int = 0, dense: bool = False):
        fields = {"addr": max(1, addr_bits), "last": 1, "empty": 1}
        if plane_bits:
            fields["plane"] = plane_bits
        if dense:
            fields["zero"] = 1
        super().__init__(fields)


class ChunkLayout(data.StructLayout):
    """One beat of a bit-packed spike vector: ``bits`` (bit ``i`` is spike ``base + i``), ``base``
    (the address of bit 0: ``chunk * W`` for a plain vector; a sequencer may skip all-zero chunks
    or place chunks anywhere in the address space) and ``last`` (the final chunk of the vector).
    A dense encoder's chunk also carries ``spikes``: ``bits`` then marks the positions to visit."""

    def __init__(self, width: int, addr_bits: int | None = None, dense: bool = False):
        fields = {"bits": width, "base": max(1, addr_bits if addr_bits is not None else 1), "last": 1}
        if dense:
            fields["spikes"] = width
        super().__init__(fields)


class SpikeEncoder(wiring.Component):
    """Turns a bit-packed binary spike vector into the stream of its set-bit addresses.

    This is the front of the event-driven datapath: downstream engines do work per
    spike, never per zero.

    Parameters
    ----------
    width : int
        W, bits per input chunk (a power of two, 1..64 is typical).
    capacity : int
        Longest vector in bits (a power of two, multiple of ``width``); sets the address width.
    plane_bits : int
        0, or the bits of a bit-plane index: while the run-time input ``planes`` is set, bit ``i``
        of a chunk is bit-plane ``i mod 2**plane_bits`` of input ``i >> plane_bits`` (pixels packed
        plane-minor): the event gets ``addr = base + (i >> plane_bits)`` and ``plane = i mod 2**plane_bits``.
    dense : bool
        The dense baseline (``event_driven=False``): every position marked in ``bits`` becomes an
        event, those whose ``spikes`` bit is 0 with ``zero`` set; costs one cycle per position.

    Ports
    -----
    ``chunks``: ``In(stream.Signature(ChunkLayout(W)))``
        A vector arrives as ``ceil(length / W)`` chunks, lowest bits first; ``last`` on the final one.
    ``events``: ``Out(stream.Signature(EventLayout(log2(capacity))))``
        The addresses of the set bits in increasing order, ``last`` on the final one; an all-zero
        vector gives one beat with ``empty = last = 1`` and ``addr = 0``.

    Cycle cost (no back-pressure)
    -----------------------------
    A chunk with ``k`` set bits takes ``max(k, 1)`` cycles (a priority encoder extracts one address
    per cycle and loads the next chunk in the cycle that extracts the final bit), plus one cycle per
    vector to emit its ``last`` beat (overlapped with loading the next vector's first chunk): a
    one-chunk vector costs ``events + 1`` cycles, an all-zero one 2 cycles, whatever W is. An
    address leaves one event after it was extracted (so that ``last`` is known); latency 2 cycles.
    The whole unit stalls while ``events`` is back-pressured.
    """

    def __init__(self, width: int = 32, capacity: int = 256, plane_bits: int = 0, dense: bool = False):
        check_ints(self, width=(width, 1), capacity=(capacity, 1), plane_bits=(plane_bits, 0))
        for name, value in (("width", width), ("capacity", capacity)):
            if value & (value - 1):
                refuse(self, f"{name} must be a power of two, got {value}")
        if capacity < width:
            refuse(self, f"capacity {capacity} is smaller than the chunk width {width}")
        self.width, self.capacity, self.plane_bits, self.dense = width, capacity, plane_bits, dense
        self.addr_bits = ceil_log2(capacity)
        members = {
            "chunks": In(stream.Signature(ChunkLayout(width, self.addr_bits, dense))),
            "events": Out(stream.Signature(EventLayout(self.addr_bits, plane_bits, dense))),
        }
        if plane_bits:
            members["planes"] = In(1)
        super().__init__(members)

    def chunk_beats(self, spikes) -> list[dict]:
        """The ``chunks`` beats (``{"bits", "last"}``) of a 0/1 spike vector (a sequence of ints)."""
        spikes = [int(b) for b in spikes]
        if len(spikes) > self.capacity:
            refuse(self, f"a vector of {len(spikes)} spikes exceeds capacity {self.capacity}")
        n = max(1, -(-len(spikes) // self.width))
        return [{"bits": sum(b << i for i, b in enumerate(spikes[k * self.width:(k + 1) * self.width])),
                 "base": k * self.width, "last": int(k == n - 1)} for k in range(n)]

    def elaborate(self, platform):
        m = Module()
        w = self.width
        ev_layout = EventLayout(self.addr_bits, self.plane_bits, self.dense)

        rem = Signal(w)                      # set bits of the current chunk not yet extracted
        values = Signal(w)                   # dense: the spikes of the current chunk
        loaded = Signal()                    # rem holds a chunk
        chunk_last = Signal()
        base = Signal(self.addr_bits)        # address of bit 0 of the current chunk
        flush = Signal()                     # the vector's final beat is due
        held = Signal()                      # an extracted event waits for its successor
        held_ev = Signal(ev_layout)

        # Priority encoder: the lowest set bit of rem. One carry chain (rem - 1) isolates it as a
        # one-hot (rem & -rem, with -rem = ~(rem - 1)) and clears it (rem & (rem - 1)); OR trees
        # turn the one-hot into its index: log depth, not a W-deep chain of muxes.
        low = Signal(range(w))               # zero bits wide when W = 1
        dec = Signal(w)
        onehot = Signal(w)
        rem_next = Signal(w)
        m.d.comb += [dec.eq(rem - 1), onehot.eq(rem & ~dec), rem_next.eq(rem & dec)]
        for k in range(len(low)):
            m.d.comb += low[k].eq(Cat(onehot[b] for b in range(w) if b >> k & 1).any())
        event = Signal(ev_layout)            # the event of bit ``low`` (last/empty unused)
        if self.plane_bits:
            with m.If(self.planes):
                m.d.comb += [event.addr.eq(base + (low >> self.plane_bits)),
                             event.plane.eq(low[:self.plane_bits])]
            with m.Else():
                m.d.comb += event.addr.eq(base + low)
        else:
            m.d.comb += event.addr.eq(base + low)
        if self.dense:
            m.d.comb += event.zero.eq(~values.bit_select(low, 1))

        out_free = Signal()
        m.d.comb += out_free.eq(~self.events.valid | self.events.ready)
        with m.If(self.events.ready):
            m.d.sync += self.events.valid.eq(0)

        def load_chunk():
            m.d.comb += self.chunks.ready.eq(1)
            m.d.sync += loaded.eq(self.chunks.valid)
            with m.If(self.chunks.valid):
                m.d.sync += [rem.eq(self.chunks.payload.bits), chunk_last.eq(self.chunks.payload.last),
                             base.eq(self.chunks.payload.base)]
                if self.dense:
                    m.d.sync += values.eq(self.chunks.payload.spikes)

        def end_chunk():
            with m.If(chunk_last):
                m.d.sync += [loaded.eq(0), flush.eq(1)]
            with m.Else():
                load_chunk()

        with m.If(out_free):
            with m.If(flush):
                m.d.sync += [
                    self.events.valid.eq(1),
                    self.events.payload.eq(Mux(held, held_ev, 0)),
                    self.events.payload.last.eq(1),
                    self.events.payload.empty.eq(~held),
                    held.eq(0), flush.eq(0),
                ]
                load_chunk()
            with m.Elif(loaded):
                with m.If(rem != 0):
                    with m.If(held):
                        m.d.sync += [
                            self.events.valid.eq(1),
                            self.events.payload.eq(held_ev),
                            self.events.payload.last.eq(0),
                            self.events.payload.empty.eq(0),
                        ]
                    m.d.sync += [held.eq(1), held_ev.eq(event), rem.eq(rem_next)]
                    with m.If(rem_next == 0):
                        end_chunk()
                with m.Else():
                    end_chunk()
            with m.Else():
                load_chunk()
        return m
