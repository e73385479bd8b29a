"""Rotary position embeddings (RoPE), 1-D and axial 2-D, as pure functions.

RoPE rotates consecutive feature pairs ``(x_{2i}, x_{2i+1})`` of a query or key at position ``m`` by the
angle ``m θ_i`` with ``θ_i = base^(-2i/D)``. Rotations compose, so the score between a query at ``m``
and a key at ``m'`` depends on the positions only through ``m - m'``, and rotations keep norms.
Positions are real numbers: they may be offset or fractional, which is what resolution-extrapolation
schemes (position interpolation, shifted grids) act on.

For image patches, *axial* RoPE gives each axis its own share of the head dimension: the first half
rotates with the row index and the second half with the column index.

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


def apply_rotary(x: Tensor, angles: Tensor) -> Tensor:
    """Rotate each feature pair ``(x_{2i}, x_{2i+1})`` by ``angles[..., i]`` (Su et al. 2021, eq. 34).

    The rotation is computed in float32 and cast back, so bf16 queries keep accurate angles.

    Args:
        x: queries or keys, shape ``(..., L, D)``, e.g. ``(n, heads, L, D)``.
        angles: shape ``(..., L, D/2)``, broadcastable against ``x`` without its last axis.
    Returns:
        Shape and dtype of ``x``.
    """
    if x.shape[-1] != 2 * angles.shape[-1]:
        raise ValueError(f"angles must have {x.shape[-1] // 2} columns for x with {x.shape[-1]} features, "
                         f"got {angles.shape[-1]}")
    xf = x.float()
    x1, x2 = xf[..., 0::2], xf[..., 1::2]
    cos, sin = torch.cos(angles), torch.sin(angles)
    rotated = torch.stack([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1)
    return rotated.flatten(-2).to(x.dtype)


def apply_rope(x: Tensor, positions: Tensor, base: float = 10000.0) -> Tensor:
    """1-D RoPE: rotate queries or keys ``x`` of shape ``(..., L, D)`` for positions ``(..., L)``.

    Su et al. (2021). Returns a tensor shaped like ``x``.
    """
    return apply_rotary(x, rope_angles(positions, x.shape[-1], base))


def apply_axial_rope(x: Tensor, positions: Tensor, base: float = 10000.0) -> Tensor:
    """Axial RoPE: rotate ``x`` of shape ``(..., L, D)`` for grid positions ``(..., L, A)``.

    Heo et al. (2024). With ``A = 2`` the first ``D/2`` features rotate with the row, the rest with the column.
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
