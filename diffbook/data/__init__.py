"""Offline data sets: everything here loads or is generated locally, nothing is downloaded (DESIGN §6).

All functions return torch tensors and take an optional ``torch.Generator`` for anything random.

* :mod:`diffbook.data.toy2d` — 2-D samplers (moons, swiss roll, concentric rings, checkerboard), standardised.
* :mod:`diffbook.data.digits` — scikit-learn's 8 × 8 handwritten digits in ``[-1, 1]``, with a stratified split.
* :mod:`diffbook.data.patches` — natural-image patches from the photos shipped with scikit-learn and matplotlib,
  with a held-out region of every photo.
"""

from diffbook.data.digits import N_DIGITS, load_digits, train_test_split
from diffbook.data.patches import PHOTOS, load_photo, photo_path, sample_patches, split_columns
from diffbook.data.toy2d import sample_checkerboard, sample_moons, sample_rings, sample_swiss_roll

__all__ = [
    "N_DIGITS",
    "load_digits",
    "train_test_split",
    "PHOTOS",
    "photo_path",
    "load_photo",
    "split_columns",
    "sample_patches",
    "sample_moons",
    "sample_swiss_roll",
    "sample_rings",
    "sample_checkerboard",
]
