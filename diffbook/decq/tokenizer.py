"""The RAE baseline and DecQ: a frozen encoder, optional detail-condensing queries, a ViT decoder.

* ``mode="rae"``: the decoder reads the encoder's final patch tokens only (Zheng et al. 2025).
* ``mode="decq"``: ``K`` learnable queries are refined in order by one *condenser* per tap,
  ``q ← q + CrossAttn(LN(q), LN(h_l))`` then a small transformer block over the queries, shallow to deep; a
  final non-affine LayerNorm puts them on the patch tokens' scale; the decoder reads ``[queries ; patches]``
  (Wang et al. 2026).
* ``mode="last"`` (control): the same condensers, every one reading the encoder's *last* layer.
* ``mode="free"`` (control): ``K`` extra learnable tokens with no encoder input at all.

The patch latent is exactly RAE's in every mode; only the decoder (and the queries) are trained. Decoder
training adds noise ``z + σ ε``, ``σ ~ U(0, τ)`` per sample, to the patch tokens and the queries (RAE's
noise-augmented decoding; its code draws ``σ`` uniformly). The loss is ``L1 + MSE`` (RAE adds LPIPS and a GAN
term, which need downloaded networks).

References: Zheng et al., *Diffusion Transformers with Representation Autoencoders* (2025), §3–4;
Wang et al., *DecQ: Detail-Condensing Queries* (2026), §3; Li et al., *BLIP-2* (2023), §3.1 (Q-Former queries).
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from diffbook._checks import check_int, check_real, check_state
from diffbook.decq.encoder import Encoder, check_frozen, check_taps, default_taps
from diffbook.metrics.image import psnr as _psnr
from diffbook.nets.dit import unpatchify
from diffbook.nets.layers import sincos_position_embedding
from diffbook.nets.rope import grid_positions
from diffbook.nets.vit import CrossAttention, ViTBlock

__all__ = ["MODES", "Condenser", "DecQAutoencoder", "train_autoencoder", "reconstruction_psnr"]

Mode = Literal["rae", "decq", "last", "free"]
MODES: tuple[str, ...] = ("rae", "decq", "last", "free")


class Condenser(nn.Module):
    """One detail condenser: queries ``(n, K, D)`` read one tapped layer ``(n, N, D)``.

    ``q ← q + CrossAttn(LN(q), LN(h))``, then ``q ← ViTBlock(q)`` (self-attention and MLP over the queries).

    Reference: Wang et al. (2026), §3 (condensers); Li et al. (2023), §3.1 (the Q-Former's cross-attention).
    """

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.norm_q = nn.LayerNorm(dim)
        self.norm_kv = nn.LayerNorm(dim)
        self.cross = CrossAttention(dim, heads)
        self.block = ViTBlock(dim, heads, mlp_ratio=2.0)

    def forward(self, queries: Tensor, hidden: Tensor, *, return_weights: bool = False) -> Tensor | tuple[Tensor, Tensor]:
        """``queries`` ``(n, K, D)``, ``hidden`` ``(n, N, D)`` → ``(n, K, D)`` (and weights ``(n, heads, K, N)``)."""
        out, weights = self.cross(self.norm_q(queries), self.norm_kv(hidden), return_weights=True)
        q = self.block(queries + out)
        return (q, weights) if return_weights else q


class DecQAutoencoder(nn.Module):
    """Frozen encoder → (queries) → ViT decoder → images. The encoder must be frozen.

    Args:
        encoder: a frozen :class:`~diffbook.decq.encoder.Encoder` (an ``nn.Module``).
        mode: ``"rae"``, ``"decq"``, ``"last"`` or ``"free"`` (module docstring).
        num_queries: ``K`` (ignored for ``"rae"``).
        taps: encoder layers the condensers read, shallow to deep (default: 4 taps spread from layer 0,
            :func:`~diffbook.decq.encoder.default_taps`); for ``"last"`` every condenser reads ``encoder.depth``.
        width, depth, heads: the ViT decoder.
        noise_tau: ``τ`` of the noise augmentation (``σ ~ U(0, τ)``); 0 turns it off.
        image_size, channels: the output images ``(n, channels, image_size, image_size)``.

    Reference: Zheng et al. (2025), §4 (decoder, noise-augmented decoding); Wang et al. (2026), §3.
    """

    def __init__(self, encoder: Encoder, *, mode: Mode = "decq", num_queries: int = 4, taps: tuple[int, ...] | None = None,
                 width: int = 48, depth: int = 3, heads: int = 4, noise_tau: float = 0.3, image_size: int = 16,
                 channels: int = 1, decoder_width: int | None = None) -> None:
        super().__init__()
        check_frozen(encoder)
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        check_int(num_queries, "num_queries")
        for name, value in (("width", width), ("depth", depth), ("heads", heads), ("image_size", image_size),
                            ("channels", channels)):
            check_int(value, name)
        if width % heads:
            raise ValueError(f"heads must divide the decoder width={width}, got {heads}")
        if width % 4:
            raise ValueError(f"the decoder width must be divisible by 4 (2-D sin-cos positions), got {width}")
        if decoder_width is not None and decoder_width != width:
            raise ValueError(f"decoder_width must match width={width}, got {decoder_width}")
        self.noise_tau = check_real(noise_tau, "noise_tau", nonnegative=True)
        self.encoder = encoder
        self.mode: str = mode
        enc_dim, patch = encoder.dim, encoder.patch_size
        if image_size % patch:
            raise ValueError(f"image_size={image_size} must be divisible by the encoder's patch size {patch}")
        self.grid = image_size // patch
        self.image_size, self.channels, self.patch = image_size, channels, patch
        enc_heads = max(h for h in (4, 2, 1) if enc_dim % h == 0)
        if mode == "rae":
            self.num_queries, self.taps = 0, ()
        else:
            self.num_queries = num_queries
            if taps is None:
                taps = default_taps(encoder.depth, min(4, encoder.depth))
            taps = check_taps(taps, encoder.depth)
            if len(taps) == 0:
                raise ValueError("taps must name at least one layer")
            self.taps = (encoder.depth,) * len(taps) if mode == "last" else taps
        self.queries = nn.Parameter(torch.randn(self.num_queries, enc_dim) * 0.02) if self.num_queries else None
        n_cond = len(self.taps) if mode in ("decq", "last") else 0
        self.condensers = nn.ModuleList(Condenser(enc_dim, enc_heads) for _ in range(n_cond))
        self.embed = nn.Linear(enc_dim, width)
        pos = sincos_position_embedding(grid_positions(self.grid, self.grid), width)
        self.register_buffer("pos", pos, persistent=False)
        self.query_pos = nn.Parameter(torch.randn(self.num_queries, width) * 0.02) if self.num_queries else None
        self.blocks = nn.ModuleList(ViTBlock(width, heads) for _ in range(depth))
        self.norm = nn.LayerNorm(width)
        self.out = nn.Linear(width, patch * patch * channels)

    def trainable_parameters(self) -> list[nn.Parameter]:
        """Every parameter but the encoder's (queries, condensers, decoder)."""
        enc = {id(p) for p in self.encoder.parameters()}
        return [p for p in self.parameters() if id(p) not in enc]

    def tokens(self, images: Tensor, *, return_weights: bool = False) -> tuple[Tensor | None, Tensor] | tuple[Tensor | None, Tensor, list[Tensor]]:
        """The latent: ``(queries (n, K, D) or None, patches (n, N, D))``; the encoder runs without gradient.

        With ``return_weights`` also each condenser's attention weights ``(n, heads, K, N)``.

        Reference: Wang et al. (2026), §3.
        """
        with torch.no_grad():
            patches, hidden = self.encoder.encode(images, self.taps if self.condensers else ())
        weights: list[Tensor] = []
        queries = None
        if self.queries is not None:
            queries = self.queries.unsqueeze(0).expand(patches.shape[0], -1, -1)
            for condenser, h in zip(self.condensers, hidden):
                queries, w = condenser(queries, h, return_weights=True)
                weights.append(w)
            queries = F.layer_norm(queries, (queries.shape[-1],))
        return (queries, patches, weights) if return_weights else (queries, patches)

    def decode(self, queries: Tensor | None, patches: Tensor) -> Tensor:
        """``queries`` ``(n, K, D)`` (or ``None``) and ``patches`` ``(n, N, D)`` → images ``(n, C, H, W)``.

        With ``queries=None`` in a query mode, the decoder sees zero queries (the "discard" reading).
        """
        check_state(patches, "patches")
        n_tok = self.grid * self.grid
        if patches.ndim != 3 or patches.shape[1:] != (n_tok, self.encoder.dim):
            raise ValueError(f"patches must have shape (n, {n_tok}, {self.encoder.dim}), got {tuple(patches.shape)}")
        x = self.embed(patches) + self.pos.to(patches.dtype)
        if self.num_queries:
            if queries is None:
                queries = patches.new_zeros(patches.shape[0], self.num_queries, self.encoder.dim)
            if queries.shape != (patches.shape[0], self.num_queries, self.encoder.dim):
                raise ValueError(f"queries must have shape ({patches.shape[0]}, {self.num_queries}, "
                                 f"{self.encoder.dim}), got {tuple(queries.shape)}")
            assert self.query_pos is not None
            x = torch.cat([self.embed(queries) + self.query_pos, x], dim=1)
        for block in self.blocks:
            x = block(x)
        pix = self.out(self.norm(x[:, self.num_queries:]))
        return unpatchify(pix, self.patch, self.image_size, self.image_size)

    def forward(self, images: Tensor, *, noise: bool = False, generator: torch.Generator | None = None) -> Tensor:
        """Reconstruct ``images`` ``(n, C, H, W)``; with ``noise`` add ``σ ε``, ``σ ~ U(0, τ)``, to the latent.

        Reference: Zheng et al. (2025), §4 (noise-augmented decoding).
        """
        queries, patches = self.tokens(images)  # type: ignore[misc]
        if noise and self.noise_tau > 0:
            sigma = torch.rand(patches.shape[0], 1, 1, generator=generator) * self.noise_tau
            patches = patches + sigma * torch.randn(patches.shape, generator=generator)
            if queries is not None:
                queries = queries + sigma * torch.randn(queries.shape, generator=generator)
        return self.decode(queries, patches)


def train_autoencoder(model: DecQAutoencoder, images: Tensor, *, steps: int = 600, batch_size: int = 64,
                      lr: float = 2e-3, seed: int = 0) -> list[float]:
    """Train the queries, condensers and decoder of ``model`` on ``images`` ``(n, C, H, W)``; the encoder stays frozen.

    Loss ``L1 + MSE`` on noise-augmented latents; AdamW (β = 0.9, 0.95) with a cosine learning rate; the
    initial query/decoder weights are whatever ``model`` holds, the batches and noise come from ``seed``.

    Returns:
        The loss of every step.

    Reference: Zheng et al. (2025), §4 (decoder training; RAE's AdamW betas); Loshchilov & Hutter (2019), Alg. 2.
    """
    if not isinstance(model, DecQAutoencoder):
        raise TypeError(f"model must be a DecQAutoencoder, got {type(model).__name__}")
    check_frozen(model.encoder, "model.encoder")
    check_state(images, "images")
    if images.ndim != 4 or images.shape[1:] != (model.channels, model.image_size, model.image_size):
        raise ValueError(f"images must have shape (n, {model.channels}, {model.image_size}, {model.image_size}), "
                         f"got {tuple(images.shape)}")
    check_int(steps, "steps")
    check_int(batch_size, "batch_size")
    check_real(lr, "lr", positive=True)
    gen = torch.Generator().manual_seed(seed)
    params = model.trainable_parameters()
    opt = torch.optim.AdamW(params, lr=lr, betas=(0.9, 0.95), weight_decay=0.0)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5 * (1 + math.cos(math.pi * s / steps)))
    model.train()
    model.encoder.eval()
    losses = []
    for _ in range(steps):
        idx = torch.randint(0, images.shape[0], (batch_size,), generator=gen)
        x = images[idx]
        rec = model(x, noise=True, generator=gen)
        loss = F.l1_loss(rec, x) + F.mse_loss(rec, x)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        losses.append(float(loss.detach()))
    model.eval()
    return losses


@torch.no_grad()
def reconstruction_psnr(model: DecQAutoencoder, images: Tensor, *, batch_size: int = 512) -> float:
    """Mean per-image PSNR (dB, data range 2 for ``[-1, 1]``) of ``model``'s noise-free reconstructions of ``images`` ``(n, C, H, W)``.

    Reference: Wang et al. (2004), §I (PSNR).
    """
    if not isinstance(model, DecQAutoencoder):
        raise TypeError(f"model must be a DecQAutoencoder, got {type(model).__name__}")
    check_state(images, "images")
    model.eval()
    rec = torch.cat([model(images[i:i + batch_size]) for i in range(0, images.shape[0], batch_size)])
    return float(_psnr(rec.clamp(-1, 1), images, data_range=2.0).mean())
