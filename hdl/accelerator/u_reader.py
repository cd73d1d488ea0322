"""The U reader: rows of the residual stream U for the LIF_U and GAP steps."""

from __future__ import annotations

from amaranth.hdl import Module, Signal
from amaranth.lib import data, fifo, stream, wiring
from amaranth.lib.wiring import In, Out

from spikeforge.firmware.program import OPS, HardwareConfig, field_bits

from .common import Loop, control_signature, decoded, step_loops, u_beat_layout, u_read_signature

__all__ = ["UReader"]


class UReader(wiring.Component):
    """Reads U's rows of a ``LIF_U`` or ``GAP`` step, one a cycle, into a 3-deep FIFO.

    ``LIF_U``: rows in U order (position, t, group) = 0, 1, 2, ...; ``GAP``: (t, group) outer,
    position inner: row = position * u_pos_stride + t * u_groups + group, ``first`` / ``last`` on
    a (t, group)'s first / last position (the token sum's sequence).

    Ports
    -----
    ``control``: ``In(control_signature(hw))``; starts on ``go`` in a ``LIF_U`` or ``GAP`` step.
    ``u``: ``Out(u_read_signature(hw))``: U's read port (through the residual-port arbiter).
    ``beats``: ``Out(stream.Signature(u_beat_layout(hw)))``; back-pressure: a read is issued only
    if the FIFO has room for it and the one in flight.
    ``busy``: ``Out(1)``: a read is issued (the ``reader_busy`` counter).

    Cycle cost: one row a cycle while ``beats`` is ready; a row reaches the FIFO a cycle after its
    read.
    """

    def __init__(self, hw: HardwareConfig):
        self.hw = hw
        super().__init__({
            "control": In(control_signature(hw)),
            "u": Out(u_read_signature(hw)),
            "beats": Out(stream.Signature(u_beat_layout(hw))),
            "busy": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        hw, d = self.hw, self.control.desc
        fw = field_bits(hw)
        ur_beat = u_beat_layout(hw)
        ur_depth = 3                    # a read in flight and two queued: one beat a cycle
        ur_fifo = fifo.SyncFIFO(width=ur_beat.size, depth=ur_depth)
        m.submodules.u_fifo = ur_fifo
        ur_active = Signal()
        ur_t, ur_g = Signal(fw["steps"]), Signal(fw["u_groups"])
        ur_addr = Signal(range(hw.u_rows + 1))
        ur_tg = Signal(range(hw.u_rows + 1))
        ur_b_valid = Signal()
        ur_b_first, ur_b_last = Signal(), Signal()
        ur_issue = self.busy
        is_gap = Signal()
        decoded(m, self.control, is_gap, lambda x: x.op == OPS["GAP"])
        ur_pos_last = Signal()
        m.d.comb += ur_issue.eq(ur_active & (ur_fifo.level + ur_b_valid < ur_depth))   # room for it
        m.d.comb += self.u.addr.eq(ur_addr)
        m.d.sync += ur_b_valid.eq(ur_issue)
        ury, urx = Signal(fw["height"]), Signal(fw["width"])
        m.d.comb += ur_pos_last.eq((ury + 1 >= d.height) & (urx + 1 >= d.width))
        with m.If(ur_issue):
            m.d.sync += [ur_b_first.eq((ury == 0) & (urx == 0)), ur_b_last.eq(ur_pos_last)]

            next_row = [ur_addr.eq(ur_addr + d.u_pos_stride)]
            next_tg = [ur_addr.eq(ur_tg + 1), ur_tg.eq(ur_tg + 1)]
            finish = [ur_active.eq(0)]
            with m.If(is_gap):
                # (t, g) outer, position inner
                step_loops(m, [Loop(urx, d.width, next_row), Loop(ury, d.height, next_row, next_tg),
                               Loop(ur_g, d.u_groups), Loop(ur_t, d.steps)], finish)
            with m.Else():
                # (position, t, g): sequential rows
                m.d.sync += ur_addr.eq(ur_addr + 1)
                step_loops(m, [Loop(ur_g, d.u_groups), Loop(ur_t, d.steps), Loop(urx, d.width),
                               Loop(ury, d.height)], finish)
        with m.If(self.control.go & ((d.op == OPS["LIF_U"]) | is_gap)):
            m.d.sync += [ur_active.eq(1), ur_t.eq(0), ur_g.eq(0), ur_addr.eq(0), ur_tg.eq(0),
                         ury.eq(0), urx.eq(0)]
        ur_in = data.View(ur_beat, ur_fifo.w_data)
        m.d.comb += [ur_fifo.w_en.eq(ur_b_valid), ur_in.x.eq(self.u.data), ur_in.first.eq(ur_b_first),
                     ur_in.last.eq(ur_b_last)]
        m.d.comb += [self.beats.valid.eq(ur_fifo.r_rdy), self.beats.payload.eq(ur_fifo.r_data),
                     ur_fifo.r_en.eq(self.beats.ready)]
        return m
