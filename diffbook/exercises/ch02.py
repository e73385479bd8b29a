"""Checkers for the exercises of Chapter 2 (stochastic differential equations)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from diffbook.foundations.brownian import brownian_increments, coarsen
from diffbook.foundations.convergence import fit_order
from diffbook.exercises.answers import as_expr, as_number, as_tensor, diagnose
from diffbook.exercises.core import Fail, call, checker
from diffbook.foundations.processes import gbm_solution
from diffbook.foundations.sde_errors import euler_maruyama_increments, strong_error

__all__ = [
    "check_ito_square",
    "check_brownian_path",
    "check_wdw",
    "check_euler_maruyama",
    "check_stationary_density",
    "check_strong_order",
    "check_milstein",
]

f64 = torch.float64
GBM_MU, GBM_SIGMA = 1.5, 1.0


def _symbols() -> dict[str, Any]:
    import sympy as sp

    x, w = sp.symbols("x W", real=True)
    theta, sigma, T = sp.symbols("theta sigma T", positive=True)
    return {"x": x, "W": w, "theta": theta, "sigma": sigma, "T": T}


def _same(a: Any, b: Any) -> bool:
    import sympy as sp

    return sp.simplify(sp.expand(a - b)) == 0


@checker("2.1", "drift_x2", "diffusion_x2")
def check_ito_square(drift: Any, diffusion: Any) -> str:
    """Exercise 2.1: the dt and dW coefficients of d(X²) for the OU process dX = -θX dt + σ dW."""
    s = _symbols()
    x, theta, sigma = s["x"], s["theta"], s["sigma"]
    allowed = {"x": x, "theta": theta, "sigma": sigma}
    a = as_expr(drift, "drift_x2", allowed)
    b = as_expr(diffusion, "diffusion_x2", allowed)
    if not _same(b, 2 * sigma * x):
        if _same(b, sigma * x) or _same(b, 2 * x):
            raise Fail("`diffusion_x2`: the dW coefficient is g·∂φ/∂x with φ = x², g = σ, i.e. 2σx.")
        raise Fail(f"`diffusion_x2` is {b}; the dW coefficient is g·∂φ/∂x = σ·2x.")
    if _same(a, -2 * theta * x**2 + sigma**2):
        return "d(X²) = (σ² - 2θX²) dt + 2σX dW: the σ² is Itô's term ½g²φ''. Setting E[drift] = 0 gives E X² = σ²/(2θ)."
    if _same(a, -2 * theta * x**2):
        raise Fail("`drift_x2` is the ordinary chain rule: Itô's lemma adds ½·g²·∂²φ/∂x² = ½·σ²·2 = σ².")
    if _same(a, -2 * theta * x**2 + sigma**2 / 2):
        raise Fail("`drift_x2`: ∂²(x²)/∂x² = 2, so ½·σ²·2 = σ², not σ²/2.")
    if _same(a, -2 * theta * x**2 + 2 * sigma**2):
        raise Fail("`drift_x2`: you dropped the ½ in Itô's term ½g²φ''; it contributes σ², not 2σ².")
    if _same(a, 2 * theta * x**2 + sigma**2) or _same(a, -theta * x**2 + sigma**2):
        raise Fail("`drift_x2`: the first-order term is f·∂φ/∂x = (-θx)·2x = -2θx².")
    raise Fail(f"`drift_x2` is {a}; it should be f·φ' + ½g²φ'' with f = -θx, g = σ, φ = x².")


def _increment_stats(w: Tensor) -> tuple[float, float]:
    dw = w.diff(dim=-1)
    return float(dw.var()), float(w[:, -1].var())


@checker("2.2", "brownian_path")
def check_brownian_path(fn: Any) -> str:
    """Exercise 2.2: ``brownian_path(n_paths, n_steps, T, generator)`` returns exact Brownian paths from 0."""
    n_paths, n_steps, T = 20_000, 50, 2.0
    h = T / n_steps
    w = as_tensor(call(fn, "brownian_path", n_paths, n_steps, T, torch.Generator().manual_seed(1)), "brownian_path")
    if tuple(w.shape) == (n_paths, n_steps):
        raise Fail(f"shape {tuple(w.shape)}: include the starting point W_0 = 0, so the shape is (n_paths, n_steps + 1).")
    if tuple(w.shape) == (n_steps + 1, n_paths):
        raise Fail(f"shape {tuple(w.shape)}: put paths first, (n_paths, n_steps + 1).")
    if tuple(w.shape) != (n_paths, n_steps + 1):
        raise Fail(f"shape {tuple(w.shape)}, expected (n_paths, n_steps + 1) = {(n_paths, n_steps + 1)}.")
    if not torch.all(w[:, 0] == 0):
        raise Fail("every path must start at W_0 = 0: prepend a column of zeros before the cumulative sum.")
    again = as_tensor(call(fn, "brownian_path", n_paths, n_steps, T, torch.Generator().manual_seed(1)), "brownian_path")
    if not torch.equal(again, w):
        raise Fail("two calls with identically seeded generators gave different paths: pass `generator=generator` to torch.randn.")
    var_dw, var_end = _increment_stats(w)
    rel = abs(var_dw / h - 1)
    if rel > 0.05:
        if abs(var_dw / h**2 - 1) < 0.05:
            raise Fail(f"increments have variance h² = {h**2:.4g}: multiply N(0, 1) draws by sqrt(h), not by h.")
        if abs(var_dw - 1) < 0.05:
            raise Fail("increments have variance 1: multiply the N(0, 1) draws by sqrt(h) = sqrt(T / n_steps).")
        if abs(var_dw / T - 1) < 0.05:
            raise Fail("increments have variance T: each step has variance h = T / n_steps, not T.")
        raise Fail(f"increments have variance {var_dw:.4g}; they should be N(0, h) with h = {h:.4g}.")
    if abs(var_end / T - 1) > 0.05:
        if abs(var_end / h - 1) < 0.1:
            raise Fail("Var W_T ≈ h: you returned increments, not the path; take the cumulative sum along time.")
        raise Fail(f"Var W_T = {var_end:.4g}, expected T = {T}; the path is the cumulative sum of the increments.")
    dw = w.diff(dim=-1)
    lag = float(((dw[:, 1:] * dw[:, :-1]).mean()) / var_dw)
    if abs(lag) > 0.02:
        raise Fail(f"consecutive increments are correlated ({lag:.3f}); they must be independent draws.")
    return f"W_0 = 0, increments N(0, h) (variance {var_dw:.4f} vs h = {h}), Var W_T = {var_end:.3f} vs T = {T}, reproducible."


@checker("2.3", "ito_wdw", "second_moment")
def check_wdw(expr: Any, moment: Any) -> str:
    """Exercise 2.3: ∫_0^T W dW in terms of W = W_T and T, and its second moment."""
    s = _symbols()
    W, T = s["W"], s["T"]
    integral = as_expr(expr, "ito_wdw", {"W": W, "T": T})
    m2 = as_expr(moment, "second_moment", {"T": T})
    if not _same(integral, (W**2 - T) / 2):
        if _same(integral, W**2 / 2):
            raise Fail("`ito_wdw` = W²/2 is ordinary calculus (and the Stratonovich/midpoint limit); the left-point sums lose T/2.")
        if _same(integral, (W**2 + T) / 2):
            raise Fail("`ito_wdw` = (W² + T)/2 is the limit of *right*-point sums; Itô evaluates W at the left end.")
        if _same(integral, W**2 - T):
            raise Fail("`ito_wdw`: W_T² = 2·(Itô sum) + Σ(ΔW)², so divide by 2.")
        raise Fail(f"`ito_wdw` is {integral}; telescope W_T² = Σ(2W_i ΔW_i + ΔW_i²) and use Σ ΔW_i² → T.")
    if _same(m2, T**2 / 2):
        return "∫W dW = (W_T² - T)/2, and E[(∫W dW)²] = E∫W² dt = ∫t dt = T²/2 (the Itô isometry)."
    if _same(m2, 3 * T**2 / 4):
        raise Fail("`second_moment` = 3T²/4 is E[(W_T²/2)²]; square (W_T² - T)/2 instead: (3T² - 2T² + T²)/4.")
    if _same(m2, T**2 / 4) or _same(m2, T**2):
        raise Fail("`second_moment`: use the isometry, E[(∫W dW)²] = ∫_0^T E[W_t²] dt = ∫_0^T t dt.")
    if _same(m2, 0):
        raise Fail("`second_moment` = 0 is the *mean* of the integral; the second moment is E[(∫W dW)²].")
    raise Fail(f"`second_moment` is {m2}; by the Itô isometry it is ∫_0^T t dt.")


def _em_probe() -> tuple[Callable[[Tensor, Tensor], Tensor], Callable[[Tensor, Tensor], Tensor], Tensor, Tensor, float]:
    """A time-dependent, multiplicative test SDE and fixed increments."""

    def f(t: Tensor, x: Tensor) -> Tensor:
        return (1.0 + t) * x - 0.5

    def g(t: Tensor, x: Tensor) -> Tensor:
        return 0.3 * (1.0 + 2.0 * t) * x

    x0 = torch.tensor([1.0, -0.5, 2.0, 0.2], dtype=f64)
    dw = brownian_increments(4, 10, 1.0, generator=torch.Generator().manual_seed(3))
    return f, g, x0, dw, 1.0


@checker("2.4", "euler_maruyama")
def check_euler_maruyama(fn: Any) -> str:
    """Exercise 2.4: ``euler_maruyama(f, g, x0, dw, T)`` runs Euler–Maruyama on given increments and returns X_N."""
    f, g, x0, dw, T = _em_probe()
    out = as_tensor(call(fn, "euler_maruyama", f, g, x0, dw, T), "euler_maruyama")
    if tuple(out.shape) == (dw.shape[1] + 1, dw.shape[0]) or tuple(out.shape) == (dw.shape[0], dw.shape[1] + 1):
        raise Fail("you returned the whole path; return only the final state X_N, shape (n_paths,).")
    if tuple(out.shape) != tuple(x0.shape):
        raise Fail(f"shape {tuple(out.shape)}, expected the final state, shape {tuple(x0.shape)}.")
    n = dw.shape[1]
    h = T / n

    def scheme(step: Callable[[Tensor, Tensor, Tensor, Tensor], Tensor]) -> Tensor:
        x = x0.clone()
        for i in range(n):
            x = step(torch.tensor(i * h, dtype=f64), x, dw[:, i], torch.tensor(h, dtype=f64))
        return x

    mistakes = [
        (scheme(lambda t, x, d, hh: x + f(t, x) * hh + g(t, x) * hh.sqrt() * d),
         "you multiplied the increment by sqrt(h): `dw` already has variance h, use g·ΔW."),
        (scheme(lambda t, x, d, hh: x + f(t + hh, x) * hh + g(t + hh, x) * d),
         "you evaluated the coefficients at t + h; Euler–Maruyama uses the start of the step, t_n = n·h."),
        (scheme(lambda t, x, d, hh: x + f(torch.zeros_like(t), x) * hh + g(torch.zeros_like(t), x) * d),
         "you evaluated the coefficients at t = 0 in every step; use t_n = n·h."),
        (scheme(lambda t, x, d, hh: x + f(t, x) * hh + g(t, x) * d * hh),
         "you multiplied the noise by h: the noise term is g(t_n, X_n)·ΔW_n (ΔW already scales like sqrt(h))."),
        (scheme(lambda t, x, d, hh: x + f(t, x) * hh),
         "the noise term is missing: add g(t_n, X_n)·ΔW_n."),
    ]
    h_wrong = T / (n - 1)
    x = x0.clone()
    for i in range(n):
        t_i = torch.tensor(i * h_wrong, dtype=f64)
        x = x + f(t_i, x) * h_wrong + g(t_i, x) * dw[:, i]
    mistakes.append((x, "your step size is T/(N - 1); with N increments it is h = T/N."))
    expected = euler_maruyama_increments(f, g, x0, dw, T)
    diagnose(out, expected, mistakes, "on dX = ((1+t)X - ½) dt + 0.3(1+2t)X dW your X_N is off by up to {err}; "
             "the step is X + f(t_n, X)·h + g(t_n, X)·ΔW_n.")
    return "X_{n+1} = X_n + f(t_n, X_n) h + g(t_n, X_n) ΔW_n, on a time-dependent, multiplicative test SDE."


@checker("2.5", "p_inf")
def check_stationary_density(expr: Any) -> str:
    """Exercise 2.5: the stationary density of dX = -θX dt + σ dW, from the Fokker–Planck equation."""
    import sympy as sp

    s = _symbols()
    x, theta, sigma = s["x"], s["theta"], s["sigma"]
    p = as_expr(expr, "p_inf", {"x": x, "theta": theta, "sigma": sigma})
    residual = sp.simplify(sp.diff(theta * x * p, x) + sp.Rational(1, 2) * sigma**2 * sp.diff(p, x, 2))
    if residual == 0:
        mass = sp.simplify(sp.integrate(p, (x, -sp.oo, sp.oo)))
        if mass == 1:
            return "p∞(x) = N(x; 0, σ²/(2θ)): it solves 0 = ∂x(θx p) + ½σ² ∂x² p and integrates to 1."
        if mass == 0:
            raise Fail("p∞ = 0 solves the equation but is not a density: it must integrate to 1.")
        raise Fail(f"it solves the stationary Fokker–Planck equation but integrates to {mass}, not 1: normalise it.")

    def gauss(v: Any) -> Any:
        return sp.exp(-x**2 / (2 * v)) / sp.sqrt(2 * sp.pi * v)

    for v, msg in [
        (sigma**2, "variance σ² ignores the pull towards 0: balance drift and diffusion, the variance is σ²/(2θ)."),
        (sigma**2 / theta, "off by a factor 2 in the variance: it is σ²/(2θ)."),
        (2 * theta / sigma**2, "you inverted the variance: it is σ²/(2θ)."),
        (sigma**2 / (4 * theta), "off by a factor 2 in the variance: it is σ²/(2θ), not σ²/(4θ)."),
    ]:
        if _same(p, gauss(v)):
            raise Fail(msg)
    raise Fail("it does not solve the stationary Fokker–Planck equation 0 = ∂x(θx p) + ½σ² ∂x² p; try a centred Gaussian.")


def _measure_gbm_strong_order(n_paths: int = 3000, steps: tuple[int, ...] = (8, 16, 32, 64, 128)) -> float:
    dw = brownian_increments(n_paths, max(steps), 1.0, generator=torch.Generator().manual_seed(11))
    exact = gbm_solution(1.0, dw.sum(dim=-1), 1.0, GBM_MU, GBM_SIGMA)
    errs = []
    for n in steps:
        x = euler_maruyama_increments(lambda t, z: GBM_MU * z, lambda t, z: GBM_SIGMA * z, 1.0, coarsen(dw, max(steps) // n), 1.0)
        errs.append(float(strong_error(x, exact)[0]))
    return fit_order([1.0 / n for n in steps], errs)


@checker("2.6", "strong_order")
def check_strong_order(measured: Any) -> str:
    """Exercise 2.6: the measured strong order of Euler–Maruyama on geometric Brownian motion (about ½)."""
    p = as_number(measured, "strong_order")
    if abs(p - 0.5) <= 0.15:
        return f"strong order {p:.3f} (ours {_measure_gbm_strong_order():.3f}): ½, not Euler's 1, because the noise is multiplicative."
    if abs(p - 1.0) <= 0.2:
        raise Fail(f"you measured {p:.3g} ≈ 1: that is the weak order (error of E X_N), or a process with additive noise. "
                   "The strong error is E|X_N - X_T| with X_T the GBM solution on the SAME Brownian path.")
    if abs(p) <= 0.2:
        raise Fail(f"you measured {p:.3g} ≈ 0: the error does not shrink, so your exact solution is probably driven by a "
                   "different Brownian path. Build X_T from W_T = sum of the increments that EM uses (coarsen them for big steps).")
    if p < 0:
        raise Fail(f"a negative order ({p:.3g}) means the error grows as h shrinks: fit log(error) against log(h), not 1/h.")
    raise Fail(f"you measured {p:.3g}; expected about 0.5. Use several halvings of h, the same paths for every h, and "
               "enough paths (a few thousand).")


@checker("2.7", "milstein", "milstein_order")
def check_milstein(fn: Any, measured: Any) -> str:
    """Exercise 2.7: Milstein's scheme ``milstein(f, g, dg, x0, dw, T)`` and its measured strong order on GBM (about 1)."""
    mu, sig = 0.7, 0.9

    def f(t: Tensor, x: Tensor) -> Tensor:
        return mu * x

    def g(t: Tensor, x: Tensor) -> Tensor:
        return sig * x

    def dg(t: Tensor, x: Tensor) -> Tensor:
        return sig * torch.ones_like(x)

    x0 = torch.tensor([1.0, 0.5, 2.0], dtype=f64)
    dw = brownian_increments(3, 8, 1.0, generator=torch.Generator().manual_seed(5))
    out = as_tensor(call(fn, "milstein", f, g, dg, x0, dw, 1.0), "milstein", tuple(x0.shape))
    h = 1.0 / dw.shape[1]

    def scheme(corr: Callable[[Tensor, Tensor], Tensor]) -> Tensor:
        x = x0.clone()
        for i in range(dw.shape[1]):
            d = dw[:, i]
            x = x + mu * x * h + sig * x * d + corr(x, d)
        return x

    mistakes = [
        (scheme(lambda x, d: 0 * x), "this is Euler–Maruyama: add Milstein's term ½·g·g'·(ΔW² - h)."),
        (scheme(lambda x, d: 0.5 * sig * x * sig * d**2), "you forgot the -h in ½·g·g'·(ΔW² - h): without it the term has mean ½gg'h, a drift error."),
        (scheme(lambda x, d: sig * x * sig * (d**2 - h)), "Milstein's term has a factor ½: ½·g·g'·(ΔW² - h)."),
        (scheme(lambda x, d: 0.5 * sig * x * (d**2 - h)), "the correction is ½·g·g'·(ΔW² - h): you left out g' (or g)."),
    ]
    expected = scheme(lambda x, d: 0.5 * sig * x * sig * (d**2 - h))
    diagnose(out, expected, mistakes, "on GBM your X_N is off by up to {err}; the step is X + f h + g ΔW + ½ g g' (ΔW² - h).")
    p = as_number(measured, "milstein_order")
    if abs(p - 1.0) > 0.2:
        if abs(p - 0.5) < 0.15:
            raise Fail(f"your scheme is right, but the measured order {p:.3g} ≈ ½ is Euler–Maruyama's: did you measure EM, "
                       "or drive the exact solution with other paths?")
        raise Fail(f"your scheme is right, but the measured order is {p:.3g}; Milstein's strong order is 1 "
                   "(use the same Brownian paths for the scheme and the exact GBM solution).")
    return f"Milstein's step is right and its strong order measures {p:.3f}: the term EM drops is exactly what costs it ½ an order."
