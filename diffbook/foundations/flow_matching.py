"""Flow matching on Gaussian paths: conditional and marginal velocities, the two objectives, and the
training loss that :func:`diffbook.train.train` runs.

A Gaussian path ``x_t = α_t x₀ + σ_t ε`` moves each pair ``(x₀, ε)`` with the *conditional* velocity
``U = α̇_t x₀ + σ̇_t ε``. The *marginal* velocity ``u_t(x) = E[U | x_t = x] = α̇_t E[x₀|x] + σ̇_t E[ε|x]`` moves
the whole distribution ``p_t`` (it solves the continuity equation with ``p_t``). Flow matching (FM) regresses
a network on ``u_t``; conditional flow matching (CFM) regresses it on ``U``. The two losses differ by the
``θ``-independent constant ``E‖U - u_t(x_t)‖²``, so they have the same gradient (Lipman et al. 2023, Thm. 2).
For a :class:`~diffbook.toy.GaussianMixture` every quantity here is exact, because ``E[x₀|x]`` is.

Time runs from data (``t = 0``) to noise (``t = 1``); a velocity is a function ``velocity(x, t)`` of a batch
``x`` of shape ``(n, d)`` and times ``t`` (a scalar or shape ``(n,)``), returning shape ``(n, d)``.

References: Y. Lipman et al., *Flow Matching for Generative Modeling*, ICLR 2023 (eqs. 5–9, Thm. 2);
X. Liu et al., *Flow Straight and Fast*, ICLR 2023 (the linear path); M. Albergo and E. Vanden-Eijnden,
*Building Normalizing Flows with Stochastic Interpolants*, ICLR 2023.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from diffbook._checks import as_time, check_state, per_sample
from diffbook.losses import mse
from diffbook.nets.layers import drop_labels
from diffbook.param import Denoiser
from diffbook.schedules import FlowLinear, Schedule, time_derivative
from diffbook.toy import GaussianMixture

__all__ = [
    "Velocity",
    "conditional_velocity",
    "marginal_velocity",
    "velocity_from_denoiser",
    "conditional_fm_loss",
    "marginal_fm_loss",
    "fm_loss_gap",
    "parameter_gradients",
    "gradient_agreement",
    "flow_matching_objective",
]

Velocity = Callable[[Tensor, Tensor], Tensor]
"""``velocity(x, t) -> (n, d)``: a (learned or exact) velocity field in the original variables of a path."""


def _check_t(t: Tensor | float, x: Tensor) -> Tensor:
    t = as_time(t).to(device=x.device, dtype=x.dtype)
    if t.ndim > 1 or (t.ndim == 1 and t.shape[0] != x.shape[0]):
        raise ValueError(f"t must be a scalar or have shape ({x.shape[0]},), got {tuple(t.shape)}")
    if not torch.isfinite(t).all() or (t <= 0).any() or (t >= 1).any():
        raise ValueError("t must lie strictly inside (0, 1), where both α_t and σ_t are positive")
    return t


def _coefficients(schedule: Schedule, t: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    alpha, dalpha = time_derivative(schedule.alpha, t)
    sigma, dsigma = time_derivative(schedule.sigma, t)
    return alpha, sigma, dalpha, dsigma


def conditional_velocity(schedule: Schedule, x0: Tensor, eps: Tensor, t: Tensor | float) -> Tensor:
    """The conditional velocity ``U = α̇_t x₀ + σ̇_t ε`` (Lipman et al. 2023, §4), shape of ``x0``.

    Args:
        x0, eps: shape ``(n, ...)``; t: a scalar or shape ``(n,)`` in ``(0, 1)``.
    """
    check_state(x0, "x0")
    check_state(eps, "eps")
    if eps.shape != x0.shape:
        raise ValueError(f"eps must have the shape of x0 {tuple(x0.shape)}, got {tuple(eps.shape)}")
    t = _check_t(t, x0)
    _, _, dalpha, dsigma = _coefficients(schedule, t)
    return per_sample(dalpha, x0) * x0 + per_sample(dsigma, x0) * eps


def marginal_velocity(mixture: GaussianMixture, schedule: Schedule, x: Tensor, t: Tensor | float) -> Tensor:
    """The exact marginal velocity ``u_t(x) = α̇ E[x₀|x_t = x] + σ̇ E[ε|x_t = x]`` of mixture data, shape ``(n, d)``.

    ``E[x₀|x]`` is the mixture's exact posterior mean and ``E[ε|x] = (x - α E[x₀|x])/σ``; for the linear path
    this is ``E[ε - x₀ | x_t = x]`` (Lipman et al. 2023, eq. 8).
    """
    if not isinstance(mixture, GaussianMixture):
        raise TypeError(f"mixture must be a GaussianMixture, got {type(mixture).__name__}")
    check_state(x, "x")
    t = _check_t(t, x)
    alpha, sigma, dalpha, dsigma = _coefficients(schedule, t)
    x0_hat = mixture.posterior_mean(x, alpha, sigma)
    eps_hat = (x - per_sample(alpha, x) * x0_hat) / per_sample(sigma, x)
    return per_sample(dalpha, x) * x0_hat + per_sample(dsigma, x) * eps_hat


def velocity_from_denoiser(denoiser: Denoiser, schedule: Schedule, **cond: Any) -> Velocity:
    """The velocity ``û = α̇ D + σ̇ (x - α D)/σ`` of a denoiser, with ``D = denoiser(x/α, σ/α, **cond)``.

    The inverse of :class:`diffbook.param.VelocityPrecond`: a denoiser in VE-equivalent variables becomes a
    velocity in the original variables of ``schedule``. For the exact denoiser it is the marginal velocity.
    """
    if not callable(denoiser):
        raise TypeError(f"denoiser must be callable as denoiser(x, sigma, **cond), got {type(denoiser).__name__}")

    def velocity(x: Tensor, t: Tensor | float) -> Tensor:
        check_state(x, "x")
        tt = _check_t(t, x)
        alpha, sigma, dalpha, dsigma = _coefficients(schedule, tt)
        sbar = (sigma / alpha).expand(x.shape[0]) if tt.ndim == 0 else sigma / alpha
        x0_hat = denoiser(x / per_sample(alpha, x), sbar, **cond)
        eps_hat = (x - per_sample(alpha, x) * x0_hat) / per_sample(sigma, x)
        return per_sample(dalpha, x) * x0_hat + per_sample(dsigma, x) * eps_hat

    return velocity


def conditional_fm_loss(velocity: Velocity, schedule: Schedule, x0: Tensor, eps: Tensor, t: Tensor) -> Tensor:
    """Per-sample conditional flow matching ``‖v(x_t, t) - U‖²`` at ``x_t = α x₀ + σ ε``, shape ``(n,)``
    (Lipman et al. 2023, eq. 9; a mean over the non-batch dimensions, as :func:`diffbook.losses.mse`)."""
    target = conditional_velocity(schedule, x0, eps, t)
    tt = _check_t(t, x0)
    x_t = per_sample(schedule.alpha(tt), x0) * x0 + per_sample(schedule.sigma(tt), x0) * eps
    return mse(velocity(x_t, tt), target)


def marginal_fm_loss(
    velocity: Velocity, mixture: GaussianMixture, schedule: Schedule, x0: Tensor, eps: Tensor, t: Tensor
) -> Tensor:
    """Per-sample (marginal) flow matching ``‖v(x_t, t) - u_t(x_t)‖²`` at ``x_t = α x₀ + σ ε``, shape ``(n,)``
    (Lipman et al. 2023, eq. 5), with the exact marginal velocity of mixture data."""
    check_state(x0, "x0")
    if eps.shape != x0.shape:
        raise ValueError(f"eps must have the shape of x0 {tuple(x0.shape)}, got {tuple(eps.shape)}")
    tt = _check_t(t, x0)
    x_t = per_sample(schedule.alpha(tt), x0) * x0 + per_sample(schedule.sigma(tt), x0) * eps
    with torch.no_grad():
        target = marginal_velocity(mixture, schedule, x_t, tt)
    return mse(velocity(x_t, tt), target)


def fm_loss_gap(mixture: GaussianMixture, schedule: Schedule, x0: Tensor, eps: Tensor, t: Tensor) -> Tensor:
    """Per-sample ``‖U - u_t(x_t)‖²``, shape ``(n,)``; its mean is the constant ``C = L_CFM - L_FM``.

    ``C = E‖U - E[U|x_t]‖²`` is the expected conditional variance of the target, which no network can explain:
    it is the smallest value the conditional loss can take.
    """
    target = conditional_velocity(schedule, x0, eps, t)
    tt = _check_t(t, x0)
    x_t = per_sample(schedule.alpha(tt), x0) * x0 + per_sample(schedule.sigma(tt), x0) * eps
    return mse(target, marginal_velocity(mixture, schedule, x_t, tt))


def parameter_gradients(loss: Callable[[int], Tensor], params: Sequence[Tensor], n_batches: int) -> Tensor:
    """The gradients of ``loss(b)`` (a 0-dim tensor) for ``b = 0 … n_batches - 1``, flattened: ``(n_batches, P)``.

    ``P`` is the total number of entries of ``params``. Each row is one Monte-Carlo estimate of the gradient;
    their spread gives its standard error.
    """
    if not isinstance(n_batches, int) or isinstance(n_batches, bool) or n_batches < 2:
        raise ValueError(f"n_batches must be an int >= 2 (the spread needs two batches), got {n_batches!r}")
    params = list(params)
    if not params or not all(isinstance(p, Tensor) and p.requires_grad for p in params):
        raise ValueError("params must be a non-empty sequence of tensors with requires_grad=True")
    rows = []
    for b in range(n_batches):
        value = loss(b)
        if not isinstance(value, Tensor) or value.ndim != 0:
            raise ValueError("loss(b) must return a 0-dim tensor")
        grads = torch.autograd.grad(value, params, allow_unused=True)
        rows.append(torch.cat([(g if g is not None else torch.zeros_like(p)).reshape(-1) for g, p in zip(grads, params)]))
    return torch.stack(rows)


def gradient_agreement(g1: Tensor, g2: Tensor) -> dict[str, float]:
    """Do two gradient estimators have the same expectation? A paired test on per-batch gradients.

    Args:
        g1, g2: shape ``(B, P)``, the gradients of two losses on the *same* ``B`` batches
            (:func:`parameter_gradients`).
    Returns:
        ``relative_difference``: ``‖mean(g1 - g2)‖ / ‖mean(g2)‖``;
        ``mean_z2``: the average over the ``P`` coordinates of ``z² = (mean/standard error)²`` of ``g1 - g2``.
        If both have the same expectation, each ``z`` is a Student ``t`` with ``B - 1`` degrees of freedom and
        ``E z² = (B - 1)/(B - 3)`` (≈ 1); a biased estimator gives ``mean_z2 ≫ 1``.
        ``expected_z2``: that value ``(B - 1)/(B - 3)``.
    """
    for name, g in (("g1", g1), ("g2", g2)):
        check_state(g, name)
        if g.ndim != 2:
            raise ValueError(f"{name} must have shape (B, P), got {tuple(g.shape)}")
    if g1.shape != g2.shape:
        raise ValueError(f"g1 and g2 must have the same shape, got {tuple(g1.shape)} and {tuple(g2.shape)}")
    b = g1.shape[0]
    if b < 4:
        raise ValueError(f"need at least 4 batches for a finite E z², got {b}")
    d = (g1 - g2).double()
    se = d.std(0) / b**0.5
    keep = se > 0  # coordinates where both gradients are identical in every batch carry no information
    z2 = (d.mean(0)[keep] / se[keep]) ** 2
    return {
        "relative_difference": float(d.mean(0).norm() / g2.double().mean(0).norm()),
        "mean_z2": float(z2.mean()) if keep.any() else 0.0,
        "expected_z2": (b - 1) / (b - 3),
    }


def flow_matching_objective(
    schedule: Schedule | None = None,
    *,
    time_scale: float = 1.0,
    p_uncond: float = 0.0,
    null_label: int | None = None,
    t_min: float = 1e-3,
    t_max: float = 1.0 - 1e-3,
) -> Callable[[nn.Module, Any, torch.Generator], Tensor]:
    """A loss function for :func:`diffbook.train.train`: conditional flow matching on ``schedule``.

    For a batch ``x₀`` (or ``(x₀, labels)``), draw ``t ~ U(t_min, t_max)`` and ``ε ~ N(0, I)`` and return the
    per-sample ``‖F(x_t, time_scale·t[, labels]) - (α̇ x₀ + σ̇ ε)‖²``. The network ``F`` sees exactly what
    :class:`diffbook.param.VelocityPrecond` ``(schedule, time_scale)`` feeds it, so the trained network wrapped
    in ``Preconditioned(F, VelocityPrecond(schedule, time_scale))`` is a denoiser. With ``p_uncond > 0`` each
    label is replaced by ``null_label`` with that probability (classifier-free guidance training, Ho &
    Salimans 2022, Algorithm 1).

    Args:
        schedule: the Gaussian path (default: the linear path :class:`~diffbook.schedules.FlowLinear`).
        time_scale: multiplies ``t`` before the network, as in ``VelocityPrecond``.
        p_uncond: probability of dropping a label; needs ``null_label``.
        t_min, t_max: the range of training times, inside ``[0, 1]``.
    """
    schedule = FlowLinear() if schedule is None else schedule
    if not 0.0 <= p_uncond <= 1.0:
        raise ValueError(f"p_uncond must be a probability in [0, 1], got {p_uncond}")
    if p_uncond > 0 and null_label is None:
        raise ValueError("p_uncond > 0 needs the network's null_label")
    if not 0.0 <= t_min < t_max <= 1.0:
        raise ValueError(f"need 0 <= t_min < t_max <= 1, got {t_min}, {t_max}")

    def loss_fn(model: nn.Module, batch: Any, generator: torch.Generator) -> Tensor:
        x0, labels = (batch, None) if isinstance(batch, Tensor) else batch
        check_state(x0, "batch")
        n = x0.shape[0]
        t = t_min + (t_max - t_min) * torch.rand(n, generator=generator, device=x0.device, dtype=x0.dtype)
        eps = torch.randn(x0.shape, generator=generator, device=x0.device, dtype=x0.dtype)
        alpha, sigma, dalpha, dsigma = _coefficients(schedule, t)
        x_t = per_sample(alpha, x0) * x0 + per_sample(sigma, x0) * eps
        cond = {}
        if labels is not None:
            cond["labels"] = drop_labels(labels, p_uncond, null_label, generator=generator) if p_uncond > 0 else labels
        u_pred = model(x_t, time_scale * t, **cond)
        return mse(u_pred, per_sample(dalpha, x0) * x0 + per_sample(dsigma, x0) * eps)

    return loss_fn
