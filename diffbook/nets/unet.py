"""A small UNet for images: residual blocks with GroupNorm, the noise embedding added in every block,
and one self-attention layer at the lowest resolution.

Shape of the network for ``channel_mult = (1, 2, 2)``: full resolution → ½ → ¼ and back, with one skip
connection per level (concatenated on the way up). ``H`` and ``W`` must be divisible by
``2^(len(channel_mult) - 1)`` (4 by default). The last convolution of every residual block and the output
convolution start at zero, so the untrained network outputs zeros.

References: Ronneberger et al., *U-Net* (2015); the diffusion variant of Ho et al., *Denoising Diffusion
Probabilistic Models* (2020), Appendix B, and Dhariwal & Nichol, *Diffusion Models Beat GANs on Image
Synthesis* (2021), §3 (zero-initialised residual outputs, attention at low resolution).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from diffbook._checks import check_int, check_real
from diffbook.nets.attention import MultiHeadAttention
from diffbook.nets.layers import LabelEmbedding, TimestepEmbedding, expand_noise_level

__all__ = ["UNet"]


class _ResBlock(nn.Module):
    """GroupNorm → SiLU → conv, add the projected embedding, GroupNorm → SiLU → dropout → conv, plus the skip.

    The last convolution starts at zero, so the block starts as its skip path."""

    def __init__(self, c_in: int, c_out: int, emb_dim: int, groups: int, dropout: float) -> None:
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, c_in)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.emb = nn.Linear(emb_dim, c_out)
        self.norm2 = nn.GroupNorm(groups, c_out)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1)
        nn.init.zeros_(self.conv2.weight)
        nn.init.zeros_(self.conv2.bias)
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: Tensor, c: Tensor) -> Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.emb(F.silu(c))[:, :, None, None]
        h = self.conv2(self.dropout(F.silu(self.norm2(h))))
        return self.skip(x) + h


class _Upsample(nn.Module):
    """Nearest-neighbour ×2, then a 3×3 convolution (avoids the checkerboard of transposed convolutions)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class _AttentionBlock(nn.Module):
    """Self-attention over the ``H·W`` pixels, pre-GroupNorm, residual; the output projection starts at zero."""

    def __init__(self, channels: int, heads: int, groups: int) -> None:
        super().__init__()
        self.norm = nn.GroupNorm(groups, channels)
        self.attn = MultiHeadAttention(channels, heads)
        nn.init.zeros_(self.attn.proj.weight)
        nn.init.zeros_(self.attn.proj.bias)

    def forward(self, x: Tensor) -> Tensor:
        n, c, h, w = x.shape
        tokens = self.norm(x).flatten(2).transpose(1, 2)  # (n, h*w, c)
        return x + self.attn(tokens).transpose(1, 2).reshape(n, c, h, w)


class UNet(nn.Module):
    """Noise- (and class-) conditioned UNet: ``(x, noise_level, labels) -> (n, C, H, W)``.

    Ho et al. (2020), Appendix B; Dhariwal & Nichol (2021), §3.

    Args:
        in_channels: image channels ``C`` (the output has the same number).
        channels: width at full resolution.
        channel_mult: width multiplier of each level; level ``i`` works at resolution ``/2^i``.
        blocks_per_level: residual blocks per level on the way down (one more on the way up, which
            also takes the skip connection).
        heads: attention heads at the lowest resolution (must divide its width).
        num_classes: number of classes for class conditioning (``None``: unconditional); class
            ``num_classes`` is the learned null class for classifier-free guidance.
        groups: GroupNorm groups (must divide every level's width).
        dropout: dropout inside the residual blocks.
        time_scale: multiplies ``noise_level`` before the sinusoidal embedding.

    Reference: Ronneberger et al. (2015), Fig. 1; Ho et al. (2020), App. B; Dhariwal & Nichol (2021), §3.
    """

    def __init__(
        self,
        in_channels: int,
        *,
        channels: int = 32,
        channel_mult: tuple[int, ...] = (1, 2, 2),
        blocks_per_level: int = 1,
        heads: int = 4,
        num_classes: int | None = None,
        groups: int = 8,
        dropout: float = 0.0,
        time_scale: float = 1.0,
    ) -> None:
        super().__init__()
        positive = (("in_channels", in_channels), ("channels", channels), ("blocks_per_level", blocks_per_level))
        for name, value in positive:
            check_int(value, name)
        if not isinstance(channel_mult, (tuple, list)):
            raise TypeError(f"channel_mult must be a tuple of positive ints, got {type(channel_mult).__name__}")
        if len(channel_mult) < 1 or any(isinstance(m, bool) or not isinstance(m, int) or m < 1 for m in channel_mult):
            raise ValueError(f"channel_mult must be a non-empty tuple of positive ints, got {channel_mult!r}")
        check_int(groups, "groups")
        check_int(heads, "heads")
        if not 0.0 <= check_real(dropout, "dropout") < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")
        check_real(time_scale, "time_scale", positive=True)
        widths = [channels * m for m in channel_mult]
        if any(w % groups for w in widths):
            raise ValueError(f"groups={groups} must divide every level width {widths}")
        self.config = dict(in_channels=in_channels, channels=channels, channel_mult=tuple(channel_mult),
                           blocks_per_level=blocks_per_level, heads=heads, num_classes=num_classes,
                           groups=groups, dropout=dropout, time_scale=time_scale)
        self.in_channels = in_channels
        self.factor = 2 ** (len(widths) - 1)
        emb_dim = 4 * channels

        self.time = TimestepEmbedding(emb_dim, scale=time_scale)
        self.label = LabelEmbedding(num_classes, emb_dim) if num_classes is not None else None
        self.null_label = num_classes  # the label of the null class; None when unconditional
        self.conv_in = nn.Conv2d(in_channels, channels, 3, padding=1)

        self.down, self.downsample = nn.ModuleList(), nn.ModuleList()
        c_prev = channels
        for i, width in enumerate(widths):
            self.down.append(nn.ModuleList(
                _ResBlock(c_prev if j == 0 else width, width, emb_dim, groups, dropout) for j in range(blocks_per_level)
            ))
            c_prev = width
            last = i == len(widths) - 1
            self.downsample.append(nn.Identity() if last else nn.Conv2d(width, width, 3, stride=2, padding=1))

        self.mid1 = _ResBlock(c_prev, c_prev, emb_dim, groups, dropout)
        self.mid_attn = _AttentionBlock(c_prev, heads, groups)
        self.mid2 = _ResBlock(c_prev, c_prev, emb_dim, groups, dropout)

        self.up, self.upsample = nn.ModuleList(), nn.ModuleList()
        for i in reversed(range(len(widths))):
            width = widths[i]
            self.up.append(nn.ModuleList(
                _ResBlock(c_prev + width if j == 0 else width, width, emb_dim, groups, dropout)
                for j in range(blocks_per_level + 1)
            ))
            c_prev = width
            self.upsample.append(nn.Identity() if i == 0 else _Upsample(width))

        self.norm_out = nn.GroupNorm(groups, channels)
        self.conv_out = nn.Conv2d(channels, in_channels, 3, padding=1)
        nn.init.zeros_(self.conv_out.weight)
        nn.init.zeros_(self.conv_out.bias)

    def forward(self, x: Tensor, noise_level: Tensor | float, labels: Tensor | None = None) -> Tensor:
        """Evaluate the network.

        Args:
            x: images, shape ``(n, C, H, W)`` with ``H, W`` divisible by ``2^(len(channel_mult) - 1)``.
            noise_level: shape ``(n,)`` or a scalar, the caller's noise conditioning.
            labels: class indices, shape ``(n,)``, integer dtype; ``None`` means the null class for a
                class-conditional UNet. Must be ``None`` for an unconditional one.
        Returns:
            Shape ``(n, C, H, W)``.
        """
        if not isinstance(x, Tensor):
            raise TypeError(f"x must be a torch.Tensor, got {type(x).__name__}")
        if not x.is_floating_point():
            raise TypeError(f"x must be a floating-point tensor, got dtype {x.dtype}")
        if x.ndim != 4 or x.shape[0] == 0:
            raise ValueError(f"x must have shape (n, C, H, W) with n >= 1, got {tuple(x.shape)}")
        if x.shape[1] != self.in_channels:
            raise ValueError(f"x must have {self.in_channels} channels, got shape {tuple(x.shape)}")
        if x.shape[2] % self.factor or x.shape[3] % self.factor:
            raise ValueError(f"x's height and width must be divisible by {self.factor}, got {tuple(x.shape[2:])}")
        if self.label is None and labels is not None:
            raise ValueError("labels were given but this UNet is unconditional; build it with num_classes=...")
        n = x.shape[0]
        c = self.time(expand_noise_level(noise_level, n, x.device))
        if self.label is not None:
            c = c + self.label(labels, n, x.device)

        h = self.conv_in(x)
        skips = []
        for blocks, down in zip(self.down, self.downsample):
            for block in blocks:
                h = block(h, c)
            skips.append(h)
            h = down(h)
        h = self.mid2(self.mid_attn(self.mid1(h, c)), c)
        for blocks, up in zip(self.up, self.upsample):
            h = torch.cat([h, skips.pop()], dim=1)
            for block in blocks:
                h = block(h, c)
            h = up(h)
        return self.conv_out(F.silu(self.norm_out(h)))
