"""``spikeforge demo``: the embedded trained model on the digits test split (float and integer
accuracy, per-class table) and on the accelerator RTL for the first few test images."""

from __future__ import annotations

import json

from rich.table import Table

from .argtypes import natural
from .common import UsageError, kv_table, load_model, out
from .rtl import sim_report

HELP = "evaluate the embedded model (float and integer) on the digits test split"

#: The accelerator the demo simulates: Verilator, P = 16, event-driven, capacities fitted to the model.
DEMO_SIMULATOR, DEMO_LANES = "verilator", 16


def add_arguments(parser) -> None:
    parser.add_argument("--json", action="store_true", help="also print a JSON summary")
    parser.add_argument("--rtl-images", type=natural, default=4,
                        help="test images to run on the accelerator RTL (default 4)")


def run(args) -> int:
    from spikeforge.model import golden
    from spikeforge.model.checkpoint import EMBEDDED_CONFIG
    from spikeforge.model.configs import describe
    from spikeforge.model.data import PIXEL_MAX, load_digits_split
    from spikeforge.model.quantize import quantize
    from spikeforge.model.train import predict

    path, model = load_model(None, None)
    data = load_digits_split()
    pred = predict(model, data.test_pixels).argmax(1)
    correct = pred == data.test_labels
    info = describe(EMBEDDED_CONFIG)

    qm = quantize(model, w_bits=8, pixel_max=PIXEL_MAX)
    int_pred = golden.forward_batched(qm, data.test_pixels).argmax(1)
    console = out()
    console.print(kv_table(f"SpikeForge demo: embedded {EMBEDDED_CONFIG} on the digits test split", [
        ("checkpoint", path.name),
        ("parameters", f"{info['params']:,}"),
        ("embed dims / blocks", f"{info['embed_dims']} / {info['depths']}"),
        ("tokens x time steps", f"{info['tokens']} x {info['T']}"),
        ("test images", str(len(correct))),
        ("accuracy (float model)", f"{correct.float().mean().item():.4f}"),
        ("accuracy (integer golden, 8-bit)", f"{(int_pred == data.test_labels).float().mean().item():.4f}"),
        ("float/integer agreement", f"{(int_pred == pred).float().mean().item():.4f}"),
    ]))

    rtl = _rtl(qm, args.rtl_images)

    per_class = Table(title="per-class accuracy")
    per_class.add_column("digit", justify="right")
    per_class.add_column("images", justify="right")
    per_class.add_column("correct", justify="right")
    for digit in range(model.num_classes):
        sel = data.test_labels == digit
        per_class.add_row(str(digit), str(int(sel.sum())), str(int(correct[sel].sum())))
    console.print(per_class)
    if rtl is not None:
        console.print(kv_table(f"accelerator RTL (Verilator, P = {DEMO_LANES}) on the first {rtl.images} test images", [
            ("logits equal to the golden model", f"{rtl.images - rtl.mismatches} of {rtl.images}"),
            ("cycles per inference", f"{rtl.cycles_per_inference:,.0f}"),
            ("event-driven bound", f"{rtl.bound_cycles:,.0f}"),
            ("cycles / bound", f"{rtl.cycles_over_bound:.3f}"),
            ("utilisation", f"{rtl.utilization:.3f}"),
        ]))
    if args.json:
        print(json.dumps({"accuracy": correct.float().mean().item(), "n": len(correct),
                          "errors": int((~correct).sum()), **{k: info[k] for k in ("params", "tokens", "T")},
                          "rtl": None if rtl is None else {
                              "images": rtl.images, "mismatches": rtl.mismatches,
                              "cycles_per_inference": rtl.cycles_per_inference, "bound_cycles": rtl.bound_cycles,
                              "utilization": rtl.utilization}}))
    return 0 if rtl is None or rtl.mismatches == 0 else 1


def _rtl(qm, n: int):
    """The :class:`~spikeforge.sim.report.SimReport` of ``n`` test images on the accelerator
    generated for the embedded model (``None`` if n = 0)."""
    if n <= 0:
        return None
    try:
        return sim_report(qm, n, DEMO_SIMULATOR, DEMO_LANES, dense=False, capacity={})
    except UsageError as exc:
        raise UsageError(f"the demo simulates the accelerator RTL: {exc}; `--rtl-images 0` skips it") from None
