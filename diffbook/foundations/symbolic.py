"""SymPy helpers that let the computer check the identities of Part I.

These take SymPy expressions and return simplified residuals: a theorem holds when the residual is 0.
SymPy is imported inside the functions, so ``import diffbook`` never needs it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = ["divergence", "continuity_residual", "log_density_rate_residual", "fokker_planck_residual"]


def divergence(u: Sequence[Any], xs: Sequence[Any]) -> Any:
    """``∇·u = Σ_i ∂u_i/∂x_i`` for a field given as a list of SymPy expressions in the symbols ``xs``."""
    import sympy as sp

    if len(u) != len(xs):
        raise ValueError(f"u has {len(u)} components but there are {len(xs)} coordinates")
    return sp.simplify(sum(sp.diff(ui, xi) for ui, xi in zip(u, xs)))


def continuity_residual(p: Any, u: Sequence[Any], t: Any, xs: Sequence[Any]) -> Any:
    """``∂_t p + ∇·(p u)``, simplified: zero exactly when ``p`` is carried by the flow of ``u``.

    Args:
        p: a density ``p(t, x)`` as a SymPy expression.
        u: the field, one expression per coordinate.
        t: the time symbol; xs: the coordinate symbols.
    """
    import sympy as sp

    if len(u) != len(xs):
        raise ValueError(f"u has {len(u)} components but there are {len(xs)} coordinates")
    flux = sum(sp.diff(p * ui, xi) for ui, xi in zip(u, xs))
    return sp.simplify(sp.diff(p, t) + flux)


def log_density_rate_residual(p: Any, u: Sequence[Any], t: Any, xs: Sequence[Any]) -> Any:
    """``d/dt log p_t(x_t) + ∇·u`` along trajectories, simplified (zero by the instantaneous change of variables).

    The total derivative along ``dx/dt = u`` is ``∂_t log p + ∇ log p · u``.
    """
    import sympy as sp

    log_p = sp.log(p)
    total = sp.diff(log_p, t) + sum(sp.diff(log_p, xi) * ui for ui, xi in zip(u, xs))
    return sp.simplify(sp.expand_log(total + divergence(u, xs), force=True))


def fokker_planck_residual(p: Any, f: Sequence[Any], g: Any, t: Any, xs: Sequence[Any]) -> Any:
    """``∂_t p + Σ_i ∂_i(f_i p) - ½ Σ_i ∂_i²(g² p)``, simplified: zero exactly when ``p`` solves the
    Fokker–Planck equation of ``dX = f(t, X) dt + g(t, X) dW`` with ``W`` a standard Brownian motion in as
    many dimensions as ``xs`` (Risken 1989, eq. 4.94, for isotropic noise ``g I``).

    Args:
        p: a density ``p(t, x)``; f: the drift, one expression per coordinate; g: a scalar diffusion
            coefficient (it may depend on ``t`` and ``x``); t, xs: the symbols.
    """
    import sympy as sp

    if len(f) != len(xs):
        raise ValueError(f"f has {len(f)} components but there are {len(xs)} coordinates")
    drift = sum(sp.diff(fi * p, xi) for fi, xi in zip(f, xs))
    diffusion = sum(sp.diff(g**2 * p, xi, 2) for xi in xs)
    return sp.simplify(sp.diff(p, t) + drift - sp.Rational(1, 2) * diffusion)
