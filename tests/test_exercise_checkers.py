"""The exercise checkers cannot be fooled and never mislead.

One table, :data:`ROWS`, holds every checker of every chapter (a new chapter adds rows): its worked answer,
one *unlisted* wrong answer of the right shape and type with words its diagnosis must contain, the kind of
each answer slot (a function, a number or a SymPy expression) and, where the exercise updates a state, the
value-correct in-place idiom (``x += h * u; return x``). Every row is then sent the same classes of bad
answers: None, a complex number, a bool, a string, a function that raises, returns None, never returns,
prints 10 MB, or zeroes its inputs in place and returns zeros of the right shape. Each must get a clear,
specific failing verdict within a bounded time and message size. The Chapter 1 section at the end keeps the
typical-mistake diagnoses of Chapter 1 (the other chapters test theirs in ``test_chNN_*.py``).
"""

from __future__ import annotations

import ast
import functools
import importlib
import math
import pkgutil
import re
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest
import sympy as sp
import torch

from diffbook import sde
from diffbook import schedules as S
import diffbook.exercises
from diffbook.exercises import Verdict, answers, ch01, ch02, ch03, ch04, ch05, ch06, ch07, ch08, ch10, ch11, ch12, ch13, core
from diffbook.exercises.core import LOG_ENV, MESSAGE_LIMIT, OUTPUT_LIMIT, TIME_LIMIT_ENV
from diffbook.foundations import ddpm, ddpm_bound, likelihood
from diffbook.foundations.convergence import fit_order

f64 = torch.float64
LIMIT_S = 0.3  # the per-call time limit the tests run the checkers with
GENERIC = "checking your answer raised"  # the decorator's catch-all: a checker that crashed on the answer


@pytest.fixture(autouse=True)
def short_time_limit(monkeypatch):
    monkeypatch.setenv(TIME_LIMIT_ENV, str(LIMIT_S))


# ============================================================================================ worked answers
# Chapter 1

t1, x01, xs1, ys1 = sp.symbols("t x0 x y", real=True)


def euler(u, t, x, h):
    return x + h * u(t, x)


def euler_inplace(u, t, x, h):
    x += h * u(t, x)
    return x


def heun(u, t, x, h):
    k1 = u(t, x)
    return x + 0.5 * h * (k1 + u(t + h, x + h * k1))


def heun_inplace(u, t, x, h):
    k1 = u(t, x)
    k2 = u(t + h, x + h * k1)
    x += 0.5 * h * (k1 + k2)
    return x


def midpoint(u, t, x, h):
    return x + h * u(t + h / 2, x + h / 2 * u(t, x))


def midpoint_inplace(u, t, x, h):
    x += h * u(t + h / 2, x + h / 2 * u(t, x))
    return x


def log_p(x, t, a):
    return -0.5 * x**2 * torch.exp(-2 * a * t) - 0.5 * math.log(2 * math.pi) - a * t


def log_p_inplace(x, t, a):
    x.mul_(torch.exp(-a * t))  # pull x back to x0, in the caller's tensor
    return -0.5 * x**2 - 0.5 * math.log(2 * math.pi) - a * t


# Chapter 2

x2, W2 = sp.symbols("x W", real=True)
theta2, sigma2, T2 = sp.symbols("theta sigma T", positive=True)


def brownian_path(n_paths, n_steps, T, generator):
    dw = math.sqrt(T / n_steps) * torch.randn(n_paths, n_steps, generator=generator, dtype=f64)
    return torch.cat([torch.zeros(n_paths, 1, dtype=f64), dw.cumsum(dim=1)], dim=1)


def em(f, g, x0, dw, T, noise=1.0):
    n = dw.shape[1]
    h = T / n
    x = x0.clone()
    for i in range(n):
        t = torch.tensor(i * h, dtype=f64)
        x = x + f(t, x) * h + noise * g(t, x) * dw[:, i]
    return x


def em_inplace(f, g, x0, dw, T):
    n = dw.shape[1]
    h = T / n
    x = x0  # no copy: the loop below updates the caller's x0
    for i in range(n):
        t = torch.tensor(i * h, dtype=f64)
        x += f(t, x) * h + g(t, x) * dw[:, i]
    return x


def milstein(f, g, dg, x0, dw, T, half=0.5):
    n = dw.shape[1]
    h = T / n
    x = x0.clone()
    for i in range(n):
        t, d = torch.tensor(i * h, dtype=f64), dw[:, i]
        x = x + f(t, x) * h + g(t, x) * d + half * g(t, x) * dg(t, x) * (d**2 - h)
    return x


def milstein_inplace(f, g, dg, x0, dw, T):
    n = dw.shape[1]
    h = T / n
    x = x0
    for i in range(n):
        t, d = torch.tensor(i * h, dtype=f64), dw[:, i]
        x += f(t, x) * h + g(t, x) * d + 0.5 * g(t, x) * dg(t, x) * (d**2 - h)
    return x


def gaussian2(v):
    return sp.exp(-x2**2 / (2 * v)) / sp.sqrt(2 * sp.pi * v)


# Chapter 3

T3, B03, B13 = sp.symbols("t beta_min beta_max", positive=True)
BETA3 = B03 + (B13 - B03) * T3
BINT3 = B03 * T3 + (B13 - B03) * T3**2 / 2


def _d_dt(fn, t):
    tt = t.detach().clone().requires_grad_(True)
    y = fn(tt)
    if not y.requires_grad:
        return y.detach(), torch.zeros_like(t)
    (dy,) = torch.autograd.grad(y.sum(), tt)
    return y.detach(), dy


def drift_and_diffusion(alpha, sigma, t, g2_scale=1.0):
    a, da = _d_dt(alpha, t)
    s2, ds2 = _d_dt(lambda z: sigma(z) ** 2, t)
    f = da / a
    return f, g2_scale * (ds2 - 2 * f * s2)


def ddpm_marginal(betas):
    abar = torch.cumprod(1 - betas, 0)
    return abar.sqrt(), (1 - abar).sqrt()


def ddpm_marginal_inplace(betas):
    abar = betas.neg_().add_(1).cumprod_(0)  # turns the caller's β table into ᾱ
    return abar.sqrt(), (1 - abar).sqrt()


@functools.lru_cache(maxsize=1)
def ddpm_convergence_answer() -> tuple[float, float]:
    vp, errs, ns = S.VPLinear(), [], [125, 250, 500, 1000, 2000]
    for n in ns:
        ts = torch.linspace(0.0, 1.0, n + 1, dtype=f64)
        sqrt_abar, _ = ddpm_marginal(vp.beta(ts[:-1]) / n)
        sqrt_abar = torch.cat([torch.ones(1, dtype=f64), sqrt_abar])
        errs.append(float((sqrt_abar - vp.alpha(ts)).abs().max()))
    return fit_order([1 / n for n in ns], errs), errs[ns.index(1000)]


# Chapter 4

t4, x4 = sp.symbols("t x", real=True)
beta4, s04 = sp.symbols("beta s0", positive=True)
eta4 = sp.symbols("eta", nonnegative=True)
VAR4 = sp.exp(-beta4 * t4) * s04**2 + 1 - sp.exp(-beta4 * t4)


def reverse_step(schedule, score, x, t, h, eta, z, noise=1.0):
    f, g2 = sde.drift_coefficient(schedule, t), sde.diffusion_squared(schedule, t)
    return x - h * (f * x - 0.5 * (1 + eta**2) * g2 * score(x, t)) + noise * eta * g2.sqrt() * h.sqrt() * z


def reverse_step_inplace(schedule, score, x, t, h, eta, z):
    f, g2 = sde.drift_coefficient(schedule, t), sde.diffusion_squared(schedule, t)
    drift = f * x - 0.5 * (1 + eta**2) * g2 * score(x, t)
    x -= h * drift
    x += eta * g2.sqrt() * h.sqrt() * z
    return x


def hutchinson(u, t, x, z):
    with torch.enable_grad():
        xg = x.detach().requires_grad_(True)
        (zj,) = torch.autograd.grad(u(t, xg), xg, grad_outputs=z)
    return (zj * z).sum(1).detach()


@functools.lru_cache(maxsize=1)
def loglik_answer() -> torch.Tensor:
    schedule, gmm = S.VPLinear(), ch04.chapter_mixture()

    def score(x, t):
        return gmm.score(x, schedule.alpha(t), schedule.sigma(t))

    res = likelihood.pf_ode_log_likelihood(schedule, score, ch04.likelihood_points(), n_steps=64, t_min=ch04.T_MIN)
    return res.log_prob


# Chapter 5

x5, x05, m5 = sp.symbols("x x0 m", real=True)
al5, sg5, ss5 = sp.symbols("alpha sigma s", positive=True)


def tweedie_x0(x, score, alpha, sigma, scale=1.0):
    return (x + scale * sigma**2 * score) / alpha


def tweedie_inplace(x, score, alpha, sigma):
    x += sigma**2 * score
    x /= alpha
    return x


def from_v(x, v, alpha, sigma, x0_scale=1.0):
    n = alpha**2 + sigma**2
    return (sigma * x + alpha * v) / n, x0_scale * (alpha * x - sigma * v) / n


# Chapter 6

beta6, abar_prev6 = sp.symbols("beta abar_prev", positive=True)
BT6 = (1 - abar_prev6) / (1 - (1 - beta6) * abar_prev6) * beta6


def posterior_mean6(x0, xt, t, betas):
    return ddpm.posterior(x0, xt, t, betas)[0]


def posterior_mean6_inplace(x0, xt, t, betas):
    abar = torch.cumprod(1 - betas, 0)
    b, a_t, a_p = betas[t - 1][:, None], abar[t - 1][:, None], abar[t - 2][:, None]
    xt.mul_((1 - b).sqrt() * (1 - a_p) / (1 - a_t))
    xt.add_(a_p.sqrt() * b / (1 - a_t) * x0)
    return xt


def ancestral(xt, e, t, b, z, v, noise=1.0):
    mean = ddpm.mean_from_eps(xt, e, t, b)
    std = ddpm.reverse_variance(b, v)[t - 1][:, None].sqrt() * (t > 1).to(xt.dtype)[:, None]
    return mean + noise * std * z


def ancestral_inplace(xt, e, t, b, z, v):
    std = ddpm.reverse_variance(b, v)[t - 1][:, None].sqrt() * (t > 1).to(xt.dtype)[:, None]
    abar = torch.cumprod(1 - b, 0)
    beta_t, abar_t = b[t - 1][:, None], abar[t - 1][:, None]
    xt -= beta_t / (1 - abar_t).sqrt() * e
    xt /= (1 - beta_t).sqrt()
    xt += std * z
    return xt


def decoder_nll(x0, mean, std):
    return ddpm_bound.discretized_gaussian_nll(x0, mean, std, 17)


# Chapter 7

A_S, S_S, A_T, S_T = sp.symbols("alpha_s sigma_s alpha_t sigma_t", positive=True)
H7 = sp.symbols("h", positive=True)
SIGMA_TILDE2 = S_S**2 * (S_T**2 - (A_T / A_S) ** 2 * S_S**2) / S_T**2


def ddim_step(x_t, x0, a_t, s_t, a_s, s_s, eta, z, noise=1.0):
    eps = (x_t - a_t * x0) / s_t
    c = eta * s_s * math.sqrt(1 - (s_s / a_s) ** 2 / (s_t / a_t) ** 2)
    return a_s * x0 + math.sqrt(s_s**2 - c**2) * eps + noise * c * z


def ddim_step_inplace(x_t, x0, a_t, s_t, a_s, s_s, eta, z):
    c = eta * s_s * math.sqrt(1 - (s_s / a_s) ** 2 / (s_t / a_t) ** 2)
    x_t -= a_t * x0
    x_t *= math.sqrt(s_s**2 - c**2) / s_t
    x_t += a_s * x0 + c * z
    return x_t


def heun7(D, x, s, s1, half=0.5):
    d = (x - D(x, s)) / s
    xe = x + (s1 - s) * d
    return x + half * (s1 - s) * (d + (xe - D(xe, s1)) / s1)


def heun7_inplace(D, x, s, s1):
    d = (x - D(x, s)) / s
    xe = x + (s1 - s) * d
    x += 0.5 * (s1 - s) * (d + (xe - D(xe, s1)) / s1)
    return x


# Chapter 8

s8, t8 = sp.symbols("s t", positive=True)


def mv(post, x, t, scale=1.0):
    x0 = post(x, t)
    return scale * ((x - (1 - t) * x0) / t - x0)


def mv_inplace(post, x, t):
    x0 = post(x, t)
    x -= x0
    x /= t
    return x


def cfg(dc, du, w, extra=0.0):
    return du + (1 + w + extra) * (dc - du)


def cfg_inplace(dc, du, w):
    dc -= du
    dc *= 1 + w
    dc += du
    return dc


def classifier_guided(den, logp, gamma, scale=1.0):
    def guided(x, sigma, labels):
        s = torch.as_tensor(sigma, dtype=x.dtype).expand(x.shape[0])
        with torch.enable_grad():
            xg = x.detach().requires_grad_(True)
            (g,) = torch.autograd.grad(logp(xg, s, labels).sum(), xg)
        return den(x, s) + scale * gamma * s[:, None] ** 2 * g

    return guided


# Chapter 12


def km_curve(times, events, grid):
    out = torch.ones(len(grid), dtype=f64)
    s = 1.0
    for u in torch.unique(times).tolist():
        d = int(((times == u) & events).sum())
        s *= 1.0 - d / int((times >= u).sum())
        out[grid >= u] = s
    return out


def rmst(grid, surv):
    return grid[0] + (surv[:, :-1] * grid.diff()).sum(1)


def harrell_c(time, event, risk):
    comparable = (time[:, None] < time[None, :]) & event[:, None]
    concordant = (risk[:, None] > risk[None, :]) & comparable
    tied = (risk[:, None] == risk[None, :]) & comparable
    return float((concordant.sum() + 0.5 * tied.sum()) / comparable.sum())


def cox_weibull_survival(t, risk, lam, nu):
    return torch.exp(-lam * risk.exp()[:, None] * t[None, :] ** nu)


def decode(y, mu, sigma, scale=1.0):
    return scale * torch.exp(sigma * y[:, 0] + mu), y[:, 1] > 0


def leaky_columns(X, event, names, threshold=0.9):
    e = event.astype(float)
    return [name for j, name in enumerate(names) if X[:, j].std() > 0 and abs(np.corrcoef(X[:, j], e)[0, 1]) > threshold]


# ---------------------------------------------------------------- Chapter 10 answers


def loo_to_denoiser10(L, z, alpha):
    w = L * (1 + L.shape[-1] * alpha / (1 - alpha) * torch.nn.functional.one_hot(z, L.shape[-1]).to(L.dtype))
    return w / w.sum(-1, keepdim=True)


def loo_to_denoiser10_inplace(L, z, alpha):
    L.mul_(1 + L.shape[-1] * alpha / (1 - alpha) * torch.nn.functional.one_hot(z, L.shape[-1]).to(L.dtype))
    L /= L.sum(-1, keepdim=True)
    return L


def uniform_bridge10(z_t, x_hat, alpha_s, alpha_t):
    K, a = x_hat.shape[-1], alpha_t / alpha_s
    w = (a * torch.nn.functional.one_hot(z_t, K).to(x_hat.dtype) + (1 - a) / K) * (alpha_s * x_hat + (1 - alpha_s) / K)
    return w / w.sum(-1, keepdim=True)


def loo_posterior10(initial, transition, z, alpha):
    from diffbook.discrete import oracle

    return oracle.uniform_posteriors(oracle.MarkovChain(initial, transition), z[None], alpha)[1][0]


def audm_step10(z, u, p, alpha_s, alpha_t):
    K = p.shape[-1]
    move = ((alpha_s - alpha_t) * p + (1 - alpha_s) * torch.nn.functional.one_hot(u, K).to(p.dtype)) / (1 - alpha_t)
    return torch.where((z == u)[..., None], move, torch.nn.functional.one_hot(z, K).to(p.dtype))


def sticky_chain10(p_next=0.9):
    def my_chain():
        t = p_next * torch.roll(torch.eye(5, dtype=torch.float64), 1, dims=1) + (1 - p_next) / 5
        return torch.full((5,), 0.2, dtype=torch.float64), t

    return my_chain


# ============================================================================================ the table


def rope_freqs11(d, theta):
    return theta ** (-torch.arange(0, d, 2, dtype=torch.float64) / d)


def ntk_theta11(theta, s, d):
    return theta * s ** (d / (d - 2))


def flatness11(E):
    return float(torch.exp(torch.log(E).mean()) / E.mean())


def band_of_pair11(omega, B):
    lp = torch.log(2 * math.pi / omega)
    return (1 - (lp - lp.min()) / (lp.max() - lp.min())) * (B - 1)


def sega_scales11(E, omega, m_ref, sigma, alpha=0.15, beta=1.5, m_min=1.0):
    pos = band_of_pair11(omega, len(E))
    j0 = pos.floor().long().clamp(0, len(E) - 1)
    j1 = (j0 + 1).clamp(max=len(E) - 1)
    w = pos - j0
    le = (1 - w) * torch.log(E + 1e-8)[j0] + w * torch.log(E + 1e-8)[j1]
    z = (le - le.mean()) / le.std(unbiased=False)
    s = torch.tanh(beta * z)
    return (m_ref * (1 - alpha * sigma * (s - s.mean()))).clamp_min(m_min)


@dataclass
class Row:
    check: Callable[..., Verdict]
    kinds: tuple[str, ...]  # per answer slot: "fn", "num" or "expr"
    right: Callable[[], tuple]  # built lazily: some answers need a computation
    wrong: Callable[[], tuple]  # an unlisted wrong answer of the right shape and type
    words: tuple[str, ...]  # what the diagnosis of `wrong` must say
    inplace: tuple | None = None  # the value-correct in-place idiom, where the exercise updates a state
    extra: dict = field(default_factory=dict)

    @property
    def id(self) -> str:
        return f"{self.check.__module__.rsplit('.', 1)[-1]}.{self.check.__name__}"


def const(*values: Any) -> Callable[[], tuple]:
    return lambda: values


# Chapter 13


def tokens13(method, steps, context, block):  # a 0-d tensor, so the malformed-answer wrappers can reach it
    return torch.tensor({"naive": steps * (context + block + 1), "encdec": context + steps * (block + 1),
            "blockcausal": block + steps * (block + 1)}[method], dtype=f64)


def block_causal13(n_chunks, block, window):
    ids = torch.arange(n_chunks).repeat_interleave(block)
    d = ids[:, None] - ids[None, :]
    return (d >= 0) & (d <= window)


def encdec13(n_context, n_rest):
    m = torch.ones(n_context + n_rest, n_context + n_rest, dtype=torch.bool)
    m[:n_context, n_context:] = False
    return m


def passes13(method, steps, block):
    return torch.tensor({"naive": steps, "encdec": steps + 1, "blockcausal": steps, "ar": block}[method], dtype=f64)


ROWS = [
    # ---------------------------------------------------------------- Chapter 1
    Row(ch01.check_euler_step, ("fn",), const(euler), const(lambda u, t, x, h: x + 2 * h * u(t, x)),
        ("off by up to", "expected x + h·u(t, x)"), (euler_inplace,)),
    Row(ch01.check_heun_step, ("fn",), const(heun), const(lambda u, t, x, h: x + h * u(t + h / 2, x)),
        ("off by up to", "(h/2)(k1 + k2)"), (heun_inplace,)),
    Row(ch01.check_flow_map, ("expr",), const(1 + (x01 - 1) * sp.exp(-t1)), const(1 + (x01 - 1) * sp.exp(-2 * t1)),
        ("ψ_0(x0) = x0 holds", "d/dt ψ - (1 - ψ)")),
    Row(ch01.check_divergence, ("expr",), const(2 - 4 * (xs1**2 + ys1**2)), const(2 - 3 * (xs1**2 + ys1**2)),
        ("yours gives -1", "expected -2")),
    Row(ch01.check_log_density, ("fn",), const(log_p), const(lambda x, t, a: 2 * log_p(x, t, a)),
        ("log-density is off by up to",), (log_p_inplace,)),
    Row(ch01.check_midpoint, ("fn", "num"), const(midpoint, 2.02),
        const(lambda u, t, x, h: x + h * u(t + h / 2, x), 2.0), ("`midpoint_step` is off by up to",),
        (midpoint_inplace, 2.02)),
    # ---------------------------------------------------------------- Chapter 2
    Row(ch02.check_ito_square, ("expr", "expr"), const(-2 * theta2 * x2**2 + sigma2**2, 2 * sigma2 * x2),
        const(-2 * theta2 * x2**2 + 3 * sigma2**2, 2 * sigma2 * x2), ("`drift_x2` is", "f·φ' + ½g²φ''")),
    Row(ch02.check_brownian_path, ("fn",), const(brownian_path),
        const(lambda n, k, T, g: math.sqrt(2) * brownian_path(n, k, T, g)), ("increments have variance", "N(0, h)")),
    Row(ch02.check_wdw, ("expr", "expr"), const((W2**2 - T2) / 2, T2**2 / 2), const((W2**2 - 2 * T2) / 2, T2**2 / 2),
        ("telescope",)),
    Row(ch02.check_euler_maruyama, ("fn",), const(em), const(functools.partial(em, noise=2.0)),
        ("X_N is off by up to",), (em_inplace,)),
    Row(ch02.check_stationary_density, ("expr",), const(gaussian2(sigma2**2 / (2 * theta2))),
        const(gaussian2(sigma2**2 / (3 * theta2))), ("does not solve the stationary Fokker–Planck",)),
    Row(ch02.check_strong_order, ("num",), const(0.51), const(0.75), ("you measured 0.75", "expected about 0.5")),
    Row(ch02.check_milstein, ("fn", "num"), const(milstein, 0.97), const(functools.partial(milstein, half=0.25), 0.97),
        ("X_N is off by up to",), (milstein_inplace, 0.97)),
    # ---------------------------------------------------------------- Chapter 3
    Row(ch03.check_vp_alpha, ("expr",), const(sp.exp(-BINT3 / 2)), const(sp.exp(-BINT3 / 3)),
        ("at t = 1/2", "yours gives")),
    Row(ch03.check_subvp_diffusion, ("expr",), const(BETA3 * (1 - sp.exp(-2 * BINT3))),
        const(BETA3 * (1 - sp.exp(-3 * BINT3))), ("not the diffusion of sub-VP",)),
    Row(ch03.check_drift_and_diffusion, ("fn",), const(drift_and_diffusion),
        const(functools.partial(drift_and_diffusion, g2_scale=2.0)), ("your g² is off by up to",)),
    Row(ch03.check_ddpm_marginal, ("fn",), const(ddpm_marginal),
        const(lambda b: (0.9 * ddpm_marginal(b)[0], ddpm_marginal(b)[1])),
        ("sqrt_abar is off by up to", "Π_{j ≤ i}(1 - β_j)"), (ddpm_marginal_inplace,)),
    Row(ch03.check_ddpm_convergence, ("num", "num"), ddpm_convergence_answer,
        lambda: (ddpm_convergence_answer()[0], 2 * ddpm_convergence_answer()[1]), ("but we measure",)),
    Row(ch03.check_visible_side, ("num",), const(305), const(400), ("side = 400 is not right",)),
    # ---------------------------------------------------------------- Chapter 4
    Row(ch04.check_pf_velocity, ("expr",), const(-beta4 * x4 / 2 + beta4 * x4 / (2 * VAR4)),
        const(-beta4 * x4 / 3 + beta4 * x4 / (2 * VAR4)), ("at t = 1/2, x = 1", "yours gives")),
    Row(ch04.check_eta_coefficient, ("expr",), const((1 + eta4**2) / 2), const((1 + eta4**2) / 3),
        ("at η = 2 your coefficient is", "expected 5/2")),
    Row(ch04.check_reverse_step, ("fn",), const(reverse_step), const(functools.partial(reverse_step, noise=1.5)),
        ("your step is off by up to",), (reverse_step_inplace,)),
    Row(ch04.check_hutchinson, ("fn",), const(hutchinson), const(lambda u, t, x, z: 2 * hutchinson(u, t, x, z)),
        ("your estimate is off by up to",)),
    Row(ch04.check_log_likelihood, ("num",), lambda: (loglik_answer(),), lambda: (loglik_answer() + 0.3,),
        ("close but off by up to 0.3",)),
    Row(ch04.check_reverse_distances, ("num", "num"), const(1.2, 1.2), const(0.6, 0.6), ("we measure about",)),
    # ---------------------------------------------------------------- Chapter 5
    Row(ch05.check_conditional_score, ("expr",), const(-(x5 - al5 * x05) / sg5**2),
        const(-(x5 - al5 * x05) / (3 * sg5**2)), ("your expression gives", "expected -4.4")),
    Row(ch05.check_tweedie, ("fn",), const(tweedie_x0), const(functools.partial(tweedie_x0, scale=2.0)),
        ("off by up to", "(x + σ²·score)/α"), (tweedie_inplace,)),
    Row(ch05.check_gaussian_posterior_mean, ("expr",),
        const((al5 * ss5**2 * x5 + sg5**2 * m5) / (al5**2 * ss5**2 + sg5**2)), const(x5 / (2 * al5)),
        ("your expression gives",)),
    Row(ch05.check_from_v, ("fn",), const(from_v), const(functools.partial(from_v, x0_scale=1.1)),
        ("x0 is off by up to",)),
    Row(ch05.check_loss_weights, ("expr", "expr"), const(sg5**2 / al5**2, (al5**2 + sg5**2) ** 2 / al5**2),
        const(2 * sg5**2 / al5**2, (al5**2 + sg5**2) ** 2 / al5**2), ("w_x0 at α = 0.8",)),
    Row(ch05.check_noise_floor, ("num", "num"), const(0.974, 0.108), const(0.5, 0.5), ("floor_low = 0.5 is off",)),
    # ---------------------------------------------------------------- Chapter 6
    Row(ch06.check_posterior_variance, ("expr",), const(BT6), const(beta6 / 2), ("at β = 0.1", "yours gives")),
    Row(ch06.check_posterior_mean, ("fn",), const(posterior_mean6),
        const(lambda x0, xt, t, b: 1.1 * posterior_mean6(x0, xt, t, b)), ("your mean is off by up to",),
        (posterior_mean6_inplace,)),
    Row(ch06.check_ancestral_step, ("fn",), const(ancestral), const(functools.partial(ancestral, noise=2.0)),
        ("your step is off by up to",), (ancestral_inplace,)),
    Row(ch06.check_elbo_weight, ("expr",), const(beta6 / (2 * (1 - beta6) * (1 - abar_prev6))),
        const(beta6 / (3 * (1 - beta6) * (1 - abar_prev6))), ("at β = 0.01", "yours gives")),
    Row(ch06.check_decoder_nll, ("fn",), const(decoder_nll), const(lambda x0, m, s: 2 * decoder_nll(x0, m, s)),
        ("your NLL is off by up to",)),
    Row(ch06.check_reverse_variance, ("num",), lambda: (ch06.reverse_variance_target()["ratio"] * 1.005,),
        const(0.5), ("not within 2 %",)),
    # ---------------------------------------------------------------- Chapter 7
    Row(ch07.check_posterior_variance, ("expr",), const(SIGMA_TILDE2), const(2 * SIGMA_TILDE2),
        ("not the posterior variance",)),
    Row(ch07.check_ddim_step, ("fn",), const(ddim_step), const(functools.partial(ddim_step, noise=2.0)),
        ("your step is off by up to",), (ddim_step_inplace,)),
    Row(ch07.check_dpm_solver_coefficient, ("expr",), const(sp.exp(H7) - 1), const(sp.exp(2 * H7) - 1),
        ("at h = 0.7 yours gives",)),
    Row(ch07.check_heun_step, ("fn",), const(heun7), const(functools.partial(heun7, half=0.25)),
        ("your step is off by up to",), (heun7_inplace,)),
    Row(ch07.check_dpmpp_order, ("num",), const(2.05), const(3.0), ("you got 3", "we measure")),
    Row(ch07.check_crossover, ("num",), const(20), const(32), ("already better at a smaller budget",)),
    # ---------------------------------------------------------------- Chapter 8
    Row(ch08.check_conditional_variance, ("expr",), const(s8**2 / ((1 - t8) ** 2 * s8**2 + t8**2)),
        const(s8**2 / ((1 - t8) ** 2 * s8**2 + 2 * t8**2)), ("at s = 1/2, t = 1/3 your expression gives",)),
    Row(ch08.check_marginal_velocity, ("fn",), const(mv), const(functools.partial(mv, scale=2.0)),
        ("your velocity is off by up to",), (mv_inplace,)),
    Row(ch08.check_cfg, ("fn",), const(cfg), const(functools.partial(cfg, extra=1.0)),
        ("your combination is off by up to",), (cfg_inplace,)),
    Row(ch08.check_classifier_guidance, ("fn",), const(classifier_guided),
        const(functools.partial(classifier_guided, scale=3.0)), ("your guided denoiser is off by up to",)),
    Row(ch08.check_pair_variance, ("num",), const(0.25), const(0.3), ("you gave 0.3",)),
    Row(ch08.check_component_share, ("num",), const(0.87), const(0.6), ("differs from ours",)),
    # ---------------------------------------------------------------- Chapter 11
    Row(ch11.check_rope_frequencies, ("fn",), const(rope_freqs11), const(lambda d, th: 1.01 * rope_freqs11(d, th)),
        ("your frequencies are off by up to",)),
    Row(ch11.check_ntk_base, ("fn",), const(ntk_theta11), const(lambda th, s, d: 1.5 * th), ("you gave",)),
    Row(ch11.check_flatness, ("fn",), const(flatness11), const(lambda E: 0.5 * flatness11(E)), ("you gave",)),
    Row(ch11.check_band_positions, ("fn",), const(band_of_pair11), const(lambda o, B: 0.5 * band_of_pair11(o, B)),
        ("your band positions are off by up to",)),
    Row(ch11.check_pair_scales, ("fn",), const(sega_scales11), const(lambda *a: 1.1 * sega_scales11(*a)),
        ("your magnitudes are off by up to",)),
    # ---------------------------------------------------------------- Chapter 12
    # ---------------------------------------------------------------- Chapter 10
    Row(ch10.check_loo_to_denoiser, ("fn",), const(loo_to_denoiser10),
        const(lambda L, z, a: 0.9 * loo_to_denoiser10(L, z, a) + 0.02), ("your D is off by up to",),
        (loo_to_denoiser10_inplace,)),
    Row(ch10.check_uniform_bridge, ("fn",), const(uniform_bridge10),
        const(lambda z, x, s, t: uniform_bridge10(z, x, s, t).roll(1, -1)), ("your bridge is off by up to",)),
    Row(ch10.check_loo_posterior, ("fn",), const(loo_posterior10),
        const(lambda i, t, z, a: loo_posterior10(i, t, z, a).flip(-1)), ("your L is off by up to",)),
    Row(ch10.check_audm_step, ("fn",), const(audm_step10), const(lambda *a: audm_step10(*a).roll(1, -1)),
        ("your step is off by up to",)),
    Row(ch10.check_logit_shift, ("num",), const(math.log(244)), const(5.0), ("5 is not it",)),
    Row(ch10.check_my_chain, ("fn",), const(sticky_chain10()), const(sticky_chain10(0.3)), ("entropy rate",)),
    Row(ch12.check_kaplan_meier, ("fn",), const(km_curve), const(lambda tm, ev, g: km_curve(tm, ev, g) ** 2),
        ("your curve is off by up to",)),
    Row(ch12.check_rmst, ("fn",), const(rmst), const(lambda g, s: 2 * rmst(g, s)), ("your RMST is off by up to",)),
    Row(ch12.check_harrell_c, ("fn",), const(harrell_c), const(lambda *a: 0.5 * harrell_c(*a)),
        ("you gave", "expected")),
    Row(ch12.check_cox_weibull_survival, ("fn",), const(cox_weibull_survival),
        const(lambda *a: cox_weibull_survival(*a) ** 2), ("your S(t|x) is off by up to",)),
    Row(ch12.check_decode, ("fn",), const(decode), const(functools.partial(decode, scale=2.0)),
        ("your times are off by up to",)),
    Row(ch12.check_leaky_columns, ("fn",), const(leaky_columns), const(lambda X, e, n, threshold=0.9: ["noise"]),
        ("not quite", "extra ['noise']")),
    # ---------------------------------------------------------------- Chapter 13
    Row(ch13.check_tokens_per_bar, ("fn",), const(tokens13), const(lambda m, s, c, b: 2 * tokens13(m, s, c, b)),
        ("your counts are off by up to",)),
    Row(ch13.check_block_causal_mask, ("fn",), const(block_causal13), const(lambda n, b, w: ~block_causal13(n, b, w)),
        ("your mask differs",)),
    Row(ch13.check_encdec_mask, ("fn",), const(encdec13), const(lambda c, r: torch.zeros(c + r, c + r)),
        ("your mask is off",)),
    Row(ch13.check_half_bar_budget, ("num",), const(4 * 60 / 90 / 2 * 1000), const(500.0), ("you gave 500",)),
    Row(ch13.check_sequential_passes, ("fn",), const(passes13), const(lambda m, s, b: 2 * passes13(m, s, b)),
        ("your pass counts are off by up to",)),
    Row(ch13.check_pass_crossover, ("num",), const(15), const(7), ("you gave 7",)),
]
IDS = [row.id for row in ROWS]
CHAPTERS = [
    importlib.import_module(f"diffbook.exercises.{m.name}")
    for m in pkgutil.iter_modules(diffbook.exercises.__path__)
    if re.fullmatch(r"ch\d\d", m.name)
]


def test_the_table_holds_every_checker_of_every_chapter():
    """A chapter module, or a checker added to one, without a row here fails this test: add a Row to ROWS."""
    exported = {
        f"{m.__name__.rsplit('.', 1)[-1]}.{name}" for m in CHAPTERS for name in m.__all__ if name.startswith("check_")
    }
    assert len(CHAPTERS) >= 9 and exported == set(IDS), sorted(exported ^ set(IDS))


# ============================================================================================ helpers


def run(check: Callable[..., Verdict], answers: tuple, capsys) -> tuple[Verdict, float, str]:
    """Run a checker; return its verdict, the seconds it took, and what it printed."""
    capsys.readouterr()
    start = time.monotonic()
    verdict = check(*answers)
    seconds = time.monotonic() - start
    printed = capsys.readouterr()
    return verdict, seconds, printed.out + printed.err


def assert_bounded(verdict: Verdict, seconds: float, printed: str, budget_s: float = 10 * LIMIT_S + 3.0) -> None:
    assert isinstance(verdict, Verdict)
    assert seconds < budget_s, f"the verdict took {seconds:.1f} s"
    assert len(verdict.message) <= MESSAGE_LIMIT + 600, len(verdict.message)
    assert len(printed) <= OUTPUT_LIMIT + 300, len(printed)


def with_slot(row: Row, slot: int, value: Any) -> tuple:
    answers = list(row.right())
    answers[slot] = value
    return tuple(answers)


def raises(*args, **kwargs):
    raise ZeroDivisionError("boom")


def returns_none(*args, **kwargs):
    return None


def hangs(*args, **kwargs):
    while True:  # a true infinite loop: only the alarm can stop it
        pass


def prints_10mb(*args, **kwargs):
    chunk = "x" * 1_000_000
    for _ in range(10):
        print(chunk, end="")
    return None


def _map(fn: Callable[[torch.Tensor], Any], value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return fn(value)
    if isinstance(value, float):
        return float(fn(torch.tensor(value, dtype=f64)))
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return []  # the "zeros" of a list of names
    if isinstance(value, (tuple, list)):
        return type(value)(_map(fn, v) for v in value)
    if callable(value):
        return zeroing(value)
    return value


def zeroing(right: Callable[..., Any]) -> Callable[..., Any]:
    """The fooling answer: compute the right output's shape, zero every input tensor in place, return zeros."""

    def answer(*args, **kwargs):
        out = right(*args, **kwargs)
        for a in (*args, *kwargs.values()):
            if isinstance(a, torch.Tensor) and a.is_floating_point():
                a.detach().zero_()
            elif isinstance(a, np.ndarray) and a.dtype.kind == "f":
                a[...] = 0.0
        return _map(lambda t: torch.zeros_like(t).detach(), out)

    return answer


BAD = {
    # name: (answer, {slot kind: words the verdict must contain})
    "None": (None, dict.fromkeys(("fn", "num", "expr"), "has no answer yet")),
    "complex": (2 + 1j, {"fn": "should be a function", "num": "complex", "expr": "complex"}),
    "numpy complex": (np.complex128(2 + 1j), {"fn": "should be a function", "num": "complex", "expr": "complex"}),
    "bool": (True, {"fn": "should be a function", "num": "truth value", "expr": "truth value"}),
    "string": ("not an answer", {"fn": "should be a function", "num": "string", "expr": "cannot parse"}),
    "raises": (raises, {"fn": "raised ZeroDivisionError: boom", "num": "not a tensor or a number",
                        "expr": "should be a SymPy expression"}),
    "returns None": (returns_none, {"fn": "is a `return` missing", "num": "not a tensor or a number",
                                    "expr": "should be a SymPy expression"}),
    "hangs": (hangs, {"fn": "did not return within", "num": "not a tensor or a number",
                      "expr": "should be a SymPy expression"}),
    "prints 10 MB": (prints_10mb, {"fn": "printed 10,000,000 characters", "num": "not a tensor or a number",
                                   "expr": "should be a SymPy expression"}),
}
CASES = [(row, slot, bad) for row in ROWS for slot in range(len(row.kinds)) for bad in BAD]


# ============================================================================================ the tests


@pytest.mark.parametrize("row", ROWS, ids=IDS)
def test_worked_answer_passes(row, capsys):
    verdict, seconds, printed = run(row.check, row.right(), capsys)
    assert verdict.passed, verdict.message
    chapter = int(row.check.__module__.rsplit(".ch", 1)[1])
    assert str(verdict).startswith(f"Exercise {chapter}.") and "correct" in str(verdict)
    assert "changed its input" not in verdict.message  # the worked answers leave their inputs alone
    assert_bounded(verdict, seconds, printed, budget_s=60.0)


@pytest.mark.parametrize("row", ROWS, ids=IDS)
def test_unlisted_wrong_answer_gets_a_specific_diagnosis(row, capsys):
    """A wrong value no mistake list knows reaches the generic message of the checker, which must render
    (Exercise 3.4 raised KeyError: 'j ≤ i' here) and say what is wrong."""
    verdict, seconds, printed = run(row.check, row.wrong(), capsys)
    assert not verdict.passed
    assert GENERIC not in verdict.message, verdict.message
    for words in row.words:
        assert words in verdict.message, verdict.message
    assert_bounded(verdict, seconds, printed, budget_s=60.0)


@pytest.mark.parametrize("row,slot,bad", CASES, ids=[f"{r.id}-{s}-{b}" for r, s, b in CASES])
def test_bad_answer_gets_a_clear_bounded_failing_verdict(row, slot, bad, capsys):
    value, words = BAD[bad]
    verdict, seconds, printed = run(row.check, with_slot(row, slot, value), capsys)
    assert not verdict.passed, verdict.message
    assert GENERIC not in verdict.message, verdict.message
    assert words[row.kinds[slot]] in verdict.message, verdict.message
    assert_bounded(verdict, seconds, printed)


def _first_symbol(expr: Any) -> Any:
    return sorted(expr.free_symbols, key=str)[0]


MORE_BAD = {
    # kind: {name: answer built from the right answer of that slot}
    "expr": {
        "complex expression": lambda right: right + sp.I,
        "complex infinity": lambda right: sp.zoo,
        "NaN": lambda right: sp.nan,
        "undefined function": lambda right: sp.Function("f")(_first_symbol(right)),
        "a relation": lambda right: sp.Eq(right, 0),
        "a bare symbol": lambda right: _first_symbol(right),
        "a list": lambda right: [right],
    },
    "num": {
        "NaN": lambda right: float("nan"),
        "inf": lambda right: math.inf,
        "SymPy oo": lambda right: sp.oo,
        "SymPy I": lambda right: sp.I,
        "SymPy symbol": lambda right: sp.Symbol("q"),
        "numeric string": lambda right: "2.0",
        "two numbers": lambda right: [1.0, 2.0],
        "None in a list": lambda right: [None],
    },
    "fn": {
        "returns a string": lambda right: lambda *a, **k: "oops",
        "returns a list of floats": lambda right: lambda *a, **k: [1.0, 2.0],
        "returns a complex tensor": lambda right: lambda *a, **k: torch.zeros(3, dtype=torch.complex128),
        "returns an int": lambda right: lambda *a, **k: 1,
        "returns a SymPy symbol": lambda right: lambda *a, **k: sp.Symbol("x"),
        "returns a generator": lambda right: lambda *a, **k: (i for i in range(3)),
        "calls sys.exit": lambda right: lambda *a, **k: exit_now(),
        "returns NaN": lambda right: lambda *a, **k: _map(lambda t: torch.full_like(t, math.nan), right(*a, **k)),
    },
}


def exit_now():
    raise SystemExit(3)


MORE_CASES = [(row, slot, name) for row in ROWS for slot, kind in enumerate(row.kinds) for name in MORE_BAD[kind]]


@pytest.mark.parametrize("row,slot,name", MORE_CASES, ids=[f"{r.id}-{s}-{n}" for r, s, n in MORE_CASES])
def test_more_malformed_answers_get_a_verdict_not_a_crash(row, slot, name, capsys):
    """Before the fix, SymPy answers with complex values or undefined functions crashed 18 checkers into the
    catch-all (``float()`` of a complex in a message), and a bool crashed every SymPy checker."""
    value = MORE_BAD[row.kinds[slot]][name](row.right()[slot])
    verdict, seconds, printed = run(row.check, with_slot(row, slot, value), capsys)
    assert not verdict.passed, verdict.message
    assert GENERIC not in verdict.message, verdict.message
    assert_bounded(verdict, seconds, printed)


FN_SLOTS = [(row, slot) for row in ROWS for slot, kind in enumerate(row.kinds) if kind == "fn"]
FN_IDS = [f"{r.id}-{s}" for r, s in FN_SLOTS]


@pytest.mark.parametrize("row,slot", FN_SLOTS, ids=FN_IDS)
def test_answer_that_zeroes_its_inputs_and_returns_zeros_is_rejected(row, slot, capsys):
    """Accepted by 1.1, 1.2, 1.6 and 8.3 when the checkers compared with references computed from the
    very tensors the answer had zeroed."""
    verdict, seconds, printed = run(row.check, with_slot(row, slot, zeroing(row.right()[slot])), capsys)
    assert not verdict.passed, verdict.message
    assert GENERIC not in verdict.message, verdict.message
    assert "ours 0.000" not in verdict.message
    assert_bounded(verdict, seconds, printed)


INPLACE = [row for row in ROWS if row.inplace is not None]


@pytest.mark.parametrize("row", INPLACE, ids=[r.id for r in INPLACE])
def test_value_correct_in_place_idiom_passes_with_a_note(row, capsys):
    """``x += h * u(t, x); return x`` was rejected by every function checker with a misleading "off by"."""
    verdict, seconds, printed = run(row.check, row.inplace, capsys)
    assert verdict.passed, verdict.message
    assert "changed its input" in verdict.message, verdict.message
    assert_bounded(verdict, seconds, printed, budget_s=60.0)


def test_the_in_place_note_names_the_argument(capsys):
    verdict, _, _ = run(ch01.check_euler_step, (euler_inplace,), capsys)
    assert "changed its input `x` in place" in verdict.message


@pytest.mark.parametrize("row,slot", FN_SLOTS, ids=FN_IDS)
def test_right_answer_that_prints_10mb_passes_and_its_output_is_truncated(row, slot, capsys):
    right = row.right()[slot]

    def chatty(*args, **kwargs):
        print("y" * 10_000_000)
        return right(*args, **kwargs)

    verdict, seconds, printed = run(row.check, with_slot(row, slot, chatty), capsys)
    assert verdict.passed, verdict.message
    assert "printed" in verdict.message and "only the first" in verdict.message
    assert printed.startswith("y" * 100) and "characters; the first" in printed
    assert_bounded(verdict, seconds, printed, budget_s=60.0)


NUM_SLOTS = [(row, slot) for row in ROWS for slot, kind in enumerate(row.kinds) if kind == "num"]


def _scalar_forms(value: float) -> dict[str, Any]:
    forms = {"sympy Float": sp.Float(value), "numpy": np.float64(value), "0-d tensor": torch.tensor(value, dtype=f64)}
    if float(value).is_integer():
        forms.update({"sympy Integer": sp.Integer(int(value)), "numpy int": np.int64(int(value))})
    else:
        forms["sympy Rational"] = sp.Rational(value)  # the exact rational value of the float
    return forms


SCALAR_CASES = [
    (row, slot, form)
    for row, slot in NUM_SLOTS
    if not isinstance(row.right()[slot], torch.Tensor)
    for form in _scalar_forms(row.right()[slot])
]


@pytest.mark.parametrize("row,slot,form", SCALAR_CASES, ids=[f"{r.id}-{s}-{f}" for r, s, f in SCALAR_CASES])
def test_sympy_and_numpy_numbers_are_accepted_where_a_number_is_asked(row, slot, form, capsys):
    value = _scalar_forms(row.right()[slot])[form]
    verdict, _, _ = run(row.check, with_slot(row, slot, value), capsys)
    assert verdict.passed, verdict.message


def test_sympy_rational_quarter_is_accepted_for_the_pair_variance():
    assert ch08.check_pair_variance(sp.Rational(1, 4)).passed  # rejected before: torch cannot read SymPy numbers


def test_a_sympy_expression_with_symbols_is_not_a_number():
    verdict = ch08.check_pair_variance(sp.Symbol("tau") ** 2 / 4)
    assert not verdict.passed and "expression in tau" in verdict.message


@pytest.mark.parametrize("value,words", [(True, "truth value"), (np.bool_(True), "truth value"),
                                         (2 + 1j, "complex"), (torch.tensor(2 + 1j), "complex"),
                                         (sp.Integer(2) + sp.I, "complex"), (torch.tensor([0.25, 0.25]), "one number")])
def test_non_real_numbers_are_rejected_where_a_number_is_asked(value, words):
    verdict = ch08.check_pair_variance(value)
    assert not verdict.passed and words in verdict.message, verdict.message


def test_python_floats_are_not_rounded_to_float32():
    """torch.as_tensor(304.33394) is 304.33395 in float32; the side of Exercise 3.6 is 304.3339406 exactly."""
    assert answers.as_number(304.33394, "x") == 304.33394
    assert float(answers.as_tensor([0.1, 304.33394], "x")[1]) == 304.33394


def test_bool_tensor_returned_by_a_function_is_rejected():
    verdict = ch01.check_euler_step(lambda u, t, x, h: x > 0)
    assert not verdict.passed and "truth values" in verdict.message


def test_sympy_relations_and_truth_values_are_not_expressions():
    assert "truth value" in ch01.check_flow_map(sp.true).message
    assert "not an expression" in ch01.check_flow_map(sp.Eq(t1, x01)).message


# --------------------------------------------------------------------------------------- time limits


def test_a_hanging_function_is_stopped_by_the_limit(capsys):
    verdict, seconds, _ = run(ch01.check_euler_step, (hangs,), capsys)
    assert "did not return within 0.3 s" in verdict.message
    assert LIMIT_S * 0.9 < seconds < LIMIT_S + 2.0


def test_a_hanging_function_that_catches_exception_is_still_stopped(capsys):
    def stubborn(*args):
        while True:
            try:
                time.sleep(0.01)
            except Exception:  # the time-out is not an Exception, so this does not swallow it
                pass

    verdict, seconds, _ = run(ch01.check_euler_step, (stubborn,), capsys)
    assert "did not return within" in verdict.message and seconds < LIMIT_S + 2.0


def test_outside_the_main_thread_a_watchdog_thread_bounds_the_wait():
    result = {}

    def slow(u, t, x, h):
        time.sleep(2.0)  # ends on its own, so the abandoned worker thread does not spin forever
        return euler(u, t, x, h)

    def worker():
        start = time.monotonic()
        result["verdict"] = ch01.check_euler_step(slow)
        result["seconds"] = time.monotonic() - start

    thread = threading.Thread(target=worker)
    thread.start()
    thread.join(10.0)
    assert "did not return within" in result["verdict"].message
    assert result["seconds"] < LIMIT_S + 1.0


def test_slow_calls_share_one_budget_per_check(capsys):
    """Each call is below the limit (0.25 s < 0.3 s), but 3.3 calls four times: the check stops once the
    student's code has used 3 × the limit in all its calls together."""

    def slowish(alpha, sigma, t):
        time.sleep(0.25)
        return drift_and_diffusion(alpha, sigma, t)

    verdict, seconds, _ = run(ch03.check_drift_and_diffusion, (slowish,), capsys)
    assert not verdict.passed and "in all its calls together" in verdict.message, verdict.message
    assert seconds < 3 * LIMIT_S + 1.5


@pytest.mark.skipif(not hasattr(signal, "setitimer"), reason="no interval timers on this platform")
def test_an_outer_timer_survives_a_check():
    signal.setitimer(signal.ITIMER_REAL, 100.0)
    previous = signal.signal(signal.SIGALRM, lambda *a: None)
    try:
        assert ch01.check_euler_step(euler).passed
        left, _ = signal.getitimer(signal.ITIMER_REAL)
        assert 90.0 < left <= 100.0
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def test_guard_gives_library_code_a_safe_student_function():
    """`guard` is for handing a student's function to code that calls it many times (a convergence study):
    every call gets copies and the time limit, and a hang becomes a Fail, not a stuck notebook."""
    from diffbook.foundations.convergence import global_errors
    from diffbook.foundations.flows import limit_cycle_field, limit_cycle_flow

    x0 = torch.tensor([[0.6, 0.0], [0.2, 0.3]], dtype=f64)
    exact = limit_cycle_flow(x0, 1.0)
    hs, errs = global_errors(core.guard(midpoint_inplace, "midpoint_step"), limit_cycle_field(), x0, 0.0, 1.0,
                             exact, [16, 32, 64])
    assert abs(fit_order(hs, errs) - 2.0) < 0.2
    assert torch.equal(x0, torch.tensor([[0.6, 0.0], [0.2, 0.3]], dtype=f64))  # the in-place step got copies
    with pytest.raises(core.Fail, match="did not return within"):
        global_errors(core.guard(hangs, "midpoint_step"), limit_cycle_field(), x0, 0.0, 1.0, exact, [4])


# --------------------------------------------------------------------------------------- messages


def test_huge_exception_texts_and_answers_are_cut():
    def shouts(*args):
        raise ValueError("!" * 1_000_000)

    verdict = ch01.check_euler_step(shouts)
    assert "raised ValueError" in verdict.message and len(verdict.message) < 600
    verdict = ch01.check_flow_map("(" * 100_000)
    assert "cannot parse" in verdict.message and len(verdict.message) <= MESSAGE_LIMIT + 100


def test_diagnose_reads_no_braces_but_err():
    """The bug class behind 3.4's KeyError: a message with math braces passed through str.format."""
    with pytest.raises(core.Fail, match=r"off by 1 in Π_\{j ≤ i\}\{x\}"):
        answers.diagnose(torch.ones(2), torch.zeros(2), [], "off by {err} in Π_{j ≤ i}{x}")


def test_no_checker_message_goes_through_str_format():
    """Messages are f-strings rendered where they are written, or go through diagnose's literal {err}:
    a `.format(` call on a message string would bring back the KeyError of Exercise 3.4."""
    root = Path(core.__file__).parent
    for path in sorted(root.glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute)
                 and n.func.attr in ("format", "format_map")]
        assert not calls, f"{path.name}:{calls[0].lineno} uses str.format"


# ============================================================================================ Chapter 1 diagnoses


@pytest.mark.parametrize(
    "check,answer,diagnosis",
    [
        (ch01.check_euler_step, (lambda u, t, x, h: x + u(t, x),), "off by a factor h"),
        (ch01.check_euler_step, (lambda u, t, x, h: x - h * u(t, x),), "wrong sign"),
        (ch01.check_euler_step, (lambda u, t, x, h: h * u(t, x),), "returned the increment"),
        (ch01.check_euler_step, (lambda u, t, x, h: x + h * u(t + h, x),), "at t + h"),
        (ch01.check_euler_step, (lambda u, t, x, h: x + abs(h) * u(t, x),), "not for h < 0"),
        (ch01.check_heun_step, (euler,), "this is Euler's step"),
        (ch01.check_heun_step, (midpoint,), "explicit midpoint"),
        (ch01.check_heun_step, (lambda u, t, x, h: x + h * (u(t, x) + u(t + h, x + h * u(t, x))),), "forgot to halve"),
        (ch01.check_flow_map, (x01 * sp.exp(-t1),), "d/dt ψ - (1 - ψ)"),
        (ch01.check_flow_map, (1 + x01 * sp.exp(-t1),), "must start at x0"),
        (ch01.check_flow_map, ("1 + (z - 1)*exp(-t)",), "uses symbol(s) z"),
        (ch01.check_divergence, (2 - 2 * (xs1**2 + ys1**2),), "product-rule"),
        (ch01.check_divergence, (-(2 - 4 * (xs1**2 + ys1**2)),), "sign error"),
        (ch01.check_log_density, (lambda x, t, a: log_p(x, t, a) + a * t,), "forgot the volume change"),
        (ch01.check_midpoint, (euler, 2.0), "is Euler's step"),
        (ch01.check_midpoint, (midpoint, 1.0), "measured order is 1"),
    ],
)
def test_chapter1_wrong_answers_get_a_specific_diagnosis(check, answer, diagnosis):
    verdict = check(*answer)
    assert not verdict.passed
    assert diagnosis in verdict.message, verdict.message


def test_midpoint_reports_our_own_measured_order():
    """It used to measure "ours" with the student's step, so a step that zeroed its input read "ours 0.000"."""
    verdict = ch01.check_midpoint(midpoint, 1.0)
    measured = float(verdict.message.split("we measure ")[1].split(")")[0])
    assert abs(measured - 2.0) < 0.1


def test_messages_for_missing_and_unimplemented_answers():
    def not_implemented(*args):
        raise NotImplementedError

    assert "has no answer yet" in ch01.check_flow_map(None).message
    assert "not implemented yet" in ch01.check_euler_step(not_implemented).message
    assert "raised ZeroDivisionError: boom" in ch01.check_euler_step(raises).message
    assert "takes 2 answer(s)" in ch01.check_midpoint(midpoint).message


def test_verdicts_are_logged_for_the_test_suite(tmp_path, monkeypatch):
    log = tmp_path / "log.jsonl"
    monkeypatch.setenv(LOG_ENV, str(log))
    ch01.check_euler_step(euler)
    ch01.check_euler_step(None)
    lines = log.read_text().splitlines()
    assert len(lines) == 2 and '"passed": true' in lines[0] and '"passed": false' in lines[1]
