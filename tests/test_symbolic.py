"""Chapter 1's identities, verified by SymPy (the same checks the chapter runs)."""

import sympy as sp

from diffbook.foundations import symbolic

t, x, y = sp.symbols("t x y", real=True)
a, b, c, w, m0, s0 = sp.symbols("a b c omega m0 s0", positive=True)


def affine_gaussian():
    m = (m0 + b / a) * sp.exp(a * t) - b / a
    s = s0 * sp.exp(a * t)
    return sp.exp(-((x - m) ** 2) / (2 * s**2)) / sp.sqrt(2 * sp.pi * s**2), [a * x + b]


def spiral_gaussian():
    mx, my, S = m0 * sp.exp(c * t) * sp.cos(w * t), m0 * sp.exp(c * t) * sp.sin(w * t), s0 * sp.exp(c * t)
    p = sp.exp(-((x - mx) ** 2 + (y - my) ** 2) / (2 * S**2)) / (2 * sp.pi * S**2)
    return p, [c * x - w * y, w * x + c * y]


def test_thm_continuity_equation():
    p, u = affine_gaussian()
    assert symbolic.continuity_residual(p, u, t, [x]) == 0
    p, u = spiral_gaussian()
    assert symbolic.continuity_residual(p, u, t, [x, y]) == 0


def test_thm_instantaneous_change_of_variables():
    p, u = affine_gaussian()
    assert symbolic.log_density_rate_residual(p, u, t, [x]) == 0
    p, u = spiral_gaussian()
    assert symbolic.log_density_rate_residual(p, u, t, [x, y]) == 0


def test_residuals_detect_a_wrong_field():
    p, _ = spiral_gaussian()
    assert symbolic.continuity_residual(p, [-w * y, w * x + c * y], t, [x, y]) != 0
    assert symbolic.log_density_rate_residual(p, [c * x - w * y, w * x], t, [x, y]) != 0


def test_divergence_of_the_limit_cycle_field():
    r2 = x**2 + y**2
    assert sp.simplify(symbolic.divergence([-w * y + a * x * (1 - r2), w * x + a * y * (1 - r2)], [x, y]) - a * (2 - 4 * r2)) == 0
