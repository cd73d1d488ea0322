"""Construction-parameter checks shared by the blocks: a clear ``ValueError`` naming the block and
the parameter, and no "created but never used" warning for the refused instance."""

from __future__ import annotations

__all__ = ["refuse", "check_ints"]


def refuse(owner, message: str):
    """Raise ``ValueError("<Block>: <message>")`` for a block whose construction is refused."""
    owner._MustUse__silence = True  # Amaranth would otherwise warn that the half-built block was unused
    raise ValueError(f"{type(owner).__name__}: {message}")


def check_ints(owner, **params: tuple[object, int]) -> None:
    """``name=(value, minimum)``: each value must be an ``int`` of at least its minimum."""
    for name, (value, lo) in params.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < lo:
            refuse(owner, f"{name} must be an integer >= {lo}, got {value!r}")
