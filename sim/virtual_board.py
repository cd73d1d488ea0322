"""The virtual board: :class:`~spikeforge.hdl.board.BoardTop` simulated on Verilator (or Icarus)
behind a local TCP port, so the host driver talks to it as to a networked serial port.

``VirtualBoard(hw).start()`` writes the board's Verilog, builds the simulator (cached under
``board-<hash>-<link>-<clock>-<baud>-<simulator>`` in the root of simulator builds,
:func:`spikeforge.sim.runner.build_root`: ``$SPIKEFORGE_BUILD_DIR``, else the source tree's
``build/sim``, else the user's cache folder), starts the cocotb bench
:mod:`spikeforge.sim.benches.board_bench` in a background thread and returns the pyserial URL
(``socket://127.0.0.1:PORT``) to connect to. Every byte the host sends goes through the real link
gateware: the UART receiver pin by pin (``link="uart"``) or the AXI4-Stream-style byte port
(``link="stream"``). :meth:`VirtualBoard.stop` (after the host closed its connection) waits for the
simulator to exit.

The simulated clock is nominal: the board's UART runs at its configured baud relative to
``clock_hz`` (default 12 MHz and 3 Mbaud, four cycles per bit, which keeps the simulation fast);
``spikeforge run`` reports the wire time the bytes would take at that baud.
"""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

from spikeforge.firmware.program import HardwareConfig
from spikeforge.hdl.board import BoardTop

from .runner import BuildError, cocotb_build, cocotb_test, simulator_missing, write_verilog
from .runner import build_root as _build_root

__all__ = ["VirtualBoard", "BENCH", "board_settings"]

BENCH = "spikeforge.sim.benches.board_bench"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class VirtualBoard:
    """One simulated board (see the module docstring)."""

    def __init__(self, hw: HardwareConfig, link: str = "uart", clock_hz: int = 12_000_000, baud: int = 3_000_000,
                 simulator: str = "verilator", build_root: Path | None = None, progress=None):
        self.top = BoardTop(hw, link=link, clock_hz=clock_hz, baud=baud)
        self.hw, self.link, self.simulator = hw, link, simulator
        self.progress = progress or (lambda msg: None)
        self.build_dir = _build_root(build_root) / (f"board-{hw.config_hash()[:12]}-{link}"
                                                    f"-{clock_hz}-{self.top.baud}-{simulator}")
        self.port = None
        self.thread = None
        self.result = None
        self.run_id = None

    @property
    def log(self) -> Path:
        return self.build_dir / f"run-{self.run_id}.log"

    def start(self) -> str:
        """Build (cached) and launch the simulation; the pyserial URL of its link."""
        missing = simulator_missing(self.simulator)
        if missing:
            raise BuildError(missing)
        t0 = time.time()
        vfile = self.build_dir / "board.v"
        write_verilog(self.top, "board", vfile, self.simulator)
        self.progress(f"building the virtual board ({self.simulator}, {self.link} link); cached after the first time")
        cocotb_build("board", vfile, self.build_dir, self.simulator)
        self.progress(f"virtual board built in {time.time() - t0:.0f} s")
        self.port = _free_port()
        self.run_id = f"{self.port}"
        env = {"SPIKEFORGE_BOARD_PORT": str(self.port), "SPIKEFORGE_BOARD_LINK": self.link,
               "SPIKEFORGE_BOARD_DIVISOR": str(self.top.divisor or 0)}

        def run():
            self.result = cocotb_test("board", self.build_dir, self.simulator, BENCH, self.run_id, env)

        self.thread = threading.Thread(target=run, name="virtual-board", daemon=True)
        self.thread.start()
        return f"socket://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self.thread is not None and self.thread.is_alive()

    def stop(self, timeout: float = 60.0) -> None:
        """Wait for the simulator to exit (the host must have closed its connection)."""
        if self.thread is not None:
            self.thread.join(timeout)
            if self.thread.is_alive():
                raise BuildError(f"the virtual board's simulator did not exit within {timeout:.0f} s; see {self.log}")


def board_settings(path: str, lanes: int = 16, hardware: HardwareConfig | None = None) -> tuple[HardwareConfig, dict]:
    """The virtual board's HardwareConfig and, for a ``spikeforge build`` folder, the board's link,
    clock and baud (so the simulation runs the very BoardTop that was built): ``hardware`` when
    given, else a generated or built folder's manifest, else the embedded model's configuration
    for ``lanes`` lanes (``path`` ``""`` or ``"/"``). The manifest is read by
    :func:`~spikeforge.firmware.compiler.load_manifest`; one that it refuses, or a folder without
    one, is a :class:`ValueError` naming the manifest and the field."""
    if path not in ("", "/"):
        manifest = Path(path) / "manifest.json"
        if not manifest.exists() and hardware is not None:
            return hardware, {}
        if not manifest.exists():
            raise ValueError(f"{manifest} does not exist (expected a `spikeforge generate` or `build` output folder)")
        from spikeforge.firmware.compiler import load_manifest

        m = load_manifest(Path(path))   # the one validated reader: schema, hardware hash, each file's size and SHA-256
        board = {k: m[k] for k in ("link", "clock_hz", "baud") if k in m}
        if hardware is not None:
            return hardware, board
        return HardwareConfig.from_dict(m["hardware"]), board
    if hardware is not None:
        return hardware, {}
    from spikeforge.firmware.compiler import hardware_for
    from spikeforge.model.quantize import embedded_qmodel

    return hardware_for(embedded_qmodel(), lanes=lanes), {}
