"""The layer graph: the one description of a network that every stage walks.

A :class:`LayerGraph` is an ordered list of typed :class:`Layer` specs built from a model config
(:func:`layer_graph`). Each spec names its op, its shapes, the values it reads, the neurons its
output fires (:class:`Neurons`, with the LIF domain whose threshold they use), how it enters the
residual stream U (:class:`Shortcut`) and, for synaptic layers, the float modules it comes from.
The quantizer (folding, LIF domains, width analysis), the integer golden model (``forward`` and its
trace), the ``.sfq`` shape checks and the firmware compiler iterate it; none of them lists layers.
Adding an architecture means adding its graph builder (and any new op kinds), nothing else.

Values: a layer's output is named by the layer (``inputs`` refer to layer names), except three
memories: :data:`PIXELS` (the input image), :data:`U` (the residual stream, which layers with a
``shortcut`` write or add into, and ``LIF_U`` / ``GAP`` layers read) and the logits (written by
the layer with ``logits=True``, summed over T).

The Spike-driven Transformer (V1) graph, :func:`sdt_graph`::

    sps.conv0 (pixels, 3x3) -> LIF sps.lif0 [-> sps.pool0]      stages 0..2: conv3x3 -> LIF [-> OR-pool]
    sps.conv1, sps.conv2 likewise
    sps.conv3 (3x3) -> U (written, max-pooled if pooling_stat[3])
    sps.lif3 = LIF(U); sps.rpe (3x3) -> U += ...
    block.i: shortcut_lif = LIF(U); q, k, v (1x1, one group) -> LIF; sdsa; proj (1x1) -> U += ...
             fc1_lif = LIF(U); fc1 (1x1) -> LIF; fc2 (1x1) -> U += ...
    head.gap_lif = LIF(sum over tokens of U); head (linear) -> logits summed over T

Meta-SpikeFormer (V2), :func:`meta_graph` (layer names are the reference's module paths)::

    downsample1_1 (pixels, 7x7 / stride 2) -> U (written; a new residual-stream domain)
    ConvBlock: Conv.lif1 = LIF(U); Conv.pwconv1 (1x1, C -> 2C) -> LIF Conv.lif2;
               Conv.dw_pw (dwconv 7x7 and pwconv2 folded: a 7x7 conv, 2C -> C) -> U += ...
               lif1 = LIF(U); conv1 (3x3, C -> 4C) -> LIF lif2; conv2 (3x3, 4C -> C) -> U += ...
    downsampleN: encode_lif = LIF(U); conv (3x3 / stride) -> U (written; a new domain)
    MS_Block: attn.head_lif = LIF(U); q, k, v (RepConv + BN folded: 3x3, one group) -> LIF;
              attn.attn (linear attention, per head) -> LIF(0.5); attn.proj (RepConv folded) -> U += ...
              mlp.fc1_lif = LIF(U); mlp.fc1 (1x1) -> LIF; mlp.fc2 (1x1) -> U += ...
    head.gap_lif = LIF(sum over tokens of U); head (linear; with kd the mean of head and head_kd)
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from functools import lru_cache

from .meta_spikeformer import BLOCK_LISTS, DOWNSAMPLE_KERNELS, REFERENCE_BLOCK_COUNTS, REFERENCE_STRIDES, STAGES

__all__ = ["Op", "Shortcut", "Neurons", "Layer", "LayerGraph", "layer_graph", "sdt_graph", "meta_graph", "PIXELS",
           "U", "LOGITS_DOMAIN", "U_DOMAIN", "SYNAPTIC", "Fold"]

#: The input image (unsigned pixels, the same at every time step).
PIXELS = "pixels"
#: The residual (membrane-shortcut) stream.
U = "u"
#: The LIF domain of the residual stream: every branch adding into U shares its scale and threshold.
U_DOMAIN = "u"
#: The scale domain of the logits (one scale for all classes, so they compare).
LOGITS_DOMAIN = "head"


class Op(enum.Enum):
    """What a layer computes (``docs/arithmetic.md`` gives each op's integer arithmetic)."""

    PIXEL_CONV = "pixel_conv"     # k x k conv of unsigned pixels (bit-plane accumulation), once for all T
    CONV3X3 = "conv3x3"            # 3x3 / stride 1 / pad 1 conv of a spike map
    CONV = "conv"                  # k x k / stride / pad k // 2 conv of a spike map (V2: 7x7, strided 3x3)
    CONV1X1 = "conv1x1"            # pointwise conv of a spike map
    LINEAR = "linear"              # fully connected, on spikes of one position (the head)
    OR_POOL = "or_pool"            # 3x3 / stride 2 / pad 1 max-pool of spikes (an OR)
    LIF_U = "lif_u"                # LIF of the residual stream U
    SDSA = "sdsa"                  # spike-driven self-attention: Q AND LIF(sum over tokens of K AND V)
    LINEAR_ATTENTION = "linear_attention"   # V2: LIF(Q (K^T V)) per head, K^T V counts made at run time
    GAP = "gap"                    # sum of U over tokens, then LIF (the head's global average pool)


#: The ops that accumulate weights over input events (they have a weight and a bias).
SYNAPTIC = frozenset({Op.PIXEL_CONV, Op.CONV3X3, Op.CONV, Op.CONV1X1, Op.LINEAR})
#: The ops with a k x k kernel (weights ``[O, I, k, k]``).
SPATIAL = frozenset({Op.PIXEL_CONV, Op.CONV3X3, Op.CONV})


class Fold(enum.Enum):
    """How the quantizer turns a synaptic layer's float modules (``Layer.source``) into one weight
    and bias (``docs/arithmetic.md`` section 5)."""

    CONV_BN = "conv_bn"    # (conv, BatchNorm or None): W' = W g, b' = (b - mean) g + beta
    REPCONV = "repconv"    # (RepConv, BatchNorm): 1x1 -> BN-and-pad -> depthwise 3x3 -> 1x1 -> BN -> BN, one 3x3
    SEPCONV = "sepconv"    # (SepConv, None): its depthwise 7x7 -> pwconv2 -> bn2, one dense 7x7
    KD_HEAD = "kd_head"    # (head, head_kd): the mean of the two linear heads (the eval output with kd)


class Shortcut(enum.Enum):
    """How a synaptic layer's output enters the residual stream U (a membrane shortcut)."""

    WRITE = "write"        # U = output
    MAXPOOL = "maxpool"    # U = max_pool(output) (3x3 / stride 2 / pad 1 on integers)
    ADD = "add"            # U = U + output


@dataclass(frozen=True)
class Neurons:
    """The LIF neurons a layer's output drives.

    ``name``: the reference's LIF module (the width analysis reports its membrane under it);
    ``domain``: the threshold and scale domain (a key of ``QuantizedModel.thresholds``), ``None``
    for SDSA's attention LIF (threshold 0.5 on integer counts: fires on a count of 1 or more);
    ``width``: the design width of the membrane.
    """

    name: str
    domain: str | None
    width: str = "v_bits"
    #: the threshold of neurons without a domain (``domain`` None): SDSA's 1 at scale 2, linear
    #: attention's 8 at scale 16 (fixed by the contract, not stored in a model)
    threshold: int = 1


@dataclass(frozen=True)
class Layer:
    """One step of a network, in execution order.

    ``cin`` / ``cout``: channels in and out; ``height`` x ``width``: the input map,
    ``out_height`` x ``out_width``: the output map (a pool halves it); ``inputs``: the values read;
    ``neurons``: the LIF its output fires (its spikes are the layer's value); ``shortcut``: how it
    enters U; ``logits``: its output is summed over T into the logits; ``group``: layers of one
    group read the same input and may run as one step (their spikes side by side, in group
    order); ``source``: the float model's submodules a synaptic layer folds, and ``fold``: how.
    ``kernel`` / ``stride``: a spatial conv's window (padding ``kernel // 2``); ``heads``: linear
    attention's heads; ``u_domain``: the residual-stream domain the layer writes, adds into or
    reads (V2 starts a new one at each downsampling layer, which rewrites U).
    """

    name: str
    op: Op
    inputs: tuple[str, ...]
    cin: int
    cout: int
    height: int = 1
    width: int = 1
    out_height: int = 1
    out_width: int = 1
    neurons: Neurons | None = None
    shortcut: Shortcut | None = None
    logits: bool = False
    group: str | None = None
    source: tuple[str, str | None] | None = None
    fold: Fold = Fold.CONV_BN
    kernel: int = 3
    stride: int = 1
    heads: int = 1
    u_domain: str = U_DOMAIN

    @property
    def synaptic(self) -> bool:
        return self.op in SYNAPTIC

    @property
    def padding(self) -> int:
        return self.kernel // 2

    @property
    def conv_grid(self) -> tuple[int, int]:
        """(H, W) of a spatial conv's accumulator (``(H + 2 pad - k) // stride + 1``); the input map
        for other ops."""
        if self.op not in SPATIAL:
            return self.height, self.width
        k, p, s = self.kernel, self.padding, self.stride
        return (self.height + 2 * p - k) // s + 1, (self.width + 2 * p - k) // s + 1

    @property
    def weight_shape(self) -> tuple[int, ...]:
        """Shape of its integer weight (k x k kernels ``[O, I, k, k]``, pointwise and linear ``[O, I]``)."""
        if self.op in SPATIAL:
            return (self.cout, self.cin, self.kernel, self.kernel)
        return (self.cout, self.cin)

    @property
    def domain(self) -> str | None:
        """The scale domain of a synaptic layer's weights: its neurons' domain, its residual-stream
        domain for a shortcut branch, the logits' for the head."""
        if self.neurons is not None:
            return self.neurons.domain
        if self.shortcut is not None:
            return self.u_domain
        return LOGITS_DOMAIN if self.logits else None


@dataclass(frozen=True)
class LayerGraph:
    """An ordered network of :class:`Layer` specs and the facts its walkers share."""

    config: dict
    layers: tuple[Layer, ...]
    #: (height, width) of the token map (the residual stream's map)
    token_grid: tuple[int, int]
    #: channels of the residual stream U
    u_channels: int

    def __iter__(self):
        return iter(self.layers)

    def __len__(self) -> int:
        return len(self.layers)

    @property
    def T(self) -> int:  # noqa: N802 (the papers' name)
        return self.config["T"]

    @property
    def tokens(self) -> int:
        return self.token_grid[0] * self.token_grid[1]

    def layer(self, name: str) -> Layer:
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise KeyError(name)

    def synaptic(self) -> list[Layer]:
        """The layers with weights, in execution order."""
        return [layer for layer in self.layers if layer.synaptic]

    def domains(self) -> dict[str, list[str]]:
        """Scale domain -> the synaptic layers whose outputs it integrates (and so share its scale)."""
        out: dict[str, list[str]] = {}
        for layer in self.synaptic():
            out.setdefault(layer.domain, []).append(layer.name)
        return out

    def stream_domains(self) -> set[str]:
        """The residual-stream domains (one shared scale and threshold each; V1 has one, ``u``)."""
        return {layer.u_domain for layer in self.synaptic() if layer.shortcut is not None}

    def residual_branches(self) -> list[str]:
        """The layers that write or add into the residual stream U (the only ones with a weight shift)."""
        return [layer.name for layer in self.synaptic() if layer.shortcut is not None]

    def weight_shapes(self) -> dict[str, tuple[int, ...]]:
        """Shape of every integer tensor (``<layer>.weight``, ``<layer>.bias``) a quantized model has."""
        shapes: dict[str, tuple[int, ...]] = {}
        for layer in self.synaptic():
            shapes[f"{layer.name}.weight"] = layer.weight_shape
            shapes[f"{layer.name}.bias"] = (layer.cout,)
        return shapes

    def threshold_channels(self) -> dict[str, int]:
        """Threshold domain -> its channel count (the neurons it covers); one entry per domain."""
        out: dict[str, int] = {}
        for layer in self.layers:
            if layer.neurons is not None and layer.neurons.domain is not None:
                out.setdefault(layer.neurons.domain, layer.cin if layer.op in (Op.LIF_U, Op.GAP) else layer.cout)
            if layer.op is Op.GAP:    # its threshold is its stream's times the tokens (even with no LIF of U after)
                out.setdefault(layer.u_domain, layer.cin)
        return out

    def largest_tensor(self) -> tuple[int, str]:
        """(elements, description) of the largest int64 tensor the golden model builds for one image:
        each 3x3 layer's im2col (the pixel layer's once, not T times) and each layer's output (a
        k x k / strided conv accumulates tap by tap: no im2col)."""
        T = self.T
        sizes = []
        for layer in self.layers:
            h, w, k = *layer.conv_grid, layer.kernel
            if layer.op in (Op.PIXEL_CONV, Op.CONV3X3):
                t = 1 if layer.op is Op.PIXEL_CONV else T
                taps = k * k * layer.cin
                shape = f"[{h}, {w}, {taps}]" if t == 1 else f"[{t}, {h}, {w}, {taps}]"
                sizes.append((t * taps * h * w, f"{layer.name}'s {k}x{k} im2col {shape}"))
            if layer.op is Op.CONV:   # tap by tap over the zero-padded input
                ph, pw = layer.height + 2 * layer.padding, layer.width + 2 * layer.padding
                sizes.append((T * layer.cin * ph * pw, f"{layer.name}'s padded input [{T}, {layer.cin}, {ph}, {pw}]"))
            if layer.op is Op.LINEAR_ATTENTION:
                ch = layer.cin // layer.heads
                sizes.append((T * layer.heads * ch * ch,
                              f"{layer.name}'s K^T V counts [{T}, {layer.heads}, {ch}, {ch}]"))
            # a synaptic layer's accumulator is at its conv's resolution (V1: a max-pool may follow)
            oh, ow = layer.conv_grid if layer.synaptic else (layer.out_height, layer.out_width)
            sizes.append((T * layer.cout * oh * ow, f"{layer.name}'s output [{T}, {layer.cout}, {oh}, {ow}]"))
        return max(sizes)


def _pooled(h: int, w: int) -> tuple[int, int]:
    """The map after a 3x3 / stride-2 / pad-1 pool."""
    return (h - 1) // 2 + 1, (w - 1) // 2 + 1


def sdt_graph(config: dict) -> LayerGraph:
    """The Spike-driven Transformer (V1, ``SpikeDrivenTransformer``) of ``config``.

    Layer names are the quantized model's (``sps.conv0`` ... ``head``); ``source`` gives the
    reference's module names (``patch_embed.proj_conv1``, ``block.0.attn.q_conv``, ...).
    """
    d, stat = config["embed_dims"], config["pooling_stat"]
    hidden = int(d * config["mlp_ratios"])
    h, w = config["img_size_h"], config["img_size_w"]
    chans = [config["in_channels"], d // 8, d // 4, d // 2, d]
    layers: list[Layer] = []
    prev = PIXELS
    for i, sfx in enumerate(("", "1", "2")):      # the reference's attribute suffixes
        op = Op.PIXEL_CONV if i == 0 else Op.CONV3X3
        name = f"sps.conv{i}"
        layers.append(Layer(name, op, (prev,), chans[i], chans[i + 1], h, w, h, w,
                            neurons=Neurons(f"sps.lif{i}", f"sps.lif{i}"),
                            source=(f"patch_embed.proj_conv{sfx}", f"patch_embed.proj_bn{sfx}")))
        prev = name
        if stat[i] == "1":
            ph, pw = _pooled(h, w)
            layers.append(Layer(f"sps.pool{i}", Op.OR_POOL, (prev,), chans[i + 1], chans[i + 1], h, w, ph, pw))
            prev, (h, w) = f"sps.pool{i}", (ph, pw)
    th, tw = _pooled(h, w) if stat[3] == "1" else (h, w)
    layers.append(Layer("sps.conv3", Op.CONV3X3, (prev,), chans[3], d, h, w, th, tw,
                        shortcut=Shortcut.MAXPOOL if stat[3] == "1" else Shortcut.WRITE,
                        source=("patch_embed.proj_conv3", "patch_embed.proj_bn3")))
    tok = dict(height=th, width=tw, out_height=th, out_width=tw)

    def lif_u(name: str) -> Layer:
        return Layer(name, Op.LIF_U, (U,), d, d, neurons=Neurons(name, U_DOMAIN), **tok)

    def branch(name: str, op: Op, src: str, cin: int, cout: int, module: str, bn: str, **kw) -> Layer:
        return Layer(name, op, (src,), cin, cout, source=(module, bn), **tok, **kw)

    layers += [lif_u("sps.lif3"),
               branch("sps.rpe", Op.CONV3X3, "sps.lif3", d, d, "patch_embed.rpe_conv", "patch_embed.rpe_bn",
                      shortcut=Shortcut.ADD)]
    for i in range(config["depths"]):
        pre, ref = f"block.{i}", f"block.{i}"
        layers.append(lif_u(f"{pre}.attn.shortcut_lif"))
        for n in ("q", "k", "v"):
            layers.append(branch(f"{pre}.attn.{n}", Op.CONV1X1, f"{pre}.attn.shortcut_lif", d, d,
                                 f"{ref}.attn.{n}_conv", f"{ref}.attn.{n}_bn",
                                 neurons=Neurons(f"{pre}.attn.{n}_lif", f"{pre}.attn.{n}"), group=f"{pre}.attn.qkv"))
        layers.append(Layer(f"{pre}.attn.sdsa", Op.SDSA, tuple(f"{pre}.attn.{n}" for n in "qkv"), d, d,
                            neurons=Neurons(f"{pre}.attn.attn_lif", None), **tok))
        layers += [branch(f"{pre}.attn.proj", Op.CONV1X1, f"{pre}.attn.sdsa", d, d, f"{ref}.attn.proj_conv",
                          f"{ref}.attn.proj_bn", shortcut=Shortcut.ADD),
                   lif_u(f"{pre}.mlp.fc1_lif"),
                   branch(f"{pre}.mlp.fc1", Op.CONV1X1, f"{pre}.mlp.fc1_lif", d, hidden, f"{ref}.mlp.fc1_conv",
                          f"{ref}.mlp.fc1_bn", neurons=Neurons(f"{pre}.mlp.fc2_lif", f"{pre}.mlp.hidden")),
                   branch(f"{pre}.mlp.fc2", Op.CONV1X1, f"{pre}.mlp.fc1", hidden, d, f"{ref}.mlp.fc2_conv",
                          f"{ref}.mlp.fc2_bn", shortcut=Shortcut.ADD)]
    layers += [Layer("head.gap_lif", Op.GAP, (U,), d, d, th, tw, neurons=Neurons("head.token_sum", "head.lif",
                                                                                   "gap_bits")),
               Layer("head", Op.LINEAR, ("head.gap_lif",), d, config["num_classes"], logits=True,
                     source=("head", None))]
    return LayerGraph(config=dict(config), layers=tuple(layers), token_grid=(th, tw), u_channels=d)


def _conv_out(h: int, w: int, k: int, stride: int) -> tuple[int, int]:
    p = k // 2
    return (h + 2 * p - k) // stride + 1, (w + 2 * p - k) // stride + 1


class _MetaBuilder:
    """Builds :func:`meta_graph`'s layers stage by stage (U's domain, channels and map change at each
    downsampling layer)."""

    def __init__(self, config: dict):
        self.config = config
        self.layers: list[Layer] = []
        self.h, self.w = config["img_size_h"], config["img_size_w"]
        self.c = config["in_channels"]
        self.u_domain = U_DOMAIN

    def at(self, **kw) -> dict:
        """The current map's shape fields (and the current U domain)."""
        return dict(height=self.h, width=self.w, out_height=self.h, out_width=self.w, u_domain=self.u_domain, **kw)

    def lif_u(self, name: str) -> str:
        self.layers.append(Layer(name, Op.LIF_U, (U,), self.c, self.c, neurons=Neurons(name, self.u_domain),
                                 **self.at()))
        return name

    def conv(self, name: str, op: Op, src: str, cout: int, source: tuple, neurons: Neurons | None = None,
             shortcut: Shortcut | None = None, cin: int | None = None, **kw) -> str:
        self.layers.append(Layer(name, op, (src,), self.c if cin is None else cin, cout, neurons=neurons,
                                 shortcut=shortcut, source=source, **self.at(**kw)))
        return name

    def downsample(self, i: int, name: str, k: int, stride: int, width: int) -> None:
        """LIF(U) (not for the first, which sees the pixels) -> conv k x k / stride -> U written."""
        src = PIXELS if i == 0 else self.lif_u(f"{name}.encode_lif")
        op = Op.PIXEL_CONV if i == 0 else Op.CONV
        oh, ow = _conv_out(self.h, self.w, k, stride)
        self.u_domain = f"u.{name}"
        self.layers.append(Layer(name, op, (src,), self.c, width, self.h, self.w, oh, ow, shortcut=Shortcut.WRITE,
                                 source=(f"{name}.encode_conv", f"{name}.encode_bn"), kernel=k, stride=stride,
                                 u_domain=self.u_domain))
        self.h, self.w, self.c = oh, ow, width

    def conv_block(self, pre: str) -> None:
        """MS_ConvBlock: U += SepConv(U); U += conv2(LIF(conv1(LIF(U))))."""
        c = self.c
        a = self.conv(f"{pre}.Conv.pwconv1", Op.CONV1X1, self.lif_u(f"{pre}.Conv.lif1"), 2 * c,
                      (f"{pre}.Conv.pwconv1", f"{pre}.Conv.bn1"),
                      neurons=Neurons(f"{pre}.Conv.lif2", f"{pre}.Conv.lif2"), kernel=1)
        self.conv(f"{pre}.Conv.dw_pw", Op.CONV, a, c, (f"{pre}.Conv", None), shortcut=Shortcut.ADD, cin=2 * c,
                  kernel=7, fold=Fold.SEPCONV)
        h = self.conv(f"{pre}.conv1", Op.CONV3X3, self.lif_u(f"{pre}.lif1"), 4 * c, (f"{pre}.conv1", f"{pre}.bn1"),
                      neurons=Neurons(f"{pre}.lif2", f"{pre}.lif2"))
        self.conv(f"{pre}.conv2", Op.CONV3X3, h, c, (f"{pre}.conv2", f"{pre}.bn2"), shortcut=Shortcut.ADD, cin=4 * c)

    def transformer_block(self, pre: str) -> None:
        """MS_Block: U += proj(LinearAttention(q, k, v of LIF(U))); U += fc2(LIF(fc1(LIF(U))))."""
        c, heads = self.c, self.config["num_heads"]
        s = self.lif_u(f"{pre}.attn.head_lif")
        for n in ("q", "k", "v"):
            self.conv(f"{pre}.attn.{n}", Op.CONV3X3, s, c, (f"{pre}.attn.{n}_conv.0", f"{pre}.attn.{n}_conv.1"),
                      neurons=Neurons(f"{pre}.attn.{n}_lif", f"{pre}.attn.{n}"), group=f"{pre}.attn.qkv",
                      fold=Fold.REPCONV)
        self.layers.append(Layer(f"{pre}.attn.attn", Op.LINEAR_ATTENTION, tuple(f"{pre}.attn.{n}" for n in "qkv"),
                                 c, c, neurons=Neurons(f"{pre}.attn.attn_lif", None, threshold=8), heads=heads,
                                 **self.at()))
        self.conv(f"{pre}.attn.proj", Op.CONV3X3, f"{pre}.attn.attn", c,
                  (f"{pre}.attn.proj_conv.0", f"{pre}.attn.proj_conv.1"), shortcut=Shortcut.ADD, fold=Fold.REPCONV)
        hidden = int(c * self.config.get("mlp_ratios", 4))
        h = self.conv(f"{pre}.mlp.fc1", Op.CONV1X1, self.lif_u(f"{pre}.mlp.fc1_lif"), hidden,
                      (f"{pre}.mlp.fc1_conv", f"{pre}.mlp.fc1_bn"),
                      neurons=Neurons(f"{pre}.mlp.fc2_lif", f"{pre}.mlp.hidden"), kernel=1)
        self.conv(f"{pre}.mlp.fc2", Op.CONV1X1, h, c, (f"{pre}.mlp.fc2_conv", f"{pre}.mlp.fc2_bn"),
                  shortcut=Shortcut.ADD, cin=hidden, kernel=1)

    def head(self) -> None:
        c, kd = self.c, self.config.get("kd", False)
        self.layers.append(Layer("head.gap_lif", Op.GAP, (U,), c, c, self.h, self.w, u_domain=self.u_domain,
                                 neurons=Neurons("head.token_sum", "head.lif", "gap_bits")))
        self.layers.append(Layer("head", Op.LINEAR, ("head.gap_lif",), c, self.config["num_classes"], logits=True,
                                 source=("head", "head_kd" if kd else None), fold=Fold.KD_HEAD if kd else Fold.CONV_BN,
                                 kernel=1))


def meta_graph(config: dict) -> LayerGraph:
    """Meta-SpikeFormer (V2, ``MetaSpikeFormer``) of ``config``: five downsampling layers (the first
    on pixels), conv blocks, transformer blocks with linear attention, the head. RepConv and SepConv
    are one folded conv each (:class:`Fold`)."""
    b = _MetaBuilder(config)
    counts = tuple(config.get("block_counts", REFERENCE_BLOCK_COUNTS))
    strides = tuple(config.get("strides", REFERENCE_STRIDES))
    widths = (config["embed_dim"][0] // 2, *config["embed_dim"])
    for i, (name, *block_lists) in enumerate(STAGES):   # the float model's layout
        b.downsample(i, name, DOWNSAMPLE_KERNELS[i][0], strides[i], widths[i])
        for list_name in block_lists:
            for j in range(counts[BLOCK_LISTS.index(list_name)]):
                (b.conv_block if list_name.startswith("ConvBlock") else b.transformer_block)(f"{list_name}.{j}")
    b.head()
    return LayerGraph(config=dict(config), layers=tuple(b.layers), token_grid=(b.h, b.w), u_channels=b.c)


#: Graph builder of each ``"arch"`` (``model/configs.py``; a config without the key is V1).
GRAPH_BUILDERS = {"sdt": sdt_graph, "meta-spikeformer": meta_graph}


def _key(config: dict) -> tuple:
    return tuple(sorted((k, tuple(v) if isinstance(v, list) else v) for k, v in config.items()))


@lru_cache(maxsize=64)
def _cached(key: tuple) -> LayerGraph:
    config = dict(key)
    arch = config.get("arch", "sdt")
    if arch not in GRAPH_BUILDERS:
        raise ValueError(f"unknown arch {arch!r}; known archs: {', '.join(GRAPH_BUILDERS)}")
    return GRAPH_BUILDERS[arch](config)


def layer_graph(config: dict) -> LayerGraph:
    """The :class:`LayerGraph` of a model config (the architecture's graph builder)."""
    return _cached(_key(config))
