"""Negative ELBOs of discrete diffusion in continuous time, per sequence (nats), and their Monte-Carlo estimate.

All three integrate over ``t ∈ [0, 1]`` a rate ``−α'_t/(…)`` times a per-token term; one draw of ``t`` and of
``z_t`` gives an unbiased estimate (:func:`estimate_nelbo` averages several).

* :func:`mdlm_terms` — masked diffusion: ``−α'/(1 − α) Σ_{masked i} −log x̂_θ^i(x^i)``.
* :func:`udlm_terms` — uniform diffusion, the UDLM NELBO of the plug-in bridge. Its minimiser is the
  leave-one-out posterior ``L``, not the denoiser ``D``.
* :func:`audm_terms` — AUDM given ``u``: on active tokens, ``r(−p(u) − log p(x)) `` if ``x ≠ u`` and
  ``r(1 − p(u))`` if ``x = u``, with ``r = −α'/(1 − α)``.
* :func:`denoiser_ce` — the plain cross-entropy ``−log D^i(x^i)`` a CE-trained UDM minimises (not a bound).

Reference: Sahoo et al. (2024), MDLM, Eq. 10; Schiff et al. (2025), UDLM, Eq. 7 (``elbo_per_token`` in
rev_udm, ``nll_per_token`` in Duo); Gourevitch et al. (2026), §4 (AUDM ELBO).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from diffbook._checks import check_int
from diffbook.discrete.forward import sample_absorbing, sample_audm, sample_uniform
from diffbook.discrete.schedule import EPS, check_tokens, linear_alpha, linear_alpha_derivative

__all__ = ["mdlm_terms", "udlm_terms", "audm_terms", "denoiser_ce", "draw_times", "estimate_nelbo", "PROCESSES"]

PROCESSES = ("mdm", "udm", "audm")


def _col(v: Tensor, n: int, name: str) -> Tensor:
    if not isinstance(v, Tensor) or v.shape != (n,):
        raise ValueError(f"{name} must be a tensor of shape ({n},), got "
                         f"{tuple(v.shape) if isinstance(v, Tensor) else type(v).__name__}")
    return v.view(n, 1)


def _check_alpha_pair(alpha: Tensor, dalpha: Tensor, n: int) -> tuple[Tensor, Tensor]:
    a, da = _col(alpha, n, "alpha"), _col(dalpha, n, "dalpha")
    return a, da


def _logits(logits: Tensor, x0: Tensor) -> Tensor:
    if not isinstance(logits, Tensor) or logits.ndim != 3 or logits.shape[:2] != x0.shape:
        raise ValueError(f"logits must have shape {tuple(x0.shape)} + (K,), got "
                         f"{tuple(logits.shape) if isinstance(logits, Tensor) else type(logits).__name__}")
    return logits


def mdlm_terms(logits: Tensor, x0: Tensor, z_t: Tensor, alpha: Tensor, dalpha: Tensor) -> Tensor:
    """One-sample MDLM NELBO per sequence, shape ``(n,)``.

    Args:
        logits: the model's logits over the ``K`` real tokens, shape ``(n, L, K)`` (a mask logit, if any, is dropped).
        x0: clean tokens ``(n, L)``; z_t: noisy tokens with mask id ``K``.
        alpha, dalpha: ``α_t`` and ``α'_t``, shape ``(n,)``.

    Reference: Sahoo et al. (2024), MDLM, Eq. 10.
    """
    vocab = _logits(logits, x0).shape[-1]
    a, da = _check_alpha_pair(alpha, dalpha, x0.shape[0])
    logp = torch.log_softmax(logits.float() if logits.dtype == torch.bfloat16 else logits, -1)
    nll = -logp.gather(-1, x0[..., None])[..., 0]
    masked = (z_t == vocab).to(nll.dtype)
    return (-da / (1 - a)).to(nll.dtype)[:, 0] * (masked * nll).sum(1)


def udlm_terms(loo_logits: Tensor, x0: Tensor, z_t: Tensor, alpha: Tensor, dalpha: Tensor) -> Tensor:
    """One-sample UDLM NELBO per sequence, shape ``(n,)``: with ``x̄ = Kα e_{x_0} + (1 − α)`` and
    ``x̄_θ = Kα x_θ + (1 − α)``, ``i = z_t``,
    ``−α'/(Kα) [K/x̄_θ,i − K/x̄_i + Σ_j (x̄_j/x̄_i) log(x̄_θ,i x̄_j/(x̄_θ,j x̄_i))]``, summed over positions.

    ``x_θ = softmax(loo_logits)`` is what the bridge is fed; the bound is tightest at ``x_θ = L``.

    Reference: Schiff et al. (2025), UDLM, Eq. 7.
    """
    vocab = _logits(loo_logits, x0).shape[-1]
    a, da = _check_alpha_pair(alpha, dalpha, x0.shape[0])
    x_theta = torch.softmax(loo_logits.float() if loo_logits.dtype == torch.bfloat16 else loo_logits, -1)
    dt = x_theta.dtype
    a3, da3 = a.to(dt)[..., None], da.to(dt)[..., None]
    onehot = torch.nn.functional.one_hot(x0, vocab).to(dt)
    xbar = vocab * a3 * onehot + (1 - a3)
    xbar_t = vocab * a3 * x_theta + (1 - a3)
    idx = z_t[..., None]
    xb_i, xbt_i = xbar.gather(-1, idx), xbar_t.gather(-1, idx)
    log_ratio = (xbt_i * xbar).log() - (xbar_t * xb_i).log()
    inner = vocab / xbt_i - vocab / xb_i + ((xbar / xb_i) * log_ratio).sum(-1, keepdim=True)
    return (-da3 / (vocab * a3) * inner)[..., 0].sum(1)


def audm_terms(logits: Tensor, x0: Tensor, z_t: Tensor, u: Tensor, alpha: Tensor, dalpha: Tensor) -> Tensor:
    """One-sample AUDM NELBO per sequence given ``u``, shape ``(n,)``; only active tokens (``z_t = u``) count.

    Reference: Gourevitch et al. (2026), §4 (``AUDM`` loss in rev_udm).
    """
    vocab = _logits(logits, x0).shape[-1]
    a, da = _check_alpha_pair(alpha, dalpha, x0.shape[0])
    logp = torch.log_softmax(logits.float() if logits.dtype == torch.bfloat16 else logits, -1)
    r = (-da / (1 - a)).to(logp.dtype)
    p_u = logp.gather(-1, u[..., None])[..., 0].exp()
    lp_x = logp.gather(-1, x0[..., None])[..., 0]
    term = torch.where(x0 == u, 1 - p_u, -p_u - lp_x)
    active = (z_t == u).to(logp.dtype)
    return r[:, 0] * (active * term).sum(1)


def denoiser_ce(logits: Tensor, x0: Tensor) -> Tensor:
    """``Σ_i −log D^i(x_0^i)`` per sequence, shape ``(n,)``: the cross-entropy a CE-trained UDM minimises."""
    _logits(logits, x0)
    logp = torch.log_softmax(logits.float() if logits.dtype == torch.bfloat16 else logits, -1)
    return -logp.gather(-1, x0[..., None])[..., 0].sum(1)


def draw_times(n: int, *, generator: torch.Generator | None = None, device: torch.device | str | None = None,
               antithetic: bool = True) -> Tensor:
    """``t ∈ (0, 1)`` for ``n`` sequences, shape ``(n,)`` float64; ``antithetic`` spreads them on a shifted grid
    (one uniform offset, ``n`` strata), which lowers the variance of the estimate (MDLM §3.5)."""
    check_int(n, "n")
    if antithetic:
        off = torch.rand((), generator=generator, dtype=torch.float64)
        t = (off + torch.arange(n, dtype=torch.float64) / n) % 1.0
    else:
        t = torch.rand(n, generator=generator, dtype=torch.float64)
    return t.clamp(1e-5, 1.0).to(device)


def estimate_nelbo(process: str, model: Callable[..., Tensor], x0: Tensor, vocab: int, *, n_t: int = 1,
                   eps: float = EPS, generator: torch.Generator | None = None) -> Tensor:
    """Monte-Carlo NELBO per sequence (nats), shape ``(n,)``, averaged over ``n_t`` draws of ``(t, z_t)``.

    Args:
        process: ``"mdm"`` (model ``(z, alpha)`` → logits), ``"udm"`` (model ``(z, alpha)`` → LOO logits; pass
            a denoiser through :func:`~diffbook.discrete.conversions.denoiser_to_loo_logits` first) or
            ``"audm"`` (model ``(z, u, alpha)`` → denoiser logits).
        x0: clean tokens, shape ``(n, L)``.
    """
    if process not in PROCESSES:
        raise ValueError(f"process must be one of {PROCESSES}, got {process!r}")
    check_tokens(x0, vocab, "x0")
    check_int(n_t, "n_t")
    n = x0.shape[0]
    total = torch.zeros(n, dtype=torch.float64)
    for _ in range(n_t):
        t = draw_times(n, generator=generator)
        a, da = linear_alpha(t, eps), linear_alpha_derivative(t, eps)
        if process == "mdm":
            z = sample_absorbing(x0, a, vocab, generator=generator)
            total += mdlm_terms(model(z, a), x0, z, a, da).double().cpu()
        elif process == "udm":
            z = sample_uniform(x0, a, vocab, generator=generator)
            total += udlm_terms(model(z, a), x0, z, a, da).double().cpu()
        else:
            z, u = sample_audm(x0, a, vocab, generator=generator)
            total += audm_terms(model(z, u, a), x0, z, u, a, da).double().cpu()
    return total / n_t
