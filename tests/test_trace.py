"""Trace counts against an independent brute-force count on a small hand-made model, and the CLI."""

import itertools
import json
import subprocess
import sys

import pytest
import torch

from spikeforge.model import build_model, golden
from spikeforge.model.quantize import quantize

CONFIG = dict(img_size_h=4, img_size_w=5, in_channels=1, num_classes=3, embed_dims=8, num_heads=2,
              mlp_ratios=2, depths=1, T=2, pooling_stat="0001")


@pytest.fixture(scope="module")
def small_qmodel():
    """A 4x5-pixel, 8-channel model with random weights and BN shifted so that neurons fire."""
    torch.manual_seed(3)
    model = build_model(CONFIG)
    for m in model.modules():
        if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)):
            torch.nn.init.normal_(m.weight, std=0.8)
        if isinstance(m, torch.nn.BatchNorm2d):
            m.bias.data.fill_(0.9)
    return quantize(model.eval(), 8, pixel_max=16)


def test_trace_equals_brute_force_count(small_qmodel, monkeypatch):
    inputs = []  # spike inputs of every synaptic layer, recorded in call order
    real_conv3, real_conv1, real_sparse = golden.conv3x3_accumulate, golden.conv1x1_accumulate, golden.sparse_accumulate

    def conv3(s, w, b=None, *a, **k):
        if b is not None:  # the bias-free calls are the bit-planes of the first layer
            inputs.append(("conv3x3", s.clone(), w.shape[0]))
        return real_conv3(s, w, b, *a, **k)

    def conv1(s, w, b=None, *a, **k):
        inputs.append(("conv1x1", s.clone(), w.shape[0]))
        return real_conv1(s, w, b, *a, **k)

    def sparse(s, w, b=None, *a, **k):
        if s.dim() == 3:  # the head: [T, B, C]
            inputs.append(("linear", s.clone(), w.shape[0]))
        return real_sparse(s, w, b, *a, **k)

    monkeypatch.setattr(golden, "conv3x3_accumulate", conv3)
    monkeypatch.setattr(golden, "conv1x1_accumulate", conv1)
    monkeypatch.setattr(golden, "sparse_accumulate", sparse)
    torch.manual_seed(0)
    pixels = torch.randint(0, 17, (2, 1, 4, 5))
    pixels[0, 0, 0, :] = 0
    trace = golden.Trace()
    golden.forward(small_qmodel, pixels, trace)
    monkeypatch.undo()

    rows = {l.name: l for l in trace.layers}
    # First layer: MACs = valid (input, output) position pairs x C_in x C_out; events = non-zero pixels.
    pairs = sum(1 for y, x, dy, dx in itertools.product(range(4), range(5), (-1, 0, 1), (-1, 0, 1))
                if 0 <= y + dy < 4 and 0 <= x + dx < 5)
    assert rows["sps.conv0"].macs == 2 * pairs * 1 * 1  # batch 2, C_in 1, C_out = 8 // 8 = 1
    assert rows["sps.conv0"].in_events == int((pixels != 0).sum())

    synaptic = [l for l in trace.layers if l.kind in ("conv3x3", "conv1x1", "linear")]
    assert len(synaptic) == len(inputs)
    for layer, (kind, s, c_out) in zip(synaptic, inputs):
        assert layer.kind == kind
        events = sops = 0
        for idx in (s != 0).nonzero().tolist():  # brute force, one event at a time
            events += 1
            if kind == "conv3x3":
                y, x = idx[-2], idx[-1]
                h, w = s.shape[-2:]
                reach = sum(1 for dy, dx in itertools.product((-1, 0, 1), (-1, 0, 1)) if 0 <= y + dy < h and 0 <= x + dx < w)
                sops += reach * c_out
            else:
                sops += c_out
        assert (layer.in_events, layer.sops) == (events, sops), layer.name
    assert sum(l.sops for l in trace.layers) == trace.totals()["sops"]
    assert trace.totals()["sops"] > 0, "the hand-made model must actually spike"


def test_trace_energy_model(small_qmodel):
    trace = golden.Trace()
    golden.forward(small_qmodel, torch.randint(0, 17, (1, 1, 4, 5)), trace)
    t = trace.totals()
    assert t["energy_pj"] == pytest.approx(0.9 * t["sops"] + 4.6 * t["macs"])


def test_trace_cli_json(tmp_path, qmodel8):
    from spikeforge.model.qfile import save_qmodel

    path = save_qmodel(qmodel8, tmp_path / "m.sfq")
    proc = subprocess.run([sys.executable, "-m", "spikeforge.host.cli", "trace", str(path), "--image", "3", "--json"],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    names = [l["name"] for l in out["layers"]]
    assert names[0] == "sps.conv0" and names[-1] == "head" and "block.0.attn.sdsa" in names
    assert out["totals"]["sops"] == sum(l["sops"] for l in out["layers"])
    assert all(l["firing_rate"] is None or 0 <= l["firing_rate"] <= 1 for l in out["layers"])
