"""Bach chorales from the ``music21`` corpus as piano rolls on a sixteenth-note grid.

A chorale becomes a boolean roll of shape ``(T, P, 2)``: ``T`` sixteenth-note frames, ``P = 49`` pitches
(MIDI 36–84), and two channels, *onset* (a note starts in this frame) and *sustain* (a note sounds in this
frame). The model sees the roll flattened to ``(T, 2P)`` with values in ``{-1, +1}``: this is the book's
stand-in for the latent of an audio autoencoder. Parsing uses ``music21`` (the corpus ships inside its
wheel, so nothing is downloaded); the rolls are cached in the user's cache directory after the first
parse. The held-out split is fixed: every fifth chorale in name order is held out.

Reference: Cuthbert & Ariza (2010), *music21: A Toolkit for Computer-Aided Musicology*; the chorale
representation follows Hadjeres et al. (2017), *DeepBach*, §2 (sixteenth-note grid).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from diffbook._checks import check_int

__all__ = [
    "PITCH_LOW",
    "PITCH_HIGH",
    "N_PITCHES",
    "FRAMES_PER_BEAT",
    "FRAMES_PER_BAR",
    "CHANNELS",
    "chorale_names",
    "parse_chorale",
    "load_chorales",
    "split_names",
    "transpose_roll",
    "roll_to_features",
    "features_to_roll",
    "sample_windows",
    "cache_dir",
]

PITCH_LOW, PITCH_HIGH = 36, 84
N_PITCHES = PITCH_HIGH - PITCH_LOW + 1
FRAMES_PER_BEAT = 4
FRAMES_PER_BAR = 16
CHANNELS = 2 * N_PITCHES
_CACHE_VERSION = 1


def cache_dir() -> Path:
    """The cache folder for parsed rolls: ``$DIFFBOOK_CACHE`` or ``$XDG_CACHE_HOME/diffbook`` or ``~/.cache/diffbook``.

    Reference: Cuthbert & Ariza (2010), music21; Hadjeres et al. (2017), DeepBach, §2 (sixteenth-note grid).
    """
    root = os.environ.get("DIFFBOOK_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "diffbook")
    return Path(root) / "music"


def chorale_names() -> list[str]:
    """The names (e.g. ``"bwv1.6"``) of the Bach chorales in the ``music21`` corpus, sorted.

    Reference: Cuthbert & Ariza (2010), music21 corpus.
    """
    from music21 import corpus

    return sorted({Path(str(p)).stem for p in corpus.getComposer("bach") if str(p).endswith(".mxl")})


def parse_chorale(name: str) -> np.ndarray:
    """Parse one corpus chorale with ``music21`` into a boolean roll.

    Args:
        name: a corpus name such as ``"bwv1.6"`` (see :func:`chorale_names`).
    Returns:
        Shape ``(T, 49, 2)``, dtype bool: channel 0 onsets, channel 1 sustains; notes outside MIDI 36–84
        are folded into range by octaves.

    Reference: Hadjeres et al. (2017), DeepBach, §2 (sixteenth-note grid).
    """
    if not isinstance(name, str):
        raise TypeError(f"name must be a str naming a corpus chorale, got {type(name).__name__}")
    names = chorale_names()
    if name not in names:
        close = [n for n in names if n.startswith(name.split(".")[0])][:5]
        raise ValueError(f"name={name!r} is not a Bach chorale in the music21 corpus; e.g. {close or names[:5]}")
    from music21 import corpus

    score = corpus.parse(f"bach/{name}")
    flat = score.flatten()
    length = int(round(float(flat.highestTime) * FRAMES_PER_BEAT))
    roll = np.zeros((max(length, 1), N_PITCHES, 2), dtype=bool)
    for element in flat.notes:
        start = int(round(float(element.offset) * FRAMES_PER_BEAT))
        stop = max(start + 1, int(round(float(element.offset + element.quarterLength) * FRAMES_PER_BEAT)))
        for pitch in element.pitches:
            midi = int(pitch.midi)
            while midi < PITCH_LOW:
                midi += 12
            while midi > PITCH_HIGH:
                midi -= 12
            roll[start, midi - PITCH_LOW, 0] = True
            roll[start:stop, midi - PITCH_LOW, 1] = True
    return roll


def load_chorales(n: int | None = None, *, refresh: bool = False) -> dict[str, np.ndarray]:
    """The first ``n`` chorales (all when ``None``) as rolls, parsed once and cached.

    Returns:
        ``{name: roll}``, each roll of shape ``(T, 49, 2)``, bool.

    Reference: Cuthbert & Ariza (2010), music21 corpus.
    """
    names = chorale_names()
    if n is not None:
        check_int(n, "n")
        names = names[:n]
    path = cache_dir() / f"bach_chorales_v{_CACHE_VERSION}.npz"
    cached: dict[str, np.ndarray] = {}
    if path.exists() and not refresh:
        with np.load(path) as data:
            cached = {k: data[k] for k in data.files}
    missing = [name for name in names if name not in cached]
    if missing:
        for name in missing:
            cached[name] = parse_chorale(name)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + f".{os.getpid()}.tmp.npz")
        np.savez_compressed(tmp, **cached)
        os.replace(tmp, path)
    return {name: cached[name] for name in names}


def split_names(names: list[str]) -> tuple[list[str], list[str]]:
    """Fixed split: every fifth name in sorted order is held out. Returns ``(train, test)``.

    Reference: Cuthbert & Ariza (2010), music21; Hadjeres et al. (2017), DeepBach, §2 (sixteenth-note grid).
    """
    ordered = sorted(names)
    return [n for i, n in enumerate(ordered) if i % 5 != 4], [n for i, n in enumerate(ordered) if i % 5 == 4]


def transpose_roll(roll: np.ndarray | Tensor, semitones: int) -> np.ndarray | Tensor:
    """Shift a roll ``(T, P, 2)`` by ``semitones`` along the pitch axis; notes pushed out of range are dropped.

    Reference: Cuthbert & Ariza (2010), music21; Hadjeres et al. (2017), DeepBach, §2 (sixteenth-note grid).
    """
    if not isinstance(semitones, int) or isinstance(semitones, bool):
        raise TypeError(f"semitones must be an int, got {type(semitones).__name__}")
    out = roll.clone() if isinstance(roll, Tensor) else roll.copy()
    out[:] = 0
    if abs(semitones) >= roll.shape[1]:
        return out
    if semitones >= 0:
        out[:, semitones:] = roll[:, : roll.shape[1] - semitones]
    else:
        out[:, :semitones] = roll[:, -semitones:]
    return out


def roll_to_features(roll: np.ndarray | Tensor) -> Tensor:
    """Boolean roll ``(..., T, P, 2)`` to model features ``(..., T, 2P)`` in ``{-1, +1}`` (onsets first).

    Reference: Cuthbert & Ariza (2010), music21; Hadjeres et al. (2017), DeepBach, §2 (sixteenth-note grid).
    """
    r = torch.as_tensor(np.asarray(roll) if not isinstance(roll, Tensor) else roll).bool()
    r = r.transpose(-1, -2).reshape(*r.shape[:-2], 2 * r.shape[-2])
    return r.float() * 2 - 1


def features_to_roll(x: Tensor, threshold: float = 0.0) -> Tensor:
    """Model features ``(..., T, 2P)`` to a boolean roll ``(..., T, P, 2)`` by thresholding; an onset implies a sustain.

    Reference: Cuthbert & Ariza (2010), music21; Hadjeres et al. (2017), DeepBach, §2 (sixteenth-note grid).
    """
    p = x.shape[-1] // 2
    roll = (x > threshold).reshape(*x.shape[:-1], 2, p).transpose(-1, -2).clone()
    roll[..., 1] |= roll[..., 0]
    return roll


def sample_windows(
    rolls: list[np.ndarray], n: int, length: int, *, generator: torch.Generator, transpose: int = 5
) -> Tensor:
    """``n`` random windows of ``length`` frames, starting on a beat, each transposed by a random
    ``-transpose … +transpose`` semitones (augmentation).

    Returns:
        Shape ``(n, length, 2P)`` features in ``{-1, +1}``.

    Reference: Cuthbert & Ariza (2010), music21; Hadjeres et al. (2017), DeepBach, §2 (sixteenth-note grid).
    """
    check_int(n, "n")
    check_int(length, "length")
    pieces = [r for r in rolls if r.shape[0] >= length]
    if not pieces:
        raise ValueError(f"no roll has at least length={length} frames")
    out = []
    idx = torch.randint(len(pieces), (n,), generator=generator).tolist()
    shifts = torch.randint(-transpose, transpose + 1, (n,), generator=generator).tolist()
    for i, s in zip(idx, shifts):
        r = pieces[i]
        beats = (r.shape[0] - length) // FRAMES_PER_BEAT + 1
        start = int(torch.randint(beats, (1,), generator=generator)) * FRAMES_PER_BEAT
        out.append(roll_to_features(transpose_roll(r[start: start + length], int(s))))
    return torch.stack(out)
