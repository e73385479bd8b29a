"""Checkers for the exercises of Chapter 4 (reversing time: the reverse SDE, the probability-flow ODE and
exact likelihoods)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from diffbook.exercises.answers import as_expr, as_number, as_tensor, close, diagnose
from diffbook.exercises.core import Fail, call, checker
from diffbook.foundations.likelihood import hutchinson_divergence, pf_ode_log_likelihood
from diffbook.ode import integrate, time_grid
from diffbook.schedules import VPLinear
from diffbook.sde import diffusion_squared, drift_coefficient, euler_maruyama, marginal_sample, reverse_drift
from diffbook.toy import GaussianMixture

__all__ = [
    "T_MIN",
    "chapter_mixture",
    "likelihood_points",
    "misconception_points",
    "check_pf_velocity",
    "check_eta_coefficient",
    "check_reverse_step",
    "check_hutchinson",
    "check_log_likelihood",
    "check_reverse_distances",
]

T_MIN = 1e-3
"""The smallest time the chapter's reverse processes reach."""

_F64 = torch.float64


def chapter_mixture() -> GaussianMixture:
    """The chapter's data: three isotropic Gaussians (std 0.35) in the plane, weights 0.5, 0.3, 0.2, float64."""
    return GaussianMixture.isotropic(
        torch.tensor([0.5, 0.3, 0.2], dtype=_F64),
        torch.tensor([[-1.5, 0.5], [1.5, 1.0], [0.0, -1.5]], dtype=_F64),
        0.35,
    )


def _score(gmm: GaussianMixture, schedule: VPLinear) -> Callable[[Tensor, Tensor], Tensor]:
    return lambda x, t: gmm.score(x, schedule.alpha(t), schedule.sigma(t))


def likelihood_points() -> Tensor:
    """The 16 data points of Exercise 4.5, shape ``(16, 2)``, drawn from :func:`chapter_mixture` with seed 4."""
    return chapter_mixture().sample(16, generator=torch.Generator().manual_seed(4))[0]


def misconception_points() -> Tensor:
    """The 500 data points of Exercise 4.6, shape ``(500, 2)``, drawn from :func:`chapter_mixture` with seed 6."""
    return chapter_mixture().sample(500, generator=torch.Generator().manual_seed(6))[0]


# ---------------------------------------------------------------------------------------------------------
# 4.1 and 4.2: derivations


@checker("4.1", "pf_velocity")
def check_pf_velocity(expr: Any) -> str:
    """Exercise 4.1: the PF-ODE velocity for data N(0, s0²) under the VP path with constant β."""
    import sympy as sp

    t, x = sp.symbols("t x", real=True)
    beta, s0 = sp.symbols("beta s0", positive=True)
    v_user = as_expr(expr, "pf_velocity", {"t": t, "x": x, "beta": beta, "s0": s0})
    var = sp.exp(-beta * t) * s0**2 + 1 - sp.exp(-beta * t)
    f, g2, score = -beta / 2, beta, -x / var
    truth = f * x - g2 * score / 2

    def same(a: Any) -> bool:
        return sp.simplify(v_user - a) == 0

    if same(truth):
        return "v(t, x) = -βx/2 + βx/(2(e^{-βt}s0² + 1 - e^{-βt})); at s0 = 1 it vanishes: N(0, 1) data stand still."
    mistakes = [
        (f * x - g2 * score, "that is the reverse SDE's drift f x - g² ∇log p_t; the ODE takes half the score term."),
        (f * x + g2 * score / 2, "sign error on the score term: v = f x - ½ g² ∇log p_t, and ∇log p_t = -x/Var(x_t)."),
        (f * x - g2 * (-x / s0**2) / 2,
         "you used the score of the data (variance s0²); the ODE needs the score of p_t."),
        (-g2 * score / 2, "you dropped the drift f x = -βx/2 of the forward SDE."),
        (f * x - g2 * (-x / (1 - sp.exp(-beta * t))) / 2,
         "Var(x_t) = α_t² s0² + σ_t²: you forgot the α_t² s0² part coming from the data."),
    ]
    for wrong, message in mistakes:
        if same(wrong):
            raise Fail(message)
    probe = {t: sp.Rational(1, 2), x: 1, beta: 2, s0: 2}
    raise Fail(f"at t = 1/2, x = 1, β = 2, s0 = 2 yours gives {sp.N(v_user.subs(probe), 5)}, "
               f"expected {sp.N(truth.subs(probe), 5)}; use v = f x - ½ g² ∇log p_t with p_t = N(0, Var(x_t)).")


@checker("4.2", "coefficient")
def check_eta_coefficient(expr: Any) -> str:
    """Exercise 4.2: the coefficient c(η) = (1 + η²)/2 in front of g²∇log p_t in the η-family."""
    import sympy as sp

    eta = sp.symbols("eta", nonnegative=True)
    c = as_expr(expr, "coefficient", {"eta": eta})
    truth = (1 + eta**2) / 2
    if sp.simplify(c - truth) == 0:
        return "c(η) = (1 + η²)/2: η = 0 gives the ODE's ½, η = 1 Anderson's 1, and the FP residual vanishes for all η."
    mistakes = [
        (sp.Integer(1), "c = 1 is Anderson's coefficient; with noise ηg it is right only for η = 1."),
        (sp.Rational(1, 2), "c = ½ is the ODE's coefficient; it is right only without noise (η = 0)."),
        ((1 + eta) / 2, "the noise enters the Fokker–Planck equation through its variance η²g², not through η."),
        (eta**2 / 2, "you kept only the Langevin part ½η²; the ½ that transports p_t (the ODE part) is missing."),
        ((1 - eta**2) / 2, "sign error: extra noise needs *more* pull up the density, c = ½ + ½η²."),
    ]
    for wrong, message in mistakes:
        if sp.simplify(c - wrong) == 0:
            raise Fail(message)
    raise Fail(f"at η = 2 your coefficient is {sp.N(c.subs(eta, 2), 4)}, expected 5/2; write the reverse-time "
               "Fokker–Planck equation with drift -(f y - c g² ∇log q) and diffusion ηg, and match the Δq terms.")


# ---------------------------------------------------------------------------------------------------------
# 4.3 and 4.4: implementations


def _reverse_probe() -> tuple[VPLinear, Callable[[Tensor, Tensor], Tensor], Tensor, Tensor, Tensor, Tensor]:
    schedule = VPLinear()
    gen = torch.Generator().manual_seed(0)
    x = 1.5 * torch.randn(6, 2, generator=gen, dtype=_F64)
    z = torch.randn(6, 2, generator=gen, dtype=_F64)
    t, h = torch.tensor(0.4, dtype=_F64), torch.tensor(0.01, dtype=_F64)
    return schedule, _score(chapter_mixture(), schedule), x, z, t, h


@checker("4.3", "reverse_step")
def check_reverse_step(step: Any) -> str:
    """Exercise 4.3: one Euler–Maruyama step of the η-family from t down to t - h."""
    schedule, score, x, z, t, h = _reverse_probe()
    f = drift_coefficient(schedule, t)
    g2 = diffusion_squared(schedule, t)
    g = g2.sqrt()
    s = score(x, t)
    for eta in (0.5, 0.0, 1.0, 2.0):
        out = as_tensor(call(step, "reverse_step", schedule, score, x, t, h, eta, z), "reverse_step", tuple(x.shape))
        drift = reverse_drift(schedule, score, x, t, eta)
        expected = x - h * drift + eta * g * h.sqrt() * z
        mistakes = [
            (x + h * drift + eta * g * h.sqrt() * z,
             "you stepped forward in time (x + h·drift); the reverse process goes from t to t - h: x - h·drift."),
            (x - h * drift + eta * g2 * h.sqrt() * z, "the noise is η g √h z, with g = sqrt(g²); you used g²."),
            (x - h * drift + eta * g * h * z, "the noise of one Euler–Maruyama step scales with √h, not h."),
            (x - h * drift + g * h.sqrt() * z, "the noise must be multiplied by η (η = 0 is the deterministic ODE)."),
            (x - h * (f * x - g2 * s) + eta * g * h.sqrt() * z,
             "you used Anderson's drift f x - g² ∇log p for every η; the η-family needs ½(1 + η²) g² ∇log p."),
            (x - h * (f * x - 0.5 * g2 * s) + eta * g * h.sqrt() * z,
             "you used the ODE's drift with noise η g: the drift must grow with η, ½(1 + η²) g² ∇log p."),
            (x - h * (f * x - 0.5 * (1 + eta) * g2 * s) + eta * g * h.sqrt() * z,
             "the coefficient is ½(1 + η²), with η squared."),
        ]
        diagnose(out, expected, mistakes,
                 f"at η = {eta} your step is off by up to {{err}}; expected x - h·[f x - ½(1 + η²) g² s] + η g √h z.")
    return "x - h·[f x - ½(1 + η²) g² ∇log p_t] + η g √h z, for η = 0, ½, 1 and 2."


def _hutchinson_probe() -> tuple[Callable[[Tensor, Tensor], Tensor], Tensor, Tensor, Tensor]:
    a = torch.tensor([[0.5, -1.2, 0.3], [0.8, 0.1, -0.7], [-0.4, 0.9, 1.1]], dtype=_F64)

    def u(t: Tensor, x: Tensor) -> Tensor:
        return (1.0 + t) * torch.tanh(x @ a.T) + x**2

    gen = torch.Generator().manual_seed(1)
    x = torch.randn(5, 3, generator=gen, dtype=_F64)
    z = (2 * torch.randint(0, 2, (5, 3), generator=gen) - 1).to(_F64)
    return u, torch.tensor(0.3, dtype=_F64), x, z


@checker("4.4", "hutchinson")
def check_hutchinson(fn: Any) -> str:
    """Exercise 4.4: ``hutchinson(u, t, x, z)`` returns zᵀ (∂u/∂x) z for each row."""
    u, t, x, z = _hutchinson_probe()
    raw = call(fn, "hutchinson", u, t, x, z)
    expected = hutchinson_divergence(u, t, x, z)
    if raw is not None and hasattr(raw, "shape") and tuple(raw.shape) == tuple(x.shape):
        if close(as_tensor(raw, "hutchinson").sum(1), expected):
            raise Fail("you returned (zᵀJ) ⊙ z per coordinate; sum over the coordinates to get one number per point.")
    out = as_tensor(raw, "hutchinson", (x.shape[0],))
    with torch.enable_grad():
        xr = x.clone().requires_grad_(True)
        jac = torch.stack([torch.autograd.grad(u(t, xr)[:, i].sum(), xr)[0] for i in range(x.shape[1])], 1)  # (n, d, d)
    mistakes = [
        (torch.diagonal(jac, dim1=1, dim2=2).sum(1),
         "that is the exact divergence tr(∂u/∂x); the exercise asks for the one-probe estimate zᵀ(∂u/∂x)z."),
        ((jac @ z[:, :, None])[:, :, 0].sum(1), "you computed Σ_i (J z)_i; multiply by z before summing: zᵀ(J z)."),
        ((z[:, None, :] @ jac)[:, 0, :].sum(1), "you computed Σ_j (zᵀJ)_j; multiply by z before summing: (zᵀJ) z."),
        ((u(t, x) * z).sum(1), "you computed zᵀu(t, x); the estimator needs the Jacobian: zᵀ(∂u/∂x)z."),
    ]
    diagnose(out, expected, mistakes, "your estimate is off by up to {err}; expected zᵀ(∂u/∂x)z per row.")
    return "zᵀ(∂u/∂x)z by one vector-Jacobian product; averaged over random signs z it is the divergence."


# ---------------------------------------------------------------------------------------------------------
# 4.5 and 4.6: experiments


@functools.lru_cache(maxsize=1)
def _likelihood_reference() -> tuple[Tensor, Tensor, Tensor]:
    gmm, schedule = chapter_mixture(), VPLinear()
    pts = likelihood_points()
    ref = pf_ode_log_likelihood(schedule, _score(gmm, schedule), pts, n_steps=64, t_min=T_MIN)
    t_min = torch.tensor(T_MIN, dtype=_F64)
    truth = gmm.log_prob(pts, schedule.alpha(t_min), schedule.sigma(t_min))
    return truth, ref.prior_log_prob, ref.delta


@checker("4.5", "loglik")
def check_log_likelihood(loglik: Any) -> str:
    """Exercise 4.5: PF-ODE log-likelihoods of ``likelihood_points()``, within 0.05 of the exact density."""
    truth, prior, delta = _likelihood_reference()
    out = as_tensor(loglik, "loglik", tuple(truth.shape))
    err = float((out - truth).abs().max())
    if err < 0.05:
        return (f"max error {err:.1e} against the exact log p_(t_min); what is left is the integrator's error "
                "and the small mismatch between N(0, I) and the true p_1 (α_1 > 0).")
    near = lambda a: bool((out - a).abs().max() < 0.1)  # noqa: E731
    if near(prior):
        raise Fail("you returned only the prior log-density at the end point; add ∫ ∇·v dt along the path.")
    if near(prior - delta):
        raise Fail("sign error: integrating from data to noise, log p(x) = log p_1(x_1) + ∫ ∇·v dt (plus, not minus).")
    if near(delta):
        raise Fail("you returned only ∫ ∇·v dt; add the prior log-density log N(x_1; 0, I) at the end point.")
    if err < 1.0:
        raise Fail(f"close but off by up to {err:.2f}: use more steps (64 Heun steps reach 0.01), "
                   f"start at t_min = {T_MIN}.")
    raise Fail(f"off by up to {err:.3g}; integrate dx/dt = f x - ½g²∇log p_t from t_min to 1 with dℓ/dt = ∇·v, then "
               "log p(x) = log N(x_1; 0, I) + ℓ(1).")


@functools.lru_cache(maxsize=1)
def _distance_reference() -> tuple[float, float, float]:
    gmm, schedule = chapter_mixture(), VPLinear()
    score = _score(gmm, schedule)
    x0 = gmm.sample(1000, generator=torch.Generator().manual_seed(60))[0]
    xt, _ = marginal_sample(schedule, x0, torch.tensor(0.3, dtype=_F64), generator=torch.Generator().manual_seed(61))
    ts = time_grid(0.3, T_MIN, 150)
    drift = lambda t, x: reverse_drift(schedule, score, x, t, 1.0)  # noqa: E731
    g = lambda t: diffusion_squared(schedule, t).sqrt()  # noqa: E731
    a = euler_maruyama(drift, g, xt, ts, generator=torch.Generator().manual_seed(62))
    b = euler_maruyama(drift, g, xt, ts, generator=torch.Generator().manual_seed(63))
    o = integrate(lambda t, x: reverse_drift(schedule, score, x, t, 0.0), xt, ts)
    return float((a - x0).norm(dim=1).mean()), float((a - b).norm(dim=1).mean()), float((o - x0).norm(dim=1).mean())


@checker("4.6", "dist_to_start", "dist_between_runs")
def check_reverse_distances(dist_to_start: Any, dist_between_runs: Any) -> str:
    """Exercise 4.6: forward to T = 0.3 and back with the reverse SDE: mean distances to the start and between runs."""
    d_start = as_number(dist_to_start, "dist_to_start")
    d_runs = as_number(dist_between_runs, "dist_between_runs")
    ref_start, ref_runs, ref_ode = _distance_reference()
    if d_start < 0.1:
        raise Fail("`dist_to_start` is about 0: you compared x0 with itself; run the reverse SDE from x_T first.")
    if d_runs < 0.05:
        raise Fail("`dist_between_runs` is about 0: both runs used the same noise; give them different generators.")
    if abs(d_start - ref_ode) < 0.08 and abs(d_start - ref_start) > 0.2:
        raise Fail(f"`dist_to_start` = {d_start:.3f} matches the probability-flow ODE ({ref_ode:.3f}); "
                   "use the SDE (η = 1).")
    if d_start > 1.7 or d_runs > 1.7:
        raise Fail(f"distances near 2 are those of independent points: did you noise to T = 1 instead of T = 0.3? "
                   f"(we measure {ref_start:.2f} and {ref_runs:.2f}).")
    if abs(d_start - ref_start) > 0.2 or abs(d_runs - ref_runs) > 0.2:
        raise Fail(f"we measure about {ref_start:.2f} (to start) and {ref_runs:.2f} (between runs); you report "
                   f"{d_start:.3f} and {d_runs:.3f}. Check T = 0.3, t_min = {T_MIN}, and η = 1.")
    return (f"{d_start:.3f} vs {d_runs:.3f}: the reverse SDE lands as far from the forward start as from a second "
            "reverse run; it redraws the start from p(x0 | x_T) instead of retracing the path.")

