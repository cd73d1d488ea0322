"""The vector source: a CONV step's input vectors, as word-wide chunks for the spike encoder."""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import data, fifo, memory, stream, wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from spikeforge.firmware.program import KINDS, HardwareConfig, field_bits, row_bits

from .common import FIFO_DEPTH, Loop, control_signature, decoded, spike_addr, spike_read_signature, step_loops, \
    window_offset

__all__ = ["VectorSource"]


class VectorSource(wiring.Component):
    """Reads a ``CONV`` step's input, one chunk (a spike-buffer or pixel word) per read.

    Loops: y, x (output position), t (time step), tap (3x3 window, dy-major; a 1x1 layer only the
    centre), word (of the tap's row: ``words_last + 1`` words hold its ``cin`` channels). A chunk
    carries the word's bits (masked to the row's channels; 0 for an out-of-map tap), its weight
    column base ``tap * cin + word * spike_word_bits`` and ``last`` on the vector's final word.
    All-zero and out-of-map words are not sent (the dense baseline sends in-map ones with their
    channel mask), except a vector's final word. The first layer (``pixel``) reads the pixel
    memory, its row address the tap's position.

    Ports
    -----
    ``control``: ``In(control_signature(hw))``; starts on ``go`` in a ``CONV`` step.
    ``spikes``: ``Out(spike_read_signature(hw))``; ``free``: ``In(1)``: the spike buffer's port is
    free this cycle (else no read is issued).
    ``pixels``: the pixel memory's read port; ``pixels_written``: ``In(1)``: it is being written.
    ``chunks``: ``Out(stream.Signature(chunk_layout))``, through a 4-deep FIFO; back-pressure: a
    read is issued only if the FIFO has room for it and the two still in flight.
    ``stall``: ``Out(1)``: active but the FIFO is full (the ``source_stall`` counter).
    ``active``: ``Out(1)``: words of the step are left to read.

    Cycle cost: one word read a cycle while the encoder keeps up; a chunk reaches the FIFO two
    cycles after its read (the memory, then a register before the all-zero test).
    """

    def __init__(self, hw: HardwareConfig, chunk_layout: data.Layout):
        self.hw = hw
        super().__init__({
            "control": In(control_signature(hw)),
            "spikes": Out(spike_read_signature(hw)),
            "free": In(1, init=1),
            "pixels": In(memory.ReadPort.Signature(addr_width=ceil_log2(hw.max_positions),
                                                   shape=row_bits(hw)["pixels"])),
            "pixels_written": In(1),
            "chunks": Out(stream.Signature(chunk_layout)),
            "stall": Out(1),
            "active": Out(1),
        })

    def elaborate(self, platform):  # noqa: C901 (the loop nest, then the read pipeline)
        m = Module()
        hw = self.hw
        d, step = self.control.desc, self.control.step
        nw, WB = hw.spike_row_words, hw.spike_word_bits
        wb_log = WB.bit_length() - 1
        fw = field_bits(hw)
        dense = not hw.event_driven
        chunk_fifo = fifo.SyncFIFO(width=len(Cat(self.chunks.payload)), depth=FIFO_DEPTH)
        m.submodules.chunk_fifo = chunk_fifo
        m.d.comb += [self.chunks.valid.eq(chunk_fifo.r_rdy), self.chunks.payload.eq(chunk_fifo.r_data),
                     chunk_fifo.r_en.eq(self.chunks.ready)]

        src_active = self.active
        sy, sx, st = Signal(fw["height"]), Signal(fw["width"]), Signal(fw["steps"])
        dy, dx = Signal(2), Signal(2)
        rowc = Signal(range(max(hw.spike_rows, hw.max_positions) + 1))   # row of (y, x, t)
        tap_base = Signal(range(hw.in_columns + 1))
        one_tap = Signal(init=1)
        decoded(m, self.control, one_tap, lambda x: x.kind == KINDS["1x1"])
        iy = Signal(signed(18))
        ix = Signal(signed(18))
        m.d.comb += [iy.eq(sy + dy - 1), ix.eq(sx + dx - 1)]   # 1x1: the centre tap dy = dx = 1
        in_map = Signal()
        m.d.comb += in_map.eq((iy >= 0) & (iy < d.height) & (ix >= 0) & (ix < d.width))
        tap_row = Signal(signed(max(hw.spike_rows, hw.max_positions).bit_length() + 2))
        oy, ox = (Mux(one_tap, 0, o) for o in window_offset(step, dy, dx))
        m.d.comb += tap_row.eq(rowc + oy + ox)
        in_row = Signal(range(hw.spike_rows + max(hw.spike_rows, hw.max_positions) + 1))   # in_base + rowc
        last_tap = Signal()
        m.d.comb += last_tap.eq(one_tap | ((dy == 2) & (dx == 2)))
        sw = Signal(range(nw))          # the word of the tap's row
        word_last = Signal()
        m.d.comb += word_last.eq(sw == step.words_last)

        b_valid, b_in_map, b_last = Signal(), Signal(), Signal()
        b_base = Signal.like(tap_base)
        b_full = Signal()               # the word is not the row's last: every bit is a channel
        issue = Signal()
        can_issue = Signal()
        c_valid = Signal()              # a chunk in the register after the read (see below)
        # a read is issued only if the FIFO has room for it and for the two before it still in flight
        m.d.comb += can_issue.eq(chunk_fifo.level + b_valid + c_valid < FIFO_DEPTH)
        m.d.comb += issue.eq(src_active & can_issue & self.free)
        m.d.comb += self.stall.eq(src_active & ~can_issue)
        m.d.comb += [self.pixels.addr.eq(tap_row), self.pixels.en.eq(~self.pixels_written)]
        m.d.comb += self.spikes.addr.eq(spike_addr(hw, in_row + oy + ox, sw))
        m.d.sync += b_valid.eq(issue)
        with m.If(issue):
            m.d.sync += [b_in_map.eq(in_map), b_last.eq(last_tap & word_last), b_full.eq(~word_last),
                         b_base.eq(tap_base + (sw << wb_log))]
            # advance the loops
            with m.If(~word_last):
                m.d.sync += sw.eq(sw + 1)
            with m.Elif(last_tap):
                m.d.sync += [sw.eq(0), dy.eq(Mux(one_tap, 1, 0)), dx.eq(Mux(one_tap, 1, 0)), tap_base.eq(0),
                             rowc.eq(rowc + 1), in_row.eq(in_row + 1)]
                step_loops(m, [Loop(st, d.steps), Loop(sx, d.width), Loop(sy, d.height)],
                           done=[src_active.eq(0)])
            with m.Else():
                m.d.sync += [sw.eq(0), tap_base.eq(tap_base + d.cin)]
                with m.If(dx == 2):
                    m.d.sync += [dx.eq(0), dy.eq(dy + 1)]
                with m.Else():
                    m.d.sync += dx.eq(dx + 1)
        with m.If(self.control.go & step.conv):
            m.d.sync += [src_active.eq(1), sy.eq(0), sx.eq(0), st.eq(0), rowc.eq(0), in_row.eq(step.in_base),
                         tap_base.eq(0), sw.eq(0),
                         dy.eq(Mux(d.kind == KINDS["1x1"], 1, 0)), dx.eq(Mux(d.kind == KINDS["1x1"], 1, 0))]

        def word_channels(full):
            """The channel mask of a word: all bits, or (the row's last word) ``in_mask``."""
            return Mux(full, Const((1 << WB) - 1, WB), step.in_mask)

        word_mask = Signal(WB)
        m.d.comb += word_mask.eq(word_channels(b_full))
        b_bits = Signal(WB)
        m.d.comb += b_bits.eq(Mux(b_in_map, Mux(step.pixel, self.pixels.data, self.spikes.data) & word_mask, 0))
        # the chunk is registered before its all-zero test and the FIFO (no path from the spike
        # buffer's read data through the word-wide OR into the FIFO's write enable)
        # (loaded only with a read: Yosys 0.70's ABC9 fails on this register without an enable)
        chunk = Signal(self.chunks.payload.shape())
        c_in_map = Signal()
        m.d.sync += c_valid.eq(b_valid)
        with m.If(b_valid):
            m.d.sync += [c_in_map.eq(b_in_map), chunk.base.eq(b_base), chunk.last.eq(b_last)]
            if dense:
                m.d.sync += [chunk.bits.eq(Mux(b_in_map, word_mask, 0)), chunk.spikes.eq(b_bits)]
            else:
                m.d.sync += chunk.bits.eq(b_bits)
        if dense:
            m.d.comb += chunk_fifo.w_en.eq(c_valid & (c_in_map | chunk.last))
        else:
            m.d.comb += chunk_fifo.w_en.eq(c_valid & ((chunk.bits != 0) | chunk.last))
        m.d.comb += chunk_fifo.w_data.eq(chunk)
        return m
