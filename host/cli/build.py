"""``spikeforge build --board NAME --out DIR``: the accelerator for a board: Verilog, bitstream,
resource and timing report."""

from __future__ import annotations

import json
import time
from pathlib import Path

from .argtypes import count, positive_float
from .common import UsageError, err, load_qmodel, out
from .rtl import add_capacity_arguments, capacities

HELP = "build the accelerator for a board: Verilog, bitstream, resource and timing report"


def add_arguments(parser) -> None:
    from spikeforge.toolchain.boards import BOARDS

    parser.add_argument("--board", required=True, metavar="NAME", help=f"board: {', '.join(BOARDS)}")
    parser.add_argument("--lanes", type=count, help="P, output channels per cycle (default: the board's)")
    parser.add_argument("--model",
                        help="size the accelerator for this quantized model (.sfq; default: the embedded one)")
    add_capacity_arguments(parser)
    parser.add_argument("--clock", type=positive_float, metavar="MHZ",
                        help="clock frequency (default: the board's target)")
    parser.add_argument("--baud", type=count, help="UART baud rate (default 3,000,000)")
    parser.add_argument("--out", type=Path, help="output folder")
    parser.add_argument("--plan-only", action="store_true",
                        help="write the build plan archive instead of running the toolchain (vendor boards)")
    parser.add_argument("--synth-only", action="store_true", help="stop after synthesis and the capacity check")
    parser.add_argument("--json", action="store_true")


def run(args) -> int:
    from rich.markup import escape

    from spikeforge.toolchain.boards import board_hardware, get_board
    from spikeforge.toolchain.build import build_board, summary
    from spikeforge.common.files import check_output_folder

    board = get_board(args.board)
    if args.out is None:
        raise UsageError("build needs --out DIR")
    check_output_folder(args.out)
    models = load_qmodel(Path(args.model)) if args.model else None
    hw = board_hardware(board, lanes=args.lanes, models=models, **capacities(args))
    started = time.monotonic()
    with err.status(f"building for {board.name} ...") as status:
        def progress(stage: str, detail: str) -> None:
            status.update(f"[bold]{board.name}[/]: {stage} ({time.monotonic() - started:.0f} s)"
                          + (f" [dim]{escape(detail)}[/]" if detail else ""))
        report = build_board(board, hw, args.out, clock_mhz=args.clock, baud=args.baud, plan_only=args.plan_only,
                             synth_only=args.synth_only, progress=progress)
    if args.json:
        print(json.dumps(report))
    else:
        out().print(summary(report), markup=False, highlight=False, end="")
    # exit 1: the design does not fit (--synth-only), or the bitstream misses timing at its clock
    return 1 if report.get("fits") is False or report.get("timing_met") is False else 0
