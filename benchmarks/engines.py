"""Benchmark of the hardware engines: event-driven cycle counts and ECP5 resources per block.

    .venv/bin/python benchmarks/engines.py [--out build/reports]

Prints two tables and writes ``engines.json`` and ``engines.md`` into ``--out``:

* SpikeEncoder + SparseAccumulator (``SynapticEngine``) cycles at 0 / 5 / 25 / 100 % firing, measured
  in Amaranth's simulator, next to the event-driven bound ``events x ceil(C_out / P)``;
* LUT4 / TRELLIS_FF / DP16KD / MULT18X18D per block from Yosys ``synth_ecp5`` (the cocotb
  bench parameterisations).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from spikeforge.toolchain.export import synthesize
from spikeforge.sim.cycles import SYNAPTIC_LATENCY, firing_rate_table
from spikeforge.sim.scenarios import BENCH_CONFIGS


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=Path("build/reports"))
    p.add_argument("--vectors", type=int, default=64, help="random vectors per firing rate")
    args = p.parse_args(argv)

    cycle_rows = []
    for lanes, c_in, c_out in ((16, 64, 64), (64, 64, 64), (4, 32, 10)):
        print(f"measuring cycles: P={lanes} C_in={c_in} C_out={c_out} ...", file=sys.stderr, flush=True)
        cycle_rows += firing_rate_table(lanes, c_in, c_out, vectors=args.vectors)
    lines = ["## SpikeEncoder + SparseAccumulator cycles (no stalls, vectors back to back)", "",
             f"One vector alone costs exactly `max(events, 1) x ceil(C_out/P) + {SYNAPTIC_LATENCY}` cycles.", "",
             "| P | C_in | C_out | firing | vectors | events | bound events x ceil(C_out/P) | cycles | cycles / vector | cycles / bound |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in cycle_rows:
        ratio = f"{r['cycles'] / r['bound']:.3f}" if r["bound"] else "-"
        lines.append(f"| {r['lanes']} | {r['c_in']} | {r['c_out']} | {r['rate']:.0%} | {r['vectors']} | {r['events']:,} "
                     f"| {r['bound']:,} | {r['cycles']:,} | {r['cycles_per_vector']:.2f} | {ratio} |")

    synth_rows = []
    for block, configs in BENCH_CONFIGS.items():
        for params in configs:
            print(f"synthesising {block} {params} ...", file=sys.stderr, flush=True)
            t = time.time()
            cells = synthesize(block, params)
            synth_rows.append({"block": block, "params": params, "cells": cells, "seconds": round(time.time() - t, 1)})
    lines += ["", "## ECP5 resources (Yosys synth_ecp5)", "",
              "| block | parameters | LUT4 | TRELLIS_FF | CCU2C | DP16KD | TRELLIS_DPR16X4 | MULT18X18D |",
              "|---|---|---|---|---|---|---|---|"]
    for r in synth_rows:
        c = r["cells"]
        params = ", ".join(f"{k}={v}" for k, v in r["params"].items())
        lines.append(f"| {r['block']} | {params} | {c.get('LUT4', 0):,} | {c.get('TRELLIS_FF', 0):,} | {c.get('CCU2C', 0):,} "
                     f"| {c.get('DP16KD', 0)} | {c.get('TRELLIS_DPR16X4', 0)} | {c.get('MULT18X18D', 0)} |")
    text = "\n".join(lines) + "\n"
    print(text)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "engines.md").write_text(text)
    (args.out / "engines.json").write_text(json.dumps({"cycles": cycle_rows, "synthesis": synth_rows}, indent=2))
    print(f"wrote {args.out / 'engines.md'} and {args.out / 'engines.json'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
