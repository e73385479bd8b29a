"""Textured digits: scikit-learn's digits drawn over crops of the photos that ship with scikit-learn.

Each 8 × 8 digit is upsampled to 16 × 16 and max-blended over a random grey crop of the ``china`` or
``flower`` photo, scaled by ``texture_gain``: ``x = max(digit, gain · texture)`` in ``[0, 1]``, then mapped to
``[-1, 1]``. The label is the digit's, drawn independently of the texture, so an encoder trained to classify
the images learns to ignore the texture in its deep layers. Training images use the training digits and the
left (training) columns of the photos, test images the test digits and the right (held-out) columns.
Nothing is downloaded: both the digits and the photos are files inside the scikit-learn wheel.
"""

from __future__ import annotations

import torch
from torch import Tensor

from diffbook._checks import check_real
from diffbook.data.digits import load_digits, train_test_split
from diffbook.data.patches import sample_patches

__all__ = ["SKLEARN_PHOTOS", "load_textured_digits"]

SKLEARN_PHOTOS = ("china", "flower")
"""The two photos bundled with scikit-learn (``sklearn.datasets.load_sample_images``)."""


def load_textured_digits(
    split: str = "train", *, texture_gain: float = 0.6, downscale: int = 2, seed: int = 0
) -> tuple[Tensor, Tensor]:
    """Textured 16 × 16 digits in ``[-1, 1]`` and their labels.

    Args:
        split: ``"train"`` (1438 images) or ``"test"`` (359 images): the stratified split of
            :func:`diffbook.data.digits.train_test_split`, textures from the matching column region of the photos.
        texture_gain: brightness of the texture in ``[0, 1]`` (0: plain digits).
        downscale: shrink the photos by this factor before cropping (more texture per crop).
        seed: the randomness of the crops.
    Returns:
        ``(images, labels)``: ``(n, 1, 16, 16)`` float32 and int64 ``(n,)``.
    """
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    gain = check_real(texture_gain, "texture_gain", nonnegative=True)
    if gain > 1:
        raise ValueError(f"texture_gain must be in [0, 1], got {texture_gain!r}")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed must be an int, got {type(seed).__name__}")
    images, labels = load_digits(upsample=True)
    tr_x, tr_y, te_x, te_y = train_test_split(images, labels)
    digits, y = (tr_x, tr_y) if split == "train" else (te_x, te_y)
    gen = torch.Generator().manual_seed(seed + (0 if split == "train" else 1))
    texture = sample_patches(digits.shape[0], size=16, photos=SKLEARN_PHOTOS, split=split, grayscale=True,
                             downscale=downscale, generator=gen)
    assert isinstance(texture, Tensor)
    x = torch.maximum((digits + 1) / 2, gain * (texture + 1) / 2)
    return (2 * x - 1).float(), y
