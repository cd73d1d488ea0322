"""Benchmark of the board builds: full place and route with the YoWASP toolchain.

    .venv/bin/python benchmarks/build.py [--boards icebreaker ulx3s-85f verilog] [--out build/reports]

For each board it runs ``spikeforge build`` at the board's default configuration (the embedded
model's needs at the board's lanes) into ``OUT/build-NAME`` and collects the tools' figures:
resources used / available, DSP use, Fmax against the target, the critical path and the time of
each stage. A board whose design does not fit its device is reported with the overflow that
synthesis found (place and route does not start). Writes ``build.json`` and ``build.md`` into
``--out``.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

from spikeforge.toolchain.boards import board_hardware, get_board
from spikeforge.toolchain.build import CapacityOverflow, build_board, summary


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--boards", nargs="+", default=["icebreaker", "ulx3s-85f", "verilog"])
    p.add_argument("--out", type=Path, default=Path("build/reports"))
    args = p.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    results, text = {}, [f"# Board builds ({platform.node()}, {platform.machine()}, Python {platform.python_version()})\n"]
    for name in args.boards:
        board = get_board(name)
        hw = board_hardware(board)
        started = time.monotonic()
        last = [0.0]

        def progress(stage, detail, name=name):
            if time.monotonic() - last[0] > 30:
                last[0] = time.monotonic()
                _log(f"  {name}: {stage} ({time.monotonic() - started:.0f} s) {detail}")

        _log(f"{name}: building (P = {hw.lanes}) ...")
        try:
            report = build_board(board, hw, args.out / f"build-{name}", progress=progress)
            text.append(f"## {name}\n\n```text\n{summary(report)}```\n")
        except CapacityOverflow as exc:
            report = {"board": name, "device": board.device, "status": "does not fit", "lanes": hw.lanes,
                      "overflows": [{"primitive": k, "needs": n, "available": a} for k, n, a in exc.overflows],
                      "build_seconds": round(time.monotonic() - started, 1)}
            text.append(f"## {name}\n\n```text\n{exc}\n```\n")
        results[name] = report
        _log(f"{name}: {report['status']} in {report['build_seconds']:.0f} s")
    (args.out / "build.json").write_text(json.dumps(results, indent=1))
    (args.out / "build.md").write_text("\n".join(text))
    print("\n".join(text))
    return 0


if __name__ == "__main__":
    sys.exit(main())
