"""Peer equivalence: given the same noise and the same model outputs, diffbook's samplers reproduce
diffusers' DDPMScheduler/DDIMScheduler and k-diffusion's sample_euler/heun/dpmpp_2m to 1e-5.

Both sides are driven by the exact denoiser of a Gaussian mixture, so any difference is the sampler's.
"""

import math

import pytest
import torch

from diffbook import samplers, schedules
from diffbook.toy import GaussianMixture

from peers import diffusers_schedulers, k_diffusion_sampling

f64 = torch.float64
GMM = GaussianMixture.isotropic(
    torch.tensor([0.2, 0.5, 0.3], dtype=f64),
    torch.tensor([[-1.5, 0.0, 0.5], [1.0, 1.0, -0.5], [0.0, -1.5, 0.0]], dtype=f64),
    torch.tensor([0.3, 0.5, 0.4], dtype=f64),
)
K = k_diffusion_sampling()
D = diffusers_schedulers()
needs_k = pytest.mark.skipif(K is None, reason="k-diffusion is not installed")
needs_diffusers = pytest.mark.skipif(D is None, reason="diffusers is not installed")


def max_rel(a, b):
    return float((a - b).abs().max() / b.abs().max())


@needs_k
def test_karras_sigmas_match_k_diffusion():
    ours = schedules.karras_sigmas(30, 0.002, 80.0)
    theirs = K.get_sigmas_karras(30, 0.002, 80.0).to(f64)
    assert torch.allclose(ours, theirs, rtol=1e-6)


@needs_k
@pytest.mark.parametrize(
    "ours,theirs,kwargs",
    [
        ("sample_euler", "sample_euler", {}),
        ("sample_heun", "sample_heun", {}),
        ("sample_dpmpp_2m", "sample_dpmpp_2m", {}),
        ("sample_euler", "sample_euler", {"churn": 10.0}),
        ("sample_heun", "sample_heun", {"churn": 10.0}),
    ],
)
def test_k_diffusion_samplers(ours, theirs, kwargs):
    sigmas = schedules.karras_sigmas(25, 0.002, 80.0)
    x = samplers.prior_noise((256, 3), sigmas[0], variance_preserving=False, generator=torch.Generator().manual_seed(0), dtype=f64)
    mine = getattr(samplers, ours)(GMM.denoiser, x, sigmas, generator=torch.Generator().manual_seed(1), **kwargs)
    k_kwargs = {"s_churn": kwargs["churn"]} if "churn" in kwargs else {}
    torch.manual_seed(1)  # k-diffusion draws churn noise from the global generator
    ref = getattr(K, theirs)(GMM.denoiser, x, sigmas, disable=True, **k_kwargs)
    assert max_rel(mine, ref) < 1e-5


def vp_eps_model(alphas_cumprod):
    """diffusers-style ε(x_t, t) in VP variables, from the same exact denoiser diffbook's samplers call."""

    def model(x_t, t):
        abar = alphas_cumprod[int(t)].to(f64)
        sbar = torch.sqrt((1 - abar) / abar)
        x0 = GMM.denoiser(x_t / abar.sqrt(), sbar.expand(x_t.shape[0]))
        return (x_t - abar.sqrt() * x0) / (1 - abar).sqrt()

    return model


def run_diffusers(scheduler, x_vp, seed, **step_kwargs):
    model = vp_eps_model(scheduler.alphas_cumprod)
    gen = torch.Generator().manual_seed(seed)
    for t in scheduler.timesteps:
        x_vp = scheduler.step(model(x_vp, t), t, x_vp, generator=gen, **step_kwargs).prev_sample
    return x_vp


def grid(scheduler):
    abar = scheduler.alphas_cumprod.to(f64)[scheduler.timesteps]
    return torch.cat([torch.sqrt((1 - abar) / abar), torch.zeros(1, dtype=f64)])


@needs_diffusers
@pytest.mark.parametrize("steps", [1000, 50])
@pytest.mark.parametrize("variance", ["beta_tilde", "beta"])
def test_ddpm_matches_diffusers(steps, variance):
    DDPM, _ = D
    sched = DDPM(num_train_timesteps=1000, beta_schedule="linear", clip_sample=False,
                 variance_type="fixed_small" if variance == "beta_tilde" else "fixed_large")
    sched.set_timesteps(steps)
    x_vp = torch.randn(128, 3, generator=torch.Generator().manual_seed(0), dtype=f64)
    ref = run_diffusers(sched, x_vp, seed=5)
    sigmas = grid(sched)
    abar0 = 1 / (1 + sigmas[0] ** 2)
    mine = samplers.sample_ddpm(GMM.denoiser, x_vp / abar0.sqrt(), sigmas, variance=variance,
                                generator=torch.Generator().manual_seed(5))
    assert max_rel(mine, ref) < 1e-5  # at σ̄ = 0 the VE and VP variables coincide


@needs_diffusers
@pytest.mark.parametrize("eta", [0.0, 0.5, 1.0])
def test_ddim_matches_diffusers(eta):
    _, DDIM = D
    sched = DDIM(num_train_timesteps=1000, beta_schedule="linear", clip_sample=False, set_alpha_to_one=True)
    sched.set_timesteps(50)
    x_vp = torch.randn(128, 3, generator=torch.Generator().manual_seed(0), dtype=f64)
    ref = run_diffusers(sched, x_vp, seed=3, eta=eta)
    sigmas = grid(sched)
    mine = samplers.sample_ddim(GMM.denoiser, x_vp * math.sqrt(1 + float(sigmas[0]) ** 2), sigmas, eta=eta,
                                generator=torch.Generator().manual_seed(3))
    assert max_rel(mine, ref) < 1e-5
