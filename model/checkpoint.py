"""Loading and saving Spike-driven Transformer checkpoints without arbitrary pickle execution.

Four kinds of file are accepted by :func:`load_checkpoint`:

* **our own checkpoint** (written by :func:`save_checkpoint`): a dict with
  ``format == "spikeforge-checkpoint"``, ``version``, ``config`` (constructor
  arguments), ``state_dict`` and ``meta``;
* a **plain state dict** (``{key: tensor}``), e.g. ``torch.save(model.state_dict())``
  from the reference code;
* a **timm** ``CheckpointSaver`` file, as the reference ``train.py`` writes:
  a dict with ``state_dict`` (plus ``epoch``, ``optimizer``, ``args``, ...);
* a **Spike-driven Transformer V2** checkpoint, as the V2 reference's
  ``util/misc.save_model`` writes: a dict with ``model`` (the state dict) plus
  ``optimizer``, ``epoch``, ``scaler`` and ``args``. Its model is a
  :class:`MetaSpikeFormer` unless the config names another ``"arch"``.

The model class is the config's ``"arch"`` (see :mod:`.configs`); without one it
is :class:`SpikeDrivenTransformer` (V1), except for V2 reference files.
``module.`` prefixes (DataParallel / DistributedDataParallel) are stripped.
Everything is read with ``torch.load(weights_only=True)``; the only extra class
allowed is ``argparse.Namespace``, which timm stores as ``args``.
"""

from __future__ import annotations

import argparse
import io
import os
import pickle
import re
import warnings
from pathlib import Path
from typing import Any

import torch

from torch import nn

from .configs import build_model, get_config
from spikeforge.common.files import atomic_write_bytes, not_a_file

__all__ = [
    "CHECKPOINT_FORMAT", "CHECKPOINT_VERSION", "CheckpointError", "MissingConfigError",
    "EMBEDDED_CHECKPOINT", "EMBEDDED_CONFIG", "EMBEDDED_CHECKPOINTS", "NoEmbeddedCheckpointError",
    "load_checkpoint", "save_checkpoint", "read_checkpoint", "load_embedded", "embedded_checkpoint",
]

CHECKPOINT_FORMAT = "spikeforge-checkpoint"
CHECKPOINT_VERSION = 1

_WEIGHTS = Path(__file__).parent / "weights"
#: The trained models shipped inside the package: config name -> checkpoint (our format, with its config).
EMBEDDED_CHECKPOINTS: dict[str, Path] = {
    "digits-tiny": _WEIGHTS / "digits-tiny.pt",   # V1 (SpikeDrivenTransformer)
    "digits-meta": _WEIGHTS / "digits-meta.pt",   # V2 (MetaSpikeFormer)
}
#: The default embedded model (``digits-tiny``): what commands use when given neither a checkpoint nor a config.
EMBEDDED_CONFIG = "digits-tiny"
EMBEDDED_CHECKPOINT = EMBEDDED_CHECKPOINTS[EMBEDDED_CONFIG]

# Classes a timm CheckpointSaver file needs besides tensors and builtin containers.
_SAFE_GLOBALS = [argparse.Namespace]


class CheckpointError(ValueError):
    """A file that is not a usable checkpoint; the message names the file and the problem."""


class MissingConfigError(CheckpointError):
    """A plain state dict or timm file was loaded without a model config."""


class NoEmbeddedCheckpointError(KeyError):
    """No trained checkpoint of this config ships with the package; the message names it and those that do."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


def _unpickling_reason(exc: Exception) -> str:
    """What torch's weights-only unpickler refused, without its advice to load the file unsafely."""
    text = str(exc)
    found = re.search(r"(?:unsupported|Unsupported) (?:global|GLOBAL|operand)[^\n]*?(?=\.?\s*$)", text, re.M)
    detail = f" ({found.group(0).strip()})" if found else ""
    return f"it pickles objects outside the weights-only allow-list{detail}"


def _torch_load(path: Path) -> Any:
    if not path.is_file():
        raise CheckpointError(f"{path}: {not_a_file(path, 'checkpoint file')}")
    try:
        with torch.serialization.safe_globals(_SAFE_GLOBALS), warnings.catch_warnings():
            warnings.simplefilter("ignore")   # torch's notes on pickle protocols: the error below says enough
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises RuntimeError/EOFError/zipfile errors for non-checkpoints
        text = str(exc)
        # A refusal of the weights-only unpickler: never pass on torch's advice to load the file unsafely.
        if isinstance(exc, pickle.UnpicklingError) or "weights_only" in text or "Weights only" in text:
            raise CheckpointError(f"{path}: refused to load: {_unpickling_reason(exc)}; SpikeForge reads "
                                  f"checkpoints weights-only and never executes a pickle") from None
        first = text.strip().splitlines()[0][:200] if text.strip() else ""
        raise CheckpointError(f"{path}: not a PyTorch checkpoint ({type(exc).__name__}{': ' if first else ''}{first})") from None


def read_checkpoint(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict | None, str]:
    """Read a checkpoint file: ``(state_dict, config or None, kind)``.

    ``kind`` is ``"spikeforge"``, ``"timm"``, ``"sdtv2"`` (the V2 reference's format) or
    ``"state_dict"``. Nothing is built yet.
    """
    path = Path(path)
    obj = _torch_load(path)
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path}: not a checkpoint: top level is {type(obj).__name__}, expected a dict")
    config = None
    if obj.get("format") == CHECKPOINT_FORMAT:
        version = obj.get("version")
        if version != CHECKPOINT_VERSION:
            raise CheckpointError(
                f"{path}: checkpoint version {version!r} is not supported (expected {CHECKPOINT_VERSION})"
            )
        for field in ("config", "state_dict"):
            if not isinstance(obj.get(field), dict):
                raise CheckpointError(f"{path}: field {field!r} is missing or not a dict")
        kind, config, state = "spikeforge", dict(obj["config"]), obj["state_dict"]
    elif "state_dict" in obj and isinstance(obj["state_dict"], dict):
        kind, state = "timm", obj["state_dict"]
    elif "model" in obj and isinstance(obj["model"], dict):
        kind, state = "sdtv2", obj["model"]
    else:
        kind, state = "state_dict", obj
    if not state:
        raise CheckpointError(f"{path}: the state dict is empty")
    for key, value in state.items():
        if not isinstance(key, str) or not isinstance(value, torch.Tensor):
            raise CheckpointError(
                f"{path}: not a checkpoint: entry {key!r} is a {type(value).__name__}, expected a tensor"
            )
    state = {(k[len("module."):] if k.startswith("module.") else k): v for k, v in state.items()}
    return state, config, kind


def _check_state_dict(path: Path, model: torch.nn.Module, state: dict[str, torch.Tensor]) -> None:
    expected = model.state_dict()
    for key, value in expected.items():
        if key not in state:
            raise CheckpointError(f"{path}: key {key!r} is missing (the config expects shape {list(value.shape)})")
        if tuple(state[key].shape) != tuple(value.shape):
            raise CheckpointError(
                f"{path}: key {key!r} has shape {list(state[key].shape)}, the config expects {list(value.shape)}"
            )
    for key in state:
        if key not in expected:
            raise CheckpointError(f"{path}: key {key!r} is not part of the model for this config")


def _merged_config(path: Path, file_config: dict | None, config: str | dict | None, kwargs: dict) -> dict:
    merged = dict(file_config or {})
    if config is not None:
        try:
            merged.update(get_config(config) if isinstance(config, str) else config)
        except KeyError as exc:
            raise CheckpointError(f"{path}: {exc.args[0]}") from None
    merged.update(kwargs)
    return merged


def _build(path: Path, config: dict) -> nn.Module:
    try:
        return build_model(config)
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"{path}: the model config does not build a model: {exc}") from None


def load_checkpoint(path: str | os.PathLike, config: str | dict | None = None, **kwargs) -> nn.Module:
    """Build the config's model and load a checkpoint into it (strictly).

    ``config`` is a named config or a dict of constructor arguments (with an optional
    ``"arch"``); ``kwargs`` are constructor arguments that override it. Our own
    checkpoints carry their config, so both may be omitted; a plain state dict, a
    timm file or a V2 reference file needs them (a V2 reference file defaults to
    ``arch="meta-spikeformer"``). The model is returned in ``eval()`` mode. Raises
    :class:`CheckpointError` naming the file and the first offending key when the
    file does not fit, or the file and the problem when the config does not build.
    """
    path = Path(path)
    state, file_config, kind = read_checkpoint(path)
    merged = _merged_config(path, file_config, config, kwargs)
    if not merged:
        raise MissingConfigError(
            f"{path}: the file carries no model config; pass one, e.g. load_checkpoint(path, 'digits-tiny') "
            f"or the constructor arguments (embed_dims=..., depths=..., ...)"
        )
    if kind == "sdtv2":
        merged.setdefault("arch", "meta-spikeformer")
    model = _build(path, merged)
    _check_state_dict(path, model, state)
    model.load_state_dict(state, strict=True)
    return model.eval()


def save_checkpoint(model: nn.Module, path: str | os.PathLike, config: dict, meta: dict | None = None) -> Path:
    """Write our checkpoint format atomically (a partial file never appears under ``path``)."""
    path = Path(path)
    payload = {
        "format": CHECKPOINT_FORMAT,
        "version": CHECKPOINT_VERSION,
        "config": dict(config),
        "state_dict": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
        "meta": dict(meta or {}),
    }
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    return atomic_write_bytes(path, buffer.getvalue())


def embedded_checkpoint(config: str = EMBEDDED_CONFIG) -> Path:
    """The embedded checkpoint file of a named config (default ``digits-tiny``).

    Raises :class:`NoEmbeddedCheckpointError` naming the config and the configs that have one.
    """
    try:
        return EMBEDDED_CHECKPOINTS[config]
    except (KeyError, TypeError):
        raise NoEmbeddedCheckpointError(
            f"no embedded checkpoint for config {config!r}; embedded: {', '.join(EMBEDDED_CHECKPOINTS)} "
            f"(give a checkpoint file)"
        ) from None


def load_embedded(config: str = EMBEDDED_CONFIG) -> nn.Module:
    """A trained model shipped with the package: ``digits-tiny`` (a :class:`SpikeDrivenTransformer`,
    the default) or ``digits-meta`` (a :class:`MetaSpikeFormer`); see :data:`EMBEDDED_CHECKPOINTS`."""
    return load_checkpoint(embedded_checkpoint(config))
