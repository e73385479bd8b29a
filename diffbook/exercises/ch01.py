"""Checkers for the exercises of Chapter 1 (ODEs, flows and the continuity equation)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from diffbook.foundations.convergence import fit_order, global_errors
from diffbook.exercises.answers import as_expr, as_number, as_tensor, close, diagnose
from diffbook.exercises.core import Fail, call, checker
from diffbook.foundations.flows import limit_cycle_field, limit_cycle_flow
from diffbook.ode import euler_step, heun_step

__all__ = [
    "check_euler_step",
    "check_heun_step",
    "check_flow_map",
    "check_divergence",
    "check_log_density",
    "check_midpoint",
]


def _probe() -> tuple[Callable[[Tensor, Tensor], Tensor], Tensor, Tensor, Tensor]:
    """A linear, time-dependent test ODE ``dx/dt = -(1 + t) x`` and a state, time and step to try."""

    def u(t: Tensor, x: Tensor) -> Tensor:
        return -(1.0 + t) * x

    x = torch.tensor([[1.0, -2.0], [0.5, 3.0], [2.0, 0.25]], dtype=torch.float64)
    return u, torch.tensor(0.5, dtype=torch.float64), x, torch.tensor(0.1, dtype=torch.float64)


@checker("1.1", "euler_step")
def check_euler_step(euler: Any) -> str:
    """Exercise 1.1: ``euler_step(u, t, x, h)`` is forward Euler, for positive and negative ``h``."""
    u, t, x, h = _probe()
    expected, expected_back = euler_step(u, t, x, h), euler_step(u, t, x, -h)
    out = as_tensor(call(euler, "euler_step", u, t, x, h), "euler_step", tuple(x.shape))
    mistakes = [
        (x + u(t, x), "off by a factor h on a linear ODE: you added u(t, x) instead of h·u(t, x)."),
        (h * u(t, x), "you returned the increment h·u(t, x); the step must return x plus the increment."),
        (x - h * u(t, x), "wrong sign: you returned x - h·u(t, x); Euler moves along the field, x + h·u(t, x)."),
        (x + h * u(t + h, x), "you evaluated the field at t + h; forward Euler uses the slope at the start, u(t, x)."),
        (x + h * u(torch.zeros_like(t), x), "you evaluated the field at time 0; use the current time t."),
    ]
    message = "on dx/dt = -(1+t)x with t=0.5, h=0.1 your step is off by up to {err}; expected x + h·u(t, x)."
    diagnose(out, expected, mistakes, message)
    back = as_tensor(call(euler, "euler_step", u, t, x, -h), "euler_step", tuple(x.shape))
    if not close(back, expected_back):
        raise Fail("correct for h > 0 but not for h < 0; do not take |h|: a negative step runs time backwards.")
    return "x + h·u(t, x) on a linear test ODE, for positive and negative steps."


@checker("1.2", "heun_step")
def check_heun_step(heun: Any) -> str:
    """Exercise 1.2: ``heun_step(u, t, x, h)`` is Heun's predictor-corrector step."""
    u, t, x, h = _probe()
    expected = heun_step(u, t, x, h)
    out = as_tensor(call(heun, "heun_step", u, t, x, h), "heun_step", tuple(x.shape))
    k1 = u(t, x)
    k2 = u(t + h, x + h * k1)
    mistakes = [
        (x + h * k1, "this is Euler's step; Heun also evaluates the field at the predicted point and averages."),
        (x + h * k2, "you used only the corrector slope k2; Heun averages k1 and k2."),
        (x + h * (k1 + k2), "you forgot to halve: the step is x + (h/2)(k1 + k2)."),
        (x + h * u(t + h / 2, x + h / 2 * k1), "that is the explicit midpoint method (also order 2), not Heun's trapezoid."),
        (x + 0.5 * h * (k1 + u(t, x + h * k1)), "evaluate the corrector at time t + h, not t."),
    ]
    diagnose(out, expected, mistakes, "on dx/dt = -(1+t)x your step is off by up to {err}; expected x + (h/2)(k1 + k2).")
    return "predictor u(t, x), corrector u(t + h, x + h·k1), and their average: Heun's second-order step."


@checker("1.3", "flow_map")
def check_flow_map(expr: Any) -> str:
    """Exercise 1.3: a SymPy flow map ``ψ_t(x0)`` of ``dx/dt = 1 - x`` (checked by substitution)."""
    import sympy as sp

    t, x0 = sp.symbols("t x0", real=True)
    psi = as_expr(expr, "flow_map", {"t": t, "x0": x0})
    residual = sp.simplify(sp.diff(psi, t) - (1 - psi))
    start = sp.simplify(psi.subs(t, 0) - x0)
    if residual != 0 and start != 0:
        raise Fail("it neither solves dx/dt = 1 - x nor starts at x0; try x(t) = 1 + c·e^{-t} and fix c.")
    if residual != 0:
        raise Fail(f"ψ_0(x0) = x0 holds, but d/dt ψ - (1 - ψ) = {residual}, not 0.")
    if start != 0:
        raise Fail(f"it solves the ODE but ψ_0(x0) - x0 = {start}; the flow map must start at x0.")
    return "ψ_t(x0) = 1 + (x0 - 1)e^{-t}: solves the ODE and starts at x0. Every point relaxes to the fixed point 1."


@checker("1.4", "div_u")
def check_divergence(expr: Any) -> str:
    """Exercise 1.4: the divergence of the limit-cycle field, as a SymPy expression in ``x, y``."""
    import sympy as sp

    x, y = sp.symbols("x y", real=True)
    div = as_expr(expr, "div_u", {"x": x, "y": y})
    truth = 2 - 4 * (x**2 + y**2)
    if sp.simplify(div - truth) == 0:
        return "∇·u = 2 - 4(x² + y²): area grows inside r² = 1/2 and shrinks outside, so mass piles onto the circle."
    if sp.simplify(div - (2 - 2 * (x**2 + y**2))) == 0:
        raise Fail("you dropped a product-rule term: ∂/∂x [x(1 - x² - y²)] = 1 - 3x² - y², not 1 - x² - y².")
    if sp.simplify(div + truth) == 0:
        raise Fail("sign error: check ∂/∂x of the first component and ∂/∂y of the second.")
    if sp.simplify(div - (truth + 2)) == 0 or sp.simplify(div - (truth - 2)) == 0:
        raise Fail("off by a constant: the rotation part (-y, x) contributes 0 to the divergence.")
    raise Fail(f"∇·u should be ∂u₁/∂x + ∂u₂/∂y; at (x, y) = (1, 0) yours gives {div.subs({x: 1, y: 0})}, expected -2.")


@checker("1.5", "log_p")
def check_log_density(log_p: Any) -> str:
    """Exercise 1.5: ``log_p(x, t, a)`` of N(0, 1) carried by ``dx/dt = a x``."""
    x = torch.linspace(-3.0, 3.0, 13, dtype=torch.float64)
    for t, a in [(0.7, 0.5), (1.0, -0.8), (0.0, 2.0)]:
        t_, a_ = torch.tensor(t, dtype=torch.float64), torch.tensor(a, dtype=torch.float64)
        out = as_tensor(call(log_p, "log_p", x, t_, a_), "log_p", tuple(x.shape))
        var = torch.exp(2 * a_ * t_)
        truth = -0.5 * x**2 / var - 0.5 * torch.log(2 * torch.pi * var)
        if close(out, truth):
            continue
        shift = (out - truth).mean()
        if torch.allclose(out - truth, shift.expand_as(out), atol=1e-5):
            if abs(float(shift) - a * t) < 1e-5:
                raise Fail(
                    "you pulled x back to x0 = x e^{-at} but forgot the volume change: "
                    "subtract ∫ div u dt = a·t (log p_t(x) = log p_0(x e^{-at}) - a t)."
                )
            if abs(float(shift) - 2 * a * t) < 1e-5 or abs(float(shift) + a * t) < 1e-5:
                raise Fail("the shape is right but the volume term is off: it should be exactly -a·t.")
            raise Fail(f"right shape, but off by the constant {float(shift):.4g} at t={t}, a={a}; check normalisation.")
        raise Fail(f"at t={t}, a={a} your log-density is off by up to {float((out - truth).abs().max()):.3g}.")
    return "log p_t(x) = log N(x; 0, e^{2at}): the change of variables, exactly, for several t and a."


def _reference_midpoint(u: Callable[[Tensor, Tensor], Tensor], t: Tensor, x: Tensor, h: Tensor) -> Tensor:
    return x + h * u(t + h / 2, x + h / 2 * u(t, x))


@checker("1.6", "midpoint_step", "measured_order")
def check_midpoint(midpoint: Any, measured: Any) -> str:
    """Exercise 1.6: the explicit midpoint step, and its measured order (about 2)."""
    u, t, x, h = _probe()
    expected = _reference_midpoint(u, t, x, h)
    out = as_tensor(call(midpoint, "midpoint_step", u, t, x, h), "midpoint_step", tuple(x.shape))
    mistakes = [
        (euler_step(u, t, x, h), "`midpoint_step` is Euler's step; take a half Euler step first, then use the slope there."),
        (heun_step(u, t, x, h), "`midpoint_step` is Heun's step; the midpoint method uses one slope, at t + h/2."),
    ]
    diagnose(out, expected, mistakes, "`midpoint_step` is off by up to {err}; it should be x + h·u(t + h/2, x + (h/2)·u(t, x)).")
    slope = as_number(measured, "measured_order")
    # our own measurement, with our own midpoint step: never the student's function
    field = limit_cycle_field()
    x0 = torch.tensor([[0.6, 0.0], [0.2, 0.3], [-0.4, 0.9]], dtype=torch.float64)
    hs, errs = global_errors(_reference_midpoint, field, x0, 0.0, 1.5, lambda z: limit_cycle_flow(z, 1.5), [16, 32, 64, 128])
    ours = fit_order(hs, errs)
    if abs(slope - 2.0) > 0.25:
        raise Fail(
            f"your step is right, but your measured order is {slope:.3g} and it should be near 2 "
            f"(we measure {ours:.3f}). Use float64, several halvings of h, and a log-log slope of error against h."
        )
    return f"midpoint step correct, measured order {slope:.3f} (ours {ours:.3f}): second order, like Heun."
