"""Accuracy at equal NFE on an exact-score Gaussian mixture: diffbook vs k-diffusion vs diffusers.

Every sampler is driven by the exact denoiser of a 3-component mixture in 2-D, so its error is pure
discretisation error. For each NFE budget we report the RMS distance of the final samples to a reference
solution of the same probability-flow ODE from the same starting points (Heun with 2000 steps), for
diffbook and for the peer implementation of the same method. The two columns must agree (they are the
same algorithms); the rows show how each method trades steps for accuracy. Run from the repository root:

    python benchmarks/sampler_accuracy.py
"""

from __future__ import annotations

import math

import torch

from _peers import diffusers_schedulers, k_diffusion_sampling
from diffbook import samplers, schedules
from diffbook.toy import GaussianMixture

f64 = torch.float64
GMM = GaussianMixture.isotropic(
    torch.tensor([0.2, 0.5, 0.3], dtype=f64),
    torch.tensor([[-1.5, 0.0], [1.0, 1.0], [0.0, -1.5]], dtype=f64),
    torch.tensor([0.3, 0.5, 0.4], dtype=f64),
)


def rms(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).pow(2).sum(1).mean().sqrt())


def karras_table(K) -> list[tuple[str, int, float, float]]:
    x = samplers.prior_noise((2000, 2), 80.0, variance_preserving=False, generator=torch.Generator().manual_seed(0), dtype=f64)
    ref = samplers.sample_heun(GMM.denoiser, x, schedules.karras_sigmas(2000, 0.002, 80.0))
    rows = []
    for name, steps_for in [("euler", lambda nfe: nfe), ("heun", lambda nfe: (nfe + 1) // 2), ("dpmpp_2m", lambda nfe: nfe)]:
        for nfe in (10, 20, 50, 100):
            sig = schedules.karras_sigmas(steps_for(nfe), 0.002, 80.0)
            ours = getattr(samplers, f"sample_{name}")(GMM.denoiser, x, sig)
            peer = getattr(K, f"sample_{name}")(GMM.denoiser, x, sig, disable=True) if K else None
            rows.append((name, nfe, rms(ours, ref), rms(peer, ref) if peer is not None else math.nan))
    return rows


def ddim_table(D) -> list[tuple[str, int, float, float]]:
    _, DDIM = D
    x_vp = torch.randn(2000, 2, generator=torch.Generator().manual_seed(0), dtype=f64)
    rows = []
    for nfe in (10, 20, 50, 100):
        sched = DDIM(num_train_timesteps=1000, beta_schedule="linear", clip_sample=False, set_alpha_to_one=True)
        sched.set_timesteps(nfe)
        abar = sched.alphas_cumprod.to(f64)[sched.timesteps]
        sig = torch.cat([torch.sqrt((1 - abar) / abar), torch.zeros(1, dtype=f64)])
        x = x_vp * math.sqrt(1 + float(sig[0]) ** 2)
        fine = schedules.karras_sigmas(2000, float(sig[-2]), float(sig[0]))  # same ODE, same end points
        ref = samplers.sample_heun(GMM.denoiser, x, fine)
        ours = samplers.sample_ddim(GMM.denoiser, x, sig)
        z = x_vp
        for t in sched.timesteps:
            a = sched.alphas_cumprod[int(t)].to(f64)
            x0 = GMM.denoiser(z / a.sqrt(), torch.sqrt((1 - a) / a).expand(len(z)))
            z = sched.step((z - a.sqrt() * x0) / (1 - a).sqrt(), t, z).prev_sample
        rows.append(("ddim", nfe, rms(ours, ref), rms(z, ref)))
    return rows


def main() -> None:
    torch.set_num_threads(1)
    K, D = k_diffusion_sampling(), diffusers_schedulers()
    rows = karras_table(K) + (ddim_table(D) if D else [])
    print("RMS error to a 2000-step Heun solution of the same PF-ODE (exact GMM denoiser, 2000 paths)")
    print(f"{'sampler':10s} {'peer':12s} {'NFE':>4s} {'diffbook':>10s} {'peer':>10s} {'|diff|':>9s}")
    for name, nfe, a, b in rows:
        peer = "diffusers" if name == "ddim" else "k-diffusion"
        print(f"{name:10s} {peer:12s} {nfe:4d} {a:10.2e} {b:10.2e} {abs(a - b):9.1e}")


if __name__ == "__main__":
    main()
