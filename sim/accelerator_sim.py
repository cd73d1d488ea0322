"""Whole-accelerator RTL simulation: compile, generate, simulate images, compare with the golden model.

:func:`run_rtl` runs images through the accelerator's Verilog on Verilator (or Icarus) via the
cocotb bench :mod:`spikeforge.sim.benches.accelerator_bench`, loading program, weights, biases
and thresholds through the same write port the host link drives. :func:`simulate` adds the
golden model's logits and trace and builds the report of ``spikeforge sim``: mismatches,
accuracy, cycles against the event-driven bound, utilisation, and a per-layer table.
"""

from __future__ import annotations

import hashlib
import json
import sys
import threading
import time
from pathlib import Path

import torch

from spikeforge.firmware.compiler import Compiled, pixel_rows
from spikeforge.firmware.memory_map import (COUNTERS, LAYER_COUNTERS, READ_MAP, model_rows, named_counters,
                                            recorded_steps, row_beats, step_counters, write_layout, write_word)
from spikeforge.firmware.program import KINDS, OPS, HardwareConfig
from spikeforge.hdl.accelerator import Accelerator
from spikeforge.model import golden
from spikeforge.model.graph import LayerGraph, layer_graph

from .report import ImageCycles, LayerReport, SimReport
from .runner import BuildError, cocotb_build, cocotb_run, simulator_missing, write_verilog
from .runner import build_root as _build_root

__all__ = ["load_beats", "image_beats", "build_rtl", "run_rtl", "simulate"]

BENCH = "spikeforge.sim.benches.accelerator_bench"


def _write_words(hw: HardwareConfig, rows: dict[str, list[tuple[int, int]]]) -> list[int]:
    """The write-port payloads (:func:`~spikeforge.firmware.memory_map.write_word`) that load
    ``rows`` (``(row, value)`` per space), space after space."""
    layout = write_layout(hw)
    return [write_word(layout, beat) for space, pairs in rows.items() for row, value in pairs
            for beat in row_beats(hw, space, row, value)]


def load_beats(compiled: Compiled) -> list[int]:
    """The write-port payloads that load a compiled model (program, weights, biases, thresholds)."""
    return _write_words(compiled.hardware, model_rows(compiled))


def image_beats(hw: HardwareConfig, pixels: torch.Tensor) -> list[int]:
    """The write-port payloads that load one image ``[C, H, W]`` into the pixel memory."""
    return _write_words(hw, {"pixels": pixel_rows(hw, pixels)})


class _LogProgress:
    """Reports the bench's ``image k/N done`` lines (written to its log) while the simulation runs."""

    def __init__(self, log: Path, progress):
        self.log, self.progress = log, progress
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._watch, daemon=True)

    def __enter__(self):
        if self.progress is not None:
            self.log.unlink(missing_ok=True)
            self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        if self.thread.is_alive():
            self.thread.join()

    def _watch(self):
        last = None
        while not self.stop.wait(1.0):
            try:
                lines = [ln for ln in self.log.read_text(errors="replace").splitlines() if " done (" in ln]
            except OSError:
                continue
            if lines and lines[-1] != last:
                last = lines[-1]
                self.progress(last.strip())


def _stderr_progress(line: str) -> None:
    print(f"  {line}", file=sys.stderr, flush=True)


def _accelerator_verilog(compiled: Compiled, simulator: str, build_root: Path | None) -> tuple[Accelerator, Path]:
    """The accelerator and its Verilog file in its build folder (unchanged text keeps the build cached)."""
    missing = simulator_missing(simulator)
    if missing:
        raise BuildError(missing)
    top = Accelerator(compiled.hardware)
    vfile = _build_root(build_root) / f"accelerator-{compiled.hardware.config_hash()[:12]}-{simulator}" \
        / "accelerator.v"
    write_verilog(top, "accelerator", vfile, simulator)
    return top, vfile


def build_rtl(compiled: Compiled, simulator: str = "verilator", build_root: Path | None = None) -> Path:
    """Build (or find built) the simulator model of ``compiled``'s accelerator; returns its build folder.
    :func:`run_rtl` does this itself; calling it first separates the build time from the run time."""
    _, vfile = _accelerator_verilog(compiled, simulator, build_root)
    cocotb_build("accelerator", vfile, vfile.parent, simulator)
    return vfile.parent


def run_rtl(compiled: Compiled, images: torch.Tensor, simulator: str = "verilator",
            build_root: Path | None = None, waves: bool = False, progress=_stderr_progress) -> dict:
    """Run ``images [B, C, H, W]`` through the accelerator RTL. Returns ``{"images": [{"logits",
    "counters", "layers"}], "total_s", "loop_s", "loop_clock_cycles", "log", "build_dir"}`` (``loop_s``: wall
    seconds of the image loop inside the simulator, ``loop_clock_cycles``: clock cycles it simulated); raises :class:`BuildError` when the build or the run fails.
    ``progress(line)`` gets the bench's per-image progress lines (default: printed to stderr)."""
    t0 = time.time()
    _, vfile = _accelerator_verilog(compiled, simulator, build_root)
    build_dir = vfile.parent
    n_classes = compiled.manifest["model"]["num_classes"]
    n_steps = len(recorded_steps(compiled.program))
    reads = {
        "logits": [READ_MAP["logits"] + i for i in range(n_classes)],
        "counters": [READ_MAP["counters"] + i for i in range(len(COUNTERS))],
        "layers": [READ_MAP["layers"] + 4 * s + k for s in range(n_steps) for k in range(len(LAYER_COUNTERS))],
    }
    job = {"load": load_beats(compiled), "images": [image_beats(compiled.hardware, img) for img in images],
           "reads": reads, "timeout_cycles": 2_000_000}
    run_id = hashlib.sha256(json.dumps(job, sort_keys=True).encode()).hexdigest()[:12]
    job_file, result_file = build_dir / f"job-{run_id}.json", build_dir / f"result-{run_id}.json"
    job_file.write_text(json.dumps(job))
    result_file.unlink(missing_ok=True)
    log = build_dir / f"run-{run_id}.log"
    with _LogProgress(log, progress):
        tests, failed = cocotb_run("accelerator", vfile, build_dir, simulator, BENCH, run_id,
                                   {"SPIKEFORGE_JOB": str(job_file), "SPIKEFORGE_RESULT": str(result_file)}, waves)
    total_s = time.time() - t0
    result = json.loads(result_file.read_text()) if result_file.exists() else {}
    if result.get("error") or failed or not tests:
        raise BuildError(f"{simulator}: accelerator run failed: {result.get('error') or 'see log'} (log: {log})")
    images_out = []
    for img in result["images"]:
        layers = img["layers"]
        per = len(LAYER_COUNTERS)
        images_out.append({
            "logits": img["logits"],
            "counters": named_counters(compiled.hardware, img["counters"]),
            "layers": step_counters(layers[s * per:(s + 1) * per] for s in range(n_steps)),
        })
    return {"images": images_out, "total_s": total_s, "loop_s": result.get("loop_seconds"),
            "loop_clock_cycles": result.get("loop_clock_cycles"), "log": str(log), "build_dir": str(build_dir)}


def _golden_sops(graph: LayerGraph, compiled: Compiled, trace: golden.Trace) -> dict[str, int]:
    """Golden SOPs per program step (a group of layers, such as Q, K and V, is one step on the accelerator)."""
    by_name = {l.name: l for l in trace.layers}
    out = {}
    for d in compiled.program:
        if d.op == OPS["SDSA"]:
            out[d.name] = by_name[d.name].sops   # K AND V set bits counted
            continue
        if d.op != OPS["CONV"] or d.kind == KINDS["pixel3x3"]:
            continue
        members = [layer.name for layer in graph if layer.group == d.name] or [d.name]
        out[d.name] = sum(by_name[n].sops for n in members)
    return out


def simulate(qm, compiled: Compiled, pixels: torch.Tensor, labels: torch.Tensor | None = None,
             simulator: str = "verilator", build_root: Path | None = None) -> SimReport:
    """RTL vs golden on ``pixels``: the report of ``spikeforge sim`` (:class:`~spikeforge.sim.report.SimReport`).

    Per layer: ``cycles`` (RTL counter, summed over images), ``events`` (accumulator events: for
    3x3 layers one per (input spike, in-map output position) pair; for the first layer one per set
    pixel bit-plane bit), ``sops`` (RTL counter) and ``bound_cycles`` = ``events * groups`` (the
    event-driven lower bound of ``docs/performance.md``; 0 for steps without synapses).
    Each layer also has ``cycles_over_bound`` and ``utilization`` (``sops / (P * cycles)``);
    ``bound_utilization`` = SOPs / (P * bound) is the utilisation a run at the bound would reach
    (below 1 where a layer has fewer channels than lanes).
    ``per_image``: each image's ``cycles``, ``bound_cycles``, ``layer_cycles`` and
    ``layer_bound_cycles`` (in the order of ``layers``).
    """
    rtl = run_rtl(compiled, pixels, simulator, build_root)
    graph = layer_graph(qm.config)
    p = compiled.hardware.lanes
    mismatches, correct, sop_mismatches, per_image = [], 0, [], []
    steps = recorded_steps(compiled.program)
    layers = {d.name: {"cycles": 0, "bound_cycles": 0, "events": 0, "sops": 0, "golden_sops": 0} for d in steps}
    for i, img in enumerate(rtl["images"]):
        tr = golden.Trace()
        want = golden.forward(qm, pixels[i:i + 1], tr)[0].tolist()
        if img["logits"] != want:
            mismatches.append({"image": i, "rtl": img["logits"], "golden": want})
        pred = max(range(len(img["logits"])), key=lambda k: (img["logits"][k], -k))
        if labels is not None and pred == int(labels[i]):
            correct += 1
        gs = _golden_sops(graph, compiled, tr)
        layer_cycles, layer_bounds = [], []
        for d, counts in zip(steps, img["layers"]):
            row = layers[d.name]
            row["cycles"] += counts["cycles"]
            row["events"] += counts["events"]
            row["sops"] += counts["sops"]
            bound = counts["events"] * d.groups if d.op == OPS["CONV"] else 0
            row["bound_cycles"] += bound
            layer_cycles.append(counts["cycles"])
            layer_bounds.append(bound)
            if d.name in gs:
                row["golden_sops"] += gs[d.name]
                if counts["sops"] != gs[d.name]:
                    sop_mismatches.append({"image": i, "layer": d.name, "rtl": counts["sops"], "golden": gs[d.name]})
        per_image.append(ImageCycles(img["counters"]["cycles"], layer_cycles, layer_bounds, sum(layer_bounds)))
    n = len(rtl["images"])
    cycles = sum(img["counters"]["cycles"] for img in rtl["images"])
    bound = sum(r["bound_cycles"] for r in layers.values())
    sops = sum(r["sops"] for r in layers.values())
    return SimReport(
        images=n,
        mismatches=len(mismatches),
        mismatch_details=mismatches[:5],
        sop_mismatches=len(sop_mismatches),
        accuracy=correct / n if labels is not None and n else None,
        cycles_per_inference=cycles / n,
        bound_cycles=bound / n,
        cycles_over_bound=cycles / bound if bound else None,
        utilization=sops / (p * cycles) if cycles else 0.0,
        lanes=p,
        engine_counters={k: sum(img["counters"][k] for img in rtl["images"]) / n for k in rtl["images"][0]["counters"]},
        event_driven=compiled.hardware.event_driven,
        simulator=simulator,
        sim_seconds=rtl["total_s"],
        images_per_second=n / rtl["total_s"] if rtl["total_s"] else None,
        per_image=per_image,
        sops_per_inference=sops / n,
        bound_utilization=sops / (p * bound) if bound else None,
        layers=[LayerReport(name, r["cycles"] / n, r["bound_cycles"] / n, r["events"] / n, r["sops"] / n,
                            r["golden_sops"] / n, r["cycles"] / r["bound_cycles"] if r["bound_cycles"] else None,
                            r["sops"] / (p * r["cycles"]) if r["cycles"] else None) for name, r in layers.items()],
    )
