"""BoardTop: the accelerator behind its host link, the design a board (or the virtual board) runs.

``BoardTop(hw, link="uart", clock_hz, baud)`` is :class:`~spikeforge.hdl.accelerator.Accelerator`
plus :class:`~spikeforge.hdl.host_link.HostLink`, with either

* ``link="uart"``: two pins, ``rx`` (``In(1)``) and ``tx`` (``Out(1)``), 8N1 at ``baud`` from a
  ``clock_hz`` clock (the divisor ``round(clock_hz / baud)`` is fixed at generation time), or
* ``link="stream"``: the AXI4-Stream-style byte ports ``s_axis`` (``In(stream.Signature(8))``) and
  ``m_axis`` (``Out(stream.Signature({"data": 8, "last": 1}))``) for a PCIe DMA engine.

The HELLO reply (protocol and format versions, the hardware-config hash and capacities, link,
clock and baud) is fixed at generation time. The host's RESET command resets the accelerator
through a ``ResetInserter``; the link itself and the memories keep running / their contents.
The virtual board (``sim://``) simulates exactly this top; a board build adds pads and clocking.
"""

from __future__ import annotations

from amaranth.hdl import Module, ResetInserter
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from spikeforge.firmware.program import LINKS, HardwareConfig, uart_divisor
from spikeforge.firmware.protocol import hello_payload

from .accelerator import Accelerator
from .host_link import WIRE_BYTE, HostLink, UARTReceiver, UARTTransmitter

__all__ = ["BoardTop", "AXIStreamTop", "uart_divisor"]


class BoardTop(wiring.Component):
    """The accelerator and its host link (see the module docstring)."""

    def __init__(self, hw: HardwareConfig, link: str = "uart", clock_hz: int = 12_000_000, baud: int = 3_000_000):
        if link not in LINKS:
            raise ValueError(f"BoardTop: unknown link {link!r}; links: {', '.join(LINKS)}")
        self.hw, self.link, self.clock_hz = hw, link, clock_hz
        self.baud = baud if link == "uart" else 0
        try:
            self.divisor = uart_divisor(clock_hz, baud) if link == "uart" else None
        except ValueError:
            self._MustUse__silence = True   # refused: no "created but never used" warning
            raise
        self.accelerator = Accelerator(hw)
        self.hello = hello_payload(hw, link, clock_hz, self.baud)
        ports = {"rx": In(1), "tx": Out(1, init=1)} if link == "uart" else \
            {"s_axis": In(stream.Signature(8)), "m_axis": Out(stream.Signature(WIRE_BYTE))}
        super().__init__(ports)

    def elaborate(self, platform):
        m = Module()
        m.submodules.link = link = HostLink(self.hw, self.hello)
        m.submodules.accelerator = ResetInserter(link.accel_reset)(self.accelerator)
        acc = self.accelerator
        wiring.connect(m, link.write, acc.write)
        m.d.comb += [acc.start.eq(link.start), acc.read_addr.eq(link.read_addr), link.read_data.eq(acc.read_data)]
        if self.link == "uart":
            m.submodules.uart_rx = urx = UARTReceiver(self.divisor)
            m.submodules.uart_tx = utx = UARTTransmitter(self.divisor)
            m.d.comb += [urx.rx.eq(self.rx), self.tx.eq(utx.tx)]
            wiring.connect(m, urx.bytes, link.rx)
            m.d.comb += [utx.bytes.valid.eq(link.tx.valid), utx.bytes.payload.eq(link.tx.payload.data),
                         link.tx.ready.eq(utx.bytes.ready)]
        else:
            wiring.connect(m, wiring.flipped(self.s_axis), link.rx)
            wiring.connect(m, link.tx, wiring.flipped(self.m_axis))
        return m


class AXIStreamTop(wiring.Component):
    """:class:`BoardTop` with ``link="stream"`` under the AXI4-Stream port names vendor tools infer
    (``s_axis_tdata/tvalid/tready``, ``m_axis_tdata/tlast/tvalid/tready``; ``clk``, ``rst`` active
    high): the top of the ``verilog`` build target. The wrapper only renames ports."""

    def __init__(self, hw: HardwareConfig, clock_hz: int):
        self.board_top = BoardTop(hw, "stream", clock_hz=clock_hz)
        super().__init__({"s_axis_tdata": In(8), "s_axis_tvalid": In(1), "s_axis_tready": Out(1),
                          "m_axis_tdata": Out(8), "m_axis_tlast": Out(1), "m_axis_tvalid": Out(1),
                          "m_axis_tready": In(1)})

    def elaborate(self, platform):
        m = Module()
        m.submodules.board_top = top = self.board_top
        m.d.comb += [top.s_axis.payload.eq(self.s_axis_tdata), top.s_axis.valid.eq(self.s_axis_tvalid),
                     self.s_axis_tready.eq(top.s_axis.ready),
                     self.m_axis_tdata.eq(top.m_axis.payload.data), self.m_axis_tlast.eq(top.m_axis.payload.last),
                     self.m_axis_tvalid.eq(top.m_axis.valid), top.m_axis.ready.eq(self.m_axis_tready)]
        return m
