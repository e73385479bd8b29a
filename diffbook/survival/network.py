"""SDPM's noise predictor ``ε_θ(y_k, k, x)``: the engine's residual MLP on the concatenation ``[y_k, x]``.

The covariates are concatenated to the 2-D noisy target (as in SDPM) and the step ``k`` enters through the
MLP's sinusoidal embedding; the MLP maps its ``2 + p`` inputs to ``2 + p`` outputs, of which the first two are
the predicted noise. The output layer starts at zero, so the untrained predictor says "no noise".

Reference: Kirpichenko et al. (2026), SDPM (MLP denoiser on concatenated covariates); Ho et al. (2020), eq. 14.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from diffbook.nets import MLP

__all__ = ["NoisePredictor"]


class NoisePredictor(nn.Module):
    """``(y_k, k, x) -> ε̂``: ``y_k`` of shape ``(B, 2)``, ``k`` of shape ``(B,)`` (float steps ``1 … steps``),
    ``x`` of shape ``(B, p)``; returns shape ``(B, 2)``.

    Args:
        n_features: the number of covariates ``p``.
        steps: the number of diffusion steps (the step is embedded as ``k / steps``).
        hidden, depth: width and number of residual blocks of the MLP.
    """

    def __init__(self, n_features: int, *, steps: int, hidden: int = 128, depth: int = 3) -> None:
        super().__init__()
        self.n_features, self.steps = n_features, steps
        self.mlp = MLP(2 + n_features, hidden=hidden, depth=depth, time_scale=1000.0, freq_dim=16)

    def forward(self, y: Tensor, k: Tensor, x: Tensor) -> Tensor:
        if y.ndim != 2 or y.shape[1] != 2 or x.ndim != 2 or x.shape != (y.shape[0], self.n_features):
            raise ValueError(f"need y of shape (B, 2) and x of shape (B, {self.n_features}), got "
                             f"{tuple(y.shape)} and {tuple(x.shape)}")
        out = self.mlp(torch.cat([y, x], dim=1), k.to(y.dtype) / self.steps)
        return out[:, :2]
