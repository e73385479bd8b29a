"""Speed per bar of every streaming method, measured side by side in one run.

Reference: Novack et al. (2026), §3 (naive outpainting vs enc-dec vs block-causal caching vs AR).
"""

from __future__ import annotations

import numpy as np
import torch

from diffbook._checks import check_int, check_real
from diffbook.music.audio import seconds_per_frame
from diffbook.music.data import FRAMES_PER_BAR
from diffbook.music.model import BlockDiffusionTransformer, FrameAR
from diffbook.music.stream import make_streamer, tokens_per_bar

__all__ = ["STREAMING_ROWS", "benchmark_streaming"]

STREAMING_ROWS = ("naive", "encdec", "blockcausal", "ar")


def benchmark_streaming(*, dim: int = 96, depth: int = 3, heads: int = 4, steps: int = 8, bars: int = 40,
                        warmup: int = 5, bpm: float = 120.0, seed: int = 0,
                        models: dict[str, torch.nn.Module] | None = None) -> list[dict[str, float | str]]:
    """Time ``bars`` bars (after ``warmup``) of naive → enc-dec → block-causal → frame AR, interleaved bar by
    bar so that machine load hits every method alike.

    Args:
        dim, depth, heads: the size shared by every model (untrained unless ``models`` gives trained ones:
            ``{"encdec": ..., "blockcausal": ..., "ar": ...}``); steps: denoising steps per bar.
    Returns:
        One dict per method: ``method, tokens_per_bar, passes_per_bar, p50_ms, p95_ms, rtf`` (bar duration at
        ``bpm`` over the p50 compute time), ``speedup_p50`` (naive p50 / this p50), ``token_ratio`` (naive /
        this), ``p95_over_half_bar``.

    Reference: Novack et al. (2026), §3.
    """
    check_int(bars, "bars")
    check_int(warmup, "warmup", minimum=0)
    check_real(bpm, "bpm")
    bar_s = FRAMES_PER_BAR * seconds_per_frame(bpm)
    if models is None:
        torch.manual_seed(seed)
        enc = BlockDiffusionTransformer(attention="encdec", dim=dim, depth=depth, heads=heads)
        torch.manual_seed(seed)
        bc = BlockDiffusionTransformer(attention="blockcausal", dim=dim, depth=depth, heads=heads)
        torch.manual_seed(seed)
        models = {"encdec": enc, "blockcausal": bc, "ar": FrameAR(dim=dim, depth=depth, heads=heads)}
    models = {k: m.eval() for k, m in models.items()}
    streamers = {"naive": make_streamer(models["encdec"], "naive", steps=steps, seed=seed),
                 "encdec": make_streamer(models["encdec"], "encdec", steps=steps, seed=seed),
                 "blockcausal": make_streamer(models["blockcausal"], "blockcausal", steps=steps, seed=seed),
                 "ar": make_streamer(models["ar"], "ar", seed=seed)}
    passes: dict[str, int] = {}
    for _ in range(warmup + bars):
        for name, s in streamers.items():
            before = s.model.counter.passes
            s.next_bar()
            passes[name] = s.model.counter.passes - before
    rows = []
    for name in STREAMING_ROWS:
        s = streamers[name]
        t = np.array(s.bar_seconds[warmup:])
        rows.append({"method": name, "tokens_per_bar": int(s.bar_tokens[-1]), "passes_per_bar": passes[name],
                     "formula": tokens_per_bar(name, steps=steps), "p50_ms": 1e3 * float(np.median(t)),
                     "p95_ms": 1e3 * float(np.percentile(t, 95)), "rtf": bar_s / float(np.median(t)),
                     "p95_over_half_bar": float(np.percentile(t, 95)) / (bar_s / 2)})
    base = rows[0]
    for r in rows:
        r["speedup_p50"] = base["p50_ms"] / r["p50_ms"]
        r["token_ratio"] = base["tokens_per_bar"] / r["tokens_per_bar"]
    return rows
