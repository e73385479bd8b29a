"""Compare samples with a density through a histogram: total variation on a grid of cells.

Used to check the change-of-variables formula by Monte Carlo. The sampling noise of a histogram with
``K`` occupied cells and ``n`` samples makes this TV about ``0.4 Σ_i sqrt(q_i / n)`` even when the density is
exact, so compare it with :func:`expected_noise_tv`, not with zero.
"""

from __future__ import annotations

from collections.abc import Callable

import math

import torch
from torch import Tensor

from diffbook.device import check_float_dtype
from diffbook.metrics._inputs import check_finite

__all__ = ["grid_2d", "histogram_2d", "cell_probabilities", "histogram_tv", "expected_noise_tv"]


def _check_box(lo: object, hi: object, bins: object) -> None:
    for name, v in (("lo", lo), ("hi", hi)):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise ValueError(f"{name} must be a finite number, got {v!r}")
    if not hi > lo:  # type: ignore[operator]
        raise ValueError(f"need hi > lo, got lo={lo}, hi={hi}")
    if isinstance(bins, bool) or not isinstance(bins, int) or bins < 1:
        raise ValueError(f"bins must be a positive int, got {bins!r}")


def _check_density(log_density: object) -> None:
    if not callable(log_density):
        raise TypeError(f"log_density must be callable as log_density(points (m, 2)) -> (m,), "
                        f"got {type(log_density).__name__}")


def grid_2d(lo: float, hi: float, bins: int, *, dtype: torch.dtype = torch.float64) -> tuple[Tensor, float]:
    """Cell centres of a ``bins × bins`` grid on ``[lo, hi]²``, shape ``(bins * bins, 2)``, and the cell area.

    Centres are in row-major order: row index = ``y`` bin, column index = ``x`` bin.
    """
    _check_box(lo, hi, bins)
    check_float_dtype(dtype, "dtype")
    width = (hi - lo) / bins
    c = torch.linspace(lo + width / 2, hi - width / 2, bins, dtype=dtype)
    yy, xx = torch.meshgrid(c, c, indexing="ij")
    return torch.stack([xx.flatten(), yy.flatten()], dim=1), width * width


def histogram_2d(samples: Tensor, lo: float, hi: float, bins: int) -> Tensor:
    """Fraction of ``samples`` (shape ``(n, 2)``) in each cell of the grid of :func:`grid_2d`, shape ``(bins*bins,)``.

    Samples outside ``[lo, hi]²`` count in no cell, so the result sums to the fraction inside.
    """
    if not isinstance(samples, Tensor):
        raise TypeError(f"samples must be a torch.Tensor of shape (n, 2), got {type(samples).__name__}")
    if not samples.is_floating_point():
        raise TypeError(f"samples must be a floating-point tensor, got dtype {samples.dtype}")
    if samples.ndim != 2 or samples.shape[1] != 2 or samples.shape[0] == 0:
        raise ValueError(f"samples must have shape (n, 2) with n >= 1, got {tuple(samples.shape)}")
    check_finite(samples, "samples")
    _check_box(lo, hi, bins)
    idx = torch.floor((samples - lo) / (hi - lo) * bins).long()
    inside = ((idx >= 0) & (idx < bins)).all(dim=1)
    flat = idx[inside, 1] * bins + idx[inside, 0]
    return torch.bincount(flat, minlength=bins * bins).to(torch.float64) / samples.shape[0]


def cell_probabilities(
    log_density: Callable[[Tensor], Tensor], lo: float, hi: float, bins: int, subdivide: int = 4
) -> Tensor:
    """Probability of each cell of the :func:`grid_2d` grid, shape ``(bins * bins,)``.

    Each cell is integrated by the midpoint rule on a ``subdivide × subdivide`` sub-grid, so densities
    that vary within a cell (a thin ring, say) are still integrated accurately.
    """
    _check_density(log_density)
    _check_box(lo, hi, bins)
    if isinstance(subdivide, bool) or not isinstance(subdivide, int) or subdivide < 1:
        raise ValueError(f"subdivide must be a positive int, got {subdivide!r}")
    fine, fine_area = grid_2d(lo, hi, bins * subdivide)
    q = torch.exp(log_density(fine)).double() * fine_area
    q = q.reshape(bins, subdivide, bins, subdivide).sum(dim=(1, 3))
    return q.flatten()


def histogram_tv(
    samples: Tensor,
    log_density: Callable[[Tensor], Tensor],
    lo: float,
    hi: float,
    bins: int,
    subdivide: int = 4,
) -> float:
    """Total variation between the histogram of ``samples`` and the density's cell probabilities.

    Mass outside the box is compared too (one extra "cell"), so the number is a true TV in ``[0, 1]``
    up to the quadrature error of :func:`cell_probabilities`.

    Args:
        samples: shape ``(n, 2)``.
        log_density: ``log_density(points)`` for points of shape ``(m, 2)``, returning shape ``(m,)``.
        lo, hi, bins: the grid of :func:`grid_2d`; ``subdivide``: the quadrature sub-grid per cell.
    Returns:
        The total variation, a Python float in ``[0, 1]``.
    """
    p = histogram_2d(samples, lo, hi, bins)
    q = cell_probabilities(log_density, lo, hi, bins, subdivide)
    outside = (1.0 - p.sum()) - (1.0 - q.sum())
    return float(0.5 * ((p - q).abs().sum() + outside.abs()))


def expected_noise_tv(
    log_density: Callable[[Tensor], Tensor], n: int, lo: float, hi: float, bins: int
) -> float:
    """The TV that sampling noise alone gives on average: ``½ Σ_i E|p̂_i - q_i| ≈ ½ Σ_i sqrt(2 q_i (1 - q_i) / (π n))``.

    Args:
        log_density: ``log_density(points)`` for points of shape ``(m, 2)``, returning shape ``(m,)``.
        n: the sample size; ``lo, hi, bins``: the grid of :func:`grid_2d`.
    Returns:
        A Python float (the normal approximation of a binomial's mean absolute deviation).
    """
    _check_density(log_density)
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive int, got {n!r}")
    q = cell_probabilities(log_density, lo, hi, bins).clamp(0.0, 1.0)
    return float(0.5 * torch.sqrt(2.0 * q * (1.0 - q) / (torch.pi * n)).sum())
