"""``spikeforge trace QMODEL [--image I]``: exact per-layer events, SOPs, firing rates and energy of one image."""

from __future__ import annotations

import json
from pathlib import Path

from rich.table import Table

from .argtypes import natural
from .common import UsageError, load_qmodel, out

HELP = "per-layer events, SOPs, firing rates and energy of one test image"


def add_arguments(parser) -> None:
    parser.add_argument("qmodel", help="quantized model file (.sfq)")
    parser.add_argument("--image", type=natural, default=0, help="index in the digits test split (default 0)")
    parser.add_argument("--json", action="store_true")


def run(args) -> int:
    from spikeforge.model import golden
    from spikeforge.model.data import load_digits_split

    qm = load_qmodel(Path(args.qmodel))
    data = load_digits_split()
    if not 0 <= args.image < len(data.test_labels):
        raise UsageError(f"--image {args.image} is out of range: the test split has images "
                         f"0..{len(data.test_labels) - 1}")
    trace = golden.Trace()
    logits = golden.forward(qm, data.test_pixels[args.image:args.image + 1], trace)[0]
    result = {"image": args.image, "label": int(data.test_labels[args.image]), "prediction": int(logits.argmax()),
              "logits": logits.tolist(), "layers": [layer.as_dict() for layer in trace.layers],
              "totals": trace.totals()}
    if args.json:
        print(json.dumps(result))
        return 0
    table = Table(title=f"trace of test image {args.image} (label {result['label']}, predicted {result['prediction']})")
    for col in ("layer", "kind", "in events", "SOPs", "MACs", "firing rate", "energy (pJ)"):
        table.add_column(col, justify="left" if col in ("layer", "kind") else "right")
    for layer in trace.layers:
        rate = "" if layer.firing_rate is None else f"{layer.firing_rate:.3f}"
        table.add_row(layer.name, layer.kind, f"{layer.in_events:,}", f"{layer.sops:,}", f"{layer.macs:,}", rate,
                      f"{layer.energy_pj:,.1f}")
    t = result["totals"]
    table.add_row("total", "", f"{t['in_events']:,}", f"{t['sops']:,}", f"{t['macs']:,}", "", f"{t['energy_pj']:,.1f}")
    out().print(table)
    return 0
