"""Full-reference image quality: peak signal-to-noise ratio (PSNR) and structural similarity (SSIM).

Both compare a batch of reconstructions with a batch of references, image by image, for tensors of shape
``(n, C, H, W)``. ``data_range`` is the width of the value range (2 for images in ``[-1, 1]``, 1 for
``[0, 1]``, 255 for 8-bit): PSNR and the SSIM constants depend on it.

SSIM follows Wang et al. exactly as scikit-image does with ``gaussian_weights=True,
use_sample_covariance=False``: local statistics under an 11 × 11 Gaussian window with σ = 1.5, constants
``C1 = (0.01 L)²`` and ``C2 = (0.03 L)²``, the SSIM map kept only where the window fits inside the image
("valid" region), averaged over that region and over channels.

Reference: Z. Wang, A. C. Bovik, H. R. Sheikh, E. P. Simoncelli, *Image Quality Assessment: From Error
Visibility to Structural Similarity*, IEEE TIP 13(4) (2004), Eq. (13) and §III-C (the window and constants).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from diffbook.device import check_float_dtype
from diffbook.metrics._inputs import check_finite

__all__ = ["mse", "psnr", "gaussian_window", "ssim"]


def _check_images(x: object, name: str) -> Tensor:
    if not isinstance(x, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got dtype {x.dtype}")
    if x.ndim != 4:
        raise ValueError(f"{name} must have shape (n, C, H, W), got {tuple(x.shape)}")
    return x


def _check_pair(x: object, y: object) -> tuple[Tensor, Tensor]:
    x, y = _check_images(x, "x"), _check_images(y, "y")
    check_finite(x, "x")
    check_finite(y, "y")
    if x.shape != y.shape:
        raise ValueError(f"x and y must have the same shape, got {tuple(x.shape)} and {tuple(y.shape)}")
    if x.device != y.device:
        raise ValueError(f"x is on {x.device} but y is on {y.device}; put both on one device")
    return x, y


def _check_range(data_range: float) -> float:
    if (isinstance(data_range, bool) or not isinstance(data_range, (int, float)) or not data_range > 0
            or not math.isfinite(data_range)):
        raise ValueError(f"data_range must be a positive number (2 for [-1, 1] images), got {data_range!r}")
    return float(data_range)


def mse(x: Tensor, y: Tensor) -> Tensor:
    """Mean squared error per image, shape ``(n,)``, for ``x`` and ``y`` of shape ``(n, C, H, W)``.

    Reference: Wang & Bovik (2009), *Mean squared error: love it or leave it?*, Eq. 1.
    """
    x, y = _check_pair(x, y)
    return (x - y).pow(2).flatten(1).mean(1)


def psnr(x: Tensor, y: Tensor, *, data_range: float) -> Tensor:
    """``PSNR = 10 log10(data_range² / MSE)`` in decibels, per image.

    Args:
        x: images, shape ``(n, C, H, W)``.
        y: reference images, same shape.
        data_range: width of the value range, e.g. 2 for ``[-1, 1]``.
    Returns:
        PSNR per image, shape ``(n,)``; ``+inf`` where the images are identical.

    Reference: Wang et al. (2004), §I (PSNR as the baseline of SSIM).
    """
    data_range = _check_range(data_range)
    err = mse(x, y)
    return 10.0 * torch.log10(data_range**2 / err)


def _check_window(size: object, sigma: object, name: str) -> None:
    if not isinstance(size, int) or isinstance(size, bool) or size < 1 or size % 2 == 0:
        raise ValueError(f"{name} must be a positive odd int, got {size!r}")
    if isinstance(sigma, bool) or not isinstance(sigma, (int, float)) or not sigma > 0 or not math.isfinite(sigma):
        raise ValueError(f"sigma must be a positive finite number, got {sigma!r}")


def gaussian_window(
    size: int = 11, sigma: float = 1.5, *, dtype: torch.dtype = torch.float32, device: torch.device | str | None = None
) -> Tensor:
    """The normalised 1-D Gaussian window of ``size`` taps, shape ``(size,)``; the 2-D window is its outer product.

    Reference: Wang et al. (2004), §III-C (11 × 11 Gaussian window, σ = 1.5).
    """
    _check_window(size, sigma, "size")
    check_float_dtype(dtype, "dtype")
    r = torch.arange(size, dtype=torch.float64, device=device) - (size - 1) / 2
    w = torch.exp(-0.5 * (r / sigma) ** 2)
    return (w / w.sum()).to(dtype)


def ssim(
    x: Tensor,
    y: Tensor,
    *,
    data_range: float,
    window_size: int = 11,
    sigma: float = 1.5,
    k1: float = 0.01,
    k2: float = 0.03,
    return_map: bool = False,
) -> Tensor:
    """Mean structural similarity per image (Wang et al. 2004, Eq. 13, Gaussian-weighted statistics).

    ``SSIM = (2 μx μy + C1)(2 σxy + C2) / ((μx² + μy² + C1)(σx² + σy² + C2))`` with local means, variances
    and covariance under the Gaussian window. It is 1 exactly when ``x = y``, symmetric in ``x`` and ``y``, and at
    most 1.

    Args:
        x: images, shape ``(n, C, H, W)`` with ``H, W >= window_size``.
        y: reference images, same shape.
        data_range: width of the value range, e.g. 2 for ``[-1, 1]``.
        window_size: taps of the Gaussian window (odd); use e.g. 7 with ``sigma=1.0`` for 8 × 8 images.
        sigma: its standard deviation in pixels.
        k1, k2: the stabilising constants, ``C1 = (k1 L)²``, ``C2 = (k2 L)²``.
        return_map: return the SSIM map, shape ``(n, C, H - window_size + 1, W - window_size + 1)``,
            instead of its mean.
    Returns:
        SSIM per image, shape ``(n,)`` (or the map).

    Reference: Wang et al. (2004), Eq. 13 and §III-C.
    """
    data_range = _check_range(data_range)
    _check_window(window_size, sigma, "window_size")
    for name, k in (("k1", k1), ("k2", k2)):
        if isinstance(k, bool) or not isinstance(k, (int, float)) or not k > 0 or not math.isfinite(k):
            raise ValueError(f"{name} must be a positive finite number, got {k!r}")
    if not isinstance(return_map, bool):
        raise TypeError(f"return_map must be a bool, got {type(return_map).__name__}")
    x, y = _check_pair(x, y)
    n, c, h, w = x.shape
    if h < window_size or w < window_size:
        raise ValueError(
            f"x and y must be at least window_size={window_size} pixels high and wide, got {h} × {w}; "
            "pass a smaller window_size (and sigma)"
        )
    g = gaussian_window(window_size, sigma, dtype=x.dtype, device=x.device)
    # Separable filtering of the five moment maps at once; "valid" convolution, no padding.
    stack = torch.cat([x, y, x * x, y * y, x * y], dim=1)  # (n, 5C, H, W)
    stack = F.conv2d(stack, g.view(1, 1, -1, 1).expand(5 * c, 1, -1, 1), groups=5 * c)
    stack = F.conv2d(stack, g.view(1, 1, 1, -1).expand(5 * c, 1, 1, -1), groups=5 * c)
    mu_x, mu_y, e_xx, e_yy, e_xy = stack.split(c, dim=1)
    var_x = e_xx - mu_x * mu_x
    var_y = e_yy - mu_y * mu_y
    cov_xy = e_xy - mu_x * mu_y
    c1, c2 = (k1 * data_range) ** 2, (k2 * data_range) ** 2
    num = (2 * mu_x * mu_y + c1) * (2 * cov_xy + c2)
    den = (mu_x * mu_x + mu_y * mu_y + c1) * (var_x + var_y + c2)
    ssim_map = num / den
    return ssim_map if return_map else ssim_map.flatten(1).mean(1)
