"""Parameterisations: exact conversions between ε, x₀, v, score and flow velocity, and the adapters that
turn a network predicting any of them into the one denoiser contract ``denoiser(x, sigma, **cond) -> x0_hat``.

Conventions. A noisy point is ``x = α x₀ + σ ε``. The *denoiser* works in the VE-equivalent variables
``x̄ = x/α = x₀ + σ̄ ε`` with ``σ̄ = σ/α`` (Karras et al. 2022, §2), so one sampler serves every schedule.
The targets are

* ε (Ho et al. 2020), x₀, score ``∇log p(x) = -E[ε|x]/σ`` (Song et al. 2021; Vincent 2011),
* ``v = α ε - σ x₀`` (Salimans & Ho 2022, §4; exact for any α, σ below),
* flow velocity ``u = α̇ x₀ + σ̇ ε`` (Lipman et al. 2023; Liu et al. 2023), the time derivative of the path.

Every conversion below is an algebraic identity, tested to round-off in ``tests/test_param.py``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import torch
from torch import Tensor, nn

from diffbook._checks import check_callable, check_levels, check_real, check_schedule, check_state, per_sample
from diffbook.schedules import Schedule, time_derivative

__all__ = [
    "Denoiser",
    "x0_from_eps",
    "eps_from_x0",
    "score_from_eps",
    "eps_from_score",
    "x0_from_score",
    "v_from_x0_eps",
    "x0_from_v",
    "eps_from_v",
    "velocity_from_x0_eps",
    "x0_from_velocity",
    "Precond",
    "EpsPrecond",
    "X0Precond",
    "VPrecond",
    "ScorePrecond",
    "VelocityPrecond",
    "EDMPrecond",
    "Preconditioned",
    "denoiser_to_score",
    "denoiser_to_eps",
]

Denoiser = Callable[..., Tensor]
"""``denoiser(x, sigma, **cond) -> x0_hat``: ``x`` of shape ``(n, ...)`` in VE-equivalent variables, ``sigma``
a scalar or shape ``(n,)`` tensor of VE-equivalent noise levels σ̄; returns E[x₀ | x] (or an estimate)."""


# ---------------------------------------------------------------------------------------------------
# Pure conversions. alpha, sigma (and their derivatives) are scalars or tensors broadcastable with x.
# Reference for all of them: Kingma et al. (2021), App. A; Salimans & Ho (2022), §4 and App. D.


def _check(**named: object) -> None:
    """The conversions are pure algebra (the book also runs them on SymPy symbols), so only what cannot be a
    quantity is refused: ``None``, strings, booleans and integer tensors (whose division would truncate)."""
    for name, value in named.items():
        if value is None or isinstance(value, (str, bytes, bool)):
            raise TypeError(f"{name} must be a tensor or a number, got {type(value).__name__}")
        if isinstance(value, Tensor) and not value.is_floating_point():
            raise TypeError(f"{name} must be a floating-point tensor, got dtype {value.dtype}")


def x0_from_eps(x: Tensor, eps: Tensor, alpha: Tensor | float, sigma: Tensor | float) -> Tensor:
    """``x₀ = (x - σ ε)/α``. Ill-conditioned as ``α → 0``.

    Tensors shaped ``(n, ...)``; ``alpha``, ``sigma`` scalars or tensors broadcastable with them; returns that shape.

    Reference: Ho et al. (2020), Eq. 4 (solved for x₀).
    """
    _check(x=x, eps=eps, alpha=alpha, sigma=sigma)
    return (x - sigma * eps) / alpha


def eps_from_x0(x: Tensor, x0: Tensor, alpha: Tensor | float, sigma: Tensor | float) -> Tensor:
    """``ε = (x - α x₀)/σ``.

    Tensors shaped ``(n, ...)``; ``alpha``, ``sigma`` scalars or tensors broadcastable with them; returns that shape.

    Reference: Ho et al. (2020), Eq. 4 (solved for ε).
    """
    _check(x=x, x0=x0, alpha=alpha, sigma=sigma)
    return (x - alpha * x0) / sigma


def score_from_eps(eps: Tensor, sigma: Tensor | float) -> Tensor:
    """``∇log p = -ε/σ`` (for the optimal ε this is exact: E[ε|x] = -σ ∇log p(x)).

    Tensors shaped ``(n, ...)``; ``sigma`` scalars or tensors broadcastable with them; returns that shape.

    Reference: Song et al. (2021), §3.2 and Eq. 7 (the Gaussian score).
    """
    _check(eps=eps, sigma=sigma)
    return -eps / sigma


def eps_from_score(score: Tensor, sigma: Tensor | float) -> Tensor:
    """``ε = -σ ∇log p``.

    Tensors shaped ``(n, ...)``; ``sigma`` scalars or tensors broadcastable with them; returns that shape.

    Reference: Song et al. (2021), §3.2 and Eq. 7 (the Gaussian score).
    """
    _check(score=score, sigma=sigma)
    return -sigma * score


def x0_from_score(x: Tensor, score: Tensor, alpha: Tensor | float, sigma: Tensor | float) -> Tensor:
    """Tweedie's formula ``E[x₀|x] = (x + σ² ∇log p(x))/α`` (Efron 2011, eq. 1.4).

    Tensors shaped ``(n, ...)``; ``alpha``, ``sigma`` scalars or tensors broadcastable with them; returns that shape.

    Reference: Efron (2011), Eq. 1.4.
    """
    _check(x=x, score=score, alpha=alpha, sigma=sigma)
    return (x + sigma**2 * score) / alpha


def v_from_x0_eps(x0: Tensor, eps: Tensor, alpha: Tensor | float, sigma: Tensor | float) -> Tensor:
    """``v = α ε - σ x₀`` (Salimans & Ho 2022).

    Tensors shaped ``(n, ...)``; ``alpha``, ``sigma`` scalars or tensors broadcastable with them; returns that shape.

    Reference: Salimans & Ho (2022), §4.
    """
    _check(x0=x0, eps=eps, alpha=alpha, sigma=sigma)
    return alpha * eps - sigma * x0


def x0_from_v(x: Tensor, v: Tensor, alpha: Tensor | float, sigma: Tensor | float) -> Tensor:
    """``x₀ = (α x - σ v)/(α² + σ²)``; for VP paths (``α² + σ² = 1``) this is ``α x - σ v``.

    Tensors shaped ``(n, ...)``; ``alpha``, ``sigma`` scalars or tensors broadcastable with them; returns that shape.

    Reference: Salimans & Ho (2022), §4 and App. D.
    """
    _check(x=x, v=v, alpha=alpha, sigma=sigma)
    return (alpha * x - sigma * v) / (alpha**2 + sigma**2)


def eps_from_v(x: Tensor, v: Tensor, alpha: Tensor | float, sigma: Tensor | float) -> Tensor:
    """``ε = (σ x + α v)/(α² + σ²)``.

    Tensors shaped ``(n, ...)``; ``alpha``, ``sigma`` scalars or tensors broadcastable with them; returns that shape.

    Reference: Salimans & Ho (2022), §4 and App. D.
    """
    _check(x=x, v=v, alpha=alpha, sigma=sigma)
    return (sigma * x + alpha * v) / (alpha**2 + sigma**2)


def velocity_from_x0_eps(x0: Tensor, eps: Tensor, dalpha: Tensor | float, dsigma: Tensor | float) -> Tensor:
    """``u = α̇ x₀ + σ̇ ε``, the conditional flow-matching velocity; ``ε - x₀`` for the linear path.

    Tensors shaped ``(n, ...)``; ``dalpha``, ``dsigma`` scalars or tensors broadcastable with them; returns that shape.

    Reference: Lipman et al. (2023), §4.1.
    """
    _check(x0=x0, eps=eps, dalpha=dalpha, dsigma=dsigma)
    return dalpha * x0 + dsigma * eps


def x0_from_velocity(
    x: Tensor, u: Tensor, alpha: Tensor | float, sigma: Tensor | float, dalpha: Tensor | float, dsigma: Tensor | float
) -> Tensor:
    """Solve ``x = α x₀ + σ ε``, ``u = α̇ x₀ + σ̇ ε`` for ``x₀ = (σ̇ x - σ u)/(α σ̇ - σ α̇)``.

    Tensors shaped ``(n, ...)``; ``alpha``, ``sigma``, ``dalpha``, ``dsigma`` scalars or tensors broadcastable
    with them; returns that shape.

    Reference: Lipman et al. (2023), §4.1; Kingma et al. (2021), App. A.
    """
    _check(x=x, u=u, alpha=alpha, sigma=sigma, dalpha=dalpha, dsigma=dsigma)
    return (dsigma * x - sigma * u) / (alpha * dsigma - sigma * dalpha)


# ---------------------------------------------------------------------------------------------------
# Preconditioning: D(x̄; σ̄) = c_skip x̄ + c_out F(c_in x̄; c_noise)   (Karras et al. 2022, eq. 7 and Table 1)


class Precond(Protocol):
    """The four coefficients of a parameterisation, as functions of the VE-equivalent noise level σ̄.

    Reference: Karras et al. (2022), Eq. 7 and Table 1.
    """

    def coefficients(self, sigma: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """``(c_skip, c_out, c_in, c_noise)``, each shaped like ``sigma``."""
        ...


def _check_precond(schedule: object, time_scale: object) -> None:
    check_schedule(schedule)
    check_real(time_scale, "time_scale", positive=True)


def _alpha_sigma(schedule: Schedule, sbar: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    t = schedule.t_of_sigma_bar(sbar)
    return t, schedule.alpha(t), schedule.sigma(t)


@dataclass(frozen=True)
class EpsPrecond:
    """A network trained to predict ε from ``x = α x₀ + σ ε`` and time ``t`` (scaled by ``time_scale``,
    e.g. 1000 for DDPM's integer time steps): ``x₀ = x̄ - σ̄ ε̂``.

    ``coefficients(sigma)`` takes σ̄ of shape ``(n,)`` and returns four tensors of that shape.

    Reference: Ho et al. (2020), Eq. 11; Karras et al. (2022), Table 1 (VP column).
    """

    schedule: Schedule
    time_scale: float = 1.0

    def __post_init__(self) -> None:
        _check_precond(self.schedule, self.time_scale)

    def coefficients(self, sigma: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        t, alpha, _ = _alpha_sigma(self.schedule, sigma)
        return torch.ones_like(sigma), -sigma, alpha, self.time_scale * t


@dataclass(frozen=True)
class X0Precond:
    """A network that predicts x₀ directly from ``x = α x₀ + σ ε``.

    ``coefficients(sigma)`` takes σ̄ of shape ``(n,)`` and returns four tensors of that shape.

    Reference: Karras et al. (2022), Eq. 7 (c_skip = 0, c_out = 1).
    """

    schedule: Schedule
    time_scale: float = 1.0

    def __post_init__(self) -> None:
        _check_precond(self.schedule, self.time_scale)

    def coefficients(self, sigma: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        t, alpha, _ = _alpha_sigma(self.schedule, sigma)
        return torch.zeros_like(sigma), torch.ones_like(sigma), alpha, self.time_scale * t


@dataclass(frozen=True)
class VPrecond:
    """A v-prediction network: ``x₀ = (α x - σ v̂)/(α² + σ²)`` with ``x = α x̄``.

    ``coefficients(sigma)`` takes σ̄ of shape ``(n,)`` and returns four tensors of that shape.

    Reference: Salimans & Ho (2022), §4 and App. D.
    """

    schedule: Schedule
    time_scale: float = 1.0

    def __post_init__(self) -> None:
        _check_precond(self.schedule, self.time_scale)

    def coefficients(self, sigma: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        t, alpha, sig = _alpha_sigma(self.schedule, sigma)
        norm = alpha**2 + sig**2
        return alpha**2 / norm, -sig / norm, alpha, self.time_scale * t


@dataclass(frozen=True)
class ScorePrecond:
    """A score network ``ŝ(x, t) ≈ ∇log p_t(x)``: Tweedie gives ``x₀ = x̄ + (σ²/α) ŝ``.

    ``coefficients(sigma)`` takes σ̄ of shape ``(n,)`` and returns four tensors of that shape.

    Reference: Song et al. (2021), Eq. 7; Efron (2011), Eq. 1.4 (Tweedie).
    """

    schedule: Schedule
    time_scale: float = 1.0

    def __post_init__(self) -> None:
        _check_precond(self.schedule, self.time_scale)

    def coefficients(self, sigma: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        t, alpha, sig = _alpha_sigma(self.schedule, sigma)
        return torch.ones_like(sigma), sig**2 / alpha, alpha, self.time_scale * t


@dataclass(frozen=True)
class VelocityPrecond:
    """A flow-matching network ``û(x, t) ≈ α̇ x₀ + σ̇ ε``; for the linear path ``x₀ = x - t û``.

    ``coefficients(sigma)`` takes σ̄ of shape ``(n,)`` and returns four tensors of that shape.

    Reference: Lipman et al. (2023), §4.1; Liu et al. (2023), Eq. 1.
    """

    schedule: Schedule
    time_scale: float = 1.0

    def __post_init__(self) -> None:
        _check_precond(self.schedule, self.time_scale)

    def coefficients(self, sigma: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        t = self.schedule.t_of_sigma_bar(sigma)
        alpha, dalpha = time_derivative(self.schedule.alpha, t)
        sig, dsig = time_derivative(self.schedule.sigma, t)
        det = alpha * dsig - sig * dalpha
        # x₀ = (σ̇ x - σ û)/det with x = α x̄
        return alpha * dsig / det, -sig / det, alpha, self.time_scale * t


@dataclass(frozen=True)
class EDMPrecond:
    """EDM's preconditioning (Karras et al. 2022, Table 1): unit-variance input and target for data of
    standard deviation ``sigma_data``; ``c_noise = ¼ log σ``. Defined for ``σ > 0`` only.

    ``coefficients(sigma)`` takes σ̄ of shape ``(n,)`` and returns four tensors of that shape.

    Reference: Karras et al. (2022), Table 1 and App. B.6.
    """

    sigma_data: float = 0.5

    def __post_init__(self) -> None:
        check_real(self.sigma_data, "sigma_data", positive=True)

    def coefficients(self, sigma: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        check_levels(sigma, "sigma")  # c_noise = ¼ log σ and c_out vanish at σ = 0
        sd2 = self.sigma_data**2
        denom = sigma**2 + sd2
        return sd2 / denom, sigma * self.sigma_data / denom.sqrt(), 1.0 / denom.sqrt(), 0.25 * torch.log(sigma)


class Preconditioned(nn.Module):
    """The denoiser ``D(x̄; σ̄) = c_skip x̄ + c_out F(c_in x̄, c_noise, **cond)`` around a network ``F``.

    ``F(x, noise_level, **cond)`` takes a batch ``(n, ...)`` and a noise level of shape ``(n,)``. The
    coefficients are computed in float32 or float64 (never bf16), as DESIGN §8 asks of schedule math.

    ``forward(x, sigma, **cond)``: ``x`` of shape ``(n, ...)``, ``sigma`` a scalar or shape ``(n,)``; returns the
    shape of ``x``.

    Reference: Karras et al. (2022), Eq. 7.
    """

    def __init__(self, net: nn.Module, precond: Precond) -> None:
        super().__init__()
        self.net = net
        self.precond = precond

    def forward(self, x: Tensor, sigma: Tensor | float, **cond: Any) -> Tensor:
        check_state(x, "x")
        if x.ndim < 1:
            raise ValueError(f"x must have shape (n, ...), got {tuple(x.shape)}")
        coef_dtype = torch.promote_types(x.dtype, torch.float32)
        s = per_sample(sigma, x, "sigma", expand=True, dtype=coef_dtype)
        c_skip, c_out, c_in, c_noise = self.precond.coefficients(s.reshape(-1))
        out = self.net(x * per_sample(c_in, x), c_noise.to(x.dtype), **cond)
        return per_sample(c_skip, x) * x + per_sample(c_out, out) * out


# ---------------------------------------------------------------------------------------------------
# From a denoiser back to the quantities the SDE view uses


def denoiser_to_score(denoiser: Denoiser, schedule: Schedule) -> Callable[[Tensor, Tensor], Tensor]:
    """``score(x, t) = ∇log p_t(x) = (α D(x/α; σ/α) - x)/σ²`` in the original variables of ``schedule``.

    The returned ``score(x, t)`` takes ``x`` of shape ``(n, ...)`` and ``t`` a scalar or shape ``(n,)``, and returns
    the shape of ``x``.

    Reference: Karras et al. (2022), Eq. 3 and §2; Efron (2011), Eq. 1.4 (Tweedie).
    """
    check_callable(denoiser, "denoiser", "denoiser(x, sigma)")
    check_schedule(schedule)

    def score(x: Tensor, t: Tensor) -> Tensor:
        check_state(x, "x")
        t = torch.as_tensor(t, dtype=x.dtype, device=x.device)
        alpha, sigma = schedule.alpha(t), schedule.sigma(t)
        a, s = per_sample(alpha, x, "alpha(t)"), per_sample(sigma, x, "sigma(t)")
        sbar = sigma / alpha
        return (a * denoiser(x / a, sbar.expand(x.shape[0]) if sbar.ndim == 0 else sbar) - x) / s**2

    return score


def denoiser_to_eps(denoiser: Denoiser) -> Callable[..., Tensor]:
    """``ε̂(x̄, σ̄) = (x̄ - D(x̄; σ̄))/σ̄``: the noise estimate in VE-equivalent variables.

    The returned ``eps(x, sigma, **cond)`` takes ``x`` of shape ``(n, ...)`` and ``sigma`` a scalar or shape
    ``(n,)``, and returns the shape of ``x``.

    Reference: Karras et al. (2022), §2 and Table 1 (ε-prediction as a denoiser).
    """
    check_callable(denoiser, "denoiser", "denoiser(x, sigma, **cond)")

    def eps(x: Tensor, sigma: Tensor, **cond: Any) -> Tensor:
        check_state(x, "x")
        sigma = torch.as_tensor(sigma, dtype=x.dtype, device=x.device)
        return (x - denoiser(x, sigma, **cond)) / per_sample(sigma, x, "sigma")

    return eps
