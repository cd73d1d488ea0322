"""The arbiters of the two shared buffers: the spike buffer and the residual stream U."""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import memory, wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from spikeforge.firmware.program import HardwareConfig

from .common import (control_signature, spike_addr_bits, spike_read_signature, spike_write_signature, u_layout,
                     u_read_signature)

__all__ = ["SpikePort", "ResidualPort"]


class SpikePort(wiring.Component):
    """The one arbiter of the spike buffer's ports.

    Three readers (the vector source in a ``CONV`` step, the SDSA driver in ``SDSA``, the OR-pool
    in ``POOL_OR``) and three writers (the OR-pool, the SDSA driver's output writer, the post-op's
    LIF) share the buffer; the running step's op class picks whose request reaches the memory (no
    step has two readers or two writers). The read data goes to every reader.

    With ``single_port_buffers`` the buffer has one address port (single-port RAM such as SPRAM):
    a write takes it for its cycle, ``free`` is low and the readers do not issue in that cycle.
    Otherwise ``free`` is always high and the write port has its own address.

    Ports
    -----
    ``control``: ``In(control_signature(hw))``: the op class flags (``step``).
    ``source``, ``sdsa``, ``pool``: ``In(spike_read_signature(hw))``: read requests.
    ``lif_write``, ``sdsa_write``, ``pool_write``: ``In(spike_write_signature(hw))``: write requests.
    ``free``: ``Out(1)``: no write takes the (single) port this cycle.
    ``read``, ``write``: to the memory's read and write ports.

    Cycle cost: none (combinational); a read's data comes the cycle after its address (the
    memory's latency).
    """

    def __init__(self, hw: HardwareConfig):
        self.hw = hw
        abits = spike_addr_bits(hw)
        super().__init__({
            "control": In(control_signature(hw)),
            "source": In(spike_read_signature(hw)),
            "sdsa": In(spike_read_signature(hw)),
            "pool": In(spike_read_signature(hw)),
            "lif_write": In(spike_write_signature(hw)),
            "sdsa_write": In(spike_write_signature(hw)),
            "pool_write": In(spike_write_signature(hw)),
            "free": Out(1, init=1),
            "read": In(memory.ReadPort.Signature(addr_width=abits, shape=hw.spike_word_bits)),
            "write": In(memory.WritePort.Signature(addr_width=abits, shape=hw.spike_word_bits,
                                                   granularity=hw.lanes)),
        })

    def elaborate(self, platform):
        m = Module()
        step = self.control.step
        rd, wr = self.read, self.write
        for reader in (self.source, self.sdsa, self.pool):
            m.d.comb += reader.data.eq(rd.data)
        with m.If(step.conv):
            m.d.comb += rd.addr.eq(self.source.addr)
        with m.If(step.sdsa):
            m.d.comb += rd.addr.eq(self.sdsa.addr)
        m.d.comb += rd.en.eq(1)
        with m.If(step.or_pool):
            m.d.comb += rd.addr.eq(self.pool.addr)
        wa = Signal.like(wr.addr)       # the write's address
        writing = Signal()              # a write this cycle (any of its lane groups)
        with m.If(step.or_pool):
            self._write(m, self.pool_write, wa, writing)
        with m.Elif(step.sdsa):
            self._write(m, self.sdsa_write, wa, writing)
        with m.Else():
            self._write(m, self.lif_write, wa, writing)
        if self.hw.single_port_buffers:
            # a write takes the one address port; the read enable is off in its cycle (SPRAM
            # cannot read and write at once)
            m.d.comb += self.free.eq(~writing)
            with m.If(~self.free):
                m.d.comb += rd.addr.eq(wa)
            m.d.comb += [wr.addr.eq(rd.addr), rd.en.eq(self.free)]
        else:
            m.d.comb += wr.addr.eq(wa)
        return m

    def _write(self, m: Module, req, wa: Signal, writing: Signal) -> None:
        m.d.comb += [wa.eq(req.addr), self.write.data.eq(req.data), writing.eq(req.valid),
                     self.write.en.eq(Mux(writing, req.en, 0))]


class ResidualPort(wiring.Component):
    """The arbiter of the residual stream U's ports.

    The U reader (``LIF_U``, ``GAP``) and the post-op's read-modify-write (``CONV``: U write, add,
    max-pool) read U; the post-op writes it. With two ports (the default) each reader has its own
    read port (the read-modify-write one transparent for the write) and nothing is shared. With
    ``single_port_buffers`` one address port serves all three: the ``CONV`` step's read-modify-write
    or else the U reader reads, and a write takes the port for its cycle (``free`` low: the post-op
    holds its next beat back a cycle).

    Ports
    -----
    ``control``: ``In(control_signature(hw))``: ``step.conv`` picks the reader (one port).
    ``reader``, ``rmw``: ``In(u_read_signature(hw))``: read requests.
    ``update``: ``Out(memory.WritePort.Signature)``: the post-op's write.
    ``free``: ``Out(1)``: no write takes the (single) port this cycle.
    ``read`` (and with two ports ``rmw_read``), ``write``: to the memory's ports.

    Cycle cost: none (combinational).
    """

    def __init__(self, hw: HardwareConfig):
        self.hw = hw
        sig = memory.ReadPort.Signature(addr_width=ceil_log2(hw.u_rows), shape=u_layout(hw))
        members = {
            "control": In(control_signature(hw)),
            "reader": In(u_read_signature(hw)),
            "rmw": In(u_read_signature(hw)),
            "update": Out(memory.WritePort.Signature(addr_width=ceil_log2(hw.u_rows), shape=u_layout(hw))),
            "free": Out(1, init=1),
            "read": In(sig),
            "write": In(memory.WritePort.Signature(addr_width=ceil_log2(hw.u_rows), shape=u_layout(hw))),
        }
        if not hw.single_port_buffers:
            members["rmw_read"] = In(sig)
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        rd, wr = self.read, self.write
        m.d.comb += [rd.addr.eq(self.reader.addr), rd.en.eq(1), self.reader.data.eq(rd.data),
                     wr.data.eq(self.update.data), wr.en.eq(self.update.en)]
        if not self.hw.single_port_buffers:
            m.d.comb += [self.rmw_read.addr.eq(self.rmw.addr), self.rmw_read.en.eq(1),
                         self.rmw.data.eq(self.rmw_read.data), wr.addr.eq(self.update.addr)]
            return m
        m.d.comb += self.rmw.data.eq(rd.data)
        with m.If(self.control.step.conv):   # one port: the U reader's otherwise
            m.d.comb += rd.addr.eq(self.rmw.addr)
        m.d.comb += self.free.eq(~wr.en)
        with m.If(~self.free):
            m.d.comb += rd.addr.eq(self.update.addr)
        m.d.comb += [wr.addr.eq(rd.addr), rd.en.eq(self.free)]
        return m
