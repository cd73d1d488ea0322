"""scikit-learn's bundled 8x8 handwritten digits (no download) and the fixed train/test split.

The data: 1797 grey 8x8 images, pixels are integers 0..16, 10 classes. The
split is fixed for the whole project: a stratified 80/20 split with
``random_state=SPLIT_SEED`` (``sklearn.model_selection.train_test_split``),
giving 1437 training and 360 test images.

Input normalisation: the model sees ``pixel / 16`` in ``[0, 1]``. There is no
mean subtraction on purpose: a zero-padded border then equals a black pixel,
so the scale folds exactly into the first convolution when the hardware takes
raw unsigned pixels.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

__all__ = ["SPLIT_SEED", "PIXEL_MAX", "DigitsSplit", "load_digits_split", "normalize_pixels"]

SPLIT_SEED = 0
TEST_FRACTION = 0.2
PIXEL_MAX = 16  # digits pixels are integers 0..16


@dataclass(frozen=True)
class DigitsSplit:
    """Raw pixels (``uint8`` 0..16, ``[N, 1, 8, 8]``) and labels (``int64``) of both splits."""

    train_pixels: torch.Tensor
    train_labels: torch.Tensor
    test_pixels: torch.Tensor
    test_labels: torch.Tensor


def normalize_pixels(pixels: torch.Tensor) -> torch.Tensor:
    """The float model's input: ``pixels / 16`` as float32."""
    return pixels.to(torch.float32) / PIXEL_MAX


def load_digits_split() -> DigitsSplit:
    """The project's fixed, seeded, stratified digits split."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    images = digits.images.astype(np.uint8).reshape(-1, 1, 8, 8)
    labels = digits.target.astype(np.int64)
    x_tr, x_te, y_tr, y_te = train_test_split(
        images, labels, test_size=TEST_FRACTION, random_state=SPLIT_SEED, stratify=labels
    )
    return DigitsSplit(
        train_pixels=torch.from_numpy(np.ascontiguousarray(x_tr)),
        train_labels=torch.from_numpy(y_tr),
        test_pixels=torch.from_numpy(np.ascontiguousarray(x_te)),
        test_labels=torch.from_numpy(y_te),
    )
