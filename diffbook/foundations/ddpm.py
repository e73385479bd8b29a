"""The discrete DDPM chain: forward steps, the posterior ``q(x_{t-1} | x_t, x_0)``, the reverse step and the KL
terms of the discrete evidence lower bound (ELBO).

Conventions (Ho et al. 2020, §2–3). Steps are **1-based**, ``t ∈ {1, …, T}``, as in the paper; ``betas`` is
the table ``(β_1, …, β_T)`` of shape ``(T,)`` (index ``t - 1`` holds ``β_t``), ``α_t = 1 - β_t`` and
``ᾱ_t = Π_{s ≤ t} α_s`` with ``ᾱ_0 = 1``. A step argument ``t`` is an integer tensor of shape ``(n,)`` (one step
per sample) or a Python ``int`` (the same step for all). States ``x`` have shape ``(n, ...)``; every sum
"over dimensions" runs over all but the first axis. Coefficient tables are computed in float64 and cast to
the dtype of the data.

The ELBO of a model ``p_θ(x_{0:T}) = p(x_T) Π_t p_θ(x_{t-1} | x_t)`` with ``p(x_T) = N(0, I)``,
``p_θ(x_{t-1} | x_t) = N(μ_θ(x_t, t), σ_t² I)`` and ``μ_θ = (x_t - β_t/√(1 - ᾱ_t) ε_θ)/√α_t`` is

    ``-log p_θ(x_0) ≤ L_T + Σ_{t=2}^T L_{t-1} + L_0``   (Ho et al. 2020, eq. 5)

with ``L_T = KL(q(x_T | x_0) ‖ p(x_T))``, ``L_{t-1} = E KL(q(x_{t-1} | x_t, x_0) ‖ p_θ(x_{t-1} | x_t))`` and
``L_0 = -E log p_θ(x_0 | x_1)``. This module has the two Gaussian KL terms, ``L_T`` (:func:`prior_kl`) and
``L_{t-1}`` (:func:`step_kl`); the decoder ``L_0``, the whole bound and the independent-pixel baseline it is
compared with are in :mod:`diffbook.foundations.ddpm_bound`.

References: J. Ho, A. Jain, P. Abbeel, *Denoising Diffusion Probabilistic Models*, NeurIPS 2020
(eqs. 2–12); J. Sohl-Dickstein et al., *Deep Unsupervised Learning using Nonequilibrium Thermodynamics*,
ICML 2015 (the bound, their eq. 14).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import torch
from torch import Tensor

from diffbook._checks import check_state, per_sample
from diffbook.losses import ddpm_elbo_weights
from diffbook.param import Denoiser
from diffbook.schedules import ddpm_posterior, ddpm_reverse_variance, ddpm_tables

__all__ = [
    "EpsModel",
    "Variance",
    "steps_tensor",
    "forward_step",
    "forward_marginal",
    "posterior",
    "reverse_variance",
    "mean_from_eps",
    "ancestral_step",
    "eps_from_denoiser",
    "gaussian_kl",
    "step_kl",
    "prior_kl",
]

EpsModel = Callable[[Tensor, Tensor], Tensor]
"""``eps_model(x_t, t) -> ε̂``: a noise prediction for states ``x_t`` of shape ``(n, ...)`` in the DDPM variables
and 1-based integer steps ``t`` of shape ``(n,)``; returns the shape of ``x_t``."""

Variance = Literal["beta_tilde", "beta"]


# ------------------------------------------------------------------------------------------------ helpers




def steps_tensor(t: Tensor | int, n: int, T: int, device: torch.device | str = "cpu") -> Tensor:
    """Validate 1-based steps and return them as an int64 tensor of shape ``(n,)`` on ``device``.

    Args:
        t: a Python ``int`` or an integer tensor of shape ``()`` or ``(n,)``.
        n: the batch size.
        T: the number of steps of the chain; every step must satisfy ``1 ≤ t ≤ T``.
    Raises:
        TypeError: if ``t`` is not an integer or an integer tensor.
        ValueError: if ``t`` has the wrong shape or a step outside ``[1, T]``.
    """
    if isinstance(t, bool) or not isinstance(t, (int, Tensor)):
        raise TypeError(f"t must be an int or an integer tensor of steps, got {type(t).__name__}")
    if isinstance(t, Tensor) and (t.is_floating_point() or t.is_complex() or t.dtype == torch.bool):
        raise TypeError(f"t must hold integer steps, got dtype {t.dtype}")
    steps = torch.as_tensor(t, dtype=torch.int64, device=device)
    if steps.ndim == 0:
        steps = steps.expand(n)
    if steps.shape != (n,):
        raise ValueError(f"t must be an int or have shape ({n},), got {tuple(steps.shape)}")
    if n and (int(steps.min()) < 1 or int(steps.max()) > T):
        raise ValueError(f"t must be 1-based steps in [1, {T}], got values in [{int(steps.min())}, {int(steps.max())}]")
    return steps


def _check_batch(x: object, name: str) -> Tensor:
    check_state(x, name)
    assert isinstance(x, Tensor)
    if x.ndim < 1 or x.shape[0] < 1:
        raise ValueError(f"{name} must have shape (n, ...) with n >= 1, got {tuple(x.shape)}")
    return x


def _check_same(a: Tensor, b: Tensor, na: str, nb: str) -> None:
    if a.shape != b.shape:
        raise ValueError(f"{na} has shape {tuple(a.shape)} but {nb} has {tuple(b.shape)}")


def _sum_dims(x: Tensor) -> Tensor:
    return x.flatten(1).sum(1)


# ---------------------------------------------------------------------------------------- forward chain


def forward_step(x_prev: Tensor, t: Tensor | int, betas: Tensor, noise: Tensor) -> Tensor:
    """One step of the forward chain, ``x_t = √(1 - β_t) x_{t-1} + √β_t z`` (Ho et al. 2020, eq. 2).

    Args:
        x_prev: ``x_{t-1}``, shape ``(n, ...)``.
        t: 1-based steps, an ``int`` or shape ``(n,)``.
        betas: the β table, shape ``(T,)``.
        noise: ``z ~ N(0, I)``, shape of ``x_prev``.
    Returns:
        ``x_t``, shape of ``x_prev``.
    """
    x_prev = _check_batch(x_prev, "x_prev")
    check_state(noise, "noise")
    _check_same(x_prev, noise, "x_prev", "noise")
    b, _, _ = ddpm_tables(betas)
    steps = steps_tensor(t, x_prev.shape[0], len(b), b.device)
    beta = b[steps - 1]
    return per_sample((1.0 - beta).sqrt(), x_prev) * x_prev + per_sample(beta.sqrt(), x_prev) * noise


def forward_marginal(x0: Tensor, t: Tensor | int, betas: Tensor, noise: Tensor) -> Tensor:
    """A draw from ``q(x_t | x_0) = N(√ᾱ_t x_0, (1 - ᾱ_t) I)``, i.e. ``x_t = √ᾱ_t x_0 + √(1 - ᾱ_t) ε``
    (Ho et al. 2020, eq. 4).

    Args:
        x0: clean data, shape ``(n, ...)``.
        t: 1-based steps, an ``int`` or shape ``(n,)``.
        betas: the β table, shape ``(T,)``.
        noise: ``ε ~ N(0, I)``, shape of ``x0``.
    Returns:
        ``x_t``, shape of ``x0``.
    """
    x0 = _check_batch(x0, "x0")
    check_state(noise, "noise")
    _check_same(x0, noise, "x0", "noise")
    _, abar, _ = ddpm_tables(betas)
    steps = steps_tensor(t, x0.shape[0], len(abar), abar.device)
    a = abar[steps - 1]
    return per_sample(a.sqrt(), x0) * x0 + per_sample((1.0 - a).sqrt(), x0) * noise


def posterior(x0: Tensor, xt: Tensor, t: Tensor | int, betas: Tensor) -> tuple[Tensor, Tensor]:
    """The forward posterior ``q(x_{t-1} | x_t, x_0) = N(μ̃_t, β̃_t I)`` (Ho et al. 2020, eqs. 6–7):

    ``μ̃_t = √ᾱ_{t-1} β_t/(1 - ᾱ_t) x_0 + √α_t (1 - ᾱ_{t-1})/(1 - ᾱ_t) x_t`` and
    ``β̃_t = (1 - ᾱ_{t-1})/(1 - ᾱ_t) β_t``. At ``t = 1`` it is the point mass at ``x_0`` (``μ̃ = x_0``, ``β̃ = 0``).

    Args:
        x0: clean data, shape ``(n, ...)``.
        xt: states at step ``t``, shape of ``x0``.
        t: 1-based steps, an ``int`` or shape ``(n,)``.
        betas: the β table, shape ``(T,)``.
    Returns:
        ``(mean, var)``: the mean, shape of ``x0``, and the variance ``β̃_t`` per sample, shape ``(n,)``.
    """
    x0 = _check_batch(x0, "x0")
    check_state(xt, "xt")
    _check_same(x0, xt, "x0", "xt")
    b, abar, abar_prev = ddpm_tables(betas)
    steps = steps_tensor(t, x0.shape[0], len(b), b.device) - 1
    beta, a, ap = b[steps], abar[steps], abar_prev[steps]
    coef_x0, coef_xt, var = ddpm_posterior(beta, ap, 1.0 - a, 1.0 - ap)
    mean = per_sample(coef_x0, x0) * x0 + per_sample(coef_xt, x0) * xt
    return mean, var.to(device=x0.device, dtype=x0.dtype)


def reverse_variance(betas: Tensor, variance: Variance = "beta_tilde") -> Tensor:
    """The reverse-step variances ``σ_t²`` of ``p_θ(x_{t-1} | x_t)``, shape ``(T,)``, float64 (Ho et al. 2020, §3.2).

    ``"beta_tilde"``: ``σ_t² = β̃_t``, optimal when ``x_0`` is a single point; ``"beta"``: ``σ_t² = β_t``, optimal
    for ``x_0 ~ N(0, I)``. Both use ``σ_1² = β_1`` at ``t = 1`` (the decoder's width; ``β̃_1 = 0``), as
    :func:`diffbook.losses.ddpm_elbo_weights` does (both call :func:`diffbook.schedules.ddpm_reverse_variance`).
    """
    return ddpm_reverse_variance(betas, variance)


def mean_from_eps(xt: Tensor, eps: Tensor, t: Tensor | int, betas: Tensor) -> Tensor:
    """The ε-parameterised reverse mean ``μ_θ = (x_t - β_t/√(1 - ᾱ_t) ε̂)/√α_t`` (Ho et al. 2020, eq. 11).

    With ``ε̂ = ε`` (the noise that made ``x_t`` from ``x_0``) it equals the posterior mean ``μ̃_t``.

    Args:
        xt: states, shape ``(n, ...)``; eps: noise predictions, same shape; t: 1-based steps; betas: ``(T,)``.
    Returns:
        Shape of ``xt``.
    """
    xt = _check_batch(xt, "xt")
    check_state(eps, "eps")
    _check_same(xt, eps, "xt", "eps")
    b, abar, _ = ddpm_tables(betas)
    steps = steps_tensor(t, xt.shape[0], len(b), b.device) - 1
    beta, a = b[steps], abar[steps]
    return (xt - per_sample(beta / (1.0 - a).sqrt(), xt) * eps) / per_sample((1.0 - beta).sqrt(), xt)


def ancestral_step(
    xt: Tensor, eps: Tensor, t: Tensor | int, betas: Tensor, noise: Tensor, variance: Variance = "beta_tilde"
) -> Tensor:
    """One step of ancestral sampling, ``x_{t-1} = μ_θ(x_t, t) + σ_t z`` (Ho et al. 2020, Algorithm 2, line 4);
    no noise is added at ``t = 1``.

    Args:
        xt: states, shape ``(n, ...)``; eps: the noise prediction ``ε̂(x_t, t)``, same shape;
        t: 1-based steps; betas: ``(T,)``; noise: ``z ~ N(0, I)``, shape of ``xt``;
        variance: ``σ_t²`` = ``"beta_tilde"`` or ``"beta"`` (see :func:`reverse_variance`).
    Returns:
        ``x_{t-1}``, shape of ``xt``.
    """
    mean = mean_from_eps(xt, eps, t, betas)
    check_state(noise, "noise")
    _check_same(xt, noise, "xt", "noise")
    var = reverse_variance(betas, variance)
    steps = steps_tensor(t, xt.shape[0], len(var), var.device)
    std = torch.where(steps > 1, var[steps - 1].sqrt(), torch.zeros_like(var[steps - 1]))
    return mean + per_sample(std, xt) * noise


def eps_from_denoiser(denoiser: Denoiser, betas: Tensor) -> EpsModel:
    """Turn a denoiser ``D(x̄; σ̄) ≈ E[x_0 | x̄]`` (the book's one contract, in VE-equivalent variables) into the
    DDPM noise predictor ``ε̂(x_t, t) = (x̄ - D(x̄; σ̄_t))/σ̄_t`` with ``x̄ = x_t/√ᾱ_t`` and ``σ̄_t = √((1 - ᾱ_t)/ᾱ_t)``
    (Karras et al. 2022, §2).

    Args:
        denoiser: called as ``denoiser(x̄, σ̄)`` with ``σ̄`` of shape ``(n,)``.
        betas: the β table, shape ``(T,)``.
    Returns:
        ``eps_model(x_t, t)`` with the :data:`EpsModel` signature.
    """
    if not callable(denoiser):
        raise TypeError(f"denoiser must be callable as denoiser(x, sigma), got {type(denoiser).__name__}")
    _, abar, _ = ddpm_tables(betas)

    def eps_model(xt: Tensor, t: Tensor) -> Tensor:
        xt_ = _check_batch(xt, "xt")
        steps = steps_tensor(t, xt_.shape[0], len(abar), abar.device) - 1
        a = abar[steps]
        sbar = ((1.0 - a) / a).sqrt().to(device=xt_.device, dtype=xt_.dtype)
        xbar = xt_ / per_sample(a.sqrt(), xt_)
        return (xbar - denoiser(xbar, sbar)) / per_sample(sbar, xt_)

    return eps_model


# ------------------------------------------------------------------------------------------- the KL terms


def gaussian_kl(mean1: Tensor, var1: Tensor | float, mean2: Tensor, var2: Tensor | float) -> Tensor:
    """``KL(N(m₁, v₁ I) ‖ N(m₂, v₂ I))`` summed over dimensions, shape ``(n,)``:
    ``½ Σ_i [v₁/v₂ - 1 + log(v₂/v₁) + (m₁ - m₂)²/v₂]`` (Bishop 2006, exercise 2.13; Ho et al. 2020, eq. 5).

    Args:
        mean1, mean2: shape ``(n, ...)``.
        var1, var2: positive variances, numbers or shape ``(n,)`` (one per sample).
    """
    mean1 = _check_batch(mean1, "mean1")
    check_state(mean2, "mean2")
    _check_same(mean1, mean2, "mean1", "mean2")
    v = []
    for name, var in (("var1", var1), ("var2", var2)):
        var = torch.as_tensor(var, dtype=mean1.dtype, device=mean1.device)
        if var.ndim == 1 and var.shape[0] == mean1.shape[0]:
            var = per_sample(var, mean1)
        elif var.ndim != 0:
            raise ValueError(f"{name} must be a number or have shape ({mean1.shape[0]},), got {tuple(var.shape)}")
        if not bool((var > 0).all()):
            raise ValueError(f"{name} must be positive")
        v.append(var)
    v1, v2 = v
    d = mean1[0].numel()
    ratio = (v1 / v2).expand_as(mean1).flatten(1)[:, 0]
    quad = _sum_dims((mean1 - mean2) ** 2 / v2)
    return 0.5 * (d * (ratio - 1.0 - torch.log(ratio)) + quad)


def step_kl(eps_pred: Tensor, eps: Tensor, t: Tensor | int, betas: Tensor, variance: Variance = "beta_tilde") -> Tensor:
    """The ELBO term ``L_{t-1} = KL(q(x_{t-1} | x_t, x_0) ‖ p_θ(x_{t-1} | x_t))`` for ``t ≥ 2``, shape ``(n,)``, in the
    ε form ``λ_t ‖ε - ε̂‖² + C_t`` with ``λ_t = β_t²/(2 σ_t² α_t (1 - ᾱ_t))`` and
    ``C_t = (D/2)(β̃_t/σ_t² - 1 - log(β̃_t/σ_t²))`` (``C_t = 0`` for ``σ_t² = β̃_t``) (Ho et al. 2020, eq. 12).

    Args:
        eps_pred: ``ε̂(x_t, t)``, shape ``(n, ...)``.
        eps: the noise that produced ``x_t = √ᾱ_t x_0 + √(1 - ᾱ_t) ε``, same shape.
        t: 1-based steps, all ``≥ 2`` (``t = 1`` is the decoder, see
            :func:`~diffbook.foundations.ddpm_bound.discretized_gaussian_nll`).
        betas: ``(T,)``; variance: ``σ_t²``, see :func:`reverse_variance`.
    Returns:
        Nats per example, float64.
    """
    eps_pred = _check_batch(eps_pred, "eps_pred")
    check_state(eps, "eps")
    _check_same(eps_pred, eps, "eps_pred", "eps")
    b, abar, abar_prev = ddpm_tables(betas)
    steps = steps_tensor(t, eps.shape[0], len(b), b.device)
    if int(steps.min()) < 2:
        raise ValueError("t must be >= 2 for a KL term; the step t = 1 is the decoder term L_0")
    idx = steps - 1
    sig2 = reverse_variance(b, variance)[idx]
    weight = ddpm_elbo_weights(b, variance)[idx]
    tilde = ddpm_posterior(b, abar_prev, 1.0 - abar, 1.0 - abar_prev)[2][idx]
    ratio = tilde / sig2
    d = eps[0].numel()
    sq = _sum_dims((eps.double() - eps_pred.double()) ** 2).to(weight.device)
    return weight * sq + 0.5 * d * (ratio - 1.0 - torch.log(ratio))


def prior_kl(x0: Tensor, betas: Tensor) -> Tensor:
    """``L_T = KL(N(√ᾱ_T x_0, (1 - ᾱ_T) I) ‖ N(0, I))`` per example, shape ``(n,)``, float64: the price of a
    forward chain that does not end exactly at ``N(0, I)``."""
    x0 = _check_batch(x0, "x0")
    _, abar, _ = ddpm_tables(betas)
    a = abar[-1]
    d = x0[0].numel()
    m2 = _sum_dims(x0.double() ** 2).to(a.device)
    return 0.5 * (a * m2 + d * (-a - torch.log1p(-a)))
