"""Noise schedules: the Gaussian paths ``x_t = α_t x_0 + σ_t ε`` and the noise-level grids samplers walk.

Every continuous schedule is a frozen dataclass with three pure methods of a time tensor ``t ∈ [0, 1]``:
``alpha(t)``, ``sigma(t)`` and the inverse ``t_of_sigma_bar(s)`` of the *VE-equivalent noise level*
``σ̄ = σ/α``. Dividing by ``α`` turns any Gaussian path into the variance-exploding path
``x̄ = x/α = x_0 + σ̄ ε`` (Karras et al. 2022, "Elucidating the Design Space", §2), which is why every
sampler in :mod:`diffbook.samplers` works with ``σ̄`` alone.

References: Ho et al. 2020 (DDPM, linear β); Song et al. 2021 (VP/VE/sub-VP SDEs, eqs. 9–11);
Nichol & Dhariwal 2021 (cosine schedule, eq. 17); Karras et al. 2022 (σ grid, eq. 5);
Kingma et al. 2021 (log-SNR); Liu et al. 2023 and Lipman et al. 2023 (linear flow path).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import torch
from torch import Tensor

__all__ = [
    "Schedule",
    "VPLinear",
    "VPCosine",
    "VE",
    "SubVP",
    "EDM",
    "FlowLinear",
    "sigma_bar",
    "log_snr",
    "linear_betas",
    "cosine_betas",
    "alphas_cumprod",
    "ddpm_sigmas",
    "karras_sigmas",
    "schedule_sigmas",
    "time_derivative",
]


class Schedule(Protocol):
    """A Gaussian path ``x_t = α_t x_0 + σ_t ε`` for ``t ∈ [0, 1]``."""

    def alpha(self, t: Tensor) -> Tensor: ...

    def sigma(self, t: Tensor) -> Tensor: ...

    def t_of_sigma_bar(self, s: Tensor) -> Tensor: ...


def _as_t(t: Tensor | float) -> Tensor:
    t = torch.as_tensor(t)
    return t if t.is_floating_point() else t.to(torch.get_default_dtype())


@dataclass(frozen=True)
class VPLinear:
    """Variance preserving with linear ``β(t) = β_min + t (β_max - β_min)`` (Song et al. 2021, eq. 11).

    ``α_t = exp(-½ ∫_0^t β)``, ``σ_t = sqrt(1 - α_t²)``. The defaults are the continuous limit of DDPM's
    linear β from 1e-4 to 0.02 over 1000 steps (``β(t) Δt = β_t`` with ``Δt = 1/1000``).
    """

    beta_min: float = 0.1
    beta_max: float = 20.0

    def beta(self, t: Tensor) -> Tensor:
        return self.beta_min + _as_t(t) * (self.beta_max - self.beta_min)

    def log_alpha(self, t: Tensor) -> Tensor:
        t = _as_t(t)
        return -0.5 * (self.beta_min * t + 0.5 * (self.beta_max - self.beta_min) * t * t)

    def alpha(self, t: Tensor) -> Tensor:
        return torch.exp(self.log_alpha(t))

    def sigma(self, t: Tensor) -> Tensor:
        return torch.sqrt(self.sigma_squared(t))

    def sigma_squared(self, t: Tensor) -> Tensor:
        """``σ_t² = 1 - α_t²`` without a square root, so its derivative exists at ``t = 0``."""
        return -torch.expm1(2.0 * self.log_alpha(t))

    def t_of_sigma_bar(self, s: Tensor) -> Tensor:
        # σ̄² = 1/α² - 1, so ∫β = log(1 + σ̄²): solve the quadratic ½Δβ t² + β_min t - log(1 + σ̄²) = 0
        c = torch.log1p(_as_t(s) ** 2)
        d = self.beta_max - self.beta_min
        if d == 0:
            return c / self.beta_min
        return (torch.sqrt(self.beta_min**2 + 2.0 * d * c) - self.beta_min) / d


@dataclass(frozen=True)
class VPCosine:
    """Variance preserving with ``α_t = cos(π/2 (t + s)/(1 + s)) / cos(π/2 s/(1 + s))`` (Nichol & Dhariwal 2021).

    ``α_1`` is exactly 0 (infinite σ̄); use ``t_max < 1`` for grids.
    """

    s: float = 0.008

    def _f0(self) -> float:
        return math.cos(0.5 * math.pi * self.s / (1.0 + self.s))

    def alpha(self, t: Tensor) -> Tensor:
        return torch.cos(0.5 * math.pi * (_as_t(t) + self.s) / (1.0 + self.s)) / self._f0()

    def sigma(self, t: Tensor) -> Tensor:
        return torch.sqrt(self.sigma_squared(t))

    def sigma_squared(self, t: Tensor) -> Tensor:
        """``σ_t² = 1 - α_t²`` without a square root, so its derivative exists at ``t = 0``."""
        return (1.0 - self.alpha(t) ** 2).clamp_min(0.0)

    def t_of_sigma_bar(self, s: Tensor) -> Tensor:
        a = 1.0 / torch.sqrt(1.0 + _as_t(s) ** 2)
        return torch.arccos(a * self._f0()) * 2.0 * (1.0 + self.s) / math.pi - self.s


@dataclass(frozen=True)
class VE:
    """Variance exploding, ``σ(t) = σ_min (σ_max/σ_min)^t``, ``α = 1`` (Song et al. 2021, eq. 9)."""

    sigma_min: float = 0.01
    sigma_max: float = 50.0

    def alpha(self, t: Tensor) -> Tensor:
        return torch.ones_like(_as_t(t))

    def sigma(self, t: Tensor) -> Tensor:
        return self.sigma_min * (self.sigma_max / self.sigma_min) ** _as_t(t)

    def t_of_sigma_bar(self, s: Tensor) -> Tensor:
        return torch.log(_as_t(s) / self.sigma_min) / math.log(self.sigma_max / self.sigma_min)


@dataclass(frozen=True)
class SubVP:
    """Sub-VP: VP's ``α_t`` with ``σ_t = 1 - α_t²`` (Song et al. 2021, eq. 11, variance ``(1 - e^{-∫β})²``)."""

    beta_min: float = 0.1
    beta_max: float = 20.0

    def alpha(self, t: Tensor) -> Tensor:
        return VPLinear(self.beta_min, self.beta_max).alpha(t)

    def sigma(self, t: Tensor) -> Tensor:
        return -torch.expm1(2.0 * VPLinear(self.beta_min, self.beta_max).log_alpha(t))

    def t_of_sigma_bar(self, s: Tensor) -> Tensor:
        # σ̄ = (1 - a²)/a with a = α: solve a² s + a... i.e. a = (sqrt(s² + 4) - s)/2, then invert α
        s = _as_t(s)
        a = 0.5 * (torch.sqrt(s * s + 4.0) - s)
        return VPLinear(self.beta_min, self.beta_max).t_of_sigma_bar(torch.sqrt(1.0 / (a * a) - 1.0))


@dataclass(frozen=True)
class EDM:
    """The EDM path ``α = 1``, ``σ(t) = t`` (Karras et al. 2022, Table 1): time *is* the noise level."""

    def alpha(self, t: Tensor) -> Tensor:
        return torch.ones_like(_as_t(t))

    def sigma(self, t: Tensor) -> Tensor:
        return _as_t(t)

    def t_of_sigma_bar(self, s: Tensor) -> Tensor:
        return _as_t(s)


@dataclass(frozen=True)
class FlowLinear:
    """The linear (rectified-flow) path ``α = 1 - t``, ``σ = t`` (Liu et al. 2023; Lipman et al. 2023)."""

    def alpha(self, t: Tensor) -> Tensor:
        return 1.0 - _as_t(t)

    def sigma(self, t: Tensor) -> Tensor:
        return _as_t(t)

    def t_of_sigma_bar(self, s: Tensor) -> Tensor:
        s = _as_t(s)
        return s / (1.0 + s)


def time_derivative(fn: Callable[[Tensor], Tensor], t: Tensor) -> tuple[Tensor, Tensor]:
    """``(fn(t), d fn/dt)`` for an elementwise function of time, by automatic differentiation.

    Lets every schedule define only ``α(t)`` and ``σ(t)``: drifts and velocities need ``α̇`` and ``σ̇``.
    """
    t = _as_t(t)
    with torch.enable_grad():
        tt = t.detach().requires_grad_(True)
        y = fn(tt)
        if not y.requires_grad:  # constant in t (e.g. α = 1 for VE)
            return y.detach(), torch.zeros_like(tt)
        (dy,) = torch.autograd.grad(y.sum(), tt)
    return y.detach(), dy


def sigma_bar(schedule: Schedule, t: Tensor) -> Tensor:
    """The VE-equivalent noise level ``σ̄_t = σ_t / α_t`` (Karras et al. 2022, §2)."""
    return schedule.sigma(t) / schedule.alpha(t)


def log_snr(schedule: Schedule, t: Tensor) -> Tensor:
    """``λ_t = log(α_t² / σ_t²)``, the log signal-to-noise ratio (Kingma et al. 2021, "Variational Diffusion Models")."""
    return 2.0 * (torch.log(schedule.alpha(t)) - torch.log(schedule.sigma(t)))


# ----------------------------------------------------------------------------------------------------
# Discrete DDPM tables


def linear_betas(n: int = 1000, beta_start: float = 1e-4, beta_end: float = 0.02) -> Tensor:
    """DDPM's linear β table, shape ``(n,)``, float64 (Ho et al. 2020, §4)."""
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive int, got {n!r}")
    if not 0.0 < beta_start <= beta_end < 1.0:
        raise ValueError(f"need 0 < beta_start <= beta_end < 1, got {beta_start}, {beta_end}")
    return torch.linspace(beta_start, beta_end, n, dtype=torch.float64)


def cosine_betas(n: int = 1000, s: float = 0.008, max_beta: float = 0.999) -> Tensor:
    """The cosine β table of Nichol & Dhariwal 2021 (eq. 17, β clipped at ``max_beta``), shape ``(n,)``."""
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive int, got {n!r}")
    t = torch.arange(n + 1, dtype=torch.float64) / n
    abar = VPCosine(s).alpha(t) ** 2
    return (1.0 - abar[1:] / abar[:-1]).clamp(max=max_beta)


def alphas_cumprod(betas: Tensor) -> Tensor:
    """``ᾱ_t = Π_{s ≤ t} (1 - β_s)``, shape of ``betas``."""
    if betas.ndim != 1 or not ((betas > 0) & (betas < 1)).all():
        raise ValueError("betas must be a 1-D tensor with entries in (0, 1)")
    return torch.cumprod(1.0 - betas, dim=0)


def ddpm_sigmas(betas: Tensor, timesteps: Tensor | None = None) -> Tensor:
    """The decreasing VE-equivalent grid ``σ̄_t = sqrt((1 - ᾱ_t)/ᾱ_t)`` over ``timesteps`` (default: all, from
    the last to the first) with a final 0 appended, shape ``(len(timesteps) + 1,)``.

    Samplers fed this grid step exactly through DDPM's discrete time steps.
    """
    abar = alphas_cumprod(betas)
    if timesteps is None:
        timesteps = torch.arange(len(betas) - 1, -1, -1)
    sig = torch.sqrt((1.0 - abar[timesteps]) / abar[timesteps])
    return torch.cat([sig, sig.new_zeros(1)])


# ----------------------------------------------------------------------------------------------------
# Sigma grids for samplers


def karras_sigmas(n: int, sigma_min: float = 0.002, sigma_max: float = 80.0, rho: float = 7.0) -> Tensor:
    """EDM's grid ``σ_i = (σ_max^{1/ρ} + i/(n-1) (σ_min^{1/ρ} - σ_max^{1/ρ}))^ρ`` plus a final 0, shape ``(n + 1,)``
    (Karras et al. 2022, eq. 5), float64."""
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive int, got {n!r}")
    if not 0.0 < sigma_min < sigma_max:
        raise ValueError(f"need 0 < sigma_min < sigma_max, got {sigma_min}, {sigma_max}")
    ramp = torch.linspace(0.0, 1.0, n, dtype=torch.float64)
    lo, hi = sigma_min ** (1.0 / rho), sigma_max ** (1.0 / rho)
    sig = (hi + ramp * (lo - hi)) ** rho
    return torch.cat([sig, sig.new_zeros(1)])


def schedule_sigmas(schedule: Schedule, n: int, t_max: float = 1.0, t_min: float = 1e-3) -> Tensor:
    """``σ̄`` at ``n`` uniformly spaced times from ``t_max`` down to ``t_min``, plus a final 0, shape ``(n + 1,)``."""
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive int, got {n!r}")
    if not 0.0 <= t_min < t_max <= 1.0:
        raise ValueError(f"need 0 <= t_min < t_max <= 1, got {t_min}, {t_max}")
    t = torch.linspace(t_max, t_min, n, dtype=torch.float64)
    sig = sigma_bar(schedule, t)
    return torch.cat([sig, sig.new_zeros(1)])
