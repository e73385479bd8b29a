"""Input validation and the per-sample broadcast, shared by every layer above: one home for each check.

Every error names the argument, what was expected and what was given (``ValueError`` for a bad value or
shape, ``TypeError`` for a bad type). Public functions validate once per call, never per step of a loop.
Value checks on tensors (``(sigma > 0).all()``) need the value on the host: on an accelerator that would
stall the stream at every network evaluation, so :func:`check_levels` checks only CPU tensors and the
samplers validate their whole σ grid once, up front.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = [
    "check_state",
    "check_tensor",
    "check_points",
    "check_times",
    "check_sigmas",
    "check_levels",
    "as_level",
    "as_time",
    "check_schedule",
    "check_int",
    "check_real",
    "check_callable",
    "per_sample",
]


def check_state(x: object, name: str) -> None:
    """``x`` must be a floating-point tensor."""
    if not isinstance(x, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got dtype {x.dtype}")


def check_tensor(x: object, name: str, *, min_ndim: int = 0, nonempty: bool = False) -> Tensor:
    """A floating-point tensor with at least ``min_ndim`` dimensions (and, if ``nonempty``, at least one
    entry), returned unchanged."""
    check_state(x, name)
    assert isinstance(x, Tensor)
    if x.ndim < min_ndim:
        raise ValueError(f"{name} must have at least {min_ndim} dimension(s), got shape {tuple(x.shape)}")
    if nonempty and x.numel() == 0:
        raise ValueError(f"{name} must not be empty, got shape {tuple(x.shape)}")
    return x


def check_points(x: object, name: str) -> Tensor:
    """A floating-point sample of shape ``(n, d)`` with ``n >= 1``; returned unchanged."""
    check_state(x, name)
    assert isinstance(x, Tensor)
    if x.ndim != 2 or x.shape[0] < 1:
        raise ValueError(f"{name} must have shape (n, d) with n >= 1, got {tuple(x.shape)}")
    return x


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


def check_levels(value: Tensor, name: str, *, positive: bool = True) -> None:
    """Noise levels (or times) must be finite and ``> 0`` (``>= 0`` with ``positive=False``).

    Checked only for CPU tensors: on an accelerator the check would force a host sync at every call (see
    the module docstring); there the callers' grids are validated up front.
    """
    if value.device.type != "cpu" or value.numel() == 0:
        return
    bad = ~torch.isfinite(value) | ((value <= 0) if positive else (value < 0))
    if bad.any():
        first = value[bad].flatten()[0].item()
        raise ValueError(f"{name} must be finite and {'> 0' if positive else '>= 0'}, got {first!r}")


def as_level(s: Tensor | float, name: str = "s") -> Tensor:
    """A noise level or time as a floating-point tensor (integers are promoted, anything else is refused)."""
    if isinstance(s, bool) or not isinstance(s, (int, float, Tensor)):
        raise TypeError(f"{name} must be a number or a tensor, got {type(s).__name__}")
    if isinstance(s, Tensor) and not s.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor (or a Python number), got dtype {s.dtype}")
    s = torch.as_tensor(s)
    return s if s.is_floating_point() else s.to(torch.get_default_dtype())


def as_time(t: Tensor | float, name: str = "t", upper: float | None = 1.0) -> Tensor:
    """A time tensor (see :func:`as_level`); on the CPU its values must lie in ``[0, upper]``
    (``upper=None``: any ``t >= 0``, for schedules whose formula holds past ``t = 1``; see :func:`check_levels`)."""
    t = as_level(t, name)
    if t.device.type == "cpu" and t.numel():
        ok = (t >= 0) & (t <= upper) if upper is not None else (t >= 0) & torch.isfinite(t)
        if not bool(ok.all()):
            bad = t[~ok].flatten()[0].item()
            span = f"[0, {upper:g}]" if upper is not None else "[0, inf)"
            raise ValueError(f"{name} must lie in {span}, got {bad!r}")
    return t


def check_schedule(schedule: object, name: str = "schedule") -> None:
    """``schedule`` must provide ``alpha(t)``, ``sigma(t)`` and ``t_of_sigma_bar(s)``
    (the :class:`diffbook.schedules.Schedule` protocol)."""
    missing = [m for m in ("alpha", "sigma", "t_of_sigma_bar") if not callable(getattr(schedule, m, None))]
    if missing:
        raise TypeError(f"{name} must be a Schedule with alpha(t), sigma(t) and t_of_sigma_bar(s); "
                        f"{type(schedule).__name__} lacks {', '.join(missing)}")


def check_int(value: object, name: str, *, minimum: int = 1) -> int:
    """A Python ``int`` (not ``bool``) that is at least ``minimum``; returned unchanged."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} {value!r}")
    if value < minimum:
        what = "a positive int" if minimum == 1 else f"an int >= {minimum}"
        raise ValueError(f"{name} must be {what}, got {value!r}")
    return value


def check_real(value: object, name: str, *, positive: bool = False, nonnegative: bool = False,
               allow_inf: bool = False) -> float:
    """A finite real number (a Python number or a one-element tensor, not ``bool``), returned as ``float``.

    ``positive`` requires ``> 0``, ``nonnegative`` requires ``>= 0``; ``allow_inf`` admits ``+inf``.
    """
    if isinstance(value, Tensor):
        if value.numel() != 1 or value.is_complex() or value.dtype == torch.bool:
            raise ValueError(f"{name} must be a single real number, got a tensor of shape {tuple(value.shape)}")
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number, got {type(value).__name__} {value!r}")
    v = float(value)
    bound = " and > 0" if positive else " and >= 0" if nonnegative else ""
    if math.isnan(v) or (math.isinf(v) and not (allow_inf and v > 0)):
        raise ValueError(f"{name} must be finite{bound}, got {value!r}")
    if (positive and not v > 0) or (nonnegative and not v >= 0):
        raise ValueError(f"{name} must be finite{bound}, got {value!r}")
    return v


def check_callable(fn: object, name: str, signature: str) -> None:
    """``fn`` must be callable; ``signature`` says how it will be called, e.g. ``"denoiser(x, sigma)"``."""
    if not callable(fn):
        raise TypeError(f"{name} must be callable as {signature}, got {type(fn).__name__}")


def per_sample(value: Tensor | float, x: Tensor, name: str = "value", *, expand: bool = False,
               dtype: torch.dtype | None = None) -> Tensor:
    """A scalar or per-sample ``(n,)`` coefficient, reshaped to broadcast against ``x`` of shape ``(n, ...)``.

    Returns shape ``()`` for a scalar (``(n, 1, …, 1)`` with ``expand``) and ``(n, 1, …, 1)`` for shape ``(n,)``,
    on ``x``'s device in ``dtype`` (default ``x``'s dtype).
    """
    if isinstance(value, bool) or not isinstance(value, (int, float, Tensor)):
        raise TypeError(f"{name} must be a number or a tensor, got {type(value).__name__}")
    if isinstance(value, Tensor) and not value.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got dtype {value.dtype}")
    v = torch.as_tensor(value, dtype=dtype or x.dtype, device=x.device)  # a Python float never passes float32
    col = (-1,) + (1,) * (x.ndim - 1)
    if v.ndim == 0:
        return v.expand(x.shape[0]).reshape(col) if expand else v
    if v.shape != (x.shape[0],):
        raise ValueError(f"{name} must be a scalar or have shape ({x.shape[0]},), got {tuple(v.shape)}")
    return v.reshape(col)
