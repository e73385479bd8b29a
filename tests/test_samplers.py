"""Samplers driven by the exact Gaussian-mixture denoiser: they reach the true distribution, converge at
their theoretical orders, satisfy the identities of Chapter 7, and reject bad input by name."""

import math

import pytest
import torch

from diffbook import samplers
from diffbook.foundations import convergence
from diffbook import schedules as S
from diffbook.metrics.mmd import mmd2
from diffbook.toy import GaussianMixture

f64 = torch.float64
GMM = GaussianMixture.isotropic(
    torch.tensor([0.3, 0.7], dtype=f64), torch.tensor([[-1.0, 0.0], [1.5, 1.0]], dtype=f64), torch.tensor([0.3, 0.5], dtype=f64)
)
N = 3000
BANDWIDTHS = [0.25, 0.5, 1.0]
# Under the null (two exact samples of 3000) the unbiased MMD² with these bandwidths has standard deviation
# about 7e-4; 4e-3 is ~5 standard deviations, and a mixture with 30 % wider components scores 1.3e-2.
MMD_THRESHOLD = 4e-3
REF = GMM.sample(N, generator=torch.Generator().manual_seed(10))[0]
KARRAS = S.karras_sigmas(64, 0.002, 80.0)
DDPM = S.ddpm_sigmas(S.linear_betas())

CASES = [
    ("euler", samplers.sample_euler, {}, KARRAS),
    ("heun", samplers.sample_heun, {}, KARRAS),
    ("heun_churn", samplers.sample_heun, {"churn": 30.0}, KARRAS),
    ("ddim", samplers.sample_ddim, {}, KARRAS),
    ("ddim_eta1", samplers.sample_ddim, {"eta": 1.0}, KARRAS),
    ("ddpm_beta_tilde", samplers.sample_ddpm, {}, DDPM),
    ("ddpm_beta", samplers.sample_ddpm, {"variance": "beta"}, DDPM),
    ("euler_maruyama", samplers.sample_euler_maruyama, {}, S.karras_sigmas(500, 0.002, 80.0)),
    ("dpmpp_2m", samplers.sample_dpmpp_2m, {}, KARRAS),
    ("flow_euler", samplers.sample_flow_euler, {}, KARRAS),
]


@pytest.mark.parametrize("name,sampler,kwargs,sigmas", CASES, ids=[c[0] for c in CASES])
def test_sampler_reaches_the_data_distribution(name, sampler, kwargs, sigmas):
    x = samplers.prior_noise((N, 2), sigmas[0], generator=torch.Generator().manual_seed(0), dtype=f64)
    out = sampler(GMM.denoiser, x, sigmas, generator=torch.Generator().manual_seed(1), **kwargs)
    assert (out.mean(0) - GMM.mean()).norm() < 0.08  # sampling error of the mean is ~0.02 per coordinate
    assert (torch.cov(out.T) - GMM.covariance()).norm() < 0.15
    assert float(mmd2(out, REF, bandwidth=BANDWIDTHS)) < MMD_THRESHOLD


def test_mmd_threshold_detects_a_wrong_distribution():
    wrong = GaussianMixture.isotropic(GMM.weights, GMM.means, torch.tensor([0.4, 0.6], dtype=f64))
    assert float(mmd2(wrong.sample(N, generator=torch.Generator().manual_seed(3))[0], REF, bandwidth=BANDWIDTHS)) > 2 * MMD_THRESHOLD
    x = samplers.prior_noise((N, 2), 80.0, generator=torch.Generator().manual_seed(0), dtype=f64)
    too_coarse = samplers.sample_euler(GMM.denoiser, x, S.karras_sigmas(4, 0.002, 80.0))
    assert float(mmd2(too_coarse, REF, bandwidth=BANDWIDTHS)) > 10 * MMD_THRESHOLD


def grid(n):
    return S.karras_sigmas(n, 0.05, 20.0)[:-1]  # stop at σ = 0.05: the last step to 0 is special


@pytest.fixture(scope="module")
def reference_solution():
    x = samplers.prior_noise((200, 2), 20.0, variance_preserving=False, generator=torch.Generator().manual_seed(0), dtype=f64)
    return x, samplers.sample_heun(GMM.denoiser, x, grid(4000))


@pytest.mark.parametrize(
    "sampler,order",
    [(samplers.sample_euler, 1.0), (samplers.sample_ddim, 1.0), (samplers.sample_heun, 2.0), (samplers.sample_dpmpp_2m, 2.0)],
    ids=["euler", "ddim", "heun", "dpmpp_2m"],
)
def test_measured_global_order(sampler, order, reference_solution):
    """Global error at σ = 0.05 against a 4000-step Heun reference, for 16 … 256 steps (RMS over 200 paths)."""
    x, ref = reference_solution
    ns = [16, 32, 64, 128, 256]
    errs = [float((sampler(GMM.denoiser, x, grid(n)) - ref).pow(2).sum(1).mean().sqrt()) for n in ns]
    assert abs(convergence.fit_order([1 / n for n in ns], errs) - order) < 0.25


def test_ddim_eta0_is_euler_flow_euler_and_dpm_solver_1():
    """DDIM(η=0) = Euler on (x/α, σ/α) = rectified-flow Euler = DPM-Solver-1, to 1e-6 (here ~1e-13)."""
    sigmas = S.karras_sigmas(12, 0.01, 10.0)
    x = samplers.prior_noise((500, 2), sigmas[0], generator=torch.Generator().manual_seed(4), dtype=f64)
    ddim = samplers.sample_ddim(GMM.denoiser, x, sigmas)
    assert torch.allclose(samplers.sample_euler(GMM.denoiser, x, sigmas), ddim, atol=1e-6)
    assert torch.allclose(samplers.sample_flow_euler(GMM.denoiser, x, sigmas), ddim, atol=1e-6)

    # DPM-Solver-1 (Lu et al. 2022, eq. 3.7), written independently in VP variables:
    # x_t = (α_t/α_s) x_s - σ_t (e^h - 1) ε̂(x_s),  h = λ_t - λ_s,  λ = log(α/σ)
    x_vp = x / math.sqrt(1 + float(sigmas[0]) ** 2)
    for s, s1 in zip(sigmas[:-1].tolist(), sigmas[1:].tolist()):
        a, a1 = 1 / math.sqrt(1 + s * s), 1 / math.sqrt(1 + s1 * s1)
        sig, sig1 = s * a, s1 * a1
        eps = (x_vp / a - GMM.denoiser(x_vp / a, torch.full((500,), s, dtype=f64))) / s
        if s1 == 0:
            x_vp = (x_vp - sig * eps) / a
            continue
        h = math.log(a1 / sig1) - math.log(a / sig)
        x_vp = (a1 / a) * x_vp - sig1 * math.expm1(h) * eps
    assert torch.allclose(x_vp, ddim, atol=1e-6)


def test_ddim_eta1_is_ddpm_ancestral():
    """With η = 1, DDIM's update is DDPM's posterior step with variance β̃: same noise, same samples."""
    sigmas = S.ddpm_sigmas(S.linear_betas(), torch.arange(999, -1, -20))
    x = samplers.prior_noise((500, 2), sigmas[0], generator=torch.Generator().manual_seed(5), dtype=f64)
    ddim = samplers.sample_ddim(GMM.denoiser, x, sigmas, eta=1.0, generator=torch.Generator().manual_seed(6))
    ddpm = samplers.sample_ddpm(GMM.denoiser, x, sigmas, generator=torch.Generator().manual_seed(6))
    assert torch.allclose(ddim, ddpm, atol=1e-6)
    ddpm_large = samplers.sample_ddpm(GMM.denoiser, x, sigmas, variance="beta", generator=torch.Generator().manual_seed(6))
    assert not torch.allclose(ddim, ddpm_large, atol=1e-3)


def test_callback_and_generator_reproducibility():
    seen = []
    x = samplers.prior_noise((10, 2), 5.0, generator=torch.Generator().manual_seed(0), dtype=f64)
    sig = S.karras_sigmas(5, 0.01, 5.0)
    samplers.sample_heun(GMM.denoiser, x, sig, callback=lambda i, s, xi, d: seen.append((i, float(s), d.shape)))
    assert [i for i, _, _ in seen] == list(range(5)) and seen[0][1] == pytest.approx(5.0)
    a = samplers.sample_ddpm(GMM.denoiser, x, sig, generator=torch.Generator().manual_seed(1))
    b = samplers.sample_ddpm(GMM.denoiser, x, sig, generator=torch.Generator().manual_seed(1))
    c = samplers.sample_ddpm(GMM.denoiser, x, sig, generator=torch.Generator().manual_seed(2))
    assert torch.equal(a, b) and not torch.equal(a, c)


@pytest.mark.parametrize("sampler", [samplers.sample_euler, samplers.sample_heun, samplers.sample_ddim, samplers.sample_ddpm,
                                     samplers.sample_euler_maruyama, samplers.sample_dpmpp_2m, samplers.sample_flow_euler])
def test_bad_input_is_named(sampler):
    x = torch.zeros(4, 2, dtype=f64)
    with pytest.raises(ValueError, match="strictly decreasing"):
        sampler(GMM.denoiser, x, torch.tensor([1.0, 2.0, 0.0], dtype=f64))
    with pytest.raises(ValueError, match="non-negative"):
        sampler(GMM.denoiser, x, torch.tensor([1.0, -0.5], dtype=f64))
    with pytest.raises(ValueError, match="1-D tensor of at least 2"):
        sampler(GMM.denoiser, x, torch.tensor([[1.0, 0.0]], dtype=f64))
    with pytest.raises(TypeError, match="x must be a floating-point tensor"):
        sampler(GMM.denoiser, torch.zeros(4, 2, dtype=torch.long), torch.tensor([1.0, 0.0], dtype=f64))
    with pytest.raises(TypeError, match="sigmas must be a torch.Tensor"):
        sampler(GMM.denoiser, x, [1.0, 0.0])


def test_mismatched_devices_are_named():
    x = torch.zeros(4, 2)
    with pytest.raises(ValueError, match="sigmas is on meta but x is on cpu"):
        samplers.sample_euler(GMM.denoiser, x, torch.tensor([1.0, 0.0], device="meta"))


def test_option_errors():
    x = torch.zeros(4, 2, dtype=f64)
    sig = torch.tensor([1.0, 0.0], dtype=f64)
    with pytest.raises(ValueError, match="eta must be finite and >= 0"):
        samplers.sample_ddim(GMM.denoiser, x, sig, eta=-1.0)
    with pytest.raises(ValueError, match="variance must be"):
        samplers.sample_ddpm(GMM.denoiser, x, sig, variance="large")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="churn must be finite and >= 0"):
        samplers.sample_euler(GMM.denoiser, x, sig, churn=-1.0)


ALL_SAMPLERS = [samplers.sample_euler, samplers.sample_heun, samplers.sample_ddim, samplers.sample_ddpm,
                samplers.sample_euler_maruyama, samplers.sample_dpmpp_2m, samplers.sample_flow_euler]
ALL_IDS = [s.__name__ for s in ALL_SAMPLERS]


@pytest.mark.parametrize("sampler", ALL_SAMPLERS, ids=ALL_IDS)
def test_sampler_on_a_trainable_net_builds_no_autograd_graph(sampler):
    """Issue 8: `sample_heun` on a trainable net returned requires_grad=True and kept every step's graph."""
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(3, 16), torch.nn.SiLU(), torch.nn.Linear(16, 2)).double()

    def denoiser(x, sigma):
        return x / (1 + sigma[:, None] ** 2) + net(torch.cat([x, sigma[:, None].log()], 1))

    denoised = []
    x = samplers.prior_noise((8, 2), 10.0, generator=torch.Generator().manual_seed(0), dtype=f64)
    out = sampler(denoiser, x, S.karras_sigmas(4, 0.02, 10.0), generator=torch.Generator().manual_seed(1),
                  callback=lambda i, s, xi, d: denoised.append(d))
    assert not out.requires_grad and out.grad_fn is None
    assert all(d.grad_fn is None for d in denoised) and len(denoised) == 4
    assert torch.isfinite(out).all()
    assert torch.is_grad_enabled()  # the sampler restores the caller's grad mode


@pytest.mark.parametrize("sampler", [samplers.sample_euler, samplers.sample_heun], ids=["euler", "heun"])
def test_classifier_guidance_through_a_no_grad_sampler_matches_explicit_gradients(sampler):
    """Samplers run under no_grad, and classifier guidance still differentiates its classifier inside them:
    the guided sample equals an Euler/Heun loop written out with explicit autograd (to 1e-12)."""
    from diffbook import guidance
    from diffbook.exercises import ch08

    labelled = ch08.chapter_mixture()
    gamma, labels = 2.0, torch.tensor([0, 1, 2, 0, 1, 2], dtype=torch.long)
    guided = guidance.classifier_guidance(labelled.mixture.denoiser, labelled.log_posterior, gamma)
    sigmas = S.karras_sigmas(8, 0.05, 20.0)
    x = samplers.prior_noise((6, 2), 20.0, variance_preserving=False, generator=torch.Generator().manual_seed(2), dtype=f64)
    out = sampler(guided, x, sigmas, labels=labels)

    def reference_denoiser(y, s):  # D + γ σ² ∇ log p(c | y), the gradient taken explicitly
        s = torch.full((y.shape[0],), float(s), dtype=f64)
        yg = y.detach().requires_grad_(True)
        (grad,) = torch.autograd.grad(labelled.log_posterior(yg, s, labels).sum(), yg)
        return labelled.mixture.denoiser(y, s) + gamma * s[:, None] ** 2 * grad

    y = x.clone()
    for s, s1 in zip(sigmas[:-1].tolist(), sigmas[1:].tolist()):
        d = (y - reference_denoiser(y, s)) / s
        y_next = y + (s1 - s) * d
        if sampler is samplers.sample_heun and s1 > 0:
            y_next = y + (s1 - s) * 0.5 * (d + (y_next - reference_denoiser(y_next, s1)) / s1)
        y = y_next
    assert float((out - y).abs().max()) < 1e-12
    unguided = sampler(labelled.mixture.denoiser, x, sigmas)
    assert float((out - unguided).abs().max()) > 1e-2  # the guidance term is not zero


def test_a_denoiser_returning_the_wrong_batch_is_named():
    """Issue 8: a denoiser that returned the wrong batch size inside sample_ddim was broadcast silently."""
    x = torch.zeros(4, 2, dtype=f64)
    sig = S.karras_sigmas(3, 0.1, 5.0)
    for sampler in ALL_SAMPLERS:
        with pytest.raises(ValueError, match=r"denoiser must return x0_hat of the shape of x \(4, 2\), got \(1, 2\)"):
            sampler(lambda y, s: GMM.denoiser(y, s)[:1], x, sig)
        with pytest.raises(TypeError, match="denoiser must be callable"):
            sampler("not a denoiser", x, sig)


@pytest.mark.parametrize("sampler", [samplers.sample_euler, samplers.sample_heun], ids=["euler", "heun"])
def test_churn_raises_the_noise_level_by_gamma_capped_at_sqrt2_minus_1(sampler):
    """EDM's γ_i = min(S_churn/N, √2 - 1) inside [S_tmin, S_tmax] (Algorithm 2, line 4): the denoiser sees
    σ̂ = σ (1 + γ). A huge churn hits the cap (σ̂ = √2 σ); a small one gives S_churn/N; outside the band, none."""
    seen = []

    def recorder(x, sigma):
        seen.append(float(sigma[0]))
        return GMM.denoiser(x, sigma)

    sig = S.karras_sigmas(4, 0.1, 10.0)
    x = samplers.prior_noise((5, 2), 10.0, generator=torch.Generator().manual_seed(0), dtype=f64)
    sampler(recorder, x, sig, churn=1000.0, generator=torch.Generator().manual_seed(1))
    assert seen[0] == pytest.approx(math.sqrt(2.0) * 10.0, rel=1e-12)
    seen.clear()
    sampler(recorder, x, sig, churn=0.4, generator=torch.Generator().manual_seed(1))
    assert seen[0] == pytest.approx(10.0 * (1.0 + 0.4 / 4), rel=1e-12)
    seen.clear()
    sampler(recorder, x, sig, churn=1000.0, s_tmax=5.0, generator=torch.Generator().manual_seed(1))
    assert seen[0] == pytest.approx(10.0, rel=1e-12)
