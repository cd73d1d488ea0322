"""The Spike-driven Transformer (V1, Yao et al., NeurIPS 2023) in float PyTorch.

Module names, attribute names and parameter shapes follow the reference code
(BICLab/Spike-Driven-Transformer: ``model/spikeformer.py``, ``module/sps.py``,
``module/ms_conv.py``), so a reference ``state_dict`` loads with ``strict=True``
and gives the same logits. Tensors inside the network are ``[T, B, C, H, W]``.

Data flow (``U``: multi-bit membrane-shortcut stream, ``S``: binary spikes)::

    MS_SPS        stage i (i = 0..2): conv3x3 -> BN -> LIF [-> maxpool 3/2/1 if pooling_stat[i]]
                  stage 3:            conv3x3 -> BN [-> maxpool]  = x_feat   (pool on the membrane)
                  RPE:                U = BN(conv3x3(LIF(x_feat))) + x_feat
    MS_Block_Conv x depths:
      MS_SSA_Conv S = LIF(U); Q, K, V = LIF(BN(conv1x1(S)))
                  A = LIF_{Vth=0.5}(sum over tokens of K * V)    one value per (t, b, channel)
                  U = U + BN(conv1x1(Q * A))
      MS_MLP_Conv U = U + BN(fc2(LIF(BN(fc1(LIF(U))))))
    head          LIF(mean over tokens of U) -> Linear -> mean over T

The reference splits channels into ``num_heads`` heads before SDSA and joins them
afterwards; SDSA acts on each channel independently, so the split is a reshape
that changes nothing and is not repeated here. ``num_heads`` only sets the shape
of ``attn.talking_heads`` (a ``Conv1d`` the reference creates but never calls; it
is kept so that reference checkpoints load strictly).
"""

from __future__ import annotations

import torch
from torch import nn

from .lif import MultiStepLIFNode

__all__ = ["MS_SPS", "MS_SSA_Conv", "MS_MLP_Conv", "MS_Block_Conv", "SpikeDrivenTransformer"]


def _seq(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Apply a per-frame module to ``[T, B, ...]`` by folding T into the batch (as the reference)."""
    t, b = x.shape[:2]
    y = module(x.flatten(0, 1))
    return y.reshape(t, b, *y.shape[1:])


def _maxpool() -> nn.MaxPool2d:
    return nn.MaxPool2d(kernel_size=3, stride=2, padding=1, dilation=1, ceil_mode=False)


class MS_SPS(nn.Module):
    """Spiking patch splitting: four conv3x3-BN(-LIF) stages (C/8, C/4, C/2, C) and the RPE.

    ``pooling_stat`` has one character per stage; ``"1"`` adds a 3x3 stride-2 max-pool
    after that stage (after the LIF in stages 0..2, on the BN output before the LIF
    in stage 3). Input ``[T, B, in_channels, H, W]``, output the membrane-shortcut
    stream ``U`` of shape ``[T, B, embed_dims, H', W']``.
    """

    STAGES = ("", "1", "2", "3")  # attribute suffixes used by the reference

    def __init__(self, in_channels: int, embed_dims: int, pooling_stat: str = "1111"):
        super().__init__()
        if len(pooling_stat) != 4 or set(pooling_stat) - {"0", "1"}:
            raise ValueError(f"MS_SPS: pooling_stat must be 4 characters of 0/1, got {pooling_stat!r}")
        if embed_dims % 8:
            raise ValueError(f"MS_SPS: embed_dims must be a multiple of 8, got {embed_dims}")
        self.pooling_stat = pooling_stat
        widths = [in_channels, embed_dims // 8, embed_dims // 4, embed_dims // 2, embed_dims]
        for i, sfx in enumerate(self.STAGES):
            c_in, c_out = widths[i], widths[i + 1]
            setattr(self, f"proj_conv{sfx}", nn.Conv2d(c_in, c_out, 3, 1, 1, bias=False))
            setattr(self, f"proj_bn{sfx}", nn.BatchNorm2d(c_out))
            setattr(self, f"proj_lif{sfx}", MultiStepLIFNode(tau=2.0))
            setattr(self, f"maxpool{sfx}", _maxpool())
        self.rpe_conv = nn.Conv2d(embed_dims, embed_dims, 3, 1, 1, bias=False)
        self.rpe_bn = nn.BatchNorm2d(embed_dims)
        self.rpe_lif = MultiStepLIFNode(tau=2.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i, sfx in enumerate(self.STAGES):
            x = _seq(getattr(self, f"proj_conv{sfx}"), x)
            x = _seq(getattr(self, f"proj_bn{sfx}"), x)
            last = i == len(self.STAGES) - 1
            if not last:
                x = getattr(self, f"proj_lif{sfx}")(x)
            if self.pooling_stat[i] == "1":
                x = _seq(getattr(self, f"maxpool{sfx}"), x)
        x_feat = x
        x = self.proj_lif3(x)
        x = _seq(self.rpe_bn, _seq(self.rpe_conv, x))
        return x + x_feat


class MS_SSA_Conv(nn.Module):
    """Spike-driven self-attention (SDSA) with its membrane shortcut.

    ``S = LIF(U)``; ``Q, K, V = LIF(BN(conv1x1(S)))``;
    ``A[t, b, c] = LIF_{Vth=0.5}(sum_n K[t, b, c, n] * V[t, b, c, n])`` (the LIF runs over T);
    returns ``U + BN(conv1x1(Q * A))``. Input and output ``[T, B, C, H, W]``.
    """

    def __init__(self, dim: int, num_heads: int = 8):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"MS_SSA_Conv: dim {dim} must be divisible by num_heads {num_heads}")
        self.dim = dim
        self.num_heads = num_heads
        self.shortcut_lif = MultiStepLIFNode(tau=2.0)
        for name in ("q", "k", "v"):
            setattr(self, f"{name}_conv", nn.Conv2d(dim, dim, 1, 1, bias=False))
            setattr(self, f"{name}_bn", nn.BatchNorm2d(dim))
            setattr(self, f"{name}_lif", MultiStepLIFNode(tau=2.0))
        # Present in the reference's state dict, never used in its forward.
        self.talking_heads = nn.Conv1d(num_heads, num_heads, kernel_size=1, stride=1, bias=False)
        # The attention neuron (the reference calls it talking_heads_lif).
        self.talking_heads_lif = MultiStepLIFNode(tau=2.0, v_threshold=0.5)
        self.proj_conv = nn.Conv2d(dim, dim, 1, 1)
        self.proj_bn = nn.BatchNorm2d(dim)

    def qkv(self, u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Spike tensors Q, K, V ``[T, B, C, H, W]`` from the stream ``U``."""
        s = self.shortcut_lif(u)
        return tuple(
            getattr(self, f"{n}_lif")(_seq(getattr(self, f"{n}_bn"), _seq(getattr(self, f"{n}_conv"), s)))
            for n in ("q", "k", "v")
        )

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        q, k, v = self.qkv(u)
        kv = (k * v).flatten(3).sum(3)                 # [T, B, C]: column sum over tokens
        a = self.talking_heads_lif(kv)                 # attention spikes, one per channel
        x = q * a[..., None, None]                     # mask Q
        return u + _seq(self.proj_bn, _seq(self.proj_conv, x))


class MS_MLP_Conv(nn.Module):
    """Spiking MLP with membrane shortcut: ``U + BN(fc2(LIF(BN(fc1(LIF(U))))))``.

    As in the reference, when ``hidden_features == in_features`` there is an extra
    shortcut around fc1.
    """

    def __init__(self, in_features: int, hidden_features: int | None = None, out_features: int | None = None):
        super().__init__()
        out_features = out_features or in_features
        hidden_features = hidden_features or in_features
        self.res = in_features == hidden_features
        self.fc1_conv = nn.Conv2d(in_features, hidden_features, 1, 1)
        self.fc1_bn = nn.BatchNorm2d(hidden_features)
        self.fc1_lif = MultiStepLIFNode(tau=2.0)
        self.fc2_conv = nn.Conv2d(hidden_features, out_features, 1, 1)
        self.fc2_bn = nn.BatchNorm2d(out_features)
        self.fc2_lif = MultiStepLIFNode(tau=2.0)

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        identity = u
        x = _seq(self.fc1_bn, _seq(self.fc1_conv, self.fc1_lif(u)))
        if self.res:
            x = identity + x
            identity = x
        x = _seq(self.fc2_bn, _seq(self.fc2_conv, self.fc2_lif(x)))
        return x + identity


class MS_Block_Conv(nn.Module):
    """Encoder block: SDSA then MLP, each with its membrane shortcut."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 4.0):
        super().__init__()
        self.attn = MS_SSA_Conv(dim, num_heads=num_heads)
        self.mlp = MS_MLP_Conv(in_features=dim, hidden_features=int(dim * mlp_ratio))

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        return self.mlp(self.attn(u))


# Reference constructor arguments that do not change the reference model's forward or
# state dict (patch_size only feeds an unused attribute; DropPath/dropout modules are
# created but never called; q/k/v convs never have a bias). Accepted for compatibility.
_REFERENCE_NO_OPS = {
    "patch_size", "qkv_bias", "qk_scale", "drop_rate", "attn_drop_rate", "drop_path_rate",
    "norm_layer", "sr_ratios", "attn_mode", "get_embed", "cml", "pretrained", "pretrained_cfg",
}
# Reference arguments whose other values select variants this model does not implement.
_REFERENCE_FIXED = {"spike_mode": "lif", "dvs_mode": False, "TET": False}


class SpikeDrivenTransformer(nn.Module):
    """Spike-driven Transformer V1 (the reference's ``sdt`` model).

    Takes the reference constructor's keyword names. ``forward(x)`` accepts a
    static image batch ``[B, C, H, W]`` (repeated over ``T`` time steps) or an
    event batch ``[B, T', C, H, W]`` (its own ``T'`` steps) and returns logits
    ``[B, num_classes]``: the head's output averaged over time. Every forward
    starts from reset membranes.
    """

    def __init__(
        self,
        img_size_h: int = 128,
        img_size_w: int = 128,
        in_channels: int = 2,
        num_classes: int = 11,
        embed_dims: int = 512,
        num_heads: int = 8,
        mlp_ratios: float = 4,
        depths: int = 2,
        T: int = 4,
        pooling_stat: str = "1111",
        **reference_kwargs,
    ):
        super().__init__()
        for key, value in reference_kwargs.items():
            if key in _REFERENCE_FIXED:
                if value != _REFERENCE_FIXED[key]:
                    raise ValueError(
                        f"SpikeDrivenTransformer: {key}={value!r} is not supported "
                        f"(only {_REFERENCE_FIXED[key]!r})"
                    )
            elif key not in _REFERENCE_NO_OPS:
                raise TypeError(f"SpikeDrivenTransformer: unexpected keyword argument {key!r}")
        if T < 1:
            raise ValueError(f"SpikeDrivenTransformer: T must be >= 1, got {T}")
        self.img_size_h, self.img_size_w = int(img_size_h), int(img_size_w)
        self.in_channels = int(in_channels)
        self.num_classes = int(num_classes)
        self.embed_dims = int(embed_dims)
        self.depths = int(depths)
        self.T = int(T)
        self.pooling_stat = pooling_stat

        self.patch_embed = MS_SPS(in_channels, embed_dims, pooling_stat)
        self.block = nn.ModuleList(MS_Block_Conv(embed_dims, num_heads, mlp_ratios) for _ in range(depths))
        self.head_lif = MultiStepLIFNode(tau=2.0)
        self.head = nn.Linear(embed_dims, num_classes) if num_classes > 0 else nn.Identity()
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(m: nn.Module) -> None:
        # As the reference: truncated-normal convs, unit BN; Linear/Conv1d keep PyTorch's default.
        if isinstance(m, nn.Conv2d):
            nn.init.trunc_normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.constant_(m.bias, 0)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.constant_(m.bias, 0)
            nn.init.constant_(m.weight, 1.0)

    @staticmethod
    def token_grid_for(img_size_h: int, img_size_w: int, pooling_stat: str) -> tuple[int, int]:
        """(H, W) of the token map after the 3x3 / stride-2 / pad-1 pools of ``pooling_stat``."""
        h, w = img_size_h, img_size_w
        for bit in pooling_stat:
            if bit == "1":
                h, w = (h - 1) // 2 + 1, (w - 1) // 2 + 1
        return h, w

    @classmethod
    def tokens_for(cls, img_size_h: int, img_size_w: int, pooling_stat: str) -> int:
        h, w = cls.token_grid_for(img_size_h, img_size_w, pooling_stat)
        return h * w

    @property
    def token_grid(self) -> tuple[int, int]:
        return self.token_grid_for(self.img_size_h, self.img_size_w, self.pooling_stat)

    @property
    def tokens(self) -> int:
        return self.tokens_for(self.img_size_h, self.img_size_w, self.pooling_stat)

    def to_time_major(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, C, H, W]`` -> ``[T, B, C, H, W]`` (repeat); ``[B, T, C, H, W]`` -> transpose."""
        if x.dim() == 4:
            x = x.unsqueeze(0).repeat(self.T, 1, 1, 1, 1)
        elif x.dim() == 5:
            x = x.transpose(0, 1).contiguous()
        else:
            raise ValueError(
                f"SpikeDrivenTransformer: input must be [B, C, H, W] or [B, T, C, H, W], got shape {tuple(x.shape)}"
            )
        if x.shape[2] != self.in_channels:
            raise ValueError(
                f"SpikeDrivenTransformer: input has {x.shape[2]} channels, the model expects {self.in_channels}"
            )
        return x

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Token-mean of the final stream ``U``: ``[T, B, embed_dims]``."""
        u = self.patch_embed(x)
        for blk in self.block:
            u = blk(u)
        return u.flatten(3).mean(3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.to_time_major(x)
        x = self.head(self.head_lif(self.forward_features(x)))
        return x.mean(0)
