"""The noise schedule of continuous-time discrete diffusion: ``α_t``, the probability that a token is still clean.

Both processes of this chapter (uniform and absorbing) keep a token with probability ``α_t`` and otherwise
replace it by noise; ``α_0 = 1`` and ``α_t`` decreases to ``α_1 ≈ 0``. The book uses the linear schedule
``α_t = 1 − (1 − ε) t`` of the reference code (``ε = 10⁻³``). Samplers take a *grid* of ``α`` values, so any
schedule can be used; :func:`check_alphas` validates one.

Reference: Sahoo et al. (2024), MDLM, §3.1 (the ``α_t`` notation); Gourevitch et al. (2026), rev_udm code
(the linear schedule with ``ε = 10⁻³``).
"""

from __future__ import annotations

import torch
from torch import Tensor

from diffbook._checks import check_int, check_real

__all__ = ["EPS", "linear_alpha", "linear_alpha_derivative", "alpha_grid", "check_alphas", "check_tokens"]

EPS = 1e-3
"""``α_1 = ε``: the fraction of clean tokens left at ``t = 1`` by the linear schedule."""


def _check_t(t: object) -> Tensor:
    if not isinstance(t, Tensor) or not t.is_floating_point():
        raise TypeError(f"t must be a floating-point tensor of times in [0, 1], got {type(t).__name__}")
    if t.numel() and (not bool(torch.isfinite(t).all()) or float(t.min()) < 0 or float(t.max()) > 1):
        raise ValueError(f"t must lie in [0, 1], got values in [{float(t.min())}, {float(t.max())}]")
    return t


def linear_alpha(t: Tensor, eps: float = EPS) -> Tensor:
    """``α_t = 1 − (1 − ε) t``, same shape as ``t`` (any shape, values in ``[0, 1]``).

    Reference: Gourevitch et al. (2026), rev_udm ``LinearNoise``.
    """
    _check_t(t)
    eps = check_real(eps, "eps", nonnegative=True)
    if eps >= 1:
        raise ValueError(f"eps must lie in [0, 1), got {eps}")
    return 1 - (1 - eps) * t


def linear_alpha_derivative(t: Tensor, eps: float = EPS) -> Tensor:
    """``dα_t/dt = −(1 − ε)``, same shape as ``t``."""
    _check_t(t)
    eps = check_real(eps, "eps", nonnegative=True)
    return torch.full_like(t, -(1 - eps))


def alpha_grid(steps: int, eps: float = EPS, *, dtype: torch.dtype = torch.float64,
               device: torch.device | str | None = None) -> Tensor:
    """``α`` at ``t_k = k / steps``, ``k = 0 … steps``: shape ``(steps + 1,)``, from ``α_0 = 1`` down to ``α_1 = ε``.

    A sampler walks it backwards: step ``k`` goes from ``α_{t_k}`` (noisier) to ``α_{t_{k−1}}``.
    """
    check_int(steps, "steps")
    t = torch.linspace(0, 1, steps + 1, dtype=dtype, device=device)
    return linear_alpha(t, eps)


def check_alphas(alphas: object, name: str = "alphas") -> Tensor:
    """A grid of ``α`` values at increasing times: 1-D, at least two entries, in ``[0, 1]``, strictly decreasing.

    Raises:
        TypeError: not a floating-point tensor.
        ValueError: the wrong shape, a value outside ``[0, 1]``, or not decreasing (e.g. listed from ``t = 1``
            to ``t = 0``).
    """
    if not isinstance(alphas, Tensor) or not alphas.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor (e.g. alpha_grid(steps)), got {type(alphas).__name__}")
    if alphas.ndim != 1 or alphas.numel() < 2:
        raise ValueError(f"{name} must have shape (steps + 1,) with steps >= 1, got {tuple(alphas.shape)}; "
                         "steps must be at least 1")
    if not bool(torch.isfinite(alphas).all()) or float(alphas.min()) < 0 or float(alphas.max()) > 1:
        raise ValueError(f"{name} must lie in [0, 1], got values in [{float(alphas.min())}, {float(alphas.max())}]")
    if not bool((alphas[1:] < alphas[:-1]).all()):
        raise ValueError(f"{name} must be strictly decreasing (α at t = 0, …, 1: from 1 down to about 0), got "
                         f"{alphas[:4].tolist()}…")
    return alphas


def check_tokens(x: object, vocab: int, name: str = "x", *, allow: int | None = None) -> Tensor:
    """Token ids: an integer tensor of shape ``(..., L)`` with ``L >= 1``, values in ``0 … vocab − 1``
    (or equal to ``allow``, e.g. the mask id); returned unchanged."""
    check_int(vocab, "vocab", minimum=2)
    if not isinstance(x, Tensor) or x.is_floating_point() or x.is_complex() or x.dtype == torch.bool:
        raise TypeError(f"{name} must be an integer tensor of token ids, got "
                        f"{x.dtype if isinstance(x, Tensor) else type(x).__name__}")
    if x.ndim < 1 or x.shape[-1] == 0 or x.numel() == 0:
        raise ValueError(f"{name} must hold sequences of length >= 1, got shape {tuple(x.shape)}")
    ok = (x >= 0) & (x < vocab)
    if allow is not None:
        ok |= x == allow
    if not bool(ok.all()):
        bad = x[~ok].flatten()[0].item()
        extra = f" or {allow}" if allow is not None else ""
        raise ValueError(f"{name} has token id {bad}, outside the vocabulary 0..{vocab - 1}{extra}")
    return x
