"""The read map: the host's synchronous view of logits, counters, identity and status."""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Mux, Signal, signed
from amaranth.lib import data, memory, wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from spikeforge.firmware.program import FORMAT_VERSION, HardwareConfig

from spikeforge.firmware.memory_map import COUNTERS, READ_MAP
from .sequencer import counter_layout

__all__ = ["ReadMap", "logit_layout", "logit_rows"]


def logit_layout(hw: HardwareConfig) -> data.ArrayLayout:
    """A row of the logit memory: P lanes of ``logit_bits`` (row g: lane group g's classes)."""
    return data.ArrayLayout(signed(hw.logit_bits), hw.lanes)


def logit_rows(hw: HardwareConfig) -> int:
    return -(-hw.max_classes // hw.lanes)


class ReadMap(wiring.Component):
    """Answers ``addr`` with the word of :data:`READ_MAP` there, on ``data`` a cycle later.

    Logits ``0x000 + k`` (lane ``k % P`` of logit row ``k // P``, sign-extended), the global
    counters at ``0x100``, the hardware id, format version and status (busy, done, error) at
    ``0x180 .. 0x182``, the per-step counters from ``0x200`` (their memory's read port, which
    waits in the cycles the sequencer writes it); other addresses read 0.

    Ports
    -----
    ``addr``: ``In(16)``; ``data``: ``Out(32)``: the word at the previous cycle's ``addr``.
    ``counters``: ``In(counter_layout(hw))``; ``status``: ``In({"busy", "done", "error"})``.
    ``layers``: the per-step counter memory's read port; ``recording``: ``In(1)``: it is written.
    ``logit_row``: ``Out``: the logit row to read (the top lets the post-op have the logit
    memory's read port while busy); ``logits``: ``In(logit_layout(hw))``: that row, a cycle later.

    Cycle cost: one cycle of latency, one read a cycle.
    """

    def __init__(self, hw: HardwareConfig, hw_id: int):
        self.hw, self.hw_id = hw, hw_id
        self.lane_bits = hw.lanes.bit_length() - 1
        super().__init__({
            "addr": In(16), "data": Out(32),
            "counters": In(counter_layout(hw)),
            "status": In(data.StructLayout({"busy": 1, "done": 1, "error": 1})),
            "layers": In(memory.ReadPort.Signature(addr_width=ceil_log2(4 * hw.program_rows), shape=32)),
            "recording": In(1),
            "logit_row": Out(16 - self.lane_bits),
            "logits": In(logit_layout(hw)),
        })

    def elaborate(self, platform):
        m = Module()
        p, lane_bits = self.hw.lanes, self.lane_bits
        lc_rd = self.layers
        ra = self.addr
        read_q = Signal(32)
        from_layers = Signal()
        from_logits = Signal()
        logit_lane = Signal(range(p))
        m.d.comb += [lc_rd.addr.eq(ra - READ_MAP["layers"]), lc_rd.en.eq(~self.recording),
                     self.logit_row.eq(ra[lane_bits:])]
        m.d.sync += [from_layers.eq(ra >= READ_MAP["layers"]), from_logits.eq(ra < logit_rows(self.hw) * p),
                     logit_lane.eq(ra[:lane_bits]), read_q.eq(0)]
        with m.Switch(ra):              # one flat decode of the addresses (no compares)
            for i, n in enumerate(COUNTERS):
                if n in self.counters.shape().members:
                    with m.Case(READ_MAP["counters"] + i):
                        m.d.sync += read_q.eq(self.counters[n])
            with m.Case(READ_MAP["hw_id"]):
                m.d.sync += read_q.eq(self.hw_id)
            with m.Case(READ_MAP["format"]):
                m.d.sync += read_q.eq(FORMAT_VERSION)
            with m.Case(READ_MAP["status"]):
                m.d.sync += read_q.eq(Cat(self.status.busy, self.status.done, self.status.error))
        m.d.comb += self.data.eq(Mux(from_layers, lc_rd.data,
                                     Mux(from_logits, self.logits[logit_lane], read_q)))   # (sign-extended)
        return m
