"""Conditioning layers shared by the networks: noise-level and class embeddings, adaLN-Zero modulation.

A network receives a scalar ``noise_level`` per sample (whatever the caller chooses: EDM's
``c_noise = log(σ)/4``, a DDPM timestep, a flow time ``t``) and, optionally, a class label. Both become
one conditioning vector ``c`` of shape ``(n, dim)``: sinusoidal features of the noise level passed
through a small MLP, plus a learned class embedding. Class ``num_classes`` is the learned *null* class
used for classifier-free guidance; dropping labels during training is the caller's job
(:func:`drop_labels`), so the networks themselves stay deterministic.

References: sinusoidal features from Vaswani et al., *Attention Is All You Need* (2017), §3.5, used for
diffusion time by Ho et al., *Denoising Diffusion Probabilistic Models* (2020); adaLN-Zero from Peebles &
Xie, *Scalable Diffusion Models with Transformers* (2023), §3.2; the null class from Ho & Salimans,
*Classifier-Free Diffusion Guidance* (2022).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from diffbook._checks import check_int, check_real, check_state
from diffbook.device import check_device

__all__ = [
    "sinusoidal_embedding",
    "sincos_position_embedding",
    "expand_noise_level",
    "drop_labels",
    "modulate",
    "TimestepEmbedding",
    "LabelEmbedding",
    "AdaLNZero",
]


def _check_even(dim: object, name: str) -> None:
    check_int(dim, name, minimum=2)
    if dim % 2:  # type: ignore[operator]
        raise ValueError(f"{name} must be an even int >= 2, got {dim!r}")


def _check_values(values: object, name: str) -> None:
    """A real tensor of shape ``(n,)`` (integer timesteps are fine: they are cast to float32)."""
    if not isinstance(values, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape (n,), got {type(values).__name__}")
    if values.is_complex() or values.dtype == torch.bool:
        raise TypeError(f"{name} must be real-valued, got dtype {values.dtype}")
    if values.ndim != 1:
        raise ValueError(f"{name} must have shape (n,), got {tuple(values.shape)}")


def sinusoidal_embedding(values: Tensor, dim: int, max_period: float = 10000.0) -> Tensor:
    """Sinusoidal features ``[cos(v ω_i), sin(v ω_i)]`` with ``ω_i = max_period^(-i/(dim/2))``.

    Vaswani et al. (2017), §3.5. The frequencies go from 1 down to ``1/max_period``.

    Args:
        values: shape ``(n,)``, any real numbers (computed in float32).
        dim: the (even) number of features.
    Returns:
        Shape ``(n, dim)``, float32.

    Reference: Vaswani et al. (2017), §3.5; Ho et al. (2020), App. B (for diffusion time).
    """
    _check_even(dim, "dim")
    check_real(max_period, "max_period", positive=True)
    _check_values(values, "values")
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=values.device) / half)
    args = values.float()[:, None] * freqs[None, :]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


def sincos_position_embedding(positions: Tensor, dim: int, max_period: float = 10000.0) -> Tensor:
    """Fixed absolute position embedding: sinusoidal features of each axis, concatenated.

    For image patches (Dosovitskiy et al. 2021; DiT's ``get_2d_sincos_pos_embed``) the first half of the
    features encodes the row, the second half the column. Computed from ``positions``, so it is defined
    at any resolution and for fractional positions.

    Args:
        positions: shape ``(L, A)`` (``A`` axes, e.g. ``A = 2`` for ``(row, col)``).
        dim: number of features, divisible by ``2 A``.
    Returns:
        Shape ``(L, dim)``, float32.

    Reference: Dosovitskiy et al. (2021), App. D.4; Peebles & Xie (2023), §3.2 (2-D sin-cos embedding).
    """
    if not isinstance(positions, Tensor):
        raise TypeError(f"positions must be a torch.Tensor of shape (L, axes), got {type(positions).__name__}")
    if positions.ndim != 2:
        raise ValueError(f"positions must have shape (L, axes), got {tuple(positions.shape)}")
    check_int(dim, "dim", minimum=2)
    axes = positions.shape[1]
    if axes < 1 or dim % (2 * axes):
        raise ValueError(f"dim must be divisible by 2 * axes = {2 * axes}, got {dim}")
    return torch.cat([sinusoidal_embedding(positions[:, a], dim // axes, max_period) for a in range(axes)], dim=-1)


def expand_noise_level(noise_level: Tensor | float, n: int, device: torch.device | str) -> Tensor:
    """Validate ``noise_level`` and return it as a float32 tensor of shape ``(n,)`` on ``device``.

    Args:
        noise_level: a Python number, a 0-dim tensor, or a tensor of shape ``(n,)`` or ``(1,)``.
        n: the batch size.

    Reference: Ho et al. (2020), App. B (one noise-level input per sample); Karras et al. (2022), Table 1 (c_noise).
    """
    if isinstance(noise_level, bool) or not isinstance(noise_level, (Tensor, int, float)):
        raise TypeError(f"noise_level must be a tensor or a real number, got {type(noise_level).__name__}")
    check_int(n, "n")
    device = check_device(device, "device")
    level = torch.as_tensor(noise_level, device=device)
    if level.is_complex() or level.dtype == torch.bool:
        raise TypeError(f"noise_level must be real-valued, got dtype {level.dtype}")
    if level.ndim > 1 or (level.ndim == 1 and level.shape[0] not in (1, n)):
        raise ValueError(f"noise_level must be a scalar or have shape ({n},), got {tuple(level.shape)}")
    return level.to(device=device, dtype=torch.float32).expand(n)


def drop_labels(labels: Tensor, p: float, null_label: int, *, generator: torch.Generator | None = None) -> Tensor:
    """Replace each label by ``null_label`` with probability ``p`` (training for classifier-free guidance).

    Ho & Salimans (2022), Algorithm 1. Returns a new tensor shaped like ``labels`` ``(n,)``.

    Reference: Ho & Salimans (2022), Alg. 1 (label dropout for classifier-free guidance).
    """
    if not isinstance(labels, Tensor):
        raise TypeError(f"labels must be a tensor of integer class indices, got {type(labels).__name__}")
    if labels.is_floating_point() or labels.is_complex() or labels.dtype == torch.bool:
        raise TypeError(f"labels must have an integer dtype (torch.long), got {labels.dtype}")
    if not 0.0 <= check_real(p, "p") <= 1.0:
        raise ValueError(f"p must be a probability in [0, 1], got {p}")
    check_int(null_label, "null_label", minimum=0)
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator or None, got {type(generator).__name__}")
    keep = torch.rand(labels.shape, generator=generator, device=labels.device) >= p
    return torch.where(keep, labels, torch.full_like(labels, null_label))


def modulate(x: Tensor, shift: Tensor, scale: Tensor) -> Tensor:
    """Feature-wise affine modulation ``x (1 + scale) + shift`` (Peebles & Xie 2023, §3.2).

    Args:
        x: shape ``(n, ..., D)``, e.g. ``(n, L, D)`` tokens.
        shift, scale: shape ``(n, D)``, broadcast over the middle axes of ``x``.
    Returns:
        Shape of ``x``.

    Reference: Peebles & Xie (2023), §3.2 (adaLN); Perez et al. (2018), FiLM, eq. (1).
    """
    check_state(x, "x")
    if x.ndim < 2:
        raise ValueError(f"x must have shape (n, ..., D), got {tuple(x.shape)}")
    for name, t in (("shift", shift), ("scale", scale)):
        check_state(t, name)
        if t.shape != (x.shape[0], x.shape[-1]):
            raise ValueError(f"{name} must have shape (n, D) = {(x.shape[0], x.shape[-1])} for x of shape "
                             f"{tuple(x.shape)}, got {tuple(t.shape)}")
    # the checks above read only shapes and dtypes (host metadata): no device sync inside a network
    view = (shift.shape[0],) + (1,) * (x.ndim - 2) + (shift.shape[-1],)
    return x * (1 + scale.view(view)) + shift.view(view)


class TimestepEmbedding(nn.Module):
    """Noise-level embedding: sinusoidal features followed by ``Linear → SiLU → Linear``.

    As DiT's ``TimestepEmbedder`` (Peebles & Xie 2023) and DDPM's time embedding (Ho et al. 2020).

    Args:
        dim: output width.
        freq_dim: number of sinusoidal features.
        max_period: the slowest period of the sinusoids.
        scale: multiplies ``noise_level`` first. The fastest sinusoid has period 2π, so a noise level that
            lives in ``[0, 1]`` wants ``scale ≈ 1000``; EDM's ``log(σ)/4`` or a timestep in ``[0, 1000)``
            work with ``scale = 1``.

    Reference: Vaswani et al. (2017), §3.5; Ho et al. (2020), App. B; Peebles & Xie (2023), §3.2.
    """

    def __init__(self, dim: int, *, freq_dim: int = 256, max_period: float = 10000.0, scale: float = 1.0) -> None:
        super().__init__()
        check_int(dim, "dim")
        _check_even(freq_dim, "freq_dim")
        check_real(max_period, "max_period", positive=True)
        check_real(scale, "scale", positive=True)
        self.freq_dim, self.max_period, self.scale = freq_dim, max_period, scale
        self.mlp = nn.Sequential(nn.Linear(freq_dim, dim), nn.SiLU(), nn.Linear(dim, dim))

    def forward(self, noise_level: Tensor) -> Tensor:
        """``noise_level`` of shape ``(n,)`` (see :func:`expand_noise_level`) to ``(n, dim)``."""
        _check_values(noise_level, "noise_level")
        features = sinusoidal_embedding(noise_level * self.scale, self.freq_dim, self.max_period)
        return self.mlp(features.to(self.mlp[0].weight.dtype))


class LabelEmbedding(nn.Module):
    """Class embedding with one extra learned *null* class, index ``num_classes`` (Ho & Salimans 2022).

    Args:
        num_classes: number of real classes; labels are ``0 .. num_classes - 1``, or ``num_classes`` for "no label".
        dim: output width.

    Reference: Ho & Salimans (2022), §3.2 (the null class); Peebles & Xie (2023), §3.2.
    """

    def __init__(self, num_classes: int, dim: int) -> None:
        super().__init__()
        check_int(num_classes, "num_classes")
        check_int(dim, "dim")
        self.num_classes = num_classes
        self.table = nn.Embedding(num_classes + 1, dim)

    @property
    def null_label(self) -> int:
        """The index of the null class."""
        return self.num_classes

    def forward(self, labels: Tensor | None, n: int, device: torch.device | str) -> Tensor:
        """Labels of shape ``(n,)`` (integer dtype), or ``None`` for all-null, to embeddings ``(n, dim)``.

        Label values are not range-checked (that would need a host sync on GPU); valid values are
        ``0 .. num_classes``.
        """
        if labels is None:
            labels = torch.full((n,), self.null_label, dtype=torch.long, device=device)
        if not isinstance(labels, Tensor):
            raise TypeError(f"labels must be a tensor of integer class indices, got {type(labels).__name__}")
        if labels.is_floating_point() or labels.is_complex() or labels.dtype == torch.bool:
            raise TypeError(f"labels must have an integer dtype (torch.long), got {labels.dtype}")
        if labels.shape != (n,):
            raise ValueError(f"labels must have shape ({n},), got {tuple(labels.shape)}")
        return self.table(labels.to(device))


class AdaLNZero(nn.Module):
    """adaLN-Zero modulation: ``SiLU → Linear`` from the conditioning vector to ``chunks`` vectors of width ``dim``.

    The linear layer starts at zero, so every shift, scale and gate is zero at initialisation and a block
    ``x + gate · f(modulate(norm(x), shift, scale))`` starts as the identity (Peebles & Xie 2023, §3.2).

    Args:
        cond_dim: width of the conditioning vector ``c``.
        dim: width of each output chunk.
        chunks: how many chunks (6 for a DiT block: shift, scale, gate for attention and for the MLP).

    Reference: Peebles & Xie (2023), §3.2 (adaLN-Zero).
    """

    def __init__(self, cond_dim: int, dim: int, chunks: int) -> None:
        super().__init__()
        check_int(cond_dim, "cond_dim")
        check_int(dim, "dim")
        check_int(chunks, "chunks")
        self.chunks, self.cond_dim = chunks, cond_dim
        self.linear = nn.Linear(cond_dim, chunks * dim)
        nn.init.zeros_(self.linear.weight)
        nn.init.zeros_(self.linear.bias)

    def forward(self, c: Tensor) -> tuple[Tensor, ...]:
        """``c`` of shape ``(n, cond_dim)`` to a tuple of ``chunks`` tensors of shape ``(n, dim)``."""
        check_state(c, "c")
        if c.ndim != 2 or c.shape[1] != self.cond_dim:
            raise ValueError(f"c must have shape (n, {self.cond_dim}), got {tuple(c.shape)}")
        return self.linear(nn.functional.silu(c)).chunk(self.chunks, dim=-1)
