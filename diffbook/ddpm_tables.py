"""Discrete-time DDPM tables: the β tables of Ho et al. (2020) and Nichol & Dhariwal (2021), ᾱ, the
forward posterior's coefficients and reverse-step variances, and the VE-equivalent noise level σ̄ at each step.

These are the one home of DDPM's discrete formulas: the ancestral sampler of :mod:`diffbook.samplers`, the ELBO
weights of :mod:`diffbook.losses` and the chain of :mod:`diffbook.foundations.ddpm` all call them.
:mod:`diffbook.schedules` re-exports every name, so ``schedules.linear_betas()`` keeps working.

References: Ho et al. 2020 (DDPM, linear β, eqs. 4–7); Nichol & Dhariwal 2021 (cosine β, eq. 17).
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor

from diffbook._checks import check_int, check_real, check_tensor

__all__ = ["linear_betas", "cosine_betas", "alphas_cumprod", "ddpm_tables", "ddpm_posterior", "ddpm_reverse_variance", "ddpm_sigmas"]


def linear_betas(n: int = 1000, beta_start: float = 1e-4, beta_end: float = 0.02) -> Tensor:
    """DDPM's linear β table, shape ``(n,)``, float64 (Ho et al. 2020, §4).

    Reference: Ho et al. (2020), §4.
    """
    check_int(n, "n")
    lo, hi = check_real(beta_start, "beta_start"), check_real(beta_end, "beta_end")
    if not 0.0 < lo <= hi < 1.0:
        raise ValueError(f"need 0 < beta_start <= beta_end < 1, got {beta_start}, {beta_end}")
    return torch.linspace(lo, hi, n, dtype=torch.float64)


def cosine_betas(n: int = 1000, s: float = 0.008, max_beta: float = 0.999) -> Tensor:
    """The cosine β table of Nichol & Dhariwal 2021 (eq. 17, β clipped at ``max_beta``), shape ``(n,)``, float64.

    Reference: Nichol & Dhariwal (2021), Eq. 17.
    """
    check_int(n, "n")
    if not 0.0 < check_real(max_beta, "max_beta") < 1.0:
        raise ValueError(f"max_beta must lie in (0, 1), got {max_beta!r}")
    from diffbook.schedules import VPCosine  # the cosine path's one home (schedules re-exports this module)

    t = torch.arange(n + 1, dtype=torch.float64) / n
    abar = VPCosine(s).alpha(t) ** 2
    return (1.0 - abar[1:] / abar[:-1]).clamp(max=max_beta)


def _check_betas(betas: object) -> Tensor:
    betas = check_tensor(betas, "betas")
    if betas.ndim != 1 or betas.numel() == 0:
        raise ValueError(f"betas must be a 1-D tensor (β_1, …, β_T) with at least one entry, "
                         f"got shape {tuple(betas.shape)}")
    if not bool(((betas > 0) & (betas < 1)).all()):
        raise ValueError("betas must be a 1-D tensor with entries in (0, 1): finite, none 0, none 1")
    return betas


def alphas_cumprod(betas: Tensor) -> Tensor:
    """``ᾱ_t = Π_{s ≤ t} (1 - β_s)``, shape ``(T,)`` of ``betas`` (Ho et al. 2020, §2).

    Reference: Ho et al. (2020), §2 (the notation above Eq. 4).
    """
    return torch.cumprod(1.0 - _check_betas(betas), dim=0)


def ddpm_tables(betas: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """``(β, ᾱ, ᾱ_prev)`` in float64, each shape ``(T,)``: index ``t - 1`` holds step ``t``, ``ᾱ_prev[0] = ᾱ_0 = 1``
    (Ho et al. 2020, §2).

    Reference: Ho et al. (2020), §2.
    """
    b = _check_betas(betas).detach().to(torch.float64)
    abar = torch.cumprod(1.0 - b, dim=0)
    return b, abar, torch.cat([abar.new_ones(1), abar[:-1]])


def ddpm_posterior(
    beta: Tensor | float, abar_prev: Tensor | float, one_minus_abar: Tensor | float, one_minus_abar_prev: Tensor | float
) -> tuple[Tensor | float, Tensor | float, Tensor | float]:
    """The coefficients of DDPM's forward posterior ``q(x_{t-1} | x_t, x_0) = N(c_0 x_0 + c_t x_t, β̃_t I)``:

    ``c_0 = √ᾱ_{t-1} β_t/(1 - ᾱ_t)``, ``c_t = √(1 - β_t) (1 - ᾱ_{t-1})/(1 - ᾱ_t)``,
    ``β̃_t = β_t (1 - ᾱ_{t-1})/(1 - ᾱ_t)``.

    The one home of these formulas: the chain of :mod:`diffbook.foundations.ddpm`, the ELBO weights of
    :mod:`diffbook.losses` and the ancestral sampler of :mod:`diffbook.samplers` all call it. Arguments are
    numbers or tensors of one shape (e.g. ``(T,)``; ``1 - ᾱ`` is passed separately, so a caller that knows it
    more accurately than ``1 - ᾱ`` — the samplers, from ``σ̄`` — keeps that accuracy); returns ``(c_0, c_t, β̃)``
    of that shape. Unvalidated: callers validate their tables once.

    Reference: Ho et al. (2020), Eqs. 6–7.
    """
    c0 = abar_prev**0.5 * beta / one_minus_abar
    ct = (1.0 - beta) ** 0.5 * one_minus_abar_prev / one_minus_abar
    return c0, ct, beta * one_minus_abar_prev / one_minus_abar


def ddpm_reverse_variance(betas: Tensor, variance: Literal["beta_tilde", "beta"] = "beta_tilde") -> Tensor:
    """The reverse-step variances ``σ_t²`` of ``p_θ(x_{t-1} | x_t)``, shape ``(T,)``, float64.

    ``"beta_tilde"``: ``σ_t² = β̃_t`` (optimal when ``x_0`` is a single point); ``"beta"``: ``σ_t² = β_t`` (optimal
    for ``x_0 ~ N(0, I)``). Both use ``σ_1² = β_1`` at ``t = 1`` (the decoder's width, since ``β̃_1 = 0``).

    Reference: Ho et al. (2020), §3.2.
    """
    if variance not in ("beta_tilde", "beta"):
        raise ValueError(f"variance must be 'beta_tilde' or 'beta', got {variance!r}")
    b, abar, abar_prev = ddpm_tables(betas)
    if variance == "beta":
        return b.clone()
    var = ddpm_posterior(b, abar_prev, 1.0 - abar, 1.0 - abar_prev)[2]
    var[0] = b[0]
    return var


def ddpm_sigmas(betas: Tensor, timesteps: Tensor | None = None) -> Tensor:
    """The decreasing VE-equivalent grid ``σ̄_t = sqrt((1 - ᾱ_t)/ᾱ_t)`` over ``timesteps`` (default: all, from
    the last to the first) with a final 0 appended, shape ``(len(timesteps) + 1,)``.

    Samplers fed this grid step exactly through DDPM's discrete time steps.

    Reference: Karras et al. (2022), §2 and Table 1 (VP discretisation).
    """
    abar = alphas_cumprod(betas)
    if timesteps is None:
        timesteps = torch.arange(len(abar) - 1, -1, -1)
    elif not isinstance(timesteps, Tensor) or timesteps.is_floating_point() or timesteps.ndim != 1:
        raise TypeError(f"timesteps must be a 1-D integer tensor of 0-based steps, got {timesteps!r}")
    elif timesteps.numel() == 0 or int(timesteps.min()) < 0 or int(timesteps.max()) >= len(abar):
        raise ValueError(f"timesteps must be non-empty 0-based steps in [0, {len(abar) - 1}]")
    sig = torch.sqrt((1.0 - abar[timesteps]) / abar[timesteps])
    return torch.cat([sig, sig.new_zeros(1)])
