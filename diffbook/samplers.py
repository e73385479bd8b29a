"""Samplers: functions ``sample_xxx(denoiser, x, sigmas, *, generator=None, callback=None, ...)`` that own
their loop and keep any multistep state in local variables.

All of them walk a strictly decreasing grid of VE-equivalent noise levels ``sigmas`` (σ̄, usually ending at
0) with ``x`` in the matching variables ``x̄ = x/α`` (Karras et al. 2022, §2), and call the denoiser
``D(x̄; σ̄) ≈ E[x₀ | x̄]``. DDPM and DDIM are written in their own variance-preserving form and converted,
so they coincide step for step with the originals (tested against diffusers). Start from
``x = sigmas[0] * z`` (or ``sqrt(1 + sigmas[0]**2) * z`` for the exact VP prior, see :func:`prior_noise`).

The callback is called as ``callback(i, sigma_i, x_i, x0_hat_i)`` after the denoiser evaluation of step ``i``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, Literal

import torch
from torch import Tensor
from tqdm.auto import trange

from diffbook._checks import check_sigmas
from diffbook.param import Denoiser

__all__ = [
    "prior_noise",
    "sample_euler",
    "sample_heun",
    "sample_ddim",
    "sample_ddpm",
    "sample_euler_maruyama",
    "sample_dpmpp_2m",
    "sample_flow_euler",
]

Callback = Callable[[int, Tensor, Tensor, Tensor], None]


def prior_noise(
    shape: tuple[int, ...], sigma_max: float | Tensor, *, variance_preserving: bool = True,
    generator: torch.Generator | None = None, dtype: torch.dtype = torch.float32, device: torch.device | str = "cpu",
) -> Tensor:
    """A starting point for the samplers at noise level ``σ̄_max``.

    VP: ``x_T ~ N(0, I)`` in the original variables, i.e. ``x̄ = sqrt(1 + σ̄²) z``; VE: ``x̄ = σ̄ z``.
    """
    z = torch.randn(shape, generator=generator, dtype=dtype, device=device)
    s = float(sigma_max)
    return z * (math.sqrt(1.0 + s * s) if variance_preserving else s)


def _denoise(denoiser: Denoiser, x: Tensor, sigma: Tensor, cond: dict[str, Any]) -> Tensor:
    return denoiser(x, sigma.to(x.dtype).expand(x.shape[0]), **cond)


def _randn(x: Tensor, generator: torch.Generator | None) -> Tensor:
    return torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)


def _prepare(x: Tensor, sigmas: Tensor) -> list[float]:
    check_sigmas(sigmas, x)
    return sigmas.tolist()  # one host sync up front; branches below use these floats, never the device


def _churn(sigma: float, n: int, churn: float, s_tmin: float, s_tmax: float) -> float:
    """EDM's γ_i = min(S_churn/N, √2 - 1) inside [S_tmin, S_tmax] (Karras et al. 2022, Algorithm 2)."""
    if churn < 0:
        raise ValueError(f"churn must be >= 0, got {churn}")
    return min(churn / n, math.sqrt(2.0) - 1.0) if s_tmin <= sigma <= s_tmax else 0.0


def _edm_loop(
    denoiser: Denoiser, x: Tensor, sigmas: Tensor, heun: bool, generator: torch.Generator | None,
    callback: Callback | None, churn: float, s_tmin: float, s_tmax: float, s_noise: float, progress: bool,
    cond: dict[str, Any],
) -> Tensor:
    sig = _prepare(x, sigmas)
    n = len(sig) - 1
    for i in trange(n, disable=not progress, desc="sampling", leave=False):
        gamma = _churn(sig[i], n, churn, s_tmin, s_tmax)
        sigma_hat = sigmas[i] * (1.0 + gamma)
        if gamma > 0:  # raise the noise level to σ̂ by adding fresh noise, then solve the ODE from there
            x = x + _randn(x, generator) * s_noise * (sigma_hat**2 - sigmas[i] ** 2).sqrt()
        denoised = _denoise(denoiser, x, sigma_hat, cond)
        d = (x - denoised) / sigma_hat
        if callback is not None:
            callback(i, sigmas[i], x, denoised)
        dt = sigmas[i + 1] - sigma_hat
        if not heun or sig[i + 1] == 0.0:
            x = x + d * dt
        else:  # Heun's correction with the slope at the Euler end point
            x_euler = x + d * dt
            d_next = (x_euler - _denoise(denoiser, x_euler, sigmas[i + 1], cond)) / sigmas[i + 1]
            x = x + 0.5 * (d + d_next) * dt
    return x


def sample_euler(
    denoiser: Denoiser, x: Tensor, sigmas: Tensor, *, generator: torch.Generator | None = None,
    callback: Callback | None = None, churn: float = 0.0, s_tmin: float = 0.0, s_tmax: float = math.inf,
    s_noise: float = 1.0, progress: bool = False, **cond: Any,
) -> Tensor:
    """Euler on the probability-flow ODE ``dx̄/dσ̄ = (x̄ - D(x̄; σ̄))/σ̄`` (Karras et al. 2022, Algorithm 2
    without the second-order correction; optional stochastic "churn"). One evaluation per step, order 1."""
    return _edm_loop(denoiser, x, sigmas, False, generator, callback, churn, s_tmin, s_tmax, s_noise, progress, cond)


def sample_heun(
    denoiser: Denoiser, x: Tensor, sigmas: Tensor, *, generator: torch.Generator | None = None,
    callback: Callback | None = None, churn: float = 0.0, s_tmin: float = 0.0, s_tmax: float = math.inf,
    s_noise: float = 1.0, progress: bool = False, **cond: Any,
) -> Tensor:
    """EDM's Heun sampler (Karras et al. 2022, Algorithms 1 and 2): second order, two evaluations per step
    except the last step to σ = 0, which is an Euler step. ``churn > 0`` adds EDM's stochasticity."""
    return _edm_loop(denoiser, x, sigmas, True, generator, callback, churn, s_tmin, s_tmax, s_noise, progress, cond)


def sample_ddim(
    denoiser: Denoiser, x: Tensor, sigmas: Tensor, *, eta: float = 0.0, generator: torch.Generator | None = None,
    callback: Callback | None = None, progress: bool = False, **cond: Any,
) -> Tensor:
    """DDIM (Song, Meng & Ermon 2021, eq. 12) in VP form with ``ᾱ = 1/(1 + σ̄²)``:
    ``x_s = sqrt(ᾱ_s) x̂₀ + sqrt(1 - ᾱ_s - c²) ε̂ + c z`` with
    ``c = η sqrt((1 - ᾱ_s)/(1 - ᾱ_t)) sqrt(1 - ᾱ_t/ᾱ_s)``. ``η = 0`` is deterministic; ``η = 1`` is DDPM."""
    if eta < 0:
        raise ValueError(f"eta must be >= 0, got {eta}")
    sig = _prepare(x, sigmas)
    for i in trange(len(sig) - 1, disable=not progress, desc="DDIM", leave=False):
        s, s1 = sig[i], sig[i + 1]
        x0 = _denoise(denoiser, x, sigmas[i], cond)
        if callback is not None:
            callback(i, sigmas[i], x, x0)
        eps = (x - x0) / s
        abar, abar1 = 1.0 / (1.0 + s * s), 1.0 / (1.0 + s1 * s1)
        c = eta * math.sqrt((1.0 - abar1) / (1.0 - abar) * (1.0 - abar / abar1))
        # divide the VP update by sqrt(ᾱ_s) to return to VE-equivalent variables
        x = x0 + math.sqrt(max(1.0 - abar1 - c * c, 0.0) / abar1) * eps
        if c > 0:
            x = x + (c / math.sqrt(abar1)) * _randn(x, generator)
    return x


def sample_ddpm(
    denoiser: Denoiser, x: Tensor, sigmas: Tensor, *, variance: Literal["beta_tilde", "beta"] = "beta_tilde",
    generator: torch.Generator | None = None, callback: Callback | None = None, progress: bool = False, **cond: Any,
) -> Tensor:
    """DDPM ancestral sampling (Ho et al. 2020, Algorithm 2) through the posterior ``q(x_{t-1} | x_t, x̂₀)``:
    mean ``sqrt(ᾱ_{t-1}) β_t/(1 - ᾱ_t) x̂₀ + sqrt(α_t)(1 - ᾱ_{t-1})/(1 - ᾱ_t) x_t`` (eq. 7) and variance
    ``β̃_t = β_t (1 - ᾱ_{t-1})/(1 - ᾱ_t)`` or ``β_t``. ``β_t = 1 - ᾱ_t/ᾱ_{t-1}`` is read off the grid, so
    skipped ("respaced") grids work too. No noise is added on the final step."""
    if variance not in ("beta_tilde", "beta"):
        raise ValueError(f"variance must be 'beta_tilde' or 'beta', got {variance!r}")
    sig = _prepare(x, sigmas)
    for i in trange(len(sig) - 1, disable=not progress, desc="DDPM", leave=False):
        s, s1 = sig[i], sig[i + 1]
        x0 = _denoise(denoiser, x, sigmas[i], cond)
        if callback is not None:
            callback(i, sigmas[i], x, x0)
        abar, abar1 = 1.0 / (1.0 + s * s), 1.0 / (1.0 + s1 * s1)
        one_m_abar, one_m_abar1 = s * s * abar, s1 * s1 * abar1  # 1 - ᾱ, accurate at small σ̄
        beta = (s * s - s1 * s1) * abar  # 1 - ᾱ_t/ᾱ_{t-1}
        mean = (math.sqrt(abar1) * beta / one_m_abar) * x0 + (
            math.sqrt(abar / abar1) * one_m_abar1 / one_m_abar * math.sqrt(abar)
        ) * x
        x = mean
        if s1 > 0:
            var = beta * one_m_abar1 / one_m_abar if variance == "beta_tilde" else beta
            x = x + math.sqrt(var) * _randn(x, generator)
        x = x / math.sqrt(abar1)
    return x


def sample_euler_maruyama(
    denoiser: Denoiser, x: Tensor, sigmas: Tensor, *, generator: torch.Generator | None = None,
    callback: Callback | None = None, progress: bool = False, **cond: Any,
) -> Tensor:
    """Euler–Maruyama on the reverse-time SDE of the VE-equivalent process ``dx̄ = sqrt(dσ̄²/dt) dW``
    (Song et al. 2021, eq. 6 and §4): ``x̄ ← x̄ + (σ̄² - σ̄'²) ∇log p + sqrt(σ̄² - σ̄'²) z`` with
    ``∇log p = (D - x̄)/σ̄²``. The final step to σ̄ = 0 returns the denoised mean (no noise)."""
    sig = _prepare(x, sigmas)
    for i in trange(len(sig) - 1, disable=not progress, desc="Euler-Maruyama", leave=False):
        s, s1 = sig[i], sig[i + 1]
        x0 = _denoise(denoiser, x, sigmas[i], cond)
        if callback is not None:
            callback(i, sigmas[i], x, x0)
        if s1 == 0.0:
            x = x0
        else:
            x = x + (1.0 - (s1 * s1) / (s * s)) * (x0 - x) + math.sqrt(s * s - s1 * s1) * _randn(x, generator)
    return x


def sample_dpmpp_2m(
    denoiser: Denoiser, x: Tensor, sigmas: Tensor, *, generator: torch.Generator | None = None,
    callback: Callback | None = None, progress: bool = False, **cond: Any,
) -> Tensor:
    """DPM-Solver++(2M) (Lu et al. 2022, "DPM-Solver++", Algorithm 2): a second-order multistep exponential
    integrator in ``λ = -log σ̄`` on the data prediction. The first and last steps are first order
    (DPM-Solver++1, which equals DDIM). ``generator`` is unused (deterministic)."""
    sig = _prepare(x, sigmas)
    old_x0: Tensor | None = None
    h_last = 0.0
    for i in trange(len(sig) - 1, disable=not progress, desc="DPM-Solver++(2M)", leave=False):
        s, s1 = sig[i], sig[i + 1]
        x0 = _denoise(denoiser, x, sigmas[i], cond)
        if callback is not None:
            callback(i, sigmas[i], x, x0)
        if s1 == 0.0:
            x = x0
            break
        h = math.log(s) - math.log(s1)  # λ_{i+1} - λ_i > 0
        if old_x0 is None:
            d = x0
        else:
            r = h_last / h
            d = (1.0 + 1.0 / (2.0 * r)) * x0 - (1.0 / (2.0 * r)) * old_x0
        x = (s1 / s) * x - math.expm1(-h) * d
        old_x0, h_last = x0, h
    return x


def sample_flow_euler(
    denoiser: Denoiser, x: Tensor, sigmas: Tensor, *, generator: torch.Generator | None = None,
    callback: Callback | None = None, progress: bool = False, **cond: Any,
) -> Tensor:
    """Euler on the flow-matching ODE ``dz/dt = û = ε̂ - x̂₀`` of the linear path ``z = (1 - t) x₀ + t ε``
    (Liu et al. 2023; Lipman et al. 2023), with ``t = σ̄/(1 + σ̄)`` and ``z = x̄/(1 + σ̄)``.
    Reproduces DDIM(η = 0) step for step (a theorem of Chapter 7)."""
    sig = _prepare(x, sigmas)
    for i in trange(len(sig) - 1, disable=not progress, desc="flow Euler", leave=False):
        s, s1 = sig[i], sig[i + 1]
        x0 = _denoise(denoiser, x, sigmas[i], cond)
        if callback is not None:
            callback(i, sigmas[i], x, x0)
        t, t1 = s / (1.0 + s), s1 / (1.0 + s1)
        z = x / (1.0 + s)
        velocity = (z - x0) / t  # ε̂ - x̂₀, since z = (1 - t) x̂₀ + t ε̂
        x = (z + (t1 - t) * velocity) * (1.0 + s1)
    return x
