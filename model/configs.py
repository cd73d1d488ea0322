"""Named model configurations: the paper's published ones and small ones for 8x8 digits.

Each config is the keyword arguments of :class:`SpikeDrivenTransformer` (the
reference constructor's names). The paper's configs follow the reference
repository's ``conf/`` files: ImageNet (224 px, pooling ``1111``, T=4),
CIFAR-10 (32 px, pooling ``0011``, T=4) and DVS128 Gesture (128 px, 2 polarity
channels, pooling ``0111``, T=16).
"""

from __future__ import annotations

from .sdt import SpikeDrivenTransformer

__all__ = ["CONFIGS", "get_config", "build_model", "describe"]


def _imagenet(depths: int, dims: int) -> dict:
    return dict(img_size_h=224, img_size_w=224, in_channels=3, num_classes=1000, embed_dims=dims,
                num_heads=8, mlp_ratios=4, depths=depths, T=4, pooling_stat="1111")


def _cifar10(depths: int, dims: int) -> dict:
    return dict(img_size_h=32, img_size_w=32, in_channels=3, num_classes=10, embed_dims=dims,
                num_heads=8, mlp_ratios=4, depths=depths, T=4, pooling_stat="0011")


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
}


def get_config(name: str) -> dict:
    """A copy of the named config's constructor arguments; unknown names list the known ones."""
    try:
        return dict(CONFIGS[name])
    except KeyError:
        raise KeyError(f"unknown config {name!r}; known configs: {', '.join(CONFIGS)}") from None


def build_model(name_or_config: str | dict) -> SpikeDrivenTransformer:
    config = get_config(name_or_config) if isinstance(name_or_config, str) else dict(name_or_config)
    return SpikeDrivenTransformer(**config)


def describe(name_or_config: str | dict) -> dict:
    """``{"params", "tokens", "T", ...}`` for a config (builds the model on the meta device: no memory)."""
    config = get_config(name_or_config) if isinstance(name_or_config, str) else dict(name_or_config)
    import torch

    with torch.device("meta"):
        model = SpikeDrivenTransformer(**config)
    return {
        "params": sum(p.numel() for p in model.parameters()),
        "tokens": model.tokens,
        "T": model.T,
        "embed_dims": model.embed_dims,
        "depths": model.depths,
        "img_size": [model.img_size_h, model.img_size_w],
        "in_channels": model.in_channels,
        "num_classes": model.num_classes,
        "pooling_stat": model.pooling_stat,
    }
