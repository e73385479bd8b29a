"""The Kaplan–Meier product-limit estimator, batched: one survival curve per row of generated samples.

For a row of ``K`` observed pairs ``(t_i, δ_i)``, ``Ŝ(t) = Π_{t_(j) ≤ t} (1 - d_j / n_j)`` with ``d_j`` the
events and ``n_j`` the subjects at risk at the ``j``-th distinct time. Sorting by time, with events before
censorings at equal times, the product over single samples ``Π (1 - δ_(i)/(K - i))`` telescopes to exactly
this (a tie of ``d`` events among ``n`` at risk gives ``(n-1)/n · … · (n-d)/(n-d+1) = (n-d)/n``), so no
tie grouping is needed. SDPM applies it to the ``K`` generated pairs of every subject to get ``Ŝ(t|x)``.

Reference: Kaplan & Meier (1958), *Nonparametric estimation from incomplete observations*, eq. 2;
Kirpichenko et al. (2026), SDPM (Kaplan–Meier over generated samples).
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["kaplan_meier"]


def kaplan_meier(times: Tensor, events: Tensor, grid: Tensor) -> Tensor:
    """Kaplan–Meier curves of each row of samples, evaluated at ``grid`` (right-continuous steps).

    Args:
        times: observed times, shape ``(n, K)`` (or ``(K,)`` for one curve), floating point.
        events: event indicators (bool or 0/1), shape of ``times``.
        grid: evaluation times, shape ``(m,)``, any order.

    Returns:
        ``Ŝ`` of shape ``(n, m)`` (``(m,)`` for 1-D input), dtype of ``times``: the estimate just after each
        grid time, ``1`` before the first event, constant after the last sample.
    """
    if not isinstance(times, Tensor) or not times.is_floating_point():
        raise TypeError("times must be a floating-point torch.Tensor")
    if not isinstance(events, Tensor) or events.shape != times.shape:
        got = tuple(events.shape) if isinstance(events, Tensor) else type(events).__name__
        raise ValueError(f"events must be a tensor of the shape of times {tuple(times.shape)}, got {got}")
    if not isinstance(grid, Tensor) or grid.ndim != 1:
        raise ValueError("grid must be a 1-D tensor of evaluation times")
    squeeze = times.ndim == 1
    if squeeze:
        times, events = times[None], events[None]
    if times.ndim != 2 or times.shape[1] < 1:
        raise ValueError(f"times must have shape (n, K) with K >= 1, got {tuple(times.shape)}")
    if not bool(torch.isfinite(times).all()):
        raise ValueError("times must be finite")
    ev = events.to(times.dtype)
    # events first within ties: sort by event (descending, stable), then by time (stable)
    order = torch.argsort(ev, dim=1, descending=True, stable=True)
    t1, e1 = times.gather(1, order), ev.gather(1, order)
    order = torch.argsort(t1, dim=1, stable=True)
    t_sorted, e_sorted = t1.gather(1, order), e1.gather(1, order)
    k = times.shape[1]
    at_risk = torch.arange(k, 0, -1, dtype=times.dtype, device=times.device)  # K, K-1, ..., 1
    curve = torch.cumprod(1.0 - e_sorted / at_risk, dim=1)
    curve = torch.cat([curve.new_ones(curve.shape[0], 1), curve], dim=1)  # value before the first sample
    g = grid.to(times.dtype).expand(times.shape[0], -1).contiguous()
    passed = torch.searchsorted(t_sorted.contiguous(), g, right=True)  # samples with t ≤ grid time
    out = curve.gather(1, passed)
    return out[0] if squeeze else out
