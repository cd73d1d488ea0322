"""SynapticEngine: SpikeEncoder followed by SparseAccumulator (bit-packed spikes in, sums out)."""

from __future__ import annotations

from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out, flipped

from .sparse_accumulator import SparseAccumulator
from .spike_encoder import SpikeEncoder

__all__ = ["SynapticEngine"]


class SynapticEngine(wiring.Component):
    """The event-driven synaptic layer: ``acc = bias + W @ spikes`` with work only for set spikes.

    A :class:`SpikeEncoder` turns each bit-packed input vector into address events, which a
    :class:`SparseAccumulator` turns into P-lane sums; equals
    :func:`spikeforge.model.golden.sparse_accumulate`.

    Parameters are those of the two blocks (``chunk_width`` is the encoder's W; ``in_capacity`` is
    shared). Ports: ``chunks`` (encoder input), ``result``, ``weight_write``, ``bias_write``,
    ``n_groups``, ``weight_shift`` (accumulator).

    Cycle cost (no back-pressure): ``max(events, 1) * n_groups`` plus a constant per vector: 1 cycle
    (the encoder's ``last`` beat) when the vector fits one chunk, plus one per extra all-zero chunk.
    """

    def __init__(self, lanes: int = 16, weight_bits: int = 8, acc_bits: int = 16, in_capacity: int = 256,
                 group_capacity: int = 4, max_shift: int = 16, chunk_width: int = 32):
        self.accumulator = SparseAccumulator(lanes, weight_bits, acc_bits, in_capacity, group_capacity, max_shift)
        capacity = self.accumulator.in_capacity  # rounded up to a power of two
        self.encoder = SpikeEncoder(width=min(chunk_width, capacity), capacity=capacity)
        acc_sig = self.accumulator.signature.members
        super().__init__({
            "chunks": self.encoder.signature.members["chunks"],
            "result": acc_sig["result"],
            "weight_write": acc_sig["weight_write"],
            "bias_write": acc_sig["bias_write"],
            "n_groups": acc_sig["n_groups"],
            "weight_shift": acc_sig["weight_shift"],
        })

    def weight_rows(self, weight):
        return self.accumulator.weight_rows(weight)

    def bias_rows(self, bias):
        return self.accumulator.bias_rows(bias)

    def elaborate(self, platform):
        m = Module()
        m.submodules.encoder = enc = self.encoder
        m.submodules.accumulator = acc = self.accumulator
        wiring.connect(m, flipped(self.chunks), enc.chunks)
        wiring.connect(m, enc.events, acc.events)
        wiring.connect(m, acc.result, flipped(self.result))
        wiring.connect(m, flipped(self.weight_write), acc.weight_write)
        wiring.connect(m, flipped(self.bias_write), acc.bias_write)
        m.d.comb += [acc.n_groups.eq(self.n_groups), acc.weight_shift.eq(self.weight_shift)]
        return m
