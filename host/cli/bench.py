"""``spikeforge bench [--quick] --out DIR``: the performance report (``report.md``, ``report.json``,
PNG figures); :mod:`spikeforge.benchmarks.bench` declares its options and runs it."""

from __future__ import annotations

from .common import UsageError

HELP = "the performance report: scaling, utilisation, attention, lanes, CPU, simulators"


def add_arguments(parser) -> None:
    from spikeforge.benchmarks.bench import add_arguments as bench_arguments

    bench_arguments(parser)


def run(args) -> int:
    from spikeforge.benchmarks.bench import BenchError, run_from_args

    try:
        return run_from_args(args)
    except BenchError as exc:
        raise UsageError(str(exc)) from None
