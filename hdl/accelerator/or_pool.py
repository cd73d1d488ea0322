"""The OR-pool: a spike map's 3x3 / stride 2 / pad 1 max-pool (POOL_OR)."""

from __future__ import annotations

from amaranth.hdl import Const, Module, Mux, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from spikeforge.firmware.program import HardwareConfig, field_bits

from .common import Loop, control_signature, lane_groups, spike_addr, spike_read_signature, spike_write_signature, \
    step_loops, window_offset

__all__ = ["ORPool"]


class ORPool(wiring.Component):
    """Max-pools a spike map (``golden.or_pool``): an OR over each 3x3 window, stride 2, pad 1.

    Loops: pooled position (i, j), time step t, word (of the row's ``words_last + 1``), tap (dy,
    dx; innermost). One word (all its channels) per read, ORed into a word register (out-of-map
    taps add nothing); the pooled word is written after its last tap, to row
    ``out_base + (i * W' + j) * T + t``.

    Ports
    -----
    ``control``: ``In(control_signature(hw))``; starts on ``go`` in a ``POOL_OR`` step.
    ``spikes``: ``Out(spike_read_signature(hw))``; ``free``: ``In(1)``: the port is free (else
    no read is issued).
    ``write``: ``Out(spike_write_signature(hw))``: the pooled words.
    ``idle``: ``Out(1)``: all reads issued and the last one's data taken.

    Cycle cost: one read a cycle, ``H' x W' x T x words x 9`` cycles, plus one with each write
    when the buffer has one port.
    """

    def __init__(self, hw: HardwareConfig):
        self.hw = hw
        super().__init__({
            "control": In(control_signature(hw)),
            "spikes": Out(spike_read_signature(hw)),
            "free": In(1, init=1),
            "write": Out(spike_write_signature(hw)),
            "idle": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        hw = self.hw
        d, step = self.control.desc, self.control.step
        fw = field_bits(hw)
        nw, WB = hw.spike_row_words, hw.spike_word_bits
        po_active = Signal()
        po_i, po_j, po_t = Signal(fw["out_height"]), Signal(fw["out_width"]), Signal(fw["steps"])
        po_w = Signal(range(nw))
        po_dy, po_dx = Signal(2), Signal(2)
        po_base = Signal(range(hw.spike_rows + 1))      # (2i * W + 2j) * T
        po_ibase = Signal(range(hw.spike_rows + 1))     # 2i * W * T
        po_orow = Signal(range(hw.spike_rows + 1))
        po_y = Signal(signed(18))
        po_x = Signal(signed(18))
        m.d.comb += [po_y.eq((po_i << 1) + po_dy - 1), po_x.eq((po_j << 1) + po_dx - 1)]
        po_last_tap = Signal()
        m.d.comb += po_last_tap.eq((po_dy == 2) & (po_dx == 2))
        po_b_valid, po_b_in, po_b_first, po_b_last, po_b_full = Signal(), Signal(), Signal(), Signal(), Signal()
        po_b_row = Signal.like(po_orow)
        po_b_w = Signal.like(po_w)
        po_acc = Signal(WB)
        po_new = Signal(WB)
        oy, ox = window_offset(step, po_dy, po_dx)
        m.d.comb += self.spikes.addr.eq(spike_addr(hw, step.in_base + po_base + po_t + oy + ox, po_w))
        po_issue = Signal()
        m.d.comb += po_issue.eq(po_active & self.free)
        m.d.sync += po_b_valid.eq(po_issue)
        with m.If(po_issue):
            m.d.sync += [po_b_in.eq((po_y >= 0) & (po_y < d.height) & (po_x >= 0) & (po_x < d.width)),
                         po_b_first.eq((po_dy == 0) & (po_dx == 0)), po_b_last.eq(po_last_tap),
                         po_b_row.eq(po_orow), po_b_w.eq(po_w), po_b_full.eq(po_w != step.words_last)]
            step_loops(m, [
                Loop(po_dx, 3), Loop(po_dy, 3), Loop(po_w, step.words_last + 1, on_wrap=[po_orow.eq(po_orow + 1)]),
                Loop(po_t, d.steps),
                Loop(po_j, d.out_width, on_step=[po_base.eq(po_base + (d.steps << 1))],
                     on_wrap=[po_base.eq(po_ibase + (d.row_stride << 1)), po_ibase.eq(po_ibase + (d.row_stride << 1))]),
                Loop(po_i, d.out_height),
            ], done=[po_active.eq(0)])
        with m.If(self.control.go & step.or_pool):
            m.d.sync += [po_active.eq(1), po_i.eq(0), po_j.eq(0), po_t.eq(0), po_w.eq(0), po_dy.eq(0), po_dx.eq(0),
                         po_base.eq(0), po_ibase.eq(0), po_orow.eq(d.out_base)]
        # (the channel mask of a word: all bits, or the row's last word's ``in_mask``)
        channels = Mux(po_b_full, Const((1 << WB) - 1, WB), step.in_mask)
        m.d.comb += po_new.eq(Mux(po_b_first, 0, po_acc) | Mux(po_b_in, self.spikes.data & channels, 0))
        with m.If(po_b_valid):
            m.d.sync += po_acc.eq(po_new)
        m.d.comb += [self.write.valid.eq(po_b_valid & po_b_last),
                     self.write.addr.eq(spike_addr(hw, po_b_row, po_b_w)), self.write.data.eq(po_new),
                     self.write.en.eq((1 << lane_groups(hw)) - 1),
                     self.idle.eq(~po_active & ~po_b_valid)]
        return m
