"""The boards ``spikeforge build`` knows: the FPGA, its open toolchain, clocking and link, and the
accelerator configuration sized for it.

A :class:`Board` names an ``amaranth-boards`` platform (or none, for the ``verilog`` target), the
device's capacity per primitive (used to refuse a design that cannot fit before place and route),
the target clock, the host link, and how its :class:`HardwareConfig` is derived: the smallest
configuration that runs the embedded ``digits-tiny`` model at the board's lanes, enlarged by the
board's capacity floors.

:class:`BoardDesign` is what a board build elaborates: the board's PLL and reset (``sync`` at the
achieved PLL frequency, held in reset until lock), :class:`~spikeforge.hdl.board.BoardTop` (the
design the virtual board simulates, with the same parameters) and the UART pads.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from amaranth.hdl import ClockDomain, Elaboratable, Module
from amaranth.lib import io

from spikeforge.firmware.program import LINKS, HardwareConfig

from spikeforge.hdl.board import BoardTop
from spikeforge.hdl.clocking import PLLClockDomain, PLLSettings, ecp5_pll, ice40_pll

__all__ = ["Board", "BOARDS", "get_board", "BoardDesign", "UnknownBoard", "board_hardware", "board_clock", "board_baud"]


def _positive_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v > 0


class UnknownBoard(ValueError):
    """A board name that is not in :data:`BOARDS`."""


@dataclass(frozen=True)
class Board:
    """One build target (see the module docstring).

    ``family``: ``ice40`` / ``ecp5`` (open toolchain: YoWASP Yosys, nextpnr and the packer),
    ``xilinx`` / ``intel`` (vendor toolchain: ``--plan-only`` archives) or ``generic`` (Verilog
    only). ``capacity``: the device's primitives as nextpnr names them in its utilisation report,
    with how many the device has. ``floors``: minimum HardwareConfig fields (larger capacities than
    the embedded model needs). ``options``: HardwareConfig settings the board fixes (such as
    ``single_port_buffers`` for SPRAM). ``spram``: the single-port memories go to SPRAM."""

    name: str
    title: str
    family: str
    device: str
    platform: str | None        # amaranth_boards module:class
    osc_hz: float | None        # the board oscillator the PLL runs from
    clock_mhz: float            # the default build clock (one that the design closes timing at)
    goal_mhz: float             # the performance goal the design is being pipelined towards
    lanes: int
    link: str = "uart"
    baud: int = 3_000_000
    capacity: dict = field(default_factory=dict)
    floors: dict = field(default_factory=dict)
    options: dict = field(default_factory=dict)   # HardwareConfig settings of the board (after the floors)
    synth_opts: str = ""
    spram: bool = False           # :func:`spram_script`

    def __post_init__(self):
        if self.link not in LINKS:
            raise ValueError(f"board {self.name}: link: expected one of {', '.join(LINKS)}, got {self.link!r}")
        if self.link == "uart" and not _positive_int(self.baud):
            raise ValueError(f"board {self.name}: baud: expected a positive integer for a UART, got {self.baud!r}")
        if self.link == "stream" and self.baud != 0:
            raise ValueError(f"board {self.name}: baud: expected 0 for a stream link (no UART), got {self.baud!r}")

    @property
    def open_toolchain(self) -> bool:
        return self.family in ("ice40", "ecp5")

    def make_platform(self):
        """An instance of the board's amaranth-boards platform (``None`` for ``verilog``)."""
        if self.platform is None:
            return None
        import importlib
        module, cls = self.platform.split(":")
        return getattr(importlib.import_module(f"amaranth_boards.{module}"), cls)(toolchain=self.toolchain)

    @property
    def toolchain(self) -> str:
        return {"ice40": "IceStorm", "ecp5": "Trellis", "xilinx": "Vivado", "intel": "Quartus"}.get(self.family, "")


#: nextpnr's names for the primitives a board build reports, with their kind (for the summary).
PRIMITIVE_KINDS = {
    "ICESTORM_LC": "LUT/LC", "ICESTORM_RAM": "BRAM", "ICESTORM_SPRAM": "SPRAM", "ICESTORM_DSP": "DSP",
    "SB_IO": "IO", "ICESTORM_PLL": "PLL",
    "TRELLIS_COMB": "LUT/LC", "TRELLIS_FF": "FF", "DP16KD": "BRAM", "MULT18X18D": "DSP",
    "TRELLIS_IO": "IO", "EHXPLLL": "PLL",
    "SB_DFF": "FF",  # iCE40 flip-flops (from synthesis: nextpnr counts them inside ICESTORM_LC)
    "LUT": "LUT/LC", "FF": "FF", "RAMB36E1": "BRAM", "RAMB18E1": "BRAM", "DSP48E1": "DSP",  # synth_xilinx
}

def spram_script(hw: HardwareConfig) -> str:
    """Yosys commands that put the accelerator's single-port memories in iCE40UP5K SPRAM
    (SB_SPRAM256KA): the weights, and with ``hw.single_port_buffers`` the spike buffer and U.

    Yosys prefers block RAM by cost, and SPRAM cannot be initialised: so each memory is marked
    ``ram_style = "huge"`` and its (all-zero) initial contents are dropped. Nothing reads them
    uninitialised: the weights are loaded before a run, and every spike or U row a step reads was
    written by an earlier step of the same run. Each has one address port, as SPRAM needs
    (:class:`~spikeforge.hdl.sparse_accumulator.SparseAccumulator`,
    :class:`~spikeforge.hdl.accelerator.Accelerator`)."""
    names = ["weights"] + (["spike_buffer", "residual"] if hw.single_port_buffers else [])
    return "; ".join(f"delete */t:$meminit_v2 r:MEMID=\\{n} %i; setattr -set ram_style \"huge\" */{n}"
                     for n in names)


#: Memories whose read port is disabled in the cycles they are written, so that no read collides
#: with a write. Yosys is told so (``COLLISION_X_MASK``); otherwise it emulates the read-before-write
#: result of a collision with bypass registers and a multiplexer (on the iCE40, whose block RAM
#: leaves collisions undefined: two flip-flops and a LUT per data bit).
COLLISION_FREE = ("program", "thresholds", "pixels", "layer_counters", "biases", "buffer", "block")


def collision_script() -> str:
    """Yosys commands that mark the :data:`COLLISION_FREE` memories' read ports."""
    return "; ".join(f"setparam -set COLLISION_X_MASK 1'1 */t:$memrd_v2 r:MEMID=\\{n} %i" for n in COLLISION_FREE)


BOARDS: dict[str, Board] = {b.name: b for b in (
    Board("icebreaker", "1BitSquared iCEBreaker (iCE40UP5K-SG48)", "ice40", "iCE40UP5K",
          # built at 24 MHz, what its place and route meets with a margin (27.2 MHz; goal 40:
          # docs/build.md); 3 Mbaud is 8 clocks a bit
          "icebreaker:ICEBreakerPlatform", 12e6, 24.0, 40.0, lanes=2,
          capacity={"ICESTORM_LC": 5280, "ICESTORM_RAM": 30, "ICESTORM_SPRAM": 4, "ICESTORM_DSP": 8},
          # 8-bit spike words (a narrow datapath; at P = 2 one SPRAM holds the spike buffer) and the
          # spike buffer and U in single-port SPRAM
          floors={"spike_row_words": 16}, options={"single_port_buffers": True, "profile_counters": False},
          synth_opts="-spram", spram=True),   # UART: the FT2232H's channel B
    Board("ulx3s-85f", "Radiona ULX3S (LFE5U-85F-6BG381C)", "ecp5", "LFE5U-85F",
          "ulx3s:ULX3S_85F_Platform", 25e6, 53.571, 125.0, lanes=16,
          capacity={"TRELLIS_COMB": 83640, "TRELLIS_FF": 83640, "DP16KD": 208, "MULT18X18D": 156},
          floors={"weight_rows": 8192, "bias_rows": 128, "threshold_rows": 128, "program_rows": 32,
                  "u_rows": 512, "spike_rows": 1024}),                     # UART: the FT231X
    Board("verilog", "Verilog top for vendor flows (Xilinx / Intel) with the AXI4-Stream port",
          "generic", "any", None, None, 50.0, 125.0, lanes=16, link="stream", baud=0),   # XDMA: docs/build.md
    Board("arty-a7-35", "Digilent Arty A7-35T (Vivado)", "xilinx", "xc7a35ti",
          "arty_a7:ArtyA7_35Platform", 100e6, 100.0, 100.0, lanes=16),   # Vivado: --plan-only here
)}


def get_board(name: str) -> Board:
    """The board called ``name``; :class:`UnknownBoard` lists the known ones."""
    try:
        return BOARDS[name]
    except KeyError:
        raise UnknownBoard(f"unknown board {name!r}; known boards: {', '.join(BOARDS)}") from None


def board_hardware(board: Board, lanes: int | None = None, models=None, **overrides) -> HardwareConfig:
    """The board's accelerator configuration: the smallest that runs ``models`` (default: the
    embedded ``digits-tiny``) at ``lanes`` (default: the board's), raised to the board's floors,
    with the board's options, then ``overrides`` (capacity options) applied."""
    from spikeforge.firmware.compiler import hardware_for
    from spikeforge.model.quantize import embedded_qmodel
    lanes = board.lanes if lanes is None else lanes
    hw = hardware_for(models if models is not None else embedded_qmodel(), lanes=lanes)
    raised = {k: max(getattr(hw, k), v) for k, v in board.floors.items()}
    return dataclasses.replace(hw, **{**raised, **board.options, **overrides})   # an override wins over a floor


def board_baud(board: Board, baud: int | None = None) -> int:
    """The UART baud of a build of ``board``: ``baud`` (``--baud``), or the board's own when
    ``None``. :class:`ValueError` for a baud that is not a positive integer, or one given for a
    board whose link is a stream (no UART: its baud is 0). Whether the clock can produce the baud
    is :func:`~spikeforge.firmware.program.uart_divisor`'s check."""
    if baud is None:
        return board.baud
    if board.link != "uart":
        raise ValueError(f"--baud: board {board.name} has a {board.link} link (no UART), got {baud!r}")
    if not _positive_int(baud):
        raise ValueError(f"--baud must be a positive integer, got {baud!r}")
    return baud


def board_clock(board: Board, clock_mhz: float | None = None) -> PLLSettings | None:
    """PLL settings for the board at ``clock_mhz`` (default: the board's build clock); ``None``
    without a PLL."""
    f = (board.clock_mhz if clock_mhz is None else clock_mhz) * 1e6
    if board.family == "ice40":
        return ice40_pll(board.osc_hz, f)
    if board.family == "ecp5":
        return ecp5_pll(board.osc_hz, f)
    return None


class BoardDesign(Elaboratable):
    """The board build's top: PLL clock domain and reset, :class:`BoardTop` and the UART pads.

    ``top`` is the BoardTop (``BoardTop(hw, board.link, clock_hz=pll.f_out, baud)``): the same
    component, with the same parameters, that ``sim://?board=NAME`` simulates."""

    def __init__(self, board: Board, hw: HardwareConfig, pll: PLLSettings | None, baud: int | None = None):
        self.board, self.hw, self.pll = board, hw, pll
        clock_hz = round(pll.f_out) if pll else round(board.clock_mhz * 1e6)
        try:
            self.baud = board_baud(board, baud)
            self.top = BoardTop(hw, board.link, clock_hz=clock_hz, baud=self.baud)
        except ValueError:
            self._MustUse__silence = True   # refused (e.g. an unreachable baud): no "never used" warning
            raise

    def elaborate(self, platform):
        m = Module()
        if self.pll is not None:
            m.domains.sync = ClockDomain("sync")   # driven by the PLL, reset until it locks
            m.submodules.clocking = PLLClockDomain(self.pll)
        # (without a PLL the platform's default clock drives ``sync``)
        m.submodules.board_top = top = self.top
        uart = platform.request("uart", 0, dir="-")
        m.submodules.uart_rx_buffer = rx = io.Buffer("i", uart.rx)
        m.submodules.uart_tx_buffer = tx = io.Buffer("o", uart.tx)
        m.d.comb += [top.rx.eq(rx.i), tx.o.eq(top.tx)]
        return m
