"""Named model configurations: the paper's published ones and small ones for 8x8 digits.

A config is a dict of constructor keyword arguments (the reference constructors'
names) plus an optional ``"arch"`` key naming the model class:

* ``"sdt"`` (the default, so configs and checkpoints without the key keep their
  meaning): :class:`SpikeDrivenTransformer`, V1. The paper's configs follow the
  reference repository's ``conf/`` files: ImageNet (224 px, pooling ``1111``,
  T=4), CIFAR-10 (32 px, pooling ``0011``, T=4) and DVS128 Gesture (128 px, 2
  polarity channels, pooling ``0111``, T=16).
* ``"meta-spikeformer"``: :class:`MetaSpikeFormer`, V2. The ``metaspikformer-8-*``
  configs are the reference's registered ``metaspikformer_8_*`` functions
  (ImageNet 224 px, 3 channels, 1000 classes, 8 heads, mlp ratio 4, ``kd=False``
  as ``main_finetune.py`` builds them without ``--kd``) at T=4, the released models'
  time steps; ``metaspikformer-8-360`` is the paper's 15.1 M model (stage widths
  64, 128, 256, 360), which the reference does not register.
"""

from __future__ import annotations

from torch import nn

from .meta_spikeformer import MetaSpikeFormer
from .sdt import SpikeDrivenTransformer

__all__ = ["ARCHS", "DEFAULT_ARCH", "CONFIGS", "get_config", "arch_of", "model_class", "build_model", "describe"]

#: Model class of each ``"arch"`` value.
ARCHS: dict[str, type[nn.Module]] = {"sdt": SpikeDrivenTransformer, "meta-spikeformer": MetaSpikeFormer}
DEFAULT_ARCH = "sdt"


def _imagenet(depths: int, dims: int) -> dict:
    return dict(img_size_h=224, img_size_w=224, in_channels=3, num_classes=1000, embed_dims=dims,
                num_heads=8, mlp_ratios=4, depths=depths, T=4, pooling_stat="1111")


def _cifar10(depths: int, dims: int) -> dict:
    return dict(img_size_h=32, img_size_w=32, in_channels=3, num_classes=10, embed_dims=dims,
                num_heads=8, mlp_ratios=4, depths=depths, T=4, pooling_stat="0011")


def _metaspikformer(dims: list[int]) -> dict:
    return dict(arch="meta-spikeformer", img_size_h=224, img_size_w=224, in_channels=3, num_classes=1000,
                embed_dim=dims, num_heads=8, mlp_ratios=4, depths=8, kd=False, T=4)


CONFIGS: dict[str, dict] = {
    "imagenet-8-384": _imagenet(8, 384),
    "imagenet-6-512": _imagenet(6, 512),
    "imagenet-8-512": _imagenet(8, 512),
    "imagenet-10-512": _imagenet(10, 512),
    "imagenet-8-768": _imagenet(8, 768),
    "cifar10-2-256": _cifar10(2, 256),
    "cifar10-2-512": _cifar10(2, 512),
    "gesture-2-256": dict(img_size_h=128, img_size_w=128, in_channels=2, num_classes=11, embed_dims=256,
                          num_heads=8, mlp_ratios=4, depths=2, T=16, pooling_stat="0111"),
    # 8x8 digits, one grey channel. The stage-4 pool (before its LIF) halves 8x8 to 4x4 = 16 tokens.
    "digits-tiny": dict(img_size_h=8, img_size_w=8, in_channels=1, num_classes=10, embed_dims=32,
                        num_heads=8, mlp_ratios=4, depths=1, T=4, pooling_stat="0001"),
    # A second, smaller digits model (16 channels, 2 blocks): runs on the accelerator generated for digits-tiny.
    "digits-micro": dict(img_size_h=8, img_size_w=8, in_channels=1, num_classes=10, embed_dims=16,
                         num_heads=8, mlp_ratios=4, depths=2, T=4, pooling_stat="0001"),
    "digits-small": dict(img_size_h=8, img_size_w=8, in_channels=1, num_classes=10, embed_dims=64,
                         num_heads=8, mlp_ratios=4, depths=2, T=4, pooling_stat="0001"),
    # Meta-SpikeFormer (V2) for 8x8 digits. Strides (1, 1, 2, 1, 1): only downsample2 halves the map, so
    # the conv stages (ConvBlock1_1 at 8 channels, ConvBlock1_2 at 16) see the full 8x8 = 64 positions,
    # like digits-tiny's SPS, and the transformer stages (block3, block4 at 32 channels, one head of 32:
    # with 8 heads of 4 the attention LIF never fired and training stalled) keep 4x4 = 16 tokens, digits-tiny's; the reference's (2, 2, 2, 2, 1) would leave 1x1 (one token).
    # Blocks (1, 1, 0, 0, 1, 1): one of each kind of stage, none at 16 channels on the 4x4 map
    # (ConvBlock2_*: ~21k parameters each, left out to keep the model small; a count of 0 is an empty
    # stage). The widest layer is 4 * 32 = 128 channels (MLP and conv-block hidden layers), as in
    # digits-tiny; 82,938 parameters, about 3x digits-tiny, most of them in the two transformer blocks
    # and the 16-channel conv block.
    "digits-meta": dict(arch="meta-spikeformer", img_size_h=8, img_size_w=8, in_channels=1, num_classes=10,
                        embed_dim=[16, 16, 32, 32], num_heads=1, mlp_ratios=4, depths=2, kd=False, T=4,
                        block_counts=[1, 1, 0, 0, 1, 1], strides=[1, 1, 2, 1, 1]),
    "metaspikformer-8-360": _metaspikformer([64, 128, 256, 360]),
    "metaspikformer-8-384": _metaspikformer([96, 192, 384, 480]),
    "metaspikformer-8-512": _metaspikformer([128, 256, 512, 640]),
    "metaspikformer-8-768": _metaspikformer([192, 384, 768, 960]),
}


def get_config(name: str) -> dict:
    """A copy of the named config's constructor arguments; unknown names list the known ones."""
    try:
        config = CONFIGS[name]
    except KeyError:
        raise KeyError(f"unknown config {name!r}; known configs: {', '.join(CONFIGS)}") from None
    return {k: list(v) if isinstance(v, list) else v for k, v in config.items()}


def arch_of(config: dict) -> str:
    """The config's ``"arch"`` (``"sdt"`` when absent); unknown values are refused."""
    arch = config.get("arch", DEFAULT_ARCH)
    if arch not in ARCHS:
        raise ValueError(f"unknown arch {arch!r}; known archs: {', '.join(ARCHS)}")
    return arch


def model_class(config: dict) -> type[nn.Module]:
    return ARCHS[arch_of(config)]


def _resolve(name_or_config: str | dict) -> tuple[type[nn.Module], dict]:
    """(model class, constructor keyword arguments without ``"arch"``)."""
    config = get_config(name_or_config) if isinstance(name_or_config, str) else dict(name_or_config)
    cls = model_class(config)
    config.pop("arch", None)
    return cls, config


def build_model(name_or_config: str | dict) -> nn.Module:
    cls, config = _resolve(name_or_config)
    return cls(**config)


def describe(name_or_config: str | dict) -> dict:
    """``{"params", "tokens", "T", ...}`` for a config (builds the model on the meta device: no memory)."""
    import torch

    cls, config = _resolve(name_or_config)
    with torch.device("meta"):
        model = cls(**config)
    params = sum(p.numel() for p in model.parameters())
    if isinstance(model, MetaSpikeFormer):
        return _describe_meta(model, params)
    return {
        "params": params,
        "tokens": model.tokens,
        "T": model.T,
        "embed_dims": model.embed_dims,
        "depths": model.depths,
        "img_size": [model.img_size_h, model.img_size_w],
        "in_channels": model.in_channels,
        "num_classes": model.num_classes,
        "pooling_stat": model.pooling_stat,
    }


def _describe_meta(model: MetaSpikeFormer, params: int) -> dict:
    grids = model.grids
    return {
        "arch": "meta-spikeformer",
        "params": params,
        "tokens": model.tokens,                        # of the transformer stages (block3 and block4)
        "stage_tokens": [h * w for h, w in grids],     # after each of the five downsampling layers
        "stage_grids": [list(g) for g in grids],
        "T": model.T,
        "embed_dim": list(model.embed_dim),
        "stage_widths": list(model.stage_widths()),
        "num_heads": model.num_heads,
        "block_counts": list(model.block_counts),
        "strides": list(model.strides),
        "kd": model.kd,
        "img_size": [model.img_size_h, model.img_size_w],
        "in_channels": model.in_channels,
        "num_classes": model.num_classes,
    }
