"""The ``spikeforge`` command line.

Subcommands (``spikeforge COMMAND --help`` for options), one module each in this package, each
declaring ``HELP``, ``add_arguments(parser)`` and ``run(args) -> int``:

* ``demo``: evaluate the embedded trained model on the digits test split and print a table;
* ``info CONFIG``: parameter count, tokens and time steps of a named config;
* ``train``: train a config on the digits training split, with a progress display;
* ``eval [MODEL]``: accuracy on the test split of a checkpoint (``--backend float``, default: the
  embedded model), of a quantized model (``--backend golden``) or on the accelerator RTL (``rtl``);
* ``quantize [CKPT] --w-bits 8 --out QMODEL``: integer golden model, float vs integer accuracy;
* ``trace QMODEL [--image I]``: exact per-layer events, SOPs, firing rates and energy of one image;
* ``generate --block NAME [--lanes P] [--set KEY=VALUE ...] --out DIR``: one hardware block's
  Verilog and a JSON of its ports, for integration in other designs (``--list`` names the blocks);
  ``generate QMODEL --out DIR``: the whole accelerator, its program and weight images;
* ``build --board NAME --out DIR``: the accelerator for a board, with its resource and timing report;
* ``disasm PROGRAM``: a compiled program as a table of steps;
* ``sim [QMODEL]``: test images on the accelerator RTL against the golden model;
* ``run --port URL``: a model loaded and run on a device (serial, PCIe, ``sim://``);
* ``bench [--quick] --out DIR``: the performance report (``report.md``, ``report.json``, PNG figures).

Results go to stdout (``--json`` for machine-readable output); progress and
errors go to stderr. A bad input ends with ``error: ...`` and exit status 2.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from .common import UsageError, err

__all__ = ["main", "build_parser", "COMMANDS", "UsageError"]

#: The subcommands, in the order ``spikeforge --help`` lists them (each a module of this package).
COMMANDS = ("demo", "info", "train", "quantize", "trace", "eval", "generate", "build", "disasm", "sim", "run", "bench")


def build_parser() -> argparse.ArgumentParser:
    from spikeforge import __version__

    p = argparse.ArgumentParser(prog="spikeforge", description="FPGA accelerators for Spike-driven Transformers.")
    p.add_argument("--version", action="version", version=f"spikeforge {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        command = importlib.import_module(f"{__name__}.{name}")
        s = sub.add_parser(name, help=command.HELP)
        command.add_arguments(s)
        s.set_defaults(func=command.run)
    return p


def _error(message: str) -> int:
    err.print(f"error: {message}", markup=False, highlight=False, soft_wrap=True)
    return 2


def main(argv: list[str] | None = None) -> int:
    try:
        from spikeforge.toolchain.build import BoardBuildError
        from spikeforge.toolchain.export import SynthesisError
        from spikeforge.host.driver import DeviceError, LinkError
        from spikeforge.host.transport import TransportError
        from spikeforge.model.checkpoint import CheckpointError
        from spikeforge.sim.runner import BuildError

        try:
            args = build_parser().parse_args(argv)
        except SystemExit as exc:   # --help, --version, or a usage error argparse has printed (status 2)
            return exc.code if isinstance(exc.code, int) else 2
        try:
            status = args.func(args)
            if sys.stdout is not None:   # a closed pipe shows here, inside the handlers, not at exit
                sys.stdout.flush()
            return status
        except (UsageError, CheckpointError, ValueError, OverflowError, SynthesisError, BuildError, TransportError,
                LinkError, DeviceError, BoardBuildError) as exc:
            return _error(str(exc))
        except KeyError as exc:  # unknown config names
            return _error(str(exc.args[0]))
        except BrokenPipeError:
            raise
        except OSError as exc:   # a file the command had to read or write (unreadable, vanished, disk full)
            where = f"{exc.filename}: " if exc.filename else ""
            return _error(f"{where}{exc.strerror or exc}")
    except KeyboardInterrupt:    # Ctrl-C: quietly, with the shell's status for SIGINT
        return 130
    except BrokenPipeError:      # `spikeforge ... | head`: the reader went away; say nothing more
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())   # so the exit's flush cannot fail again
        return 141
