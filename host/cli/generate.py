"""``spikeforge generate``: the whole accelerator for a quantized model (Verilog, program, weight
images, manifest), or one hardware block's Verilog and a JSON of its ports for integration in
other designs (``--block NAME [--lanes P] [--set KEY=VALUE ...]``; ``--list`` names the blocks)."""

from __future__ import annotations

import json
from pathlib import Path

from rich.table import Table

from .argtypes import count
from .common import UsageError, err, kv_table, out, qmodel_or_embedded
from .rtl import add_capacity_arguments, capacities, compile_for

HELP = "write the accelerator (QMODEL) or one block's Verilog and files"


def add_arguments(parser) -> None:
    parser.add_argument("qmodel", nargs="?", help="quantized model (.sfq): generate the whole accelerator, program, "
                                                  "weight image and manifest for it")
    parser.add_argument("--block", help="block name (see --list)")
    parser.add_argument("--dense", action="store_true", help="the dense baseline (event_driven=False)")
    add_capacity_arguments(parser)
    parser.add_argument("--lanes", type=count, help="P, lanes processed per cycle")
    parser.add_argument("--set", action="append", metavar="KEY=VALUE",
                        help="any other block parameter, e.g. --set acc_bits=20 (repeatable)")
    parser.add_argument("--out", type=Path, help="folder for <block>.v and <block>.json")
    parser.add_argument("--synth", action="store_true", help="also synthesise for ECP5 with Yosys and report cells")
    parser.add_argument("--list", action="store_true", help="list the blocks and their parameters")
    parser.add_argument("--json", action="store_true")


def run(args) -> int:
    if args.list:
        return _list_blocks()
    if args.qmodel is not None:
        if args.block:
            raise UsageError("generate takes either QMODEL (the whole accelerator) or --block NAME, not both")
        return _accelerator(args)
    if not args.block or not args.out:
        raise UsageError("generate needs QMODEL or --block NAME, and --out DIR (or --list)")
    return _block(args)


def _list_blocks() -> int:
    from spikeforge.hdl import BLOCKS, block_parameters

    table = Table(title="hardware blocks (spikeforge generate --block NAME)")
    table.add_column("block")
    table.add_column("parameters (defaults)")
    for name in BLOCKS:
        table.add_row(name, ", ".join(f"{k}={v}" for k, v in block_parameters(name).items()))
    out().print(table)
    return 0


def block_params(block: str, lanes: int | None, settings: list[str]) -> dict[str, int]:
    """The parameters ``--lanes`` and each ``--set KEY=VALUE`` give ``block`` (an on/off parameter
    takes 0, 1, true or false)."""
    from spikeforge.hdl import block_parameters

    defaults = block_parameters(block)
    params = {}
    if lanes is not None:
        params["lanes"] = lanes
    for item in settings:
        key, sep, value = item.partition("=")
        if not sep:
            raise UsageError(f"--set {item!r}: expected KEY=VALUE, e.g. --set acc_bits=20")
        name = key.strip().replace("-", "_")
        if isinstance(defaults.get(name), bool):   # an on/off parameter (dense): 0/1, true/false
            flag = {"0": False, "1": True, "false": False, "true": True}.get(value.strip().lower())
            if flag is None:
                raise UsageError(f"--set {item!r}: {key} is on/off: expected 0, 1, true or false, got {value!r}")
            params[name] = flag
            continue
        try:
            params[name] = int(value)
        except ValueError:
            raise UsageError(f"--set {item!r}: {key} must be an integer, got {value!r}") from None
    return params


def _block(args) -> int:
    from spikeforge.hdl import BLOCKS, block_parameters
    from spikeforge.toolchain.export import generate_block, synthesize
    from spikeforge.common.files import check_output_folder

    if args.block not in BLOCKS:
        raise UsageError(f"unknown block {args.block!r}; blocks: {', '.join(BLOCKS)}")
    params = block_params(args.block, args.lanes, args.set or [])
    check_output_folder(args.out)
    vpath, jpath = generate_block(args.block, params, args.out)
    result = {"block": args.block, "verilog": str(vpath), "ports": str(jpath),
              "parameters": block_parameters(args.block) | params}
    if args.synth:
        result["ecp5_cells"] = synthesize(args.block, params)
    if args.json:
        print(json.dumps(result))
        return 0
    rows = [("Verilog", str(vpath)), ("ports (JSON)", str(jpath))]
    rows += [(k, str(v)) for k, v in result["parameters"].items()]
    rows += [(f"ECP5 {k}", f"{v:,}") for k, v in result.get("ecp5_cells", {}).items()]
    out().print(kv_table(f"generated block {args.block}", rows))
    return 0


def _accelerator(args) -> int:
    from spikeforge.firmware.compiler import save_compiled
    from spikeforge.hdl.accelerator import Accelerator
    from spikeforge.toolchain.export import verilog_text
    from spikeforge.common.files import check_output_folder

    if not args.out:
        raise UsageError("generate QMODEL needs --out DIR")
    check_output_folder(args.out)
    path, qm = qmodel_or_embedded(args.qmodel)
    compiled = compile_for(qm, args.lanes, args.dense, capacities(args))
    err.print(f"generating the accelerator Verilog for {path.name} (P = {compiled.hardware.lanes}) ...")
    verilog = verilog_text(Accelerator(compiled.hardware), "accelerator").encode()
    files = save_compiled(compiled, args.out, extra={"accelerator.v": verilog})   # the whole folder or nothing
    vpath = files.pop("accelerator.v")
    result = {"model": str(path), "verilog": str(vpath), **{k: str(v) for k, v in files.items()},
              "hardware": compiled.hardware.as_dict(), "hardware_hash": compiled.manifest["hardware_hash"],
              "capacities_used": compiled.manifest["capacities_used"]}
    if args.synth:
        from spikeforge.toolchain.export import synthesize_component

        err.print("synthesising for ECP5 with Yosys (about a minute) ...")
        result["ecp5_cells"] = synthesize_component(Accelerator(compiled.hardware), "accelerator")
    if args.json:
        print(json.dumps(result))
        return 0
    rows = [("Verilog", str(vpath))] + [(k, str(v)) for k, v in files.items()]
    rows += [("hardware hash", result["hardware_hash"][:16])]
    rows += [(k, f"{v:,} of {getattr(compiled.hardware, k):,}") for k, v in result["capacities_used"].items()]
    rows += [(f"ECP5 {k}", f"{v:,}") for k, v in result.get("ecp5_cells", {}).items() if not k.startswith("$")]
    out().print(kv_table(f"accelerator for {path.name}", rows))
    return 0
