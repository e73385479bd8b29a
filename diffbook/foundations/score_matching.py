"""Score matching: the quantities behind denoising score matching, Tweedie's formula and ε-prediction.

A noisy point is ``x_t = α x₀ + σ ε``. The *conditional* score ``∇log p(x_t | x₀) = -(x_t - α x₀)/σ² = -ε/σ``
is what denoising score matching regresses on; the *marginal* score ``∇log p_t(x_t)`` is its posterior
average (Vincent 2011, §4.2), and the two losses differ by the constant :func:`dsm_constant`. The optimal
noise predictor is ``E[ε | x_t] = -σ ∇log p_t(x_t)`` (:func:`posterior_eps`), not the noise ``ε`` itself:
the residual ``ε - E[ε | x_t]`` has a variance that no network can remove, the floor of the ε-loss
(:func:`errors_by_noise_level`). Every parameterisation's squared error is the ε-error times a weight
(:func:`eps_equivalent_weight`).

Squared errors follow :mod:`diffbook.losses`: a *mean* over the non-batch dimensions, per sample.

References: P. Vincent, *A Connection Between Score Matching and Denoising Autoencoders*, Neural
Computation 23 (2011), eq. 7 and App. A; B. Efron, *Tweedie's Formula and Selection Bias*, JASA 106 (2011),
eq. 1.4; J. Ho, A. Jain, P. Abbeel, *Denoising Diffusion Probabilistic Models* (2020), eq. 14;
T. Salimans, J. Ho, *Progressive Distillation* (2022), §4 (v); Karras et al. 2022, §2 (VE-equivalent variables).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

from diffbook._checks import check_int, check_state, per_sample
from diffbook.param import Denoiser
from diffbook.toy import GaussianMixture

__all__ = [
    "conditional_score",
    "dsm_constant",
    "posterior_eps",
    "empirical_score",
    "eps_equivalent_weight",
    "NoiseLevelErrors",
    "errors_by_noise_level",
]

Target = Literal["eps", "x0", "v", "score", "velocity"]


def _level(value: Tensor | float, x: Tensor, name: str, *, positive: bool) -> Tensor:
    """A scalar or per-sample ``(n,)`` coefficient, reshaped to broadcast against ``x`` of shape ``(n, ...)``."""
    v = per_sample(value, x, name)
    if not torch.isfinite(v).all() or (positive and (v <= 0).any()):
        raise ValueError(f"{name} must be finite{' and > 0' if positive else ''}")
    return v


def _same_shape(a: Tensor, b: Tensor, name_a: str, name_b: str) -> None:
    if a.shape != b.shape:
        raise ValueError(f"{name_a} has shape {tuple(a.shape)} but {name_b} has {tuple(b.shape)}")
    if a.ndim < 2:
        raise ValueError(f"{name_a} must have shape (n, ...) with at least one data dimension, got {tuple(a.shape)}")


def conditional_score(x_t: Tensor, x0: Tensor, alpha: Tensor | float, sigma: Tensor | float) -> Tensor:
    """``∇_x log N(x_t; α x₀, σ² I) = -(x_t - α x₀)/σ²``, shape of ``x_t`` (Vincent 2011, eq. 7).

    For ``x_t = α x₀ + σ ε`` this is ``-ε/σ``: the target of denoising score matching.

    Args:
        x_t, x0: shape ``(n, ...)``; alpha, sigma: scalars or shape ``(n,)``, ``sigma > 0``.
    """
    check_state(x_t, "x_t")
    check_state(x0, "x0")
    _same_shape(x_t, x0, "x_t", "x0")
    a = _level(alpha, x_t, "alpha", positive=False)
    s = _level(sigma, x_t, "sigma", positive=True)
    return -(x_t - a * x0) / s**2


def dsm_constant(
    x_t: Tensor, x0: Tensor, true_score: Tensor, alpha: Tensor | float, sigma: Tensor | float
) -> tuple[Tensor, Tensor]:
    """Monte-Carlo estimate of the constant ``C = E‖∇log p(x_t|x₀) - ∇log p_t(x_t)‖²`` by which the DSM loss
    exceeds the explicit score-matching loss for *every* model (Vincent 2011, App. A), and its standard error.

    Uses the variance form of ``C`` (the expected squared distance between the conditional score and its
    posterior mean), which has a smaller Monte-Carlo error than ``E‖∇log p(x_t|x₀)‖² - E‖∇log p_t‖²``.
    Squared norms are means over the data dimensions, as in :func:`diffbook.losses.dsm_loss`.

    Args:
        x_t, x0: pairs drawn as ``x_t = α x₀ + σ ε``, shape ``(n, ...)`` with ``n >= 2``.
        true_score: ``∇log p_t(x_t)``, shape of ``x_t``.
        alpha, sigma: scalars or shape ``(n,)``.
    Returns:
        ``(estimate, standard_error)``, two 0-dim tensors.
    """
    check_state(true_score, "true_score")
    cond = conditional_score(x_t, x0, alpha, sigma)
    _same_shape(true_score, x_t, "true_score", "x_t")
    if x_t.shape[0] < 2:
        raise ValueError(f"need at least 2 samples for a standard error, got {x_t.shape[0]}")
    per_sample = (cond - true_score).pow(2).flatten(1).mean(1)
    return per_sample.mean(), per_sample.std() / math.sqrt(per_sample.shape[0])


def posterior_eps(mixture: GaussianMixture, x: Tensor, alpha: Tensor | float, sigma: Tensor | float) -> Tensor:
    """The optimal noise prediction ``E[ε | x_t = x] = (x - α E[x₀ | x])/σ`` for mixture data, shape ``(n, d)``.

    Computed from the posterior mean by Gaussian conditioning, not from the score, so that the identity
    ``E[ε | x_t] = -σ ∇log p_t(x_t)`` (Tweedie, Efron 2011, eq. 1.4) can be checked against it.

    Args:
        mixture: the data distribution; x: shape ``(n, d)``; alpha, sigma: scalars or shape ``(n,)``, ``sigma > 0``.
    """
    if not isinstance(mixture, GaussianMixture):
        raise TypeError(f"mixture must be a diffbook.toy.GaussianMixture, got {type(mixture).__name__}")
    check_state(x, "x")
    a = _level(alpha, x, "alpha", positive=False)
    s = _level(sigma, x, "sigma", positive=True)
    return (x - a * mixture.posterior_mean(x, alpha, sigma)) / s


def empirical_score(
    x: Tensor, data: Tensor, alpha: Tensor | float, sigma: Tensor | float, *, chunk: int = 1024
) -> Tensor:
    """The exact score of the noised empirical distribution ``(1/N) Σ_i N(α x₀ⁱ, σ² I)``, shape of ``x``.

    It is the posterior average of the conditional scores, ``Σ_i w_i(x) ∇log p(x | x₀ⁱ)`` with weights
    ``w_i ∝ N(x; α x₀ⁱ, σ² I)``, i.e. a self-normalised importance-sampling estimate of
    ``∇log p_t(x) = E[∇log p(x | x₀) | x_t = x]`` (Vincent 2011, §4.2) that converges as ``N → ∞``.

    Args:
        x: query points, shape ``(n, ...)``.
        data: samples of ``x₀``, shape ``(N, ...)`` with the same trailing shape as ``x``.
        alpha, sigma: scalars, ``sigma > 0``.
        chunk: rows of ``x`` handled at once (memory is ``chunk × N``).
    """
    check_state(x, "x")
    check_state(data, "data")
    if x.ndim < 2 or data.shape[1:] != x.shape[1:]:
        raise ValueError(f"x has shape {tuple(x.shape)} and data {tuple(data.shape)}; their trailing shapes must match")
    check_int(chunk, "chunk")
    a = _level(alpha, x[:1], "alpha", positive=False)
    s = _level(sigma, x[:1], "sigma", positive=True)
    if a.ndim or s.ndim:
        raise ValueError("empirical_score takes scalar alpha and sigma")
    means = (a * data.to(x)).flatten(1)  # (N, D)
    out = []
    for block in x.flatten(1).split(chunk):
        logits = -(torch.cdist(block, means) ** 2) / (2 * s**2)  # (b, N)
        w = torch.softmax(logits, dim=1)
        out.append(-(block - w @ means) / s**2)
    return torch.cat(out).reshape(x.shape)


def eps_equivalent_weight(
    target: Target,
    alpha: Tensor | float,
    sigma: Tensor | float,
    dalpha: Tensor | float | None = None,
    dsigma: Tensor | float | None = None,
) -> Tensor:
    """The weight ``w`` with ``‖ŷ - y‖² = w ‖ε̂ - ε‖²`` when a prediction ``ŷ`` of the target ``y`` and the noise
    prediction ``ε̂`` describe the same ``x̂₀ = (x - σ ε̂)/α`` (the table of Chapter 5).

    ``eps``: 1; ``x0``: ``σ²/α²``; ``v`` (``α ε - σ x₀``, Salimans & Ho 2022): ``((α² + σ²)/α)²``;
    ``score`` (target ``-ε/σ``): ``1/σ²``; ``velocity`` (``α̇ x₀ + σ̇ ε``): ``(σ̇ - α̇ σ/α)²``, which needs
    ``dalpha`` and ``dsigma``.

    Returns:
        A tensor broadcast from ``alpha`` and ``sigma``.

    Returns the broadcast shape of ``alpha``, ``sigma`` (and the derivatives).
    """
    a = torch.as_tensor(alpha, dtype=torch.promote_types(torch.as_tensor(alpha).dtype, torch.float32))
    s = torch.as_tensor(sigma, dtype=a.dtype)
    if not torch.isfinite(a).all() or not torch.isfinite(s).all() or (a <= 0).any() or (s <= 0).any():
        raise ValueError("alpha and sigma must be finite and > 0")
    if target == "eps":
        return torch.ones_like(a * s)
    if target == "x0":
        return (s / a) ** 2
    if target == "v":
        return ((a**2 + s**2) / a) ** 2
    if target == "score":
        return torch.ones_like(a) / s**2
    if target == "velocity":
        if dalpha is None or dsigma is None:
            raise ValueError("target 'velocity' needs dalpha and dsigma")
        da, ds = torch.as_tensor(dalpha, dtype=a.dtype), torch.as_tensor(dsigma, dtype=a.dtype)
        return (ds - da * s / a) ** 2
    raise ValueError(f"target must be one of 'eps', 'x0', 'v', 'score', 'velocity'; got {target!r}")


@dataclass(frozen=True)
class NoiseLevelErrors:
    """How a denoiser's noise prediction splits into the irreducible floor and its own error, per noise level.

    All fields have shape ``(m,)``, one entry per noise level; squared norms are means over dimensions.

    Attributes:
        sigma: the VE-equivalent noise levels σ̄.
        eps_loss: ``E‖ε̂ - ε‖²``, the model's ε-loss against the noise actually added.
        floor: ``E‖E[ε|x̄] - ε‖²``, the ε-loss of the exact (optimal) predictor: the irreducible loss.
        excess: ``E‖ε̂ - E[ε|x̄]‖²``, the explicit score-matching error in ε units (σ̄² × ESM).
        relative_score_error: ``E‖ŝ - ∇log p‖² / E‖∇log p‖²``.
        relative_floor: ``floor / E‖ε‖²``: the fraction of the added noise that even the best predictor misses.
        cross_term: ``2 E[(ε̂ - E[ε|x̄])·(E[ε|x̄] - ε)]``, so that ``eps_loss = floor + excess + cross_term``
            holds exactly on the samples; its expectation is zero (Vincent's theorem).
        cross_term_se: the Monte-Carlo standard error of ``cross_term``.
        n: the number of Monte-Carlo samples per level.
    """

    sigma: Tensor
    eps_loss: Tensor
    floor: Tensor
    excess: Tensor
    relative_score_error: Tensor
    relative_floor: Tensor
    cross_term: Tensor
    cross_term_se: Tensor
    n: int


def errors_by_noise_level(
    denoiser: Denoiser,
    mixture: GaussianMixture,
    sigmas: Tensor,
    n: int,
    *,
    generator: torch.Generator | None = None,
) -> NoiseLevelErrors:
    """Monte-Carlo comparison of a denoiser with the exact one of a Gaussian mixture at each noise level.

    For each σ̄ draw ``x₀`` from ``mixture`` and ``x̄ = x₀ + σ̄ ε``; the denoiser's noise prediction is
    ``ε̂ = (x̄ - D(x̄; σ̄))/σ̄`` and the exact one ``E[ε|x̄] = (x̄ - E[x₀|x̄])/σ̄``. Vincent's theorem in ε units says
    ``eps_loss = floor + excess`` up to Monte-Carlo error (the cross term has mean zero).

    Args:
        denoiser: ``denoiser(x, sigma) -> x0_hat`` (the :data:`diffbook.param.Denoiser` contract), called
            without gradients; an ``nn.Module`` gets inputs in its parameters' dtype and device, anything
            else in the mixture's.
        mixture: the data distribution; its dtype (float64 recommended) is used for the exact quantities.
        sigmas: shape ``(m,)``, positive.
        n: samples per noise level.
        generator: for the samples.
    """
    if not isinstance(mixture, GaussianMixture):
        raise TypeError(f"mixture must be a diffbook.toy.GaussianMixture, got {type(mixture).__name__}")
    if not callable(denoiser):
        raise TypeError(f"denoiser must be callable as denoiser(x, sigma), got {type(denoiser).__name__}")
    check_state(sigmas, "sigmas")
    if sigmas.ndim != 1 or sigmas.numel() < 1 or not torch.isfinite(sigmas).all() or (sigmas <= 0).any():
        raise ValueError("sigmas must be a non-empty 1-D tensor of finite positive noise levels")
    if not isinstance(n, int) or isinstance(n, bool) or n < 2:
        raise ValueError(f"n must be an int >= 2, got {n!r}")
    dtype = mixture.means.dtype
    params = list(denoiser.parameters()) if isinstance(denoiser, torch.nn.Module) else []
    net_dtype = params[0].dtype if params else dtype
    net_device = params[0].device if params else mixture.means.device
    rows = []
    for sb in sigmas.tolist():
        x0, _ = mixture.sample(n, generator=generator)
        eps = torch.randn(x0.shape, generator=generator, dtype=dtype, device=x0.device)
        x = x0 + sb * eps
        with torch.no_grad():
            d_hat = denoiser(x.to(net_device, net_dtype), torch.full((n,), sb, dtype=net_dtype, device=net_device))
        eps_hat = (x - d_hat.to(x)) / sb
        eps_star = (x - mixture.posterior_mean(x, 1.0, sb)) / sb
        sq = lambda z: z.pow(2).mean()  # noqa: E731
        cross = 2 * ((eps_hat - eps_star) * (eps_star - eps)).flatten(1).mean(1)  # per sample, shape (n,)
        rows.append([sq(eps_hat - eps), sq(eps_star - eps), sq(eps_hat - eps_star),
                     sq(eps_hat - eps_star) / sq(eps_star), sq(eps_star - eps) / sq(eps),
                     cross.mean(), cross.std() / math.sqrt(n)])
    table = torch.tensor([[float(v) for v in r] for r in rows], dtype=dtype)
    return NoiseLevelErrors(sigmas.to(dtype).cpu(), *table.T.unbind(0), n=n)
