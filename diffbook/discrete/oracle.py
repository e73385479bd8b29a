"""The exact oracle: ``D`` and ``L`` at any noise level for data from a first-order Markov chain.

For data drawn from a Markov chain ``x^1 → x^2 → …`` (initial distribution ``π``, transition matrix ``P``) and
a noise model that acts on each token independently, the noisy sequence is a hidden Markov model whose
emission at position ``i`` is ``e_i(k) = q(z^i | x^i = k)``. One forward–backward pass gives, exactly,

* the **denoiser** ``D^i(k) = P(x^i = k | z) ∝ f_i(k) e_i(k) b_i(k)``, and
* the **leave-one-out posterior** ``L^i(k) = P(x^i = k | z^{−i}) ∝ f_i(k) b_i(k)`` (the same pass, without
  position ``i``'s own emission),

where ``f_i`` is the predictive forward message and ``b_i`` the backward message. The adapters at the end
turn a chain into the "network" of every sampler: :func:`uniform_oracle` (``z ↦`` logits of ``L`` or ``D``),
:func:`masked_oracle` (MDM) and :func:`audm_oracle` (AUDM, which also sees ``u``).

Reference: L. R. Rabiner, *A Tutorial on Hidden Markov Models* (Proc. IEEE 1989), Eqs. 18–27 (scaled
forward–backward); Gourevitch et al. (2026) for ``L`` versus ``D``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from diffbook._checks import check_real
from diffbook.discrete.schedule import check_tokens

__all__ = ["MarkovChain", "fit_chain", "forward_backward", "uniform_emissions", "masked_emissions",
           "audm_emissions", "uniform_posteriors", "uniform_oracle", "masked_oracle", "audm_oracle", "unigram_entropy"]

Model = Callable[..., Tensor]


@dataclass(frozen=True)
class MarkovChain:
    """A first-order Markov chain over ``K`` tokens.

    Attributes:
        initial: ``π``, shape ``(K,)``: the law of the first token; non-negative, sums to one.
        transition: ``P``, shape ``(K, K)``: ``P[j, k] = P(x^{i+1} = k | x^i = j)``; rows sum to one.
    """

    initial: Tensor
    transition: Tensor

    def __post_init__(self) -> None:
        for name, t, shape_ok in (("initial", self.initial, lambda t: t.ndim == 1),
                                  ("transition", self.transition, lambda t: t.ndim == 2 and t.shape[0] == t.shape[1])):
            if not isinstance(t, Tensor) or not t.is_floating_point():
                raise TypeError(f"{name} must be a floating-point tensor, got {type(t).__name__}")
            if not shape_ok(t) or t.shape[0] < 2:
                raise ValueError(f"{name} must have shape {'(K,)' if name == 'initial' else '(K, K)'} with K >= 2, "
                                 f"got {tuple(t.shape)}")
            if not bool(torch.isfinite(t).all()) or bool((t < 0).any()):
                raise ValueError(f"{name} must have finite, non-negative entries; got minimum {float(t.min())}")
            sums = t.sum(-1)
            if not bool(torch.allclose(sums.double(), torch.ones_like(sums.double()), atol=1e-6)):
                worst = float((sums.double() - 1).abs().max())
                what = "rows" if t.ndim == 2 else "entries"
                raise ValueError(f"{name} {what} must sum to one; off by up to {worst:.3g}")
        if self.initial.shape[0] != self.transition.shape[0]:
            raise ValueError(f"initial has {self.initial.shape[0]} states but transition {self.transition.shape[0]}")
        object.__setattr__(self, "initial", self.initial.double())
        object.__setattr__(self, "transition", self.transition.double())

    @property
    def vocab(self) -> int:
        """``K``, the number of tokens."""
        return self.initial.shape[0]

    def sample(self, n: int, length: int, *, generator: torch.Generator | None = None) -> Tensor:
        """``n`` sequences of ``length`` tokens, shape ``(n, length)``, int64."""
        _check_size(n, "n"), _check_size(length, "length")
        out = torch.empty(n, length, dtype=torch.long)
        out[:, 0] = torch.multinomial(self.initial.expand(n, -1), 1, generator=generator)[:, 0]
        for i in range(1, length):
            out[:, i] = torch.multinomial(self.transition[out[:, i - 1]], 1, generator=generator)[:, 0]
        return out

    def log_prob(self, x: Tensor) -> Tensor:
        """``log p(x)`` in nats, shape ``(n,)`` for ``x`` of shape ``(n, L)``."""
        check_tokens(x, self.vocab, "x")
        if x.ndim != 2:
            raise ValueError(f"x must have shape (n, L), got {tuple(x.shape)}")
        x = x.cpu()
        lp = self.initial[x[:, 0]].log()
        if x.shape[1] > 1:
            lp = lp + self.transition[x[:, :-1], x[:, 1:]].log().sum(1)
        return lp

    def stationary(self) -> Tensor:
        """The stationary distribution ``μ = μ P``, shape ``(K,)`` (power iteration)."""
        mu = self.initial.clone()
        for _ in range(2000):
            mu = mu @ self.transition
        return mu / mu.sum()

    def entropy_rate(self) -> float:
        """``−Σ_j μ_j Σ_k P_jk log P_jk`` in nats per token."""
        p = self.transition
        return float(-(self.stationary()[:, None] * torch.where(p > 0, p * p.log(), torch.zeros_like(p))).sum())


def _check_size(v: object, name: str) -> None:
    if isinstance(v, bool) or not isinstance(v, int) or v < 1:
        raise ValueError(f"{name} must be a positive int (sequence length zero has no tokens), got {v!r}")


def fit_chain(ids: Tensor, vocab: int, *, smoothing: float = 0.1) -> MarkovChain:
    """Fit a bigram chain to a token stream: ``P ∝`` bigram counts ``+ smoothing``; ``π`` = the unigram frequencies.

    Args:
        ids: shape ``(N,)``, N >= 2, token ids.
        vocab: ``K``.
        smoothing: add-λ pseudo-count on every transition (> 0 keeps every ``P`` entry positive).
    """
    check_tokens(ids, vocab, "ids")
    if ids.ndim != 1 or ids.numel() < 2:
        raise ValueError(f"ids must be a 1-D stream of at least 2 tokens, got shape {tuple(ids.shape)}")
    smoothing = check_real(smoothing, "smoothing", positive=True)
    ids = ids.cpu()
    counts = torch.zeros(vocab * vocab, dtype=torch.float64)
    counts.index_add_(0, ids[:-1] * vocab + ids[1:], torch.ones(ids.numel() - 1, dtype=torch.float64))
    counts = counts.view(vocab, vocab) + smoothing
    uni = torch.bincount(ids, minlength=vocab).double() + smoothing
    return MarkovChain(uni / uni.sum(), counts / counts.sum(1, keepdim=True))


def forward_backward(chain: MarkovChain, emissions: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Exact posteriors of a chain observed through per-position emission likelihoods.

    Args:
        chain: the prior over clean sequences.
        emissions: ``e[n, i, k] = q(z^i | x^i = k)`` (any positive scale per position), shape ``(n, L, K)``.
    Returns:
        ``(D, L, log_evidence)``: ``D[n, i] = P(x^i | z)`` and ``L[n, i] = P(x^i | z^{−i})``, each ``(n, L, K)``
        float64, and ``log Σ_x p(x) Π_i e_i(x^i)`` of shape ``(n,)``.

    Reference: Rabiner (1989), Eqs. 18–27 (scaled forward–backward).
    """
    if not isinstance(emissions, Tensor) or emissions.ndim != 3 or emissions.shape[-1] != chain.vocab:
        raise ValueError(f"emissions must have shape (n, L, {chain.vocab}), got "
                         f"{tuple(emissions.shape) if isinstance(emissions, Tensor) else type(emissions).__name__}")
    if emissions.shape[1] == 0:
        raise ValueError("emissions must have sequence length >= 1, got 0")
    e = emissions.double().cpu()
    n, length, vocab = e.shape
    P = chain.transition
    pred = torch.empty(n, length, vocab, dtype=torch.float64)  # f_i: P(x^i | z^{<i}) (normalised)
    log_ev = torch.zeros(n, dtype=torch.float64)
    f = chain.initial.expand(n, vocab)
    for i in range(length):
        pred[:, i] = f
        post = f * e[:, i]
        c = post.sum(-1, keepdim=True)
        log_ev += c[:, 0].log()
        f = (post / c) @ P
    back = torch.empty(n, length, vocab, dtype=torch.float64)  # b_i ∝ P(z^{>i} | x^i)
    b = torch.ones(n, vocab, dtype=torch.float64)
    for i in range(length - 1, -1, -1):
        back[:, i] = b
        b = (e[:, i] * b) @ P.T
        b = b / b.sum(-1, keepdim=True)
    loo = pred * back
    loo = loo / loo.sum(-1, keepdim=True)
    den = loo * e
    den = den / den.sum(-1, keepdim=True)
    return den, loo, log_ev


def _alpha_col(alpha: Tensor | float, n: int) -> Tensor:
    a = torch.as_tensor(alpha, dtype=torch.float64).cpu()
    if a.is_complex() or not bool(torch.isfinite(a).all()) or bool((a < 0).any()) or bool((a > 1).any()):
        raise ValueError(f"alpha must lie in [0, 1], got {a.flatten()[:4].tolist()}")
    if a.ndim == 0:
        a = a.expand(n)
    if a.shape != (n,):
        raise ValueError(f"alpha must be a number or have shape ({n},), got {tuple(a.shape)}")
    return a.view(n, 1, 1)


def uniform_emissions(z: Tensor, alpha: Tensor | float, vocab: int) -> Tensor:
    """``q(z^i | x^i = k) = α 1[k = z^i] + (1 − α)/K`` for uniform noise, shape ``(n, L, K)``."""
    check_tokens(z, vocab, "z")
    a = _alpha_col(alpha, z.shape[0])
    return a * torch.nn.functional.one_hot(z.cpu(), vocab).double() + (1 - a) / vocab


def masked_emissions(z: Tensor, vocab: int) -> Tensor:
    """Absorbing noise: a masked position (id ``vocab``) is uninformative (all ones), an unmasked one is one-hot.

    ``z`` of shape ``(n, L)`` gives emissions of shape ``(n, L, K)``."""
    check_tokens(z, vocab, "z", allow=vocab)
    z = z.cpu()
    e = torch.nn.functional.one_hot(z.clamp_max(vocab - 1), vocab).double()
    return torch.where((z == vocab)[..., None], torch.ones_like(e), e)


def audm_emissions(z: Tensor, u: Tensor, alpha: Tensor | float, vocab: int) -> Tensor:
    """AUDM given ``u``: ``q(z^i | x^i = k, u^i) = α 1[k = z^i] + (1 − α) 1[z^i = u^i]``, shape ``(n, L, K)``.

    An inactive token (``z^i ≠ u^i``) is provably clean; an active one (``z^i = u^i``) is ``u^i`` with weight
    ``α + (1 − α)`` and any other token with weight ``1 − α``.
    """
    check_tokens(z, vocab, "z")
    check_tokens(u, vocab, "u")
    a = _alpha_col(alpha, z.shape[0])
    z, u = z.cpu(), u.cpu()
    return a * torch.nn.functional.one_hot(z, vocab).double() + (1 - a) * (z == u)[..., None].double()


def uniform_posteriors(chain: MarkovChain, z: Tensor, alpha: Tensor | float) -> tuple[Tensor, Tensor]:
    """``(D, L)`` for uniform noise at level ``α``: shapes ``(n, L, K)``; ``z`` of shape ``(n, L)``."""
    d, l, _ = forward_backward(chain, uniform_emissions(z, alpha, chain.vocab))
    return d, l


def _log(p: Tensor, like: Tensor) -> Tensor:
    return p.clamp_min(1e-300).log().to(like.device)


def uniform_oracle(chain: MarkovChain, output: str = "loo") -> Model:
    """The exact uniform-noise "network": ``model(z, alpha) -> logits`` of ``L`` (``output="loo"``) or ``D``
    (``output="denoiser"``), shape ``(n, L, K)`` float64."""
    if output not in ("loo", "denoiser"):
        raise ValueError(f"output must be 'loo' or 'denoiser', got {output!r}")

    def model(z: Tensor, alpha: Tensor) -> Tensor:
        d, l = uniform_posteriors(chain, z, alpha)
        return _log(l if output == "loo" else d, z)

    return model


def masked_oracle(chain: MarkovChain) -> Model:
    """The exact MDM "network": ``model(z, alpha) -> log P(x^i | unmasked tokens)``, shape ``(n, L, K)``.

    For a masked position this is both ``D`` and ``L`` (a mask carries no information about its value)."""

    def model(z: Tensor, alpha: Tensor) -> Tensor:
        d, _, _ = forward_backward(chain, masked_emissions(z, chain.vocab))
        return _log(d, z)

    return model


def audm_oracle(chain: MarkovChain) -> Model:
    """The exact AUDM "network": ``model(z, u, alpha) -> log P(x^i | z, u)``, shape ``(n, L, K)``."""

    def model(z: Tensor, u: Tensor, alpha: Tensor) -> Tensor:
        d, _, _ = forward_backward(chain, audm_emissions(z, u, alpha, chain.vocab))
        return _log(d, z)

    return model


def unigram_entropy(x: Tensor, vocab: int) -> Tensor:
    """Per-sample unigram entropy ``−Σ_k p̂_k log p̂_k`` (nats) of each sequence's own token frequencies.

    ``x`` of shape ``(n, L)`` gives shape ``(n,)``."""
    check_tokens(x, vocab, "x")
    counts = torch.nn.functional.one_hot(x.cpu(), vocab).double().sum(1)
    p = counts / counts.sum(-1, keepdim=True)
    return -(torch.where(p > 0, p * p.log(), torch.zeros_like(p))).sum(-1)

