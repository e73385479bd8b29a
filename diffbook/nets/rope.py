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

from diffbook._checks import check_int, check_real, check_state
from diffbook.device import check_device

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


def rope_frequencies(dim: int, base: float = 10000.0, *, device: torch.device | str | None = None,
                     dtype: torch.dtype = torch.float32) -> Tensor:
    """The rotation frequencies ``θ_i = base^(-2i/dim)``, ``i = 0 .. dim/2 - 1`` (Su et al. 2021, eq. 15).

    Returns:
        Shape ``(dim/2,)``, ``dtype`` (float32 unless asked; float64 for extrapolation tables).

    Reference: Su et al. (2021), Eq. 15.
    """
    check_int(dim, "dim", minimum=2)
    if dim % 2:
        raise ValueError(f"dim must be an even int >= 2, got {dim!r}")
    if check_real(base, "base") <= 1.0:
        raise ValueError(f"base must be > 1, got {base}")
    device = check_device(device, "device") if device is not None else None
    if dtype not in (torch.float32, torch.float64):
        raise TypeError(f"dtype must be torch.float32 or torch.float64, got {dtype}")
    exponents = torch.arange(0, dim, 2, dtype=dtype, device=device) / dim
    return torch.pow(torch.tensor(float(base), dtype=dtype, device=device), -exponents)


def _check_positions(positions: object) -> None:
    if not isinstance(positions, Tensor):
        raise TypeError(f"positions must be a tensor, got {type(positions).__name__}")
    if positions.is_complex() or positions.dtype == torch.bool:
        raise TypeError(f"positions must be real-valued, got dtype {positions.dtype}")


def rope_angles(positions: Tensor, dim: int, base: float = 10000.0) -> Tensor:
    """Rotation angles ``m θ_i`` for tokens at 1-D positions ``m``.

    Args:
        positions: shape ``(..., L)``, real (offset and fractional positions are fine).
        dim: the head dimension ``D`` (even).
    Returns:
        Shape ``(..., L, D/2)``, float32.

    Reference: Su et al. (2021), Eq. 34 (angle m θ_i).
    """
    _check_positions(positions)
    return positions.float()[..., None] * rope_frequencies(dim, base, device=positions.device)


def axial_rope_angles(positions: Tensor, dim: int, base: float = 10000.0) -> Tensor:
    """Rotation angles for tokens on a grid: axis ``a`` of ``A`` owns ``D/A`` consecutive features.

    Args:
        positions: shape ``(..., L, A)``, e.g. ``(row, col)`` per patch from :func:`grid_positions`.
        dim: the head dimension ``D``, divisible by ``2 A``.
    Returns:
        Shape ``(..., L, D/2)``, float32: the first ``D/(2A)`` angles follow axis 0, and so on.

    Reference: Heo et al. (2024), §3 (axial frequencies).
    """
    _check_positions(positions)
    if positions.ndim < 2:
        raise ValueError(f"positions must have shape (..., L, axes), got {tuple(positions.shape)}")
    axes = positions.shape[-1]
    check_int(dim, "dim", minimum=2)
    if axes < 1 or dim % (2 * axes):
        raise ValueError(f"dim must be divisible by 2 * axes = {2 * axes}, got {dim}")
    return torch.cat([rope_angles(positions[..., a], dim // axes, base) for a in range(axes)], dim=-1)


Rotary = tuple[Tensor, Tensor]
"""``(cos, sin)`` tables of shape ``(..., L, D)`` from :func:`rotary_tables`."""


def rotary_tables(angles: Tensor) -> Rotary:
    """``(cos, sin)`` of ``angles`` (shape ``(..., L, D/2)``), each repeated for both halves: ``(..., L, D)``.

    Compute them once per forward pass and hand them to every attention layer.

    Reference: Su et al. (2021), Eq. 34 (the cos and sin factors).
    """
    check_state(angles, "angles")
    cos, sin = torch.cos(angles), torch.sin(angles)
    return torch.cat([cos, cos], dim=-1), torch.cat([sin, sin], dim=-1)


def _check_features(x: object) -> None:
    check_state(x, "x")
    if x.ndim < 1 or x.shape[-1] % 2 or x.shape[-1] == 0:  # type: ignore[union-attr]
        raise ValueError(f"x must have an even, non-zero number of features (last axis), got shape {tuple(x.shape)}")  # type: ignore[union-attr]


def rotate_half(x: Tensor) -> Tensor:
    """``(x₁, x₂) ↦ (-x₂, x₁)`` on the two halves of the last axis.

    Args:
        x: shape ``(..., D)`` with ``D`` even.
    Returns:
        Shape of ``x``.

    Reference: Su et al. (2021), Eq. 34 (the rotate-half form of the rotation); Black et al. (2022), GPT-NeoX.
    """
    _check_features(x)
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

    Reference: Su et al. (2021), Eq. 34.
    """
    _check_features(x)
    if isinstance(rotary, tuple):
        if len(rotary) != 2 or not all(isinstance(t, Tensor) for t in rotary):
            raise TypeError("rotary must be angles (a tensor) or a (cos, sin) pair of tensors")
        cos, sin = rotary
    elif isinstance(rotary, Tensor):
        cos, sin = rotary_tables(rotary)
    else:
        raise TypeError(f"rotary must be angles (a tensor) or a (cos, sin) pair of tensors, got {type(rotary).__name__}")
    if x.shape[-1] != cos.shape[-1]:
        raise ValueError(f"rotary tables must have {x.shape[-1]} columns for x with {x.shape[-1]} features "
                         f"(angles: {x.shape[-1] // 2}), got {cos.shape[-1]}")
    return x * cos.to(x.dtype) + rotate_half(x) * sin.to(x.dtype)


def apply_rope(x: Tensor, positions: Tensor, base: float = 10000.0) -> Tensor:
    """1-D RoPE: rotate queries or keys ``x`` of shape ``(..., L, D)`` for positions ``(..., L)``.

    Su et al. (2021). Returns a tensor shaped like ``x``.

    Reference: Su et al. (2021), eq. (34).
    """
    _check_features(x)
    return apply_rotary(x, rope_angles(positions, x.shape[-1], base))


def apply_axial_rope(x: Tensor, positions: Tensor, base: float = 10000.0) -> Tensor:
    """Axial RoPE: rotate ``x`` of shape ``(..., L, D)`` for grid positions ``(..., L, A)``.

    Heo et al. (2024). With ``A = 2`` the pairs ``(i, i + D/2)`` with ``i < D/4`` rotate with the row and the
    others with the column.

    Reference: Heo et al. (2024), §3 (axial frequencies); Su et al. (2021), eq. (34).
    """
    _check_features(x)
    return apply_rotary(x, axial_rope_angles(positions, x.shape[-1], base))


def _pair(value: object, name: str, *, positive: bool = False, scalar_ok: bool = True) -> tuple[float, float]:
    """A number (if ``scalar_ok``) or a pair of finite numbers, as a pair of floats."""
    if scalar_ok and isinstance(value, (int, float)) and not isinstance(value, bool):
        value = (value, value)
    if not isinstance(value, (tuple, list)) or len(value) != 2:
        what = "a number or a (row, col) pair" if scalar_ok else "a (row, col) pair of numbers"
        raise TypeError(f"{name} must be {what}, got {value!r}")
    a, b = (check_real(v, name, positive=positive) for v in value)
    return a, b


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

    Reference: Heo et al. (2024), §3 (2-D patch positions); Chen et al. (2023), §2.3 (position interpolation).
    """
    check_int(height, "height")
    check_int(width, "width")
    scale_row, scale_col = _pair(scale, "scale", positive=True)
    offset = _pair(offset, "offset", scalar_ok=False)
    rows = offset[0] + scale_row * torch.arange(height, dtype=torch.float32, device=device)
    cols = offset[1] + scale_col * torch.arange(width, dtype=torch.float32, device=device)
    grid = torch.stack(torch.meshgrid(rows, cols, indexing="ij"), dim=-1)
    return grid.reshape(height * width, 2)
