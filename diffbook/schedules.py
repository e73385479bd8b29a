"""Noise schedules: the Gaussian paths ``x_t = α_t x_0 + σ_t ε`` and the noise-level grids samplers walk.

Every continuous schedule is a frozen dataclass with three pure methods of a time tensor ``t ∈ [0, 1]``:
``alpha(t)``, ``sigma(t)`` and the inverse ``t_of_sigma_bar(s)`` of the *VE-equivalent noise level*
``σ̄ = σ/α``. Dividing by ``α`` turns any Gaussian path into the variance-exploding path
``x̄ = x/α = x_0 + σ̄ ε`` (Karras et al. 2022, "Elucidating the Design Space", §2), which is why every
sampler in :mod:`diffbook.samplers` works with ``σ̄`` alone. The discrete DDPM tables (β, ᾱ, the posterior
coefficients, σ̄ at each step) live in :mod:`diffbook.ddpm_tables` and are re-exported here.

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

from diffbook._checks import as_level as _as_level
from diffbook._checks import as_time as _as_t
from diffbook._checks import check_callable, check_int, check_levels, check_real, check_schedule
from diffbook.ddpm_tables import (  # re-exported: the discrete tables are part of the schedules' public API
    alphas_cumprod,
    cosine_betas,
    ddpm_posterior,
    ddpm_reverse_variance,
    ddpm_sigmas,
    ddpm_tables,
    linear_betas,
)

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
    "ddpm_tables",
    "ddpm_posterior",
    "ddpm_reverse_variance",
    "ddpm_sigmas",
    "karras_sigmas",
    "schedule_sigmas",
    "time_derivative",
]


class Schedule(Protocol):
    """A Gaussian path ``x_t = α_t x_0 + σ_t ε`` for ``t ∈ [0, 1]``.

    Methods take ``t`` (or ``s`` = σ̄) as a number or a tensor of any shape and return that shape.

    Reference: Kingma et al. (2021), §2; Karras et al. (2022), §2 and Table 1.
    """

    def alpha(self, t: Tensor) -> Tensor: ...

    def sigma(self, t: Tensor) -> Tensor: ...

    def t_of_sigma_bar(self, s: Tensor) -> Tensor: ...


def _sigma_bar_arg(s: Tensor | float, name: str = "s") -> Tensor:
    s = _as_level(s, name)
    check_levels(s, f"{name} (a VE-equivalent noise level)", positive=False)
    return s


@dataclass(frozen=True)
class VPLinear:
    """Variance preserving with linear ``β(t) = β_min + t (β_max - β_min)`` (Song et al. 2021, eq. 11).

    ``α_t = exp(-½ ∫_0^t β)``, ``σ_t = sqrt(1 - α_t²)``. The defaults are the continuous limit of DDPM's
    linear β from 1e-4 to 0.02 over 1000 steps (``β(t) Δt = β_t`` with ``Δt = 1/1000``).

    Methods take ``t`` (or ``s`` = σ̄) as a number or a tensor of any shape and return that shape.

    Reference: Song et al. (2021), Eq. 11; Ho et al. (2020), §4 (the discrete β table).
    """

    beta_min: float = 0.1
    beta_max: float = 20.0

    def __post_init__(self) -> None:
        _check_beta_range(self.beta_min, self.beta_max)

    def beta(self, t: Tensor) -> Tensor:
        """``β(t)``, shape of ``t``."""
        return self.beta_min + _as_t(t, upper=None) * (self.beta_max - self.beta_min)

    def log_alpha(self, t: Tensor) -> Tensor:
        """``log α_t = -½ ∫_0^t β``, shape of ``t``.

        The formula holds for every ``t >= 0``, and it is needed past ``t = 1``: DDPM's discrete table reaches
        σ̄_T ≈ 157, just beyond the continuous σ̄(1) ≈ 152, so an ε-network on that table is queried at t ≈ 1.003.
        """
        t = _as_t(t, upper=None)
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
        c = torch.log1p(_sigma_bar_arg(s) ** 2)
        d = self.beta_max - self.beta_min
        if d == 0:
            return c / self.beta_min
        return (torch.sqrt(self.beta_min**2 + 2.0 * d * c) - self.beta_min) / d


@dataclass(frozen=True)
class VPCosine:
    """Variance preserving with ``α_t = cos(π/2 (t + s)/(1 + s)) / cos(π/2 s/(1 + s))`` (Nichol & Dhariwal 2021).

    ``α_1`` is exactly 0 (infinite σ̄); use ``t_max < 1`` for grids.

    Methods take ``t`` (or ``s`` = σ̄) as a number or a tensor of any shape and return that shape.

    Reference: Nichol & Dhariwal (2021), Eq. 17.
    """

    s: float = 0.008

    def __post_init__(self) -> None:
        check_real(self.s, "s", nonnegative=True)

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
        a = 1.0 / torch.sqrt(1.0 + _sigma_bar_arg(s) ** 2)
        return torch.arccos(a * self._f0()) * 2.0 * (1.0 + self.s) / math.pi - self.s


@dataclass(frozen=True)
class VE:
    """Variance exploding, ``σ(t) = σ_min (σ_max/σ_min)^t``, ``α = 1`` (Song et al. 2021, eq. 9).

    Methods take ``t`` (or ``s`` = σ̄) as a number or a tensor of any shape and return that shape.

    Reference: Song et al. (2021), Eq. 9 and §3.4.
    """

    sigma_min: float = 0.01
    sigma_max: float = 50.0

    def __post_init__(self) -> None:
        _check_sigma_range(self.sigma_min, self.sigma_max)

    def alpha(self, t: Tensor) -> Tensor:
        return torch.ones_like(_as_t(t, upper=None))

    def sigma(self, t: Tensor) -> Tensor:
        # the geometric formula holds for every t >= 0 (a noise level above σ_max maps past t = 1)
        return self.sigma_min * (self.sigma_max / self.sigma_min) ** _as_t(t, upper=None)

    def t_of_sigma_bar(self, s: Tensor) -> Tensor:
        return torch.log(_sigma_bar_arg(s) / self.sigma_min) / math.log(self.sigma_max / self.sigma_min)


@dataclass(frozen=True)
class SubVP:
    """Sub-VP: VP's ``α_t`` with ``σ_t = 1 - α_t²`` (Song et al. 2021, eq. 11, variance ``(1 - e^{-∫β})²``).

    Methods take ``t`` (or ``s`` = σ̄) as a number or a tensor of any shape and return that shape.

    Reference: Song et al. (2021), Eq. 11 and App. B.
    """

    beta_min: float = 0.1
    beta_max: float = 20.0

    def __post_init__(self) -> None:
        _check_beta_range(self.beta_min, self.beta_max)

    def alpha(self, t: Tensor) -> Tensor:
        return VPLinear(self.beta_min, self.beta_max).alpha(t)

    def sigma(self, t: Tensor) -> Tensor:
        return -torch.expm1(2.0 * VPLinear(self.beta_min, self.beta_max).log_alpha(t))

    def t_of_sigma_bar(self, s: Tensor) -> Tensor:
        # σ̄ = (1 - a²)/a with a = α: solve a² s + a... i.e. a = (sqrt(s² + 4) - s)/2, then invert α
        s = _sigma_bar_arg(s)
        a = 0.5 * (torch.sqrt(s * s + 4.0) - s)
        return VPLinear(self.beta_min, self.beta_max).t_of_sigma_bar(torch.sqrt(1.0 / (a * a) - 1.0))


@dataclass(frozen=True)
class EDM:
    """The EDM path ``α = 1``, ``σ(t) = t`` (Karras et al. 2022, Table 1): time *is* the noise level.

    Methods take ``t`` (or ``s`` = σ̄) as a number or a tensor of any shape and return that shape.

    Reference: Karras et al. (2022), Table 1.
    """

    def alpha(self, t: Tensor) -> Tensor:
        return torch.ones_like(_sigma_bar_arg(t, "t"))

    def sigma(self, t: Tensor) -> Tensor:
        return _sigma_bar_arg(t, "t")

    def t_of_sigma_bar(self, s: Tensor) -> Tensor:
        return _sigma_bar_arg(s)


@dataclass(frozen=True)
class FlowLinear:
    """The linear (rectified-flow) path ``α = 1 - t``, ``σ = t`` (Liu et al. 2023; Lipman et al. 2023).

    Methods take ``t`` (or ``s`` = σ̄) as a number or a tensor of any shape and return that shape.

    Reference: Liu et al. (2023), Eq. 1; Lipman et al. (2023), Eq. 23.
    """

    def alpha(self, t: Tensor) -> Tensor:
        return 1.0 - _as_t(t)

    def sigma(self, t: Tensor) -> Tensor:
        return _as_t(t)

    def t_of_sigma_bar(self, s: Tensor) -> Tensor:
        s = _sigma_bar_arg(s)
        return s / (1.0 + s)


def _check_beta_range(beta_min: float, beta_max: float) -> None:
    lo = check_real(beta_min, "beta_min", nonnegative=True)
    hi = check_real(beta_max, "beta_max", positive=True)
    if lo > hi:
        raise ValueError(f"need beta_min <= beta_max, got {beta_min}, {beta_max}")


def _check_sigma_range(sigma_min: float, sigma_max: float) -> None:
    lo = check_real(sigma_min, "sigma_min", positive=True)
    hi = check_real(sigma_max, "sigma_max", positive=True)
    if not lo < hi:
        raise ValueError(f"need 0 < sigma_min < sigma_max, got {sigma_min}, {sigma_max}")


def time_derivative(fn: Callable[[Tensor], Tensor], t: Tensor) -> tuple[Tensor, Tensor]:
    """``(fn(t), d fn/dt)`` for an elementwise function of time, by automatic differentiation.

    Lets every schedule define only ``α(t)`` and ``σ(t)``: drifts and velocities need ``α̇`` and ``σ̇``.
    ``t`` is a scalar or any shape; both results have the shape of ``fn(t)``.

    Reference: Baydin et al. (2018), §3 (reverse-mode automatic differentiation).
    """
    check_callable(fn, "fn", "fn(t)")
    t = _as_level(t, "t")
    with torch.enable_grad():
        tt = t.detach().requires_grad_(True)
        y = fn(tt)
        if not y.requires_grad:  # constant in t (e.g. α = 1 for VE)
            return y.detach(), torch.zeros_like(tt)
        (dy,) = torch.autograd.grad(y.sum(), tt)
    return y.detach(), dy


def sigma_bar(schedule: Schedule, t: Tensor) -> Tensor:
    """The VE-equivalent noise level ``σ̄_t = σ_t / α_t`` (Karras et al. 2022, §2), shape of ``t``.

    Reference: Karras et al. (2022), §2 and Eq. 4.
    """
    check_schedule(schedule)
    t = _as_t(t)  # the process lives on [0, 1], even where the schedule's formula extends past it
    return schedule.sigma(t) / schedule.alpha(t)


def log_snr(schedule: Schedule, t: Tensor) -> Tensor:
    """``λ_t = log(α_t² / σ_t²)``, the log signal-to-noise ratio, shape of ``t``
    (Kingma et al. 2021, "Variational Diffusion Models", eq. 3).

    Reference: Kingma et al. (2021), Eq. 3.
    """
    check_schedule(schedule)
    t = _as_t(t)
    return 2.0 * (torch.log(schedule.alpha(t)) - torch.log(schedule.sigma(t)))


# ----------------------------------------------------------------------------------------------------
# Sigma grids for samplers


def karras_sigmas(n: int, sigma_min: float = 0.002, sigma_max: float = 80.0, rho: float = 7.0) -> Tensor:
    """EDM's grid ``σ_i = (σ_max^{1/ρ} + i/(n-1) (σ_min^{1/ρ} - σ_max^{1/ρ}))^ρ`` plus a final 0, shape ``(n + 1,)``
    (Karras et al. 2022, eq. 5), float64.

    Reference: Karras et al. (2022), Eq. 5.
    """
    check_int(n, "n")
    _check_sigma_range(sigma_min, sigma_max)
    check_real(rho, "rho", positive=True)
    ramp = torch.linspace(0.0, 1.0, n, dtype=torch.float64)
    lo, hi = sigma_min ** (1.0 / rho), sigma_max ** (1.0 / rho)
    sig = (hi + ramp * (lo - hi)) ** rho
    return torch.cat([sig, sig.new_zeros(1)])


def schedule_sigmas(schedule: Schedule, n: int, t_max: float = 1.0, t_min: float = 1e-3) -> Tensor:
    """``σ̄`` at ``n`` uniformly spaced times from ``t_max`` down to ``t_min``, plus a final 0, shape ``(n + 1,)``.

    Reference: Song et al. (2021), §3.3 (uniform time grids of the SDE); Karras et al. (2022), §2 (σ̄ = σ/α).
    """
    check_schedule(schedule)
    check_int(n, "n")
    if not 0.0 <= check_real(t_min, "t_min") < check_real(t_max, "t_max") <= 1.0:
        raise ValueError(f"need 0 <= t_min < t_max <= 1, got {t_min}, {t_max}")
    t = torch.linspace(t_max, t_min, n, dtype=torch.float64)
    sig = sigma_bar(schedule, t)
    if not bool(torch.isfinite(sig).all()):
        raise ValueError(f"the schedule's σ̄ is infinite on [t_min, t_max] = [{t_min}, {t_max}] (α_t = 0?); "
                         "lower t_max")
    return torch.cat([sig, sig.new_zeros(1)])
