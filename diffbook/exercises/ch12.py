"""Checkers for the exercises of Chapter 12 (SDPM: diffusion for survival analysis with censoring).

Every checker computes its reference first, then calls the student's function on copies (:func:`call`), and
recognises the common mistakes by their values.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor

from diffbook.exercises.answers import as_tensor, as_tuple, diagnose
from diffbook.exercises.core import Fail, call, checker
from diffbook.survival import kaplan_meier

__all__ = [
    "check_kaplan_meier",
    "check_rmst",
    "check_harrell_c",
    "check_cox_weibull_survival",
    "check_decode",
    "check_leaky_columns",
]

f64 = torch.float64


def _km_setting() -> tuple[Tensor, Tensor, Tensor]:
    """Times with ties (events tied with censorings) and a grid through and between them."""
    gen = torch.Generator().manual_seed(120)
    times = torch.randint(1, 15, (40,), generator=gen).to(f64)
    events = torch.rand(40, generator=gen) < 0.6
    grid = torch.linspace(0.0, 16.0, 65, dtype=f64)  # steps of 0.25: hits every integer time exactly
    return times, events, grid


@checker("12.1", "km_curve")
def check_kaplan_meier(fn: Any) -> str:
    """Exercise 12.1: ``km_curve(times, events, grid)``, the Kaplan–Meier estimate at ``grid``, shape ``(m,)``."""
    times, events, grid = _km_setting()
    truth = kaplan_meier(times, events, grid)
    all_events = kaplan_meier(times, torch.ones_like(events), grid)
    dropped = kaplan_meier(times[events], events[events], grid)
    left = torch.cat([truth.new_ones(1), kaplan_meier(times, events, grid - 1e-9)[1:]])
    # censorings counted before the events at tied times: fewer at risk at every tie
    uniq = torch.unique(times)
    s, curve = 1.0, []
    for u in uniq.tolist():
        d = int(((times == u) & events).sum())
        n = int((times > u).sum()) + d  # the censored at u have already left
        s *= 1.0 - d / n if n > 0 else 1.0
        curve.append(s)
    idx = torch.searchsorted(uniq, grid, right=True)
    ties_wrong = torch.cat([torch.ones(1, dtype=f64), torch.tensor(curve, dtype=f64)])[idx]
    out = as_tensor(call(fn, "km_curve", times, events, grid), "km_curve", tuple(grid.shape))
    mistakes = [
        (all_events, "you counted every time as an event: a censored subject leaves the risk set without making Ŝ drop."),
        (dropped, "you dropped the censored subjects: they must stay in the risk set n_j until their own time."),
        (ties_wrong, "correct except at ties: a subject censored at t_j was still at risk at t_j (events come first)."),
        (left, "your curve is left-continuous: Ŝ(t) must already include the drop of an event at exactly t."),
    ]
    diagnose(out, truth, mistakes, "your curve is off by up to {err}; check n_j (at risk: time ≥ t_j) and d_j.")
    return "Ŝ(t) = Π_{t_j ≤ t} (1 - d_j/n_j), with ties and censoring handled, on a grid through every time."


def _rmst_setting() -> tuple[Tensor, Tensor]:
    gen = torch.Generator().manual_seed(121)
    grid = torch.cumsum(torch.rand(30, generator=gen, dtype=f64) + 0.1, 0)
    surv = torch.cumprod(1 - 0.1 * torch.rand(4, 30, generator=gen, dtype=f64), 1)
    return grid, surv


@checker("12.2", "rmst")
def check_rmst(fn: Any) -> str:
    """Exercise 12.2: ``rmst(grid, surv)``, the area under the step curves ``surv`` ``(n, m)`` up to ``grid[-1]``."""
    grid, surv = _rmst_setting()
    widths = grid.diff()
    truth = grid[0] + (surv[:, :-1] * widths).sum(1)
    out = as_tensor(call(fn, "rmst", grid, surv), "rmst", (surv.shape[0],))
    mistakes = [
        ((surv[:, :-1] * widths).sum(1), "you left out [0, t₁): Ŝ = 1 there, which adds t₁."),
        (grid[0] + (surv[:, 1:] * widths).sum(1), "you used the value at the right end of each step; a right-continuous "
                                                   "step curve keeps Ŝ(t_j) on [t_j, t_{j+1})."),
        (grid[0] + (0.5 * (surv[:, 1:] + surv[:, :-1]) * widths).sum(1), "that is the trapezoidal rule; Ŝ is a step "
                                                                         "function, so the area is exact with Ŝ(t_j)."),
        (-(grid[0] + (surv[:, :-1] * widths).sum(1)), "that is the risk score −RMST; the exercise asks for RMST itself."),
    ]
    diagnose(out, truth, mistakes, "your RMST is off by up to {err}.")
    return "RMST = t₁ + Σ_j Ŝ(t_j)(t_{j+1} − t_j): the exact area under a right-continuous step curve."


def _c_setting() -> tuple[Tensor, Tensor, Tensor]:
    gen = torch.Generator().manual_seed(122)
    time = torch.rand(60, generator=gen, dtype=f64) * 40  # distinct times (ties in time have several conventions)
    event = torch.rand(60, generator=gen) < 0.6
    risk = (torch.randint(0, 8, (60,), generator=gen) - 0.1 * time).round()  # ties in risk
    return time, event, risk


def _c_index(time: Tensor, event: Tensor, risk: Tensor, *, tie: float = 0.5, censored_first: bool = False) -> float:
    t, e, r = time[:, None], event[:, None], risk[:, None]
    earlier = (t < t.T) & e  # i had the event before j's time
    if censored_first:
        earlier = t < t.T
    conc = (r > r.T) & earlier
    ties = (r == r.T) & earlier
    return float((conc.sum() + tie * ties.sum()) / earlier.sum())


@checker("12.3", "harrell_c")
def check_harrell_c(fn: Any) -> str:
    """Exercise 12.3: ``harrell_c(time, event, risk)``, Harrell's concordance index, a number."""
    from sksurv.metrics import concordance_index_censored

    time, event, risk = _c_setting()
    truth = float(concordance_index_censored(event.numpy(), time.numpy(), risk.numpy())[0])
    value = as_tensor(call(fn, "harrell_c", time, event, risk), "harrell_c")
    if value.numel() != 1:
        raise Fail(f"`harrell_c` should return one number, got shape {tuple(value.shape)}")
    got = float(value.reshape(()))
    if abs(got - truth) < 1e-6:
        return f"C = {truth:.4f}, as scikit-survival's concordance_index_censored, ties in risk counted ½."
    for wrong, message in [
        (1 - truth, "that is 1 − C: a *higher* risk must go with an *earlier* event."),
        (_c_index(time, event, risk, tie=0.0), "ties in the risk score count ½, not 0."),
        (_c_index(time, event, risk, tie=1.0), "ties in the risk score count ½, not 1."),
        (_c_index(time, event, risk, censored_first=True), "a pair is comparable only if the earlier time is an "
                                                           "*event*: after a censoring we do not know who failed first."),
    ]:
        if abs(got - wrong) < 1e-6:
            raise Fail(message)
    raise Fail(f"you gave {got:.4f}; expected {truth:.4f}. Comparable pairs: t_i < t_j with δ_i = 1.")


@checker("12.4", "cox_weibull_survival")
def check_cox_weibull_survival(fn: Any) -> str:
    """Exercise 12.4: ``cox_weibull_survival(t, risk, lam, nu)``, ``S(t|x)`` with ``risk = βᵀx``, shape ``(n, m)``."""
    gen = torch.Generator().manual_seed(124)
    t = torch.linspace(0.0, 3.0, 13, dtype=f64)
    risk = torch.randn(5, generator=gen, dtype=f64)
    lam, nu = 0.3, 1.7
    truth = torch.exp(-lam * risk.exp()[:, None] * t[None, :] ** nu)
    out = as_tensor(call(fn, "cox_weibull_survival", t, risk, lam, nu), "cox_weibull_survival", tuple(truth.shape))
    mistakes = [
        (torch.exp(-lam * risk.exp()[:, None] * t[None, :] ** (1 / nu)), "t^(1/ν) belongs to the *sampling* formula "
                                                                         "T = (−log U/(λe^{βᵀx}))^{1/ν}; S has t^ν."),
        (torch.exp(-lam * risk[:, None] * t[None, :] ** nu), "the hazard is multiplied by e^{βᵀx}, not by βᵀx."),
        (1 - torch.exp(-lam * risk.exp()[:, None] * t[None, :] ** nu), "that is the distribution function F = 1 − S."),
        (lam * risk.exp()[:, None] * t[None, :] ** nu, "that is the cumulative hazard H; S = exp(−H)."),
    ]
    diagnose(out, truth, mistakes, "your S(t|x) is off by up to {err}.")
    return "S(t|x) = exp(−λ e^{βᵀx} t^ν): H = ∫ λν s^{ν−1} e^{βᵀx} ds, and S = exp(−H)."


@checker("12.5", "decode")
def check_decode(fn: Any) -> str:
    """Exercise 12.5: ``decode(y, mu, sigma)``: SDPM's target ``(n, 2)`` back to ``(times (n,), events (n,))``."""
    gen = torch.Generator().manual_seed(125)
    y = torch.randn(50, 2, generator=gen, dtype=f64) * torch.tensor([1.5, 1.0], dtype=f64)
    mu, sigma = 5.5, 1.3
    t_true = torch.exp(sigma * y[:, 0] + mu)
    e_true = y[:, 1] > 0
    t_out, e_out = as_tuple(call(fn, "decode", y, mu, sigma), "decode", 2, "(times, events)")
    if isinstance(t_out, Tensor) and t_out.dtype == torch.bool:
        raise Fail("the first value should be the times and the second the event indicators; they are swapped.")
    t_ans = as_tensor(t_out, "decode (times)", (50,))
    try:
        e_ans = torch.as_tensor(e_out)
    except Exception:
        raise Fail("the second value should be a tensor of event indicators (bool or 0/1)") from None
    if e_ans.shape != (50,):
        raise Fail(f"the event indicators have shape {tuple(e_ans.shape)}, expected (50,)")
    diagnose(t_ans, t_true, [
        (sigma * torch.exp(y[:, 0]) + mu, "undo the steps in reverse order: τ = (log t − μ)/σ gives t = exp(στ + μ)."),
        (torch.exp(y[:, 0]) * sigma + mu, "undo the steps in reverse order: τ = (log t − μ)/σ gives t = exp(στ + μ)."),
        (sigma * y[:, 0] + mu, "that is log t; the time is its exponential."),
        (torch.exp((y[:, 0] - mu) / sigma), "that applies the encoding again; decoding inverts it: t = exp(στ + μ)."),
    ], "your times are off by up to {err}.")
    if e_ans.dtype.is_complex or (e_ans.is_floating_point() and not bool(((e_ans == 0) | (e_ans == 1)).all())):
        raise Fail("the event indicators must be 0/1 (or True/False): threshold z at 0.")
    if torch.equal(e_ans.to(torch.bool), ~e_true):
        raise Fail("events are swapped: z ≈ +1 means an event, z ≈ −1 a censoring, so δ̂ = 1[z > 0].")
    if not torch.equal(e_ans.to(torch.bool), e_true):
        raise Fail(f"{int((e_ans.to(torch.bool) != e_true).sum())} of 50 event indicators are wrong: δ̂ = 1[z > 0].")
    return "t̂ = exp(σ τ̂ + μ) (always positive) and δ̂ = 1[ẑ > 0]."


def _leak_setting() -> tuple[np.ndarray, np.ndarray, list[str], set[str]]:
    rng = np.random.default_rng(126)
    n = 400
    event = rng.uniform(size=n) < 0.4
    age = rng.normal(60, 10, n) + 8 * event  # a real, honest predictor (correlation about 0.4)
    marker = rng.normal(size=n) + 1.2 * event  # correlation about 0.5: strong, not a leak
    after = np.where(rng.uniform(size=n) < 0.02, event, ~event).astype(float)  # "alive at the end", 2 % noise
    certificate = np.where(rng.uniform(size=n) < 0.01, ~event, event).astype(float)  # a death certificate on file
    X = np.column_stack([age, marker, after, rng.normal(size=n), certificate])
    names = ["age", "marker", "alive_at_end", "noise", "death_certificate"]
    return X, event, names, {"alive_at_end", "death_certificate"}


@checker("12.6", "leaky_columns")
def check_leaky_columns(fn: Any) -> str:
    """Exercise 12.6: ``leaky_columns(X, event, names, threshold=0.9)``: the names of the columns whose absolute
    correlation with the event indicator is above ``threshold``."""
    X, event, names, truth = _leak_setting()
    out = call(fn, "leaky_columns", X, event, list(names))
    if out is None:
        raise Fail("`leaky_columns` returned None; is a `return` missing?")
    if isinstance(out, str) or not hasattr(out, "__iter__"):
        raise Fail(f"`leaky_columns` should return a list of column names, got a {type(out).__name__}")
    got = {str(v) for v in out}
    if got == truth:
        return "found both: a column equal to 1 − δ up to noise, and one equal to δ (both recorded after the outcome)."
    if got == {"death_certificate"}:
        raise Fail("you kept only positive correlations: a column equal to 1 − δ leaks as much as one equal to δ.")
    if got >= truth | {"marker"}:
        raise Fail("too many: a strong honest predictor (correlation about 0.5) is not a leak; use |corr| > threshold.")
    if not got:
        raise Fail("you found none; compute |corr(column, δ)| for every column and keep those above the threshold.")
    extra, missing = sorted(got - truth), sorted(truth - got)
    raise Fail(f"not quite: {'extra ' + str(extra) if extra else ''}{'; ' if extra and missing else ''}"
               f"{'missing ' + str(missing) if missing else ''}.")

