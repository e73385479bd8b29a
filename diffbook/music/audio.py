"""Sound: piano roll → note list → audio (a numpy additive synthesiser, or FluidSynth where installed)
and MIDI files (``pretty_midi``).

Reference: Raffel & Ellis (2014), *pretty_midi*, §2; additive synthesis as in Smith (2011), *Spectral
Audio Signal Processing* (sum of decaying harmonics).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from diffbook._checks import check_real
from diffbook.music.data import FRAMES_PER_BEAT, PITCH_LOW, features_to_roll

__all__ = ["Note", "roll_to_notes", "seconds_per_frame", "synthesize", "to_pretty_midi", "write_midi", "render"]


@dataclass(frozen=True)
class Note:
    """One note: MIDI ``pitch``, ``start`` and ``stop`` in frames (``stop`` exclusive), ``velocity``.

    Reference: Raffel & Ellis (2014), *pretty_midi*, §2.
    """

    pitch: int
    start: int
    stop: int
    velocity: int = 80


def seconds_per_frame(bpm: float) -> float:
    """Duration of one sixteenth-note frame at ``bpm`` quarter notes per minute (``bpm > 0``).

    Reference: Raffel & Ellis (2014), *pretty_midi*, §2.
    """
    if check_real(bpm, "bpm") <= 0:
        raise ValueError(f"bpm (the tempo) must be > 0, got {bpm}")
    return 60.0 / bpm / FRAMES_PER_BEAT


def roll_to_notes(x: Tensor | np.ndarray, threshold: float = 0.0) -> list[Note]:
    """Notes of one roll: features ``(T, C)`` or a boolean roll ``(T, P, 2)``. A note starts at an onset or
    where a sustain begins, and ends where the sustain stops or the next onset of the same pitch starts.

    Reference: Raffel & Ellis (2014), *pretty_midi*, §2.
    """
    x = torch.as_tensor(x)
    roll = x if x.dtype == torch.bool else features_to_roll(x, threshold)
    if roll.ndim != 3:
        raise ValueError(f"x must be one roll (T, C) or (T, P, 2), got shape {tuple(roll.shape)}")
    on, sus = roll[..., 0].numpy(), roll[..., 1].numpy()
    notes = []
    for p in range(roll.shape[1]):
        start = None
        for t in range(roll.shape[0] + 1):
            sounding = t < roll.shape[0] and sus[t, p]
            new = t < roll.shape[0] and (on[t, p] or (sounding and start is None))
            if start is not None and (not sounding or new):
                notes.append(Note(PITCH_LOW + p, start, t))
                start = None
            if new or (sounding and start is None):
                start = t
    return sorted(notes, key=lambda n: (n.start, n.pitch))


def synthesize(notes: list[Note], *, bpm: float = 120.0, sample_rate: int = 22050, frames: int | None = None) -> np.ndarray:
    """Additive synthesis: each note is three harmonics with an exponential decay and 5 ms fades.

    Returns:
        Mono float32 audio in ``[-1, 1]``, shape ``(samples,)``.

    Reference: Raffel & Ellis (2014), *pretty_midi*, §2.
    """
    spf = seconds_per_frame(bpm)
    end = max([n.stop for n in notes], default=0) if frames is None else frames
    audio = np.zeros(int(end * spf * sample_rate) + 1, dtype=np.float64)
    fade = int(0.005 * sample_rate)
    for n in notes:
        a, b = int(n.start * spf * sample_rate), int(n.stop * spf * sample_rate)
        if b <= a:
            continue
        t = np.arange(b - a) / sample_rate
        f = 440.0 * 2 ** ((n.pitch - 69) / 12)
        wave = sum(amp * np.sin(2 * np.pi * f * k * t) for k, amp in ((1, 1.0), (2, 0.4), (3, 0.2)))
        env = np.exp(-2.5 * t)
        ramp = np.minimum(1.0, np.minimum(np.arange(b - a), np.arange(b - a)[::-1]) / max(fade, 1))
        audio[a:b] += wave * env * ramp * n.velocity / 127
    peak = np.abs(audio).max()
    return (audio / max(peak, 1e-9) * 0.8).astype(np.float32)


def to_pretty_midi(notes: list[Note], *, bpm: float = 120.0, program: int = 19) -> "pretty_midi.PrettyMIDI":  # noqa: F821
    """A ``pretty_midi.PrettyMIDI`` with one instrument (General MIDI ``program``, 19 = church organ).

    Reference: Raffel & Ellis (2014), *pretty_midi*, §2.
    """
    import pretty_midi

    spf = seconds_per_frame(bpm)
    pm = pretty_midi.PrettyMIDI(initial_tempo=float(bpm))
    inst = pretty_midi.Instrument(program=program, name="diffbook")
    inst.notes = [pretty_midi.Note(velocity=n.velocity, pitch=n.pitch, start=n.start * spf, end=n.stop * spf) for n in notes]
    pm.instruments.append(inst)
    return pm


def write_midi(notes: list[Note], path: str | Path, *, bpm: float = 120.0) -> Path:
    """Write ``notes`` to a standard MIDI file at ``path``; returns the path.

    Reference: Raffel & Ellis (2014), *pretty_midi*, §2.
    """
    path = Path(path)
    to_pretty_midi(notes, bpm=bpm).write(str(path))
    return path


def render(notes: list[Note], *, bpm: float = 120.0, sample_rate: int = 22050, soundfont: str | None = None) -> np.ndarray:
    """Audio of ``notes``: FluidSynth with ``soundfont`` when ``pyfluidsynth`` and a soundfont are available,
    else :func:`synthesize`. Returns mono float32 ``(samples,)``.

    Reference: Raffel & Ellis (2014), *pretty_midi*, §2.
    """
    if soundfont is not None:
        try:
            import fluidsynth  # noqa: F401  (pyfluidsynth)
            return to_pretty_midi(notes, bpm=bpm).fluidsynth(fs=sample_rate, sf2_path=soundfont).astype(np.float32)
        except ImportError:
            pass
    return synthesize(notes, bpm=bpm, sample_rate=sample_rate)
