"""``spikeforge disasm PROGRAM``: a compiled program (program.bin) as a table of steps."""

from __future__ import annotations

import json
from pathlib import Path

from rich.table import Table

from .common import out

HELP = "print a compiled program (program.bin) readably"


def add_arguments(parser) -> None:
    parser.add_argument("program", type=Path, help="program.bin written by `spikeforge generate QMODEL`")
    parser.add_argument("--json", action="store_true")


def run(args) -> int:
    from spikeforge.firmware.compiler import load_program
    from spikeforge.firmware.program import OPS, step_listing

    descs, manifest = load_program(args.program)
    rows = []
    for i, d in enumerate(descs):
        rows.append({"step": i, **step_listing(d)})
        if d.op == OPS["END"]:
            break
    if args.json:
        print(json.dumps({"program": str(args.program), "manifest": manifest, "steps": rows}))
        return 0
    table = Table(title=f"{args.program}" + (f" (hardware {manifest['hardware_hash'][:12]}, format "
                                              f"{manifest['format_version']})" if manifest else ""))
    for c in ("step", "name", "op", "map x T", "channels", "weights (shift)", "bias", "thr", "in -> out"):
        table.add_column(c, no_wrap=True, justify="right" if c in ("step", "bias", "thr") else "left")
    for r in rows:
        op = " ".join(str(r[k]) for k in ("op", "kind", "post") if r.get(k))
        chans = f"{r['cin']} -> {r['cout']} ({r['groups']}g)" if "cout" in r else \
            (f"{r['cin']} ({r['groups']}g)" if "cin" in r else "")
        weights = f"{r['weights']} (<<{r['shift']})" if "weights" in r else ""
        table.add_row(str(r["step"]), r["name"], op, f"{r['map']} x {r['T']}" if "map" in r else "", chans, weights,
                      str(r.get("bias", "")), str(r.get("thresholds", "")),
                      f"{r['input']} -> {r['output']}" if "input" in r else "")
    out().print(table)
    return 0
