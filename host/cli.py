"""The ``spikeforge`` command line.

Subcommands (``spikeforge COMMAND --help`` for options):

* ``demo``: evaluate the embedded trained model on the digits test split and print a table;
* ``info CONFIG``: parameter count, tokens and time steps of a named config;
* ``train``: train a config on the digits training split, with a progress display;
* ``eval [MODEL]``: accuracy on the test split of a checkpoint (``--backend float``, default: the
  embedded model) or of a quantized model (``--backend golden``);
* ``quantize [CKPT] --w-bits 8 --out QMODEL``: integer golden model, float vs integer accuracy;
* ``trace QMODEL [--image I]``: exact per-layer events, SOPs, firing rates and energy of one image;
* ``generate --block NAME [--lanes P] [--set KEY=VALUE ...] --out DIR``: one hardware block's
  Verilog and a JSON of its ports, for integration in other designs (``--list`` names the blocks).

Results go to stdout (``--json`` for machine-readable output); progress and
errors go to stderr. A bad input ends with ``error: ...`` and exit status 2.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

from rich.console import Console
from rich.table import Table

__all__ = ["main", "build_parser"]

_err = Console(stderr=True)


class UsageError(Exception):
    """A problem with the user's input; printed as ``error: ...`` without a traceback."""


def _out() -> Console:
    console = Console(highlight=False)
    if not console.is_terminal:  # pipes and CI logs: wide enough that tables are not truncated
        console = Console(highlight=False, width=140)
    return console


def _kv_table(title: str, rows: list[tuple[str, str]], key_header: str = "") -> Table:
    """A two-column (name, right-aligned value) table."""
    table = Table(title=title)
    table.add_column(key_header)
    table.add_column("value", justify="right")
    for key, value in rows:
        table.add_row(key, value)
    return table


def _load_model(model: str | None, config: str | None):
    from spikeforge.model.checkpoint import EMBEDDED_CHECKPOINT, MissingConfigError, load_checkpoint

    path = Path(model) if model else EMBEDDED_CHECKPOINT
    try:
        return path, load_checkpoint(path, config)
    except MissingConfigError:
        raise UsageError(f"{path}: the file carries no model config; name one with --config "
                         f"(e.g. --config digits-tiny)") from None


# ---------------------------------------------------------------------------------------- info


def cmd_info(args) -> int:
    from spikeforge.model.configs import describe

    info = {"config": args.config, **describe(args.config)}
    if args.json:
        print(json.dumps(info))
        return 0
    rows = [(key, f"{value:,}" if isinstance(value, int) else str(value)) for key, value in info.items()]
    _out().print(_kv_table(f"config {args.config}", rows, "field"))
    return 0


# ---------------------------------------------------------------------------------------- train


class _EpochProgress:
    """Progress display for training: a rich bar on a terminal, one line per epoch otherwise."""

    def __init__(self, epochs: int, label: str):
        self.epochs = epochs
        self.label = label
        self.bar = None
        if _err.is_terminal:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self.bar = Progress(
                TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                TextColumn("{task.fields[status]}"), TimeElapsedColumn(), console=_err,
            )
            self.task = self.bar.add_task(label, total=epochs, status="")

    def __enter__(self):
        if self.bar:
            self.bar.__enter__()
        return self

    def __exit__(self, *exc):
        if self.bar:
            self.bar.__exit__(*exc)

    def __call__(self, rec: dict) -> None:
        status = f"loss {rec['loss']:.3f}  train {rec['train_accuracy']:.3f}  test {rec['test_accuracy']:.3f}"
        if self.bar:
            self.bar.update(self.task, advance=1, status=status)
        else:
            _err.print(f"{self.label}: epoch {rec['epoch']}/{self.epochs}  {status}  {rec['seconds']:.0f}s")


def cmd_train(args) -> int:
    from spikeforge.model.checkpoint import save_checkpoint
    from spikeforge.model.configs import get_config
    from spikeforge.model.train import TrainConfig, train

    get_config(args.config)  # unknown names fail before any work
    tc = TrainConfig(epochs=args.epochs, seed=args.seed, lr=args.lr, batch_size=args.batch_size)
    with _EpochProgress(tc.epochs, f"train {args.config}") as progress:
        result = train(args.config, tc, on_epoch=progress)
    meta = {
        "trained_on": "sklearn digits, fixed split (spikeforge.model.data)",
        "test_accuracy": result.test_accuracy,
        "train": dataclasses.asdict(tc),
        "seconds": result.seconds,
    }
    save_checkpoint(result.model, args.out, result.config, meta)
    summary = {"config": args.config, "accuracy": result.test_accuracy, "seconds": round(result.seconds, 1),
               "out": str(args.out)}
    if args.json:
        print(json.dumps(summary))
    else:
        _out().print(f"test accuracy {result.test_accuracy:.4f} after {tc.epochs} epochs "
                     f"({result.seconds:.0f} s); wrote {args.out}")
    return 0


# ---------------------------------------------------------------------------------------- eval


def _is_qmodel(path: Path) -> bool:
    from spikeforge.model.qfile import MAGIC

    with open(path, "rb") as f:
        return f.read(len(MAGIC)) == MAGIC


def _load_qmodel(path: Path):
    from spikeforge.model.qfile import load_qmodel

    if not path.is_file():
        raise UsageError(f"{path}: no such quantized model file")
    if not _is_qmodel(path):
        raise UsageError(f"{path}: not a quantized model (.sfq); make one with `spikeforge quantize`")
    return load_qmodel(path)


def cmd_eval(args) -> int:
    from spikeforge.model import golden
    from spikeforge.model.data import load_digits_split
    from spikeforge.model.train import evaluate

    data = load_digits_split()
    if args.backend == "float":
        path, model = _load_model(args.model, args.config)
        acc = evaluate(model, data.test_pixels, data.test_labels)
    elif args.backend == "golden":
        if args.model is None:
            raise UsageError("--backend golden needs a quantized model file (QMODEL from `spikeforge quantize`)")
        path = Path(args.model)
        qm = _load_qmodel(path)
        pred = golden.forward(qm, data.test_pixels).argmax(1)
        acc = (pred == data.test_labels).double().mean().item()
    else:
        raise UsageError(f"backend {args.backend!r} is not available yet (available: float, golden)")
    result = {"accuracy": acc, "n": len(data.test_labels)}
    if args.json:
        print(json.dumps(result))
    else:
        _out().print(f"{path}: accuracy {acc:.4f} on {result['n']} digits test images (backend {args.backend})")
    return 0


# ---------------------------------------------------------------------------------------- quantize


def cmd_quantize(args) -> int:
    from spikeforge.model import golden
    from spikeforge.model.data import PIXEL_MAX, load_digits_split
    from spikeforge.model.qfile import save_qmodel
    from spikeforge.model.quantize import WIDTH_FIELDS, quantize
    from spikeforge.model.train import predict

    path, model = _load_model(args.ckpt, args.config)
    widths = {f: getattr(args, f) for f in WIDTH_FIELDS if getattr(args, f) is not None}
    qm = quantize(model, w_bits=args.w_bits, pixel_max=PIXEL_MAX, widths=widths)
    data = load_digits_split()
    float_pred = predict(model, data.test_pixels).argmax(1)
    int_pred = golden.forward(qm, data.test_pixels).argmax(1)
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
    _out().print(_kv_table(f"quantized {path.name} to {args.w_bits}-bit weights -> {args.out}", rows))
    return 0


# ---------------------------------------------------------------------------------------- trace


def cmd_trace(args) -> int:
    from spikeforge.model import golden
    from spikeforge.model.data import load_digits_split

    qm = _load_qmodel(Path(args.qmodel))
    data = load_digits_split()
    if not 0 <= args.image < len(data.test_labels):
        raise UsageError(f"--image {args.image} is out of range: the test split has images 0..{len(data.test_labels) - 1}")
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
    _out().print(table)
    return 0


# ---------------------------------------------------------------------------------------- generate


def _block_params(args) -> dict[str, int]:
    params = {}
    if args.lanes is not None:
        params["lanes"] = args.lanes
    for item in args.set or []:
        key, sep, value = item.partition("=")
        if not sep:
            raise UsageError(f"--set {item!r}: expected KEY=VALUE, e.g. --set acc_bits=20")
        try:
            params[key.strip().replace("-", "_")] = int(value)
        except ValueError:
            raise UsageError(f"--set {item!r}: {key} must be an integer, got {value!r}") from None
    return params


def cmd_generate(args) -> int:
    from spikeforge.hdl import BLOCKS, block_parameters
    from spikeforge.hdl.export import generate_block, synthesize

    if args.list:
        table = Table(title="hardware blocks (spikeforge generate --block NAME)")
        table.add_column("block")
        table.add_column("parameters (defaults)")
        for name in BLOCKS:
            table.add_row(name, ", ".join(f"{k}={v}" for k, v in block_parameters(name).items()))
        _out().print(table)
        return 0
    if not args.block or not args.out:
        raise UsageError("generate needs --block NAME and --out DIR (or --list)")
    if args.block not in BLOCKS:
        raise UsageError(f"unknown block {args.block!r}; blocks: {', '.join(BLOCKS)}")
    params = _block_params(args)
    vpath, jpath = generate_block(args.block, params, args.out)
    result = {"block": args.block, "verilog": str(vpath), "ports": str(jpath), "parameters": block_parameters(args.block) | params}
    if args.synth:
        result["ecp5_cells"] = synthesize(args.block, params)
    if args.json:
        print(json.dumps(result))
        return 0
    rows = [("Verilog", str(vpath)), ("ports (JSON)", str(jpath))]
    rows += [(k, str(v)) for k, v in result["parameters"].items()]
    rows += [(f"ECP5 {k}", f"{v:,}") for k, v in result.get("ecp5_cells", {}).items()]
    _out().print(_kv_table(f"generated block {args.block}", rows))
    return 0


# ---------------------------------------------------------------------------------------- demo


def cmd_demo(args) -> int:
    from spikeforge.model import golden
    from spikeforge.model.checkpoint import EMBEDDED_CONFIG
    from spikeforge.model.configs import describe
    from spikeforge.model.data import PIXEL_MAX, load_digits_split
    from spikeforge.model.quantize import quantize
    from spikeforge.model.train import predict

    path, model = _load_model(None, None)
    data = load_digits_split()
    pred = predict(model, data.test_pixels).argmax(1)
    correct = pred == data.test_labels
    info = describe(EMBEDDED_CONFIG)

    qm = quantize(model, w_bits=8, pixel_max=PIXEL_MAX)
    int_pred = golden.forward(qm, data.test_pixels).argmax(1)
    out = _out()
    out.print(_kv_table(f"SpikeForge demo: embedded {EMBEDDED_CONFIG} on the digits test split", [
        ("checkpoint", path.name),
        ("parameters", f"{info['params']:,}"),
        ("embed dims / blocks", f"{info['embed_dims']} / {info['depths']}"),
        ("tokens x time steps", f"{info['tokens']} x {info['T']}"),
        ("test images", str(len(correct))),
        ("accuracy (float model)", f"{correct.float().mean().item():.4f}"),
        ("accuracy (integer golden, 8-bit)", f"{(int_pred == data.test_labels).float().mean().item():.4f}"),
        ("float/integer agreement", f"{(int_pred == pred).float().mean().item():.4f}"),
    ]))

    per_class = Table(title="per-class accuracy")
    per_class.add_column("digit", justify="right")
    per_class.add_column("images", justify="right")
    per_class.add_column("correct", justify="right")
    for digit in range(model.num_classes):
        sel = data.test_labels == digit
        per_class.add_row(str(digit), str(int(sel.sum())), str(int(correct[sel].sum())))
    out.print(per_class)
    if args.json:
        print(json.dumps({"accuracy": correct.float().mean().item(), "n": len(correct),
                          "errors": int((~correct).sum()), **{k: info[k] for k in ("params", "tokens", "T")}}))
    return 0


# ---------------------------------------------------------------------------------------- main


def build_parser() -> argparse.ArgumentParser:
    from spikeforge import __version__

    p = argparse.ArgumentParser(prog="spikeforge", description="FPGA accelerators for Spike-driven Transformers.")
    p.add_argument("--version", action="version", version=f"spikeforge {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    s = sub.add_parser("demo", help="evaluate the embedded model (float and integer) on the digits test split")
    s.add_argument("--json", action="store_true", help="also print a JSON summary")
    s.set_defaults(func=cmd_demo)

    s = sub.add_parser("info", help="parameter count, tokens and T of a named config")
    s.add_argument("config", help="named config, e.g. imagenet-8-384 or digits-tiny")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_info)

    s = sub.add_parser("train", help="train on the digits training split")
    s.add_argument("--config", default="digits-tiny")
    s.add_argument("--epochs", type=int, default=60)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--lr", type=float, default=5e-3)
    s.add_argument("--batch-size", type=int, default=32)
    s.add_argument("--out", type=Path, required=True, help="checkpoint file to write")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_train)

    s = sub.add_parser("quantize", help="quantize a checkpoint into the integer golden model (.sfq)")
    s.add_argument("ckpt", nargs="?", help="checkpoint (default: the embedded model)")
    s.add_argument("--config", help="named config, needed for a plain state dict or a timm checkpoint")
    s.add_argument("--w-bits", type=int, default=8, help="weight width in bits (default 8)")
    for f in ("acc_bits", "v_bits", "u_bits", "gap_bits", "logit_bits"):
        s.add_argument(f"--{f.replace('_', '-')}", dest=f, type=int,
                       help=f"requested {f} (default: the width the analysis needs; too narrow is refused)")
    s.add_argument("--out", type=Path, required=True, help="quantized model file to write (.sfq)")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_quantize)

    s = sub.add_parser("trace", help="per-layer events, SOPs, firing rates and energy of one test image")
    s.add_argument("qmodel", help="quantized model file (.sfq)")
    s.add_argument("--image", type=int, default=0, help="index in the digits test split (default 0)")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_trace)

    s = sub.add_parser("eval", help="accuracy on the digits test split")
    s.add_argument("model", nargs="?", help="checkpoint (float; default: the embedded model) or QMODEL (golden)")
    s.add_argument("--config", help="named config, needed for a plain state dict or a timm checkpoint")
    s.add_argument("--backend", default="float",
                   help="float (the PyTorch model) or golden (the integer model of a QMODEL)")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_eval)

    s = sub.add_parser("generate", help="write one hardware block's Verilog and a JSON of its ports")
    s.add_argument("--block", help="block name (see --list)")
    s.add_argument("--lanes", type=int, help="P, lanes processed per cycle")
    s.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="any other block parameter, e.g. --set acc_bits=20 (repeatable)")
    s.add_argument("--out", type=Path, help="folder for <block>.v and <block>.json")
    s.add_argument("--synth", action="store_true", help="also synthesise for ECP5 with Yosys and report cells")
    s.add_argument("--list", action="store_true", help="list the blocks and their parameters")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_generate)
    return p


def main(argv: list[str] | None = None) -> int:
    from spikeforge.model.checkpoint import CheckpointError

    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (UsageError, CheckpointError, ValueError, OverflowError) as exc:
        _err.print(f"error: {exc}", markup=False, highlight=False, soft_wrap=True)
        return 2
    except KeyError as exc:  # unknown config names
        _err.print(f"error: {exc.args[0]}", markup=False, highlight=False, soft_wrap=True)
        return 2


if __name__ == "__main__":
    sys.exit(main())
