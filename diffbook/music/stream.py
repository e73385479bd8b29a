"""Streaming generation, one bar at a time: naive outpainting, enc-dec prefill, block-causal fused step,
and the autoregressive baseline, all with the same interface ``next_bar() -> (n, B, C)``.

Each streamer draws its noise from its own generator in a fixed order (one ``(n, B, C)`` draw per bar,
plus one per ping-pong re-noising), so the cached and uncached paths of the same model see the same noise
and must give the same bars. The token-forwards of each bar are read from the model's
:class:`~diffbook.music.model.TokenCounter`; the steady-state formulas are in :func:`tokens_per_bar`.

Reference: Novack et al. (2026), *Live Music Diffusion Models*, §3 (block-wise outpainting, caching,
ping-pong sampler); Liu et al. (2023), *Flow Straight and Fast*, Eq. 1 (the rectified-flow ODE).
"""

from __future__ import annotations

import time

import torch
from torch import Tensor

from diffbook._checks import check_int, check_real
from diffbook.music.model import BlockDiffusionTransformer, FrameAR

__all__ = ["METHODS", "sampling_times", "tokens_per_bar", "DiffusionStreamer", "ARStreamer", "make_streamer"]

METHODS = ("naive", "encdec", "blockcausal", "blockcausal_uncached", "ar", "ar_uncached")


def sampling_times(steps: int, *, lambda_min: float = -6.0, lambda_max: float = 2.0) -> Tensor:
    """The ping-pong time grid ``t_i = sigmoid(-λ_i)``, ``λ`` linear from ``lambda_min`` to ``lambda_max``,
    with ``t_0 = 1`` and ``t_N = 0``.

    Returns:
        Shape ``(steps + 1,)``, decreasing from 1 to 0.

    Reference: Novack et al. (2026), §4 (ping-pong sampler, logSNR from −6 to 2).
    """
    check_int(steps, "steps")
    lam = torch.linspace(lambda_min, lambda_max, steps + 1, dtype=torch.float64)
    t = torch.sigmoid(-lam)
    t[0], t[-1] = 1.0, 0.0
    return t.float()


def tokens_per_bar(method: str, *, steps: int, context: int = 64, block: int = 16) -> int:
    """Steady-state token-forwards per generated bar (the time token counts as one token per pass).

    - naive outpainting: ``N (C + B + 1)``;  enc-dec: ``C + N (B + 1)``;  block-causal: ``B + N (B + 1)``;
    - frame AR: ``B`` (one token per frame, ``B`` sequential passes).

    Reference: Novack et al. (2026), §3 (cost of outpainting vs caching; derived in the book).
    """
    check_int(steps, "steps")
    check_int(context, "context")
    check_int(block, "block")
    formulas = {"naive": steps * (context + block + 1), "encdec": context + steps * (block + 1),
                "blockcausal": block + steps * (block + 1), "ar": block}
    formulas["blockcausal_uncached"] = formulas["naive"]
    if method not in formulas:
        raise ValueError(f"method must be one of {sorted(formulas)}, got {method!r}")
    return formulas[method]


def _prompt_bars(prompt: Tensor | None, n: int, bars: int, block: int, channels: int, device: torch.device,
                 dtype: torch.dtype = torch.float32) -> tuple[list[Tensor], list[Tensor]]:
    frames, keep = [], []
    if prompt is not None:
        if not isinstance(prompt, Tensor) or prompt.ndim != 3 or prompt.shape[0] != n or prompt.shape[2] != channels:
            raise ValueError(f"prompt must have shape (n={n}, frames, {channels}), got {getattr(prompt, 'shape', prompt)!r}")
        if prompt.shape[1] % block:
            raise ValueError(f"prompt length {prompt.shape[1]} is not a whole number of {block}-frame bars")
        if prompt.shape[1] > bars * block:
            raise ValueError(f"prompt of {prompt.shape[1]} frames is longer than the model's context window "
                             f"of {bars * block} frames ({bars} bars)")
        frames = list(prompt.to(device, dtype).split(block, dim=1))
        keep = [torch.ones(n, block, device=device, dtype=dtype) for _ in frames]
    pad = bars - len(frames)
    empty = torch.zeros(n, block, channels, device=device, dtype=dtype)
    return [empty] * pad + frames, [torch.zeros(n, block, device=device, dtype=dtype)] * pad + keep


class DiffusionStreamer:
    """Generate bar after bar with a :class:`BlockDiffusionTransformer`.

    Args:
        model: the trained model (its ``attention`` decides which cached method applies).
        method: ``"naive"`` (the full window every step, any model), ``"encdec"`` (prefill once per bar),
            ``"blockcausal"`` (fused first step), ``"blockcausal_uncached"`` (the whole history every step:
            the exact reference for ``"blockcausal"``).
        steps: denoising steps per bar ``N``.
        sampler: ``"euler"`` (deterministic ODE) or ``"pingpong"`` (predict ``x_0``, re-noise).
        prompt: clean bars to continue, ``(n, k·B, C)`` with ``k <= W``; missing bars enter as dropped.
        n: parallel streams; seed: seeds the streamer's noise; temperature: scales the initial noise.
        density: decoding threshold shift is the caller's; it never enters the model.

    Reference: Novack et al. (2026), §3–4 (streaming generation, ping-pong sampling).
    """

    def __init__(self, model: BlockDiffusionTransformer, method: str = "blockcausal", *, steps: int = 8,
                 sampler: str = "euler", prompt: Tensor | None = None, n: int = 1, seed: int = 0,
                 temperature: float = 1.0) -> None:
        if not isinstance(model, BlockDiffusionTransformer):
            raise TypeError(f"model must be a BlockDiffusionTransformer, got {type(model).__name__}")
        if method not in METHODS[:4]:
            raise ValueError(f"method must be one of {METHODS[:4]}, got {method!r}")
        if method == "encdec" and model.attention != "encdec":
            raise ValueError("method='encdec' needs a model trained with attention='encdec'")
        if method.startswith("blockcausal") and model.attention != "blockcausal":
            raise ValueError(f"method={method!r} needs a model trained with attention='blockcausal'")
        if sampler not in ("euler", "pingpong"):
            raise ValueError(f"sampler must be 'euler' or 'pingpong', got {sampler!r}")
        check_int(n, "n")
        if check_real(temperature, "temperature") <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        self.model, self.method, self.sampler, self.n = model, method, sampler, n
        self.times = sampling_times(steps)
        self.temperature = float(temperature)
        device = next(model.parameters()).device
        self.device, self.dtype = device, next(model.parameters()).dtype
        self.generator = torch.Generator(device=device).manual_seed(seed)
        self.frames, self.keep = _prompt_bars(prompt, n, model.context_bars, model.block, model.channels, device,
                                              self.dtype)
        self.pending = len(self.frames)  # bars not yet written to the block-causal cache
        self.caches = None
        self.first_chunk = 0
        self.bar_seconds: list[float] = []
        self.bar_tokens: list[int] = []

    def _noise(self) -> Tensor:
        m = self.model
        return torch.randn(self.n, m.block, m.channels, generator=self.generator, device=self.device).to(self.dtype)

    def _velocity(self, x: Tensor, t: Tensor, step: int) -> Tensor:
        m, b = self.model, self.model.block
        if self.method == "naive":
            ctx = torch.cat(self.frames[-m.context_bars:], 1)
            keep = torch.cat(self.keep[-m.context_bars:], 1)
            return m(x, t, ctx, keep)
        if self.method == "blockcausal_uncached":
            return m(x, t, torch.cat(self.frames, 1), torch.cat(self.keep, 1))
        if self.method == "encdec":
            if step == 0:
                ctx = torch.cat(self.frames[-m.context_bars:], 1)
                self._ctx_cache = m.prefill(ctx, torch.cat(self.keep[-m.context_bars:], 1))
            return m.target_step(x, t, self._ctx_cache, m.context)
        # blockcausal
        n_cached = 0 if self.caches is None else self.caches[0].length // b
        start = (self.first_chunk + n_cached) * b
        if step == 0:
            pend = torch.cat(self.frames[len(self.frames) - self.pending:], 1)
            pkeep = torch.cat(self.keep[len(self.keep) - self.pending:], 1)
            v, self.caches = m.fused_step(pend, pkeep, x, t, self.caches, self.first_chunk)
            total = n_cached + self.pending
            self.first_chunk += max(0, total - m.context_bars)
            self.pending = 0
            return v
        return m.target_step(x, t, self.caches, start)

    @torch.no_grad()
    def next_bar(self) -> Tensor:
        """Generate the next bar: features ``(n, B, C)``, clean (``t = 0``), appended to the history."""
        m = self.model
        tic, tokens0 = time.perf_counter(), m.counter.tokens
        x = self._noise() * self.temperature
        times = self.times.to(self.device, self.dtype)
        for i in range(len(times) - 1):
            t_cur, t_next = times[i], times[i + 1]
            v = self._velocity(x, t_cur.expand(self.n), i)
            if self.sampler == "euler" or i == len(times) - 2:
                x = x + (t_next - t_cur) * v
            else:
                x0 = x - t_cur * v
                x = (1 - t_next) * x0 + t_next * self._noise() * self.temperature
        self.frames.append(x)
        self.keep.append(torch.ones(self.n, m.block, device=self.device, dtype=self.dtype))
        if self.method in ("naive", "encdec"):
            self.frames, self.keep = self.frames[-m.context_bars:], self.keep[-m.context_bars:]
        self.pending += 1
        self.bar_seconds.append(time.perf_counter() - tic)
        self.bar_tokens.append(m.counter.tokens - tokens0)
        return x


class ARStreamer:
    """Generate bar after bar with the frame-autoregressive :class:`FrameAR` (``cached=True`` uses the KV
    cache; ``False`` re-runs the whole history for every frame, the exact reference).

    Each frame draws ``u ~ U(0, 1)^{C}`` and sets bit ``c`` iff ``u_c < sigmoid(logit_c / temperature)``.
    ``prompt``: clean frames ``(n, k·B, C)`` to continue (at most the window minus one bar).

    Reference: Pope et al. (2023), §2 (KV-cached decoding).
    """

    def __init__(self, model: FrameAR, *, cached: bool = True, prompt: Tensor | None = None, n: int = 1,
                 seed: int = 0, temperature: float = 1.0, block: int = 16) -> None:
        if not isinstance(model, FrameAR):
            raise TypeError(f"model must be a FrameAR, got {type(model).__name__}")
        check_int(n, "n")
        if check_real(temperature, "temperature") <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        self.model, self.cached, self.n, self.block = model, bool(cached), n, block
        self.temperature = float(temperature)
        self.device, self.dtype = next(model.parameters()).device, next(model.parameters()).dtype
        self.generator = torch.Generator(device=self.device).manual_seed(seed)
        if prompt is None:
            self.history = torch.zeros(n, 0, model.channels, device=self.device, dtype=self.dtype)
        else:
            bars = model.window // block - 1
            frames, _ = _prompt_bars(prompt, n, bars, block, model.channels, self.device, self.dtype)
            self.history = torch.cat(frames[bars - prompt.shape[1] // block:], 1)
        self.caches = None
        self.bar_seconds: list[float] = []
        self.bar_tokens: list[int] = []
        if self.cached:  # prime the cache on the prompt (teacher forcing)
            with torch.no_grad():
                for i in range(self.history.shape[1]):
                    self._logits(i)

    def _logits(self, position: int) -> Tensor:
        m = self.model
        if self.cached:
            token = m.start.expand(self.n, 1, -1) if position == 0 else m.inp(self.history[:, position - 1: position])
            logits, self.caches = m.step(token, self.caches, position)
            return logits
        frames = torch.cat([self.history, torch.zeros(self.n, 1, m.channels, device=self.device, dtype=self.dtype)], 1)
        return m(frames)[:, -1]

    @torch.no_grad()
    def next_bar(self) -> Tensor:
        """Generate the next ``block`` frames: features ``(n, B, C)`` in ``{-1, +1}``, appended to the history."""
        tic, tokens0 = time.perf_counter(), self.model.counter.tokens
        for _ in range(self.block):
            logits = self._logits(self.history.shape[1])
            u = torch.rand(logits.shape, generator=self.generator, device=self.device).to(self.dtype)
            frame = (u < torch.sigmoid(logits / self.temperature)).to(self.dtype) * 2 - 1
            self.history = torch.cat([self.history, frame[:, None]], 1)
        self.bar_seconds.append(time.perf_counter() - tic)
        self.bar_tokens.append(self.model.counter.tokens - tokens0)
        return self.history[:, -self.block:]


def make_streamer(model: BlockDiffusionTransformer | FrameAR, method: str, **kwargs) -> DiffusionStreamer | ARStreamer:
    """A streamer for ``method`` in :data:`METHODS` (``"ar"``/``"ar_uncached"`` need a :class:`FrameAR`).

    Reference: Novack et al. (2026), *Live Music Diffusion Models*, §3.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if method.startswith("ar"):
        kwargs.pop("steps", None)
        kwargs.pop("sampler", None)
        return ARStreamer(model, cached=method == "ar", **kwargs)  # type: ignore[arg-type]
    return DiffusionStreamer(model, method, **kwargs)  # type: ignore[arg-type]
