"""A reference model to score samples: an interpolated Witten–Bell character n-gram.

``P_m(w | h) = (c(h w) + T(h) P_{m−1}(w | h')) / (c(h) + T(h))`` where ``h'`` drops the oldest character of the
context ``h``, ``c`` counts and ``T(h)`` is the number of distinct characters seen after ``h``; an unseen context
falls back to ``P_{m−1}``; ``P_1`` is add-one smoothed. Counts are kept as sorted integer codes (base ``K``), so
fitting and scoring are vectorised NumPy (a million characters fit in about a second).

Reference: I. H. Witten and T. C. Bell, *The zero-frequency problem* (IEEE Trans. Inf. Theory, 1991);
S. F. Chen and J. Goodman, *An Empirical Study of Smoothing Techniques for Language Modeling* (1999), §2.5.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from diffbook._checks import check_int
from diffbook.discrete.schedule import check_tokens

__all__ = ["WittenBell"]


def _codes(x: np.ndarray, m: int, vocab: int) -> np.ndarray:
    """Codes of every ``m``-gram along the last axis: shape ``(..., L − m + 1)``."""
    length = x.shape[-1]
    code = np.zeros(x.shape[:-1] + (length - m + 1,), dtype=np.int64)
    for j in range(m):
        code = code * vocab + x[..., j:length - m + 1 + j]
    return code


def _lookup(keys: np.ndarray, values: np.ndarray, query: np.ndarray) -> np.ndarray:
    if keys.size == 0:
        return np.zeros(query.shape, dtype=np.float64)
    pos = np.clip(np.searchsorted(keys, query), 0, keys.size - 1)
    return np.where(keys[pos] == query, values[pos], 0).astype(np.float64)


class WittenBell:
    """A character ``order``-gram with Witten–Bell interpolation, fitted on a token stream.

    Args:
        ids: the training stream, shape ``(N,)``, ids in ``0 … vocab − 1``.
        vocab: ``K``.
        order: the n-gram order (``1`` = unigram).
    """

    def __init__(self, ids: Tensor, vocab: int, order: int = 5) -> None:
        check_tokens(ids, vocab, "ids")
        check_int(order, "order")
        if ids.ndim != 1 or ids.numel() <= order:
            raise ValueError(f"ids must be a 1-D stream longer than order={order}, got shape {tuple(ids.shape)}")
        if vocab ** order >= 2 ** 62:
            raise ValueError(f"vocab**order = {vocab}**{order} does not fit the integer codes")
        self.vocab, self.order = vocab, order
        x = ids.cpu().numpy().astype(np.int64)
        uni = np.bincount(x, minlength=vocab).astype(np.float64)
        self.unigram = (uni + 1) / (uni.sum() + vocab)
        self.grams: list[tuple[np.ndarray, np.ndarray]] = [(np.empty(0, np.int64), np.empty(0))]
        empty = np.empty(0, np.int64)
        self.contexts: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = [(empty, np.empty(0), np.empty(0))]
        for m in range(2, order + 1):
            keys, counts = np.unique(_codes(x, m, vocab), return_counts=True)
            ctx = keys // vocab
            ckeys, start, types = np.unique(ctx, return_index=True, return_counts=True)
            ccounts = np.add.reduceat(counts, start)
            self.grams.append((keys, counts.astype(np.float64)))
            self.contexts.append((ckeys, ccounts.astype(np.float64), types.astype(np.float64)))

    def token_log_probs(self, x: Tensor) -> Tensor:
        """``log P(x^i | x^{i−order+1 … i−1})`` for every position (shorter contexts at the start).

        ``x`` of shape ``(n, L)`` gives float64 of shape ``(n, L)``."""
        check_tokens(x, self.vocab, "x")
        if x.ndim != 2:
            raise ValueError(f"x must have shape (n, L), got {tuple(x.shape)}")
        a = x.cpu().numpy().astype(np.int64)
        n, length = a.shape
        p = self.unigram[a]
        for m in range(2, self.order + 1):
            if length < m:
                break
            code = _codes(a, m, self.vocab)  # (n, L − m + 1): the m-gram ending at position m − 1 + j
            ckeys, ccounts, types = self.contexts[m - 1]
            keys, counts = self.grams[m - 1]
            c_h = _lookup(ckeys, ccounts, code // self.vocab)
            t_h = _lookup(ckeys, types, code // self.vocab)
            c_hw = _lookup(keys, counts, code)
            lower = p[:, m - 1:]
            new = np.where(c_h > 0, (c_hw + t_h * lower) / np.maximum(c_h + t_h, 1e-300), lower)
            p = np.concatenate([p[:, : m - 1], new], 1)
        return torch.from_numpy(np.log(p))

    def nll(self, x: Tensor) -> Tensor:
        """Mean negative log-likelihood per character of each sequence (nats), shape ``(n,)``."""
        return -self.token_log_probs(x).mean(1)
