"""Rotary position embeddings (RoPE), 1-D and axial 2-D, as pure functions.

RoPE rotates feature pairs of a query or key at position ``m`` by the angle ``m θ_i`` with
``θ_i = base^(-2i/D)``. We pair feature ``i`` with feature ``i + D/2`` (the "rotate-half" layout of
GPT-NeoX), which is RoFormer's rotation up to a fixed permutation of the features and needs only
contiguous slices, so it costs three fused-friendly elementwise passes. Rotations compose, so the score between a query at ``m``
and a key at ``m'`` depends on the positions only through ``m - m'``, and rotations keep norms.
Positions are real numbers: they may be offset or fractional, which is what resolution-extrapolation
schemes (position interpolation, shifted grids) act on.

For image patches, *axial* RoPE gives each axis its own share of the rotation angles: the first half
of the ``D/2`` angles follows the row index and the second half the column index.

References: Su et al., *RoFormer: Enhanced Transformer with Rotary Position Embedding* (2021), eq. (34);
axial 2-D RoPE as in Heo et al., *Rotary Position Embedding for Vision Transformer* (2024), §3.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = [
    "rope_frequencies",
    "rope_angles",
    "axial_rope_angles",
    "rotary_tables",
    "rotate_half",
    "apply_rotary",
    "apply_rope",
    "apply_axial_rope",
    "grid_positions",
]


def rope_frequencies(dim: int, base: float = 10000.0, *, device: torch.device | str | None = None) -> Tensor:
    """The rotation frequencies ``θ_i = base^(-2i/dim)``, ``i = 0 .. dim/2 - 1`` (Su et al. 2021, eq. 15).

    Returns:
        Shape ``(dim/2,)``, float32.
    """
    if not isinstance(dim, int) or dim < 2 or dim % 2:
        raise ValueError(f"dim must be an even int >= 2, got {dim!r}")
    if base <= 1.0:
        raise ValueError(f"base must be > 1, got {base}")
    exponents = torch.arange(0, dim, 2, dtype=torch.float32, device=device) / dim
    return torch.pow(torch.tensor(float(base), device=device), -exponents)


def rope_angles(positions: Tensor, dim: int, base: float = 10000.0) -> Tensor:
    """Rotation angles ``m θ_i`` for tokens at 1-D positions ``m``.

    Args:
        positions: shape ``(..., L)``, real (offset and fractional positions are fine).
        dim: the head dimension ``D`` (even).
    Returns:
        Shape ``(..., L, D/2)``, float32.
    """
    if not isinstance(positions, Tensor):
        raise TypeError(f"positions must be a tensor, got {type(positions).__name__}")
    return positions.float()[..., None] * rope_frequencies(dim, base, device=positions.device)


def axial_rope_angles(positions: Tensor, dim: int, base: float = 10000.0) -> Tensor:
    """Rotation angles for tokens on a grid: axis ``a`` of ``A`` owns ``D/A`` consecutive features.

    Args:
        positions: shape ``(..., L, A)``, e.g. ``(row, col)`` per patch from :func:`grid_positions`.
        dim: the head dimension ``D``, divisible by ``2 A``.
    Returns:
        Shape ``(..., L, D/2)``, float32: the first ``D/(2A)`` angles follow axis 0, and so on.
    """
    if not isinstance(positions, Tensor):
        raise TypeError(f"positions must be a tensor, got {type(positions).__name__}")
    if positions.ndim < 2:
        raise ValueError(f"positions must have shape (..., L, axes), got {tuple(positions.shape)}")
    axes = positions.shape[-1]
    if dim % (2 * axes):
        raise ValueError(f"dim must be divisible by 2 * axes = {2 * axes}, got {dim}")
    return torch.cat([rope_angles(positions[..., a], dim // axes, base) for a in range(axes)], dim=-1)


Rotary = tuple[Tensor, Tensor]
"""``(cos, sin)`` tables of shape ``(..., L, D)`` from :func:`rotary_tables`."""


def rotary_tables(angles: Tensor) -> Rotary:
    """``(cos, sin)`` of ``angles`` (shape ``(..., L, D/2)``), each repeated for both halves: ``(..., L, D)``.

    Compute them once per forward pass and hand them to every attention layer.
    """
    cos, sin = torch.cos(angles), torch.sin(angles)
    return torch.cat([cos, cos], dim=-1), torch.cat([sin, sin], dim=-1)


def rotate_half(x: Tensor) -> Tensor:
    """``(x₁, x₂) ↦ (-x₂, x₁)`` on the two halves of the last axis."""
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat([-x2, x1], dim=-1)


def apply_rotary(x: Tensor, rotary: Tensor | Rotary) -> Tensor:
    """Rotate each feature pair ``(x_i, x_{i + D/2})`` by its angle (Su et al. 2021, eq. 34).

    Args:
        x: queries or keys, shape ``(..., L, D)``, e.g. ``(n, heads, L, D)``.
        rotary: angles of shape ``(..., L, D/2)``, or the ``(cos, sin)`` tables of :func:`rotary_tables`,
            broadcastable against ``x``. The tables are cast to ``x``'s dtype (bf16 under autocast).
    Returns:
        Shape and dtype of ``x``.
    """
    cos, sin = rotary if isinstance(rotary, tuple) else rotary_tables(rotary)
    if x.shape[-1] != cos.shape[-1]:
        raise ValueError(f"rotary tables must have {x.shape[-1]} columns for x with {x.shape[-1]} features "
                         f"(angles: {x.shape[-1] // 2}), got {cos.shape[-1]}")
    return x * cos.to(x.dtype) + rotate_half(x) * sin.to(x.dtype)


def apply_rope(x: Tensor, positions: Tensor, base: float = 10000.0) -> Tensor:
    """1-D RoPE: rotate queries or keys ``x`` of shape ``(..., L, D)`` for positions ``(..., L)``.

    Su et al. (2021). Returns a tensor shaped like ``x``.
    """
    return apply_rotary(x, rope_angles(positions, x.shape[-1], base))


def apply_axial_rope(x: Tensor, positions: Tensor, base: float = 10000.0) -> Tensor:
    """Axial RoPE: rotate ``x`` of shape ``(..., L, D)`` for grid positions ``(..., L, A)``.

    Heo et al. (2024). With ``A = 2`` the pairs ``(i, i + D/2)`` with ``i < D/4`` rotate with the row and the
    others with the column.
    """
    return apply_rotary(x, axial_rope_angles(positions, x.shape[-1], base))


def grid_positions(
    height: int,
    width: int,
    *,
    offset: tuple[float, float] = (0.0, 0.0),
    scale: float | tuple[float, float] = 1.0,
    device: torch.device | str | None = None,
) -> Tensor:
    """``(row, col)`` positions of a ``height × width`` grid of patches in row-major order.

    Patch ``(i, j)`` sits at ``(offset[0] + i·scale_row, offset[1] + j·scale_col)``. ``scale < 1``
    squeezes a larger grid into the position range seen in training (position interpolation, Chen et
    al. 2023); an offset shifts the whole grid.

    Returns:
        Shape ``(height * width, 2)``, float32.
    """
    for name, value in (("height", height), ("width", width)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{name} must be a positive int, got {value!r}")
    scale_row, scale_col = (scale, scale) if isinstance(scale, (int, float)) else scale
    rows = offset[0] + scale_row * torch.arange(height, dtype=torch.float32, device=device)
    cols = offset[1] + scale_col * torch.arange(width, dtype=torch.float32, device=device)
    grid = torch.stack(torch.meshgrid(rows, cols, indexing="ij"), dim=-1)
    return grid.reshape(height * width, 2)
