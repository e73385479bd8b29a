"""A plain pre-LayerNorm Vision Transformer block and a cross-attention layer (no conditioning).

``x ← x + Attn(LN(x)); x ← x + MLP(LN(x))`` (Dosovitskiy et al. 2021, Eqs. 2–3). The cross-attention layer
lets a few query tokens read a longer sequence: ``softmax(q kᵀ / √d) v`` with ``q`` from the queries and
``k, v`` from the context (Vaswani et al. 2017, Eq. 1); its attention weights can be returned for plots.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from diffbook._checks import check_int, check_real, check_state
from diffbook.nets.attention import MultiHeadAttention

__all__ = ["ViTBlock", "CrossAttention"]


class ViTBlock(nn.Module):
    """One pre-LN transformer block on tokens ``(n, L, dim)``.

    Args:
        dim: token width.
        heads: attention heads (must divide ``dim``).
        mlp_ratio: hidden width of the MLP as a multiple of ``dim``.

    Reference: Dosovitskiy et al. (2021), Eqs. 2–3.
    """

    def __init__(self, dim: int, heads: int, mlp_ratio: float = 4.0) -> None:
        super().__init__()
        check_int(dim, "dim")
        check_int(heads, "heads")
        check_real(mlp_ratio, "mlp_ratio", positive=True)
        self.norm1 = nn.LayerNorm(dim)
        self.attn = MultiHeadAttention(dim, heads)
        self.norm2 = nn.LayerNorm(dim)
        hidden = max(1, int(round(dim * mlp_ratio)))
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))

    def forward(self, x: Tensor) -> Tensor:
        """``x``: shape ``(n, L, dim)``; returns the same shape."""
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class CrossAttention(nn.Module):
    """Multi-head cross-attention from queries ``(n, K, dim)`` to a context ``(n, L, dim)``.

    Args:
        dim: token width of queries and context.
        heads: attention heads (must divide ``dim``).

    Reference: Vaswani et al. (2017), Eq. 1 and §3.2.2.
    """

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        check_int(dim, "dim")
        check_int(heads, "heads")
        if dim % heads:
            raise ValueError(f"heads must divide dim={dim}, got {heads!r}")
        self.dim, self.heads, self.head_dim = dim, heads, dim // heads
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(dim, 2 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, queries: Tensor, context: Tensor, *, return_weights: bool = False) -> Tensor | tuple[Tensor, Tensor]:
        """Attend from ``queries`` ``(n, K, dim)`` to ``context`` ``(n, L, dim)``.

        Returns:
            Shape ``(n, K, dim)``; with ``return_weights`` also the weights ``(n, heads, K, L)`` (rows sum to 1).
        """
        check_state(queries, "queries")
        check_state(context, "context")
        if queries.ndim != 3 or queries.shape[-1] != self.dim:
            raise ValueError(f"queries must have shape (n, K, {self.dim}), got {tuple(queries.shape)}")
        if context.ndim != 3 or context.shape[-1] != self.dim or context.shape[0] != queries.shape[0]:
            raise ValueError(f"context must have shape ({queries.shape[0]}, L, {self.dim}), got {tuple(context.shape)}")
        n, k, _ = queries.shape
        length = context.shape[1]
        q = self.q(queries).view(n, k, self.heads, self.head_dim).transpose(1, 2)
        kk, v = self.kv(context).view(n, length, 2, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)
        weights = torch.softmax(q @ kk.transpose(-1, -2) / self.head_dim**0.5, dim=-1)  # (n, heads, K, L)
        out = self.proj((weights @ v).transpose(1, 2).reshape(n, k, self.dim))
        return (out, weights) if return_weights else out
