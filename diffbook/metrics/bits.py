"""Negative log-likelihoods in the units papers report: bits per dimension and bits per character.

Conventions (state them whenever a number is reported):

* A negative log-likelihood ``nll`` passed here is in **nats** and is the **total** for one example
  (summed over its ``D`` dimensions or characters), as returned by ``-log p(x)``.
* **Bits per dimension of images.** Integer data ``x ∈ {0, …, 2^b - 1}^D`` is *uniformly dequantised* and
  scaled to ``[-1, 1)`` by ``y = 2 (x + u) / 2^b - 1`` with ``u ~ U[0, 1)^D``: each integer level becomes a
  bin of width ``Δ = 2 / 2^b`` in ``y``. If a continuous model gives ``-log p(y)`` nats, then
  ``P(x) ≥ exp(E_u log p(y)) Δ^D`` (Jensen; Theis et al. 2016, §3.1), so the discrete bits per dimension are
  at most ``E_u[-log p(y)] / (D ln 2) + log2(1/Δ)``, with offset ``log2(1/Δ) = log2(2^b / 2) = b - 1``
  (**7 bits for 8-bit images**, the offset of Song et al. 2021's likelihood code).
  The other common scaling, ``y = 2 x / (2^b - 1) - 1`` (DDPM's ``x / 127.5 - 1``), has bins of width
  ``2 / (2^b - 1)`` and an offset of ``log2((2^b - 1) / 2)`` (6.9944 for 8 bits); pass ``levels=2**b - 1``
  to :func:`dequantization_offset` for it.
* **Bits per character** of text: total nats over the text divided by ``ln 2`` and by the number of
  characters (not tokens: with a tokenizer, divide by the characters the tokens spell).

References: L. Theis, A. van den Oord, M. Bethge, *A note on the evaluation of generative models*,
ICLR 2016, §3.1 (dequantisation bound); Y. Song et al., *Score-Based Generative Modeling through SDEs*,
ICLR 2021 (bits/dim of the probability-flow ODE; their released code adds the offset 7).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from diffbook.metrics._inputs import check_finite

__all__ = ["nats_to_bits", "dequantization_offset", "bits_per_dim", "bits_per_character", "perplexity"]

LN2 = math.log(2.0)

Number = float | Tensor


def _check_nll(nll: object) -> Number:
    if isinstance(nll, Tensor):
        if not nll.is_floating_point():
            raise TypeError(f"nll must be a floating-point tensor, got dtype {nll.dtype}")
        return check_finite(nll, "nll")
    if isinstance(nll, bool) or not isinstance(nll, (int, float)):
        raise TypeError(f"nll must be a float or a torch.Tensor of nats, got {type(nll).__name__}")
    if not math.isfinite(nll):
        raise ValueError(f"nll must be finite, got {nll!r}")
    return float(nll)


def _check_count(val: object, name: str) -> int:
    if not isinstance(val, int) or isinstance(val, bool) or val < 1:
        raise ValueError(f"{name} must be a positive int, got {val!r}")
    return val


def nats_to_bits(nll: Number) -> Number:
    """``nll / ln 2``: nats to bits (a float or a tensor of any shape)."""
    return _check_nll(nll) / LN2


def dequantization_offset(n_bits: int, *, levels: int | None = None) -> float:
    """The bits per dimension added to a continuous NLL on ``[-1, 1]`` data: ``log2(levels / 2)``.

    Args:
        n_bits: bit depth ``b`` of the integer data (8 for ordinary images).
        levels: the number of bin widths that span ``[-1, 1]``; ``2**b`` (default) for the dequantised
            ``y = 2 (x + u) / 2^b - 1`` (offset ``b - 1``), ``2**b - 1`` for ``y = 2 x / (2^b - 1) - 1``.
    """
    n_bits = _check_count(n_bits, "n_bits")
    levels = 2**n_bits if levels is None else _check_count(levels, "levels")
    if levels < 2:
        raise ValueError(f"levels must be at least 2, got {levels}")
    return n_bits - 1.0 if levels == 2**n_bits else math.log2(levels / 2.0)


def bits_per_dim(nll: Number, num_dims: int, *, n_bits: int | None = None, levels: int | None = None) -> Number:
    """Bits per dimension from a total NLL in nats.

    Args:
        nll: ``-log p`` in nats, one number per example (float, or a tensor of any shape, e.g. ``(n,)``).
        num_dims: dimensions ``D`` per example (``C * H * W`` for images).
        n_bits: if given, ``nll`` is a continuous density on data scaled to ``[-1, 1]`` and the dequantisation
            offset :func:`dequantization_offset` (``b - 1`` for the default convention) is added, giving the
            (upper bound on the) bits per dimension of the ``b``-bit integer data. If ``None``, no offset:
            the plain ``nll / (D ln 2)``, right for discrete models whose ``nll`` is already a probability.
        levels: the bin convention, see :func:`dequantization_offset`.
    Returns:
        Bits per dimension, same type and shape as ``nll``.
    """
    nll = _check_nll(nll)
    num_dims = _check_count(num_dims, "num_dims")
    out = nll / (num_dims * LN2)
    if n_bits is not None:
        out = out + dequantization_offset(n_bits, levels=levels)
    elif levels is not None:
        raise ValueError("levels needs n_bits: the offset depends on the bit depth")
    return out


def bits_per_character(nll: Number, num_characters: int) -> Number:
    """Bits per character: total NLL of a text in nats over ``num_characters * ln 2``."""
    return _check_nll(nll) / (_check_count(num_characters, "num_characters") * LN2)


def perplexity(nll: Number, num_tokens: int) -> Number:
    """``exp(nll / num_tokens)``: perplexity per token from a total NLL in nats."""
    nll = _check_nll(nll)
    mean = nll / _check_count(num_tokens, "num_tokens")
    return torch.exp(mean) if isinstance(mean, Tensor) else math.exp(mean)
