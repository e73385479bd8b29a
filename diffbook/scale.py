"""Size presets: one code path, three sizes (``tiny`` for tests, ``small`` for a laptop, ``full`` for a GPU).

The preset is read from the environment variable ``DIFFBOOK_SCALE`` each time it is asked for, so a
notebook can be re-run at another size without restarting Python. Presets change only sizes (steps,
widths, sample counts), never which functions run.
"""

from __future__ import annotations

import os
from typing import Literal, TypeVar, cast

__all__ = ["PRESETS", "Preset", "current", "by_scale"]

Preset = Literal["tiny", "small", "full"]
PRESETS: tuple[Preset, ...] = ("tiny", "small", "full")
ENV_VAR = "DIFFBOOK_SCALE"
DEFAULT: Preset = "small"

T = TypeVar("T")


def current() -> Preset:
    """Return the active preset from ``DIFFBOOK_SCALE`` (default ``"small"``).

    Raises:
        ValueError: if the variable is set to anything but ``tiny``, ``small`` or ``full``.
    """
    value = os.environ.get(ENV_VAR, DEFAULT).strip().lower() or DEFAULT
    if value not in PRESETS:
        raise ValueError(
            f"{ENV_VAR}={os.environ.get(ENV_VAR)!r} is not a preset; expected one of {', '.join(PRESETS)}"
        )
    return cast(Preset, value)


def by_scale(*, tiny: T, small: T, full: T, preset: Preset | None = None) -> T:
    """Pick the value for the active preset, e.g. ``n_train = by_scale(tiny=200, small=2_000, full=50_000)``.

    All three sizes must be given, so a reader sees every size next to each other in the notebook.

    Args:
        tiny, small, full: the value to use at each preset.
        preset: override the environment (mostly for tests).
    """
    chosen = current() if preset is None else preset
    if chosen not in PRESETS:
        raise ValueError(f"preset must be one of {', '.join(PRESETS)}, got {chosen!r}")
    return {"tiny": tiny, "small": small, "full": full}[chosen]
