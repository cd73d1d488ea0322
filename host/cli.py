"""The ``spikeforge`` command line.

Subcommands (``spikeforge COMMAND --help`` for options):

* ``demo``: evaluate the embedded trained model on the digits test split and print a table;
* ``info CONFIG``: parameter count, tokens and time steps of a named config;
* ``train``: train a config on the digits training split, with a progress display;
* ``eval [MODEL]``: accuracy of a checkpoint (default: the embedded model) on the test split.

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
    return Console(highlight=False)


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
    table = Table(title=f"config {args.config}")
    table.add_column("field")
    table.add_column("value", justify="right")
    for key, value in info.items():
        table.add_row(key, f"{value:,}" if isinstance(value, int) else str(value))
    _out().print(table)
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


def cmd_eval(args) -> int:
    from spikeforge.model.data import load_digits_split
    from spikeforge.model.train import evaluate

    if args.backend != "float":
        raise UsageError(f"backend {args.backend!r} is not available yet (available: float)")
    path, model = _load_model(args.model, args.config)
    data = load_digits_split()
    acc = evaluate(model, data.test_pixels, data.test_labels)
    result = {"accuracy": acc, "n": len(data.test_labels)}
    if args.json:
        print(json.dumps(result))
    else:
        _out().print(f"{path}: accuracy {acc:.4f} on {result['n']} digits test images (backend float)")
    return 0


# ---------------------------------------------------------------------------------------- demo


def cmd_demo(args) -> int:
    from spikeforge.model.checkpoint import EMBEDDED_CONFIG
    from spikeforge.model.configs import describe
    from spikeforge.model.data import load_digits_split
    from spikeforge.model.train import predict

    path, model = _load_model(None, None)
    data = load_digits_split()
    pred = predict(model, data.test_pixels).argmax(1)
    correct = pred == data.test_labels
    info = describe(EMBEDDED_CONFIG)

    out = _out()
    table = Table(title=f"SpikeForge demo: embedded {EMBEDDED_CONFIG} on the digits test split")
    table.add_column("")
    table.add_column("value", justify="right")
    table.add_row("checkpoint", path.name)
    table.add_row("parameters", f"{info['params']:,}")
    table.add_row("embed dims / blocks", f"{info['embed_dims']} / {info['depths']}")
    table.add_row("tokens x time steps", f"{info['tokens']} x {info['T']}")
    table.add_row("test images", str(len(correct)))
    table.add_row("accuracy (float model)", f"{correct.float().mean().item():.4f}")
    out.print(table)

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

    s = sub.add_parser("demo", help="evaluate the embedded model on the digits test split")
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

    s = sub.add_parser("eval", help="accuracy on the digits test split")
    s.add_argument("model", nargs="?", help="checkpoint (default: the embedded model)")
    s.add_argument("--config", help="named config, needed for a plain state dict or a timm checkpoint")
    s.add_argument("--backend", default="float", help="float (golden and rtl arrive with later issues)")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_eval)
    return p


def main(argv: list[str] | None = None) -> int:
    from spikeforge.model.checkpoint import CheckpointError

    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (UsageError, CheckpointError, ValueError) as exc:
        _err.print(f"error: {exc}", markup=False, highlight=False, soft_wrap=True)
        return 2
    except KeyError as exc:  # unknown config names
        _err.print(f"error: {exc.args[0]}", markup=False, highlight=False, soft_wrap=True)
        return 2


if __name__ == "__main__":
    sys.exit(main())
