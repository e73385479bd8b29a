"""SEGA's per-step overhead against plain RoPE sampling, in one run, as a ratio.

The same (untrained) chapter DiT samples the same noise at ``--scale``× its training size with ``none``, ``yarn``
and ``sega``; every Euler step of every method asks :func:`diffbook.sega.rope_scaling` for its tables (so the
table-building cost is the same path), and SEGA adds its spectrum (one FFT of the token map per step). The
three methods are timed in interleaved rounds with ``time.perf_counter``; the medians and the ratios against
``none`` are printed. Absolute times on a shared CPU mean little; the ratios, measured side by side, are the
result. Run from the repository root:

    python benchmarks/sega_overhead.py [--scale 4] [--steps 10] [--n 8] [--rounds 5]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from diffbook.sega import rope_scaling, rotary_from_axes
from diffbook.sega.sampling import make_dit, sample


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scale", type=int, default=4)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--n", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--hidden", type=int, default=96)
    parser.add_argument("--depth", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    model = make_dit(hidden=args.hidden, depth=args.depth, heads=3).eval()
    res = 32 * args.scale
    methods = ("none", "yarn", "sega")
    times: dict[str, list[float]] = {m: [] for m in methods}
    sample(model, "sega", 1, res, steps=1)  # warm-up
    for _ in range(args.rounds):
        for m in methods:
            t0 = time.perf_counter()
            sample(model, m, args.n, res, steps=args.steps, seed=0)
            times[m].append(time.perf_counter() - t0)
    # the table cost alone, many repetitions: what SEGA adds to a step, against one network evaluation
    grid = (res // 4, res // 4)
    latent = model.patch(torch.randn(args.n, 3, res, res))
    table: dict[str, float] = {}
    for m in methods:
        reps = []
        for _ in range(50):
            t0 = time.perf_counter()
            rotary_from_axes(rope_scaling(m, (8, 8), grid, (16, 16), theta=100.0, t=0.5, latent=latent), grid)
            reps.append(time.perf_counter() - t0)
        table[m] = statistics.median(reps)
    base = statistics.median(times["none"])
    print(f"DiT {args.hidden}x{args.depth}, {res}^2 px ({(res // 4) ** 2} tokens), {args.n} samples, {args.steps} Euler steps, "
          f"median of {args.rounds} rounds")
    print("| method | s per sample run | ms per step | ratio to none |")
    print("|---|---:|---:|---:|")
    for m in methods:
        med = statistics.median(times[m])
        print(f"| {m} | {med:.3f} | {1000 * med / args.steps:.1f} | {med / base:.3f} |")
    step = base / args.steps
    print("| method | tables ms per step | extra over none, % of a plain step |")
    print("|---|---:|---:|")
    for m in methods:
        print(f"| {m} | {1000 * table[m]:.2f} | {100 * (table[m] - table['none']) / step:.2f} |")


if __name__ == "__main__":
    main()
