"""Latent flow matching with the engine's DiT on RAE patch tokens, alone or jointly with DecQ's queries.

The patch tokens ``(n, N, D)`` of an ``h × w`` grid are an image ``(n, D, h, w)``; DecQ's ``K`` queries
(``K`` a multiple of ``w``) are ``K / w`` extra rows below the grid, so the engine's :class:`~diffbook.nets.DiT`
with ``patch_size = 1`` denoises ``[queries ; patches]`` as one sequence, with one time and noise draw per
sample and reserved positions for the query slots. Every channel at every position is standardised with
training-set statistics (RAE normalises per position too).

Training: the linear path ``z_t = (1 - t) x₀ + t ε``, velocity target ``ε - x₀``, ``t`` logit-normal,
classes dropped with probability 0.1 for classifier-free guidance. Sampling: Euler from ``t = 1`` to 0 with
``u = u_c + w (u_c - u_∅)``.

References: Lipman et al. (2023), Eq. 23; Esser et al. (2024), §3.1 (logit-normal t); Ho & Salimans (2022),
Eq. 6 (CFG); Zheng et al. (2025), §5 (diffusion on RAE latents); Wang et al. (2026), §3.2 (joint queries).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from diffbook._checks import check_int, check_real, check_state
from diffbook.guidance import guided_combination
from diffbook.losses import flow_matching_loss
from diffbook.nets.dit import DiT
from diffbook.nets.layers import drop_labels

__all__ = ["pack_latents", "unpack_latents", "LatentNorm", "train_latent_dit", "sample_latents"]


def pack_latents(queries: Tensor | None, patches: Tensor, grid: int) -> Tensor:
    """``queries`` ``(n, K, D)`` or ``None`` and ``patches`` ``(n, grid², D)`` → ``(n, D, grid + K/grid, grid)``.

    Reference: Wang et al. (2026), §3.2 (queries and patches denoised as one sequence).
    """
    check_state(patches, "patches")
    check_int(grid, "grid")
    if patches.ndim != 3 or patches.shape[1] != grid * grid:
        raise ValueError(f"patches must have shape (n, {grid * grid}, D), got {tuple(patches.shape)}")
    n, _, d = patches.shape
    img = patches.transpose(1, 2).reshape(n, d, grid, grid)
    if queries is None:
        return img
    check_state(queries, "queries")
    if queries.ndim != 3 or queries.shape[0] != n or queries.shape[2] != d or queries.shape[1] % grid:
        raise ValueError(f"queries must have shape ({n}, K, {d}) with K a multiple of {grid}, got {tuple(queries.shape)}")
    rows = queries.shape[1] // grid
    return torch.cat([img, queries.transpose(1, 2).reshape(n, d, rows, grid)], dim=2)


def unpack_latents(latents: Tensor, grid: int) -> tuple[Tensor | None, Tensor]:
    """Inverse of :func:`pack_latents`: ``(n, D, grid + r, grid)`` → ``(queries (n, r·grid, D) or None, patches (n, grid², D))``.

    Reference: Wang et al. (2026), §3.2.
    """
    check_state(latents, "latents")
    if latents.ndim != 4 or latents.shape[3] != grid or latents.shape[2] < grid:
        raise ValueError(f"latents must have shape (n, D, >= {grid}, {grid}), got {tuple(latents.shape)}")
    patches = latents[:, :, :grid].flatten(2).transpose(1, 2)
    if latents.shape[2] == grid:
        return None, patches
    return latents[:, :, grid:].flatten(2).transpose(1, 2), patches


@dataclass
class LatentNorm:
    """Per-position, per-channel standardisation ``(z - mean) / std`` of latents ``(n, D, H, W)``.

    Reference: Zheng et al. (2025), §5 (latent normalisation with dataset statistics).
    """

    mean: Tensor
    std: Tensor

    @classmethod
    def fit(cls, latents: Tensor) -> LatentNorm:
        """Statistics of ``latents`` ``(n, D, H, W)``."""
        check_state(latents, "latents")
        return cls(latents.mean(0, keepdim=True), latents.std(0, keepdim=True).clamp_min(1e-4))

    def __call__(self, z: Tensor) -> Tensor:
        """Standardise ``z`` ``(n, D, H, W)``."""
        return (z - self.mean) / self.std

    def inverse(self, z: Tensor) -> Tensor:
        """Undo the standardisation of ``z`` ``(n, D, H, W)``."""
        return z * self.std + self.mean


def train_latent_dit(latents: Tensor, labels: Tensor, *, steps: int = 1000, batch_size: int = 128, lr: float = 1e-3,
                     hidden: int = 64, depth: int = 4, heads: int = 4, class_dropout: float = 0.1, seed: int = 0,
                     checkpoints: tuple[int, ...] = (), on_checkpoint: Callable[[int, DiT], None] | None = None) -> DiT:
    """Train a class-conditional DiT (patch size 1) by flow matching on standardised ``latents`` ``(n, D, H, W)``.

    Args:
        latents: standardised latents; labels: ``(n,)`` classes ``0 … 9``.
        steps, batch_size, lr: AdamW with a cosine learning rate.
        hidden, depth, heads: the DiT.
        class_dropout: probability of replacing a label by the null class (for CFG).
        seed: initial weights, batches, times and noise.
        checkpoints, on_checkpoint: after each step in ``checkpoints`` call ``on_checkpoint(step, dit)``.
    Returns:
        The trained DiT in eval mode.

    Reference: Lipman et al. (2023), Eq. 23; Esser et al. (2024), §3.1; Ho & Salimans (2022), Alg. 1.
    """
    check_state(latents, "latents")
    if latents.ndim != 4:
        raise ValueError(f"latents must have shape (n, D, H, W), got {tuple(latents.shape)}")
    if not isinstance(labels, Tensor) or labels.is_floating_point() or labels.shape != (latents.shape[0],):
        raise ValueError(f"labels must be an integer tensor of shape ({latents.shape[0]},)")
    check_int(steps, "steps")
    check_int(batch_size, "batch_size")
    check_real(lr, "lr", positive=True)
    check_real(class_dropout, "class_dropout", nonnegative=True)
    gen = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        dit = DiT(latents.shape[1], patch_size=1, hidden=hidden, depth=depth, heads=heads, num_classes=10,
                  time_scale=1000.0)
    opt = torch.optim.AdamW(dit.parameters(), lr=lr, betas=(0.9, 0.95), weight_decay=0.0)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5 * (1 + math.cos(math.pi * s / steps)))
    dit.train()
    for step in range(1, steps + 1):
        idx = torch.randint(0, latents.shape[0], (batch_size,), generator=gen)
        x0, y = latents[idx], drop_labels(labels[idx], class_dropout, 10, generator=gen)
        t = torch.sigmoid(torch.randn(batch_size, generator=gen))
        eps = torch.randn(x0.shape, generator=gen)
        tb = t.view(-1, 1, 1, 1)
        loss = flow_matching_loss(dit((1 - tb) * x0 + tb * eps, t, y), x0, eps).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(dit.parameters(), 1.0)
        opt.step()
        sched.step()
        if step in checkpoints and on_checkpoint is not None:
            dit.eval()
            on_checkpoint(step, dit)
            dit.train()
    return dit.eval()


@torch.no_grad()
def sample_latents(dit: DiT, labels: Tensor, shape: tuple[int, int, int], *, steps: int = 25, cfg: float = 0.0,
                   seed: int = 0) -> Tensor:
    """Euler samples ``(n, D, H, W)`` (standardised) for ``labels`` ``(n,)``; ``cfg`` is the guidance weight ``w``.

    Reference: Lipman et al. (2023), Eq. 23 (the ODE); Ho & Salimans (2022), Eq. 6 (CFG).
    """
    if not isinstance(dit, DiT):
        raise TypeError(f"dit must be a DiT, got {type(dit).__name__}")
    check_int(steps, "steps")
    w = check_real(cfg, "cfg", nonnegative=True)
    gen = torch.Generator().manual_seed(seed)
    n = labels.shape[0]
    z = torch.randn((n, *shape), generator=gen)
    ts = torch.linspace(1.0, 0.0, steps + 1)
    null = torch.full_like(labels, 10)
    for i in range(steps):
        t = ts[i].expand(n)
        if w == 0:
            u = dit(z, t, labels)
        else:
            u_c, u_u = dit(torch.cat([z, z]), torch.cat([t, t]), torch.cat([labels, null])).chunk(2)
            u = guided_combination(u_c, u_u, w)
        z = z + (ts[i + 1] - ts[i]) * u
    return z
