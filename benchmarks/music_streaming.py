"""Chapter 13: cost per bar of streaming generation, naive outpainting → enc-dec prefill → block-causal fused
step → the equal-size KV-cached frame-AR model, all rows in one run (interleaved bar by bar).

Reports token-forwards per bar (counted, next to the formula), sequential passes per bar, p50/p95 wall time
per bar, the real-time factor at 120 bpm (a bar of 16 sixteenths lasts 2 s) and the ratios against naive.
Untrained weights: speed does not depend on them. Run from the repository root:

    OMP_NUM_THREADS=1 python benchmarks/music_streaming.py [--steps 8] [--bars 100] [--dim 96] [--depth 3]
"""

from __future__ import annotations

import argparse
import platform

import torch

from diffbook.music.bench import benchmark_streaming


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--bars", type=int, default=100)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--dim", type=int, default=96)
    ap.add_argument("--depth", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    rows = benchmark_streaming(dim=args.dim, depth=args.depth, steps=args.steps, bars=args.bars, warmup=args.warmup)
    print(f"# music streaming, N={args.steps} steps, d={args.dim}, depth={args.depth}, {args.bars} bars, "
          f"{args.threads} thread(s), torch {torch.__version__}, {platform.processor() or platform.machine()}")
    print("| method | token-forwards/bar (formula) | passes/bar | p50 ms | p95 ms | RTF | naive/this tokens | naive/this p50 | p95 / half bar |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['method']} | {r['tokens_per_bar']} ({r['formula']}) | {r['passes_per_bar']} | {r['p50_ms']:.1f} | "
              f"{r['p95_ms']:.1f} | {r['rtf']:.0f}x | {r['token_ratio']:.2f} | {r['speedup_p50']:.2f} | {r['p95_over_half_bar']:.3f} |")


if __name__ == "__main__":
    main()
