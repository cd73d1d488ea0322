"""The integer golden model: the arithmetic the accelerator must reproduce bit for bit.

Every function here works on PyTorch **integer** tensors (``torch.int64``; spikes
are 0/1 integers) and never creates a floating-point tensor; a float input is
refused. The op functions are the specification of the hardware blocks and are
imported one by one by their testbenches:

=======================  ==============================================  ==================
function                 computes                                        hardware block
=======================  ==============================================  ==================
``sparse_accumulate``    ``bias + sum of w[:, c] << s over spikes c``    SparseAccumulator
``conv3x3_accumulate``   3x3 / stride 1 / pad 1 conv of a spike map      SparseAccumulator
``pixel_accumulate``     first conv on unsigned pixels, by bit-planes    SparseAccumulator
``lif``                  ``H = V + ((X - V) >> k)``, fire, hard reset    LIFArray
``or_pool``              3x3 / stride 2 / pad 1 max-pool of spikes (OR) pool unit
``max_pool``             same window, integer max                        pool unit
``shortcut_add``         membrane-shortcut integer add                   shortcut adder
``sdsa``                 ``Q AND LIF(2 * sum_tokens(K AND V))``          SDSAUnit
``token_sum``            global average pool as a sum over tokens        token-sum (GAP)
``conv_accumulate``      k x k / stride / zero-pad conv of a spike map   (V2) conv engine
``depthwise_accumulate`` per-channel k x k conv of a spike map           (V2) depthwise engine
``bitplane_accumulate``  pointwise conv of signed integers, by bit-planes (V2) SepConv's 1x1
``linear_attention``     ``LIF(Q (K^T V))`` per head, counts as weights  (V2) linear attention
=======================  ==============================================  ==================

Widths: an op given a width (``acc_bits``, ``v_bits``, ``u_bits``) checks its
result fits; accumulators and the shortcut stream raise :class:`WidthOverflow`
rather than wrap (the quantizer's width analysis guarantees it never happens
for an accepted model); the LIF membrane saturates at ``v_bits`` as the
hardware does. The arithmetic is written down in ``docs/arithmetic.md``.

:func:`forward` runs a whole :class:`~spikeforge.model.quantize.QuantizedModel`
and, on request, records exact event and synaptic-operation counts per layer
(:class:`Trace`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from .graph import PIXELS, Op, Shortcut, layer_graph

__all__ = [
    "WidthOverflow", "signed_range", "bits_for_range",
    "sparse_accumulate", "conv1x1_accumulate", "conv3x3_accumulate", "pixel_accumulate",
    "lif", "or_pool", "max_pool", "shortcut_add", "sdsa", "token_sum",
    "conv_accumulate", "depthwise_accumulate", "bitplane_accumulate", "linear_attention",
    "LayerTrace", "Trace", "forward", "E_AC_PJ", "E_MAC_PJ",
]

#: Energy per accumulate (synaptic operation) and per multiply-accumulate, 45 nm, as in the paper.
E_AC_PJ = 0.9
E_MAC_PJ = 4.6

INT = torch.int64


class WidthOverflow(OverflowError):
    """A value does not fit the width the hardware was given for it."""


# ------------------------------------------------------------------------------------------ widths


def signed_range(bits: int) -> tuple[int, int]:
    """``(min, max)`` of a two's-complement integer of ``bits`` bits."""
    return -(1 << (bits - 1)), (1 << (bits - 1)) - 1


def bits_for_range(lo: int, hi: int) -> int:
    """Smallest two's-complement width holding every integer in ``[lo, hi]`` (at least 2)."""
    bits = 2
    while not (signed_range(bits)[0] <= lo and hi <= signed_range(bits)[1]):
        bits += 1
    return bits


def _int(name: str, t: torch.Tensor) -> torch.Tensor:
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{name}: expected an integer tensor, got {type(t).__name__}")
    if t.is_floating_point() or t.is_complex():
        raise TypeError(f"{name}: expected an integer tensor, got {t.dtype}")
    return t.to(INT)


def _spikes(name: str, s: torch.Tensor) -> torch.Tensor:
    s = _int(name, s)
    if s.numel() and (int(s.min()) < 0 or int(s.max()) > 1):
        raise ValueError(f"{name}: spikes must be 0 or 1, got values in [{int(s.min())}, {int(s.max())}]")
    return s


def _check_width(name: str, x: torch.Tensor, bits: int | None) -> torch.Tensor:
    if bits is not None and x.numel():
        lo, hi = signed_range(bits)
        xmin, xmax = int(x.min()), int(x.max())
        if xmin < lo or xmax > hi:
            raise WidthOverflow(f"{name}: value range [{xmin}, {xmax}] does not fit {bits} bits [{lo}, {hi}]")
    return x


# ------------------------------------------------------------------------------------------ accumulate


def sparse_accumulate(spikes: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None,
                      acc_bits: int | None = None, weight_shift: int = 0) -> torch.Tensor:
    """``acc[..., o] = bias[o] + sum over c with spikes[..., c] == 1 of (weight[o, c] << weight_shift)``.

    ``spikes [..., C_in]`` (0/1), ``weight [C_out, C_in]``, ``bias [C_out]``;
    returns ``[..., C_out]``. Only additions of weight columns: each set spike
    adds its column ``weight[:, c]`` (the event-driven accumulation), shifted left by
    the layer's constant ``weight_shift`` (wiring, not a multiplier).
    """
    s = _spikes("sparse_accumulate: spikes", spikes)
    w = _int("sparse_accumulate: weight", weight)
    if w.dim() != 2 or s.shape[-1] != w.shape[1]:
        raise ValueError(f"sparse_accumulate: spikes [..., {s.shape[-1]}] do not match weight {list(w.shape)}")
    # A 0/1 matrix product is exactly the sum of the selected columns.
    acc = s @ (w << weight_shift).T
    if bias is not None:
        acc = acc + _int("sparse_accumulate: bias", bias)
    return _check_width("sparse_accumulate", acc, acc_bits)


def conv1x1_accumulate(spikes: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None,
                       acc_bits: int | None = None, weight_shift: int = 0) -> torch.Tensor:
    """Pointwise conv of a spike map: ``spikes [..., C_in, H, W]``, ``weight [C_out, C_in]`` -> ``[..., C_out, H, W]``."""
    s = spikes.movedim(-3, -1)
    return sparse_accumulate(s, weight, bias, acc_bits, weight_shift).movedim(-1, -3)


def _im2col3x3(x: torch.Tensor) -> torch.Tensor:
    """``[N, C, H, W]`` -> ``[N, H, W, C * 9]`` (zero padding 1), taps ordered as ``weight.flatten(1)``."""
    n, c, h, w = x.shape
    p = F.pad(x, (1, 1, 1, 1))
    taps = [p[:, :, dy:dy + h, dx:dx + w] for dy in range(3) for dx in range(3)]  # 9 x [N, C, H, W]
    return torch.stack(taps, dim=2).reshape(n, c * 9, h, w).permute(0, 2, 3, 1)


def conv3x3_accumulate(spikes: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None,
                       acc_bits: int | None = None, weight_shift: int = 0) -> torch.Tensor:
    """3x3, stride 1, zero-padding 1 conv of a spike map by accumulation.

    ``spikes [N, C_in, H, W]`` (0/1), ``weight [C_out, C_in, 3, 3]`` -> ``[N, C_out, H, W]``.
    Equivalently, each input spike at ``(c, y, x)`` scatters ``weight[:, c, 1 + y - y', 1 + x - x']``
    into the 3x3 neighbourhood ``(y', x')`` that lies inside the map.
    """
    s = _spikes("conv3x3_accumulate: spikes", spikes)
    w = _int("conv3x3_accumulate: weight", weight)
    if s.dim() != 4 or w.dim() != 4 or w.shape[2:] != (3, 3) or w.shape[1] != s.shape[1]:
        raise ValueError(f"conv3x3_accumulate: spikes {list(s.shape)} do not match weight {list(w.shape)}")
    acc = sparse_accumulate(_im2col3x3(s), w.flatten(1), bias, weight_shift=weight_shift)
    return _check_width("conv3x3_accumulate", acc.permute(0, 3, 1, 2), acc_bits)


def _conv_geometry(name: str, s: torch.Tensor, w: torch.Tensor, stride: int, padding: int | None,
                   per_channel: bool = False) -> tuple[int, int, int, int]:
    """Check a k x k conv's operands; ``(k, padding, H_out, W_out)``."""
    k = w.shape[-1] if w.dim() == 4 else -1
    c_in = w.shape[0] if per_channel else (w.shape[1] if w.dim() == 4 else -1)
    if (s.dim() != 4 or w.dim() != 4 or w.shape[-2] != k or c_in != s.shape[1]
            or (per_channel and w.shape[1] != 1)):
        want = "[C, 1, k, k]" if per_channel else "[C_out, C_in, k, k]"
        raise ValueError(f"{name}: spikes {list(s.shape)} do not match weight {list(w.shape)} (expected {want})")
    padding = k // 2 if padding is None else padding
    if not (isinstance(stride, int) and stride >= 1 and isinstance(padding, int) and 0 <= padding < k):
        raise ValueError(f"{name}: stride must be >= 1 and padding in 0..{k - 1}, got stride {stride!r}, "
                         f"padding {padding!r}")
    h_out = (s.shape[2] + 2 * padding - k) // stride + 1
    w_out = (s.shape[3] + 2 * padding - k) // stride + 1
    if h_out < 1 or w_out < 1:
        raise ValueError(f"{name}: a {k}x{k} kernel with padding {padding} does not fit a "
                         f"{s.shape[2]}x{s.shape[3]} map")
    return k, padding, h_out, w_out


def _taps(x: torch.Tensor, k: int, stride: int, padding: int, h_out: int, w_out: int):
    """``(dy, dx, [N, C, H_out, W_out])`` for each tap of a k x k window: the input each output sees
    at that tap (zero padding). One tap at a time: memory stays at the map's size, not k * k times it."""
    p = F.pad(x, (padding,) * 4)
    for dy in range(k):
        for dx in range(k):
            yield dy, dx, p[:, :, dy:dy + stride * (h_out - 1) + 1:stride, dx:dx + stride * (w_out - 1) + 1:stride]


def conv_accumulate(spikes: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None,
                    stride: int = 1, padding: int | None = None, acc_bits: int | None = None,
                    weight_shift: int = 0) -> torch.Tensor:
    """k x k conv of a spike map with a stride and zero padding (default ``k // 2``), by accumulation.

    ``spikes [N, C_in, H, W]`` (0/1), ``weight [C_out, C_in, k, k]`` -> ``[N, C_out, H_out, W_out]``,
    ``H_out = (H + 2 * padding - k) // stride + 1``. Scatter view: an input spike at ``(c, y, x)``
    adds ``weight[:, c, y + padding - stride * y', x + padding - stride * x']`` to each output
    ``(y', x')`` whose window holds it. ``conv3x3_accumulate`` is the case k = 3, stride 1.
    """
    s = _spikes("conv_accumulate: spikes", spikes)
    w = _int("conv_accumulate: weight", weight)
    k, padding, h_out, w_out = _conv_geometry("conv_accumulate", s, w, stride, padding)
    acc = torch.zeros(s.shape[0], h_out, w_out, w.shape[0], dtype=INT)
    for dy, dx, tap in _taps(s, k, stride, padding, h_out, w_out):
        acc += sparse_accumulate(tap.movedim(1, -1), w[:, :, dy, dx], weight_shift=weight_shift)
    if bias is not None:
        acc += _int("conv_accumulate: bias", bias)
    return _check_width("conv_accumulate", acc.permute(0, 3, 1, 2), acc_bits)


def depthwise_accumulate(spikes: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None,
                         stride: int = 1, padding: int | None = None, acc_bits: int | None = None,
                         weight_shift: int = 0) -> torch.Tensor:
    """Depthwise (one filter per channel) k x k conv of a spike map, by accumulation.

    ``spikes [N, C, H, W]`` (0/1), ``weight [C, 1, k, k]`` (PyTorch's ``groups = C`` layout) ->
    ``[N, C, H_out, W_out]``: an input spike of channel c adds only to channel c's outputs,
    ``weight[c, 0, y + padding - stride * y', x + padding - stride * x'] << weight_shift``.
    """
    s = _spikes("depthwise_accumulate: spikes", spikes)
    w = _int("depthwise_accumulate: weight", weight)
    k, padding, h_out, w_out = _conv_geometry("depthwise_accumulate", s, w, stride, padding, per_channel=True)
    acc = torch.zeros(s.shape[0], s.shape[1], h_out, w_out, dtype=INT)
    for dy, dx, tap in _taps(s, k, stride, padding, h_out, w_out):       # a 0/1 tap selects its weight
        acc += tap * (w[:, 0, dy, dx] << weight_shift).reshape(1, -1, 1, 1)
    if bias is not None:
        acc = acc + _int("depthwise_accumulate: bias", bias).reshape(1, -1, 1, 1)
    return _check_width("depthwise_accumulate", acc, acc_bits)


def bitplane_accumulate(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None,
                        x_bits: int = 8, acc_bits: int | None = None, weight_shift: int = 0) -> torch.Tensor:
    """Pointwise conv of signed integers, multiplier-free by two's-complement bit-planes.

    ``x [..., C_in, H, W]`` in the ``x_bits`` range, ``weight [C_out, C_in]`` -> ``[..., C_out, H, W]``:
    ``acc = bias + sum_{b < x_bits - 1} (conv1x1(bit b of x) << b) - (conv1x1(bit x_bits - 1 of x)
    << (x_bits - 1))``, which equals ``bias + weight @ x`` (each set bit is an event; the sign bit's
    events subtract). Weights shifted by ``weight_shift`` as in :func:`sparse_accumulate`.
    """
    xi = _check_width("bitplane_accumulate: x", _int("bitplane_accumulate: x", x), x_bits)
    w = _int("bitplane_accumulate: weight", weight)
    acc = None
    for b in range(x_bits):
        plane = conv1x1_accumulate((xi >> b) & 1, w, weight_shift=weight_shift) << b
        acc = plane if acc is None else (acc - plane if b == x_bits - 1 else acc + plane)
    if bias is not None:
        acc = acc + _int("bitplane_accumulate: bias", bias).reshape(-1, 1, 1)
    return _check_width("bitplane_accumulate", acc, acc_bits)


def pixel_accumulate(pixels: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None,
                     pixel_bits: int = 8, acc_bits: int | None = None, stride: int = 1,
                     padding: int | None = None) -> torch.Tensor:
    """The first (real-valued) conv on unsigned pixels, multiplier-free by bit-planes.

    ``acc = bias + sum_b (conv_accumulate(bit b of pixels, stride, padding) << b)`` for
    ``b = 0 .. pixel_bits - 1``, which equals ``bias + conv(pixels, weight)``.
    ``pixels [N, C_in, H, W]`` in ``[0, 2**pixel_bits)``; ``weight [C_out, C_in, k, k]`` (V1: 3x3,
    stride 1; Meta-SpikeFormer: 7x7, stride 2, padding 3).
    """
    p = _int("pixel_accumulate: pixels", pixels)
    if p.numel() and (int(p.min()) < 0 or int(p.max()) >= (1 << pixel_bits)):
        raise ValueError(f"pixel_accumulate: pixels must be in [0, {(1 << pixel_bits) - 1}], "
                         f"got [{int(p.min())}, {int(p.max())}]")
    acc = None
    for b in range(pixel_bits):
        plane = conv_accumulate((p >> b) & 1, weight, stride=stride, padding=padding) << b
        acc = plane if acc is None else acc + plane
    if bias is not None:
        acc = acc + _int("pixel_accumulate: bias", bias).reshape(1, -1, 1, 1)
    return _check_width("pixel_accumulate", acc, acc_bits)


# ------------------------------------------------------------------------------------------ neurons


def lif(x: torch.Tensor, threshold: int | torch.Tensor, shift: int = 1, v_bits: int | None = None,
        return_membrane: bool = False):
    """Multi-step integer LIF over the first dimension (time) of ``x [T, ...]``.

    For each step, with ``V`` starting at 0::

        H = V + ((X - V) >> shift)       # arithmetic shift: floor division by 2**shift
        H = clamp(H, v_bits range)       # saturation (when v_bits is given)
        S = H >= threshold
        V = 0 where S else H             # hard reset

    ``threshold`` is an integer or an integer tensor broadcastable to ``x[0]``.
    Returns spikes ``S [T, ...]`` (0/1); with ``return_membrane`` also ``V`` after every step.
    """
    x = _int("lif: x", x)
    th = threshold if isinstance(threshold, torch.Tensor) else torch.tensor(int(threshold))
    th = _int("lif: threshold", th)
    lo, hi = signed_range(v_bits) if v_bits is not None else (None, None)
    v = torch.zeros_like(x[0])
    spikes, mems = [], []
    for xt in x:
        h = v + ((xt - v) >> shift)
        if v_bits is not None:
            h = h.clamp(lo, hi)
        s = (h >= th).to(INT)
        v = torch.where(s.bool(), torch.zeros_like(h), h)
        spikes.append(s)
        mems.append(v)
    out = torch.stack(spikes)
    return (out, torch.stack(mems)) if return_membrane else out


# ------------------------------------------------------------------------------------------ pools, adds


def _pool3x3s2(x: torch.Tensor, pad_value: int) -> torch.Tensor:
    """Max over 3x3 windows, stride 2, padding 1 (padding never wins): ``[..., H, W]`` -> ``[..., H', W']``."""
    h, w = x.shape[-2:]
    ho, wo = (h - 1) // 2 + 1, (w - 1) // 2 + 1
    p = F.pad(x, (1, 1, 1, 1), value=pad_value)
    out = None
    for dy in range(3):
        for dx in range(3):
            win = p[..., dy:dy + 2 * ho:2, dx:dx + 2 * wo:2]
            out = win if out is None else torch.maximum(out, win)
    return out


def or_pool(spikes: torch.Tensor) -> torch.Tensor:
    """3x3 / stride 2 / pad 1 max-pool of a spike map, which on 0/1 values is an OR."""
    return _pool3x3s2(_spikes("or_pool: spikes", spikes), 0)


def max_pool(x: torch.Tensor) -> torch.Tensor:
    """3x3 / stride 2 / pad 1 max-pool of integer membranes (padding is -infinity)."""
    x = _int("max_pool: x", x)
    return _pool3x3s2(x, torch.iinfo(INT).min)


def shortcut_add(u: torch.Tensor, x: torch.Tensor, u_bits: int | None = None) -> torch.Tensor:
    """Membrane shortcut: ``u + x`` (both at the residual stream's scale), checked against ``u_bits``."""
    return _check_width("shortcut_add", _int("shortcut_add: u", u) + _int("shortcut_add: x", x), u_bits)


def sdsa(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, shift: int = 1):
    """Spike-driven self-attention on spike tensors ``[T, ..., C, N]`` (N tokens last).

    ``count[t, ..., c] = sum_n (K AND V)[t, ..., c, n]`` (a column sum: one counter per channel),
    ``A = lif(count << 1, threshold=1, shift)``: the attention LIF's threshold 0.5 at scale 2,
    ``out = Q AND A`` (A broadcast over tokens). Returns ``(out, count, A)``.
    """
    q, k, v = (_spikes(f"sdsa: {n}", t) for n, t in (("q", q), ("k", k), ("v", v)))
    if not (q.shape == k.shape == v.shape):
        raise ValueError(f"sdsa: q, k, v shapes differ: {list(q.shape)}, {list(k.shape)}, {list(v.shape)}")
    count = (k & v).sum(-1)
    attn = lif(count << 1, 1, shift)
    return q & attn.unsqueeze(-1), count, attn


def linear_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, num_heads: int, threshold: int = 8,
                     shift: int = 1, v_bits: int | None = None):
    """Meta-SpikeFormer's spike-driven linear attention on spike tensors ``[T, ..., C, N]``.

    Channels split into ``num_heads`` contiguous heads of ``C_h = C / num_heads`` (as the reference
    reshapes them). Per head and time step, ``KV[i, j] = sum_n K[i, n] AND V[j, n]``: a
    ``C_h x C_h`` matrix of counts (weights made at run time); then each Q spike adds a KV row:
    ``Y[j, n] = sum over i with Q[i, n] = 1 of KV[i, j]`` (a sparse accumulation). The float
    ``attn_lif(0.125 * Y)`` with ``Vth = 0.5`` becomes ``A = lif(Y << 1, threshold)`` with
    ``threshold = 8`` (scale 16: the scale lives in the threshold). Returns ``(A, KV, Y)`` with
    ``KV [T, ..., heads, C_h, C_h]`` and ``Y`` shaped as ``q``.
    """
    q, k, v = (_spikes(f"linear_attention: {n}", t) for n, t in (("q", q), ("k", k), ("v", v)))
    if not (q.shape == k.shape == v.shape) or q.dim() < 3:
        raise ValueError(f"linear_attention: q, k, v must be [T, ..., C, N] of one shape, got "
                         f"{list(q.shape)}, {list(k.shape)}, {list(v.shape)}")
    c, n = q.shape[-2:]
    if not (isinstance(num_heads, int) and num_heads >= 1 and c % num_heads == 0):
        raise ValueError(f"linear_attention: {c} channels do not split into {num_heads!r} heads")
    heads = q.shape[:-2] + (num_heads, c // num_heads, n)
    qh, kh, vh = q.reshape(heads), k.reshape(heads), v.reshape(heads)
    kv = kh @ vh.transpose(-1, -2)                 # [..., h, i, j]: AND + count over tokens
    y = (kv.transpose(-1, -2) @ qh).reshape(q.shape)   # Y[j, n] = sum_i Q[i, n] KV[i, j]
    attn = lif(y << 1, threshold, shift, v_bits)
    return attn, kv, y


def token_sum(u: torch.Tensor) -> torch.Tensor:
    """Global average pooling without the division: ``[..., C, H, W]`` -> ``[..., C]`` sum over tokens."""
    return _int("token_sum: u", u).flatten(-2).sum(-1)


# ------------------------------------------------------------------------------------------ forward


@dataclass
class LayerTrace:
    """Exact counts for one synaptic layer over one forward (all images of the batch together).

    ``in_events``: input spikes (for the first layer: non-zero pixels); ``sops``: spike x
    output-neuron additions actually performed (border taps excluded); ``macs``: multiply-
    accumulates of the real-valued first layer; ``out_spikes`` / ``out_neurons``: spikes and
    neuron-steps of the LIF fed by this layer (``None`` where the output joins the residual stream).
    """

    name: str
    kind: str
    in_events: int = 0
    sops: int = 0
    macs: int = 0
    out_spikes: int | None = None
    out_neurons: int | None = None

    @property
    def firing_rate(self) -> float | None:
        return None if not self.out_neurons else self.out_spikes / self.out_neurons

    @property
    def energy_pj(self) -> float:
        return E_AC_PJ * self.sops + E_MAC_PJ * self.macs

    def as_dict(self) -> dict:
        return {"name": self.name, "kind": self.kind, "in_events": self.in_events, "sops": self.sops,
                "macs": self.macs, "out_spikes": self.out_spikes, "out_neurons": self.out_neurons,
                "firing_rate": self.firing_rate, "energy_pj": self.energy_pj}


@dataclass
class Trace:
    layers: list[LayerTrace] = field(default_factory=list)

    def add(self, **kw) -> LayerTrace:
        self.layers.append(LayerTrace(**kw))
        return self.layers[-1]

    def totals(self) -> dict:
        spikes = sum(l.out_spikes or 0 for l in self.layers)
        neurons = sum(l.out_neurons or 0 for l in self.layers)
        return {"in_events": sum(l.in_events for l in self.layers), "sops": sum(l.sops for l in self.layers),
                "macs": sum(l.macs for l in self.layers), "energy_pj": sum(l.energy_pj for l in self.layers),
                "out_spikes": spikes, "out_neurons": neurons, "firing_rate": spikes / neurons if neurons else None}


def _fanout(h: int, w: int, k: int = 3, stride: int = 1) -> torch.Tensor:
    """Number of output positions whose k x k window (stride, zero padding ``k // 2``) holds each input
    position of an h x w map: the additions one input event makes per output channel."""
    def axis(n: int) -> torch.Tensor:
        p = k // 2
        n_out = (n + 2 * p - k) // stride + 1
        hits = torch.zeros(n, dtype=INT)
        for o in range(n_out):
            lo, hi = max(0, stride * o - p), min(n, stride * o - p + k)
            hits[lo:hi] += 1
        return hits
    return axis(h)[:, None] * axis(w)[None, :]


#: Memory the golden model's largest tensors may take at once when :func:`forward_batched` splits a batch.
BATCH_BYTES = 1 << 30


def forward_batched(qm, pixels: torch.Tensor, budget_bytes: int = BATCH_BYTES) -> torch.Tensor:
    """:func:`forward` in batches small enough that the largest tensor of a batch stays within
    ``budget_bytes`` (at least one image a batch): the same logits, memory bounded by the model
    rather than by the number of images."""
    from .qfile import implied_bytes_per_image

    per = max(1, budget_bytes // max(1, implied_bytes_per_image(qm.config)))
    if len(pixels) <= per:
        return forward(qm, pixels)
    return torch.cat([forward(qm, pixels[i:i + per]) for i in range(0, len(pixels), per)])


def forward(qm, pixels: torch.Tensor, trace: Trace | None = None) -> torch.Tensor:
    """Integer logits ``[B, num_classes]`` (summed over T) of quantized model ``qm`` for ``pixels``.

    ``pixels [B, C, H, W]`` are unsigned integers in ``[0, qm.pixel_max]``; the image is
    the same at every time step, so the first conv is computed once and fed to the
    LIF ``T`` times. With ``trace``, exact per-layer counts are appended to it.
    """
    p = _int("forward: pixels", pixels)
    cfg = qm.config
    expect = (cfg["in_channels"], cfg["img_size_h"], cfg["img_size_w"])
    if p.dim() != 4 or tuple(p.shape[1:]) != expect:
        raise ValueError(f"forward: pixels must be [B, {expect[0]}, {expect[1]}, {expect[2]}], got {list(p.shape)}")
    if p.numel() and (int(p.min()) < 0 or int(p.max()) > qm.pixel_max):
        raise ValueError(f"forward: pixels must be in [0, {qm.pixel_max}], got [{int(p.min())}, {int(p.max())}]")
    graph = layer_graph(cfg)
    th = {n: qm.threshold(n) for n in qm.thresholds}
    values: dict[str, torch.Tensor] = {PIXELS: p}
    u = logits = None
    for layer in graph:
        if layer.synaptic:
            acc, rec = _synaptic(qm, layer, values[layer.inputs[0]], graph.T, trace)
            if layer.neurons is not None:
                values[layer.name] = _fire(qm, layer, acc, th, rec)
            elif layer.shortcut is Shortcut.ADD:
                u = shortcut_add(u, acc, qm.widths["u_bits"])
            elif layer.shortcut is not None:
                u = max_pool(acc) if layer.shortcut is Shortcut.MAXPOOL else acc
            if layer.logits:
                logits = _check_width(f"{layer.name}: logits summed over T", acc.sum(0), qm.widths["logit_bits"])
        elif layer.op is Op.OR_POOL:
            values[layer.name] = or_pool(values[layer.inputs[0]])
        elif layer.op is Op.LIF_U:
            values[layer.name] = _fire(qm, layer, u, th)
        elif layer.op is Op.GAP:
            values[layer.name] = _fire(qm, layer, token_sum(u), th)
        elif layer.op is Op.SDSA:
            q, k, v = (values[n] for n in layer.inputs)
            out, count, attn = sdsa(q.flatten(-2), k.flatten(-2), v.flatten(-2), shift=qm.shift)  # [T, B, C, N]
            rec = _record(trace, name=layer.name, kind=layer.op.value, in_events=int(count.sum()),
                          sops=int(count.sum()))
            if rec is not None:
                rec.out_spikes, rec.out_neurons = int(attn.sum()), attn.numel()
            values[layer.name] = out.reshape(q.shape)
        elif layer.op is Op.LINEAR_ATTENTION:
            values[layer.name] = _linear_attention(qm, layer, [values[n] for n in layer.inputs], trace)
        else:  # pragma: no cover (every op of the graph is handled above)
            raise NotImplementedError(f"golden.forward: layer {layer.name}: op {layer.op}")
    return logits


def _record(trace: Trace | None, **kw) -> LayerTrace | None:
    return trace.add(**kw) if trace is not None else None


def _fire(qm, layer, x: torch.Tensor, th: dict, rec: LayerTrace | None = None) -> torch.Tensor:
    """The spikes of ``layer``'s neurons for input ``x`` (recorded in the layer's trace entry, if any)."""
    s = lif(x, th[layer.neurons.domain], qm.shift, qm.widths[layer.neurons.width])
    if rec is not None:
        rec.out_spikes, rec.out_neurons = int(s.sum()), s.numel()
    return s


def _linear_attention(qm, layer, qkv: list[torch.Tensor], trace: Trace | None) -> torch.Tensor:
    """A linear-attention layer's spikes; its trace counts the K^T V count increments (one per pair
    of K and V spikes of a token in one head) and the Q-driven additions (C_h per Q spike) as SOPs."""
    q, k, v = (x.flatten(-2) for x in qkv)                                  # [T, B, C, N]
    attn, kv, _ = linear_attention(q, k, v, layer.heads, layer.neurons.threshold, qm.shift,
                                   qm.widths[layer.neurons.width])
    rec = _record(trace, name=layer.name, kind=layer.op.value, in_events=int(q.sum()),
                  sops=int(kv.sum()) + int(q.sum()) * (layer.cin // layer.heads))
    if rec is not None:
        rec.out_spikes, rec.out_neurons = int(attn.sum()), attn.numel()
    return attn.reshape(qkv[0].shape)


def _synaptic(qm, layer, x: torch.Tensor, T: int, trace: Trace | None):
    """The accumulator sums ``[T, B, C_out, ...]`` of synaptic ``layer`` over input ``x`` (pixels
    ``[B, C, H, W]``, or spikes ``[T, B, C, H, W]`` / ``[T, B, C]``) and its trace entry."""
    name, W, acc_bits = layer.name, qm.weights, qm.widths["acc_bits"]
    wgt, bias, shift = W[f"{name}.weight"], W[f"{name}.bias"], qm.weight_shifts.get(name, 0)
    kind = layer.op.value
    if layer.op is Op.PIXEL_CONV:
        # real-valued pixels, bit-plane accumulation, computed once for all T
        acc = pixel_accumulate(x, wgt, bias, qm.pixel_bits, acc_bits, layer.stride, layer.padding)
        fan = _fanout(*x.shape[-2:], layer.kernel, layer.stride)
        rec = _record(trace, name=name, kind=kind, in_events=int((x != 0).sum()),
                      macs=int(fan.sum()) * x.shape[0] * x.shape[1] * wgt.shape[0])
        return acc.unsqueeze(0).expand(T, *acc.shape), rec
    if layer.op in (Op.CONV3X3, Op.CONV):
        t_, b_ = x.shape[:2]
        if layer.op is Op.CONV3X3:
            acc = conv3x3_accumulate(x.flatten(0, 1), wgt, bias, acc_bits, shift)
        else:
            acc = conv_accumulate(x.flatten(0, 1), wgt, bias, layer.stride, layer.padding, acc_bits, shift)
        fan = _fanout(*x.shape[-2:], layer.kernel, layer.stride)
        rec = _record(trace, name=name, kind=kind, in_events=int(x.sum()), sops=int((x * fan).sum()) * wgt.shape[0])
        return acc.reshape(t_, b_, *acc.shape[1:]), rec
    if layer.op is Op.CONV1X1:
        acc = conv1x1_accumulate(x, wgt, bias, acc_bits, shift)
    else:   # Op.LINEAR
        acc = sparse_accumulate(x, wgt, bias, acc_bits, shift)
    return acc, _record(trace, name=name, kind=kind, in_events=int(x.sum()), sops=int(x.sum()) * wgt.shape[0])
