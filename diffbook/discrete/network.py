"""The denoiser network: a small bidirectional transformer over token sequences, built from the engine's blocks.

Tokens are embedded, rotated by RoPE inside attention, and passed through adaLN-Zero transformer blocks
(:class:`~diffbook.nets.dit.DiTBlock`, no causal mask: every position sees every other) conditioned on the
noise level ``1 − α_t``; a final adaLN-modulated linear map gives logits over ``K`` tokens. What the logits
*mean* (``D``, ``L``, or the MDM posterior) is decided by the loss the network is trained with, not here.

For AUDM (``audm=True``) the input at each position fuses ``[emb(z), emb(u), 1[z = u]]`` with a linear layer,
as in the reference code.

Reference: Peebles & Xie (2023), DiT (adaLN-Zero blocks); Su et al. (2021), RoFormer (RoPE); Gourevitch
et al. (2026), rev_udm ``AUDM`` input fusion.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from diffbook._checks import check_int
from diffbook.nets.dit import DiTBlock
from diffbook.nets.layers import AdaLNZero, TimestepEmbedding, modulate
from diffbook.nets.rope import rope_angles, rotary_tables

__all__ = ["TokenDenoiser"]


class TokenDenoiser(nn.Module):
    """``(z, alpha[, u]) -> logits``: a bidirectional transformer denoiser for sequences of ``length`` tokens.

    Args:
        vocab: ``K``, the number of real tokens (the output width).
        length: the sequence length ``L`` (RoPE tables are built for it; shorter inputs also work).
        hidden, depth, heads: width, number of blocks, attention heads.
        mask_token: accept the extra input id ``K`` (MDM's mask).
        audm: take the AUDM inputs ``u`` and the match flag.
    """

    def __init__(self, vocab: int, length: int, *, hidden: int = 128, depth: int = 4, heads: int = 4,
                 mask_token: bool = False, audm: bool = False) -> None:
        super().__init__()
        check_int(vocab, "vocab", minimum=2)
        check_int(length, "length")
        check_int(hidden, "hidden")
        check_int(depth, "depth")
        check_int(heads, "heads")
        if hidden % heads or (hidden // heads) % 2:
            raise ValueError(f"hidden/heads must be an even integer, got hidden={hidden}, heads={heads}")
        self.vocab, self.length, self.mask_token, self.audm = vocab, length, mask_token, audm
        self.embed = nn.Embedding(vocab + int(mask_token), hidden)
        if audm:
            self.embed_u = nn.Embedding(vocab, hidden)
            self.fuse = nn.Linear(2 * hidden + 1, hidden)
        self.time = TimestepEmbedding(hidden, scale=1000.0)
        self.blocks = nn.ModuleList(DiTBlock(hidden, heads) for _ in range(depth))
        self.norm = nn.LayerNorm(hidden, elementwise_affine=False, eps=1e-6)
        self.final_adaln = AdaLNZero(hidden, hidden, 2)
        self.out = nn.Linear(hidden, vocab)
        self.head_dim = hidden // heads
        self.register_buffer("_pos", torch.arange(length, dtype=torch.float32), persistent=False)

    def forward(self, z: Tensor, alpha: Tensor, u: Tensor | None = None) -> Tensor:
        """Tokens ``z`` of shape ``(n, L)`` (ids ``0 … K − 1``, or ``K`` = mask if ``mask_token``), ``alpha`` of
        shape ``(n,)``, and for AUDM ``u`` of shape ``(n, L)``; returns logits ``(n, L, K)``."""
        if not isinstance(z, Tensor) or z.ndim != 2 or z.is_floating_point():
            raise TypeError("z must be an integer tensor of shape (n, L)")
        if z.shape[1] > self.length or z.shape[1] == 0:
            raise ValueError(f"z must have length 1..{self.length}, got {z.shape[1]}")
        if (u is None) == self.audm:
            raise ValueError("u must be given exactly when the network was built with audm=True")
        h = self.embed(z)
        if self.audm:
            flag = (z == u).to(h.dtype)[..., None]
            h = self.fuse(torch.cat([h, self.embed_u(u), flag], -1))
        c = self.time((1 - alpha).to(h.dtype))
        rope = rotary_tables(rope_angles(self._pos[: z.shape[1]], self.head_dim))
        for block in self.blocks:
            h = block(h, c, rope)
        shift, scale = self.final_adaln(c)
        return self.out(modulate(self.norm(h), shift, scale))
