"""Block export (``spikeforge generate``) and the multiplier-free check with Yosys synth_ecp5."""

import json
import re

import pytest

from spikeforge.hdl import BLOCKS
from spikeforge.toolchain.export import synthesize, synthesize_component
from spikeforge.host.cli import main
from spikeforge.sim.scenarios import BENCH_CONFIGS


def test_generate_writes_verilog_and_a_port_table_that_agree(tmp_path, capsys):
    assert main(["generate", "--block", "sparse_accumulator", "--lanes", "8", "--set", "acc_bits=20",
                 "--out", str(tmp_path), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["parameters"]["lanes"] == 8 and out["parameters"]["acc_bits"] == 20
    verilog = (tmp_path / "sparse_accumulator.v").read_text()
    meta = json.loads((tmp_path / "sparse_accumulator.json").read_text())
    header = re.search(r"module sparse_accumulator\(([^)]*)\);", verilog).group(1)
    assert sorted(p.strip() for p in header.split(",")) == sorted(p["name"] for p in meta["ports"])
    for port in meta["ports"]:
        decl = re.search(rf"\n\s*(input|output) (?:\[(\d+):0\] )?{re.escape(port['name'])};", verilog)
        assert decl, port["name"]
        assert decl.group(1) == port["direction"]
        assert (int(decl.group(2)) + 1 if decl.group(2) else 1) == port["width"]
    result = next(p for p in meta["ports"] if p["name"] == "result__payload")
    acc = next(f for f in result["fields"] if f["name"] == "acc")
    assert acc["width"] == 8 * 20 and all(f["signed"] and f["width"] == 20 for f in acc["fields"])


@pytest.mark.parametrize("argv,message", [
    (["--block", "nope", "--out", "x"], "unknown block 'nope'"),
    (["--block", "lif_array", "--set", "v_bits", "--out", "x"], "expected KEY=VALUE"),
    (["--block", "lif_array", "--set", "v_bits=wide", "--out", "x"], "v_bits must be an integer"),
    (["--block", "lif_array", "--set", "bogus=1", "--out", "x"], "has no parameter bogus"),
    (["--block", "lif_array"], "needs QMODEL or --block NAME, and --out DIR"),
])
def test_generate_refuses_bad_input_without_writing(tmp_path, capsys, argv, message):
    argv = [a if a != "x" else str(tmp_path / "out") for a in argv]
    assert main(["generate", *argv]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_generate_lists_blocks(capsys):
    assert main(["generate", "--list"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in BLOCKS)


@pytest.mark.parametrize("block", list(BENCH_CONFIGS))
def test_block_synthesises_for_ecp5_without_multipliers(block):
    cells = synthesize(block, BENCH_CONFIGS[block][-1])
    assert cells.get("MULT18X18D", 0) == 0, cells
    assert cells.get("LUT4", 0) > 0 and cells.get("TRELLIS_FF", 0) > 0


def test_the_multiplier_check_can_fail():
    """A real multiply does map to MULT18X18D, so a zero count above means something."""
    from amaranth.hdl import Module, signed
    from amaranth.lib import wiring
    from amaranth.lib.wiring import In, Out

    class Multiply(wiring.Component):
        a: In(signed(12))
        b: In(signed(12))
        p: Out(signed(24))

        def elaborate(self, platform):
            m = Module()
            m.d.sync += self.p.eq(self.a * self.b)
            return m

    assert synthesize_component(Multiply(), "multiply").get("MULT18X18D", 0) >= 1
