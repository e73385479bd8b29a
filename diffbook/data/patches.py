"""Natural-image patches cropped from the photographs that ship inside scikit-learn and matplotlib.

Three photos load with no network: ``"china"`` (427 × 640, a temple) and ``"flower"`` (427 × 640), from
``sklearn.datasets.load_sample_images()``, and ``"grace_hopper"`` (600 × 512, a portrait), the file that
``matplotlib.cbook.get_sample_data('grace_hopper.jpg')`` returns. The last is found through the installed
matplotlib package's data folder without importing matplotlib (diffbook imports matplotlib only in its
plotting helpers). Pixels are mapped from ``0 … 255`` to ``[-1, 1]`` by ``v / 127.5 - 1``.

**Held-out patches.** Two ways, which can be combined:

* *by region* (``split="train"`` / ``"test"``): the rightmost ``test_fraction`` of every photo's columns is
  the test region, the rest the training region; every crop lies entirely inside one region, so training and
  test patches share no pixel;
* *by photo*: sample training patches from some photos and test patches from another, e.g.
  ``photos=("china", "grace_hopper")`` for training and ``photos=("flower",)`` for testing.

Reference: natural-image patches as a data set go back to B. A. Olshausen, D. J. Field, *Emergence of simple-cell
receptive field properties by learning a sparse code for natural images*, Nature 381 (1996); the photos are
scikit-learn's sample images (Pedregosa et al., JMLR 12, 2011) and matplotlib's sample data.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from diffbook.device import check_float_dtype

__all__ = ["PHOTOS", "photo_path", "load_photo", "split_columns", "sample_patches"]

PHOTOS = ("china", "flower", "grace_hopper")
"""The names of the photos that ship with the installed packages."""

_LUMA = (0.299, 0.587, 0.114)  # ITU-R BT.601 weights for grey = luma
_SPLITS = ("train", "test", "all")


def photo_path(name: str) -> Path:
    """The file of the photo ``name`` (one of :data:`PHOTOS`) inside the installed scikit-learn or matplotlib."""
    if name not in PHOTOS:
        raise ValueError(f"name must be one of {PHOTOS}, got {name!r}")
    if name == "grace_hopper":
        spec = importlib.util.find_spec("matplotlib")
        roots = list(spec.submodule_search_locations or []) if spec is not None else []
        candidates = [Path(r) / "mpl-data" / "sample_data" / "grace_hopper.jpg" for r in roots]
    else:
        spec = importlib.util.find_spec("sklearn")
        roots = list(spec.submodule_search_locations or []) if spec is not None else []
        candidates = [Path(r) / "datasets" / "images" / f"{name}.jpg" for r in roots]
    for path in candidates:
        if path.is_file():
            return path
    package = "matplotlib" if name == "grace_hopper" else "scikit-learn"
    raise FileNotFoundError(f"photo {name!r} not found: is {package} installed? (looked in {candidates})")


def load_photo(
    name: str, *, grayscale: bool = False, downscale: int = 1, dtype: torch.dtype = torch.float32
) -> Tensor:
    """One photo as a tensor in ``[-1, 1]``, shape ``(C, H, W)`` with ``C = 1`` (grey) or 3 (RGB).

    Args:
        name: one of :data:`PHOTOS`.
        grayscale: convert to luma ``0.299 R + 0.587 G + 0.114 B`` (ITU-R BT.601).
        downscale: an integer factor; ``k × k`` blocks are averaged (a box filter, so no aliasing), and
            ``H, W`` become ``H // k, W // k``.
        dtype: floating dtype of the result.
    """
    from PIL import Image  # Pillow is a dependency of both scikit-learn's loader and matplotlib

    if not isinstance(grayscale, bool):
        raise TypeError(f"grayscale must be a bool, got {type(grayscale).__name__}")
    if not isinstance(downscale, int) or isinstance(downscale, bool) or downscale < 1:
        raise ValueError(f"downscale must be a positive int, got {downscale!r}")
    check_float_dtype(dtype, "dtype")
    with Image.open(photo_path(name)) as im:
        rgb = np.asarray(im.convert("RGB"), dtype=np.float64)
    img = torch.from_numpy(rgb).permute(2, 0, 1)  # (3, H, W) in 0 … 255
    if grayscale:
        img = (torch.tensor(_LUMA, dtype=img.dtype)[:, None, None] * img).sum(0, keepdim=True)
    if downscale > 1:
        img = F.avg_pool2d(img[None], downscale)[0]
    return (img / 127.5 - 1.0).clamp_(-1.0, 1.0).to(dtype)


def split_columns(width: int, split: str, test_fraction: float) -> tuple[int, int]:
    """The columns ``[lo, hi)`` of a photo of ``width`` columns that belong to ``split``.

    The test region is the rightmost ``round(test_fraction * width)`` columns; ``"all"`` is the whole width.
    """
    if isinstance(width, bool) or not isinstance(width, int) or width < 2:
        raise ValueError(f"width must be an int >= 2, got {width!r}")
    if split not in _SPLITS:
        raise ValueError(f"split must be one of {_SPLITS}, got {split!r}")
    if isinstance(test_fraction, bool) or not isinstance(test_fraction, (int, float)) or not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction must be a number in (0, 1), got {test_fraction!r}")
    boundary = width - round(test_fraction * width)
    return {"train": (0, boundary), "test": (boundary, width), "all": (0, width)}[split]


def sample_patches(
    n: int,
    *,
    size: int = 16,
    photos: tuple[str, ...] = PHOTOS,
    split: str = "train",
    test_fraction: float = 0.25,
    grayscale: bool = True,
    downscale: int = 1,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float32,
    return_boxes: bool = False,
) -> Tensor | tuple[Tensor, Tensor]:
    """``n`` random square crops of ``size × size`` pixels from the photos, in ``[-1, 1]``.

    Each patch picks one of ``photos`` uniformly at random, then a top-left corner uniformly among the
    positions where the crop lies inside that photo's ``split`` region (see :func:`split_columns`).

    Args:
        n: number of patches.
        size: side ``P`` of a patch in pixels (after downscaling).
        photos: names from :data:`PHOTOS` to crop from.
        split: ``"train"``, ``"test"`` (disjoint column regions of every photo) or ``"all"``.
        test_fraction: the share of each photo's width held out as the test region.
        grayscale: one luma channel instead of RGB.
        downscale: shrink the photos by this integer factor first (more content per patch).
        generator: the randomness of the crops (a CPU generator).
        dtype: floating dtype of the patches.
        return_boxes: also return where each patch came from.
    Returns:
        Patches of shape ``(n, C, P, P)`` with ``C = 1`` or 3; with ``return_boxes``, also an int64 tensor
        ``(n, 3)`` of ``(photo index into photos, top, left)`` in downscaled pixel coordinates.
    """
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise ValueError(f"n must be a positive int, got {n!r}")
    if not isinstance(size, int) or isinstance(size, bool) or size < 1:
        raise ValueError(f"size must be a positive int, got {size!r}")
    if isinstance(photos, str) or not isinstance(photos, (tuple, list)) or len(photos) == 0:
        raise TypeError(f"photos must be a non-empty tuple of names from {PHOTOS}, got {photos!r}")
    for name in photos:
        if name not in PHOTOS:
            raise ValueError(f"photos must hold names from {PHOTOS}, got {name!r}")
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator or None, got {type(generator).__name__}")
    on = generator.device if generator is not None else torch.device("cpu")

    images = [load_photo(name, grayscale=grayscale, downscale=downscale, dtype=dtype) for name in photos]
    ranges = []
    for name, img in zip(photos, images):
        lo, hi = split_columns(img.shape[2], split, test_fraction)
        if hi - lo < size or img.shape[1] < size:
            raise ValueError(
                f"size={size} does not fit in the {split!r} region of {name!r} ({img.shape[1]} × {hi - lo} pixels "
                f"after downscale={downscale}); use a smaller size or downscale"
            )
        ranges.append((lo, hi))

    which = torch.randint(0, len(photos), (n,), generator=generator, device=on).cpu()
    u = torch.rand(n, 2, generator=generator, dtype=torch.float64, device=on).cpu()
    heights = torch.tensor([img.shape[1] - size + 1 for img in images], dtype=torch.float64)
    lows = torch.tensor([lo for lo, _ in ranges], dtype=torch.float64)
    widths = torch.tensor([hi - lo - size + 1 for lo, hi in ranges], dtype=torch.float64)
    top = (u[:, 0] * heights[which]).floor().long()
    left = (lows[which] + (u[:, 1] * widths[which]).floor()).long()

    out = torch.empty(n, images[0].shape[0], size, size, dtype=dtype)
    offsets = torch.arange(size)
    for k, img in enumerate(images):
        sel = torch.nonzero(which == k).flatten()
        if sel.numel() == 0:
            continue
        rows = (top[sel, None] + offsets)[:, :, None]  # (m, P, 1)
        cols = (left[sel, None] + offsets)[:, None, :]  # (m, 1, P)
        out[sel] = img[:, rows, cols].permute(1, 0, 2, 3)  # (C, m, P, P) -> (m, C, P, P)
    if return_boxes:
        return out, torch.stack([which, top, left], dim=1)
    return out
