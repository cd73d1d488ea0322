"""The argparse types of the ``spikeforge`` options: values that are refused, never replaced by a default."""

from __future__ import annotations

import argparse

__all__ = ["int_at_least", "positive_float", "count", "natural"]


def int_at_least(low: int):
    """An argparse type: an integer >= ``low`` (0 and negative values are never replaced by a default)."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be at least {low}, got {value}")
        return value
    parse.__name__ = "integer"
    return parse


def positive_float(text: str) -> float:
    """An argparse type: a finite number > 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


positive_float.__name__ = "number"
#: Lanes, images, epochs, batch sizes, capacities, baud rates.
count = int_at_least(1)
#: Retries, seeds, indices, "0 skips it".
natural = int_at_least(0)
