"""Chapter 9: DecQ — detail-condensing queries on a frozen representation encoder.

* :mod:`~diffbook.decq.encoder`: the :class:`Encoder` protocol, the tiny ViT trained on textured digits,
  the DINOv2-with-registers backend.
* :mod:`~diffbook.decq.tokenizer`: the RAE decoder, DecQ's queries and condensers, the two controls.
* :mod:`~diffbook.decq.flops`: FLOPs counted by ``torch.utils.flop_counter``.
* :mod:`~diffbook.decq.generation`: latent flow matching with the engine's DiT on ``[queries ; patches]``.

References: Wang et al., *DecQ* (2026); Zheng et al., *Diffusion Transformers with Representation Autoencoders* (2025).
"""

from diffbook.decq.encoder import (DinoV2Encoder, Encoder, TinyViT, check_frozen, check_taps, default_taps, freeze,
                                   train_tiny_encoder)
from diffbook.decq.flops import count_flops, tokenizer_flops
from diffbook.decq.generation import LatentNorm, pack_latents, sample_latents, train_latent_dit, unpack_latents
from diffbook.decq.tokenizer import MODES, Condenser, DecQAutoencoder, reconstruction_psnr, train_autoencoder

__all__ = ["Encoder", "TinyViT", "DinoV2Encoder", "train_tiny_encoder", "freeze", "check_frozen", "check_taps",
           "default_taps", "MODES", "Condenser", "DecQAutoencoder", "train_autoencoder", "reconstruction_psnr",
           "count_flops", "tokenizer_flops", "LatentNorm", "pack_latents", "unpack_latents", "train_latent_dit",
           "sample_latents"]
