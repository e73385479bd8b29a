"""The Gaussian-mixture oracle is exact: normalised density, score = gradient of the log-density,
noised mixture = law of α x₀ + σ ε, and sample moments."""

import math

import pytest
import torch

from diffbook.toy import GaussianMixture

f64 = torch.float64
COVS = torch.tensor([[[0.3, 0.1], [0.1, 0.2]], [[0.5, -0.2], [-0.2, 0.4]]], dtype=f64)
GMM = GaussianMixture(torch.tensor([0.35, 0.65], dtype=f64), torch.tensor([[-1.0, 0.5], [1.0, -0.5]], dtype=f64), COVS)


def test_density_is_normalised():
    g = torch.linspace(-6, 6, 601, dtype=f64)
    yy, xx = torch.meshgrid(g, g, indexing="ij")
    pts = torch.stack([xx.flatten(), yy.flatten()], 1)
    for a, s in [(1.0, 0.0), (0.7, 0.5)]:
        mass = torch.exp(GMM.log_prob(pts, a, s)).sum() * (g[1] - g[0]) ** 2
        assert math.isclose(float(mass), 1.0, abs_tol=1e-6)


@pytest.mark.parametrize("alpha,sigma", [(1.0, 0.0), (0.6, 0.8), (1.0, torch.tensor([0.1, 0.5, 1.0, 2.0], dtype=f64))])
def test_score_is_the_gradient_of_log_prob(alpha, sigma):
    x = torch.randn(4, 2, dtype=f64, generator=torch.Generator().manual_seed(0)).requires_grad_(True)
    (grad,) = torch.autograd.grad(GMM.log_prob(x, alpha, sigma).sum(), x)
    assert torch.allclose(grad, GMM.score(x.detach(), alpha, sigma), atol=1e-10)


def test_noised_mixture_is_the_law_of_the_noisy_variable():
    g = torch.Generator().manual_seed(1)
    x0, _ = GMM.sample(200_000, generator=g)
    xt = 0.6 * x0 + 0.8 * torch.randn(x0.shape, generator=g, dtype=f64)
    noisy = GMM.noised(0.6, 0.8)
    assert torch.allclose(xt.mean(0), noisy.mean(), atol=0.01)
    assert torch.allclose(torch.cov(xt.T), noisy.covariance(), atol=0.01)
    assert torch.allclose(noisy.log_prob(xt[:100]), GMM.log_prob(xt[:100], 0.6, 0.8))


def test_sample_moments_and_labels():
    x, labels = GMM.sample(200_000, generator=torch.Generator().manual_seed(2))
    assert torch.allclose(x.mean(0), GMM.mean(), atol=0.01)
    assert torch.allclose(torch.cov(x.T), GMM.covariance(), atol=0.01)
    assert abs(float((labels == 1).double().mean()) - 0.65) < 0.005


def test_posterior_mean_limits():
    x = torch.randn(8, 2, dtype=f64)
    assert torch.allclose(GMM.posterior_mean(x, 1.0, 1e-6), x, atol=1e-6)  # no noise: x₀ = x
    assert torch.allclose(GMM.posterior_mean(x, 1.0, 1e4), GMM.mean().expand(8, 2), atol=1e-4)  # all noise: prior mean


def test_bad_input():
    with pytest.raises(ValueError, match="weights must be positive and sum to 1"):
        GaussianMixture(torch.tensor([0.5, 0.6], dtype=f64), GMM.means, COVS)
    with pytest.raises(ValueError, match=r"covs must have shape \(2, 2, 2\)"):
        GaussianMixture(GMM.weights, GMM.means, COVS[:, :1])
    with pytest.raises(ValueError, match=r"x must have shape \(n, 2\)"):
        GMM.log_prob(torch.zeros(3, 3, dtype=f64))
    with pytest.raises(ValueError, match=r"sigma must be a scalar or have shape \(3,\)"):
        GMM.score(torch.zeros(3, 2, dtype=f64), 1.0, torch.ones(5, dtype=f64))
    with pytest.raises(ValueError, match="n must be a positive int"):
        GMM.sample(0)


def _independent_noised(alpha, sigma):
    """The noised mixture built from torch.distributions, independent of toy's Cholesky code."""
    comps = torch.distributions.MultivariateNormal(alpha * GMM.means, alpha**2 * COVS + sigma**2 * torch.eye(2, dtype=f64))
    return torch.distributions.MixtureSameFamily(torch.distributions.Categorical(probs=GMM.weights), comps)


@pytest.mark.parametrize("alpha,sigma", [(1.0, 0.0), (0.6, 0.8), (0.3, 0.2)])
def test_log_prob_matches_torch_distributions(alpha, sigma):
    """Catches a wrong noised covariance (α Σ for α² Σ, a dropped σ² I) or a wrong normalising constant, which
    the normalisation and moment tests can miss at a single (α, σ)."""
    x = torch.randn(50, 2, dtype=f64, generator=torch.Generator().manual_seed(3)) * 1.5
    assert torch.allclose(GMM.log_prob(x, alpha, sigma), _independent_noised(alpha, sigma).log_prob(x), atol=1e-12)


@pytest.mark.parametrize("alpha,sigma", [(1.0, 0.3), (0.6, 0.8), (0.9, 2.0)])
def test_posterior_mean_matches_an_independent_conditioning(alpha, sigma):
    """E[x₀|x] = Σ_k P(k|x)(μ_k + α Σ_k C_k⁻¹(x - α μ_k)), written here with torch.distributions and
    torch.linalg.solve. Catches a wrong gain (e.g. a missing α, or σ for σ²) at 1e-10."""
    x = torch.randn(40, 2, dtype=f64, generator=torch.Generator().manual_seed(4))
    eye = torch.eye(2, dtype=f64)
    logp, conds = [], []
    for w, mu, cov in zip(GMM.weights, GMM.means, COVS):
        c = alpha**2 * cov + sigma**2 * eye
        logp.append(torch.log(w) + torch.distributions.MultivariateNormal(alpha * mu, c).log_prob(x))
        conds.append(mu + alpha * torch.linalg.solve(c, (x - alpha * mu).T).T @ cov.T)
    r = torch.softmax(torch.stack(logp, 1), 1)[..., None]
    assert torch.allclose(GMM.posterior_mean(x, alpha, sigma), (r * torch.stack(conds, 1)).sum(1), atol=1e-10)
