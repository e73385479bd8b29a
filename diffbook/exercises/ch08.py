"""Checkers for the exercises of Chapter 8 (flow matching and guidance)."""

from __future__ import annotations

import functools
from typing import Any

import torch
from torch import Tensor

from diffbook.exercises.answers import as_expr, as_number, as_tensor, close, diagnose
from diffbook.exercises.core import Fail, call, checker
from diffbook.foundations.flow_matching import marginal_velocity
from diffbook.guidance import (
    ClassMixture,
    classifier_free_guidance,
    classifier_guidance,
    gaussian_pair_cfg_variance,
    gaussian_pair_tilted_variance,
)
from diffbook.samplers import prior_noise, sample_heun
from diffbook.schedules import FlowLinear, karras_sigmas
from diffbook.toy import GaussianMixture

__all__ = [
    "chapter_mixture",
    "check_conditional_variance",
    "check_marginal_velocity",
    "check_cfg",
    "check_classifier_guidance",
    "check_pair_variance",
    "check_component_share",
]

f64 = torch.float64


def chapter_mixture() -> ClassMixture:
    """The labelled five-component mixture of Chapter 8 (three classes; class 0 has an isolated component)."""
    means = torch.tensor([[-2.0, 0.0], [1.0, 0.0], [2.0, 1.5], [2.2, -1.2], [-0.5, 2.0]], dtype=f64)
    mixture = GaussianMixture.isotropic(torch.full((5,), 0.2, dtype=f64), means, 0.45)
    return ClassMixture(mixture, torch.tensor([0, 0, 1, 1, 2]))


@checker("8.1", "cond_var")
def check_conditional_variance(expr: Any) -> str:
    """Exercise 8.1: ``Var[ε - x₀ | x_t]`` for ``x₀ ~ N(0, s²)`` on the linear path, as SymPy in ``s, t``."""
    import sympy as sp

    s = sp.Symbol("s", positive=True)
    t = sp.Symbol("t", positive=True)
    ans = as_expr(expr, "cond_var", {"s": s, "t": t})
    truth = s**2 / ((1 - t) ** 2 * s**2 + t**2)
    if sp.simplify(ans - truth) == 0:
        return "Var[U | x_t] = s²/((1-t)² s² + t²): the target's unexplained part, whose average is the loss floor."
    if sp.simplify(ans - (1 + s**2)) == 0:
        raise Fail("that is Var[U] = 1 + s², the unconditional variance; condition on x_t: Var U - Cov(U, x_t)²/Var x_t.")
    if sp.simplify(ans) == 0:
        raise Fail("U = ε - x₀ is not a function of x_t (many pairs (x₀, ε) give the same x_t), so its conditional variance is not 0.")
    if sp.simplify(ans - truth.subs(s, 1)) == 0:
        raise Fail("this is the answer for s = 1 only; keep the data scale s.")
    if sp.simplify(ans - (1 + s**2 - (t - (1 - t) * s**2) ** 2)) == 0:
        raise Fail("you subtracted Cov² but forgot to divide by Var x_t = (1-t)² s² + t².")
    if sp.simplify(ans - (1 + s**2 - (t + (1 - t) * s**2) ** 2 / ((1 - t) ** 2 * s**2 + t**2))) == 0:
        raise Fail("sign error in the covariance: Cov(ε - x₀, (1-t)x₀ + tε) = t - (1-t)s².")
    val = ans.subs({s: sp.Rational(1, 2), t: sp.Rational(1, 3)})
    raise Fail(f"at s = 1/2, t = 1/3 your expression gives {val}, expected {truth.subs({s: sp.Rational(1, 2), t: sp.Rational(1, 3)})}.")


def _posterior_mean_fn() -> Any:
    mix = chapter_mixture().mixture

    def posterior_mean(x: Tensor, t: Tensor) -> Tensor:
        return mix.posterior_mean(x, 1.0 - t, t)

    return mix, posterior_mean


@checker("8.2", "marginal_velocity")
def check_marginal_velocity(fn: Any) -> str:
    """Exercise 8.2: ``marginal_velocity(posterior_mean, x, t)`` of the linear path from ``E[x₀ | x_t]``."""
    mix, post = _posterior_mean_fn()
    x = 2.0 * torch.randn(64, 2, generator=torch.Generator().manual_seed(0), dtype=f64)
    for t_val in (0.3, 0.8):
        t = torch.tensor(t_val, dtype=f64)
        out = as_tensor(call(fn, "marginal_velocity", post, x, t), "marginal_velocity", (64, 2))
        truth = marginal_velocity(mix, FlowLinear(), x, t)
        x0 = post(x, t)
        eps = (x - (1 - t) * x0) / t
        mistakes = [
            (x0 - eps, "sign: for α = 1 - t, σ = t the velocity is α̇ x̂₀ + σ̇ ε̂ = ε̂ - x̂₀, not x̂₀ - ε̂."),
            (eps, "you returned E[ε | x_t]; the velocity is E[ε - x₀ | x_t] = ε̂ - x̂₀."),
            (x0 + eps, "α̇ = -1 for the linear path: the velocity is ε̂ - x̂₀, not ε̂ + x̂₀."),
            ((x - x0) - x0, "E[ε | x] is (x - (1-t) x̂₀)/t, not x - x̂₀: divide by σ = t and scale x̂₀ by α = 1 - t."),
            (x - x0, "E[ε | x] is (x - (1-t) x̂₀)/t; you used x - x̂₀ as the velocity."),
            (-x0, "you dropped the noise term σ̇ E[ε | x]."),
        ]
        diagnose(out, truth, mistakes, f"at t = {t_val} your velocity is off by up to {{err}}; expected (x - x̂₀)/t.")
    return "u_t(x) = E[ε - x₀ | x_t = x] = (x - x̂₀)/t: the exact marginal velocity, at two times."


@checker("8.3", "cfg")
def check_cfg(fn: Any) -> str:
    """Exercise 8.3: ``cfg(d_cond, d_uncond, w)``, classifier-free guidance with weight ``w`` (Ho & Salimans)."""
    g = torch.Generator().manual_seed(1)
    dc, du = torch.randn(16, 3, generator=g, dtype=f64), torch.randn(16, 3, generator=g, dtype=f64)
    for w in (2.0, 0.0, -1.0):
        truth = du + (1 + w) * (dc - du)
        out = as_tensor(call(fn, "cfg", dc, du, w), "cfg", (16, 3))
        mistakes = [
            (du + w * (dc - du), "you used the guidance-scale convention: in this book w = 0 is the plain conditional "
                                 "model, so the factor is (1 + w): uncond + (1 + w)(cond - uncond)."),
            (dc + (1 + w) * (du - dc), "conditional and unconditional are swapped: guidance moves *away* from the unconditional prediction."),
            (dc + w * (dc - du), "check the base: uncond + (1 + w)(cond - uncond) = cond + w (cond - uncond); yours differs."),
            ((1 + w) * dc, "you dropped the unconditional prediction: CFG needs both."),
        ]
        diagnose(out, truth, mistakes, f"with w = {w} your combination is off by up to {{err}}.")
    return "uncond + (1 + w)(cond - uncond): w = 0 is conditional, w = -1 unconditional."


@checker("8.4", "classifier_guided")
def check_classifier_guidance(fn: Any) -> str:
    """Exercise 8.4: ``classifier_guided(denoiser, log_posterior, gamma)`` returns D + γ σ̄² ∇log p(c | x̄)."""
    mix = chapter_mixture()
    g = torch.Generator().manual_seed(2)
    x = 2.0 * torch.randn(48, 2, generator=g, dtype=f64)
    sigma = torch.full((48,), 0.7, dtype=f64)
    labels = torch.randint(0, 3, (48,), generator=g)
    guided = call(fn, "classifier_guided", mix.denoiser, mix.log_posterior, 2.0)
    if guided is None:
        raise Fail("`classifier_guided` gave None; is a `return` missing? It should return the guided denoiser (a function).")
    if not callable(guided):
        raise Fail(f"`classifier_guided` should return a denoiser (a function), but returned a {type(guided).__name__}.")
    base = mix.denoiser(x, sigma)
    with torch.enable_grad():
        xg = x.clone().requires_grad_(True)
        (grad,) = torch.autograd.grad(mix.log_posterior(xg, sigma, labels).sum(), xg)
    truth = base + 2.0 * 0.49 * grad
    out = as_tensor(call(guided, "the returned denoiser", x, sigma, labels=labels), "the returned denoiser", (48, 2))
    mistakes = [
        (base + 2.0 * 0.7 * grad, "the guidance term is γ σ̄² ∇log p(c | x̄); you multiplied by σ̄ instead of σ̄²."),
        (base + 2.0 * grad, "you forgot the factor σ̄²: Tweedie turns a score into a denoiser shift by σ̄² · score."),
        (base + 0.49 * grad, "you forgot the scale γ."),
        (base - 2.0 * 0.49 * grad, "sign: guidance moves *up* the classifier's log-probability, + γ σ̄² ∇log p(c | x̄)."),
        (mix.denoiser(x, sigma, labels=labels) + 2.0 * 0.49 * grad,
         "the base denoiser should be the unconditional one, denoiser(x, sigma), without labels."),
    ]
    diagnose(out, truth, mistakes, "your guided denoiser is off by up to {err}; expected D(x̄; σ̄) + γ σ̄² ∇log p(c | x̄).")
    reference = classifier_guidance(mix.denoiser, mix.log_posterior, 1.0)(x, 0.3, labels=labels)
    guided_one = call(fn, "classifier_guided", mix.denoiser, mix.log_posterior, 1.0)
    if not callable(guided_one):
        raise Fail(f"`classifier_guided` should return a denoiser (a function), but returned a {type(guided_one).__name__}.")
    one = as_tensor(call(guided_one, "the returned denoiser", x, 0.3, labels=labels), "the returned denoiser", (48, 2))
    if not close(one, reference):
        raise Fail("right for a per-sample sigma but not for a scalar sigma = 0.3; broadcast sigma against x.")
    return "D + γ σ̄² ∇log p(c | x̄); with γ = 1 this is exactly the conditional denoiser (Bayes' rule)."


@checker("8.5", "pair_variance")
def check_pair_variance(value: Any) -> str:
    """Exercise 8.5: the variance of CFG's output for the Gaussian pair with τ = 1, w = 2 (σ̄_max → ∞)."""
    v = as_number(value, "pair_variance")
    truth = gaussian_pair_cfg_variance(1.0, 2.0)
    if abs(v - truth) < 1e-3:
        return f"V = τ² (τ²/(1 + τ²))^w = 1/4: CFG halves the variance twice, well below p(x | c)'s variance 1."
    if abs(v - 1.0) < 1e-3:
        raise Fail("1 is the variance of p(x | c): that would hold only if CFG sampled p(x | c), which it does not for w > 0.")
    if abs(v - gaussian_pair_tilted_variance(1.0, 2.0)) < 1e-3:
        raise Fail("0.5 is the variance of the tilted density p(x|c)^{1+w} p(x)^{-w}; the sampler does not follow it. "
                   "Integrate the variance equation dV/dσ = 2A(σ)V instead.")
    if abs(v - 0.5) < 1e-3 or abs(v - 1.0 / 3.0) < 1e-3:
        raise Fail("check the exponent: V = τ² (τ²/(1 + τ²))^w with w = 2, τ = 1.")
    raise Fail(f"you gave {v:.4g}; solve dV/dσ = 2σ((1+w)/(τ²+σ²) - w/(1+τ²+σ²)) V from σ = ∞ down to 0.")


@functools.lru_cache(maxsize=4)
def _reference_share(w: float) -> float:
    """The share of class-0 CFG samples with x < -0.5 (2000 samples, Heun, 32 steps, fixed seed)."""
    mix = chapter_mixture()
    n = 2000
    labels = torch.zeros(n, dtype=torch.long)
    x = prior_noise((n, 2), 80.0, variance_preserving=False, generator=torch.Generator().manual_seed(123), dtype=f64)
    out = sample_heun(classifier_free_guidance(mix.denoiser, w), x, karras_sigmas(32, 0.002, 80.0).to(f64), labels=labels)
    return float((out[:, 0] < -0.5).double().mean())


@checker("8.6", "share")
def check_component_share(value: Any) -> str:
    """Exercise 8.6: the share of CFG (w = 2) samples of class 0 in the isolated left component."""
    v = as_number(value, "share")
    if not 0.0 <= v <= 1.0:
        raise Fail(f"a share is a fraction between 0 and 1, you gave {v:.4g}.")
    ref = _reference_share(2.0)
    if abs(v - ref) < 0.04:
        return f"share {v:.3f} (ours {ref:.3f}, exact p(x|c) 0.5): guidance empties the component next to the other classes."
    if abs(v - 0.5) < 0.04:
        raise Fail("about 0.5 is the share under p(x | c = 0) itself: did you sample with w = 0, or from the data directly?")
    if abs(v - _reference_share(1.0)) < 0.03:
        raise Fail("that is the share for w = 1, i.e. a guidance *scale* of 2; this book's w = 2 is a scale of 3.")
    raise Fail(f"your share {v:.3f} differs from ours ({ref:.3f}); use w = 2, at least 1000 samples, and count x < -0.5.")
