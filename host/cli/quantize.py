"""``spikeforge quantize [CKPT] --w-bits 8 --out QMODEL``: the integer golden model, float vs integer accuracy."""

from __future__ import annotations

import json
from pathlib import Path

from .argtypes import count
from .common import kv_table, load_model, out

HELP = "quantize a checkpoint into the integer golden model (.sfq)"


def add_arguments(parser) -> None:
    parser.add_argument("ckpt", nargs="?", help="checkpoint (default: the embedded model)")
    parser.add_argument("--config", help="named config, needed for a plain state dict or a timm checkpoint")
    parser.add_argument("--w-bits", type=int, default=8, help="weight width in bits (default 8)")
    for f in ("acc_bits", "v_bits", "u_bits", "gap_bits", "logit_bits"):
        parser.add_argument(f"--{f.replace('_', '-')}", dest=f, type=count,
                            help=f"requested {f} (default: the width the analysis needs; too narrow is refused)")
    parser.add_argument("--out", type=Path, required=True, help="quantized model file to write (.sfq)")
    parser.add_argument("--json", action="store_true")


def run(args) -> int:
    from spikeforge.model import golden
    from spikeforge.model.data import PIXEL_MAX, load_digits_split
    from spikeforge.common.files import check_output_file
    from spikeforge.model.qfile import save_qmodel
    from spikeforge.model.quantize import WIDTH_FIELDS, quantize
    from spikeforge.model.train import predict

    check_output_file(args.out)
    path, model = load_model(args.ckpt, args.config)
    widths = {f: getattr(args, f) for f in WIDTH_FIELDS if getattr(args, f) is not None}
    qm = quantize(model, w_bits=args.w_bits, pixel_max=PIXEL_MAX, widths=widths)
    data = load_digits_split()
    float_pred = predict(model, data.test_pixels).argmax(1)
    int_pred = golden.forward_batched(qm, data.test_pixels).argmax(1)
    save_qmodel(qm, args.out)
    result = {
        "checkpoint": str(path), "out": str(args.out), "w_bits": args.w_bits,
        "float_accuracy": (float_pred == data.test_labels).double().mean().item(),
        "integer_accuracy": (int_pred == data.test_labels).double().mean().item(),
        "agreement": (float_pred == int_pred).double().mean().item(),
        "n": len(data.test_labels), "widths": qm.widths,
    }
    if args.json:
        print(json.dumps(result))
        return 0
    rows = [("float accuracy", f"{result['float_accuracy']:.4f}"),
            ("integer (golden) accuracy", f"{result['integer_accuracy']:.4f}"),
            ("float/integer agreement", f"{result['agreement']:.4f}")]
    rows += [(f, str(bits)) for f, bits in qm.widths.items()]
    out().print(kv_table(f"quantized {path.name} to {args.w_bits}-bit weights -> {args.out}", rows))
    return 0
