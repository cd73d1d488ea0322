"""``spikeforge bench``: its workloads, its measurements' properties, and the report it writes.

The benchmark itself runs outside the tests (it is a benchmark, not a timed test); these tests run
its sections on small workloads and check what must hold of any honest measurement: the event-
driven cycles never beat their bound, the dense baseline does not depend on the firing rate, the
attention cost is linear, the projected latency uses the named build report, every figure is
labelled with the machine.
"""

import json
import struct
import zlib

import pytest
import torch

from spikeforge.benchmarks.bench import BenchError, parse_sections, run_bench, sdsa_bound_cycles
from spikeforge.benchmarks.workloads import input_firing_rate, max_synthetic_rate, synthetic_pixels
from spikeforge.host.cli import main as cli

from conftest import need_simulator


# ------------------------------------------------------------------------------------------ workloads


@pytest.mark.parametrize("shape,pixel_bits", [((1, 8, 8), 5), ((3, 4, 5), 8), ((1, 2, 2), 2)])
@pytest.mark.parametrize("rate", [0.0, 0.01, 0.2, 0.5])
def test_synthetic_pixels_have_exactly_the_rate(shape, pixel_bits, rate):
    if rate > max_synthetic_rate(pixel_bits):
        pytest.skip("above this width's reachable rate (tested below)")
    px = synthetic_pixels(3, shape, pixel_bits, rate, seed=7)
    positions = shape[0] * shape[1] * shape[2] * pixel_bits
    want = round(rate * positions) / positions
    assert px.shape == (3, *shape)
    for img in px:   # each image on its own, not only on average
        assert input_firing_rate(img, pixel_bits) == pytest.approx(want)
    assert int(px.max()) < 1 << (pixel_bits - 1)   # top plane clear: within pixel_max
    assert int(px.min()) >= 0


def test_synthetic_pixels_vary_with_seed_and_refuse_unreachable_rates():
    a, b = (synthetic_pixels(1, (1, 8, 8), 5, 0.2, seed=s) for s in (0, 1))
    assert not torch.equal(a, b)
    with pytest.raises(ValueError, match=r"\[0, 0.80\] for 5-bit pixels, got 0.9"):
        synthetic_pixels(1, (1, 8, 8), 5, 0.9)


def test_input_firing_rate_counts_bit_planes():
    # 3 = 0b00011 (2 bits), 16 = 0b10000 (1), 1 (1), 0: 4 set of 4 pixels x 5 planes.
    assert input_firing_rate(torch.tensor([[3, 0], [16, 1]]), 5) == pytest.approx(4 / 20)


# ------------------------------------------------------------------------------------------ attention


@pytest.mark.parametrize("lanes,channels", [(4, 10), (16, 64), (16, 20)])
def test_sdsa_cycles_are_linear_in_tokens_and_match_the_unit_cost(lanes, channels):
    """The attention section's measurement: SDSAUnit cycles (outputs checked against golden.sdsa)
    grow by exactly 2 ceil(C / P) per token and sit a fixed latency above (2N + 1) ceil(C / P)."""
    from spikeforge.sim.amaranth_bench import run_scenario
    from spikeforge.sim.scenarios import sdsa_workload

    cycles = {n: run_scenario(sdsa_workload(lanes, channels, n, seed=n), idle=0.0, stall=0.0)["cycles"]
              for n in (4, 8, 24)}
    groups = -(-channels // lanes)
    assert cycles[8] - cycles[4] == 2 * 4 * groups
    assert cycles[24] - cycles[8] == 2 * 16 * groups
    overheads = {cycles[n] - sdsa_bound_cycles(n, channels, lanes) for n in cycles}
    assert len(overheads) == 1 and 0 <= overheads.pop() <= 4


# ------------------------------------------------------------------------------------------ options


def test_bad_sections_and_sizes_are_named():
    with pytest.raises(BenchError, match=r"unknown section 'speed'; sections: scaling, utilisation"):
        parse_sections("attention,speed")
    assert parse_sections("lanes, scaling") == ["scaling", "lanes"]   # the report's order
    with pytest.raises(BenchError, match=r"unknown workload sizes \['images'\]"):
        run_bench("unused", True, sections=["attention"], size_overrides={"images": 1})
    with pytest.raises(BenchError, match=r"util_images: expected an integer >= 1, got 0"):
        run_bench("unused", True, sections=["utilisation"], size_overrides={"util_images": 0})
    with pytest.raises(BenchError, match=r"tokens: expected at least two distinct values"):
        run_bench("unused", True, sections=["attention"], size_overrides={"tokens": (16,)})
    with pytest.raises(BenchError, match=r"synth_lanes among lanes"):
        run_bench("unused", True, sections=["lanes"], size_overrides={"lanes": (8,), "synth_lanes": (16,)})


@pytest.mark.parametrize("content,why", [
    ("[1, 2]", "not a build report"), ("{", "not a build report"),
    ('{"board": "b", "fmax_mhz": {"clk": null}}', r'"fmax_mhz": \{clock: MHz > 0\}'),
    ('{"fmax_mhz": {"clk": 50}}', 'expected an object with "board"')])
def test_bad_build_reports_are_named(tmp_path, content, why):
    (tmp_path / "report.json").write_text(content)
    with pytest.raises(BenchError, match=why):
        run_bench(tmp_path / "out", True, builds=[tmp_path], sections=["attention"])
    assert not (tmp_path / "out").exists()


def test_cli_refuses_bad_out_and_builds_before_running(tmp_path, capsys):
    f = tmp_path / "file"
    f.write_text("x")
    assert cli(["bench", "--quick", "--sections", "attention", "--out", str(f)]) == 2
    assert "exists and is not a folder" in capsys.readouterr().err
    out = tmp_path / "report"
    assert cli(["bench", "--quick", "--out", str(out), "--builds", str(tmp_path / "nope")]) == 2
    assert "nope: no report.json" in capsys.readouterr().err
    assert not out.exists()   # nothing half-written
    assert cli(["bench", "--sections", "bogus", "--out", str(out)]) == 2
    assert "unknown section 'bogus'" in capsys.readouterr().err


def _png_description(path) -> str:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, texts = 8, {}
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        if kind == b"tEXt":
            key, _, value = body.partition(b"\0")
            texts[key.decode()] = value.decode("latin-1")
        elif kind == b"zTXt":
            key, _, rest = body.partition(b"\0")
            texts[key.decode()] = zlib.decompress(rest[1:]).decode("latin-1")
        pos += 12 + length
    return texts.get("Description", "")


# ------------------------------------------------------------------------------------------ sections


def test_scaling_section_measures_the_event_driven_claim(tmp_path):
    """On the whole accelerator RTL (logits checked against golden): event-driven cycles never go
    below their bound and grow with the firing rate; the dense baseline's first layer costs the same
    at every rate; so the speed-up over dense falls as the rate rises."""
    need_simulator("verilator")
    rep = run_bench(tmp_path, True, sections=["scaling"], size_overrides={"rates": (0.02, 0.2, 0.5), "rate_images": 1})
    rows = rep["scaling"]["rows"]
    assert [r["rate"] for r in rows] == [0.02, 0.2, 0.5]
    for r in rows:
        for part in ("model", "first_layer"):
            assert r[part]["cycles"] >= r[part]["bound_cycles"] > 0
            assert r[part]["dense_cycles"] > r[part]["cycles"]
    first = [r["first_layer"] for r in rows]
    assert first[0]["cycles"] < first[1]["cycles"] < first[2]["cycles"]
    assert first[0]["dense_cycles"] == first[1]["dense_cycles"] == first[2]["dense_cycles"]
    assert first[0]["speedup"] > first[1]["speedup"] > first[2]["speedup"]
    assert (tmp_path / "scaling.png").is_file()


def test_utilisation_and_projected_latency_use_the_named_build_report(tmp_path, capsys):
    """The per-layer table never beats the bound; the projected latency divides this run's measured
    cycles by the Fmax of the build report given with --builds; figures carry the machine."""
    need_simulator("verilator")
    from spikeforge.firmware.compiler import hardware_for
    from spikeforge.model.quantize import embedded_qmodel

    build = tmp_path / "build-x"   # built from the same hardware the utilisation section simulates
    build.mkdir()
    (build / "report.json").write_text(json.dumps({
        "board": "testboard", "device": "TEST-1", "lanes": 16, "status": "built",
        "fmax_mhz": {"fast": 90.0, "clk": 40.0}, "target_mhz": 25.0, "timing_met": True}))
    hw = hardware_for(embedded_qmodel(), lanes=16)
    (build / "manifest.json").write_text(json.dumps({   # a `spikeforge build` manifest (a stream-link board)
        "board": "testboard", "link": "stream", "clock_hz": 25_000_000, "hardware": hw.as_dict(),
        "hardware_hash": hw.config_hash()}))
    out = tmp_path / "bench"
    rep = run_bench(out, True, builds=[build], sections=["utilisation", "alternatives"],
                    size_overrides={"util_images": 2, "dense_images": 1, "cpu_seconds": 0.2})
    u = rep["utilisation"]
    assert u["event_driven"]["images"] == 2 and u["dense"]["images"] == 1
    for layer in u["layers"]:
        if layer["bound_cycles"]:
            assert layer["cycles"] >= layer["bound_cycles"]
            assert 0 < layer["utilization"] <= 1
    assert 0 < u["event_driven"]["utilization"] <= u["event_driven"]["bound_utilization"] <= 1
    assert u["speedup_over_dense"] > 1
    (board,) = rep["alternatives"]["boards"]
    cycles = u["event_driven"]["cycles_per_inference"]
    assert board["board"] == "testboard" and board["cycles_per_inference"] == cycles
    assert board["latency_s"] == pytest.approx(cycles / 40e6)   # the slowest clock domain
    assert board["latency_at_clock_s"] == pytest.approx(cycles / 25e6)
    assert {c["batch"] for c in rep["alternatives"]["cpu"]} == {1, 64}
    assert all(c["float_s_per_image"] > 0 and c["golden_s_per_image"] > 0 for c in rep["alternatives"]["cpu"])

    saved = json.loads((out / "report.json").read_text())
    assert saved["utilisation"]["speedup_over_dense"] == u["speedup_over_dense"]
    md = (out / "report.md").read_text()
    assert str(build / "report.json") in md and rep["machine"]["cpu"] in md
    for name in ("utilisation", "alternatives"):
        assert f"({name}.png)" in md
        desc = _png_description(out / f"{name}.png")
        assert rep["machine"]["cpu"] in desc and "torch" in desc


def test_lanes_attention_and_simulation_sections(tmp_path):
    """The lanes sweep's synthesis joins its row (no multiplier), SDSA never beats its cost model, and
    both simulators count the same cycles for the same image, Verilator faster than Icarus."""
    need_simulator("verilator")
    need_simulator("icarus")
    rep = run_bench(tmp_path, True, sections=["attention", "lanes", "simulation"], size_overrides={
        "lanes": (8,), "synth_lanes": (8,), "lanes_images": 1, "tokens": (4, 8), "channels": (16, 32),
        "verilator_images": 2, "icarus_images": 2})
    (row,) = rep["lanes"]["rows"]
    assert row["lanes"] == 8 and row["lut"] > 1000 and row["ff"] > 1000 and row["dsp"] == 0
    assert row["cycles_per_inference"] >= row["bound_cycles"] > 0
    att = rep["attention"]
    for r in att["vs_tokens"] + att["vs_channels"]:
        assert r["cycles"] >= r["model_cycles"]
    sims = rep["simulation"]["simulators"]
    assert sims["verilator"]["cycles_per_inference"] == sims["icarus"]["cycles_per_inference"] > 0
    assert sims["verilator"]["cycles_per_second"] > sims["icarus"]["cycles_per_second"] > 0
    assert rep["failures"] == []
    md = (tmp_path / "report.md").read_text()
    for name in ("attention", "lanes", "simulation"):
        assert f"({name}.png)" in md and (tmp_path / f"{name}.png").is_file()


def test_a_build_whose_manifest_does_not_read_is_refused_before_running(tmp_path):
    """A --builds folder with a manifest.json that load_manifest refuses is named, not silently skipped."""
    (tmp_path / "report.json").write_text(json.dumps({"board": "b", "fmax_mhz": {"clk": 50.0}}))
    (tmp_path / "manifest.json").write_text(json.dumps({"hardware": {"lanes": 16}}))
    with pytest.raises(BenchError, match=r"--builds .*manifest\.json: missing field\(s\)"):
        run_bench(tmp_path / "out", True, builds=[tmp_path], sections=["attention"])
    assert not (tmp_path / "out").exists()
