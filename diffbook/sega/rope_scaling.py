"""Every training-free RoPE extrapolation rule of Chapter 11 behind one interface.

:func:`rope_scaling` answers, for one method, the question a sampler asks at every step: *which rotation
frequencies* ``ω_k`` *and which per-pair magnitudes* ``m_k`` *should axis a use?* The magnitude multiplies
the ``cos`` and ``sin`` tables, so it scales queries and keys alike and the logit term of pair ``k`` by
``m_k²`` (a per-frequency attention temperature).

Methods (``s`` is the per-axis scale, target tokens / training tokens; ``d`` the axis's feature count):

* ``none``: plain RoPE, ``ω_k = θ^(-2k/d)``, ``m_k = 1``.
* ``pi``: position interpolation, ``ω_k / s``.
* ``ntk``: NTK-aware base change ``θ' = θ s^(d/(d-2))``.
* ``yarn``: YaRN with the image constants of DyPE (two ramps, β = (1.25, 0.75), γ = (16, 2)) and the
  magnitude ``1 + 0.1 ln s``.
* ``dy_ntk``, ``dy_yarn``: DyPE, the same with a time schedule ``κ(t) = t²`` (t = 1 is noise).
* ``sega`` (official FLUX exponent ``θ s^(2d/(d-2)) / (1 + 0.1 ln s)``) and ``sega_port`` (ComfyUI port,
  ``θ s^(d/(d-2))``): per-pair magnitudes from the latent's spectral energy, see :mod:`diffbook.sega.spectrum`.

Reference: Su et al. (2021), Eq. 34 (RoPE); Chen et al. (2023), Eq. 4 (PI); bloc97 (2023) (NTK-aware);
Peng et al. (2023), Eq. 17-22 (YaRN); Issachar et al. (2025), §3 (DyPE); Rajabi et al. (2026), §3 (SEGA).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from diffbook._checks import check_int, check_real
from diffbook.nets.rope import Rotary, rope_frequencies

from diffbook.sega.spectrum import axis_profile, check_latent, radial_profile, pair_scales, spread

__all__ = [
    "METHODS",
    "AxisRope",
    "SegaOptions",
    "plain_frequencies",
    "ntk_factor",
    "yarn_frequencies",
    "yarn_mscale",
    "dype_kappa",
    "sega_base_factor",
    "rope_scaling",
    "rotary_from_axes",
]

METHODS: tuple[str, ...] = ("none", "pi", "ntk", "yarn", "dy_ntk", "dy_yarn", "sega", "sega_port")
"""The method names :func:`rope_scaling` accepts."""

f64 = torch.float64


@dataclass(frozen=True)
class AxisRope:
    """One axis's RoPE table: frequencies ``omega`` ``(d/2,)`` and magnitudes ``magnitude`` ``(d/2,)``.

    Reference: Rajabi et al. (2026), §3 (f_SEGA = m_k · f_RoPE per pair).
    """

    omega: Tensor
    magnitude: Tensor


@dataclass(frozen=True)
class SegaOptions:
    """SEGA's constants (defaults of the official code) and the switches of the chapter's ablations.

    ``sigma``: ``None`` measures the flatness gate, a number fixes σ (0: uniform ``m_ref``; 1: no gate).
    ``sign``: ``-1`` reverses the per-pair correction. ``pairs``: ``"all"``, ``"low"`` (only the slower half
    of the pairs gets its SEGA magnitude, the rest ``m_ref``) or ``"high"`` (only the faster half).

    Reference: Rajabi et al. (2026), §3 and Fig. 2 (constants of the official code; ablations).
    """

    alpha: float = 0.15
    beta: float = 1.5
    gamma: float = 1.5
    kappa: float = 0.08
    m_min: float = 1.0
    sigma: float | None = None
    sign: float = 1.0
    pairs: str = "all"


def plain_frequencies(dim: int, theta: float) -> Tensor:
    """``ω_k = θ^(-2k/dim)``, ``k = 0 … dim/2 - 1``, float64, shape ``(dim/2,)``.

    Reference: Su et al. (2021), Eq. 15.
    """
    return rope_frequencies(dim, float(theta), dtype=f64)


def ntk_factor(s: float, dim: int) -> float:
    """NTK-aware base multiplier ``s^(dim/(dim-2))``: the slowest pair is divided by exactly ``s``.

    Reference: bloc97 (2023), "NTK-aware scaled RoPE" (Reddit post); Peng et al. (2023), Eq. 14.
    """
    return float(s) ** (dim / (dim - 2))


def dype_kappa(t: float, lam: float = 2.0) -> float:
    """DyPE's schedule ``κ(t) = t^λ`` (t = 1: pure noise, full extrapolation; t → 0: plain RoPE).

    Reference: Issachar et al. (2025), §3 (DyPE, λ_t = 2 in the reference code).
    """
    return float(t) ** lam


def yarn_mscale(s: float) -> float:
    """YaRN's magnitude ``1 + 0.1 ln s`` on cos and sin (logits scale by its square).

    Reference: Peng et al. (2023), Eq. 22.
    """
    return 1.0 + 0.1 * math.log(s) if s > 1 else 1.0


def _correction_index(rotations: float, dim: int, theta: float, length: int) -> float:
    # the pair index whose wavelength fits `rotations` times into the training length (YaRN, Eq. 19)
    if rotations <= 0:
        return math.inf
    return dim * math.log(length / (rotations * 2 * math.pi)) / (2 * math.log(theta))


def _ramp_keep(high_rot: float, low_rot: float, dim: int, theta: float, length: int) -> Tensor:
    # weight 1 on pairs that keep the "fast" frequencies, 0 on the ones that get the "slow" ones, linear between
    half = dim // 2
    low = max(math.floor(_correction_index(high_rot, dim, theta, length)) if high_rot > 0 else half, 0)
    high = min(math.ceil(_correction_index(low_rot, dim, theta, length)) if low_rot > 0 else half, half)
    low, high = min(low, half), max(high, 0)
    if low == high:
        high = high + 0.001
    ramp = ((torch.arange(half, dtype=f64) - low) / (high - low)).clamp(0, 1)
    return 1.0 - ramp


def yarn_frequencies(dim: int, theta: float, s: float, length: int, kappa: float = 1.0) -> Tensor:
    """Image YaRN as in DyPE: blend PI with NTK (β = 1.25, 0.75), then that with plain RoPE (γ = 16, 2).

    ``kappa`` multiplies the four rotation thresholds (DyPE's ``κ(t)``; 1 = static YaRN, 0 = plain RoPE).

    Returns:
        Shape ``(dim/2,)``, float64.

    Reference: Peng et al. (2023), Eq. 17-20 (ramp); Issachar et al. (2025), §3 and reference code (constants).
    """
    base = plain_frequencies(dim, theta)
    if s <= 1:
        return base
    linear = base / s
    ntk = plain_frequencies(dim, theta * ntk_factor(s, dim))
    keep = _ramp_keep(1.25 * kappa, 0.75 * kappa, dim, theta, length)
    freqs = linear * (1 - keep) + ntk * keep
    keep = _ramp_keep(16.0 * kappa, 2.0 * kappa, dim, theta, length)
    return freqs * (1 - keep) + base * keep


def sega_base_factor(s: float, dim: int, variant: str = "official") -> float:
    """SEGA's base multiplier: official ``s^(2d/(d-2)) / (1 + 0.1 ln s)`` or port ``s^(d/(d-2))``.

    Reference: Rajabi et al. (2026), official FLUX code (``flux_sega``); ComfyUI-DyPE ``src/sega.py``.
    """
    if s <= 1:
        return 1.0
    if variant == "official":
        return s ** (2 * dim / (dim - 2)) / (1 + 0.1 * math.log(s))
    if variant == "port":
        return s ** (dim / (dim - 2))
    raise ValueError(f"variant must be 'official' or 'port', got {variant!r}")


def _check_grid(grid: object, name: str) -> tuple[int, ...]:
    if not isinstance(grid, (tuple, list)) or len(grid) == 0:
        raise TypeError(f"{name} must be a tuple of token counts per axis, e.g. (8, 8), got {grid!r}")
    return tuple(check_int(g, name) for g in grid)


def rope_scaling(
    method: str,
    train_grid: tuple[int, ...],
    target_grid: tuple[int, ...],
    axis_dims: tuple[int, ...],
    *,
    theta: float = 10000.0,
    t: float = 1.0,
    latent: Tensor | None = None,
    options: SegaOptions | None = None,
) -> list[AxisRope]:
    """Per-axis RoPE frequencies ``ω_k`` and magnitudes ``m_k`` of ``method`` at one sampling step.

    Args:
        method: one of :data:`METHODS`.
        train_grid: tokens per axis at training, e.g. ``(8, 8)``.
        target_grid: tokens per axis now, e.g. ``(16, 16)``; every axis ``>=`` the training one except for
            ``none``.
        axis_dims: RoPE features per axis (even), e.g. ``(16, 16)`` for head dim 32 and two axes.
        theta: the RoPE base.
        t: the step's time in ``[0, 1]`` (1 = noise), used by ``dy_ntk``/``dy_yarn``.
        latent: the step's latent on the target grid, ``(n, C, h, w)`` or tokens ``(n, h·w, C)``; needed by SEGA
            (two axes only).
        options: SEGA's constants and ablation switches.
    Returns:
        One :class:`AxisRope` per axis, tensors of shape ``(d_a/2,)``, float64.

    Reference: Rajabi et al. (2026), §3 (SEGA); Peng et al. (2023), Eq. 17-22; Issachar et al. (2025), §3.
    """
    if not isinstance(method, str) or method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}; got {method!r}")
    train = _check_grid(train_grid, "train_grid")
    target = _check_grid(target_grid, "target_grid")
    dims = _check_grid(axis_dims, "axis_dims")
    if not len(train) == len(target) == len(dims):
        raise ValueError(f"train_grid, target_grid and axis_dims must have one entry per axis, "
                         f"got {len(train)}, {len(target)} and {len(dims)}")
    for d in dims:
        if d % 2 or d < 4:
            raise ValueError(f"axis_dims must be even numbers >= 4 (pairs of features), got {dims}")
    if check_real(theta, "theta") <= 1.0:
        raise ValueError(f"theta must be > 1, got {theta}")
    t = check_real(t, "t")
    if not 0.0 <= t <= 1.0:
        raise ValueError(f"t must lie in [0, 1] (1 = noise), got {t}")
    if method != "none" and any(b < a for a, b in zip(train, target)):
        raise ValueError(f"target_grid must be >= train_grid on every axis for method {method!r} "
                         f"(this rule extrapolates), got {target} < {train}")
    options = options if options is not None else SegaOptions()
    if not isinstance(options, SegaOptions):
        raise TypeError(f"options must be a SegaOptions, got {type(options).__name__}")
    if options.pairs not in ("all", "low", "high"):
        raise ValueError(f"options.pairs must be 'all', 'low' or 'high', got {options.pairs!r}")
    scales = [b / a for a, b in zip(train, target)]
    sega = method.startswith("sega")
    if sega:
        if len(dims) != 2:
            raise ValueError(f"SEGA measures a 2-D spectrum: axis_dims must have two axes, got {dims}")
        if max(scales) > 1:  # SEGA is a no-op at or below native resolution: no latent needed there
            if latent is None:
                raise ValueError("latent is required for SEGA: the step's latent (n, C, h, w) on the target grid")
            grid_map = check_latent(latent, target)

    out = []
    for a, (d, length, s) in enumerate(zip(dims, train, scales)):
        half = d // 2
        ones = torch.ones(half, dtype=f64)
        if method == "none" or s <= 1:
            out.append(AxisRope(plain_frequencies(d, theta), ones))
        elif method == "pi":
            out.append(AxisRope(plain_frequencies(d, theta) / s, ones))
        elif method == "ntk":
            out.append(AxisRope(plain_frequencies(d, theta * ntk_factor(s, d)), ones))
        elif method == "dy_ntk":
            out.append(AxisRope(plain_frequencies(d, theta * ntk_factor(s, d) ** (2 * dype_kappa(t))), ones))
        elif method in ("yarn", "dy_yarn"):
            kappa = 1.0 if method == "yarn" else dype_kappa(t)
            out.append(AxisRope(yarn_frequencies(d, theta, s, length, kappa), ones * yarn_mscale(s)))
        else:
            omega = plain_frequencies(d, theta * sega_base_factor(s, d, "official" if method == "sega" else "port"))
            out.append(AxisRope(omega, ones))  # magnitudes filled below, from the spectrum
    if sega and max(scales) > 1:
        s_all = math.sqrt(math.prod(scales)) ** (2 / len(scales))  # geometric mean of the per-axis scales
        m_ref = s_all ** options.kappa
        sigma = spread(radial_profile(grid_map), options.gamma) if options.sigma is None else float(options.sigma)
        final = []
        for a, ax in enumerate(out):
            m = pair_scales(axis_profile(grid_map, a), ax.omega, m_ref, sigma * options.sign,
                            alpha=options.alpha, beta=options.beta, m_min=options.m_min)
            half = m.shape[0] // 2
            if options.pairs == "low":  # pairs k >= half are the slow ones
                m = torch.cat([torch.full((half,), m_ref, dtype=f64).clamp_min(options.m_min), m[half:]])
            elif options.pairs == "high":
                m = torch.cat([m[:half], torch.full((m.shape[0] - half,), m_ref, dtype=f64).clamp_min(options.m_min)])
            final.append(AxisRope(ax.omega, m))
        out = final
    return out


def rotary_from_axes(axes: list[AxisRope], grid: tuple[int, ...], *, dtype: torch.dtype = torch.float32,
                     device: torch.device | str | None = None) -> Rotary:
    """``(cos, sin)`` tables for the engine's DiT from per-axis ``(ω, m)``: ``m cos(p ω)``, ``m sin(p ω)``.

    Tokens are in row-major order on ``grid``; the layout is the engine's rotate-half axial layout (first the
    row pairs, then the column pairs, then the same again for the second half).

    Returns:
        ``(cos, sin)``, each of shape ``(prod(grid), 2 · Σ_a d_a/2)``.

    Reference: Su et al. (2021), Eq. 34; Heo et al. (2024), §3 (axial RoPE).
    """
    if not isinstance(axes, (list, tuple)) or not all(isinstance(a, AxisRope) for a in axes):
        raise TypeError("axes must be a list of AxisRope, as returned by rope_scaling")
    grid = _check_grid(grid, "grid")
    if len(grid) != len(axes):
        raise ValueError(f"grid must have one entry per axis ({len(axes)}), got {grid}")
    coords = torch.meshgrid(*[torch.arange(n, dtype=f64) for n in grid], indexing="ij")
    angles, mags = [], []
    for ax, c in zip(axes, coords):
        angles.append(c.reshape(-1, 1) * ax.omega)
        mags.append(ax.magnitude.expand(c.numel(), -1))
    ang, mag = torch.cat(angles, -1), torch.cat(mags, -1)
    cos, sin = (mag * torch.cos(ang)).to(dtype), (mag * torch.sin(ang)).to(dtype)
    if device is not None:
        cos, sin = cos.to(device), sin.to(device)
    return torch.cat([cos, cos], -1), torch.cat([sin, sin], -1)
