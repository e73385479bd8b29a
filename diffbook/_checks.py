"""Input validation shared by the math core: errors name the argument and say what was expected."""

from __future__ import annotations

import torch
from torch import Tensor


def check_state(x: object, name: str) -> None:
    """``x`` must be a floating-point tensor."""
    if not isinstance(x, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got dtype {x.dtype}")


def check_times(ts: object, x: Tensor, name: str = "ts") -> None:
    """A 1-D, finite, strictly monotone time grid on ``x``'s device."""
    check_state(ts, name)
    assert isinstance(ts, Tensor)
    if ts.ndim != 1 or ts.numel() < 2:
        raise ValueError(f"{name} must be a 1-D tensor of at least 2 times, got shape {tuple(ts.shape)}")
    if ts.device != x.device:
        raise ValueError(f"{name} is on {ts.device} but x is on {x.device}; put both on one device")
    if not torch.isfinite(ts).all():
        raise ValueError(f"{name} must be finite")
    dt = ts.diff()
    if not ((dt > 0).all() or (dt < 0).all()):
        raise ValueError(f"{name} must be strictly increasing or strictly decreasing")


def check_sigmas(sigmas: object, x: Tensor) -> None:
    """A 1-D, finite, non-negative, strictly decreasing noise-level grid on ``x``'s device."""
    check_state(x, "x")
    check_state(sigmas, "sigmas")
    assert isinstance(sigmas, Tensor)
    if sigmas.ndim != 1 or sigmas.numel() < 2:
        raise ValueError(f"sigmas must be a 1-D tensor of at least 2 noise levels, got shape {tuple(sigmas.shape)}")
    if sigmas.device != x.device:
        raise ValueError(f"sigmas is on {sigmas.device} but x is on {x.device}; put both on one device")
    if not torch.isfinite(sigmas).all():
        raise ValueError("sigmas must be finite")
    if (sigmas < 0).any():
        raise ValueError("sigmas must be non-negative")
    if not (sigmas.diff() < 0).all():
        raise ValueError("sigmas must be strictly decreasing (from the most to the least noisy level)")


def check_points(x: object, name: str) -> Tensor:
    """A floating-point sample of shape ``(n, d)`` with ``n >= 1``; returned unchanged."""
    if not isinstance(x, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got dtype {x.dtype}")
    if x.ndim != 2 or x.shape[0] < 1:
        raise ValueError(f"{name} must have shape (n, d) with n >= 1, got {tuple(x.shape)}")
    return x
