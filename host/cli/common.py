"""What the ``spikeforge`` commands share: the output consoles, the usage error, and reading models."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.table import Table

__all__ = ["UsageError", "err", "out", "kv_table", "load_model", "require_v1", "is_qmodel", "load_qmodel",
           "qmodel_or_embedded", "check_images"]

#: Progress and errors.
err = Console(stderr=True)


class UsageError(Exception):
    """A problem with the user's input; printed as ``error: ...`` without a traceback."""


def out() -> Console:
    """The console of a command's results (stdout)."""
    console = Console(highlight=False)
    if not console.is_terminal:  # pipes and CI logs: wide enough that tables are not truncated
        console = Console(highlight=False, width=140)
    return console


def kv_table(title: str, rows: list[tuple[str, str]], key_header: str = "") -> Table:
    """A two-column (name, right-aligned value) table."""
    table = Table(title=title)
    table.add_column(key_header)
    table.add_column("value", justify="right")
    for key, value in rows:
        table.add_row(key, value)
    return table


def load_model(model: str | None, config: str | None):
    """``(path, model)``: a float checkpoint, or (``None``) the embedded one of ``config`` (default
    ``digits-tiny``; a config without an embedded checkpoint is a :class:`UsageError`)."""
    from spikeforge.model.checkpoint import (EMBEDDED_CONFIG, MissingConfigError, NoEmbeddedCheckpointError,
                                             embedded_checkpoint, load_checkpoint)
    from spikeforge.model.configs import get_config

    if model:
        path = Path(model)
    else:
        name = config or EMBEDDED_CONFIG
        get_config(name)   # an unknown name is a KeyError listing the known ones
        try:
            path = embedded_checkpoint(name)
        except NoEmbeddedCheckpointError as exc:
            raise UsageError(str(exc)) from None
    if path.is_file() and is_qmodel(path):
        raise UsageError(f"{path}: a quantized model (.sfq), not a float checkpoint; evaluate it with "
                         f"--backend golden (or rtl)")
    try:
        return path, load_checkpoint(path, config)
    except MissingConfigError:
        raise UsageError(f"{path}: the file carries no model config; name one with --config "
                         f"(e.g. --config digits-tiny)") from None


def require_v1(what: str, config: str | dict | None = None) -> None:
    """A :class:`UsageError` when ``config`` is not a V1 (``sdt``) config: the accelerator runs the
    Spike-driven Transformer's layers only for now (Meta-SpikeFormer's run in the golden model)."""
    from spikeforge.model.configs import arch_of, get_config

    if config is not None:
        arch = arch_of(get_config(config) if isinstance(config, str) else config)
        if arch != "sdt":
            name = f"{config!r} is a {arch} config" if isinstance(config, str) else f"the config is {arch}"
            raise UsageError(f"{what}: the accelerator runs V1 (sdt) models only for now; {name} (the golden "
                             f"model covers it: spikeforge eval QMODEL --backend golden)")


def is_qmodel(path: Path) -> bool:
    """Whether the file starts with a quantized model's magic."""
    from spikeforge.model.qfile import MAGIC

    with open(path, "rb") as f:
        return f.read(len(MAGIC)) == MAGIC


def load_qmodel(path: Path):
    """A quantized model file (.sfq), or a :class:`UsageError` saying what the file is instead."""
    from spikeforge.common.files import not_a_file
    from spikeforge.model.qfile import load_qmodel as load

    if not path.is_file():
        raise UsageError(f"{path}: {not_a_file(path, 'quantized model file')}")
    if not is_qmodel(path):
        raise UsageError(f"{path}: not a quantized model (.sfq); make one with `spikeforge quantize`")
    return load(path)


def qmodel_or_embedded(qmodel: str | None):
    """``(path, model)``: a quantized model file, or (``None``) the embedded checkpoint quantized to
    8-bit weights."""
    if qmodel is not None:
        return Path(qmodel), load_qmodel(Path(qmodel))
    from spikeforge.model.checkpoint import EMBEDDED_CHECKPOINT
    from spikeforge.model.quantize import embedded_qmodel

    return EMBEDDED_CHECKPOINT, embedded_qmodel()


def check_images(n: int, available: int) -> None:
    """``--images N`` must name 1 .. ``available`` test images."""
    if not 1 <= n <= available:
        raise UsageError(f"--images must be in 1..{available}, got {n}")
