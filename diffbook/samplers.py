"""Samplers: functions ``sample_xxx(denoiser, x, sigmas, *, generator=None, callback=None, ...)`` that own
their loop and keep any multistep state in local variables.

All of them walk a strictly decreasing grid of VE-equivalent noise levels ``sigmas`` (σ̄, usually ending at
0) with ``x`` in the matching variables ``x̄ = x/α`` (Karras et al. 2022, §2), and call the denoiser
``D(x̄; σ̄) ≈ E[x₀ | x̄]``. DDPM and DDIM are written in their own variance-preserving form and converted,
so they coincide step for step with the originals (tested against diffusers). Start from
``x = sigmas[0] * z`` (or ``sqrt(1 + sigmas[0]**2) * z`` for the exact VP prior, see :func:`prior_noise`).

The callback is called as ``callback(i, sigma_i, x_i, x0_hat_i)`` after the denoiser evaluation of step ``i``.

Every sampler runs under ``torch.no_grad()``: sampling a trainable network builds no autograd graph. A
denoiser that needs gradients inside (classifier guidance, :func:`diffbook.guidance.classifier_guidance`)
enables them locally with ``torch.enable_grad()``. Inputs are validated once per call: the σ grid, and the
shape of the first denoiser output (a wrong batch size would otherwise broadcast silently).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, Literal

import torch
from torch import Tensor
from tqdm.auto import trange

from diffbook._checks import check_callable, check_real, check_sigmas
from diffbook.param import Denoiser
from diffbook.schedules import ddpm_posterior

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
    """A starting point of shape ``shape`` (e.g. ``(B, D)``) for the samplers at noise level ``σ̄_max`` (a scalar).

    VP: ``x_T ~ N(0, I)`` in the original variables, i.e. ``x̄ = sqrt(1 + σ̄²) z``; VE: ``x̄ = σ̄ z``.

    Reference: Karras et al. (2022), Algorithm 1, line 2 (VE); Ho et al. (2020), Algorithm 2, line 1 (VP).
    """
    if not isinstance(shape, (tuple, list, torch.Size)) or not all(
        isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape
    ):
        raise TypeError(f"shape must be a tuple of non-negative ints, got {shape!r}")
    s = check_real(sigma_max, "sigma_max", positive=True)
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise TypeError(f"dtype must be a floating-point torch.dtype, got {dtype!r}")
    z = torch.randn(tuple(shape), generator=generator, dtype=dtype, device=device)
    return z * (math.sqrt(1.0 + s * s) if variance_preserving else s)


def _randn(x: Tensor, generator: torch.Generator | None) -> Tensor:
    return torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)


def _prepare(
    denoiser: Denoiser, x: Tensor, sigmas: Tensor, cond: dict[str, Any]
) -> tuple[list[float], Callable[[Tensor, Tensor], Tensor]]:
    """Validate once per call; return the grid as floats and ``D(x, σ)`` (σ a 0-dim tensor) for the loop.

    The grid comes to the host once up front, so the branches of a loop use floats, never the device. The
    first denoiser output is checked for ``x``'s shape (a wrong batch size would otherwise broadcast silently).
    """
    check_callable(denoiser, "denoiser", "denoiser(x, sigma, **cond)")
    check_sigmas(sigmas, x)
    checked = False

    def denoise(x: Tensor, sigma: Tensor) -> Tensor:
        nonlocal checked
        out = denoiser(x, sigma.to(x.dtype).expand(x.shape[0]), **cond)
        if not checked:
            if not isinstance(out, Tensor) or out.shape != x.shape:
                got = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
                raise ValueError(f"denoiser must return x0_hat of the shape of x {tuple(x.shape)}, got {got}")
            checked = True
        return out

    return sigmas.tolist(), denoise


def _check_churn(churn: float, s_tmin: float, s_tmax: float, s_noise: float) -> None:
    check_real(churn, "churn", nonnegative=True)
    check_real(s_tmin, "s_tmin", nonnegative=True)
    check_real(s_tmax, "s_tmax", nonnegative=True, allow_inf=True)
    check_real(s_noise, "s_noise", nonnegative=True)


def _gamma(sigma: float, n: int, churn: float, s_tmin: float, s_tmax: float) -> float:
    """EDM's ``γ_i = min(S_churn/N, √2 - 1)`` inside ``[S_tmin, S_tmax]``, else 0 (Karras et al. 2022, Alg. 2, line 4)."""
    return min(churn / n, math.sqrt(2.0) - 1.0) if s_tmin <= sigma <= s_tmax else 0.0


def _raise_noise(x: Tensor, sigma: Tensor, gamma: float, s_noise: float,
                 generator: torch.Generator | None) -> tuple[Tensor, Tensor]:
    """``σ̂ = σ (1 + γ)`` and ``x̂ = x + sqrt(σ̂² - σ²) S_noise z`` (Karras et al. 2022, Alg. 2, lines 5–6)."""
    sigma_hat = sigma * (1.0 + gamma)
    if gamma > 0:
        x = x + _randn(x, generator) * s_noise * (sigma_hat**2 - sigma**2).sqrt()
    return x, sigma_hat


@torch.no_grad()
def sample_euler(
    denoiser: Denoiser, x: Tensor, sigmas: Tensor, *, generator: torch.Generator | None = None,
    callback: Callback | None = None, churn: float = 0.0, s_tmin: float = 0.0, s_tmax: float = math.inf,
    s_noise: float = 1.0, progress: bool = False, **cond: Any,
) -> Tensor:
    """Euler on the probability-flow ODE ``dx̄/dσ̄ = (x̄ - D(x̄; σ̄))/σ̄``, with EDM's optional stochastic churn.

    One evaluation per step, order 1. ``x``: shape ``(B, ...)`` at ``sigmas[0]``; ``sigmas``: ``(N + 1,)``,
    strictly decreasing; returns the shape of ``x``. Runs without building an autograd graph.

    Reference: Karras et al. (2022), Algorithm 2 without its second-order correction (lines 9–11).
    """
    _check_churn(churn, s_tmin, s_tmax, s_noise)
    sig, D = _prepare(denoiser, x, sigmas, cond)
    n = len(sig) - 1
    for i in trange(n, disable=not progress, desc="Euler", leave=False):
        gamma = _gamma(sig[i], n, churn, s_tmin, s_tmax)
        x_hat, sigma_hat = _raise_noise(x, sigmas[i], gamma, s_noise, generator)
        denoised = D(x_hat, sigma_hat)
        d = (x_hat - denoised) / sigma_hat  # the slope dx̄/dσ̄ at σ̂
        if callback is not None:
            callback(i, sigmas[i], x_hat, denoised)
        x = x_hat + d * (sigmas[i + 1] - sigma_hat)
    return x


@torch.no_grad()
def sample_heun(
    denoiser: Denoiser, x: Tensor, sigmas: Tensor, *, generator: torch.Generator | None = None,
    callback: Callback | None = None, churn: float = 0.0, s_tmin: float = 0.0, s_tmax: float = math.inf,
    s_noise: float = 1.0, progress: bool = False, **cond: Any,
) -> Tensor:
    """EDM's Heun sampler: an Euler step, then the trapezoid rule with the slope at its end point.

    Second order; two evaluations per step except the last step to σ = 0, which stays an Euler step.
    ``churn > 0`` adds EDM's stochasticity (Algorithm 2); ``churn = 0`` is the deterministic Algorithm 1.
    ``x``: shape ``(B, ...)``; ``sigmas``: ``(N + 1,)``; returns the shape of ``x``; builds no autograd graph.

    Reference: Karras et al. (2022), Algorithms 1 and 2.
    """
    _check_churn(churn, s_tmin, s_tmax, s_noise)
    sig, D = _prepare(denoiser, x, sigmas, cond)
    n = len(sig) - 1
    for i in trange(n, disable=not progress, desc="Heun", leave=False):
        gamma = _gamma(sig[i], n, churn, s_tmin, s_tmax)
        x_hat, sigma_hat = _raise_noise(x, sigmas[i], gamma, s_noise, generator)
        denoised = D(x_hat, sigma_hat)
        d = (x_hat - denoised) / sigma_hat
        if callback is not None:
            callback(i, sigmas[i], x_hat, denoised)
        dt = sigmas[i + 1] - sigma_hat
        x = x_hat + d * dt
        if sig[i + 1] != 0.0:  # second-order correction (Algorithm 2, lines 9–11)
            d_prime = (x - D(x, sigmas[i + 1])) / sigmas[i + 1]
            x = x_hat + 0.5 * (d + d_prime) * dt
    return x


@torch.no_grad()
def sample_ddim(
    denoiser: Denoiser, x: Tensor, sigmas: Tensor, *, eta: float = 0.0, generator: torch.Generator | None = None,
    callback: Callback | None = None, progress: bool = False, **cond: Any,
) -> Tensor:
    """DDIM (Song, Meng & Ermon 2021, eq. 12) in VP form with ``ᾱ = 1/(1 + σ̄²)``:
    ``x_s = sqrt(ᾱ_s) x̂₀ + sqrt(1 - ᾱ_s - c²) ε̂ + c z`` with
    ``c = η sqrt((1 - ᾱ_s)/(1 - ᾱ_t)) sqrt(1 - ᾱ_t/ᾱ_s)``. ``η = 0`` is deterministic; ``η = 1`` is DDPM.
    ``x``: shape ``(B, ...)``; ``sigmas``: ``(N + 1,)``; returns the shape of ``x``.

    Reference: Song, Meng & Ermon (2021), Eq. 12.
    """
    check_real(eta, "eta", nonnegative=True)
    sig, D = _prepare(denoiser, x, sigmas, cond)
    for i in trange(len(sig) - 1, disable=not progress, desc="DDIM", leave=False):
        s, s1 = sig[i], sig[i + 1]
        x0 = D(x, sigmas[i])
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


@torch.no_grad()
def sample_ddpm(
    denoiser: Denoiser, x: Tensor, sigmas: Tensor, *, variance: Literal["beta_tilde", "beta"] = "beta_tilde",
    generator: torch.Generator | None = None, callback: Callback | None = None, progress: bool = False, **cond: Any,
) -> Tensor:
    """DDPM ancestral sampling (Ho et al. 2020, Algorithm 2) through the posterior ``q(x_{t-1} | x_t, x̂₀)``:
    mean ``sqrt(ᾱ_{t-1}) β_t/(1 - ᾱ_t) x̂₀ + sqrt(α_t)(1 - ᾱ_{t-1})/(1 - ᾱ_t) x_t`` (eq. 7) and variance
    ``β̃_t = β_t (1 - ᾱ_{t-1})/(1 - ᾱ_t)`` or ``β_t``. ``β_t = 1 - ᾱ_t/ᾱ_{t-1}`` is read off the grid, so
    skipped ("respaced") grids work too. No noise is added on the final step. ``x``: shape ``(B, ...)``;
    ``sigmas``: ``(N + 1,)``; returns the shape of ``x``.

    Reference: Ho et al. (2020), Algorithm 2 and Eqs. 6–7.
    """
    if variance not in ("beta_tilde", "beta"):
        raise ValueError(f"variance must be 'beta_tilde' or 'beta', got {variance!r}")
    sig, D = _prepare(denoiser, x, sigmas, cond)
    for i in trange(len(sig) - 1, disable=not progress, desc="DDPM", leave=False):
        s, s1 = sig[i], sig[i + 1]
        x0 = D(x, sigmas[i])
        if callback is not None:
            callback(i, sigmas[i], x, x0)
        abar, abar1 = 1.0 / (1.0 + s * s), 1.0 / (1.0 + s1 * s1)
        beta = (s * s - s1 * s1) * abar  # β_t = 1 - ᾱ_t/ᾱ_{t-1}
        # 1 - ᾱ = σ̄² ᾱ is accurate at small σ̄, where 1 - ᾱ would cancel
        c0, ct, beta_tilde = ddpm_posterior(beta, abar1, s * s * abar, s1 * s1 * abar1)
        x = c0 * x0 + (ct * math.sqrt(abar)) * x  # the posterior mean, with x_t = √ᾱ_t x̄ in VP variables
        if s1 > 0:
            x = x + math.sqrt(beta_tilde if variance == "beta_tilde" else beta) * _randn(x, generator)
        x = x / math.sqrt(abar1)
    return x


@torch.no_grad()
def sample_euler_maruyama(
    denoiser: Denoiser, x: Tensor, sigmas: Tensor, *, generator: torch.Generator | None = None,
    callback: Callback | None = None, progress: bool = False, **cond: Any,
) -> Tensor:
    """Euler–Maruyama on the reverse-time SDE of the VE-equivalent process ``dx̄ = sqrt(dσ̄²/dt) dW``
    (Song et al. 2021, eq. 6 and §4): ``x̄ ← x̄ + (σ̄² - σ̄'²) ∇log p + sqrt(σ̄² - σ̄'²) z`` with
    ``∇log p = (D - x̄)/σ̄²``. The final step to σ̄ = 0 returns the denoised mean (no noise).
    ``x``: shape ``(B, ...)``; ``sigmas``: ``(N + 1,)``; returns the shape of ``x``.

    Reference: Song et al. (2021), Eq. 6 and §4.
    """
    sig, D = _prepare(denoiser, x, sigmas, cond)
    for i in trange(len(sig) - 1, disable=not progress, desc="Euler-Maruyama", leave=False):
        s, s1 = sig[i], sig[i + 1]
        x0 = D(x, sigmas[i])
        if callback is not None:
            callback(i, sigmas[i], x, x0)
        if s1 == 0.0:
            x = x0
        else:
            x = x + (1.0 - (s1 * s1) / (s * s)) * (x0 - x) + math.sqrt(s * s - s1 * s1) * _randn(x, generator)
    return x


@torch.no_grad()
def sample_dpmpp_2m(
    denoiser: Denoiser, x: Tensor, sigmas: Tensor, *, generator: torch.Generator | None = None,
    callback: Callback | None = None, progress: bool = False, **cond: Any,
) -> Tensor:
    """DPM-Solver++(2M) (Lu et al. 2022, "DPM-Solver++", Algorithm 2): a second-order multistep exponential
    integrator in ``λ = -log σ̄`` on the data prediction. The first and last steps are first order
    (DPM-Solver++1, which equals DDIM). ``generator`` is unused (deterministic). ``x``: shape ``(B, ...)``;
    ``sigmas``: ``(N + 1,)``; returns the shape of ``x``.

    Reference: Lu et al. (2022), "DPM-Solver++", Algorithm 2.
    """
    sig, D = _prepare(denoiser, x, sigmas, cond)
    old_x0: Tensor | None = None
    h_last = 0.0
    for i in trange(len(sig) - 1, disable=not progress, desc="DPM-Solver++(2M)", leave=False):
        s, s1 = sig[i], sig[i + 1]
        x0 = D(x, sigmas[i])
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


@torch.no_grad()
def sample_flow_euler(
    denoiser: Denoiser, x: Tensor, sigmas: Tensor, *, generator: torch.Generator | None = None,
    callback: Callback | None = None, progress: bool = False, **cond: Any,
) -> Tensor:
    """Euler on the flow-matching ODE ``dz/dt = û = ε̂ - x̂₀`` of the linear path ``z = (1 - t) x₀ + t ε``
    (Liu et al. 2023; Lipman et al. 2023), with ``t = σ̄/(1 + σ̄)`` and ``z = x̄/(1 + σ̄)``.
    Reproduces DDIM(η = 0) step for step (a theorem of Chapter 7). ``x``: shape ``(B, ...)``;
    ``sigmas``: ``(N + 1,)``; returns the shape of ``x``.

    Reference: Liu et al. (2023); Lipman et al. (2023), Eq. 23 (the linear path).
    """
    sig, D = _prepare(denoiser, x, sigmas, cond)
    for i in trange(len(sig) - 1, disable=not progress, desc="flow Euler", leave=False):
        s, s1 = sig[i], sig[i + 1]
        x0 = D(x, sigmas[i])
        if callback is not None:
            callback(i, sigmas[i], x, x0)
        t, t1 = s / (1.0 + s), s1 / (1.0 + s1)
        z = x / (1.0 + s)
        velocity = (z - x0) / t  # ε̂ - x̂₀, since z = (1 - t) x̂₀ + t ε̂
        x = (z + (t1 - t) * velocity) * (1.0 + s1)
    return x
