"""The Monte-Carlo check of the change of variables, and the metric it rests on."""

import pytest
import torch

from diffbook import ode
from diffbook.foundations import flows
from diffbook.metrics import histogram

f64 = torch.float64


def test_grid_and_histogram_agree_on_cell_order():
    centres, area = histogram.grid_2d(-1.0, 1.0, 4)
    assert area == pytest.approx(0.25)
    h = histogram.histogram_2d(centres, -1.0, 1.0, 4)
    assert torch.equal(h, torch.full((16,), 1 / 16, dtype=f64))  # each centre falls in its own cell
    assert histogram.histogram_2d(torch.tensor([[5.0, 0.0]], dtype=f64), -1.0, 1.0, 4).sum() == 0


def test_tv_of_exact_samples_is_at_noise_level_and_wrong_density_is_far():
    g = torch.Generator().manual_seed(0)
    samples = torch.randn(40_000, 2, dtype=f64, generator=g)
    normal = torch.distributions.MultivariateNormal(torch.zeros(2, dtype=f64), torch.eye(2, dtype=f64))
    wider = torch.distributions.MultivariateNormal(torch.zeros(2, dtype=f64), 1.5 * torch.eye(2, dtype=f64))
    tv = histogram.histogram_tv(samples, normal.log_prob, -4, 4, 20)
    noise = histogram.expected_noise_tv(normal.log_prob, 40_000, -4, 4, 20)
    assert tv < 1.5 * noise
    assert histogram.histogram_tv(samples, wider.log_prob, -4, 4, 20) > 5 * noise


def test_cell_probabilities_sum_to_the_mass_in_the_box():
    normal = torch.distributions.MultivariateNormal(torch.zeros(2, dtype=f64), torch.eye(2, dtype=f64))
    assert float(histogram.cell_probabilities(normal.log_prob, -6, 6, 12).sum()) == pytest.approx(1.0, abs=1e-6)


def test_thm_change_of_variables_monte_carlo():
    """Samples moved by the flow have the density that eq. (cov) predicts, to within sampling noise;
    the misconception "density travels with the point" is rejected by more than 10x the noise."""
    u = flows.limit_cycle_field(1.0, 1.0)
    p0 = torch.distributions.MultivariateNormal(torch.tensor([0.6, 0.0], dtype=f64), 0.35**2 * torch.eye(2, dtype=f64))
    torch.manual_seed(0)
    n, ts = 20_000, ode.time_grid(0.0, 1.0, 100)
    samples = ode.integrate(u, p0.sample((n,)), ts)

    def log_p(z):
        return ode.log_density_at(u, z, ts, p0.log_prob)

    def naive(z):
        back = ode.integrate(u, z, ts.flip(0))
        out = torch.full((len(z),), float("-inf"), dtype=f64)
        ok = torch.isfinite(back).all(1)
        out[ok] = p0.log_prob(back[ok])
        return out

    noise = histogram.expected_noise_tv(log_p, n, -1.6, 1.6, 24)
    assert histogram.histogram_tv(samples, log_p, -1.6, 1.6, 24) < 1.5 * noise + 0.005
    assert histogram.histogram_tv(samples, naive, -1.6, 1.6, 24) > 10 * noise
