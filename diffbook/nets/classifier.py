"""A small classifier of *noisy* images, ``p_σ̄(c | x̄)``, for classifier guidance on 8 × 8 digits.

Classifier guidance (Dhariwal & Nichol 2021, §4) needs the gradient of ``log p_σ̄(c | x̄)`` at every noise
level the sampler visits, so the classifier is trained on noised data and told the noise level, like a
denoiser. :func:`diffbook.guidance.classifier_guidance` turns it into a guided denoiser.

Reference: P. Dhariwal and A. Nichol, *Diffusion Models Beat GANs on Image Synthesis*, NeurIPS 2021, §4
(a noise-aware classifier, trained with cross-entropy on noised images).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from diffbook._checks import check_int, check_state, per_sample
from diffbook.nets.layers import TimestepEmbedding, expand_noise_level

__all__ = ["NoisyClassifier"]


class NoisyClassifier(nn.Module):
    """Noise-conditional image classifier: ``(x̄, σ̄) -> logits`` of shape ``(n, num_classes)``.

    **Convention.** ``forward`` takes the *VE-scaled* noisy image ``x̄ = x₀ + σ̄ ε`` (the variable of the book's
    denoiser contract) and ``σ̄`` itself, and does its own preconditioning: the image is divided by
    ``sqrt(1 + σ̄²)`` (unit scale for data of scale about 1) and the noise level enters as
    ``c_noise = log(σ̄)/4`` through a :class:`~diffbook.nets.layers.TimestepEmbedding` (EDM's choice). So
    ``log_softmax(clf(x̄, σ̄))`` is directly a ``log_posterior`` for :func:`~diffbook.guidance.classifier_guidance`,
    and its gradient is taken in ``x̄``.

    Architecture: three 3 × 3 convolutions (the second with stride 2), each followed by a per-channel bias from
    the noise embedding and SiLU, global average pooling and a linear head (Dhariwal & Nichol 2021, §4, use
    the downsampling half of their UNet; this is a much smaller stand-in for 8 × 8 images).

    Args:
        in_channels: image channels (1 for the digits).
        channels: width of the first convolution; the others use ``2 * channels``.
        num_classes: number of classes (10 for the digits).
        emb_dim: width of the noise-level embedding.

    Reference: Dhariwal & Nichol (2021), §4 (noise-aware classifier); Karras et al. (2022), Table 1 (c_noise = log(σ)/4).
    """

    def __init__(self, in_channels: int = 1, *, channels: int = 32, num_classes: int = 10, emb_dim: int = 64) -> None:
        super().__init__()
        for name, value in (("in_channels", in_channels), ("channels", channels), ("num_classes", num_classes),
                            ("emb_dim", emb_dim)):
            check_int(value, name)
        if num_classes < 2:
            raise ValueError(f"num_classes must be >= 2, got {num_classes}")
        self.in_channels, self.num_classes = in_channels, num_classes
        wide = 2 * channels
        self.embed = TimestepEmbedding(emb_dim, freq_dim=64)
        self.convs = nn.ModuleList([
            nn.Conv2d(in_channels, channels, 3, padding=1),
            nn.Conv2d(channels, wide, 3, stride=2, padding=1),
            nn.Conv2d(wide, wide, 3, padding=1),
        ])
        self.cond = nn.ModuleList([nn.Linear(emb_dim, c.out_channels) for c in self.convs])
        self.head = nn.Linear(wide, num_classes)

    def forward(self, x: Tensor, sigma: Tensor | float) -> Tensor:
        """``x`` of shape ``(n, C, H, W)`` (VE-scaled, ``x̄``) and ``sigma`` (``σ̄ > 0``, a number or shape
        ``(n,)``) to class logits of shape ``(n, num_classes)``."""
        check_state(x, "x")
        if x.ndim != 4 or x.shape[1] != self.in_channels or x.shape[0] == 0:
            raise ValueError(f"x must have shape (n, {self.in_channels}, H, W) with n >= 1, got {tuple(x.shape)}")
        if isinstance(sigma, bool) or not isinstance(sigma, (Tensor, int, float)):
            raise TypeError(f"sigma must be a tensor or a real number, got {type(sigma).__name__}")
        sig = expand_noise_level(sigma, x.shape[0], x.device)
        if not bool((torch.isfinite(sig) & (sig > 0)).all()):  # one sync per call: guidance is not the hot loop
            raise ValueError("sigma must be finite and > 0 (it enters as log(sigma)/4)")
        dtype = self.head.weight.dtype
        h = x.to(dtype) / per_sample(torch.sqrt(1.0 + sig.to(dtype) ** 2), x, "sigma", dtype=dtype)
        emb = F.silu(self.embed(torch.log(sig) / 4.0))
        for conv, cond in zip(self.convs, self.cond):
            h = F.silu(conv(h) + cond(emb).to(h.dtype)[:, :, None, None])
        return self.head(h.mean(dim=(2, 3)))
