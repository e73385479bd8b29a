"""Fuzz: every public function of the math core (schedules, sde, param, losses, samplers, toy, ode, guidance)
and of diffbook.foundations gets each class of bad input in turn, one argument at a time with the others
valid, and must raise ``ValueError`` or ``TypeError`` whose message names that argument (issue 8, §6).

The table is the whole test: one row per function, with valid keyword arguments and, per argument, the
classes of bad input it must reject. Add a row for a new public function; add a class to ``BAD`` for a new
kind of bad input. The nets/train/checkpoint modules have a sibling file.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
import torch
from torch import Tensor

from diffbook import guidance, losses, ode, param, samplers, sde
from diffbook import schedules as S
from diffbook.foundations import brownian, ddpm, processes, sampler_eval
from diffbook.toy import GaussianMixture, mixture_denoiser

f64 = torch.float64


def _poke(good: Tensor, value: float) -> Tensor:
    bad = good.clone()
    bad.view(-1)[0] = value
    return bad


# The classes of bad input, each a function of a valid value of the argument (a tensor or a number).
BAD: dict[str, Callable[[Any], Any]] = {
    "none": lambda good: None,
    "wrong_type": lambda good: "1.0",
    "nan": lambda good: _poke(good, math.nan) if isinstance(good, Tensor) else math.nan,
    "inf": lambda good: _poke(good, math.inf) if isinstance(good, Tensor) else math.inf,
    "negative": lambda good: -(good.abs() + 0.5) if isinstance(good, Tensor) else -abs(good) - 1,
    "zero": lambda good: torch.zeros_like(good) if isinstance(good, Tensor) else type(good)(0),
    "above_one": lambda good: good + 2.0,  # a time outside [0, 1] or a probability above 1
    "empty": lambda good: good[:0],
    "int_dtype": lambda good: good.round().long(),
    "non_integer": lambda good: good + 0.5,  # a float where an int count is needed
    "wrong_shape": lambda good: torch.cat([good, good[:1]]) if good.ndim else good.expand(3),
    "extra_dim": lambda good: good[None].expand(2, *good.shape),
}
NUMBER = "none wrong_type nan inf"  # every real-valued option
POSITIVE = NUMBER + " negative zero"
COUNT = "none wrong_type negative zero non_integer"
TENSOR = "none wrong_type int_dtype"
FINITE_TENSOR = TENSOR + " nan inf"
LEVEL = FINITE_TENSOR + " negative"  # noise levels σ ≥ 0
TIME = FINITE_TENSOR + " negative above_one"
# VPLinear and VE: the formulas hold for every t >= 0 (DDPM's table maps just past t = 1); the process-level
# functions (sigma_bar, log_snr, sde.*) still refuse t > 1
TIME_EXTENDED = FINITE_TENSOR + " negative"
CALLABLE = "none wrong_type"

X = torch.randn(4, 2, dtype=f64, generator=torch.Generator().manual_seed(0))
SIGMA = torch.tensor([0.3, 0.8, 1.5, 4.0], dtype=f64)
T = torch.tensor([0.2, 0.4, 0.6, 0.9], dtype=f64)
SIGMAS = S.karras_sigmas(3, 0.1, 5.0)
BETAS = S.linear_betas(10)
STEPS = torch.tensor([2, 3, 5, 10])
GMM = GaussianMixture.isotropic(torch.tensor([0.4, 0.6], dtype=f64), torch.tensor([[-1.0, 0.0], [1.0, 0.5]], dtype=f64), 0.5)
CLASSES = guidance.ClassMixture(GMM, torch.tensor([0, 1]))
VP = S.VPLinear()
DEN = GMM.denoiser


def score(x, t):
    return -x


class Net(torch.nn.Module):
    def forward(self, x, noise_level):
        return x * noise_level[:, None]


@dataclass
class Row:
    name: str
    fn: Callable[..., Any]
    good: dict[str, Any]
    bad: dict[str, str]  # argument -> space-separated classes of BAD


ROWS = [
    # schedules
    Row("schedules.VPLinear", S.VPLinear, dict(beta_min=0.1, beta_max=20.0), dict(beta_min=NUMBER + " negative", beta_max=POSITIVE)),
    Row("schedules.VE", S.VE, dict(sigma_min=0.01, sigma_max=50.0), dict(sigma_min=POSITIVE, sigma_max=POSITIVE)),
    Row("schedules.VPCosine", S.VPCosine, dict(s=0.008), dict(s=NUMBER + " negative")),
    Row("schedules.VPLinear.alpha", VP.alpha, dict(t=T), dict(t=TIME_EXTENDED)),
    Row("schedules.VPCosine.sigma", S.VPCosine().sigma, dict(t=T), dict(t=TIME)),
    Row("schedules.VE.sigma", S.VE().sigma, dict(t=T), dict(t=TIME_EXTENDED)),
    Row("schedules.FlowLinear.alpha", S.FlowLinear().alpha, dict(t=T), dict(t=TIME)),
    Row("schedules.VPLinear.t_of_sigma_bar", VP.t_of_sigma_bar, dict(s=SIGMA), dict(s=LEVEL)),
    Row("schedules.EDM.sigma", S.EDM().sigma, dict(t=SIGMA), dict(t=LEVEL)),
    Row("schedules.sigma_bar", S.sigma_bar, dict(schedule=VP, t=T), dict(schedule="none wrong_type", t=TIME)),
    Row("schedules.log_snr", S.log_snr, dict(schedule=VP, t=T), dict(schedule="none wrong_type", t=TIME)),
    Row("schedules.linear_betas", S.linear_betas, dict(n=10, beta_start=1e-4, beta_end=0.02),
        dict(n=COUNT, beta_start=POSITIVE, beta_end=POSITIVE)),
    Row("schedules.cosine_betas", S.cosine_betas, dict(n=10, s=0.008, max_beta=0.999), dict(n=COUNT, s=NUMBER + " negative", max_beta=POSITIVE)),
    Row("schedules.alphas_cumprod", S.alphas_cumprod, dict(betas=BETAS), dict(betas=FINITE_TENSOR + " negative zero above_one empty extra_dim")),
    Row("schedules.ddpm_tables", S.ddpm_tables, dict(betas=BETAS), dict(betas=FINITE_TENSOR + " negative zero above_one empty")),
    Row("schedules.ddpm_reverse_variance", S.ddpm_reverse_variance, dict(betas=BETAS, variance="beta"),
        dict(betas=FINITE_TENSOR + " above_one empty", variance="none wrong_type")),
    Row("schedules.ddpm_sigmas", S.ddpm_sigmas, dict(betas=BETAS, timesteps=torch.tensor([9, 5, 0])),
        dict(betas=FINITE_TENSOR + " above_one empty", timesteps="wrong_type negative empty above_one")),
    Row("schedules.karras_sigmas", S.karras_sigmas, dict(n=5, sigma_min=0.002, sigma_max=80.0, rho=7.0),
        dict(n=COUNT, sigma_min=POSITIVE, sigma_max=POSITIVE, rho=POSITIVE)),
    Row("schedules.schedule_sigmas", S.schedule_sigmas, dict(schedule=VP, n=5, t_max=1.0, t_min=1e-3),
        dict(schedule="none wrong_type", n=COUNT, t_max=NUMBER + " negative zero", t_min=NUMBER + " negative")),
    Row("schedules.time_derivative", S.time_derivative, dict(fn=VP.alpha, t=T), dict(fn=CALLABLE, t="none wrong_type")),
    # sde
    Row("sde.drift_coefficient", sde.drift_coefficient, dict(schedule=VP, t=T), dict(schedule="none wrong_type", t=TIME)),
    Row("sde.diffusion_squared", sde.diffusion_squared, dict(schedule=VP, t=T), dict(schedule="none wrong_type", t=TIME)),
    Row("sde.forward_drift", sde.forward_drift, dict(schedule=VP, x=X, t=T), dict(x=TENSOR, t=TIME + " wrong_shape")),
    Row("sde.reverse_drift", sde.reverse_drift, dict(schedule=VP, score=score, x=X, t=T, eta=1.0),
        dict(score=CALLABLE, x=TENSOR, t=TIME + " wrong_shape", eta=NUMBER + " negative")),
    Row("sde.probability_flow_drift", sde.probability_flow_drift, dict(schedule=VP, score=score, x=X, t=T),
        dict(schedule="none wrong_type", score=CALLABLE, x=TENSOR, t=TIME)),
    Row("sde.marginal_sample", sde.marginal_sample, dict(schedule=VP, x0=X, t=T, noise=X), dict(x0=TENSOR, t=TIME + " wrong_shape", noise="wrong_type wrong_shape")),
    Row("sde.euler_maruyama", sde.euler_maruyama, dict(drift=lambda t, x: -x, diffusion=lambda t: 1.0, x0=X, ts=T),
        dict(drift=CALLABLE, diffusion=CALLABLE, x0=TENSOR, ts=FINITE_TENSOR + " empty zero")),
    # param
    Row("param.x0_from_eps", param.x0_from_eps, dict(x=X, eps=X, alpha=0.5, sigma=0.8), dict(x=TENSOR, eps=TENSOR, alpha="none wrong_type", sigma="none wrong_type")),
    Row("param.eps_from_x0", param.eps_from_x0, dict(x=X, x0=X, alpha=0.5, sigma=0.8), dict(x=TENSOR, x0=TENSOR, sigma="none wrong_type")),
    Row("param.score_from_eps", param.score_from_eps, dict(eps=X, sigma=0.8), dict(eps=TENSOR, sigma="none wrong_type")),
    Row("param.eps_from_score", param.eps_from_score, dict(score=X, sigma=0.8), dict(score=TENSOR, sigma="none wrong_type")),
    Row("param.x0_from_score", param.x0_from_score, dict(x=X, score=X, alpha=0.5, sigma=0.8), dict(x=TENSOR, score=TENSOR, alpha="none wrong_type")),
    Row("param.v_from_x0_eps", param.v_from_x0_eps, dict(x0=X, eps=X, alpha=0.5, sigma=0.8), dict(x0=TENSOR, eps=TENSOR, alpha="none wrong_type")),
    Row("param.x0_from_v", param.x0_from_v, dict(x=X, v=X, alpha=0.5, sigma=0.8), dict(x=TENSOR, v=TENSOR, sigma="none wrong_type")),
    Row("param.eps_from_v", param.eps_from_v, dict(x=X, v=X, alpha=0.5, sigma=0.8), dict(x=TENSOR, v=TENSOR, alpha="none wrong_type")),
    Row("param.velocity_from_x0_eps", param.velocity_from_x0_eps, dict(x0=X, eps=X, dalpha=-1.0, dsigma=1.0), dict(x0=TENSOR, eps=TENSOR, dsigma="none wrong_type")),
    Row("param.x0_from_velocity", param.x0_from_velocity, dict(x=X, u=X, alpha=0.5, sigma=0.5, dalpha=-1.0, dsigma=1.0),
        dict(x=TENSOR, u=TENSOR, dalpha="none wrong_type")),
    Row("param.EpsPrecond", param.EpsPrecond, dict(schedule=VP, time_scale=1000.0), dict(schedule="none wrong_type", time_scale=POSITIVE)),
    Row("param.VPrecond", param.VPrecond, dict(schedule=VP, time_scale=1.0), dict(schedule="none wrong_type", time_scale=POSITIVE)),
    Row("param.EDMPrecond", param.EDMPrecond, dict(sigma_data=0.5), dict(sigma_data=POSITIVE)),
    Row("param.EDMPrecond.coefficients", param.EDMPrecond().coefficients, dict(sigma=SIGMA), dict(sigma="nan inf negative zero")),
    Row("param.Preconditioned.forward", param.Preconditioned(Net(), param.EDMPrecond()).forward,
        dict(x=X, sigma=SIGMA), dict(x=TENSOR, sigma="none wrong_type nan inf negative zero wrong_shape")),
    Row("param.denoiser_to_score", param.denoiser_to_score, dict(denoiser=DEN, schedule=VP), dict(denoiser=CALLABLE, schedule="none wrong_type")),
    Row("param.denoiser_to_eps", param.denoiser_to_eps, dict(denoiser=DEN), dict(denoiser=CALLABLE)),
    # losses
    Row("losses.mse", losses.mse, dict(pred=X, target=X), dict(pred=TENSOR + " empty wrong_shape", target=TENSOR + " wrong_shape")),
    Row("losses.eps_mse", losses.eps_mse, dict(eps_pred=X, eps=X), dict(eps_pred=TENSOR, eps=TENSOR)),
    Row("losses.x0_mse", losses.x0_mse, dict(x0_pred=X, x0=X), dict(x0_pred=TENSOR, x0=TENSOR)),
    Row("losses.v_mse", losses.v_mse, dict(v_pred=X, x0=X, eps=X, alpha=0.6, sigma=0.8), dict(v_pred=TENSOR, x0=TENSOR, eps=TENSOR)),
    Row("losses.dsm_loss", losses.dsm_loss, dict(score_pred=X, x_t=X, x0=X, alpha=0.6, sigma=0.8), dict(score_pred=TENSOR, x_t=TENSOR, x0=TENSOR)),
    Row("losses.esm_loss", losses.esm_loss, dict(score_pred=X, true_score=X), dict(score_pred=TENSOR, true_score=TENSOR)),
    Row("losses.flow_matching_loss", losses.flow_matching_loss, dict(u_pred=X, x0=X, eps=X), dict(u_pred=TENSOR, x0=TENSOR, eps=TENSOR)),
    Row("losses.edm_weight", losses.edm_weight, dict(sigma=SIGMA, sigma_data=0.5), dict(sigma=LEVEL + " zero", sigma_data=POSITIVE)),
    Row("losses.lognormal_sigmas", losses.lognormal_sigmas, dict(n=4, p_mean=-1.2, p_std=1.2), dict(n=COUNT, p_mean=NUMBER, p_std=POSITIVE)),
    Row("losses.denoising_loss", losses.denoising_loss, dict(denoiser=DEN, x0=X, sigma=SIGMA),
        dict(denoiser=CALLABLE, x0=TENSOR + " empty", sigma=LEVEL + " zero wrong_shape")),
    Row("losses.edm_loss", losses.edm_loss, dict(denoiser=DEN, x0=X, sigma_data=0.5, p_mean=-1.2, p_std=1.2),
        dict(denoiser=CALLABLE, x0=TENSOR + " empty", sigma_data=POSITIVE, p_mean=NUMBER, p_std=POSITIVE)),
    Row("losses.ddpm_elbo_weights", losses.ddpm_elbo_weights, dict(betas=BETAS, variance="beta_tilde"),
        dict(betas=FINITE_TENSOR + " negative zero above_one empty", variance="none wrong_type")),
    Row("losses.vdm_weight", losses.vdm_weight, dict(schedule=VP, t=T), dict(schedule="none wrong_type", t=TIME)),
    # samplers
    Row("samplers.prior_noise", samplers.prior_noise, dict(shape=(4, 2), sigma_max=80.0), dict(shape="none wrong_type", sigma_max=POSITIVE)),
    *[Row(f"samplers.{fn.__name__}", fn, dict(denoiser=DEN, x=X, sigmas=SIGMAS),
          dict(denoiser=CALLABLE, x=TENSOR + " extra_dim", sigmas=FINITE_TENSOR + " negative empty zero"))
      for fn in (samplers.sample_euler, samplers.sample_heun, samplers.sample_ddim, samplers.sample_ddpm,
                 samplers.sample_euler_maruyama, samplers.sample_dpmpp_2m, samplers.sample_flow_euler)],
    Row("samplers.sample_heun(churn)", samplers.sample_heun, dict(denoiser=DEN, x=X, sigmas=SIGMAS, churn=1.0, s_noise=1.0),
        dict(churn=NUMBER + " negative", s_noise=NUMBER + " negative")),
    Row("samplers.sample_ddim(eta)", samplers.sample_ddim, dict(denoiser=DEN, x=X, sigmas=SIGMAS, eta=0.5), dict(eta=NUMBER + " negative")),
    Row("samplers.sample_ddpm(variance)", samplers.sample_ddpm, dict(denoiser=DEN, x=X, sigmas=SIGMAS, variance="beta"), dict(variance="none wrong_type")),
    # toy
    Row("toy.GaussianMixture", GaussianMixture, dict(weights=GMM.weights, means=GMM.means, covs=GMM.covs),
        dict(weights=FINITE_TENSOR + " negative zero wrong_shape", means=FINITE_TENSOR + " empty extra_dim", covs=FINITE_TENSOR + " negative wrong_shape")),
    Row("toy.GaussianMixture.isotropic", GaussianMixture.isotropic, dict(weights=GMM.weights, means=GMM.means, std=0.5),
        dict(weights=FINITE_TENSOR + " negative", means=FINITE_TENSOR + " extra_dim", std=NUMBER + " negative")),
    Row("toy.GaussianMixture.denoiser", GMM.denoiser, dict(x=X, sigma=SIGMA), dict(x=TENSOR + " extra_dim", sigma=LEVEL + " wrong_shape")),
    Row("toy.GaussianMixture.log_prob", GMM.log_prob, dict(x=X, alpha=1.0, sigma=0.5), dict(x=TENSOR, alpha="none wrong_type nan inf negative", sigma="none wrong_type nan inf negative")),
    Row("toy.GaussianMixture.score", GMM.score, dict(x=X, alpha=1.0, sigma=0.5), dict(x=TENSOR, sigma="none wrong_type nan negative")),
    Row("toy.GaussianMixture.posterior_mean", GMM.posterior_mean, dict(x=X, alpha=1.0, sigma=SIGMA), dict(x=TENSOR, sigma=LEVEL + " wrong_shape")),
    Row("toy.GaussianMixture.noised", GMM.noised, dict(alpha=0.5, sigma=0.5), dict(alpha=NUMBER, sigma=NUMBER + " negative")),
    Row("toy.GaussianMixture.sample", GMM.sample, dict(n=5), dict(n=COUNT)),
    Row("toy.mixture_denoiser", mixture_denoiser, dict(means=GMM.means, weights=GMM.weights, stds=0.5),
        dict(means=FINITE_TENSOR + " empty", weights="wrong_type int_dtype nan negative zero wrong_shape", stds=NUMBER + " negative")),
    Row("toy.mixture_denoiser(...)", mixture_denoiser(GMM.means, GMM.weights, 0.5), dict(x=X, sigma=SIGMA), dict(x=TENSOR, sigma=LEVEL + " wrong_shape")),
    # ode
    *[Row(f"ode.{fn.__name__}", fn, dict(u=lambda t, x: -x, t=torch.tensor(0.0, dtype=f64), x=X, h=torch.tensor(0.1, dtype=f64)),
          dict(u=CALLABLE, x=TENSOR, t="none wrong_type", h="none wrong_type"))
      for fn in (ode.euler_step, ode.heun_step, ode.rk4_step)],
    Row("ode.time_grid", ode.time_grid, dict(t0=0.0, t1=1.0, n_steps=4), dict(t0=NUMBER, t1=NUMBER, n_steps=COUNT)),
    Row("ode.integrate", ode.integrate, dict(u=lambda t, x: -x, x0=X, ts=T), dict(u=CALLABLE, x0=TENSOR, ts=FINITE_TENSOR + " empty zero")),
    Row("ode.divergence", ode.divergence, dict(u=lambda t, x: -x, t=torch.tensor(0.0, dtype=f64), x=X), dict(u=CALLABLE, x=TENSOR + " extra_dim")),
    Row("ode.augment_with_log_density", ode.augment_with_log_density, dict(u=lambda t, x: -x), dict(u=CALLABLE)),
    Row("ode.transport", ode.transport, dict(u=lambda t, x: -x, x0=X, ts=T), dict(u=CALLABLE, x0=TENSOR + " extra_dim", ts=FINITE_TENSOR + " empty")),
    Row("ode.log_density_at", ode.log_density_at, dict(u=lambda t, x: -x, x=X, ts=T, log_p0=GMM.log_prob),
        dict(u=CALLABLE, x=TENSOR + " extra_dim", ts=FINITE_TENSOR + " empty", log_p0=CALLABLE)),
    # guidance
    Row("guidance.guided_combination", guidance.guided_combination, dict(cond=X, uncond=X, w=1.0), dict(cond=TENSOR + " wrong_shape", uncond=TENSOR, w=NUMBER)),
    Row("guidance.classifier_free_guidance", guidance.classifier_free_guidance, dict(denoiser=DEN, w=1.0), dict(denoiser=CALLABLE, w=NUMBER)),
    Row("guidance.classifier_guidance", guidance.classifier_guidance, dict(denoiser=DEN, log_posterior=CLASSES.log_posterior, scale=1.0),
        dict(denoiser=CALLABLE, log_posterior=CALLABLE, scale=NUMBER)),
    Row("guidance.ClassMixture", guidance.ClassMixture, dict(mixture=GMM, classes=torch.tensor([0, 1])), dict(mixture="none wrong_type", classes="none wrong_type wrong_shape negative")),
    Row("guidance.ClassMixture.log_posterior", CLASSES.log_posterior, dict(x=X, sigma=SIGMA, labels=torch.tensor([0, 1, 0, 1])),
        dict(x=TENSOR, sigma=LEVEL, labels="none wrong_type negative wrong_shape")),
    Row("guidance.ClassMixture.denoiser", CLASSES.denoiser, dict(x=X, sigma=SIGMA, labels=torch.tensor([0, 1, 0, 1])),
        dict(x=TENSOR, sigma=LEVEL + " wrong_shape", labels="wrong_type negative wrong_shape")),
    Row("guidance.ClassMixture.component", CLASSES.component, dict(c=1), dict(c="none wrong_type negative non_integer")),
    Row("guidance.gaussian_pair_denoiser", guidance.gaussian_pair_denoiser, dict(tau=0.5), dict(tau=POSITIVE)),
    Row("guidance.gaussian_pair_cfg_variance", guidance.gaussian_pair_cfg_variance, dict(tau=0.5, w=1.0, sigma_max=10.0),
        dict(tau=POSITIVE, w=NUMBER, sigma_max="none wrong_type nan negative zero")),
    Row("guidance.gaussian_pair_tilted_variance", guidance.gaussian_pair_tilted_variance, dict(tau=0.5, w=1.0), dict(tau=POSITIVE, w=NUMBER)),
    # foundations
    Row("brownian.brownian_increments", brownian.brownian_increments, dict(n_paths=3, n_steps=4, T=1.0), dict(n_paths=COUNT, n_steps=COUNT, T=POSITIVE)),
    Row("brownian.ito_sum", brownian.ito_sum, dict(w=brownian.brownian_path(3, 4, 1.0)), dict(w=TENSOR)),
    Row("processes.ou_variance", processes.ou_variance, dict(t=T, theta=1.0, sigma=1.0), dict(t="none wrong_type", theta=POSITIVE, sigma=NUMBER + " negative")),
    Row("ddpm.forward_marginal", ddpm.forward_marginal, dict(x0=X, t=STEPS, betas=BETAS, noise=X),
        dict(x0=TENSOR + " empty", t="none wrong_type negative zero above_one wrong_shape", betas=FINITE_TENSOR + " above_one empty", noise=TENSOR + " wrong_shape")),
    Row("ddpm.posterior", ddpm.posterior, dict(x0=X, xt=X, t=STEPS, betas=BETAS),
        dict(x0=TENSOR, xt=TENSOR + " wrong_shape", t="none wrong_type negative zero wrong_shape", betas=FINITE_TENSOR + " negative above_one empty")),
    Row("ddpm.reverse_variance", ddpm.reverse_variance, dict(betas=BETAS), dict(betas=FINITE_TENSOR + " negative zero above_one empty")),
    Row("sampler_eval.sample_with_nfe", sampler_eval.sample_with_nfe, dict(sampler=samplers.sample_euler, denoiser=DEN, x=X, sigmas=SIGMAS),
        dict(sampler=CALLABLE, denoiser=CALLABLE, x=TENSOR, sigmas=FINITE_TENSOR + " negative")),
]

CASES = [(row, arg, kind) for row in ROWS for arg, kinds in row.bad.items() for kind in kinds.split()]


def test_the_table_is_well_formed():
    names = [row.name for row in ROWS]
    assert len(names) == len(set(names)), "duplicate row"
    for row in ROWS:
        row.fn(**row.good)  # every row's valid arguments really are valid
        assert set(row.bad) <= set(row.good), f"{row.name}: a bad argument without a valid value"
    assert {kind for _, _, kind in CASES} == set(BAD), "a class of bad input that no row uses"


@pytest.mark.parametrize("row,arg,kind", CASES, ids=[f"{r.name}-{a}-{k}" for r, a, k in CASES])
def test_bad_input_raises_a_clear_error_naming_the_argument(row, arg, kind):
    bad = BAD[kind](row.good[arg])
    with pytest.raises((ValueError, TypeError)) as info:
        row.fn(**{**row.good, arg: bad})
    assert re.search(rf"\b{re.escape(arg)}\b", str(info.value)), f"{type(info.value).__name__}: {info.value}"


# --- the shared per-sample broadcast (diffbook._checks.per_sample), the one home of eight former copies -----


def test_per_sample_broadcasts_a_level_per_sample_against_images():
    """(n,) becomes (n, 1, 1, 1) against (n, C, H, W): row i of the product is x[i] scaled by c[i]."""
    from diffbook._checks import per_sample

    x = torch.randn(3, 2, 4, 5, dtype=f64, generator=torch.Generator().manual_seed(1))
    c = torch.tensor([0.5, 2.0, -1.0], dtype=f64)
    out = per_sample(c, x) * x
    assert per_sample(c, x).shape == (3, 1, 1, 1)
    assert all(torch.equal(out[i], c[i] * x[i]) for i in range(3))
    assert per_sample(0.25, x).shape == () and per_sample(0.25, x, expand=True).shape == (3, 1, 1, 1)


def test_per_sample_keeps_a_python_float_at_the_precision_of_x():
    """A Python float must not pass through float32 on its way to a float64 ``x`` (that cost 4e-8 in Chapter 7)."""
    from diffbook._checks import per_sample

    x = torch.zeros(2, 3, dtype=f64)
    assert float(per_sample(0.1, x)) == 0.1
    assert float(per_sample(0.1, x, dtype=torch.float64, expand=True)[0, 0]) == 0.1
