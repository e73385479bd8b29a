"""Quality of generated piano rolls against held-out chorales: pitch-class histogram divergence,
polyphony, silence rate, in-key ratio, and per-bar drift curves.

Reference: Yang & Lerch (2020), *On the evaluation of generative models in music*, §3 (pitch-class
histograms, polyphony); Lin (1991), *Divergence measures based on the Shannon entropy*, Eq. 4.1 (JSD).
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor

from diffbook.music.data import FRAMES_PER_BAR, PITCH_LOW, features_to_roll

__all__ = ["pitch_class_histogram", "js_divergence", "polyphony", "silence_rate", "in_key_ratio",
           "MAJOR_SCALE", "quality_report", "per_bar"]

MAJOR_SCALE = (0, 2, 4, 5, 7, 9, 11)


def _sounding(x: Tensor) -> Tensor:
    if not isinstance(x, Tensor) or x.ndim < 2:
        raise ValueError(f"x must be features (..., T, C) or a boolean roll (..., T, P, 2), got {getattr(x, 'shape', x)!r}")
    roll = x if x.dtype == torch.bool else features_to_roll(x)
    return roll[..., 1].float()  # (..., T, P)


def pitch_class_histogram(x: Tensor) -> Tensor:
    """Normalised histogram of sounding note-frames over the 12 pitch classes: features ``(..., T, C)`` or a
    roll ``(..., T, P, 2)`` → ``(12,)`` (pooled over everything).

    Reference: Yang & Lerch (2020), *On the evaluation of generative models in music*, §3.
    """
    s = _sounding(x)
    per_pitch = s.reshape(-1, s.shape[-1]).sum(0)
    classes = (torch.arange(s.shape[-1]) + PITCH_LOW) % 12
    hist = torch.zeros(12).index_add_(0, classes, per_pitch.cpu())
    return hist / hist.sum().clamp_min(1e-12)


def js_divergence(p: Tensor, q: Tensor) -> float:
    """Jensen–Shannon divergence in bits between histograms ``p, q`` of shape ``(K,)`` (in ``[0, 1]``).

    Reference: Lin (1991), Eq. 4.1.
    """
    if p.shape != q.shape or p.ndim != 1:
        raise ValueError(f"p and q must be histograms of the same shape (K,), got {tuple(p.shape)} and {tuple(q.shape)}")
    p, q = p / p.sum(), q / q.sum()
    m = (p + q) / 2

    def kl(a: Tensor, b: Tensor) -> Tensor:
        mask = a > 0
        return (a[mask] * torch.log2(a[mask] / b[mask])).sum()

    return float((kl(p, m) + kl(q, m)) / 2)


def polyphony(x: Tensor) -> float:
    """Mean number of sounding notes per frame of ``x`` (features ``(..., T, C)`` or a roll ``(..., T, P, 2)``);
    a four-part chorale gives about 4.

    Reference: Yang & Lerch (2020), *On the evaluation of generative models in music*, §3.
    """
    return float(_sounding(x).sum(-1).mean())


def silence_rate(x: Tensor) -> float:
    """Fraction of frames of ``x`` (``(..., T, C)`` or ``(..., T, P, 2)``) with no sounding note (collapse to silence).

    Reference: Yang & Lerch (2020), *On the evaluation of generative models in music*, §3.
    """
    return float((_sounding(x).sum(-1) == 0).float().mean())


def in_key_ratio(x: Tensor) -> float:
    """For each sequence (leading dims of ``(n, T, ...)``), the fraction of sounding note-frames inside the
    best-fitting major scale (which also covers its relative minor), averaged over sequences.

    Reference: Yang & Lerch (2020), *On the evaluation of generative models in music*, §3.
    """
    s = _sounding(x)
    if s.ndim == 2:
        s = s[None]
    classes = (torch.arange(s.shape[-1]) + PITCH_LOW) % 12
    hist = torch.zeros(s.shape[0], 12).index_add_(1, classes, s.sum(1).cpu())
    scales = torch.zeros(12, 12)
    for key in range(12):
        scales[key, [(key + d) % 12 for d in MAJOR_SCALE]] = 1
    inside = hist @ scales.T  # (n, 12)
    ratio = inside.max(-1).values / hist.sum(-1).clamp_min(1e-12)
    return float(ratio[hist.sum(-1) > 0].mean()) if (hist.sum(-1) > 0).any() else 0.0


def per_bar(x: Tensor, fn: Callable[[Tensor], float], block: int = FRAMES_PER_BAR) -> Tensor:
    """Apply ``fn`` to each bar of ``x`` ``(n, T, C)`` pooled over the ``n`` streams: ``(T / block,)`` values.

    Reference: Yang & Lerch (2020), *On the evaluation of generative models in music*, §3.
    """
    return torch.tensor([fn(x[:, i: i + block]) for i in range(0, x.shape[1] - block + 1, block)])


def quality_report(x: Tensor, reference: Tensor) -> dict[str, float]:
    """Generated features ``x`` ``(n, T, C)`` against held-out features ``reference`` ``(m, T', C)``.

    Returns:
        ``{"pc_jsd", "polyphony", "silence", "in_key"}`` for ``x``; the held-out values of the last three
        under ``"ref_"`` keys.

    Reference: Yang & Lerch (2020), *On the evaluation of generative models in music*, §3.
    """
    return {
        "pc_jsd": js_divergence(pitch_class_histogram(x), pitch_class_histogram(reference)),
        "polyphony": polyphony(x), "silence": silence_rate(x), "in_key": in_key_ratio(x),
        "ref_polyphony": polyphony(reference), "ref_silence": silence_rate(reference),
        "ref_in_key": in_key_ratio(reference),
    }
