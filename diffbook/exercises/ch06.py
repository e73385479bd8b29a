"""Checkers for the exercises of Chapter 6 (DDPM: the discrete chain, its ELBO and ancestral sampling)."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from diffbook.foundations import ddpm, ddpm_bound
from diffbook.exercises.answers import as_expr, as_number, as_tensor, close, diagnose, show_value
from diffbook.exercises.core import Fail, call, checker
from diffbook.schedules import alphas_cumprod, linear_betas

__all__ = [
    "check_posterior_variance",
    "check_posterior_mean",
    "check_ancestral_step",
    "check_elbo_weight",
    "check_decoder_nll",
    "check_reverse_variance",
    "reverse_variance_target",
]

f64 = torch.float64


def _setting() -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """The DDPM table in float64 and a batch ``(x0, eps, x_t, t)`` at mixed steps from 2 to 999."""
    betas = linear_betas()
    gen = torch.Generator().manual_seed(60)
    x0 = torch.randn(6, 3, generator=gen, dtype=f64)
    eps = torch.randn(6, 3, generator=gen, dtype=f64)
    t = torch.tensor([2, 3, 10, 100, 500, 999])
    return betas, x0, eps, ddpm.forward_marginal(x0, t, betas, eps), t


def _beta_sym() -> tuple[Any, Any]:
    import sympy as sp

    return sp.symbols("beta abar_prev", positive=True)


@checker("6.1", "beta_tilde")
def check_posterior_variance(expr: Any) -> str:
    """Exercise 6.1: the posterior variance ``β̃_t`` as a SymPy expression in ``beta`` and ``abar_prev``."""
    import sympy as sp

    beta, abar_prev = _beta_sym()
    ans = as_expr(expr, "beta_tilde", {"beta": beta, "abar_prev": abar_prev})
    abar = (1 - beta) * abar_prev
    truth = (1 - abar_prev) / (1 - abar) * beta
    if sp.simplify(ans - truth) == 0:
        return "β̃_t = (1 - ᾱ_{t-1}) β_t / (1 - ᾱ_t): the precisions α_t/β_t and 1/(1 - ᾱ_{t-1}) add up to 1/β̃_t."
    wrong = [
        (beta, "that is β_t, the variance of the forward step q(x_t | x_{t-1}); knowing x_0 as well shrinks it."),
        (1 / (1 / beta + 1 / (1 - abar_prev)),
         "the precision from q(x_t | x_{t-1}) as a function of x_{t-1} is α_t/β_t, not 1/β_t: x_{t-1} enters as √α_t x_{t-1}."),
        ((1 - abar_prev) * beta, "you dropped the denominator 1 - ᾱ_t = 1 - (1 - β) ᾱ_{t-1}."),
        (1 - abar, "that is 1 - ᾱ_t, the variance of q(x_t | x_0), not of the posterior of x_{t-1}."),
        (1 - abar_prev, "that is 1 - ᾱ_{t-1}, the variance of q(x_{t-1} | x_0): you forgot to condition on x_t."),
    ]
    for w, message in wrong:
        if sp.simplify(ans - w) == 0:
            raise Fail(message)
    val = show_value(ans.subs({beta: sp.Rational(1, 10), abar_prev: sp.Rational(1, 2)}), 5)
    raise Fail(f"at β = 0.1, ᾱ_(t-1) = 0.5 yours gives {val}; expected {float(truth.subs({beta: 0.1, abar_prev: 0.5})):.5g}.")


@checker("6.2", "posterior_mean")
def check_posterior_mean(fn: Any) -> str:
    """Exercise 6.2: ``posterior_mean(x0, xt, t, betas)``, the mean of ``q(x_{t-1} | x_t, x_0)``."""
    betas, x0, _, xt, t = _setting()
    out = as_tensor(call(fn, "posterior_mean", x0, xt, t, betas), "posterior_mean", tuple(x0.shape))
    truth, _ = ddpm.posterior(x0, xt, t, betas)
    b = betas[t - 1][:, None]
    abar = alphas_cumprod(betas)
    a_t, a_p = abar[t - 1][:, None], abar[t - 2][:, None]
    alpha = 1 - b
    shifted, _ = ddpm.posterior(x0, xt, t + 1, betas)
    mistakes = [
        (a_p.sqrt() * b / (1 - a_t) * xt + alpha.sqrt() * (1 - a_p) / (1 - a_t) * x0,
         "the two coefficients are swapped: √ᾱ_(t-1) β_t/(1 - ᾱ_t) multiplies x_0, √α_t (1 - ᾱ_(t-1))/(1 - ᾱ_t) multiplies x_t."),
        (a_t.sqrt() * b / (1 - a_t) * x0 + alpha.sqrt() * (1 - a_p) / (1 - a_t) * xt,
         "the x_0 coefficient uses √ᾱ_(t-1) (the signal level one step earlier), not √ᾱ_t."),
        (a_p.sqrt() * b / (1 - a_t) * x0 + alpha * (1 - a_p) / (1 - a_t) * xt,
         "the x_t coefficient has √α_t, not α_t: the forward step scales x_(t-1) by √(1 - β_t)."),
        (a_p.sqrt() * b / (1 - a_p) * x0 + alpha.sqrt() * (1 - a_p) / (1 - a_p) * xt,
         "both denominators are 1 - ᾱ_t (the noise variance at step t), not 1 - ᾱ_(t-1)."),
        (shifted, "off by one step: t is 1-based, so β_t is betas[t - 1] and ᾱ_t is the cumulative product up to index t - 1."),
    ]
    diagnose(out, truth, mistakes, "your mean is off by up to {err} on a batch of steps 2 … 999; see the formula (eq-ch6-posterior).")
    return "μ̃_t = √ᾱ_(t-1) β_t/(1 - ᾱ_t) x_0 + √α_t (1 - ᾱ_(t-1))/(1 - ᾱ_t) x_t, at steps from 2 to 999."


@checker("6.3", "ancestral_step")
def check_ancestral_step(fn: Any) -> str:
    """Exercise 6.3: ``ancestral_step(xt, eps_hat, t, betas, z, variance)``, DDPM's Algorithm 2, line 4."""
    betas, x0, eps, xt, t = _setting()
    eps_hat = eps + 0.1
    z = torch.randn(xt.shape, generator=torch.Generator().manual_seed(61), dtype=f64)
    abar = alphas_cumprod(betas)
    for variance in ("beta_tilde", "beta"):
        out = as_tensor(call(fn, "ancestral_step", xt, eps_hat, t, betas, z, variance), "ancestral_step", tuple(xt.shape))
        truth = ddpm.ancestral_step(xt, eps_hat, t, betas, z, variance)
        mean = ddpm.mean_from_eps(xt, eps_hat, t, betas)
        var = ddpm.reverse_variance(betas, variance)[t - 1][:, None]
        other = ddpm.reverse_variance(betas, "beta" if variance == "beta_tilde" else "beta_tilde")[t - 1][:, None]
        b = betas[t - 1][:, None]
        mistakes = [
            (mean, "no noise was added: x_(t-1) = μ_θ + σ_t z for t > 1."),
            (mean + var * z, "you multiplied z by the variance σ_t²; it must be the standard deviation σ_t."),
            (mean + other.sqrt() * z, f"you used the other variance; variance={variance!r} asks for "
                                      f"{'β̃_t' if variance == 'beta_tilde' else 'β_t'}."),
            ((xt - b / (1 - abar[t - 1][:, None]) * eps_hat) / (1 - b).sqrt() + var.sqrt() * z,
             "the noise coefficient in the mean is β_t/√(1 - ᾱ_t), not β_t/(1 - ᾱ_t)."),
            ((xt - b / (1 - abar[t - 1][:, None]).sqrt() * eps_hat) + var.sqrt() * z,
             "you forgot to divide the mean by √α_t."),
        ]
        diagnose(out, truth, mistakes, f"with variance={variance!r} your step is off by up to {{err}}.")
    one = torch.ones(3, dtype=torch.int64)
    x1, e1, z1 = xt[:3], eps_hat[:3], z[:3]
    out1 = as_tensor(call(fn, "ancestral_step", x1, e1, one, betas, z1, "beta_tilde"), "ancestral_step", tuple(x1.shape))
    mean1 = ddpm.mean_from_eps(x1, e1, one, betas)
    if not close(out1, mean1):
        raise Fail("correct for t > 1, but at t = 1 the last step returns the mean μ_θ(x_1, 1) with no noise.")
    return "x_(t-1) = μ_θ(x_t, t) + σ_t z with σ_t² = β̃_t or β_t, and no noise at the final step t = 1."


@checker("6.4", "weight")
def check_elbo_weight(expr: Any) -> str:
    """Exercise 6.4: the ELBO weight ``λ_t`` for ``σ_t² = β̃_t`` in ``beta`` and ``abar_prev``."""
    import sympy as sp

    beta, abar_prev = _beta_sym()
    ans = as_expr(expr, "weight", {"beta": beta, "abar_prev": abar_prev})
    truth = beta / (2 * (1 - beta) * (1 - abar_prev))
    if sp.simplify(ans - truth) == 0:
        return "λ_t = β_t / (2 α_t (1 - ᾱ_(t-1))): about 1/(2(t - 1)) early on, so the first steps weigh most."
    abar = (1 - beta) * abar_prev
    wrong = [
        (2 * truth, "off by a factor 2: the KL has ‖μ̃ - μ_θ‖²/(2σ_t²), and you lost the 2."),
        (truth / 2, "off by a factor 2: check the 1/2 of the Gaussian KL (it appears once)."),
        (beta / (2 * (1 - abar_prev)), "you dropped α_t = 1 - β_t: the mean difference carries a factor 1/√α_t."),
        (beta / (2 * (1 - beta) * (1 - abar)), "this is the weight for σ_t² = β_t; with σ_t² = β̃_t one factor (1 - ᾱ_t) cancels."),
        (beta**2 / (2 * (1 - beta) * (1 - abar)), "you left out σ_t² = β̃_t in the denominator: λ_t = β_t²/(2 σ_t² α_t (1 - ᾱ_t))."),
    ]
    for w, message in wrong:
        if sp.simplify(ans - w) == 0:
            raise Fail(message)
    val = show_value(ans.subs({beta: sp.Rational(1, 100), abar_prev: sp.Rational(9, 10)}), 5)
    raise Fail(f"at β = 0.01, ᾱ_(t-1) = 0.9 yours gives {val}; expected {float(truth.subs({beta: 0.01, abar_prev: 0.9})):.5g}.")


def _decoder_case() -> tuple[Tensor, Tensor, float]:
    """Digit-like data on 17 levels, with means near and far from them, including beyond the end bins."""
    gen = torch.Generator().manual_seed(62)
    k = torch.randint(0, 17, (5, 12), generator=gen)
    k[:, 0], k[:, 1] = 0, 16  # always exercise both end bins
    x0 = (k.to(f64) / 8 - 1).reshape(5, 1, 3, 4)
    mean = x0 + 0.06 * torch.randn(x0.shape, generator=gen, dtype=f64)
    mean[:, 0, 0, 0] = -1.3  # beyond the lowest value: the open end bin keeps the probability near 1
    mean[:, 0, 0, 1] = 1.25
    return x0, mean, 0.05


@checker("6.5", "decoder_nll")
def check_decoder_nll(fn: Any) -> str:
    """Exercise 6.5: ``decoder_nll(x0, mean, std)``, DDPM's binned decoder for the 17-level digits."""
    x0, mean, std = _decoder_case()
    out = as_tensor(call(fn, "decoder_nll", x0, mean, std), "decoder_nll", (x0.shape[0],))
    truth = ddpm_bound.discretized_gaussian_nll(x0, mean, std, 17)
    normal = torch.distributions.Normal(mean, std)
    closed = -torch.log((normal.cdf(x0 + 1 / 16) - normal.cdf(x0 - 1 / 16)).clamp_min(1e-300)).flatten(1).sum(1)
    midpoint = -(normal.log_prob(x0) + math.log(1 / 8)).flatten(1).sum(1)
    density = -normal.log_prob(x0).flatten(1).sum(1)
    wide = -torch.log((normal.cdf(x0 + 1 / 8) - normal.cdf(x0 - 1 / 8)).clamp_min(1e-300)).flatten(1).sum(1)
    narrow = -torch.log((normal.cdf(x0 + 1 / 17) - normal.cdf(x0 - 1 / 17)).clamp_min(1e-300)).flatten(1).sum(1)
    mistakes = [
        (closed, "the end bins must be open: the value -1 owns (-∞, -1 + 1/16] and the value 1 owns [1 - 1/16, ∞), "
                 "otherwise the probabilities of the 17 values do not sum to 1."),
        (midpoint, "you used density × bin width (the midpoint rule); DDPM integrates the Gaussian over the bin (Φ differences)."),
        (density, "that is the continuous density -log N(x_0; mean, std²), not the probability of the bin."),
        (wide, "the bins are too wide: neighbouring values are 1/8 apart, so each bin is x ± 1/16."),
        (narrow, "the bin half-width is 1/16 (half the spacing 2/16 of the 17 values), not 1/17."),
        (-truth, "sign: return the negative log-likelihood (a positive number of nats)."),
    ]
    diagnose(out, truth, mistakes, "your NLL is off by up to {err} nats on a batch of digit-like images.")
    return "the Gaussian integrated over bins x ± 1/16, end bins open, summed over pixels: DDPM's discrete decoder."


def reverse_variance_target(t: int = 10, s: float = 0.05) -> dict[str, float]:
    """The exact reverse variance ``v_t(s²)`` of Gaussian data and the two extremes, each divided by ``β_t``
    (theorem "true reverse variance" of Chapter 6)."""
    betas = linear_betas()
    abar = alphas_cumprod(betas)
    b, a, ap = float(betas[t - 1]), float(abar[t - 1]), float(abar[t - 2])
    tilde = (1 - ap) / (1 - a) * b
    c = math.sqrt(ap) * b / (1 - a)
    v = tilde + c**2 * s**2 * (1 - a) / (a * s**2 + 1 - a)
    return {"ratio": v / b, "tilde_ratio": tilde / b}


@checker("6.6", "ratio")
def check_reverse_variance(ratio: Any) -> str:
    """Exercise 6.6: the measured ``Var(x_{t-1} | x_t) / β_t`` at ``t = 10`` for data ``N(0, 0.05²)``."""
    r = as_number(ratio, "ratio")
    target = reverse_variance_target()
    if abs(r / target["ratio"] - 1) < 0.02:
        return (f"measured {r:.4f}, theory {target['ratio']:.4f}: between β̃_t/β_t = {target['tilde_ratio']:.4f} "
                f"and 1, as the theorem says for data narrower than unit variance.")
    if abs(r - target["tilde_ratio"]) < 0.01:
        raise Fail("that is β̃_t/β_t: you regressed on x_0 as well (the posterior q(x_(t-1) | x_t, x_0)); regress on x_t alone.")
    if abs(r - 1) < 0.01:
        raise Fail("that is the value for unit-variance data (s = 1); draw x_0 ~ N(0, 0.05²).")
    raise Fail(f"your ratio {r:.4g} is not within 2 % of the exact value; use at least 10⁶ pairs, t = 10, the DDPM table, "
               "and the residual variance of a least-squares fit of x_(t-1) on x_t (with an intercept).")
