"""Device choice, mixed precision and seeding.

Nothing here runs at import: call :func:`pick_device` when you need a device.
"""

from __future__ import annotations

import contextlib
import os
import random
import time

import numpy as np
import torch

__all__ = ["pick_device", "check_device", "check_float_dtype", "autocast", "seed_everything", "Timer"]


def pick_device(prefer: str | torch.device | None = None) -> torch.device:
    """Return the best available device: CUDA, then Apple MPS, then CPU.

    Args:
        prefer: a device string (``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"mps"``) or ``torch.device`` that
            overrides the automatic choice. The environment variable ``DIFFBOOK_DEVICE`` does the same.

    Raises:
        TypeError: if ``prefer`` is neither a string, a ``torch.device`` nor ``None``.
        ValueError: if the preferred device is not a device string or is not available here (e.g.
            ``"cuda"`` on a machine without CUDA).
    """
    if prefer is not None:
        return check_device(prefer, "prefer")
    if os.environ.get("DIFFBOOK_DEVICE"):
        return check_device(os.environ["DIFFBOOK_DEVICE"], "DIFFBOOK_DEVICE")
    if torch.cuda.is_available():
        return torch.device("cuda")
    if torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def check_device(device: object, name: str = "device") -> torch.device:
    """``device`` (a string or ``torch.device``) as a ``torch.device`` that exists on this machine.

    Raises:
        TypeError: if ``device`` is neither a string nor a ``torch.device``.
        ValueError: if it is not a device string, or names a device this machine lacks (``"cuda"`` without
            CUDA, ``"cuda:3"`` with one GPU, ``"mps"`` off Apple silicon); the message names ``name``.
    """
    if isinstance(device, bool) or not isinstance(device, (str, torch.device)):
        raise TypeError(f"{name} must be a device string such as 'cpu' or 'cuda', or a torch.device, "
                        f"got {type(device).__name__}")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise ValueError(f"{name}={device!r} is not a device string such as 'cpu' or 'cuda'") from err
    if resolved.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"{name}={str(device)!r} but CUDA is not available on this machine "
                             "(use 'cpu', or leave the device unset to pick the best one)")
        if resolved.index is not None and resolved.index >= torch.cuda.device_count():
            raise ValueError(f"{name}={str(device)!r} but this machine has {torch.cuda.device_count()} CUDA device(s)")
    if resolved.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"{name}={str(device)!r} but Apple MPS is not available on this machine")
    return resolved


def check_float_dtype(dtype: object, name: str = "dtype") -> torch.dtype:
    """``dtype`` must be a floating-point ``torch.dtype`` (``torch.float32``, ``torch.float64``, ...).

    Raises:
        TypeError: for anything else (``torch.long``, the string ``"float32"``, Python's ``float``).
    """
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise TypeError(f"{name} must be a floating-point torch.dtype such as torch.float32, got {dtype!r}")
    return dtype


def autocast(device: torch.device | str, enabled: bool | None = None) -> contextlib.AbstractContextManager:
    """Mixed precision for networks: bf16 autocast on CUDA, a no-op elsewhere.

    Schedule and sampler arithmetic should stay outside this context, in fp32 (DESIGN §8).

    Args:
        device: where the network runs.
        enabled: force on or off; by default on for CUDA only (bf16 autocast on CPU is slow).
    """
    device = check_device(device, "device")
    if enabled is not None and not isinstance(enabled, bool):
        raise TypeError(f"enabled must be a bool or None, got {type(enabled).__name__}")
    on = (device.type == "cuda") if enabled is None else enabled
    if not on:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)


def seed_everything(seed: int, device: torch.device | str = "cpu") -> torch.Generator:
    """Seed Python, NumPy and PyTorch, and return a fresh ``torch.Generator`` on ``device``.

    Pass the returned generator to diffbook functions that draw random numbers: that, not the global
    seed, is what makes a result in the book reproducible.
    """
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise TypeError(f"seed must be an int, got {type(seed).__name__}")
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    generator = torch.Generator(device=check_device(device, "device"))
    generator.manual_seed(seed)
    return generator


class Timer:
    """Wall-clock timer that synchronises CUDA before reading the clock.

    >>> with Timer() as t:
    ...     pass
    >>> t.seconds >= 0
    True
    """

    def __init__(self, device: torch.device | str | None = None) -> None:
        self.device = check_device(device, "device") if device is not None else None
        self.seconds = float("nan")

    def _sync(self) -> None:
        if self.device is not None and self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def __enter__(self) -> "Timer":
        self._sync()
        self._start = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self._sync()
        self.seconds = time.perf_counter() - self._start


