"""Losses: the ε-loss is σ² times the DSM loss sample by sample; DSM and explicit score matching differ by
a constant independent of the model; ELBO weights; and a training loss that matches ε-MSE."""

import math

import pytest
import torch

from diffbook import losses, param
from diffbook import schedules as S
from diffbook.toy import GaussianMixture

f64 = torch.float64
GMM = GaussianMixture.isotropic(
    torch.tensor([0.4, 0.6], dtype=f64), torch.tensor([[-1.0, 0.5], [1.0, -0.5]], dtype=f64), torch.tensor([0.4, 0.3], dtype=f64)
)


def test_eps_loss_is_sigma_squared_times_dsm_per_sample():
    g = torch.Generator().manual_seed(0)
    x0 = GMM.sample(500, generator=g)[0]
    alpha, sigma = 0.8, 0.6
    eps = torch.randn(x0.shape, generator=g, dtype=f64)
    x_t = alpha * x0 + sigma * eps
    eps_pred = torch.randn(x0.shape, generator=g, dtype=f64)  # any model output
    lhs = losses.eps_mse(eps_pred, eps)
    rhs = sigma**2 * losses.dsm_loss(param.score_from_eps(eps_pred, sigma), x_t, x0, alpha, sigma)
    assert torch.allclose(lhs, rhs, rtol=1e-12)


def test_dsm_and_explicit_score_matching_differ_by_a_model_independent_constant():
    """Vincent (2011): E‖s - ∇log p(x_t|x₀)‖² = E‖s - ∇log p_t(x_t)‖² + C with C independent of s.
    Monte Carlo over 200k samples; models s_θ = θ·(exact score) + (1-θ)·(a wrong linear score)."""
    g = torch.Generator().manual_seed(1)
    n, alpha, sigma = 200_000, 0.9, 0.5
    x0 = GMM.sample(n, generator=g)[0]
    eps = torch.randn(x0.shape, generator=g, dtype=f64)
    x_t = alpha * x0 + sigma * eps
    true = GMM.score(x_t, alpha, sigma)
    gaps, esms = [], []
    for theta in [0.0, 0.3, 0.7, 1.0, 1.5]:
        model = theta * true + (1 - theta) * (-x_t)
        dsm = losses.dsm_loss(model, x_t, x0, alpha, sigma).mean()
        esm = losses.esm_loss(model, true).mean()
        gaps.append(float(dsm - esm))
        esms.append(float(esm))
    # the model terms change the losses by far more than the gap varies: the gap is a constant
    assert max(gaps) - min(gaps) < 0.02 * (max(esms) - min(esms)), (gaps, esms)
    # and the constant is E‖∇log p(x_t|x₀)‖² - E‖∇log p_t‖² (mean over dimensions), which is positive
    const = float(((eps / sigma) ** 2).mean() - (true**2).mean())
    assert abs(sum(gaps) / len(gaps) - const) < 0.02 * const


def test_denoising_loss_with_eps_precond_equals_eps_mse():
    sch = S.VPLinear()

    class Net(torch.nn.Module):
        def forward(self, x, c_noise):
            return torch.sin(x) * (1 + c_noise[:, None])

    den = param.Preconditioned(Net(), param.EpsPrecond(sch))
    g = torch.Generator().manual_seed(2)
    x0 = GMM.sample(64, generator=g)[0]
    t = torch.rand(64, generator=g, dtype=f64) * 0.9 + 0.05
    sbar = S.sigma_bar(sch, t)
    noise = torch.randn(x0.shape, generator=g, dtype=f64)
    loss = losses.denoising_loss(den, x0, sbar, noise=noise, weight=1 / sbar**2)
    a = sch.alpha(t)[:, None]
    eps_pred = Net()(a * (x0 + sbar[:, None] * noise), t)
    assert torch.allclose(loss, losses.eps_mse(eps_pred, noise), rtol=1e-10)


def test_ddpm_elbo_weights():
    betas = S.linear_betas()
    w = losses.ddpm_elbo_weights(betas)
    abar = S.alphas_cumprod(betas)
    t = 500
    var = betas[t] * (1 - abar[t - 1]) / (1 - abar[t])
    assert math.isclose(float(w[t]), float(betas[t] ** 2 / (2 * var * (1 - betas[t]) * (1 - abar[t]))), rel_tol=1e-12)
    # L_simple is not the ELBO: the true weights vary by orders of magnitude over t
    assert float(w.max() / w.min()) > 100
    with pytest.raises(ValueError, match="variance must be"):
        losses.ddpm_elbo_weights(betas, variance="large")  # type: ignore[arg-type]


def test_vdm_weight_is_the_continuous_limit_of_the_ddpm_weights():
    """½ Δλ summed over a step approximates the discrete KL weight: T·λ_t ≈ -½ dλ/dt at t = i/T."""
    betas = S.linear_betas(1000, 0.1 / 1000, 20.0 / 1000)
    w = losses.ddpm_elbo_weights(betas, variance="beta")
    t = torch.tensor([0.3, 0.6], dtype=f64)
    cont = losses.vdm_weight(S.VPLinear(), t)
    idx = (t * 1000).long() - 1
    # with σ_t² = β_t the weight is β/(2(1-β)(1-ᾱ)) ≈ -½ dλ/dt · Δt
    assert torch.allclose(1000 * w[idx], cont, rtol=0.02)


def test_mse_shape_check_and_flow_matching_target():
    with pytest.raises(ValueError, match="pred has shape"):
        losses.mse(torch.zeros(2, 3), torch.zeros(3, 2))
    x0, eps = torch.randn(4, 2), torch.randn(4, 2)
    assert torch.allclose(losses.flow_matching_loss(eps - x0, x0, eps), torch.zeros(4))


def test_lognormal_sigmas_have_the_stated_log_moments():
    s = losses.lognormal_sigmas(200_000, p_mean=-1.2, p_std=1.2, generator=torch.Generator().manual_seed(0), dtype=f64)
    assert abs(float(s.log().mean()) + 1.2) < 0.01 and abs(float(s.log().std()) - 1.2) < 0.01
    with pytest.raises(ValueError, match="p_std must be finite and > 0"):
        losses.lognormal_sigmas(3, p_std=0.0)


@pytest.mark.parametrize("sigma,sigma_data,expected", [(0.5, 0.5, 8.0), (1.0, 0.5, 5.0), (2.0, 0.5, 4.25), (0.1, 0.5, 104.0), (0.2, 1.0, 26.0)])
def test_edm_weight_pinned_at_literal_sigmas(sigma, sigma_data, expected):
    """Catches λ(σ) = (σ² + σ_d²)/(σ σ_d) (a missing square) and a swapped σ/σ_d: the values are EDM's
    λ(σ) = (σ² + σ_d²)/(σ σ_d)² (Karras et al. 2022, Table 1) worked by hand."""
    got = losses.edm_weight(torch.tensor([sigma], dtype=f64), sigma_data=sigma_data)
    assert got.shape == (1,) and math.isclose(float(got[0]), expected, rel_tol=1e-12)


def test_edm_weight_makes_the_effective_target_weight_one():
    """λ(σ) c_out(σ)² = 1: EDM chose λ so that the loss on F's unit-variance target has unit weight."""
    sigma = torch.tensor([0.002, 0.3, 1.0, 7.0, 80.0], dtype=f64)
    _, c_out, _, _ = param.EDMPrecond(0.5).coefficients(sigma)
    assert torch.allclose(losses.edm_weight(sigma, 0.5) * c_out**2, torch.ones_like(sigma), rtol=1e-12)


def test_v_mse_target_is_alpha_eps_minus_sigma_x0_at_literal_numbers():
    """Catches the flipped convention v = σ x₀ - α ε: at x₀ = 2, ε = 3, (α, σ) = (0.6, 0.8) the target is
    0.6·3 - 0.8·2 = 0.2, so predicting 0.2 costs 0 and predicting -0.2 costs 0.16."""
    x0, eps = torch.full((1, 1), 2.0, dtype=f64), torch.full((1, 1), 3.0, dtype=f64)
    assert float(losses.v_mse(torch.full((1, 1), 0.2, dtype=f64), x0, eps, 0.6, 0.8)) < 1e-24
    assert math.isclose(float(losses.v_mse(torch.full((1, 1), -0.2, dtype=f64), x0, eps, 0.6, 0.8)), 0.16, rel_tol=1e-12)
    assert math.isclose(float(losses.v_mse(torch.zeros(1, 1, dtype=f64), x0, eps, 1.0, 2.0)), 1.0, rel_tol=1e-12)  # v = 3 - 4
