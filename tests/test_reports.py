"""The pieces the command line reads from the layers below it: the UART wire time, the fields of a
program listing, and the sim and run reports with the JSON keys the CLI prints."""

from types import SimpleNamespace

import pytest
import torch

from spikeforge.firmware.program import KINDS, OPS, POSTS, Descriptor, step_listing, uart_wire_seconds
from spikeforge.host.run_report import run_report
from spikeforge.sim.report import ImageCycles, LayerReport, SimReport


def test_uart_wire_time_is_ten_bits_a_byte():
    assert uart_wire_seconds(11_520, 115_200) == pytest.approx(1.0)     # 8N1: start + 8 data + stop
    assert uart_wire_seconds(3, 3_000_000) == pytest.approx(1e-5)
    assert uart_wire_seconds(0, 9600) == 0


def test_step_listing_names_the_fields_each_op_uses():
    conv = Descriptor(name="sps.conv0", op=OPS["CONV"], kind=KINDS["pixel3x3"], post=POSTS["LIF"], height=8, width=8,
                      steps=4, cin=1, groups=1, cout=16, weight_base=0, n_columns=72, bias_base=2, weight_shift=3,
                      th_base=5, in_base=7, out_base=40)
    assert step_listing(conv) == {
        "name": "sps.conv0", "op": "CONV", "kind": "pixel3x3", "post": "LIF", "map": "8x8", "T": 4, "cin": 1,
        "cout": 16, "groups": 1, "weights": "0+1x72", "bias": 2, "shift": 3, "thresholds": 5, "input": "pixels",
        "output": "rows@40"}
    head = Descriptor(name="head", op=OPS["CONV"], kind=KINDS["1x1"], post=POSTS["LOGITS"], steps=4, repeat=1,
                      cin=32, cout=10, groups=1, weight_base=9, n_columns=32, in_base=3)
    listed = step_listing(head)
    assert (listed["input"], listed["output"], listed["thresholds"]) == ("rows@3", "logits", "")
    u_write = Descriptor(name="proj", op=OPS["CONV"], kind=KINDS["1x1"], post=POSTS["U_ADD"], steps=4, repeat=2)
    assert (step_listing(u_write)["output"], step_listing(u_write)["T"]) == ("U", 2)   # a repeated step: T = repeat
    pool = Descriptor(name="sps.pool", op=OPS["POOL_OR"], height=8, width=8, out_height=4, out_width=4, steps=4,
                      cin=32, groups=2, in_base=1, out_base=200)
    assert step_listing(pool) == {"name": "sps.pool", "op": "POOL_OR", "map": "8x8 -> 4x4", "T": 4, "cin": 32,
                                  "groups": 2, "input": "rows@1", "output": "rows@200"}
    sdsa = step_listing(Descriptor(name="attn", op=OPS["SDSA"], height=4, width=4, steps=4, cin=32, groups=2,
                                   th_base=6, in_base=10, out_base=20))
    assert (sdsa["thresholds"], sdsa["input"], sdsa["output"]) == ("", "rows@10", "rows@20")
    lif = step_listing(Descriptor(name="lif", op=OPS["LIF_U"], th_base=6, out_base=20))
    assert (lif["thresholds"], lif["input"]) == (6, "U")
    assert step_listing(Descriptor(name="end", op=OPS["END"])) == {"name": "end", "op": "END"}
    assert step_listing(Descriptor(op=9))["op"] == "?9"
    odd = step_listing(Descriptor(op=OPS["CONV"], kind=7, post=8))
    assert (odd["kind"], odd["post"]) == ("?7", "?8")


def test_sim_report_json_keys_in_the_documented_order():
    layer = LayerReport("sps.conv0", 10.0, 8.0, 8.0, 40.0, 40.0, 1.25, 0.25)
    report = SimReport(images=1, mismatches=0, mismatch_details=[], sop_mismatches=0, accuracy=1.0,
                       cycles_per_inference=10.0, bound_cycles=8.0, cycles_over_bound=1.25, utilization=0.25, lanes=16,
                       engine_counters={"cycles": 10.0}, event_driven=True, simulator="verilator", sim_seconds=2.0,
                       images_per_second=0.5, per_image=[ImageCycles(10, [10], [8], 8)], sops_per_inference=40.0,
                       bound_utilization=0.3125, layers=[layer])
    d = report.as_dict()
    assert list(d) == ["images", "mismatches", "mismatch_details", "sop_mismatches", "accuracy", "cycles_per_inference",
                       "bound_cycles", "cycles_over_bound", "utilization", "lanes", "engine_counters", "event_driven",
                       "simulator", "sim_seconds", "images_per_second", "per_image", "sops_per_inference",
                       "bound_utilization", "layers"]
    assert d["layers"] == [{"name": "sps.conv0", "cycles": 10.0, "bound_cycles": 8.0, "events": 8.0, "sops": 40.0,
                            "golden_sops": 40.0, "cycles_over_bound": 1.25, "utilization": 0.25}]
    assert d["per_image"] == [{"cycles": 10, "layer_cycles": [10], "layer_bound_cycles": [8], "bound_cycles": 8}]


def test_run_report_compares_with_golden_and_times_the_wire():
    hello = SimpleNamespace(hardware_hash="ab" * 32, link="uart", baud=115_200, clock_hz=12_000_000,
                            hardware=SimpleNamespace(lanes=16))
    golden_logits = torch.tensor([[1, 5, 0], [7, 2, 2]])
    results = [SimpleNamespace(logits=[1, 5, 0], prediction=1, cycles=100),
               SimpleNamespace(logits=[7, 2, 3], prediction=0, cycles=300)]   # 2nd: logits differ, prediction agrees
    load = {"bytes_out": 11_000, "bytes_in": 520, "requests": 3, "retries": 1, "chunks": 3, "seconds": 0.5}
    traffic = SimpleNamespace(bytes_out=200, bytes_in=40, retries=0)
    report = run_report("sim://", "m.sfq", hello, load, results, traffic, golden_logits, torch.tensor([1, 2]),
                        115_200, 0.25, 1.0)
    assert (report.predictions, report.golden_predictions) == ([1, 0], [1, 0])
    assert (report.predictions_equal_golden, report.logits_equal_golden, report.ok) == (2, 1, False)
    assert report.accuracy == 0.5 and report.cycles_per_inference == 200
    d = report.as_dict()
    assert list(d) == ["port", "model", "device", "images", "predictions", "golden_predictions",
                       "predictions_equal_golden", "logits_equal_golden", "accuracy", "cycles_per_inference", "load",
                       "inference", "wire_seconds_at", "seconds"]
    assert d["device"] == {"hardware_hash": "ab" * 32, "link": "uart", "baud": 115_200, "clock_hz": 12_000_000,
                           "lanes": 16}
    assert d["load"] == {**load, "wire_seconds": pytest.approx(1.0)}          # 11,520 bytes at 115,200 baud
    assert d["inference"] == {"bytes_out_per_image": 100, "bytes_in_per_image": 20, "retries": 0, "seconds": 0.25,
                              "wire_seconds_per_image": pytest.approx(120 * 10 / 115_200)}
    assert d["wire_seconds_at"] == {"115200": {"load": pytest.approx(1.0), "per_image": pytest.approx(1200 / 115_200)},
                                    "3000000": {"load": pytest.approx(0.0384), "per_image": pytest.approx(0.0004)}}
    no_uart = run_report("pcie:///dev/xdma0", "m.sfq", hello, load, results, traffic, golden_logits,
                         torch.tensor([1, 0]), None, 0.25, 1.0)
    assert no_uart.load.wire_seconds is None and no_uart.inference.wire_seconds_per_image is None
    assert no_uart.accuracy == 1.0
