"""Checkers for the exercises of Chapter 5 (learning the score)."""

from __future__ import annotations

import functools
from typing import Any

import torch

from diffbook.exercises.answers import as_expr, as_number, as_tensor, as_tuple, close, diagnose, show_value
from diffbook.exercises.core import Fail, call, checker
from diffbook.toy import GaussianMixture

__all__ = [
    "exercise_mixture",
    "check_conditional_score",
    "check_tweedie",
    "check_gaussian_posterior_mean",
    "check_from_v",
    "check_loss_weights",
    "check_noise_floor",
]

f64 = torch.float64


def exercise_mixture() -> GaussianMixture:
    """The 1-D data of Exercise 5.6: ``½ N(-1, 0.3²) + ½ N(1, 0.3²)``, in float64."""
    return GaussianMixture.isotropic(
        torch.tensor([0.5, 0.5], dtype=f64), torch.tensor([[-1.0], [1.0]], dtype=f64), torch.tensor([0.3, 0.3], dtype=f64)
    )


@checker("5.1", "cond_score")
def check_conditional_score(expr: Any) -> str:
    """Exercise 5.1: the conditional score ``∂/∂x log N(x; α x0, σ²)`` as a SymPy expression."""
    import sympy as sp

    x, x0 = sp.symbols("x x0", real=True)
    alpha, sigma = sp.symbols("alpha sigma", positive=True)
    got = as_expr(expr, "cond_score", {"x": x, "x0": x0, "alpha": alpha, "sigma": sigma})
    truth = -(x - alpha * x0) / sigma**2
    if sp.simplify(got - truth) == 0:
        return "∇ log p(x | x0) = -(x - α x0)/σ² = -ε/σ: the target of denoising score matching."
    mistakes = [
        ((x - alpha * x0) / sigma**2, "sign error: the log-density decreases away from the mean α x0, so the score points back to it."),
        (-(x - x0) / sigma**2, "the mean of x given x0 is α x0, not x0: the signal is scaled by α."),
        (-(x - alpha * x0) / sigma, "σ should be squared: d/dx of -(x - α x0)²/(2σ²) is -(x - α x0)/σ²."),
        (-(x - alpha * x0) / (2 * sigma**2), "the factor ½ cancels against the 2 from differentiating the square."),
        (-((x - alpha * x0) ** 2) / (2 * sigma**2), "that is the log-density (up to a constant); the score is its derivative in x."),
        (-(x - alpha * x0) / (alpha**2 * sigma**2), "the variance of x given x0 is σ², not α²σ²."),
    ]
    for wrong, message in mistakes:
        if sp.simplify(got - wrong) == 0:
            raise Fail(message)
    probe = {x: 1.5, x0: 0.5, alpha: 0.8, sigma: 0.5}
    raise Fail(f"at x = 1.5, x0 = 0.5, α = 0.8, σ = 0.5 your expression gives {show_value(got.subs(probe))}, expected -4.4.")


def _tweedie_probe() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(5)
    x = torch.randn(6, 3, generator=g, dtype=f64)
    score = torch.randn(6, 3, generator=g, dtype=f64)
    return x, score, torch.tensor(0.6, dtype=f64), torch.tensor(0.8, dtype=f64)


@checker("5.2", "tweedie_x0")
def check_tweedie(fn: Any) -> str:
    """Exercise 5.2: ``tweedie_x0(x, score, alpha, sigma)`` returns ``E[x0 | x_t = x]`` by Tweedie's formula."""
    x, score, a, s = _tweedie_probe()
    out = as_tensor(call(fn, "tweedie_x0", x, score, a, s), "tweedie_x0", tuple(x.shape))
    mistakes = [
        ((x + s * score) / a, "σ must be squared: E[x0 | x] = (x + σ² ∇log p_t(x))/α."),
        (x + s**2 * score, "you forgot to divide by α: x + σ²∇log p_t estimates α·x0, the *scaled* signal."),
        ((x - s**2 * score) / a, "wrong sign: the score points towards higher density, and the denoiser moves x along it."),
        (a * (x + s**2 * score), "multiply by 1/α, not by α."),
        ((x + s**2 * score) / a**2, "divide by α once, not by α²."),
    ]
    diagnose(out, (x + s**2 * score) / a, mistakes, "off by up to {err} on random inputs with α = 0.6, σ = 0.8; expected (x + σ²·score)/α.")
    # a second level, so that a formula special to one (α, σ) does not pass
    out2 = as_tensor(call(fn, "tweedie_x0", x, score, torch.tensor(1.0, dtype=f64), torch.tensor(0.3, dtype=f64)), "tweedie_x0", tuple(x.shape))
    if not close(out2, x + 0.09 * score):
        raise Fail("right at α = 0.6, σ = 0.8 but wrong at α = 1, σ = 0.3: use the α and σ you are given, not constants.")
    return "E[x0 | x_t] = (x_t + σ² ∇log p_t(x_t))/α, for any data distribution."


@checker("5.3", "posterior_mean")
def check_gaussian_posterior_mean(expr: Any) -> str:
    """Exercise 5.3: ``E[x0 | x_t = x]`` for Gaussian data ``N(m, s²)``, as a SymPy expression."""
    import sympy as sp

    x, m = sp.symbols("x m", real=True)
    s, alpha, sigma = sp.symbols("s alpha sigma", positive=True)
    got = as_expr(expr, "posterior_mean", {"x": x, "m": m, "s": s, "alpha": alpha, "sigma": sigma})
    var = alpha**2 * s**2 + sigma**2
    truth = (alpha * s**2 * x + sigma**2 * m) / var
    if sp.simplify(got - truth) == 0:
        return "E[x0 | x] = (α s² x + σ² m)/(α² s² + σ²): shrink x/α towards m, more strongly the noisier x is."
    mistakes = [
        ((s**2 * x + sigma**2 * m) / (s**2 + sigma**2), "that is the answer for α = 1; keep α: x_t has mean α m and variance α² s² + σ²."),
        ((x + sigma**2 * (-(x - m) / s**2)) / alpha, "you used the score of the clean data, -(x - m)/s²; Tweedie needs the score of the *noisy* marginal p_t."),
        ((x + sigma**2 * (-(x - alpha * m) / var)), "Tweedie's formula ends with a division by α."),
        (x / alpha, "x/α is the unbiased but noisy estimate; the posterior mean also uses the prior N(m, s²)."),
        (m + 0 * x, "the posterior mean depends on x: only as σ → ∞ does it tend to the prior mean m."),
        ((x - sigma**2 * (-(x - alpha * m) / var)) / alpha, "sign error in Tweedie's formula: E[x0|x] = (x + σ²∇log p_t(x))/α."),
    ]
    for wrong, message in mistakes:
        if sp.simplify(got - wrong) == 0:
            raise Fail(message)
    probe = {x: 1.0, m: 0.5, s: 2.0, alpha: 0.8, sigma: 0.6}
    raise Fail(f"at x = 1, m = 0.5, s = 2, α = 0.8, σ = 0.6 your expression gives {show_value(got.subs(probe))}, "
               f"expected {float(truth.subs(probe)):.4g}. Hint: the score of N(α m, α² s² + σ²), then Tweedie.")


@checker("5.4", "eps_and_x0_from_v")
def check_from_v(fn: Any) -> str:
    """Exercise 5.4: ``eps_and_x0_from_v(x, v, alpha, sigma)`` inverts ``x = α x0 + σ ε``, ``v = α ε - σ x0`` for any α, σ."""
    g = torch.Generator().manual_seed(7)
    x0 = torch.randn(5, 2, generator=g, dtype=f64)
    eps = torch.randn(5, 2, generator=g, dtype=f64)
    for a, s in [(0.8, 0.6), (1.0, 2.0), (0.5, 0.3)]:
        at, st = torch.tensor(a, dtype=f64), torch.tensor(s, dtype=f64)
        x, v = a * x0 + s * eps, a * eps - s * x0
        out = as_tuple(call(fn, "eps_and_x0_from_v", x, v, at, st), "eps_and_x0_from_v", 2, "a pair (eps, x0)")
        e_hat = as_tensor(out[0], "eps (first returned value)", tuple(x.shape))
        x_hat = as_tensor(out[1], "x0 (second returned value)", tuple(x.shape))
        if close(e_hat, x0) and close(x_hat, eps):
            raise Fail("you returned (x0, eps); the order asked for is (eps, x0).")
        vp_x0, vp_eps = a * x - s * v, s * x + a * v
        if close(x_hat, vp_x0) and close(e_hat, vp_eps) and abs(a * a + s * s - 1) > 1e-9:
            raise Fail(f"α x - σ v and σ x + α v hold only when α² + σ² = 1 (VP); at α = {a}, σ = {s} divide by α² + σ².")
        diagnose(x_hat, x0, [], f"x0 is off by up to {{err}} at α = {a}, σ = {s}; solve the 2×2 linear system for x0.")
        diagnose(e_hat, eps, [], f"eps is off by up to {{err}} at α = {a}, σ = {s}; solve the 2×2 linear system for ε.")
    return "ε = (σ x + α v)/(α² + σ²) and x0 = (α x - σ v)/(α² + σ²), exact for every α, σ (VP: the denominator is 1)."


@checker("5.5", "w_x0", "w_v")
def check_loss_weights(expr_x0: Any, expr_v: Any) -> str:
    """Exercise 5.5: the weights turning ``‖ε̂ - ε‖²`` into the x0- and v-losses, as SymPy expressions in α, σ."""
    import sympy as sp

    alpha, sigma = sp.symbols("alpha sigma", positive=True)
    names = {"alpha": alpha, "sigma": sigma}
    w0 = as_expr(expr_x0, "w_x0", names)
    wv = as_expr(expr_v, "w_v", names)
    t0, tv = sigma**2 / alpha**2, (alpha**2 + sigma**2) ** 2 / alpha**2
    if sp.simplify(w0 - t0) != 0:
        if sp.simplify(w0 - sigma / alpha) == 0:
            raise Fail("w_x0: the *squared* norm scales with the square: x̂0 - x0 = -(σ/α)(ε̂ - ε), so w = σ²/α².")
        if sp.simplify(w0 - alpha**2 / sigma**2) == 0:
            raise Fail("w_x0 is inverted: σ²/α², since x̂0 - x0 = -(σ/α)(ε̂ - ε).")
        if sp.simplify(w0 - sigma**2) == 0:
            raise Fail("w_x0: you dropped the 1/α from x̂0 = (x - σ ε̂)/α.")
        raise Fail(f"w_x0 at α = 0.8, σ = 0.6 is {show_value(w0.subs({alpha: 0.8, sigma: 0.6}))}, expected 0.5625 = σ²/α².")
    if sp.simplify(wv - tv) != 0:
        if sp.simplify(wv - (alpha**2 + sigma**2) / alpha) == 0:
            raise Fail("w_v: square the factor: v̂ - v = ((α² + σ²)/α)(ε̂ - ε), so w = ((α² + σ²)/α)².")
        if sp.simplify(wv - 1 / alpha**2) == 0:
            raise Fail("w_v = 1/α² only on VP paths (α² + σ² = 1); the general weight is ((α² + σ²)/α)².")
        if sp.simplify(wv - alpha**2) == 0 or sp.simplify(wv - (alpha**2 + sigma**2)) == 0:
            raise Fail("w_v: substitute x̂0 - x0 = -(σ/α)(ε̂ - ε) into v̂ - v = α(ε̂ - ε) - σ(x̂0 - x0).")
        raise Fail(f"w_v at α = 0.8, σ = 0.6 is {show_value(wv.subs({alpha: 0.8, sigma: 0.6}))}, expected 1.5625 = ((α² + σ²)/α)².")
    return "w_x0 = σ²/α² and w_v = ((α² + σ²)/α)²: the parameterisations share one minimiser and differ only in weighting."


@functools.lru_cache(maxsize=None)
def _floor_reference(sigma: float, n: int = 200_000) -> tuple[float, float]:
    """(relative floor, relative error of the naive prediction x/σ) at ``sigma``, from ``n`` samples."""
    gmm = exercise_mixture()
    g = torch.Generator().manual_seed(11)
    x0, _ = gmm.sample(n, generator=g)
    eps = torch.randn(x0.shape, generator=g, dtype=f64)
    x = x0 + sigma * eps
    eps_star = (x - gmm.posterior_mean(x, 1.0, sigma)) / sigma
    norm = float(eps.pow(2).mean())
    return float((eps_star - eps).pow(2).mean()) / norm, float((x / sigma - eps).pow(2).mean()) / norm


@checker("5.6", "floor_low", "floor_high")
def check_noise_floor(low: Any, high: Any) -> str:
    """Exercise 5.6: the relative floor ``E(ε - E[ε|x])² / E ε²`` at σ = 0.05 and σ = 3 (Monte Carlo)."""
    lo = as_number(low, "floor_low")
    hi = as_number(high, "floor_high")
    ref_lo, naive_lo = _floor_reference(0.05)
    ref_hi, naive_hi = _floor_reference(3.0)
    tol_lo, tol_hi = 0.02, 0.005  # Monte-Carlo error with 10^5 samples is about 0.004 and 0.0005
    if abs(lo - ref_lo) <= tol_lo and abs(hi - ref_hi) <= tol_hi:
        return (f"at σ = 0.05 the best predictor misses {ref_lo:.0%} of the noise, at σ = 3 only {ref_hi:.0%}: "
                "ε̂ estimates E[ε | x], it does not recover ε.")
    if abs(lo) < 0.01 and abs(hi) < 0.01:
        raise Fail("both are about 0: you compared E[ε|x] with itself, or used ε in place of the prediction. "
                   "Draw x0 and ε, form x = x0 + σ ε, predict with E[ε|x] = (x - E[x0|x])/σ, compare with ε.")
    if abs(lo - ref_hi) <= tol_lo and abs(hi - ref_lo) <= tol_hi:
        raise Fail("the two values are swapped: floor_low is for σ = 0.05, floor_high for σ = 3.")
    if abs(lo - naive_lo) <= 0.1 * naive_lo or abs(hi - naive_hi) <= 0.004:
        raise Fail("that is the error of the naive prediction x/σ; use the posterior mean: E[ε|x] = (x - E[x0|x])/σ.")
    if abs(lo - ref_lo) > tol_lo:
        raise Fail(f"floor_low = {lo:.3g} is off: at σ = 0.05 it should be near {ref_lo:.2f} "
                   "(the noise is smaller than each component's width, so it is hard to tell from the data).")
    raise Fail(f"floor_high = {hi:.3g} is off: at σ = 3 it should be near {ref_hi:.2f}.")
