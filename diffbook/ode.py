"""Ordinary differential equations: one-step integrators, the integration loop, and log-density transport.

A vector field is a function ``u(t, x) -> dx/dt`` where ``t`` is a 0-dim tensor and ``x`` has shape
``(n, d)`` (a batch of ``n`` points in ``d`` dimensions). Steps are pure functions; :func:`integrate` owns
the loop. Every function takes its dtype and device from its inputs.

Reference: E. Hairer, S. P. Nørsett, G. Wanner, *Solving Ordinary Differential Equations I* (1993),
§II.1 (Euler, Heun, RK4) and §I.7 (existence and uniqueness). The log-density ODE is the
instantaneous change of variables of Chen et al., *Neural Ordinary Differential Equations* (2018), Thm 1.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor
from tqdm.auto import tqdm

from diffbook._checks import check_callable, check_int, check_real
from diffbook._checks import check_state as _check_state
from diffbook._checks import check_times as _check_times

__all__ = [
    "VectorField",
    "Step",
    "euler_step",
    "heun_step",
    "rk4_step",
    "time_grid",
    "integrate",
    "divergence",
    "augment_with_log_density",
    "transport",
    "log_density_at",
]

VectorField = Callable[[Tensor, Tensor], Tensor]
"""``u(t, x)``: ``t`` a 0-dim tensor, ``x`` of shape ``(n, d)``, returns a tensor shaped like ``x``."""

Step = Callable[[VectorField, Tensor, Tensor, Tensor], Tensor]
"""``step(u, t, x, h) -> x_next``: one step of size ``h`` (negative ``h`` integrates backwards)."""


def _check_step(u: object, t: object, x: object, h: object) -> None:
    """Type checks only (no values read), cheap enough for a step called in a loop."""
    check_callable(u, "u", "u(t, x)")
    _check_state(x, "x")
    for name, value in (("t", t), ("h", h)):
        if isinstance(value, bool) or not isinstance(value, (Tensor, int, float)):
            raise TypeError(f"{name} must be a 0-dim tensor or a number, got {type(value).__name__}")


def euler_step(u: VectorField, t: Tensor, x: Tensor, h: Tensor) -> Tensor:
    """Forward Euler, ``x + h u(t, x)``: local error O(h²), global error O(h) (Hairer et al. §II.1).

    ``t``, ``h``: 0-dim tensors; ``x``: shape ``(n, d)``; returns the shape of ``x``.

    Reference: Hairer, Nørsett & Wanner (1993), §II.1, Eq. 1.1.
    """
    _check_step(u, t, x, h)
    return x + h * u(t, x)


def heun_step(u: VectorField, t: Tensor, x: Tensor, h: Tensor) -> Tensor:
    """Heun's method (explicit trapezoid): an Euler predictor, then the average of the two slopes.

    Local error O(h³), global error O(h²); two evaluations of ``u`` per step (Hairer et al. §II.1).

    ``t``, ``h``: 0-dim tensors; ``x``: shape ``(n, d)``; returns the shape of ``x``.

    Reference: Hairer, Nørsett & Wanner (1993), §II.1, Eq. 1.5 (Runge's trapezoid variant).
    """
    _check_step(u, t, x, h)
    k1 = u(t, x)
    k2 = u(t + h, x + h * k1)
    return x + 0.5 * h * (k1 + k2)


def rk4_step(u: VectorField, t: Tensor, x: Tensor, h: Tensor) -> Tensor:
    """The classical fourth-order Runge–Kutta step; used in the book as a high-accuracy reference.

    ``t``, ``h``: 0-dim tensors; ``x``: shape ``(n, d)``; returns the shape of ``x``.

    Reference: Hairer, Nørsett & Wanner (1993), §II.1, Table 1.2 (the classical Runge–Kutta method).
    """
    _check_step(u, t, x, h)
    k1 = u(t, x)
    k2 = u(t + 0.5 * h, x + 0.5 * h * k1)
    k3 = u(t + 0.5 * h, x + 0.5 * h * k2)
    k4 = u(t + h, x + h * k3)
    return x + (h / 6.0) * (k1 + 2.0 * k2 + 2.0 * k3 + k4)


def time_grid(
    t0: float, t1: float, n_steps: int, *, dtype: torch.dtype = torch.float64, device: torch.device | str = "cpu"
) -> Tensor:
    """``n_steps + 1`` equally spaced times from ``t0`` to ``t1`` (``t1 < t0`` integrates backwards).

    Returns shape ``(n_steps + 1,)``.

    Reference: Hairer, Nørsett & Wanner (1993), §II.1 (constant step size).
    """
    check_int(n_steps, "n_steps")
    t0, t1 = check_real(t0, "t0"), check_real(t1, "t1")
    if t0 == t1:
        raise ValueError(f"t0 and t1 must differ, both are {t0}")
    return torch.linspace(t0, t1, n_steps + 1, dtype=dtype, device=device)


def integrate(
    u: VectorField,
    x0: Tensor,
    ts: Tensor,
    *,
    step: Step = heun_step,
    keep_path: bool = False,
    callback: Callable[[int, Tensor, Tensor], None] | None = None,
    progress: bool = False,
) -> Tensor:
    """Integrate ``dx/dt = u(t, x)`` from ``ts[0]`` to ``ts[-1]`` through the grid ``ts``.

    Args:
        u: the vector field.
        x0: the initial state, shape ``(n, d)`` (any shape ``u`` accepts works).
        ts: 1-D strictly monotone times, shape ``(N + 1,)``, on ``x0``'s device; decreasing runs backwards.
        step: the one-step method, e.g. :func:`euler_step` or :func:`heun_step`.
        keep_path: return every state, shape ``(N + 1, *x0.shape)``, instead of only the last one.
        callback: called as ``callback(i, t_i, x_i)`` after each step.
        progress: show a tqdm progress bar.

    Returns:
        The state at ``ts[-1]`` (shape of ``x0``) or the whole path.

    Reference: Hairer, Nørsett & Wanner (1993), §II.1.
    """
    check_callable(u, "u", "u(t, x)")
    check_callable(step, "step", "step(u, t, x, h)")
    _check_state(x0, "x0")
    _check_times(ts, x0)
    ts = ts.to(x0.dtype)
    x = x0
    path = [x0] if keep_path else None
    for i in tqdm(range(len(ts) - 1), disable=not progress, desc="integrate", leave=False):
        x = step(u, ts[i], x, ts[i + 1] - ts[i])
        if path is not None:
            path.append(x)
        if callback is not None:
            callback(i + 1, ts[i + 1], x)
    return torch.stack(path) if path is not None else x


def divergence(u: VectorField, t: Tensor, x: Tensor) -> Tensor:
    """Exact divergence ``∇·u(t, x) = Σ_i ∂u_i/∂x_i`` by automatic differentiation.

    Costs ``d`` backward passes, which is right for the low-dimensional flows of Part I.

    Args:
        x: points, shape ``(n, d)``.
    Returns:
        The divergence at each point, shape ``(n,)``.

    Reference: Chen et al. (2018), Thm 1 (the trace of the Jacobian).
    """
    check_callable(u, "u", "u(t, x)")
    _check_state(x, "x")
    if x.ndim != 2:
        raise ValueError(f"x must have shape (n, d), got {tuple(x.shape)}")
    with torch.enable_grad():
        x = x.detach().requires_grad_(True)
        out = u(t, x)
        if out.shape != x.shape:
            raise ValueError(f"u(t, x) must have the shape of x {tuple(x.shape)}, got {tuple(out.shape)}")
        div = torch.zeros(x.shape[0], dtype=x.dtype, device=x.device)
        for i in range(x.shape[1]):
            (grad_i,) = torch.autograd.grad(out[:, i].sum(), x, retain_graph=i + 1 < x.shape[1])
            div = div + grad_i[:, i]
    return div.detach()


def augment_with_log_density(u: VectorField) -> VectorField:
    """Turn ``u`` into the field on ``(x, ℓ)`` of shape ``(n, d + 1)`` with ``dℓ/dt = -∇·u(t, x)``.

    Along a trajectory of ``u``, ``ℓ(t) - ℓ(s) = log p_t(x_t) - log p_s(x_s)``: the instantaneous change of
    variables (Chen et al. 2018, Thm 1), a consequence of the continuity equation.

    Reference: Chen et al. (2018), Thm 1.
    """
    check_callable(u, "u", "u(t, x)")

    def field(t: Tensor, z: Tensor) -> Tensor:
        x = z[:, :-1]
        return torch.cat([u(t, x), -divergence(u, t, x)[:, None]], dim=1)

    return field


def transport(
    u: VectorField,
    x0: Tensor,
    ts: Tensor,
    log_p0: Callable[[Tensor], Tensor] | None = None,
    *,
    step: Step = heun_step,
) -> tuple[Tensor, Tensor]:
    """Move samples of ``p_{t0}`` along the flow and track their log-density.

    Args:
        x0: samples at time ``ts[0]``, shape ``(n, d)``.
        log_p0: log-density at ``ts[0]``; if ``None``, the returned values are changes ``log p_t(x_t) - log p_0(x_0)``.

    Returns:
        ``(x_t, log_p)``: the points at ``ts[-1]``, shape ``(n, d)``, and ``log p_{t1}(x_t)``, shape ``(n,)``.

    Reference: Chen et al. (2018), Thm 1 and Eq. 4.
    """
    check_callable(u, "u", "u(t, x)")
    if log_p0 is not None:
        check_callable(log_p0, "log_p0", "log_p0(x)")
    _check_state(x0, "x0")
    if x0.ndim != 2:
        raise ValueError(f"x0 must have shape (n, d), got {tuple(x0.shape)}")
    start = torch.zeros(x0.shape[0], 1, dtype=x0.dtype, device=x0.device)
    if log_p0 is not None:
        start = start + log_p0(x0)[:, None]
    z = integrate(augment_with_log_density(u), torch.cat([x0, start], dim=1), ts, step=step)
    return z[:, :-1], z[:, -1]


def log_density_at(
    u: VectorField,
    x: Tensor,
    ts: Tensor,
    log_p0: Callable[[Tensor], Tensor],
    *,
    step: Step = heun_step,
) -> Tensor:
    """Evaluate ``log p_{t1}(x)`` of the density carried by the flow, at any points ``x``.

    Integrates the augmented ODE backwards from ``t1 = ts[-1]`` to ``t0 = ts[0]`` starting at ``ℓ = 0``:
    the end point ``x_{t0}`` and ``ℓ(t0) = log p_{t0}(x_{t0}) - log p_{t1}(x)`` give
    ``log p_{t1}(x) = log p_{t0}(x_{t0}) - ℓ(t0)``.

    Args:
        x: query points at time ``ts[-1]``, shape ``(n, d)``.
        ts: the forward grid ``t0 → t1`` (it is reversed internally).
        log_p0: log-density at ``ts[0]``.
    Returns:
        ``log p_{t1}(x)``, shape ``(n,)``; ``-inf`` where the backward trajectory leaves every bound
        (a field that is not globally Lipschitz may blow up backwards in finite time: such ``x`` are not
        reached by the flow, and the density there is zero).

    Reference: Chen et al. (2018), Thm 1 and Eq. 4; Grathwohl et al. (2019), §2.
    """
    check_callable(log_p0, "log_p0", "log_p0(x)")
    _check_state(x, "x")
    if x.ndim != 2:
        raise ValueError(f"x must have shape (n, d), got {tuple(x.shape)}")
    _check_times(ts, x)
    x_start, ell = transport(u, x, ts.flip(0), None, step=step)
    reached = torch.isfinite(x_start).all(dim=1) & torch.isfinite(ell)
    out = torch.full_like(ell, float("-inf"))
    out[reached] = log_p0(x_start[reached]) - ell[reached]
    return out
