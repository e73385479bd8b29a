"""Per-sample training losses and weightings. Every loss returns shape ``(n,)``; the caller reduces.

Squared errors are *means* over the non-batch dimensions, so losses of different data sizes compare.
The identities between them (ε-loss = σ² × DSM loss; DSM = explicit score matching + constant) are
theorems of Chapter 5 and tests in ``tests/test_losses.py``.
"""

from __future__ import annotations

from typing import Any, Literal

import torch
from torch import Tensor

from diffbook._checks import (
    check_callable,
    check_int,
    check_levels,
    check_real,
    check_schedule,
    check_state,
    per_sample,
)
from diffbook.param import Denoiser
from diffbook.schedules import Schedule, ddpm_reverse_variance, ddpm_tables, log_snr, time_derivative

__all__ = [
    "mse",
    "eps_mse",
    "x0_mse",
    "v_mse",
    "dsm_loss",
    "esm_loss",
    "flow_matching_loss",
    "edm_weight",
    "lognormal_sigmas",
    "denoising_loss",
    "edm_loss",
    "ddpm_elbo_weights",
    "vdm_weight",
]


def _squared_error(pred: Tensor, target: Tensor, pred_name: str, target_name: str) -> Tensor:
    check_state(pred, pred_name)
    check_state(target, target_name)
    if pred.ndim < 1 or pred.shape[0] < 1:
        raise ValueError(f"{pred_name} must have shape (n, ...) with n >= 1, got {tuple(pred.shape)}")
    if pred.shape != target.shape:
        raise ValueError(f"{pred_name} has shape {tuple(pred.shape)} but {target_name} has {tuple(target.shape)}")
    return (pred - target).pow(2).flatten(1).mean(1)


def mse(pred: Tensor, target: Tensor) -> Tensor:
    """Per-sample mean squared error over all but the first dimension: inputs ``(n, ...)``, result shape ``(n,)``.

    Reference: Ho et al. (2020), Eq. 14 (the squared error every loss below is built from).
    """
    return _squared_error(pred, target, "pred", "target")


def eps_mse(eps_pred: Tensor, eps: Tensor) -> Tensor:
    """``‖ε̂ - ε‖²``: DDPM's L_simple; inputs ``(n, ...)``, shape ``(n,)``.

    Reference: Ho et al. (2020), Eq. 14.
    """
    return _squared_error(eps_pred, eps, "eps_pred", "eps")


def x0_mse(x0_pred: Tensor, x0: Tensor) -> Tensor:
    """``‖x̂₀ - x₀‖²``; inputs ``(n, ...)``, shape ``(n,)``.

    Reference: Karras et al. (2022), Eq. 2 (the denoiser's L2 target).
    """
    return _squared_error(x0_pred, x0, "x0_pred", "x0")


def v_mse(v_pred: Tensor, x0: Tensor, eps: Tensor, alpha: Tensor | float, sigma: Tensor | float) -> Tensor:
    """``‖v̂ - (α ε - σ x₀)‖²``; tensors ``(n, ...)``, ``alpha``/``sigma`` scalars or broadcastable; shape ``(n,)``.

    Reference: Salimans & Ho (2022), §4.
    """
    check_state(x0, "x0")
    check_state(eps, "eps")
    return _squared_error(v_pred, alpha * eps - sigma * x0, "v_pred", "the target α ε - σ x0")


def dsm_loss(score_pred: Tensor, x_t: Tensor, x0: Tensor, alpha: Tensor | float, sigma: Tensor | float) -> Tensor:
    """Denoising score matching ``‖ŝ - ∇log p(x_t | x₀)‖²`` with ``∇log p(x_t | x₀) = -(x_t - α x₀)/σ²``
    (Vincent 2011, eq. 7). Tensors ``(n, ...)``; ``alpha``/``sigma`` scalars or broadcastable; shape ``(n,)``.

    Reference: Vincent (2011), Eq. 7.
    """
    check_state(x_t, "x_t")
    check_state(x0, "x0")
    return _squared_error(score_pred, -(x_t - alpha * x0) / sigma**2, "score_pred", "the target score")


def esm_loss(score_pred: Tensor, true_score: Tensor) -> Tensor:
    """Explicit score matching ``‖ŝ - ∇log p_t(x_t)‖²``; needs the true score. Inputs ``(n, ...)``, shape ``(n,)``.

    Reference: Hyvärinen (2005), Eq. 2.
    """
    return _squared_error(score_pred, true_score, "score_pred", "true_score")


def flow_matching_loss(u_pred: Tensor, x0: Tensor, eps: Tensor, dalpha: Tensor | float = -1.0, dsigma: Tensor | float = 1.0) -> Tensor:
    """Conditional flow matching ``‖û - (α̇ x₀ + σ̇ ε)‖²`` (Lipman et al. 2023, eq. 9); the defaults are the
    linear path ``α = 1 - t, σ = t`` whose target is ``ε - x₀``. Tensors ``(n, ...)``; shape ``(n,)``.

    Reference: Lipman et al. (2023), Eq. 9.
    """
    check_state(x0, "x0")
    check_state(eps, "eps")
    return _squared_error(u_pred, dalpha * x0 + dsigma * eps, "u_pred", "the target velocity")


def edm_weight(sigma: Tensor, sigma_data: float = 0.5) -> Tensor:
    """EDM's loss weight ``λ(σ) = (σ² + σ_d²)/(σ σ_d)²``, shape of ``sigma`` (any shape, values ``> 0``).

    Reference: Karras et al. (2022), Table 1.
    """
    check_state(sigma, "sigma")
    check_real(sigma_data, "sigma_data", positive=True)
    check_levels(sigma, "sigma")
    return (sigma**2 + sigma_data**2) / (sigma * sigma_data) ** 2


def lognormal_sigmas(
    n: int, *, p_mean: float = -1.2, p_std: float = 1.2, generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float32, device: torch.device | str = "cpu",
) -> Tensor:
    """Training noise levels ``ln σ ~ N(P_mean, P_std²)``, shape ``(n,)``.

    Reference: Karras et al. (2022), §5 and Table 1.
    """
    check_int(n, "n")
    check_real(p_mean, "p_mean")
    check_real(p_std, "p_std", positive=True)
    return torch.exp(p_mean + p_std * torch.randn(n, generator=generator, dtype=dtype, device=device))


def denoising_loss(
    denoiser: Denoiser,
    x0: Tensor,
    sigma: Tensor,
    *,
    noise: Tensor | None = None,
    weight: Tensor | None = None,
    generator: torch.Generator | None = None,
    **cond: Any,
) -> Tensor:
    """``λ(σ̄) ‖D(x₀ + σ̄ n; σ̄) - x₀‖²`` in VE-equivalent variables, per sample (Karras et al. 2022, eq. 8).

    Works for every parameterisation wrapped by :class:`diffbook.param.Preconditioned`: with
    :class:`~diffbook.param.EpsPrecond`, ``weight = 1/σ̄²`` makes it exactly the ε-MSE of the net.

    Args:
        x0: clean data ``(n, ...)``; sigma: noise levels ``(n,)``; weight: ``(n,)`` or None (= 1).
    Returns:
        The per-sample loss, shape ``(n,)``.

    Reference: Karras et al. (2022), Eq. 8.
    """
    check_callable(denoiser, "denoiser", "denoiser(x, sigma, **cond)")
    check_state(x0, "x0")
    check_state(sigma, "sigma")
    if x0.ndim < 2 or x0.shape[0] < 1:
        raise ValueError(f"x0 must have shape (n, ...) with n >= 1 and a data dimension, got {tuple(x0.shape)}")
    if sigma.shape != (x0.shape[0],):
        raise ValueError(f"sigma must have shape ({x0.shape[0]},), got {tuple(sigma.shape)}")
    check_levels(sigma, "sigma")
    if noise is None:
        noise = torch.randn(x0.shape, generator=generator, dtype=x0.dtype, device=x0.device)
    elif not isinstance(noise, Tensor) or noise.shape != x0.shape:
        got = getattr(noise, "shape", noise)
        raise ValueError(f"noise must be a tensor of the shape of x0 {tuple(x0.shape)}, got {got!r}")
    s = per_sample(sigma, x0, "sigma")
    loss = mse(denoiser(x0 + s * noise, sigma, **cond), x0)
    return loss if weight is None else weight * loss


def edm_loss(
    denoiser: Denoiser,
    x0: Tensor,
    *,
    sigma_data: float = 0.5,
    p_mean: float = -1.2,
    p_std: float = 1.2,
    generator: torch.Generator | None = None,
    **cond: Any,
) -> Tensor:
    """EDM's training loss in one call: ``λ(σ) ‖D(x₀ + σ n; σ) - x₀‖²`` with ``ln σ ~ N(P_mean, P_std²)``,
    ``n ~ N(0, I)`` and ``λ(σ) = (σ² + σ_d²)/(σ σ_d)²``, per sample.

    The noise levels are drawn first, then the noise, both from ``generator``. With
    :class:`~diffbook.param.EDMPrecond`, ``λ(σ) c_out(σ)² = 1``: the network's effective target has unit weight.

    Args:
        denoiser: ``denoiser(x, sigma, **cond) -> x0_hat``, e.g. a :class:`~diffbook.param.Preconditioned` net.
        x0: clean data, shape ``(B, ...)``.
    Returns:
        The per-sample loss, shape ``(B,)``; reduce with ``.mean()``.

    Reference: Karras et al. (2022), Eqs. 2 and 8, Table 1 (λ, P_mean, P_std).
    """
    check_state(x0, "x0")
    if x0.ndim < 2 or x0.shape[0] < 1:
        raise ValueError(f"x0 must have shape (B, ...) with B >= 1 and a data dimension, got {tuple(x0.shape)}")
    sigma = lognormal_sigmas(x0.shape[0], p_mean=p_mean, p_std=p_std, generator=generator, dtype=x0.dtype,
                             device=x0.device)
    return denoising_loss(denoiser, x0, sigma, weight=edm_weight(sigma, sigma_data), generator=generator, **cond)


def ddpm_elbo_weights(betas: Tensor, variance: Literal["beta_tilde", "beta"] = "beta_tilde") -> Tensor:
    """The weights ``λ_t = β_t² / (2 σ_t² α_t (1 - ᾱ_t))`` that turn ``‖ε - ε̂‖²`` into the KL term ``L_{t-1}``
    of the DDPM ELBO (Ho et al. 2020, eq. 12), shape ``(T,)``.

    Args:
        variance: ``"beta_tilde"`` (σ_t² = β̃_t) or ``"beta"`` (σ_t² = β_t). With β̃ the first step has
            β̃_1 = 0 (it is the decoder term L_0 in DDPM), so index 0 uses β_1 instead.
    Note: these weights multiply the per-dimension *sum* ``‖ε - ε̂‖²``; multiply by the dimension when
        combining with :func:`eps_mse`, which averages. Computed in float64, returned in ``betas``' dtype.

    Reference: Ho et al. (2020), Eq. 12.
    """
    var = ddpm_reverse_variance(betas, variance)  # validates betas and variance
    b, abar, _ = ddpm_tables(betas)
    return (b**2 / (2.0 * var * (1.0 - b) * (1.0 - abar))).to(betas.dtype)


def vdm_weight(schedule: Schedule, t: Tensor) -> Tensor:
    """The continuous-time ELBO weight ``-½ dλ/dt`` on ``‖ε - ε̂‖²`` (sum over dimensions), where λ is the
    log-SNR; ``t`` scalar or shape ``(n,)``, result shape of ``t``.

    Reference: Kingma et al. (2021), Eq. 17.
    """
    check_schedule(schedule)
    _, dlam = time_derivative(lambda s: log_snr(schedule, s), t)
    return -0.5 * dlam
