"""Sampler overhead per network evaluation: diffbook vs k-diffusion vs diffusers, on the CPU.

Every sampler gets the same near-free denoiser (one multiply on a small batch) and the same noise levels,
so what is timed is the sampler's own work per function evaluation (NFE): the loop, the schedule
arithmetic and the tensor updates. Reports the median over repeats of microseconds per NFE and the ratio
diffbook/peer (below 1: diffbook is cheaper). Run from the repository root:

    python benchmarks/sampler_overhead.py [--steps 500] [--repeats 7]
"""

from __future__ import annotations

import argparse
import math
import statistics
import time

import torch

from _peers import diffusers_schedulers, k_diffusion_sampling
from diffbook import samplers, schedules


def timed(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=500)
    ap.add_argument("--repeats", type=int, default=7)
    args = ap.parse_args()
    torch.set_num_threads(1)
    n = args.steps
    x = torch.randn(16, 4, 8, 8)
    cheap = lambda z, s: z * 0.5  # noqa: E731 - the near-free denoiser
    rows = []

    sig = schedules.karras_sigmas(n, 0.002, 80.0).float()
    K = k_diffusion_sampling()
    for name, ours, nfe in [("euler", "sample_euler", n), ("heun", "sample_heun", 2 * n - 1), ("dpmpp_2m", "sample_dpmpp_2m", n)]:
        t_ours = timed(lambda: getattr(samplers, ours)(cheap, x, sig), args.repeats)
        t_peer = timed(lambda: getattr(K, ours)(cheap, x, sig, disable=True), args.repeats) if K else math.nan
        rows.append((name, "k-diffusion", nfe, t_ours, t_peer))

    D = diffusers_schedulers()
    if D:
        DDPM, DDIM = D
        for name, cls, kwargs in [("ddim", DDIM, {}), ("ddpm", DDPM, {})]:
            sched = cls(num_train_timesteps=1000, beta_schedule="linear", clip_sample=False, **kwargs)
            sched.set_timesteps(min(n, 1000))
            abar = sched.alphas_cumprod.double()[sched.timesteps]
            grid = torch.cat([torch.sqrt((1 - abar) / abar), torch.zeros(1, dtype=torch.float64)]).float()
            gen = torch.Generator()

            def peer() -> None:
                z = x
                for t in sched.timesteps:
                    z = sched.step(z * 0.5, t, z, generator=gen).prev_sample

            fn = samplers.sample_ddim if name == "ddim" else samplers.sample_ddpm
            t_ours = timed(lambda: fn(cheap, x, grid, generator=gen), args.repeats)
            rows.append((name, "diffusers", len(sched.timesteps), t_ours, timed(peer, args.repeats)))

    print(f"torch {torch.__version__}, CPU, 1 thread, batch {tuple(x.shape)}, {n} steps")
    print(f"{'sampler':10s} {'peer':12s} {'NFE':>5s} {'diffbook µs/NFE':>16s} {'peer µs/NFE':>12s} {'ratio':>6s}")
    for name, peer, nfe, a, b in rows:
        print(f"{name:10s} {peer:12s} {nfe:5d} {1e6 * a / nfe:16.1f} {1e6 * b / nfe:12.1f} {a / b:6.2f}")


if __name__ == "__main__":
    main()
