"""The checker API: :class:`Verdict`, the :func:`checker` decorator, and helpers that turn a wrong or
malformed answer into a clear message instead of a traceback.

A checking function raises :class:`Fail` with a diagnosis, or returns a success message. The decorator
catches everything else too (a student's function may raise anything), so a checker never crashes a
notebook. If the environment variable ``DIFFBOOK_EXERCISE_LOG`` names a file, every verdict is appended to
it as one JSON line: the test suite reads it to prove that solutions pass and stubs fail.

Every call of a student's function goes through :func:`call` (or a function wrapped by :func:`guard`):

* it receives **copies** of the checker's tensors, so an answer that changes its inputs in place can neither
  corrupt the reference the checker compares with nor make a wrong answer look right, and the in-place
  idiom ``x += h * u; return x`` is judged by the value it returns (a note says that it changed its input);
* it runs under a **time limit** (``SIGALRM`` in the main thread, a watchdog thread elsewhere), so a function
  that never returns gets a verdict after :data:`TIME_LIMIT_S` seconds (``DIFFBOOK_EXERCISE_TIME_LIMIT``);
* what it prints is **captured and truncated**: at most :data:`OUTPUT_LIMIT` characters reach the notebook.

Reading an answer (a number, a tensor, a pair, a SymPy expression) is :mod:`diffbook.exercises.answers`.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import io
import json
import math
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import Tensor

__all__ = [
    "Verdict",
    "Fail",
    "checker",
    "call",
    "guard",
    "LOG_ENV",
    "TIME_LIMIT_ENV",
    "TIME_LIMIT_S",
    "OUTPUT_LIMIT",
    "MESSAGE_LIMIT",
]

LOG_ENV = "DIFFBOOK_EXERCISE_LOG"
TIME_LIMIT_ENV = "DIFFBOOK_EXERCISE_TIME_LIMIT"
TIME_LIMIT_S = 20.0
"""Seconds one call of a student's function may take (``DIFFBOOK_EXERCISE_TIME_LIMIT`` overrides it). A check
also stops once the student's code has used :data:`TOTAL_TIME_FACTOR` times this in all its calls together."""
TOTAL_TIME_FACTOR = 3.0
OUTPUT_LIMIT = 2000
"""Characters of a student's printed output that reach the notebook, per check."""
MESSAGE_LIMIT = 1500
"""Characters of a verdict's message (a huge exception text or answer is cut)."""


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


class _TimeUp(BaseException):
    """Raised into a student's code when its time is up (a BaseException, so ``except Exception`` in the
    student's code does not swallow it)."""


def _is_missing(answer: Any) -> bool:
    return answer is None or answer is Ellipsis


def _shorten(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return f"{text[:limit]} … [{len(text) - limit:,} more characters cut]"


def _describe(err: BaseException) -> str:
    try:
        text = str(err)
    except Exception:  # an exception whose __str__ fails
        text = "<unprintable>"
    return _shorten(f"{type(err).__name__}: {text}" if text else type(err).__name__, 300)


def _log(verdict: Verdict) -> None:
    path = os.environ.get(LOG_ENV)
    if path:
        with open(path, "a", encoding="utf-8") as f:
            f.write(json.dumps(asdict(verdict)) + "\n")


def _time_limit() -> float:
    raw = os.environ.get(TIME_LIMIT_ENV)
    if raw:
        try:
            value = float(raw)
        except ValueError:
            value = -1.0
        if value > 0 and math.isfinite(value):
            return value
    return TIME_LIMIT_S


# ------------------------------------------------------------------------------------------------------
# One check's bookkeeping: time used by the student's code, what it printed, and notes for the verdict


@dataclass
class _Session:
    budget: float
    spent: float = 0.0
    printed: int = 0
    shown: list[str] = field(default_factory=list)
    shown_chars: int = 0
    notes: list[str] = field(default_factory=list)

    def note(self, text: str) -> None:
        if text not in self.notes:
            self.notes.append(text)

    def keep_output(self, text: str, total: int) -> None:
        self.printed += total
        room = OUTPUT_LIMIT - self.shown_chars
        if room > 0 and text:
            self.shown.append(text[:room])
            self.shown_chars += min(len(text), room)


_SESSIONS: list[_Session] = []


def _session() -> _Session:
    return _SESSIONS[-1] if _SESSIONS else _Session(budget=TOTAL_TIME_FACTOR * _time_limit())


class _BoundedText(io.TextIOBase):
    """A write-only text stream that keeps the first ``keep`` characters and counts the rest."""

    def __init__(self, keep: int) -> None:
        super().__init__()
        self.keep, self.total, self.parts, self.kept = keep, 0, [], 0

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return False

    def write(self, s: str) -> int:
        s = str(s)
        self.total += len(s)
        room = self.keep - self.kept
        if room > 0:
            self.parts.append(s[:room])
            self.kept += min(len(s), room)
        return len(s)

    def text(self) -> str:
        return "".join(self.parts)


@contextlib.contextmanager
def _alarm(seconds: float) -> Iterator[None]:
    """Raise :class:`_TimeUp` in the main thread after ``seconds``; restores any timer that was running."""

    armed = [True]

    def ring(signum: int, frame: Any) -> None:
        if armed[0]:  # a ring that arrives while the timer is being taken down is ignored
            raise _TimeUp

    previous = signal.signal(signal.SIGALRM, ring)
    start = time.monotonic()
    outer_delay, outer_interval = signal.setitimer(signal.ITIMER_REAL, seconds)
    if outer_delay and outer_delay < seconds:  # an outer timer (e.g. a test's) would ring first: keep it
        signal.setitimer(signal.ITIMER_REAL, outer_delay)
    try:
        yield
    finally:
        armed[0] = False
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        if outer_delay:
            left = outer_delay - (time.monotonic() - start)
            signal.setitimer(signal.ITIMER_REAL, max(left, 1e-3), outer_interval)


def _can_alarm() -> bool:
    return hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()


def _run_limited(fn: Callable[..., Any], args: tuple, kwargs: dict, limit: float) -> tuple[str, Any, float]:
    """Run ``fn(*args, **kwargs)`` for at most ``limit`` seconds. Returns ``(status, value, seconds)`` with
    status ``"ok"`` (value: the result), ``"raised"`` (value: the exception) or ``"timeout"``."""
    start = time.monotonic()
    if _can_alarm():
        try:
            with _alarm(limit):
                value = fn(*args, **kwargs)
        except _TimeUp:
            return "timeout", None, time.monotonic() - start
        except KeyboardInterrupt:  # the reader pressed stop: let the notebook stop
            raise
        except BaseException as err:  # noqa: BLE001 - SystemExit from student code is an answer too
            return "raised", err, time.monotonic() - start
        return "ok", value, time.monotonic() - start
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = fn(*args, **kwargs)
        except BaseException as err:  # noqa: BLE001
            box["error"] = err

    worker = threading.Thread(target=target, daemon=True, name="diffbook-exercise-call")
    worker.start()
    worker.join(limit)
    if worker.is_alive():  # it cannot be killed; it is a daemon and its result will be ignored
        return "timeout", None, time.monotonic() - start
    if "error" in box:
        return "raised", box["error"], time.monotonic() - start
    return "ok", box.get("value"), time.monotonic() - start


# ------------------------------------------------------------------------------------------------------
# Copies of the inputs


def _copy(value: Any) -> Any:
    if isinstance(value, Tensor):
        out = value.detach().clone()
        return out.requires_grad_(True) if value.requires_grad else out
    if isinstance(value, tuple):
        return tuple(_copy(v) for v in value)
    if isinstance(value, list):
        return [_copy(v) for v in value]
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    try:
        import numpy as np

        if isinstance(value, np.ndarray):
            return value.copy()
    except ImportError:  # pragma: no cover - numpy ships with torch
        pass
    return value


def _changed(original: Any, copy: Any) -> bool:
    if isinstance(original, Tensor):
        if not isinstance(copy, Tensor) or copy.shape != original.shape or copy.dtype != original.dtype:
            return True
        a, b = original.detach(), copy.detach()
        return not bool(((a == b) | (a.isnan() & b.isnan())).all()) if a.is_floating_point() else not torch.equal(a, b)
    if isinstance(original, (tuple, list)):
        return len(original) != len(copy) or any(_changed(a, b) for a, b in zip(original, copy))
    if isinstance(original, dict):
        return original.keys() != copy.keys() or any(_changed(original[k], copy[k]) for k in original)
    try:
        import numpy as np

        if isinstance(original, np.ndarray):
            return not np.array_equal(original, copy, equal_nan=original.dtype.kind in "fc")
    except ImportError:  # pragma: no cover
        pass
    return False


def _parameter_names(fn: Callable[..., Any], n: int) -> list[str]:
    try:
        params = [p.name for p in inspect.signature(fn).parameters.values()
                  if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    except (TypeError, ValueError):
        params = []
    return [params[i] if i < len(params) else f"argument {i + 1}" for i in range(n)]


def call(fn: Any, name: str, *args: Any, **kwargs: Any) -> Any:
    """Call the student's function ``fn`` safely; turn a wrong type, an exception, a time-out into a :class:`Fail`.

    ``fn`` gets copies of the tensors in ``args``/``kwargs`` (the checker's own stay untouched), runs for at most
    :data:`TIME_LIMIT_S` seconds, and what it prints is captured (at most :data:`OUTPUT_LIMIT` characters of it
    are shown once the check ends).
    """
    if not callable(fn):
        raise Fail(f"`{name}` should be a function, but it is a {type(fn).__name__}")
    session = _session()
    left = session.budget - session.spent
    if left <= 0:
        raise Fail(f"`{name}` used up the {session.budget:.3g} s this check allows in all its calls together; "
                   "is it far slower than it needs to be (a Python loop that should be a tensor operation)?")
    limit = min(_time_limit(), left)
    copies_args, copies_kwargs = _copy(args), _copy(kwargs)
    out, err = _BoundedText(OUTPUT_LIMIT), _BoundedText(OUTPUT_LIMIT)
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status, value, seconds = _run_limited(fn, copies_args, copies_kwargs, limit)
    session.spent += seconds
    session.keep_output(out.text() + err.text(), out.total + err.total)
    names = _parameter_names(fn, len(args))
    changed = [names[i] for i, (a, c) in enumerate(zip(args, copies_args)) if _changed(a, c)]
    changed += [k for k in kwargs if _changed(kwargs[k], copies_kwargs[k])]
    if changed:
        which = ", ".join(f"`{c}`" for c in changed)
        session.note(f"Note: `{name}` changed its input {which} in place. The checker passes copies, so only the "
                     "returned value counts, but a caller that uses the input again would see it changed.")
    if status == "timeout" and limit < _time_limit():
        raise Fail(f"`{name}` used up the {session.budget:.3g} s this check allows in all its calls together, "
                   "so it was stopped: is it far slower than it needs to be (a Python loop that should be a tensor "
                   "operation, or a loop that never ends)?")
    if status == "timeout":
        raise Fail(f"`{name}` did not return within {limit:.3g} s, so it was stopped: is there a loop that never "
                   "ends (a `while` whose condition never changes), or far more work than the exercise needs?")
    if status == "raised":
        if isinstance(value, NotImplementedError):
            raise value
        raise Fail(f"calling `{name}` raised {_describe(value)}") from value
    return value


def guard(fn: Any, name: str) -> Callable[..., Any]:
    """``fn`` wrapped so that every call goes through :func:`call` (for handing a student's function to library
    code, such as a convergence study, that calls it many times)."""
    if not callable(fn):
        raise Fail(f"`{name}` should be a function, but it is a {type(fn).__name__}")
    return functools.wraps(fn)(lambda *args, **kwargs: call(fn, name, *args, **kwargs))


def checker(exercise: str, *names: str) -> Callable[[Callable[..., str]], Callable[..., Verdict]]:
    """Decorate a checking function ``check(*answers) -> success message`` into a safe checker.

    Args:
        exercise: the exercise label shown to the student, e.g. ``"1.2"``.
        names: how each answer is called in the stub (for "you have not filled in `euler_step` yet").
    """

    def wrap(check: Callable[..., str]) -> Callable[..., Verdict]:
        @functools.wraps(check)
        def run(*answers: Any) -> Verdict:
            session = _Session(budget=TOTAL_TIME_FACTOR * _time_limit())
            _SESSIONS.append(session)
            try:
                if len(answers) != len(names):
                    raise Fail(f"this checker takes {len(names)} answer(s): {', '.join(names)}")
                for name, answer in zip(names, answers):
                    if _is_missing(answer):
                        raise _Missing(f"`{name}` has no answer yet: fill it in above, then run this cell again.")
                passed, message = True, check(*answers)
            except NotImplementedError:
                passed, message = False, "not implemented yet: replace `raise NotImplementedError` with your code."
            except Fail as err:
                passed, message = False, str(err)
            except Exception as err:  # a student's answer may fail in any way; report, never crash
                passed, message = False, f"checking your answer raised {_describe(err)}"
            finally:
                _SESSIONS.remove(session)
            if session.printed:
                shown = "".join(session.shown)
                sys.stdout.write(shown if shown.endswith("\n") else shown + "\n")
                if session.printed > session.shown_chars:
                    sys.stdout.write(f"… [your code printed {session.printed:,} characters; "
                                     f"the first {session.shown_chars:,} are shown]\n")
                    session.note(f"Your code printed {session.printed:,} characters; only the first "
                                 f"{session.shown_chars:,} are shown above.")
            text = _shorten(str(message), MESSAGE_LIMIT)
            if session.notes:
                text = f"{text} {' '.join(session.notes)}"
            verdict = Verdict(exercise, passed, text)
            _log(verdict)
            return verdict

        return run

    return wrap
