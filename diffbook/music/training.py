"""Training: rectified flow with context dropout for the block diffusion model, next-frame cross-entropy
for the autoregressive baseline, and a separate next-frame MLP as the reference model for NLL.

Reference: Liu et al. (2023), *Flow Straight and Fast*, Eq. 1 (rectified flow, ``x_t = (1-t) x_0 + t ε``,
velocity ``ε - x_0``); Novack et al. (2026), §3 (context dropout: all of it w.p. 0.2, leading bars w.p. 0.3).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from diffbook._checks import check_int, check_real
from diffbook.train import TrainResult, train

from diffbook.music.data import CHANNELS, sample_windows
from diffbook.music.model import BlockDiffusionTransformer, FrameAR

__all__ = ["context_keep", "rf_loss", "ar_loss", "ReferenceModel", "reference_nll", "fit"]


def context_keep(n: int, bars: int, block: int, *, p_all: float = 0.2, p_lead: float = 0.3,
                 generator: torch.Generator | None = None, device: torch.device | str | None = None) -> Tensor:
    """Context dropout: with probability ``p_all`` drop every context bar, with ``p_lead`` drop a random
    number ``1 … bars-1`` of the *leading* (oldest) bars, else keep all.

    Returns:
        ``keep`` of shape ``(n, bars · block)``, 1.0 = kept.

    Reference: Novack et al. (2026), §3 (context dropout 0.2 full / 0.3 partial).
    """
    check_int(n, "n")
    check_int(bars, "bars")
    check_int(block, "block")
    for name, p in (("p_all", p_all), ("p_lead", p_lead)):
        if not 0.0 <= check_real(p, name) <= 1.0:
            raise ValueError(f"{name} must lie in [0, 1], got {p}")
    if p_all + p_lead > 1.0:
        raise ValueError(f"p_all + p_lead must be <= 1, got {p_all + p_lead}")
    u = torch.rand(n, generator=generator, device=device)
    lead = torch.randint(1, max(bars, 2), (n,), generator=generator, device=device)
    n_drop = torch.where(u < p_all, torch.full_like(lead, bars), torch.where(u < p_all + p_lead, lead, 0))
    bar_idx = torch.arange(bars, device=device)
    keep_bars = (bar_idx[None, :] >= n_drop[:, None]).float()
    return keep_bars.repeat_interleave(block, dim=1)


def rf_loss(model: BlockDiffusionTransformer, batch: Tensor, generator: torch.Generator) -> Tensor:
    """Rectified-flow loss on the target bar of windows ``batch`` ``(n, C_ctx + B, C)``, context dropout on.

    Returns:
        Per-window loss ``(n,)``: mean squared error of the predicted velocity ``ε - x_0``.

    Reference: Liu et al. (2023), Eq. 1; Novack et al. (2026), §3.
    """
    n, c = batch.shape[0], model.context
    context, x0 = batch[:, :c], batch[:, c:]
    keep = context_keep(n, model.context_bars, model.block, generator=generator, device=batch.device)
    t = torch.rand(n, generator=generator, device=batch.device).to(x0.dtype)
    eps = torch.randn(x0.shape, generator=generator, device=batch.device, dtype=x0.dtype)
    x_t = (1 - t[:, None, None]) * x0 + t[:, None, None] * eps
    v = model(x_t, t, context, keep)
    return ((v - (eps - x0)) ** 2).mean(dim=(1, 2))


def ar_loss(model: FrameAR, batch: Tensor, generator: torch.Generator) -> Tensor:
    """Next-frame binary cross-entropy (nats per frame, summed over the ``C`` bits), ``batch`` ``(n, L, C)`` → ``(n,)``.

    Reference: Boulanger-Lewandowski et al. (2012), §2.
    """
    logits = model(batch)
    return F.binary_cross_entropy_with_logits(logits, (batch > 0).float(), reduction="none").sum(-1).mean(-1)


class ReferenceModel(nn.Module):
    """A separate judge: an MLP that predicts frame ``i`` from the ``history`` frames before it
    (independent Bernoulli bits). Trained on the training split only; its NLL scores generated music.

    Reference: Boulanger-Lewandowski et al. (2012), §2 (frame-level NLL of piano rolls).
    """

    def __init__(self, *, channels: int = CHANNELS, history: int = 16, hidden: int = 256) -> None:
        super().__init__()
        check_int(history, "history")
        self.channels, self.history = channels, history
        self.net = nn.Sequential(nn.Linear(channels * history, hidden), nn.GELU(), nn.Linear(hidden, hidden),
                                 nn.GELU(), nn.Linear(hidden, channels))

    def forward(self, frames: Tensor) -> Tensor:
        """NLL in nats of every frame after the first ``history``: ``(n, L, C)`` → ``(n, L - history)``."""
        if not isinstance(frames, Tensor) or frames.ndim != 3 or frames.shape[1] <= self.history:
            raise ValueError(f"frames must have shape (n, L > {self.history}, {self.channels}), "
                             f"got {getattr(frames, 'shape', frames)!r}")
        windows = frames.unfold(1, self.history + 1, 1)  # (n, L - h, C, h + 1)
        past = windows[..., :-1].transpose(-1, -2).reshape(*windows.shape[:2], -1)
        logits = self.net(past)
        target = (windows[..., -1] > 0).float()
        return F.binary_cross_entropy_with_logits(logits, target, reduction="none").sum(-1)


def reference_nll(model: ReferenceModel, frames: Tensor) -> float:
    """Mean NLL per frame (nats) of ``frames`` ``(n, L, C)`` under the reference model.

    Reference: Boulanger-Lewandowski et al. (2012), §2 (frame-level NLL).
    """
    with torch.no_grad():
        return float(model(frames.float()).mean())


def fit(model: nn.Module, rolls: list[np.ndarray], *, steps: int, batch: int = 32, lr: float = 1e-3,
        seed: int = 0, length: int | None = None) -> TrainResult:
    """Train a :class:`BlockDiffusionTransformer`, :class:`FrameAR` or :class:`ReferenceModel` with the engine
    loop on random transposed windows of ``rolls`` (each ``(T, 49, 2)``).

    Returns:
        The engine's :class:`~diffbook.train.TrainResult` (use ``.ema`` for sampling).

    Reference: Liu et al. (2023), Eq. 1 (the diffusion loss); Loshchilov & Hutter (2019), AdamW.
    """
    check_int(steps, "steps")
    check_int(batch, "batch")
    if isinstance(model, BlockDiffusionTransformer):
        loss, length = rf_loss, length or model.context + model.block
    elif isinstance(model, FrameAR):
        loss, length = ar_loss, length or model.window
    elif isinstance(model, ReferenceModel):
        def loss(m: nn.Module, b: Tensor, g: torch.Generator) -> Tensor:
            return m(b).mean(-1)
        length = length or 4 * model.history
    else:
        raise TypeError(f"model must be a BlockDiffusionTransformer, FrameAR or ReferenceModel, got {type(model).__name__}")
    data_gen = torch.Generator().manual_seed(seed + 1000)

    def batches(step: int) -> Tensor:
        return sample_windows(rolls, batch, length, generator=data_gen)

    return train(model, loss, batches, steps=steps, lr=lr, seed=seed, device="cpu", progress=False,
                 ema_decay=0.99, log_every=max(1, min(50, steps)))
