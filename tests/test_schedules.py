"""Schedules and forward SDEs: closed forms, inverses, the DDPM table as a discretisation, and f, g."""

import math

import pytest
import torch

from diffbook import schedules as S
from diffbook import sde

f64 = torch.float64
T = torch.linspace(0.02, 0.98, 49, dtype=f64)
ALL = [S.VPLinear(), S.VPCosine(), S.VE(), S.SubVP(), S.EDM(), S.FlowLinear()]


@pytest.mark.parametrize("schedule", ALL, ids=lambda s: type(s).__name__)
def test_t_of_sigma_bar_inverts_sigma_bar(schedule):
    assert torch.allclose(schedule.t_of_sigma_bar(S.sigma_bar(schedule, T)), T, atol=1e-10)


@pytest.mark.parametrize("schedule", [S.VPLinear(), S.VPCosine()], ids=lambda s: type(s).__name__)
def test_vp_preserves_variance(schedule):
    assert torch.allclose(schedule.alpha(T) ** 2 + schedule.sigma(T) ** 2, torch.ones_like(T), atol=1e-12)


def test_vp_linear_alpha_integrates_beta():
    sch = S.VPLinear()
    for t in [0.3, 0.9]:
        grid = torch.linspace(0, t, 20001, dtype=f64)
        integral = torch.trapezoid(sch.beta(grid), grid)
        assert math.isclose(float(sch.alpha(torch.tensor(t, dtype=f64))), math.exp(-0.5 * float(integral)), rel_tol=1e-9)


@pytest.mark.parametrize(
    "schedule,f,g2",
    [
        (S.VPLinear(), lambda s, t: -0.5 * s.beta(t), lambda s, t: s.beta(t)),
        (S.VE(), lambda s, t: torch.zeros_like(t), lambda s, t: 2 * s.sigma(t) ** 2 * math.log(s.sigma_max / s.sigma_min)),
        (S.SubVP(), lambda s, t: -0.5 * S.VPLinear().beta(t),
         lambda s, t: S.VPLinear().beta(t) * (1 - torch.exp(4 * S.VPLinear().log_alpha(t)))),
        (S.FlowLinear(), lambda s, t: -1 / (1 - t), lambda s, t: 2 * t + 2 * t**2 / (1 - t)),
    ],
    ids=["VP", "VE", "subVP", "flow"],
)
def test_drift_and_diffusion_from_the_general_rule(schedule, f, g2):
    """Any Gaussian path has f = dlogα/dt and g² = dσ²/dt - 2fσ²; check against Song et al.'s closed forms."""
    assert torch.allclose(sde.drift_coefficient(schedule, T), f(schedule, T), rtol=1e-9, atol=1e-12)
    assert torch.allclose(sde.diffusion_squared(schedule, T), g2(schedule, T), rtol=1e-9, atol=1e-12)


def test_diffusion_is_finite_at_t_zero():
    """At t = 0, σ = 0 and dσ/dt = ∞ for VP paths; g² = β(0) must still come out (not 0·∞ = NaN)."""
    t0 = torch.tensor(0.0, dtype=f64)
    assert math.isclose(float(sde.diffusion_squared(S.VPLinear(), t0)), 0.1, rel_tol=1e-12)
    assert torch.isfinite(sde.diffusion_squared(S.VPCosine(), t0))


def test_forward_sde_reproduces_the_marginal_variance():
    """Integrating the variance ODE dV/dt = 2fV + g² from V(0) = 0 gives σ_t² (the rule's defining property)."""
    for sch in [S.VPLinear(), S.VPCosine(), S.SubVP()]:
        ts = torch.linspace(1e-4, 0.9, 4001, dtype=f64)
        f, g2 = sde.drift_coefficient(sch, ts), sde.diffusion_squared(sch, ts)
        v = torch.zeros((), dtype=f64) + sch.sigma(ts[0]) ** 2
        for i in range(len(ts) - 1):  # Heun on the scalar ODE
            h = ts[i + 1] - ts[i]
            k1 = 2 * f[i] * v + g2[i]
            k2 = 2 * f[i + 1] * (v + h * k1) + g2[i + 1]
            v = v + 0.5 * h * (k1 + k2)
        assert math.isclose(float(v), float(sch.sigma(ts[-1]) ** 2), rel_tol=1e-5)


def test_ddpm_table_is_a_discretisation_of_vp_linear():
    """ᾱ_i of DDPM's linear β table approaches α(t_i)² of the continuous VP-linear schedule at rate O(1/N)."""
    errs = []
    for n in (250, 500, 1000, 2000):
        betas = S.linear_betas(n, 0.1 / n, 20.0 / n)
        t = torch.arange(1, n + 1, dtype=f64) / n
        errs.append(float((S.alphas_cumprod(betas) - S.VPLinear().alpha(t) ** 2).abs().max()))
    ratios = [errs[i] / errs[i + 1] for i in range(3)]
    assert all(1.8 < r < 2.2 for r in ratios), ratios


def test_cosine_betas_reproduce_the_cosine_alpha_bar():
    betas = S.cosine_betas(1000, max_beta=0.999999)
    t = torch.arange(1, 1001, dtype=f64) / 1000
    assert torch.allclose(S.alphas_cumprod(betas)[:-1], S.VPCosine().alpha(t)[:-1] ** 2, rtol=1e-8)


def test_ddpm_sigmas_and_karras_grid():
    betas = S.linear_betas()
    sig = S.ddpm_sigmas(betas)
    abar = S.alphas_cumprod(betas)
    assert sig.shape == (1001,) and sig[-1] == 0 and (sig.diff() < 0).all()
    assert torch.allclose(1 / (1 + sig[:-1] ** 2), abar.flip(0))
    k = S.karras_sigmas(10, 0.002, 80.0)
    assert k.shape == (11,) and math.isclose(float(k[0]), 80.0) and math.isclose(float(k[-2]), 0.002) and k[-1] == 0


def test_log_snr():
    sch = S.VPLinear()
    assert torch.allclose(S.log_snr(sch, T), torch.log(sch.alpha(T) ** 2 / sch.sigma(T) ** 2))
    assert (S.log_snr(sch, T).diff() < 0).all()


def test_zero_terminal_snr_is_not_reached():
    """A finite-time VP-linear process does not end exactly at N(0, I): α_1 > 0 (Lin et al. 2024)."""
    assert float(S.VPLinear().alpha(torch.tensor(1.0, dtype=f64))) > 4e-5
    assert float(S.alphas_cumprod(S.linear_betas())[-1]) > 0


def test_bad_input():
    with pytest.raises(ValueError, match="n must be a positive int"):
        S.karras_sigmas(0)
    with pytest.raises(ValueError, match="sigma_min < sigma_max"):
        S.karras_sigmas(5, 1.0, 0.5)
    with pytest.raises(ValueError, match="beta_start"):
        S.linear_betas(10, 0.5, 0.1)
    with pytest.raises(ValueError, match="betas must be a 1-D tensor"):
        S.alphas_cumprod(torch.tensor([0.5, 1.5]))
    with pytest.raises(ValueError, match="t_min < t_max"):
        S.schedule_sigmas(S.VPLinear(), 10, t_max=0.5, t_min=0.6)


def test_ddpm_sigmas_pinned_at_first_and_last_time_step():
    """Catches a grid that drops t = 0 (or t = T - 1) but keeps its length: the smallest nonzero σ̄ is
    sqrt(β₁/(1 - β₁)) and the largest is sqrt((1 - ᾱ_T)/ᾱ_T), ᾱ_T computed here as a plain Python product."""
    betas = S.linear_betas()
    sig = S.ddpm_sigmas(betas)
    b = [1e-4 + i * (0.02 - 1e-4) / 999 for i in range(1000)]
    abar_T = math.prod(1 - x for x in b)
    assert math.isclose(float(sig[-2]), math.sqrt(1e-4 / (1 - 1e-4)), rel_tol=1e-12)  # = 0.0100005...
    assert math.isclose(float(sig[-2]), 0.010000500037503, rel_tol=1e-12)
    assert math.isclose(float(sig[0]), math.sqrt((1 - abar_T) / abar_T), rel_tol=1e-10)
    assert 156.0 < float(sig[0]) < 158.0  # ᾱ_T ≈ 4.04e-5
    assert float(sig[-1]) == 0.0
    sub = S.ddpm_sigmas(betas, torch.tensor([999, 499, 0]))
    abar_500 = math.prod(1 - x for x in b[:500])
    assert torch.allclose(sub, torch.tensor([sig[0], math.sqrt((1 - abar_500) / abar_500), sig[-2], 0.0], dtype=f64), rtol=1e-10)
