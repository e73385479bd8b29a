"""The checker API: :class:`Verdict`, the :func:`checker` decorator, and helpers that turn a wrong or
malformed answer into a clear message instead of a traceback.

A checking function raises :class:`Fail` with a diagnosis, or returns a success message. The decorator
catches everything else too (a student's function may raise anything), so a checker never crashes a
notebook. If the environment variable ``DIFFBOOK_EXERCISE_LOG`` names a file, every verdict is appended to
it as one JSON line: the test suite reads it to prove that solutions pass and stubs fail.
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import Tensor

__all__ = ["Verdict", "Fail", "checker", "call", "as_tensor", "as_expr", "close", "diagnose", "LOG_ENV"]

LOG_ENV = "DIFFBOOK_EXERCISE_LOG"


@dataclass(frozen=True)
class Verdict:
    """The outcome of one check: which exercise, whether it passed, and why."""

    exercise: str
    passed: bool
    message: str

    def __bool__(self) -> bool:
        return self.passed

    def __str__(self) -> str:
        mark = "✅ correct" if self.passed else "❌ not yet"
        return f"Exercise {self.exercise}: {mark}. {self.message}"

    __repr__ = __str__

    def _repr_html_(self) -> str:
        colour = "#1a7f37" if self.passed else "#b35900"
        text = str(self).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
        return f'<p style="color:{colour};font-weight:600">{text}</p>'


class Fail(Exception):
    """Raised inside a checking function to report a specific, friendly diagnosis."""


class _Missing(Fail):
    pass


def _is_missing(answer: Any) -> bool:
    return answer is None or answer is Ellipsis


def _log(verdict: Verdict) -> None:
    path = os.environ.get(LOG_ENV)
    if path:
        with open(path, "a", encoding="utf-8") as f:
            f.write(json.dumps(asdict(verdict)) + "\n")


def checker(exercise: str, *names: str) -> Callable[[Callable[..., str]], Callable[..., Verdict]]:
    """Decorate a checking function ``check(*answers) -> success message`` into a safe checker.

    Args:
        exercise: the exercise label shown to the student, e.g. ``"1.2"``.
        names: how each answer is called in the stub (for "you have not filled in `euler_step` yet").
    """

    def wrap(check: Callable[..., str]) -> Callable[..., Verdict]:
        @functools.wraps(check)
        def run(*answers: Any) -> Verdict:
            try:
                if len(answers) != len(names):
                    raise Fail(f"this checker takes {len(names)} answer(s): {', '.join(names)}")
                for name, answer in zip(names, answers):
                    if _is_missing(answer):
                        raise _Missing(f"`{name}` has no answer yet: fill it in above, then run this cell again.")
                verdict = Verdict(exercise, True, check(*answers))
            except NotImplementedError:
                verdict = Verdict(exercise, False, "not implemented yet: replace `raise NotImplementedError` with your code.")
            except Fail as err:
                verdict = Verdict(exercise, False, str(err))
            except Exception as err:  # a student's answer may fail in any way; report, never crash
                verdict = Verdict(exercise, False, f"checking your answer raised {type(err).__name__}: {err}")
            _log(verdict)
            return verdict

        return run

    return wrap


def call(fn: Any, name: str, *args: Any) -> Any:
    """Call the student's function ``fn``; turn a wrong type or an exception into a :class:`Fail`."""
    if not callable(fn):
        raise Fail(f"`{name}` should be a function, but it is a {type(fn).__name__}")
    try:
        return fn(*args)
    except NotImplementedError:
        raise
    except Exception as err:
        raise Fail(f"calling `{name}` raised {type(err).__name__}: {err}") from err


def as_tensor(value: Any, name: str, shape: tuple[int, ...] | None = None) -> Tensor:
    """Accept a tensor (or a number or array) from the student and check its shape; float64 out."""
    if _is_missing(value):
        raise Fail(f"`{name}` gave {value!r}; is a `return` missing, or the answer not filled in?")
    try:
        t = torch.as_tensor(value).detach().to(torch.float64)
    except Exception as err:
        raise Fail(f"`{name}` gave a {type(value).__name__}, which is not a tensor or a number") from err
    if shape is not None and tuple(t.shape) != shape:
        raise Fail(f"`{name}` gave shape {tuple(t.shape)}, expected {shape}")
    if not torch.isfinite(t).all():
        raise Fail(f"`{name}` gave NaN or infinite values")
    return t


def close(a: Tensor, b: Tensor) -> bool:
    """Equal up to float32 round-off: loose enough for a student computing in float32, and far tighter
    than the difference any wrong formula makes on the checkers' test problems."""
    return a.shape == b.shape and bool(torch.allclose(a, b.to(a), rtol=1e-5, atol=1e-6))


def diagnose(answer: Tensor, expected: Tensor, mistakes: list[tuple[Tensor, str]], otherwise: str) -> None:
    """Return if ``answer`` matches ``expected``; otherwise raise :class:`Fail` with the message of the first
    known mistake it matches, or with ``otherwise`` (which may use ``{err}``, the largest deviation)."""
    if close(answer, expected):
        return
    for wrong, message in mistakes:
        if close(answer, wrong):
            raise Fail(message)
    raise Fail(otherwise.format(err=f"{float((answer - expected).abs().max()):.3g}"))


def as_expr(value: Any, name: str, symbols: dict[str, Any]) -> Any:
    """Accept a SymPy expression (or a string SymPy can parse) written in the given symbols.

    Symbols are matched by *name*, so a student's ``sp.symbols("t", positive=True)`` counts as ``t``.

    Args:
        symbols: the allowed symbols, by name, e.g. ``{"t": t, "x0": x0}``.
    """
    import sympy as sp

    if _is_missing(value):
        raise _Missing(f"`{name}` has no answer yet: fill it in above, then run this cell again.")
    if isinstance(value, str):
        try:
            value = sp.sympify(value, locals=dict(symbols))
        except (sp.SympifyError, SyntaxError, TypeError) as err:
            raise Fail(f"`{name}` is a string SymPy cannot parse: {value!r}") from err
    if isinstance(value, (int, float)):
        value = sp.sympify(value)
    if not isinstance(value, sp.Basic):
        raise Fail(f"`{name}` should be a SymPy expression, but it is a {type(value).__name__}")
    extra = sorted(s.name for s in value.free_symbols if s.name not in symbols)
    if extra:
        allowed = ", ".join(symbols)
        raise Fail(f"`{name}` uses symbol(s) {', '.join(extra)}; write it using only {allowed}")
    return value.subs({s: symbols[s.name] for s in value.free_symbols})
