"""SepConv's integer form on Meta-SpikeFormer: synaptic operations of the two event-driven choices.

    .venv/bin/python benchmarks/sepconv.py [--config digits-meta] [--images 64] [--out build/reports]

SepConv's depthwise 7x7 feeds its second pointwise conv with no neuron between, so that conv's
input is an integer. Two multiplier-free forms (``docs/arithmetic.md``):

* **dense fold** (the contract): depthwise + pointwise + BN folded into one dense 7x7 conv on the
  depthwise conv's input spikes: ``fanout_7x7 x C_out`` additions per input spike;
* **depthwise + bit-planes**: the depthwise conv on spikes (``fanout_7x7`` per spike, its own
  channel only), its integer output quantized at ``w_bits`` per channel, then the pointwise conv on
  the output's two's-complement bit-planes: ``C_out`` additions per set bit.

Measured on the golden model (exact counts over ``--images`` test digits) for every SepConv of a
V2 config, and projected onto ``metaspikformer-8-512``'s shapes at 224 px with the same firing rate
and set bits per depthwise output (an estimate: no trained 8-512 weights here). Writes
``sepconv.json`` and ``sepconv.md`` into ``--out``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from spikeforge.model import golden
from spikeforge.model.configs import get_config
from spikeforge.model.graph import Fold, layer_graph
from spikeforge.model.quantize import quantize


def _depthwise_bits(model, layer, spikes: torch.Tensor, w_bits: int) -> tuple[int, int]:
    """(set bits of the quantized depthwise outputs, outputs) for ``spikes [T, B, C, H, W]``."""
    dw = model.get_submodule(layer.source[0]).dwconv.weight.detach().double()
    qmax = (1 << (w_bits - 1)) - 1
    scale = qmax / dw.flatten(1).abs().max(1).values.clamp(min=1e-30)
    wq = torch.round(dw * scale.reshape(-1, 1, 1, 1)).to(torch.int64)
    d = golden.depthwise_accumulate(spikes.flatten(0, 1), wq, padding=3)
    bits = golden.bits_for_range(int(d.min()), int(d.max()))
    twos = d & ((1 << bits) - 1)                              # two's complement, bits wide
    ones = sum(int(((twos >> b) & 1).sum()) for b in range(bits))
    return ones, d.numel()


def measure(config: str, images: int, w_bits: int = 8) -> list[dict]:
    """Per SepConv of ``config`` (the embedded model): spikes, positions, SOPs of both forms."""
    from spikeforge.model.checkpoint import load_embedded
    from spikeforge.model.data import load_digits_split

    model = load_embedded(config).eval()
    qm = quantize(model, w_bits)
    spikes = {}
    fire = golden._fire

    def record(qm_, layer, x, th, rec=None):
        spikes[layer.name] = s = fire(qm_, layer, x, th, rec)
        return s

    golden._fire = record
    try:
        golden.forward(qm, load_digits_split().test_pixels[:images])
    finally:
        golden._fire = fire
    rows = []
    for layer in (la for la in layer_graph(qm.config) if la.fold is Fold.SEPCONV):
        s = spikes[layer.inputs[0]]
        fan = golden._fanout(layer.height, layer.width, 7)
        dw_sops = int((s * fan).sum())
        ones, outputs = _depthwise_bits(model, layer, s, w_bits)
        rows.append({"layer": layer.name, "c_in": layer.cin, "c_out": layer.cout, "map": [layer.height, layer.width],
                     "spikes": int(s.sum()), "firing_rate": float(s.double().mean()),
                     "dense_sops": dw_sops * layer.cout, "depthwise_sops": dw_sops, "bitplane_sops": ones * layer.cout,
                     "set_bits_per_output": ones / outputs})
    return rows


def project(rows: list[dict], target: str = "metaspikformer-8-512") -> list[dict]:
    """Each SepConv of ``target`` at the measured mean firing rate and set bits per output."""
    rate = sum(r["spikes"] for r in rows) / sum(r["spikes"] / r["firing_rate"] for r in rows)
    bits = sum(r["set_bits_per_output"] for r in rows) / len(rows)
    out = []
    for layer in (la for la in layer_graph(get_config(target)) if la.fold is Fold.SEPCONV):
        positions = layer.height * layer.width
        fan = float(golden._fanout(layer.height, layer.width, 7).double().mean())
        spikes = rate * layer.cin * positions
        out.append({"layer": layer.name, "c_in": layer.cin, "c_out": layer.cout, "map": [layer.height, layer.width],
                    "dense_sops": spikes * fan * layer.cout, "depthwise_sops": spikes * fan,
                    "bitplane_sops": bits * layer.cin * positions * layer.cout})
    return out


def _table(rows: list[dict], per: str) -> list[str]:
    lines = [f"| layer | C_in -> C_out | map | dense fold SOPs {per} | depthwise + bit-plane SOPs {per} | ratio |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        split = r["depthwise_sops"] + r["bitplane_sops"]
        lines.append(f"| {r['layer']} | {r['c_in']} -> {r['c_out']} | {r['map'][0]}x{r['map'][1]} | "
                     f"{r['dense_sops']:,.0f} | {split:,.0f} | {r['dense_sops'] / split:.2f} |")
    return lines


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default="digits-meta")
    p.add_argument("--images", type=int, default=64)
    p.add_argument("--out", type=Path, default=Path("build/reports"))
    args = p.parse_args(argv)
    print(f"golden model on {args.images} digits ({args.config}) ...", file=sys.stderr, flush=True)
    rows = measure(args.config, args.images)
    projected = project(rows)
    steps = args.images * get_config(args.config)["T"]
    for r in rows:                                    # per image and time step
        for key in ("dense_sops", "depthwise_sops", "bitplane_sops"):
            r[key] /= steps
    rate = sum(r["firing_rate"] for r in rows) / len(rows)
    bits = sum(r["set_bits_per_output"] for r in rows) / len(rows)
    lines = [f"## SepConv: dense 7x7 fold vs depthwise + bit-planes ({args.config}, {args.images} test digits)", "",
             *_table(rows, "per step"), "",
             f"Mean SepConv input firing rate {rate:.3f}; {bits:.2f} set bits per 8-bit depthwise output.", "",
             "## Projected onto metaspikformer-8-512 at 224 px (same rate and set bits; one time step)", "",
             *_table(projected, "per step")]
    text = "\n".join(lines) + "\n"
    print(text)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "sepconv.md").write_text(text)
    (args.out / "sepconv.json").write_text(json.dumps({"measured": rows, "projected_8_512": projected}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
