"""Accelerator: the whole Spike-driven Transformer overlay, programmed at run time.

One generated :class:`Accelerator` runs any quantized model that fits its
:class:`~spikeforge.firmware.program.HardwareConfig`: the host loads a program (layer
descriptors), weights, biases, thresholds and an image through one write port, pulses
``start`` and reads the logits and performance counters back. ``docs/firmware.md`` describes
the program; ``docs/accelerator.md`` the datapath.

Datapath of a synaptic layer (a ``CONV`` descriptor), one stream pipeline::

    VectorSource -> SpikeEncoder -> SparseAccumulator -> PostOp
    (spike / pixel    (set bits ->     (P lanes, weight     (LIF -> spike buffer; or U write / add /
     buffer reads,     events)          column per event)    max-pool into the residual buffer; or logits)
     zero taps skipped)

* loop order: output position outer, time step inner (``docs/accelerator.md``): a LIF membrane
  lives only while its position is processed (a ``groups``-deep membrane memory);
* 3x3 convolutions are *gathered*: each output position's vector holds the in-map taps of its
  3x3 window (column ``tap * C_in + c``), so every (input spike, output position) pair is one
  event, exactly the scatter count, while the accumulators stay P registers;
* the first layer reads pixels packed plane-minor; the encoder turns bit ``b`` of a pixel into an
  event whose weight column is added shifted left by ``b`` (bit-plane accumulation);
* ``LIF_U`` (LIF of the residual stream U), ``SDSA`` (via :class:`SDSAUnit`) and ``GAP`` (via
  :class:`TokenSum` and the head LIF) are the other steps.

Ports
-----
``write``: ``In(stream.Signature({"space", "addr", "data": 32}))``, always ready
    32-bit word ``addr % 2**k`` of row ``addr >> k`` of memory ``space``
    (:data:`~spikeforge.firmware.program.SPACES`; ``k`` = :meth:`Accelerator.word_bits`); a row is
    written in the cycle after its final word arrives (words of a row in order); a program row
    field by field as its words arrive, word 0 first.
``start``: ``In(1)``: a one-cycle pulse runs the loaded program from step 0.
``busy``, ``done``: ``Out(1)``: running; finished (until the next ``start``).
``read_addr``: ``In(16)``, ``read_data``: ``Out(32)``: synchronous read of logits and counters
    (:data:`READ_MAP`): ``read_data`` is the word at the ``read_addr`` of the previous cycle.

Cycle cost: a synaptic layer takes about ``max(events, 1) * groups`` cycles per output vector,
overlapped with reading its input and writing its output (measured per layer by the counters).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal, Value, signed
from amaranth.lib import data, fifo, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from spikeforge.firmware.program import (FIELDS, FORMAT_VERSION, KINDS, MAX_WEIGHT_SHIFT, OPS, POSTS, SPACES,
                                         HardwareConfig, field_bits, field_max, pack_lanes, row_bits, row_words,
                                         memory_problem, write_port_layout)

from .lif_array import lif_update
from .reduce import TokenSum
from .register_slice import RegisterSlice
from .sdsa_unit import SDSAUnit
from .sparse_accumulator import SparseAccumulator
from .spike_encoder import SpikeEncoder

__all__ = ["Accelerator", "READ_MAP", "COUNTERS", "PROFILE_COUNTERS", "LAYER_COUNTERS", "hardware_counters",
           "named_counters", "recorded_steps", "step_counters", "write_layout", "descriptor_layout"]

# The memory map and the control bus are the contract in firmware/memory_map.py (imported here
# under their old names, which the rest of this module and its users still use).
from spikeforge.firmware.memory_map import (COUNTERS, LAYER_COUNTERS, PROFILE_COUNTERS, READ_MAP,  # noqa: E402
                                            descriptor_layout, hardware_counters, named_counters,
                                            recorded_steps, step_counters, write_layout)

_FIFO_DEPTH = 4


def _words(bits: int) -> int:
    return -(-bits // 32)


#: Extra work of a loop step: synchronous statements, or a function that adds them (conditional ones).
_Hook = Callable[[], None] | list | None


@dataclass
class _Loop:
    """One counter of a loop nest: ``counter`` runs ``0 .. limit - 1``; ``on_step`` / ``on_wrap`` run
    when it increments / wraps back to 0."""

    counter: Value
    limit: Value
    on_step: _Hook = None
    on_wrap: _Hook = None


def _run_hook(m: Module, hook: _Hook) -> None:
    if callable(hook):
        hook()
    elif hook:
        m.d.sync += hook


def _step_loops(m: Module, loops: list[_Loop], done: _Hook = None) -> None:
    """Statements that advance a loop nest by one iteration, innermost loop first: a counter that
    reaches its limit wraps to 0 and carries into the next; ``done`` runs when the outermost wraps."""
    loop = loops[0]
    with m.If(loop.counter + 1 < loop.limit):
        m.d.sync += loop.counter.eq(loop.counter + 1)
        _run_hook(m, loop.on_step)
    with m.Else():
        m.d.sync += loop.counter.eq(0)
        _run_hook(m, loop.on_wrap)
        if len(loops) > 1:
            _step_loops(m, loops[1:], done)
        else:
            _run_hook(m, done)


class Accelerator(wiring.Component):
    """The SDT v1 overlay for a :class:`HardwareConfig` (see the module docstring)."""

    def __init__(self, hw: HardwareConfig):
        if not isinstance(hw, HardwareConfig):
            raise TypeError(f"Accelerator: expected a HardwareConfig, got {type(hw).__name__}")
        problem = memory_problem(hw)
        if problem:   # before anything is built: generating memories this large would run out of time or memory
            raise ValueError(f"Accelerator: {problem}")
        self.hw = hw
        self.row_bits = row_bits(hw)
        self.word_bits, self.addr_bits = write_port_layout(hw)
        super().__init__({
            "write": In(stream.Signature(write_layout(hw))),
            "start": In(1),
            "busy": Out(1),
            "done": Out(1),
            "read_addr": In(16),
            "read_data": Out(32),
        })

    def hw_id(self) -> int:
        """The first 32 bits of the hardware-config hash (readable at ``READ_MAP["hw_id"]``)."""
        return int(self.hw.config_hash()[:8], 16)

    def write_words(self, space: str, row: int, value: int) -> list[dict]:
        """The ``write`` beats that load ``value`` (an integer of the row's bits) into ``row`` of ``space``."""
        words = row_words(value, _words(self.row_bits[space]))
        return [{"space": SPACES[space], "addr": (row << self.word_bits) | k, "data": w} for k, w in enumerate(words)]

    def pack_lanes(self, space: str, values: list[int]) -> int:
        """P signed lane values -> the row integer of ``space`` (weights, biases or thresholds)."""
        return pack_lanes(values, self.row_bits[space] // self.hw.lanes)

    # ---------------------------------------------------------------------------------- gateware

    def elaborate(self, platform):  # noqa: C901 (one datapath, sectioned below)
        m = Module()
        hw, p = self.hw, self.hw.lanes
        W = hw.max_channels
        nw, WB = hw.spike_row_words, hw.spike_word_bits   # a spike-buffer row: nw words of WB bits
        wb_log, gpw = WB.bit_length() - 1, WB // p           # gpw: lane groups per word
        gcap = hw.groups
        in_bits = max(hw.acc_bits, hw.u_bits, hw.gap_bits)
        dense = not hw.event_driven

        # ------------------------------------------------------------------ memories
        desc_layout = descriptor_layout(hw)
        fw = field_bits(hw)             # loop counters are as wide as the descriptor fields they count to
        m.submodules.program = prog_mem = memory.Memory(shape=desc_layout.size, depth=hw.program_rows, init=[])
        m.submodules.spike_buffer = spk_mem = memory.Memory(shape=WB, depth=hw.spike_rows * nw, init=[])

        def spike_addr(row, word) -> Value:
            """The spike-buffer address of ``word`` of ``row`` (word-minor)."""
            return Cat(Value.cast(word)[:nw.bit_length() - 1], row)

        def group_word(g) -> Value:
            """The word of a row that holds lane group ``g``."""
            return Value.cast(g) >> (gpw.bit_length() - 1)

        def group_enable(g) -> Value:
            """The write enables (one per lane group of a word) that write lane group ``g``."""
            return Const(1, gpw) << Value.cast(g)[:gpw.bit_length() - 1]

        m.submodules.pixels = pix_mem = memory.Memory(shape=self.row_bits["pixels"], depth=hw.max_positions, init=[])
        u_layout = data.ArrayLayout(signed(hw.u_bits), p)
        m.submodules.residual = u_mem = memory.Memory(shape=u_layout, depth=hw.u_rows, init=[])
        v_layout = data.ArrayLayout(signed(hw.v_bits), p)
        m.submodules.thresholds = th_mem = memory.Memory(shape=v_layout, depth=hw.threshold_rows, init=[])
        m.submodules.membranes = v_mem = memory.Memory(shape=v_layout, depth=gcap, init=[])
        logit_layout = data.ArrayLayout(signed(hw.logit_bits), p)
        n_logit_rows = -(-hw.max_classes // p)
        # logits summed over T: row g holds lane group g's classes (read-modify-write by the post-op
        # while busy, by the read map when idle)
        m.submodules.logits = lg_mem = memory.Memory(shape=logit_layout, depth=n_logit_rows, init=[])
        self.memories = {"spikes": spk_mem, "residual": u_mem, "membranes": v_mem}  # for simulation probes
        # per-step counters: word k of step s at row 4 s + k (the read map's layout), one 32-bit word
        # per row (a wide, shallow memory would waste block RAMs)
        m.submodules.layer_counters = lc_mem = memory.Memory(shape=32, depth=4 * hw.program_rows, init=[])

        m.submodules.encoder = enc = SpikeEncoder(width=WB, capacity=hw.in_columns, plane_bits=hw.plane_bits,
                                                  dense=dense)
        m.submodules.accumulator = acc = SparseAccumulator(
            lanes=p, weight_bits=hw.weight_bits, acc_bits=hw.acc_bits, in_capacity=hw.in_columns,
            group_capacity=gcap, max_shift=MAX_WEIGHT_SHIFT, weight_depth=hw.weight_rows, bias_depth=hw.bias_rows,
            plane_bits=hw.plane_bits, dense=dense)
        self.engines = {"accumulator": acc, "encoder": enc}
        # the SDSA driver sends one channel group at a time (all its time steps): one group of state
        m.submodules.sdsa = sdsa = SDSAUnit(lanes=p, group_capacity=1,
                                            token_capacity=hw.max_positions, shift=1)
        # the GAP reader sends each (t, group)'s tokens in a row: one partial sum (P lanes) is live
        m.submodules.token_sum = tsum = TokenSum(lanes=p, u_bits=hw.u_bits, sum_bits=hw.gap_bits, group_capacity=1)

        # ------------------------------------------------------------------ loader (write port)
        # Rows of lane values are staged 32-bit word by word and written in the cycle after their last
        # word, from registers (the stage, the row, the commit flag: a weight or bias write holds the
        # accumulator, and that path starts at a flip-flop). A program row is written field by field
        # as its words come (word k is field k, at the field's width; one write enable per bit),
        # and its ``invalid`` flag with the last word: whether any of the row's words, from word 0
        # on, did not fit its field.
        stage = Signal(max(bits for name, bits in self.row_bits.items() if name != "program") + 32)
        wr = self.write.payload
        word = wr.addr[:self.word_bits]
        row = wr.addr[self.word_bits:]
        is_prog_word = Signal()
        m.d.comb += [self.write.ready.eq(1), is_prog_word.eq(self.write.valid & (wr.space == SPACES["program"]))]
        with m.If(self.write.valid & ~is_prog_word):
            m.d.sync += stage.word_select(word, 32).eq(wr.data)
        prog_wr = prog_mem.write_port(granularity=1)
        desc_row = data.View(desc_layout, prog_wr.data)
        largest = field_max(hw)
        too_wide = Signal()             # the word does not fit its field
        row_bad = Signal()              # an earlier word of the row did not fit its field
        is_field = Signal(len(FIELDS))  # one-hot: the word written is field k's
        en = data.View(desc_layout, prog_wr.en)
        # ``invalid`` is written with the row's last word (its enable a plain decode)
        m.d.comb += [prog_wr.addr.eq(row), desc_row.invalid.eq(row_bad | too_wide),
                     en.invalid.eq(is_field[-1])]
        with m.If(is_prog_word):       # (cleared after the last word: a row's flag is its own)
            m.d.sync += row_bad.eq(Mux(word == 0, too_wide, Mux(is_field[-1], 0, row_bad | too_wide)))
        # (sums of products, not a multiplexer chain: these paths end at the block RAM's enables)
        over_terms = []
        for k, name in enumerate(FIELDS):
            width = fw[name]
            m.d.comb += [is_field[k].eq(is_prog_word & (word == k)), desc_row[name].eq(wr.data[:width]),
                         en[name].eq(is_field[k].replicate(width))]
            # bits above the field's width (no compare), or over a limit below it
            over = wr.data[width:].any()
            if largest[name] != (1 << width) - 1:
                over = over | (wr.data[:width] > largest[name])
            over_terms.append((word == k) & over)
        m.d.comb += too_wide.eq(Cat(over_terms).any())
        commit = {}                     # the row in ``stage`` is written to ``commit_row`` this cycle
        commit_row = Signal.like(row)
        m.d.sync += commit_row.eq(row)
        for name, bits in self.row_bits.items():
            if name != "program":
                commit[name] = Signal(name=f"commit_{name}")
                m.d.sync += commit[name].eq(self.write.valid & (wr.space == SPACES[name])
                                            & (word == _words(bits) - 1))
        pix_wr = pix_mem.write_port()
        th_wr = th_mem.write_port()
        for port, name in ((pix_wr, "pixels"), (th_wr, "thresholds")):
            m.d.comb += [port.addr.eq(commit_row), port.data.eq(stage[:self.row_bits[name]]), port.en.eq(commit[name])]
        m.d.comb += [
            acc.weight_write.valid.eq(commit["weights"]), acc.weight_write.payload.addr.eq(commit_row),
            acc.weight_write.payload.data.eq(stage[:self.row_bits["weights"]]),
            acc.bias_write.valid.eq(commit["biases"]), acc.bias_write.payload.addr.eq(commit_row),
            acc.bias_write.payload.data.eq(stage[:self.row_bits["biases"]]),
        ]

        # ------------------------------------------------------------------ sequencer
        pc = Signal(range(hw.program_rows + 1))
        go = Signal()                   # one-cycle pulse: the step in ``d`` starts
        step_done = Signal()            # the running step has finished
        prog_rd = prog_mem.read_port()
        fetch = Signal()                # FETCH: the program memory reads row ``pc``
        m.d.comb += [prog_rd.addr.eq(pc), prog_rd.en.eq(fetch & ~is_prog_word)]
        # the running step's descriptor: the read port holds its row until the next FETCH (no copy)
        d = data.View(desc_layout, prog_rd.data)
        is_conv = Signal()
        is_pixel = Signal()
        load_d = Signal()               # DECODE: the flags decoded from the new ``d`` are loaded

        def decoded(sig: Signal, fn) -> None:
            """``sig`` is ``fn(descriptor)``, registered in DECODE: no decode logic on its paths."""
            with m.If(load_d):
                m.d.sync += sig.eq(fn(d))

        def conv(x):                    # predicates of a descriptor, shared by the decoded flags
            return x.op == OPS["CONV"]

        def pixel_conv(x):              # the first layer: a CONV over pixels, repeated for all T
            return conv(x) & (x.kind == KINDS["pixel3x3"])

        decoded(is_conv, conv)
        decoded(is_pixel, lambda x: x.kind == KINDS["pixel3x3"])
        is_sdsa = Signal()              # (registered: these two select the spike-buffer address)
        is_or_pool = Signal()
        decoded(is_sdsa, lambda x: x.op == OPS["SDSA"])
        decoded(is_or_pool, lambda x: x.op == OPS["POOL_OR"])

        error = Signal()                # the last run met an unknown op or no END
        record = Signal()               # RECORD: the step's counters are final
        counters = {n: Signal(32, name=f"count_{n}") for n in hardware_counters(hw)}

        def profile(name: str) -> None:
            """Count this cycle in profiling counter ``name`` (if the hardware has it)."""
            if name in counters:
                m.d.sync += counters[name].eq(counters[name] + 1)

        with m.FSM(name="sequencer"):
            with m.State("IDLE"):
                with m.If(self.start):
                    m.d.sync += [pc.eq(0), self.done.eq(0), error.eq(0), *[c.eq(0) for c in counters.values()]]
                    m.next = "FETCH"
            with m.State("FETCH"):
                m.d.comb += [self.busy.eq(1), fetch.eq(1)]
                m.next = "DECODE"
            with m.State("DECODE"):
                m.d.comb += self.busy.eq(1)
                m.d.comb += load_d.eq(1)
                bad = (d.op > max(OPS.values())) | (pc >= hw.program_rows) | d.invalid
                with m.If((d.op == OPS["END"]) | bad):
                    # an unknown op or a program without END stops the run with the error flag set
                    m.d.sync += [self.done.eq(1), error.eq(bad)]
                    m.next = "IDLE"
                with m.Else():
                    m.next = "START"
            with m.State("START"):
                m.d.comb += [self.busy.eq(1), go.eq(1)]
                m.next = "RUN"
            with m.State("RUN"):
                m.d.comb += self.busy.eq(1)
                with m.If(step_done):
                    m.next = "RECORD"
            with m.State("RECORD"):
                m.d.comb += [self.busy.eq(1), record.eq(1)]
                m.d.sync += pc.eq(pc + 1)
                m.next = "FETCH"

        # The step's counters: the global counters as the step ends (:func:`step_counters` takes the
        # differences), written one word per cycle in RECORD, FETCH and DECODE, which always follow
        # each other (no cycle added). Cycles go first: that counter still runs in those states.
        lc_wr = lc_mem.write_port()
        rec_k = Signal(2)               # the word written this cycle, 0 when none
        rec_row = Signal.like(pc)       # the recorded step
        snapshot = Array(counters[n] for n in LAYER_COUNTERS)
        with m.If(record):
            m.d.comb += [lc_wr.addr.eq(Cat(Const(0, 2), pc)), lc_wr.data.eq(snapshot[0]), lc_wr.en.eq(1)]
            m.d.sync += [rec_k.eq(1), rec_row.eq(pc)]
        with m.Elif(rec_k != 0):
            m.d.comb += [lc_wr.addr.eq(Cat(rec_k, rec_row)), lc_wr.en.eq(1), lc_wr.data.eq(snapshot[rec_k])]
            m.d.sync += rec_k.eq(Mux(rec_k == len(LAYER_COUNTERS) - 1, 0, rec_k + 1))
        with m.If(self.busy):
            m.d.sync += counters["cycles"].eq(counters["cycles"] + 1)
        ev_counted = Signal()
        m.d.comb += ev_counted.eq(acc.events.valid & acc.events.ready & ~acc.events.payload.empty
                                  & (~acc.events.payload.zero if dense else 1))
        # events and SOPs counted this cycle (an accumulator event: 1 and ``cout``; SDSA: below),
        # registered, then added by one adder per counter (a step's last count lands cycles
        # before its RECORD)
        add_events = Signal(range(p + 1))
        add_sops = Signal(range(max(p, largest["cout"]) + 1))
        added_events, added_sops = Signal.like(add_events), Signal.like(add_sops)
        m.d.sync += [added_events.eq(add_events), added_sops.eq(add_sops)]
        with m.If(added_events != 0):   # (not in IDLE, where a run's start clears them)
            m.d.sync += [counters["events"].eq(counters["events"] + added_events),
                         counters["sops"].eq(counters["sops"] + added_sops)]
        with m.If(ev_counted):
            m.d.comb += [add_events.eq(1), add_sops.eq(d.cout)]
        with m.If(acc.busy):
            profile("accumulator_busy")

        # ------------------------------------------------------------------ shared read ports
        # ``single_port_buffers``: the spike buffer and U have one address port each (single-port
        # RAM such as SPRAM). A write takes the port for its cycle: the spike-buffer readers do not
        # issue in that cycle, and a post-op beat that writes U holds the next beat's U read back a
        # cycle. The U reader (LIF_U, GAP) and the post-op's read-modify-write (CONV) share the
        # read port; no step uses both.
        one_port = hw.single_port_buffers
        spk_rd = spk_mem.read_port()
        pix_rd = pix_mem.read_port()
        spk_wr = spk_mem.write_port(granularity=p)
        u_wr = u_mem.write_port()
        if one_port:
            u_rd = u_rmw = u_mem.read_port()
        else:
            u_rd = u_mem.read_port()             # U reader (LIF_U, GAP)
            u_rmw = u_mem.read_port(transparent_for=(u_wr,))
        spk_wa = Signal.like(spk_wr.addr)   # the spike-buffer write's address
        spk_free = Signal(init=1)       # no spike-buffer write takes the port this cycle
        u_free = Signal(init=1)         # no U write takes the port this cycle
        v_wr = v_mem.write_port()
        v_rd = v_mem.read_port(transparent_for=(v_wr,))
        th_rd = th_mem.read_port()

        # ------------------------------------------------------------------ vector source (CONV)
        # Loops: y, x (output position), t (time step), tap (3x3 window, dy-major), word (of the
        # tap's row: ``words_last + 1`` words hold its ``cin`` channels); one memory read per word;
        # all-zero and out-of-map words are not sent (except a vector's final word, which carries
        # ``last``).
        chunk_fifo = fifo.SyncFIFO(width=len(Cat(enc.chunks.payload)), depth=_FIFO_DEPTH)
        m.submodules.chunk_fifo = chunk_fifo
        m.d.comb += [enc.chunks.valid.eq(chunk_fifo.r_rdy), enc.chunks.payload.eq(chunk_fifo.r_data),
                     chunk_fifo.r_en.eq(enc.chunks.ready)]
        if hw.plane_bits:
            m.d.comb += enc.planes.eq(is_pixel)

        src_active = Signal()
        sy, sx, st = Signal(fw["height"]), Signal(fw["width"]), Signal(fw["steps"])
        dy, dx = Signal(2), Signal(2)
        rowc = Signal(range(max(hw.spike_rows, hw.max_positions) + 1))   # row of (y, x, t)
        tap_base = Signal(range(hw.in_columns + 1))
        one_tap = Signal(init=1)
        decoded(one_tap, lambda x: x.kind == KINDS["1x1"])
        iy = Signal(signed(18))
        ix = Signal(signed(18))
        m.d.comb += [iy.eq(sy + dy - 1), ix.eq(sx + dx - 1)]   # 1x1: the centre tap dy = dx = 1
        in_map = Signal()
        m.d.comb += in_map.eq((iy >= 0) & (iy < d.height) & (ix >= 0) & (ix < d.width))
        tap_row = Signal(signed(max(hw.spike_rows, hw.max_positions).bit_length() + 2))
        # window offsets (row_stride up/down a row, steps left/right a position), registered at
        # DECODE: the read address adds registers, not the program memory's output and a negation
        up, down = Signal(signed(fw["row_stride"] + 1)), Signal(signed(fw["row_stride"] + 1))
        left, right = Signal(signed(fw["steps"] + 1)), Signal(signed(fw["steps"] + 1))
        decoded(up, lambda x: -x.row_stride)
        decoded(down, lambda x: x.row_stride)
        decoded(left, lambda x: -x.steps)
        decoded(right, lambda x: x.steps)
        in_base = Signal(fw["in_base"])  # the input map's first spike-buffer row (the readers' base)
        decoded(in_base, lambda x: x.in_base)
        out_base = Signal(fw["out_base"])   # the output map's first row (SDSA's writer)
        decoded(out_base, lambda x: x.out_base)

        def window_offset(wy, wx) -> tuple[Value, Value]:
            """The row offsets (y, x) of 3x3 window tap ``(wy, wx)`` (0, 1, 2: before, centre, after)."""
            return (Mux(wy == 0, up, Mux(wy == 1, 0, down)), Mux(wx == 0, left, Mux(wx == 1, 0, right)))

        oy, ox = (Mux(one_tap, 0, o) for o in window_offset(dy, dx))
        m.d.comb += tap_row.eq(rowc + oy + ox)
        in_row = Signal(range(hw.spike_rows + max(hw.spike_rows, hw.max_positions) + 1))   # in_base + rowc
        last_tap = Signal()
        m.d.comb += last_tap.eq(one_tap | ((dy == 2) & (dx == 2)))
        sw = Signal(range(nw))          # the word of the tap's row
        words_last = Signal(range(nw))  # the last word holding input channels (pixels: one word)
        decoded(words_last, lambda x: Mux(pixel_conv(x) | (x.cin == 0), 0, (x.cin - 1) >> wb_log))
        word_last = Signal()
        m.d.comb += word_last.eq(sw == words_last)

        b_valid, b_in_map, b_last = Signal(), Signal(), Signal()
        b_base = Signal.like(tap_base)
        b_full = Signal()               # the word is not the row's last: every bit is a channel
        issue = Signal()
        can_issue = Signal()
        c_valid = Signal()              # a chunk in the register after the read (see below)
        # a read is issued only if the FIFO has room for it and for the two before it still in flight
        m.d.comb += can_issue.eq(chunk_fifo.level + b_valid + c_valid < _FIFO_DEPTH)
        m.d.comb += issue.eq(src_active & can_issue & spk_free)
        with m.If(src_active & ~can_issue):
            profile("source_stall")
        m.d.comb += [pix_rd.addr.eq(tap_row), pix_rd.en.eq(~pix_wr.en)]
        with m.If(is_conv):
            m.d.comb += [spk_rd.addr.eq(spike_addr(in_row + oy + ox, sw))]
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
                _step_loops(m, [_Loop(st, d.steps), _Loop(sx, d.width), _Loop(sy, d.height)],
                            done=[src_active.eq(0)])
            with m.Else():
                m.d.sync += [sw.eq(0), tap_base.eq(tap_base + d.cin)]
                with m.If(dx == 2):
                    m.d.sync += [dx.eq(0), dy.eq(dy + 1)]
                with m.Else():
                    m.d.sync += dx.eq(dx + 1)
        with m.If(go & is_conv):
            m.d.sync += [src_active.eq(1), sy.eq(0), sx.eq(0), st.eq(0), rowc.eq(0), in_row.eq(in_base),
                         tap_base.eq(0), sw.eq(0),
                         dy.eq(Mux(d.kind == KINDS["1x1"], 1, 0)), dx.eq(Mux(d.kind == KINDS["1x1"], 1, 0))]

        # the channels of a row's last word (pixels: of the pixel row), a mask of its low bits
        # 1 .. WB; registered: it depends on the descriptor only (stable in a step)
        in_mask = Signal(WB)
        n_bits = Signal(W.bit_length() + hw.plane_bits)
        low = Signal(wb_log + 1)
        m.d.comb += [n_bits.eq(Mux(is_pixel, d.cin << hw.plane_bits, d.cin)), low.eq((n_bits - 1)[:wb_log] + 1)]
        m.d.sync += in_mask.eq(Mux(n_bits == 0, 0, (Const(1, WB + 1) << low) - 1))
        def word_channels(full) -> Value:
            """The channel mask of a word: all bits, or (the row's last word) ``in_mask``."""
            return Mux(full, Const((1 << WB) - 1, WB), in_mask)

        word_mask = Signal(WB)
        m.d.comb += word_mask.eq(word_channels(b_full))
        b_bits = Signal(WB)
        m.d.comb += b_bits.eq(Mux(b_in_map, Mux(is_pixel, pix_rd.data, spk_rd.data) & word_mask, 0))
        # the chunk is registered before its all-zero test and the FIFO (no path from the spike
        # buffer's read data through the word-wide OR into the FIFO's write enable)
        # (loaded only with a read: Yosys 0.70's ABC9 fails on this register without an enable)
        chunk = Signal(enc.chunks.payload.shape())
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

        # accumulator configuration
        m.d.comb += [acc.n_groups.eq(d.groups), acc.weight_shift.eq(d.weight_shift),
                     acc.weight_base.eq(d.weight_base), acc.n_columns.eq(d.n_columns), acc.bias_base.eq(d.bias_base)]
        # register slices cut the valid/ready chain post-op -> accumulator -> encoder -> chunk FIFO
        m.submodules.event_slice = ev_slice = RegisterSlice(enc.events.payload.shape())
        m.submodules.result_slice = res_slice = RegisterSlice(acc.result.payload.shape())
        wiring.connect(m, enc.events, ev_slice.i)
        wiring.connect(m, ev_slice.o, acc.events)
        wiring.connect(m, acc.result, res_slice.i)
        acc_result = res_slice.o

        # ------------------------------------------------------------------ U reader (LIF_U, GAP)
        # LIF_U: rows in U order (position, t, group) = 0, 1, 2, ...; GAP: (t, group) outer, position
        # inner: row = position * u_pos_stride + t * u_groups + group.
        ur_beat = data.StructLayout({"x": u_layout, "first": 1, "last": 1})
        ur_depth = 3                    # a read in flight and two queued: one beat a cycle
        ur_fifo = fifo.SyncFIFO(width=ur_beat.size, depth=ur_depth)
        m.submodules.u_fifo = ur_fifo
        ur_active = Signal()
        ur_t, ur_g = Signal(fw["steps"]), Signal(fw["u_groups"])
        ur_addr = Signal(range(hw.u_rows + 1))
        ur_tg = Signal(range(hw.u_rows + 1))
        ur_b_valid = Signal()
        ur_b_first, ur_b_last = Signal(), Signal()
        ur_issue = Signal()
        is_gap = Signal()
        decoded(is_gap, lambda x: x.op == OPS["GAP"])
        ur_pos_last = Signal()
        m.d.comb += ur_issue.eq(ur_active & (ur_fifo.level + ur_b_valid < ur_depth))   # room for it
        m.d.comb += [u_rd.addr.eq(ur_addr), u_rd.en.eq(1)]
        m.d.sync += ur_b_valid.eq(ur_issue)
        ury, urx = Signal(fw["height"]), Signal(fw["width"])
        m.d.comb += ur_pos_last.eq((ury + 1 >= d.height) & (urx + 1 >= d.width))
        with m.If(ur_issue):
            profile("reader_busy")
            m.d.sync += [ur_b_first.eq((ury == 0) & (urx == 0)), ur_b_last.eq(ur_pos_last)]

            next_row = [ur_addr.eq(ur_addr + d.u_pos_stride)]
            next_tg = [ur_addr.eq(ur_tg + 1), ur_tg.eq(ur_tg + 1)]
            finish = [ur_active.eq(0)]
            with m.If(is_gap):
                # (t, g) outer, position inner
                _step_loops(m, [_Loop(urx, d.width, next_row), _Loop(ury, d.height, next_row, next_tg),
                                _Loop(ur_g, d.u_groups), _Loop(ur_t, d.steps)], finish)
            with m.Else():
                # (position, t, g): sequential rows
                m.d.sync += ur_addr.eq(ur_addr + 1)
                _step_loops(m, [_Loop(ur_g, d.u_groups), _Loop(ur_t, d.steps), _Loop(urx, d.width),
                                _Loop(ury, d.height)], finish)
        with m.If(go & ((d.op == OPS["LIF_U"]) | is_gap)):
            m.d.sync += [ur_active.eq(1), ur_t.eq(0), ur_g.eq(0), ur_addr.eq(0), ur_tg.eq(0),
                         ury.eq(0), urx.eq(0)]
        ur_in = data.View(ur_beat, ur_fifo.w_data)
        m.d.comb += [ur_fifo.w_en.eq(ur_b_valid), ur_in.x.eq(u_rd.data), ur_in.first.eq(ur_b_first),
                     ur_in.last.eq(ur_b_last)]
        ur_out = data.View(ur_beat, ur_fifo.r_data)

        # ------------------------------------------------------------------ post-op input mux
        pin_valid = Signal()
        pin_ready = Signal()
        pin_x = Signal(data.ArrayLayout(signed(in_bits), p))
        with m.Switch(d.op):
            with m.Case(OPS["CONV"]):
                m.d.comb += [pin_valid.eq(acc_result.valid), acc_result.ready.eq(pin_ready)]
                for lane in range(p):
                    m.d.comb += pin_x[lane].eq(acc_result.payload.acc[lane])
            with m.Case(OPS["LIF_U"]):
                m.d.comb += [pin_valid.eq(ur_fifo.r_rdy), ur_fifo.r_en.eq(pin_ready)]
                for lane in range(p):
                    m.d.comb += pin_x[lane].eq(ur_out.x[lane])
            with m.Case(OPS["GAP"]):
                m.d.comb += [tsum.i.valid.eq(ur_fifo.r_rdy), ur_fifo.r_en.eq(tsum.i.ready),
                             tsum.i.payload.x.eq(ur_out.x), tsum.i.payload.first.eq(ur_out.first),
                             tsum.i.payload.last.eq(ur_out.last),
                             pin_valid.eq(tsum.o.valid), tsum.o.ready.eq(pin_ready)]
                for lane in range(p):
                    m.d.comb += pin_x[lane].eq(tsum.o.payload.y[lane])

        # ------------------------------------------------------------------ post-op
        # Loops (mirroring the producer): position (py, px), then t, then group; a pixel layer
        # (``repeat`` = T) goes position, group, t and uses each beat for all T steps. A max-pool
        # beat updates up to 4 pooled positions (targets ty, tx).
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
        decoded(pos_h, lambda x: Mux(x.op == OPS["GAP"], 1, x.height))
        decoded(pos_w, lambda x: Mux(x.op == OPS["GAP"], 1, x.width))
        decoded(t_out, lambda x: Mux(pixel_conv(x), x.repeat, x.steps))
        post = d.post
        is_lif = Signal(init=1)
        decoded(is_lif, lambda x: ~conv(x) | (x.post == POSTS["LIF"]))
        is_pool = Signal()
        decoded(is_pool, lambda x: conv(x) & (x.post == POSTS["U_MAXPOOL"]))
        repeat_mode = Signal()
        decoded(repeat_mode, pixel_conv)

        more_ty = Signal()
        more_tx = Signal()
        m.d.comb += [more_ty.eq(is_pool & py[0] & (py + 1 < d.height) & ~ty),
                     more_tx.eq(is_pool & px[0] & (px + 1 < d.width) & ~tx)]
        # a beat is consumed on its final use (last pool target, last repeat step)
        consume = Signal()
        m.d.comb += consume.eq(Mux(repeat_mode, pt + 1 >= t_out, ~more_ty & ~more_tx))
        step = Signal()
        m.d.comb += [step.eq(post_active & pin_valid & u_free), pin_ready.eq(post_active & consume & u_free)]
        with m.If(step):
            profile("post_busy")

        # stage-1 addresses
        u_target = Signal(range(2 * hw.u_rows + 2))
        m.d.comb += u_target.eq(Mux(is_pool, ybase + xbase + tgu + Mux(ty, d.u_row_stride, 0)
                                    + Mux(tx, d.u_pos_stride, 0), urow))
        m.d.comb += [v_rd.addr.eq(pg), v_rd.en.eq(1), th_rd.addr.eq(d.th_base + pg), th_rd.en.eq(~th_wr.en)]
        lg_wr = lg_mem.write_port()
        lg_rd = lg_mem.read_port(transparent_for=(lg_wr,))
        lane_bits = p.bit_length() - 1
        m.d.comb += lg_rd.addr.eq(Mux(self.busy, pg, self.read_addr[lane_bits:]))
        with m.If(is_conv if one_port else 1):          # one port: the U reader's otherwise
            m.d.comb += [u_rmw.addr.eq(u_target), u_rmw.en.eq(1)]
        s2 = Signal()
        s2_x = Signal.like(pin_x)
        s2_first = Signal()
        s2_t0 = Signal()
        s2_u = Signal.like(u_target)
        s2_g = Signal.like(pg)
        s2_row = Signal.like(orow)
        m.d.sync += s2.eq(step)
        with m.If(step):
            m.d.sync += [s2_x.eq(pin_x), s2_u.eq(u_target), s2_g.eq(pg), s2_row.eq(orow + pt), s2_t0.eq(pt == 0),
                         s2_first.eq((ty | (py == 0)) & (tx | (px == 0)))]

            new_position = [orow.eq(orow + t_out), tgu.eq(0)]
            finish = [post_active.eq(0)]

            def next_x():
                with m.If(px[0]):   # next x is even: a new pooled column
                    m.d.sync += xbase.eq(xbase + d.u_pos_stride)

            def next_y():
                with m.If(py[0]):   # next y is even: a new pooled row
                    m.d.sync += ybase.eq(ybase + d.u_row_stride)

            positions = [_Loop(px, pos_w, next_x, [xbase.eq(0)]), _Loop(py, pos_h, next_y)]

            with m.If(more_tx):
                m.d.sync += tx.eq(1)
            with m.Elif(more_ty):
                m.d.sync += [ty.eq(1), tx.eq(0)]
            with m.Else():
                m.d.sync += [ty.eq(0), tx.eq(0), urow.eq(urow + 1)]
                with m.If(repeat_mode):
                    # position, group, t
                    _step_loops(m, [_Loop(pt, t_out), _Loop(pg, d.groups, on_wrap=new_position), *positions], finish)
                with m.Else():
                    m.d.sync += tgu.eq(tgu + 1)
                    _step_loops(m, [_Loop(pg, d.groups), _Loop(pt, t_out, on_wrap=new_position), *positions], finish)
        with m.If(go & ~is_sdsa & ~is_or_pool):
            m.d.sync += [post_active.eq(1), py.eq(0), px.eq(0), pt.eq(0), pg.eq(0), ty.eq(0), tx.eq(0),
                         urow.eq(0), ybase.eq(0), xbase.eq(0), tgu.eq(0), orow.eq(d.out_base)]

        # stage 2: compute and write
        spikes = Signal(p)
        v_new = Signal(v_layout)
        for lane in range(p):
            v_old = Signal(signed(hw.v_bits), name=f"v_old{lane}")
            m.d.comb += v_old.eq(Mux(s2_t0, 0, v_rd.data[lane]))
            s, v = lif_update(m, s2_x[lane], v_old, th_rd.data[lane], 1, hw.v_bits)
            m.d.comb += [spikes[lane].eq(s), v_new[lane].eq(v)]
        u_new = Signal(u_layout)
        lg_new = Signal(logit_layout)
        lg_old = lg_rd.data
        for lane in range(p):
            old, x = u_rmw.data[lane], s2_x[lane]
            with m.Switch(post):
                with m.Case(POSTS["U_ADD"]):
                    m.d.comb += u_new[lane].eq(old + x)
                with m.Case(POSTS["U_MAXPOOL"]):
                    m.d.comb += u_new[lane].eq(Mux(s2_first | (x > old), x, old))
                with m.Default():
                    m.d.comb += u_new[lane].eq(x)
            m.d.comb += lg_new[lane].eq(Mux(s2_t0, x, lg_old[lane] + x))
        is_u_post = Signal()
        m.d.comb += is_u_post.eq(is_conv & ((post == POSTS["U_WRITE"]) | (post == POSTS["U_ADD"]) | is_pool))
        m.d.comb += [
            v_wr.addr.eq(s2_g), v_wr.data.eq(v_new), v_wr.en.eq(s2 & is_lif),
            u_wr.addr.eq(s2_u), u_wr.data.eq(u_new), u_wr.en.eq(s2 & is_u_post),
        ]
        m.d.comb += [lg_wr.addr.eq(s2_g), lg_wr.data.eq(lg_new), lg_wr.en.eq(s2 & is_conv & (post == POSTS["LOGITS"]))]
        # stage 3: the LIF's spikes are written to the spike buffer a cycle later (the membrane update
        # is the only path that has to close in one cycle: the next time step's beat reads it)
        s3 = Signal()
        s3_spikes = Signal.like(spikes)
        s3_row, s3_g = Signal.like(s2_row), Signal.like(s2_g)
        m.d.sync += [s3.eq(s2 & is_lif), s3_spikes.eq(spikes), s3_row.eq(s2_row), s3_g.eq(s2_g)]

        # ------------------------------------------------------------------ SDSA driver
        # Loops: channel group g, time step t, phase, token n (innermost). Per (g, t): COUNT reads
        # rows (n, t) for K and V beats, then MASK reads them again for Q beats; the unit's output
        # beats are written to the output rows. One group at a time: the unit's counters, attention
        # membranes (kept over T) and attention spikes are P lanes, not a channel memory. With
        # whole-row words one read carries Q, K and V; with narrower words (``split_kv``) a K and V
        # beat takes two reads (K's word, then V's), the K bits held until V's arrive.
        sd_active = Signal()
        sd_t, sd_g = Signal(fw["steps"]), Signal(fw["groups"])
        sd_y, sd_x = Signal(fw["height"]), Signal(fw["width"])
        sd_phase = Signal()          # 0: count (kv), 1: mask (q)
        sd_row = Signal(range(hw.spike_rows + 1))   # n * steps + t
        # the FIFO holds the group's Q, K and V bits, selected from the spike word on the write side
        sd_beat = data.StructLayout({"q": p, "k": p, "v": p, "phase": 1, "last": 1, "t0": 1})
        sd_fifo = fifo.SyncFIFO(width=sd_beat.size, depth=_FIFO_DEPTH)
        m.submodules.sd_fifo = sd_fifo
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
                     sd_issue.eq(sd_active & (sd_fifo.level + sd_b_valid < _FIFO_DEPTH - 1) & spk_free),
                     sd_group.eq(sd_g + Mux(sd_phase, 0, Mux(sd_kv, d.u_groups << 1, d.u_groups)))]
        with m.If(is_sdsa):
            m.d.comb += spk_rd.addr.eq(spike_addr(in_base + sd_row, group_word(sd_group)))
        m.d.comb += spk_rd.en.eq(1)
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
                    _step_loops(m, [_Loop(sd_x, d.width), _Loop(sd_y, d.height)])

            if split_kv:
                with m.If(~sd_phase & ~sd_kv):
                    m.d.sync += sd_kv.eq(1)      # K's word read: V's next, same beat
                with m.Else():
                    m.d.sync += sd_kv.eq(0)
                    next_beat()
            else:
                next_beat()
        with m.If(go & is_sdsa):
            m.d.sync += [sd_active.eq(1), sd_t.eq(0), sd_g.eq(0), sd_y.eq(0), sd_x.eq(0), sd_phase.eq(0),
                         sd_row.eq(0), sd_kv.eq(0)]
        sd_in = data.View(sd_beat, sd_fifo.w_data)
        if split_kv:
            sd_bits = Signal(p)          # the lane group read, selected from its word
            k_hold = Signal(p)
            m.d.comb += sd_bits.eq(spk_rd.data.word_select(sd_b.sel, p) if gpw > 1 else spk_rd.data)
            with m.If(sd_b_valid & sd_b.k_read):
                m.d.sync += k_hold.eq(sd_bits)
            m.d.comb += [sd_fifo.w_en.eq(sd_b_valid & ~sd_b.k_read),
                         sd_in.q.eq(sd_bits), sd_in.k.eq(k_hold), sd_in.v.eq(sd_bits)]
        else:
            m.d.comb += [sd_fifo.w_en.eq(sd_b_valid),
                         sd_in.q.eq(spk_rd.data.word_select(sd_b.group, p)),
                         sd_in.k.eq(spk_rd.data.word_select(sd_b.group + d.u_groups, p)),
                         sd_in.v.eq(spk_rd.data.word_select(sd_b.group + (d.u_groups << 1), p))]
        m.d.comb += [sd_in.phase.eq(sd_b.phase), sd_in.last.eq(sd_b.last), sd_in.t0.eq(sd_b.t0)]
        sd_head = data.View(sd_beat, sd_fifo.r_data)
        m.d.comb += [sdsa.kv.payload.k.eq(sd_head.k), sdsa.kv.payload.v.eq(sd_head.v),
                     sdsa.kv.payload.t0.eq(sd_head.t0), sdsa.kv.payload.last.eq(sd_head.last),
                     sdsa.q.payload.q.eq(sd_head.q), sdsa.q.payload.last.eq(sd_head.last)]
        with m.If(sd_head.phase):
            m.d.comb += [sdsa.q.valid.eq(sd_fifo.r_rdy), sd_fifo.r_en.eq(sdsa.q.ready)]
        with m.Else():
            m.d.comb += [sdsa.kv.valid.eq(sd_fifo.r_rdy), sd_fifo.r_en.eq(sdsa.kv.ready)]
        with m.If(sd_fifo.r_en & sd_fifo.r_rdy):
            profile("sdsa_busy")
        # SDSA's synaptic operations (the golden trace's): one per set bit of K AND V, counted as events and SOPs
        kv_ops = Signal(range(p + 1))
        kv_and = sdsa.kv.payload.k & sdsa.kv.payload.v
        m.d.comb += kv_ops.eq(sum(kv_and[i] for i in range(p)))
        with m.If(sdsa.kv.valid & sdsa.kv.ready):
            m.d.comb += [add_events.eq(kv_ops), add_sops.eq(kv_ops)]
        # writer of the unit's output: the driver's order (group g, time step t, token n): row n * steps + t
        so_row = Signal(range(hw.spike_rows + 1))
        so_t = Signal(fw["steps"])
        so_g = Signal(fw["groups"])
        m.d.comb += sdsa.o.ready.eq(1)
        with m.If(sdsa.o.valid):
            with m.If(~sdsa.o.payload.last):
                m.d.sync += so_row.eq(so_row + d.steps)
            with m.Elif(so_t + 1 < d.steps):
                m.d.sync += [so_t.eq(so_t + 1), so_row.eq(so_t + 1)]
            with m.Else():
                m.d.sync += [so_t.eq(0), so_row.eq(0), so_g.eq(so_g + 1)]
        with m.If(go & is_sdsa):
            m.d.sync += [so_row.eq(0), so_t.eq(0), so_g.eq(0)]

        # ------------------------------------------------------------------ OR-pool (POOL_OR)
        # 3x3 / stride 2 / pad 1 max-pool of a spike map, an OR over the window: loops (i, j) pooled
        # position, t, word, tap; one word (all its channels) per read, one write per pooled word.
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
        with m.If(is_or_pool):
            oy, ox = window_offset(po_dy, po_dx)
            m.d.comb += spk_rd.addr.eq(spike_addr(in_base + po_base + po_t + oy + ox, po_w))
        po_issue = Signal()
        m.d.comb += po_issue.eq(po_active & spk_free)
        m.d.sync += po_b_valid.eq(po_issue)
        with m.If(po_issue):
            m.d.sync += [po_b_in.eq((po_y >= 0) & (po_y < d.height) & (po_x >= 0) & (po_x < d.width)),
                         po_b_first.eq((po_dy == 0) & (po_dx == 0)), po_b_last.eq(po_last_tap),
                         po_b_row.eq(po_orow), po_b_w.eq(po_w), po_b_full.eq(po_w != words_last)]
            _step_loops(m, [
                _Loop(po_dx, 3), _Loop(po_dy, 3), _Loop(po_w, words_last + 1, on_wrap=[po_orow.eq(po_orow + 1)]),
                _Loop(po_t, d.steps),
                _Loop(po_j, d.out_width, on_step=[po_base.eq(po_base + (d.steps << 1))],
                      on_wrap=[po_base.eq(po_ibase + (d.row_stride << 1)), po_ibase.eq(po_ibase + (d.row_stride << 1))]),
                _Loop(po_i, d.out_height),
            ], done=[po_active.eq(0)])
        with m.If(go & is_or_pool):
            m.d.sync += [po_active.eq(1), po_i.eq(0), po_j.eq(0), po_t.eq(0), po_w.eq(0), po_dy.eq(0), po_dx.eq(0),
                         po_base.eq(0), po_ibase.eq(0), po_orow.eq(d.out_base)]
        m.d.comb += po_new.eq(Mux(po_b_first, 0, po_acc)
                              | Mux(po_b_in, spk_rd.data & word_channels(po_b_full), 0))
        with m.If(po_b_valid):
            m.d.sync += po_acc.eq(po_new)

        # ------------------------------------------------------------------ spike-buffer writes
        # (one write enable per lane group of a word)
        spk_writing = Signal()          # a spike-buffer write this cycle (any of its lane groups)
        with m.If(is_or_pool):
            m.d.comb += [spk_wa.eq(spike_addr(po_b_row, po_b_w)), spk_wr.data.eq(po_new),
                         spk_writing.eq(po_b_valid & po_b_last), spk_wr.en.eq(Mux(spk_writing, (1 << gpw) - 1, 0))]
        with m.Elif(is_sdsa):
            m.d.comb += [spk_wa.eq(spike_addr(out_base + so_row, group_word(so_g))),
                         spk_wr.data.eq(sdsa.o.payload.spikes.replicate(gpw)),
                         spk_writing.eq(sdsa.o.valid), spk_wr.en.eq(Mux(spk_writing, group_enable(so_g), 0))]
        with m.Else():
            m.d.comb += [spk_wa.eq(spike_addr(s3_row, group_word(s3_g))), spk_wr.data.eq(s3_spikes.replicate(gpw)),
                         spk_writing.eq(s3), spk_wr.en.eq(Mux(spk_writing, group_enable(s3_g), 0))]
        if one_port:
            # a write takes the one address port; the read enables are off in its cycle (SPRAM
            # cannot read and write at once)
            m.d.comb += [spk_free.eq(~spk_writing), u_free.eq(~u_wr.en)]
            with m.If(~spk_free):
                m.d.comb += spk_rd.addr.eq(spk_wa)
            with m.If(~u_free):
                m.d.comb += u_rd.addr.eq(s2_u)
            m.d.comb += [spk_wr.addr.eq(spk_rd.addr), spk_rd.en.eq(spk_free),
                         u_wr.addr.eq(u_rd.addr), u_rd.en.eq(u_free)]
        else:
            m.d.comb += spk_wr.addr.eq(spk_wa)

        # ------------------------------------------------------------------ step completion
        with m.Switch(d.op):
            with m.Case(OPS["SDSA"]):
                m.d.comb += step_done.eq(~sd_active & (so_g >= d.groups) & ~go)
            with m.Case(OPS["POOL_OR"]):
                m.d.comb += step_done.eq(~po_active & ~po_b_valid & ~go)
            with m.Default():
                m.d.comb += step_done.eq(~post_active & ~s2 & ~s3 & ~go)

        # ------------------------------------------------------------------ read map
        # Synchronous: ``read_data`` is the word at the ``read_addr`` of the previous cycle (the
        # per-step counters and the logits come from memory read ports; the rest from a register).
        lc_rd = lc_mem.read_port()
        ra = self.read_addr
        read_q = Signal(32)
        from_layers = Signal()
        from_logits = Signal()
        logit_lane = Signal(range(p))
        m.d.comb += [lc_rd.addr.eq(ra - READ_MAP["layers"]), lc_rd.en.eq(~lc_wr.en)]
        m.d.sync += [from_layers.eq(ra >= READ_MAP["layers"]), from_logits.eq(ra < n_logit_rows * p),
                     logit_lane.eq(ra[:lane_bits]), read_q.eq(0)]
        with m.Switch(ra):              # one flat decode of the addresses (no compares)
            for i, n in enumerate(COUNTERS):
                if n in counters:
                    with m.Case(READ_MAP["counters"] + i):
                        m.d.sync += read_q.eq(counters[n])
            with m.Case(READ_MAP["hw_id"]):
                m.d.sync += read_q.eq(self.hw_id())
            with m.Case(READ_MAP["format"]):
                m.d.sync += read_q.eq(FORMAT_VERSION)
            with m.Case(READ_MAP["status"]):
                m.d.sync += read_q.eq(Cat(self.busy, self.done, error))
        m.d.comb += self.read_data.eq(Mux(from_layers, lc_rd.data,
                                          Mux(from_logits, lg_rd.data[logit_lane], read_q)))   # (sign-extended)
        return m
