"""A rectified-flow DiT for the scenes, and an Euler sampler that asks a RoPE rule for its tables every step.

Convention: ``x_t = (1 - t) x_0 + t ε`` (t = 1 is noise), the network predicts the velocity ``ε - x_0``, and the
sampler integrates ``dx/dt`` from ``t = 1`` to ``t = 0`` with Euler steps. At every step the sampler reads the
latent right after the patch embedding (what the official SEGA code reads after ``x_embedder``), asks
:func:`~diffbook.sega.rope_scaling.rope_scaling` for per-axis frequencies and magnitudes, and hands the
tables to the engine's :class:`~diffbook.nets.dit.DiT` through ``rope_tables``.

Reference: Liu et al. (2023), Eq. 1 (rectified flow); Rajabi et al. (2026), §3 (SEGA in the sampler loop).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor

from diffbook._checks import check_int
from diffbook.nets.dit import DiT
from diffbook.train import train

from diffbook.sega.rope_scaling import SegaOptions, rope_scaling, rotary_from_axes
from diffbook.sega.spectrum import check_latent, radial_profile, spread

__all__ = ["make_dit", "rf_loss", "train_dit", "SampleTrace", "sample"]


def make_dit(*, hidden: int = 64, depth: int = 2, heads: int = 2, patch_size: int = 4, theta: float = 100.0,
             seed: int = 0) -> DiT:
    """The chapter's DiT: RGB in, axial RoPE with base ``theta``, noise level ``t ∈ [0, 1]`` scaled by 1000.

    Reference: Peebles & Xie (2023), §3.2; Heo et al. (2024), §3.
    """
    torch.manual_seed(seed)
    return DiT(3, patch_size=patch_size, hidden=hidden, depth=depth, heads=heads, rope_base=theta,
               time_scale=1000.0)


def rf_loss(model: DiT, batch: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Per-sample rectified-flow loss ``|v_θ(x_t, t) - (ε - x_0)|²`` for images ``batch`` ``(n, 3, H, W)``: ``(n,)``.

    Reference: Liu et al. (2023), Eq. 1; Lipman et al. (2023), Eq. 23.
    """
    n = batch.shape[0]
    t = torch.rand(n, generator=generator, device=batch.device)
    eps = torch.randn(batch.shape, generator=generator, device=batch.device)
    xt = (1 - t)[:, None, None, None] * batch + t[:, None, None, None] * eps
    return (model(xt, t) - (eps - batch)).pow(2).mean(dim=(1, 2, 3))


def train_dit(model: DiT, images: Tensor, *, steps: int, batch_size: int = 32, lr: float = 2e-3,
              seed: int = 0) -> Tensor:
    """Train ``model`` on ``images`` ``(N, 3, H, W)`` with the engine's loop; returns the losses ``(steps,)``.

    Reference: Liu et al. (2023), Eq. 1.
    """
    check_int(steps, "steps")
    gen = torch.Generator().manual_seed(seed)
    idx = torch.randint(0, images.shape[0], (steps, batch_size), generator=gen)
    result = train(model, rf_loss, lambda step: images[idx[step]], steps=steps, lr=lr, ema_decay=None,
                   seed=seed, progress=False, device="cpu")
    model.eval()
    return result.losses


@dataclass
class SampleTrace:
    """Per-step diagnostics of :func:`sample`: times ``(S,)``, σ ``(S,)``, magnitudes ``(S, axes, K)``.

    Reference: Rajabi et al. (2026), Fig. 3 (magnitudes over steps and dimensions).
    """

    times: list[float] = field(default_factory=list)
    sigmas: list[float] = field(default_factory=list)
    magnitudes: list[Tensor] = field(default_factory=list)
    omegas: list[Tensor] = field(default_factory=list)


@torch.no_grad()
def sample(model: DiT, method: str, n: int, resolution: int, *, train_resolution: int = 32, steps: int = 20,
           seed: int = 0, options: SegaOptions | None = None, trace: SampleTrace | None = None) -> Tensor:
    """Euler samples of ``model`` at ``resolution²`` with the RoPE rule ``method``: ``(n, 3, R, R)``.

    Reference: Liu et al. (2023), §2 (Euler on the rectified-flow ODE); Rajabi et al. (2026), §3.
    """
    check_int(n, "n")
    check_int(steps, "steps")
    p = model.patch_size
    if resolution % p or train_resolution % p:
        raise ValueError(f"resolution and train_resolution must be multiples of the patch size {p}, "
                         f"got {resolution} and {train_resolution}")
    grid, train_grid = (resolution // p,) * 2, (train_resolution // p,) * 2
    d_axis = model.hidden // model.heads // 2
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 3, resolution, resolution, generator=gen)
    ts = torch.linspace(1.0, 0.0, steps + 1)
    for i in range(steps):
        t, t_next = float(ts[i]), float(ts[i + 1])
        latent = model.patch(x)  # tokens right after the patch embedding, (n, hidden, h, w)
        axes = rope_scaling(method, train_grid, grid, (d_axis, d_axis), theta=model.rope_base, t=t,
                            latent=latent, options=options)
        if trace is not None:
            trace.times.append(t)
            trace.sigmas.append(spread(radial_profile(check_latent(latent, grid))))
            trace.magnitudes.append(torch.stack([a.magnitude for a in axes]))
            trace.omegas.append(torch.stack([a.omega for a in axes]))
        tables = rotary_from_axes(axes, grid)
        x = x + (t_next - t) * model(x, torch.full((n,), t), rope_tables=tables)
    return x.clamp(-1, 1)
