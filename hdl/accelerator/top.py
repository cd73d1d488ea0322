"""Accelerator: the whole Spike-driven Transformer overlay, programmed at run time.

One generated :class:`Accelerator` runs any quantized model that fits its
:class:`~spikeforge.firmware.program.HardwareConfig`: the host loads a program (layer
descriptors), weights, biases, thresholds and an image through one write port, pulses
``start`` and reads the logits and performance counters back. ``docs/firmware.md`` describes
the program; ``docs/accelerator.md`` the datapath.

The top holds the memories and the engines and ``wiring.connect``s the components of this
package: :class:`~.loader.Loader`, :class:`~.sequencer.Sequencer` (with the counters),
:class:`~.vector_source.VectorSource`, :class:`~.u_reader.UReader`, :class:`~.post_op.PostOp`,
:class:`~.sdsa_driver.SDSADriver`, :class:`~.or_pool.ORPool`, the buffer arbiters
:class:`~.ports.SpikePort` and :class:`~.ports.ResidualPort`, and :class:`~.read_map.ReadMap`.

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
overlapped with reading its input and writing its output (measured per layer by the counters)."""

from __future__ import annotations

from amaranth.hdl import Module, Mux
from amaranth.lib import memory, wiring

from spikeforge.firmware.memory_map import control_bus, descriptor_layout, row_beats
from spikeforge.firmware.program import (MAX_WEIGHT_SHIFT, HardwareConfig, pack_lanes, row_bits, memory_problem,
                                         write_port_layout)

from ..reduce import TokenSum
from ..register_slice import RegisterSlice
from ..sdsa_unit import SDSAUnit
from ..sparse_accumulator import SparseAccumulator
from ..spike_encoder import SpikeEncoder
from .common import u_layout, v_layout
from .loader import Loader
from .or_pool import ORPool
from .ports import ResidualPort, SpikePort
from .post_op import PostOp
from .read_map import ReadMap, logit_layout, logit_rows
from .sdsa_driver import SDSADriver
from .sequencer import Sequencer
from .u_reader import UReader
from .vector_source import VectorSource

__all__ = ["Accelerator", "connect_spike_port", "connect_residual_port", "connect_post_memories"]


def connect_spike_port(m: Module, spike_buffer: memory.Memory, spk: SpikePort, sdsa: SDSADriver, pool: ORPool,
                       post: PostOp) -> None:
    """The spike buffer's ports to its arbiter; the SDSA driver's, OR-pool's and post-op's requests
    to it (the vector source's is the caller's)."""
    wiring.connect(m, spk.read, spike_buffer.read_port())
    wiring.connect(m, spk.write, spike_buffer.write_port(granularity=spk.hw.lanes))
    wiring.connect(m, sdsa.spikes, spk.sdsa)
    wiring.connect(m, pool.spikes, spk.pool)
    wiring.connect(m, post.spikes, spk.lif_write)
    wiring.connect(m, sdsa.write, spk.sdsa_write)
    wiring.connect(m, pool.write, spk.pool_write)


def connect_residual_port(m: Module, residual: memory.Memory, res: ResidualPort, reader: UReader,
                          post: PostOp) -> None:
    """U's ports (one, or a read port and a read-modify-write port transparent for the write) to
    its arbiter, and the U reader's and post-op's requests to it."""
    u_wr = residual.write_port()
    wiring.connect(m, res.read, residual.read_port())
    if not res.hw.single_port_buffers:
        wiring.connect(m, res.rmw_read, residual.read_port(transparent_for=(u_wr,)))
    wiring.connect(m, res.write, u_wr)
    wiring.connect(m, reader.u, res.reader)
    wiring.connect(m, post.u_rmw, res.rmw)
    wiring.connect(m, post.u_write, res.update)


def connect_post_memories(m: Module, mems: dict, post: PostOp) -> memory.ReadPort:
    """The post-op's membrane, threshold and logit ports; returns the logit memory's read port,
    whose address the caller drives (the post-op's ``logit_row`` while busy)."""
    v_wr, lg_wr = mems["membranes"].write_port(), mems["logits"].write_port()
    wiring.connect(m, post.membranes_write, v_wr)
    wiring.connect(m, post.membranes_read, mems["membranes"].read_port(transparent_for=(v_wr,)))
    wiring.connect(m, post.thresholds, mems["thresholds"].read_port())
    wiring.connect(m, post.logits_write, lg_wr)
    lg_rd = mems["logits"].read_port(transparent_for=(lg_wr,))
    m.d.comb += post.logits_old.eq(lg_rd.data)
    return lg_rd

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
        super().__init__(control_bus(hw).flip())   # the control bus, declared once (firmware/memory_map.py)

    def hw_id(self) -> int:
        """The first 32 bits of the hardware-config hash (readable at ``READ_MAP["hw_id"]``)."""
        return int(self.hw.config_hash()[:8], 16)

    def write_words(self, space: str, row: int, value: int) -> list[dict]:
        """The ``write`` beats that load ``value`` (an integer of the row's bits) into ``row`` of ``space``."""
        return row_beats(self.hw, space, row, value)

    def pack_lanes(self, space: str, values: list[int]) -> int:
        """P signed lane values -> the row integer of ``space`` (weights, biases or thresholds)."""
        return pack_lanes(values, self.row_bits[space] // self.hw.lanes)

    # ---------------------------------------------------------------------------------- gateware


    def elaborate(self, platform):
        m = Module()
        mem = self._memories(m)
        eng = self._engines(m)
        hw = self.hw
        acc, enc, sdsa, tsum = eng["accumulator"], eng["encoder"], eng["sdsa"], eng["token_sum"]
        m.submodules.loader = loader = Loader(hw, acc.weight_write.payload.shape(), acc.bias_write.payload.shape())
        m.submodules.sequencer = seq = Sequencer(hw)
        m.submodules.vector_source = src = VectorSource(hw, enc.chunks.payload.shape())
        m.submodules.u_reader = urd = UReader(hw)
        m.submodules.post_op = post = PostOp(hw, acc.result.payload.shape(), tsum.i.payload.shape(),
                                             tsum.o.payload.shape())
        m.submodules.sdsa_driver = sdd = SDSADriver(hw, sdsa.kv.payload.shape(), sdsa.q.payload.shape(),
                                                    sdsa.o.payload.shape())
        m.submodules.or_pool = pool = ORPool(hw)
        m.submodules.spike_port = spk = SpikePort(hw)
        m.submodules.residual_port = res = ResidualPort(hw)
        m.submodules.read_map = rmap = ReadMap(hw, self.hw_id())

        # loader -> memories and the accumulator's weight and bias memories
        pix_wr, th_wr = mem["pixels"].write_port(), mem["thresholds"].write_port()
        wiring.connect(m, wiring.flipped(self.write), loader.write)
        wiring.connect(m, loader.program, mem["program"].write_port(granularity=1))
        wiring.connect(m, loader.pixels, pix_wr)
        wiring.connect(m, loader.thresholds, th_wr)
        wiring.connect(m, loader.weights, acc.weight_write)
        wiring.connect(m, loader.biases, acc.bias_write)

        # sequencer: program, control of every engine, counters
        lc_wr = mem["layer_counters"].write_port()
        wiring.connect(m, seq.program, mem["program"].read_port())
        wiring.connect(m, seq.layers, lc_wr)
        wiring.connect(m, seq.control, src.control, urd.control, post.control, sdd.control, pool.control,
                       spk.control, res.control)
        ev = acc.events
        m.d.comb += [
            seq.start.eq(self.start), self.busy.eq(seq.busy), self.done.eq(seq.done),
            seq.loading.eq(loader.program_word),
            seq.finished.post.eq(post.idle), seq.finished.sdsa.eq(sdd.idle), seq.finished.or_pool.eq(pool.idle),
            seq.activity.event.eq(ev.valid & ev.ready & ~ev.payload.empty & (~ev.payload.zero if not hw.event_driven else 1)),
            seq.activity.kv.eq(sdd.ops.valid), seq.activity.kv_ops.eq(sdd.ops.count),
            seq.activity.accumulator_busy.eq(acc.busy), seq.activity.source_stall.eq(src.stall),
            seq.activity.reader_busy.eq(urd.busy), seq.activity.post_busy.eq(post.busy),
            seq.activity.sdsa_busy.eq(sdd.busy),
        ]

        # spike buffer: three readers and three writers through one arbiter
        wiring.connect(m, src.spikes, spk.source)
        connect_spike_port(m, mem["spike_buffer"], spk, sdd, pool, post)
        m.d.comb += [src.free.eq(spk.free), sdd.free.eq(spk.free), pool.free.eq(spk.free)]

        # U: the U reader and the post-op's read-modify-write through the residual-port arbiter
        connect_residual_port(m, mem["residual"], res, urd, post)
        m.d.comb += post.u_free.eq(res.free)

        # CONV: vector source -> encoder -> accumulator -> post-op (register slices cut the
        # valid/ready chain post-op -> accumulator -> encoder -> chunk FIFO)
        wiring.connect(m, src.pixels, mem["pixels"].read_port())
        m.d.comb += src.pixels_written.eq(pix_wr.en)
        wiring.connect(m, src.chunks, enc.chunks)
        if hw.plane_bits:
            m.d.comb += enc.planes.eq(seq.control.step.pixel)
        d = seq.control.desc
        m.d.comb += [acc.n_groups.eq(d.groups), acc.weight_shift.eq(d.weight_shift),
                     acc.weight_base.eq(d.weight_base), acc.n_columns.eq(d.n_columns), acc.bias_base.eq(d.bias_base)]
        wiring.connect(m, enc.events, eng["event_slice"].i)
        wiring.connect(m, eng["event_slice"].o, acc.events)
        wiring.connect(m, acc.result, eng["result_slice"].i)
        wiring.connect(m, eng["result_slice"].o, post.sums)
        # LIF_U, GAP: U reader -> post-op (GAP: through the token sum)
        wiring.connect(m, urd.beats, post.u_beats)
        wiring.connect(m, post.gap_in, tsum.i)
        wiring.connect(m, tsum.o, post.gap_out)
        # SDSA: driver <-> unit
        wiring.connect(m, sdd.kv, sdsa.kv)
        wiring.connect(m, sdd.q, sdsa.q)
        wiring.connect(m, sdsa.o, sdd.o)

        # post-op memories; the logit memory's read port is the post-op's while busy, the read map's when idle
        lg_rd = connect_post_memories(m, mem, post)
        m.d.comb += [post.thresholds_written.eq(th_wr.en),
                     lg_rd.addr.eq(Mux(seq.busy, post.logit_row, rmap.logit_row)), rmap.logits.eq(lg_rd.data)]

        # read map
        wiring.connect(m, rmap.layers, mem["layer_counters"].read_port())
        m.d.comb += [rmap.addr.eq(self.read_addr), self.read_data.eq(rmap.data), rmap.recording.eq(lc_wr.en),
                     rmap.counters.eq(seq.counters), rmap.status.busy.eq(seq.busy), rmap.status.done.eq(seq.done),
                     rmap.status.error.eq(seq.error)]
        return m

    def _memories(self, m: Module) -> dict:
        """The accelerator's memories (the build's scripts know them by these names)."""
        hw = self.hw
        mems = {
            "program": memory.Memory(shape=descriptor_layout(hw).size, depth=hw.program_rows, init=[]),
            # a row: ``spike_row_words`` words of ``spike_word_bits``, word-minor
            "spike_buffer": memory.Memory(shape=hw.spike_word_bits, depth=hw.spike_rows * hw.spike_row_words,
                                          init=[]),
            "pixels": memory.Memory(shape=self.row_bits["pixels"], depth=hw.max_positions, init=[]),
            "residual": memory.Memory(shape=u_layout(hw), depth=hw.u_rows, init=[]),
            "thresholds": memory.Memory(shape=v_layout(hw), depth=hw.threshold_rows, init=[]),
            "membranes": memory.Memory(shape=v_layout(hw), depth=hw.groups, init=[]),
            # logits summed over T: row g holds lane group g's classes (read-modify-write by the
            # post-op while busy, by the read map when idle)
            "logits": memory.Memory(shape=logit_layout(hw), depth=logit_rows(hw), init=[]),
            # per-step counters: word k of step s at row 4 s + k (the read map's layout), one 32-bit
            # word per row (a wide, shallow memory would waste block RAMs)
            "layer_counters": memory.Memory(shape=32, depth=4 * hw.program_rows, init=[]),
        }
        for name, mem in mems.items():
            m.submodules[name] = mem
        self.memories = {"spikes": mems["spike_buffer"], "residual": mems["residual"],
                         "membranes": mems["membranes"]}   # for simulation probes
        return mems

    def _engines(self, m: Module) -> dict:
        """The compute engines (``docs/engines.md``) and the register slices between them."""
        hw, p = self.hw, self.hw.lanes
        dense = not hw.event_driven
        enc = SpikeEncoder(width=hw.spike_word_bits, capacity=hw.in_columns, plane_bits=hw.plane_bits, dense=dense)
        acc = SparseAccumulator(
            lanes=p, weight_bits=hw.weight_bits, acc_bits=hw.acc_bits, in_capacity=hw.in_columns,
            group_capacity=hw.groups, max_shift=MAX_WEIGHT_SHIFT, weight_depth=hw.weight_rows,
            bias_depth=hw.bias_rows, plane_bits=hw.plane_bits, dense=dense)
        self.engines = {"accumulator": acc, "encoder": enc}
        eng = {
            "encoder": enc, "accumulator": acc,
            # the SDSA driver sends one channel group at a time (all its time steps): one group of state
            "sdsa": SDSAUnit(lanes=p, group_capacity=1, token_capacity=hw.max_positions, shift=1),
            # the GAP reader sends each (t, group)'s tokens in a row: one partial sum (P lanes) is live
            "token_sum": TokenSum(lanes=p, u_bits=hw.u_bits, sum_bits=hw.gap_bits, group_capacity=1),
            "event_slice": RegisterSlice(enc.events.payload.shape()),
            "result_slice": RegisterSlice(acc.result.payload.shape()),
        }
        for name, e in eng.items():
            m.submodules[name] = e
        return eng
