"""``spikeforge info CONFIG``: parameter count, tokens and time steps of a named config."""

from __future__ import annotations

import json

from .common import kv_table, out

HELP = "parameter count, tokens and T of a named config"


def add_arguments(parser) -> None:
    parser.add_argument("config", help="named config, e.g. imagenet-8-384, digits-tiny or metaspikformer-8-512")
    parser.add_argument("--json", action="store_true")


def run(args) -> int:
    from spikeforge.model.configs import describe

    info = {"config": args.config, **describe(args.config)}
    if args.json:
        print(json.dumps(info))
        return 0
    rows = [(key, f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) else str(value))
            for key, value in info.items()]
    out().print(kv_table(f"config {args.config}", rows, "field"))
    return 0
