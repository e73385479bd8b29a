"""Ancestral DDPM sampling of ``K`` outcome pairs per subject with common random numbers.

Every subject starts from the *same* ``K`` noise vectors and receives the *same* noise at every step (the
noise has shape ``(K, 2)`` and is broadcast over the subjects), so two subjects' samples differ only through
their covariates. This is the common-random-numbers trick of simulation: it removes the sampling noise from
*comparisons* between subjects, which is what a ranking metric such as the C-index measures.

The step is Ho et al.'s Algorithm 2 in ε form,
``y_{k-1} = (y_k - β_k/√(1-ᾱ_k) ε̂)/√α_k + √β̃_k z`` with ``β̃_k = β_k (1-ᾱ_{k-1})/(1-ᾱ_k)``, ``ᾱ_0 = 1``,
and no noise at the last step (``β̃_1 = 0``). For one subject it coincides with
:func:`diffbook.samplers.sample_ddpm` fed the same grid (tested).

Reference: Ho et al. (2020), Algorithm 2 and eq. 7; Kirpichenko et al. (2026), SDPM (shared noise over subjects).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from diffbook.schedules import ddpm_posterior

__all__ = ["sample_outcomes"]

EpsModel = Callable[[Tensor, Tensor, Tensor], Tensor]


@torch.no_grad()
def sample_outcomes(
    eps_model: EpsModel, x: Tensor, abar: Tensor, n_samples: int, *, generator: torch.Generator | None = None,
    batch_size: int = 65536,
) -> Tensor:
    """Draw ``n_samples`` targets ``y₀`` per subject.

    Args:
        eps_model: ``eps_model(y_k, k, x) -> ε̂`` with shapes ``(B, 2), (B,), (B, p) -> (B, 2)``.
        x: covariates, shape ``(n, p)``.
        abar: ``ᾱ_1, …, ᾱ_N``, shape ``(N,)``, decreasing in ``(0, 1)``.
        n_samples: ``K``.
        generator: the source of the shared noise (seed it for reproducible samples).
        batch_size: at most this many rows ``n·K`` through the network at once (subjects are chunked; the
            shared noise is the same for every chunk).

    Returns:
        Shape ``(n, K, 2)``, dtype and device of ``x``.
    """
    if x.ndim != 2:
        raise ValueError(f"x must have shape (n, p), got {tuple(x.shape)}")
    if isinstance(n_samples, bool) or not isinstance(n_samples, int) or n_samples < 1:
        raise ValueError(f"n_samples must be a positive int, got {n_samples!r}")
    abar = abar.to(dtype=torch.float64, device=x.device)
    if abar.ndim != 1 or not bool(((abar > 0) & (abar < 1)).all()) or not bool((abar.diff() < 0).all()):
        raise ValueError("abar must be a 1-D decreasing table with entries in (0, 1)")
    n_steps, k_samples = abar.numel(), n_samples
    abar_prev = torch.cat([abar.new_ones(1), abar[:-1]])
    beta = 1.0 - abar / abar_prev
    # β̃ from the engine's one home of DDPM's posterior (β̃_1 = 0: the last step adds no noise)
    _, _, beta_tilde = ddpm_posterior(beta, abar_prev, 1.0 - abar, 1.0 - abar_prev)
    # plain Python floats, computed once: no host sync inside the loop
    eps_coef = (beta / torch.sqrt(1.0 - abar)).tolist()
    inv_sqrt_alpha = (1.0 / torch.sqrt(1.0 - beta)).tolist()
    noise_scale = torch.sqrt(beta_tilde).tolist()
    shape = (k_samples, 2)
    start = torch.randn(shape, generator=generator, dtype=x.dtype, device=x.device)
    noises = [torch.randn(shape, generator=generator, dtype=x.dtype, device=x.device) for _ in range(n_steps - 1)]
    per_chunk = max(1, batch_size // k_samples)
    out = []
    for lo in range(0, x.shape[0], per_chunk):
        xc = x[lo : lo + per_chunk]
        m = xc.shape[0]
        xr = xc.repeat_interleave(k_samples, dim=0)
        y = start.repeat(m, 1)
        for j, k in enumerate(range(n_steps, 0, -1)):
            i = k - 1
            steps = torch.full((m * k_samples,), float(k), dtype=x.dtype, device=x.device)
            eps = eps_model(y, steps, xr)
            y = (y - eps_coef[i] * eps) * inv_sqrt_alpha[i]
            if k > 1:
                y = y + noise_scale[i] * noises[j].repeat(m, 1)
        out.append(y.view(m, k_samples, 2))
    return torch.cat(out, dim=0) if out else x.new_zeros(0, k_samples, 2)
