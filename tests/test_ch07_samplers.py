"""Chapter 7 (DDIM and the samplers): one test per theorem and per misconception of the chapter, the
evaluation module ``diffbook.foundations.sampler_eval``, and the exercise checkers of ``diffbook.exercises.ch07``."""

import math

import pytest
import sympy as sp
import torch

from diffbook import samplers, schedules
from diffbook.foundations import convergence, sampler_eval, symbolic
from diffbook.exercises import Verdict, ch07
from diffbook.losses import denoising_loss, edm_weight, lognormal_sigmas
from diffbook.metrics.mmd import mmd2
from diffbook.nets.mlp import MLP
from diffbook.param import EDMPrecond, Preconditioned
from diffbook.toy import GaussianMixture
from diffbook.train import train

f64 = torch.float64
W, MU, STD = ch07.GMM_WEIGHTS, ch07.GMM_MEANS, ch07.GMM_STDS  # the chapter's mixture
GMM = GaussianMixture.isotropic(W, MU, STD)
EXACT = sampler_eval.mixture_denoiser(MU, W, STD)
SIGMA_MAX, SIGMA_STOP = 80.0, 0.05


def gen(seed):
    return torch.Generator().manual_seed(seed)


@pytest.fixture(scope="module")
def paths():
    """200 starting points at σ̄ = 80 and their RK4 reference solution at σ̄ = 0.05 (exact score)."""
    x = samplers.prior_noise((200, 2), SIGMA_MAX, variance_preserving=False, generator=gen(0), dtype=f64)
    return x, sampler_eval.pf_ode_reference(EXACT, x, SIGMA_MAX, SIGMA_STOP, steps=300)


def path_errors(sampler, step_counts, paths, **kwargs):
    x, ref = paths
    nfe, err, _ = sampler_eval.sweep_nfe(sampler, EXACT, x, step_counts, lambda o: sampler_eval.rms_distance(o, ref),
                                         sigma_min=SIGMA_STOP, sigma_max=SIGMA_MAX, to_zero=False, **kwargs)
    return nfe, err


# --------------------------------------------------------------------------------------------- theorems


def test_thm_pf_ode_in_sigma_bar(at_random_points):
    """Proposition (PF-ODE in VE-equivalent variables): the field (x̄ - D)/σ̄ solves the continuity equation of
    p_σ̄ exactly (SymPy, Gaussian data), equals Song's PF-ODE after x = α x̄ (SymPy, generic α, σ), and its RK4
    solution matches the closed-form transport of a Gaussian to 1e-7 (measured 2e-9 with 200 steps)."""
    xb, sb, m, s, t = sp.symbols("xbar sigmabar m s t", positive=True)
    var = s**2 + sb**2
    p = sp.exp(-((xb - m) ** 2) / (2 * var)) / sp.sqrt(2 * sp.pi * var)
    D = m + s**2 / var * (xb - m)
    assert symbolic.continuity_residual(p, [(xb - D) / sb], sb, [xb]) == 0
    # the residual does detect a wrong field: O(1) relative to p at random points, not merely unsimplified
    ranges = {xb: (0.2, 2.0), sb: (0.2, 2.0), m: (0.2, 1.0), s: (0.3, 1.5)}
    assert max(at_random_points(symbolic.continuity_residual(p, [xb - D], sb, [xb]), ranges, scale=p)) > 1e-2
    alpha, sigma = sp.Function("alpha")(t), sp.Function("sigma")(t)
    g2 = sp.diff(sigma**2, t) - 2 * sp.diff(alpha, t) / alpha * sigma**2
    assert sp.simplify(g2 - 2 * alpha * sigma * sp.diff(sigma / alpha, t)) == 0

    mean, std = torch.tensor([[0.5, -1.0]], dtype=f64), 0.6
    gauss = sampler_eval.mixture_denoiser(mean, stds=std)
    x1 = torch.randn(50, 2, generator=gen(1), dtype=f64) * 5
    out = sampler_eval.pf_ode_reference(gauss, x1, 5.0, 0.1, steps=200)
    closed = mean + math.sqrt((std**2 + 0.1**2) / (std**2 + 5.0**2)) * (x1 - mean)
    assert float((out - closed).abs().max()) < 1e-7


def test_thm_ddim_family_keeps_marginals():
    """Theorem (marginals): with the true x0 as 'denoiser', one DDIM step is the kernel q_η; Var(x̄_s) = σ̄_s²
    within 2 % (about 7 standard errors at 2e5 samples) for η = 0, ½, 1, while the correlation with x̄_t changes."""
    n = 200_000
    x0 = torch.tensor([1.0, -2.0], dtype=f64).expand(n, 2)
    xt = x0 + 2.0 * torch.randn(n, 2, generator=gen(2), dtype=f64)
    corr = []
    for eta in (0.0, 0.5, 1.0):
        xs = samplers.sample_ddim(lambda x, s: x0, xt, torch.tensor([2.0, 0.5], dtype=f64), eta=eta, generator=gen(3))
        assert torch.allclose(xs.var(0), torch.full((2,), 0.25, dtype=f64), rtol=0.02)
        assert torch.allclose(xs.mean(0), x0[0], atol=0.01)
        corr.append(float(torch.corrcoef(torch.stack([xt[:, 0], xs[:, 0]]))[0, 1]))
    assert corr[0] > 0.999 and corr[2] < corr[1] - 0.3  # same marginals, different joint laws
    # the misuse that breaks the marginals: keeping the full σ_s on ε̂ while adding fresh noise
    too_wide = x0 + 0.5 * (xt - x0) / 2.0 + 0.5 * torch.randn(n, 2, generator=gen(4), dtype=f64)
    assert float(too_wide.var(0).mean()) > 0.45


def test_thm_eta_one_is_ddpm_posterior():
    """Theorem (η = 1 is DDPM): SymPy shows the Bayes posterior has DDIM's η = 1 mean and variance, and σ̃² = β̃ for
    VP; numerically, DDIM(η=1) and DDPM's ancestral sampler give the same samples to 1e-10."""
    a_s, s_s, a_t, s_t, x0, xt = sp.symbols("alpha_s sigma_s alpha_t sigma_t x_0 x_t", positive=True)
    a = a_t / a_s
    v = s_t**2 - a**2 * s_s**2
    tilde2 = s_s**2 * (1 - (s_s / a_s) ** 2 / (s_t / a_t) ** 2)
    assert sp.simplify(s_s**2 * v / s_t**2 - tilde2) == 0
    post_mean = v / s_t**2 * a_s * x0 + a * s_s**2 / s_t**2 * xt
    ddim_mean = a_s * x0 + sp.sqrt(s_s**2 - tilde2) * (xt - a_t * x0) / s_t
    assert sp.simplify((post_mean - ddim_mean).subs(a_t, a_s * s_t / (2 * s_s))) == 0
    ab_s, ab_t = sp.symbols("abar_s abar_t", positive=True)
    vp = {a_s: sp.sqrt(ab_s), s_s: sp.sqrt(1 - ab_s), a_t: sp.sqrt(ab_t), s_t: sp.sqrt(1 - ab_t)}
    assert sp.simplify(tilde2.subs(vp) - (1 - ab_s) / (1 - ab_t) * (1 - ab_t / ab_s)) == 0

    grid = schedules.ddpm_sigmas(schedules.linear_betas(), torch.arange(999, -1, -40))
    x = samplers.prior_noise((300, 2), grid[0], generator=gen(5), dtype=f64)
    ddim = samplers.sample_ddim(EXACT, x, grid, eta=1.0, generator=gen(6))
    ddpm = samplers.sample_ddpm(EXACT, x, grid, generator=gen(6))
    assert torch.allclose(ddim, ddpm, atol=1e-10)


def test_thm_ddim_three_faces():
    """Theorem (three faces): DDIM(η=0) = Euler in (σ̄, x̄) = DPM-Solver-1 = rectified-flow Euler, symbolically and
    numerically (to 1e-10; measured ~1e-14)."""
    xt, x0h = sp.symbols("x_t xhat_0", real=True)
    a_t, s_t, a_s, s_s = sp.symbols("alpha_t sigma_t alpha_s sigma_s", positive=True)
    eps = (xt - a_t * x0h) / s_t
    ddim = a_s * x0h + s_s * eps
    h = sp.log(a_s / s_s) - sp.log(a_t / s_t)
    assert sp.simplify(ddim - a_s * (xt / a_t + (s_s / a_s - s_t / a_t) * eps)) == 0
    assert sp.simplify(sp.expand_log(ddim - (a_s / a_t * xt - s_s * (sp.exp(h) - 1) * eps), force=True)) == 0
    assert sp.simplify(sp.expand_log(ddim - (s_s / s_t * xt + a_s * (1 - sp.exp(-h)) * x0h), force=True)) == 0
    t, s = sp.symbols("t s", positive=True)
    flow = {a_t: 1 - t, s_t: t, a_s: 1 - s, s_s: s}
    assert sp.simplify(ddim.subs(flow) - (xt + (s - t) * (eps - x0h).subs(flow))) == 0

    grid = schedules.karras_sigmas(12, 0.01, 80.0)
    x = samplers.prior_noise((300, 2), 80.0, generator=gen(7), dtype=f64)
    ref = samplers.sample_ddim(EXACT, x, grid)
    for other in (samplers.sample_euler(EXACT, x, grid), samplers.sample_flow_euler(EXACT, x, grid),
                  sampler_eval.sample_euler_in_time(EXACT, x, grid, schedule=schedules.FlowLinear())):
        assert float((other - ref).abs().max()) < 1e-10
    # DPM-Solver-1 written independently in VP variables (Lu et al. 2022, eq. 3.7)
    z = x / math.sqrt(1 + 80.0**2)
    for sg, sg1 in zip(grid[:-1].tolist(), grid[1:].tolist()):
        al, al1 = 1 / math.sqrt(1 + sg * sg), 1 / math.sqrt(1 + sg1 * sg1)
        e = (z / al - EXACT(z / al, sg)) / sg
        if sg1 == 0:
            z = (z - sg * al * e) / al
        else:
            z = (al1 / al) * z - sg1 * al1 * math.expm1(math.log(1 / sg1) - math.log(1 / sg)) * e
    assert float((z - ref).abs().max()) < 1e-10


def test_thm_ddim_exact_when_denoised_estimate_is_constant():
    """Theorem (three faces), exactness: for one-point data D is constant, and one DDIM step from σ̄ = 80 is exact."""
    point = torch.tensor([[0.7, -0.3]], dtype=f64)
    z = torch.randn(5, 2, generator=gen(8), dtype=f64)
    two_levels = torch.tensor([80.0, 0.01], dtype=f64)
    out = samplers.sample_ddim(sampler_eval.mixture_denoiser(point), point + 80.0 * z, two_levels)
    assert float((out - (point + 0.01 * z)).abs().max()) < 1e-10
    # with two data points D is no longer constant and one step is not exact
    pts = torch.tensor([[0.7, -0.3], [-1.0, 1.0]], dtype=f64)
    one = samplers.sample_ddim(sampler_eval.mixture_denoiser(pts), pts[:1] + 80.0 * z, two_levels)
    fine = sampler_eval.pf_ode_reference(sampler_eval.mixture_denoiser(pts), pts[:1] + 80.0 * z, 80.0, 0.01, steps=400)
    assert float((one - fine).abs().max()) > 1e-2


@pytest.mark.parametrize("sampler,per_step,order,tol", [
    (samplers.sample_euler, 1, 1.0, 0.15), (samplers.sample_ddim, 1, 1.0, 0.15), (samplers.sample_heun, 2, 2.0, 0.25),
], ids=["euler", "ddim", "heun"])
def test_thm_graded_grid_orders(sampler, per_step, order, tol, paths):
    """Theorem (orders on a graded grid): on EDM's ρ = 7 grid, global error ∝ NFE^-1 (Euler, DDIM), NFE^-2 (Heun)."""
    nfe, err = path_errors(sampler, [n // per_step for n in (16, 32, 64, 128)], paths)
    assert abs(convergence.fit_order(1.0 / nfe, err) - order) < tol
    assert (err[1:] < err[:-1]).all()


def test_thm_dpmpp_2m_second_order(paths):
    """Theorem (DPM-Solver++(2M) is second order): the weight approximation errs by h³/12 + O(h⁴) (SymPy), and the
    measured order is 2 ± 0.25."""
    h = sp.symbols("h", positive=True)
    series = sp.series((h - 1 + sp.exp(-h)) - h / 2 * (1 - sp.exp(-h)), h, 0, 5).removeO()
    assert sp.simplify(series - (h**3 / 12 - h**4 / 24)) == 0
    nfe, err = path_errors(samplers.sample_dpmpp_2m, [16, 32, 64, 128], paths)
    assert abs(convergence.fit_order(1.0 / nfe, err) - 2.0) < 0.25


# ------------------------------------------------------------------------------------------- misconceptions


@pytest.fixture(scope="module")
def trained_mlp():
    """A small MLP denoiser trained on the chapter's mixture with EDM's loss (a few seconds)."""
    torch.manual_seed(0)
    net = Preconditioned(MLP(2, hidden=64, depth=3), EDMPrecond(1.0))

    def loss_fn(model, batch, g):
        sigma = lognormal_sigmas(batch.shape[0], generator=g)
        return denoising_loss(model, batch, sigma, weight=edm_weight(sigma, 1.0), generator=g)

    data = gen(1)
    result = train(net, loss_fn, lambda step: GMM.sample(256, generator=data)[0].float(), steps=400, lr=3e-3,
                   ema_decay=0.98, progress=False, device="cpu")
    return result.ema.eval().requires_grad_(False)


N_MMD = 2000
BANDWIDTHS = [0.25, 0.5, 1.0]
# Two exact samples of 2000 give |MMD²| ≲ 2e-3 with these bandwidths; an untrained network scores ~0.25.
MMD_OK = 0.015


@pytest.fixture(scope="module")
def truth():
    return GMM.sample(N_MMD, generator=gen(9))[0].float()


def test_misconception_ddim_needs_a_different_model(trained_mlp, truth):
    """Misconception "DDIM needs a different model": the same network gives good samples with DDPM's ancestral
    sampler (100 steps) and with deterministic DDIM (20 steps); an untrained network does not."""
    betas = schedules.linear_betas()
    grid_ddpm = schedules.ddpm_sigmas(betas, torch.arange(999, -1, -10)).float()
    grid_ddim = schedules.ddpm_sigmas(betas, torch.arange(999, -1, -50)).float()
    x = samplers.prior_noise((N_MMD, 2), grid_ddpm[0], generator=gen(10))
    with torch.no_grad():
        ddpm = samplers.sample_ddpm(trained_mlp, x, grid_ddpm, generator=gen(11))
        ddim = samplers.sample_ddim(trained_mlp, x, grid_ddim)
        untrained = samplers.sample_ddim(Preconditioned(MLP(2, hidden=64, depth=3), EDMPrecond(1.0)), x, grid_ddim)
    assert float(mmd2(ddpm, truth, bandwidth=BANDWIDTHS)) < MMD_OK
    assert float(mmd2(ddim, truth, bandwidth=BANDWIDTHS)) < MMD_OK
    assert float(mmd2(untrained, truth, bandwidth=BANDWIDTHS)) > 5 * MMD_OK


def test_misconception_ddim_is_euler_in_any_variables(paths):
    """Misconception "DDIM is Euler on the PF-ODE, whatever the variables": Euler in the VP schedule's own time is a
    different first-order sampler; its distance from DDIM is comparable to their errors (16 steps)."""
    x, ref = paths
    grid = schedules.karras_sigmas(17, SIGMA_STOP, SIGMA_MAX)[:-1]
    ddim = samplers.sample_ddim(EXACT, x, grid)
    euler_t = sampler_eval.sample_euler_in_time(EXACT, x, grid, schedule=schedules.VPLinear())
    e_ddim, e_t = float(sampler_eval.rms_distance(ddim, ref)), float(sampler_eval.rms_distance(euler_t, ref))
    assert float(sampler_eval.rms_distance(ddim, euler_t)) > 0.3 * min(e_ddim, e_t)
    nfe, err = path_errors(sampler_eval.sample_euler_in_time, [16, 32, 64, 128], paths, schedule=schedules.VPLinear())
    assert abs(convergence.fit_order(1.0 / nfe, err) - 1.0) < 0.15  # ... and it is first order too


def test_misconception_higher_order_always_wins(paths):
    """Misconception "a second-order sampler beats a first-order one at every NFE": at 8 NFE Heun's error is more
    than twice Euler's (DPM-Solver++(2M) is not affected); at 64 NFE Heun is more than 4 times better (measured 4.9)."""
    _, euler = path_errors(samplers.sample_euler, [8, 64], paths)
    _, heun = path_errors(samplers.sample_heun, [4, 32], paths)
    _, dpmpp = path_errors(samplers.sample_dpmpp_2m, [8], paths)
    assert heun[0] > 2 * euler[0] and dpmpp[0] < euler[0]
    assert heun[1] < euler[1] / 4


def test_misconception_more_steps_reach_the_data(trained_mlp):
    """Misconception "with enough steps the sampler reproduces the data": with a trained network, DPM-Solver++(2M)
    converges to the network's own ODE solution (distance falls > 20x from 8 to 64 NFE) and not to the exact-score
    solution from the same noise: the distance to that one stops falling at the network's floor."""
    x = samplers.prior_noise((N_MMD, 2), 80.0, variance_preserving=False, generator=gen(12))
    grid = lambda n: schedules.karras_sigmas(n, 0.002, 80.0).float()  # noqa: E731
    with torch.no_grad():
        net_ref = samplers.sample_dpmpp_2m(trained_mlp, x, grid(256))
        net = {n: samplers.sample_dpmpp_2m(trained_mlp, x, grid(n)) for n in (8, 64)}
    exact_ref = samplers.sample_dpmpp_2m(EXACT, x, grid(256))
    to_own = {n: float(sampler_eval.rms_distance(out, net_ref)) for n, out in net.items()}
    to_exact = {n: float(sampler_eval.rms_distance(out, exact_ref)) for n, out in net.items()}
    floor = float(sampler_eval.rms_distance(net_ref, exact_ref))
    assert to_own[8] > 20 * to_own[64]
    assert to_exact[64] > 0.9 * floor and to_exact[64] > 5 * to_own[64]  # the remaining error is the network's


# --------------------------------------------------------------------------------------- diffbook.foundations.sampler_eval


def test_mixture_denoiser_matches_the_gaussian_mixture():
    x = torch.randn(300, 2, generator=gen(13), dtype=f64) * 3
    for sigma in (0.01, 0.3, 2.0, 50.0):
        assert torch.allclose(EXACT(x, sigma), GMM.denoiser(x, torch.full((300,), sigma, dtype=f64)), atol=1e-11)
    per_sample = torch.linspace(0.05, 5.0, 300, dtype=f64)
    assert torch.allclose(EXACT(x, per_sample), GMM.denoiser(x, per_sample), atol=1e-11)
    uniform = sampler_eval.mixture_denoiser(MU)  # uniform weights, zero width: the ideal denoiser of three points
    near = MU[[0, 1, 2, 1]] + 0.01
    assert torch.allclose(uniform(near, 0.01), MU[[0, 1, 2, 1]], atol=1e-8)
    assert torch.allclose(uniform(torch.zeros(1, 2, dtype=f64), 1e4), MU.mean(0, keepdim=True), atol=1e-6)


def test_ideal_denoiser_on_images_is_accurate_in_float32():
    data = torch.rand(50, 1, 8, 8, generator=gen(14)) * 2 - 1
    D = sampler_eval.mixture_denoiser(data)
    noisy = data[:7] + 0.002 * torch.randn(7, 1, 8, 8, generator=gen(15))
    out = D(noisy, 0.002)
    assert out.shape == noisy.shape and out.dtype == torch.float32
    assert torch.allclose(out, data[:7], atol=1e-5)


def test_mixture_denoiser_rejects_bad_input():
    with pytest.raises(TypeError, match="means must be a torch.Tensor"):
        sampler_eval.mixture_denoiser([[0.0, 1.0]])
    with pytest.raises(ValueError, match=r"means must have shape \(K, ...\)"):
        sampler_eval.mixture_denoiser(torch.zeros(3))
    with pytest.raises(ValueError, match=r"weights must have shape \(3,\)"):
        sampler_eval.mixture_denoiser(MU, torch.ones(2, dtype=f64) / 2)
    with pytest.raises(ValueError, match="weights must be positive and sum to 1"):
        sampler_eval.mixture_denoiser(MU, torch.ones(3, dtype=f64))
    with pytest.raises(ValueError, match="stds must be finite and >= 0"):
        sampler_eval.mixture_denoiser(MU, stds=-0.1)
    with pytest.raises(ValueError, match=r"stds must be a number or have shape \(3,\)"):
        sampler_eval.mixture_denoiser(MU, stds=torch.ones(2, dtype=f64))
    D = sampler_eval.mixture_denoiser(MU)
    with pytest.raises(ValueError, match=r"x must have shape \(n, 2\)"):
        D(torch.zeros(4, 3, dtype=f64), 1.0)
    with pytest.raises(ValueError, match="sigma must be > 0"):
        D(torch.zeros(4, 2, dtype=f64), 0.0)
    with pytest.raises(ValueError, match=r"sigma must be a scalar or have shape \(4,\)"):
        D(torch.zeros(4, 2, dtype=f64), torch.ones(3))
    with pytest.raises(TypeError, match="x must be a floating-point tensor"):
        D(torch.zeros(4, 2, dtype=torch.long), 1.0)


def test_nfe_counts_and_sweep():
    x = samplers.prior_noise((10, 2), 80.0, variance_preserving=False, generator=gen(16), dtype=f64)
    grid = schedules.karras_sigmas(6, 0.002, 80.0)
    assert sampler_eval.sample_with_nfe(samplers.sample_euler, EXACT, x, grid)[1] == 6
    assert sampler_eval.sample_with_nfe(samplers.sample_heun, EXACT, x, grid)[1] == 11  # last step to 0 is Euler
    assert sampler_eval.sample_with_nfe(samplers.sample_heun, EXACT, x, grid[:-1])[1] == 10
    assert sampler_eval.sample_with_nfe(samplers.sample_dpmpp_2m, EXACT, x, grid)[1] == 6
    out, _ = sampler_eval.sample_with_nfe(samplers.sample_ddim, EXACT, x, grid)
    assert torch.equal(out, samplers.sample_ddim(EXACT, x, grid))
    nfe, vals, outs = sampler_eval.sweep_nfe(samplers.sample_heun, EXACT, x, [2, 4], lambda o: o.abs().mean())
    assert nfe.tolist() == [3.0, 7.0] and vals.shape == (2,) and vals.dtype == f64 and len(outs) == 2
    nfe, _, _ = sampler_eval.sweep_nfe(samplers.sample_heun, EXACT, x, [1, 3], lambda o: 0.0, to_zero=False)
    assert nfe.tolist() == [2.0, 6.0]
    with pytest.raises(ValueError, match="step_counts must be a non-empty sequence of ints >= 2"):
        sampler_eval.sweep_nfe(samplers.sample_euler, EXACT, x, [1], lambda o: 0.0)
    with pytest.raises(ValueError, match="step_counts"):
        sampler_eval.sweep_nfe(samplers.sample_euler, EXACT, x, [], lambda o: 0.0)
    with pytest.raises(TypeError, match="measure must be callable"):
        sampler_eval.sweep_nfe(samplers.sample_euler, EXACT, x, [4], 3.0)
    with pytest.raises(TypeError, match="sampler must be callable"):
        sampler_eval.sample_with_nfe("euler", EXACT, x, grid)


def test_reference_and_distance_reject_bad_input():
    x = torch.zeros(3, 2, dtype=f64)
    with pytest.raises(ValueError, match="steps must be a positive int"):
        sampler_eval.pf_ode_reference(EXACT, x, 80.0, 0.05, steps=0)
    with pytest.raises(ValueError, match="need 0 < sigma_min < sigma_max"):
        sampler_eval.pf_ode_reference(EXACT, x, 0.05, 80.0)
    assert float(sampler_eval.rms_distance(torch.zeros(4, 3), torch.ones(4, 3))) == pytest.approx(math.sqrt(3))
    with pytest.raises(ValueError, match="a and b must have the same shape"):
        sampler_eval.rms_distance(torch.zeros(4, 3), torch.zeros(4, 2))
    with pytest.raises(TypeError, match="b must be a torch.Tensor"):
        sampler_eval.rms_distance(torch.zeros(4, 3), [0.0])


def test_euler_in_time_rejects_bad_grids():
    x = torch.zeros(3, 2, dtype=f64)
    with pytest.raises(ValueError, match="strictly decreasing"):
        sampler_eval.sample_euler_in_time(EXACT, x, torch.tensor([1.0, 2.0], dtype=f64), schedule=schedules.VPLinear())
    with pytest.raises(ValueError, match="cannot reach every noise level"):  # VE: sigma = 0 is at t = -infinity
        sampler_eval.sample_euler_in_time(EXACT, x, torch.tensor([1.0, 0.0], dtype=f64), schedule=schedules.VE())


# --------------------------------------------------------------------------------------------- checkers

A_S, S_S, A_T, S_T = sp.symbols("alpha_s sigma_s alpha_t sigma_t", positive=True)
H = sp.symbols("h", positive=True)


def ddim_step(x_t, x0, a_t, s_t, a_s, s_s, eta, z):
    eps = (x_t - a_t * x0) / s_t
    c = eta * s_s * math.sqrt(1 - (s_s / a_s) ** 2 / (s_t / a_t) ** 2)
    return a_s * x0 + math.sqrt(s_s**2 - c**2) * eps + c * z


def heun_step(D, x, s, s1):
    d = (x - D(x, s)) / s
    xe = x + (s1 - s) * d
    return x + 0.5 * (s1 - s) * (d + (xe - D(xe, s1)) / s1)


RIGHT = [
    (ch07.check_posterior_variance, (S_S**2 * (S_T**2 - (A_T / A_S) ** 2 * S_S**2) / S_T**2,)),
    (ch07.check_ddim_step, (ddim_step,)),
    (ch07.check_dpm_solver_coefficient, (sp.exp(H) - 1,)),
    (ch07.check_heun_step, (heun_step,)),
    (ch07.check_dpmpp_order, (2.05,)),
    (ch07.check_crossover, (20,)),
]


@pytest.mark.parametrize("check,answer", RIGHT, ids=lambda v: getattr(v, "__name__", ""))
def test_checkers_accept_right_answers(check, answer):
    verdict = check(*answer)
    assert isinstance(verdict, Verdict) and verdict.passed, verdict.message
    assert str(verdict).startswith("Exercise 7.")


@pytest.mark.parametrize("check,answer,diagnosis", [
    (ch07.check_posterior_variance, (S_T**2 - (A_T / A_S) ** 2 * S_S**2,), "variance of the forward step"),
    (ch07.check_posterior_variance, (S_S**2 * (S_T**2 - (A_T / A_S) ** 2 * S_S**2),), "forgot to divide by σ_t²"),
    (ch07.check_posterior_variance, (S_S**2 * (1 - (S_T / A_T) ** 2 / (S_S / A_S) ** 2),), "s and t are swapped"),
    (ch07.check_posterior_variance, ("sigma_s**2 * (1 - x)",), "uses symbol(s) x"),
    (ch07.check_ddim_step, (lambda xt, x0, at, st, as_, ss, eta, z: as_ * x0 + ss * (xt - at * x0) / st,), "ignores η"),
    (ch07.check_ddim_step, (lambda xt, x0, at, st, as_, ss, eta, z: ddim_step(xt, x0, at, st, as_, ss, 0.0, z)
                            + eta * ss * math.sqrt(1 - (ss / as_) ** 2 / (st / at) ** 2) * z,), "must shrink"),
    (ch07.check_ddim_step, (lambda xt, x0, at, st, as_, ss, eta, z: ddim_step(xt, x0, at, st, as_, ss, eta**2, z),),
     "not η²·σ̃"),
    (ch07.check_ddim_step, (lambda xt, x0, at, st, as_, ss, eta, z: as_ * x0 + math.sqrt(ss**2 - (eta * ss) ** 2)
                            * (xt - at * x0) / st + eta * ss * z,), "you used σ_s where σ̃ belongs"),
    (ch07.check_dpm_solver_coefficient, (1 - sp.exp(-H),), "data-prediction form"),
    (ch07.check_dpm_solver_coefficient, (H,), "first-order Taylor"),
    (ch07.check_heun_step, (lambda D, x, s, s1: x + (s1 - s) * (x - D(x, s)) / s,), "this is Euler's step"),
    (ch07.check_heun_step, (lambda D, x, s, s1: 2 * heun_step(D, x, s, s1) - x,), "forgot to halve"),
    (ch07.check_dpmpp_order, (-2.0,), "the sign flips"),
    (ch07.check_dpmpp_order, (1.0,), "first-order slope"),
    (ch07.check_crossover, (10,), "number of Heun *steps*"),
    (ch07.check_crossover, (16,), "not yet better"),
    (ch07.check_crossover, (32,), "already better at a smaller budget"),
    (ch07.check_crossover, (20.5,), "whole number"),
])
def test_checkers_diagnose_typical_mistakes(check, answer, diagnosis):
    verdict = check(*answer)
    assert not verdict.passed
    assert diagnosis in verdict.message, verdict.message


def raises(*args):
    raise ZeroDivisionError("boom")


def not_implemented(*args):
    raise NotImplementedError


@pytest.mark.parametrize("check,answer", RIGHT, ids=lambda v: getattr(v, "__name__", ""))
@pytest.mark.parametrize("bad", [None, ..., "nonsense (", not_implemented, raises, lambda *a: "oops",
                                 lambda *a: torch.zeros(7), [1.0, 2.0], float("nan")])
def test_checkers_never_raise_on_malformed_answers(check, answer, bad, malformed_verdict):
    malformed_verdict(check(*([bad] * len(answer))), bad)
