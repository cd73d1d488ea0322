"""``spikeforge eval [MODEL]``: accuracy on the digits test split of a checkpoint (``--backend
float``, default: the embedded model), of a quantized model (``--backend golden``) or of a
quantized model on the accelerator RTL (``--backend rtl``, simulated)."""

from __future__ import annotations

import json
from pathlib import Path

from .argtypes import count
from .common import UsageError, load_model, load_qmodel, out, require_v1
from .rtl import add_rtl_arguments, capacities, sim_report

HELP = "accuracy on the digits test split"
BACKENDS = ("float", "golden", "rtl")


def add_arguments(parser) -> None:
    parser.add_argument("model", nargs="?", help="checkpoint (float; default: the embedded model) or QMODEL (golden)")
    parser.add_argument("--config", help="named config, needed for a plain state dict or a timm checkpoint; "
                                         "without MODEL, the config's embedded checkpoint (digits-tiny, digits-meta)")
    parser.add_argument("--backend", default="float",
                        help="float (the PyTorch model), golden (the integer model of a QMODEL) or rtl "
                             "(QMODEL on the accelerator RTL, simulated)")
    parser.add_argument("--images", type=count, default=None, help="rtl backend: test images (default: all)")
    add_rtl_arguments(parser)
    parser.add_argument("--json", action="store_true")


def _qmodel_path(args) -> Path:
    if args.model is None:
        raise UsageError(f"--backend {args.backend} needs a quantized model file (QMODEL from `spikeforge quantize`)")
    return Path(args.model)


def run(args) -> int:
    from spikeforge.model import golden
    from spikeforge.model.data import load_digits_split
    from spikeforge.model.train import evaluate

    if args.backend not in BACKENDS:
        raise UsageError(f"unknown backend {args.backend!r} (available: {', '.join(BACKENDS)})")
    if args.backend == "rtl":
        require_v1("--backend rtl", args.config)
    if args.backend == "rtl":
        return _run_rtl(args)
    data = load_digits_split()
    if args.backend == "float":
        path, model = load_model(args.model, args.config)
        acc = evaluate(model, data.test_pixels, data.test_labels)
    else:
        path = _qmodel_path(args)
        qm = load_qmodel(path)
        pred = golden.forward_batched(qm, data.test_pixels).argmax(1)
        acc = (pred == data.test_labels).double().mean().item()
    result = {"accuracy": acc, "n": len(data.test_labels)}
    if args.json:
        print(json.dumps(result))
    else:
        out().print(f"{path}: accuracy {acc:.4f} on {result['n']} digits test images (backend {args.backend})")
    return 0


def _run_rtl(args) -> int:
    path = _qmodel_path(args)
    report = sim_report(load_qmodel(path), args.images, args.simulator, args.lanes, args.dense, capacities(args))
    if args.json:
        print(json.dumps({"accuracy": report.accuracy, "n": report.images, "mismatches": report.mismatches}))
    else:
        out().print(f"{path}: accuracy {report.accuracy:.4f} on {report.images} digits test images (backend rtl, "
                    f"{report.mismatches} logit mismatches against the golden model)")
    return 1 if report.mismatches else 0
