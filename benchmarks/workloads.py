"""Controlled synthetic workloads for the benchmarks.

The accelerator's input is an image whose pixels it reads as bit-plane events (the first layer
is multiplier-free: ``acc = sum_b conv(bit b of pixels) << b``), so an input **firing rate** is the
fraction of set bits over all (pixel, bit-plane) positions. :func:`synthetic_pixels` makes images
with exactly a requested rate; :func:`input_firing_rate` measures it on any images (real digits
included), so synthetic and real points sit on one axis.
"""

from __future__ import annotations

import torch

__all__ = ["synthetic_pixels", "input_firing_rate", "max_synthetic_rate"]


def max_synthetic_rate(pixel_bits: int) -> float:
    """The highest rate :func:`synthetic_pixels` can make: the top plane stays clear, so that every
    value is below ``2 ** (pixel_bits - 1) <= pixel_max`` (the range the quantizer sized for)."""
    return (pixel_bits - 1) / pixel_bits


def synthetic_pixels(n: int, shape: tuple[int, int, int], pixel_bits: int, rate: float,
                     seed: int = 0) -> torch.Tensor:
    """``n`` images ``[n, C, H, W]`` with exactly ``round(rate * C * H * W * pixel_bits)`` set
    bit-plane bits each, placed uniformly at random among the lower ``pixel_bits - 1`` planes."""
    if not 0 <= rate <= max_synthetic_rate(pixel_bits):
        raise ValueError(f"synthetic firing rate must be in [0, {max_synthetic_rate(pixel_bits):.2f}] "
                         f"for {pixel_bits}-bit pixels, got {rate}")
    c, h, w = shape
    positions = c * h * w * (pixel_bits - 1)
    k = round(rate * c * h * w * pixel_bits)
    g = torch.Generator().manual_seed(seed)
    out = torch.zeros(n, c * h * w, dtype=torch.int64)
    for i in range(n):
        idx = torch.randperm(positions, generator=g)[:k]
        bits = torch.zeros(positions, dtype=torch.int64)
        bits[idx] = 1
        planes = bits.view(c * h * w, pixel_bits - 1)
        out[i] = (planes << torch.arange(pixel_bits - 1)).sum(1)
    return out.view(n, c, h, w)


def input_firing_rate(pixels: torch.Tensor, pixel_bits: int) -> float:
    """Fraction of set bits over all (pixel, bit-plane) positions of ``pixels``."""
    p = pixels.long()
    ones = sum(int(((p >> b) & 1).sum()) for b in range(pixel_bits))
    return ones / (p.numel() * pixel_bits) if p.numel() else 0.0
