"""The discrete variational bound of DDPM: the decoders ``p_θ(x_0 | x_1)``, the bound
``L_T + Σ_{t=2}^T L_{t-1} + L_0`` on ``-log p_θ(x_0)`` per example, and the independent-pixel baseline it is
compared with.

Conventions (1-based steps, the β table of shape ``(T,)``, states of shape ``(n, ...)``) and the KL terms
``L_T`` and ``L_{t-1}`` are those of :mod:`diffbook.foundations.ddpm`. For data on a lattice of ``levels`` equally spaced
values in ``[-1, 1]`` the decoder ``p_θ(x_0 | x_1)`` is the Gaussian ``N(μ_θ(x_1, 1), β_1)`` integrated over each
value's bin (Ho et al. 2020, eq. 13), so the bound is on a *probability*, in nats, and needs no dequantisation
offset (:func:`diffbook.metrics.bits.bits_per_dim` turns it into bits per dimension). The independent-pixel
model, one histogram per dimension, gives an exact code length to compare the bound with.

References: J. Ho, A. Jain, P. Abbeel, *Denoising Diffusion Probabilistic Models*, NeurIPS 2020
(eqs. 5 and 13); J. Sohl-Dickstein et al., *Deep Unsupervised Learning using Nonequilibrium Thermodynamics*,
ICML 2015 (the bound, their eq. 14); L. Theis, A. van den Oord, M. Bethge, *A note on the evaluation of
generative models*, ICLR 2016.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import Tensor

from diffbook._checks import check_int, check_state, per_sample
from diffbook.foundations.ddpm import (
    EpsModel,
    Variance,
    _check_batch,
    _check_same,
    _sum_dims,
    forward_marginal,
    mean_from_eps,
    prior_kl,
    step_kl,
)
from diffbook.schedules import ddpm_tables

__all__ = [
    "ELBOTerms",
    "gaussian_nll",
    "discretized_gaussian_nll",
    "elbo_terms",
    "lattice_index",
    "pixel_histograms",
    "pixel_histogram_nll",
    "pixel_histogram_sample",
]


class ELBOTerms(NamedTuple):
    """The terms of the DDPM bound for ``n`` examples, in nats (float64, on the CPU), and the ``L_simple`` of the
    same draws.

    Attributes:
        prior: ``L_T = KL(q(x_T | x_0) ‖ N(0, I))``, shape ``(n,)``.
        diffusion: ``Σ_{t=2}^T L_{t-1}`` (exact sum or an unbiased stratified estimate), shape ``(n,)``.
        decoder: ``L_0 = -log p_θ(x_0 | x_1)`` (one draw of ``x_1``), shape ``(n,)``.
        total: ``prior + diffusion + decoder``, an upper bound on ``-log p_θ(x_0)`` in expectation, ``(n,)``.
        simple: ``L_simple = E_{t ~ U{1..T}} ‖ε - ε̂‖²/D`` (mean over dimensions) of the same draws, ``(n,)``.
        strata: shape ``(k + 1, 2)``, int64, the steps ``[lo, hi]`` of each column below; row 0 is ``[1, 1]``.
        per_stratum: shape ``(n, k + 1)``: column 0 is ``L_0``, column ``j`` the estimate of
            ``Σ_{t=lo_j}^{hi_j} L_{t-1}`` (so ``diffusion = per_stratum[:, 1:].sum(1)``).
        sq_err: shape ``(n, k + 1)``, ``‖ε - ε̂‖²/D`` at the step drawn in each stratum.
    """

    prior: Tensor
    diffusion: Tensor
    decoder: Tensor
    total: Tensor
    simple: Tensor
    strata: Tensor
    per_stratum: Tensor
    sq_err: Tensor


# ----------------------------------------------------------------------------------------------- decoders


def gaussian_nll(x0: Tensor, mean: Tensor, std: Tensor | float) -> Tensor:
    """The continuous decoder ``-log N(x_0; mean, std² I)``, summed over dimensions, shape ``(n,)``, float64.

    A *density*, not a probability: for data on a lattice it is no code length, and as ``std → 0`` it goes to
    ``-∞`` (Theis et al. 2016, §3.1). Use :func:`discretized_gaussian_nll` for discrete data.

    Args:
        x0: data, shape ``(n, ...)``; mean: same shape; std: a positive number or shape ``(n,)``.
    """
    x0 = _check_batch(x0, "x0")
    check_state(mean, "mean")
    _check_same(x0, mean, "x0", "mean")
    x = x0.double()
    s = torch.as_tensor(std, dtype=torch.float64, device=x.device)
    if s.ndim == 1 and s.shape[0] == x.shape[0]:
        s = per_sample(s, x)
    elif s.ndim != 0:
        raise ValueError(f"std must be a number or have shape ({x.shape[0]},), got {tuple(s.shape)}")
    if not bool((s > 0).all()):
        raise ValueError("std must be positive")
    z = (x - mean.double()) / s
    return _sum_dims(0.5 * z**2 + torch.log(s).expand_as(x) + 0.5 * math.log(2.0 * math.pi))


def discretized_gaussian_nll(x0: Tensor, mean: Tensor, std: Tensor | float, levels: int) -> Tensor:
    """DDPM's discrete decoder: ``-log P(x_0)`` where each coordinate's probability is the mass of
    ``N(mean, std²)`` on the bin of its value (Ho et al. 2020, eq. 13), summed over dimensions, shape ``(n,)``.

    The data lie on ``levels`` equally spaced values ``-1, -1 + 2/(levels - 1), …, 1``; the bin of a value is
    ``[x - h, x + h]`` with ``h = 1/(levels - 1)``, and the two extreme bins extend to ``∓∞``, so the probabilities
    of all values sum to one. ``levels = 256`` is 8-bit images scaled by ``x/127.5 - 1`` (DDPM's convention);
    the 8 × 8 digits have ``levels = 17`` (``v/8 - 1``).

    Args:
        x0: data on the lattice, shape ``(n, ...)``.
        mean: the decoder mean ``μ_θ(x_1, 1)``, same shape.
        std: the decoder standard deviation, a positive number or shape ``(n,)``.
        levels: the number of values, ``>= 2``.
    Returns:
        Nats per example, float64, ``>= 0``.
    Raises:
        ValueError: if ``x0`` is not on the lattice, or a shape or ``levels`` is wrong.
    """
    x0 = _check_batch(x0, "x0")
    check_state(mean, "mean")
    _check_same(x0, mean, "x0", "mean")
    if isinstance(levels, bool) or not isinstance(levels, int) or levels < 2:
        raise ValueError(f"levels must be an int >= 2, got {levels!r}")
    x = x0.double()
    k = (x + 1.0) * (levels - 1) / 2.0
    if not bool((k - k.round()).abs().max() < 1e-3) or bool(k.round().min() < 0) or bool(k.round().max() > levels - 1):
        raise ValueError(f"x0 must lie on the {levels} values -1 + 2k/{levels - 1}, k = 0 … {levels - 1}")
    s = torch.as_tensor(std, dtype=torch.float64, device=x.device)
    if s.ndim == 1 and s.shape[0] == x.shape[0]:
        s = per_sample(s, x)
    elif s.ndim != 0:
        raise ValueError(f"std must be a number or have shape ({x.shape[0]},), got {tuple(s.shape)}")
    if not bool((s > 0).all()):
        raise ValueError("std must be positive")
    h = 1.0 / (levels - 1)
    m = mean.double()
    lo = torch.where(k.round() <= 0, torch.full_like(x, -math.inf), (x - h - m) / s)
    hi = torch.where(k.round() >= levels - 1, torch.full_like(x, math.inf), (x + h - m) / s)
    # log(Φ(hi) - Φ(lo)) without cancellation: reflect so that the bin lies in the lower tail, then
    # log Φ(b) + log(1 - exp(log Φ(a) - log Φ(b))).
    flip = (lo + hi) > 0
    a = torch.where(flip, -hi, lo)
    b = torch.where(flip, -lo, hi)
    log_b = torch.special.log_ndtr(b)
    log_p = log_b + torch.log(-torch.expm1((torch.special.log_ndtr(a) - log_b).clamp(max=-1e-300)))
    return -_sum_dims(log_p)


# ---------------------------------------------------------------------------------------------- the bound


def _strata(T: int, n_t: int | None) -> list[tuple[int, int]]:
    """Contiguous strata ``[lo, hi]`` (inclusive, 1-based) covering the steps ``2 … T``."""
    if T < 2:
        return []
    if n_t is None:
        return [(t, t) for t in range(2, T + 1)]
    # geometric edges: the early steps, where the terms are largest and change fastest, get narrow strata
    k = min(n_t, T - 1)
    geometric = torch.logspace(math.log10(2), math.log10(T + 1), k + 1, dtype=torch.float64)
    edges = sorted(set(geometric.round().long().tolist()))
    while len(edges) < k + 1:  # merged duplicates: split the widest strata until there are k
        widths = [b - a for a, b in zip(edges[:-1], edges[1:])]
        i = max(range(len(widths)), key=widths.__getitem__)
        edges.insert(i + 1, (edges[i] + edges[i + 1]) // 2)
    return [(lo, hi - 1) for lo, hi in zip(edges[:-1], edges[1:])]


@torch.no_grad()
def elbo_terms(
    eps_model: EpsModel,
    x0: Tensor,
    betas: Tensor,
    *,
    levels: int | None,
    variance: Variance = "beta_tilde",
    n_t: int | None = None,
    generator: torch.Generator | None = None,
) -> ELBOTerms:
    """The DDPM bound ``L_T + Σ_{t=2}^T L_{t-1} + L_0`` on ``-log p_θ(x_0)`` for each example, in nats
    (Ho et al. 2020, eq. 5, with the discrete decoder of eq. 13).

    Each ``L_{t-1}`` uses one draw ``x_t ~ q(x_t | x_0)`` and :func:`~diffbook.foundations.ddpm.step_kl`; ``L_0`` one draw of
    ``x_1`` and :func:`discretized_gaussian_nll` with ``σ_1 = √β_1`` (or :func:`gaussian_nll` for continuous data,
    where the bound is on a density). With ``n_t = None`` every step ``2 … T`` is evaluated
    (``T - 1`` calls of ``eps_model``); with ``n_t = k`` the steps are cut into ``k`` contiguous strata
    (geometrically spaced, so the first steps, where the terms are largest, are strata of their own) and one
    step per stratum and example is drawn uniformly, weighted by the stratum's size: an unbiased estimate
    of the sum with ``k`` calls.

    Args:
        eps_model: ``ε̂(x_t, t)`` (see :data:`~diffbook.foundations.ddpm.EpsModel`), e.g.
            :func:`~diffbook.foundations.ddpm.eps_from_denoiser` of a trained model.
        x0: data on the lattice of ``levels`` values in ``[-1, 1]``, shape ``(n, ...)``.
        betas: the β table, shape ``(T,)`` with ``T >= 2``.
        levels: number of data values (17 for the digits, 256 for 8-bit images), or ``None`` for continuous
            data and the continuous decoder (then the bound is on ``-log`` of a density).
        variance: ``σ_t²`` of the reverse steps, see :func:`~diffbook.foundations.ddpm.reverse_variance`.
        n_t: ``None`` for the exact sum over steps, or the number of strata of the estimate.
        generator: randomness of the noise and of the steps drawn.
    Returns:
        :class:`ELBOTerms`: the terms per example, their split over the strata, and ``L_simple`` of the same
        draws (so the two objectives can be compared on one set of noise).
    """
    if not callable(eps_model):
        raise TypeError(f"eps_model must be callable as eps_model(x_t, t), got {type(eps_model).__name__}")
    x0 = _check_batch(x0, "x0")
    b, _, _ = ddpm_tables(betas)
    T = len(b)
    if T < 2:
        raise ValueError("betas must have at least 2 steps")
    if n_t is not None and (isinstance(n_t, bool) or not isinstance(n_t, int) or n_t < 1):
        raise ValueError(f"n_t must be None or a positive int, got {n_t!r}")
    n = x0.shape[0]
    dev = generator.device if generator is not None else torch.device("cpu")

    def draw_eps() -> Tensor:
        return torch.randn(x0.shape, generator=generator, dtype=x0.dtype, device=dev).to(x0.device)

    strata = [(1, 1), *_strata(T, n_t)]
    per_stratum = torch.zeros(n, len(strata), dtype=torch.float64)
    sq_err = torch.zeros(n, len(strata), dtype=torch.float64)
    d = x0[0].numel()
    for j, (lo, hi) in enumerate(strata):
        t = torch.randint(lo, hi + 1, (n,), generator=generator, device=dev).to(x0.device)
        eps = draw_eps()
        xt = forward_marginal(x0, t, b, eps)
        eps_pred = eps_model(xt, t)
        sq_err[:, j] = _sum_dims((eps.double() - eps_pred.double()) ** 2).cpu() / d
        if j == 0:  # the decoder L_0 = -log p(x_0 | x_1), σ_1 = √β_1
            mean = mean_from_eps(xt, eps_pred, t, b)
            std = float(b[0].sqrt())
            nll = gaussian_nll(x0, mean, std) if levels is None else discretized_gaussian_nll(x0, mean, std, levels)
            per_stratum[:, 0] = nll.cpu()
        else:
            per_stratum[:, j] = (hi - lo + 1) * step_kl(eps_pred, eps, t, b, variance).cpu()
    sizes = torch.tensor([hi - lo + 1 for lo, hi in strata], dtype=torch.float64)
    decoder, diffusion = per_stratum[:, 0], per_stratum[:, 1:].sum(1)
    prior = prior_kl(x0, b).cpu()
    return ELBOTerms(
        prior=prior, diffusion=diffusion, decoder=decoder, total=prior + diffusion + decoder,
        simple=(sq_err * sizes).sum(1) / T, strata=torch.tensor(strata, dtype=torch.int64),
        per_stratum=per_stratum, sq_err=sq_err,
    )


# ----------------------------------------------------------------------------------------------- baseline


def lattice_index(x: Tensor, levels: int) -> Tensor:
    """The level ``k ∈ {0, …, levels - 1}`` of data on the lattice ``x = -1 + 2k/(levels - 1)``, int64, shape of ``x``.

    Raises:
        ValueError: if ``levels < 2`` or a value of ``x`` is off the lattice.
    """
    check_state(x, "x")
    if isinstance(levels, bool) or not isinstance(levels, int) or levels < 2:
        raise ValueError(f"levels must be an int >= 2, got {levels!r}")
    k = (x.double() + 1.0) * (levels - 1) / 2.0
    idx = k.round()
    if x.numel() and (bool((k - idx).abs().max() > 1e-3) or bool(idx.min() < 0) or bool(idx.max() > levels - 1)):
        raise ValueError(f"x must lie on the {levels} values -1 + 2k/{levels - 1}, k = 0 … {levels - 1}")
    return idx.long()


def pixel_histograms(x: Tensor, levels: int, *, smoothing: float = 0.5) -> Tensor:
    """Fit the *independent-pixel* model: one categorical distribution over the ``levels`` values per dimension,
    with add-``smoothing`` (Laplace/Jeffreys) counts. A baseline that knows each pixel's histogram and nothing
    of how pixels go together (Theis et al. 2016, §3: likelihood and sample quality can disagree).

    Args:
        x: training data on the lattice, shape ``(n, ...)``.
        levels: number of values.
        smoothing: pseudo-count added to every value, ``> 0`` (so unseen values keep a finite code length).
    Returns:
        Probabilities of shape ``(D, levels)``, float64, rows summing to 1.
    """
    x = _check_batch(x, "x")
    if isinstance(smoothing, bool) or not isinstance(smoothing, (int, float)) or not smoothing > 0:
        raise ValueError(f"smoothing must be a positive number, got {smoothing!r}")
    idx = lattice_index(x, levels).flatten(1).cpu()  # (n, D)
    counts = torch.full((idx.shape[1], levels), float(smoothing), dtype=torch.float64)
    counts.scatter_add_(1, idx.T.contiguous(), torch.ones(idx.T.shape, dtype=torch.float64))
    return counts / counts.sum(1, keepdim=True)


def pixel_histogram_nll(probs: Tensor, x: Tensor, levels: int) -> Tensor:
    """``-log P(x)`` in nats under the independent-pixel model ``probs`` ``(D, levels)``, shape ``(n,)``: an exact
    code length, no bound."""
    check_state(probs, "probs")
    x = _check_batch(x, "x")
    idx = lattice_index(x, levels).flatten(1).cpu()
    if probs.shape != (idx.shape[1], levels):
        raise ValueError(f"probs must have shape ({idx.shape[1]}, {levels}), got {tuple(probs.shape)}")
    return -torch.log(probs.double().cpu().gather(1, idx.T.contiguous())).sum(0)


def pixel_histogram_sample(
    probs: Tensor, n: int, shape: tuple[int, ...], *, generator: torch.Generator | None = None
) -> Tensor:
    """``n`` draws from the independent-pixel model ``probs`` ``(D, levels)``, as lattice values in ``[-1, 1]`` of
    shape ``(n, *shape)`` with ``prod(shape) = D``, float32."""
    check_state(probs, "probs")
    check_int(n, "n")
    if probs.ndim != 2 or math.prod(shape) != probs.shape[0]:
        raise ValueError(f"probs must have shape (D, levels) with D = prod(shape) = {math.prod(shape)}, "
                         f"got {tuple(probs.shape)}")
    levels = probs.shape[1]
    k = torch.multinomial(probs.double(), n, replacement=True, generator=generator).T  # (n, D)
    return (-1.0 + 2.0 * k.float() / (levels - 1)).reshape((n, *shape))
