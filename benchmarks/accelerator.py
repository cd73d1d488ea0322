"""Benchmark of the whole accelerator RTL on the digits test split (Verilator through cocotb).

    .venv/bin/python benchmarks/accelerator.py [--images 360] [--dense-images 40] [--out build/reports]

For the embedded model at P lanes (default 16) it simulates the test images on the generated
accelerator and on the dense baseline (``event_driven=False``), compares every image's logits
with the golden model, and reports cycles per inference against the event-driven bound, the
utilisation and a per-layer table; then it generates one overlay configuration for the embedded
model and ``digits-micro`` and runs both on it. Verilator build and run times are measured (the
build in a fresh folder). Writes ``accelerator.json`` and ``accelerator.md`` into ``--out``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from spikeforge.firmware.compiler import compile_model, hardware_for
from spikeforge.model import load_embedded
from spikeforge.model.data import load_digits_split
from spikeforge.model.quantize import quantize
from spikeforge.model.train import calibrated_model
from spikeforge.sim.accelerator_sim import simulate


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _summary(r) -> dict:
    """The headline figures of a :class:`~spikeforge.sim.report.SimReport`."""
    return {k: getattr(r, k) for k in ("images", "mismatches", "sop_mismatches", "accuracy", "cycles_per_inference",
                              "bound_cycles", "cycles_over_bound", "utilization", "sim_seconds", "images_per_second")}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", type=int, default=360, help="test images for the event-driven runs (default all)")
    p.add_argument("--dense-images", type=int, default=40, help="test images for the dense baseline")
    p.add_argument("--lanes", type=int, default=16)
    p.add_argument("--simulator", default="verilator", choices=("verilator", "icarus"))
    p.add_argument("--out", type=Path, default=Path("build/reports"))
    args = p.parse_args(argv)

    data = load_digits_split()
    px, lb = data.test_pixels.long(), data.test_labels
    qm = quantize(load_embedded(), 8)
    hw = hardware_for(qm, lanes=args.lanes)
    compiled = compile_model(qm, hw)

    _log("building the accelerator simulator in a fresh folder (measures the build time) ...")
    with tempfile.TemporaryDirectory() as tmp:
        t = time.time()
        simulate(qm, compiled, px[:1], lb[:1], args.simulator, build_root=Path(tmp))
        build_s = time.time() - t

    n = min(args.images, len(lb))
    _log(f"event-driven: {n} images ...")
    sparse = simulate(qm, compiled, px[:n], lb[:n], args.simulator)
    nd = min(args.dense_images, len(lb))
    _log(f"dense baseline: {nd} images ...")
    dense = simulate(qm, compile_model(qm, hardware_for(qm, lanes=args.lanes, event_driven=False)), px[:nd], lb[:nd],
                     args.simulator)
    sparse_same = simulate(qm, compiled, px[:nd], lb[:nd], args.simulator)

    micro = quantize(calibrated_model("digits-micro", seed=1, data=data), 8)
    overlay_hw = hardware_for([qm, micro], lanes=args.lanes)
    overlay = {}
    for name, model in (("digits-tiny (embedded)", qm), ("digits-micro (calibrated, untrained)", micro)):
        _log(f"overlay: {name}, {n} images ...")
        overlay[name] = _summary(simulate(model, compile_model(model, overlay_hw), px[:n], lb[:n], args.simulator))

    result = {
        "lanes": args.lanes, "simulator": args.simulator, "hardware_hash": hw.config_hash(),
        "build_seconds": round(build_s, 1),
        "event_driven": _summary(sparse), "layers": sparse.as_dict()["layers"],
        "dense": _summary(dense), "event_driven_same_images": _summary(sparse_same),
        "dense_layers": dense.as_dict()["layers"],
        "overlay_hardware_hash": overlay_hw.config_hash(), "overlay": overlay,
    }
    s, d, ss = result["event_driven"], result["dense"], result["event_driven_same_images"]
    lines = [
        f"## Whole accelerator, embedded digits-tiny model, P = {args.lanes} ({args.simulator})", "",
        "| run | images | logit mismatches | SOP mismatches | accuracy | cycles / inference | bound | cycles / bound "
        "| utilisation | images / s (simulation) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for label, r in (("event-driven", s), ("event-driven (dense's images)", ss), ("dense baseline", d)):
        lines.append(f"| {label} | {r['images']} | {r['mismatches']} | {r['sop_mismatches']} | {r['accuracy']:.4f} "
                     f"| {r['cycles_per_inference']:,.0f} | {r['bound_cycles']:,.0f} | {r['cycles_over_bound']:.3f} "
                     f"| {r['utilization']:.3f} | {r['images_per_second']:.2f} |")
    lines += ["", f"Dense / event-driven cycles on the same {nd} images: "
                  f"{d['cycles_per_inference'] / ss['cycles_per_inference']:.2f} x. "
                  f"Verilator build (fresh folder, Verilog generation included): {build_s:.0f} s.", "",
              "### Per layer (event-driven, mean per image)", "",
              "| step | cycles | bound | cycles / bound | events | SOPs | utilisation | dense cycles |",
              "|---|---|---|---|---|---|---|---|"]
    dense_by = {r["name"]: r for r in result["dense_layers"]}
    for r in result["layers"]:
        ratio = f"{r['cycles_over_bound']:.2f}" if r["cycles_over_bound"] else "-"
        util = f"{r['utilization']:.2f}" if r["utilization"] is not None else "-"
        lines.append(f"| {r['name']} | {r['cycles']:,.0f} | {r['bound_cycles']:,.0f} | {ratio} | {r['events']:,.0f} "
                     f"| {r['sops']:,.0f} | {util} | {dense_by[r['name']]['cycles']:,.0f} |")
    lines += ["", f"### Overlay: one configuration ({overlay_hw.config_hash()[:12]}) runs both models", "",
              "| model | images | logit mismatches | SOP mismatches | accuracy | cycles / inference | cycles / bound |",
              "|---|---|---|---|---|---|---|"]
    for name, r in overlay.items():
        lines.append(f"| {name} | {r['images']} | {r['mismatches']} | {r['sop_mismatches']} | {r['accuracy']:.4f} "
                     f"| {r['cycles_per_inference']:,.0f} | {r['cycles_over_bound']:.3f} |")
    text = "\n".join(lines) + "\n"
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "accelerator.json").write_text(json.dumps(result, indent=1))
    (args.out / "accelerator.md").write_text(text)
    print(text)
    bad = s["mismatches"] + d["mismatches"] + sum(r["mismatches"] for r in overlay.values())
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
