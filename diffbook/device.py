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

__all__ = ["pick_device", "autocast", "seed_everything", "Timer"]


def pick_device(prefer: str | None = None) -> torch.device:
    """Return the best available device: CUDA, then Apple MPS, then CPU.

    Args:
        prefer: a device string (``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"mps"``) that overrides the
            automatic choice. The environment variable ``DIFFBOOK_DEVICE`` does the same.

    Raises:
        ValueError: if the preferred device is not a device string or is not available here.
    """
    prefer = prefer if prefer is not None else os.environ.get("DIFFBOOK_DEVICE") or None
    if prefer is not None:
        try:
            device = torch.device(prefer)
        except (RuntimeError, TypeError) as err:
            raise ValueError(f"prefer={prefer!r} is not a device string such as 'cpu' or 'cuda'") from err
        if device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"prefer={prefer!r} but CUDA is not available on this machine")
        if device.type == "mps" and not torch.backends.mps.is_available():
            raise ValueError(f"prefer={prefer!r} but Apple MPS is not available on this machine")
        return device
    if torch.cuda.is_available():
        return torch.device("cuda")
    if torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def autocast(device: torch.device | str, enabled: bool | None = None) -> contextlib.AbstractContextManager:
    """Mixed precision for networks: bf16 autocast on CUDA, a no-op elsewhere.

    Schedule and sampler arithmetic should stay outside this context, in fp32 (DESIGN §8).

    Args:
        device: where the network runs.
        enabled: force on or off; by default on for CUDA only (bf16 autocast on CPU is slow).
    """
    device = torch.device(device)
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
    generator = torch.Generator(device=torch.device(device))
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
        self.device = torch.device(device) if device is not None else None
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


