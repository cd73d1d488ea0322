"""``spikeforge run --port URL``: load a model onto a device (serial, PCIe or sim://), infer test
images, compare with the golden model; the link traffic and its UART time."""

from __future__ import annotations

import json
import time

from .argtypes import count, natural, positive_float
from .common import check_images, err, kv_table, out, qmodel_or_embedded

HELP = "load a model onto a device (serial, PCIe or sim://), infer test images, compare"


def add_arguments(parser) -> None:
    parser.add_argument("--port", required=True,
                        help="device URL: /dev/ttyUSB1, socket://host:port, pcie:///dev/xdma0, "
                             "or sim:// (the virtual board on Verilator)")
    parser.add_argument("--model", help="quantized model (.sfq; default: the embedded model at 8 bits)")
    parser.add_argument("--images", type=count, default=20, help="test images to infer (default 20)")
    parser.add_argument("--timeout", type=positive_float, help="seconds to wait for a reply (default: per transport)")
    parser.add_argument("--retries", type=natural, default=3, help="retries per command (default 3)")
    parser.add_argument("--json", action="store_true")


def run(args) -> int:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from spikeforge.host.driver import Device
    from spikeforge.host.run_report import run_report
    from spikeforge.model import golden
    from spikeforge.model.data import load_digits_split

    path, qm = qmodel_or_embedded(args.model)
    data = load_digits_split()
    n = args.images
    check_images(n, len(data.test_labels))
    pixels, labels = data.test_pixels[:n].long(), data.test_labels[:n]
    say = (lambda msg: err.print(msg, markup=False, highlight=False))
    t0 = time.time()
    with Device.open(args.port, timeout=args.timeout, retries=args.retries, progress=say) as dev:
        info = dev.hello()
        say(f"{args.port}: protocol {info.protocol}, hardware {info.hardware_hash[:12]}, P = {info.hardware.lanes}, "
            f"{info.link} link" + (f" at {info.baud:,} baud" if info.baud else ""))
        with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                      console=err, transient=True, disable=args.json) as bar:
            task = bar.add_task(f"loading {path.name}", total=None)
            load = dev.load(qm, progress=lambda i, total: bar.update(task, completed=i, total=total))
            task = bar.add_task("inferring", total=n)
            before = dev.stats.snapshot()
            t_inf = time.time()
            results = dev.infer(pixels, progress=lambda i, total: bar.update(task, completed=i))
            infer_s = time.time() - t_inf
            used = dev.stats.since(before)
    golden_logits = golden.forward_batched(qm, pixels)
    baud = info.baud or dev.transport.wire_baud
    report = run_report(args.port, str(path), info, load, results, used, golden_logits, labels, baud, infer_s,
                        time.time() - t0)
    if args.json:
        print(json.dumps(report.as_dict()))
    else:
        _print(report, f"{path.name} on {args.port}", baud)
    return 0 if report.ok else 1


def _print(report, title: str, baud: int | None) -> None:
    d, n, load = report.device, report.images, report.load
    rows = [
        ("device", f"{d.hardware_hash[:12]} P = {d.lanes}, {d.link}"
                   + (f" {d.baud:,} baud @ {d.clock_hz / 1e6:g} MHz" if d.baud else "")),
        ("predictions", " ".join(map(str, report.predictions[:40])) + (" ..." if n > 40 else "")),
        ("equal to the golden model", f"{report.predictions_equal_golden}/{n} predictions, "
                                      f"{report.logits_equal_golden}/{n} logit vectors"
                                      + ("" if report.ok else "  MISMATCH")),
        ("accuracy", f"{report.accuracy:.4f}"),
        ("cycles per inference", f"{report.cycles_per_inference:,.0f}"),
        ("model load", f"{load.bytes:,} bytes in {load.requests} frames ({load.retries} retries)"),
        ("per inference", f"{report.inference.bytes_per_image:,.0f} bytes"),
    ]
    if baud:
        per_ms = 1e3 * report.inference.wire_seconds_per_image
        rows.append((f"UART time at {baud:,} baud", f"load {load.wire_seconds:.3f} s, {per_ms:.2f} ms per image"))
    for b, t in report.wire_seconds_at.items():
        if int(b) != baud:
            rows.append((f"UART time at {int(b):,} baud", f"load {t.load:.3f} s, {1e3 * t.per_image:.2f} ms per image"))
    rows.append(("wall time", f"{report.seconds:.1f} s (load {load.seconds:.1f} s, "
                              f"inference {report.inference.seconds:.1f} s)"))
    out().print(kv_table(title, rows))
