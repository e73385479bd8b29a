"""SDPM's 2-D diffusion target: standardised log time and a soft event indicator, and its decoding.

A subject's observed outcome ``(t, δ)`` becomes ``y₀ = (τ, z)`` with ``τ = (log t - μ)/σ`` (μ, σ the mean and
standard deviation of ``log t`` over all training rows, censored ones included) and ``z ~ N(±1, 0.25²)``
(``+1`` for an observed event, ``-1`` for a censored time), redrawn at every use so the network sees a
continuous target. Decoding is ``t̂ = exp(σ τ̂ + μ)`` (always positive) and ``δ̂ = 1[ẑ > 0]``.

Reference: Kirpichenko, Konstantinov & Utkin (2026), SDPM, §3 (target transform; from the released code).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = ["LogTimeTarget"]


@dataclass(frozen=True)
class LogTimeTarget:
    """The fitted transform ``t ↦ τ = (log t - mu)/sigma`` and the soft event indicator of width ``z_scale``."""

    mu: float
    sigma: float
    z_scale: float = 0.25

    @classmethod
    def fit(cls, time: Tensor, z_scale: float = 0.25) -> LogTimeTarget:
        """Fit μ, σ on the (positive) times of shape ``(n,)``; σ falls back to 1 when all times are equal."""
        if not isinstance(time, Tensor) or time.ndim != 1 or time.numel() < 1:
            raise ValueError("time must be a non-empty 1-D tensor")
        if not bool((time > 0).all()):
            raise ValueError("time must be positive to take its logarithm")
        log_t = time.double().log()
        sigma = float(log_t.std(unbiased=False)) if time.numel() > 1 else 0.0
        return cls(float(log_t.mean()), sigma if sigma > 1e-12 else 1.0, z_scale)

    def encode(self, time: Tensor, event: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """``(t, δ)`` of shape ``(n,)`` each to ``y₀`` of shape ``(n, 2)`` (dtype of ``time``)."""
        tau = (time.log() - self.mu) / self.sigma
        sign = event.to(time.dtype) * 2.0 - 1.0
        noise = torch.randn(time.shape, generator=generator, dtype=time.dtype, device=time.device)
        return torch.stack([tau, sign + self.z_scale * noise], dim=-1)

    def decode(self, y: Tensor) -> tuple[Tensor, Tensor]:
        """``y`` of shape ``(..., 2)`` to times ``exp(σ τ + μ)`` (positive) and events ``z > 0``, each ``(...)``.

        ``τ`` is clamped to ±30 standard deviations so that an untrained network cannot overflow ``exp``."""
        tau = y[..., 0].clamp(-30.0, 30.0)
        return torch.exp(tau * self.sigma + self.mu), y[..., 1] > 0

    def log_time_bounds(self) -> tuple[float, float]:
        """``(μ - 3σ, μ + 3σ)`` on the log-time axis, for plotting."""
        return self.mu - 3 * self.sigma, self.mu + 3 * self.sigma


