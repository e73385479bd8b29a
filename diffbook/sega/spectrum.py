"""SEGA's measurements on the step's latent: axis energy profiles, radial profile, flatness, pair scales.

A latent on an ``h × w`` token grid is averaged over batch and channels into a map ``M`` and centred. Its axis
profiles (1-D power spectra, one-sided, mean power in ``max(L/2, 8)`` bins) tell which bands hold energy; its
radial profile's *spectral flatness* (geometric over arithmetic mean, Wiener entropy) tells how much
structure there is at all: ``σ = 1 - SF^γ`` is about 0 on white noise and near 1 on a ``1/f²`` image.
Pairs are matched to bands by rank in log-wavelength (the fastest pair to the highest band) and get
``m_k = max(m_min, m_ref (1 - α σ ŝ_k))`` with ``ŝ_k`` a zero-mean ``tanh`` of the standardised log energy.

Reference: Rajabi et al. (2026), §3 (SEGA), and the official FLUX code (constants); Wiener entropy
(spectral flatness) as in Gray & Markel (1974).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from diffbook._checks import check_real

__all__ = ["check_latent", "latent_map", "axis_profile", "radial_profile", "spectral_flatness", "spread",
           "band_positions", "pair_scales"]

f64 = torch.float64


def check_latent(latent: object, grid: tuple[int, ...]) -> Tensor:
    """Validate the step's latent for ``grid = (h, w)`` and return its centred map ``M``, ``(h, w)`` float64.

    Args:
        latent: ``(n, C, h, w)`` or tokens ``(n, h·w, C)``, finite.
    Returns:
        Shape ``(h, w)``.

    Reference: Rajabi et al. (2026), §3 (the map M: mean over batch and channels, mean removed).
    """
    if not isinstance(latent, Tensor):
        raise TypeError(f"latent must be a torch.Tensor (n, C, h, w) or (n, h*w, C), got {type(latent).__name__}")
    if latent.is_complex() or not latent.is_floating_point():
        raise TypeError(f"latent must be a real floating tensor, got dtype {latent.dtype}")
    h, w = grid
    if latent.ndim == 4 and tuple(latent.shape[2:]) == (h, w):
        m = latent.detach().to("cpu", f64).mean(dim=(0, 1))
    elif latent.ndim == 3 and latent.shape[1] == h * w:
        m = latent.detach().to("cpu", f64).mean(dim=(0, 2)).reshape(h, w)
    else:
        raise ValueError(f"latent must have shape (n, C, {h}, {w}) or (n, {h * w}, C) for the target grid "
                         f"{(h, w)}, got {tuple(latent.shape)}")
    if not torch.isfinite(m).all() or not torch.isfinite(latent.detach().cpu()).all():
        raise ValueError("latent must be finite (it holds NaN or inf)")
    return m - m.mean()


def latent_map(latent: Tensor) -> Tensor:
    """The centred map ``M`` of a latent ``(n, C, h, w)``: shape ``(h, w)``.

    Reference: Rajabi et al. (2026), §3.
    """
    if not isinstance(latent, Tensor) or latent.ndim != 4:
        raise ValueError(f"latent must be a tensor of shape (n, C, h, w), got {getattr(latent, 'shape', latent)!r}")
    return check_latent(latent, tuple(latent.shape[2:]))


def _check_map(m: object) -> Tensor:
    if not isinstance(m, Tensor) or m.ndim != 2 or min(m.shape) < 2:
        raise ValueError(f"M must be a 2-D tensor (h, w) with h, w >= 2, got {getattr(m, 'shape', m)!r}")
    return m.to(f64)


def _bin_mean(idx: Tensor, val: Tensor, bins: int) -> Tensor:
    total = torch.zeros(bins, dtype=f64).index_add_(0, idx, val)
    count = torch.zeros(bins, dtype=f64).index_add_(0, idx, torch.ones_like(val))
    return total / (count + 1e-8)


def axis_profile(m: Tensor, axis: int) -> Tensor:
    """Mean 1-D power along ``axis`` of the map ``m`` ``(h, w)``, one-sided, in ``max(L/2, 8)`` bins (DC first).

    Returns:
        Shape ``(max(L // 2, 8),)``, float64.

    Reference: Rajabi et al. (2026), §3 (axis energy profiles E^(h), E^(w)).
    """
    m = _check_map(m)
    if axis not in (0, 1):
        raise ValueError(f"axis must be 0 (rows) or 1 (columns), got {axis!r}")
    length = m.shape[axis]
    bins = max(length // 2, 8)
    power = torch.fft.fft(m, dim=axis).abs() ** 2
    power = power.mean(dim=1 - axis)[: length // 2 + 1]
    idx = (torch.linspace(0, 1, power.shape[0], dtype=f64) * bins).floor().long().clamp(0, bins - 1)
    return _bin_mean(idx, power, bins)


def radial_profile(m: Tensor) -> Tensor:
    """Radially averaged power of the centred 2-D spectrum of ``m`` ``(h, w)`` in ``max(h, w)/2`` rings.

    Returns:
        Shape ``(max(h, w) // 2,)``, float64.

    Reference: Rajabi et al. (2026), §3 (the isotropic profile E_iso).
    """
    m = _check_map(m)
    h, w = m.shape
    bins = max(h, w) // 2
    power = torch.fft.fftshift(torch.fft.fft2(m)).abs() ** 2
    rows = torch.arange(h, dtype=f64) - h / 2
    cols = torch.arange(w, dtype=f64) - w / 2
    r = torch.hypot(*torch.meshgrid(rows, cols, indexing="ij"))
    idx = (r / r.max() * bins).floor().long().clamp(0, bins - 1)
    return _bin_mean(idx.reshape(-1), power.reshape(-1), bins)


def spectral_flatness(energy: Tensor) -> float:
    """Geometric over arithmetic mean of a power profile ``(B,)``: 1 when flat, → 0 when peaked.

    Reference: Gray & Markel (1974) (spectral flatness / Wiener entropy).
    """
    if not isinstance(energy, Tensor) or energy.ndim != 1 or energy.numel() < 1:
        raise ValueError(f"energy must be a 1-D tensor of band powers, got {getattr(energy, 'shape', energy)!r}")
    e = energy.to(f64).clamp_min(1e-8)
    return float(torch.exp(torch.log(e).mean()) / e.mean())


def spread(energy: Tensor, gamma: float = 1.5) -> float:
    """SEGA's amplitude gate ``σ = 1 - clip(SF, 0, 1)^γ`` of a radial profile ``(B,)``.

    Reference: Rajabi et al. (2026), §3 (σ from the spectral "entropy", γ = 1.5).
    """
    check_real(gamma, "gamma", positive=True)
    return 1.0 - min(max(spectral_flatness(energy), 0.0), 1.0) ** gamma


def band_positions(omega: Tensor, bins: int) -> Tensor:
    """Fractional band of each pair: ``(1 - u_k)(B - 1)``, ``u_k`` the normalised log-wavelength (0 = fastest).

    Args:
        omega: frequencies ``(K,)``.
    Returns:
        Shape ``(K,)``: the fastest pair at ``B - 1`` (Nyquist), the slowest at 0 (DC).

    Reference: Rajabi et al. (2026), §3 (dimension-to-band matching).
    """
    if not isinstance(omega, Tensor) or omega.ndim != 1 or omega.numel() < 2 or not bool((omega > 0).all()):
        raise ValueError(f"omega must be a 1-D tensor of >= 2 positive frequencies, got {omega!r}")
    lp = torch.log(2 * math.pi / omega.to(f64))
    u = (lp - lp.min()) / (lp.max() - lp.min()).clamp_min(1e-12)
    return (1 - u) * (bins - 1)


def pair_scales(energy: Tensor, omega: Tensor, m_ref: float, sigma: float, *, alpha: float = 0.15,
                beta: float = 1.5, m_min: float = 1.0) -> Tensor:
    """SEGA's per-pair magnitudes ``max(m_min, m_ref (1 - α σ ŝ_k))`` for an axis profile ``energy`` ``(B,)``.

    ``ŝ_k = tanh(β z_k) - mean tanh(β z)`` with ``z`` the standardised log energy at each pair's band
    (linear interpolation between bins). High-energy bands get smaller magnitudes.

    Returns:
        Shape ``omega.shape``, float64.

    Reference: Rajabi et al. (2026), §3 (per-dimension correction and final scale; α = 0.15, β = 1.5).
    """
    bins = energy.shape[0]
    pos = band_positions(omega, bins)
    j0 = pos.floor().long().clamp(0, bins - 1)
    j1 = (j0 + 1).clamp(max=bins - 1)
    frac = pos - j0
    log_e = torch.log(energy.to(f64) + 1e-8)
    le = (1 - frac) * log_e[j0] + frac * log_e[j1]
    z = (le - le.mean()) / le.std(unbiased=False).clamp_min(1e-8)
    s_hat = torch.tanh(beta * z)
    s_hat = s_hat - s_hat.mean()
    return (m_ref * (1 - alpha * sigma * s_hat)).clamp_min(m_min)
