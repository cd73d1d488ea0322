"""Every hardware block in Amaranth's simulator: random stimulus with random idle and back-pressure
cycles, scored bit for bit against the golden op functions (the fast development loop; the same
scenarios run on Icarus and Verilator in test_hdl_cocotb.py)."""

import pytest

from spikeforge.hdl import BLOCKS, block_parameters, make_block
from spikeforge.sim.amaranth_bench import run_scenario
from spikeforge.sim.scenarios import BENCH_CONFIGS, make_scenario
from spikeforge.sim.scoreboard import ScoreboardMismatch

EDGE_CONFIGS = {  # lanes at the ends of the supported range (1 .. 64)
    "sparse_accumulator": [dict(lanes=1, weight_bits=4, acc_bits=12, in_capacity=8, group_capacity=5),
                           dict(lanes=64, weight_bits=8, acc_bits=18, in_capacity=16, group_capacity=2)],
    "synaptic_engine": [dict(lanes=1, weight_bits=4, acc_bits=12, in_capacity=8, group_capacity=5, chunk_width=2),
                        dict(lanes=64, weight_bits=8, acc_bits=18, in_capacity=16, group_capacity=2, chunk_width=16)],
    "lif_array": [dict(lanes=1, in_bits=8, v_bits=6, group_capacity=3), dict(lanes=64, in_bits=12, v_bits=10),
                  dict(lanes=2, in_bits=10, v_bits=8, shift=2)],   # the general leak (tau = 4)
    "sdsa_unit": [dict(lanes=1, group_capacity=5, token_capacity=3), dict(lanes=64, group_capacity=1, token_capacity=16)],
    "spike_encoder": [dict(width=1, capacity=4), dict(width=64, capacity=256)],
    "token_sum": [dict(lanes=1, u_bits=4, sum_bits=8, group_capacity=3)],
    "max_pool": [dict(lanes=1, value_bits=3, group_capacity=3)],
    "shortcut_adder": [dict(lanes=1, u_bits=4, x_bits=6)],
}

CASES = [(block, params) for block, configs in BENCH_CONFIGS.items() for params in configs]
CASES += [(block, params) for block, configs in EDGE_CONFIGS.items() for params in configs]


def _id(case):
    block, params = case
    return f"{block}-" + "-".join(f"{k}{v}" for k, v in params.items())


def test_every_block_has_bench_configs():
    assert set(BENCH_CONFIGS) == set(BLOCKS)
    assert all(len(configs) >= 2 for configs in BENCH_CONFIGS.values())


@pytest.mark.parametrize("case", CASES, ids=[_id(c) for c in CASES])
def test_block_equals_golden_with_stalls(case):
    block, params = case
    sc = make_scenario(block, params, transactions=150, seed=3)
    result = run_scenario(sc, idle=0.3, stall=0.3, seed=5)
    assert result["beats"] == {port: len(beats) for port, beats in sc.expected.items()}
    assert sc.transactions >= 150


@pytest.mark.parametrize("block", ["sparse_accumulator", "lif_array", "sdsa_unit", "spike_encoder"])
def test_scoreboard_catches_a_wrong_expectation(block):
    """The bench is not vacuous: one flipped bit in one expected beat fails the run."""
    sc = make_scenario(block, BENCH_CONFIGS[block][0], transactions=40, seed=1)
    port, beats = next(iter(sc.expected.items()))
    beat = beats[len(beats) // 2]
    key = next(k for k in ("acc", "v", "spikes", "addr") if k in beat)
    if isinstance(beat[key], list):
        beat[key][0] ^= 1
    else:
        beat[key] ^= 1
    with pytest.raises(ScoreboardMismatch, match=f"beat {len(beats) // 2} differs"):
        run_scenario(sc)


def test_shortcut_adder_flags_overflow_where_golden_refuses():
    import torch
    from amaranth.sim import Simulator

    from spikeforge.model import golden

    u, x = torch.tensor([[100, -3]]), torch.tensor([[50, 1]])
    with pytest.raises(golden.WidthOverflow):
        golden.shortcut_add(u, x, u_bits=8)
    dut = make_block("shortcut_adder", lanes=2, u_bits=8, x_bits=8)
    flags = []

    async def bench(ctx):
        ctx.set(dut.o.ready, 1)
        for pair, want in (((10, -3), (20, 1)), ((100, -3), (50, 1)), ((1, 1), (1, 1))):
            ctx.set(dut.i.payload, {"u": list(pair), "x": list(want)})
            ctx.set(dut.i.valid, 1)
            await ctx.tick()
            flags.append(ctx.get(dut.overflow))
        ctx.set(dut.i.valid, 0)

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    assert flags == [0, 1, 1]  # sticky from the overflowing beat on


@pytest.mark.parametrize("block,params,message", [
    ("sparse_accumulator", dict(lanes=0), "lanes must be an integer >= 1"),
    ("sparse_accumulator", dict(weight_bits=12, acc_bits=8), "acc_bits 8 is narrower than weight_bits 12"),
    ("spike_encoder", dict(width=12), "width must be a power of two, got 12"),
    ("spike_encoder", dict(width=64, capacity=32), "capacity 32 is smaller than the chunk width 64"),
    ("token_sum", dict(u_bits=16, sum_bits=8), "sum_bits 8 is narrower than u_bits 16"),
    ("lif_array", dict(nonsense=3), "has no parameter nonsense"),
])
def test_bad_parameters_are_refused_clearly(block, params, message):
    with pytest.raises(ValueError, match=message):
        make_block(block, **params)


def test_memory_images_refuse_what_does_not_fit():
    acc = make_block("sparse_accumulator", elaborated=False, lanes=4, in_capacity=8, group_capacity=2)
    with pytest.raises(ValueError, match="C_out 9 exceeds lanes x group_capacity = 8"):
        acc.weight_rows([[1] * 8] * 9)
    with pytest.raises(ValueError, match="C_in 9 exceeds in_capacity 8"):
        acc.weight_rows([[1] * 9] * 4)
    lif = make_block("lif_array", elaborated=False, lanes=4, v_bits=8, group_capacity=2)
    with pytest.raises(ValueError, match="threshold of channel 2 = 300 does not fit v_bits 8"):
        lif.threshold_rows([1, 2, 300])


def test_block_parameters_lists_defaults():
    assert block_parameters("lif_array") == {"lanes": 16, "in_bits": 16, "v_bits": 16, "group_capacity": 4, "shift": 1}
    with pytest.raises(ValueError, match="unknown block 'nope'"):
        block_parameters("nope")


# ------------------------------------------------------------------------------ RegisterSlice

@pytest.mark.parametrize("width,idle,stall", [(1, 0.0, 0.0), (8, 0.3, 0.0), (21, 0.0, 0.5), (21, 0.4, 0.4)])
def test_register_slice_passes_every_beat_in_order_and_cuts_the_ready_path(width, idle, stall):
    import random as _random

    from spikeforge.hdl.register_slice import RegisterSlice
    from spikeforge.sim.amaranth_streams import run_amaranth, stream_send

    rng = _random.Random(width)
    beats = [rng.getrandbits(width) for _ in range(200)]
    dut = RegisterSlice(width)
    got, cycles = [], []

    async def source(ctx):
        await stream_send(ctx, dut.i, beats, rng=_random.Random(1), idle=idle)

    async def main(ctx):
        srng = _random.Random(2)
        n = 0
        while len(got) < len(beats):
            ready = int(srng.random() >= stall)
            ctx.set(dut.o.ready, ready)
            # i.ready is a register: flipping o.ready within the cycle cannot change it
            before = ctx.get(dut.i.ready)
            ctx.set(dut.o.ready, 1 - ready)
            assert ctx.get(dut.i.ready) == before
            ctx.set(dut.o.ready, ready)
            _, _, valid, payload = await ctx.tick().sample(dut.o.valid, dut.o.payload)
            n += 1
            if valid and ready:
                got.append(payload)
        cycles.append(n)

    run_amaranth(dut, main, source)
    assert got == beats
    if idle == 0 and stall == 0:
        assert cycles[0] == len(beats) + 1       # full throughput, latency 1


@pytest.mark.parametrize("lanes,groups", [(1, 3), (4, 2)])
def test_weight_writes_during_a_vector_hold_the_accumulator(lanes, groups):
    """The weight memory has one port (SPRAM on the iCE40UP5K): a weight write takes it for a cycle
    and the pipeline holds still. Writes to unused rows in half the cycles of running vectors
    (group 0 and the replayed groups) leave the sums equal to the golden model. Two layers' weights
    sit at two ``weight_base``s, switched in the cycle of each vector's first event."""
    import random

    import torch
    from amaranth.sim import Simulator

    from spikeforge.hdl.sparse_accumulator import SparseAccumulator
    from spikeforge.model.golden import sparse_accumulate

    rng = random.Random(lanes)
    c_in, c_out = 8, lanes * groups
    layer_rows = c_in * groups
    dut = SparseAccumulator(lanes=lanes, weight_bits=4, acc_bits=12, in_capacity=c_in, group_capacity=groups,
                            weight_depth=3 * layer_rows)
    weights = [torch.tensor([[rng.randrange(-8, 8) for _ in range(c_in)] for _ in range(c_out)]) for _ in range(2)]
    bias = torch.tensor([rng.randrange(-50, 50) for _ in range(c_out)])
    vectors = [[rng.random() < 0.5 for _ in range(c_in)] for _ in range(6)]
    vectors[3] = [False] * c_in                                          # an empty vector too
    spare = range(2 * layer_rows, 3 * layer_rows)                        # rows no layer reads
    results = []

    async def write(ctx, port, addr, values):
        ctx.set(port.payload.addr, addr)
        for lane, v in enumerate(values):
            ctx.set(port.payload.data[lane], v)
        ctx.set(port.valid, 1)
        await ctx.tick()
        ctx.set(port.valid, 0)

    async def bench(ctx):
        ctx.set(dut.n_groups, groups)
        for layer, weight in enumerate(weights):
            for addr, row in dut.weight_rows(weight.tolist()):
                await write(ctx, dut.weight_write, layer * layer_rows + addr, row)
        for addr, row in dut.bias_rows(bias.tolist()):
            await write(ctx, dut.bias_write, addr, row)
        ctx.set(dut.result.ready, 1)
        for k, vec in enumerate(vectors):
            ctx.set(dut.weight_base, (k % 2) * layer_rows)      # with the first event of the vector
            events = [{"addr": c, "last": 0, "empty": 0} for c, s in enumerate(vec) if s] or \
                     [{"addr": 0, "last": 1, "empty": 1}]
            events[-1]["last"] = 1
            for ev in events:
                ctx.set(dut.events.payload, ev)
                ctx.set(dut.events.valid, 1)
                while True:
                    if rng.random() < 0.5:      # a weight write to a spare row in the same cycle
                        ctx.set(dut.weight_write.payload.addr, rng.choice(spare))
                        ctx.set(dut.weight_write.payload.data, [rng.randrange(-8, 8) for _ in range(lanes)])
                        ctx.set(dut.weight_write.valid, 1)
                    _, _, ready, r_valid, payload = await ctx.tick().sample(
                        dut.events.ready, dut.result.valid, dut.result.payload)
                    ctx.set(dut.weight_write.valid, 0)
                    if r_valid:
                        results.append([payload.acc[i] for i in range(lanes)])
                    if ready:
                        break
            ctx.set(dut.events.valid, 0)
            for _ in range(4 * c_in * groups + 10):  # drain the replayed groups: the next vector's
                _, _, r_valid, payload = await ctx.tick().sample(dut.result.valid, dut.result.payload)
                if r_valid:                          # base then changes on an idle accumulator
                    results.append([payload.acc[i] for i in range(lanes)])

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    golden = torch.stack([sparse_accumulate(torch.tensor(vec, dtype=torch.int64), weights[k % 2], bias, acc_bits=12)
                          for k, vec in enumerate(vectors)])
    got = torch.tensor(results).reshape(len(vectors), c_out)
    assert torch.equal(got, golden)


@pytest.mark.parametrize("shift", [1, 2, 3])
def test_lif_update_equals_golden_for_every_input(shift):
    """``lif_update`` (the LIF step inside LIFArray, the post-op and SDSA) against ``golden.lif`` for
    every current, membrane and a range of thresholds at small widths: saturation at both ends and
    the one-adder form used for shift 1 included."""
    import torch
    from amaranth.hdl import Module, Signal, signed
    from amaranth.sim import Simulator

    from spikeforge.hdl.lif_array import lif_update
    from spikeforge.model import golden

    x_bits, v_bits = 6, 4
    m = Module()
    x, v, th = Signal(signed(x_bits)), Signal(signed(v_bits)), Signal(signed(v_bits))
    spike, v_next = lif_update(m, x, v, th, shift, v_bits)
    xs = list(range(-(1 << (x_bits - 1)), 1 << (x_bits - 1)))
    vs = list(range(-(1 << (v_bits - 1)), 1 << (v_bits - 1)))
    cases = [(a, b, t) for a in xs for b in vs for t in (-3, 0, 1, 5, 7)]
    got = []

    async def bench(ctx):
        for a, b, t in cases:
            ctx.set(x, a)
            ctx.set(v, b)
            ctx.set(th, t)
            got.append((ctx.get(spike), ctx.get(v_next)))

    sim = Simulator(m)
    sim.add_testbench(bench)
    sim.run()
    for (a, b, t), (s_hw, v_hw) in zip(cases, got):
        # one step of golden.lif's formula from membrane V = b
        h = max(-(1 << (v_bits - 1)), min((1 << (v_bits - 1)) - 1, b + ((a - b) >> shift)))
        s_ref = int(h >= t)
        assert (s_hw, v_hw) == (s_ref, 0 if s_ref else h), (a, b, t)
    # and the same formula is golden.lif's: its first step (V = 0) over every current
    first = golden.lif(torch.tensor(xs).view(1, -1), 1, shift=shift, v_bits=v_bits, return_membrane=True)
    assert first[0][0].tolist() == [s for (a, b, t), (s, _) in zip(cases, got) if b == 0 and t == 1]
