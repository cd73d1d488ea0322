"""The SDSA driver: feeds the SDSA unit from the spike buffer and writes its output back."""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import data, fifo, stream, wiring
from amaranth.lib.wiring import In, Out

from spikeforge.firmware.program import HardwareConfig, field_bits

from .common import (FIFO_DEPTH, Loop, control_signature, group_enable, group_word, lane_groups, spike_addr,
                     spike_read_signature, spike_write_signature, step_loops)

__all__ = ["SDSADriver"]


class SDSADriver(wiring.Component):
    """Runs an ``SDSA`` step on the :class:`~spikeforge.hdl.sdsa_unit.SDSAUnit`.

    Loops: channel group g, time step t, phase, token n (innermost). Per (g, t): COUNT reads rows
    (n, t) for K and V beats, then MASK reads them again for Q beats; the unit's output beats are
    written to the output rows ``out_base + n * steps + t``, lane group g. One group at a time:
    the unit's counters, attention membranes (kept over T) and attention spikes are P lanes, not a
    channel memory. With whole-row words one read carries Q, K and V; with narrower words
    (``split_kv``) a K and V beat takes two reads (K's word, then V's), the K bits held until V's
    arrive. The group's Q, K and V bits are selected from the word before a 4-deep FIFO.

    Ports
    -----
    ``control``: ``In(control_signature(hw))``; starts on ``go`` in an ``SDSA`` step.
    ``spikes``: ``Out(spike_read_signature(hw))``; ``free``: ``In(1)``: the port is free.
    ``kv``, ``q``: ``Out(stream.Signature)`` to the unit; ``o``: ``In(stream.Signature)`` from it
    (always ready: written as it comes).
    ``write``: ``Out(spike_write_signature(hw))``: the unit's output spikes.
    ``ops``: ``Out({"valid", "count"})``: a K, V beat is taken, with ``count`` bits of K AND V (the
    golden trace's SDSA synaptic operations, counted as events and SOPs).
    ``busy``: ``Out(1)``: a beat leaves the FIFO (``sdsa_busy``); ``idle``: ``Out(1)``: all
    groups read and written.

    Back-pressure: a read is issued only with room in the FIFO for it and the one in flight.
    Cycle cost: ``T x (2 N groups + groups)`` (one read a beat; two for a K, V beat with split
    words), the unit's own latency overlapped.
    """

    def __init__(self, hw: HardwareConfig, kv_layout: data.Layout, q_layout: data.Layout, o_layout: data.Layout):
        self.hw = hw
        super().__init__({
            "control": In(control_signature(hw)),
            "spikes": Out(spike_read_signature(hw)),
            "free": In(1, init=1),
            "kv": Out(stream.Signature(kv_layout)),
            "q": Out(stream.Signature(q_layout)),
            "o": In(stream.Signature(o_layout)),
            "write": Out(spike_write_signature(hw)),
            "ops": Out(data.StructLayout({"valid": 1, "count": range(hw.lanes + 1)})),
            "busy": Out(1),
            "idle": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        hw, p = self.hw, self.hw.lanes
        d, step = self.control.desc, self.control.step
        fw = field_bits(hw)
        sd_beat = data.StructLayout({"q": p, "k": p, "v": p, "phase": 1, "last": 1, "t0": 1})
        sd_fifo = fifo.SyncFIFO(width=sd_beat.size, depth=FIFO_DEPTH)
        m.submodules.sd_fifo = sd_fifo
        active = self._reader(m, sd_fifo, sd_beat)
        sd_head = data.View(sd_beat, sd_fifo.r_data)
        kv, q = self.kv, self.q
        m.d.comb += [kv.payload.k.eq(sd_head.k), kv.payload.v.eq(sd_head.v),
                     kv.payload.t0.eq(sd_head.t0), kv.payload.last.eq(sd_head.last),
                     q.payload.q.eq(sd_head.q), q.payload.last.eq(sd_head.last)]
        with m.If(sd_head.phase):
            m.d.comb += [q.valid.eq(sd_fifo.r_rdy), sd_fifo.r_en.eq(q.ready)]
        with m.Else():
            m.d.comb += [kv.valid.eq(sd_fifo.r_rdy), sd_fifo.r_en.eq(kv.ready)]
        m.d.comb += self.busy.eq(sd_fifo.r_en & sd_fifo.r_rdy)
        kv_and = kv.payload.k & kv.payload.v
        m.d.comb += [self.ops.count.eq(sum(kv_and[i] for i in range(p))), self.ops.valid.eq(kv.valid & kv.ready)]
        # writer of the unit's output: the driver's order (group g, time step t, token n): row n * steps + t
        so_row = Signal(range(hw.spike_rows + 1))
        so_t = Signal(fw["steps"])
        so_g = Signal(fw["groups"])
        o = self.o
        m.d.comb += o.ready.eq(1)
        with m.If(o.valid):
            with m.If(~o.payload.last):
                m.d.sync += so_row.eq(so_row + d.steps)
            with m.Elif(so_t + 1 < d.steps):
                m.d.sync += [so_t.eq(so_t + 1), so_row.eq(so_t + 1)]
            with m.Else():
                m.d.sync += [so_t.eq(0), so_row.eq(0), so_g.eq(so_g + 1)]
        with m.If(self.control.go & step.sdsa):
            m.d.sync += [so_row.eq(0), so_t.eq(0), so_g.eq(0)]
        m.d.comb += [self.write.valid.eq(o.valid),
                     self.write.addr.eq(spike_addr(hw, step.out_base + so_row, group_word(hw, so_g))),
                     self.write.data.eq(o.payload.spikes.replicate(lane_groups(hw))),
                     self.write.en.eq(group_enable(hw, so_g)),
                     self.idle.eq(~active & (so_g >= d.groups))]
        return m

    def _reader(self, m: Module, sd_fifo, sd_beat) -> Signal:
        """The loops and the spike-buffer reads into the FIFO; returns the active flag."""
        hw, p = self.hw, self.hw.lanes
        d, step = self.control.desc, self.control.step
        fw = field_bits(hw)
        nw, gpw = hw.spike_row_words, lane_groups(hw)
        sd_active = Signal()
        sd_t, sd_g = Signal(fw["steps"]), Signal(fw["groups"])
        sd_y, sd_x = Signal(fw["height"]), Signal(fw["width"])
        sd_phase = Signal()          # 0: count (kv), 1: mask (q)
        sd_row = Signal(range(hw.spike_rows + 1))   # n * steps + t
        sd_b_valid = Signal()
        split_kv = nw > 1
        sel_bits = max(1, gpw.bit_length() - 1)
        sd_b = Signal(data.StructLayout({"group": fw["groups"], "phase": 1, "last": 1, "t0": 1,
                                         "sel": sel_bits, "k_read": 1}))
        sd_issue = Signal()
        sd_pos_last = Signal()
        sd_kv = Signal()             # split_kv, count phase: 0 reads K's word, 1 reads V's word
        sd_group = Signal(fw["groups"] + 2)   # the lane group read: Q's, K's or V's of group sd_g
        m.d.comb += [sd_pos_last.eq((sd_y + 1 >= d.height) & (sd_x + 1 >= d.width)),
                     sd_issue.eq(sd_active & (sd_fifo.level + sd_b_valid < FIFO_DEPTH - 1) & self.free),
                     sd_group.eq(sd_g + Mux(sd_phase, 0, Mux(sd_kv, d.u_groups << 1, d.u_groups)))]
        m.d.comb += self.spikes.addr.eq(spike_addr(hw, step.in_base + sd_row, group_word(hw, sd_group)))
        m.d.sync += sd_b_valid.eq(sd_issue)
        with m.If(sd_issue):
            m.d.sync += [sd_b.group.eq(sd_g), sd_b.phase.eq(sd_phase), sd_b.last.eq(sd_pos_last),
                         sd_b.t0.eq(sd_t == 0), sd_b.sel.eq(sd_group),
                         sd_b.k_read.eq(~sd_phase & ~sd_kv if split_kv else 0)]

            def next_phase():   # after all tokens: count -> mask of the same (g, t), or mask -> count of the next
                m.d.sync += sd_phase.eq(~sd_phase)
                with m.If(~sd_phase):
                    m.d.sync += sd_row.eq(sd_t)
                with m.Elif(sd_t + 1 < d.steps):
                    m.d.sync += [sd_row.eq(sd_t + 1), sd_t.eq(sd_t + 1)]
                with m.Else():
                    m.d.sync += [sd_row.eq(0), sd_t.eq(0), sd_g.eq(sd_g + 1)]
                    with m.If(sd_g + 1 >= d.groups):
                        m.d.sync += sd_active.eq(0)

            def next_beat():
                with m.If(sd_pos_last):
                    m.d.sync += [sd_x.eq(0), sd_y.eq(0)]
                    next_phase()
                with m.Else():
                    m.d.sync += sd_row.eq(sd_row + d.steps)
                    step_loops(m, [Loop(sd_x, d.width), Loop(sd_y, d.height)])

            if split_kv:
                with m.If(~sd_phase & ~sd_kv):
                    m.d.sync += sd_kv.eq(1)      # K's word read: V's next, same beat
                with m.Else():
                    m.d.sync += sd_kv.eq(0)
                    next_beat()
            else:
                next_beat()
        with m.If(self.control.go & step.sdsa):
            m.d.sync += [sd_active.eq(1), sd_t.eq(0), sd_g.eq(0), sd_y.eq(0), sd_x.eq(0), sd_phase.eq(0),
                         sd_row.eq(0), sd_kv.eq(0)]
        sd_in = data.View(sd_beat, sd_fifo.w_data)
        rd = self.spikes.data
        if split_kv:
            sd_bits = Signal(p)          # the lane group read, selected from its word
            k_hold = Signal(p)
            m.d.comb += sd_bits.eq(rd.word_select(sd_b.sel, p) if gpw > 1 else rd)
            with m.If(sd_b_valid & sd_b.k_read):
                m.d.sync += k_hold.eq(sd_bits)
            m.d.comb += [sd_fifo.w_en.eq(sd_b_valid & ~sd_b.k_read),
                         sd_in.q.eq(sd_bits), sd_in.k.eq(k_hold), sd_in.v.eq(sd_bits)]
        else:
            m.d.comb += [sd_fifo.w_en.eq(sd_b_valid),
                         sd_in.q.eq(rd.word_select(sd_b.group, p)),
                         sd_in.k.eq(rd.word_select(sd_b.group + d.u_groups, p)),
                         sd_in.v.eq(rd.word_select(sd_b.group + (d.u_groups << 1), p))]
        m.d.comb += [sd_in.phase.eq(sd_b.phase), sd_in.last.eq(sd_b.last), sd_in.t0.eq(sd_b.t0)]
        return sd_active
