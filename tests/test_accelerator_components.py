"""Each component of the accelerator (``hdl/accelerator/``) in Amaranth's simulator, with random
stalls, against the golden ops (``spikeforge.model.golden``) or the memory map's contract.

The datapath tests run a component under the real :class:`Sequencer` (a program of the step and
``END``) and the real buffer arbiters, with memories loaded directly; the test stalls the
spike-buffer port, U's port and the U reader's stream at random cycles."""

import random

import pytest
import torch
from amaranth.hdl import Elaboratable, Module, Signal
from amaranth.sim import Simulator
from amaranth.lib import memory, wiring

from spikeforge.firmware.program import FORMAT_VERSION, KINDS, OPS, POSTS, Descriptor, HardwareConfig
from spikeforge.hdl.accelerator import COUNTERS, READ_MAP, Accelerator, descriptor_layout
from spikeforge.hdl.accelerator.common import u_layout, v_layout
from spikeforge.hdl.accelerator.loader import Loader
from spikeforge.hdl.accelerator.or_pool import ORPool
from spikeforge.hdl.accelerator.ports import ResidualPort, SpikePort
from spikeforge.hdl.accelerator.post_op import PostOp
from spikeforge.hdl.accelerator.read_map import ReadMap, logit_layout, logit_rows
from spikeforge.hdl.accelerator.sdsa_driver import SDSADriver
from spikeforge.hdl.accelerator.sequencer import Sequencer
from spikeforge.hdl.accelerator.top import connect_post_memories, connect_residual_port, connect_spike_port
from spikeforge.hdl.accelerator.u_reader import UReader
from spikeforge.hdl.accelerator.vector_source import VectorSource
from spikeforge.hdl.reduce import TokenSum
from spikeforge.hdl.sdsa_unit import SDSAUnit
from spikeforge.hdl.sparse_accumulator import SparseAccumulator
from spikeforge.hdl.spike_encoder import SpikeEncoder
from spikeforge.model import golden
from spikeforge.sim.amaranth_streams import run_amaranth, stream_send

P = 4


def _hw(words=1, one_port=False):
    return HardwareConfig(lanes=P, max_channels=32, max_embed=8, max_height=6, max_width=6, max_steps=2,
                          max_3x3_channels=16, weight_rows=64, bias_rows=8, threshold_rows=8, spike_rows=128,
                          u_rows=128, program_rows=4, max_classes=8, spike_row_words=words,
                          single_port_buffers=one_port)


def _spike_words(hw, bits):
    """A spike row (channel c = bits[c]) as its ``spike_row_words`` words."""
    wb = hw.spike_word_bits
    return [sum(int(b) << (c % wb) for c, b in enumerate(bits) if c // wb == k) for k in range(hw.spike_row_words)]


def _spike_map(hw, x, base):
    """Spike-buffer contents holding the map ``x [T, C, H, W]`` from row ``base``: row
    ``base + (y * W + x) * T + t`` (as the compiler lays maps out)."""
    T, _, H, W = x.shape
    words = hw.spike_row_words
    init = [0] * (hw.spike_rows * words)
    for y in range(H):
        for xx in range(W):
            for t in range(T):
                row = base + (y * W + xx) * T + t
                init[row * words:(row + 1) * words] = _spike_words(hw, x[t, :, y, xx].tolist())
    return init


def _spike_row(hw, ctx, mem, row):
    """Channel bits of spike row ``row`` read from the simulated memory."""
    wb = hw.spike_word_bits
    out = []
    for k in range(hw.spike_row_words):
        word = ctx.get(mem.data[row * hw.spike_row_words + k])
        out += [(word >> b) & 1 for b in range(wb)]
    return out


class _Steps(Elaboratable):
    """The sequencer, the buffer arbiters and the non-``CONV`` engines (U reader, post-op with the
    token sum, SDSA driver with the unit, OR-pool), their memories loaded from ``init``; the
    accumulator's sums stream is the test's (``sums``). ``stall`` holds the spike buffer's and U's
    ports and the U reader's stream for its cycles."""

    def __init__(self, hw, program, init):
        self.hw, self.program, self.init = hw, program, init
        self.stall = Signal()
        self.start = Signal()
        self.seq = Sequencer(hw)
        acc = SparseAccumulator(lanes=P, weight_bits=hw.weight_bits, acc_bits=hw.acc_bits, in_capacity=hw.in_columns,
                                group_capacity=hw.groups)
        acc._MustUse__silence = True    # (only its sums' layout)
        self.tsum = TokenSum(lanes=P, u_bits=hw.u_bits, sum_bits=hw.gap_bits, group_capacity=1)
        self.sdsa = SDSAUnit(lanes=P, group_capacity=1, token_capacity=hw.max_positions, shift=1)
        self.post = PostOp(hw, acc.result.payload.shape(), self.tsum.i.payload.shape(), self.tsum.o.payload.shape())
        self.sums = self.post.sums
        self.read_out = lambda ctx: None
        self.mems = {
            "program": _program_memory(hw, program),
            "spike_buffer": memory.Memory(shape=hw.spike_word_bits, depth=hw.spike_rows * hw.spike_row_words,
                                          init=init.get("spike_buffer", [])),
            "residual": memory.Memory(shape=u_layout(hw), depth=hw.u_rows, init=init.get("residual", [])),
            "thresholds": memory.Memory(shape=v_layout(hw), depth=hw.threshold_rows, init=init.get("thresholds", [])),
            "membranes": memory.Memory(shape=v_layout(hw), depth=hw.groups, init=[]),
            "logits": memory.Memory(shape=logit_layout(hw), depth=logit_rows(hw), init=[]),
            "layer_counters": memory.Memory(shape=32, depth=4 * hw.program_rows, init=[]),
        }

    def elaborate(self, platform):
        m = Module()
        hw, mem = self.hw, self.mems
        for name, mm in mem.items():
            m.submodules[name] = mm
        m.submodules.seq = seq = self.seq
        m.submodules.urd = urd = UReader(hw)
        m.submodules.post = post = self.post
        m.submodules.sdd = sdd = SDSADriver(hw, self.sdsa.kv.payload.shape(), self.sdsa.q.payload.shape(),
                                            self.sdsa.o.payload.shape())
        m.submodules.pool = pool = ORPool(hw)
        m.submodules.spk = spk = SpikePort(hw)
        m.submodules.res = res = ResidualPort(hw)
        m.submodules.tsum, m.submodules.sdsa = self.tsum, self.sdsa
        wiring.connect(m, seq.program, mem["program"].read_port())
        wiring.connect(m, seq.layers, mem["layer_counters"].write_port())
        wiring.connect(m, seq.control, urd.control, post.control, sdd.control, pool.control, spk.control, res.control)
        m.d.comb += [seq.start.eq(self.start), seq.finished.post.eq(post.idle), seq.finished.sdsa.eq(sdd.idle),
                     seq.finished.or_pool.eq(pool.idle), seq.activity.kv.eq(sdd.ops.valid),
                     seq.activity.kv_ops.eq(sdd.ops.count)]
        connect_spike_port(m, mem["spike_buffer"], spk, sdd, pool, post)
        m.d.comb += [sdd.free.eq(spk.free & ~self.stall), pool.free.eq(spk.free & ~self.stall)]
        connect_residual_port(m, mem["residual"], res, urd, post)
        m.d.comb += post.u_free.eq(res.free & ~self.stall)
        # the U reader's stream, held at random cycles
        m.d.comb += [post.u_beats.payload.eq(urd.beats.payload), post.u_beats.valid.eq(urd.beats.valid & ~self.stall),
                     urd.beats.ready.eq(post.u_beats.ready & ~self.stall)]
        wiring.connect(m, post.gap_in, self.tsum.i)
        wiring.connect(m, self.tsum.o, post.gap_out)
        wiring.connect(m, sdd.kv, self.sdsa.kv)
        wiring.connect(m, sdd.q, self.sdsa.q)
        wiring.connect(m, self.sdsa.o, sdd.o)
        lg_rd = connect_post_memories(m, mem, post)
        m.d.comb += lg_rd.addr.eq(post.logit_row)
        return m


def _program_memory(hw, program):
    """A program memory holding ``program`` (each descriptor's fields at their hardware widths)."""
    layout = descriptor_layout(hw)
    rows = [layout.const({n: getattr(d, n) for n in layout.members if n != "invalid"}).as_value().value
            for d in program]
    return memory.Memory(shape=layout.size, depth=hw.program_rows, init=rows)


def _run(bench, stall, seed, sums=(), sum_idle=0.3, limit=200_000):
    """Start the program, stall at random, feed ``sums``; returns the test's own count of busy
    cycles, the sequencer's error flag, counters and per-step counters, and ``bench.read_out``'s
    reading of the memories after ``done``."""
    rng = random.Random(seed)
    result = {}

    async def stalls(ctx):
        while True:
            ctx.set(bench.stall, rng.random() < stall)
            await ctx.tick()

    async def feed(ctx):
        await stream_send(ctx, bench.sums, list(sums), random.Random(seed + 1), sum_idle)

    async def main(ctx):
        ctx.set(bench.start, 1)
        await ctx.tick()
        ctx.set(bench.start, 0)
        busy = 0
        for _ in range(limit):
            b, done = ctx.get(bench.seq.busy), ctx.get(bench.seq.done)
            if not b and done:
                break
            busy += b
            await ctx.tick()
        else:
            raise TimeoutError("the step did not finish")
        result["busy"] = busy
        result["error"] = ctx.get(bench.seq.error)
        result["counters"] = {n: ctx.get(getattr(bench.seq.counters, n)) for n in COUNTERS}
        result["snap"] = [ctx.get(bench.mems["layer_counters"].data[k]) for k in range(4 * len(bench.program))]
        result["out"] = bench.read_out(ctx)

    run_amaranth(bench, main, stalls, feed)
    return result


def _end():
    return Descriptor(name="end", op=OPS["END"])


@pytest.mark.parametrize("words, one_port, stall", [(1, False, 0.0), (4, True, 0.3), (1, True, 0.5)])
def test_or_pool_equals_golden(words, one_port, stall):
    """POOL_OR: the OR-pool reads each 3x3 window word by word and writes the pooled row; the
    step's recorded cycles are the run's less the 3 cycles of RECORD, FETCH and DECODE of END."""
    hw = _hw(words, one_port)
    g = torch.Generator().manual_seed(words * 7 + int(stall * 10))
    T, C, H, W = 2, 13, 5, 4
    x = (torch.rand(T, C, H, W, generator=g) < 0.3).long()
    ho, wo = (H - 1) // 2 + 1, (W - 1) // 2 + 1
    in_base, out_base = 3, 60
    init = _spike_map(hw, x, in_base)
    d = Descriptor(op=OPS["POOL_OR"], height=H, width=W, steps=T, cin=C, cout=C, in_base=in_base,
                   out_base=out_base, row_stride=W * T, out_height=ho, out_width=wo)
    bench = _Steps(hw, [d, _end()], {"spike_buffer": init})
    bench.read_out = lambda ctx: [[[_spike_row(hw, ctx, bench.mems["spike_buffer"], out_base + (i * wo + j) * T + t)[:C]
                                    for j in range(wo)] for i in range(ho)] for t in range(T)]
    r = _run(bench, stall, seed=words)
    got = torch.tensor(r["out"]).permute(0, 3, 1, 2)   # [T, C, H', W']
    assert torch.equal(got, golden.or_pool(x))
    assert not r["error"]
    assert r["snap"][0] == r["busy"] - 3


@pytest.mark.parametrize("words, one_port, stall", [(1, False, 0.0), (4, False, 0.3), (2, True, 0.4)])
def test_sdsa_driver_equals_golden(words, one_port, stall):
    """SDSA: Q, K, V from one spike row (``[Q | K | V]``, whole groups each) through the driver
    and the unit; the output spikes at the output rows, K AND V counted as events and SOPs."""
    hw = _hw(words, one_port)
    g = torch.Generator().manual_seed(11 + words)
    T, C, H, W = 2, 7, 3, 2
    gc = -(-C // P)
    n = H * W
    q, k, v = ((torch.rand(T, C, n, generator=g) < r).long() for r in (0.5, 0.6, 0.7))
    in_base, out_base = 5, 70
    init = [0] * (hw.spike_rows * words)
    for tok in range(n):
        for t in range(T):
            bits = [0] * hw.max_channels
            for c in range(C):
                bits[c], bits[gc * P + c], bits[2 * gc * P + c] = int(q[t, c, tok]), int(k[t, c, tok]), int(v[t, c, tok])
            row = in_base + tok * T + t
            init[row * words:(row + 1) * words] = _spike_words(hw, bits)
    d = Descriptor(op=OPS["SDSA"], height=H, width=W, steps=T, cin=C, groups=gc, cout=C, in_base=in_base,
                   out_base=out_base, u_groups=gc)
    bench = _Steps(hw, [d, _end()], {"spike_buffer": init})
    bench.read_out = lambda ctx: [[_spike_row(hw, ctx, bench.mems["spike_buffer"], out_base + tok * T + t)[:C]
                                   for tok in range(n)] for t in range(T)]
    r = _run(bench, stall, seed=3 + words)
    out, count, _ = golden.sdsa(q, k, v)
    assert torch.equal(torch.tensor(r["out"]).permute(0, 2, 1), out)
    assert r["counters"]["events"] == r["counters"]["sops"] == int(count.sum())
    assert r["counters"]["cycles"] == r["busy"]


class _Source(Elaboratable):
    """The sequencer and the vector source on the spike buffer (through its arbiter, held by
    ``stall``); the chunk stream is the test's."""

    def __init__(self, hw, program, spikes):
        self.hw, self.stall, self.start = hw, Signal(), Signal()
        enc = SpikeEncoder(width=hw.spike_word_bits, capacity=hw.in_columns)
        enc._MustUse__silence = True
        self.seq, self.src = Sequencer(hw), VectorSource(hw, enc.chunks.payload.shape())
        self.mems = {"program": _program_memory(hw, program),
                     "spike_buffer": memory.Memory(shape=hw.spike_word_bits,
                                                   depth=hw.spike_rows * hw.spike_row_words, init=spikes),
                     "pixels": memory.Memory(shape=1, depth=hw.max_positions, init=[]),
                     "layer_counters": memory.Memory(shape=32, depth=4 * hw.program_rows, init=[])}

    def elaborate(self, platform):
        m = Module()
        hw, mem, seq, src = self.hw, self.mems, self.seq, self.src
        for name, mm in mem.items():
            m.submodules[name] = mm
        m.submodules.seq, m.submodules.src, m.submodules.spk = seq, src, spk = seq, src, SpikePort(hw)
        wiring.connect(m, seq.program, mem["program"].read_port())
        wiring.connect(m, seq.layers, mem["layer_counters"].write_port())
        wiring.connect(m, seq.control, src.control, spk.control)
        wiring.connect(m, spk.read, mem["spike_buffer"].read_port())
        wiring.connect(m, spk.write, mem["spike_buffer"].write_port(granularity=P))
        wiring.connect(m, src.spikes, spk.source)
        rd = mem["pixels"].read_port()
        m.d.comb += [rd.addr.eq(src.pixels.addr), src.pixels.data.eq(rd.data), seq.start.eq(self.start),
                     src.free.eq(spk.free & ~self.stall)]
        return m


@pytest.mark.parametrize("kind, words, stall", [("3x3", 1, 0.0), ("3x3", 4, 0.4), ("1x1", 2, 0.3)])
def test_vector_source_gathers_the_golden_columns(kind, words, stall):
    """CONV input vectors: per output position and time step the set columns ``tap * cin + c`` of
    the in-map 3x3 taps (a 1x1 layer: ``c``), which ``golden.conv3x3_accumulate`` with one-hot
    weights gathers; all-zero words are not sent (a vector's last chunk always is); random
    back-pressure and port stalls."""
    hw = _hw(words)
    g = torch.Generator().manual_seed(words)
    T, C, H, W = 2, 11 if kind == "1x1" else 12, 4, 3
    x = (torch.rand(T, C, H, W, generator=g) < 0.2).long()
    in_base = 9
    init = _spike_map(hw, x, in_base)
    if kind == "3x3":
        onehot = torch.zeros(9 * C, C, 3, 3, dtype=torch.long)
        for tap in range(9):
            for c in range(C):
                onehot[tap * C + c, c, tap // 3, tap % 3] = 1
        cols = golden.conv3x3_accumulate(x, onehot)
    else:
        cols = golden.conv1x1_accumulate(x, torch.eye(C, dtype=torch.long))
    expected = [cols[t, :, y, xx].nonzero().flatten().tolist() for y in range(H) for xx in range(W) for t in range(T)]
    d = Descriptor(op=OPS["CONV"], kind=KINDS[kind], post=POSTS["U_WRITE"], height=H, width=W, steps=T, cin=C,
                   groups=1, cout=P, in_base=in_base, row_stride=W * T)
    bench = _Source(hw, [d, _end()], init)
    rng = random.Random(words)
    got, vector = [], []

    async def main(ctx):
        ctx.set(bench.start, 1)
        await ctx.tick()
        ctx.set(bench.start, 0)
        chunks = bench.src.chunks
        for _ in range(20_000):
            ctx.set(bench.stall, rng.random() < stall)
            ready = rng.random() >= stall
            ctx.set(chunks.ready, ready)
            _, _, valid, beat = await ctx.tick().sample(chunks.valid, chunks.payload)
            if valid and ready:
                assert beat.bits or beat.last, "an all-zero chunk that is not a vector's last"
                vector.extend(beat.base + i for i in range(hw.spike_word_bits) if (beat.bits >> i) & 1)
                if beat.last:
                    got.append(sorted(vector))
                    vector.clear()
                    if len(got) == len(expected):
                        break
        assert got == expected

    run_amaranth(bench, main)


def _u_rows(hw, u, gc):
    """U ``[T, C, N]`` as rows in (position, t, group) order."""
    T, C, n = u.shape
    rows = []
    pad = torch.zeros(T, gc * P, n, dtype=torch.long)
    pad[:, :C] = u
    for tok in range(n):
        for t in range(T):
            for grp in range(gc):
                rows.append(pad[t, grp * P:(grp + 1) * P, tok].tolist())
    return rows


@pytest.mark.parametrize("one_port, stall", [(False, 0.0), (True, 0.4), (False, 0.5)])
def test_u_reader_and_post_op_lif_u_equal_golden(one_port, stall):
    """LIF_U: the U reader sends U's rows and the post-op's LIF writes the spikes of each
    (position, t) to the spike buffer (``golden.lif`` over T, per-channel thresholds)."""
    hw = _hw(1, one_port)
    g = torch.Generator().manual_seed(5)
    T, C, H, W = 2, 6, 3, 3
    gc, n = -(-C // P), H * W
    u = torch.randint(-300, 300, (T, C, n), generator=g)
    th = torch.randint(1, 200, (C,), generator=g)
    th_base, out_base = 2, 40
    ths = torch.full((gc * P,), 1000, dtype=torch.long)
    ths[:C] = th
    thresholds = [[0] * P] * th_base + [ths[grp * P:(grp + 1) * P].tolist() for grp in range(gc)]
    d = Descriptor(op=OPS["LIF_U"], height=H, width=W, steps=T, cin=C, groups=gc, cout=C, th_base=th_base,
                   out_base=out_base, u_pos_stride=T * gc, u_groups=gc)
    bench = _Steps(hw, [d, _end()], {"residual": _u_rows(hw, u, gc), "thresholds": thresholds})
    bench.read_out = lambda ctx: [[_spike_row(hw, ctx, bench.mems["spike_buffer"], out_base + tok * T + t)[:C]
                                   for tok in range(n)] for t in range(T)]
    r = _run(bench, stall, seed=9)
    expected = golden.lif(u, th.view(C, 1), 1, hw.v_bits)
    assert torch.equal(torch.tensor(r["out"]).permute(0, 2, 1), expected)


@pytest.mark.parametrize("post, one_port, stall", [("U_ADD", False, 0.3), ("U_ADD", True, 0.3),
                                                   ("U_MAXPOOL", False, 0.2), ("U_MAXPOOL", True, 0.4),
                                                   ("LOGITS", False, 0.3)])
def test_post_op_updates_u_and_logits_as_golden(post, one_port, stall):
    """CONV post-ops on sums fed with random gaps: U += x (``golden.shortcut_add``), U = the
    3x3 / stride 2 max-pool of x (``golden.max_pool``), logits = x summed over T."""
    hw = _hw(1, one_port)
    g = torch.Generator().manual_seed(len(post) + one_port)
    T, C = 2, 7
    H, W = (5, 4) if post == "U_MAXPOOL" else ((1, 1) if post == "LOGITS" else (3, 2))
    gc = -(-C // P)
    x = torch.randint(-500, 500, (T, C, H, W), generator=g)
    u = torch.randint(-500, 500, (T, C, H * W), generator=g)
    xp = torch.zeros(T, gc * P, H, W, dtype=torch.long)
    xp[:, :C] = x
    sums = [{"acc": xp[t, grp * P:(grp + 1) * P, y, xx].tolist(), "group": grp, "last": 1}
            for y in range(H) for xx in range(W) for t in range(T) for grp in range(gc)]
    ho, wo = (H - 1) // 2 + 1, (W - 1) // 2 + 1
    d = Descriptor(op=OPS["CONV"], kind=KINDS["1x1"], post=POSTS[post], height=H, width=W, steps=T, cin=1, groups=gc, cout=C,
                   u_pos_stride=T * gc, u_row_stride=wo * T * gc, out_height=ho, out_width=wo, u_groups=gc)
    bench = _Steps(hw, [d, _end()], {"residual": _u_rows(hw, u, gc)})
    res = bench.mems["residual"]
    if post == "LOGITS":
        bench.read_out = lambda ctx: [ctx.get(bench.mems["logits"].data[grp])[lane] for grp in range(gc)
                                      for lane in range(P)][:C]
    else:
        tokens = ho * wo if post == "U_MAXPOOL" else H * W
        bench.read_out = lambda ctx: [[[ctx.get(res.data[(tok * T + t) * gc + c // P])[c % P] for c in range(C)]
                                       for tok in range(tokens)] for t in range(T)]
    r = _run(bench, stall, seed=2, sums=sums)
    if post == "LOGITS":
        assert r["out"] == x.sum(0).flatten().tolist()
        return
    got = torch.tensor(r["out"]).permute(0, 2, 1)
    if post == "U_ADD":
        assert torch.equal(got, golden.shortcut_add(u, x.flatten(-2), hw.u_bits))
    else:
        assert torch.equal(got, golden.max_pool(x).flatten(-2))


def test_gap_step_sums_tokens_then_fires_as_golden():
    """GAP: the U reader sends each (t, group)'s tokens, the token sum adds them, the post-op's
    LIF fires on the sums (``golden.token_sum`` then ``golden.lif``)."""
    hw = _hw(1, False)
    g = torch.Generator().manual_seed(8)
    T, C, H, W = 2, 6, 3, 2
    gc, n = -(-C // P), H * W
    u = torch.randint(-100, 100, (T, C, n), generator=g)
    th = torch.randint(1, 150, (C,), generator=g)
    ths = torch.full((gc * P,), 1000, dtype=torch.long)
    ths[:C] = th
    d = Descriptor(op=OPS["GAP"], height=H, width=W, steps=T, cin=C, groups=gc, cout=C, out_base=50,
                   u_pos_stride=T * gc, u_groups=gc)
    bench = _Steps(hw, [d, _end()], {"residual": _u_rows(hw, u, gc),
                                     "thresholds": [ths[grp * P:(grp + 1) * P].tolist() for grp in range(gc)]})
    bench.read_out = lambda ctx: [_spike_row(hw, ctx, bench.mems["spike_buffer"], 50 + t)[:C] for t in range(T)]
    r = _run(bench, 0.3, seed=4)
    sums = golden.token_sum(u.view(T, C, H, W))
    assert torch.equal(torch.tensor(r["out"]), golden.lif(sums, th, 1, hw.v_bits))


def test_sequencer_stops_on_an_unknown_op_and_records_each_step():
    """Two steps then an unknown op: the sequencer records each step's counters (its cycles from
    the previous step's end, fetch and decode included) and stops with ``error``."""
    hw = _hw()
    steps = [Descriptor(op=OPS["POOL_OR"], height=2, width=2, steps=1, cin=4, cout=4, in_base=0, out_base=20,
                        row_stride=2, out_height=1, out_width=1)] * 2
    bad = Descriptor(op=max(OPS.values()) + 1)
    bench = _Steps(hw, steps + [bad], {})
    bench.read_out = lambda ctx: None
    r = _run(bench, 0.3, seed=1)
    assert r["error"]
    cyc = [r["snap"][4 * s] for s in range(2)]
    # each POOL_OR step: 1 pooled word x 9 taps, its reads stalled at random; 4 cycles of sequencing
    assert cyc[1] > cyc[0] >= 9 + 4 and r["busy"] == cyc[1] + 3


# ------------------------------------------------------------------------------- loader, read map, arbiter

def test_loader_writes_rows_and_flags_a_word_too_wide_with_gaps():
    """Program rows field by field (a too-wide word sets the row's ``invalid``), thresholds and
    pixels after their last word, weights and biases as stream beats; random idle gaps."""
    hw = _hw()
    acc = SparseAccumulator(lanes=P, weight_bits=hw.weight_bits, acc_bits=hw.acc_bits, in_capacity=hw.in_columns,
                            group_capacity=hw.groups, weight_depth=hw.weight_rows, bias_depth=hw.bias_rows)
    acc._MustUse__silence = True        # (only its write ports' layouts)
    loader = Loader(hw, acc.weight_write.payload.shape(), acc.bias_write.payload.shape())
    top = Accelerator(hw)       # (not elaborated: its write-beat helpers, firmware's row packing)
    top._MustUse__silence = True
    layout = descriptor_layout(hw)
    progs = {
        "program": memory.Memory(shape=layout.size, depth=hw.program_rows, init=[]),
        "pixels": memory.Memory(shape=top.row_bits["pixels"], depth=hw.max_positions, init=[]),
        "thresholds": memory.Memory(shape=v_layout(hw), depth=hw.threshold_rows, init=[]),
    }

    class Bench(Elaboratable):
        def elaborate(self, platform):
            m = Module()
            m.submodules.loader = loader
            for name, mm in progs.items():
                m.submodules[name] = mm
                wiring.connect(m, getattr(loader, name),
                               mm.write_port(granularity=1) if name == "program" else mm.write_port())
            return m

    rng = random.Random(0)
    good = Descriptor(op=OPS["CONV"], kind=KINDS["3x3"], height=5, width=3, steps=2, cin=7, groups=2, cout=8, th_base=3)
    beats = top.write_words("program", 1, good.row_value())
    wide = top.write_words("program", 2, good.row_value())
    wide[3]["data"] = 1 << 31                  # field 3 (height) far beyond its width
    th = [rng.randint(-1000, 1000) for _ in range(P)]
    beats += wide + top.write_words("thresholds", 5, top.pack_lanes("thresholds", th))
    pixel_row = rng.randrange(1 << top.row_bits["pixels"])
    beats += top.write_words("pixels", 7, pixel_row)
    weights = [rng.randint(-100, 100) for _ in range(P)]
    beats += top.write_words("weights", 9, top.pack_lanes("weights", weights))
    seen = []

    async def monitor(ctx):
        async for _, _, wv, wp in ctx.tick().sample(loader.weights.valid, loader.weights.payload):
            if wv:
                seen.append((wp.addr, [int(x) for x in wp.data]))

    async def main(ctx):
        assert ctx.get(loader.write.ready)      # always ready
        for beat in beats:
            while rng.random() < 0.4:
                await ctx.tick()
            ctx.set(loader.write.payload, beat)
            ctx.set(loader.write.valid, 1)
            await ctx.tick()
            ctx.set(loader.write.valid, 0)
        await ctx.tick().repeat(3)
        row1 = layout.from_bits(ctx.get(progs["program"].data[1]))
        row2 = layout.from_bits(ctx.get(progs["program"].data[2]))
        for name in ("op", "kind", "height", "width", "cin", "groups", "th_base"):
            assert row1[name] == getattr(good, name), name
        assert not row1.invalid and row2.invalid
        assert [int(x) for x in ctx.get(progs["thresholds"].data[5])] == th
        assert ctx.get(progs["pixels"].data[7]) == pixel_row
        assert seen == [(9, weights)]

    run_amaranth(Bench(), main, monitor)


def test_read_map_answers_each_address_a_cycle_later():
    hw = _hw()
    rmap = ReadMap(hw, 0xC0FFEE12)
    lc = memory.Memory(shape=32, depth=4 * hw.program_rows, init=[1000 + k for k in range(4 * hw.program_rows)])
    lg = memory.Memory(shape=logit_layout(hw), depth=logit_rows(hw), init=[[-1, 2, -3, 4], [5, -6, 7, -8]])

    class Bench(Elaboratable):
        def elaborate(self, platform):
            m = Module()
            m.submodules.rmap, m.submodules.lc, m.submodules.lg = rmap, lc, lg
            wiring.connect(m, rmap.layers, lc.read_port())
            rd = lg.read_port()
            m.d.comb += [rd.addr.eq(rmap.logit_row), rmap.logits.eq(rd.data)]
            return m

    counters = {n: 17 * (i + 1) for i, n in enumerate(COUNTERS)}
    expect = {READ_MAP["hw_id"]: 0xC0FFEE12, READ_MAP["format"]: FORMAT_VERSION, READ_MAP["status"]: 0b101,
              READ_MAP["layers"] + 5: 1005, 0: (-1) & 0xFFFFFFFF, 5: (-6) & 0xFFFFFFFF, 6: 7, 0x17F: 0}
    expect.update({READ_MAP["counters"] + i: v for i, v in enumerate(counters.values())})
    addrs = list(expect) * 2
    random.Random(1).shuffle(addrs)

    async def main(ctx):
        ctx.set(rmap.counters, counters)
        ctx.set(rmap.status, {"busy": 1, "done": 0, "error": 1})
        prev = None
        for a in addrs:
            ctx.set(rmap.addr, a)
            if prev is not None:                # (still the previous address's word)
                assert ctx.get(rmap.data) == expect[prev], hex(prev)
            await ctx.tick()
            assert ctx.get(rmap.data) == expect[a], hex(a)
            prev = a

    run_amaranth(Bench(), main)


@pytest.mark.parametrize("one_port", [False, True])
def test_spike_port_routes_the_step_s_reader_and_writer(one_port):
    """The op class picks one reader and one writer; a write's enables only while it is valid;
    with one port a write takes the address and holds the readers (``free`` low)."""
    hw = _hw(4, one_port)
    arb = SpikePort(hw)
    rng = random.Random(one_port)
    readers = {"conv": arb.source, "sdsa": arb.sdsa, "or_pool": arb.pool}
    writers = {"conv": arb.lif_write, "sdsa": arb.sdsa_write, "or_pool": arb.pool_write}

    async def main(ctx):
        for _ in range(200):
            kind = rng.choice(list(readers))
            ctx.set(arb.control.step, {k: int(k == kind) for k in readers})
            addrs = {k: rng.randrange(64) for k in readers}
            for k, r in readers.items():
                ctx.set(r.addr, addrs[k])
            reqs = {k: {"valid": rng.random() < 0.5, "addr": rng.randrange(64), "data": rng.randrange(256),
                        "en": rng.randrange(1, 4)} for k in writers}
            for k, w in writers.items():
                for field, value in reqs[k].items():
                    ctx.set(getattr(w, field), value)
            ctx.set(arb.read.data, 0x5A)
            w = reqs[kind]
            assert ctx.get(arb.write.en) == (w["en"] if w["valid"] else 0)
            assert ctx.get(arb.write.data) == w["data"]
            assert ctx.get(arb.write.addr) == w["addr"] or (one_port and not w["valid"])
            held = one_port and w["valid"]
            assert ctx.get(arb.free) == (not held)
            assert ctx.get(arb.read.addr) == (w["addr"] if held else addrs[kind])
            assert all(ctx.get(r.data) == 0x5A for r in readers.values())

    sim = Simulator(arb)            # (combinational: no clock)
    sim.add_testbench(main)
    sim.run()
