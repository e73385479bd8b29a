"""Checkers for the exercises of Chapter 11 (SEGA: spectral-energy guided RoPE scaling).

Every checker computes its reference first, then calls the student's function on copies (:func:`call`), and
recognises the common mistakes by their values.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from diffbook.exercises.answers import as_number, as_tensor, diagnose
from diffbook.exercises.core import Fail, call, checker
from diffbook.sega import band_positions, ntk_factor, pair_scales, plain_frequencies, spectral_flatness

__all__ = ["check_rope_frequencies", "check_ntk_base", "check_flatness", "check_band_positions",
           "check_pair_scales"]

f64 = torch.float64


@checker("11.1", "rope_freqs")
def check_rope_frequencies(fn: Any) -> str:
    """Exercise 11.1: ``rope_freqs(d, theta)``, the frequencies ``θ^(-2k/d)``, ``k = 0 … d/2-1``, shape ``(d/2,)``."""
    d, theta = 16, 100.0
    truth = plain_frequencies(d, theta)
    k = torch.arange(d // 2, dtype=f64)
    out = as_tensor(call(fn, "rope_freqs", d, theta), "rope_freqs", (d // 2,)).to(f64)
    diagnose(out, truth, [
        (theta ** (-k / d), "the exponent is −2k/d (pairs of features), not −k/d."),
        (theta ** (2 * k / d), "the sign of the exponent: the fastest pair (k = 0) rotates by 1 per token, the others slower."),
        (1 / truth, "those are wavelengths-like values θ^(2k/d); the frequency is their inverse."),
        (2 * math.pi / truth, "those are wavelengths λ_k = 2π/ω_k; the exercise asks for ω_k."),
    ], "your frequencies are off by up to {err}.")
    return "ω_k = θ^(−2k/d): from 1 (the fastest pair) down to about θ^(−1)."


@checker("11.2", "ntk_theta")
def check_ntk_base(fn: Any) -> str:
    """Exercise 11.2: ``ntk_theta(theta, s, d)``, the NTK-aware base ``θ s^(d/(d-2))``, a number."""
    theta, s, d = 10000.0, 4.0, 56
    truth = theta * ntk_factor(s, d)
    got = as_number(call(fn, "ntk_theta", theta, s, d), "ntk_theta")
    if abs(got - truth) <= 1e-6 * truth:
        return f"θ' = θ s^(d/(d−2)) = {truth:.1f}: the slowest pair is divided by exactly s, the fastest is untouched."
    for wrong, message in [
        (theta * s, "θ·s divides the slowest pair by s^((d−2)/d), not by s: the exponent is d/(d−2)."),
        (theta * s ** (2 * d / (d - 2)), "s^(2d/(d−2)) is the official SEGA code's choice; plain NTK uses s^(d/(d−2))."),
        (theta * s ** ((d - 2) / d), "the exponent is inverted: d/(d−2), slightly above 1."),
        (theta / s, "the base grows with s (slower rotations), it does not shrink."),
    ]:
        if abs(got - wrong) <= 1e-6 * abs(wrong):
            raise Fail(message)
    raise Fail(f"you gave {got:.6g}; expected {truth:.6g}. Ask: what base makes θ'^(−(d−2)/d) = θ^(−(d−2)/d)/s?")


@checker("11.3", "flatness")
def check_flatness(fn: Any) -> str:
    """Exercise 11.3: ``flatness(E)``, geometric over arithmetic mean of a positive profile ``E`` ``(B,)``."""
    gen = torch.Generator().manual_seed(113)
    energy = torch.rand(12, generator=gen, dtype=f64) ** 4 + 1e-3
    truth = spectral_flatness(energy)
    got = as_number(call(fn, "flatness", energy), "flatness")
    if abs(got - truth) < 1e-6:
        return f"SF = {truth:.4f}: 1 for a flat profile, near 0 when a few bands hold the energy."
    log_mean = float(torch.log(energy).mean())
    for wrong, message in [
        (1 / truth, "that is arithmetic over geometric mean (≥ 1); flatness is geometric over arithmetic (≤ 1)."),
        (log_mean / float(torch.log(energy.mean())), "the geometric mean is exp(mean log E), not mean log E."),
        (float(torch.exp(torch.log(energy).mean())), "divide by the arithmetic mean, so that SF is scale-free."),
        (1 - truth ** 1.5, "that is σ = 1 − SF^γ, the gate; the exercise asks for SF itself."),
    ]:
        if abs(got - wrong) < 1e-6:
            raise Fail(message)
    raise Fail(f"you gave {got:.4f}; expected {truth:.4f}.")


@checker("11.4", "band_of_pair")
def check_band_positions(fn: Any) -> str:
    """Exercise 11.4: ``band_of_pair(omega, B)``, each pair's fractional band ``(1 - u_k)(B - 1)``, shape ``(K,)``."""
    omega = plain_frequencies(16, 300.0)
    truth = band_positions(omega, 10)
    lp = torch.log(2 * math.pi / omega)
    u = (lp - lp.min()) / (lp.max() - lp.min())
    out = as_tensor(call(fn, "band_of_pair", omega, 10), "band_of_pair", tuple(omega.shape)).to(f64)
    lin = (omega - omega.min()) / (omega.max() - omega.min())
    diagnose(out, truth, [
        (u * 9, "reversed: the fastest pair (shortest wavelength) must go to the highest band, Nyquist."),
        ((1 - u) * 10, "the bands are 0 … B−1, so the fastest pair sits at B − 1, not B."),
        (lin * 9, "normalise the log-wavelength, not the frequency itself: the pairs are geometric in ω."),
    ], "your band positions are off by up to {err}.")
    return "b_k = (1 − u_k)(B − 1): a rank match in log-period, fastest pair → Nyquist, slowest → DC."


@checker("11.5", "sega_scales")
def check_pair_scales(fn: Any) -> str:
    """Exercise 11.5: ``sega_scales(E, omega, m_ref, sigma)``, SEGA's magnitudes (α 0.15, β 1.5, m_min 1), ``(K,)``."""
    gen = torch.Generator().manual_seed(115)
    energy = torch.rand(8, generator=gen, dtype=f64) ** 3 + 1e-3
    omega = plain_frequencies(16, 100.0)
    m_ref, sigma = 1.2, 0.8
    truth = pair_scales(energy, omega, m_ref, sigma)
    unclamped = pair_scales(energy, omega, m_ref, sigma, m_min=0.0)
    out = as_tensor(call(fn, "sega_scales", energy, omega, m_ref, sigma), "sega_scales", tuple(omega.shape)).to(f64)
    pos = band_positions(omega, 8)
    j0 = pos.floor().long().clamp(0, 7)
    j1 = (j0 + 1).clamp(max=7)
    w = pos - j0
    le = (1 - w) * torch.log(energy + 1e-8)[j0] + w * torch.log(energy + 1e-8)[j1]
    z = (le - le.mean()) / le.std(unbiased=False)
    uncentred = (m_ref * (1 - 0.15 * sigma * torch.tanh(1.5 * z))).clamp_min(1.0)
    flipped = pair_scales(energy, omega, m_ref, -sigma)
    mistakes = [(uncentred, "subtract the mean of tanh(βz) so the correction is zero-sum (mean m = m_ref unclamped)."),
                (flipped, "the sign: high-energy bands get *smaller* magnitudes, m_ref(1 − ασŝ)."),
                (torch.full_like(truth, m_ref), "that is uniform m_ref (σ = 0); use the per-pair correction.")]
    if not torch.allclose(unclamped, truth):
        mistakes.append((unclamped, "apply the floor m_min = 1: max(1, m_ref(1 − ασŝ_k))."))
    diagnose(out, truth, mistakes, "your magnitudes are off by up to {err}.")
    return "m_k = max(1, m_ref(1 − ασŝ_k)): smaller on the bands that hold the energy, larger on the quiet ones."
