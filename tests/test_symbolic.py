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


RANGES = {t: (0.1, 1.0), x: (-1.0, 1.0), y: (-1.0, 1.0), a: (0.2, 1.0), b: (0.1, 1.0), c: (0.1, 0.5), w: (0.5, 2.0),
          m0: (0.2, 1.0), s0: (0.5, 1.5)}


def test_residuals_detect_a_wrong_field(at_random_points):
    """Catches a residual check that cannot fail: the wrong fields' residuals, relative to p, are O(0.01) or more
    at random points (not merely 'not simplified to 0'), while the true field's residuals vanish there."""
    p, u = spiral_gaussian()
    wrong_c = symbolic.continuity_residual(p, [-w * y, w * x + c * y], t, [x, y])
    wrong_l = symbolic.log_density_rate_residual(p, [c * x - w * y, w * x], t, [x, y])
    assert max(at_random_points(wrong_c, RANGES, scale=p)) > 1e-2
    assert max(at_random_points(wrong_l, RANGES)) > 1e-2
    right = sp.expand(sp.diff(p, t) + sum(sp.diff(p * ui, xi) for ui, xi in zip(u, [x, y])))  # unsimplified, by hand
    assert max(at_random_points(right, RANGES, scale=p)) < 1e-20


def test_divergence_of_the_limit_cycle_field():
    r2 = x**2 + y**2
    assert sp.simplify(symbolic.divergence([-w * y + a * x * (1 - r2), w * x + a * y * (1 - r2)], [x, y]) - a * (2 - 4 * r2)) == 0
