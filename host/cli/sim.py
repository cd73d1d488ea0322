"""``spikeforge sim [QMODEL]``: digits test images through the whole accelerator RTL, compared with
the golden model; cycles against the event-driven bound, utilisation, a per-layer table."""

from __future__ import annotations

import json

from .argtypes import count
from .common import qmodel_or_embedded
from .rtl import add_rtl_arguments, capacities, print_sim, sim_report

HELP = "run digits test images through the whole accelerator RTL, compare with golden"


def add_arguments(parser) -> None:
    parser.add_argument("qmodel", nargs="?", help="quantized model (.sfq; default: the embedded model at 8 bits)")
    add_rtl_arguments(parser)
    parser.add_argument("--images", type=count, default=8, help="test images to simulate (default 8)")
    parser.add_argument("--json", action="store_true")


def run(args) -> int:
    path, qm = qmodel_or_embedded(args.qmodel)
    report = sim_report(qm, args.images, args.simulator, args.lanes, args.dense, capacities(args))
    if args.json:
        print(json.dumps(report.as_dict()))
    else:
        print_sim(report, f"accelerator RTL vs golden model: {path.name}")
    return 1 if report.mismatches else 0
