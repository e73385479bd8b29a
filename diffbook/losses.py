"""Per-sample training losses and weightings. Every loss returns shape ``(n,)``; the caller reduces.

Squared errors are *means* over the non-batch dimensions, so losses of different data sizes compare.
The identities between them (ε-loss = σ² × DSM loss; DSM = explicit score matching + constant) are
theorems of Chapter 5 and tests in ``tests/test_losses.py``.
"""

from __future__ import annotations

from typing import Any, Literal

import torch
from torch import Tensor

from diffbook.param import Denoiser
from diffbook.schedules import Schedule, log_snr, time_derivative

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
    "ddpm_elbo_weights",
    "vdm_weight",
]


def mse(pred: Tensor, target: Tensor) -> Tensor:
    """Per-sample mean squared error over all but the first dimension, shape ``(n,)``."""
    if pred.shape != target.shape:
        raise ValueError(f"pred has shape {tuple(pred.shape)} but target has {tuple(target.shape)}")
    return (pred - target).pow(2).flatten(1).mean(1)


def eps_mse(eps_pred: Tensor, eps: Tensor) -> Tensor:
    """``‖ε̂ - ε‖²``: DDPM's L_simple (Ho et al. 2020, eq. 14)."""
    return mse(eps_pred, eps)


def x0_mse(x0_pred: Tensor, x0: Tensor) -> Tensor:
    """``‖x̂₀ - x₀‖²``."""
    return mse(x0_pred, x0)


def v_mse(v_pred: Tensor, x0: Tensor, eps: Tensor, alpha: Tensor | float, sigma: Tensor | float) -> Tensor:
    """``‖v̂ - (α ε - σ x₀)‖²`` (Salimans & Ho 2022)."""
    return mse(v_pred, alpha * eps - sigma * x0)


def dsm_loss(score_pred: Tensor, x_t: Tensor, x0: Tensor, alpha: Tensor | float, sigma: Tensor | float) -> Tensor:
    """Denoising score matching ``‖ŝ - ∇log p(x_t | x₀)‖²`` with ``∇log p(x_t | x₀) = -(x_t - α x₀)/σ²``
    (Vincent 2011, eq. 7)."""
    return mse(score_pred, -(x_t - alpha * x0) / sigma**2)


def esm_loss(score_pred: Tensor, true_score: Tensor) -> Tensor:
    """Explicit score matching ``‖ŝ - ∇log p_t(x_t)‖²`` (Hyvärinen 2005); needs the true score."""
    return mse(score_pred, true_score)


def flow_matching_loss(u_pred: Tensor, x0: Tensor, eps: Tensor, dalpha: Tensor | float = -1.0, dsigma: Tensor | float = 1.0) -> Tensor:
    """Conditional flow matching ``‖û - (α̇ x₀ + σ̇ ε)‖²`` (Lipman et al. 2023, eq. 9); the defaults are the
    linear path ``α = 1 - t, σ = t`` whose target is ``ε - x₀``."""
    return mse(u_pred, dalpha * x0 + dsigma * eps)


def edm_weight(sigma: Tensor, sigma_data: float = 0.5) -> Tensor:
    """EDM's loss weight ``λ(σ) = (σ² + σ_d²)/(σ σ_d)²`` (Karras et al. 2022, Table 1)."""
    return (sigma**2 + sigma_data**2) / (sigma * sigma_data) ** 2


def lognormal_sigmas(
    n: int, *, p_mean: float = -1.2, p_std: float = 1.2, generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float32, device: torch.device | str = "cpu",
) -> Tensor:
    """Training noise levels ``ln σ ~ N(P_mean, P_std²)``, shape ``(n,)`` (Karras et al. 2022, §5 and Table 1)."""
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive int, got {n!r}")
    if p_std <= 0:
        raise ValueError(f"p_std must be > 0, got {p_std}")
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
    """
    if sigma.shape != (x0.shape[0],):
        raise ValueError(f"sigma must have shape ({x0.shape[0]},), got {tuple(sigma.shape)}")
    if noise is None:
        noise = torch.randn(x0.shape, generator=generator, dtype=x0.dtype, device=x0.device)
    s = sigma.reshape((-1,) + (1,) * (x0.ndim - 1)).to(x0.dtype)
    loss = mse(denoiser(x0 + s * noise, sigma, **cond), x0)
    return loss if weight is None else weight * loss


def ddpm_elbo_weights(betas: Tensor, variance: Literal["beta_tilde", "beta"] = "beta_tilde") -> Tensor:
    """The weights ``λ_t = β_t² / (2 σ_t² α_t (1 - ᾱ_t))`` that turn ``‖ε - ε̂‖²`` into the KL term ``L_{t-1}``
    of the DDPM ELBO (Ho et al. 2020, eq. 12), shape ``(T,)``.

    Args:
        variance: ``"beta_tilde"`` (σ_t² = β̃_t) or ``"beta"`` (σ_t² = β_t). With β̃ the first step has
            β̃_1 = 0 (it is the decoder term L_0 in DDPM), so index 0 uses β_1 instead.
    Note: these weights multiply the per-dimension *sum* ``‖ε - ε̂‖²``; multiply by the dimension when
        combining with :func:`eps_mse`, which averages.
    """
    abar = torch.cumprod(1.0 - betas, dim=0)
    abar_prev = torch.cat([abar.new_ones(1), abar[:-1]])
    if variance == "beta_tilde":
        var = betas * (1.0 - abar_prev) / (1.0 - abar)
        var[0] = betas[0]
    elif variance == "beta":
        var = betas.clone()
    else:
        raise ValueError(f"variance must be 'beta_tilde' or 'beta', got {variance!r}")
    return betas**2 / (2.0 * var * (1.0 - betas) * (1.0 - abar))


def vdm_weight(schedule: Schedule, t: Tensor) -> Tensor:
    """The continuous-time ELBO weight ``-½ dλ/dt`` on ``‖ε - ε̂‖²`` (sum over dimensions), where λ is the
    log-SNR (Kingma et al. 2021, eq. 17)."""
    _, dlam = time_derivative(lambda s: log_snr(schedule, s), t)
    return -0.5 * dlam
