"""Checkers for the exercises of Chapter 3 (forward processes: VP, VE and sub-VP)."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from diffbook import sde
from diffbook.foundations import forward
from diffbook import schedules as S
from diffbook.foundations.convergence import fit_order
from diffbook.exercises.answers import as_expr, as_number, as_tensor, as_tuple, diagnose, show_value
from diffbook.exercises.core import Fail, call, checker

__all__ = [
    "check_vp_alpha",
    "check_subvp_diffusion",
    "check_drift_and_diffusion",
    "check_ddpm_marginal",
    "check_ddpm_convergence",
    "check_visible_side",
]

f64 = torch.float64


def _symbols() -> tuple[Any, Any, Any]:
    import sympy as sp

    return sp.symbols("t beta_min beta_max", positive=True)


def _same(expr: Any, truth: Any, syms: tuple[Any, ...]) -> bool:
    """Equal as functions: compared at a few points with generic values (robust where ``simplify`` is slow)."""
    import sympy as sp

    points = [(0.3, 0.1, 20.0), (0.7, 0.5, 3.0), (1.3, 0.05, 7.5), (0.05, 2.0, 2.5)]
    for values in points:
        sub = dict(zip(syms, values))
        a, b = complex(sp.N(expr.subs(sub))), complex(sp.N(truth.subs(sub)))
        if not (math.isfinite(a.real) and abs(a - b) <= 1e-9 * max(1.0, abs(b))):
            return False
    return True


@checker("3.1", "alpha_t")
def check_vp_alpha(expr: Any) -> str:
    """Exercise 3.1: VP's signal coefficient ``α_t`` for ``β(t) = β_min + t (β_max - β_min)``, as a SymPy expression."""
    import sympy as sp

    t, b0, b1 = syms = _symbols()
    alpha = as_expr(expr, "alpha_t", {"t": t, "beta_min": b0, "beta_max": b1})
    B = b0 * t + (b1 - b0) * t**2 / 2
    if _same(alpha, sp.exp(-B / 2), syms):
        return "α_t = exp(-½(β_min t + ½(β_max - β_min) t²)): the solution of dm/dt = -½β(t) m with m(0) = 1."
    mistakes = [
        (sp.exp(-B), "that is α_t² (DDPM's ᾱ): the mean solves dm/dt = -½β m, so α_t = exp(-½∫β), with the ½."),
        (sp.exp(-(b0 * t + (b1 - b0) * t**2) / 2), "you multiplied β(t) by t (or lost the ½ of the t² term); integrate β correctly: "
                                                  "∫_0^t (β_min + (β_max - β_min)s) ds = β_min t + ½(β_max - β_min)t²."),
        (sp.exp(-(b0 + (b1 - b0) * t) / 2), "you used β(t) itself instead of its integral ∫_0^t β."),
        (sp.exp(B / 2), "sign error: the drift -½β x shrinks the mean, so α_t decreases."),
        (sp.sqrt(1 - sp.exp(-B)), "that is σ_t, the noise coefficient; α_t is the signal coefficient exp(-½∫β)."),
    ]
    for wrong, message in mistakes:
        if _same(alpha, wrong, syms):
            raise Fail(message)
    at = alpha.subs({t: sp.Rational(1, 2), b0: sp.Rational(1, 10), b1: 20})
    raise Fail(f"at t = 1/2, β_min = 0.1, β_max = 20 yours gives {show_value(at, 6)}, expected {math.exp(-0.5 * (0.05 + 2.4875)):.6g}.")


@checker("3.2", "g2_subvp")
def check_subvp_diffusion(expr: Any) -> str:
    """Exercise 3.2: sub-VP's ``g(t)²`` from the general rule, as a SymPy expression in ``t, beta_min, beta_max``."""
    import sympy as sp

    t, b0, b1 = syms = _symbols()
    g2 = as_expr(expr, "g2_subvp", {"t": t, "beta_min": b0, "beta_max": b1})
    beta = b0 + (b1 - b0) * t
    B = b0 * t + (b1 - b0) * t**2 / 2
    e = sp.exp(-B)  # α²
    if _same(g2, beta * (1 - e**2), syms):
        return "g² = β(t)(1 - e^{-2∫β}) = β(1 - α⁴): below VP's β, and the same as Song et al.'s sub-VP SDE."
    mistakes = [
        (beta, "that is VP's g² = β(t). For sub-VP, σ_t = 1 - α_t² (not sqrt(1 - α_t²)): apply g² = dσ²/dt - 2fσ² with σ² = (1 - α²)²."),
        (2 * beta * e * (1 - e), "you kept only dσ²/dt; the rule subtracts 2fσ² = -β(1 - α²)², i.e. adds β(1 - α²)²."),
        (2 * beta * e * (1 - e) - beta * (1 - e) ** 2, "sign error: g² = dσ²/dt - 2fσ², and with f = -β/2 the second term is +β σ²."),
        (beta * (1 - e), "close: the factor is 1 - α⁴ = 1 - e^{-2∫β}, not 1 - α² = 1 - e^{-∫β}."),
        (beta * e * (1 - e), "you differentiated σ instead of σ² somewhere: dσ²/dt = 2σ dσ/dt with σ = 1 - α²."),
    ]
    for wrong, message in mistakes:
        if _same(g2, wrong, syms):
            raise Fail(message)
    raise Fail("not the diffusion of sub-VP. Use f = d log α/dt = -β/2, σ² = (1 - e^{-∫β})², and g² = dσ²/dt - 2fσ².")


def _rule_cases() -> list[tuple[str, Any, Tensor]]:
    t = torch.linspace(0.1, 0.9, 9, dtype=f64)
    return [("VPLinear", S.VPLinear(), t), ("SubVP", S.SubVP(), t), ("VE", S.VE(), t), ("FlowLinear", S.FlowLinear(), t)]


@checker("3.3", "drift_and_diffusion")
def check_drift_and_diffusion(fn: Any) -> str:
    """Exercise 3.3: ``drift_and_diffusion(alpha, sigma, t) -> (f, g2)`` implements the general rule."""
    for name, sch, t in _rule_cases():
        out = as_tuple(call(fn, "drift_and_diffusion", sch.alpha, sch.sigma, t), "drift_and_diffusion", 2, "a pair (f, g2)")
        f = as_tensor(out[0], "f", tuple(t.shape))
        g2 = as_tensor(out[1], "g2", tuple(t.shape))
        alpha, dalpha = S.time_derivative(sch.alpha, t)
        sigma, dsigma = S.time_derivative(sch.sigma, t)
        f_true = sde.drift_coefficient(sch, t)
        diagnose(
            f, f_true,
            [(dalpha, f"on {name}: f is d log α/dt = α'/α, not dα/dt."),
             (-dalpha / alpha, f"on {name}: sign error in f; f = +α'/α (negative when α decreases)."),
             (alpha, f"on {name}: you returned α itself for f; f = α'/α.")],
            f"on {name} your f is off by up to {{err}}; expected f = α'/α.",
        )
        g2_true = sde.diffusion_squared(sch, t)
        diagnose(
            g2, g2_true,
            [(2 * sigma * dsigma, f"on {name}: you returned dσ²/dt only; subtract 2 f σ²."),
             (2 * sigma * dsigma + 2 * f_true * sigma**2, f"on {name}: sign error: g² = dσ²/dt - 2fσ²."),
             (dsigma**2, f"on {name}: g² is not (dσ/dt)²; it is dσ²/dt - 2fσ²."),
             (2 * sigma * dsigma - f_true * sigma**2, f"on {name}: the drift term is 2fσ² (the variance ODE is dv/dt = 2fv + g²)."),
             (dsigma - 2 * f_true * sigma, f"on {name}: use σ², not σ: g² = dσ²/dt - 2fσ²."),
             (g2_true.sqrt(), f"on {name}: you returned g, not g²."),
             ],
            f"on {name} your g² is off by up to {{err}}; expected g² = dσ²/dt - 2fσ².",
        )
    return "f = α'/α and g² = dσ²/dt - 2fσ², right for VP, sub-VP, VE and the linear flow path."


@checker("3.4", "ddpm_marginal")
def check_ddpm_marginal(fn: Any) -> str:
    """Exercise 3.4: ``ddpm_marginal(betas) -> (sqrt(ᾱ), sqrt(1 - ᾱ))`` for every step of a β table."""
    betas = S.linear_betas(40, 1e-3, 0.04)  # Σβ < 1, so the tempting 1 - Σβ stays positive
    out = as_tuple(call(fn, "ddpm_marginal", betas), "ddpm_marginal", 2, "a pair (sqrt_abar, sqrt_one_minus_abar)")
    m = as_tensor(out[0], "sqrt_abar", tuple(betas.shape))
    s = as_tensor(out[1], "sqrt_one_minus_abar", tuple(betas.shape))
    abar = torch.cumprod(1 - betas, 0)
    shifted = torch.cat([abar.new_ones(1), abar[:-1]])
    diagnose(
        m, abar.sqrt(),
        [(abar, "you returned ᾱ; the signal coefficient is its square root, sqrt(ᾱ_i)."),
         ((1 - torch.cumsum(betas, 0)).clamp_min(0).sqrt(), "ᾱ is a product, Π(1 - β_j), not 1 - Σβ_j (they agree only to first order)."),
         (shifted.sqrt(), "off by one step: ᾱ_i includes step i itself, ᾱ_i = Π_{j ≤ i}(1 - β_j)."),
         (torch.cumprod(torch.sqrt(betas), 0), "the signal is multiplied by sqrt(1 - β) each step, not sqrt(β)."),
         ((1 - abar).sqrt(), "you swapped the two outputs: the first is the signal sqrt(ᾱ), the second the noise sqrt(1 - ᾱ).")],
        "sqrt_abar is off by up to {err}; expected sqrt(Π_{j ≤ i}(1 - β_j)).",
    )
    diagnose(
        s, (1 - abar).sqrt(),
        [(1 - abar, "you returned 1 - ᾱ; the noise coefficient is sqrt(1 - ᾱ)."),
         (torch.sqrt(torch.cumsum(betas, 0)), "the noise variance is 1 - ᾱ_i, not Σβ_j (each step also shrinks the noise already there)."),
         (1 - abar.sqrt(), "the noise coefficient is sqrt(1 - ᾱ), not 1 - sqrt(ᾱ).")],
        "sqrt_one_minus_abar is off by up to {err}; expected sqrt(1 - ᾱ_i).",
    )
    return "x_i | x_0 ~ N(sqrt(ᾱ_i) x_0, (1 - ᾱ_i) I): DDPM's closed form, at every step."


def _convergence_reference() -> tuple[float, float, float, float, float]:
    """Our measurement: rate, the max error at N = 1000, and the values typical mistakes give."""
    vp = S.VPLinear()
    errs, ns = [], [125, 250, 500, 1000, 2000]
    for n in ns:
        ts = torch.linspace(0.0, 1.0, n + 1, dtype=f64)
        m, _ = forward.chain_moments(*forward.ddpm_coefficients(forward.chain_betas(vp, ts, "euler")))
        errs.append(float((m - vp.alpha(ts)).abs().max()))
        if n == 1000:
            terminal = abs(float(m[-1] - vp.alpha(ts[-1])))
            squared = float((m**2 - vp.alpha(ts) ** 2).abs().max())
            mt, _ = forward.chain_moments(*forward.ddpm_coefficients(S.linear_betas(1000)))
            table = float((mt - vp.alpha(ts)).abs().max())
    return fit_order([1 / n for n in ns], errs), errs[ns.index(1000)], terminal, squared, table


@checker("3.5", "measured_order", "max_error_1000")
def check_ddpm_convergence(order: Any, error: Any) -> str:
    """Exercise 3.5: the measured rate (about 1) and the largest error at N = 1000 of the Euler-rule DDPM chain."""
    p = as_number(order, "measured_order")
    e = as_number(error, "max_error_1000")
    ours, err1000, terminal, squared, table = _convergence_reference()

    def near(x: float, y: float, rel: float = 1e-3) -> bool:
        return abs(x - y) <= rel * abs(y)

    if e < 1e-10:
        raise Fail("your error is 0: that is the exact rule β_i = 1 - α_i²/α_{i-1}²; use the Euler rule β_i = β(t_{i-1})/N.")
    if not near(e, err1000, 0.01):
        if near(e, terminal):
            raise Fail("you measured the error at t = 1 only; take the largest |sqrt(ᾱ_i) - α(t_i)| over all grid times.")
        if near(e, squared):
            raise Fail("you compared ᾱ_i with α(t_i)²; compare their square roots, sqrt(ᾱ_i) with α(t_i).")
        if near(e, table):
            raise Fail("that is DDPM's linear_betas(1000) table (β from β_min/N at the first to β_max/N at the last step); "
                       "use the Euler rule β_i = β(t_{i-1})/N with t_{i-1} = (i-1)/N.")
        raise Fail(f"max_error_1000 = {e:.4g}, but we measure {err1000:.4g} for β_i = β((i-1)/N)/N, N = 1000.")
    if abs(p + 1) < 0.2:
        raise Fail("your slope is about -1: you fitted the error against N; the order is the slope against h = 1/N, +1.")
    if abs(p - 1) > 0.15:
        raise Fail(f"your measured order is {p:.3g}; we measure {ours:.3f}. Fit log(error) against log(1/N) over several N.")
    return f"error {e:.3g} at N = 1000 and order {p:.3f} (ours {ours:.3f}): DDPM's chain converges to the VP SDE at rate 1/N."


@checker("3.6", "side")
def check_visible_side(side: Any) -> str:
    """Exercise 3.6: the smallest image side at which the mean brightness of ``x_1`` has SNR ≥ 1 under VP-linear."""
    p = as_number(side, "side")
    vp = S.VPLinear()
    a, sig = float(vp.alpha(torch.tensor(1.0, dtype=f64))), float(vp.sigma(torch.tensor(1.0, dtype=f64)))
    s = 0.5
    truth = sig / (a * s)
    tol = 1e-6 * truth  # a side typed with five decimals still counts as the exact value
    if math.floor(truth) - 1e-9 <= p < truth - tol:
        raise Fail(f"at P = {p:g} the SNR is {(a * s * p / sig) ** 2:.3f} < 1: round up, to the smallest side with SNR ≥ 1.")
    if truth - tol <= p <= math.ceil(truth) + 1e-9:
        return f"P = σ_1/(α_1 s) = {truth:.1f}, so a {math.ceil(truth)} × {math.ceil(truth)} image: larger images keep a visible mean brightness at t = 1."
    a_ddpm = float(torch.cumprod(1 - S.linear_betas(1000), 0)[-1].sqrt())
    mistakes = [
        (truth**2, "that is the number of pixels d = P²; the exercise asks for the side P = sqrt(d)."),
        (sig / (a * s * s), "the signal of the mean is α_1 m(x_0), with standard deviation α_1 s, not α_1 s²."),
        (sig / a, "you forgot the spread s = 0.5 of the mean brightness: SNR = α² s² P² / σ²."),
        (sig / (a * a * s), "use α_1, not α_1² (= ᾱ): the signal coefficient multiplies x_0 once."),
        (sig**2 / (a * a * s * s), "that is P² = d; take the square root to get the side."),
        (math.sqrt(1 - a_ddpm**2) / (a_ddpm * s), "you used DDPM's table (sqrt(ᾱ_1000) = 0.00635); the exercise uses VP-linear's α(1)."),
    ]
    for wrong, message in mistakes:
        if abs(p - wrong) <= 1.0 + 1e-3 * wrong:
            raise Fail(message)
    raise Fail(f"side = {p:.4g} is not right; solve α_1² s² P² / σ_1² = 1 for P with α_1 = α(1) of VPLinear.")
