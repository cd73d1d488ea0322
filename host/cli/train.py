"""``spikeforge train``: train a config on the digits training split, with a progress display."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from .argtypes import count, natural, positive_float
from .common import err, out

HELP = "train on the digits training split"


def add_arguments(parser) -> None:
    parser.add_argument("--config", default="digits-tiny")
    parser.add_argument("--epochs", type=count, default=60)
    parser.add_argument("--seed", type=natural, default=0)
    parser.add_argument("--lr", type=positive_float, default=5e-3)
    parser.add_argument("--batch-size", type=count, default=32)
    parser.add_argument("--out", type=Path, required=True, help="checkpoint file to write")
    parser.add_argument("--json", action="store_true")


class EpochProgress:
    """Progress display for training: a rich bar on a terminal, one line per epoch otherwise."""

    def __init__(self, epochs: int, label: str):
        self.epochs = epochs
        self.label = label
        self.bar = None
        if err.is_terminal:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self.bar = Progress(
                TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                TextColumn("{task.fields[status]}"), TimeElapsedColumn(), console=err,
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
            err.print(f"{self.label}: epoch {rec['epoch']}/{self.epochs}  {status}  {rec['seconds']:.0f}s")


def run(args) -> int:
    from spikeforge.model.checkpoint import save_checkpoint
    from spikeforge.model.configs import get_config
    from spikeforge.common.files import check_output_file
    from spikeforge.model.train import TrainConfig, train

    get_config(args.config)  # unknown names fail before any work
    check_output_file(args.out)
    tc = TrainConfig(epochs=args.epochs, seed=args.seed, lr=args.lr, batch_size=args.batch_size)
    with EpochProgress(tc.epochs, f"train {args.config}") as progress:
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
        out().print(f"test accuracy {result.test_accuracy:.4f} after {tc.epochs} epochs "
                    f"({result.seconds:.0f} s); wrote {args.out}")
    return 0
