"""Handwritten digits, 8 × 8 grey levels: scikit-learn's copy of the UCI optical digits (1797 images).

The data ship inside the scikit-learn wheel (``sklearn.datasets.load_digits``), so nothing is downloaded.
Pixels are integers ``0 … 16`` (17 levels); they are mapped to ``[-1, 1]`` by ``v / 8 - 1``, so ``0 → -1``
(background) and ``16 → 1`` (ink).

Reference: E. Alpaydin, C. Kaynak, *Optical Recognition of Handwritten Digits*, UCI Machine Learning
Repository (1998); loaded through scikit-learn (Pedregosa et al., JMLR 12, 2011).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["N_DIGITS", "load_digits", "train_test_split"]

N_DIGITS = 1797
"""The number of images in the set."""


def load_digits(*, upsample: bool = False, dtype: torch.dtype = torch.float32) -> tuple[Tensor, Tensor]:
    """All 1797 digits as images in ``[-1, 1]`` and their labels.

    Args:
        upsample: if true, return 16 × 16 images, bilinearly upsampled (``align_corners=False``, so values stay
            in ``[-1, 1]``); otherwise the original 8 × 8.
        dtype: floating dtype of the images.
    Returns:
        ``(images, labels)``: images of shape ``(1797, 1, 8, 8)`` (or ``(1797, 1, 16, 16)``) and int64 labels
        ``0 … 9`` of shape ``(1797,)``, in scikit-learn's order.
    """
    if not isinstance(upsample, bool):
        raise TypeError(f"upsample must be a bool, got {type(upsample).__name__}")
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise TypeError(f"dtype must be a floating torch.dtype, got {dtype!r}")
    from sklearn.datasets import load_digits as _sk_load_digits  # sklearn is imported only when data is asked for

    bunch = _sk_load_digits()
    images = torch.from_numpy(np.asarray(bunch.images, dtype=np.float64)).unsqueeze(1) / 8.0 - 1.0
    if upsample:
        images = F.interpolate(images, size=(16, 16), mode="bilinear", align_corners=False)
    labels = torch.from_numpy(np.asarray(bunch.target, dtype=np.int64))
    return images.to(dtype), labels


def train_test_split(
    images: Tensor,
    labels: Tensor,
    *,
    test_fraction: float = 0.2,
    generator: torch.Generator | None = None,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """A stratified, deterministic split: ``test_fraction`` of every class goes to the test set.

    Within each class the examples are shuffled by ``generator`` (a fixed seed 0 when ``None``, so the default
    split is the same on every call and machine), and the first ``round(test_fraction * count)`` go to the test
    set. For the digits with the default fraction this is 1438 training and 359 test images.

    Args:
        images: shape ``(n, ...)``.
        labels: integer classes, shape ``(n,)``.
        test_fraction: in ``(0, 1)``.
        generator: the shuffle; a CPU generator.
    Returns:
        ``(train_images, train_labels, test_images, test_labels)``, each set in the original order.
    """
    if not isinstance(images, Tensor) or not isinstance(labels, Tensor):
        raise TypeError("images and labels must be torch.Tensors")
    if labels.ndim != 1 or labels.dtype.is_floating_point or labels.shape[0] != images.shape[0]:
        raise ValueError(
            f"labels must be an integer tensor of shape ({images.shape[0]},) matching images, "
            f"got {labels.dtype} {tuple(labels.shape)}"
        )
    if isinstance(test_fraction, bool) or not isinstance(test_fraction, (int, float)) or not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction must be a number in (0, 1), got {test_fraction!r}")
    if generator is None:
        generator = torch.Generator().manual_seed(0)
    elif not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator or None, got {type(generator).__name__}")
    cpu_labels = labels.cpu()
    is_test = torch.zeros(labels.shape[0], dtype=torch.bool)
    for c in torch.unique(cpu_labels).tolist():  # sorted classes: the draw order is fixed
        members = torch.nonzero(cpu_labels == c).flatten()
        perm = members[torch.randperm(members.numel(), generator=generator, device=generator.device).cpu()]
        is_test[perm[: round(test_fraction * members.numel())]] = True
    is_test = is_test.to(labels.device)
    train, test = ~is_test, is_test
    return images[train.to(images.device)], labels[train], images[test.to(images.device)], labels[test]
