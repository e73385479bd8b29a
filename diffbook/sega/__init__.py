"""Chapter 11: SEGA and the training-free RoPE extrapolation rules it is compared with.

``rope_scaling`` (one interface for every method), ``spectrum`` (SEGA's measurements), ``scenes`` (procedural
scenes in continuous coordinates), ``sampling`` (the rectified-flow DiT and its Euler sampler), ``metrics``
(objects, repetition, spectra, Fréchet distances), ``flux`` (the diffusers FLUX patch).

Reference: Rajabi et al. (2026), SEGA, arXiv:2605.22668.
"""

from diffbook.sega.rope_scaling import (METHODS, AxisRope, SegaOptions, dype_kappa, ntk_factor, plain_frequencies,
                                        rope_scaling, rotary_from_axes, sega_base_factor, yarn_frequencies,
                                        yarn_mscale)
from diffbook.sega.spectrum import (axis_profile, band_positions, check_latent, latent_map, pair_scales,
                                    radial_profile, spectral_flatness, spread)

__all__ = ["METHODS", "AxisRope", "SegaOptions", "dype_kappa", "ntk_factor", "plain_frequencies", "rope_scaling",
           "rotary_from_axes", "sega_base_factor", "yarn_frequencies", "yarn_mscale", "axis_profile",
           "band_positions", "check_latent", "latent_map", "pair_scales", "radial_profile", "spectral_flatness",
           "spread"]
