"""Chapter 6 (DDPM): one named test per theorem and per misconception, tests of diffbook.foundations.ddpm and
diffbook.foundations.ddpm_bound (including bad input), and tests of the chapter's exercise checkers."""

import math

import pytest
import sympy as sp
import torch

from diffbook import losses, samplers
from diffbook.foundations import ddpm, ddpm_bound
from diffbook import schedules as S
from diffbook.exercises import Verdict, ch06
from diffbook.toy import GaussianMixture

f64 = torch.float64
BETAS = S.linear_betas()
T = len(BETAS)
ABAR = S.alphas_cumprod(BETAS)
_ring = torch.arange(6, dtype=f64) * 2 * math.pi / 6
RING_MEANS = 0.7 * torch.stack([_ring.cos(), _ring.sin()], 1)
RING = GaussianMixture.isotropic(torch.full((6,), 1 / 6, dtype=f64), RING_MEANS, 0.08)

# SymPy: a = √α_t, g = √ᾱ_{t-1}, so every square root is a symbol
A, G = sp.symbols("a g", positive=True)
BETA_T, ABAR_T, ABAR_P = 1 - A**2, A**2 * G**2, G**2
BETA_TILDE = (1 - ABAR_P) / (1 - ABAR_T) * BETA_T


def gen(seed):
    return torch.Generator().manual_seed(seed)


def gaussian_eps_model(s):
    """E[ε | x_t] for data N(0, s²)."""
    return lambda xt, t: (1 - ABAR[t - 1]).sqrt()[:, None].to(xt) * xt / (ABAR[t - 1] * s**2 + 1 - ABAR[t - 1])[:, None].to(xt)


def exact_nll(s, variance, x0):
    sig2 = ddpm.reverse_variance(BETAS, variance)
    ones = torch.ones(T, 1, dtype=f64)
    steps = torch.arange(1, T + 1)
    a_t = ddpm.mean_from_eps(ones, gaussian_eps_model(s)(ones, steps), steps, BETAS)[:, 0]
    v = torch.tensor(1.0, dtype=f64)
    for t in range(T, 0, -1):
        v = a_t[t - 1] ** 2 * v + sig2[t - 1]
    return 0.5 * x0**2 / float(v) + 0.5 * math.log(2 * math.pi * float(v))


def direct_elbo(s, variance, x0, n, g):
    """Plain Monte Carlo of E_q[log q(x_{1:T}|x_0) - log p_θ(x_{0:T})]: mean and standard error."""
    sig2 = ddpm.reverse_variance(BETAS, variance)
    model = gaussian_eps_model(s)
    x_prev = torch.full((n, 1), x0, dtype=f64)
    out = torch.zeros(n, dtype=f64)
    for t in range(1, T + 1):
        x_t = ddpm.forward_step(x_prev, t, BETAS, torch.randn(n, 1, generator=g, dtype=f64))
        steps = torch.full((n,), t)
        back = ddpm.mean_from_eps(x_t, model(x_t, steps), steps, BETAS)
        out += (torch.distributions.Normal((1 - BETAS[t - 1]).sqrt() * x_prev, BETAS[t - 1].sqrt()).log_prob(x_t)
                - torch.distributions.Normal(back, sig2[t - 1].sqrt()).log_prob(x_prev))[:, 0]
        x_prev = x_t
    out -= torch.distributions.Normal(0.0, 1.0).log_prob(x_prev)[:, 0]
    return float(out.mean()), float(out.std() / math.sqrt(n))


def spread(x):
    nearest = torch.cdist(x, RING_MEANS).argmin(1)
    return float(((x - RING_MEANS[nearest]) ** 2).mean().sqrt())


# --------------------------------------------------------------------------------------------- theorems


def test_thm_forward_marginal():
    """Theorem (marginals): the induction step is an identity, and 1000 simulated steps match N(√ᾱ x0, 1-ᾱ)."""
    beta, abar_prev = sp.symbols("beta abar_prev", positive=True)
    assert sp.simplify((1 - beta) * (1 - abar_prev) + beta - (1 - (1 - beta) * abar_prev)) == 0
    g = gen(0)
    x0 = torch.rand(2000, 4, generator=g, dtype=f64) * 2 - 1
    x = x0
    for t in range(1, T + 1):
        x = ddpm.forward_step(x, t, BETAS, torch.randn(x.shape, generator=g, dtype=f64))
        if t in (5, 200, 1000):
            resid = x - ABAR[t - 1].sqrt() * x0
            assert abs(float(resid.var() / (1 - ABAR[t - 1])) - 1) < 0.05  # 8000 numbers: SE of the ratio ≈ 0.016
            assert abs(float(resid.mean())) < 0.05 * float((1 - ABAR[t - 1]).sqrt())
    eps = torch.randn(x0.shape, generator=g, dtype=f64)
    assert torch.allclose(ddpm.forward_marginal(x0, 7, BETAS, eps), ABAR[6].sqrt() * x0 + (1 - ABAR[6]).sqrt() * eps)


def test_thm_posterior():
    """Theorem (posterior): the full Bayes identity, normalisers included, the ε form, and ddpm.posterior."""
    xp, xt, x0, eps = sp.symbols("x_prev x_t x_0 epsilon", real=True)

    def log_normal(z, mean, var):
        return -((z - mean) ** 2) / (2 * var) - sp.log(2 * sp.pi * var) / 2

    mu = G * BETA_T / (1 - ABAR_T) * x0 + A * (1 - ABAR_P) / (1 - ABAR_T) * xt
    bayes = (log_normal(xt, A * xp, BETA_T) + log_normal(xp, G * x0, 1 - ABAR_P)
             - log_normal(xt, A * G * x0, 1 - ABAR_T) - log_normal(xp, mu, BETA_TILDE))
    assert sp.simplify(sp.logcombine(sp.expand_log(bayes, force=True), force=True)) == 0
    eps_form = (xt - BETA_T / sp.sqrt(1 - ABAR_T) * eps) / A
    assert sp.simplify(mu.subs(x0, (xt - sp.sqrt(1 - ABAR_T) * eps) / (A * G)) - eps_form) == 0
    # the implementation: formula, ε form, and a wrong formula (forward variance) rejected
    g = gen(1)
    x0_ = torch.randn(8, 3, generator=g, dtype=f64)
    e = torch.randn(8, 3, generator=g, dtype=f64)
    t = torch.tensor([2, 3, 4, 50, 100, 500, 900, 1000])
    xt_ = ddpm.forward_marginal(x0_, t, BETAS, e)
    mean, var = ddpm.posterior(x0_, xt_, t, BETAS)
    b, a_t, a_p = BETAS[t - 1], ABAR[t - 1], ABAR[t - 2]
    assert torch.allclose(var, (1 - a_p) / (1 - a_t) * b, rtol=1e-12)
    assert torch.allclose(mean, ddpm.mean_from_eps(xt_, e, t, BETAS), atol=1e-12)
    assert not torch.allclose(var, b, rtol=1e-3)
    m1, v1 = ddpm.posterior(x0_, xt_, 1, BETAS)
    assert torch.allclose(m1, x0_) and torch.all(v1 == 0)  # t = 1: the point mass at x0


def test_thm_elbo_bound():
    """Theorem (ELBO): on Gaussian data the sum of terms equals the direct Monte-Carlo ELBO, lies above the exact
    -log p_θ(x0), and the gap is zero (chain by chain) when the model is the reversed chain (s = 1, σ² = β)."""
    g = gen(2)
    n, x0 = 600, 0.8
    for s, variance in [(1.0, "beta"), (1.0, "beta_tilde"), (0.5, "beta_tilde")]:
        terms = ddpm_bound.elbo_terms(gaussian_eps_model(s), torch.full((n, 1), x0, dtype=f64), BETAS, levels=None,
                                variance=variance, n_t=None, generator=g)
        L, L_se = float(terms.total.mean()), float(terms.total.std() / math.sqrt(n))
        direct, direct_se = direct_elbo(s, variance, x0, n, g)
        nll = exact_nll(s, variance, x0)
        assert abs(L - direct) < 4 * math.hypot(L_se, direct_se) + 1e-6
        assert L > nll - 4 * L_se - 1e-6
        if (s, variance) == (1.0, "beta"):
            assert direct_se < 1e-8 and abs(direct - nll) < 1e-8
        else:
            assert L - nll > 8 * L_se  # a strictly positive gap (about 0.4-0.5 nats here)


def test_thm_kl_eps_form():
    """Theorem (KL in the ε form): λ_t‖ε - ε̂‖² + C_t equals the direct Gaussian KL, for both variances; the weights
    match losses.ddpm_elbo_weights, and C_t = 0 exactly for σ² = β̃."""
    g = gen(3)
    n, d = 50, 4
    x0, e = torch.randn(n, d, generator=g, dtype=f64), torch.randn(n, d, generator=g, dtype=f64)
    e_hat = e + 0.5 * torch.randn(n, d, generator=g, dtype=f64)
    t = torch.randint(2, T + 1, (n,), generator=g)
    xt = ddpm.forward_marginal(x0, t, BETAS, e)
    m_q, v_q = ddpm.posterior(x0, xt, t, BETAS)
    m_p = ddpm.mean_from_eps(xt, e_hat, t, BETAS)
    for variance in ("beta_tilde", "beta"):
        v_p = ddpm.reverse_variance(BETAS, variance)[t - 1]
        direct = torch.distributions.kl_divergence(torch.distributions.Normal(m_q, v_q.sqrt()[:, None]),
                                                   torch.distributions.Normal(m_p, v_p.sqrt()[:, None])).sum(1)
        assert torch.allclose(ddpm.step_kl(e_hat, e, t, BETAS, variance), direct, rtol=1e-8)
        assert torch.allclose(ddpm.gaussian_kl(m_q, v_q, m_p, v_p), direct, rtol=1e-8)
        lam = losses.ddpm_elbo_weights(BETAS, variance)[t - 1]
        const = ddpm.step_kl(e_hat, e, t, BETAS, variance) - lam * ((e - e_hat) ** 2).sum(1)
        if variance == "beta_tilde":
            assert const.abs().max() < 1e-10
        else:
            assert (const > 0).all()
    # SymPy: μ̃ - μ_θ = β/(√α √(1-ᾱ)) (ε_θ - ε)
    xt_, e_, et_ = sp.symbols("x_t epsilon epsilon_theta", real=True)
    gap = ((xt_ - BETA_T / sp.sqrt(1 - ABAR_T) * e_) / A - (xt_ - BETA_T / sp.sqrt(1 - ABAR_T) * et_) / A
           - BETA_T / (A * sp.sqrt(1 - ABAR_T)) * (et_ - e_))
    assert sp.simplify(gap) == 0


def test_thm_reverse_variance_extremes():
    """Theorem (true reverse variance): v_t(s²) = β̃ + c² Var(x0|xt) is β̃ at s = 0, β at s = 1, increasing;
    and a simulated regression of x_{t-1} on x_t matches it."""
    s2 = sp.symbols("s2", positive=True)
    c = G * BETA_T / (1 - ABAR_T)
    v = BETA_TILDE + c**2 * s2 * (1 - ABAR_T) / (ABAR_T * s2 + 1 - ABAR_T)
    assert sp.simplify(v.subs(s2, 0) - BETA_TILDE) == 0
    assert sp.simplify(v.subs(s2, 1) - BETA_T) == 0
    assert sp.simplify(s2 - ABAR_T * s2**2 / (ABAR_T * s2 + 1 - ABAR_T) - s2 * (1 - ABAR_T) / (ABAR_T * s2 + 1 - ABAR_T)) == 0
    dv = sp.diff(v, s2).subs({A: sp.Rational(9, 10), G: sp.Rational(1, 2)})
    assert all(dv.subs(s2, val) > 0 for val in (sp.Rational(1, 100), 1, 10))
    g = gen(4)
    n, t, s = 1_000_000, 10, 0.05
    x0 = s * torch.randn(n, 1, generator=g, dtype=f64)
    x_prev = ddpm.forward_marginal(x0, t - 1, BETAS, torch.randn(n, 1, generator=g, dtype=f64))
    x_t = ddpm.forward_step(x_prev, t, BETAS, torch.randn(n, 1, generator=g, dtype=f64))
    design = torch.cat([x_t, torch.ones_like(x_t)], 1)
    resid = x_prev - design @ torch.linalg.lstsq(design, x_prev).solution
    target = ch06.reverse_variance_target(t, s)
    assert abs(float(resid.var() / BETAS[t - 1]) / target["ratio"] - 1) < 0.01
    assert target["tilde_ratio"] < target["ratio"] < 1


# ----------------------------------------------------------------------------------------- misconceptions


def test_misconception_lsimple_is_the_elbo():
    """Misconception "L_simple is the ELBO": the ELBO's weights span two orders of magnitude over t, and two
    models built from the exact ring predictor are ranked in opposite orders by L_simple and by the ELBO."""
    w = losses.ddpm_elbo_weights(BETAS)[1:]
    assert float(w.max() / w.min()) > 100
    eps_exact = ddpm.eps_from_denoiser(RING.denoiser, BETAS)

    def with_error(size, lo, hi):
        def model(xt, t):
            return eps_exact(xt, t) + size * ((t >= lo) & (t <= hi)).to(xt.dtype)[:, None]
        return model

    x0 = RING.sample(400, generator=gen(5))[0]
    res = {name: ddpm_bound.elbo_terms(m, x0, BETAS, levels=None, n_t=100, generator=gen(6))
           for name, m in [("A", with_error(0.2 * math.sqrt(10), 2, 11)), ("B", with_error(0.2, 501, 1000))]}
    ls = {k: float(r.simple.mean()) for k, r in res.items()}
    el = {k: float(r.total.mean()) for k, r in res.items()}
    assert ls["A"] < ls["B"] and el["B"] < el["A"]  # opposite rankings
    assert el["A"] - el["B"] > 0.5  # nats: far beyond the noise of common random numbers


def test_misconception_variance_choices_are_interchangeable():
    """Misconception "σ² = β and β̃ are interchangeable": with the exact score and 25 steps β over-disperses the
    ring; and with all steps the exact-score ELBOs differ by far more than their error."""
    sig = S.ddpm_sigmas(BETAS, torch.linspace(T - 1, 0, 25).round().long())
    out = {}
    for v in ("beta_tilde", "beta"):
        x = samplers.prior_noise((800, 2), sig[0], generator=gen(7), dtype=f64)
        out[v] = spread(samplers.sample_ddpm(RING.denoiser, x, sig, variance=v, generator=gen(8)))
    assert out["beta"] > 1.4 * out["beta_tilde"] and out["beta"] > 1.5 * 0.08
    x0 = RING.sample(400, generator=gen(9))[0]
    eps = ddpm.eps_from_denoiser(RING.denoiser, BETAS)
    L = {v: ddpm_bound.elbo_terms(eps, x0, BETAS, levels=None, variance=v, n_t=100, generator=gen(10)).total
         for v in out}
    diff = L["beta_tilde"] - L["beta"]  # common random numbers: the difference is precise
    assert float(diff.mean()) > 6 * float(diff.std() / math.sqrt(len(diff)))


def test_misconception_density_is_a_code_length():
    """Misconception "-log of a density is a code length": a continuous decoder gives negative nats on lattice
    data (unbounded below as σ → 0), the binned decoder a probability (nats >= 0, summing to 1 over values)."""
    x0 = torch.tensor([[-1.0, -0.5, 0.0, 0.625, 1.0]], dtype=f64)
    cont = [float(ddpm_bound.gaussian_nll(x0, x0, s)) for s in (0.1, 0.01, 0.001)]
    assert cont[0] > cont[1] > cont[2] and cont[2] < -20  # nats: no code can be negative
    disc = float(ddpm_bound.discretized_gaussian_nll(x0, x0, 0.01, 17))
    assert 0 <= disc < 1e-6
    # the 17 probabilities of one coordinate sum to one, whatever the mean and width
    values = (torch.arange(17, dtype=f64) / 8 - 1)[:, None]
    for mean, std in [(0.3, 0.05), (-1.4, 0.2), (0.97, 1.0)]:
        p = torch.exp(-ddpm_bound.discretized_gaussian_nll(values, torch.full_like(values, mean), std, 17))
        assert abs(float(p.sum()) - 1) < 1e-10


# -------------------------------------------------------------------------- diffbook.foundations.ddpm, ddpm_bound


def test_ancestral_steps_reproduce_sample_ddpm():
    """sample_ddpm (VE variables, the denoiser contract) is Algorithm 2: the same noise gives the same samples."""
    sig = S.ddpm_sigmas(BETAS, torch.linspace(T - 1, 0, 40).round().long())
    steps = (torch.linspace(T - 1, 0, 40).round().long() + 1).tolist()
    sub_abar = ABAR[torch.tensor(steps) - 1]
    sub_betas = 1 - sub_abar / torch.cat([sub_abar[1:], sub_abar.new_ones(1)])  # the respaced chain, last to first
    betas_r = sub_betas.flip(0)
    eps = ddpm.eps_from_denoiser(RING.denoiser, betas_r)
    for variance in ("beta_tilde", "beta"):
        g_ref, g_own = gen(11), gen(11)
        z = torch.randn(300, 2, generator=g_ref, dtype=f64)
        ref = samplers.sample_ddpm(RING.denoiser, z * math.sqrt(1 + float(sig[0]) ** 2), sig, variance=variance, generator=g_ref)
        torch.randn(300, 2, generator=g_own, dtype=f64)  # keep the generators in step
        x = z.clone()
        for t in range(len(betas_r), 0, -1):
            steps_t = torch.full((300,), t)
            noise = torch.randn(300, 2, generator=g_own, dtype=f64) if t > 1 else torch.zeros(300, 2, dtype=f64)
            x = ddpm.ancestral_step(x, eps(x, steps_t), steps_t, betas_r, noise, variance)
        assert torch.allclose(x, ref, atol=1e-8), float((x - ref).abs().max())


def test_eps_from_denoiser_is_the_posterior_noise():
    """ε̂(x_t, t) = (x_t - √ᾱ_t E[x0|x_t])/√(1 - ᾱ_t) for the exact mixture."""
    x = torch.randn(100, 2, generator=gen(12), dtype=f64)
    t = torch.randint(1, T + 1, (100,), generator=gen(13))
    a = ABAR[t - 1][:, None]
    expected = (x - a.sqrt() * RING.posterior_mean(x, a.sqrt()[:, 0], (1 - a).sqrt()[:, 0])) / (1 - a).sqrt()
    assert torch.allclose(ddpm.eps_from_denoiser(RING.denoiser, BETAS)(x, t), expected, atol=1e-9)


def test_prior_kl_and_gaussian_kl():
    x0 = torch.randn(5, 3, generator=gen(14), dtype=f64)
    a = ABAR[-1]
    assert torch.allclose(ddpm.prior_kl(x0, BETAS), ddpm.gaussian_kl(a.sqrt() * x0, 1 - a, torch.zeros_like(x0), 1.0))
    assert float(ddpm.prior_kl(x0, BETAS).max()) < 1e-3  # DDPM's chain ends close to, not at, N(0, I)
    assert torch.all(ddpm.gaussian_kl(x0, 0.5, x0, 0.5) == 0)


def test_stratified_elbo_is_unbiased():
    """The stratified estimate (n_t strata) agrees with the full sum over steps, on the Gaussian example."""
    x0 = torch.full((2000, 1), 0.3, dtype=f64)
    model = gaussian_eps_model(0.5)
    full = ddpm_bound.elbo_terms(model, x0[:400], BETAS, levels=None, n_t=None, generator=gen(15)).total
    strat = ddpm_bound.elbo_terms(model, x0, BETAS, levels=None, n_t=30, generator=gen(16))
    se = math.hypot(float(full.std()) / 20, float(strat.total.std()) / math.sqrt(2000))
    assert abs(float(full.mean()) - float(strat.total.mean())) < 4 * se
    assert strat.strata.shape == (31, 2) and int(strat.strata[1:, 1].max()) == T
    assert int((strat.strata[:, 1] - strat.strata[:, 0] + 1).sum()) == T  # the strata cover 1..T once
    assert torch.allclose(strat.total, strat.prior + strat.per_stratum.sum(1))


def test_pixel_histogram_baseline():
    x = torch.tensor([[-1.0, 1.0], [-1.0, 0.0], [-1.0, 1.0]])
    p = ddpm_bound.pixel_histograms(x, 3, smoothing=1.0)
    assert torch.allclose(p[0], torch.tensor([4 / 6, 1 / 6, 1 / 6], dtype=f64))
    assert torch.allclose(p.sum(1), torch.ones(2, dtype=f64))
    nll = ddpm_bound.pixel_histogram_nll(p, x, 3)
    assert nll.shape == (3,) and abs(float(nll[1]) + math.log(4 / 6) + math.log(2 / 6)) < 1e-12
    s = ddpm_bound.pixel_histogram_sample(p, 10, (2,), generator=gen(17))
    assert s.shape == (10, 2) and set(s.flatten().tolist()) <= {-1.0, 0.0, 1.0}


def test_bad_inputs_raise_named_errors():
    x = torch.zeros(3, 2)
    with pytest.raises(ValueError, match="t must be 1-based"):
        ddpm.forward_marginal(x, 0, BETAS, x)
    with pytest.raises(ValueError, match="t must be 1-based"):
        ddpm.posterior(x, x, torch.tensor([1, 2, 1001]), BETAS)
    with pytest.raises(TypeError, match="integer steps"):
        ddpm.forward_step(x, torch.tensor([1.0, 2.0, 3.0]), BETAS, x)
    with pytest.raises(ValueError, match="shape"):
        ddpm.forward_step(x, torch.tensor([1, 2]), BETAS, x)
    with pytest.raises(ValueError, match="betas"):
        ddpm.forward_marginal(x, 1, torch.tensor([0.1, 1.5]), x)
    with pytest.raises(TypeError, match="betas"):
        ddpm.forward_marginal(x, 1, [0.1, 0.2], x)
    with pytest.raises(ValueError, match="noise"):
        ddpm.forward_marginal(x, 1, BETAS, torch.zeros(3, 3))
    with pytest.raises(ValueError, match="variance"):
        ddpm.reverse_variance(BETAS, "large")
    with pytest.raises(ValueError, match="t must be >= 2"):
        ddpm.step_kl(x, x, 1, BETAS)
    with pytest.raises(ValueError, match="lie on the 17 values"):
        ddpm_bound.discretized_gaussian_nll(torch.full((1, 2), 0.01), torch.zeros(1, 2), 0.1, 17)
    with pytest.raises(ValueError, match="levels"):
        ddpm_bound.discretized_gaussian_nll(x, x, 0.1, 1)
    with pytest.raises(ValueError, match="std"):
        ddpm_bound.gaussian_nll(x, x, -1.0)
    with pytest.raises(ValueError, match="var2"):
        ddpm.gaussian_kl(x, 1.0, x, torch.zeros(3))
    with pytest.raises(ValueError, match="n_t"):
        ddpm_bound.elbo_terms(lambda a, b: a, x, BETAS, levels=None, n_t=0)
    with pytest.raises(TypeError, match="eps_model"):
        ddpm_bound.elbo_terms("not a model", x, BETAS, levels=None)
    with pytest.raises(TypeError, match="denoiser"):
        ddpm.eps_from_denoiser(None, BETAS)
    with pytest.raises(ValueError, match="smoothing"):
        ddpm_bound.pixel_histograms(x, 3, smoothing=0)


# ------------------------------------------------------------------------------------------- checkers

beta_s, abar_prev_s = sp.symbols("beta abar_prev", positive=True)
BT = (1 - abar_prev_s) / (1 - (1 - beta_s) * abar_prev_s) * beta_s


def posterior_mean(x0, xt, t, betas):
    return ddpm.posterior(x0, xt, t, betas)[0]


def decoder_nll(x0, mean, std):
    return ddpm_bound.discretized_gaussian_nll(x0, mean, std, 17)


RIGHT = [
    (ch06.check_posterior_variance, (BT,)),
    (ch06.check_posterior_variance, ("(1 - abar_prev)*beta/(1 - (1 - beta)*abar_prev)",)),
    (ch06.check_posterior_mean, (posterior_mean,)),
    (ch06.check_ancestral_step, (lambda xt, e, t, b, z, v: ddpm.ancestral_step(xt, e, t, b, z, v),)),
    (ch06.check_elbo_weight, (beta_s / (2 * (1 - beta_s) * (1 - abar_prev_s)),)),
    (ch06.check_decoder_nll, (decoder_nll,)),
    (ch06.check_reverse_variance, (ch06.reverse_variance_target()["ratio"] * 1.005,)),
]


@pytest.mark.parametrize("check,answer", RIGHT)
def test_checkers_accept_right_answers(check, answer):
    verdict = check(*answer)
    assert isinstance(verdict, Verdict) and verdict.passed, verdict.message
    assert str(verdict).startswith("Exercise 6.")


def _posterior_swapped(x0, xt, t, betas):
    return posterior_mean(xt, x0, t, betas)


def _step_without_noise(xt, e, t, b, z, v):
    return ddpm.mean_from_eps(xt, e, t, b)


def _step_var_not_std(xt, e, t, b, z, v):
    return ddpm.mean_from_eps(xt, e, t, b) + ddpm.reverse_variance(b, v)[t - 1][:, None] * z


def _step_noise_at_1(xt, e, t, b, z, v):
    return ddpm.mean_from_eps(xt, e, t, b) + ddpm.reverse_variance(b, v)[t - 1][:, None].sqrt() * z


def _decoder_closed_ends(x0, mean, std):
    n = torch.distributions.Normal(mean, std)
    return -torch.log(n.cdf(x0 + 1 / 16) - n.cdf(x0 - 1 / 16)).flatten(1).sum(1)


def _decoder_midpoint(x0, mean, std):
    return -(torch.distributions.Normal(mean, std).log_prob(x0) + math.log(1 / 8)).flatten(1).sum(1)


WRONG = [
    (ch06.check_posterior_variance, (beta_s,), "forward step"),
    (ch06.check_posterior_variance, (1 / (1 / beta_s + 1 / (1 - abar_prev_s)),), "α_t/β_t"),
    (ch06.check_posterior_variance, ((1 - abar_prev_s) * beta_s,), "denominator"),
    (ch06.check_posterior_mean, (_posterior_swapped,), "swapped"),
    (ch06.check_posterior_mean, (lambda x0, xt, t, b: posterior_mean(x0, xt, t + 1, b),), "off by one"),
    (ch06.check_ancestral_step, (_step_without_noise,), "no noise"),
    (ch06.check_ancestral_step, (_step_var_not_std,), "standard deviation"),
    (ch06.check_ancestral_step, (_step_noise_at_1,), "t = 1"),
    (ch06.check_elbo_weight, (beta_s / (1 - beta_s) / (1 - abar_prev_s),), "factor 2"),
    (ch06.check_elbo_weight, (beta_s / (2 * (1 - abar_prev_s)),), "α_t"),
    (ch06.check_elbo_weight, (beta_s / (2 * (1 - beta_s) * (1 - (1 - beta_s) * abar_prev_s)),), "σ_t² = β_t"),
    (ch06.check_decoder_nll, (_decoder_closed_ends,), "end bins"),
    (ch06.check_decoder_nll, (_decoder_midpoint,), "midpoint"),
    (ch06.check_reverse_variance, (ch06.reverse_variance_target()["tilde_ratio"],), "x_0 as well"),
    (ch06.check_reverse_variance, (1.0,), "unit-variance"),
]


@pytest.mark.parametrize("check,answer,diagnosis", WRONG)
def test_checkers_diagnose_typical_mistakes(check, answer, diagnosis):
    verdict = check(*answer)
    assert not verdict.passed and diagnosis in verdict.message, verdict.message


def _raises(*args):
    raise ZeroDivisionError("boom")


def _not_implemented(*args):
    raise NotImplementedError


@pytest.mark.parametrize("check", [ch06.check_posterior_variance, ch06.check_posterior_mean, ch06.check_ancestral_step,
                                   ch06.check_elbo_weight, ch06.check_decoder_nll, ch06.check_reverse_variance])
@pytest.mark.parametrize("answer", [None, "a string", 3, _raises, _not_implemented, sp.Symbol("z"), torch.zeros(2), [1, 2]])
def test_checkers_never_raise_on_malformed_answers(check, answer):
    verdict = check(answer)
    assert isinstance(verdict, Verdict) and not verdict.passed and verdict.message
