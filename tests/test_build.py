"""Board builds: PLL settings, nextpnr report parsing (on real nextpnr logs), capacity checks, the
synthesis check of each board top with Yosys (multiplier-free: no DSP), build plans for vendor
boards, the Verilog target, and that the built top is the virtual board's design.

Full place and route of both boards takes minutes: it runs with ``SPIKEFORGE_PNR=1`` (and in
``benchmarks/build.py``)."""

from __future__ import annotations

import collections
import json
import os
import zipfile
from pathlib import Path

import pytest
from amaranth.back import verilog

from spikeforge.firmware.compiler import load_manifest
from spikeforge.toolchain.boards import BOARDS, BoardDesign, board_clock, board_hardware, get_board
from spikeforge.toolchain.build import (DSP_PRIMITIVES, BoardBuildError, CapacityOverflow, build_board, overflows,
                                  parse_nextpnr_log, summary, synth_needs)
from spikeforge.hdl.clocking import ClockError, ecp5_pll, ice40_pll
from spikeforge.host.cli import main

FIXTURES = Path(__file__).parent / "fixtures" / "nextpnr"


# ------------------------------------------------------------------------------ clocking

@pytest.mark.parametrize("f_in,f_out", [(12e6, 42e6), (12e6, 48e6), (12e6, 39.75e6), (12e6, 60e6), (12e6, 100e6)])
def test_ice40_pll_settings_give_the_frequency_within_the_datasheet_ranges(f_in, f_out):
    s = ice40_pll(f_in, f_out)
    p = s.params
    f_pfd = f_in / (p["DIVR"] + 1)
    f_vco = f_pfd * (p["DIVF"] + 1)
    assert 10e6 <= f_pfd <= 133e6 and 533e6 <= f_vco <= 1066e6
    assert s.f_out == pytest.approx(f_vco / 2 ** p["DIVQ"])
    assert abs(s.f_out - f_out) <= 0.005 * f_out
    assert p["FILTER_RANGE"] == (1 if f_pfd < 17e6 else 2 if f_pfd < 26e6 else 3)


def test_ice40_pll_matches_icepll_for_48_mhz():
    # icepll -i 12 -o 48: DIVR=0, DIVF=63, DIVQ=4, FILTER_RANGE=1 (the iCEBreaker's usual setting)
    assert ice40_pll(12e6, 48e6).params == {"DIVR": 0, "DIVF": 63, "DIVQ": 4, "FILTER_RANGE": 1}


@pytest.mark.parametrize("f_in,f_out", [(25e6, 125e6), (25e6, 100e6), (25e6, 50e6), (25e6, 65e6)])
def test_ecp5_pll_settings_give_the_frequency_within_the_datasheet_ranges(f_in, f_out):
    s = ecp5_pll(f_in, f_out)
    p = s.params
    f = f_in / p["CLKI_DIV"] * p["CLKFB_DIV"]
    assert s.f_out == pytest.approx(f) and abs(f - f_out) <= 0.01 * f_out
    assert 400e6 <= f * p["CLKOP_DIV"] <= 800e6
    assert p["CLKOP_CPHASE"] == p["CLKOP_DIV"] - 1


def test_pll_outputs_stay_inside_the_datasheet_range_near_its_edges():
    assert ice40_pll(12e6, 16e6).f_out >= 16e6          # the closest setting, 15.94 MHz, is below the minimum
    assert ice40_pll(12e6, 275e6).f_out <= 275e6
    assert ecp5_pll(25e6, 400e6).f_out <= 400e6


@pytest.mark.parametrize("make,f_out", [(ice40_pll, 300e6), (ice40_pll, 10e6), (ecp5_pll, 500e6)])
def test_an_unreachable_clock_is_refused(make, f_out):
    with pytest.raises(ClockError, match="MHz"):
        make(12e6, f_out)


# ------------------------------------------------------------------------------ reports

def test_nextpnr_ice40_log_is_parsed():
    r = parse_nextpnr_log((FIXTURES / "ice40_counter.tim").read_text())
    assert r["resources"]["ICESTORM_LC"] == {"used": 32, "available": 5280}
    assert r["resources"]["ICESTORM_PLL"] == {"used": 1, "available": 1}
    assert r["resources"]["ICESTORM_DSP"] == {"used": 0, "available": 8}
    # the post-route figure (the placement estimate said 88.76 MHz)
    assert r["fmax_mhz"]["clk"] == pytest.approx(79.74) and r["constraint_mhz"]["clk"] == pytest.approx(39.76)
    assert r["timing_met"] is True
    cp = r["critical_path"]["clk"]
    assert cp["from"].startswith("c_") and cp["to"] and cp["logic_levels"] > 0
    assert (cp["logic_ns"], cp["routing_ns"]) == (9.01, 3.54)     # nextpnr's own "ns logic, ns routing" line
    assert cp["logic_ns"] + cp["routing_ns"] == pytest.approx(cp["delay_ns"], abs=0.02)


def test_nextpnr_ecp5_log_is_parsed_and_the_post_route_figure_wins():
    text = (FIXTURES / "ecp5_counter.tim").read_text()
    r = parse_nextpnr_log(text)
    assert r["resources"]["TRELLIS_COMB"] == {"used": 33, "available": 83640}
    assert r["resources"]["DP16KD"] == {"used": 0, "available": 208}
    assert r["resources"]["MULT18X18D"]["available"] == 156
    assert text.count("Max frequency for clock '$glbnet$clk'") == 2    # placement estimate, then routed
    assert r["fmax_mhz"]["$glbnet$clk"] == pytest.approx(315.76)
    failing = text.replace("(PASS at 125.00 MHz)", "(FAIL at 125.00 MHz)")
    assert parse_nextpnr_log(failing)["timing_met"] is False


def test_the_device_capacities_match_nextpnr():
    for board, log in (("icebreaker", "ice40_counter.tim"), ("ulx3s-85f", "ecp5_counter.tim")):
        reported = parse_nextpnr_log((FIXTURES / log).read_text())["resources"]
        for prim, have in BOARDS[board].capacity.items():
            if prim in reported:
                assert reported[prim]["available"] == have, (board, prim)


def test_synth_needs_and_overflow_message():
    needs = synth_needs("ice40", {"SB_LUT4": 6000, "SB_DFFE": 4000, "SB_DFF": 1700, "SB_RAM40_4K": 12,
                                   "SB_SPRAM256KA": 2, "SB_CARRY": 100})
    assert needs == {"ICESTORM_LC": 6000, "ICESTORM_RAM": 12, "ICESTORM_SPRAM": 2, "ICESTORM_DSP": 0}
    assert synth_needs("ecp5", {"LUT4": 100, "CCU2C": 10, "TRELLIS_FF": 5, "DP16KD": 3})["TRELLIS_COMB"] == 120
    board = get_board("icebreaker")
    over = overflows(board, needs)
    assert over == [("ICESTORM_LC", 6000, 5280)]
    msg = str(CapacityOverflow(board, over))
    assert "ICESTORM_LC (LUT/LC): needs at least 6,000, the iCE40UP5K has 5,280 (over by 720" in msg
    assert "before place and route" in msg
    assert overflows(board, {"ICESTORM_LC": 5280, "ICESTORM_RAM": 30}) == []


# ------------------------------------------------------------------------------ boards and CLI

def test_capacity_options_override_the_board_floors():
    board = get_board("ulx3s-85f")
    assert board_hardware(board).weight_rows == 8192                       # the floor
    assert board_hardware(board, weight_rows=16384).weight_rows == 16384   # an option naming a floor field
    assert board_hardware(board, weight_rows=2000).weight_rows == 2000     # the option wins over the floor


@pytest.mark.parametrize("argv,message", [
    (["--board", "verilog", "--clock", "0"], "argument --clock: must be a positive number, got 0"),
    (["--board", "ulx3s-85f", "--lanes", "0"], "argument --lanes: must be at least 1, got 0"),
])
def test_bad_clock_and_lanes_are_clear_errors(argv, message, tmp_path, capsys):
    assert main(["build", *argv, "--out", str(tmp_path / "o")]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_an_unknown_board_lists_the_known_ones(capsys):
    assert main(["build", "--board", "de0-nano", "--out", "x"]) == 2
    err = capsys.readouterr().err
    assert "unknown board 'de0-nano'" in err and all(name in err for name in BOARDS)


def test_a_vendor_board_needs_plan_only(tmp_path, capsys):
    assert main(["build", "--board", "arty-a7-35", "--out", str(tmp_path)]) == 2
    assert "Vivado toolchain, which is not available here; use --plan-only" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


def test_plan_only_writes_the_vendor_build_plan(tmp_path, capsys):
    assert main(["build", "--board", "arty-a7-35", "--plan-only", "--out", str(tmp_path), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["status"] == "plan" and report["toolchain"] == "Vivado"
    with zipfile.ZipFile(tmp_path / "build_plan.zip") as z:
        names = set(z.namelist())
        assert {"top.xdc", "build_top.sh", "top.tcl"} <= names
        xdc = z.read("top.xdc").decode()
    assert "uart_0__tx" in xdc and "uart_0__rx" in xdc
    assert any(c[0] == "vivado" for c in report["commands"])
    assert "module board_top" in (tmp_path / "board_top.v").read_text()
    manifest = load_manifest(tmp_path)
    assert manifest["link"] == "uart" and manifest["baud"] == 3_000_000 and manifest["format_version"] == 1


def test_the_verilog_target_has_the_stream_port_and_a_constraints_template(tmp_path):
    report = build_board(get_board("verilog"), board_hardware(get_board("verilog")), tmp_path, plan_only=True)
    text = (tmp_path / "board_top.v").read_text()
    for port in ("s_axis_tdata", "s_axis_tvalid", "s_axis_tready", "m_axis_tdata", "m_axis_tlast", "m_axis_tvalid",
                 "m_axis_tready", "clk", "rst"):
        assert f"  input {port}" in text or f"  output {port}" in text or f"] {port};" in text, port
    assert "create_clock -name clk -period 20.000 [get_ports clk]" in (tmp_path / "board_top.xdc").read_text()
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["link"] == "stream" and manifest["hardware_hash"] == report["hardware_hash"]
    assert load_manifest(tmp_path) == manifest          # the validated reader takes a build's manifest


def test_a_bad_clock_or_baud_is_refused_before_anything_is_written(tmp_path, capsys):
    assert main(["build", "--board", "icebreaker", "--clock", "400", "--out", str(tmp_path / "a")]) == 2
    assert "iCE40 PLL: output 400.000 MHz is outside" in capsys.readouterr().err
    assert main(["build", "--board", "ulx3s-85f", "--baud", "40000000", "--out", str(tmp_path / "b")]) == 2
    assert "needs at least 4 clock cycles per bit" in capsys.readouterr().err
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


@pytest.mark.parametrize("baud", [0, -9600, True, 9600.0])
def test_a_baud_that_is_not_a_positive_integer_is_refused_before_any_build_work(tmp_path, baud):
    """``--baud 0`` used to build at 3 Mbaud (``baud or 3_000_000``)."""
    board = get_board("ulx3s-85f")
    with pytest.raises(BoardBuildError, match=rf"--baud must be a positive integer, got {baud!r}"):
        build_board(board, board_hardware(board), tmp_path / "o", baud=baud, plan_only=True)
    assert not (tmp_path / "o").exists()


def test_board_design_refuses_a_zero_baud():
    board = get_board("icebreaker")
    with pytest.raises(ValueError, match=r"--baud must be a positive integer, got 0"):
        BoardDesign(board, board_hardware(board), None, baud=0)


def test_a_baud_the_clock_cannot_make_or_a_baud_without_a_uart_is_refused(tmp_path):
    board = get_board("ulx3s-85f")        # 53.571 MHz: 10 Mbaud is 5.36 clocks a bit, 7 % off with 5
    with pytest.raises(ValueError, match=r"10000000 baud from a 53571\d+ Hz clock is off by 7\.1 % \(limit 2 %\)"):
        build_board(board, board_hardware(board), tmp_path / "a", baud=10_000_000, plan_only=True)
    verilog_board = get_board("verilog")    # AXI4-Stream: no UART, so no baud to set
    with pytest.raises(BoardBuildError, match=r"--baud: board verilog has a stream link \(no UART\), got 9600"):
        build_board(verilog_board, board_hardware(verilog_board), tmp_path / "b", baud=9600, plan_only=True)
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


@pytest.mark.parametrize("clock", [float("inf"), float("nan"), -50.0, 5000.0, 1e30, 1e-9])
def test_a_clock_that_is_not_a_finite_positive_frequency_is_refused(tmp_path, clock):
    """Also refused: clocks HELLO's u32 word of Hz cannot report (5 GHz used to end in struct.error, 1e-9 MHz
    wrote clock_hz 0)."""
    board = get_board("verilog")
    with pytest.raises(BoardBuildError, match=r"--clock must be a positive frequency in MHz, got (inf|nan|-50|5000|1e\+30|1e-09)"):
        build_board(board, board_hardware(board), tmp_path / "o", clock_mhz=clock, plan_only=True)
    assert not (tmp_path / "o").exists()


def test_board_hardware_checks_lanes_by_name():
    with pytest.raises(ValueError, match=r"lanes: expected a power of two in 1\.\.64, got 0"):
        board_hardware(get_board("ulx3s-85f"), lanes=0)


# ------------------------------------------------------------------------------ synthesis (Yosys)

_SYNTHESISED: dict = {}


def _synthesise(name: str, tmp_path_factory):
    """The board's top through Yosys (synth_ice40 / synth_ecp5) and the capacity check, once per session."""
    if name not in _SYNTHESISED:
        out = tmp_path_factory.mktemp(name)
        board = get_board(name)
        _SYNTHESISED[name] = board, out, build_board(board, board_hardware(board), out, synth_only=True)
    return _SYNTHESISED[name]


@pytest.fixture(params=["icebreaker", "ulx3s-85f"])
def synthesised(request, tmp_path_factory):
    return _synthesise(request.param, tmp_path_factory)


def test_board_top_synthesises_without_dsp(synthesised):
    board, out, report = synthesised
    cells = json.loads((out / "build" / "top.stat.json").read_text())["design"]["num_cells_by_type"]
    assert sum(cells.get(p, 0) for p in DSP_PRIMITIVES[board.family]) == 0 == report["dsp_used"]
    assert cells.get("SB_PLL40_PAD", 0) + cells.get("EHXPLLL", 0) == 1          # the board's PLL is there
    assert report["synth_needs"] == synth_needs(board.family, cells)
    # iCE40: nextpnr's packing gives the logic cells exactly (at least max(LUT4, FF) of synthesis)
    assert (board.family == "ice40") == bool(report["packed"])
    assert all(report["packed"].get(k, n) >= n for k, n in report["synth_needs"].items())
    used = {k: max(n, report["packed"].get(k, 0)) for k, n in report["synth_needs"].items()}
    assert report["fits"] == all(n <= board.capacity.get(k, n) for k, n in used.items())
    assert ("DOES NOT FIT" in summary(report)) == (not report["fits"])


def test_icebreaker_single_port_memories_are_in_spram(tmp_path_factory):
    """On the iCE40UP5K the weight memory, and (``single_port_buffers``) the spike buffer and U, are
    mapped to SPRAM (16K x 16, a write mask per nibble): each takes as many SB_SPRAM256KA as its
    width and depth need, a lane group narrower than a nibble taking a whole nibble."""
    board, out, report = _synthesise("icebreaker", tmp_path_factory)
    hw = board_hardware(board)
    assert hw.single_port_buffers
    netlist = json.loads((out / "build" / "top.json").read_text())
    sprams = collections.Counter(name.split(".")[-3] for name, cell in netlist["modules"]["top"]["cells"].items()
                                 if cell["type"] == "SB_SPRAM256KA")

    def spram(width, depth):
        return -(-width // 16) * -(-depth // 16384)

    group_bits = -(-hw.lanes // 4) * 4
    assert sprams == {"weights": spram(hw.lanes * hw.weight_bits, hw.weight_rows),
                      "spike_buffer": spram(hw.spike_word_bits // hw.lanes * group_bits,
                                            hw.spike_rows * hw.spike_row_words),
                      "residual": spram(hw.lanes * hw.u_bits, hw.u_rows)}
    assert sum(sprams.values()) == report["synth_needs"]["ICESTORM_SPRAM"] <= board.capacity["ICESTORM_SPRAM"]


def test_the_built_top_is_the_virtual_boards_design(synthesised):
    """``sim:///OUT`` simulates BoardTop with the build's hardware, link, clock and baud: the same
    Verilog as the one built."""
    from spikeforge.host.transport import _sim_hardware
    from spikeforge.sim.virtual_board import VirtualBoard

    board, out, report = synthesised
    hw, built = _sim_hardware(str(out), 16)
    assert hw.config_hash() == report["hardware_hash"]
    vb = VirtualBoard(hw, link=built["link"], clock_hz=built["clock_hz"], baud=built["baud"])
    assert vb.top.divisor == json.loads((out / "manifest.json").read_text())["uart_divisor"]
    assert verilog.convert(vb.top, name="board_top", emit_src=False) == (out / "board_top.v").read_text()


def test_a_design_too_large_for_the_device_stops_before_place_and_route(tmp_path_factory, tmp_path):
    board, out, report = _synthesise("ulx3s-85f", tmp_path_factory)
    small = board.__class__(**{**board.__dict__, "capacity": {**board.capacity, "DP16KD": 20}})
    need = report["synth_needs"]["DP16KD"]
    with pytest.raises(CapacityOverflow, match=rf"DP16KD \(BRAM\): needs at least {need:,}, the LFE5U-85F has 20"):
        build_board(small, board_hardware(board), tmp_path)
    assert not (tmp_path / "build" / "top.tim").exists()      # nextpnr never started
    assert not (tmp_path / "report.json").exists()


# ------------------------------------------------------------------------------ place and route (opt-in)

@pytest.mark.skipif(os.environ.get("SPIKEFORGE_PNR") != "1", reason="full place and route: set SPIKEFORGE_PNR=1")
@pytest.mark.parametrize("name", ["icebreaker", "ulx3s-85f"])
def test_full_build_writes_bitstream_and_report(name, tmp_path):
    board = get_board(name)
    report = build_board(board, board_hardware(board), tmp_path)
    assert Path(report["bitstream"]).stat().st_size > 10_000
    assert report["dsp_used"] == 0 == report["dsp_used_placed"]
    assert set(report["fmax_mhz"]) and report["timing_met"] in (True, False)
    assert report["target_mhz"] == pytest.approx(board_clock(board).f_out / 1e6, abs=1e-3)
