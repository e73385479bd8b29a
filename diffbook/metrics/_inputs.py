"""Input checks shared by the metrics: a metric reads its samples once per call, so it may afford one
host sync to refuse NaN or infinite values (which would otherwise come back as a NaN distance)."""

from __future__ import annotations

import torch
from torch import Tensor


def check_finite(x: Tensor, name: str) -> Tensor:
    """``x`` must hold only finite values; returned unchanged. One device-to-host read per call."""
    if not bool(torch.isfinite(x).all()):
        bad = int((~torch.isfinite(x)).sum())
        raise ValueError(f"{name} must be finite, but {bad} of its {x.numel()} values are NaN or infinite")
    return x
