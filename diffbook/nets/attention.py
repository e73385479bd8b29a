"""Multi-head self-attention on ``scaled_dot_product_attention``, with RoPE, (block-)causal masks and a KV cache.

``softmax(q kᵀ / √D) v`` per head (Vaswani et al. 2017, eq. 1). A *block-causal* mask lets token ``i``
attend to token ``j`` when ``j``'s block is not after ``i``'s (blocks of ``block_size`` consecutive
tokens; ``block_size = 1`` is the ordinary causal mask). Under such a mask the keys and values of earlier
tokens never change, so a sequence can be processed block by block, keeping the earlier keys and values
in a :class:`KVCache`: the result equals one masked pass over the whole sequence. The cache is an
explicit, immutable value passed in and returned; the module holds no state between calls.

References: Vaswani et al., *Attention Is All You Need* (2017); block-causal attention with a KV cache
as in autoregressive-diffusion hybrids, e.g. Arriola et al., *Block Diffusion* (2025).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from diffbook._checks import check_int, check_state
from diffbook.nets.rope import Rotary, apply_rotary, rotary_tables

__all__ = ["KVCache", "block_causal_mask", "MultiHeadAttention"]


@dataclass(frozen=True)
class KVCache:
    """The keys (already rotated by RoPE) and values of the tokens seen so far.

    Attributes:
        k, v: shape ``(n, heads, length, head_dim)`` each.

    Reference: Pope et al. (2023), *Efficiently Scaling Transformer Inference*, §2 (the KV cache); Arriola et al. (2025), §3 (block-causal diffusion).
    """

    k: Tensor
    v: Tensor

    def __post_init__(self) -> None:
        for name, t in (("k", self.k), ("v", self.v)):
            check_state(t, name)
            if t.ndim != 4:
                raise ValueError(f"{name} must have shape (n, heads, length, head_dim), got {tuple(t.shape)}")
        if self.k.shape != self.v.shape:
            raise ValueError(f"k and v must have the same shape, got {tuple(self.k.shape)} and {tuple(self.v.shape)}")

    @property
    def length(self) -> int:
        """How many tokens are cached."""
        return self.k.shape[2]

    def extend(self, k: Tensor, v: Tensor) -> KVCache:
        """A new cache with ``k, v`` of shape ``(n, heads, L_new, head_dim)`` appended; ``self`` is unchanged."""
        return KVCache(torch.cat([self.k, k], dim=2), torch.cat([self.v, v], dim=2))


def block_causal_mask(
    q_len: int, k_len: int, block_size: int, *, device: torch.device | str | None = None
) -> Tensor:
    """Boolean attention mask, ``True`` where a query may attend to a key.

    The queries are the *last* ``q_len`` of the ``k_len`` tokens (global positions ``k_len - q_len`` to
    ``k_len - 1``), so the same function serves a full pass (``q_len = k_len``) and a cached pass.
    Query ``i`` sees key ``j`` iff ``j // block_size <= i // block_size``.

    Returns:
        Shape ``(q_len, k_len)``, dtype bool.

    Reference: Arriola et al. (2025), *Block Diffusion*, §3 (block-causal attention mask).
    """
    check_int(q_len, "q_len")
    check_int(k_len, "k_len")
    check_int(block_size, "block_size")
    if not 1 <= q_len <= k_len:
        raise ValueError(f"need 1 <= q_len <= k_len, got q_len={q_len}, k_len={k_len}")
    q_block = torch.arange(k_len - q_len, k_len, device=device) // block_size
    k_block = torch.arange(k_len, device=device) // block_size
    return k_block[None, :] <= q_block[:, None]


class MultiHeadAttention(nn.Module):
    """Multi-head self-attention with a fused ``qkv`` projection (Vaswani et al. 2017, §3.2.2).

    Args:
        dim: token width ``D``.
        heads: number of heads; ``D`` must be divisible by it.
        qkv_bias: whether the ``qkv`` projection has a bias.

    Reference: Vaswani et al. (2017), Eq. 1 and §3.2.2 (scaled dot-product and multi-head attention).
    """

    def __init__(self, dim: int, heads: int, *, qkv_bias: bool = True) -> None:
        super().__init__()
        check_int(dim, "dim")
        check_int(heads, "heads")
        if dim % heads:
            raise ValueError(f"heads must be a positive int dividing dim={dim}, got {heads!r}")
        self.dim, self.heads, self.head_dim = dim, heads, dim // heads
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def _project(self, x: Tensor, rope: Tensor | Rotary | None) -> tuple[Tensor, Tensor, Tensor]:
        check_state(x, "x")
        if x.ndim != 3 or x.shape[-1] != self.dim or x.shape[0] == 0 or x.shape[1] == 0:
            raise ValueError(f"x must have shape (n, L, {self.dim}) with n, L >= 1, got {tuple(x.shape)}")
        n, length, _ = x.shape
        q, k, v = self.qkv(x).view(n, length, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)
        if rope is not None:
            cos, sin = rope if isinstance(rope, tuple) else rotary_tables(rope)
            if cos.shape[-2:] != (length, self.head_dim):
                raise ValueError(f"rope angles must end in shape ({length}, {self.head_dim // 2}) "
                                 f"(tables: ({length}, {self.head_dim})), got {tuple(cos.shape)}")
            if cos.ndim == 3:  # per-sample tables (n, L, D): broadcast over heads
                cos, sin = cos[:, None], sin[:, None]
            q, k = apply_rotary(q, (cos, sin)), apply_rotary(k, (cos, sin))
        return q, k, v

    def _merge(self, out: Tensor) -> Tensor:
        n, _, length, _ = out.shape
        return self.proj(out.transpose(1, 2).reshape(n, length, self.dim))

    def forward(
        self, x: Tensor, rope: Tensor | Rotary | None = None, *, mask: Tensor | None = None, block_size: int | None = None
    ) -> Tensor:
        """Attend over the whole sequence.

        Args:
            x: tokens, shape ``(n, L, D)``.
            rope: RoPE angles for the ``L`` tokens, shape ``(L, head_dim/2)`` or ``(n, L, head_dim/2)``
                (from :func:`~diffbook.nets.rope.rope_angles` or ``axial_rope_angles``), or their
                precomputed ``(cos, sin)`` tables (:func:`~diffbook.nets.rope.rotary_tables`); ``None`` for none.
            mask: boolean mask, ``True`` = may attend, broadcastable to ``(n, heads, L, L)``.
            block_size: use the block-causal mask with this block size (1 = causal). Not with ``mask``.
        Returns:
            Shape ``(n, L, D)``.
        """
        if mask is not None and block_size is not None:
            raise ValueError("give either mask or block_size, not both")
        if mask is not None and not isinstance(mask, Tensor):
            raise TypeError(f"mask must be a boolean tensor or None, got {type(mask).__name__}")
        if block_size is not None:
            check_int(block_size, "block_size")
        q, k, v = self._project(x, rope)
        if block_size == 1:
            out = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        else:
            if block_size is not None:
                mask = block_causal_mask(x.shape[1], x.shape[1], block_size, device=x.device)
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        return self._merge(out)

    def forward_cached(
        self, x: Tensor, cache: KVCache | None = None, rope: Tensor | Rotary | None = None, *, block_size: int | None = None,
        mask: Tensor | None = None,
    ) -> tuple[Tensor, KVCache]:
        """Attend from new tokens to the cached tokens and to themselves; return the extended cache.

        The result equals :meth:`forward` with ``block_size`` over the whole sequence only when every call
        starts and ends on a block boundary: a block split across calls cannot see its own later tokens.

        Args:
            x: the new tokens, shape ``(n, L_new, D)``; their global positions follow the cached ones.
            cache: keys and values of the earlier tokens, or ``None`` at the start.
            rope: RoPE angles for the *new* tokens' positions, shape ``(L_new, head_dim/2)``.
            block_size: block-causal mask within the new tokens, counted in global positions. ``None``
                treats the new tokens as one block: they all see each other and everything cached.
            mask: instead of ``block_size``, any boolean mask (``True`` = may attend) broadcastable to
                ``(n, heads, L_new, cache.length + L_new)``, e.g. a sliding-window or encoder-decoder pattern.
        Returns:
            ``(out, cache)``: shape ``(n, L_new, D)`` and the cache with ``L_new`` more tokens.
        """
        if cache is not None and not isinstance(cache, KVCache):
            raise TypeError(f"cache must be a KVCache or None, got {type(cache).__name__}")
        if mask is not None and block_size is not None:
            raise ValueError("give either mask or block_size, not both")
        if mask is not None and not isinstance(mask, Tensor):
            raise TypeError(f"mask must be a boolean tensor or None, got {type(mask).__name__}")
        if block_size is not None:
            check_int(block_size, "block_size")
        q, k, v = self._project(x, rope)
        new_cache = KVCache(k, v) if cache is None else cache.extend(k, v)
        if block_size is not None:
            mask = block_causal_mask(x.shape[1], new_cache.length, block_size, device=x.device)
        out = F.scaled_dot_product_attention(q, new_cache.k, new_cache.v, attn_mask=mask)
        return self._merge(out), new_cache
