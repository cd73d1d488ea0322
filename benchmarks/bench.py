"""``spikeforge bench``: the performance report, every number measured in one invocation.

    spikeforge bench [--quick] --out DIR [--builds BUILD_DIR ...] [--sections NAME,...]

Sections (``docs/performance.md`` explains each metric and the bound):

``scaling``
    Cycles per inference of the whole accelerator RTL (Verilator) against the input firing rate,
    1 % .. 50 % (synthetic bit-plane inputs, :mod:`~spikeforge.benchmarks.workloads`), for the
    event-driven build and the dense baseline, with the event-driven lower bound; for the whole
    embedded model and for its first layer (whose input is exactly the controlled spike stream).
``utilisation``
    The embedded model on digits test images: per layer, measured cycles vs the bound
    (``docs/performance.md``) and utilisation = SOPs / (P x cycles); the dense baseline on the
    same images gives the speed-up at the model's real firing rate.
``attention``
    SDSAUnit cycles (Amaranth simulator, outputs checked against ``golden.sdsa``) vs tokens N and
    channels C, next to the cycles a vanilla ``Q K^T V`` attention needs on the same P lanes.
``lanes``
    P in {4, 8, 16, 32, 64}: cycles per inference (RTL), ECP5 LUT / FF / BRAM from Yosys
    ``synth_ecp5`` of the accelerator, SOPs per cycle per kLUT.
``alternatives``
    CPU PyTorch latency per image (batch 1 and 64) of the float model and of the golden model, vs
    the accelerator's projected latency (measured cycles / Fmax of each board's build report) and
    throughput in GSOP/s; the paper-style energy estimate (E_AC x SOPs + E_MAC x MACs).
``simulation``
    Verilator vs Icarus cycles per second on the whole accelerator (steady state, build excluded),
    build times, and images per second of ``spikeforge sim``.

Writes ``DIR/report.md``, ``DIR/report.json`` and one PNG per section; each carries the machine
and tool versions (:mod:`~spikeforge.benchmarks.machine`). Wall-clock figures (CPU latency,
simulator speed) are taken while no other benchmark work runs; the lanes sweep's Yosys runs go
in a worker thread beside the cycle-count sections, whose results do not depend on load.
"""

from __future__ import annotations

import concurrent.futures as futures
import json
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from spikeforge.benchmarks.machine import footer, machine_info
from spikeforge.benchmarks.workloads import input_firing_rate, synthetic_pixels

__all__ = ["SECTIONS", "SIZES", "BenchError", "run_bench", "parse_sections", "add_arguments", "run_from_args",
           "vanilla_attention_cycles", "sdsa_bound_cycles"]

SECTIONS = ("scaling", "utilisation", "attention", "lanes", "alternatives", "simulation")

#: Input firing rates of the scaling sweep.
RATES = (0.01, 0.02, 0.05, 0.10, 0.20, 0.30, 0.40, 0.50)
LANES = (4, 8, 16, 32, 64)
#: The lanes of the scaling, utilisation and simulation sections (the ULX3S build's).
DEFAULT_LANES = 16

#: How much each section runs: ``--quick`` (under 10 minutes on 2 cores) and the full run.
SIZES = {
    "quick": dict(rates=RATES, lanes=LANES, rate_images=2, util_images=16, dense_images=8, lanes_images=4,
                  synth_lanes=(4, 16, 64),
                  verilator_images=8, icarus_images=2, cpu_seconds=2.0,
                  tokens=(16, 32, 64, 128, 256), channels=(16, 32, 64, 128, 256)),
    "full": dict(rates=RATES, lanes=LANES, rate_images=8, util_images=360, dense_images=40, lanes_images=32,
                 synth_lanes=LANES,
                 verilator_images=64, icarus_images=4, cpu_seconds=10.0,
                 tokens=(16, 32, 64, 128, 256, 512, 1024), channels=(16, 32, 64, 128, 256, 512)),
}


class BenchError(RuntimeError):
    """A benchmark could not run (bad option, missing tool, RTL mismatch): printed without a traceback."""


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def vanilla_attention_cycles(tokens: int, channels: int, lanes: int) -> int:
    """Cycles of a vanilla ``(Q K^T) V`` attention on ``lanes`` multiply-accumulators, one MAC per
    lane per cycle and nothing else counted (no softmax, no memory stalls): ``Q K^T`` is
    ``N x N x C`` MACs and the product with V another ``N x N x C``, so ``ceil(2 N^2 C / P)``.
    A cost model (the lower bound of such an engine), not a measurement."""
    return -(-2 * tokens * tokens * channels // lanes)


def sdsa_bound_cycles(tokens: int, channels: int, lanes: int) -> int:
    """SDSAUnit's cost per time step from its docstring: ``(2 N + 1) x ceil(C / P)`` (K/V beats,
    the fire cycle per group, Q beats)."""
    return (2 * tokens + 1) * -(-channels // lanes)


@dataclass
class _Context:
    out: Path
    quick: bool
    builds: list[Path]
    size: dict
    info: dict
    qm: object = None
    data: object = None
    results: dict = field(default_factory=dict)
    seconds: dict = field(default_factory=dict)
    synth_jobs: dict = field(default_factory=dict)
    cpu: list | None = None
    failures: list = field(default_factory=list)


# ------------------------------------------------------------------------------------ accelerator runs


def _compiled(qm, lanes: int, event_driven: bool = True):
    from spikeforge.firmware.compiler import compile_model, hardware_for

    return compile_model(qm, hardware_for(qm, lanes=lanes, event_driven=event_driven))


def _simulate(ctx: _Context, compiled, pixels, labels=None, simulator: str = "verilator", build_root=None):
    """:func:`~spikeforge.sim.accelerator_sim.simulate`, refusing any logit mismatch with the golden model."""
    from spikeforge.sim.accelerator_sim import simulate

    r = simulate(ctx.qm, compiled, pixels, labels, simulator, build_root)
    if r.mismatches or r.sop_mismatches:
        raise BenchError(f"{simulator}: {r.mismatches} logit and {r.sop_mismatches} SOP mismatches with the "
                         f"golden model (P = {compiled.hardware.lanes}, event_driven = "
                         f"{compiled.hardware.event_driven}): {r.mismatch_details[:1]}")
    return r


def _golden_per_image(qm, pixels) -> dict:
    """The golden trace's totals over ``pixels`` per image: ``sops``, ``macs``, ``energy_pj``, and
    ``ops`` (SOPs plus the real-valued first layer's MACs); ``firing_rate`` is spikes / neuron-steps
    over every LIF layer."""
    from spikeforge.model import golden

    tr = golden.Trace()
    golden.forward(qm, pixels, tr)
    tot = tr.totals()
    per = {k: tot[k] / len(pixels) for k in ("sops", "macs", "energy_pj")}
    return {**per, "ops": per["sops"] + per["macs"], "firing_rate": tot["firing_rate"] or 0.0}


def section_scaling(ctx: _Context) -> dict:
    qm, n, rates = ctx.qm, ctx.size["rate_images"], ctx.size["rates"]
    shape = (qm.config["in_channels"], qm.config["img_size_h"], qm.config["img_size_w"])
    batches = [synthetic_pixels(n, shape, qm.pixel_bits, rate, seed=i) for i, rate in enumerate(rates)]
    px = torch.cat(batches)
    compiled = {"event-driven": _compiled(qm, DEFAULT_LANES), "dense": _compiled(qm, DEFAULT_LANES, False)}
    runs = {}
    for label, c in compiled.items():
        _log(f"scaling: {label}, {len(rates)} input firing rates x {n} images ...")
        runs[label] = _simulate(ctx, c, px).per_image

    def mean(label, i, key, layer=None):
        imgs = runs[label][i * n:(i + 1) * n]
        return statistics.fmean(getattr(img, key) if layer is None else getattr(img, key)[layer] for img in imgs)

    rows = []
    for i, (rate, batch) in enumerate(zip(rates, batches)):
        row = {"rate": rate, "measured_rate": input_firing_rate(batch, qm.pixel_bits),
               "internal_firing_rate": _golden_per_image(qm, batch)["firing_rate"], "images": n}
        for part, cyc, bnd, layer in (("model", "cycles", "bound_cycles", None),
                                      ("first_layer", "layer_cycles", "layer_bound_cycles", 0)):
            s, d = mean("event-driven", i, cyc, layer), mean("dense", i, cyc, layer)
            row[part] = {"cycles": s, "bound_cycles": mean("event-driven", i, bnd, layer), "dense_cycles": d,
                         "speedup": d / s}
        rows.append(row)
    return {"lanes": DEFAULT_LANES, "first_layer": compiled["event-driven"].program[0].name, "rows": rows,
            "digits_input_rate": input_firing_rate(ctx.data.test_pixels, qm.pixel_bits)}


def section_utilisation(ctx: _Context) -> dict:
    data, n, nd = ctx.data, ctx.size["util_images"], ctx.size["dense_images"]
    n, nd = min(n, len(data.test_labels)), min(nd, n)
    px, lb = data.test_pixels[:n].long(), data.test_labels[:n]
    _log(f"utilisation: {n} digits test images, event-driven ...")
    compiled = _compiled(ctx.qm, DEFAULT_LANES)
    s = _simulate(ctx, compiled, px, lb)
    _log(f"utilisation: dense baseline on the first {nd} of them ...")
    d = _simulate(ctx, _compiled(ctx.qm, DEFAULT_LANES, event_driven=False), px[:nd], lb[:nd])
    s_same = s if nd == n else _simulate(ctx, compiled, px[:nd], lb[:nd])
    keep = ("images", "accuracy", "cycles_per_inference", "bound_cycles", "cycles_over_bound", "utilization",
            "bound_utilization")
    return {
        "lanes": DEFAULT_LANES, "hardware_hash": compiled.hardware.config_hash(),
        "event_driven": {k: getattr(s, k) for k in keep}, "layers": s.as_dict()["layers"],
        "dense": {k: getattr(d, k) for k in keep}, "dense_layers": d.as_dict()["layers"],
        "speedup_over_dense": d.cycles_per_inference / s_same.cycles_per_inference,
        "speedup_images": nd, "input_firing_rate": input_firing_rate(px[:nd], ctx.qm.pixel_bits),
        "internal_firing_rate": _golden_per_image(ctx.qm, px[:nd])["firing_rate"],
        "sops_per_inference": s.sops_per_inference,
        "goal_utilization": 0.90,
    }


def section_attention(ctx: _Context) -> dict:
    from spikeforge.sim.amaranth_bench import run_scenario
    from spikeforge.sim.scenarios import sdsa_workload

    p, n0, c0 = DEFAULT_LANES, 64, 64

    def point(tokens, channels):
        sc = sdsa_workload(p, channels, tokens, steps=1, rate=0.25, seed=tokens * 1000 + channels)
        cycles = run_scenario(sc, idle=0.0, stall=0.0)["cycles"]   # raises if an output differs from golden
        return {"tokens": tokens, "channels": channels, "cycles": cycles,
                "model_cycles": sdsa_bound_cycles(tokens, channels, p),
                "vanilla_cycles": vanilla_attention_cycles(tokens, channels, p)}

    _log(f"attention: SDSAUnit (P = {p}) vs tokens at C = {c0} and vs channels at N = {n0} ...")
    vs_n = [point(n, c0) for n in ctx.size["tokens"]]
    vs_c = [point(n0, c) for c in ctx.size["channels"]]
    emb = point(_tokens(ctx.qm), ctx.qm.config["embed_dims"])
    return {"lanes": p, "rate": 0.25, "fixed_channels": c0, "fixed_tokens": n0, "vs_tokens": vs_n,
            "vs_channels": vs_c, "embedded": emb,
            "fit": {"cycles_per_token": _slope([r["tokens"] for r in vs_n], [r["cycles"] for r in vs_n]),
                    "cycles_per_channel": _slope([r["channels"] for r in vs_c], [r["cycles"] for r in vs_c])}}


def _tokens(qm) -> int:
    from spikeforge.model.configs import describe

    return describe(qm.config)["tokens"]


def _slope(xs, ys) -> float:
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs)


def _synth_job(lanes: int, text: str, yosys: str, env: dict) -> dict:
    from spikeforge.toolchain.export import synthesize_verilog

    t = time.monotonic()
    cells = synthesize_verilog(text, "accelerator", yosys=yosys, env=env)
    _log(f"lanes: Yosys synth_ecp5 of P = {lanes} done in {time.monotonic() - t:.0f} s")
    return {"cells": cells, "seconds": round(time.monotonic() - t, 1)}


def _start_synthesis(ctx: _Context) -> futures.Executor:
    """Start the lanes sweep's Yosys ``synth_ecp5`` runs (the accelerator for the embedded model at
    each P) in one worker thread, alongside the simulations: Verilog is generated here, and the
    worker only waits on the Yosys process."""
    from amaranth.back import verilog

    from spikeforge.firmware.compiler import hardware_for
    from spikeforge.hdl.accelerator import Accelerator
    from spikeforge.toolchain.export import SynthesisError, yosys_executable

    try:
        yosys = yosys_executable()   # resolved here, with the environment: the Verilator builds of
    except SynthesisError as exc:    # the main thread change os.environ while the worker runs
        raise BenchError(f"the lanes sweep needs Yosys: {exc}") from None
    env = dict(os.environ)
    pool = futures.ThreadPoolExecutor(max_workers=1)
    for lanes in ctx.size["synth_lanes"]:
        _log(f"lanes: generating the P = {lanes} accelerator for Yosys ...")
        text = verilog.convert(Accelerator(hardware_for(ctx.qm, lanes=lanes)), name="accelerator", emit_src=False)
        ctx.synth_jobs[lanes] = pool.submit(_synth_job, lanes, text, yosys, env)
    return pool


def section_lanes(ctx: _Context) -> dict:
    """Cycles per P here; the Yosys figures join the rows at the end (:func:`_collect_synthesis`)."""
    n = ctx.size["lanes_images"]
    px, lb = ctx.data.test_pixels[:n].long(), ctx.data.test_labels[:n]
    rows = []
    for p in ctx.size["lanes"]:
        _log(f"lanes: P = {p}, {n} images ...")
        r = _simulate(ctx, _compiled(ctx.qm, p), px, lb)
        sops = r.sops_per_inference
        rows.append({"lanes": p, "cycles_per_inference": r.cycles_per_inference,
                     "bound_cycles": r.bound_cycles, "utilization": r.utilization,
                     "sops_per_inference": sops, "sops_per_cycle": sops / r.cycles_per_inference})
    return {"images": n, "rows": rows, "synthesised": list(ctx.size["synth_lanes"])}


def _collect_synthesis(ctx: _Context) -> None:
    """Add the Yosys figures to the lanes sweep's rows (the worker ran while the other sections did)."""
    from spikeforge.toolchain.build import synth_needs
    from spikeforge.toolchain.export import SynthesisError

    for row in ctx.results["lanes"]["rows"]:
        job = ctx.synth_jobs.get(row["lanes"])
        if job is None:
            continue
        if not job.done():
            _log(f"lanes: waiting for the Yosys synth_ecp5 of P = {row['lanes']} ...")
        try:
            s = job.result()
        except SynthesisError as exc:   # recorded in the report (and the exit status), not lost
            _log(f"lanes: synth_ecp5 of P = {row['lanes']} failed: {str(exc)[:300]}")
            row["synth_error"] = str(exc)
            ctx.failures.append(f"synth_ecp5 of P = {row['lanes']} failed")
            continue
        needs = synth_needs("ecp5", s["cells"])
        row.update(synth_seconds=s["seconds"], lut=needs["TRELLIS_COMB"], ff=needs["TRELLIS_FF"],
                   bram=needs["DP16KD"], lutram=s["cells"].get("TRELLIS_DPR16X4", 0), dsp=needs["MULT18X18D"],
                   sops_per_cycle_per_klut=row["sops_per_cycle"] / (needs["TRELLIS_COMB"] / 1000))


def _median_seconds(fn, budget: float, max_runs: int = 200) -> tuple[float, int]:
    fn()  # warm-up
    times, start = [], time.monotonic()
    while len(times) < 3 or (time.monotonic() - start < budget and len(times) < max_runs):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), len(times)


def _build_reports(ctx: _Context) -> list[tuple[Path, dict]]:
    """``(report.json path, report)`` of each build named by ``--builds`` (each must be a
    ``spikeforge build`` folder or its report), else of ``build/reports/build-*`` where present."""
    found = []
    paths = ctx.builds or sorted(Path("build/reports").glob("build-*"))
    for path in paths:
        report = path / "report.json" if path.is_dir() else path
        if not report.is_file():
            if ctx.builds:
                raise BenchError(f"--builds {path}: no report.json (a `spikeforge build` output folder or its report)")
            continue
        try:
            rep = json.loads(report.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise BenchError(f"{report}: not a build report: {exc}") from None
        fmax = rep.get("fmax_mhz") if isinstance(rep, dict) else None
        if not isinstance(rep, dict) or "board" not in rep or not isinstance(fmax, (dict, type(None))) or \
                any(not isinstance(v, (int, float)) or v <= 0 for v in (fmax or {}).values()):
            raise BenchError(f"{report}: not a build report (expected an object with \"board\" and "
                             f"\"fmax_mhz\": {{clock: MHz > 0}})")
        _build_hardware(report)   # a manifest beside it that does not read fails here, before anything runs
        found.append((report, rep))
    return found


def _build_hardware(report: Path):
    """The HardwareConfig a build was made from (its manifest.json), or ``None`` when it has none; a
    manifest that ``load_manifest`` refuses is a :class:`BenchError` naming it (never silently skipped)."""
    from spikeforge.firmware.compiler import load_manifest
    from spikeforge.firmware.program import HardwareConfig

    manifest = report.parent / "manifest.json"
    if not manifest.exists():
        return None
    try:
        return HardwareConfig.from_dict(load_manifest(manifest)["hardware"])
    except ValueError as exc:
        raise BenchError(f"--builds {report.parent}: {exc}") from None


def cpu_latency(ctx: _Context) -> list[dict]:
    """Median seconds per image of the float model (PyTorch, inference mode) and of the golden model
    on this CPU at batch 1 and 64 (``cpu_seconds`` of repeats each, after a warm-up run)."""
    from spikeforge.model import golden, load_embedded

    qm, budget = ctx.qm, ctx.size["cpu_seconds"]
    px = ctx.data.test_pixels.long()
    model = load_embedded().eval()
    float_in = ctx.data.test_pixels.float() / qm.pixel_max
    cpu = []
    for batch in (1, 64):
        _log(f"alternatives: CPU latency, batch {batch} ...")
        with torch.inference_mode():
            t_float, runs_f = _median_seconds(lambda: model(float_in[:batch]), budget)
        t_gold, runs_g = _median_seconds(lambda: golden.forward(qm, px[:batch]), budget)
        cpu.append({"batch": batch, "threads": torch.get_num_threads(),
                    "float_s_per_image": t_float / batch, "golden_s_per_image": t_gold / batch,
                    "float_runs": runs_f, "golden_runs": runs_g})
    return cpu


def section_alternatives(ctx: _Context) -> dict:
    from spikeforge.model import golden

    qm, px = ctx.qm, ctx.data.test_pixels.long()
    work: dict[int, dict] = {}

    def first(k: int) -> dict:   # golden per-image totals of the first k test images, computed once
        if k not in work:
            work[k] = _golden_per_image(qm, px[:k])
        return work[k]

    cpu = ctx.cpu if ctx.cpu is not None else cpu_latency(ctx)
    for row in cpu:   # the work of exactly the timed images
        ops = first(row["batch"])["ops"]
        row.update(ops_per_image=ops, float_gops=ops / row["float_s_per_image"] / 1e9,
                   golden_gops=ops / row["golden_s_per_image"] / 1e9)
    # Energy (paper-style) per inference on the utilisation images, from the golden trace.
    n = min(ctx.size["util_images"], len(px))
    energy = {"images": n, "sops": first(n)["sops"], "macs": first(n)["macs"], "energy_nj": first(n)["energy_pj"] / 1e3,
              "e_ac_pj": golden.E_AC_PJ, "e_mac_pj": golden.E_MAC_PJ}
    # Projected latency per board: cycles measured in this run on the build's own hardware.
    nb = min(ctx.size["dense_images"], len(px))
    util = ctx.results.get("utilisation")
    boards = []
    for path, rep in _build_reports(ctx):
        clocks = rep.get("fmax_mhz") or {}
        fmax = min(clocks.values()) if clocks else None   # the slowest domain bounds the design
        row = {"board": rep.get("board"), "device": rep.get("device"), "report": str(path), "lanes": rep.get("lanes"),
               "status": rep.get("status"), "fmax_mhz": fmax, "clock_mhz": rep.get("target_mhz"),
               "timing_met": rep.get("timing_met")}
        hw = _build_hardware(path)
        if not fmax:
            why = "synthesis estimate only" if rep.get("status") == "synthesised" else rep.get("status") or "not built"
            row["note"] = f"no Fmax in the report ({why})"
        elif hw is None:
            row["note"] = f"no hardware configuration in {path.parent / 'manifest.json'}"
        else:
            if util and hw.config_hash() == util["hardware_hash"]:
                cycles, images = util["event_driven"]["cycles_per_inference"], util["event_driven"]["images"]
            else:
                _log(f"alternatives: {rep.get('board')}: the build's hardware (P = {hw.lanes}), {nb} images ...")
                from spikeforge.firmware.compiler import compile_model

                cycles, images = _simulate(ctx, compile_model(qm, hw), px[:nb]).cycles_per_inference, nb
            ops = first(images)["ops"]
            row.update(hardware_hash=hw.config_hash(), lanes=hw.lanes, images=images, cycles_per_inference=cycles,
                       ops_per_image=ops, latency_s=cycles / (fmax * 1e6),
                       latency_at_clock_s=cycles / (rep["target_mhz"] * 1e6) if rep.get("target_mhz") else None,
                       gops=ops / (cycles / (fmax * 1e6)) / 1e9)
        boards.append(row)
    return {"cpu": cpu, "energy": energy, "boards": boards}


def section_simulation(ctx: _Context) -> dict:
    from spikeforge.sim.accelerator_sim import build_rtl, run_rtl
    from spikeforge.sim.runner import simulator_missing

    compiled = _compiled(ctx.qm, DEFAULT_LANES)
    px = ctx.data.test_pixels.long()
    out = {"lanes": DEFAULT_LANES, "simulators": {}}
    for sim, n in (("verilator", ctx.size["verilator_images"]), ("icarus", ctx.size["icarus_images"])):
        missing = simulator_missing(sim)
        if missing:
            out["simulators"][sim] = {"error": missing}
            _log(f"simulation: {sim} not run: {missing}")
            continue
        with tempfile.TemporaryDirectory() as tmp:   # a fresh folder: the build is timed too
            _log(f"simulation: {sim}: building the accelerator (P = {DEFAULT_LANES}) ...")
            t = time.monotonic()
            build_rtl(compiled, sim, Path(tmp))
            build_s = time.monotonic() - t
            _log(f"simulation: {sim}: {n} image(s) ...")
            t = time.monotonic()
            r = run_rtl(compiled, px[:n], sim, Path(tmp), progress=None)
            run_s = time.monotonic() - t
        out["simulators"][sim] = {
            "build_s": build_s, "images": n, "run_s": run_s, "images_per_second": n / run_s,
            "cycles_per_inference": statistics.fmean(img["counters"]["cycles"] for img in r["images"]),
            "cycles_per_second": r["loop_clock_cycles"] / r["loop_s"],
            "overhead_s": run_s - r["loop_s"],
        }
    return out


SECTION_FUNCS = {"scaling": section_scaling, "utilisation": section_utilisation, "attention": section_attention,
                 "lanes": section_lanes, "alternatives": section_alternatives, "simulation": section_simulation}


# ------------------------------------------------------------------------------------------ driver


def parse_sections(text: str | None) -> list[str]:
    if not text:
        return list(SECTIONS)
    names = [s.strip() for s in text.split(",") if s.strip()]
    bad = [s for s in names if s not in SECTIONS]
    if bad or not names:
        raise BenchError(f"--sections: unknown section {', '.join(map(repr, bad)) or '(none)'}; "
                         f"sections: {', '.join(SECTIONS)}")
    return [s for s in SECTIONS if s in names]   # run in the report's order


def run_bench(out: Path, quick: bool = False, builds: list[Path] | None = None, sections: list[str] | None = None,
              size_overrides: dict | None = None) -> dict:
    """Run the benchmark ``sections`` and write ``out/report.md``, ``report.json`` and the PNG figures.
    Returns the report dict. ``size_overrides`` shrinks workloads (tests)."""
    from spikeforge.benchmarks import plots
    from spikeforge.benchmarks.markdown import report_markdown
    from spikeforge.model.data import load_digits_split
    from spikeforge.common.files import atomic_write_bytes
    from spikeforge.model.quantize import embedded_qmodel

    out = Path(out)
    if out.exists() and not out.is_dir():
        raise BenchError(f"--out {out}: exists and is not a folder")
    sections = sections or list(SECTIONS)
    size = SIZES["quick" if quick else "full"]
    unknown = set(size_overrides or {}) - set(size)
    if unknown:
        raise BenchError(f"unknown workload sizes {sorted(unknown)}; sizes: {', '.join(size)}")
    size = {**size, **(size_overrides or {})}
    _check_sizes(size)
    ctx = _Context(out=out, quick=quick, builds=[Path(b) for b in builds or []], size=size, info=machine_info())
    if ctx.builds:
        _build_reports(ctx)   # bad paths fail before anything runs
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BenchError(f"--out {out}: cannot create the folder: {exc}") from None
    ctx.qm, ctx.data = embedded_qmodel(), load_digits_split()
    started = time.monotonic()
    pool = None

    def timed(name, fn):
        t = time.monotonic()
        _log(f"[{time.monotonic() - started:5.0f} s] {name} ...")
        value = fn(ctx)
        ctx.seconds[name] = round(ctx.seconds.get(name, 0) + time.monotonic() - t, 1)
        return value

    try:
        # Wall-clock measurements (CPU latency, simulator speed) run while nothing else does: the
        # CPU first, then the lanes sweep's Yosys runs beside the cycle-count sections, whose
        # results do not depend on load, and the simulators after Yosys has finished.
        if "alternatives" in sections:
            ctx.cpu = timed("alternatives", cpu_latency)
        pool = _start_synthesis(ctx) if "lanes" in sections else None
        for name in ("scaling", "utilisation", "attention", "lanes"):
            if name in sections:
                ctx.results[name] = timed(name, SECTION_FUNCS[name])
        if pool is not None:
            timed("lanes", _collect_synthesis)
        for name in ("alternatives", "simulation"):
            if name in sections:
                ctx.results[name] = timed(name, SECTION_FUNCS[name])
    finally:
        if pool is not None:   # on an error, do not wait for a running Yosys
            pool.shutdown(wait=not sys.exc_info()[0], cancel_futures=True)
    report = {"mode": "quick" if quick else "full", "machine": ctx.info, "sizes": size, "failures": ctx.failures,
              "section_seconds": ctx.seconds, "total_seconds": round(time.monotonic() - started, 1), **ctx.results}
    for name in SECTIONS:   # figures of an earlier run in this folder would pass for this one's
        (out / f"{name}.png").unlink(missing_ok=True)
    report["figures"] = plots.write_figures(report, out, footer(ctx.info))
    atomic_write_bytes(out / "report.json", json.dumps(report, indent=1).encode())
    atomic_write_bytes(out / "report.md", report_markdown(report).encode())
    return report


def _check_sizes(size: dict) -> None:
    """Workload sizes that every section can use (no empty runs, no single-point fits)."""
    from spikeforge.benchmarks.workloads import max_synthetic_rate

    for key in ("rate_images", "util_images", "dense_images", "lanes_images", "verilator_images", "icarus_images"):
        if not isinstance(size[key], int) or size[key] < 1:
            raise BenchError(f"workload size {key}: expected an integer >= 1, got {size[key]!r}")
    top = max_synthetic_rate(8)
    if not size["rates"] or any(not 0 < r <= top for r in size["rates"]):
        raise BenchError(f"workload size rates: expected rates in (0, {top:.2f}], got {size['rates']!r}")
    for key in ("tokens", "channels"):
        if len(set(size[key])) < 2 or min(size[key]) < 1:
            raise BenchError(f"workload size {key}: expected at least two distinct values >= 1, got {size[key]!r}")
    if not size["lanes"] or any(not 1 <= p <= 64 for p in size["lanes"]) or not set(size["synth_lanes"]) <= set(size["lanes"]):
        raise BenchError(f"workload sizes lanes / synth_lanes: expected P in 1..64, synth_lanes among lanes; got "
                         f"{size['lanes']!r} / {size['synth_lanes']!r}")
    if not size["cpu_seconds"] > 0:
        raise BenchError(f"workload size cpu_seconds: expected > 0, got {size['cpu_seconds']!r}")


def add_arguments(p) -> None:
    p.add_argument("--quick", action="store_true", help="smaller workloads (under 10 minutes on 2 cores)")
    p.add_argument("--out", type=Path, required=True, help="folder for report.md, report.json and the PNG figures")
    p.add_argument("--builds", type=Path, nargs="+", metavar="BUILD_DIR",
                   help="`spikeforge build` folders whose Fmax projects the latency (default: build/reports/build-*)")
    p.add_argument("--sections", help=f"comma-separated subset of: {', '.join(SECTIONS)} (default: all)")


def run_from_args(args) -> int:
    """``spikeforge bench``: run, print report.md; exit status 1 when a part failed (the report says which)."""
    report = run_bench(args.out, args.quick, args.builds, parse_sections(args.sections))
    print((args.out / "report.md").read_text())
    _log(f"wrote {args.out / 'report.md'}, report.json and {len(report['figures'])} figures "
         f"in {report['total_seconds']:.0f} s")
    for failure in report["failures"]:
        _log(f"error: {failure}")
    return 1 if report["failures"] else 0

