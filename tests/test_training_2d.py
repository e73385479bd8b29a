"""End to end at the `tiny` size: an MLP denoiser trained on two moons with EDM's preconditioning and loss,
sampled with Heun, matches the data in MMD. Fails if any of net, precond, loss, training loop, EMA or
sampler is wrong."""

import torch

from diffbook import samplers, schedules
from diffbook.data.toy2d import sample_moons
from diffbook.losses import denoising_loss, edm_weight
from diffbook.metrics.mmd import mmd2
from diffbook.nets.mlp import MLP
from diffbook.param import EDMPrecond, Preconditioned
from diffbook.train import train

SIGMA_DATA = 0.5
BANDWIDTHS = [0.05, 0.1, 0.2, 0.4]
# Two independent samples of 2000 moons give |MMD²| ~ 2e-3 with these bandwidths; a Gaussian with the
# moons' mean and covariance scores 0.11 and an untrained network 0.13.
THRESHOLD = 0.01


def loss_fn(model, batch, generator):
    sigma = torch.exp(torch.randn(batch.shape[0], generator=generator) * 1.2 - 1.2)  # EDM's log-normal σ
    return denoising_loss(model, batch, sigma, weight=edm_weight(sigma, SIGMA_DATA), generator=generator)


def test_trained_2d_denoiser_matches_the_data():
    torch.manual_seed(0)
    denoiser = Preconditioned(MLP(2, hidden=128, depth=3), EDMPrecond(SIGMA_DATA))
    data_gen = torch.Generator().manual_seed(1)
    result = train(denoiser, loss_fn, lambda step: 0.5 * sample_moons(256, noise=0.05, generator=data_gen),
                   steps=1200, lr=2e-3, ema_decay=0.99, progress=False, device="cpu")
    assert result.losses[-100:].mean() < result.losses[:20].mean()

    ref = 0.5 * sample_moons(2000, noise=0.05, generator=torch.Generator().manual_seed(5))
    sigmas = schedules.karras_sigmas(32, 0.002, 40.0)
    x = samplers.prior_noise((2000, 2), 40.0, variance_preserving=False, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        samples = samplers.sample_heun(result.ema, x, sigmas)
        untrained = samplers.sample_heun(Preconditioned(MLP(2, hidden=128, depth=3), EDMPrecond(SIGMA_DATA)), x, sigmas)
    assert float(mmd2(samples, ref, bandwidth=BANDWIDTHS)) < THRESHOLD
    assert float(mmd2(untrained, ref, bandwidth=BANDWIDTHS)) > 5 * THRESHOLD
