"""SDPM's short cosine noise table: ``N - 1`` noisy levels, ``ᾱ`` strictly positive at the last one.

SDPM uses ``N ∈ {11, 21, 31}`` cosine levels ``ᾱ_k = f(k/N)/f(0)``, ``f(u) = cos²((u + s)/(1 + s) · π/2)``
(Nichol & Dhariwal 2021, eq. 17) and trains and samples on ``k = 1, …, N - 1`` only: ``ᾱ_N = 0`` is never
used, so the first reverse step never divides by a vanishing ``√α``.

Reference: Kirpichenko et al. (2026), SDPM (cosine schedule, 10–30 steps); Nichol & Dhariwal (2021), eq. 17.
"""

from __future__ import annotations

import math

from torch import Tensor

from diffbook.schedules import alphas_cumprod, cosine_betas

__all__ = ["sdpm_alphas_cumprod"]


def sdpm_alphas_cumprod(steps: int, s: float = 0.008) -> Tensor:
    """``ᾱ_1, …, ᾱ_steps`` of shape ``(steps,)``, float64, from the cosine table with ``N = steps + 1`` levels.

    Args:
        steps: the number of denoising steps ``N - 1`` (SDPM: 10, 20 or 30), ``>= 2``.
        s: the cosine offset, in ``(0, 1)``.
    """
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 2:
        raise ValueError(f"steps must be an int >= 2, got {steps!r}")
    if isinstance(s, bool) or not isinstance(s, (int, float)) or not (0.0 < s < 1.0 and math.isfinite(s)):
        raise ValueError(f"s must be a number in (0, 1), got {s!r}")
    return alphas_cumprod(cosine_betas(steps + 1, s=float(s)))[:steps]
