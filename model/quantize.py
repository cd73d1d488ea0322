"""Post-training quantization of the float Spike-driven Transformer into the integer contract.

What the quantizer does (``docs/arithmetic.md`` has the full contract):

1. **Fold** every BatchNorm into the conv before it: ``W' = W * g``, ``b' = (b - mean) * g + beta``
   with ``g = gamma / sqrt(var + eps)`` (eval-mode statistics).
2. **Scale** each *LIF domain* (the values one group of neurons integrates) by a real
   factor ``S`` chosen so that the largest folded weight feeding it maps to
   ``2**(w_bits-1) - 1``; weights and biases become ``round(W' * S)``,
   ``round(b' * S)`` and the LIF threshold ``round(Vth * S)``. A LIF is invariant to
   scaling its input and threshold together, so only rounding changes. Where one layer
   alone feeds a group of neurons (SPS stages 0..2, Q, K, V, the MLP hidden layer) the
   scale is chosen **per output channel** and the LIF gets one threshold per channel.
3. **One scale for the residual stream**: every branch that adds into ``U`` (the stage-4
   conv ``x_feat``, the RPE conv, every SDSA projection and every fc2) produces values at
   ``S_U``, so membrane shortcuts are plain integer adds. ``S_U`` is set by the branch with
   the smallest weights; a branch whose weights are ``2**s`` times larger stores them at
   ``S_U / 2**s`` and its accumulator adds ``w << s`` (its ``weight_shift``): every branch
   keeps between ``w_bits - 1`` and ``w_bits`` bits of weight precision and the stream keeps
   the finest resolution.
4. **Input**: the first conv takes unsigned pixels ``p``; the model's normalisation
   ``x = p / pixel_max`` is folded into its weights (``W' / pixel_max``).
5. The attention LIF (``Vth = 0.5`` on integer counts) works at scale 2; the head LIF acts
   on the token *sum* with threshold ``N * th_U`` (GAP without a division).

Width analysis (:func:`analyze_widths`) bounds every accumulator, membrane and the
residual stream from the integer weights, and :func:`check_widths` refuses a
requested width that could overflow, naming the layer and the width it needs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from .golden import bits_for_range
from .limits import MAX_WEIGHT_SHIFT, MAX_WIDTH_BITS
from .graph import LOGITS_DOMAIN, Fold, LayerGraph, Op, Shortcut, layer_graph
from .meta_spikeformer import MetaSpikeFormer
from .sdt import SpikeDrivenTransformer

__all__ = ["QuantizedModel", "QuantizationError", "quantize", "embedded_qmodel", "analyze_widths", "check_widths",
           "WIDTH_FIELDS", "MAX_WIDTH_BITS", "MAX_WEIGHT_SHIFT", "config_tokens", "model_config", "fold_layer"]

#: The design widths a quantized model carries (one value each, shared by all layers).
WIDTH_FIELDS = ("acc_bits", "v_bits", "u_bits", "gap_bits", "logit_bits")


class QuantizationError(ValueError):
    """A model or width choice the integer contract cannot represent; names the layer."""


@dataclass
class QuantizedModel:
    """Integer model: everything the golden model (and the hardware) needs, nothing float.

    ``weights``: ``"<layer>.weight"`` / ``"<layer>.bias"`` int64 tensors (conv3x3 weights
    ``[O, I, 3, 3]``, 1x1 and head weights ``[O, I]``). ``thresholds``: integer LIF
    thresholds by domain (``sps.lif0..2``, ``u`` for every LIF reading the residual
    stream, ``block.i.attn.{q,k,v}``, ``block.i.mlp.hidden``, ``head.lif``).
    A threshold is an int (one for the layer) or a list (one per output channel).
    ``widths``: the design widths (:data:`WIDTH_FIELDS`). ``weight_shifts``: per layer, the
    left shift its accumulator applies to every weight (0 when absent). ``scales``: the real factors
    used (informational: the golden model never reads them).
    """

    config: dict
    w_bits: int
    pixel_max: int
    pixel_bits: int
    shift: int
    weights: dict[str, torch.Tensor]
    thresholds: dict[str, int | list[int]]
    widths: dict[str, int]
    weight_shifts: dict[str, int] = field(default_factory=dict)
    scales: dict[str, float] = field(default_factory=dict)

    @property
    def tokens(self) -> int:
        return config_tokens(self.config)

    def threshold(self, name: str) -> int | torch.Tensor:
        """Threshold of a LIF domain: an int, or a ``[C, 1, 1]`` tensor (per channel, broadcasts over maps)."""
        th = self.thresholds[name]
        return torch.tensor(th, dtype=torch.int64).reshape(-1, 1, 1) if isinstance(th, list) else th


def config_tokens(config: dict) -> int:
    """Number of tokens N of a model config."""
    return layer_graph(config).tokens


# ------------------------------------------------------------------------------------------ folding


def _bn_affine(bn: torch.nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
    """A BatchNorm's eval-mode ``y = g x + beta'`` as float64 ``(g, beta')``."""
    g = bn.weight.detach().double() / torch.sqrt(bn.running_var.detach().double() + bn.eps)
    return g, bn.bias.detach().double() - bn.running_mean.detach().double() * g


def _fold(conv: torch.nn.Module, bn: torch.nn.Module | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Folded float64 weight and bias of ``conv`` (+ ``bn``); pointwise kernels (1x1, Conv1d) as ``[O, I]``."""
    w = conv.weight.detach().to(torch.float64)
    b = conv.bias.detach().to(torch.float64) if conv.bias is not None else torch.zeros(w.shape[0], dtype=torch.float64)
    if bn is not None:
        g = bn.weight.detach().double() / torch.sqrt(bn.running_var.detach().double() + bn.eps)
        w = w * g.reshape(-1, *([1] * (w.dim() - 1)))
        b = (b - bn.running_mean.detach().double()) * g + bn.bias.detach().double()
    if w.dim() > 2 and all(d == 1 for d in w.shape[2:]):
        w = w.flatten(1)
    return w, b


def _fold_repconv(rep: torch.nn.Module, bn: torch.nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
    """RepConv (1x1 ``W1`` -> BN1-and-pad -> depthwise 3x3 ``D`` -> 1x1 ``W2`` -> BN2) then BN3, as one
    3x3 conv on the zero-padded input: ``K[o, i] = g3 g2 sum_c W2[o, c] D[c] g1[c] W1[c, i]``,
    ``b = g3 (g2 sum_c W2[o, c] beta1[c] sum(D[c]) + beta2) + beta3``. Exact at the borders too:
    BN-and-pad fills the border with ``BN1(0) = beta1``, what the 1x1 of a zero-padded input gives."""
    conv1, bnpad, (dw, conv2, bn2) = rep.body
    w1 = conv1.weight.detach().double().flatten(1)                       # [C, I]
    d = dw.weight.detach().double()[:, 0]                                # [C, 3, 3]
    w2 = conv2.weight.detach().double().flatten(1)                       # [O, C]
    (g1, b1), (g2, b2), (g3, b3) = _bn_affine(bnpad.bn), _bn_affine(bn2), _bn_affine(bn)
    k = torch.einsum("oc,cyx,c,ci->oiyx", w2, d, g1, w1) * (g3 * g2).reshape(-1, 1, 1, 1)
    return k, g3 * (g2 * (w2 @ (b1 * d.sum((1, 2)))) + b2) + b3


def _fold_sepconv(sep: torch.nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
    """SepConv's depthwise 7x7 ``D`` (no bias) -> pwconv2 ``P`` (no bias) -> bn2, with no neuron
    between, as one dense 7x7 conv on the depthwise conv's input spikes: ``K[o, c] = g P[o, c] D[c]``,
    ``b = beta'``."""
    d = sep.dwconv.weight.detach().double()[:, 0]                        # [C, k, k]
    p = sep.pwconv2.weight.detach().double().flatten(1)                  # [O, C]
    g, beta = _bn_affine(sep.bn2)
    return p[:, :, None, None] * d[None] * g.reshape(-1, 1, 1, 1), beta


def fold_layer(model: torch.nn.Module, layer) -> tuple[torch.Tensor, torch.Tensor]:
    """The folded float64 ``(weight, bias)`` of synaptic ``layer`` from its float modules in ``model``
    (``layer.source``, combined as ``layer.fold`` says)."""
    first, second = (model.get_submodule(n) if n else None for n in layer.source)
    if layer.fold is Fold.REPCONV:
        return _fold_repconv(first, second)
    if layer.fold is Fold.SEPCONV:
        return _fold_sepconv(first)
    if layer.fold is Fold.KD_HEAD:   # the eval output with kd is the mean of the two heads
        (w1, b1), (w2, b2) = _fold(first, None), _fold(second, None)
        return (w1 + w2) / 2, (b1 + b2) / 2
    return _fold(first, second)


def _folded_layers(model: torch.nn.Module, graph: LayerGraph) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Every synaptic layer of ``graph``: its float modules of ``model``, folded."""
    return {layer.name: fold_layer(model, layer) for layer in graph.synaptic()}


def model_config(model: torch.nn.Module) -> dict:
    """The config (constructor arguments, and ``"arch"`` for V2) a float model was built with, read
    from the model (the quantized model and its graph are made from it)."""
    if isinstance(model, MetaSpikeFormer):
        config = {k: getattr(model, k) for k in ("img_size_h", "img_size_w", "in_channels", "num_classes", "num_heads",
                                                  "mlp_ratios", "depths", "kd", "T")}
        return {"arch": "meta-spikeformer", **config, "embed_dim": list(model.embed_dim),
                "block_counts": list(model.block_counts), "strides": list(model.strides)}
    for m in model.block:
        if m.mlp.res:
            raise QuantizationError("MLP with hidden == in_features (mlp_ratios=1) is not supported by the integer contract")
    config = {k: getattr(model, k) for k in ("img_size_h", "img_size_w", "in_channels", "num_classes",
                                              "embed_dims", "depths", "T", "pooling_stat")}
    config["num_heads"] = model.block[0].attn.num_heads if len(model.block) else 8
    config["mlp_ratios"] = (model.block[0].mlp.fc1_conv.out_channels / model.embed_dims) if len(model.block) else 4
    if float(config["mlp_ratios"]).is_integer():
        config["mlp_ratios"] = int(config["mlp_ratios"])
    return config


# ------------------------------------------------------------------------------------------ quantize


def quantize(model: SpikeDrivenTransformer | MetaSpikeFormer, w_bits: int = 8, pixel_max: int = 16,
             widths: dict[str, int] | None = None) -> QuantizedModel:
    """Quantize a float model (its eval-mode BN statistics) to ``w_bits`` integer weights.

    ``pixel_max``: the largest raw pixel value; the float model's input is ``pixel / pixel_max``.
    ``widths``: requested design widths (any of :data:`WIDTH_FIELDS`, each an integer in
    ``1..MAX_WIDTH_BITS``, checked before any work); missing ones are set to what the analysis
    says is needed; a too-narrow one raises :class:`QuantizationError`.
    """
    if not 2 <= w_bits <= 16:
        raise QuantizationError(f"w_bits must be in 2..16, got {w_bits}")
    for name, bits in (widths or {}).items():
        if name not in WIDTH_FIELDS:
            raise QuantizationError(f"requested width {name!r} is not a design width ({', '.join(WIDTH_FIELDS)})")
        if not isinstance(bits, int) or isinstance(bits, bool) or not 1 <= bits <= MAX_WIDTH_BITS:
            raise QuantizationError(f"requested width {name} = {bits!r}: expected an integer in 1..{MAX_WIDTH_BITS} "
                                    f"(the golden model computes in int64)")
    config = model_config(model)
    lif_vth = 1.0
    qmax = (1 << (w_bits - 1)) - 1

    graph = layer_graph(config)
    folded = _folded_layers(model, graph)
    for layer in graph.synaptic():
        if layer.op is Op.PIXEL_CONV:
            w0, b0 = folded[layer.name]
            folded[layer.name] = (w0 / pixel_max, b0)  # input normalisation x = p / pixel_max

    weights: dict[str, torch.Tensor] = {}
    thresholds: dict[str, int | list[int]] = {}
    shifts: dict[str, int] = {}
    scales: dict[str, float | list[float]] = {}
    streams = graph.stream_domains()
    for domain, layers in graph.domains().items():
        wmax = {n: folded[n][0].abs().max().item() for n in layers}
        for n, m in wmax.items():
            if m == 0:
                raise QuantizationError(f"layer {n}: all weights are zero; cannot choose a scale")
        if len(layers) == 1 and domain != LOGITS_DOMAIN and domain not in streams:
            # One layer feeds these neurons: a scale (and threshold) per output channel.
            (n,) = layers
            w, b = folded[n]
            per_ch = w.flatten(1).abs().max(1).values
            per_ch = torch.where(per_ch > 0, per_ch, torch.full_like(per_ch, wmax[n]))
            scale = qmax / per_ch
            weights[f"{n}.weight"] = torch.round(w * scale.reshape(-1, *([1] * (w.dim() - 1)))).to(torch.int64)
            weights[f"{n}.bias"] = torch.round(b * scale).to(torch.int64)
            th = torch.round(scale * lif_vth).to(torch.int64)
            scales[domain] = scale.tolist()
            thresholds[domain] = th.tolist()
            continue
        # Several branches add into one stream (U), or the head (one scale so logits compare).
        finest = min(wmax.values())
        scale = qmax / finest
        scales[domain] = scale
        for n in layers:
            w, b = folded[n]
            shift = max(0, math.ceil(math.log2(wmax[n] / finest) - 1e-12))
            if shift > MAX_WEIGHT_SHIFT:
                raise QuantizationError(f"layer {n}: its weights are 2**{shift} times larger than those of "
                                        f"{min(wmax, key=wmax.get)}; at most 2**{MAX_WEIGHT_SHIFT} is supported")
            if shift:
                shifts[n] = shift
            weights[f"{n}.weight"] = torch.round(w * (scale / (1 << shift))).to(torch.int64)
            weights[f"{n}.bias"] = torch.round(b * scale).to(torch.int64)
        if domain != LOGITS_DOMAIN:
            thresholds[domain] = int(round(lif_vth * scale))
    for domain, th in thresholds.items():
        if min(th if isinstance(th, list) else [th]) < 1:
            raise QuantizationError(f"domain {domain}: a threshold rounds below 1; weights are too large for w_bits")
    for layer in graph:
        if layer.op is Op.GAP:   # the token sum's LIF: U's threshold times the tokens (GAP without a division)
            thresholds[layer.neurons.domain] = thresholds[layer.u_domain] * layer.height * layer.width

    qm = QuantizedModel(config=config, w_bits=w_bits, pixel_max=pixel_max, pixel_bits=int(pixel_max).bit_length(),
                        shift=1, weights=weights, thresholds=thresholds, widths={}, weight_shifts=shifts,
                        scales=scales)
    needed = analyze_widths(qm)
    chosen = {f: max(r["bits"] for r in needed[f].values()) for f in WIDTH_FIELDS}
    chosen.update(widths or {})
    qm.widths = chosen
    check_widths(qm, needed)
    return qm


# ------------------------------------------------------------------------------------------ widths


def _acc_range(w: torch.Tensor, b: torch.Tensor, in_max: int = 1) -> tuple[int, int]:
    """Bounds of ``b + sum_c w[:, c] * x_c`` over inputs ``x_c`` in ``[0, in_max]`` (per output, then overall)."""
    wf = w.flatten(1)
    lo = (b + in_max * wf.clamp(max=0).sum(1)).min().item()
    hi = (b + in_max * wf.clamp(min=0).sum(1)).max().item()
    return int(lo), int(hi)


def _lif_range(lo: int, hi: int, th: int | list[int]) -> tuple[int, int]:
    """Bounds of the membrane H of a LIF whose input lies in ``[lo, hi]`` (see docs/arithmetic.md)."""
    return min(lo, 0), max(hi, max(th if isinstance(th, list) else [th]) - 1)


def analyze_widths(qm: QuantizedModel) -> dict[str, dict[str, dict]]:
    """Per width field, per layer: ``{"range": [lo, hi], "bits": needed}`` from the integer weights.

    * ``acc_bits``: each synaptic layer's accumulator (bias + all positive / all negative
      weights of an output, times ``pixel_max`` for the first layer);
    * ``u_bits``: the residual stream after each shortcut add (bounds add up branch by branch);
    * ``v_bits``: each LIF membrane (its input range and threshold);
    * ``gap_bits``: the token sum and the head LIF's membrane;
    * ``logit_bits``: the head's output summed over T.
    """
    graph = layer_graph(qm.config)
    W, th, T = qm.weights, qm.thresholds, graph.T
    out: dict[str, dict[str, dict]] = {f: {} for f in WIDTH_FIELDS}

    def put(field_, name, lo, hi):
        out[field_][name] = {"range": [int(lo), int(hi)], "bits": bits_for_range(lo, hi)}

    u = (0, 0)        # the residual stream's range
    for layer in graph:
        name = layer.name
        if layer.synaptic:
            in_max = qm.pixel_max if layer.op is Op.PIXEL_CONV else 1
            w = W[f"{name}.weight"] << qm.weight_shifts.get(name, 0)
            lo, hi = _acc_range(w, W[f"{name}.bias"], in_max)
            put("acc_bits", name, lo, hi)
            if layer.shortcut is Shortcut.ADD:
                u = (u[0] + lo, u[1] + hi)
                put("u_bits", name, *u)
            elif layer.shortcut is not None:      # written (a max-pool keeps the range)
                u = (lo, hi)
            if layer.logits:
                put("logit_bits", name, T * lo, T * hi)
        elif layer.op is Op.LIF_U:
            lo, hi = u
        elif layer.op is Op.SDSA:
            lo, hi = 0, 2 * layer.height * layer.width   # twice the K AND V count (scale 2), threshold 1
        elif layer.op is Op.LINEAR_ATTENTION:    # twice Y: up to C_h KV rows of counts up to N each
            lo, hi = 0, 2 * (layer.cin // layer.heads) * layer.height * layer.width
        elif layer.op is Op.GAP:
            n_tok = layer.height * layer.width
            lo, hi = n_tok * u[0], n_tok * u[1]
        if layer.neurons is not None:
            domain = layer.neurons.domain
            put(layer.neurons.width, layer.neurons.name,
                *_lif_range(lo, hi, th[domain] if domain else layer.neurons.threshold))
    return out


def check_widths(qm: QuantizedModel, needed: dict | None = None) -> None:
    """Refuse widths that could overflow: names the first layer whose range does not fit."""
    needed = needed or analyze_widths(qm)
    for f in WIDTH_FIELDS:
        if f not in qm.widths:
            raise QuantizationError(f"width {f} is missing")
        have = qm.widths[f]
        for name, r in needed[f].items():
            if r["bits"] > have:
                raise QuantizationError(
                    f"layer {name}: {f}={have} could overflow: its values span {r['range']}, "
                    f"which needs {r['bits']} bits"
                )


def embedded_qmodel() -> QuantizedModel:
    """The embedded checkpoint quantized to 8-bit weights (the default model of the demo, ``sim``, ``run``)."""
    from .checkpoint import load_embedded
    from .data import PIXEL_MAX

    return quantize(load_embedded(), w_bits=8, pixel_max=PIXEL_MAX)
