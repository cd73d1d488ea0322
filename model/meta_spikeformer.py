"""Meta-SpikeFormer (Spike-driven Transformer V2, Yao et al., ICLR 2024) in float PyTorch.

Module names, attribute names and parameter shapes follow the reference code
(BICLab/Spike-Driven-Transformer-V2, ``classification/models.py``,
``Spiking_vit_MetaFormer``), so a reference ``state_dict`` loads with
``strict=True`` and gives the same logits. Tensors inside the network are
``[T, B, C, H, W]``; every LIF is ``MultiStepLIFNode(tau=2)`` (threshold 1, hard
reset to 0) except the attention neuron (threshold 0.5).

Data flow (``U``: multi-bit membrane stream, ``S``: binary spikes)::

    input [B, C, H, W], repeated over T (the reference takes static images only)
    downsample1_1  U = BN(conv7x7/s2/p3 + bias)(x)                 (no LIF: first layer)
    ConvBlock1_1   MS_ConvBlock(C0/2)
    downsample1_2  U = BN(conv3x3/s2/p1 + bias)(LIF(U))            -> C0
    ConvBlock1_2   MS_ConvBlock(C0)
    downsample2    LIF -> conv3x3/s2 -> BN                          -> C1
    ConvBlock2_1, ConvBlock2_2   MS_ConvBlock(C1)
    downsample3    LIF -> conv3x3/s2 -> BN                          -> C2
    block3 x 6     MS_Block(C2)
    downsample4    LIF -> conv3x3/s1 -> BN                          -> C3
    block4 x 2     MS_Block(C3)
    head           LIF(mean over tokens of U) -> Linear -> mean over T
                   (kd: ``head_kd`` too; eval returns the mean of both heads)

    MS_ConvBlock   U = U + SepConv(U)
                   U = U + BN(conv3x3(LIF(BN(conv3x3_{C->4C}(LIF(U))))))
    SepConv        BN(pw_{2C->C}(dw7x7(LIF(BN(pw_{C->2C}(LIF(U)))))))   no LIF between dw and pw2
    MS_Block       U = U + Attention(U);  U = U + MS_MLP(U)
    Attention      S = LIF(U); Q, K, V = LIF(BN(RepConv(S))) each
                   per head h: A_h = Q_h (K_h^T V_h) * 0.125        [N, d] = [N, d] [d, d]
                   U' = BN(RepConv(LIF_{Vth=0.5}(A)))
    MS_MLP         BN1d(conv1d_{4C->C}(LIF(BN1d(conv1d_{C->4C}(LIF(U))))))   (convs with bias)
    RepConv        conv1x1 -> BNAndPad(pad 1) -> dw3x3 (no padding) -> conv1x1 -> BN
    BNAndPad       BN, then a 1-pixel border filled with the BN's output for a zero
                   input, ``bias - running_mean * weight / sqrt(running_var + eps)``
                   (not zero), so the next 3x3 sees padding as BN(0)

Reference constructor arguments that do not change its forward or state dict
(``patch_size``, ``qkv_bias``, ``qk_scale``, ``drop_rate``, ``attn_drop_rate``,
``drop_path_rate``, ``norm_layer``, ``sr_ratios``, ``depths``) are accepted and
ignored as the reference ignores them: its ``DropPath`` modules are created but
never called (``MS_Block.forward`` adds the branches directly), its dropout is
never created, the q/k/v RepConvs never have a bias and the attention scale is
the constant 0.125. ``img_size_h``/``img_size_w`` only set the size that
``describe`` reports; the network is fully convolutional.

Our own keywords (not the reference's): ``T`` (the reference sets ``model.T``
after construction; its constructor sets 1, the released models run at 4, our
default is 4), ``block_counts`` (blocks in ``ConvBlock1_1, ConvBlock1_2,
ConvBlock2_1, ConvBlock2_2, block3, block4``; the reference hard-codes
``(1, 1, 1, 1, 6, 2)``) and ``strides`` (of ``downsample1_1, downsample1_2,
downsample2, downsample3, downsample4``; reference ``(2, 2, 2, 2, 1)``).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from .lif import MultiStepLIFNode
from .sdt import _seq

__all__ = [
    "BNAndPadLayer", "RepConv", "SepConv", "MS_ConvBlock", "MS_MLP", "MS_Attention_RepConv_qkv_id",
    "MS_Block", "MS_DownSampling", "MetaSpikeFormer", "REFERENCE_BLOCK_COUNTS", "REFERENCE_STRIDES",
    "BLOCK_LISTS", "STAGES", "DOWNSAMPLE_KERNELS",
]

#: Blocks per module list as the reference hard-codes them.
REFERENCE_BLOCK_COUNTS = (1, 1, 1, 1, 6, 2)
#: Strides of the five downsampling layers in the reference.
REFERENCE_STRIDES = (2, 2, 2, 2, 1)
BLOCK_LISTS = ("ConvBlock1_1", "ConvBlock1_2", "ConvBlock2_1", "ConvBlock2_2", "block3", "block4")
# Each downsampling layer and the block lists that follow it, in forward (and state dict) order.
STAGES = (("downsample1_1", "ConvBlock1_1"), ("downsample1_2", "ConvBlock1_2"),
           ("downsample2", "ConvBlock2_1", "ConvBlock2_2"), ("downsample3", "block3"), ("downsample4", "block4"))
# (kernel, padding) of each downsampling conv.
DOWNSAMPLE_KERNELS = ((7, 3), (3, 1), (3, 1), (3, 1), (3, 1))


class BNAndPadLayer(nn.Module):
    """``BatchNorm2d`` followed by a border of ``pad_pixels`` filled with BN(0) per channel.

    The fill is computed from the running statistics (also in training mode, as the reference).
    """

    def __init__(self, pad_pixels: int, num_features: int, eps: float = 1e-5, momentum: float = 0.1):
        super().__init__()
        self.bn = nn.BatchNorm2d(num_features, eps, momentum)
        self.pad_pixels = pad_pixels

    def pad_values(self) -> torch.Tensor:
        """BN's output for a zero input, ``[C]``."""
        bn = self.bn
        scale = bn.weight.detach() / torch.sqrt(bn.running_var + bn.eps)
        return bn.bias.detach() - bn.running_mean * scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.bn(x)
        p = self.pad_pixels
        if p <= 0:
            return y
        n, c, h, w = y.shape
        out = self.pad_values().view(1, c, 1, 1).expand(n, c, h + 2 * p, w + 2 * p).clone()
        out[:, :, p:p + h, p:p + w] = y
        return out


class RepConv(nn.Module):
    """``conv1x1 -> BNAndPad(1) -> depthwise 3x3 (no padding) -> conv1x1 -> BN``; keeps H, W."""

    def __init__(self, in_channel: int, out_channel: int, bias: bool = False):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(in_channel, in_channel, 1, 1, 0, bias=False),
            BNAndPadLayer(pad_pixels=1, num_features=in_channel),
            nn.Sequential(
                nn.Conv2d(in_channel, in_channel, 3, 1, 0, groups=in_channel, bias=False),
                nn.Conv2d(in_channel, out_channel, 1, 1, 0, bias=False),
                nn.BatchNorm2d(out_channel),
            ),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class SepConv(nn.Module):
    """Inverted separable conv: ``BN(pw2(dw7x7(LIF(BN(pw1(LIF(U)))))))``, expansion 2, no convolution bias."""

    def __init__(self, dim: int, expansion_ratio: int = 2, kernel_size: int = 7, padding: int = 3):
        super().__init__()
        med = int(expansion_ratio * dim)
        self.lif1 = MultiStepLIFNode(tau=2.0)
        self.pwconv1 = nn.Conv2d(dim, med, kernel_size=1, stride=1, bias=False)
        self.bn1 = nn.BatchNorm2d(med)
        self.lif2 = MultiStepLIFNode(tau=2.0)
        self.dwconv = nn.Conv2d(med, med, kernel_size=kernel_size, padding=padding, groups=med, bias=False)
        self.pwconv2 = nn.Conv2d(med, dim, kernel_size=1, stride=1, bias=False)
        self.bn2 = nn.BatchNorm2d(dim)

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        x = _seq(self.bn1, _seq(self.pwconv1, self.lif1(u)))
        x = _seq(self.dwconv, self.lif2(x))
        return _seq(self.bn2, _seq(self.pwconv2, x))


class MS_ConvBlock(nn.Module):
    """Conv stage block: ``U += SepConv(U)``, then ``U += BN(conv3x3(LIF(BN(conv3x3(LIF(U))))))``."""

    def __init__(self, dim: int, mlp_ratio: int = 4):
        super().__init__()
        self.Conv = SepConv(dim=dim)
        self.lif1 = MultiStepLIFNode(tau=2.0)
        self.conv1 = nn.Conv2d(dim, dim * mlp_ratio, kernel_size=3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(dim * mlp_ratio)
        self.lif2 = MultiStepLIFNode(tau=2.0)
        self.conv2 = nn.Conv2d(dim * mlp_ratio, dim, kernel_size=3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(dim)

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        u = self.Conv(u) + u
        x = _seq(self.bn1, _seq(self.conv1, self.lif1(u)))
        x = _seq(self.bn2, _seq(self.conv2, self.lif2(x)))
        return u + x


class MS_MLP(nn.Module):
    """Token MLP on the flattened map: ``BN1d(fc2(LIF(BN1d(fc1(LIF(U))))))`` with ``Conv1d`` (bias) layers."""

    def __init__(self, in_features: int, hidden_features: int | None = None, out_features: int | None = None):
        super().__init__()
        out_features = out_features or in_features
        hidden_features = hidden_features or in_features
        self.fc1_conv = nn.Conv1d(in_features, hidden_features, kernel_size=1, stride=1)
        self.fc1_bn = nn.BatchNorm1d(hidden_features)
        self.fc1_lif = MultiStepLIFNode(tau=2.0)
        self.fc2_conv = nn.Conv1d(hidden_features, out_features, kernel_size=1, stride=1)
        self.fc2_bn = nn.BatchNorm1d(out_features)
        self.fc2_lif = MultiStepLIFNode(tau=2.0)

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        shape = u.shape
        x = self.fc1_lif(u.flatten(3))                           # [T, B, C, N]
        x = _seq(self.fc1_bn, _seq(self.fc1_conv, x))
        x = _seq(self.fc2_bn, _seq(self.fc2_conv, self.fc2_lif(x)))
        return x.reshape(shape[:2] + x.shape[2:3] + shape[3:])


def _split_heads(s: torch.Tensor, num_heads: int) -> torch.Tensor:
    """``[T, B, C, N]`` -> ``[T, B, heads, N, C // heads]`` (channel ``c`` = head ``c // d``, lane ``c % d``)."""
    t, b, c, n = s.shape
    return s.transpose(-1, -2).reshape(t, b, n, num_heads, c // num_heads).permute(0, 1, 3, 2, 4)


class MS_Attention_RepConv_qkv_id(nn.Module):
    """Spike-driven self-attention V2 (SDSA-3): ``BN(RepConv(LIF_{0.5}(Q (K^T V) * 0.125)))`` per head."""

    scale = 0.125

    def __init__(self, dim: int, num_heads: int = 8):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"MS_Attention_RepConv_qkv_id: dim {dim} must be divisible by num_heads {num_heads}")
        self.dim = dim
        self.num_heads = num_heads
        self.head_lif = MultiStepLIFNode(tau=2.0)
        for name in ("q", "k", "v"):
            setattr(self, f"{name}_conv", nn.Sequential(RepConv(dim, dim), nn.BatchNorm2d(dim)))
        for name in ("q", "k", "v"):
            setattr(self, f"{name}_lif", MultiStepLIFNode(tau=2.0))
        self.attn_lif = MultiStepLIFNode(tau=2.0, v_threshold=0.5)
        self.proj_conv = nn.Sequential(RepConv(dim, dim), nn.BatchNorm2d(dim))

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        t, b, c, h, w = u.shape
        s = self.head_lif(u)
        q, k, v = (
            _split_heads(getattr(self, f"{n}_lif")(_seq(getattr(self, f"{n}_conv"), s)).flatten(3), self.num_heads)
            for n in ("q", "k", "v")
        )
        x = (q @ (k.transpose(-2, -1) @ v)) * self.scale        # [T, B, heads, N, d]
        x = x.transpose(3, 4).reshape(t, b, c, h * w)
        x = self.attn_lif(x).reshape(t, b, c, h, w)
        return _seq(self.proj_conv, x)


class MS_Block(nn.Module):
    """Transformer block: ``U += Attention(U)``; ``U += MS_MLP(U)``."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 4.0):
        super().__init__()
        self.attn = MS_Attention_RepConv_qkv_id(dim, num_heads=num_heads)
        self.mlp = MS_MLP(in_features=dim, hidden_features=int(dim * mlp_ratio))

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        u = u + self.attn(u)
        return u + self.mlp(u)


class MS_DownSampling(nn.Module):
    """``BN(conv(LIF(U)))`` with a biased conv; the first layer has no LIF (it sees the image)."""

    def __init__(self, in_channels: int, embed_dims: int, kernel_size: int = 3, stride: int = 2,
                 padding: int = 1, first_layer: bool = True):
        super().__init__()
        self.encode_conv = nn.Conv2d(in_channels, embed_dims, kernel_size=kernel_size, stride=stride, padding=padding)
        self.encode_bn = nn.BatchNorm2d(embed_dims)
        if not first_layer:
            self.encode_lif = MultiStepLIFNode(tau=2.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if hasattr(self, "encode_lif"):
            x = self.encode_lif(x)
        return _seq(self.encode_bn, _seq(self.encode_conv, x))


# Reference arguments that change neither its forward nor its state dict (see the module docstring).
_REFERENCE_NO_OPS = {"patch_size", "qkv_bias", "qk_scale", "drop_rate", "attn_drop_rate", "drop_path_rate",
                     "norm_layer", "sr_ratios"}


def _int_tuple(name: str, value, length: int, minimum: int) -> tuple[int, ...]:
    if (isinstance(value, (str, bytes)) or not isinstance(value, Sequence) or len(value) != length
            or not all(isinstance(v, int) and not isinstance(v, bool) and v >= minimum for v in value)):
        raise ValueError(f"MetaSpikeFormer: {name} must be {length} integers >= {minimum}, got {value!r}")
    return tuple(value)


def _positive_int(name: str, value, why: str = "") -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"MetaSpikeFormer: {name} must be a positive integer{why}, got {value!r}")
    return value


class MetaSpikeFormer(nn.Module):
    """Meta-SpikeFormer (the reference's ``Spiking_vit_MetaFormer``), eval-faithful to the reference.

    Takes the reference constructor's keyword names plus ``T``, ``block_counts`` and
    ``strides`` (module docstring). Where the reference's own defaults do not build
    (``embed_dim=[64, 128, 256]`` has three stages, ``num_heads``, ``mlp_ratios``
    and ``depths`` are lists), ours are the values of ``metaspikformer_8_384``:
    ``embed_dim=(96, 192, 384, 480)``, ``num_heads=8``, ``mlp_ratios=4``, ``depths=8``.

    ``forward(x)`` takes a static batch ``[B, C, H, W]``, repeats it over ``T`` steps
    and returns logits ``[B, num_classes]`` (the head averaged over T). With ``kd``
    the eval output is ``(head + head_kd) / 2`` and training returns both, as the
    reference. Every forward starts from reset membranes. Training works (the LIFs
    have surrogate gradients); drop path is not applied, as in the reference.
    """

    def __init__(
        self,
        img_size_h: int = 128,
        img_size_w: int = 128,
        in_channels: int = 2,
        num_classes: int = 11,
        embed_dim: Sequence[int] = (96, 192, 384, 480),
        num_heads: int = 8,
        mlp_ratios: int = 4,
        depths: int = 8,
        kd: bool = False,
        T: int = 4,
        block_counts: Sequence[int] = REFERENCE_BLOCK_COUNTS,
        strides: Sequence[int] = REFERENCE_STRIDES,
        **reference_kwargs,
    ):
        super().__init__()
        for key in reference_kwargs:
            if key not in _REFERENCE_NO_OPS:
                raise TypeError(f"MetaSpikeFormer: unexpected keyword argument {key!r}")
        self.embed_dim = _int_tuple("embed_dim", embed_dim, 4, 1)
        if self.embed_dim[0] < 2:
            raise ValueError(f"MetaSpikeFormer: embed_dim[0] must be >= 2 (stage 1 starts with embed_dim[0] // 2), "
                             f"got {self.embed_dim[0]}")
        self.num_heads = _positive_int("num_heads", num_heads, " (one head count for both transformer stages)")
        for stage in (2, 3):
            if self.embed_dim[stage] % self.num_heads:
                raise ValueError(f"MetaSpikeFormer: num_heads {num_heads} must divide embed_dim[{stage}] = "
                                 f"{self.embed_dim[stage]}")
        if isinstance(mlp_ratios, bool) or mlp_ratios != 4:
            raise ValueError(f"MetaSpikeFormer: mlp_ratios must be 4 (the reference's MS_ConvBlock reshapes its "
                             f"hidden layer to 4 * C channels), got {mlp_ratios!r}")
        self.mlp_ratios = 4
        self.depths = _positive_int("depths", depths, " (the reference only uses it for drop path)")
        self.block_counts = _int_tuple("block_counts", block_counts, 6, 0)
        self.strides = _int_tuple("strides", strides, 5, 1)
        self.T = _positive_int("T", T)
        self.img_size_h = _positive_int("img_size_h", img_size_h)
        self.img_size_w = _positive_int("img_size_w", img_size_w)
        self.in_channels = _positive_int("in_channels", in_channels)
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 0:
            raise ValueError(f"MetaSpikeFormer: num_classes must be an integer >= 0, got {num_classes!r}")
        self.num_classes = num_classes
        self.kd = bool(kd)
        self._build()
        self.apply(self._init_weights)

    def stage_widths(self) -> tuple[int, ...]:
        """Output channels of the five downsampling layers."""
        c = self.embed_dim
        return (c[0] // 2, c[0], c[1], c[2], c[3])

    def _build(self) -> None:
        """Create the layers in the reference's order (so state dict keys come in its order)."""
        widths = self.stage_widths()
        c_in = self.in_channels
        for i, (downsample, *lists) in enumerate(STAGES):
            k, p = DOWNSAMPLE_KERNELS[i]
            setattr(self, downsample, MS_DownSampling(c_in, widths[i], k, self.strides[i], p, first_layer=i == 0))
            c_in = widths[i]
            for name in lists:
                count = self.block_counts[BLOCK_LISTS.index(name)]
                setattr(self, name, nn.ModuleList(self._block(name, widths[i]) for _ in range(count)))
        self.lif = MultiStepLIFNode(tau=2.0)
        c = self.embed_dim[3]
        self.head = nn.Linear(c, self.num_classes) if self.num_classes > 0 else nn.Identity()
        if self.kd:
            self.head_kd = nn.Linear(c, self.num_classes) if self.num_classes > 0 else nn.Identity()

    def _block(self, list_name: str, dim: int) -> nn.Module:
        if list_name.startswith("ConvBlock"):
            return MS_ConvBlock(dim, self.mlp_ratios)
        return MS_Block(dim, self.num_heads, self.mlp_ratios)

    @staticmethod
    def _init_weights(m: nn.Module) -> None:
        # As the reference: truncated-normal Linear weights, zero Linear bias; convs and BN keep PyTorch's init.
        if isinstance(m, nn.Linear):
            nn.init.trunc_normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.constant_(m.bias, 0)

    @staticmethod
    def grids_for(img_size_h: int, img_size_w: int, strides: Sequence[int] = REFERENCE_STRIDES) -> list[tuple[int, int]]:
        """(H, W) after each of the five downsampling layers."""
        h, w, grids = img_size_h, img_size_w, []
        for (k, p), s in zip(DOWNSAMPLE_KERNELS, strides):
            h, w = (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1
            grids.append((h, w))
        return grids

    @property
    def grids(self) -> list[tuple[int, int]]:
        return self.grids_for(self.img_size_h, self.img_size_w, self.strides)

    @property
    def token_grid(self) -> tuple[int, int]:
        """(H, W) of the token map of the last transformer stage (block4)."""
        return self.grids[-1]

    @property
    def tokens(self) -> int:
        h, w = self.token_grid
        return h * w

    def to_time_major(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, C, H, W]`` -> ``[T, B, C, H, W]`` by repetition, as the reference."""
        if x.dim() != 4:
            raise ValueError(f"MetaSpikeFormer: input must be a static batch [B, C, H, W] (the reference repeats it "
                             f"over T), got shape {tuple(x.shape)}")
        if x.shape[1] != self.in_channels:
            raise ValueError(f"MetaSpikeFormer: input has {x.shape[1]} channels, the model expects {self.in_channels}")
        return x.unsqueeze(0).repeat(self.T, 1, 1, 1, 1)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The final stream ``U`` ``[T, B, embed_dim[3], H', W']`` from ``[T, B, C, H, W]``."""
        for downsample, *lists in STAGES:
            x = getattr(self, downsample)(x)
            for name in lists:
                for blk in getattr(self, name):
                    x = blk(x)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        x = self.forward_features(self.to_time_major(x))
        s = self.lif(x.flatten(3).mean(3))                    # [T, B, C]
        logits = self.head(s).mean(0)
        if not self.kd:
            return logits
        logits_kd = self.head_kd(s).mean(0)
        return (logits, logits_kd) if self.training else (logits + logits_kd) / 2
