"""The block diffusion transformer (LMDM-mini) and the equal-size frame-autoregressive baseline.

A training window is ``W`` clean context bars followed by one noisy target bar and one *time token*
(the diffusion time ``t`` as a token at the end, as LMDM's "postpended" global token). The clean context
enters through ``Linear([frame · keep, keep])`` (``keep = 0`` marks a dropped bar); the noisy target through
its own ``Linear``. Two attention patterns make the context's keys and values independent of ``t`` and of
the noisy bar, so they can be cached:

- ``"encdec"``: context tokens attend only to context tokens (bidirectionally); target tokens and the
  time token attend to everything. One *prefill* of the context per bar, then ``N`` target-only passes.
- ``"blockcausal"``: bars are chunks of ``block`` tokens; chunk ``q`` attends to chunks ``q - W … q``;
  the time token belongs to the target chunk. A finished bar is never recomputed: its keys and values
  are written in the *first* denoising step of the next bar (the fused step), so a bar costs
  ``block + N (block + 1)`` token-forwards.

Reference: Novack et al. (2026), *Live Music Diffusion Models*, arXiv 2605.22717, §3 (context router,
enc-dec and block-causal caching); Arriola et al. (2025), *Block Diffusion*, §3 (block-causal KV cache).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from diffbook._checks import check_int
from diffbook.nets.attention import KVCache, MultiHeadAttention
from diffbook.nets.layers import TimestepEmbedding
from diffbook.nets.rope import rope_angles, rotary_tables

from diffbook.music.data import CHANNELS, FRAMES_PER_BAR

__all__ = [
    "TokenCounter",
    "encdec_mask",
    "window_chunk_mask",
    "BlockDiffusionTransformer",
    "FrameAR",
    "ATTENTION_KINDS",
]

ATTENTION_KINDS = ("encdec", "blockcausal")


@dataclass
class TokenCounter:
    """Counts what the transformer trunk processes: ``tokens`` (token-forwards, one per token row and
    sequence) and ``passes`` (sequential trunk calls).

    Reference: Novack et al. (2026), *Live Music Diffusion Models*, §3 (token-forward cost).
    """

    tokens: int = 0
    passes: int = 0

    def add(self, n_tokens: int) -> None:
        """Record one trunk call over ``n_tokens`` tokens."""
        self.tokens += int(n_tokens)
        self.passes += 1

    def reset(self) -> None:
        """Set both counts to zero."""
        self.tokens = self.passes = 0


def encdec_mask(n_context: int, n_rest: int, *, device: torch.device | str | None = None) -> Tensor:
    """Encoder–decoder mask over ``[context (n_context) | target and time token (n_rest)]``.

    Context queries see only context keys; the other queries see every key.

    Returns:
        Shape ``(L, L)`` with ``L = n_context + n_rest``, bool, ``True`` = may attend.

    Reference: Novack et al. (2026), §3 (enc-dec context router attention).
    """
    check_int(n_context, "n_context", minimum=0)
    check_int(n_rest, "n_rest")
    length = n_context + n_rest
    mask = torch.ones(length, length, dtype=torch.bool, device=device)
    mask[:n_context, n_context:] = False
    return mask


def window_chunk_mask(q_chunks: Tensor, k_chunks: Tensor, window: int) -> Tensor:
    """Sliding-window block-causal mask from chunk ids: query in chunk ``a`` sees key in chunk ``b``
    iff ``a - window <= b <= a``.

    Args:
        q_chunks: chunk id of each query, shape ``(Lq,)``, int.
        k_chunks: chunk id of each key, shape ``(Lk,)``, int.
        window: how many earlier chunks a chunk sees (``>= 0``).
    Returns:
        Shape ``(Lq, Lk)``, bool.

    Reference: Novack et al. (2026), §3 (block-causal attention); Arriola et al. (2025), §3.
    """
    check_int(window, "window", minimum=0)
    for name, ids in (("q_chunks", q_chunks), ("k_chunks", k_chunks)):
        if not isinstance(ids, Tensor) or ids.ndim != 1 or ids.is_floating_point():
            raise TypeError(f"{name} must be a 1-D integer tensor of chunk ids, got {ids!r:.60}")
    diff = q_chunks[:, None] - k_chunks[None, :]
    return (diff >= 0) & (diff <= window)


class _Block(nn.Module):
    """Pre-LayerNorm transformer block on the engine's :class:`MultiHeadAttention`."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float = 4.0) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = MultiHeadAttention(dim, heads)
        self.norm2 = nn.LayerNorm(dim)
        width = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, width), nn.GELU(approximate="tanh"), nn.Linear(width, dim))

    def forward(self, x: Tensor, rope: tuple[Tensor, Tensor], mask: Tensor | None) -> Tensor:
        x = x + self.attn(self.norm1(x), rope, mask=mask)
        return x + self.mlp(self.norm2(x))

    def forward_cached(self, x: Tensor, cache: KVCache | None, rope: tuple[Tensor, Tensor], mask: Tensor | None
                       ) -> tuple[Tensor, KVCache]:
        h, cache = self.attn.forward_cached(self.norm1(x), cache, rope, mask=mask)
        x = x + h
        return x + self.mlp(self.norm2(x)), cache


class _Trunk(nn.Module):
    def __init__(self, dim: int, depth: int, heads: int) -> None:
        super().__init__()
        check_int(dim, "dim")
        check_int(depth, "depth")
        check_int(heads, "heads")
        if dim % heads or (dim // heads) % 2:
            raise ValueError(f"heads must divide dim={dim} into an even head width, got heads={heads}")
        self.dim, self.heads, self.head_dim = dim, heads, dim // heads
        self.blocks = nn.ModuleList([_Block(dim, heads) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim)
        self.counter = TokenCounter()

    def rope(self, positions: Tensor) -> tuple[Tensor, Tensor]:
        return rotary_tables(rope_angles(positions, self.head_dim))  # once per pass, shared by the layers

    def run(self, h: Tensor, positions: Tensor, mask: Tensor | None) -> Tensor:
        self.counter.add(h.shape[1])
        rope = self.rope(positions)
        for block in self.blocks:
            h = block(h, rope, mask)
        return self.norm(h)

    def run_cached(self, h: Tensor, caches: list[KVCache] | None, positions: Tensor, mask: Tensor | None
                   ) -> tuple[Tensor, list[KVCache]]:
        self.counter.add(h.shape[1])
        rope = self.rope(positions)
        new = []
        for i, block in enumerate(self.blocks):
            h, c = block.forward_cached(h, None if caches is None else caches[i], rope, mask)
            new.append(c)
        return self.norm(h), new


class BlockDiffusionTransformer(nn.Module):
    """LMDM-mini: predicts the rectified-flow velocity of one target bar given clean context bars.

    Args:
        channels: features per frame (``2 · 49`` for onset + sustain piano rolls).
        context_bars: ``W``, the number of context bars in a training window.
        block: frames per bar (the chunk size), 16 for a 4/4 bar of sixteenth notes.
        dim, depth, heads: transformer width, depth and heads.
        attention: ``"encdec"`` or ``"blockcausal"``.

    Reference: Novack et al. (2026), §3; Liu et al. (2023), *Flow Straight and Fast*, Eq. 1 (rectified flow).
    """

    def __init__(self, *, channels: int = CHANNELS, context_bars: int = 4, block: int = FRAMES_PER_BAR,
                 dim: int = 96, depth: int = 3, heads: int = 4, attention: str = "encdec") -> None:
        super().__init__()
        check_int(channels, "channels")
        check_int(context_bars, "context_bars")
        check_int(block, "block")
        if FRAMES_PER_BAR % block:
            raise ValueError(f"block must divide the bar of {FRAMES_PER_BAR} frames, got block={block}")
        if attention not in ATTENTION_KINDS:
            raise ValueError(f"attention must be one of {ATTENTION_KINDS}, got {attention!r}")
        self.channels, self.context_bars, self.block, self.attention = channels, context_bars, block, attention
        self.context = context_bars * block
        self.trunk = _Trunk(dim, depth, heads)
        self.ctx_in = nn.Linear(channels + 1, dim)
        self.noisy_in = nn.Linear(channels, dim)
        self.target_tag = nn.Parameter(torch.zeros(dim))
        self.time = TimestepEmbedding(dim, scale=1000.0)
        self.out = nn.Linear(dim, channels)

    @property
    def counter(self) -> TokenCounter:
        """The trunk's :class:`TokenCounter`."""
        return self.trunk.counter

    # --- embeddings -------------------------------------------------------------------------------
    def embed_context(self, frames: Tensor, keep: Tensor) -> Tensor:
        """Clean frames ``(n, L, C)`` and ``keep`` ``(n, L)`` (0 = dropped) to tokens ``(n, L, dim)``."""
        k = keep.to(frames.dtype)[..., None]
        return self.ctx_in(torch.cat([frames * k, k], dim=-1))

    def embed_target(self, x_t: Tensor, t: Tensor) -> Tensor:
        """Noisy bar ``(n, B, C)`` and times ``(n,)`` to ``[target tokens | time token]``, ``(n, B + 1, dim)``."""
        return torch.cat([self.noisy_in(x_t) + self.target_tag, self.time(t)[:, None]], dim=1)

    def _check(self, x_t: Tensor, t: Tensor, context: Tensor, keep: Tensor | None) -> Tensor:
        for name, v in (("x_t", x_t), ("context", context), ("t", t)):
            if not isinstance(v, Tensor):
                raise TypeError(f"{name} must be a tensor, got {type(v).__name__}")
        if x_t.ndim != 3 or x_t.shape[1:] != (self.block, self.channels):
            raise ValueError(f"x_t must have shape (n, {self.block}, {self.channels}), got {tuple(x_t.shape)}")
        n = x_t.shape[0]
        if context.ndim != 3 or context.shape[0] != n or context.shape[2] != self.channels or context.shape[1] % self.block:
            raise ValueError(f"context must have shape (n={n}, k·{self.block}, {self.channels}), got {tuple(context.shape)}")
        if self.attention == "encdec" and context.shape[1] > self.context:
            raise ValueError(f"context of {context.shape[1]} frames is longer than the model's window of "
                             f"{self.context} frames ({self.context_bars} bars)")
        if t.shape != (n,):
            raise ValueError(f"t must have shape ({n},), got {tuple(t.shape)}")
        if keep is None:
            keep = torch.ones(context.shape[:2], device=context.device)
        elif keep.shape != context.shape[:2]:
            raise ValueError(f"keep must have shape {tuple(context.shape[:2])}, got {tuple(keep.shape)}")
        return keep

    def full_mask(self, n_context: int, device: torch.device | str | None = None) -> Tensor:
        """The attention mask of one uncached pass over ``[context | target | time]``, shape ``(L, L)``."""
        if self.attention == "encdec":
            return encdec_mask(n_context, self.block + 1, device=device)
        ids = self.chunk_ids(n_context // self.block, device=device)
        return window_chunk_mask(ids, ids, self.context_bars)

    def chunk_ids(self, n_context_chunks: int, device: torch.device | str | None = None) -> Tensor:
        """Chunk id of every token of ``[context chunks | target | time]``, shape ``(n_context_chunks · B + B + 1,)``;
        the time token joins the target chunk."""
        ids = torch.arange(n_context_chunks + 1, device=device).repeat_interleave(self.block)
        return torch.cat([ids, ids[-1:]])

    def forward(self, x_t: Tensor, t: Tensor, context: Tensor, keep: Tensor | None = None) -> Tensor:
        """One uncached pass: the velocity for the target bar.

        Args:
            x_t: noisy bar, ``(n, B, C)``; t: times ``(n,)`` in ``[0, 1]``.
            context: clean context frames, ``(n, L_c, C)``, ``L_c`` a multiple of ``B`` (at most the window for
                ``"encdec"``; any length for ``"blockcausal"``, whose mask limits what each chunk sees).
            keep: ``(n, L_c)``, 0 where a context frame was dropped.
        Returns:
            The velocity ``ε - x_0``, shape ``(n, B, C)``.
        """
        keep = self._check(x_t, t, context, keep)
        n_ctx = context.shape[1]
        h = torch.cat([self.embed_context(context, keep), self.embed_target(x_t, t)], dim=1)
        positions = torch.arange(h.shape[1], device=h.device, dtype=torch.float32)
        h = self.trunk.run(h, positions, self.full_mask(n_ctx, h.device))
        return self.out(h[:, n_ctx: n_ctx + self.block])

    # --- cached passes ----------------------------------------------------------------------------
    def prefill(self, context: Tensor, keep: Tensor, start: int = 0) -> list[KVCache]:
        """Enc-dec prefill: the per-layer keys/values of the context alone (``(n, L_c, C)`` → one cache per layer).

        Reference: Novack et al. (2026), §3 (enc-dec prefill).
        """
        h = self.embed_context(context, keep)
        positions = torch.arange(start, start + h.shape[1], device=h.device, dtype=torch.float32)
        _, caches = self.trunk.run_cached(h, None, positions, None)  # bidirectional within the context
        return caches

    def target_step(self, x_t: Tensor, t: Tensor, caches: list[KVCache], start: int) -> Tensor:
        """A target-only pass against cached context: ``x_t`` ``(n, B, C)``, ``t`` ``(n,)`` → velocity ``(n, B, C)``.
        ``start`` is the position of the first target frame; the returned cache is discarded."""
        h = self.embed_target(x_t, t)
        positions = torch.arange(start, start + h.shape[1], device=h.device, dtype=torch.float32)
        mask = None  # the target and the time token see every cached key (no mask: SDPA's fast path)
        if self.attention == "blockcausal" and caches[0].length > self.context:
            mask = torch.ones(h.shape[1], caches[0].length + h.shape[1], dtype=torch.bool, device=h.device)
            mask[:, : caches[0].length - self.context] = False
        h, _ = self.trunk.run_cached(h, caches, positions, mask)
        return self.out(h[:, : self.block])

    def fused_step(self, pending: Tensor, pending_keep: Tensor, x_t: Tensor, t: Tensor,
                   caches: list[KVCache] | None, first_chunk: int) -> tuple[Tensor, list[KVCache]]:
        """Block-causal fused first step: ``[pending clean chunks | noisy target | time]`` in one pass.

        Args:
            pending: finished bars not yet in the cache, ``(n, k·B, C)``; pending_keep ``(n, k·B)``.
            x_t, t: the noisy target ``(n, B, C)`` and times ``(n,)``.
            caches: per-layer caches of the earlier chunks (``None`` at the start).
            first_chunk: the chunk id of the first cached chunk (the cache holds consecutive chunks).
        Returns:
            ``(velocity (n, B, C), caches)``, the caches holding the last ``W`` chunks including the pending
            ones (the time token and the noisy target are not written).

        Reference: Novack et al. (2026), §3 (BlockCausalStreamingCache, fused first step).
        """
        b, w = self.block, self.context_bars
        cached_chunks = 0 if caches is None else caches[0].length // b
        k_pend = pending.shape[1] // b
        h = torch.cat([self.embed_context(pending, pending_keep), self.embed_target(x_t, t)], dim=1)
        q_first = first_chunk + cached_chunks
        q_ids = torch.cat([torch.arange(q_first, q_first + k_pend + 1, device=h.device).repeat_interleave(b),
                           torch.tensor([q_first + k_pend], device=h.device)])
        k_ids = torch.cat([torch.arange(first_chunk, q_first, device=h.device).repeat_interleave(b), q_ids])
        positions = torch.cat([torch.arange(q_first * b, (q_first + k_pend + 1) * b, device=h.device),
                               torch.tensor([(q_first + k_pend + 1) * b], device=h.device)]).float()
        h, new = self.trunk.run_cached(h, caches, positions, window_chunk_mask(q_ids, k_ids, w))
        keep_len = (cached_chunks + k_pend) * b
        drop = max(0, cached_chunks + k_pend - w) * b
        new = [KVCache(c.k[:, :, drop:keep_len], c.v[:, :, drop:keep_len]) for c in new]
        return self.out(h[:, k_pend * b: (k_pend + 1) * b]), new


class FrameAR(nn.Module):
    """The equal-size autoregressive baseline: a causal transformer over frames that predicts the next
    frame as independent Bernoulli bits (a sliding window of ``window`` frames; ``W + 1`` bars by default).

    Reference: Vaswani et al. (2017), §3 (causal decoder); Boulanger-Lewandowski et al. (2012),
    *Modeling Temporal Dependencies in High-Dimensional Sequences*, §2 (frame-level piano-roll models).
    """

    def __init__(self, *, channels: int = CHANNELS, window: int = 5 * FRAMES_PER_BAR, dim: int = 96,
                 depth: int = 3, heads: int = 4) -> None:
        super().__init__()
        check_int(channels, "channels")
        check_int(window, "window", minimum=2)
        self.channels, self.window = channels, window
        self.trunk = _Trunk(dim, depth, heads)
        self.inp = nn.Linear(channels, dim)
        self.start = nn.Parameter(torch.zeros(dim))
        self.out = nn.Linear(dim, channels)

    @property
    def counter(self) -> TokenCounter:
        """The trunk's :class:`TokenCounter`."""
        return self.trunk.counter

    def mask(self, q_pos: Tensor, k_pos: Tensor) -> Tensor:
        """Sliding causal mask: query at ``i`` sees key at ``j`` iff ``i - window < j <= i``; ``(Lq, Lk)``."""
        diff = q_pos[:, None] - k_pos[None, :]
        return (diff >= 0) & (diff < self.window)

    def tokens(self, frames: Tensor) -> Tensor:
        """``[start, frames[:-1]]`` → tokens, so token ``i`` predicts frame ``i``: ``(n, L, C)`` → ``(n, L, dim)``."""
        n = frames.shape[0]
        return torch.cat([self.start.expand(n, 1, -1), self.inp(frames[:, :-1])], dim=1)

    def forward(self, frames: Tensor) -> Tensor:
        """Logits of every frame given the earlier ones: ``(n, L, C)`` in ``{-1, +1}`` → ``(n, L, C)``."""
        if not isinstance(frames, Tensor) or frames.ndim != 3 or frames.shape[-1] != self.channels:
            raise ValueError(f"frames must have shape (n, L, {self.channels}), got {getattr(frames, 'shape', frames)!r}")
        h = self.tokens(frames)
        pos = torch.arange(h.shape[1], device=h.device)
        return self.out(self.trunk.run(h, pos.float(), self.mask(pos, pos)))

    def step(self, token: Tensor, caches: list[KVCache] | None, position: int) -> tuple[Tensor, list[KVCache]]:
        """One cached step: token ``(n, 1, dim)`` at ``position`` → logits ``(n, C)`` and caches trimmed to
        the last ``window - 1`` entries (what the next query may see)."""
        pos = torch.tensor([position], device=token.device)
        lo = max(0, position - (0 if caches is None else caches[0].length))
        k_pos = torch.arange(lo, position + 1, device=token.device)
        h, new = self.trunk.run_cached(token, caches, pos.float(), self.mask(pos, k_pos))
        keep = self.window - 1
        new = [KVCache(c.k[:, :, -keep:], c.v[:, :, -keep:]) for c in new]
        return self.out(h[:, 0]), new
