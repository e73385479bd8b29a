"""Brownian motion on a grid and the stochastic sums built from it: Itô, midpoint and trapezoid sums.

Conventions (shared by :mod:`diffbook.foundations.processes` and :mod:`diffbook.foundations.sde_errors`). Time runs from ``0`` to ``T``
on a uniform grid of ``N`` steps of size ``h = T / N``. A batch of scalar Brownian paths is a tensor ``w`` of
shape ``(n_paths, N + 1)`` with ``w[:, 0] = 0``; its increments ``dw = w.diff(dim=-1)`` have shape
``(n_paths, N)``. All randomness comes from an optional ``torch.Generator``, so every number is reproducible.
Functions take dtype and device from their inputs.

The Itô sum evaluates the integrand at the left end of each step; the midpoint and trapezoid sums do not,
and tend to the Stratonovich integral instead. Argument checks are the shared ones of
:mod:`diffbook._checks`.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from diffbook._checks import check_int, check_real, check_tensor

__all__ = [
    "brownian_increments",
    "brownian_path",
    "path_from_increments",
    "coarsen",
    "quadratic_variation",
    "ito_integral",
    "ito_sum",
    "midpoint_sum",
    "trapezoid_sum",
]


# --------------------------------------------------------------------------------------------------
# validation


def _like(value: Tensor | float, ref: Tensor | None = None, name: str = "value") -> Tensor:
    """A tensor for a number or tensor argument, in float64 unless ``value`` (or ``ref``) says otherwise."""
    if isinstance(value, Tensor):
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number or a tensor, got {type(value).__name__}")
    if ref is not None:
        return torch.as_tensor(value, dtype=ref.dtype, device=ref.device)
    return torch.as_tensor(value, dtype=torch.float64)


# --------------------------------------------------------------------------------------------------
# Brownian motion and stochastic sums


def brownian_increments(
    n_paths: int,
    n_steps: int,
    T: float,
    *,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str = "cpu",
) -> Tensor:
    """Increments ``W_{t_{i+1}} - W_{t_i}`` of ``n_paths`` independent Brownian motions on ``[0, T]``.

    They are independent ``N(0, h)`` with ``h = T / n_steps`` (Øksendal 2003, §2.2). Shape ``(n_paths, n_steps)``.
    """
    check_int(n_paths, "n_paths")
    check_int(n_steps, "n_steps")
    T = check_real(T, "T", positive=True)
    z = torch.randn(n_paths, n_steps, generator=generator, dtype=dtype, device=device)
    return z * math.sqrt(T / n_steps)


def path_from_increments(dw: Tensor) -> Tensor:
    """Cumulative sum of increments ``(..., N)`` with a leading zero: the path ``(..., N + 1)``, ``W_0 = 0``."""
    dw = check_tensor(dw, "dw", min_ndim=1)
    return torch.cat([torch.zeros_like(dw[..., :1]), dw.cumsum(dim=-1)], dim=-1)


def brownian_path(
    n_paths: int,
    n_steps: int,
    T: float,
    *,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str = "cpu",
) -> Tensor:
    """``n_paths`` Brownian paths at ``t_i = i T / n_steps``, shape ``(n_paths, n_steps + 1)``, starting at 0."""
    return path_from_increments(brownian_increments(n_paths, n_steps, T, generator=generator, dtype=dtype, device=device))


def coarsen(dw: Tensor, factor: int) -> Tensor:
    """Sum consecutive blocks of ``factor`` increments: the same Brownian path on a grid ``factor`` times coarser.

    Args:
        dw: increments, shape ``(..., N)`` with ``N`` divisible by ``factor``.
    Returns:
        shape ``(..., N // factor)``.
    """
    dw = check_tensor(dw, "dw", min_ndim=1)
    check_int(factor, "factor")
    n = dw.shape[-1]
    if n % factor:
        raise ValueError(f"the number of increments ({n}) must be divisible by factor ({factor})")
    return dw.reshape(*dw.shape[:-1], n // factor, factor).sum(dim=-1)


def quadratic_variation(w: Tensor) -> Tensor:
    """``Σ_i (W_{t_{i+1}} - W_{t_i})²`` along the last axis of paths ``(..., N + 1)``; tends to ``T`` (Øksendal, Ex. 2.17)."""
    w = check_tensor(w, "w", min_ndim=1)
    if w.shape[-1] < 2:
        raise ValueError(f"w needs at least 2 time points on its last axis, got shape {tuple(w.shape)}")
    return (w.diff(dim=-1) ** 2).sum(dim=-1)


def ito_integral(integrand: Tensor, dw: Tensor) -> Tensor:
    """The Itô sum ``Σ_i H_{t_i} (W_{t_{i+1}} - W_{t_i})``: integrand taken at the *left* end of each step.

    Args:
        integrand: ``H`` at the left points ``t_0 … t_{N-1}``, shape ``(..., N)``; it must not look ahead
            (be adapted), otherwise the sum converges to something else.
        dw: the increments over the same steps, shape ``(..., N)``.
    Returns:
        shape ``(...)``.
    """
    integrand = check_tensor(integrand, "integrand", min_ndim=1)
    dw = check_tensor(dw, "dw", min_ndim=1)
    if integrand.shape != dw.shape:
        raise ValueError(f"integrand {tuple(integrand.shape)} and dw {tuple(dw.shape)} must have the same shape")
    return (integrand * dw).sum(dim=-1)


def ito_sum(w: Tensor) -> Tensor:
    """``Σ_i W_{t_i} ΔW_i`` for paths ``(..., N + 1)``: the Itô sum of ``∫_0^T W dW``, which tends to ``(W_T² - T)/2``."""
    w = check_tensor(w, "w", min_ndim=1)
    if w.shape[-1] < 2:
        raise ValueError(f"w needs at least 2 time points on its last axis, got shape {tuple(w.shape)}")
    return ito_integral(w[..., :-1], w.diff(dim=-1))


def midpoint_sum(w: Tensor) -> Tensor:
    """``Σ_k W_{t_{2k+1}} (W_{t_{2k+2}} - W_{t_{2k}})``: the integrand at the *midpoint* of each coarse step.

    Args:
        w: paths on a grid of ``2M`` steps, shape ``(..., 2M + 1)``; the sum is over the ``M`` coarse steps.
    Returns:
        shape ``(...)``; tends to the Stratonovich integral ``W_T²/2``.
    """
    w = check_tensor(w, "w", min_ndim=1)
    n = w.shape[-1] - 1
    if n < 2 or n % 2:
        raise ValueError(f"w must have an even number (>= 2) of steps on its last axis, got {n}")
    return (w[..., 1::2] * (w[..., 2::2] - w[..., 0:-1:2])).sum(dim=-1)


def trapezoid_sum(w: Tensor) -> Tensor:
    """``Σ_i ½(W_{t_i} + W_{t_{i+1}}) ΔW_i``: telescopes to ``W_T²/2`` exactly, on every grid.

    ``w``: shape ``(..., N + 1)``; returns shape ``(...)``.
    """
    w = check_tensor(w, "w", min_ndim=1)
    if w.shape[-1] < 2:
        raise ValueError(f"w needs at least 2 time points on its last axis, got shape {tuple(w.shape)}")
    return (0.5 * (w[..., :-1] + w[..., 1:]) * w.diff(dim=-1)).sum(dim=-1)
