"""Options and steps shared by the commands that compile a model for the accelerator and simulate
its RTL (``generate``, ``build``, ``sim``, ``eval --backend rtl``, ``demo``)."""

from __future__ import annotations

import argparse

from rich.table import Table

from .argtypes import count
from .common import UsageError, check_images, err, kv_table, out

__all__ = ["CAPACITY_FLAGS", "add_capacity_arguments", "add_rtl_arguments", "capacities", "compile_for",
           "sim_report", "print_sim"]

#: The :class:`~spikeforge.firmware.program.HardwareConfig` capacities a command line may set.
CAPACITY_FLAGS = ("max_channels", "max_embed", "max_height", "max_width", "max_steps", "max_in_channels",
                  "max_3x3_channels", "max_classes", "weight_rows", "bias_rows", "threshold_rows", "spike_rows",
                  "u_rows", "program_rows", "spike_row_words")


def add_capacity_arguments(parser) -> None:
    """``--max-channels N`` ... : one option per :data:`CAPACITY_FLAGS` (the memory rows hidden from --help)."""
    for f in CAPACITY_FLAGS:
        if f == "spike_row_words":
            help = "words per spike-buffer row (a narrower spike datapath; default 1, the iCEBreaker's 16)"
        else:
            help = argparse.SUPPRESS if f.endswith("rows") else f"hardware capacity {f} (default: what the model needs)"
        parser.add_argument(f"--{f.replace('_', '-')}", dest=f, type=count, help=help)


def add_rtl_arguments(parser) -> None:
    """The options of an RTL simulation: simulator, lanes, dense baseline, capacities."""
    parser.add_argument("--simulator", default="verilator", choices=("verilator", "icarus"))
    parser.add_argument("--lanes", type=count, default=16, help="P, output channels per cycle (default 16)")
    parser.add_argument("--dense", action="store_true", help="simulate the dense baseline (event_driven=False)")
    add_capacity_arguments(parser)


def capacities(args) -> dict[str, int]:
    """The capacities the command line set (:data:`CAPACITY_FLAGS`)."""
    return {f: getattr(args, f) for f in CAPACITY_FLAGS if getattr(args, f, None) is not None}


def compile_for(qm, lanes: int | None, dense: bool, capacity: dict[str, int]):
    """``qm`` compiled for the accelerator that fits it with ``lanes`` (default 16) and ``capacity``."""
    from spikeforge.firmware.compiler import compile_model, hardware_for

    hw = hardware_for(qm, lanes=16 if lanes is None else lanes, event_driven=not dense, **capacity)
    return compile_model(qm, hw)


def sim_report(qm, n_images: int | None, simulator: str, lanes: int, dense: bool, capacity: dict[str, int]):
    """Simulate the first ``n_images`` digits test images (``None``: all) on the accelerator RTL
    generated for ``qm``; the :class:`~spikeforge.sim.report.SimReport`."""
    from spikeforge.model.data import load_digits_split
    from spikeforge.sim.accelerator_sim import simulate
    from spikeforge.sim.runner import simulator_missing

    missing = simulator_missing(simulator)
    if missing:
        raise UsageError(missing)
    data = load_digits_split()
    n = len(data.test_labels) if n_images is None else n_images
    check_images(n, len(data.test_labels))
    compiled = compile_for(qm, lanes, dense, capacity)
    err.print(f"simulating {n} test images on the accelerator RTL ({simulator}, P = {compiled.hardware.lanes}"
              f"{', dense baseline' if dense else ''}); the first run builds the simulator (about a minute) ...")
    return simulate(qm, compiled, data.test_pixels[:n].long(), data.test_labels[:n], simulator)


def print_sim(report, title: str) -> None:
    """A :class:`~spikeforge.sim.report.SimReport` as a summary table and a per-layer table."""
    console = out()
    console.print(kv_table(title, [
        ("images", str(report.images)),
        ("logit mismatches (RTL vs golden)", str(report.mismatches)),
        ("SOP-counter mismatches", str(report.sop_mismatches)),
        ("accuracy (RTL)", f"{report.accuracy:.4f}"),
        ("cycles per inference", f"{report.cycles_per_inference:,.0f}"),
        ("event-driven bound", f"{report.bound_cycles:,.0f}"),
        ("cycles / bound", f"{report.cycles_over_bound:.3f}"),
        ("utilisation (SOPs / P x cycles)", f"{report.utilization:.3f}"),
        ("simulation", f"{report.sim_seconds:.1f} s, {report.images_per_second:.2f} images/s"),
    ]))
    table = Table(title="per layer (mean per image)")
    for c in ("layer", "cycles", "bound", "cycles/bound", "events", "SOPs"):
        table.add_column(c, justify="left" if c == "layer" else "right")
    for r in report.layers:
        ratio = f"{r.cycles / r.bound_cycles:.2f}" if r.bound_cycles else "-"
        table.add_row(r.name, f"{r.cycles:,.0f}", f"{r.bound_cycles:,.0f}", ratio, f"{r.events:,.0f}", f"{r.sops:,.0f}")
    console.print(table)
