"""`losses.edm_loss`: EDM's training loss (Karras et al. 2022, Eqs. 2 and 8, Table 1) as one call, checked
against the effective-target form of Eq. 8 computed independently here, and its noise-level distribution."""

import math

import torch

from diffbook import losses
from diffbook.param import EDMPrecond, Preconditioned

f64 = torch.float64


class TinyNet(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body = torch.nn.Sequential(torch.nn.Linear(4, 32), torch.nn.SiLU(), torch.nn.Linear(32, 3))

    def forward(self, x, c_noise):
        return self.body(torch.cat([x, c_noise[:, None]], 1))


def test_edm_loss_is_the_unit_weight_effective_target_loss_of_eq8():
    """λ(σ) ‖D(y; σ) - x₀‖² = ‖F(c_in y; c_noise) - (x₀ - c_skip y)/c_out‖² because λ c_out² = 1 (Eq. 8):
    a missing square in λ, a wrong c_* or a different σ draw breaks the equality."""
    torch.manual_seed(0)
    net = TinyNet().double()
    sd = 0.5
    x0 = torch.randn(256, 3, dtype=f64)
    loss = losses.edm_loss(Preconditioned(net, EDMPrecond(sd)), x0, sigma_data=sd, generator=torch.Generator().manual_seed(7))

    g = torch.Generator().manual_seed(7)  # the documented draw order: noise levels first, then the noise
    sigma = torch.exp(-1.2 + 1.2 * torch.randn(256, generator=g, dtype=f64))
    noise = torch.randn(x0.shape, generator=g, dtype=f64)
    y = x0 + sigma[:, None] * noise
    s, norm = sigma[:, None], torch.sqrt(sigma[:, None] ** 2 + sd**2)
    c_skip, c_out, c_in = sd**2 / norm**2, s * sd / norm, 1 / norm
    with torch.no_grad():
        f = net(c_in * y, torch.log(sigma) / 4)
    expected = ((f - (x0 - c_skip * y) / c_out) ** 2).mean(1)
    assert loss.shape == (256,)
    assert torch.allclose(loss, expected, rtol=1e-10, atol=1e-12)


def test_edm_loss_draws_log_normal_noise_levels():
    """ln σ ~ N(P_mean, P_std²): over 20 000 draws the mean and sd of ln σ are within 0.03 of (-1.2, 1.2)
    (their standard errors are 0.008 and 0.006), and the options are honoured."""
    seen = []

    def recorder(x, sigma):
        seen.append(sigma)
        return torch.zeros_like(x)

    losses.edm_loss(recorder, torch.zeros(20_000, 2, dtype=f64), generator=torch.Generator().manual_seed(0))
    log_sigma = seen[-1].log()
    assert abs(float(log_sigma.mean()) + 1.2) < 0.03 and abs(float(log_sigma.std()) - 1.2) < 0.03
    losses.edm_loss(recorder, torch.zeros(20_000, 2, dtype=f64), p_mean=0.5, p_std=0.1,
                    generator=torch.Generator().manual_seed(0))
    log_sigma = seen[-1].log()
    assert abs(float(log_sigma.mean()) - 0.5) < 0.01 and abs(float(log_sigma.std()) - 0.1) < 0.01


def test_edm_loss_with_a_zero_denoiser_is_lambda_times_the_data_energy():
    """D ≡ 0 gives λ(σ) mean(x₀²): pins λ(σ) = (σ² + σ_d²)/(σ σ_d)² itself, including its square."""
    x0 = torch.full((5, 4), 2.0, dtype=f64)
    seen = []

    def zero(x, sigma):
        seen.append(sigma)
        return torch.zeros_like(x)

    loss = losses.edm_loss(zero, x0, sigma_data=0.7, generator=torch.Generator().manual_seed(3))
    s = seen[0]
    assert torch.allclose(loss, 4.0 * (s**2 + 0.49) / (s * 0.7) ** 2, rtol=1e-12)
    assert math.isclose(float(losses.edm_weight(torch.tensor(1.0, dtype=f64), 0.5)), 5.0, rel_tol=1e-12)
