"""Discrete diffusion on token sequences: uniform (UDM), absorbing/masked (MDM) and AUDM (Chapter 10).

One concept per module, importing only the engine:

- :mod:`~diffbook.discrete.schedule` — ``α_t`` and grids of it; token validation.
- :mod:`~diffbook.discrete.forward` — forward processes and their one-token posteriors (bridges).
- :mod:`~diffbook.discrete.conversions` — the denoiser ``D`` ↔ the leave-one-out posterior ``L``.
- :mod:`~diffbook.discrete.nelbo` — the MDLM, UDLM and AUDM NELBOs and their Monte-Carlo estimate.
- :mod:`~diffbook.discrete.samplers` — MDM, UDM (fed ``L`` or ``D``, temperature, greedy, corrector), AUDM, ReAUDM.
- :mod:`~diffbook.discrete.oracle` — exact ``D`` and ``L`` for any Markov chain, by forward–backward.
- :mod:`~diffbook.discrete.network` — a bidirectional transformer denoiser from the engine's blocks.
- :mod:`~diffbook.discrete.training` — the four training objectives and the network-to-sampler adapter.
- :mod:`~diffbook.discrete.ngram` — a Witten–Bell character n-gram to score samples.

Reference: Gourevitch et al. (2026), *Uniform Diffusion Models Revisited: Leave-One-Out Denoiser and
Absorbing State Reformulation*, arXiv:2605.22765.
"""

from diffbook.discrete import conversions, forward, nelbo, ngram, oracle, samplers, schedule, training
from diffbook.discrete.network import TokenDenoiser
from diffbook.discrete.ngram import WittenBell
from diffbook.discrete.oracle import MarkovChain, fit_chain, unigram_entropy
from diffbook.discrete.schedule import alpha_grid

__all__ = ["conversions", "forward", "nelbo", "ngram", "oracle", "samplers", "schedule", "training",
           "TokenDenoiser", "WittenBell", "MarkovChain", "fit_chain", "unigram_entropy", "alpha_grid"]
