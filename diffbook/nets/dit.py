"""DiT: a Diffusion Transformer with adaLN-Zero blocks and 2-D axial RoPE.

The image ``(n, C, H, W)`` is cut into ``p × p`` patches, each linearly embedded into a token. Every block
is pre-norm attention and MLP, both modulated by the conditioning vector ``c`` (noise level + class):
``x ← x + gate · f(LayerNorm(x) · (1 + scale) + shift)``, with ``(shift, scale, gate)`` a linear function
of ``c`` that starts at zero (adaLN-Zero), so every block starts as the identity. The final layer also
starts at zero, so the untrained network outputs zeros.

Positions enter through 2-D axial RoPE on queries and keys (relative positions only), optionally also
through fixed sin-cos absolute embeddings (the original DiT). Both are computed from the patch grid at
call time, so any ``H, W`` divisible by ``p`` works; ``pos_scale`` and ``pos_offset`` rescale or shift the
grid for resolution extrapolation.

Reference: Peebles & Xie, *Scalable Diffusion Models with Transformers* (2023), §3.2 and Table 1; RoPE
from Su et al. (2021), axial 2-D RoPE for images from Heo et al. (2024).
"""

from __future__ import annotations

from torch import Tensor, nn

from diffbook._checks import check_int, check_real, check_state
from diffbook.nets.attention import MultiHeadAttention
from diffbook.nets.layers import (
    AdaLNZero,
    LabelEmbedding,
    TimestepEmbedding,
    expand_noise_level,
    modulate,
    sincos_position_embedding,
)
from diffbook.nets.rope import Rotary, axial_rope_angles, grid_positions, rotary_tables

__all__ = ["patchify", "unpatchify", "DiTBlock", "DiT", "PRESETS"]

PRESETS: dict[str, dict[str, int]] = {
    "S/2": dict(depth=12, hidden=384, heads=6, patch_size=2),
    "S/4": dict(depth=12, hidden=384, heads=6, patch_size=4),
    "B/2": dict(depth=12, hidden=768, heads=12, patch_size=2),
    "B/4": dict(depth=12, hidden=768, heads=12, patch_size=4),
}
"""DiT sizes from Peebles & Xie (2023), Table 1: depth, width, heads (and patch size)."""


def patchify(x: Tensor, patch_size: int) -> Tensor:
    """Cut images into non-overlapping ``p × p`` patches, one token per patch (Peebles & Xie 2023, §3.2).

    Patch ``(i, j)`` of the ``h × w`` grid (``h = H/p``, ``w = W/p``) becomes token ``i·w + j`` (row-major),
    and pixel ``(r, s)`` of channel ``c`` inside it becomes feature ``(r·p + s)·C + c``.

    Args:
        x: images, shape ``(n, C, H, W)`` with ``H, W`` divisible by ``patch_size``.
        patch_size: the patch side ``p``.
    Returns:
        Shape ``(n, h·w, p·p·C)``; :func:`unpatchify` inverts it exactly.

    Reference: Peebles & Xie (2023), §3.2 ("Patchify"); Dosovitskiy et al. (2021), §3.1.
    """
    n, channels, height, width = _check_grid(x, patch_size, "x")
    p = patch_size
    h, w = height // p, width // p
    x = x.reshape(n, channels, h, p, w, p)  # (n, C, i, r, j, s)
    return x.permute(0, 2, 4, 3, 5, 1).reshape(n, h * w, p * p * channels)  # (n, (i, j), (r, s, C))


def unpatchify(patches: Tensor, patch_size: int, height: int, width: int) -> Tensor:
    """Reassemble tokens of patches into images: the exact inverse of :func:`patchify`.

    Args:
        patches: shape ``(n, h·w, p·p·C)`` with ``h = height/p``, ``w = width/p``, tokens in row-major order.
        patch_size: the patch side ``p``.
        height, width: the image size ``H, W``, divisible by ``p``.
    Returns:
        Shape ``(n, C, H, W)``.

    Reference: Peebles & Xie (2023), §3.2 (the decoder's "rearrange into the original spatial layout").
    """
    p = patch_size
    for name, value in (("patch_size", p), ("height", height), ("width", width)):
        check_int(value, name)
    if height % p or width % p:
        raise ValueError(f"height and width must be divisible by patch_size={p}, got {(height, width)}")
    check_state(patches, "patches")
    h, w = height // p, width // p
    if patches.ndim != 3 or patches.shape[1] != h * w or patches.shape[2] % (p * p):
        raise ValueError(f"patches must have shape (n, {h * w}, {p}*{p}*C) for {height}x{width} images, "
                         f"got {tuple(patches.shape)}")
    n, channels = patches.shape[0], patches.shape[2] // (p * p)
    patches = patches.reshape(n, h, w, p, p, channels)  # (n, i, j, r, s, C)
    return patches.permute(0, 5, 1, 3, 2, 4).reshape(n, channels, height, width)  # (n, C, (i, r), (j, s))


def _check_grid(x: object, patch_size: object, name: str) -> tuple[int, int, int, int]:
    check_int(patch_size, "patch_size")
    check_state(x, name)
    assert isinstance(x, Tensor)
    if x.ndim != 4:
        raise ValueError(f"{name} must have shape (n, C, H, W), got {tuple(x.shape)}")
    if x.shape[2] % patch_size or x.shape[3] % patch_size:
        raise ValueError(f"{name}'s height and width must be divisible by patch_size={patch_size}, "
                         f"got {tuple(x.shape[2:])}")
    return tuple(x.shape)  # type: ignore[return-value]


def _check_rope_tables(tables: object, length: int, head_dim: int, use_rope: bool) -> Rotary:
    if not use_rope:
        raise ValueError("rope_tables were given but this DiT was built with rope=False")
    if not isinstance(tables, tuple) or len(tables) != 2 or not all(isinstance(t, Tensor) for t in tables):
        raise TypeError(f"rope_tables must be a (cos, sin) pair of tensors, got {type(tables).__name__}")
    for t in tables:
        if t.shape != (length, head_dim):
            raise ValueError(f"rope_tables must be two tensors of shape ({length}, {head_dim}) for this grid, "
                             f"got {tuple(t.shape)}")
    return tables  # type: ignore[return-value]


class DiTBlock(nn.Module):
    """One adaLN-Zero transformer block (Peebles & Xie 2023, Fig. 3).

    Args:
        hidden: token width.
        heads: attention heads.
        mlp_ratio: MLP width as a multiple of ``hidden``.

    Reference: Peebles & Xie (2023), §3.2 and Fig. 3 (adaLN-Zero block).
    """

    def __init__(self, hidden: int, heads: int, mlp_ratio: float = 4.0) -> None:
        super().__init__()
        check_int(hidden, "hidden")
        check_int(heads, "heads")
        check_real(mlp_ratio, "mlp_ratio", positive=True)
        self.norm1 = nn.LayerNorm(hidden, elementwise_affine=False, eps=1e-6)
        self.attn = MultiHeadAttention(hidden, heads)
        self.norm2 = nn.LayerNorm(hidden, elementwise_affine=False, eps=1e-6)
        width = int(hidden * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(hidden, width), nn.GELU(approximate="tanh"), nn.Linear(width, hidden))
        self.adaln = AdaLNZero(hidden, hidden, 6)

    def forward(self, x: Tensor, c: Tensor, rope: Tensor | Rotary | None = None) -> Tensor:
        """Tokens ``x`` of shape ``(n, L, hidden)``, conditioning ``c`` of shape ``(n, hidden)``, optional RoPE
        angles ``(L, head_dim/2)``; returns ``(n, L, hidden)``."""
        shift_attn, scale_attn, gate_attn, shift_mlp, scale_mlp, gate_mlp = self.adaln(c)
        x = x + gate_attn[:, None] * self.attn(modulate(self.norm1(x), shift_attn, scale_attn), rope)
        return x + gate_mlp[:, None] * self.mlp(modulate(self.norm2(x), shift_mlp, scale_mlp))


class _FinalLayer(nn.Module):
    """adaLN-modulated LayerNorm and a zero-initialised linear map from tokens to patches."""

    def __init__(self, hidden: int, patch_dim: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(hidden, elementwise_affine=False, eps=1e-6)
        self.adaln = AdaLNZero(hidden, hidden, 2)
        self.linear = nn.Linear(hidden, patch_dim)
        nn.init.zeros_(self.linear.weight)
        nn.init.zeros_(self.linear.bias)

    def forward(self, x: Tensor, c: Tensor) -> Tensor:
        shift, scale = self.adaln(c)
        return self.linear(modulate(self.norm(x), shift, scale))


class DiT(nn.Module):
    """Diffusion Transformer: ``(x, noise_level, labels) -> (n, C_out, H, W)`` (Peebles & Xie 2023).

    Args:
        in_channels: image channels ``C``.
        patch_size: patch side ``p``; ``H`` and ``W`` must be divisible by it.
        hidden: token width.
        depth: number of blocks.
        heads: attention heads; with RoPE, ``hidden / heads`` must be divisible by 4.
        mlp_ratio: MLP width as a multiple of ``hidden``.
        num_classes: number of classes for class conditioning (``None``: unconditional); class
            ``num_classes`` is the learned null class for classifier-free guidance.
        learn_sigma: also output a variance channel per input channel (``C_out = 2C``), as in DiT/iDDPM.
        rope: use 2-D axial RoPE in attention.
        abs_pos: add fixed 2-D sin-cos absolute position embeddings to the tokens (the original DiT).
        rope_base: RoPE base; a plain attribute, so it can be changed after training (NTK-style scaling).
        time_scale: multiplies ``noise_level`` before the sinusoidal embedding.

    Reference: Peebles & Xie (2023), §3.2 and Table 1; Su et al. (2021), Eq. 34 (RoPE); Heo et al. (2024), §3 (axial 2-D RoPE).
    """

    def __init__(
        self,
        in_channels: int,
        *,
        patch_size: int = 2,
        hidden: int = 384,
        depth: int = 12,
        heads: int = 6,
        mlp_ratio: float = 4.0,
        num_classes: int | None = None,
        learn_sigma: bool = False,
        rope: bool = True,
        abs_pos: bool = False,
        rope_base: float = 10000.0,
        time_scale: float = 1.0,
    ) -> None:
        super().__init__()
        for name, value in (("in_channels", in_channels), ("patch_size", patch_size), ("hidden", hidden),
                            ("depth", depth), ("heads", heads)):
            check_int(value, name)
        check_real(mlp_ratio, "mlp_ratio", positive=True)
        check_real(time_scale, "time_scale", positive=True)
        if check_real(rope_base, "rope_base") <= 1.0:
            raise ValueError(f"rope_base must be > 1, got {rope_base!r}")
        if hidden % heads:
            raise ValueError(f"heads={heads} must divide hidden={hidden}")
        if rope and (hidden // heads) % 4:
            raise ValueError(f"with rope=True the head dim hidden/heads must be divisible by 4, got {hidden // heads}")
        if not rope and not abs_pos:
            raise ValueError("a DiT needs position information: set rope=True or abs_pos=True")
        if abs_pos and hidden % 4:
            raise ValueError(f"with abs_pos=True, hidden must be divisible by 4, got {hidden}")
        self.config = dict(in_channels=in_channels, patch_size=patch_size, hidden=hidden, depth=depth, heads=heads,
                           mlp_ratio=mlp_ratio, num_classes=num_classes, learn_sigma=learn_sigma, rope=rope,
                           abs_pos=abs_pos, rope_base=rope_base, time_scale=time_scale)
        self.in_channels, self.patch_size, self.hidden, self.heads = in_channels, patch_size, hidden, heads
        self.out_channels = 2 * in_channels if learn_sigma else in_channels
        self.use_rope, self.abs_pos, self.rope_base = rope, abs_pos, rope_base

        self.patch = nn.Conv2d(in_channels, hidden, patch_size, stride=patch_size)
        self.time = TimestepEmbedding(hidden, scale=time_scale)
        self.label = LabelEmbedding(num_classes, hidden) if num_classes is not None else None
        self.null_label = num_classes  # the label of the null class; None when unconditional
        self.blocks = nn.ModuleList(DiTBlock(hidden, heads, mlp_ratio) for _ in range(depth))
        self.final = _FinalLayer(hidden, patch_size * patch_size * self.out_channels)
        self._init_weights()

    def _init_weights(self) -> None:
        # DiT's initialisation: Xavier for linear maps, N(0, 0.02) for the embeddings, then adaLN-Zero
        # and the final layer back to zero.
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight)
                nn.init.zeros_(module.bias)
        nn.init.xavier_uniform_(self.patch.weight.view(self.hidden, -1))
        nn.init.zeros_(self.patch.bias)
        for layer in (self.time.mlp[0], self.time.mlp[2]):
            nn.init.normal_(layer.weight, std=0.02)
        if self.label is not None:
            nn.init.normal_(self.label.table.weight, std=0.02)
        for adaln in [block.adaln for block in self.blocks] + [self.final.adaln]:
            nn.init.zeros_(adaln.linear.weight)
            nn.init.zeros_(adaln.linear.bias)
        nn.init.zeros_(self.final.linear.weight)
        nn.init.zeros_(self.final.linear.bias)

    @classmethod
    def from_preset(cls, name: str, in_channels: int, **kwargs: object) -> DiT:
        """Build a standard size, e.g. ``DiT.from_preset("S/2", 4, num_classes=10)``; ``kwargs`` override."""
        if name not in PRESETS:
            raise ValueError(f"name must be one of {sorted(PRESETS)}, got {name!r}")
        return cls(in_channels, **{**PRESETS[name], **kwargs})

    def forward(
        self,
        x: Tensor,
        noise_level: Tensor | float,
        labels: Tensor | None = None,
        *,
        pos_scale: float | tuple[float, float] = 1.0,
        pos_offset: tuple[float, float] = (0.0, 0.0),
        rope_tables: Rotary | None = None,
    ) -> Tensor:
        """Evaluate the network.

        Args:
            x: images, shape ``(n, C, H, W)`` with ``H, W`` divisible by ``patch_size``.
            noise_level: shape ``(n,)`` or a scalar, the caller's noise conditioning.
            labels: class indices, shape ``(n,)``, integer dtype; ``None`` means the null class for a
                class-conditional DiT. Must be ``None`` for an unconditional one.
            pos_scale: patch ``(i, j)`` sits at ``pos_offset + (i, j) · pos_scale`` (see
                :func:`~diffbook.nets.rope.grid_positions`); for RoPE and the absolute embeddings.
            pos_offset: ``(row, col)`` shift of the whole patch grid.
            rope_tables: optional ``(cos, sin)`` tables, each ``(h·w, hidden/heads)``, used instead of the ones
                computed from the grid (resolution-extrapolation rules that change frequencies or magnitudes per
                sampling step, Chapter 11); ``None`` keeps the default path.
        Returns:
            Shape ``(n, C_out, H, W)``, ``C_out = C`` (or ``2C`` with ``learn_sigma``).
        """
        check_state(x, "x")
        if x.ndim != 4 or x.shape[0] == 0:
            raise ValueError(f"x must have shape (n, C, H, W) with n >= 1, got {tuple(x.shape)}")
        if x.shape[1] != self.in_channels:
            raise ValueError(f"x must have {self.in_channels} channels, got shape {tuple(x.shape)}")
        p = self.patch_size
        if x.shape[2] % p or x.shape[3] % p:
            raise ValueError(f"x's height and width must be divisible by patch_size={p}, got {tuple(x.shape[2:])}")
        if self.label is None and labels is not None:
            raise ValueError("labels were given but this DiT is unconditional; build it with num_classes=...")
        n, _, height, width = x.shape
        h, w = height // p, width // p

        # a p×p convolution with stride p is a linear map of each patch: a linear map of patchify(x)
        tokens = self.patch(x).flatten(2).transpose(1, 2)  # (n, h*w, hidden)
        positions = grid_positions(h, w, offset=pos_offset, scale=pos_scale, device=x.device)  # (h*w, 2)
        if self.abs_pos:
            tokens = tokens + sincos_position_embedding(positions, self.hidden).to(tokens.dtype)
        rope = None
        if rope_tables is not None:
            rope = _check_rope_tables(rope_tables, h * w, self.hidden // self.heads, self.use_rope)
        elif self.use_rope:  # cos/sin tables once per forward, shared by every block
            rope = rotary_tables(axial_rope_angles(positions, self.hidden // self.heads, self.rope_base))

        c = self.time(expand_noise_level(noise_level, n, x.device))
        if self.label is not None:
            c = c + self.label(labels, n, x.device)
        for block in self.blocks:
            tokens = block(tokens, c, rope)
        patches = self.final(tokens, c)  # (n, h*w, p*p*C_out)
        return unpatchify(patches, p, height, width)
