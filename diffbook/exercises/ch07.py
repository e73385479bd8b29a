"""Checkers for the exercises of Chapter 7 (DDIM and the samplers)."""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Any

import torch
from torch import Tensor

from diffbook import samplers
from diffbook.foundations.convergence import fit_order
from diffbook.exercises.answers import as_expr, as_number, as_tensor, close, diagnose
from diffbook.exercises.core import Fail, call, checker
from diffbook.foundations.sampler_eval import mixture_denoiser, pf_ode_reference, rms_distance, sweep_nfe

__all__ = [
    "GMM_WEIGHTS",
    "GMM_MEANS",
    "GMM_STDS",
    "check_posterior_variance",
    "check_ddim_step",
    "check_dpm_solver_coefficient",
    "check_heun_step",
    "check_dpmpp_order",
    "check_crossover",
]

f64 = torch.float64
GMM_WEIGHTS = torch.tensor([0.2, 0.5, 0.3], dtype=f64)
GMM_MEANS = torch.tensor([[-1.5, 0.0], [1.0, 1.0], [0.0, -1.5]], dtype=f64)
GMM_STDS = torch.tensor([0.3, 0.5, 0.4], dtype=f64)
"""The chapter's 2-D Gaussian mixture, used by the experiment exercises."""

SIGMA_MAX, SIGMA_STOP = 80.0, 0.05
CROSSOVER_BUDGETS = (8, 12, 16, 20, 24, 32)


def _numeric_values(expr: Any, symbols: dict[str, Any], points: list[dict[str, float]]) -> list[float]:
    import sympy as sp

    out = []
    for point in points:
        value = complex(sp.N(expr.subs({symbols[k]: v for k, v in point.items()})))
        if abs(value.imag) > 1e-9 or not math.isfinite(value.real):
            raise Fail(f"your expression is not a finite real number at {point}")
        out.append(value.real)
    return out


def _matches(values: list[float], target: list[float]) -> bool:
    return all(abs(a - b) <= 1e-9 * (1.0 + abs(b)) for a, b in zip(values, target))


# ------------------------------------------------------------------------------------------- 7.1


@checker("7.1", "sigma_tilde2")
def check_posterior_variance(expr: Any) -> str:
    """Exercise 7.1: the posterior variance of x_s given x_t and x_0, in alpha_s, sigma_s, alpha_t, sigma_t."""
    import sympy as sp

    names = ["alpha_s", "sigma_s", "alpha_t", "sigma_t"]
    syms = {n: sp.Symbol(n, positive=True) for n in names}
    e = as_expr(expr, "sigma_tilde2", syms)
    a_s, s_s, a_t, s_t = (syms[n] for n in names)
    v = s_t**2 - (a_t / a_s) ** 2 * s_s**2
    truth = s_s**2 * v / s_t**2
    # points with sigmabar_s = sigma_s/alpha_s < sigmabar_t = sigma_t/alpha_t, VP and not VP
    points = [
        {"alpha_s": 0.9, "sigma_s": math.sqrt(1 - 0.81), "alpha_t": 0.6, "sigma_t": 0.8},
        {"alpha_s": 1.0, "sigma_s": 0.3, "alpha_t": 1.0, "sigma_t": 1.7},
        {"alpha_s": 0.7, "sigma_s": 0.2, "alpha_t": 0.4, "sigma_t": 0.9},
    ]
    got = _numeric_values(e, syms, points)
    if _matches(got, _numeric_values(truth, syms, points)):
        return "σ̃² = σ_s² v/σ_t² = σ_s²(1 - σ̄_s²/σ̄_t²), with v = σ_t² - (α_t/α_s)²σ_s²: DDPM's posterior variance."
    mistakes = [
        (v, "that is v, the variance of the forward step x_t | x_s; the posterior variance is v·σ_s²/σ_t²."),
        (s_s**2 * v / s_t, "you divided by σ_t instead of σ_t²: the posterior precision is σ_t²/(σ_s² v)."),
        (s_s**2 * v, "you forgot to divide by σ_t²: the posterior precision is 1/σ_s² + a²/v = σ_t²/(σ_s² v)."),
        (s_s**2 * (1 - (s_t / a_t) ** 2 / (s_s / a_s) ** 2),
         "s and t are swapped: σ̃² must be ≥ 0, so the ratio is σ̄_s²/σ̄_t² < 1."),
        (s_s**2 - s_t**2 * (a_s / a_t) ** 2,
         "that is not a variance of x_s given (x_t, x_0); multiply the two Gaussians and read off the precision."),
    ]
    for wrong, message in mistakes:
        if _matches(got, _numeric_values(wrong, syms, points)):
            raise Fail(message)
    raise Fail("not the posterior variance. Multiply N(x_t; a x_s, v) by N(x_s; α_s x_0, σ_s²) with a = α_t/α_s and "
               "v = σ_t² - a²σ_s², and invert the precision 1/σ_s² + a²/v.")


# ------------------------------------------------------------------------------------------- 7.2


def _ddim_reference(
    x_t: Tensor, x0: Tensor, a_t: float, s_t: float, a_s: float, s_s: float, eta: float, z: Tensor
) -> Tensor:
    eps = (x_t - a_t * x0) / s_t
    tilde = s_s * math.sqrt(1.0 - (s_s / a_s) ** 2 / (s_t / a_t) ** 2)
    c = eta * tilde
    return a_s * x0 + math.sqrt(s_s**2 - c**2) * eps + c * z


@checker("7.2", "ddim_step")
def check_ddim_step(step: Any) -> str:
    """Exercise 7.2: ``ddim_step(x_t, x0_hat, alpha_t, sigma_t, alpha_s, sigma_s, eta, z)`` is eq. (eq-ch7-ddim)."""
    g = torch.Generator().manual_seed(0)
    x_t = torch.randn(6, 2, generator=g, dtype=f64)
    x0 = torch.randn(6, 2, generator=g, dtype=f64)
    z = torch.randn(6, 2, generator=g, dtype=f64)
    cases = [(0.6, 0.8, 0.9, math.sqrt(0.19)), (1.0, 2.0, 1.0, 0.5), (0.5, 0.6, 0.8, 0.3)]
    for a_t, s_t, a_s, s_s in cases:
        outs = {
            eta: as_tensor(call(step, "ddim_step", x_t, x0, a_t, s_t, a_s, s_s, eta, z), "ddim_step", tuple(x_t.shape))
            for eta in (0.0, 0.5, 1.0)
        }
        if close(outs[0.0], outs[1.0]):
            raise Fail("your step ignores η: with η = 1 it must add the fresh noise η·σ̃·z.")
        eps = (x_t - a_t * x0) / s_t
        tilde = s_s * math.sqrt(1.0 - (s_s / a_s) ** 2 / (s_t / a_t) ** 2)
        for eta, out in outs.items():
            where = f"(α_t, σ_t, α_s, σ_s) = {(a_t, s_t, a_s, round(s_s, 3))}, η = {eta}"
            mistakes = [
                (a_s * x0 + s_s * eps + eta * tilde * z,
                 f"at {where}: the coefficient of ε̂ must shrink to sqrt(σ_s² - η²σ̃²), "
                 "or the variance of x_s exceeds σ_s²."),
                (a_s * x0 + math.sqrt(max(s_s**2 - (eta * s_s) ** 2, 0.0)) * eps + eta * s_s * z,
                 f"at {where}: you used σ_s where σ̃ belongs: σ̃² = σ_s²(1 - σ̄_s²/σ̄_t²) with σ̄ = σ/α."),
                (_ddim_reference(x_t, x0, a_t, s_t, a_s, s_s, eta**2, z),
                 f"at {where}: the noise scale is η·σ̃ (variance η²σ̃²), not η²·σ̃."),
                (a_s * x0 + s_s * (x_t - x0) / s_t,
                 f"at {where}: ε̂ = (x_t - α_t x̂₀)/σ_t; you dropped α_t."),
            ]
            diagnose(out, _ddim_reference(x_t, x0, a_t, s_t, a_s, s_s, eta, z), mistakes,
                     f"at {where} your step is off by up to {{err}}; "
                     "expected α_s x̂₀ + sqrt(σ_s² - η²σ̃²) ε̂ + η σ̃ z.")
    return "α_s x̂₀ + sqrt(σ_s² - η²σ̃²) ε̂ + η σ̃ z, for VP and non-VP coefficients and η = 0, ½, 1."


# ------------------------------------------------------------------------------------------- 7.3


@checker("7.3", "phi")
def check_dpm_solver_coefficient(expr: Any) -> str:
    """Exercise 7.3: the coefficient φ(h) in DPM-Solver-1, ``x_s = (α_s/α_t) x_t - σ_s φ(h) ε̂``."""
    import sympy as sp

    h = sp.Symbol("h", positive=True)
    e = as_expr(expr, "phi", {"h": h})
    syms = {"h": h}
    points = [{"h": 0.1}, {"h": 0.7}, {"h": 2.3}]
    got = _numeric_values(e, syms, points)
    if _matches(got, _numeric_values(sp.exp(h) - 1, syms, points)):
        return "φ(h) = e^h - 1 = expm1(h): the exact integral of e^{-λ} over the step, with ε̂ frozen."
    mistakes = [
        (1 - sp.exp(-h), "1 - e^{-h} is the coefficient of the data-prediction form "
                         "(DPM-Solver++1, in front of α_s x̂₀); "
                         "in the noise-prediction form the σ_s in front makes it e^h - 1."),
        (h, "h is the first-order Taylor approximation of e^h - 1 (Euler in λ); DPM-Solver integrates e^{-λ} exactly."),
        (sp.exp(h), "off by one: ∫_{λ_t}^{λ_s} e^{-λ} dλ = e^{-λ_t} - e^{-λ_s}, "
                    "which gives e^h - 1 after factoring σ_s."),
        (sp.exp(-h) - 1, "wrong sign convention: with h = λ_s - λ_t > 0 the coefficient is e^h - 1 > 0."),
        (1 - sp.exp(h), "sign error: with the minus sign in front, φ(h) = e^h - 1 > 0."),
    ]
    for wrong, message in mistakes:
        if _matches(got, _numeric_values(wrong, syms, points)):
            raise Fail(message)
    raise Fail(f"at h = 0.7 yours gives {got[1]:.4g}, expected e^0.7 - 1 = {math.expm1(0.7):.4g}. "
               "Integrate d x̄/dλ = -e^{-λ} ε̂ with ε̂ frozen, then multiply by α_s.")


# ------------------------------------------------------------------------------------------- 7.4


def _heun_reference(denoiser: Any, x: Tensor, sigma: float, sigma_next: float) -> Tensor:
    d = (x - denoiser(x, sigma)) / sigma
    x_euler = x + (sigma_next - sigma) * d
    d_next = (x_euler - denoiser(x_euler, sigma_next)) / sigma_next
    return x + 0.5 * (sigma_next - sigma) * (d + d_next)


@checker("7.4", "heun_step")
def check_heun_step(step: Any) -> str:
    """Exercise 7.4: ``heun_step(denoiser, x, sigma, sigma_next)`` is EDM's Heun step in σ̄."""
    denoiser = mixture_denoiser(GMM_MEANS, GMM_WEIGHTS, GMM_STDS)
    x = torch.randn(8, 2, generator=torch.Generator().manual_seed(1), dtype=f64) * 2.0
    for sigma, sigma_next in [(2.0, 1.2), (0.5, 0.3)]:
        out = as_tensor(call(step, "heun_step", denoiser, x, sigma, sigma_next), "heun_step", tuple(x.shape))
        dt = sigma_next - sigma
        d = (x - denoiser(x, sigma)) / sigma
        x_e = x + dt * d
        d_wrong_sigma = (x_e - denoiser(x_e, sigma)) / sigma
        d_next = (x_e - denoiser(x_e, sigma_next)) / sigma_next
        mistakes = [
            (x_e, "this is Euler's step; Heun also evaluates the slope at the predicted point and averages."),
            (x + dt * (d + d_next), "you forgot to halve: x + (Δσ/2)(d + d')."),
            (x + 0.5 * dt * (d + d_wrong_sigma),
             "evaluate the corrector slope at the new noise level sigma_next, not sigma."),
            (x + dt * d_next, "you used only the corrector slope; Heun averages the two slopes."),
            (x + 0.5 * dt * ((x - denoiser(x, sigma)) + (x_e - denoiser(x_e, sigma_next))),
             "the slope is ε̂ = (x - D(x; σ))/σ: you forgot to divide by σ."),
        ]
        diagnose(out, _heun_reference(denoiser, x, sigma, sigma_next), mistakes,
                 f"for σ: {sigma} → {sigma_next} your step is off by up to {{err}}.")
    return ("predictor with ε̂(x, σ), corrector with ε̂ at the predicted point and σ_next, "
            "and their average: EDM's Heun step.")


# ------------------------------------------------------------------------------------------- 7.5


@lru_cache(maxsize=1)
def _gmm_problem(n_paths: int = 200, seed: int = 0) -> tuple[Tensor, Tensor]:
    """Starting points at σ = 80 and their RK4 reference at σ = 0.05 for the chapter's mixture."""
    denoiser = mixture_denoiser(GMM_MEANS, GMM_WEIGHTS, GMM_STDS)
    x = samplers.prior_noise((n_paths, 2), SIGMA_MAX, variance_preserving=False,
                             generator=torch.Generator().manual_seed(seed), dtype=f64)
    return x, pf_ode_reference(denoiser, x, SIGMA_MAX, SIGMA_STOP, steps=400)


def _path_errors(sampler: Any, step_counts: list[int]) -> tuple[Tensor, Tensor]:
    x, ref = _gmm_problem()
    denoiser = mixture_denoiser(GMM_MEANS, GMM_WEIGHTS, GMM_STDS)
    nfe, err, _ = sweep_nfe(sampler, denoiser, x, step_counts, lambda out: rms_distance(out, ref),
                            sigma_min=SIGMA_STOP, sigma_max=SIGMA_MAX, to_zero=False)
    return nfe, err


@checker("7.5", "measured_order")
def check_dpmpp_order(measured: Any) -> str:
    """Exercise 7.5: the measured order of DPM-Solver++(2M) on the chapter's mixture (about 2)."""
    p = as_number(measured, "measured_order")
    nfe, err = _path_errors(samplers.sample_dpmpp_2m, [16, 32, 64, 128])
    ours = fit_order(1.0 / nfe, err)
    if abs(p - 2.0) <= 0.3:
        return f"measured order {p:.2f} (ours {ours:.2f}): DPM-Solver++(2M) is second order."
    if abs(p + 2.0) <= 0.3:
        raise Fail(f"you got {p:.2f}: the sign flips if you fit log error against log NFE; "
                   "fit against 1/NFE (the step size).")
    if abs(p - 1.0) <= 0.3:
        raise Fail(f"you got {p:.2f}, a first-order slope. Did you run DDIM instead, or stop at σ = 0 (the last step "
                   "to 0 is one denoiser call for every sampler)? Stop at σ_min = 0.05.")
    raise Fail(f"you got {p:.3g}; we measure {ours:.2f}. Use to_zero=False, several doublings of the NFE from 16, "
               "and convergence.fit_order(1/nfe, errors).")


# ------------------------------------------------------------------------------------------- 7.6


@lru_cache(maxsize=1)
def _crossover() -> tuple[int, dict[int, tuple[float, float]]]:
    euler_nfe, euler_err = _path_errors(samplers.sample_euler, list(CROSSOVER_BUDGETS))
    heun_nfe, heun_err = _path_errors(samplers.sample_heun, [b // 2 for b in CROSSOVER_BUDGETS])
    table = {b: (float(e), float(h)) for b, e, h in zip(CROSSOVER_BUDGETS, euler_err, heun_err)}
    for b in CROSSOVER_BUDGETS:
        if table[b][1] < table[b][0]:
            return b, table
    return -1, table


@checker("7.6", "crossover_nfe")
def check_crossover(answer: Any) -> str:
    """Exercise 7.6: the smallest budget (NFE) at which Heun's path error falls below Euler's."""
    value = as_number(answer, "crossover_nfe")
    if value != round(value):
        raise Fail(f"`crossover_nfe` should be a whole number of evaluations, got {value}")
    b = int(round(value))
    truth, table = _crossover()
    detail = ", ".join(f"NFE {k}: Euler {e:.3f} / Heun {h:.3f}" for k, (e, h) in table.items())
    if b == truth:
        return f"Heun first beats Euler at NFE = {truth} ({detail}). Below it, the higher order does not pay."
    if 2 * b == truth:
        raise Fail(f"{b} looks like a number of Heun *steps*; each costs 2 evaluations, so give the NFE.")
    if b not in CROSSOVER_BUDGETS:
        raise Fail(f"{b} is not one of the budgets {list(CROSSOVER_BUDGETS)}.")
    if b < truth:
        raise Fail(f"at NFE = {b} Heun is not yet better: {detail}.")
    raise Fail(f"Heun is already better at a smaller budget than {b}: {detail}.")
