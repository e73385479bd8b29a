"""Euler–Maruyama on given Brownian increments, and estimators of its error against an exact solution driven
by the *same* Brownian path; the Kolmogorov–Smirnov distance checks exact samplers against a claimed law.

Grids and paths follow the conventions of :mod:`diffbook.foundations.brownian`; the exact solutions come from
:mod:`diffbook.foundations.processes`. The error estimators follow Higham, *An Algorithmic Introduction to Numerical
Simulation of SDEs* (SIAM Review 2001, §§5–6): the strong error is ``E|X_N - X(T)|`` and the weak error
``|E φ(X_N) - E φ(X(T))|``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from diffbook._checks import check_int, check_real, check_tensor
from diffbook.foundations.brownian import _like, coarsen

__all__ = [
    "Coefficient",
    "euler_maruyama_increments",
    "strong_error",
    "weak_error",
    "ErrorLadder",
    "em_error_ladder",
    "ks_distance",
]

Coefficient = Callable[[Tensor, Tensor], Tensor]
"""``c(t, x)``: a drift or diffusion coefficient; ``t`` a 0-dim tensor, ``x`` of shape ``(n_paths,)``."""


# --------------------------------------------------------------------------------------------------
# Euler–Maruyama on given increments, and its errors


def euler_maruyama_increments(
    drift: Coefficient,
    diffusion: Coefficient,
    x0: Tensor | float,
    dw: Tensor,
    T: float,
    *,
    keep_path: bool = False,
) -> Tensor:
    """Euler–Maruyama for the scalar SDE ``dX = f(t, X) dt + g(t, X) dW`` on *given* Brownian increments.

    ``X_{i+1} = X_i + f(t_i, X_i) h + g(t_i, X_i) ΔW_i`` (Kloeden & Platen 1992, §9.1). Feeding it the
    increments of the path that drives a known solution (:func:`coarsen` them for larger steps) is what
    makes its *strong* error measurable. Unlike :func:`diffbook.sde.euler_maruyama`, the diffusion may
    depend on the state (multiplicative noise).

    Args:
        drift, diffusion: ``f(t, x)`` and ``g(t, x)``, each returning a tensor shaped like ``x``.
        x0: scalar or shape ``(n_paths,)``; dw: shape ``(n_paths, N)``; T: the final time.
    Returns:
        ``X_N``, shape ``(n_paths,)``, or with ``keep_path`` the path ``(N + 1, n_paths)``.
    """
    dw = check_tensor(dw, "dw", min_ndim=2)
    T = check_real(T, "T", positive=True)
    if not (callable(drift) and callable(diffusion)):
        raise TypeError("drift and diffusion must be functions (t, x) -> tensor")
    n = dw.shape[-1]
    h = torch.as_tensor(T / n, dtype=dw.dtype, device=dw.device)
    x = torch.broadcast_to(_like(x0, dw, "x0"), dw.shape[:-1]).clone()
    path = [x] if keep_path else None
    for i in range(n):
        t = i * h
        x = x + drift(t, x) * h + diffusion(t, x) * dw[..., i]
        if path is not None:
            path.append(x)
    return torch.stack(path) if path is not None else x


def strong_error(approx: Tensor, exact: Tensor) -> tuple[Tensor, Tensor]:
    """Strong error ``E|X_N - X(T)|`` over paired samples (same Brownian path), and its standard error.

    Args:
        approx, exact: shape ``(n_paths,)`` (or any equal shapes; the mean is over all entries).
    Returns:
        ``(estimate, standard_error)``, two 0-dim tensors.
    """
    approx = check_tensor(approx, "approx", min_ndim=1)
    exact = check_tensor(exact, "exact", min_ndim=1)
    if approx.shape != exact.shape:
        raise ValueError(f"approx {tuple(approx.shape)} and exact {tuple(exact.shape)} must have the same shape")
    d = (approx - exact).abs().flatten()
    return d.mean(), d.std() / math.sqrt(d.numel())


def weak_error(
    approx: Tensor, exact: Tensor, phi: Callable[[Tensor], Tensor] | None = None
) -> tuple[Tensor, Tensor]:
    """Weak error ``|E φ(X_N) - E φ(X(T))|``, estimated by the mean of the *paired* differences, and its standard error.

    Both expectations are estimated on the same Brownian paths, so most of the sampling noise cancels:
    the difference ``φ(X_N) - φ(X(T))`` has variance ``O(h)`` when the scheme converges strongly, whereas
    ``φ(X_N)`` alone has variance ``O(1)``. The estimate is still unbiased for the weak error because the
    exact samples have the exact law.

    Args:
        approx, exact: shape ``(n_paths,)``; phi: the test function (default: the identity).
    Returns:
        ``(estimate, standard_error)``, two 0-dim tensors.
    """
    approx = check_tensor(approx, "approx", min_ndim=1)
    exact = check_tensor(exact, "exact", min_ndim=1)
    if approx.shape != exact.shape:
        raise ValueError(f"approx {tuple(approx.shape)} and exact {tuple(exact.shape)} must have the same shape")
    if phi is not None and not callable(phi):
        raise TypeError(f"phi must be a function, got {type(phi).__name__}")
    f = phi if phi is not None else (lambda z: z)
    d = (f(approx) - f(exact)).flatten()
    return d.mean().abs(), d.std() / math.sqrt(d.numel())


@dataclass(frozen=True)
class ErrorLadder:
    """Euler–Maruyama errors over a ladder of step sizes (each tensor has shape ``(len(n_steps),)``)."""

    hs: Tensor
    strong: Tensor
    strong_se: Tensor
    weak: Tensor
    weak_se: Tensor


def em_error_ladder(
    drift: Coefficient,
    diffusion: Coefficient,
    x0: Tensor | float,
    T: float,
    dw: Tensor,
    exact: Tensor,
    n_steps: Sequence[int],
    phi: Callable[[Tensor], Tensor] | None = None,
) -> ErrorLadder:
    """Strong and weak errors of Euler–Maruyama at ``T`` for several step counts, all on the same Brownian paths.

    Args:
        dw: the finest increments, shape ``(n_paths, N)``; every entry of ``n_steps`` must divide ``N``.
        exact: the exact ``X(T)`` driven by exactly those increments, shape ``(n_paths,)``.
        n_steps: step counts, e.g. ``[8, 16, 32, 64]``.
        phi: the test function of the weak error (default: the identity).
    """
    dw = check_tensor(dw, "dw", min_ndim=2)
    exact = check_tensor(exact, "exact", min_ndim=1)
    T = check_real(T, "T", positive=True)
    if exact.shape != dw.shape[:-1]:
        raise ValueError(f"exact must have shape {tuple(dw.shape[:-1])} (one value per path), got {tuple(exact.shape)}")
    if len(n_steps) < 1:
        raise ValueError("n_steps must hold at least one step count")
    n_fine = dw.shape[-1]
    rows = []
    for n in n_steps:
        check_int(n, "each entry of n_steps")
        if n_fine % n:
            raise ValueError(f"each entry of n_steps must divide the {n_fine} fine increments, got {n}")
        x_n = euler_maruyama_increments(drift, diffusion, x0, coarsen(dw, n_fine // n), T)
        rows.append((T / n, *strong_error(x_n, exact), *weak_error(x_n, exact, phi)))
    cols = list(zip(*rows))
    as_t = lambda c: torch.tensor([float(v) for v in c], dtype=torch.float64)  # noqa: E731
    return ErrorLadder(*(as_t(c) for c in cols))


# --------------------------------------------------------------------------------------------------
# distance between distributions


def ks_distance(samples: Tensor, cdf: Callable[[Tensor], Tensor]) -> Tensor:
    """Kolmogorov–Smirnov distance ``sup_x |F_n(x) - F(x)|`` between the samples' empirical CDF and ``cdf``.

    For exact samples ``sqrt(n)·KS`` is below 1.36 with probability 0.95 and below 1.95 with
    probability 0.999 (Kolmogorov's limit law), whatever ``F`` is.

    Args:
        samples: shape ``(n,)``; cdf: the claimed CDF, applied elementwise.
    Returns:
        a 0-dim tensor.
    """
    samples = check_tensor(samples, "samples", min_ndim=1).flatten()
    if not callable(cdf):
        raise TypeError(f"cdf must be a function, got {type(cdf).__name__}")
    n = samples.numel()
    x, _ = samples.sort()
    f = cdf(x).to(x.dtype)
    i = torch.arange(1, n + 1, dtype=x.dtype, device=x.device)
    return torch.maximum((i / n - f).max(), (f - (i - 1) / n).max())
