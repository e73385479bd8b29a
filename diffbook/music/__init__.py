"""Live music diffusion (Chapter 13): block-wise streaming diffusion on Bach-chorale piano rolls with a
KV cache, against naive outpainting and an equal-size KV-cached autoregressive model.

- :mod:`~diffbook.music.data`: chorales from the ``music21`` corpus as sixteenth-note piano rolls (cached).
- :mod:`~diffbook.music.model`: the block diffusion transformer (enc-dec and block-causal attention,
  prefill and fused-step caches) and the frame-AR baseline.
- :mod:`~diffbook.music.stream`: bar-by-bar generation for every method, token-forward formulas.
- :mod:`~diffbook.music.training`: rectified flow with context dropout, AR and reference-model training.
- :mod:`~diffbook.music.quality`: pitch-class divergence, polyphony, in-key ratio, drift curves.
- :mod:`~diffbook.music.audio`: notes, a numpy synthesiser (FluidSynth where installed), MIDI export.
- :mod:`~diffbook.music.live`: ``python -m diffbook.music.live``, the live mode.

Reference: Novack et al. (2026), *Live Music Diffusion Models*, arXiv 2605.22717.
"""

from diffbook.music.audio import Note, roll_to_notes, synthesize, write_midi
from diffbook.music.data import load_chorales, split_names
from diffbook.music.model import BlockDiffusionTransformer, FrameAR, encdec_mask, window_chunk_mask
from diffbook.music.stream import ARStreamer, DiffusionStreamer, make_streamer, sampling_times, tokens_per_bar
from diffbook.music.training import ReferenceModel, fit, rf_loss

__all__ = [
    "Note", "roll_to_notes", "synthesize", "write_midi", "load_chorales", "split_names",
    "BlockDiffusionTransformer", "FrameAR", "encdec_mask", "window_chunk_mask",
    "ARStreamer", "DiffusionStreamer", "make_streamer", "sampling_times", "tokens_per_bar",
    "ReferenceModel", "fit", "rf_loss",
]
