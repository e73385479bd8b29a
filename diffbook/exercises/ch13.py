"""Checkers for the exercises of Chapter 13 (live music diffusion: streaming with a KV cache).

Every checker computes its reference first, then calls the student's function on copies (:func:`call`), and
recognises the common mistakes by their values.
"""

from __future__ import annotations

from typing import Any

import torch

from diffbook.exercises.answers import as_number, as_tensor, diagnose
from diffbook.exercises.core import Fail, call, checker
from diffbook.music.model import encdec_mask, window_chunk_mask
from diffbook.music.stream import tokens_per_bar

__all__ = [
    "check_tokens_per_bar",
    "check_block_causal_mask",
    "check_encdec_mask",
    "check_half_bar_budget",
    "check_sequential_passes",
    "check_pass_crossover",
]

SETTINGS = [(2, 64, 16), (8, 64, 16), (6, 32, 8), (3, 48, 4)]  # (steps, context, block)
METHODS = ("naive", "encdec", "blockcausal")


def _table(fn: Any, name: str) -> torch.Tensor:
    rows = []
    for steps, context, block in SETTINGS:
        rows.append([as_number(call(fn, name, m, steps, context, block), name) for m in METHODS])
    return torch.tensor(rows, dtype=torch.float64)


@checker("13.1", "tokens")
def check_tokens_per_bar(fn: Any) -> str:
    """Exercise 13.1: ``tokens(method, steps, context, block)``, token-forwards per bar (time token counted)."""
    truth = torch.tensor([[tokens_per_bar(m, steps=s, context=c, block=b) for m in METHODS] for s, c, b in SETTINGS],
                         dtype=torch.float64)
    no_time = torch.tensor([[s * (c + b), c + s * b, b + s * b] for s, c, b in SETTINGS], dtype=torch.float64)
    no_fused = torch.tensor([[s * (c + b + 1), c + s * (b + 1), s * (b + 1)] for s, c, b in SETTINGS], dtype=torch.float64)
    no_prefill = torch.tensor([[s * (c + b + 1), s * (b + 1), b + s * (b + 1)] for s, c, b in SETTINGS], dtype=torch.float64)
    out = _table(fn, "tokens")
    diagnose(out, truth, [
        (no_time, "you left out the time token: it is one more token in every pass."),
        (no_fused, "block-causal also writes the finished bar's B tokens, once, in the fused first step."),
        (no_prefill, "enc-dec runs the C context tokens once per bar (the prefill) before its N target passes."),
    ], "your counts are off by up to {err} token-forwards; naive N(C+B+1), enc-dec C+N(B+1), block-causal B+N(B+1).")
    return "naive N(C+B+1), enc-dec C+N(B+1), block-causal B+N(B+1): at N = 8, C = 64, B = 16 that is 648, 200, 152."


@checker("13.2", "block_causal_mask")
def check_block_causal_mask(fn: Any) -> str:
    """Exercise 13.2: ``block_causal_mask(n_chunks, block, window)``, bool ``(L, L)`` with ``L = n_chunks · block``."""
    cases = [(5, 4, 2), (6, 3, 4), (3, 2, 0)]
    truths, plain, off, causal, outs = [], [], [], [], []
    for n, b, w in cases:
        ids = torch.arange(n).repeat_interleave(b)
        truths.append(window_chunk_mask(ids, ids, w).double())
        plain.append(window_chunk_mask(ids, ids, n).double())
        off.append(window_chunk_mask(ids, ids, w + 1).double())
        pos = torch.arange(n * b)
        causal.append(((pos[:, None] >= pos[None, :]) & window_chunk_mask(ids, ids, w)).double())
        out = call(fn, "block_causal_mask", n, b, w)
        if isinstance(out, torch.Tensor) and out.dtype == torch.bool:
            out = out.double()
        outs.append(as_tensor(out, "block_causal_mask", (n * b, n * b)))
    cat = torch.cat([o.flatten() for o in outs])
    diagnose(cat, torch.cat([t.flatten() for t in truths]), [
        (torch.cat([t.flatten() for t in plain]), "your mask has no window: chunk a may see only chunks a − W … a."),
        (torch.cat([t.flatten() for t in off]), "your window is one chunk too wide: a − W ≤ c ≤ a sees W earlier chunks."),
        (torch.cat([t.flatten() for t in causal]), "inside a chunk every token sees every other (the block is denoised "
                                                   "jointly): the mask is causal between chunks, not between tokens."),
    ], "your mask differs from a − W ≤ c ≤ a in up to {err} (1 = one wrong entry somewhere).")
    return "query in chunk a sees key in chunk c iff a − W ≤ c ≤ a: bidirectional inside a bar, a sliding window across bars."


@checker("13.3", "encdec_mask")
def check_encdec_mask(fn: Any) -> str:
    """Exercise 13.3: ``encdec_mask(n_context, n_rest)``, bool ``(L, L)``: context sees only context."""
    cases = [(8, 5), (4, 3), (12, 1)]
    outs, truths, full, swapped = [], [], [], []
    for c, r in cases:
        t = encdec_mask(c, r).double()
        truths.append(t.flatten())
        full.append(torch.ones_like(t).flatten())
        swapped.append(t.T.flatten())
        out = call(fn, "encdec_mask", c, r)
        if isinstance(out, torch.Tensor) and out.dtype == torch.bool:
            out = out.double()
        outs.append(as_tensor(out, "encdec_mask", (c + r, c + r)).flatten())
    diagnose(torch.cat(outs), torch.cat(truths), [
        (torch.cat(full), "with everything visible the context sees the noisy bar and t: its keys change every step."),
        (torch.cat(swapped), "rows are queries, columns keys: the context *queries* must not see the target *keys*."),
    ], "your mask is off in some entry (up to {err}); context rows: only context columns; other rows: all.")
    return "context queries see only context keys, so one prefill per bar serves all N target passes."


@checker("13.4", "budget_ms")
def check_half_bar_budget(answer: Any) -> str:
    """Exercise 13.4: the p95 latency budget, half a 4/4 bar, at 90 bpm, in milliseconds."""
    value = as_number(answer, "budget_ms")
    truth = 0.5 * 4 * 60.0 / 90.0 * 1000.0
    if abs(value - truth) <= 1.0:
        return f"a bar at 90 bpm lasts {2 * truth:.0f} ms, so the budget is {truth:.1f} ms per bar."
    if abs(value - 2 * truth) <= 1.0:
        raise Fail(f"{value:g} ms is a whole bar; the budget is half of it.")
    if abs(value - truth / 1000) <= 1e-3:
        raise Fail(f"{value:g} is in seconds; give milliseconds.")
    if abs(value - truth / 4) <= 1.0:
        raise Fail(f"{value:g} ms is half a beat; a 4/4 bar has four beats of 60/bpm seconds.")
    raise Fail(f"you gave {value:g} ms; a beat lasts 60/bpm seconds and a 4/4 bar four beats.")


@checker("13.5", "passes")
def check_sequential_passes(fn: Any) -> str:
    """Exercise 13.5: ``passes(method, steps, block)``, sequential network passes per bar."""
    methods = ("naive", "encdec", "blockcausal", "ar")
    cases = [(8, 16), (4, 16), (6, 8)]

    def ref(m: str, s: int, b: int) -> int:
        return {"naive": s, "encdec": s + 1, "blockcausal": s, "ar": b}[m]

    truth = torch.tensor([[ref(m, s, b) for m in methods] for s, b in cases], dtype=torch.float64)
    out = torch.tensor([[as_number(call(fn, "passes", m, s, b), "passes") for m in methods] for s, b in cases],
                       dtype=torch.float64)
    no_prefill = truth.clone()
    no_prefill[:, 1] -= 1
    fused_extra = truth.clone()
    fused_extra[:, 2] += 1
    diagnose(out, truth, [
        (no_prefill, "the enc-dec prefill is a pass of its own, before the N target passes."),
        (fused_extra, "block-causal writes the finished bar in the *first* denoising pass (fused): no extra pass."),
    ], "your pass counts are off by up to {err}.")
    return "naive N, enc-dec N + 1, block-causal N, frame AR B = 16: diffusion wins while N < B."


@checker("13.6", "largest_steps")
def check_pass_crossover(answer: Any) -> str:
    """Exercise 13.6: the largest N for which block-causal diffusion needs fewer sequential passes per bar
    than the frame-AR model (B = 16)."""
    value = as_number(answer, "largest_steps")
    if value != round(value):
        raise Fail(f"`largest_steps` should be a whole number of steps, got {value}")
    n = int(round(value))
    if n == 15:
        return "N = 15: block-causal makes N passes per bar, frame AR 16; at N = 16 they tie."
    if n == 16:
        raise Fail("at N = 16 they tie (16 passes each); the question asks for strictly fewer.")
    if n == 14:
        raise Fail("at N = 14 diffusion needs fewer passes, but so it does at one step more; count again "
                   "(the fused first step adds no pass).")
    raise Fail(f"you gave {n}; block-causal makes N passes per bar and frame AR makes B = 16.")
