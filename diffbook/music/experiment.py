"""The chapter's experiment in one call per seed: train the enc-dec and block-causal diffusion models, the
equal-size frame-AR model and the separate reference model on the training chorales, then stream ``bars``
bars from held-out prompts with each and score them.

Reference: Novack et al. (2026), §3–4 (the streaming comparison this reproduces at toy scale).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor

from diffbook._checks import check_int
from diffbook.music.data import FRAMES_PER_BAR, roll_to_features
from diffbook.music.model import BlockDiffusionTransformer, FrameAR
from diffbook.music.quality import quality_report
from diffbook.music.stream import make_streamer
from diffbook.music.training import ReferenceModel, fit

__all__ = ["Sizes", "SeedResult", "train_models", "held_out_prompts", "generate", "score", "run_seed"]


@dataclass(frozen=True)
class Sizes:
    """Model and budget sizes shared by every model of a seed.

    Reference: Novack et al. (2026), *Live Music Diffusion Models*, §3–4.
    """

    dim: int = 96
    depth: int = 3
    heads: int = 4
    train_steps: int = 600
    ref_steps: int = 600
    batch: int = 32
    steps: int = 8
    bars: int = 32
    streams: int = 8


@dataclass
class SeedResult:
    """Trained models, generated features (``{method: tensor}``, each of shape ``(streams, bars·B, C)``) and scores ``{method: {metric: value}}``.

    Reference: Novack et al. (2026), *Live Music Diffusion Models*, §3–4.
    """

    models: dict[str, torch.nn.Module]
    reference: ReferenceModel
    generated: dict[str, Tensor]
    scores: dict[str, dict[str, float]]
    drift: dict[str, np.ndarray] = field(default_factory=dict)
    losses: dict[str, Tensor] = field(default_factory=dict)


def train_models(train_rolls: list[np.ndarray], sizes: Sizes, seed: int) -> tuple[dict[str, torch.nn.Module], ReferenceModel, dict[str, Tensor]]:
    """Train ``{"encdec", "blockcausal", "ar"}`` (same width and depth) and the reference model on rolls of shape
    ``(T, 49, 2)``; returns the EMA weights.

    Reference: Liu et al. (2023), Eq. 1; Novack et al. (2026), §3.
    """
    models, losses = {}, {}
    for name in ("encdec", "blockcausal", "ar"):
        torch.manual_seed(seed)
        if name == "ar":
            m = FrameAR(dim=sizes.dim, depth=sizes.depth, heads=sizes.heads)
        else:
            m = BlockDiffusionTransformer(attention=name, dim=sizes.dim, depth=sizes.depth, heads=sizes.heads)
        res = fit(m, train_rolls, steps=sizes.train_steps, batch=sizes.batch, seed=seed)
        models[name], losses[name] = res.ema.eval(), res.losses
    torch.manual_seed(seed + 7)
    ref = fit(ReferenceModel(), train_rolls, steps=sizes.ref_steps, batch=sizes.batch, seed=seed + 7, lr=3e-3)
    return models, ref.model.eval(), losses


def held_out_prompts(test_rolls: list[np.ndarray], n: int, bars: int = 4, seed: int = 0) -> Tensor:
    """``n`` prompts of ``bars`` bars from held-out chorales (cycling through them): ``(n, bars·B, C)``.

    Reference: Novack et al. (2026), *Live Music Diffusion Models*, §3–4.
    """
    check_int(n, "n")
    length = bars * FRAMES_PER_BAR
    pieces = [r for r in test_rolls if r.shape[0] >= length]
    if not pieces:
        raise ValueError(f"no held-out chorale has {bars} bars")
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        r = pieces[i % len(pieces)]
        start = int(rng.integers(0, (r.shape[0] - length) // FRAMES_PER_BAR + 1)) * FRAMES_PER_BAR
        out.append(roll_to_features(r[start: start + length]))
    return torch.stack(out)


def generate(models: dict[str, torch.nn.Module], prompts: Tensor, bars: int, steps: int, seed: int
             ) -> dict[str, Tensor]:
    """Stream ``bars`` bars after ``prompts`` ``(n, k·B, C)`` with enc-dec, block-causal and AR; each result has
    shape ``(n, bars·B, C)``.

    Reference: Novack et al. (2026), *Live Music Diffusion Models*, §3–4.
    """
    out = {}
    for name in ("encdec", "blockcausal", "ar"):
        kwargs = {} if name == "ar" else {"steps": steps, "sampler": "pingpong"}
        s = make_streamer(models[name], name, prompt=prompts, n=prompts.shape[0], seed=seed, **kwargs)
        out[name] = torch.cat([s.next_bar() for _ in range(bars)], 1).sign()
    return out


def score(generated: dict[str, Tensor], held_out: Tensor, reference: ReferenceModel) -> tuple[dict, dict]:
    """Quality scores and per-bar reference NLL (drift) of each method; ``held_out`` ``(m, T, C)``.

    Reference: Novack et al. (2026), *Live Music Diffusion Models*, §3–4.
    """
    scores, drift = {}, {}
    with torch.no_grad():
        for name, x in {**generated, "held-out": held_out}.items():
            s = quality_report(x, held_out)
            nll = reference(x)  # (n, T - 16): frame i + 16 given the 16 before
            s["nll"] = float(nll.mean())
            scores[name] = s
            if name != "held-out":
                per_frame = torch.cat([torch.full((x.shape[0], reference.history), float("nan")), nll], 1)
                drift[name] = per_frame.reshape(x.shape[0], -1, FRAMES_PER_BAR).nanmean(-1).mean(0).numpy()
    return scores, drift


def run_seed(train_rolls: list[np.ndarray], test_rolls: list[np.ndarray], sizes: Sizes, seed: int) -> SeedResult:
    """Train, generate from held-out prompts, and score, for one seed.

    Reference: Novack et al. (2026), *Live Music Diffusion Models*, §3–4.
    """
    models, ref, losses = train_models(train_rolls, sizes, seed)
    prompts = held_out_prompts(test_rolls, sizes.streams, seed=seed)
    gen = generate(models, prompts, sizes.bars, sizes.steps, seed)
    held = torch.stack([roll_to_features(r[: sizes.bars * FRAMES_PER_BAR]) for r in test_rolls
                        if r.shape[0] >= sizes.bars * FRAMES_PER_BAR] or
                       [roll_to_features(r) for r in test_rolls[:1]])
    scores, drift = score(gen, held, ref)
    return SeedResult(models, ref, gen, scores, drift, losses)
