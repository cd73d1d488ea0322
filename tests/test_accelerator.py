"""The whole accelerator RTL (Verilator through cocotb) against the golden model on digits test
images: logits bit for bit, SOP counters equal to the golden trace, cycles within the target of
the event-driven bound; several lane counts, the dense baseline, and the overlay property (one
generated hardware runs two different models)."""

import copy
import dataclasses

import pytest

from spikeforge.firmware.compiler import compile_model, hardware_for
from spikeforge.hdl.accelerator import COUNTERS, hardware_counters, step_counters
from spikeforge.toolchain.boards import board_hardware, get_board
from spikeforge.model.quantize import quantize
from spikeforge.model.train import calibrated_model
from spikeforge.sim.accelerator_sim import simulate

from conftest import need_simulator


@pytest.fixture(scope="module")
def micro(digits):
    return quantize(calibrated_model("digits-micro", seed=1, data=digits), 8)


def _images(digits, start, n):
    return digits.test_pixels[start:start + n].long(), digits.test_labels[start:start + n]


def _check(report, n):
    assert report.images == n
    assert report.mismatches == 0, report.mismatch_details
    assert report.sop_mismatches == 0
    for layer in report.layers:
        if layer.golden_sops:
            assert layer.sops == layer.golden_sops, layer.name
        assert layer.cycles >= layer.bound_cycles, layer.name   # nothing beats the lower bound


@pytest.mark.parametrize("lanes", [16, 8, 32, 64])   # 64: Q/K/V (32 channels each) pad half a group
def test_accelerator_equals_golden(qmodel8, digits, lanes):
    need_simulator("verilator")
    n = {16: 4, 64: 1}.get(lanes, 2)
    pixels, labels = _images(digits, 10 * lanes % 350, n)
    report = simulate(qmodel8, compile_model(qmodel8, hardware_for(qmodel8, lanes=lanes)), pixels, labels)
    _check(report, n)
    assert report.bound_cycles > 0
    if lanes == 16:   # the performance target of the embedded model at P = 16
        assert report.cycles_per_inference <= 1.25 * report.bound_cycles


@pytest.mark.parametrize("lanes, words, one_port, pooling", [
    (2, 16, True, None),        # the iCEBreaker's configuration
    (8, 16, True, "0011"),      # OR-pool writes take the one port from its reads
    (4, 8, False, None),        # narrow words, two ports
])
def test_narrow_spike_words_equal_golden(qmodel8, digits, lanes, words, one_port, pooling):
    """A spike buffer of narrow words (the iCEBreaker's 8 bits): the vector source, the OR-pool and
    the SDSA driver read a 128-bit row word by word. With ``single_port_buffers`` (SPRAM) the spike
    buffer and U have one address port each: a write holds the readers for its cycle. Without
    profiling counters those read 0 and are not reported. Still bit-exact, for a few cycles more."""
    need_simulator("verilator")
    qm = qmodel8
    if pooling:
        qm = quantize(calibrated_model({**qmodel8.config, "pooling_stat": pooling}, seed=2, data=digits), 8)
    hw = hardware_for(qm, lanes=lanes)
    narrow_hw = dataclasses.replace(hw, spike_row_words=words, single_port_buffers=one_port,
                                    profile_counters=not one_port)
    if (lanes, words, pooling) == (2, 16, None):
        assert narrow_hw == board_hardware(get_board("icebreaker"), models=qm)
    assert narrow_hw.spike_word_bits <= 16 < hw.max_channels     # MLP rows (and 0011 pool rows) span words
    pixels, labels = _images(digits, 60, 2)
    whole = simulate(qm, compile_model(qm, hw), pixels, labels)
    narrow = simulate(qm, compile_model(qm, narrow_hw), pixels, labels)
    _check(narrow, 2)
    assert whole.cycles_per_inference < narrow.cycles_per_inference < 1.1 * whole.cycles_per_inference
    assert set(whole.engine_counters) == set(COUNTERS)
    assert set(narrow.engine_counters) == set(hardware_counters(narrow_hw))
    assert (set(narrow.engine_counters) == set(COUNTERS)) == (not one_port)


def test_dense_baseline_equals_golden_and_costs_more(qmodel8, digits):
    need_simulator("verilator")
    pixels, labels = _images(digits, 3, 1)
    dense = simulate(qmodel8, compile_model(qmodel8, hardware_for(qmodel8, event_driven=False)), pixels, labels)
    sparse = simulate(qmodel8, compile_model(qmodel8, hardware_for(qmodel8)), pixels, labels)
    _check(dense, 1)
    assert dense.event_driven is False and sparse.event_driven is True
    assert dense.cycles_per_inference > 3 * sparse.cycles_per_inference


def test_one_hardware_runs_two_models(qmodel8, micro, digits):
    """The overlay property: one generated configuration, two programs and weight images."""
    need_simulator("verilator")
    hw = hardware_for([qmodel8, micro])
    pixels, labels = _images(digits, 40, 2)
    for qm in (qmodel8, micro):
        compiled = compile_model(qm, hw)
        assert compiled.manifest["hardware_hash"] == hw.config_hash()
        _check(simulate(qm, compiled, pixels, labels), 2)


@pytest.mark.parametrize("pooling", ["0011", "1111"])
def test_or_pooled_models_equal_golden(qmodel8, digits, pooling):
    """OR-pools after SPS stages (CIFAR's 0011, ImageNet's 1111 pooling) on calibrated 8x8 models."""
    need_simulator("verilator")
    qm = quantize(calibrated_model({**qmodel8.config, "pooling_stat": pooling}, seed=2, data=digits), 8)
    pixels, labels = _images(digits, 20, 2)
    report = simulate(qm, compile_model(qm, hardware_for(qm)), pixels, labels)
    _check(report, 2)
    assert any(l.name.startswith("sps.pool") for l in report.layers)


def test_the_comparison_can_fail(qmodel8, digits):
    """A weight image that differs from the golden model's by one weight gives mismatching logits."""
    need_simulator("verilator")
    compiled = compile_model(qmodel8, hardware_for(qmodel8))
    bad = copy.deepcopy(compiled)
    steps = {d.name: d for d in bad.program}
    head = steps["head"]
    for i, (row, lanes) in enumerate(bad.weights):
        if head.weight_base <= row < head.weight_base + head.n_columns:
            bad.weights[i] = (row, [v + 1 for v in lanes])   # every column of the head, every class
    pixels, labels = _images(digits, 0, 1)
    report = simulate(qmodel8, bad, pixels, labels)
    assert report.mismatches == 1


def test_accelerator_on_icarus_equals_golden(qmodel8, digits):
    need_simulator("icarus")
    pixels, labels = _images(digits, 7, 1)
    _check(simulate(qmodel8, compile_model(qmodel8, hardware_for(qmodel8)), pixels, labels, "icarus"), 1)


def test_sequencer_stops_on_an_unknown_op_or_a_field_too_wide_and_identifies_itself(qmodel8):
    """Amaranth simulation of the top: identity words, END, an unknown op, and program words with
    bits above their field's hardware width: each bad step stops the run with ``error``; the
    ``invalid`` mark belongs to its row (a valid END written after them runs clean)."""
    from amaranth.sim import Simulator

    from spikeforge.firmware.program import FORMAT_VERSION, MAX_WEIGHT_SHIFT, OPS, Descriptor, field_bits
    from spikeforge.hdl.accelerator import READ_MAP, Accelerator

    hw = hardware_for(qmodel8)
    top = Accelerator(hw)
    bits = field_bits(hw)
    unknown_op = max(OPS.values()) + 1
    assert unknown_op < 1 << bits["op"]          # an unknown op that fits the field
    cases = {
        "end": Descriptor(name="end"),
        "unknown op": Descriptor(name="bad", op=unknown_op),
        "op too wide": Descriptor(name="bad", op=1 << bits["op"]),          # would wrap to END
        "height too wide": Descriptor(name="bad", height=1 << bits["height"]),
        "last field too wide": Descriptor(name="bad", u_groups=1 << 31),
        "shift over the limit": Descriptor(name="bad", weight_shift=MAX_WEIGHT_SHIFT + 1),   # fits 5 bits
        "end again": Descriptor(name="end"),
    }
    seen = {}

    async def bench(ctx):
        async def load(descs):
            for row, desc in enumerate(descs):
                for beat in top.write_words("program", row, desc.row_value()):
                    for k, v in beat.items():
                        ctx.set(getattr(top.write.payload, k), v)
                    ctx.set(top.write.valid, 1)
                    await ctx.tick()
            ctx.set(top.write.valid, 0)

        async def run():
            ctx.set(top.start, 1)
            await ctx.tick()
            ctx.set(top.start, 0)
            for cycle in range(50):
                if ctx.get(top.done):
                    ctx.set(top.read_addr, READ_MAP["status"])
                    await ctx.tick()                     # the read port answers at the next edge
                    return cycle, ctx.get(top.read_data)
                await ctx.tick()
            return None, None

        for name in ("hw_id", "format"):
            ctx.set(top.read_addr, READ_MAP[name])
            await ctx.tick()
            seen[name] = ctx.get(top.read_data)
        for name, desc in cases.items():
            await load([desc])
            seen[name] = await run()

    sim = Simulator(top)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    assert seen["hw_id"] == int(hw.config_hash()[:8], 16) and seen["format"] == FORMAT_VERSION
    for name in cases:
        assert seen[name][0] is not None, name
        assert seen[name][1] == (0b010 if name.startswith("end") else 0b110), name   # done; error if bad


def test_step_counters_difference_the_recorded_snapshots():
    """The per-step words are the global counters as each step ended; a step's count is the change
    since the previous step, across the 32-bit counters' wrap-around."""
    words = [[10, 0, 0], [25, 3, 48], [(1 << 32) - 2, 3, 50], [5, 4, 50]]
    assert step_counters(words) == [
        {"cycles": 10, "events": 0, "sops": 0},
        {"cycles": 15, "events": 3, "sops": 48},
        {"cycles": (1 << 32) - 27, "events": 0, "sops": 2},
        {"cycles": 7, "events": 1, "sops": 0},
    ]
    assert step_counters([]) == []
