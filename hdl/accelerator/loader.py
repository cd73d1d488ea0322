"""The loader: the accelerator's write port into its memories."""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Mux, Signal
from amaranth.lib import data, memory, stream, wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from spikeforge.firmware.program import FIELDS, SPACES, HardwareConfig, field_bits, field_max, row_bits, write_port_layout

from .common import v_layout, words
from spikeforge.firmware.memory_map import descriptor_layout, write_layout

__all__ = ["Loader"]


class Loader(wiring.Component):
    """Writes the ``write`` stream's 32-bit words into the memories.

    Word ``addr % 2**k`` of row ``addr >> k`` of memory ``space``
    (:data:`~spikeforge.firmware.program.SPACES`; ``k`` from
    :func:`~spikeforge.firmware.program.write_port_layout`). Rows of lane values (pixels,
    thresholds, weights, biases) are staged word by word and written in the cycle after their last
    word, from registers (the stage, the row, the commit flag: a weight or bias write holds the
    accumulator, and that path starts at a flip-flop). A program row is written field by field as
    its words come (word k is field k, at the field's width; one write enable per bit), and its
    ``invalid`` flag with the last word: whether any of the row's words, from word 0 on, did not
    fit its field (a step with the flag set stops the run with the error flag).

    Ports
    -----
    ``write``: ``In(stream.Signature(write_layout(hw)))``, always ready (no back-pressure).
    ``program``, ``pixels``, ``thresholds``: ``In(memory.WritePort.Signature)``: to the memories.
    ``weights``, ``biases``: ``Out(stream.Signature)``: row writes into the
    :class:`~spikeforge.hdl.sparse_accumulator.SparseAccumulator` (which is always ready).
    ``program_word``: ``Out(1)``: a program word is written this cycle (the program memory's
    read port waits).

    Cycle cost: one word a cycle; a lane-value row is written one cycle after its last word.
    """

    def __init__(self, hw: HardwareConfig, weight_layout: data.Layout, bias_layout: data.Layout):
        self.hw = hw
        self.row_bits = row_bits(hw)
        self.word_bits = write_port_layout(hw)[0]
        super().__init__({
            "write": In(stream.Signature(write_layout(hw))),
            "program": In(memory.WritePort.Signature(addr_width=ceil_log2(hw.program_rows),
                                                     shape=descriptor_layout(hw).size, granularity=1)),
            "pixels": In(memory.WritePort.Signature(addr_width=ceil_log2(hw.max_positions),
                                                    shape=self.row_bits["pixels"])),
            "thresholds": In(memory.WritePort.Signature(addr_width=ceil_log2(hw.threshold_rows), shape=v_layout(hw))),
            "weights": Out(stream.Signature(weight_layout)),
            "biases": Out(stream.Signature(bias_layout)),
            "program_word": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        stage = Signal(max(bits for name, bits in self.row_bits.items() if name != "program") + 32)
        wr = self.write.payload
        word = wr.addr[:self.word_bits]
        row = wr.addr[self.word_bits:]
        is_prog_word = self.program_word
        m.d.comb += [self.write.ready.eq(1), is_prog_word.eq(self.write.valid & (wr.space == SPACES["program"]))]
        with m.If(self.write.valid & ~is_prog_word):
            m.d.sync += stage.word_select(word, 32).eq(wr.data)
        self._program_rows(m, row, word)
        commit = {}                     # the row in ``stage`` is written to ``commit_row`` this cycle
        commit_row = Signal.like(row)
        m.d.sync += commit_row.eq(row)
        for name, bits in self.row_bits.items():
            if name != "program":
                commit[name] = Signal(name=f"commit_{name}")
                m.d.sync += commit[name].eq(self.write.valid & (wr.space == SPACES[name])
                                            & (word == words(bits) - 1))
        for port, name in ((self.pixels, "pixels"), (self.thresholds, "thresholds")):
            m.d.comb += [port.addr.eq(commit_row), port.data.eq(stage[:self.row_bits[name]]), port.en.eq(commit[name])]
        for stream_, name in ((self.weights, "weights"), (self.biases, "biases")):
            m.d.comb += [stream_.valid.eq(commit[name]), stream_.payload.addr.eq(commit_row),
                         stream_.payload.data.eq(stage[:self.row_bits[name]])]
        return m

    def _program_rows(self, m: Module, row, word) -> None:
        """A program word is written into its field of row ``row``; the row's ``invalid`` flag
        with its last word."""
        hw, wr, is_prog_word = self.hw, self.write.payload, self.program_word
        desc_layout = descriptor_layout(hw)
        fw = field_bits(hw)
        prog_wr = self.program
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
