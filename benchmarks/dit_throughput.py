"""DiT training-step throughput: diffbook's DiT against diffusers' DiTTransformer2DModel at equal size.

Both models get the same latents (4×32×32, as for ImageNet 256 with a VAE), class labels, bf16 autocast
with fp32 master weights, fused AdamW and an MSE loss; optionally both are ``torch.compile``d. Reported:
median ms per step after warm-up (CUDA events), images/s, peak memory, FLOPs per step (counted by
``torch.utils.flop_counter`` on one step) and MFU against the peak you pass. The ratio diffbook/peer is
the number to read; absolute times depend on the card.

    python benchmarks/dit_throughput.py --size B/2 --batch 256 --peak-tflops 989   # H100 SXM dense bf16

Needs a CUDA GPU (it exits with a message on a CPU-only machine) and diffusers for the peer.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time

import torch
import torch.nn.functional as F

from diffbook.nets.dit import PRESETS, DiT


def build(which: str, size: str, classes: int) -> torch.nn.Module:
    p = PRESETS[size]
    if which == "diffbook":
        return DiT(4, patch_size=p["patch_size"], hidden=p["hidden"], depth=p["depth"], heads=p["heads"], num_classes=classes)
    from diffusers import DiTTransformer2DModel

    return DiTTransformer2DModel(
        num_attention_heads=p["heads"], attention_head_dim=p["hidden"] // p["heads"], in_channels=4, out_channels=4,
        num_layers=p["depth"], sample_size=32, patch_size=p["patch_size"], num_embeds_ada_norm=classes,
    )


def forward(which: str, model: torch.nn.Module, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    if which == "diffbook":
        return model(x, t.float() / 1000.0, labels=y)
    return model(x, timestep=t, class_labels=y).sample


def measure(which: str, args: argparse.Namespace) -> dict[str, float | str]:
    torch.manual_seed(0)
    dev = torch.device(args.device)
    cuda = dev.type == "cuda"
    model = build(which, args.size, 1000).to(dev)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=cuda or None)
    net = torch.compile(model) if args.compile else model
    x = torch.randn(args.batch, 4, 32, 32, device=dev)
    target = torch.randn_like(x)
    t = torch.randint(0, 1000, (args.batch,), device=dev)
    y = torch.randint(0, 1000, (args.batch,), device=dev)

    def step() -> None:
        with torch.autocast(dev.type, dtype=torch.bfloat16):
            loss = F.mse_loss(forward(which, net, x, t, y).float(), target)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for _ in range(args.warmup):
        step()
    times = []
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    for _ in range(args.steps):
        if cuda:
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            step()
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end))
        else:  # a smoke test of the script; CPU timings of a DiT mean little
            t0 = time.perf_counter()
            step()
            times.append((time.perf_counter() - t0) * 1e3)
    peak_mem = torch.cuda.max_memory_allocated() / 2**30 if cuda else float("nan")
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:  # count on the eager model: same math
        with torch.autocast(dev.type, dtype=torch.bfloat16):
            loss = F.mse_loss(forward(which, model, x, t, y).float(), target)
        loss.backward()
    flops = counter.get_total_flops()
    ms = statistics.median(times)
    return {
        "model": which, "size": args.size, "batch": args.batch, "compile": args.compile,
        "params_M": sum(p.numel() for p in model.parameters()) / 1e6,
        "ms_per_step": ms, "images_per_s": args.batch / (ms / 1e3), "peak_mem_GiB": peak_mem,
        "TFLOP_per_step": flops / 1e12, "MFU": flops / (ms / 1e3) / (args.peak_tflops * 1e12),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", default="B/2", choices=sorted(PRESETS))
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--peak-tflops", type=float, required=True, help="the GPU's dense bf16 peak, e.g. 989 for H100 SXM")
    ap.add_argument("--compile", action="store_true")
    ap.add_argument("--json", help="append results as JSON lines to this file")
    ap.add_argument("--device", default="cuda", help="'cpu' only to smoke-test the script")
    args = ap.parse_args()
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        sys.exit("dit_throughput.py needs a CUDA GPU (or --device cpu for a smoke test)")
    rows = [measure(w, args) for w in ("diffbook", "diffusers")]
    name = torch.cuda.get_device_name() if args.device.startswith("cuda") else "cpu"
    print(f"device: {name}, torch {torch.__version__}, compile={args.compile}")
    print(f"{'model':10s} {'params(M)':>9s} {'ms/step':>8s} {'img/s':>8s} {'mem(GiB)':>8s} {'TFLOP/step':>10s} {'MFU':>6s}")
    for r in rows:
        print(f"{r['model']:10s} {r['params_M']:9.1f} {r['ms_per_step']:8.2f} {r['images_per_s']:8.0f} "
              f"{r['peak_mem_GiB']:8.2f} {r['TFLOP_per_step']:10.2f} {r['MFU']:6.1%}")
    print(f"speed ratio diffbook/diffusers (images/s): {rows[0]['images_per_s'] / rows[1]['images_per_s']:.2f}x")
    if args.json:
        with open(args.json, "a") as f:
            for r in rows:
                f.write(json.dumps(r) + "\n")


if __name__ == "__main__":
    main()
