"""Chapter 5 (learning the score): one named test per theorem and per misconception of the chapter, tests of
diffbook.foundations.score_matching (including bad input), and tests of the chapter's exercise checkers."""

import math

import pytest
import sympy as sp
import torch

from diffbook import losses, param, sde
from diffbook import schedules as S
from diffbook.foundations import score_matching as sm
from diffbook.exercises import Verdict, ch05
from diffbook.nets import MLP
from diffbook.toy import GaussianMixture

f64 = torch.float64


def petals() -> GaussianMixture:
    """The chapter's five elongated Gaussians on a circle."""
    angles = torch.tensor([0.0, 1.3, 2.5, 3.9, 5.1], dtype=f64)
    means = 1.3 * torch.stack([angles.cos(), angles.sin()], dim=1)
    rot = torch.stack([torch.stack([angles.cos(), -angles.sin()], -1), torch.stack([angles.sin(), angles.cos()], -1)], -2)
    covs = rot @ torch.diag(torch.tensor([0.25**2, 0.08**2], dtype=f64)) @ rot.transpose(1, 2)
    return GaussianMixture(torch.tensor([0.3, 0.15, 0.2, 0.2, 0.15], dtype=f64), means, covs)


GMM = petals()
FIT = GaussianMixture(torch.ones(1, dtype=f64), GMM.mean()[None], GMM.covariance()[None])


def closed_form_posteriors(mixture, x, alpha, sigma):
    """E[x₀|x], E[ε|x] for x = α x₀ + σ ε written out here, independent of diffbook.param and diffbook.toy's
    posterior code: per component x ~ N(α μ_k, C_k = α² Σ_k + σ² I), Cov(x₀, x) = α Σ_k, Cov(ε, x) = σ I, so
    E[x₀|x, k] = μ_k + α Σ_k C_k⁻¹ (x - α μ_k) and E[ε|x, k] = σ C_k⁻¹ (x - α μ_k), weighted by P(k|x)."""
    eye = torch.eye(x.shape[1], dtype=f64)
    logp, x0s, epss = [], [], []
    for w, mu, cov in zip(mixture.weights, mixture.means, mixture.covs):
        c = alpha**2 * cov + sigma**2 * eye
        logp.append(torch.log(w) + torch.distributions.MultivariateNormal(alpha * mu, c).log_prob(x))
        gain = torch.linalg.solve(c, (x - alpha * mu).T).T
        x0s.append(mu + alpha * gain @ cov.T)
        epss.append(sigma * gain)
    r = torch.softmax(torch.stack(logp, 1), dim=1)[..., None]
    return (r * torch.stack(x0s, 1)).sum(1), (r * torch.stack(epss, 1)).sum(1)


def noisy_pairs(n, alpha, sigma, seed=0, mixture=GMM):
    g = torch.Generator().manual_seed(seed)
    x0, _ = mixture.sample(n, generator=g)
    eps = torch.randn(x0.shape, generator=g, dtype=f64)
    return x0, eps, alpha * x0 + sigma * eps


# ------------------------------------------------------------------------------------------- theorems


def test_thm_score_is_posterior_mean_of_kernel_score():
    """Lemma thm-ch5-score-average: ∇log p_t(x) = E[∇log p(x|x0) | x_t = x]. The posterior average over
    20 000 data samples (self-normalised importance sampling) matches the closed-form mixture score to a
    relative squared error < 2e-3; for a finite data set it is exact (to 1e-10)."""
    alpha, sigma = 0.8, 0.6
    data, _ = GMM.sample(20_000, generator=torch.Generator().manual_seed(1))
    _, _, x = noisy_pairs(300, alpha, sigma, seed=2)
    est = sm.empirical_score(x, data, alpha, sigma, chunk=128)
    true = GMM.score(x, alpha, sigma)
    assert float((est - true).pow(2).sum() / true.pow(2).sum()) < 2e-3
    few = data[:7]
    deltas = GaussianMixture(torch.full((7,), 1 / 7, dtype=f64), few, torch.zeros(7, 2, 2, dtype=f64))
    assert torch.allclose(sm.empirical_score(x, few, alpha, sigma), deltas.score(x, alpha, sigma), atol=1e-10)


def test_thm_vincent_dsm_equals_esm_plus_constant():
    """Theorem thm-ch5-vincent. SymPy: for Gaussian data and every linear model the gap J_DSM - J_ESM is free
    of the model and equals C. Monte Carlo (200k samples): along a family of models the gap moves by < 2% of
    the change of J_ESM, and equals dsm_constant within 4 standard errors."""
    m = sp.Symbol("m", real=True)
    s0, al, sg = sp.symbols("s_0 alpha sigma", positive=True)
    a, b, u, z = sp.symbols("a b u z", real=True)  # u, z independent standard normals

    def expect(expr):
        moment = lambda k: 0 if k % 2 else sp.factorial2(k - 1)  # noqa: E731
        return sum(c * moment(i) * moment(j) for (i, j), c in sp.Poly(sp.expand(expr), u, z).terms())

    xt = al * (m + s0 * u) + sg * z
    true = -(xt - al * m) / (al**2 * s0**2 + sg**2)
    gap = sp.simplify(expect((a * xt + b + z / sg) ** 2) - expect((a * xt + b - true) ** 2))
    assert not gap.has(a) and not gap.has(b)
    assert sp.simplify(gap - (1 / sg**2 - 1 / (al**2 * s0**2 + sg**2))) == 0

    alpha, sigma = 0.8, 0.6
    x0, _, x_t = noisy_pairs(200_000, alpha, sigma, seed=3)
    exact, gauss = GMM.score(x_t, alpha, sigma), FIT.score(x_t, alpha, sigma)
    gaps, esms = [], []
    for theta in [-0.5, 0.0, 0.5, 1.0, 1.5]:
        model = exact + theta * (gauss - exact)
        gaps.append(float(losses.dsm_loss(model, x_t, x0, alpha, sigma).mean() - losses.esm_loss(model, exact).mean()))
        esms.append(float(losses.esm_loss(model, exact).mean()))
    c, se = sm.dsm_constant(x_t, x0, exact, alpha, sigma)
    assert max(gaps) - min(gaps) < 0.02 * (max(esms) - min(esms))
    assert abs(sum(gaps) / len(gaps) - float(c)) < 4 * float(se)
    # the variance form of C equals E|kernel score|^2 - E|score|^2 up to Monte-Carlo error
    alt = float((sm.conditional_score(x_t, x0, alpha, sigma) ** 2).mean() - (exact**2).mean())
    assert abs(alt - float(c)) < 0.01 * float(c)


def test_thm_tweedie():
    """Theorem thm-ch5-tweedie: (x + σ²∇log p_t)/α equals the posterior mean by Gaussian conditioning, to 1e-9,
    for scalar and per-sample noise levels; E[ε|x] = -σ∇log p_t; SymPy: the Gaussian case symbolically."""
    for alpha, sigma in [(0.996, 0.089), (0.8, 0.6), (0.15, 0.99), (1.0, 3.0)]:
        _, _, x = noisy_pairs(500, alpha, sigma, seed=4)
        tw = param.x0_from_score(x, GMM.score(x, alpha, sigma), alpha, sigma)
        assert torch.allclose(tw, GMM.posterior_mean(x, alpha, sigma), atol=1e-9)
        assert torch.allclose(sm.posterior_eps(GMM, x, alpha, sigma), -sigma * GMM.score(x, alpha, sigma), atol=1e-9)
    a = torch.linspace(0.2, 1.0, 64, dtype=f64)
    s = torch.linspace(0.05, 2.0, 64, dtype=f64)
    x = GMM.sample(64, generator=torch.Generator().manual_seed(5))[0] * a[:, None] + s[:, None] * 0.7
    tw = param.x0_from_score(x, GMM.score(x, a, s), a[:, None], s[:, None])
    assert torch.allclose(tw, GMM.posterior_mean(x, a, s), atol=1e-9)
    xs, m = sp.symbols("x m", real=True)
    s0, al, sg = sp.symbols("s_0 alpha sigma", positive=True)
    v = al**2 * s0**2 + sg**2
    assert sp.simplify((xs + sg**2 * (-(xs - al * m) / v)) / al - (m + al * s0**2 / v * (xs - al * m))) == 0


def test_thm_eps_loss_is_sigma_squared_dsm_sample_by_sample():
    """Theorem thm-ch5-eps: ‖ε̂ - ε‖² = σ²‖ŝ - ∇log p(x_t|x0)‖² with ŝ = -ε̂/σ, per sample (relative 1e-12),
    for the output of a network and for per-sample noise levels."""
    net = MLP(2, hidden=16, depth=1).double()
    torch.nn.init.normal_(net.out.weight, std=0.5)
    alpha = torch.linspace(0.3, 1.0, 400, dtype=f64)
    sigma = torch.sqrt(1 - alpha**2) + 0.01
    x0, eps, _ = noisy_pairs(400, 1.0, 1.0, seed=6)
    x_t = alpha[:, None] * x0 + sigma[:, None] * eps
    with torch.no_grad():
        eps_hat = net(x_t, sigma)
    lhs = losses.eps_mse(eps_hat, eps)
    rhs = sigma**2 * losses.dsm_loss(param.score_from_eps(eps_hat, sigma[:, None]), x_t, x0, alpha[:, None], sigma[:, None])
    assert torch.allclose(lhs, rhs, rtol=1e-12, atol=0)


def test_thm_irreducible_eps_loss():
    """Proposition thm-ch5-floor: E‖ε - E[ε|x]‖² = (α²/σ²) E‖x0 - E[x0|x]‖² = σ² C exactly on the samples;
    any other predictor has a larger loss; for Gaussian data the relative floor is (1/d) Σ α²λ/(α²λ + σ²) (±0.02)."""
    alpha, sigma = 0.9, 0.4
    x0, eps, x = noisy_pairs(50_000, alpha, sigma, seed=7)
    eps_star = sm.posterior_eps(GMM, x, alpha, sigma)
    floor = float((eps - eps_star).pow(2).mean())
    via_x0 = alpha**2 / sigma**2 * float((x0 - GMM.posterior_mean(x, alpha, sigma)).pow(2).mean())
    c, _ = sm.dsm_constant(x, x0, GMM.score(x, alpha, sigma), alpha, sigma)
    assert abs(floor - via_x0) < 1e-10 and abs(floor - sigma**2 * float(c)) < 1e-10
    for other in [sm.posterior_eps(FIT, x, alpha, sigma), 1.05 * eps_star, x / sigma]:
        assert float((eps - other).pow(2).mean()) > floor
    sigmas = torch.tensor([0.05, 0.3, 1.0, 4.0], dtype=f64)
    rep = sm.errors_by_noise_level(FIT.denoiser, FIT, sigmas, 40_000, generator=torch.Generator().manual_seed(8))
    lam = torch.linalg.eigvalsh(FIT.covariance())
    formula = (lam / (lam + sigmas[:, None] ** 2)).mean(1)
    assert torch.allclose(rep.relative_floor, formula, atol=0.02)
    assert torch.allclose(rep.excess, torch.zeros_like(rep.excess), atol=1e-20)


def test_thm_conversions_and_loss_weights():
    """Proposition thm-ch5-conversions: every row of the chapter's table. SymPy: diffbook.param's conversions
    invert x = αx0 + σε symbolically. Numerically: the exact optimum of each parameterisation converts to the
    posterior mean (1e-9); the flow velocity equals the PF-ODE drift; each loss is w × ε-loss (rtol 1e-10)."""
    x0s, e = sp.symbols("x_0 epsilon", real=True)
    a, s, da, ds = sp.symbols("alpha sigma alphadot sigmadot", real=True)
    x = a * x0s + s * e
    v = param.v_from_x0_eps(x0s, e, a, s)
    u = param.velocity_from_x0_eps(x0s, e, da, ds)
    for residual in [param.x0_from_eps(x, e, a, s) - x0s, param.eps_from_x0(x, x0s, a, s) - e,
                     param.x0_from_score(x, -e / s, a, s) - x0s, param.x0_from_v(x, v, a, s) - x0s,
                     param.eps_from_v(x, v, a, s) - e, param.x0_from_velocity(x, u, a, s, da, ds) - x0s]:
        assert sp.simplify(residual) == 0
    eh = sp.Symbol("epsilon_hat", real=True)
    x0h = param.x0_from_eps(x, eh, a, s)
    weights = {"x0": (x0h - x0s) ** 2, "v": (param.v_from_x0_eps(x0h, eh, a, s) - v) ** 2,
               "score": (-eh / s + e / s) ** 2, "velocity": (param.velocity_from_x0_eps(x0h, eh, da, ds) - u) ** 2}
    expected = {"x0": s**2 / a**2, "v": (a**2 + s**2) ** 2 / a**2, "score": 1 / s**2, "velocity": (ds - da * s / a) ** 2}
    for k in weights:
        assert sp.simplify(weights[k] / (eh - e) ** 2 - expected[k]) == 0

    for sch in [S.VPCosine(), S.FlowLinear(), S.VE(), S.SubVP()]:
        tt = torch.tensor(0.4, dtype=f64)
        (al, dal), (sg, dsg) = S.time_derivative(sch.alpha, tt), S.time_derivative(sch.sigma, tt)
        x0, eps, xt = noisy_pairs(300, al, sg, seed=9)
        # the exact optimum of each regression target, from the closed form (not from param's conversions)
        x0_star, eps_star = closed_form_posteriors(GMM, xt, al, sg)
        v_star = al * eps_star - sg * x0_star  # E[v|x] = E[α ε - σ x₀ | x] (Salimans & Ho 2022)
        u_star = dal * x0_star + dsg * eps_star  # E[u|x] = E[α̇ x₀ + σ̇ ε | x]
        score = GMM.score(xt, al, sg)
        for x0_hat in [param.x0_from_eps(xt, eps_star, al, sg), param.x0_from_score(xt, score, al, sg),
                       param.x0_from_v(xt, v_star, al, sg), param.x0_from_velocity(xt, u_star, al, sg, dal, dsg)]:
            assert torch.allclose(x0_hat, x0_star, atol=1e-9)
        assert torch.allclose(param.eps_from_score(score, sg), eps_star, atol=1e-9)  # E[ε|x] = -σ∇log p
        pf = sde.probability_flow_drift(sch, lambda z, t: GMM.score(z, sch.alpha(t), sch.sigma(t)), xt, tt)
        assert torch.allclose(u_star, pf, atol=1e-8)
        e_hat = eps + 0.3 * torch.randn(eps.shape, generator=torch.Generator().manual_seed(10), dtype=f64)
        x0_hat = param.x0_from_eps(xt, e_hat, al, sg)
        el = losses.eps_mse(e_hat, eps)
        pairs = {"eps": el, "x0": losses.x0_mse(x0_hat, x0),
                 "score": losses.dsm_loss(param.score_from_eps(e_hat, sg), xt, x0, al, sg),
                 "v": losses.v_mse(param.v_from_x0_eps(x0_hat, e_hat, al, sg), x0, eps, al, sg),
                 "velocity": losses.flow_matching_loss(param.velocity_from_x0_eps(x0_hat, e_hat, dal, dsg), x0, eps, dal, dsg)}
        for k, loss in pairs.items():
            assert torch.allclose(loss, sm.eps_equivalent_weight(k, al, sg, dal, dsg) * el, rtol=1e-10)


# -------------------------------------------------------------------------------------- misconceptions


def test_misconception_eps_network_recovers_the_added_noise():
    """Wrong claim: the optimal ε̂ equals the noise ε that was added. At σ = 0.01 the exact E[ε|x] misses
    > 90% of the noise's variance (the claim predicts 0%); at every level the residual variance is the loss floor,
    and at σ = 10 the floor is < 5%: the misses are large exactly where the noise is small."""
    rep = sm.errors_by_noise_level(GMM.denoiser, GMM, torch.tensor([0.01, 0.3, 10.0], dtype=f64), 20_000,
                                   generator=torch.Generator().manual_seed(11))
    assert rep.relative_floor[0] > 0.9 and rep.relative_floor[2] < 0.05
    assert torch.allclose(rep.eps_loss, rep.floor, atol=1e-12)  # the exact predictor's loss *is* the floor
    x0, eps, x = noisy_pairs(20_000, 1.0, 0.01, seed=12)
    eps_star = sm.posterior_eps(GMM, x, 1.0, 0.01)
    assert not torch.allclose(eps_star, eps, atol=0.5)
    corr = float(torch.corrcoef(torch.stack([eps_star[:, 0], eps[:, 0]]))[0, 1])
    assert corr < 0.35, corr


def test_misconception_perfect_model_has_zero_loss():
    """Wrong claims: a perfect score has zero DSM loss, and a lower loss means a better model. The exact score's
    DSM loss is C > 1 at α = 0.8, σ = 0.6; and a score that is off by 50 % everywhere at σ = 10 has an ε-loss
    more than 20 % below the exact score's at σ = 0.3."""
    x0, _, x = noisy_pairs(50_000, 0.8, 0.6, seed=13)
    assert float(losses.dsm_loss(GMM.score(x, 0.8, 0.6), x, x0, 0.8, 0.6).mean()) > 1.0
    exact_mid = sm.errors_by_noise_level(GMM.denoiser, GMM, torch.tensor([0.3], dtype=f64), 20_000,
                                         generator=torch.Generator().manual_seed(14))
    _, eps, x = noisy_pairs(20_000, 1.0, 10.0, seed=15)
    half = 0.5 * sm.posterior_eps(GMM, x, 1.0, 10.0)  # the score -ε̂/σ is half the true score
    assert float((half - eps).pow(2).mean()) < 0.8 * float(exact_mid.eps_loss[0])


def test_misconception_tweedie_needs_gaussian_data():
    """Wrong claim: Tweedie's formula holds only for Gaussian data. On the (non-Gaussian) mixture it is exact
    to 1e-9, while the formula that does assume Gaussian data (Wiener) has a relative MSE > 0.1 at σ = 0.3."""
    _, _, x = noisy_pairs(20_000, 1.0, 0.3, seed=15)
    exact = GMM.posterior_mean(x, 1.0, 0.3)
    assert torch.allclose(param.x0_from_score(x, GMM.score(x, 1.0, 0.3), 1.0, 0.3), exact, atol=1e-9)
    wiener = FIT.posterior_mean(x, 1.0, 0.3)
    assert float((wiener - exact).pow(2).mean() / (x - exact).pow(2).mean()) > 0.1


def test_misconception_parameterisations_learn_different_things():
    """Wrong claim: ε-, x0- and v-networks learn different functions. The posterior means of the three targets,
    each computed on its own, convert to one denoiser (1e-10); what differs is the weight, whose ratio between
    x0- and ε-prediction spans a factor 10^4 over σ/α in [0.01, 1]."""
    alpha, sigma = 0.6, 0.8
    _, _, x = noisy_pairs(2000, alpha, sigma, seed=16)
    # the three regression optima, each from its own closed form (independent of the conversions under test)
    x0_star, eps_star = closed_form_posteriors(GMM, x, alpha, sigma)
    v_star = alpha * eps_star - sigma * x0_star  # E[v|x] by linearity of the posterior mean
    assert torch.allclose(sm.posterior_eps(GMM, x, alpha, sigma), eps_star, atol=1e-10)
    assert torch.allclose(GMM.posterior_mean(x, alpha, sigma), x0_star, atol=1e-10)
    from_eps = param.x0_from_eps(x, eps_star, alpha, sigma)
    from_v = param.x0_from_v(x, v_star, alpha, sigma)
    assert torch.allclose(from_eps, x0_star, atol=1e-10) and torch.allclose(from_v, x0_star, atol=1e-10)
    # and the optima really are different functions of x, so agreeing after conversion is not trivial
    assert float((eps_star - x0_star).abs().mean()) > 0.1 and float((v_star - x0_star).abs().mean()) > 0.1
    sbar = torch.tensor([0.01, 1.0], dtype=f64)
    w = sm.eps_equivalent_weight("x0", 1 / torch.sqrt(1 + sbar**2), sbar / torch.sqrt(1 + sbar**2))
    assert float(w[1] / w[0]) > 0.999e4


# --------------------------------------------------------------------------------- diffbook.foundations.score_matching


def test_conditional_score_and_bad_input():
    x0, eps, x = noisy_pairs(10, 0.7, 0.5, seed=17)
    assert torch.allclose(sm.conditional_score(x, x0, 0.7, 0.5), -eps / 0.5)
    per = torch.full((10,), 0.5, dtype=f64)
    assert torch.allclose(sm.conditional_score(x, x0, torch.full((10,), 0.7, dtype=f64), per), -eps / 0.5)
    with pytest.raises(ValueError, match="x_t has shape"):
        sm.conditional_score(x, x0[:5], 0.7, 0.5)
    with pytest.raises(ValueError, match="sigma must be finite and > 0"):
        sm.conditional_score(x, x0, 0.7, 0.0)
    with pytest.raises(ValueError, match=r"sigma must be a scalar or have shape \(10,\)"):
        sm.conditional_score(x, x0, 0.7, torch.ones(3, dtype=f64))
    with pytest.raises(TypeError, match="x_t must be a torch.Tensor"):
        sm.conditional_score([[1.0]], x0, 0.7, 0.5)
    with pytest.raises(TypeError, match="alpha must be a number or a tensor"):
        sm.conditional_score(x, x0, "0.7", 0.5)


def test_dsm_constant_bad_input():
    x0, _, x = noisy_pairs(10, 0.7, 0.5, seed=18)
    with pytest.raises(ValueError, match="at least 2 samples"):
        sm.dsm_constant(x[:1], x0[:1], x[:1], 0.7, 0.5)
    with pytest.raises(ValueError, match="true_score has shape"):
        sm.dsm_constant(x, x0, x[:, :1], 0.7, 0.5)


def test_posterior_eps_and_empirical_score_bad_input():
    x = torch.zeros(4, 2, dtype=f64)
    with pytest.raises(TypeError, match="mixture must be a diffbook.toy.GaussianMixture"):
        sm.posterior_eps("gmm", x, 1.0, 0.5)
    with pytest.raises(ValueError, match="trailing shapes must match"):
        sm.empirical_score(x, torch.zeros(5, 3, dtype=f64), 1.0, 0.5)
    with pytest.raises(ValueError, match="chunk must be a positive int"):
        sm.empirical_score(x, torch.zeros(5, 2, dtype=f64), 1.0, 0.5, chunk=0)
    with pytest.raises(ValueError, match="scalar alpha and sigma"):
        sm.empirical_score(x, torch.zeros(5, 2, dtype=f64), 1.0, torch.ones(1, dtype=f64))


def test_eps_equivalent_weight_values_and_bad_input():
    assert math.isclose(float(sm.eps_equivalent_weight("x0", 0.8, 0.6)), 0.5625)
    assert math.isclose(float(sm.eps_equivalent_weight("v", 0.8, 0.6)), 1.5625)
    assert math.isclose(float(sm.eps_equivalent_weight("score", 0.8, 0.5)), 4.0)
    assert math.isclose(float(sm.eps_equivalent_weight("velocity", 0.5, 0.5, -1.0, 1.0)), 4.0)  # linear path: 1/α²
    with pytest.raises(ValueError, match="target must be one of"):
        sm.eps_equivalent_weight("noise", 0.8, 0.6)
    with pytest.raises(ValueError, match="needs dalpha and dsigma"):
        sm.eps_equivalent_weight("velocity", 0.8, 0.6)
    with pytest.raises(ValueError, match="alpha and sigma must be finite and > 0"):
        sm.eps_equivalent_weight("x0", 0.0, 0.6)


def test_errors_by_noise_level_identity_and_bad_input():
    """eps_loss = floor + excess + cross_term exactly; works with an nn.Module denoiser in float32."""
    net = param.Preconditioned(MLP(2, hidden=16, depth=1), param.EDMPrecond(1.0))  # untrained: D = c_skip x
    sig = torch.tensor([0.1, 1.0], dtype=f64)
    rep = sm.errors_by_noise_level(net, GMM, sig, 500, generator=torch.Generator().manual_seed(19))
    assert torch.allclose(rep.eps_loss, rep.floor + rep.excess + rep.cross_term, rtol=1e-9)
    assert (rep.excess > 0).all() and rep.n == 500 and rep.sigma.shape == (2,)
    with pytest.raises(ValueError, match="sigmas must be a non-empty 1-D tensor"):
        sm.errors_by_noise_level(net, GMM, torch.tensor([0.0, 1.0], dtype=f64), 10)
    with pytest.raises(ValueError, match="n must be an int >= 2"):
        sm.errors_by_noise_level(net, GMM, sig, 1)
    with pytest.raises(TypeError, match="mixture must be"):
        sm.errors_by_noise_level(net, None, sig, 10)
    with pytest.raises(TypeError, match="denoiser must be callable"):
        sm.errors_by_noise_level(3, GMM, sig, 10)


# ------------------------------------------------------------------------------------------ checkers


def tweedie_x0(x, score, alpha, sigma):
    return (x + sigma**2 * score) / alpha


def from_v(x, v, alpha, sigma):
    n = alpha**2 + sigma**2
    return (sigma * x + alpha * v) / n, (alpha * x - sigma * v) / n


X, X0, M = sp.symbols("x x0 m", real=True)
AL, SG, SS = sp.symbols("alpha sigma s", positive=True)
RIGHT = [
    (ch05.check_conditional_score, (-(X - AL * X0) / SG**2,)),
    (ch05.check_tweedie, (tweedie_x0,)),
    (ch05.check_gaussian_posterior_mean, ((AL * SS**2 * X + SG**2 * M) / (AL**2 * SS**2 + SG**2),)),
    (ch05.check_from_v, (from_v,)),
    (ch05.check_loss_weights, (SG**2 / AL**2, (AL**2 + SG**2) ** 2 / AL**2)),
    (ch05.check_noise_floor, (0.974, 0.108)),
]


@pytest.mark.parametrize("check,answer", RIGHT, ids=lambda v: getattr(v, "__name__", ""))
def test_checkers_accept_right_answers(check, answer):
    verdict = check(*answer)
    assert isinstance(verdict, Verdict) and verdict.passed, verdict.message
    assert str(verdict).startswith("Exercise 5.")


@pytest.mark.parametrize(
    "check,answer,diagnosis",
    [
        (ch05.check_conditional_score, ((X - AL * X0) / SG**2,), "sign error"),
        (ch05.check_conditional_score, (-(X - X0) / SG**2,), "scaled by α"),
        (ch05.check_conditional_score, (-(X - AL * X0) / SG,), "σ should be squared"),
        (ch05.check_conditional_score, ("-(x - alpha*x0)**2/(2*sigma**2)",), "that is the log-density"),
        (ch05.check_tweedie, (lambda x, s, a, g: (x + g * s) / a,), "σ must be squared"),
        (ch05.check_tweedie, (lambda x, s, a, g: x + g**2 * s,), "forgot to divide by α"),
        (ch05.check_tweedie, (lambda x, s, a, g: (x - g**2 * s) / a,), "wrong sign"),
        (ch05.check_tweedie, (lambda x, s, a, g: (x + 0.64 * s) / 0.6,), "use the α and σ you are given"),
        (ch05.check_gaussian_posterior_mean, ((SS**2 * X + SG**2 * M) / (SS**2 + SG**2),), "answer for α = 1"),
        (ch05.check_gaussian_posterior_mean, ((X + SG**2 * (-(X - M) / SS**2)) / AL,), "score of the clean data"),
        (ch05.check_gaussian_posterior_mean, (X / AL,), "unbiased but noisy"),
        (ch05.check_from_v, (lambda x, v, a, s: (s * x + a * v, a * x - s * v),), "only when α² + σ² = 1"),
        (ch05.check_from_v, (lambda x, v, a, s: from_v(x, v, a, s)[::-1],), "you returned (x0, eps)"),
        (ch05.check_from_v, (lambda x, v, a, s: x,), "return a pair"),
        (ch05.check_loss_weights, (SG / AL, (AL**2 + SG**2) ** 2 / AL**2), "*squared* norm"),
        (ch05.check_loss_weights, (AL**2 / SG**2, 1), "inverted"),
        (ch05.check_loss_weights, (SG**2 / AL**2, 1 / AL**2), "only on VP paths"),
        (ch05.check_loss_weights, (SG**2 / AL**2, (AL**2 + SG**2) / AL), "square the factor"),
        (ch05.check_noise_floor, (0.0, 0.0), "both are about 0"),
        (ch05.check_noise_floor, (0.108, 0.974), "swapped"),
        (ch05.check_noise_floor, (0.974, 0.1216), "naive prediction x/σ"),
        (ch05.check_noise_floor, (0.5, 0.108), "floor_low = 0.5 is off"),
    ],
)
def test_checkers_diagnose_typical_mistakes(check, answer, diagnosis):
    verdict = check(*answer)
    assert not verdict.passed
    assert diagnosis in verdict.message, verdict.message


def _not_implemented(*args):
    raise NotImplementedError


def _crashes(*args):
    raise ZeroDivisionError("boom")


@pytest.mark.parametrize("check,answer", RIGHT, ids=lambda v: getattr(v, "__name__", ""))
@pytest.mark.parametrize("bad", [None, ..., 42, "not an answer", float("nan"), _not_implemented, _crashes,
                                 lambda *a: "oops", lambda *a: torch.zeros(7), lambda *a: (torch.zeros(7),) * 2])
def test_checkers_never_raise_on_malformed_answers(check, answer, bad, malformed_verdict):
    malformed_verdict(check(*([bad] * len(answer))), bad)


def test_exercise_mixture():
    gmm = ch05.exercise_mixture()
    assert gmm.dim == 1 and torch.allclose(gmm.mean(), torch.zeros(1, dtype=f64))
