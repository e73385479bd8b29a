"""Parameterisations: every conversion is an identity (to 1e-6 or better), Tweedie's formula equals the
exact posterior mean, and every adapter turns the exact ε/x₀/v/score/velocity into the exact denoiser."""

import pytest
import torch

from diffbook import param
from diffbook import schedules as S
from diffbook.toy import GaussianMixture

f64 = torch.float64
GEN = torch.Generator().manual_seed(0)
X0 = torch.randn(64, 3, generator=GEN, dtype=f64)
EPS = torch.randn(64, 3, generator=GEN, dtype=f64)
GMM = GaussianMixture.isotropic(
    torch.tensor([0.3, 0.7], dtype=f64), torch.tensor([[-1.0, 0.0, 1.0], [1.5, 1.0, -0.5]], dtype=f64), torch.tensor([0.3, 0.6], dtype=f64)
)
SCHEDULES = [S.VPLinear(), S.VPCosine(), S.VE(), S.SubVP(), S.FlowLinear()]


@pytest.mark.parametrize("schedule", SCHEDULES, ids=lambda s: type(s).__name__)
@pytest.mark.parametrize("t", [0.05, 0.5, 0.9])
def test_conversions_round_trip(schedule, t):
    tt = torch.tensor(t, dtype=f64)
    (a, da), (s, ds) = S.time_derivative(schedule.alpha, tt), S.time_derivative(schedule.sigma, tt)
    x = a * X0 + s * EPS
    assert torch.allclose(param.x0_from_eps(x, EPS, a, s), X0, atol=1e-6)
    assert torch.allclose(param.eps_from_x0(x, X0, a, s), EPS, atol=1e-6)
    assert torch.allclose(param.eps_from_score(param.score_from_eps(EPS, s), s), EPS, atol=1e-12)
    v = param.v_from_x0_eps(X0, EPS, a, s)
    assert torch.allclose(param.x0_from_v(x, v, a, s), X0, atol=1e-6)
    assert torch.allclose(param.eps_from_v(x, v, a, s), EPS, atol=1e-6)
    u = param.velocity_from_x0_eps(X0, EPS, da, ds)
    assert torch.allclose(param.x0_from_velocity(x, u, a, s, da, ds), X0, atol=1e-6)
    # the velocity is the time derivative of the path at fixed (x₀, ε)
    h = 1e-6
    x_plus = schedule.alpha(tt + h) * X0 + schedule.sigma(tt + h) * EPS
    x_minus = schedule.alpha(tt - h) * X0 + schedule.sigma(tt - h) * EPS
    assert torch.allclose((x_plus - x_minus) / (2 * h), u, atol=1e-6)


def test_linear_path_velocity_is_eps_minus_x0():
    tt = torch.tensor(0.3, dtype=f64)
    (a, da), (s, ds) = S.time_derivative(S.FlowLinear().alpha, tt), S.time_derivative(S.FlowLinear().sigma, tt)
    assert torch.allclose(param.velocity_from_x0_eps(X0, EPS, da, ds), EPS - X0)


@pytest.mark.parametrize("alpha,sigma", [(1.0, 0.3), (0.8, 0.6), (0.2, 0.98)])
def test_tweedie_equals_the_exact_posterior_mean(alpha, sigma):
    """Tweedie: E[x₀|x] = (x + σ²∇log p(x))/α, with the score and the posterior computed independently."""
    x = GMM.noised(alpha, sigma).sample(256, generator=torch.Generator().manual_seed(1))[0]
    tweedie = param.x0_from_score(x, GMM.score(x, alpha, sigma), alpha, sigma)
    assert torch.allclose(tweedie, GMM.posterior_mean(x, alpha, sigma), atol=1e-10)


class Oracle(torch.nn.Module):
    """A "network" returning the exact target of a parameterisation, to test the adapters."""

    def __init__(self, schedule, target):
        super().__init__()
        self.schedule, self.target = schedule, target

    def forward(self, x_in, c_noise):
        t = c_noise[0]
        (a, da), (s, ds) = S.time_derivative(self.schedule.alpha, t), S.time_derivative(self.schedule.sigma, t)
        x0 = GMM.posterior_mean(x_in, a, s)
        eps = param.eps_from_x0(x_in, x0, a, s)
        return {"eps": eps, "x0": x0, "v": param.v_from_x0_eps(x0, eps, a, s),
                "score": param.score_from_eps(eps, s), "velocity": param.velocity_from_x0_eps(x0, eps, da, ds)}[self.target]


@pytest.mark.parametrize("schedule", [S.VPLinear(), S.VPCosine(), S.FlowLinear(), S.VE()], ids=lambda s: type(s).__name__)
@pytest.mark.parametrize(
    "precond,target",
    [(param.EpsPrecond, "eps"), (param.X0Precond, "x0"), (param.VPrecond, "v"), (param.ScorePrecond, "score"), (param.VelocityPrecond, "velocity")],
)
def test_adapters_give_the_exact_denoiser(schedule, precond, target):
    sbar = torch.tensor(0.7, dtype=f64)
    xbar = GMM.denoiser(X0, sbar) + sbar * EPS  # any points will do
    den = param.Preconditioned(Oracle(schedule, target), precond(schedule))
    assert torch.allclose(den(xbar, sbar), GMM.denoiser(xbar, sbar), atol=1e-8)


def test_edm_preconditioning_has_unit_variance_target():
    """EDM's c_in, c_out are chosen so the network input and its training target have unit variance."""
    sd = 0.5
    pre = param.EDMPrecond(sd)
    sigma = torch.tensor([0.01, 0.5, 3.0, 80.0], dtype=f64)
    c_skip, c_out, c_in, _ = pre.coefficients(sigma)
    assert torch.allclose(c_in**2 * (sd**2 + sigma**2), torch.ones_like(sigma))
    # Var[(x₀ - c_skip (x₀ + σ n))/c_out] = 1 for Var x₀ = sd²
    assert torch.allclose(((1 - c_skip) ** 2 * sd**2 + c_skip**2 * sigma**2) / c_out**2, torch.ones_like(sigma))


def test_denoiser_to_score_and_eps():
    sch = S.VPLinear()
    t = torch.tensor(0.4, dtype=f64)
    a, s = sch.alpha(t), sch.sigma(t)
    x = GMM.noised(a, s).sample(32, generator=torch.Generator().manual_seed(2))[0]
    assert torch.allclose(param.denoiser_to_score(GMM.denoiser, sch)(x, t), GMM.score(x, a, s), atol=1e-9)
    xbar, sbar = x / a, s / a
    eps = param.denoiser_to_eps(GMM.denoiser)(xbar, sbar)
    assert torch.allclose(eps, -s * GMM.score(x, a, s), atol=1e-9)


def test_preconditioned_rejects_wrong_sigma_shape():
    den = param.Preconditioned(Oracle(S.VPLinear(), "eps"), param.EpsPrecond(S.VPLinear()))
    with pytest.raises(ValueError, match=r"sigma must be a scalar or have shape \(64,\)"):
        den(X0, torch.ones(3, dtype=f64))


@pytest.mark.parametrize("phi", [0.1, 0.4, 0.785, 1.2, 1.5])
def test_v_is_the_angular_velocity_of_salimans_and_ho(phi):
    """Salimans & Ho (2022, §4) define v = dz/dφ for z = cos φ x₀ + sin φ ε. A finite difference of that
    path, independent of param's formulas, catches a consistent sign flip of the v convention that every
    round trip would miss."""
    h = 1e-6
    z = lambda p: torch.cos(torch.tensor(p, dtype=f64)) * X0 + torch.sin(torch.tensor(p, dtype=f64)) * EPS  # noqa: E731
    dz = (z(phi + h) - z(phi - h)) / (2 * h)
    a, s = torch.cos(torch.tensor(phi, dtype=f64)), torch.sin(torch.tensor(phi, dtype=f64))
    assert torch.allclose(param.v_from_x0_eps(X0, EPS, a, s), dz, atol=1e-8)
    # and the inverses recover x₀, ε from (z, dz/dφ) of the definition, not from param's own v
    assert torch.allclose(param.x0_from_v(z(phi), dz, a, s), X0, atol=1e-8)
    assert torch.allclose(param.eps_from_v(z(phi), dz, a, s), EPS, atol=1e-8)


@pytest.mark.parametrize(
    "x0,eps,alpha,sigma,v",
    [(2.0, 3.0, 0.6, 0.8, 0.2), (2.0, 3.0, 0.8, 0.6, 1.2), (-1.0, 0.5, 1.0, 2.0, 2.5), (1.0, 1.0, 0.0, 1.0, -1.0)],
)
def test_v_conversions_at_literal_numbers(x0, eps, alpha, sigma, v):
    """v = α ε - σ x₀, x₀ = (α x - σ v)/(α² + σ²), ε = (σ x + α v)/(α² + σ²), worked by hand (VP and non-VP)."""
    t = lambda c: torch.tensor([[c]], dtype=f64)  # noqa: E731
    x = alpha * x0 + sigma * eps
    assert abs(float(param.v_from_x0_eps(t(x0), t(eps), alpha, sigma)) - v) < 1e-12
    assert abs(float(param.x0_from_v(t(x), t(v), alpha, sigma)) - x0) < 1e-12
    assert abs(float(param.eps_from_v(t(x), t(v), alpha, sigma)) - eps) < 1e-12


def test_v_adapter_at_literal_numbers():
    """VPrecond on the linear path at σ̄ = 1 (t = ½, α = σ = ½): x₀ = 2, ε = 3 give x = 2.5, x̄ = 5 and
    v = ½·3 - ½·2 = 0.5. A net that answers 0.5 must give D(x̄) = 2; with the flipped convention it gives 3."""
    seen = {}

    class Net(torch.nn.Module):
        def forward(self, x_in, c_noise):
            seen["x_in"], seen["t"] = x_in.clone(), c_noise.clone()
            return torch.full_like(x_in, 0.5)

    den = param.Preconditioned(Net(), param.VPrecond(S.FlowLinear()))
    out = den(torch.full((1, 1), 5.0, dtype=f64), torch.tensor(1.0, dtype=f64))
    assert abs(float(out) - 2.0) < 1e-12
    assert abs(float(seen["x_in"]) - 2.5) < 1e-12 and abs(float(seen["t"]) - 0.5) < 1e-12
