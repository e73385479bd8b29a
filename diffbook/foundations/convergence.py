"""Measuring convergence orders: global errors over a ladder of step counts and the fitted log–log slope.

A method of order ``p`` has global error ``C h^p`` for small ``h``, so ``log(error)`` against ``log(h)`` is a
line of slope ``p`` (Hairer et al., *Solving ODEs I*, §II.3). The book measures orders; it never assumes them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from diffbook.ode import Step, VectorField, integrate, time_grid

__all__ = ["fit_order", "global_errors"]


def fit_order(hs: Sequence[float] | Tensor, errors: Sequence[float] | Tensor) -> float:
    """Least-squares slope of ``log(errors)`` against ``log(hs)``: the measured order of convergence.

    Args:
        hs: step sizes, shape ``(k,)``, positive, ``k >= 2``.
        errors: errors at those step sizes, shape ``(k,)``, positive.
    """
    h = torch.as_tensor(hs, dtype=torch.float64).flatten()
    e = torch.as_tensor(errors, dtype=torch.float64).flatten()
    if h.numel() != e.numel() or h.numel() < 2:
        raise ValueError(f"hs and errors need the same length >= 2, got {h.numel()} and {e.numel()}")
    if (h <= 0).any() or (e <= 0).any() or not (torch.isfinite(h).all() and torch.isfinite(e).all()):
        raise ValueError("hs and errors must be finite and positive to take logarithms")
    lx, ly = h.log(), e.log()
    lx = lx - lx.mean()
    return float((lx * (ly - ly.mean())).sum() / (lx * lx).sum())


def global_errors(
    step: Step,
    u: VectorField,
    x0: Tensor,
    t0: float,
    t1: float,
    exact: Callable[[Tensor], Tensor] | Tensor,
    n_steps: Sequence[int],
) -> tuple[Tensor, Tensor]:
    """Global error at ``t1`` of ``step`` on a ladder of uniform grids.

    Args:
        x0: initial states, shape ``(n, d)``; use float64 so round-off stays far below the error.
        exact: the exact solution at ``t1``, shape ``(n, d)``, or a function ``x0 -> x(t1)``.
        n_steps: step counts, e.g. ``[8, 16, 32, 64]``.

    Returns:
        ``(hs, errors)``, both shape ``(len(n_steps),)``: the step sizes and the largest Euclidean error
        over the batch.
    """
    target = exact(x0) if callable(exact) else exact
    hs, errs = [], []
    for n in n_steps:
        x1 = integrate(u, x0, time_grid(t0, t1, n, dtype=x0.dtype, device=x0.device), step=step)
        hs.append(abs(t1 - t0) / n)
        errs.append(float((x1 - target).flatten(1).norm(dim=1).max()))
    return torch.tensor(hs, dtype=torch.float64), torch.tensor(errs, dtype=torch.float64)
