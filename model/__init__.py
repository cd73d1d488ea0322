"""The float Spike-driven Transformer (V1) and Meta-SpikeFormer (V2), named configs, checkpoints, data, training."""

from .lif import MultiStepLIFNode, heaviside_sigmoid
from .sdt import MS_SPS, MS_SSA_Conv, MS_MLP_Conv, MS_Block_Conv, SpikeDrivenTransformer
from .meta_spikeformer import MetaSpikeFormer
from .configs import ARCHS, CONFIGS, arch_of, get_config, build_model, describe

__all__ = [
    "MultiStepLIFNode", "heaviside_sigmoid",
    "MS_SPS", "MS_SSA_Conv", "MS_MLP_Conv", "MS_Block_Conv", "SpikeDrivenTransformer",
    "MetaSpikeFormer",
    "ARCHS", "CONFIGS", "arch_of", "get_config", "build_model", "describe",
]

from .checkpoint import (  # noqa: E402
    CheckpointError, EMBEDDED_CHECKPOINT, EMBEDDED_CHECKPOINTS, load_checkpoint, load_embedded, save_checkpoint,
)
from .data import load_digits_split  # noqa: E402

__all__ += ["CheckpointError", "EMBEDDED_CHECKPOINT", "EMBEDDED_CHECKPOINTS", "load_checkpoint", "load_embedded",
            "save_checkpoint", "load_digits_split"]
