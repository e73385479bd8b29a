"""Learnable networks: the denoisers' trainable part, and the layers they are built from.

A network here is only the learnable map ``(x, noise_level, labels) -> output``; it knows nothing about
noise schedules or what its output means. ``noise_level`` is whatever scalar conditioning the caller
chooses (EDM's ``c_noise = log(σ)/4``, a timestep, a flow time), embedded with sinusoidal features.

- :mod:`~diffbook.nets.layers`: noise-level and class embeddings, ``modulate``, adaLN-Zero.
- :mod:`~diffbook.nets.rope`: rotary position embeddings (1-D and axial 2-D), pure functions.
- :mod:`~diffbook.nets.attention`: SDPA multi-head attention, block-causal masks, the KV cache.
- :mod:`~diffbook.nets.mlp`, :mod:`~diffbook.nets.unet`, :mod:`~diffbook.nets.dit`: the three networks.
- :mod:`~diffbook.nets.classifier`: a noise-conditional image classifier for classifier guidance.

References: Ho et al., *Denoising Diffusion Probabilistic Models* (2020) for the MLP and UNet designs;
Peebles & Xie, *Scalable Diffusion Models with Transformers* (2023) for the DiT; Dhariwal & Nichol,
*Diffusion Models Beat GANs on Image Synthesis* (2021) for the noise-conditional classifier.
"""

from diffbook.nets.attention import KVCache, MultiHeadAttention
from diffbook.nets.classifier import NoisyClassifier
from diffbook.nets.dit import DiT, DiTBlock
from diffbook.nets.layers import AdaLNZero, LabelEmbedding, TimestepEmbedding
from diffbook.nets.mlp import MLP
from diffbook.nets.unet import UNet

__all__ = [
    "AdaLNZero",
    "DiT",
    "DiTBlock",
    "KVCache",
    "LabelEmbedding",
    "MLP",
    "MultiHeadAttention",
    "NoisyClassifier",
    "TimestepEmbedding",
    "UNet",
]
