"""Live mode: stream new bars to a MIDI output port or the sound card, generating bar ``k + 1`` while
bar ``k`` plays (one-bar look-ahead).

    python -m diffbook.music.live --port "My Synth" --bars 32 --bpm 100
    python -m diffbook.music.live --list-ports
    python -m diffbook.music.live --audio            # the sound card, via sounddevice

The controls enter only the *target* bar (never the cached context): ``temperature`` scales the initial
noise of each new bar, ``density`` shifts the decoding threshold, ``bpm`` sets the playback budget. A
change acts at the next bar and the cache stays valid. On exit (end, Ctrl-C) every sounding note is
switched off, the port is closed and the latency statistics are printed.

The loop runs on a :class:`Clock`: :class:`RealClock` sleeps; :class:`SimulatedClock` counts the real
compute time but skips the sleeps, so a test can drive a whole session in a fraction of a second and
check every deadline. Sinks: :class:`MemorySink` (tests), :class:`MidiPortSink` (``mido`` +
``python-rtmidi``), :class:`AudioSink` (``sounddevice``).

Reference: Novack et al. (2026), §5 (live "generative delay" with block-wise look-ahead).
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import torch
from torch import Tensor

from diffbook._checks import check_int, check_real
from diffbook.music.audio import Note, roll_to_notes, seconds_per_frame, synthesize
from diffbook.music.data import FRAMES_PER_BAR

__all__ = ["Clock", "RealClock", "SimulatedClock", "MemorySink", "MidiPortSink", "AudioSink", "LiveStats",
           "Controls", "run_live", "midi_output_names", "open_midi_port", "main"]


class Clock:
    """``now()`` in seconds and ``sleep_until(t)``.

    Reference: Novack et al. (2026), *Live Music Diffusion Models*, §5 (live streaming with look-ahead).
    """

    def now(self) -> float:  # pragma: no cover - interface
        raise NotImplementedError

    def sleep_until(self, t: float) -> None:  # pragma: no cover - interface
        raise NotImplementedError


class RealClock(Clock):
    """Wall-clock time (``time.perf_counter``) and real sleeps.

    Reference: Novack et al. (2026), *Live Music Diffusion Models*, §5 (live streaming with look-ahead).
    """

    def now(self) -> float:
        return time.perf_counter()

    def sleep_until(self, t: float) -> None:
        delay = t - self.now()
        if delay > 0:
            time.sleep(delay)


class SimulatedClock(Clock):
    """Real compute time plus simulated sleeps: ``now() = elapsed wall time + total time slept``.

    Reference: Novack et al. (2026), *Live Music Diffusion Models*, §5 (live streaming with look-ahead).
    """

    def __init__(self) -> None:
        self._origin = time.perf_counter()
        self._slept = 0.0

    def now(self) -> float:
        return time.perf_counter() - self._origin + self._slept

    def sleep_until(self, t: float) -> None:
        self._slept += max(0.0, t - self.now())


@dataclass
class MemorySink:
    """Records ``(arrival_time, bar_index, deadline, notes)`` for every bar; ``closed`` after :meth:`close`.

    Reference: Novack et al. (2026), *Live Music Diffusion Models*, §5 (live streaming with look-ahead).
    """

    bars: list[tuple[float, int, float, list[Note]]] = field(default_factory=list)
    closed: bool = False

    def play_bar(self, index: int, notes: list[Note], start: float, seconds_per_frame: float, clock: Clock) -> None:
        self.bars.append((clock.now(), index, start, notes))

    def close(self) -> None:
        self.closed = True


def midi_output_names() -> list[str]:
    """The MIDI output ports ``mido`` sees; ``[]`` when the MIDI system itself is missing (no ALSA sequencer).

    Reference: Novack et al. (2026), *Live Music Diffusion Models*, §5 (live streaming with look-ahead).
    """
    import mido

    try:
        return list(mido.get_output_names())
    except Exception:  # rtmidi raises its own error when /dev/snd/seq does not exist
        return []


def open_midi_port(name: str | None = None) -> "mido.ports.BaseOutput":  # noqa: F821
    """Open a MIDI output port with ``mido`` (backend ``python-rtmidi``); ``name=None`` takes the first.

    Raises:
        ImportError: naming the missing package (``mido`` or ``python-rtmidi``).
        ValueError: when no port exists, or ``name`` is not one of them (the ports are listed).

    Reference: Novack et al. (2026), *Live Music Diffusion Models*, §5 (live streaming with look-ahead).
    """
    try:
        import mido
    except ImportError as err:
        raise ImportError("the live MIDI mode needs the package 'mido' (pip install mido python-rtmidi)") from err
    try:
        import rtmidi  # noqa: F401
    except ImportError as err:
        raise ImportError("the live MIDI mode needs the package 'python-rtmidi' (pip install python-rtmidi)") from err
    names = midi_output_names()
    if not names:
        raise ValueError("no MIDI output port exists on this machine; start a software synth (e.g. "
                         "FluidSynth or a DAW) or use --audio for the sound card")
    if name is None:
        name = names[0]
    if name not in names:
        raise ValueError(f"port={name!r} is not a MIDI output port; available ports: {names}")
    return mido.open_output(name)


class MidiPortSink:
    """Sends each bar's notes to a ``mido`` output port from a background thread, at their times.

    Reference: Novack et al. (2026), *Live Music Diffusion Models*, §5 (live streaming with look-ahead).
    """

    def __init__(self, port: "mido.ports.BaseOutput") -> None:  # noqa: F821
        self.port, self.sounding, self._threads = port, set(), []

    def play_bar(self, index: int, notes: list[Note], start: float, seconds_per_frame: float, clock: Clock) -> None:
        import mido

        events = sorted([(start + n.start * seconds_per_frame, 1, n.pitch, n.velocity) for n in notes] +
                        [(start + n.stop * seconds_per_frame - 1e-3, 0, n.pitch, 0) for n in notes])

        def send() -> None:
            for when, on, pitch, vel in events:
                clock.sleep_until(when)
                kind = "note_on" if on else "note_off"
                self.port.send(mido.Message(kind, note=pitch, velocity=vel))
                (self.sounding.add if on else self.sounding.discard)(pitch)

        thread = threading.Thread(target=send, daemon=True)
        thread.start()
        self._threads.append(thread)

    def close(self) -> None:
        import mido

        for th in self._threads:
            th.join(timeout=5)
        for pitch in list(self.sounding):
            self.port.send(mido.Message("note_off", note=pitch, velocity=0))
        self.port.close()


class AudioSink:
    """Plays each bar through the sound card with ``sounddevice`` (not gapless: one-bar look-ahead).

    Reference: Novack et al. (2026), *Live Music Diffusion Models*, §5 (live streaming with look-ahead).
    """

    def __init__(self, sample_rate: int = 22050) -> None:
        try:
            import sounddevice
        except (ImportError, OSError) as err:
            raise ImportError("the live audio mode needs the package 'sounddevice' and a sound card "
                              "(pip install sounddevice)") from err
        self.sd, self.sample_rate = sounddevice, sample_rate

    def play_bar(self, index: int, notes: list[Note], start: float, seconds_per_frame: float, clock: Clock) -> None:
        bpm = 60.0 / (seconds_per_frame * 4)
        clock.sleep_until(start)
        self.sd.play(synthesize(notes, bpm=bpm, sample_rate=self.sample_rate, frames=FRAMES_PER_BAR), self.sample_rate)

    def close(self) -> None:
        self.sd.stop()


@dataclass
class Controls:
    """Live controls: ``bpm`` (playback), ``temperature`` (noise scale of new bars), ``density``
    (decoding threshold shift: positive = fewer notes). Read once per bar.

    Reference: Novack et al. (2026), *Live Music Diffusion Models*, §5 (live streaming with look-ahead).
    """

    bpm: float = 120.0
    temperature: float = 1.0
    density: float = 0.0


@dataclass
class LiveStats:
    """Per-bar compute seconds and slack (deadline minus delivery time; negative = late).

    Reference: Novack et al. (2026), *Live Music Diffusion Models*, §5 (live streaming with look-ahead).
    """

    compute: list[float]
    slack: list[float]
    bar_seconds: float

    @property
    def late(self) -> int:
        """How many bars missed their deadline."""
        return sum(s < 0 for s in self.slack)

    def summary(self) -> str:
        """One line: bars, p50/p95 compute, real-time factor, late bars."""
        c = np.array(self.compute)
        p50, p95 = np.percentile(c, 50), np.percentile(c, 95)
        return (f"{len(c)} bars · compute p50 {1e3 * p50:.1f} ms, p95 {1e3 * p95:.1f} ms per bar · "
                f"real-time factor {self.bar_seconds / max(p50, 1e-9):.1f}x · late bars {self.late}")


def run_live(streamer: Any, sink: Any, *, bars: int, controls: Controls | None = None, clock: Clock | None = None,
             on_bar: Callable[[int, Tensor], None] | None = None, lead: float = 0.1) -> LiveStats:
    """Stream ``bars`` bars from ``streamer`` (any object whose ``next_bar()`` returns a bar of shape ``(1, B, C)``) to ``sink`` (any
    object with ``play_bar`` and ``close``, e.g. :class:`MemorySink`) with one-bar look-ahead.

    Bar 0 is generated first and playback starts ``lead`` seconds later, at ``t0``; bar ``k`` must reach the
    sink by its start ``t0 + k · bar`` (the sink plays it then), and bar ``k + 1`` is generated while bar ``k``
    plays.
    Returns the :class:`LiveStats`; the sink is always closed (also on Ctrl-C or an error).

    Reference: Novack et al. (2026), §5 (live streaming with look-ahead).
    """
    check_int(bars, "bars")
    if check_real(lead, "lead") < 0:
        raise ValueError(f"lead must be >= 0 seconds, got {lead}")
    controls = controls or Controls()
    clock = clock or RealClock()
    compute, slack = [], []
    try:
        t0 = None
        for k in range(bars):
            spf = seconds_per_frame(controls.bpm)
            if hasattr(streamer, "temperature"):
                streamer.temperature = float(controls.temperature)
            tic = clock.now()
            x = streamer.next_bar()
            notes = roll_to_notes(x[0].detach().cpu(), threshold=controls.density)
            ready = clock.now()
            compute.append(ready - tic)
            if t0 is None:  # playback starts `lead` seconds after the first bar is ready
                t0 = ready + lead
            start = t0 + k * FRAMES_PER_BAR * spf
            slack.append(start - ready)
            sink.play_bar(k, notes, start, spf, clock)  # the sink plays it at `start`
            if on_bar is not None:
                on_bar(k, x)
            clock.sleep_until(start)  # bar k starts: generate bar k + 1 while it plays
    finally:
        sink.close()
    return LiveStats(compute, slack, FRAMES_PER_BAR * seconds_per_frame(controls.bpm))


def _build_model(seed: int, steps: int):
    """A quickly trained block-causal model on a handful of chorales (the live demo's default)."""
    from diffbook.music.data import load_chorales, split_names
    from diffbook.music.model import BlockDiffusionTransformer
    from diffbook.music.training import fit

    data = load_chorales(24)
    train_names, _ = split_names(list(data))
    torch.manual_seed(seed)
    model = BlockDiffusionTransformer(attention="blockcausal", dim=64, depth=2)
    return fit(model, [data[n] for n in train_names], steps=steps, seed=seed).ema


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; returns the exit status.

    Reference: Novack et al. (2026), *Live Music Diffusion Models*, §5 (live streaming with look-ahead).
    """
    parser = argparse.ArgumentParser(prog="python -m diffbook.music.live", description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", help="MIDI output port name (default: the first)")
    parser.add_argument("--list-ports", action="store_true", help="list MIDI output ports and exit")
    parser.add_argument("--audio", action="store_true", help="play through the sound card (sounddevice)")
    parser.add_argument("--bars", type=int, default=32)
    parser.add_argument("--bpm", type=float, default=120.0)
    parser.add_argument("--temperature", type=float, default=1.0)
    parser.add_argument("--density", type=float, default=0.0)
    parser.add_argument("--steps", type=int, default=6, help="denoising steps per bar")
    parser.add_argument("--train-steps", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    try:
        seconds_per_frame(args.bpm)
        if args.temperature <= 0:
            raise ValueError(f"--temperature must be > 0, got {args.temperature}")
        if args.list_ports:
            try:
                print("\n".join(midi_output_names()) or "(no MIDI output ports)")
            except ImportError:
                print("listing ports needs the package 'mido' (pip install mido python-rtmidi)")
                return 2
            return 0
        sink = AudioSink() if args.audio else MidiPortSink(open_midi_port(args.port))
    except (ImportError, ValueError) as err:
        print(f"diffbook.music.live: {err}", file=sys.stderr)
        return 2
    from diffbook.music.stream import DiffusionStreamer

    print("training a small block-causal model on a few chorales ...", file=sys.stderr)
    model = _build_model(args.seed, args.train_steps)
    streamer = DiffusionStreamer(model, "blockcausal", steps=args.steps, seed=args.seed, sampler="pingpong")
    controls = Controls(args.bpm, args.temperature, args.density)
    try:
        stats = run_live(streamer, sink, bars=args.bars, controls=controls)
    except KeyboardInterrupt:
        print("stopped", file=sys.stderr)
        return 0
    print(stats.summary())
    return 0


if __name__ == "__main__":
    sys.exit(main())
