"""The sequencer: runs the program step by step and keeps the performance counters."""

from __future__ import annotations

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal
from amaranth.lib import data, memory, wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from spikeforge.firmware.program import KINDS, OPS, HardwareConfig, field_max

from .common import control_signature, is_conv, is_pixel_conv
from spikeforge.firmware.memory_map import LAYER_COUNTERS, descriptor_layout, hardware_counters

__all__ = ["Sequencer", "activity_layout", "counter_layout"]


def activity_layout(hw: HardwareConfig) -> data.StructLayout:
    """What the datapath did this cycle, for the counters: ``event`` an accumulator event (1 event,
    ``cout`` SOPs), ``kv`` an SDSA K, V beat (``kv_ops`` events and SOPs: its bits of K AND V), and
    the profiling counters' busy and stall flags."""
    return data.StructLayout({"event": 1, "kv": 1, "kv_ops": range(hw.lanes + 1), "accumulator_busy": 1,
                              "source_stall": 1, "post_busy": 1, "sdsa_busy": 1, "reader_busy": 1})


def counter_layout(hw: HardwareConfig) -> data.StructLayout:
    """The global counters ``hw`` has (:func:`hardware_counters`), 32 bits each."""
    return data.StructLayout({n: 32 for n in hardware_counters(hw)})


class Sequencer(wiring.Component):
    """Runs the loaded program: per step FETCH (read descriptor row ``pc``), DECODE (register the
    step's flags; END, an unknown op, a flagged row or running past the program memory stop the
    run, the last three with ``error``), START (``go``), RUN (until ``finished`` says the step's
    engine is done) and RECORD (the step's counters are final; ``pc`` + 1).

    Counts the global counters (:func:`counter_layout`: cycles while busy, events and SOPs from
    ``activity`` registered then added, the profiling counters) and writes each step's snapshot of
    :data:`LAYER_COUNTERS` into the per-step counter memory, one word a cycle in RECORD, FETCH and
    DECODE, which always follow each other (no cycle added).

    Ports
    -----
    ``start``: ``In(1)``: a one-cycle pulse runs the program from step 0 (clears the counters).
    ``busy``, ``done``, ``error``: ``Out(1)``: running; finished; the last run stopped on an error.
    ``loading``: ``In(1)``: the loader writes the program memory (the read port waits a cycle).
    ``program``: the program memory's read port; its data is the running step's descriptor.
    ``control``: ``Out(control_signature(hw))``: descriptor, decoded flags, DECODE, ``go``.
    ``finished``: ``In({"post", "sdsa", "or_pool"})``: that engine has no work left.
    ``activity``: ``In(activity_layout(hw))``; ``counters``: ``Out(counter_layout(hw))``.
    ``layers``: the per-step counter memory's write port.

    Cycle cost: 4 cycles a step besides RUN (FETCH, DECODE, START, RECORD); 3 to stop at END.
    """

    def __init__(self, hw: HardwareConfig):
        self.hw = hw
        super().__init__({
            "start": In(1), "busy": Out(1), "done": Out(1), "error": Out(1),
            "loading": In(1),
            "program": In(memory.ReadPort.Signature(addr_width=ceil_log2(hw.program_rows),
                                                    shape=descriptor_layout(hw).size)),
            "control": Out(control_signature(hw)),
            "finished": In(data.StructLayout({"post": 1, "sdsa": 1, "or_pool": 1})),
            "activity": In(activity_layout(hw)),
            "counters": Out(counter_layout(hw)),
            "layers": In(memory.WritePort.Signature(addr_width=ceil_log2(4 * hw.program_rows), shape=32)),
        })

    def elaborate(self, platform):
        m = Module()
        hw = self.hw
        pc = Signal(range(hw.program_rows + 1))
        fetch = Signal()                # FETCH: the program memory reads row ``pc``
        m.d.comb += [self.program.addr.eq(pc), self.program.en.eq(fetch & ~self.loading)]
        # the running step's descriptor: the read port holds its row until the next FETCH (no copy)
        d = data.View(descriptor_layout(hw), self.program.data)
        m.d.comb += self.control.desc.eq(self.program.data)
        self._decode(m, d)
        step_done = Signal()            # the running step has finished
        record = Signal()               # RECORD: the step's counters are final
        counters = {n: Signal(32, name=f"count_{n}") for n in hardware_counters(hw)}
        m.d.comb += [getattr(self.counters, n).eq(c) for n, c in counters.items()]
        go, busy = self.control.go, self.busy

        with m.FSM(name="sequencer"):
            with m.State("IDLE"):
                with m.If(self.start):
                    m.d.sync += [pc.eq(0), self.done.eq(0), self.error.eq(0), *[c.eq(0) for c in counters.values()]]
                    m.next = "FETCH"
            with m.State("FETCH"):
                m.d.comb += [busy.eq(1), fetch.eq(1)]
                m.next = "DECODE"
            with m.State("DECODE"):
                m.d.comb += busy.eq(1)
                m.d.comb += self.control.decode.eq(1)
                bad = (d.op > max(OPS.values())) | (pc >= hw.program_rows) | d.invalid
                with m.If((d.op == OPS["END"]) | bad):
                    # an unknown op or a program without END stops the run with the error flag set
                    m.d.sync += [self.done.eq(1), self.error.eq(bad)]
                    m.next = "IDLE"
                with m.Else():
                    m.next = "START"
            with m.State("START"):
                m.d.comb += [busy.eq(1), go.eq(1)]
                m.next = "RUN"
            with m.State("RUN"):
                m.d.comb += busy.eq(1)
                with m.If(step_done):
                    m.next = "RECORD"
            with m.State("RECORD"):
                m.d.comb += [busy.eq(1), record.eq(1)]
                m.d.sync += pc.eq(pc + 1)
                m.next = "FETCH"

        self._record(m, pc, record, counters)
        self._count(m, d, counters)
        fin = self.finished
        with m.Switch(d.op):
            with m.Case(OPS["SDSA"]):
                m.d.comb += step_done.eq(fin.sdsa & ~go)
            with m.Case(OPS["POOL_OR"]):
                m.d.comb += step_done.eq(fin.or_pool & ~go)
            with m.Default():
                m.d.comb += step_done.eq(fin.post & ~go)
        return m

    def _decode(self, m: Module, d) -> None:
        """The flags of :func:`~.common.step_layout`, registered in DECODE (``in_mask``: every cycle)."""
        hw, step = self.hw, self.control.step
        wb_log = hw.spike_word_bits.bit_length() - 1
        regs = {
            "conv": (Signal(), is_conv),
            "pixel": (Signal(), lambda x: x.kind == KINDS["pixel3x3"]),
            "sdsa": (Signal(), lambda x: x.op == OPS["SDSA"]),    # (these two select the spike-buffer address)
            "or_pool": (Signal(), lambda x: x.op == OPS["POOL_OR"]),
            # window offsets (row_stride up/down a row, steps left/right a position), registered:
            # the read address adds registers, not the program memory's output and a negation
            "up": (Signal.like(step.up), lambda x: -x.row_stride),
            "down": (Signal.like(step.down), lambda x: x.row_stride),
            "left": (Signal.like(step.left), lambda x: -x.steps),
            "right": (Signal.like(step.right), lambda x: x.steps),
            "in_base": (Signal.like(step.in_base), lambda x: x.in_base),    # the readers' base row
            "out_base": (Signal.like(step.out_base), lambda x: x.out_base),  # SDSA's writer's
            # the last word holding input channels (pixels: one word)
            "words_last": (Signal.like(step.words_last),
                           lambda x: Mux(is_pixel_conv(x) | (x.cin == 0), 0, (x.cin - 1) >> wb_log)),
        }
        for name, (sig, fn) in regs.items():
            with m.If(self.control.decode):
                m.d.sync += sig.eq(fn(d))
            m.d.comb += step[name].eq(sig)
        # the channels of a row's last word (pixels: of the pixel row), a mask of its low bits
        # 1 .. WB; registered: it depends on the descriptor only (stable in a step)
        WB = hw.spike_word_bits
        in_mask = Signal(WB)
        n_bits = Signal(hw.max_channels.bit_length() + hw.plane_bits)
        low = Signal(wb_log + 1)
        m.d.comb += [n_bits.eq(Mux(regs["pixel"][0], d.cin << hw.plane_bits, d.cin)),
                     low.eq((n_bits - 1)[:wb_log] + 1)]
        m.d.sync += in_mask.eq(Mux(n_bits == 0, 0, (Const(1, WB + 1) << low) - 1))
        m.d.comb += step.in_mask.eq(in_mask)

    def _record(self, m: Module, pc: Signal, record: Signal, counters: dict) -> None:
        """The step's counters: the global counters as the step ends (:func:`step_counters` takes
        the differences), written one word per cycle in RECORD, FETCH and DECODE. Cycles go
        first: that counter still runs in those states."""
        lc_wr = self.layers
        rec_k = Signal(2)               # the word written this cycle, 0 when none
        rec_row = Signal.like(pc)       # the recorded step
        snapshot = Array(counters[n] for n in LAYER_COUNTERS)
        with m.If(record):
            m.d.comb += [lc_wr.addr.eq(Cat(Const(0, 2), pc)), lc_wr.data.eq(snapshot[0]), lc_wr.en.eq(1)]
            m.d.sync += [rec_k.eq(1), rec_row.eq(pc)]
        with m.Elif(rec_k != 0):
            m.d.comb += [lc_wr.addr.eq(Cat(rec_k, rec_row)), lc_wr.en.eq(1), lc_wr.data.eq(snapshot[rec_k])]
            m.d.sync += rec_k.eq(Mux(rec_k == len(LAYER_COUNTERS) - 1, 0, rec_k + 1))

    def _count(self, m: Module, d, counters: dict) -> None:
        """Cycles while busy; events and SOPs counted this cycle (an accumulator event: 1 and
        ``cout``; an SDSA K, V beat: its K AND V bits), registered, then added by one adder per
        counter (a step's last count lands cycles before its RECORD); the profiling counters."""
        hw, act = self.hw, self.activity
        with m.If(self.busy):
            m.d.sync += counters["cycles"].eq(counters["cycles"] + 1)
        add_events = Signal(range(hw.lanes + 1))
        add_sops = Signal(range(max(hw.lanes, field_max(hw)["cout"]) + 1))
        added_events, added_sops = Signal.like(add_events), Signal.like(add_sops)
        m.d.sync += [added_events.eq(add_events), added_sops.eq(add_sops)]
        with m.If(added_events != 0):   # (not in IDLE, where a run's start clears them)
            m.d.sync += [counters["events"].eq(counters["events"] + added_events),
                         counters["sops"].eq(counters["sops"] + added_sops)]
        with m.If(act.event):
            m.d.comb += [add_events.eq(1), add_sops.eq(d.cout)]
        with m.If(act.kv):
            m.d.comb += [add_events.eq(act.kv_ops), add_sops.eq(act.kv_ops)]
        for name in ("accumulator_busy", "source_stall", "reader_busy", "post_busy", "sdsa_busy"):
            if name in counters:
                with m.If(act[name]):
                    m.d.sync += counters[name].eq(counters[name] + 1)
