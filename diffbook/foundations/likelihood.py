"""Exact log-likelihoods under the probability-flow ODE, by the instantaneous change of variables.

The probability-flow ODE ``dx/dt = v_t(x) = f(t) x - ½ g(t)² ∇log p_t(x)`` carries ``p_{t_min}`` to ``p_{t_max}``
(Song et al. 2021, eq. 13). Along one of its trajectories the log-density changes at the rate
``d/dt log p_t(x_t) = -∇·v_t(x_t)`` (Chen et al. 2018, Thm 1), so for a data point ``x``

    log p_{t_min}(x) = log p_{t_max}(x_{t_max}) + ∫_{t_min}^{t_max} ∇·v_t(x_t) dt,

where ``x_t`` is the ODE trajectory started at ``x_{t_min} = x`` (Song et al. 2021, App. D.2, eq. 39).
:func:`pf_ode_log_likelihood` integrates the pair ``(x_t, ∫∇·v)`` with a one-step method of
:mod:`diffbook.ode`. The divergence is exact (``d`` backward passes, right in low dimension) or
Hutchinson's unbiased estimate ``zᵀ (∂v/∂x) z`` with Rademacher probes ``z`` held fixed along the trajectory
(Hutchinson 1989; Grathwohl et al. 2019, "FFJORD", §2.2), which costs one backward pass per probe.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from diffbook._checks import check_int, check_state
from diffbook.ode import Step, VectorField, divergence, heun_step, integrate, time_grid
from diffbook.schedules import Schedule
from diffbook.sde import Score, probability_flow_drift

__all__ = [
    "PFLikelihood",
    "standard_normal_log_prob",
    "rademacher_probes",
    "hutchinson_divergence",
    "pf_ode_log_likelihood",
]


@dataclass(frozen=True)
class PFLikelihood:
    """The result of :func:`pf_ode_log_likelihood` for ``n`` points in ``d`` dimensions.

    Attributes:
        log_prob: ``log p_{t_min}(x)``, shape ``(n,)``: ``prior_log_prob + delta``.
        prior_log_prob: the prior's log-density at the trajectory's end, ``log p_{t_max}(x_{t_max})``, shape ``(n,)``.
        delta: ``∫_{t_min}^{t_max} ∇·v_t(x_t) dt``, shape ``(n,)``: the log-volume the flow adds on the way to noise.
        x_end: the end points ``x_{t_max}``, shape ``(n, d)``.
    """

    log_prob: Tensor
    prior_log_prob: Tensor
    delta: Tensor
    x_end: Tensor


def standard_normal_log_prob(x: Tensor) -> Tensor:
    """``log N(x; 0, I)`` row by row: ``-½|x|² - (d/2) log 2π``, shape ``(n,)`` for ``x`` of shape ``(n, d)``."""
    check_state(x, "x")
    if x.ndim != 2:
        raise ValueError(f"x must have shape (n, d), got {tuple(x.shape)}")
    return -0.5 * (x * x).sum(1) - 0.5 * x.shape[1] * math.log(2.0 * math.pi)


def rademacher_probes(
    n_probes: int, like: Tensor, *, generator: torch.Generator | None = None
) -> Tensor:
    """``n_probes`` independent Rademacher vectors (entries ±1 with probability ½) shaped like ``like``.

    Returns:
        shape ``(n_probes, *like.shape)``, in ``like``'s dtype and on its device.
    """
    check_state(like, "like")
    check_int(n_probes, "n_probes")
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator or None, got {type(generator).__name__}")
    bits = torch.randint(0, 2, (n_probes, *like.shape), generator=generator, device=like.device)
    return (2 * bits - 1).to(like.dtype)


def hutchinson_divergence(u: VectorField, t: Tensor, x: Tensor, probes: Tensor) -> Tensor:
    """Hutchinson's estimate of ``∇·u(t, x)``: the average over probes ``z`` of ``zᵀ (∂u/∂x) z``.

    For probes with ``E[z zᵀ] = I`` (Rademacher or standard normal) it is unbiased,
    ``E[zᵀ J z] = tr J = ∇·u`` (Hutchinson 1989). One vector-Jacobian product per probe.

    Args:
        u: the vector field; x: points, shape ``(n, d)``.
        probes: shape ``(k, n, d)`` (``k`` probes) or ``(n, d)`` (one probe).
    Returns:
        The estimate at each point, shape ``(n,)``.
    """
    check_state(x, "x")
    check_state(probes, "probes")
    if x.ndim != 2:
        raise ValueError(f"x must have shape (n, d), got {tuple(x.shape)}")
    if probes.ndim == 2:
        probes = probes[None]
    if probes.ndim != 3 or probes.shape[1:] != x.shape:
        raise ValueError(
            f"probes must have shape (k, {x.shape[0]}, {x.shape[1]}) or the shape of x, got {tuple(probes.shape)}"
        )
    with torch.enable_grad():
        x = x.detach().requires_grad_(True)
        out = u(t, x)
        if out.shape != x.shape:
            raise ValueError(f"u(t, x) must have the shape of x {tuple(x.shape)}, got {tuple(out.shape)}")
        total = torch.zeros(x.shape[0], dtype=x.dtype, device=x.device)
        for i, z in enumerate(probes):
            (zj,) = torch.autograd.grad(out, x, grad_outputs=z, retain_graph=i + 1 < len(probes))  # zᵀ J
            total = total + (zj * z).sum(1)
    return (total / len(probes)).detach()


def pf_ode_log_likelihood(
    schedule: Schedule,
    score: Score,
    x: Tensor,
    *,
    n_steps: int,
    t_min: float = 1e-3,
    t_max: float = 1.0,
    log_prior: Callable[[Tensor], Tensor] | None = None,
    step: Step = heun_step,
    estimator: str = "exact",
    n_probes: int = 1,
    generator: torch.Generator | None = None,
) -> PFLikelihood:
    """``log p_{t_min}(x)`` of the density the probability-flow ODE of ``(schedule, score)`` carries from the prior.

    Integrates ``dx/dt = f x - ½ g² score(x, t)`` and ``dℓ/dt = ∇·v`` from ``t_min`` up to ``t_max`` on
    ``n_steps`` equal steps, then adds ``log_prior(x_{t_max})`` (Song et al. 2021, App. D.2). With the exact
    score and the exact ``p_{t_max}`` as prior the result converges to ``log p_{t_min}(x)`` at the order of
    ``step``; with ``N(0, I)`` as prior (the default) it carries the small error of ``p_1 ≠ N(0, I)`` (``α_1 > 0``).

    Args:
        schedule: the Gaussian path; score: ``score(x, t) = ∇log p_t(x)``.
        x: data points, shape ``(n, d)``.
        n_steps: the number of integration steps.
        t_min, t_max: the time interval, ``0 < t_min < t_max <= 1`` (``t_min > 0``: at ``t = 0`` the
            diffusion ``g² = dσ²/dt - 2fσ²`` of a VP path is computed as ``0·∞``).
        log_prior: ``log p_{t_max}`` of the end points, shape ``(n,)`` from ``(n, d)``; default ``N(0, I)``.
        step: the one-step method (:func:`diffbook.ode.heun_step`, :func:`~diffbook.ode.euler_step`, ...).
        estimator: ``"exact"`` (autograd trace) or ``"hutchinson"`` (Rademacher probes, fixed along the path).
        n_probes: probes per point for ``"hutchinson"``.
        generator: the randomness of the probes.
    Returns:
        A :class:`PFLikelihood`.
    """
    check_state(x, "x")
    if x.ndim != 2:
        raise ValueError(f"x must have shape (n, d), got {tuple(x.shape)}")
    if not callable(score):
        raise TypeError(f"score must be callable, got {type(score).__name__}")
    check_int(n_steps, "n_steps")
    if not 0.0 < t_min < t_max <= 1.0:
        raise ValueError(f"need 0 < t_min < t_max <= 1, got t_min={t_min}, t_max={t_max}")
    if log_prior is None:
        log_prior = standard_normal_log_prob
    elif not callable(log_prior):
        raise TypeError(f"log_prior must be callable or None, got {type(log_prior).__name__}")
    if estimator not in ("exact", "hutchinson"):
        raise ValueError(f"estimator must be 'exact' or 'hutchinson', got {estimator!r}")

    def v(t: Tensor, z: Tensor) -> Tensor:
        return probability_flow_drift(schedule, score, z, t)

    if estimator == "exact":
        div: Callable[[Tensor, Tensor], Tensor] = lambda t, z: divergence(v, t, z)  # noqa: E731
    else:
        probes = rademacher_probes(n_probes, x, generator=generator)  # one draw for the whole path (FFJORD §2.2)
        div = lambda t, z: hutchinson_divergence(v, t, z, probes)  # noqa: E731

    d = x.shape[1]

    def augmented(t: Tensor, state: Tensor) -> Tensor:
        z = state[:, :d]
        return torch.cat([v(t, z), div(t, z)[:, None]], dim=1)

    start = torch.cat([x.detach(), torch.zeros(x.shape[0], 1, dtype=x.dtype, device=x.device)], dim=1)
    ts = time_grid(t_min, t_max, n_steps, dtype=x.dtype, device=x.device)
    end = integrate(augmented, start, ts, step=step)
    x_end, delta = end[:, :d], end[:, d]
    prior = log_prior(x_end)
    if not isinstance(prior, Tensor) or prior.shape != (x.shape[0],):
        raise ValueError(f"log_prior must return shape ({x.shape[0]},), got {getattr(prior, 'shape', type(prior))}")
    return PFLikelihood(log_prob=prior + delta, prior_log_prob=prior, delta=delta, x_end=x_end)
