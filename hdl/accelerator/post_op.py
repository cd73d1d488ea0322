"""The post-op: what happens to each P-lane sum (LIF, U write / add / max-pool, logits)."""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal, signed
from amaranth.lib import data, memory, stream, wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from spikeforge.firmware.program import OPS, POSTS, HardwareConfig, field_bits

from ..lif_array import lif_update
from .common import (Loop, control_signature, decoded, group_enable, group_word, is_conv, is_pixel_conv, lane_groups,
                     spike_addr, spike_write_signature, step_loops, u_beat_layout, u_layout, u_read_signature,
                     v_layout)
from .read_map import logit_layout, logit_rows

__all__ = ["PostOp"]


class PostOp(wiring.Component):
    """Applies a step's post-op to each P-lane beat, in a 3-stage pipeline.

    Input by op: ``CONV`` the accumulator's sums (``sums``), ``LIF_U`` U's rows (``u_beats``),
    ``GAP`` U's rows through the token sum (``gap_in`` out, ``gap_out`` back). Loops (mirroring
    the producer): position (py, px), then t, then group; a pixel layer (``repeat`` = T) goes
    position, group, t and uses each beat for all T steps. A max-pool beat updates up to 4 pooled
    positions (targets ty, tx). Stage 1 addresses the membrane, threshold, U and logit rows;
    stage 2 computes: ``LIF`` (and ``LIF_U``, ``GAP``) the LIF update (membrane written back,
    ``golden.lif``), ``U_WRITE`` / ``U_ADD`` / ``U_MAXPOOL`` a read-modify-write of U, ``LOGITS``
    logits += x over T; stage 3 writes the LIF's spikes to the spike buffer (the membrane update
    is the only path that has to close in one cycle: the next time step's beat reads it).

    Ports
    -----
    ``control``: ``In(control_signature(hw))``; starts on ``go`` unless SDSA or POOL_OR.
    ``sums``, ``u_beats``, ``gap_out``: ``In(stream.Signature)``; ``gap_in``: ``Out``.
    ``membranes_read`` / ``membranes_write``, ``thresholds`` (``thresholds_written``: held while
    the loader writes), ``logits_write``: memory ports; ``logit_row``: ``Out``, ``logits_old``:
    ``In``: the logit memory's read port (the top shares it with the read map).
    ``u_rmw``: ``Out(u_read_signature(hw))``, ``u_write``: U's write (through the residual-port
    arbiter); ``u_free``: ``In(1)``: U's single port is free (else the beat waits).
    ``spikes``: ``Out(spike_write_signature(hw))``: the LIF's spikes.
    ``busy``: ``Out(1)``: a beat is taken (``post_busy``); ``idle``: ``Out(1)``: nothing left.

    Cycle cost: one beat a cycle (a max-pool beat one cycle per pooled target, a pixel-layer beat
    one per time step); with one U port a beat that writes U takes two; 3 cycles of latency.
    """

    def __init__(self, hw: HardwareConfig, sum_layout: data.Layout, gap_in_layout: data.Layout,
                 gap_out_layout: data.Layout):
        self.hw = hw
        fw = field_bits(hw)
        ubits = ceil_log2(hw.u_rows)
        super().__init__({
            "control": In(control_signature(hw)),
            "sums": In(stream.Signature(sum_layout)),
            "u_beats": In(stream.Signature(u_beat_layout(hw))),
            "gap_in": Out(stream.Signature(gap_in_layout)),
            "gap_out": In(stream.Signature(gap_out_layout)),
            "membranes_read": In(memory.ReadPort.Signature(addr_width=ceil_log2(hw.groups), shape=v_layout(hw))),
            "membranes_write": In(memory.WritePort.Signature(addr_width=ceil_log2(hw.groups), shape=v_layout(hw))),
            "thresholds": In(memory.ReadPort.Signature(addr_width=ceil_log2(hw.threshold_rows), shape=v_layout(hw))),
            "thresholds_written": In(1),
            "logit_row": Out(fw["groups"]),
            "logits_old": In(logit_layout(hw)),
            "logits_write": In(memory.WritePort.Signature(addr_width=ceil_log2(logit_rows(hw)),
                                                          shape=logit_layout(hw))),
            "u_rmw": Out(u_read_signature(hw)),
            "u_write": In(memory.WritePort.Signature(addr_width=ubits, shape=u_layout(hw))),
            "u_free": In(1, init=1),
            "spikes": Out(spike_write_signature(hw)),
            "busy": Out(1),
            "idle": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        hw = self.hw
        in_bits = max(hw.acc_bits, hw.u_bits, hw.gap_bits)
        pin_valid, pin_ready = Signal(), Signal()
        pin_x = Signal(data.ArrayLayout(signed(in_bits), hw.lanes))
        self._input(m, pin_valid, pin_ready, pin_x)
        s1 = self._stage1(m, pin_valid, pin_ready)
        s2, s2_g, s2_row = self._stage2(m, pin_x, s1)
        # stage 3: the LIF's spikes are written to the spike buffer a cycle later
        s3 = Signal()
        s3_spikes = Signal(hw.lanes)
        s3_row, s3_g = Signal.like(s2_row), Signal.like(s2_g)
        m.d.sync += [s3.eq(s2 & s1["is_lif"]), s3_spikes.eq(s1["spikes"]), s3_row.eq(s2_row), s3_g.eq(s2_g)]
        m.d.comb += [self.spikes.valid.eq(s3), self.spikes.addr.eq(spike_addr(hw, s3_row, group_word(hw, s3_g))),
                     self.spikes.data.eq(s3_spikes.replicate(lane_groups(hw))),
                     self.spikes.en.eq(group_enable(hw, s3_g)),
                     self.idle.eq(~s1["active"] & ~s2 & ~s3)]
        return m

    def _input(self, m: Module, pin_valid, pin_ready, pin_x) -> None:
        """The beat's source by op."""
        sums, ub, gi, go_ = self.sums, self.u_beats, self.gap_in, self.gap_out
        with m.Switch(self.control.desc.op):
            with m.Case(OPS["CONV"]):
                m.d.comb += [pin_valid.eq(sums.valid), sums.ready.eq(pin_ready)]
                for lane in range(self.hw.lanes):
                    m.d.comb += pin_x[lane].eq(sums.payload.acc[lane])
            with m.Case(OPS["LIF_U"]):
                m.d.comb += [pin_valid.eq(ub.valid), ub.ready.eq(pin_ready)]
                for lane in range(self.hw.lanes):
                    m.d.comb += pin_x[lane].eq(ub.payload.x[lane])
            with m.Case(OPS["GAP"]):
                m.d.comb += [gi.valid.eq(ub.valid), ub.ready.eq(gi.ready),
                             gi.payload.x.eq(ub.payload.x), gi.payload.first.eq(ub.payload.first),
                             gi.payload.last.eq(ub.payload.last),
                             pin_valid.eq(go_.valid), go_.ready.eq(pin_ready)]
                for lane in range(self.hw.lanes):
                    m.d.comb += pin_x[lane].eq(go_.payload.y[lane])

    def _stage1(self, m: Module, pin_valid, pin_ready) -> dict:  # noqa: C901 (one loop nest)
        """The loops and the stage-1 addresses; the stage-2 registers' inputs."""
        hw, ctl = self.hw, self.control
        d, step = ctl.desc, ctl.step
        fw = field_bits(hw)
        post_active = Signal()
        py, px, pt, pg = Signal(fw["height"]), Signal(fw["width"]), Signal(fw["steps"]), Signal(fw["groups"])
        ty, tx = Signal(), Signal()
        urow = Signal(range(hw.u_rows + 1))       # U row of (position, t, group), sequential
        ybase = Signal(range(hw.u_rows + 1))
        xbase = Signal(range(hw.u_rows + 1))
        tgu = Signal(range(hw.u_rows + 1))         # t * u_groups + g
        orow = Signal(range(hw.spike_rows + 1))    # out_base + position * T_out
        pos_h = Signal(fw["height"])
        pos_w = Signal(fw["width"])
        t_out = Signal(fw["steps"])
        decoded(m, ctl, pos_h, lambda x: Mux(x.op == OPS["GAP"], 1, x.height))
        decoded(m, ctl, pos_w, lambda x: Mux(x.op == OPS["GAP"], 1, x.width))
        decoded(m, ctl, t_out, lambda x: Mux(is_pixel_conv(x), x.repeat, x.steps))
        is_lif = Signal(init=1)
        decoded(m, ctl, is_lif, lambda x: ~is_conv(x) | (x.post == POSTS["LIF"]))
        is_pool = Signal()
        decoded(m, ctl, is_pool, lambda x: is_conv(x) & (x.post == POSTS["U_MAXPOOL"]))
        repeat_mode = Signal()
        decoded(m, ctl, repeat_mode, is_pixel_conv)

        more_ty = Signal()
        more_tx = Signal()
        m.d.comb += [more_ty.eq(is_pool & py[0] & (py + 1 < d.height) & ~ty),
                     more_tx.eq(is_pool & px[0] & (px + 1 < d.width) & ~tx)]
        # a beat is consumed on its final use (last pool target, last repeat step)
        consume = Signal()
        m.d.comb += consume.eq(Mux(repeat_mode, pt + 1 >= t_out, ~more_ty & ~more_tx))
        step_ = self.busy
        m.d.comb += [step_.eq(post_active & pin_valid & self.u_free), pin_ready.eq(post_active & consume & self.u_free)]

        # stage-1 addresses
        u_target = Signal(range(2 * hw.u_rows + 2))
        m.d.comb += u_target.eq(Mux(is_pool, ybase + xbase + tgu + Mux(ty, d.u_row_stride, 0)
                                    + Mux(tx, d.u_pos_stride, 0), urow))
        v_rd, th_rd = self.membranes_read, self.thresholds
        m.d.comb += [v_rd.addr.eq(pg), v_rd.en.eq(1), th_rd.addr.eq(d.th_base + pg),
                     th_rd.en.eq(~self.thresholds_written)]
        m.d.comb += [self.logit_row.eq(pg), self.u_rmw.addr.eq(u_target)]
        s2_in = {"x": None, "u": u_target, "g": pg, "row": orow + pt, "t0": pt == 0,
                 "first": (ty | (py == 0)) & (tx | (px == 0))}
        with m.If(step_):
            new_position = [orow.eq(orow + t_out), tgu.eq(0)]
            finish = [post_active.eq(0)]

            def next_x():
                with m.If(px[0]):   # next x is even: a new pooled column
                    m.d.sync += xbase.eq(xbase + d.u_pos_stride)

            def next_y():
                with m.If(py[0]):   # next y is even: a new pooled row
                    m.d.sync += ybase.eq(ybase + d.u_row_stride)

            positions = [Loop(px, pos_w, next_x, [xbase.eq(0)]), Loop(py, pos_h, next_y)]

            with m.If(more_tx):
                m.d.sync += tx.eq(1)
            with m.Elif(more_ty):
                m.d.sync += [ty.eq(1), tx.eq(0)]
            with m.Else():
                m.d.sync += [ty.eq(0), tx.eq(0), urow.eq(urow + 1)]
                with m.If(repeat_mode):
                    # position, group, t
                    step_loops(m, [Loop(pt, t_out), Loop(pg, d.groups, on_wrap=new_position), *positions], finish)
                with m.Else():
                    m.d.sync += tgu.eq(tgu + 1)
                    step_loops(m, [Loop(pg, d.groups), Loop(pt, t_out, on_wrap=new_position), *positions], finish)
        with m.If(ctl.go & ~step.sdsa & ~step.or_pool):
            m.d.sync += [post_active.eq(1), py.eq(0), px.eq(0), pt.eq(0), pg.eq(0), ty.eq(0), tx.eq(0),
                         urow.eq(0), ybase.eq(0), xbase.eq(0), tgu.eq(0), orow.eq(d.out_base)]
        return {"active": post_active, "step": step_, "is_lif": is_lif, "is_pool": is_pool, "s2_in": s2_in,
                "orow": orow}

    def _stage2(self, m: Module, pin_x, s1: dict):
        """Stage 2: compute and write (membranes, U, logits); the LIF's spikes."""
        hw = self.hw
        ctl = self.control
        s2_in = s1["s2_in"]
        s2 = Signal()
        s2_x = Signal.like(pin_x)
        s2_first = Signal()
        s2_t0 = Signal()
        s2_u = Signal.like(s2_in["u"])
        s2_g = Signal.like(s2_in["g"])
        s2_row = Signal.like(s1["orow"])
        m.d.sync += s2.eq(s1["step"])
        with m.If(s1["step"]):
            m.d.sync += [s2_x.eq(pin_x), s2_u.eq(s2_in["u"]), s2_g.eq(s2_in["g"]), s2_row.eq(s2_in["row"]),
                         s2_t0.eq(s2_in["t0"]), s2_first.eq(s2_in["first"])]
        post = ctl.desc.post
        is_conv_ = ctl.step.conv
        spikes = Signal(hw.lanes)
        v_new = Signal(v_layout(hw))
        v_rd, th_rd = self.membranes_read, self.thresholds
        for lane in range(hw.lanes):
            v_old = Signal(signed(hw.v_bits), name=f"v_old{lane}")
            m.d.comb += v_old.eq(Mux(s2_t0, 0, v_rd.data[lane]))
            s, v = lif_update(m, s2_x[lane], v_old, th_rd.data[lane], 1, hw.v_bits)
            m.d.comb += [spikes[lane].eq(s), v_new[lane].eq(v)]
        u_new = Signal(u_layout(hw))
        lg_new = Signal(logit_layout(hw))
        lg_old = self.logits_old
        for lane in range(hw.lanes):
            old, x = self.u_rmw.data[lane], s2_x[lane]
            with m.Switch(post):
                with m.Case(POSTS["U_ADD"]):
                    m.d.comb += u_new[lane].eq(old + x)
                with m.Case(POSTS["U_MAXPOOL"]):
                    m.d.comb += u_new[lane].eq(Mux(s2_first | (x > old), x, old))
                with m.Default():
                    m.d.comb += u_new[lane].eq(x)
            m.d.comb += lg_new[lane].eq(Mux(s2_t0, x, lg_old[lane] + x))
        is_u_post = Signal()
        m.d.comb += is_u_post.eq(is_conv_ & ((post == POSTS["U_WRITE"]) | (post == POSTS["U_ADD"]) | s1["is_pool"]))
        v_wr, u_wr, lg_wr = self.membranes_write, self.u_write, self.logits_write
        m.d.comb += [
            v_wr.addr.eq(s2_g), v_wr.data.eq(v_new), v_wr.en.eq(s2 & s1["is_lif"]),
            u_wr.addr.eq(s2_u), u_wr.data.eq(u_new), u_wr.en.eq(s2 & is_u_post),
        ]
        m.d.comb += [lg_wr.addr.eq(s2_g), lg_wr.data.eq(lg_new),
                     lg_wr.en.eq(s2 & is_conv_ & (post == POSTS["LOGITS"]))]
        s1["spikes"] = spikes
        return s2, s2_g, s2_row
