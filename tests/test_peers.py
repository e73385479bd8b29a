"""Peer equivalence: given the same noise and the same model outputs, diffbook's samplers reproduce
diffusers' DDPMScheduler/DDIMScheduler and k-diffusion's sample_euler/heun/dpmpp_2m to 1e-10 (float64 on
both sides).

Both sides are driven by the exact denoiser of a Gaussian mixture, so any difference is the sampler's.
A missing peer skips on a developer's machine and fails in CI (``CI=true`` or ``DIFFBOOK_REQUIRE_PEERS=1``).
"""

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from diffbook import samplers, schedules
from diffbook.toy import GaussianMixture

from peers import STUBBED, diffusers_schedulers, k_diffusion_sampling, need, peers_required

f64 = torch.float64
GMM = GaussianMixture.isotropic(
    torch.tensor([0.2, 0.5, 0.3], dtype=f64),
    torch.tensor([[-1.5, 0.0, 0.5], [1.0, 1.0, -0.5], [0.0, -1.5, 0.0]], dtype=f64),
    torch.tensor([0.3, 0.5, 0.4], dtype=f64),
)
_K = k_diffusion_sampling()
_D = diffusers_schedulers()


@pytest.fixture
def K():
    return need("k-diffusion", _K)


@pytest.fixture
def D():
    return need("diffusers", _D)


def max_rel(a, b):
    return float((a - b).abs().max() / b.abs().max())


def test_karras_sigmas_match_k_diffusion(K):
    ours = schedules.karras_sigmas(30, 0.002, 80.0)
    theirs = K.get_sigmas_karras(30, 0.002, 80.0).to(f64)
    assert torch.allclose(ours, theirs, rtol=1e-6)


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
def test_k_diffusion_samplers(ours, theirs, kwargs, K):
    sigmas = schedules.karras_sigmas(25, 0.002, 80.0)
    x = samplers.prior_noise((256, 3), sigmas[0], variance_preserving=False, generator=torch.Generator().manual_seed(0), dtype=f64)
    mine = getattr(samplers, ours)(GMM.denoiser, x, sigmas, generator=torch.Generator().manual_seed(1), **kwargs)
    k_kwargs = {"s_churn": kwargs["churn"]} if "churn" in kwargs else {}
    torch.manual_seed(1)  # k-diffusion draws churn noise from the global generator
    ref = getattr(K, theirs)(GMM.denoiser, x, sigmas, disable=True, **k_kwargs)
    assert ref.dtype == f64 and max_rel(mine, ref) < 1e-10  # measured: 0 (Euler, Heun) and 7e-15 (DPM++ 2M)


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


def in_float64(scheduler):
    """diffusers keeps β and ᾱ in float32 whatever the sample's dtype (``torch.linspace(..., dtype=float32)``),
    and forms each step's β_t = 1 - ᾱ_t/ᾱ_{t-1} and coefficients from them in float32. With 50 of 1000 steps
    that costs ~1e-5 relative (measured: 1.07e-5 at an element of value -0.62, not near zero; median 3e-6),
    which is diffusers' round-off, not a sampler difference. Its step() reads only these tables, so we
    rebuild them in float64 from the same linear β; both sides then agree to ~3e-14, and the bound below can
    be 1e-10 (about 1e6 float64 ε over 50-1000 steps), tight enough to catch any wrong coefficient."""
    scheduler.betas = torch.linspace(scheduler.config.beta_start, scheduler.config.beta_end,
                                     scheduler.config.num_train_timesteps, dtype=f64)
    scheduler.alphas = 1.0 - scheduler.betas
    scheduler.alphas_cumprod = torch.cumprod(scheduler.alphas, dim=0)
    scheduler.one = torch.tensor(1.0, dtype=f64)
    if hasattr(scheduler, "final_alpha_cumprod"):  # DDIM with set_alpha_to_one
        scheduler.final_alpha_cumprod = torch.tensor(1.0, dtype=f64)
    return scheduler


def grid(scheduler):
    abar = scheduler.alphas_cumprod.to(f64)[scheduler.timesteps]
    return torch.cat([torch.sqrt((1 - abar) / abar), torch.zeros(1, dtype=f64)])


@pytest.mark.parametrize("steps", [1000, 50])
@pytest.mark.parametrize("variance", ["beta_tilde", "beta"])
def test_ddpm_matches_diffusers(steps, variance, D):
    DDPM, _ = D
    sched = DDPM(num_train_timesteps=1000, beta_schedule="linear", clip_sample=False,
                 variance_type="fixed_small" if variance == "beta_tilde" else "fixed_large")
    in_float64(sched).set_timesteps(steps)
    x_vp = torch.randn(128, 3, generator=torch.Generator().manual_seed(0), dtype=f64)
    ref = run_diffusers(sched, x_vp, seed=5)
    sigmas = grid(sched)
    abar0 = 1 / (1 + sigmas[0] ** 2)
    mine = samplers.sample_ddpm(GMM.denoiser, x_vp / abar0.sqrt(), sigmas, variance=variance,
                                generator=torch.Generator().manual_seed(5))
    assert ref.dtype == f64 and max_rel(mine, ref) < 1e-10  # at σ̄ = 0 the VE and VP variables coincide


@pytest.mark.parametrize("eta", [0.0, 0.5, 1.0])
def test_ddim_matches_diffusers(eta, D):
    _, DDIM = D
    sched = DDIM(num_train_timesteps=1000, beta_schedule="linear", clip_sample=False, set_alpha_to_one=True)
    in_float64(sched).set_timesteps(50)
    x_vp = torch.randn(128, 3, generator=torch.Generator().manual_seed(0), dtype=f64)
    ref = run_diffusers(sched, x_vp, seed=3, eta=eta)
    sigmas = grid(sched)
    mine = samplers.sample_ddim(GMM.denoiser, x_vp * math.sqrt(1 + float(sigmas[0]) ** 2), sigmas, eta=eta,
                                generator=torch.Generator().manual_seed(3))
    assert ref.dtype == f64 and max_rel(mine, ref) < 1e-10


def test_missing_peer_fails_in_ci_and_skips_elsewhere(monkeypatch):
    """Catches a CI run that silently skips every peer test because diffusers or k-diffusion failed to install."""
    for env in ("CI", "DIFFBOOK_REQUIRE_PEERS"):
        monkeypatch.delenv(env, raising=False)
    assert not peers_required()
    with pytest.raises(pytest.skip.Exception):
        need("k-diffusion", None)
    for env, value in (("CI", "true"), ("DIFFBOOK_REQUIRE_PEERS", "1")):
        monkeypatch.setenv(env, value)
        assert peers_required()
        with pytest.raises(pytest.fail.Exception, match="k-diffusion is required"):
            need("k-diffusion", None)
        monkeypatch.delenv(env)
    assert need("diffusers", 3) == 3


LEAK_PROBE = """
import importlib.util, json, sys
sys.path.insert(0, sys.argv[1])
import peers
before = set(sys.modules)
visible = {n: importlib.util.find_spec(n.split('.')[0]) is not None for n in peers.STUBBED}
k = peers.k_diffusion_sampling()
new = sorted(set(sys.modules) - before)
print(json.dumps({"loaded": k is not None, "sampler": callable(getattr(k, "sample_euler", None)),
                  "k_entries": [m for m in sys.modules if m == "k_diffusion" or m.startswith("k_diffusion.")],
                  "stubs_left": [n for n in peers.STUBBED if n in sys.modules and not visible[n]],
                  "hollow": [n for n in new if getattr(sys.modules[n], "__file__", 1) is None and getattr(sys.modules[n], "__spec__", 1) is None]}))
"""


def test_k_diffusion_stubs_do_not_leak(K):
    """Catches stub modules (torchvision, PIL, torchsde, ...) or the hollow k_diffusion parent left in
    sys.modules, where they would fool other libraries' feature detection (`import PIL` succeeding empty)."""
    out = subprocess.run([sys.executable, "-c", LEAK_PROBE, str(Path(__file__).parent)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    res = json.loads(out.stdout.strip().splitlines()[-1])
    assert res["loaded"] and res["sampler"]
    assert res["k_entries"] == [] and res["stubs_left"] == [] and res["hollow"] == [], res
    assert len(STUBBED) == 8
