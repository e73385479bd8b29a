"""A residual MLP conditioned on the noise level (and optionally a class), for low-dimensional data.

The network maps a batch of points ``x`` of shape ``(n, d)`` to ``(n, d)``; what the output *means*
(noise, clean data, velocity, score) is decided by the caller's loss and adapters, not here. The
conditioning vector ``c`` (noise-level embedding plus class embedding) enters every residual block
as an additive bias after its first linear layer, as in DDPM's residual blocks.

Reference: the block structure follows Ho et al., *Denoising Diffusion Probabilistic Models* (2020),
Appendix B, and He et al., *Identity Mappings in Deep Residual Networks* (2016) (pre-norm residuals).
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from diffbook._checks import check_int, check_real
from diffbook.nets.layers import LabelEmbedding, TimestepEmbedding, expand_noise_level

__all__ = ["MLP"]


class _ResidualBlock(nn.Module):
    """``h + W₂ SiLU(W₁ LayerNorm(h) + W_c SiLU(c))``."""

    def __init__(self, hidden: int, cond_dim: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(hidden)
        self.fc1 = nn.Linear(hidden, hidden)
        self.cond = nn.Linear(cond_dim, hidden)
        self.fc2 = nn.Linear(hidden, hidden)

    def forward(self, h: Tensor, c: Tensor) -> Tensor:
        return h + self.fc2(F.silu(self.fc1(self.norm(h)) + self.cond(F.silu(c))))


class MLP(nn.Module):
    """Time- (and class-) conditioned residual MLP: ``(x, noise_level, labels) -> (n, d)``.

    Ho et al. (2020), Appendix B, for the conditioning; Ho & Salimans (2022) for the null class.
    The output layer starts at zero, so the untrained network outputs zeros.

    Args:
        dim: data dimension ``d``.
        hidden: width of the hidden layers.
        depth: number of residual blocks.
        num_classes: number of classes for class conditioning (``None``: unconditional). Class
            ``num_classes`` (:attr:`null_label`) is the learned null class for classifier-free guidance.
        time_scale: multiplies ``noise_level`` before the sinusoidal embedding (see
            :class:`~diffbook.nets.layers.TimestepEmbedding`; use about 1000 for a noise level in ``[0, 1]``).
        freq_dim: number of sinusoidal features of the noise level.

    Reference: Ho et al. (2020), App. B (conditioning); He et al. (2016), §3 (pre-activation residual blocks).
    """

    def __init__(
        self,
        dim: int,
        *,
        hidden: int = 256,
        depth: int = 3,
        num_classes: int | None = None,
        time_scale: float = 1.0,
        freq_dim: int = 64,
    ) -> None:
        super().__init__()
        for name, value in (("dim", dim), ("hidden", hidden), ("depth", depth)):
            check_int(value, name)
        check_real(time_scale, "time_scale", positive=True)
        self.config = dict(dim=dim, hidden=hidden, depth=depth, num_classes=num_classes,
                           time_scale=time_scale, freq_dim=freq_dim)
        self.dim = dim
        self.time = TimestepEmbedding(hidden, freq_dim=freq_dim, scale=time_scale)
        self.label = LabelEmbedding(num_classes, hidden) if num_classes is not None else None
        self.null_label = num_classes  # the label of the null class; None when unconditional
        self.inp = nn.Linear(dim, hidden)
        self.blocks = nn.ModuleList(_ResidualBlock(hidden, hidden) for _ in range(depth))
        self.norm = nn.LayerNorm(hidden)
        self.out = nn.Linear(hidden, dim)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, x: Tensor, noise_level: Tensor | float, labels: Tensor | None = None) -> Tensor:
        """Evaluate the network.

        Args:
            x: points, shape ``(n, d)``.
            noise_level: shape ``(n,)`` or a scalar, the caller's noise conditioning.
            labels: class indices, shape ``(n,)``, integer dtype; ``None`` means the null class for a
                class-conditional MLP. Must be ``None`` for an unconditional one.
        Returns:
            Shape ``(n, d)``.
        """
        if not isinstance(x, Tensor):
            raise TypeError(f"x must be a torch.Tensor, got {type(x).__name__}")
        if not x.is_floating_point():
            raise TypeError(f"x must be a floating-point tensor, got dtype {x.dtype}")
        if x.ndim != 2 or x.shape[1] != self.dim or x.shape[0] == 0:
            raise ValueError(f"x must have shape (n, {self.dim}) with n >= 1, got {tuple(x.shape)}")
        if self.label is None and labels is not None:
            raise ValueError("labels were given but this MLP is unconditional; build it with num_classes=...")
        n = x.shape[0]
        c = self.time(expand_noise_level(noise_level, n, x.device))
        if self.label is not None:
            c = c + self.label(labels, n, x.device)
        h = self.inp(x)
        for block in self.blocks:
            h = block(h, c)
        return self.out(F.silu(self.norm(h)))
