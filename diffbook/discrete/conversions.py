"""The denoiser ``D`` and the leave-one-out posterior ``L`` of uniform diffusion, and conversions between them.

``D^i(k) = P(x_0^i = k | z_t)`` sees the whole noisy sequence; ``L^i(k) = P(x_0^i = k | z_t^{−i})`` leaves
position ``i`` out. Since ``z_t^i`` depends only on ``x_0^i``, Bayes gives

    ``D^i(k) ∝ L^i(k) · q(z_t^i | x_0^i = k) ∝ L^i(k) · (1 + K α_t/(1 − α_t) · 1[k = z_t^i])``,

so in logits the two differ by ``± log(1 + K α_t/(1 − α_t))`` at the current token. The factor diverges as
``α_t → 1``: never convert at ``t = 0``.

Reference: Gourevitch et al. (2026), Prop. 1 (``to_denoiser_logits``/``to_loo_denoiser_logits`` in rev_udm).
"""

from __future__ import annotations

import torch
from torch import Tensor

from diffbook._checks import per_sample
from diffbook.discrete.schedule import check_tokens

__all__ = ["self_evidence", "loo_to_denoiser_logits", "denoiser_to_loo_logits", "loo_to_denoiser",
           "denoiser_to_loo", "loo_to_conditional", "concrete_score"]


def self_evidence(alpha: Tensor | float, vocab: int, like: Tensor) -> Tensor:
    """``log(1 + K α/(1 − α))``, broadcasting against ``like`` of shape ``(n, L, K)`` (``alpha``: number or ``(n,)``).

    Raises:
        ValueError: if ``α`` is outside ``[0, 1)`` (at ``α = 1`` the current token is certain and ``L`` is undefined).
    """
    a = torch.as_tensor(alpha, dtype=torch.float64, device=like.device)
    if not bool(torch.isfinite(a).all()) or bool((a < 0).any()) or bool((a >= 1).any()):
        raise ValueError(f"alpha must lie in [0, 1) to convert between D and L, got {a.flatten()[:4].tolist()}")
    if a.ndim == 1:
        if a.shape[0] != like.shape[0]:
            raise ValueError(f"alpha must be a number or have shape ({like.shape[0]},), got {tuple(a.shape)}")
        a = per_sample(a, like, "alpha", dtype=a.dtype)
    return torch.log1p(vocab * a / (1 - a)).to(like.dtype)


def _check(logits: Tensor, z_t: Tensor) -> int:
    if not isinstance(logits, Tensor) or logits.ndim != 3 or not logits.is_floating_point():
        raise TypeError("logits must be a floating tensor of shape (n, L, K)")
    vocab = logits.shape[-1]
    check_tokens(z_t, vocab, "z_t")
    if z_t.shape != logits.shape[:2]:
        raise ValueError(f"z_t must have shape {tuple(logits.shape[:2])}, got {tuple(z_t.shape)}")
    return vocab


def loo_to_denoiser_logits(logits: Tensor, z_t: Tensor, alpha: Tensor | float) -> Tensor:
    """LOO logits ``log L`` (any offset) to denoiser logits: add ``log(1 + Kα/(1 − α))`` at ``z_t``.

    Shapes ``(n, L, K)``.

    Reference: Gourevitch et al. (2026), Eq. (D ∝ L · (1 + Kα/(1−α) 1[k = z_t])).
    """
    vocab = _check(logits, z_t)
    onehot = torch.nn.functional.one_hot(z_t, vocab).to(logits.dtype)
    return logits + onehot * self_evidence(alpha, vocab, logits)


def denoiser_to_loo_logits(logits: Tensor, z_t: Tensor, alpha: Tensor | float) -> Tensor:
    """Denoiser logits ``log D`` to LOO logits: subtract ``log(1 + Kα/(1 − α))`` at ``z_t``. Shapes ``(n, L, K)``."""
    vocab = _check(logits, z_t)
    onehot = torch.nn.functional.one_hot(z_t, vocab).to(logits.dtype)
    return logits - onehot * self_evidence(alpha, vocab, logits)


def loo_to_denoiser(loo: Tensor, z_t: Tensor, alpha: Tensor | float) -> Tensor:
    """Probabilities ``L`` to ``D`` (normalised), shape ``(n, L, K)``."""
    return torch.softmax(loo_to_denoiser_logits(loo.clamp_min(1e-300).log(), z_t, alpha), -1)


def denoiser_to_loo(den: Tensor, z_t: Tensor, alpha: Tensor | float) -> Tensor:
    """Probabilities ``D`` to ``L`` (normalised), shape ``(n, L, K)``."""
    return torch.softmax(denoiser_to_loo_logits(den.clamp_min(1e-300).log(), z_t, alpha), -1)


def loo_to_conditional(loo: Tensor, alpha: Tensor | float) -> Tensor:
    """``p_t(z^i = j | z^{−i}) = α L^i(j) + (1 − α)/K``, the noisy-token conditional a Gibbs corrector resamples from.

    ``loo`` has shape ``(n, L, K)``, ``alpha`` is a number or has shape ``(n,)``; the result has shape ``(n, L, K)``.

    Reference: Gourevitch et al. (2026), §3 (score conversion).
    """
    if not isinstance(loo, Tensor) or loo.ndim != 3:
        raise TypeError("loo must be a tensor of probabilities of shape (n, L, K)")
    a = torch.as_tensor(alpha, dtype=loo.dtype, device=loo.device)
    a = per_sample(a, loo, "alpha")
    return a * loo + (1 - a) / loo.shape[-1]


def concrete_score(loo: Tensor, z_t: Tensor, alpha: Tensor | float) -> Tensor:
    """The concrete score ``s^i_j = p_t(z^i = j | z^{−i}) / p_t(z^i = z_t^i | z^{−i})``, shape ``(n, L, K)``.

    Reference: Lou et al. (2024), SEDD, Eq. 4; Gourevitch et al. (2026), §3.
    """
    _check(loo, z_t)
    p = loo_to_conditional(loo, alpha)
    return p / p.gather(-1, z_t[..., None])
