"""The practitioner path: the same RoPE rules on a real ``diffusers`` ``FluxTransformer2DModel``.

:func:`patch_flux` swaps the transformer's ``pos_embed`` (a ``FluxPosEmbed``: axes (index, row, column),
``repeat_interleave`` layout) for a module that builds its ``(cos, sin)`` tables from
:func:`~diffbook.sega.rope_scaling.rope_scaling`, and adds two hooks: one stores the step's time (the
pipeline passes ``timestep / 1000``, so ``t ∈ [0, 1]`` with 1 = noise), one stores the image tokens right
after ``x_embedder`` (what the official SEGA code reads). Axis 0 (text / index) stays plain RoPE. Nothing in
diffusers is forked; :meth:`FluxRopePatch.remove` restores the original module. ``diffusers`` is imported
only by the caller: this module works on whatever transformer object it is handed.

Reference: Rajabi et al. (2026), §3 and official FLUX code; Black Forest Labs (2024), FLUX.1 (axes 16/56/56).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from diffbook._checks import check_int

from diffbook.sega.rope_scaling import METHODS, SegaOptions, plain_frequencies, rope_scaling

__all__ = ["ScaledFluxPosEmbed", "FluxRopePatch", "patch_flux"]


class ScaledFluxPosEmbed(nn.Module):
    """Drop-in for diffusers' ``FluxPosEmbed``: ``ids (L, A) -> (cos, sin)``, each ``(L, Σ axes_dim)``.

    Reference: Rajabi et al. (2026), §3 (m_k multiplies the cos/sin tables); Su et al. (2021), Eq. 34.
    """

    def __init__(self, theta: float, axes_dim: list[int], method: str, train_grid: tuple[int, int],
                 options: SegaOptions | None = None) -> None:
        super().__init__()
        self.theta, self.axes_dim = theta, list(axes_dim)
        self.method, self.train_grid, self.options = method, tuple(train_grid), options
        self.t: float = 1.0
        self.image_tokens: Tensor | None = None
        self.last_axes: list[Any] | None = None

    def forward(self, ids: Tensor) -> tuple[Tensor, Tensor]:
        """Tables for token ids ``(L, A)`` (text ids then image ids, as FLUX concatenates them)."""
        pos = ids.to(torch.float64)
        if self.image_tokens is not None:
            img = pos[-self.image_tokens.shape[1]:]
        else:
            img = pos
        grid = (int(img[:, 1].max()) + 1, int(img[:, 2].max()) + 1)
        use_plain = self.method == "none" or all(g <= tg for g, tg in zip(grid, self.train_grid))
        if use_plain:
            axes = None
        else:
            axes = rope_scaling(self.method, self.train_grid, grid, tuple(self.axes_dim[1:3]), theta=self.theta,
                                t=min(max(self.t, 0.0), 1.0), latent=self.image_tokens, options=self.options)
        self.last_axes = axes
        cos_out, sin_out = [], []
        for i, d in enumerate(self.axes_dim):
            if axes is None or i == 0:
                omega, mag = plain_frequencies(d, self.theta), torch.ones(d // 2, dtype=torch.float64)
            else:
                omega, mag = axes[i - 1].omega, axes[i - 1].magnitude
            ang = pos[:, i:i + 1] * omega.to(pos.device)
            mag = mag.to(pos.device)
            cos_out.append((mag * torch.cos(ang)).repeat_interleave(2, dim=1).float())
            sin_out.append((mag * torch.sin(ang)).repeat_interleave(2, dim=1).float())
        return torch.cat(cos_out, -1).to(ids.device), torch.cat(sin_out, -1).to(ids.device)


@dataclass
class FluxRopePatch:
    """Handle returned by :func:`patch_flux`: ``pos_embed`` is the new module; ``remove()`` undoes the patch.

    Reference: Rajabi et al. (2026), official FLUX code (a patched position embedding, no fork).
    """

    transformer: nn.Module
    original: nn.Module
    pos_embed: ScaledFluxPosEmbed
    handles: list[Any]

    def remove(self) -> None:
        """Restore the original ``pos_embed`` and drop the hooks.

        Reference: Rajabi et al. (2026), official FLUX code.
        """
        for h in self.handles:
            h.remove()
        self.transformer.pos_embed = self.original


def patch_flux(transformer: nn.Module, method: str = "sega", *, train_grid: tuple[int, int] = (64, 64),
               options: SegaOptions | None = None) -> FluxRopePatch:
    """Patch a ``FluxTransformer2DModel`` in place so that its RoPE follows ``method`` at every call.

    Args:
        transformer: a diffusers ``FluxTransformer2DModel`` (anything with ``pos_embed.theta``,
            ``pos_embed.axes_dim`` of three axes and an ``x_embedder``).
        method: one of :data:`~diffbook.sega.rope_scaling.METHODS`.
        train_grid: the native token grid (FLUX.1: 1024 px / 16 = 64 × 64).
    Returns:
        A :class:`FluxRopePatch`; call ``.remove()`` to undo.

    Reference: Rajabi et al. (2026), §3 and official FLUX code.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}; got {method!r}")
    pe = getattr(transformer, "pos_embed", None)
    if pe is None or not hasattr(pe, "axes_dim") or not hasattr(pe, "theta") or not hasattr(transformer, "x_embedder"):
        raise TypeError("transformer must be a diffusers FluxTransformer2DModel (pos_embed with theta and axes_dim, "
                        f"and an x_embedder), got {type(transformer).__name__}")
    if len(pe.axes_dim) != 3:
        raise ValueError(f"FLUX RoPE has three axes (index, row, column), got axes_dim={list(pe.axes_dim)}")
    for g in train_grid:
        check_int(g, "train_grid")
    new = ScaledFluxPosEmbed(float(pe.theta), list(pe.axes_dim), method, tuple(train_grid), options)

    def store_time(module: nn.Module, args: tuple, kwargs: dict) -> None:
        t = kwargs.get("timestep", args[3] if len(args) > 3 else None)
        if isinstance(t, Tensor) and t.numel() > 0:
            new.t = float(t.reshape(-1)[0])

    def store_tokens(module: nn.Module, args: tuple, output: Tensor) -> None:
        new.image_tokens = output.detach()

    handles = [transformer.register_forward_pre_hook(store_time, with_kwargs=True),
               transformer.x_embedder.register_forward_hook(store_tokens)]
    original = transformer.pos_embed
    transformer.pos_embed = new
    return FluxRopePatch(transformer, original, new, handles)
