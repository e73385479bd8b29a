"""Chapter 2 (stochastic differential equations): one test per theorem and per misconception, tests of
``diffbook.foundations.brownian``, ``diffbook.foundations.processes`` and ``diffbook.foundations.sde_errors`` (including bad input), and of the
Chapter 2 exercise checkers.

Monte-Carlo tolerances are stated in standard errors (s.e.) of the estimate; every generator is seeded,
so each test is deterministic, and the tolerances leave room for other seeds.
"""

import math

import pytest
import sympy as sp
import torch

from diffbook import schedules, sde
from diffbook.foundations import brownian, processes, sde_errors, symbolic
from diffbook.foundations.convergence import fit_order
from diffbook.exercises import Verdict, ch02

f64 = torch.float64
T = 1.0


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# ------------------------------------------------------------------------------------------------
# Theorems


def test_thm_quadratic_variation():
    """Proposition (moments and quadratic variation): E W_s W_t = min(s, t); Q_N -> T with Var 2T²/N;
    E V_N = sqrt(2NT/π). Tolerance: 5 s.e. for means, 20% for the spread of Q_N."""
    w = brownian.brownian_path(20_000, 100, T, generator=gen(0))
    assert abs(float((w[:, 30] * w[:, 80]).mean()) - 0.3) < 5 * math.sqrt(0.3 * 0.8 + 0.09) / math.sqrt(20_000)
    for n in (10, 1000):
        w = brownian.brownian_path(400, n, T, generator=gen(n))
        q = brownian.quadratic_variation(w)
        v = w.diff(dim=-1).abs().sum(dim=-1)
        assert abs(float(q.mean()) - T) < 5 * math.sqrt(2 / n) / math.sqrt(400)
        assert abs(float(q.std()) / math.sqrt(2 * T**2 / n) - 1) < 0.2
        assert abs(float(v.mean()) / math.sqrt(2 * n * T / math.pi) - 1) < 0.05


def test_thm_ito_isometry():
    """Theorem (Itô isometry): E∫H dW = 0 and E(∫H dW)² = E∫H² dt for adapted H (W, sin W, t), within 4.5 s.e.
    plus the O(h) gap between the discrete and continuous right sides; a look-ahead integrand breaks both."""
    n, m = 256, 40_000
    h = T / n
    w = brownian.brownian_path(m, n, T, generator=gen(1))
    dw = w.diff(dim=-1)
    t_left = torch.arange(n, dtype=f64) * h
    cases = [
        (w[:, :-1], T**2 / 2),
        (torch.sin(w[:, :-1]), T / 2 - (1 - math.exp(-2 * T)) / 4),
        (t_left.expand(m, -1), T**3 / 3),
    ]
    for H, rhs in cases:
        i = brownian.ito_integral(H, dw)
        assert abs(float(i.mean())) < 4.5 * float(i.std()) / math.sqrt(m)
        assert abs(float((i**2).mean()) - rhs) < 4.5 * float((i**2).std()) / math.sqrt(m) + 2 * h
    ahead = brownian.ito_integral(w[:, 1:], dw)
    assert float(ahead.mean()) > 0.9 * T and float((ahead**2).mean()) > 2.5 * T**2 / 2


def test_thm_ito_integral_of_w():
    """Proposition (∫W dW): S_N = (W_T² - Q_N)/2 exactly; RMS(S_N - (W_T² - T)/2) = sqrt(Th/2) and
    RMS(M_N - W_T²/2) = sqrt(Th/4), each within 10%; the trapezoid sum is W_T²/2 to round-off."""
    w = brownian.brownian_path(20_000, 512, T, generator=gen(2))
    wt = w[:, -1]
    assert torch.allclose(brownian.ito_sum(w), 0.5 * (wt**2 - brownian.quadratic_variation(w)), atol=1e-10)
    assert torch.allclose(brownian.trapezoid_sum(w), 0.5 * wt**2, atol=1e-10)
    for n in (8, 64, 256):
        h = T / n
        rms_ito = float((brownian.ito_sum(w[:, :: 512 // n]) - 0.5 * (wt**2 - T)).pow(2).mean().sqrt())
        rms_mid = float((brownian.midpoint_sum(w[:, :: 512 // (2 * n)]) - 0.5 * wt**2).pow(2).mean().sqrt())
        assert abs(rms_ito / math.sqrt(T * h / 2) - 1) < 0.1
        assert abs(rms_mid / math.sqrt(T * h / 4) - 1) < 0.1


def test_thm_ito_lemma():
    """Theorem (Itô's lemma): SymPy gives d(W⁴) = 6W² dt + 4W³ dW, so E W_t⁴ = 3t² (Monte Carlo within 4.5 s.e.);
    path by path the residual of the integrated formula shrinks like h^½ (slope within 0.1), the chain rule's does not."""
    t, w = sp.symbols("t w", real=True)
    drift, diffusion = processes.ito_lemma(w**4, 0, 1, t, w)
    assert sp.simplify(drift - 6 * w**2) == 0 and sp.simplify(diffusion - 4 * w**3) == 0
    paths = brownian.brownian_path(20_000, 512, T, generator=gen(3))
    sample = paths[:, -1] ** 4
    assert abs(float(sample.mean()) - 3 * T**2) < 4.5 * float(sample.std()) / math.sqrt(20_000)
    levels, res, chain = [16, 64, 256, 512], [], []
    for n in levels:
        wn = paths[:, :: 512 // n]
        lhs = wn[:, -1] ** 4
        stoch = brownian.ito_integral(4 * wn[:, :-1] ** 3, wn.diff(dim=-1))
        corr = 0.5 * (12 * wn[:, :-1] ** 2 * (T / n)).sum(dim=-1)
        res.append(float((lhs - stoch - corr).pow(2).mean().sqrt()))
        chain.append(float((lhs - stoch).pow(2).mean().sqrt()))
    assert abs(fit_order([T / n for n in levels], res) - 0.5) < 0.1
    assert chain[-1] > 0.8 * chain[0] and chain[-1] > 10 * res[-1]


def test_thm_gbm_solution():
    """Corollary (GBM): x0 exp((μ - σ²/2)t + σW) has Itô drift μX and diffusion σX (SymPy, exactly); its mean and
    variance match the formulas (Monte Carlo, 4.5 s.e.); Euler–Maruyama converges to it on the same paths."""
    t, w = sp.symbols("t w", real=True)
    mu, sigma, x0 = sp.symbols("mu sigma x0", positive=True)
    X = x0 * sp.exp((mu - sigma**2 / 2) * t + sigma * w)
    drift, diffusion = processes.ito_lemma(X, 0, 1, t, w)
    assert sp.simplify(drift - mu * X) == 0 and sp.simplify(diffusion - sigma * X) == 0
    xs = processes.gbm_sample(torch.ones(200_000, dtype=f64), 1.0, 0.3, 0.4, generator=gen(4))
    m, v = processes.gbm_mean(1.0, 1.0, 0.3), processes.gbm_variance(1.0, 1.0, 0.3, 0.4)
    assert abs(float(xs.mean() - m)) < 4.5 * math.sqrt(float(v) / 200_000)
    assert abs(float(xs.var() / v) - 1) < 0.03
    dw = brownian.brownian_increments(2000, 256, T, generator=gen(5))
    exact = processes.gbm_solution(1.0, dw.sum(-1), T, 1.5, 1.0)
    ladder = sde_errors.em_error_ladder(lambda t_, x_: 1.5 * x_, lambda t_, x_: x_, 1.0, T, dw, exact, [16, 256])
    assert ladder.strong[1] < 0.35 * ladder.strong[0]


def test_thm_ou_marginals():
    """Theorem (OU): the moment equations from Itô's lemma hold for the closed forms (SymPy); Euler–Maruyama paths
    (h = 0.005) have the predicted mean and variance at all times (5 s.e.) and law (sqrt(n)·KS < 1.95)."""
    t, x, x0 = sp.symbols("t x x0", real=True)
    theta, sigma = sp.symbols("theta sigma", positive=True)
    m = sp.exp(-theta * t) * x0
    v = sigma**2 / (2 * theta) * (1 - sp.exp(-2 * theta * t))
    d1, _ = processes.ito_lemma(x, -theta * x, sigma, t, x)
    d2, _ = processes.ito_lemma(x**2, -theta * x, sigma, t, x)
    assert sp.simplify(sp.diff(m, t) - d1.subs(x, m)) == 0
    assert sp.simplify(sp.diff(v + m**2, t) - d2.subs(x**2, v + m**2)) == 0

    th, sg, n = 1.0, math.sqrt(2.0), 20_000
    ts = torch.linspace(0.0, 2.0, 401, dtype=f64)
    means, variances = [3.0], [0.0]
    snaps = {}

    def record(i, t_i, x_i):
        means.append(float(x_i.mean()))
        variances.append(float(x_i.var()))
        if i in (20, 400):
            snaps[i] = x_i.clone()

    sde.euler_maruyama(lambda t_, x_: -th * x_, lambda t_: torch.tensor(sg, dtype=f64), torch.full((n,), 3.0, dtype=f64),
                       ts, generator=gen(6), callback=record)
    m_ex, v_ex = processes.ou_mean(3.0, ts, th), processes.ou_variance(ts, th, sg)
    z_m = (torch.tensor(means, dtype=f64) - m_ex)[1:] / (v_ex[1:] / n).sqrt()
    z_v = (torch.tensor(variances, dtype=f64) - v_ex)[1:] / (v_ex[1:] * math.sqrt(2 / n))
    assert z_m.abs().max() < 5 and z_v.abs().max() < 5
    for i, xs in snaps.items():
        normal = torch.distributions.Normal(m_ex[i], v_ex[i].sqrt())
        assert float(sde_errors.ks_distance(xs, normal.cdf)) * math.sqrt(n) < 1.95
    # a Gaussian start: the marginal of the theorem, against exact sampling of the start and the transition
    x_start = 1.0 + 0.5 * torch.randn(n, generator=gen(7), dtype=f64)
    x_t = processes.ou_sample(x_start, 0.7, th, sg, generator=gen(8))
    mean, var = processes.ou_marginal(1.0, 0.25, 0.7, th, sg)
    normal = torch.distributions.Normal(mean, var.sqrt())
    assert float(sde_errors.ks_distance(x_t, normal.cdf)) * math.sqrt(n) < 1.95


def test_thm_fokker_planck(at_random_points):
    """Theorem (Fokker–Planck): the OU transition density and the GBM log-normal have residual exactly 0 (SymPy);
    the continuity equation alone, a Brownian-like variance and the 'ordinary calculus' log-normal do not."""
    t, x, x0 = sp.symbols("t x x0", real=True)
    xp = sp.symbols("x", positive=True)
    theta, sigma, mu, y0 = sp.symbols("theta sigma mu y0", positive=True)
    m = sp.exp(-theta * t) * x0
    v = sigma**2 / (2 * theta) * (1 - sp.exp(-2 * theta * t))
    ou = sp.exp(-(x - m) ** 2 / (2 * v)) / sp.sqrt(2 * sp.pi * v)

    def lognormal(log_mean):
        var = sigma**2 * t
        return sp.exp(-(sp.log(xp) - log_mean) ** 2 / (2 * var)) / (xp * sp.sqrt(2 * sp.pi * var))

    assert symbolic.fokker_planck_residual(ou, [-theta * x], sigma, t, [x]) == 0
    gbm = lognormal(sp.log(y0) + (mu - sigma**2 / 2) * t)
    assert symbolic.fokker_planck_residual(gbm, [mu * xp], sigma * xp, t, [xp]) == 0
    # the controls must be nonzero by a margin at random points (relative to the density), not merely
    # unsimplified: a true identity that simplify fails to reduce would pass `!= 0`
    ranges = {t: (0.2, 1.5), x: (-1.0, 1.0), xp: (0.5, 2.0), x0: (-1.0, 1.0), theta: (0.5, 2.0), sigma: (0.3, 1.0),
              mu: (0.1, 1.0), y0: (0.5, 2.0)}
    brownian_like = sp.exp(-(x - m) ** 2 / (2 * sigma**2 * t)) / sp.sqrt(2 * sp.pi * sigma**2 * t)
    wrong = [(ou, -theta * x, 0, x), (brownian_like, -theta * x, sigma, x), (lognormal(sp.log(y0) + mu * t), mu * xp, sigma * xp, xp)]
    for p, drift, noise, xs in wrong:
        assert max(at_random_points(symbolic.fokker_planck_residual(p, [drift], noise, t, [xs]), ranges, scale=p)) > 1e-2
    for p, drift, noise, xs in [(ou, -theta * x, sigma, x), (gbm, mu * xp, sigma * xp, xp)]:  # the true ones, unsimplified
        raw = sp.diff(p, t) + sp.diff(drift * p, xs) - sp.diff(noise**2 * p, xs, 2) / 2
        assert max(at_random_points(raw, ranges, scale=p)) < 1e-20


GBM = (lambda t_, x_: 1.5 * x_, lambda t_, x_: 1.0 * x_)
OU = (lambda t_, x_: -1.0 * x_, lambda t_, x_: math.sqrt(2.0) * torch.ones_like(x_))
STEPS = [8, 16, 32, 64, 128]


def gbm_ladder(seed=10, n_paths=4000):
    dw = brownian.brownian_increments(n_paths, max(STEPS), T, generator=gen(seed))
    exact = processes.gbm_solution(1.0, dw.sum(-1), T, 1.5, 1.0)
    return sde_errors.em_error_ladder(*GBM, 1.0, T, dw, exact, STEPS)


def ou_ladder(seed=11, n_paths=4000):
    dw, di = processes.ou_increments(n_paths, max(STEPS), T, 1.0, generator=gen(seed))
    exact = processes.ou_from_increments(1.0, di, T, 1.0, math.sqrt(2.0))
    return sde_errors.em_error_ladder(*OU, 1.0, T, dw, exact, STEPS, phi=lambda z: z**2)


def test_thm_em_strong_order_multiplicative():
    """Theorem (EM orders), part 1: strong order ½ on GBM, fitted slope within 0.1."""
    ladder = gbm_ladder()
    assert abs(fit_order(ladder.hs, ladder.strong) - 0.5) < 0.1


def test_thm_em_strong_order_additive():
    """Theorem (EM orders), part 2: strong order 1 with additive noise (OU against its exact solution on the
    same path), fitted slope within 0.1."""
    ladder = ou_ladder()
    assert abs(fit_order(ladder.hs, ladder.strong) - 1.0) < 0.1


def test_thm_em_weak_order():
    """Theorem (EM orders), part 3: weak order 1. OU with φ = x² (slope within 0.15); GBM's exact EM moments
    (no sampling, h down to 1/4096) have slope within 0.05 of 1, and the Monte-Carlo estimator agrees with them within 5 s.e."""
    ladder = ou_ladder()
    assert abs(fit_order(ladder.hs, ladder.weak) - 1.0) < 0.15
    fine = [256, 512, 1024, 2048, 4096]  # exact numbers, so we can go far into the asymptotic regime
    hs = [T / n for n in fine]
    exact1 = [abs(processes.gbm_em_moments(1.0, T, n, 1.5, 1.0)[0] - math.exp(1.5)) for n in fine]
    exact2 = [abs(processes.gbm_em_moments(1.0, T, n, 1.5, 1.0)[1] - math.exp(4.0)) for n in fine]
    assert abs(fit_order(hs, exact1) - 1.0) < 0.05 and abs(fit_order(hs, exact2) - 1.0) < 0.05
    bias1 = [abs(processes.gbm_em_moments(1.0, T, n, 1.5, 1.0)[0] - math.exp(1.5)) for n in STEPS]
    g = gbm_ladder(seed=12, n_paths=20_000)
    assert float(((g.weak - torch.tensor(bias1, dtype=f64)) / g.weak_se).abs().max()) < 5


# ------------------------------------------------------------------------------------------------
# Misconceptions


def test_misconception_ito_integral_is_half_w_squared():
    """'∫W dW = W_T²/2': the Itô sums stay T/2 below W_T²/2 on every grid (mean gap within 0.02 of T/2), and
    their mean is 0 while E W_T²/2 = T/2."""
    w = brownian.brownian_path(10_000, 1024, T, generator=gen(13))
    for n in (16, 256, 1024):
        gap = 0.5 * w[:, -1] ** 2 - brownian.ito_sum(w[:, :: 1024 // n])
        assert abs(float(gap.mean()) - T / 2) < 0.02
    assert abs(float(brownian.ito_sum(w).mean())) < 0.03


def test_misconception_em_is_order_one():
    """'Euler–Maruyama is order 1 like Euler': the strong slope on GBM is at least 0.3 away from 1."""
    ladder = gbm_ladder(seed=14)
    assert abs(fit_order(ladder.hs, ladder.strong) - 1.0) > 0.3


def test_misconception_dw_squared_negligible():
    """'(ΔW)² is O(h²) and can be dropped': Σ(ΔW)² stays at T (within 0.03) while the claim predicts T/N."""
    w = brownian.brownian_path(2000, 4096, T, generator=gen(15))
    for n in (16, 256, 4096):
        q = float(brownian.quadratic_variation(w[:, :: 4096 // n]).mean())
        assert abs(q - T) < 0.03 and q > 10 * T / n


# ------------------------------------------------------------------------------------------------
# diffbook.foundations.brownian, diffbook.foundations.processes, diffbook.foundations.sde_errors


def test_brownian_is_reproducible_and_coarsening_is_the_same_path():
    a = brownian.brownian_increments(3, 8, 2.0, generator=gen(20))
    b = brownian.brownian_increments(3, 8, 2.0, generator=gen(20))
    assert torch.equal(a, b) and a.shape == (3, 8) and a.dtype == f64
    w = brownian.path_from_increments(a)
    assert w.shape == (3, 9) and torch.all(w[:, 0] == 0)
    assert torch.allclose(brownian.path_from_increments(brownian.coarsen(a, 4)), w[:, ::4])
    assert torch.allclose(brownian.brownian_path(3, 8, 2.0, generator=gen(20)), w)
    f32 = brownian.brownian_increments(2, 4, 1.0, dtype=torch.float32)
    assert f32.dtype == torch.float32


def test_ou_increments_have_the_isometry_covariance_and_drive_the_exact_solution():
    theta, h = 2.0, 0.25
    dw, di = processes.ou_increments(200_000, 4, 1.0, theta, generator=gen(21))
    cov = torch.cov(torch.stack([dw.flatten(), di.flatten()]))
    expected = torch.tensor([[h, (1 - math.exp(-theta * h)) / theta],
                             [(1 - math.exp(-theta * h)) / theta, (1 - math.exp(-2 * theta * h)) / (2 * theta)]], dtype=f64)
    assert torch.allclose(cov, expected, rtol=0.02, atol=1e-4)
    x = processes.ou_from_increments(1.0, di, 1.0, theta, 0.5, mu=0.3)
    mean = processes.ou_mean(1.0, 1.0, theta, mu=0.3)
    var = processes.ou_variance(1.0, theta, 0.5)
    normal = torch.distributions.Normal(mean, var.sqrt())
    assert float(sde_errors.ks_distance(x, normal.cdf)) * math.sqrt(200_000) < 1.95
    path = processes.ou_from_increments(1.0, di[:5], 1.0, theta, 0.5, keep_path=True)
    assert path.shape == (5, 5) and torch.all(path[0] == 1.0)
    exact_path = processes.ou_exact_path(torch.zeros(4, dtype=f64), torch.tensor([0.0, 0.1, 0.5], dtype=f64), 1.0, 1.0)
    assert exact_path.shape == (3, 4) and torch.all(exact_path[0] == 0)


def test_densities_integrate_to_one():
    x = torch.linspace(-12.0, 12.0, 20_001, dtype=f64)
    dx = float(x[1] - x[0])
    assert float(processes.ou_log_density(x, 2.0, 0.5, 1.0, 1.5, mu=-0.5).exp().sum()) * dx == pytest.approx(1.0, abs=1e-6)
    y = torch.linspace(1e-6, 60.0, 400_001, dtype=f64)
    p = processes.gbm_log_density(y, 1.0, 1.0, 0.5, 0.6).exp()
    assert float(p.sum()) * float(y[1] - y[0]) == pytest.approx(1.0, abs=1e-4)
    assert processes.gbm_log_density(torch.tensor([-1.0, 0.0], dtype=f64), 1.0, 1.0, 0.5, 0.6).eq(float("-inf")).all()


def test_euler_maruyama_increments_matches_sde_module_on_the_same_noise():
    """With additive noise, our EM on given increments and diffbook.sde.euler_maruyama agree when both see the
    same normal draws (sde draws one z per step of shape (n,))."""
    n, steps = 5, 20
    ts = torch.linspace(0.0, 1.0, steps + 1, dtype=f64)
    x0 = torch.linspace(-1.0, 1.0, n, dtype=f64)
    out_sde = sde.euler_maruyama(lambda t, x: -2.0 * x + t, lambda t: 0.7 + t, x0, ts, generator=gen(22))
    g = gen(22)
    z = torch.stack([torch.randn(n, generator=g, dtype=f64) for _ in range(steps)], dim=1)
    dw = z * math.sqrt(1.0 / steps)
    ours = sde_errors.euler_maruyama_increments(lambda t, x: -2.0 * x + t, lambda t, x: (0.7 + t) * torch.ones_like(x), x0, dw, 1.0)
    assert torch.allclose(ours, out_sde, atol=1e-12)
    path = sde_errors.euler_maruyama_increments(lambda t, x: -2.0 * x, lambda t, x: torch.ones_like(x), x0, dw, 1.0, keep_path=True)
    assert path.shape == (steps + 1, n) and torch.equal(path[0], x0)


def test_error_estimators_and_ks():
    a = torch.tensor([1.0, 2.0, 3.0, 4.0], dtype=f64)
    e = torch.tensor([1.5, 1.5, 3.5, 3.5], dtype=f64)
    s, s_se = sde_errors.strong_error(a, e)
    assert float(s) == pytest.approx(0.5) and float(s_se) == pytest.approx(0.0)
    wk, _ = sde_errors.weak_error(a, e)
    assert float(wk) == pytest.approx(0.0)
    wk2, _ = sde_errors.weak_error(a, e, phi=lambda z: z**2)
    assert float(wk2) == pytest.approx(abs((1 + 4 + 9 + 16) - (2.25 * 2 + 12.25 * 2)) / 4)
    z = torch.randn(50_000, generator=gen(23), dtype=f64)
    std = torch.distributions.Normal(0.0, 1.0)
    wide = torch.distributions.Normal(0.0, 1.3)
    assert float(sde_errors.ks_distance(z, std.cdf)) * math.sqrt(50_000) < 1.95
    assert float(sde_errors.ks_distance(z, wide.cdf)) * math.sqrt(50_000) > 10


def test_vp_sde_with_constant_beta_is_the_ou_process():
    vp = schedules.VPLinear(beta_min=2.0, beta_max=2.0)
    t = torch.linspace(0.05, 1.0, 7, dtype=f64)
    assert torch.allclose(vp.alpha(t), processes.ou_mean(1.0, t, 1.0))
    assert torch.allclose(vp.sigma(t) ** 2, processes.ou_variance(t, 1.0, math.sqrt(2.0)))


def test_bad_input_is_named():
    dw = torch.zeros(3, 8, dtype=f64)
    with pytest.raises(ValueError, match="n_paths must be a positive int"):
        brownian.brownian_increments(0, 4, 1.0)
    with pytest.raises(TypeError, match="n_steps must be an int"):  # 2.5 is a wrong type
        brownian.brownian_path(2, 2.5, 1.0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="T must be finite and > 0"):
        brownian.brownian_increments(2, 4, -1.0)
    with pytest.raises(TypeError, match="T must be a number"):
        brownian.brownian_increments(2, 4, "1")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="divisible by factor"):
        brownian.coarsen(dw, 3)
    with pytest.raises(TypeError, match="dw must be a torch.Tensor"):
        brownian.coarsen([[0.0, 1.0]], 1)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="w must be a floating-point tensor"):
        brownian.ito_sum(torch.zeros(3, 4, dtype=torch.long))
    with pytest.raises(ValueError, match="even number"):
        brownian.midpoint_sum(torch.zeros(2, 4, dtype=f64))
    with pytest.raises(ValueError, match="same shape"):
        brownian.ito_integral(torch.zeros(2, 3, dtype=f64), torch.zeros(2, 4, dtype=f64))
    with pytest.raises(ValueError, match="theta must be finite and > 0"):
        processes.ou_variance(1.0, 0.0, 1.0)
    with pytest.raises(ValueError, match="sigma must be finite and >= 0"):
        processes.ou_variance(1.0, 1.0, -1.0)
    with pytest.raises(ValueError, match="t must be > 0"):
        processes.ou_log_density(torch.zeros(3, dtype=f64), 0.0, 0.0, 1.0, 1.0)
    with pytest.raises(ValueError, match="ts must be a strictly increasing"):
        processes.ou_exact_path(torch.zeros(2, dtype=f64), torch.tensor([0.0, 0.5, 0.2], dtype=f64), 1.0, 1.0)
    with pytest.raises(ValueError, match="x0 must be finite and > 0"):
        processes.gbm_log_density(torch.ones(2, dtype=f64), -1.0, 1.0, 0.1, 0.2)
    with pytest.raises(ValueError, match="v0 must be >= 0"):
        processes.ou_marginal(0.0, -1.0, 1.0, 1.0, 1.0)
    with pytest.raises(TypeError, match="drift and diffusion must be functions"):
        sde_errors.euler_maruyama_increments(1.0, GBM[1], 1.0, dw, 1.0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="must divide"):
        sde_errors.em_error_ladder(*GBM, 1.0, 1.0, dw, torch.zeros(3, dtype=f64), [3])
    with pytest.raises(ValueError, match="one value per path"):
        sde_errors.em_error_ladder(*GBM, 1.0, 1.0, dw, torch.zeros(4, dtype=f64), [4])
    with pytest.raises(ValueError, match="approx .* and exact .* must have the same shape"):
        sde_errors.strong_error(torch.zeros(3, dtype=f64), torch.zeros(4, dtype=f64))
    with pytest.raises(TypeError, match="cdf must be a function"):
        sde_errors.ks_distance(torch.zeros(3, dtype=f64), 0.5)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="t must be a SymPy Symbol"):
        processes.ito_lemma(sp.Symbol("x") ** 2, 0, 1, "t", sp.Symbol("x"))


# ------------------------------------------------------------------------------------------------
# Exercise checkers

x, W = sp.symbols("x W", real=True)
theta, sigma, Ts = sp.symbols("theta sigma T", positive=True)


def brownian_path(n_paths, n_steps, T, generator):
    dw = math.sqrt(T / n_steps) * torch.randn(n_paths, n_steps, generator=generator, dtype=f64)
    return torch.cat([torch.zeros(n_paths, 1, dtype=f64), dw.cumsum(1)], dim=1)


def em(f, g, x0, dw, T):
    h = T / dw.shape[1]
    x = x0.clone()
    for i in range(dw.shape[1]):
        t = torch.tensor(i * h, dtype=f64)
        x = x + f(t, x) * h + g(t, x) * dw[:, i]
    return x


def milstein(f, g, dg, x0, dw, T):
    h = T / dw.shape[1]
    x = x0.clone()
    for i in range(dw.shape[1]):
        t = torch.tensor(i * h, dtype=f64)
        d = dw[:, i]
        x = x + f(t, x) * h + g(t, x) * d + 0.5 * g(t, x) * dg(t, x) * (d**2 - h)
    return x


def gaussian(v):
    return sp.exp(-x**2 / (2 * v)) / sp.sqrt(2 * sp.pi * v)


RIGHT = [
    (ch02.check_ito_square, (-2 * theta * x**2 + sigma**2, 2 * sigma * x)),
    (ch02.check_brownian_path, (brownian_path,)),
    (ch02.check_wdw, ((W**2 - Ts) / 2, Ts**2 / 2)),
    (ch02.check_euler_maruyama, (em,)),
    (ch02.check_stationary_density, (gaussian(sigma**2 / (2 * theta)),)),
    (ch02.check_strong_order, (0.51,)),
    (ch02.check_milstein, (milstein, 0.97)),
]


@pytest.mark.parametrize("check,answer", RIGHT)
def test_checkers_accept_right_answers(check, answer):
    verdict = check(*answer)
    assert isinstance(verdict, Verdict) and verdict.passed, verdict.message
    assert str(verdict).startswith("Exercise 2.")


def no_start(n_paths, n_steps, T, generator):
    return brownian_path(n_paths, n_steps, T, generator)[:, 1:]


@pytest.mark.parametrize(
    "check,answer,diagnosis",
    [
        (ch02.check_ito_square, (-2 * theta * x**2, 2 * sigma * x), "ordinary chain rule"),
        (ch02.check_ito_square, (-2 * theta * x**2 + sigma**2 / 2, 2 * sigma * x), "not σ²/2"),
        (ch02.check_ito_square, (-2 * theta * x**2 + sigma**2, sigma * x), "2σx"),
        (ch02.check_brownian_path, (no_start,), "include the starting point"),
        (ch02.check_brownian_path, (lambda n, k, T, g: brownian_path(n, k, T, g) + 1.0,), "start at W_0 = 0"),
        (ch02.check_brownian_path, (lambda n, k, T, g: brownian_path(n, k, T, None),), "pass `generator=generator`"),
        (ch02.check_brownian_path, (lambda n, k, T, g: brownian_path(n, k, T, g) * math.sqrt(T / k),), "not by h"),
        (ch02.check_brownian_path, (lambda n, k, T, g: brownian_path(n, k, T, g) / math.sqrt(T / k),), "variance 1"),
        (ch02.check_wdw, (W**2 / 2, Ts**2 / 2), "ordinary calculus"),
        (ch02.check_wdw, ((W**2 + Ts) / 2, Ts**2 / 2), "right"),
        (ch02.check_wdw, ((W**2 - Ts) / 2, 3 * Ts**2 / 4), "E[(W_T²/2)²]"),
        (ch02.check_euler_maruyama, (lambda f, g, x0, dw, T: em(f, g, x0, dw * math.sqrt(T / dw.shape[1]), T),), "sqrt(h)"),
        (ch02.check_euler_maruyama, (lambda f, g, x0, dw, T: em(lambda t, z: f(t + T / dw.shape[1], z),
                                                                lambda t, z: g(t + T / dw.shape[1], z), x0, dw, T),), "t + h"),
        (ch02.check_euler_maruyama, (lambda f, g, x0, dw, T: em(f, lambda t, z: 0 * z, x0, dw, T),), "noise term is missing"),
        (ch02.check_stationary_density, (gaussian(sigma**2),), "ignores the pull"),
        (ch02.check_stationary_density, (gaussian(sigma**2 / theta),), "factor 2"),
        (ch02.check_stationary_density, (2 * gaussian(sigma**2 / (2 * theta)),), "normalise"),
        (ch02.check_strong_order, (1.0,), "weak order"),
        (ch02.check_strong_order, (0.02,), "different Brownian path"),
        (ch02.check_milstein, (lambda f, g, dg, x0, dw, T: em(f, g, x0, dw, T), 1.0), "this is Euler–Maruyama"),
        (ch02.check_milstein, (milstein, 0.5), "Euler–Maruyama's"),
    ],
)
def test_checkers_diagnose_typical_mistakes(check, answer, diagnosis):
    verdict = check(*answer)
    assert not verdict.passed
    assert diagnosis in verdict.message, verdict.message


def not_implemented(*args):
    raise NotImplementedError


def crashes(*args):
    raise ZeroDivisionError("boom")


@pytest.mark.parametrize("check,answer", RIGHT)
@pytest.mark.parametrize("bad", [None, ..., 42, "not an answer", not_implemented, crashes, lambda *a: "oops", lambda *a: torch.zeros(7)])
def test_checkers_never_raise_on_malformed_answers(check, answer, bad, malformed_verdict):
    malformed_verdict(check(*([bad] * len(answer))), bad)
