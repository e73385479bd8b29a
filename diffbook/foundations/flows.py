"""Example vector fields with closed-form flows, used to check integrators and density transport exactly.

* :func:`linear_field` — ``u(x) = A x``: flow ``e^{tA} x``, divergence ``tr A``.
* :func:`limit_cycle_field` — a rotation plus attraction to the unit circle (the Hopf normal form),
  ``r' = a r (1 - r²)``, ``θ' = ω``. It is nonlinear, compresses and stretches area, and still has an
  exact flow map and Jacobian determinant, so every claim of Chapter 1 can be checked against exact numbers.

Reference: S. H. Strogatz, *Nonlinear Dynamics and Chaos* (2nd ed., 2015), §7.3 and §8.2.
"""

from __future__ import annotations

import torch
from torch import Tensor

from diffbook._checks import check_points
from diffbook.ode import VectorField

__all__ = ["linear_field", "linear_flow", "limit_cycle_field", "limit_cycle_flow", "limit_cycle_log_det"]


def _check_points(x: Tensor, d: int | None = None) -> None:
    check_points(x, "x")
    if d is not None and x.shape[1] != d:
        raise ValueError(f"x must have shape (n, {d}), got {tuple(x.shape)}")


def linear_field(A: Tensor) -> VectorField:
    """``u(t, x) = A x`` for a ``(d, d)`` matrix ``A``; acts on points of shape ``(n, d)``."""
    if A.ndim != 2 or A.shape[0] != A.shape[1]:
        raise ValueError(f"A must be a square matrix, got shape {tuple(A.shape)}")

    def u(t: Tensor, x: Tensor) -> Tensor:
        return x @ A.to(x).T

    return u


def linear_flow(A: Tensor, x0: Tensor, t: float) -> Tensor:
    """Exact flow of :func:`linear_field`: ``x(t) = e^{tA} x0`` for ``x0`` of shape ``(n, d)``."""
    _check_points(x0, A.shape[0])
    return x0 @ torch.linalg.matrix_exp(t * A.to(x0)).T


def limit_cycle_field(a: float = 1.0, omega: float = 1.0) -> VectorField:
    """``u(x, y) = (-ω y + a x (1 - r²), ω x + a y (1 - r²))`` with ``r² = x² + y²``.

    Its divergence is ``a (2 - 4 r²)``: area grows inside the circle ``r² = 1/2`` and shrinks outside, so
    densities pile up on the unit circle.
    """

    def u(t: Tensor, x: Tensor) -> Tensor:
        r2 = (x * x).sum(dim=-1, keepdim=True)
        rot = torch.stack([-x[..., 1], x[..., 0]], dim=-1)
        return omega * rot + a * x * (1.0 - r2)

    return u


def limit_cycle_flow(x0: Tensor, t: float, a: float = 1.0, omega: float = 1.0) -> Tensor:
    """Exact flow of :func:`limit_cycle_field` for points ``x0`` of shape ``(n, 2)``, ``t`` of either sign.

    With ``s = r²`` the radial equation ``s' = 2 a s (1 - s)`` is logistic:
    ``s(t) = 1 / (1 + (1/s0 - 1) e^{-2 a t})``, and the angle turns at rate ``ω``.
    """
    _check_points(x0, 2)
    s0 = (x0 * x0).sum(dim=-1)
    decay = torch.exp(torch.as_tensor(-2.0 * a * t, dtype=x0.dtype, device=x0.device))
    s = 1.0 / (1.0 + (1.0 / s0 - 1.0) * decay)
    radial = torch.sqrt(s / s0)[:, None]
    c = torch.cos(torch.as_tensor(omega * t, dtype=x0.dtype, device=x0.device))
    sn = torch.sin(torch.as_tensor(omega * t, dtype=x0.dtype, device=x0.device))
    rotated = torch.stack([c * x0[:, 0] - sn * x0[:, 1], sn * x0[:, 0] + c * x0[:, 1]], dim=-1)
    return radial * rotated


def limit_cycle_log_det(x0: Tensor, t: float, a: float = 1.0) -> Tensor:
    """``log |det ∂ψ_t/∂x0|`` of the exact flow, shape ``(n,)``.

    Area is ``dx dy = ½ ds dθ`` and the flow maps ``θ`` by a shift, so the determinant is
    ``ds/ds0 = e^{-2at} s² / s0²``.
    """
    _check_points(x0, 2)
    s0 = (x0 * x0).sum(dim=-1)
    s = (limit_cycle_flow(x0, t, a=a) ** 2).sum(dim=-1)
    return -2.0 * a * t + 2.0 * torch.log(s) - 2.0 * torch.log(s0)
