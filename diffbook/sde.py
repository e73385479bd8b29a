"""Forward and reverse-time SDEs of a Gaussian path, and an Euler–Maruyama integrator.

For a path ``x_t = α_t x_0 + σ_t ε`` the forward SDE ``dx = f(t) x dt + g(t) dW`` has
``f = d log α / dt`` and ``g² = dσ²/dt - 2 f σ²`` (Kingma et al. 2021, eq. 33; Song et al. 2021, App. B).
Its time reversal (Anderson 1982) and the probability-flow ODE (Song et al. 2021, eq. 13) share the
drift ``f x - ½(1 + η²) g² ∇log p_t``: ``η = 1`` is the reverse SDE, ``η = 0`` the ODE, and every ``η``
gives the same marginals. A score is a function ``score(x, t)`` of a batch ``x`` and a time ``t``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from diffbook._checks import as_time, check_callable, check_real, check_schedule, check_state, check_times, per_sample
from diffbook.schedules import Schedule, time_derivative

__all__ = [
    "Score",
    "drift_coefficient",
    "diffusion_squared",
    "forward_drift",
    "reverse_drift",
    "probability_flow_drift",
    "marginal_sample",
    "euler_maruyama",
]

Score = Callable[[Tensor, Tensor], Tensor]
"""``score(x, t) -> ∇_x log p_t(x)``, shaped like ``x``."""


def drift_coefficient(schedule: Schedule, t: Tensor) -> Tensor:
    """``f(t) = α̇_t / α_t``, the linear drift coefficient of the forward SDE, shape of ``t``.

    Reference: Kingma et al. (2021), Eq. 33; Song et al. (2021), Eq. 5 and App. B.
    """
    check_schedule(schedule)
    t = as_time(t)  # the process lives on [0, 1], even where the schedule's formula extends past it
    alpha, dalpha = time_derivative(schedule.alpha, t)
    return dalpha / alpha


def diffusion_squared(schedule: Schedule, t: Tensor) -> Tensor:
    """``g(t)² = dσ²/dt - 2 f σ²``: the unique diffusion that gives the path the variance ``σ_t²``; shape of ``t``.

    Reference: Kingma et al. (2021), Eq. 33; Song et al. (2021), App. B.
    """
    check_schedule(schedule)
    t = as_time(t)
    # differentiate σ² itself where the schedule provides it: σ dσ/dt is 0·∞ at t = 0 for VP paths
    sigma_squared = getattr(schedule, "sigma_squared", None) or (lambda u: schedule.sigma(u) ** 2)
    var, dvar = time_derivative(sigma_squared, t)
    return dvar - 2.0 * drift_coefficient(schedule, t) * var


def forward_drift(schedule: Schedule, x: Tensor, t: Tensor) -> Tensor:
    """``f(t) x``, shape of ``x`` ``(n, ...)``; ``t`` scalar or shape ``(n,)``.

    Reference: Song et al. (2021), Eq. 5.
    """
    check_state(x, "x")
    return per_sample(drift_coefficient(schedule, t), x, "t") * x


def reverse_drift(schedule: Schedule, score: Score, x: Tensor, t: Tensor, eta: float = 1.0) -> Tensor:
    """``f x - ½(1 + η²) g² ∇log p_t(x)``: the drift, in forward time, of the process run backwards.

    With ``η = 1`` and diffusion ``g`` this is Anderson's reverse-time SDE; with ``η = 0`` (no noise) it is
    the probability-flow ODE. Integrate it from ``t = 1`` down to ``t = 0`` with a negative step.
    ``x``: shape ``(n, ...)``; ``t``: scalar or shape ``(n,)``; returns the shape of ``x``.

    Reference: Anderson (1982), Eq. 5.4; Song et al. (2021), Eqs. 6 and 13.
    """
    check_state(x, "x")
    check_callable(score, "score", "score(x, t)")
    check_real(eta, "eta", nonnegative=True)
    g2 = per_sample(diffusion_squared(schedule, t), x, "t")
    return forward_drift(schedule, x, t) - 0.5 * (1.0 + eta**2) * g2 * score(x, t)


def probability_flow_drift(schedule: Schedule, score: Score, x: Tensor, t: Tensor) -> Tensor:
    """The probability-flow ODE's velocity ``f x - ½ g² ∇log p_t(x)``, shape of ``x`` ``(n, ...)``.

    Reference: Song et al. (2021), Eq. 13.
    """
    return reverse_drift(schedule, score, x, t, eta=0.0)


def marginal_sample(
    schedule: Schedule, x0: Tensor, t: Tensor, *, noise: Tensor | None = None, generator: torch.Generator | None = None
) -> tuple[Tensor, Tensor]:
    """Draw ``x_t = α_t x_0 + σ_t ε`` in one shot; returns ``(x_t, ε)``, each the shape of ``x0`` ``(n, ...)``;
    ``t`` scalar or shape ``(n,)``.

    Reference: Song et al. (2021), Eq. 29 (the Gaussian perturbation kernel); Ho et al. (2020), Eq. 4.
    """
    check_schedule(schedule)
    check_state(x0, "x0")
    if noise is None:
        noise = torch.randn(x0.shape, generator=generator, dtype=x0.dtype, device=x0.device)
    elif not isinstance(noise, Tensor) or noise.shape != x0.shape:
        got = getattr(noise, "shape", noise)
        raise ValueError(f"noise must be a tensor of the shape of x0 {tuple(x0.shape)}, got {got!r}")
    t = as_time(t).to(x0.device)
    return per_sample(schedule.alpha(t), x0, "t") * x0 + per_sample(schedule.sigma(t), x0, "t") * noise, noise


def euler_maruyama(
    drift: Callable[[Tensor, Tensor], Tensor],
    diffusion: Callable[[Tensor], Tensor],
    x0: Tensor,
    ts: Tensor,
    *,
    generator: torch.Generator | None = None,
    keep_path: bool = False,
    callback: Callable[[int, Tensor, Tensor], None] | None = None,
) -> Tensor:
    """Integrate ``dx = drift(t, x) dt + diffusion(t) dW`` through the grid ``ts`` (either direction).

    Each step is ``x + drift·h + diffusion·sqrt(|h|)·z`` (Kloeden & Platen 1992, §9.1): strong order ½ in
    general and 1 for additive noise, weak order 1.

    Args:
        diffusion: ``g(t)``, a scalar per time (additive noise) or shaped to broadcast with ``x``.
        x0: shape ``(n, ...)``; ts: shape ``(N + 1,)``, strictly monotone.
    Returns:
        The state at ``ts[-1]`` (shape of ``x0``) or, with ``keep_path``, all states ``(N + 1, n, ...)``.

    Reference: Kloeden & Platen (1992), §9.1 and Thm 10.2.2.
    """
    check_callable(drift, "drift", "drift(t, x)")
    check_callable(diffusion, "diffusion", "diffusion(t)")
    check_state(x0, "x0")
    check_times(ts, x0)
    ts = ts.to(x0.dtype)
    x, path = x0, ([x0] if keep_path else None)
    for i in range(len(ts) - 1):
        t, h = ts[i], ts[i + 1] - ts[i]
        z = torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)
        x = x + drift(t, x) * h + diffusion(t) * torch.sqrt(h.abs()) * z
        if path is not None:
            path.append(x)
        if callback is not None:
            callback(i + 1, ts[i + 1], x)
    return torch.stack(path) if path is not None else x
