"""Forward processes of discrete diffusion in continuous time and their exact one-token posteriors.

Each token is kept with probability ``α_t`` and otherwise replaced by noise:

* **uniform** (UDM): noise is a uniform token, ``q(z_t | x) = Cat(α_t x + (1 − α_t) 1/K)``;
* **absorbing** (MDM): noise is the mask token ``m = K``, ``q(z_t | x) = Cat(α_t x + (1 − α_t) e_m)``;
* **AUDM**: one uniform token ``u^i`` per position, drawn once; ``z_t^i = x^i`` w.p. ``α_t``, else ``u^i``.
  Marginalising ``u`` gives the uniform law exactly; given ``u`` it is masked diffusion whose mask value is ``u^i``.

The posteriors ``q(z_s | z_t, x̂)`` (``s < t``) accept a *probability vector* ``x̂`` for the clean token, which is
how the plug-in samplers use them.

Reference: Austin et al. (2021), D3PM, Eqs. 3–4; Sahoo et al. (2024), MDLM, Eq. 4; Schiff et al. (2025),
UDLM, Eq. 5; Gourevitch et al. (2026), AUDM (§4).
"""

from __future__ import annotations

import torch
from torch import Tensor

from diffbook._checks import per_sample
from diffbook.discrete.schedule import check_tokens

__all__ = ["uniform_marginal", "absorbing_marginal", "sample_uniform", "sample_absorbing", "sample_audm",
           "uniform_bridge", "absorbing_bridge", "keep_probability"]


def _alpha(alpha: Tensor | float, x: Tensor, name: str = "alpha") -> Tensor:
    """``α`` as a float64 tensor broadcasting against ``x`` of shape ``(n, L)`` (scalar or ``(n,)``)."""
    a = torch.as_tensor(alpha, dtype=torch.float64, device=x.device)
    if a.is_complex() or not bool(torch.isfinite(a).all()) or bool((a < 0).any()) or bool((a > 1).any()):
        raise ValueError(f"{name} must lie in [0, 1], got {a.flatten()[:4].tolist()}")
    if a.ndim == 0:
        return a
    if a.shape != (x.shape[0],):
        raise ValueError(f"{name} must be a number or have shape ({x.shape[0]},), got {tuple(a.shape)}")
    return per_sample(a, x, name, dtype=torch.float64)


def keep_probability(alpha: Tensor | float, vocab: int) -> Tensor:
    """``q(z_t = x | x) = α + (1 − α)/K`` under uniform noise; the shape of ``alpha`` (a scalar or ``(n,)``)."""
    a = torch.as_tensor(alpha, dtype=torch.float64)
    return a + (1 - a) / vocab


def uniform_marginal(x0: Tensor, alpha: Tensor | float, vocab: int) -> Tensor:
    """``q(z_t | x_0) = α_t e_{x_0} + (1 − α_t)/K``: shape ``(n, L, K)`` for ``x0`` of shape ``(n, L)``.

    Reference: Schiff et al. (2025), UDLM, Eq. 2.
    """
    check_tokens(x0, vocab, "x0")
    a = _alpha(alpha, x0)[..., None]
    return a * torch.nn.functional.one_hot(x0, vocab).double() + (1 - a) / vocab


def absorbing_marginal(x0: Tensor, alpha: Tensor | float, vocab: int) -> Tensor:
    """``q(z_t | x_0) = α_t e_{x_0} + (1 − α_t) e_m`` over ``K + 1`` states (mask ``m = K``): shape ``(n, L, K + 1)``.

    Reference: Sahoo et al. (2024), MDLM, Eq. 2.
    """
    check_tokens(x0, vocab, "x0")
    a = _alpha(alpha, x0)[..., None]
    out = a * torch.nn.functional.one_hot(x0, vocab + 1).double()
    out[..., vocab] += (1 - a[..., 0])
    return out


def _keep(x0: Tensor, alpha: Tensor | float, generator: torch.Generator | None) -> Tensor:
    a = _alpha(alpha, x0)
    return torch.rand(x0.shape, generator=generator, dtype=torch.float64, device=x0.device) < a


def sample_uniform(x0: Tensor, alpha: Tensor | float, vocab: int, *,
                   generator: torch.Generator | None = None) -> Tensor:
    """Draw ``z_t ~ q(· | x_0)`` under uniform noise; shape of ``x0`` ``(n, L)``."""
    check_tokens(x0, vocab, "x0")
    noise = torch.randint(0, vocab, x0.shape, generator=generator, device=x0.device)
    return torch.where(_keep(x0, alpha, generator), x0, noise)


def sample_absorbing(x0: Tensor, alpha: Tensor | float, vocab: int, *,
                     generator: torch.Generator | None = None) -> Tensor:
    """Draw ``z_t ~ q(· | x_0)`` under absorbing noise (mask id ``vocab``); shape ``(n, L)``."""
    check_tokens(x0, vocab, "x0")
    return torch.where(_keep(x0, alpha, generator), x0, torch.full_like(x0, vocab))


def sample_audm(x0: Tensor, alpha: Tensor | float, vocab: int, u: Tensor | None = None, *,
                generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
    """Draw the AUDM pair ``(z_t, u)``: ``u ~ Unif(K)`` per position (unless given), ``z_t = x_0`` w.p. ``α_t``,
    else ``u``.

    Returns:
        ``(z_t, u)``, each of shape ``(n, L)``. Marginally over ``u``, ``z_t`` has the uniform law of
        :func:`sample_uniform`.

    Reference: Gourevitch et al. (2026), §4 (absorbing-state reformulation).
    """
    check_tokens(x0, vocab, "x0")
    if u is None:
        u = torch.randint(0, vocab, x0.shape, generator=generator, device=x0.device)
    else:
        check_tokens(u, vocab, "u")
        if u.shape != x0.shape:
            raise ValueError(f"u must have the shape of x0 {tuple(x0.shape)}, got {tuple(u.shape)}")
    return torch.where(_keep(x0, alpha, generator), x0, u), u


def uniform_bridge(z_t: Tensor, x_hat: Tensor, alpha_s: Tensor | float, alpha_t: Tensor | float) -> Tensor:
    """The uniform-noise posterior ``q(z_s | z_t, x̂)`` for a clean-token distribution ``x̂`` (``α_s > α_t``).

    ``q(z_s = k | z_t, x̂) ∝ q(z_t | z_s = k) · (α_s x̂_k + (1 − α_s)/K)``, with
    ``q(z_t = j | z_s = k) = α_{t|s} 1[j = k] + (1 − α_{t|s})/K`` and ``α_{t|s} = α_t/α_s``. For a one-hot ``x̂``
    this is the exact posterior; for a distribution it is the plug-in bridge of UDLM/Duo, and it equals the
    exact one-token reverse step when ``x̂`` is the leave-one-out posterior ``L`` (not the denoiser ``D``).

    Args:
        z_t: tokens, shape ``(n, L)``.
        x_hat: probabilities, shape ``(n, L, K)``.
        alpha_s, alpha_t: numbers or shape ``(n,)``.
    Returns:
        Probabilities, shape ``(n, L, K)``, float64.

    Reference: Schiff et al. (2025), UDLM, Eq. 5; Austin et al. (2021), D3PM, Eq. 3.
    """
    if not isinstance(x_hat, Tensor) or x_hat.ndim != 3 or not x_hat.is_floating_point():
        raise TypeError("x_hat must be a floating tensor of probabilities with shape (n, L, K)")
    vocab = x_hat.shape[-1]
    check_tokens(z_t, vocab, "z_t")
    if z_t.shape != x_hat.shape[:2]:
        raise ValueError(f"z_t must have shape {tuple(x_hat.shape[:2])}, got {tuple(z_t.shape)}")
    a_s, a_t = _alpha(alpha_s, z_t, "alpha_s")[..., None], _alpha(alpha_t, z_t, "alpha_t")[..., None]
    a_ts = a_t / a_s
    prior_s = a_s * x_hat.double() + (1 - a_s) / vocab
    lik = (1 - a_ts) / vocab + a_ts * torch.nn.functional.one_hot(z_t, vocab).double()
    w = lik * prior_s
    return w / w.sum(-1, keepdim=True)


def absorbing_bridge(z_t: Tensor, x_hat: Tensor, alpha_s: Tensor | float, alpha_t: Tensor | float) -> Tensor:
    """The absorbing posterior ``q(z_s | z_t, x̂)`` over ``K + 1`` states (mask ``m = K``).

    A masked token unmasks to ``k`` w.p. ``(α_s − α_t) x̂_k / (1 − α_t)`` and stays masked w.p.
    ``(1 − α_s)/(1 − α_t)``; an unmasked token stays as it is.

    Args:
        z_t: tokens in ``0 … K`` (``K`` = mask), shape ``(n, L)``.
        x_hat: probabilities over the ``K`` real tokens, shape ``(n, L, K)``.
    Returns:
        Shape ``(n, L, K + 1)``, float64.

    Reference: Sahoo et al. (2024), MDLM, Eq. 7.
    """
    if not isinstance(x_hat, Tensor) or x_hat.ndim != 3 or not x_hat.is_floating_point():
        raise TypeError("x_hat must be a floating tensor of probabilities with shape (n, L, K)")
    vocab = x_hat.shape[-1]
    check_tokens(z_t, vocab, "z_t", allow=vocab)
    a_s, a_t = _alpha(alpha_s, z_t, "alpha_s")[..., None], _alpha(alpha_t, z_t, "alpha_t")[..., None]
    masked = (z_t == vocab)[..., None]
    unmask = (a_s - a_t) / (1 - a_t) * x_hat.double()
    stay = ((1 - a_s) / (1 - a_t)).expand(*z_t.shape, 1)
    move = torch.cat([unmask, stay], -1)
    carry = torch.nn.functional.one_hot(z_t, vocab + 1).double()
    return torch.where(masked, move, carry)
