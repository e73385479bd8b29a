"""Chapter 3 (forward processes): one test per theorem and per misconception of the chapter, the module
diffbook.foundations.forward (including bad input), and the exercise checkers of diffbook.exercises.ch03."""

import math

import pytest
import sympy as sp
import torch

from diffbook import sde
from diffbook.foundations import forward
from diffbook import schedules as S
from diffbook.foundations.convergence import fit_order
from diffbook.data import load_digits, sample_patches
from diffbook.exercises import Verdict, ch03
from diffbook.toy import GaussianMixture

f64 = torch.float64
ONE = torch.tensor(1.0, dtype=f64)
ALL = {"VPLinear": S.VPLinear(), "VPCosine": S.VPCosine(), "SubVP": S.SubVP(), "VE": S.VE(), "EDM": S.EDM(),
       "FlowLinear": S.FlowLinear()}
T_END = {"VPCosine": 0.95, "FlowLinear": 0.95}

t, u = sp.symbols("t u", nonnegative=True)
b0, b1, s_min, L = sp.symbols("beta_min beta_max sigma_min L", positive=True)
BETA = b0 + t * (b1 - b0)
B = b0 * t + (b1 - b0) * t**2 / 2


@pytest.fixture(scope="module")
def digits():
    x, _ = load_digits(dtype=f64)
    return x.flatten(1)


# ----------------------------------------------------------------------------------------------------
# Theorems


def test_thm_linear_sde_marginals():
    """thm-ch3-linear-marginals: dsolve of the moment ODEs gives the schedules' α and σ² (VP, VE, sub-VP), exactly."""
    m, v = forward.solve_moment_odes(-BETA / 2, BETA, t)
    assert sp.simplify(m - sp.exp(-B / 2)) == 0 and sp.simplify(v - (1 - sp.exp(-B))) == 0
    sig = s_min * sp.exp(L * t)
    m, v = forward.solve_moment_odes(sp.Integer(0), sp.diff(sig**2, t), t, v0=s_min**2)
    assert m == 1 and sp.simplify(v - sig**2) == 0
    _, v = forward.solve_moment_odes(-sp.Rational(1, 2), 1 - sp.exp(-2 * u), u)  # sub-VP, any β, in u = B(t)
    assert sp.simplify(v - (1 - sp.exp(-u)) ** 2) == 0
    # and numerically against the implemented schedules (tolerance: float64 round-off)
    grid = torch.linspace(0.0, 1.0, 11, dtype=f64)
    ref = torch.tensor([(1 - math.exp(-(0.1 * x + 9.95 * x * x))) ** 2 for x in grid.tolist()], dtype=f64)
    assert torch.allclose(S.SubVP().sigma(grid) ** 2, ref, rtol=1e-9, atol=1e-15)


def test_thm_linear_sde_marginals_by_simulation():
    """thm-ch3-linear-marginals: Euler–Maruyama of sub-VP reaches the variance (1 - α²)², not VP's 1 - α² (tol. 0.01)."""
    sub, n = S.SubVP(), 20_000
    ts = torch.linspace(0.0, 0.3, 301, dtype=f64)
    x = forward.run_chain(torch.zeros(n, 4, dtype=f64), *forward.euler_maruyama_coefficients(sub, ts),
                          generator=torch.Generator().manual_seed(0))
    a = float(sub.alpha(ts[-1]))
    assert abs(float(x.var(0).mean()) - (1 - a * a) ** 2) < 0.01


def test_thm_gaussian_path_to_sde():
    """thm-ch3-path-to-sde: the rule's identities symbolically, and the moment ODEs it defines reproduce (α, σ²)
    for every schedule (relative tolerance 1e-6 with RK4)."""
    a, s = sp.Function("alpha", positive=True)(t), sp.Function("sigma", positive=True)(t)
    f = sp.diff(a, t) / a
    g2 = sp.diff(s**2, t) - 2 * f * s**2
    assert sp.simplify(g2 - a**2 * sp.diff((s / a) ** 2, t)) == 0
    assert sp.simplify(sp.diff(s**2, t) - (2 * f * s**2 + g2)) == 0
    alpha = sp.exp(-B / 2)
    for sigma, g2_closed in [(sp.sqrt(1 - alpha**2), BETA), (1 - alpha**2, BETA * (1 - sp.exp(-2 * B)))]:
        rule = sp.diff(sigma**2, t) - 2 * sp.diff(alpha, t) / alpha * sigma**2
        assert sp.simplify(rule - g2_closed) == 0
    for name, sch in ALL.items():
        ts = torch.linspace(0.0, T_END.get(name, 1.0), 201, dtype=f64)
        m, v = forward.integrate_moment_odes(sch, ts)
        alpha_t, sigma_t = sch.alpha(ts), sch.sigma(ts)
        assert float(((m - alpha_t) / alpha_t).abs().max()) < 1e-6, name
        assert float(((v - sigma_t**2) / (alpha_t**2 + sigma_t**2)).abs().max()) < 1e-6, name


def test_thm_gaussian_path_to_sde_needs_nondecreasing_sigma_bar():
    """thm-ch3-path-to-sde, necessity: a path whose σ̄ decreases has g² < 0, and no SDE (nor chain) exists."""

    class Shrinking:
        def alpha(self, t):
            return torch.ones_like(torch.as_tensor(t, dtype=f64))

        def sigma(self, t):
            return 1.0 - 0.5 * torch.as_tensor(t, dtype=f64)

        def t_of_sigma_bar(self, s):
            return 2.0 * (1.0 - s)

    ts = torch.linspace(0.0, 1.0, 11, dtype=f64)
    assert (sde.diffusion_squared(Shrinking(), ts) < 0).all()
    with pytest.raises(ValueError, match="g² < 0"):
        forward.euler_maruyama_coefficients(Shrinking(), ts)
    with pytest.raises(ValueError, match="decreases"):
        forward.exact_coefficients(Shrinking(), ts)


def test_thm_subvp_variance_below_vp():
    """prop-ch3-subvp: σ_VP² - σ_sub² = α²(1 - α²) ≥ 0 (SymPy) and on a grid (max gap 1/4 at α² = 1/2)."""
    a2 = sp.symbols("a2", positive=True)
    assert sp.simplify((1 - a2) - (1 - a2) ** 2 - a2 * (1 - a2)) == 0
    ts = torch.linspace(0.0, 1.0, 2001, dtype=f64)
    gap = S.VPLinear().sigma(ts) ** 2 - S.SubVP().sigma(ts) ** 2
    assert (gap >= -1e-15).all() and abs(float(gap.max()) - 0.25) < 1e-3
    assert torch.allclose(S.SubVP().alpha(ts), S.VPLinear().alpha(ts))
    assert (S.SubVP().sigma(ts) <= S.VPLinear().sigma(ts) + 1e-15).all()


def test_thm_rescaling_to_ve():
    """thm-ch3-rescaling: g²/α² = dσ̄²/dt for every schedule (rel. 1e-8), and VP/α is the VE chain on the matched
    clock, coefficient by coefficient and sample by sample (1e-9)."""
    tt = torch.linspace(0.02, 0.9, 30, dtype=f64)
    for name, sch in ALL.items():
        _, dsb2 = S.time_derivative(lambda z, s=sch: S.sigma_bar(s, z) ** 2, tt)
        lhs = sde.diffusion_squared(sch, tt) / sch.alpha(tt) ** 2
        assert float(((lhs - dsb2) / dsb2).abs().max()) < 1e-8, name
    vp, ve = S.VPLinear(), S.VE(sigma_max=100.0)  # σ̄_VP(0.9) ≈ 58.6 > VE's default σ_max = 50: keep t' ≤ 1
    t_vp = torch.linspace(float(vp.t_of_sigma_bar(torch.tensor(0.01, dtype=f64))), 0.9, 31, dtype=f64)
    t_ve = ve.t_of_sigma_bar(S.sigma_bar(vp, t_vp))
    (a_vp, b_vp), (a_ve, b_ve) = forward.exact_coefficients(vp, t_vp), forward.exact_coefficients(ve, t_ve)
    al = vp.alpha(t_vp)
    assert torch.allclose(a_vp * al[:-1] / al[1:], a_ve, atol=1e-12)
    assert torch.allclose(b_vp / al[1:], b_ve, rtol=1e-9)
    x0 = torch.randn(50, 3, generator=torch.Generator().manual_seed(0), dtype=f64)
    g1, g2 = torch.Generator().manual_seed(1), torch.Generator().manual_seed(1)
    start_vp = al[0] * x0 + vp.sigma(t_vp[0]) * torch.randn(x0.shape, generator=g1, dtype=f64)
    start_ve = x0 + ve.sigma(t_ve[0]) * torch.randn(x0.shape, generator=g2, dtype=f64)
    p_vp = forward.run_chain(start_vp, a_vp, b_vp, generator=g1, keep_path=True) / al[:, None, None]
    p_ve = forward.run_chain(start_ve, a_ve, b_ve, generator=g2, keep_path=True)
    assert float((p_vp - p_ve).abs().max()) < 1e-9


def test_thm_ddpm_closed_form():
    """prop-ch3-ddpm-closed-form: chain_moments gives (sqrt(ᾱ), 1 - ᾱ) exactly, and simulated chains have these
    moments (tolerance: 5 standard errors)."""
    betas = S.linear_betas(30, 2e-3, 0.3)
    a, b = forward.ddpm_coefficients(betas)
    m, v = forward.chain_moments(a, b)
    abar = torch.cumprod(1 - betas, 0)
    assert torch.allclose(m[1:], abar.sqrt(), rtol=1e-12) and torch.allclose(v[1:], 1 - abar, rtol=1e-12)
    assert torch.allclose(m**2 + v, torch.ones_like(v), atol=1e-14)  # exactly variance preserving
    n = 40_000
    x0 = torch.tensor([[1.5, -0.5, 0.0]], dtype=f64)
    x = forward.run_chain(x0.expand(n, -1).clone(), a, b, generator=torch.Generator().manual_seed(3))
    assert float((x.mean(0) - m[-1] * x0[0]).abs().max()) < 5 * math.sqrt(float(v[-1]) / n)
    assert float((x.var(0) - v[-1]).abs().max()) < 5 * float(v[-1]) * math.sqrt(2 / n)


def test_thm_ddpm_first_order():
    """thm-ch3-ddpm-first-order: DDPM (Euler rule), Euler–Maruyama and DDPM's linear table converge at rate 1
    (slopes within 0.1), the proven bound C h holds, and the exact rule has no error (1e-12)."""
    vp = S.VPLinear()
    ns = [100, 200, 400, 800, 1600]
    errs = {"ddpm": [], "em": [], "table": []}
    C = vp.beta_max**2 + 0.25 * (vp.beta_max - vp.beta_min)
    for n in ns:
        ts = torch.linspace(0.0, 1.0, n + 1, dtype=f64)
        alpha = vp.alpha(ts)
        for key, (a, b) in {
            "ddpm": forward.ddpm_coefficients(forward.chain_betas(vp, ts, "euler")),
            "em": forward.euler_maruyama_coefficients(vp, ts),
            "table": forward.ddpm_coefficients(S.linear_betas(n, 0.1 / n, 20.0 / n)),
        }.items():
            m, _ = forward.chain_moments(a, b)
            errs[key].append(float((m - alpha).abs().max()))
        assert errs["ddpm"][-1] <= C / n
        m, v = forward.chain_moments(*forward.ddpm_coefficients(forward.chain_betas(vp, ts, "exact")))
        assert float((m - alpha).abs().max()) < 1e-12 and float((v - vp.sigma(ts) ** 2).abs().max()) < 1e-12
    for key, e in errs.items():
        assert abs(fit_order([1 / n for n in ns], e) - 1.0) < 0.1, (key, e)
    # one DDPM step and one EM step: the drift coefficients differ by at most β_max² h² / 2
    ts = torch.linspace(0.0, 1.0, 101, dtype=f64)
    a_ddpm, b_ddpm = forward.ddpm_coefficients(forward.chain_betas(vp, ts, "euler"))
    a_em, b_em = forward.euler_maruyama_coefficients(vp, ts)
    assert torch.allclose(b_ddpm, b_em, rtol=1e-12) and float((a_ddpm - a_em).abs().max()) <= 0.5 * (20.0 / 100) ** 2


def test_thm_terminal_kl_bounds():
    """prop-ch3-kl-bounds: on data with 4 atoms in 1-D the bounds bracket KL(q_1 || N(0, 1)) computed by quadrature
    (1e-9 relative), for several (α, σ)."""
    x0 = torch.tensor([[-1.5], [-0.2], [0.4], [2.0]], dtype=f64)
    z = torch.linspace(-40, 40, 400_001, dtype=f64)[:, None]
    for a, s in [(0.9, math.sqrt(1 - 0.81)), (0.3, math.sqrt(1 - 0.09)), (0.05, 1.2), (0.0066, math.sqrt(1 - 0.0066**2))]:
        q = GaussianMixture.isotropic(torch.full((4,), 0.25, dtype=f64), a * x0, s)
        logq = q.log_prob(z)
        logn = -0.5 * z[:, 0] ** 2 - 0.5 * math.log(2 * math.pi)
        kl = float(torch.trapezoid(logq.exp() * (logq - logn), z[:, 0]))
        lo, hi = forward.terminal_kl_bounds(x0, a, s)
        assert float(lo) <= kl * (1 + 1e-9) + 1e-15 and kl <= float(hi) * (1 + 1e-9) + 1e-15, (a, s, float(lo), kl, float(hi))
    # Gaussian data: the lower bound is the exact KL
    lo, _ = forward.terminal_kl_bounds(torch.tensor([[-1.0], [1.0]], dtype=f64), 0.5, 0.5)
    assert math.isclose(float(lo), float(forward.gaussian_kl_to_standard(torch.zeros(1, dtype=f64),
                                                                         torch.tensor([[0.5]], dtype=f64))), rel_tol=1e-12)


# ----------------------------------------------------------------------------------------------------
# Misconceptions


def test_misconception_forward_process_ends_at_standard_normal(digits):
    """The wrong claim "x_1 ~ N(0, I)" fails: α_1 > 0.006 (VP and DDPM), KL > 5e-4 nats on digits, and the mean
    brightness of 64×64 patches at t = 1 correlates with that of x_0 (> 4 standard errors); the zero-terminal-SNR
    table ends exactly at N(0, I)."""
    a1, s1 = S.VPLinear().alpha(ONE), S.VPLinear().sigma(ONE)
    ddpm = S.linear_betas(1000)
    m, v = forward.chain_moments(*forward.ddpm_coefficients(ddpm))
    assert float(a1) > 6e-3 and float(m[-1]) > 6e-3
    lo, hi = forward.terminal_kl_bounds(digits, a1, s1)
    assert 5e-4 < float(lo) <= float(hi) < 1.1e-3
    n = 2000
    g = torch.Generator().manual_seed(0)
    x = sample_patches(n, size=64, generator=g)
    m0, m1 = forward.pixel_mean_pairs(x, a1, s1, generator=g)
    rho = float(torch.corrcoef(torch.stack([m0, m1]).double())[0, 1])
    pred = float(forward.predicted_mean_correlation(a1, s1, float(m0.double().std()), 64 * 64))
    assert rho > 4 / math.sqrt(n) and abs(rho - pred) < 4 / math.sqrt(n), (rho, pred)
    mz, vz = forward.chain_moments(*forward.ddpm_coefficients(forward.rescale_zero_terminal_snr(ddpm)))
    assert float(mz[-1]) == 0.0 and abs(float(vz[-1]) - 1.0) < 1e-15


def test_misconception_vp_preserves_data_variance(digits):
    """The wrong claim "VP keeps Var x_t = Var x_0" fails: on digits the mean pixel variance goes from 0.29 to
    about 1 (ratio > 3); VP only keeps it between the data's and 1. VE's explodes (> 2000)."""
    c = float(digits.var(0, unbiased=False).mean())
    x1, _ = sde.marginal_sample(S.VPLinear(), digits, ONE, generator=torch.Generator().manual_seed(0))
    assert float(x1.var(0, unbiased=False).mean()) / c > 3
    ts = torch.linspace(0, 1, 101, dtype=f64)
    var_vp = S.VPLinear().alpha(ts) ** 2 * c + S.VPLinear().sigma(ts) ** 2
    assert ((var_vp >= c - 1e-12) & (var_vp <= 1 + 1e-12)).all()
    x1, _ = sde.marginal_sample(S.VE(), digits, ONE, generator=torch.Generator().manual_seed(0))
    assert float(x1.var(0).mean()) > 2000


def test_misconception_ddpm_table_equals_continuous_schedule():
    """The wrong claim "DDPM's 1000-step table has VP-linear's noise levels" fails: sqrt(ᾱ_1000) is 3% below α(1)
    (log-SNR gap > 0.05); the exact rule β_i = 1 - α_i²/α_{i-1}² closes the gap (1e-12)."""
    vp = S.VPLinear()
    m, _ = forward.chain_moments(*forward.ddpm_coefficients(S.linear_betas(1000)))
    gap = 2 * math.log(float(m[-1]) / float(vp.alpha(ONE)))
    assert abs(gap) > 0.05 and 0.02 < 1 - float(m[-1]) / float(vp.alpha(ONE)) < 0.05
    ts = torch.linspace(0, 1, 1001, dtype=f64)
    m, _ = forward.chain_moments(*forward.ddpm_coefficients(forward.chain_betas(vp, ts, "exact")))
    assert float((m - vp.alpha(ts)).abs().max()) < 1e-12


def test_misconception_vp_and_ve_are_different():
    """The wrong claim "VP and VE are different processes" fails: on the clock t' = VE.t_of_sigma_bar(σ̄_VP(t)) the
    laws of x_VP/α and x_VE given x_0 coincide (KL < 1e-12), while at equal t they differ (KL > 1): only the clock
    and the scale differ."""
    vp, ve = S.VPLinear(), S.VE(sigma_max=100.0)  # σ̄_VP(0.9) ≈ 58.6 > VE's default σ_max = 50: keep t' ≤ 1
    t_vp = torch.linspace(0.05, 0.9, 50, dtype=f64)
    sbar = S.sigma_bar(vp, t_vp)  # x_VP/α | x_0 ~ N(x_0, σ̄² I)
    t_ve = ve.t_of_sigma_bar(sbar)  # x_VE | x_0 ~ N(x_0, σ_VE(t')² I)

    def kl(s1, s2):  # KL(N(x0, s1²) || N(x0, s2²)) per coordinate
        r = (s1 / s2) ** 2
        return 0.5 * (r - 1 - torch.log(r))

    assert float(kl(sbar, ve.sigma(t_ve)).max()) < 1e-12
    assert float(kl(sbar, ve.sigma(t_vp)).max()) > 1.0
    assert not torch.allclose(t_ve, t_vp)


# ----------------------------------------------------------------------------------------------------
# diffbook.foundations.forward: values and bad input


def test_coefficients_and_moments():
    vp = S.VPLinear()
    ts = torch.linspace(0, 1, 11, dtype=f64)
    a, b = forward.euler_maruyama_coefficients(vp, ts)
    assert torch.allclose(a, 1 - 0.5 * vp.beta(ts[:-1]) * 0.1) and torch.allclose(b, (vp.beta(ts[:-1]) * 0.1).sqrt())
    a, b = forward.exact_coefficients(S.VE(), ts)
    assert torch.allclose(a, torch.ones(10, dtype=f64))
    m, v = forward.chain_moments(a, b, v0=float(S.VE().sigma(ts[0]) ** 2))
    assert torch.allclose(v, S.VE().sigma(ts) ** 2, rtol=1e-12)
    path = forward.run_chain(torch.zeros(3, 2, dtype=f64), a, b, keep_path=True)
    assert path.shape == (11, 3, 2)
    betas = forward.rescale_zero_terminal_snr(S.linear_betas(100))
    assert betas[-1] == 1.0 and ((betas > 0) & (betas <= 1)).all()
    m, _ = forward.chain_moments(*forward.ddpm_coefficients(betas))
    assert math.isclose(float(m[1]), math.sqrt(1 - 1e-4), rel_tol=1e-12) and float(m[-1]) == 0.0


def test_kl_helpers_and_correlation():
    mean, cov = torch.tensor([0.3, -0.2], dtype=f64), torch.tensor([[1.2, 0.1], [0.1, 0.7]], dtype=f64)
    ref = torch.distributions.kl_divergence(
        torch.distributions.MultivariateNormal(mean, cov), torch.distributions.MultivariateNormal(torch.zeros(2, dtype=f64), torch.eye(2, dtype=f64)))
    assert math.isclose(float(forward.gaussian_kl_to_standard(mean, cov)), float(ref), rel_tol=1e-12)
    x0 = torch.tensor([[0.5, 1.0], [-1.0, 0.0]], dtype=f64)
    kl = forward.conditional_kl_to_standard(x0, 0.6, 0.8)
    for i in range(2):
        assert math.isclose(float(kl[i]), float(forward.gaussian_kl_to_standard(0.6 * x0[i], 0.64 * torch.eye(2, dtype=f64))), rel_tol=1e-12)
    # near the identity the log1p form stays accurate: KL ≈ d y²/4 for cov = (1 + y) I
    assert math.isclose(float(forward.gaussian_kl_to_standard(torch.zeros(3, dtype=f64), (1 + 1e-6) * torch.eye(3, dtype=f64))), 3 * 0.25e-12, rel_tol=1e-5)
    assert math.isclose(float(forward.predicted_mean_correlation(0.1, 1.0, 0.5, 100)), 0.05 / math.sqrt(0.0025 + 0.01), rel_tol=1e-12)
    m0, m1 = forward.pixel_mean_pairs(torch.zeros(7, 1, 4, 4), 0.5, 1.0, generator=torch.Generator().manual_seed(0))
    assert m0.shape == m1.shape == (7,) and (m0 == 0).all()


def test_bad_input():
    vp = S.VPLinear()
    ts = torch.linspace(0, 1, 11, dtype=f64)
    with pytest.raises(ValueError, match="strictly increasing"):
        forward.euler_maruyama_coefficients(vp, ts.flip(0))
    with pytest.raises(TypeError, match="ts must be a torch.Tensor"):
        forward.exact_coefficients(vp, [0.0, 1.0])
    with pytest.raises(ValueError, match="rule must be one of"):
        forward.chain_betas(vp, ts, "midpoint")
    with pytest.raises(ValueError, match="variance preserving"):
        forward.chain_betas(S.VE(), ts)
    with pytest.raises(ValueError, match="outside"):
        forward.chain_betas(vp, torch.linspace(0, 1, 6, dtype=f64))
    with pytest.raises(ValueError, match="entries in"):
        forward.ddpm_coefficients(torch.tensor([0.5, 1.5], dtype=f64))
    with pytest.raises(ValueError, match="one length"):
        forward.chain_moments(torch.ones(3, dtype=f64), torch.ones(2, dtype=f64))
    with pytest.raises(TypeError, match="x0 must be a torch.Tensor"):
        forward.run_chain([1.0], torch.ones(2, dtype=f64), torch.ones(2, dtype=f64))
    with pytest.raises(ValueError, match="positive definite"):
        forward.gaussian_kl_to_standard(torch.zeros(2, dtype=f64), torch.diag(torch.tensor([1.0, -1.0], dtype=f64)))
    with pytest.raises(ValueError, match="shape"):
        forward.gaussian_kl_to_standard(torch.zeros(2, dtype=f64), torch.eye(3, dtype=f64))
    with pytest.raises(ValueError, match="sigma must be positive"):
        forward.conditional_kl_to_standard(torch.zeros(2, 2, dtype=f64), 1.0, 0.0)
    with pytest.raises(TypeError, match="alpha must be a tensor or a number"):
        forward.conditional_kl_to_standard(torch.zeros(2, 2, dtype=f64), "1", 1.0)
    with pytest.raises(ValueError, match="at least 2 samples"):
        forward.terminal_kl_bounds(torch.zeros(1, 2, dtype=f64), 0.1, 1.0)
    with pytest.raises(ValueError, match="at least 2 entries"):
        forward.rescale_zero_terminal_snr(torch.tensor([0.5], dtype=f64))
    with pytest.raises(ValueError, match="d must be a positive int"):
        forward.predicted_mean_correlation(0.1, 1.0, 0.5, 0)
    with pytest.raises(ValueError, match="scalars"):
        forward.pixel_mean_pairs(torch.zeros(2, 3), torch.ones(2), 1.0)
    with pytest.raises(TypeError, match="SymPy Symbol"):
        forward.solve_moment_odes(sp.Integer(0), sp.Integer(1), "t")
    with pytest.raises(ValueError, match="not finite"):
        forward.integrate_moment_odes(S.FlowLinear(), torch.linspace(0, 1, 5, dtype=f64))


# ----------------------------------------------------------------------------------------------------
# Checkers of the exercises

T_, B0, B1 = sp.symbols("t beta_min beta_max", positive=True)
BETA_ = B0 + (B1 - B0) * T_
B_ = B0 * T_ + (B1 - B0) * T_**2 / 2


def _d_dt(fn, t):
    tt = t.detach().clone().requires_grad_(True)
    y = fn(tt)
    if not y.requires_grad:
        return y.detach(), torch.zeros_like(t)
    (dy,) = torch.autograd.grad(y.sum(), tt)
    return y.detach(), dy


def rule(alpha, sigma, t):
    a, da = _d_dt(alpha, t)
    s2, ds2 = _d_dt(lambda z: sigma(z) ** 2, t)
    f = da / a
    return f, ds2 - 2 * f * s2


def rule_no_drift_term(alpha, sigma, t):
    a, da = _d_dt(alpha, t)
    _, ds2 = _d_dt(lambda z: sigma(z) ** 2, t)
    return da / a, ds2


def rule_f_without_log(alpha, sigma, t):
    f, g2 = rule(alpha, sigma, t)
    _, da = _d_dt(alpha, t)
    return da, g2


def ddpm_marginal(betas):
    abar = torch.cumprod(1 - betas, 0)
    return abar.sqrt(), (1 - abar).sqrt()


def _measure(betas_fn, n_list=(125, 250, 500, 1000, 2000)):
    vp, errs = S.VPLinear(), []
    for n in n_list:
        ts = torch.linspace(0, 1, n + 1, dtype=f64)
        m, _ = forward.chain_moments(*forward.ddpm_coefficients(betas_fn(vp, ts, n)))
        errs.append(float((m - vp.alpha(ts)).abs().max()))
    return fit_order([1 / n for n in n_list], errs), errs[3]


def not_implemented(*args):
    raise NotImplementedError


def crashes(*args):
    raise ZeroDivisionError("boom")


ORDER, ERR = _measure(lambda vp, ts, n: vp.beta(ts[:-1]) / n)
RIGHT = [
    (ch03.check_vp_alpha, (sp.exp(-B_ / 2),)),
    (ch03.check_subvp_diffusion, (BETA_ * (1 - sp.exp(-2 * B_)),)),
    (ch03.check_drift_and_diffusion, (rule,)),
    (ch03.check_ddpm_marginal, (ddpm_marginal,)),
    (ch03.check_ddpm_convergence, (ORDER, ERR)),
    (ch03.check_visible_side, (305,)),
]


@pytest.mark.parametrize("check,answer", RIGHT, ids=lambda x: getattr(x, "__name__", ""))
def test_right_answers_pass(check, answer):
    verdict = check(*answer)
    assert isinstance(verdict, Verdict) and verdict.passed, verdict.message
    assert str(verdict).startswith("Exercise 3.")


def test_checkers_accept_equivalent_forms():
    assert ch03.check_vp_alpha("exp(-beta_min*t/2 - (beta_max - beta_min)*t**2/4)").passed
    assert ch03.check_subvp_diffusion(sp.simplify(BETA_ * (1 - sp.exp(-B_)) * (1 + sp.exp(-B_)))).passed
    assert ch03.check_visible_side(304.33394).passed


@pytest.mark.parametrize(
    "check,answer,diagnosis",
    [
        (ch03.check_vp_alpha, (sp.exp(-B_),), "that is α_t²"),
        (ch03.check_vp_alpha, (sp.exp(-(B0 * T_ + (B1 - B0) * T_**2) / 2),), "integrate β correctly"),
        (ch03.check_vp_alpha, (sp.exp(-BETA_ / 2),), "β(t) itself"),
        (ch03.check_vp_alpha, (sp.exp(-BETA_ * T_ / 2),), "multiplied β(t) by t"),
        (ch03.check_vp_alpha, (sp.sqrt(1 - sp.exp(-B_)),), "that is σ_t"),
        (ch03.check_vp_alpha, ("exp(-z*t)",), "uses symbol(s) z"),
        (ch03.check_subvp_diffusion, (BETA_,), "that is VP's g²"),
        (ch03.check_subvp_diffusion, (2 * BETA_ * sp.exp(-B_) * (1 - sp.exp(-B_)),), "kept only dσ²/dt"),
        (ch03.check_subvp_diffusion, (BETA_ * (1 - sp.exp(-B_)),), "1 - α⁴"),
        (ch03.check_drift_and_diffusion, (rule_no_drift_term,), "dσ²/dt only"),
        (ch03.check_drift_and_diffusion, (rule_f_without_log,), "not dα/dt"),
        (ch03.check_drift_and_diffusion, (lambda a, s, t: (0.0, 0.0),), "gave shape ()"),
        (ch03.check_ddpm_marginal, (lambda b: (torch.cumprod(1 - b, 0), 1 - torch.cumprod(1 - b, 0)),), "you returned ᾱ"),
        (ch03.check_ddpm_marginal, (lambda b: ((1 - torch.cumsum(b, 0)).sqrt(), torch.cumsum(b, 0).sqrt()),), "is a product"),
        (ch03.check_ddpm_marginal, (lambda b: ddpm_marginal(b)[::-1],), "swapped"),
        (ch03.check_ddpm_marginal, (lambda b: (ddpm_marginal(b)[0], 1 - torch.cumprod(1 - b, 0)),), "you returned 1 - ᾱ"),
        (ch03.check_ddpm_convergence, (1.0, 0.0), "exact rule"),
        (ch03.check_ddpm_convergence, (-ORDER, ERR), "against N"),
        (ch03.check_ddpm_convergence, (ORDER, _measure(lambda vp, ts, n: S.linear_betas(n, 0.1 / n, 20.0 / n))[1]), "linear_betas"),
        (ch03.check_ddpm_convergence, (2.0, ERR), "measured order is 2"),
        (ch03.check_visible_side, (304,), "round up"),
        (ch03.check_visible_side, (92_617,), "number of pixels"),
        (ch03.check_visible_side, (152,), "forgot the spread"),
        (ch03.check_visible_side, (315,), "DDPM's table"),
    ],
)
def test_wrong_answers_get_a_specific_diagnosis(check, answer, diagnosis):
    verdict = check(*answer)
    assert not verdict.passed
    assert diagnosis in verdict.message, verdict.message


@pytest.mark.parametrize("check,answer", RIGHT, ids=lambda x: getattr(x, "__name__", ""))
@pytest.mark.parametrize("bad", [None, ..., 42, "not an answer", not_implemented, crashes, lambda *a: "oops",
                                 lambda *a: torch.zeros(7), float("nan")])
def test_malformed_answers_never_raise(check, answer, bad, malformed_verdict):
    malformed_verdict(check(*([bad] * len(answer))), bad)


def test_missing_and_unimplemented_answers():
    assert "has no answer yet" in ch03.check_vp_alpha(None).message
    assert "not implemented yet" in ch03.check_ddpm_marginal(not_implemented).message
    assert "takes 2 answer(s)" in ch03.check_ddpm_convergence(1.0).message
