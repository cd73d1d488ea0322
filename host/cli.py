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
  Verilog and a JSON of its ports, for integration in other designs (``--list`` names the blocks);
* ``bench [--quick] --out DIR``: the performance report (``report.md``, ``report.json``, PNG figures).

Results go to stdout (``--json`` for machine-readable output); progress and
errors go to stderr. A bad input ends with ``error: ...`` and exit status 2.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

__all__ = ["main", "build_parser"]

_err = Console(stderr=True)


class UsageError(Exception):
    """A problem with the user's input; printed as ``error: ...`` without a traceback."""


def _int_at_least(low: int):
    """An argparse type: an integer >= ``low`` (0 and negative values are never replaced by a default)."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be at least {low}, got {value}")
        return value
    parse.__name__ = "integer"
    return parse


def _positive_float(text: str) -> float:
    """An argparse type: a finite number > 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


_positive_float.__name__ = "number"
_count = _int_at_least(1)        # lanes, images, epochs, batch sizes, capacities, baud rates
_natural = _int_at_least(0)      # retries, seeds, indices, "0 skips it"


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
    if path.is_file() and _is_qmodel(path):
        raise UsageError(f"{path}: a quantized model (.sfq), not a float checkpoint; evaluate it with "
                         f"--backend golden (or rtl)")
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
    from spikeforge.common.files import check_output_file
    from spikeforge.model.train import TrainConfig, train

    get_config(args.config)  # unknown names fail before any work
    check_output_file(args.out)
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
    from spikeforge.common.files import not_a_file
    from spikeforge.model.qfile import load_qmodel

    if not path.is_file():
        raise UsageError(f"{path}: {not_a_file(path, 'quantized model file')}")
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
        pred = golden.forward_batched(qm, data.test_pixels).argmax(1)
        acc = (pred == data.test_labels).double().mean().item()
    elif args.backend == "rtl":
        if args.model is None:
            raise UsageError("--backend rtl needs a quantized model file (QMODEL from `spikeforge quantize`)")
        path = Path(args.model)
        report = _sim_report(_load_qmodel(path), args, args.images)
        acc = report["accuracy"]
        if args.json:
            print(json.dumps({"accuracy": acc, "n": report["images"], "mismatches": report["mismatches"]}))
        else:
            _out().print(f"{path}: accuracy {acc:.4f} on {report['images']} digits test images (backend rtl, "
                         f"{report['mismatches']} logit mismatches against the golden model)")
        return 1 if report["mismatches"] else 0
    else:
        raise UsageError(f"unknown backend {args.backend!r} (available: float, golden, rtl)")
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
    from spikeforge.common.files import check_output_file
    from spikeforge.model.train import predict

    check_output_file(args.out)
    path, model = _load_model(args.ckpt, args.config)
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
    from spikeforge.hdl import block_parameters

    defaults = block_parameters(args.block)
    params = {}
    if args.lanes is not None:
        params["lanes"] = args.lanes
    for item in args.set or []:
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


def cmd_generate(args) -> int:
    from spikeforge.hdl import BLOCKS, block_parameters
    from spikeforge.toolchain.export import generate_block, synthesize
    from spikeforge.common.files import check_output_folder

    if args.list:
        table = Table(title="hardware blocks (spikeforge generate --block NAME)")
        table.add_column("block")
        table.add_column("parameters (defaults)")
        for name in BLOCKS:
            table.add_row(name, ", ".join(f"{k}={v}" for k, v in block_parameters(name).items()))
        _out().print(table)
        return 0
    if args.qmodel is not None:
        if args.block:
            raise UsageError("generate takes either QMODEL (the whole accelerator) or --block NAME, not both")
        return _generate_accelerator(args)
    if not args.block or not args.out:
        raise UsageError("generate needs QMODEL or --block NAME, and --out DIR (or --list)")
    if args.block not in BLOCKS:
        raise UsageError(f"unknown block {args.block!r}; blocks: {', '.join(BLOCKS)}")
    params = _block_params(args)
    check_output_folder(args.out)
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


CAPACITY_FLAGS = ("max_channels", "max_embed", "max_height", "max_width", "max_steps", "max_in_channels",
                  "max_3x3_channels", "max_classes", "weight_rows", "bias_rows", "threshold_rows", "spike_rows",
                  "u_rows", "program_rows", "spike_row_words")


def _qmodel_or_embedded(qmodel: str | None):
    """A quantized model file, or (``None``) the embedded checkpoint quantized to 8-bit weights."""
    if qmodel is not None:
        return Path(qmodel), _load_qmodel(Path(qmodel))
    from spikeforge.model.checkpoint import EMBEDDED_CHECKPOINT
    from spikeforge.model.quantize import embedded_qmodel

    return EMBEDDED_CHECKPOINT, embedded_qmodel()


def _compile(qm, args):
    from spikeforge.firmware.compiler import compile_model, hardware_for

    overrides = {f: getattr(args, f) for f in CAPACITY_FLAGS if getattr(args, f, None) is not None}
    hw = hardware_for(qm, lanes=16 if args.lanes is None else args.lanes, event_driven=not args.dense, **overrides)
    return compile_model(qm, hw)


def _generate_accelerator(args) -> int:
    from spikeforge.firmware.compiler import save_compiled
    from spikeforge.hdl.accelerator import Accelerator
    from spikeforge.toolchain.export import verilog_text
    from spikeforge.common.files import check_output_folder

    if not args.out:
        raise UsageError("generate QMODEL needs --out DIR")
    check_output_folder(args.out)
    path, qm = _qmodel_or_embedded(args.qmodel)
    compiled = _compile(qm, args)
    _err.print(f"generating the accelerator Verilog for {path.name} (P = {compiled.hardware.lanes}) ...")
    verilog = verilog_text(Accelerator(compiled.hardware), "accelerator").encode()
    files = save_compiled(compiled, args.out, extra={"accelerator.v": verilog})   # the whole folder or nothing
    vpath = files.pop("accelerator.v")
    result = {"model": str(path), "verilog": str(vpath), **{k: str(v) for k, v in files.items()},
              "hardware": compiled.hardware.as_dict(), "hardware_hash": compiled.manifest["hardware_hash"],
              "capacities_used": compiled.manifest["capacities_used"]}
    if args.synth:
        from spikeforge.toolchain.export import synthesize_component

        _err.print("synthesising for ECP5 with Yosys (about a minute) ...")
        result["ecp5_cells"] = synthesize_component(Accelerator(compiled.hardware), "accelerator")
    if args.json:
        print(json.dumps(result))
        return 0
    rows = [("Verilog", str(vpath))] + [(k, str(v)) for k, v in files.items()]
    rows += [("hardware hash", result["hardware_hash"][:16])]
    rows += [(k, f"{v:,} of {getattr(compiled.hardware, k):,}") for k, v in result["capacities_used"].items()]
    rows += [(f"ECP5 {k}", f"{v:,}") for k, v in result.get("ecp5_cells", {}).items() if not k.startswith("$")]
    _out().print(_kv_table(f"accelerator for {path.name}", rows))
    return 0


# ---------------------------------------------------------------------------------------- build


def cmd_build(args) -> int:
    from spikeforge.toolchain.boards import board_hardware, get_board
    from rich.markup import escape

    from spikeforge.toolchain.build import build_board
    from spikeforge.common.files import check_output_folder

    board = get_board(args.board)
    if args.out is None:
        raise UsageError("build needs --out DIR")
    check_output_folder(args.out)
    overrides = {f: getattr(args, f) for f in CAPACITY_FLAGS if getattr(args, f, None) is not None}
    models = _load_qmodel(Path(args.model)) if args.model else None
    hw = board_hardware(board, lanes=args.lanes, models=models, **overrides)
    started = time.monotonic()
    with _err.status(f"building for {board.name} ...") as status:
        def progress(stage: str, detail: str) -> None:
            status.update(f"[bold]{board.name}[/]: {stage} ({time.monotonic() - started:.0f} s)"
                          + (f" [dim]{escape(detail)}[/]" if detail else ""))
        report = build_board(board, hw, args.out, clock_mhz=args.clock, baud=args.baud, plan_only=args.plan_only,
                             synth_only=args.synth_only, progress=progress)
    if args.json:
        print(json.dumps(report))
    else:
        from spikeforge.toolchain.build import summary
        _out().print(summary(report), markup=False, highlight=False, end="")
    # exit 1: the design does not fit (--synth-only), or the bitstream misses timing at its clock
    return 1 if report.get("fits") is False or report.get("timing_met") is False else 0


# ---------------------------------------------------------------------------------------- disasm


def cmd_disasm(args) -> int:
    from spikeforge.firmware.compiler import load_program
    from spikeforge.firmware.program import KINDS, OPS, POSTS

    descs, manifest = load_program(args.program)
    names = {v: k for k, v in OPS.items()}, {v: k for k, v in KINDS.items()}, {v: k for k, v in POSTS.items()}
    rows = []
    for i, d in enumerate(descs):
        op = names[0].get(d.op, f"?{d.op}")
        row = {"step": i, "name": d.name, "op": op}
        if op == "CONV":
            row.update(kind=names[1].get(d.kind, f"?{d.kind}"), post=names[2].get(d.post, f"?{d.post}"),
                       map=f"{d.height}x{d.width}", T=d.steps if d.repeat == 1 else d.repeat, cin=d.cin, cout=d.cout,
                       groups=d.groups, weights=f"{d.weight_base}+{d.groups}x{d.n_columns}", bias=d.bias_base,
                       shift=d.weight_shift, thresholds=d.th_base if d.post == POSTS["LIF"] else "",
                       input=f"rows@{d.in_base}" if d.kind != KINDS["pixel3x3"] else "pixels",
                       output=f"rows@{d.out_base}" if d.post == POSTS["LIF"] else ("U" if d.post != POSTS["LOGITS"]
                                                                                  else "logits"))
        elif op == "POOL_OR":
            row.update(map=f"{d.height}x{d.width} -> {d.out_height}x{d.out_width}", T=d.steps, cin=d.cin, groups=d.groups,
                       input=f"rows@{d.in_base}", output=f"rows@{d.out_base}")
        elif op in ("LIF_U", "GAP", "SDSA"):
            row.update(map=f"{d.height}x{d.width}", T=d.steps, cin=d.cin, groups=d.groups,
                       thresholds=d.th_base if op != "SDSA" else "",
                       input="U" if op != "SDSA" else f"rows@{d.in_base}", output=f"rows@{d.out_base}")
        rows.append(row)
        if op == "END":
            break
    if args.json:
        print(json.dumps({"program": str(args.program), "manifest": manifest, "steps": rows}))
        return 0
    table = Table(title=f"{args.program}" + (f" (hardware {manifest['hardware_hash'][:12]}, format "
                                              f"{manifest['format_version']})" if manifest else ""))
    for c in ("step", "name", "op", "map x T", "channels", "weights (shift)", "bias", "thr", "in -> out"):
        table.add_column(c, no_wrap=True, justify="right" if c in ("step", "bias", "thr") else "left")
    for r in rows:
        op = " ".join(str(r[k]) for k in ("op", "kind", "post") if r.get(k))
        chans = f"{r['cin']} -> {r['cout']} ({r['groups']}g)" if "cout" in r else \
            (f"{r['cin']} ({r['groups']}g)" if "cin" in r else "")
        weights = f"{r['weights']} (<<{r['shift']})" if "weights" in r else ""
        table.add_row(str(r["step"]), r["name"], op, f"{r['map']} x {r['T']}" if "map" in r else "", chans, weights,
                      str(r.get("bias", "")), str(r.get("thresholds", "")),
                      f"{r['input']} -> {r['output']}" if "input" in r else "")
    _out().print(table)
    return 0


# ---------------------------------------------------------------------------------------- sim


def _sim_report(qm, args, n_images: int) -> dict:
    from spikeforge.model.data import load_digits_split
    from spikeforge.sim.accelerator_sim import simulate
    from spikeforge.sim.runner import simulator_missing

    missing = simulator_missing(args.simulator)
    if missing:
        raise UsageError(missing)
    data = load_digits_split()
    n = len(data.test_labels) if n_images is None else n_images
    if not 1 <= n <= len(data.test_labels):
        raise UsageError(f"--images must be in 1..{len(data.test_labels)}, got {n}")
    compiled = _compile(qm, args)
    _err.print(f"simulating {n} test images on the accelerator RTL ({args.simulator}, P = {compiled.hardware.lanes}"
               f"{', dense baseline' if args.dense else ''}); the first run builds the simulator (about a minute) ...")
    return simulate(qm, compiled, data.test_pixels[:n].long(), data.test_labels[:n], args.simulator)


def _print_sim(report: dict, title: str) -> None:
    out = _out()
    out.print(_kv_table(title, [
        ("images", str(report["images"])),
        ("logit mismatches (RTL vs golden)", str(report["mismatches"])),
        ("SOP-counter mismatches", str(report["sop_mismatches"])),
        ("accuracy (RTL)", f"{report['accuracy']:.4f}"),
        ("cycles per inference", f"{report['cycles_per_inference']:,.0f}"),
        ("event-driven bound", f"{report['bound_cycles']:,.0f}"),
        ("cycles / bound", f"{report['cycles_over_bound']:.3f}"),
        ("utilisation (SOPs / P x cycles)", f"{report['utilization']:.3f}"),
        ("simulation", f"{report['sim_seconds']:.1f} s, {report['images_per_second']:.2f} images/s"),
    ]))
    table = Table(title="per layer (mean per image)")
    for c in ("layer", "cycles", "bound", "cycles/bound", "events", "SOPs"):
        table.add_column(c, justify="left" if c == "layer" else "right")
    for r in report["layers"]:
        ratio = f"{r['cycles'] / r['bound_cycles']:.2f}" if r["bound_cycles"] else "-"
        table.add_row(r["name"], f"{r['cycles']:,.0f}", f"{r['bound_cycles']:,.0f}", ratio, f"{r['events']:,.0f}",
                      f"{r['sops']:,.0f}")
    out.print(table)


def cmd_sim(args) -> int:
    path, qm = _qmodel_or_embedded(args.qmodel)
    report = _sim_report(qm, args, args.images)
    if args.json:
        print(json.dumps(report))
    else:
        _print_sim(report, f"accelerator RTL vs golden model: {path.name}")
    return 1 if report["mismatches"] else 0


# ---------------------------------------------------------------------------------------- run


def _wire_seconds(nbytes: int, baud: int) -> float:
    """Time ``nbytes`` take on an 8N1 UART (10 bits per byte)."""
    return 10 * nbytes / baud


def cmd_run(args) -> int:
    """Load a model onto a device (any transport URL), infer test images, compare with golden."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from spikeforge.host.driver import Device
    from spikeforge.model import golden
    from spikeforge.model.data import load_digits_split

    path, qm = _qmodel_or_embedded(args.model)
    data = load_digits_split()
    n = args.images
    if not 1 <= n <= len(data.test_labels):
        raise UsageError(f"--images must be in 1..{len(data.test_labels)}, got {n}")
    pixels, labels = data.test_pixels[:n].long(), data.test_labels[:n]
    say = (lambda msg: _err.print(msg, markup=False, highlight=False))
    t0 = time.time()
    with Device.open(args.port, timeout=args.timeout, retries=args.retries, progress=say) as dev:
        info = dev.hello()
        say(f"{args.port}: protocol {info.protocol}, hardware {info.hardware_hash[:12]}, P = {info.hardware.lanes}, "
            f"{info.link} link" + (f" at {info.baud:,} baud" if info.baud else ""))
        with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                      console=_err, transient=True, disable=args.json) as bar:
            task = bar.add_task(f"loading {path.name}", total=None)
            load = dev.load(qm, progress=lambda i, total: bar.update(task, completed=i, total=total))
            task = bar.add_task("inferring", total=n)
            before = dev.stats.snapshot()
            t_inf = time.time()
            results = dev.infer(pixels, progress=lambda i, total: bar.update(task, completed=i))
            infer_s = time.time() - t_inf
            used = dev.stats.since(before)
    golden_logits = golden.forward_batched(qm, pixels)
    want, golden_pred = golden_logits.tolist(), golden_logits.argmax(1).tolist()
    preds = [r.prediction for r in results]
    baud = info.baud or dev.transport.wire_baud
    load_bytes = load["bytes_out"] + load["bytes_in"]
    per_image = (used.bytes_out + used.bytes_in) / n
    report = {
        "port": args.port, "model": str(path),
        "device": {"hardware_hash": info.hardware_hash, "link": info.link, "baud": info.baud, "clock_hz": info.clock_hz,
                   "lanes": info.hardware.lanes},
        "images": n, "predictions": preds, "golden_predictions": golden_pred,
        "predictions_equal_golden": sum(p == g for p, g in zip(preds, golden_pred)),
        "logits_equal_golden": sum(r.logits == w for r, w in zip(results, want)),
        "accuracy": sum(p == int(y) for p, y in zip(preds, labels)) / n,
        "cycles_per_inference": sum(r.cycles for r in results) / n,
        "load": {**load, "wire_seconds": _wire_seconds(load_bytes, baud) if baud else None},
        "inference": {"bytes_out_per_image": used.bytes_out / n, "bytes_in_per_image": used.bytes_in / n,
                      "retries": used.retries, "seconds": infer_s,
                      "wire_seconds_per_image": _wire_seconds(per_image, baud) if baud else None},
        "wire_seconds_at": {str(b): {"load": _wire_seconds(load_bytes, b), "per_image": _wire_seconds(per_image, b)}
                            for b in (115_200, 3_000_000)},
        "seconds": time.time() - t0,
    }
    if args.json:
        print(json.dumps(report))
    else:
        ok = report["logits_equal_golden"] == n
        rows = [
            ("device", f"{info.hardware_hash[:12]} P = {info.hardware.lanes}, {info.link}"
                       + (f" {info.baud:,} baud @ {info.clock_hz / 1e6:g} MHz" if info.baud else "")),
            ("predictions", " ".join(map(str, preds[:40])) + (" ..." if n > 40 else "")),
            ("equal to the golden model", f"{report['predictions_equal_golden']}/{n} predictions, "
                                          f"{report['logits_equal_golden']}/{n} logit vectors"
                                          + ("" if ok else "  MISMATCH")),
            ("accuracy", f"{report['accuracy']:.4f}"),
            ("cycles per inference", f"{report['cycles_per_inference']:,.0f}"),
            ("model load", f"{load_bytes:,} bytes in {load['requests']} frames ({load['retries']} retries)"),
            ("per inference", f"{per_image:,.0f} bytes"),
        ]
        if baud:
            per_ms = 1e3 * report["inference"]["wire_seconds_per_image"]
            rows.append((f"UART time at {baud:,} baud", f"load {report['load']['wire_seconds']:.3f} s, "
                                                       f"{per_ms:.2f} ms per image"))
        for b, t in report["wire_seconds_at"].items():
            if int(b) != baud:
                rows.append((f"UART time at {int(b):,} baud", f"load {t['load']:.3f} s, "
                                                              f"{1e3 * t['per_image']:.2f} ms per image"))
        rows.append(("wall time", f"{report['seconds']:.1f} s (load {load['seconds']:.1f} s, inference {infer_s:.1f} s)"))
        _out().print(_kv_table(f"{path.name} on {args.port}", rows))
    return 0 if report["logits_equal_golden"] == n else 1


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
    int_pred = golden.forward_batched(qm, data.test_pixels).argmax(1)
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

    rtl = _demo_rtl(qm, args.rtl_images)

    per_class = Table(title="per-class accuracy")
    per_class.add_column("digit", justify="right")
    per_class.add_column("images", justify="right")
    per_class.add_column("correct", justify="right")
    for digit in range(model.num_classes):
        sel = data.test_labels == digit
        per_class.add_row(str(digit), str(int(sel.sum())), str(int(correct[sel].sum())))
    out.print(per_class)
    if rtl is not None:
        out.print(_kv_table(f"accelerator RTL (Verilator, P = 16) on the first {rtl['images']} test images", [
            ("logits equal to the golden model", f"{rtl['images'] - rtl['mismatches']} of {rtl['images']}"),
            ("cycles per inference", f"{rtl['cycles_per_inference']:,.0f}"),
            ("event-driven bound", f"{rtl['bound_cycles']:,.0f}"),
            ("cycles / bound", f"{rtl['cycles_over_bound']:.3f}"),
            ("utilisation", f"{rtl['utilization']:.3f}"),
        ]))
    if args.json:
        print(json.dumps({"accuracy": correct.float().mean().item(), "n": len(correct),
                          "errors": int((~correct).sum()), **{k: info[k] for k in ("params", "tokens", "T")},
                          "rtl": None if rtl is None else {k: rtl[k] for k in (
                              "images", "mismatches", "cycles_per_inference", "bound_cycles", "utilization")}}))
    return 0 if rtl is None or rtl["mismatches"] == 0 else 1


def _demo_rtl(qm, n: int):
    """Generate the accelerator for the embedded model and simulate ``n`` test images (None if n = 0)."""
    if n <= 0:
        return None
    args = argparse.Namespace(simulator="verilator", lanes=16, dense=False, **dict.fromkeys(CAPACITY_FLAGS))
    try:
        return _sim_report(qm, args, n)
    except UsageError as exc:
        raise UsageError(f"the demo simulates the accelerator RTL: {exc}; `--rtl-images 0` skips it") from None


def cmd_bench(args) -> int:
    from spikeforge.benchmarks.bench import BenchError, run_from_args

    try:
        return run_from_args(args)
    except BenchError as exc:
        raise UsageError(str(exc)) from None


# ---------------------------------------------------------------------------------------- main


def build_parser() -> argparse.ArgumentParser:
    from spikeforge import __version__

    p = argparse.ArgumentParser(prog="spikeforge", description="FPGA accelerators for Spike-driven Transformers.")
    p.add_argument("--version", action="version", version=f"spikeforge {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    s = sub.add_parser("demo", help="evaluate the embedded model (float and integer) on the digits test split")
    s.add_argument("--json", action="store_true", help="also print a JSON summary")
    s.add_argument("--rtl-images", type=_natural, default=4, help="test images to run on the accelerator RTL (default 4)")
    s.set_defaults(func=cmd_demo)

    s = sub.add_parser("info", help="parameter count, tokens and T of a named config")
    s.add_argument("config", help="named config, e.g. imagenet-8-384 or digits-tiny")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_info)

    s = sub.add_parser("train", help="train on the digits training split")
    s.add_argument("--config", default="digits-tiny")
    s.add_argument("--epochs", type=_count, default=60)
    s.add_argument("--seed", type=_natural, default=0)
    s.add_argument("--lr", type=_positive_float, default=5e-3)
    s.add_argument("--batch-size", type=_count, default=32)
    s.add_argument("--out", type=Path, required=True, help="checkpoint file to write")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_train)

    s = sub.add_parser("quantize", help="quantize a checkpoint into the integer golden model (.sfq)")
    s.add_argument("ckpt", nargs="?", help="checkpoint (default: the embedded model)")
    s.add_argument("--config", help="named config, needed for a plain state dict or a timm checkpoint")
    s.add_argument("--w-bits", type=int, default=8, help="weight width in bits (default 8)")
    for f in ("acc_bits", "v_bits", "u_bits", "gap_bits", "logit_bits"):
        s.add_argument(f"--{f.replace('_', '-')}", dest=f, type=_count,
                       help=f"requested {f} (default: the width the analysis needs; too narrow is refused)")
    s.add_argument("--out", type=Path, required=True, help="quantized model file to write (.sfq)")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_quantize)

    s = sub.add_parser("trace", help="per-layer events, SOPs, firing rates and energy of one test image")
    s.add_argument("qmodel", help="quantized model file (.sfq)")
    s.add_argument("--image", type=_natural, default=0, help="index in the digits test split (default 0)")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_trace)

    s = sub.add_parser("eval", help="accuracy on the digits test split")
    s.add_argument("model", nargs="?", help="checkpoint (float; default: the embedded model) or QMODEL (golden)")
    s.add_argument("--config", help="named config, needed for a plain state dict or a timm checkpoint")
    s.add_argument("--backend", default="float",
                   help="float (the PyTorch model), golden (the integer model of a QMODEL) or rtl "
                        "(QMODEL on the accelerator RTL, simulated)")
    s.add_argument("--images", type=_count, default=None, help="rtl backend: test images (default: all)")
    _rtl_args(s)
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_eval)

    s = sub.add_parser("generate", help="write the accelerator (QMODEL) or one block's Verilog and files")
    s.add_argument("qmodel", nargs="?", help="quantized model (.sfq): generate the whole accelerator, program, "
                                             "weight image and manifest for it")
    s.add_argument("--block", help="block name (see --list)")
    s.add_argument("--dense", action="store_true", help="the dense baseline (event_driven=False)")
    _capacity_args(s)
    s.add_argument("--lanes", type=_count, help="P, lanes processed per cycle")
    s.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="any other block parameter, e.g. --set acc_bits=20 (repeatable)")
    s.add_argument("--out", type=Path, help="folder for <block>.v and <block>.json")
    s.add_argument("--synth", action="store_true", help="also synthesise for ECP5 with Yosys and report cells")
    s.add_argument("--list", action="store_true", help="list the blocks and their parameters")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_generate)

    from spikeforge.toolchain.boards import BOARDS

    s = sub.add_parser("build", help="build the accelerator for a board: Verilog, bitstream, resource and timing report")
    s.add_argument("--board", required=True, metavar="NAME", help=f"board: {', '.join(BOARDS)}")
    s.add_argument("--lanes", type=_count, help="P, output channels per cycle (default: the board's)")
    s.add_argument("--model", help="size the accelerator for this quantized model (.sfq; default: the embedded one)")
    _capacity_args(s)
    s.add_argument("--clock", type=_positive_float, metavar="MHZ", help="clock frequency (default: the board's target)")
    s.add_argument("--baud", type=_count, help="UART baud rate (default 3,000,000)")
    s.add_argument("--out", type=Path, help="output folder")
    s.add_argument("--plan-only", action="store_true",
                   help="write the build plan archive instead of running the toolchain (vendor boards)")
    s.add_argument("--synth-only", action="store_true", help="stop after synthesis and the capacity check")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_build)

    s = sub.add_parser("disasm", help="print a compiled program (program.bin) readably")
    s.add_argument("program", type=Path, help="program.bin written by `spikeforge generate QMODEL`")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_disasm)

    s = sub.add_parser("sim", help="run digits test images through the whole accelerator RTL, compare with golden")
    s.add_argument("qmodel", nargs="?", help="quantized model (.sfq; default: the embedded model at 8 bits)")
    _rtl_args(s)
    s.add_argument("--images", type=_count, default=8, help="test images to simulate (default 8)")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_sim)

    s = sub.add_parser("run", help="load a model onto a device (serial, PCIe or sim://), infer test images, compare")
    s.add_argument("--port", required=True, help="device URL: /dev/ttyUSB1, socket://host:port, pcie:///dev/xdma0, "
                                                 "or sim:// (the virtual board on Verilator)")
    s.add_argument("--model", help="quantized model (.sfq; default: the embedded model at 8 bits)")
    s.add_argument("--images", type=_count, default=20, help="test images to infer (default 20)")
    s.add_argument("--timeout", type=_positive_float, help="seconds to wait for a reply (default: per transport)")
    s.add_argument("--retries", type=_natural, default=3, help="retries per command (default 3)")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_run)

    from spikeforge.benchmarks.bench import add_arguments

    s = sub.add_parser("bench", help="the performance report: scaling, utilisation, attention, lanes, CPU, simulators")
    add_arguments(s)
    s.set_defaults(func=cmd_bench)
    return p


def _capacity_args(s) -> None:
    for f in CAPACITY_FLAGS:
        if f == "spike_row_words":
            help = "words per spike-buffer row (a narrower spike datapath; default 1, the iCEBreaker's 16)"
        else:
            help = argparse.SUPPRESS if f.endswith("rows") else f"hardware capacity {f} (default: what the model needs)"
        s.add_argument(f"--{f.replace('_', '-')}", dest=f, type=_count, help=help)


def _rtl_args(s) -> None:
    s.add_argument("--simulator", default="verilator", choices=("verilator", "icarus"))
    s.add_argument("--lanes", type=_count, default=16, help="P, output channels per cycle (default 16)")
    s.add_argument("--dense", action="store_true", help="simulate the dense baseline (event_driven=False)")
    _capacity_args(s)


def _error(message: str) -> int:
    _err.print(f"error: {message}", markup=False, highlight=False, soft_wrap=True)
    return 2


def main(argv: list[str] | None = None) -> int:
    try:
        from spikeforge.toolchain.build import BoardBuildError
        from spikeforge.toolchain.export import SynthesisError
        from spikeforge.model.checkpoint import CheckpointError
        from spikeforge.host.driver import DeviceError, LinkError
        from spikeforge.host.transport import TransportError
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


if __name__ == "__main__":
    sys.exit(main())
