"""Test-wide settings: the `tiny` preset and one thread per process, set before any kernel starts."""

import os
from pathlib import Path

import pytest

os.environ.setdefault("DIFFBOOK_SCALE", "tiny")
os.environ.setdefault("OMP_NUM_THREADS", "1")

ROOT = Path(__file__).resolve().parent.parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def root() -> Path:
    return ROOT


def sympy_at_random_points(expr, ranges, *, n=8, seed=0, functions=None, scale=None):
    """``|expr / scale|`` at ``n`` random points, for SymPy checks that ``simplify`` alone cannot settle.

    ``residual != 0`` also passes for a true identity that ``simplify`` fails to reduce; a residual that is
    ~1e-25 at random points is an identity, one that is O(1) there is not. ``ranges`` maps every free symbol
    to ``(low, high)``; ``functions`` maps the names of undefined functions (``sp.Function("alpha")``) to
    concrete ones, ``{"alpha": lambda t: 1/(1 + t**2)}``, substituted before derivatives are evaluated.
    """
    import random

    import sympy as sp
    from sympy.core.function import AppliedUndef

    def concrete(e):
        e = sp.sympify(e)
        if functions:
            reps = {f: functions[f.func.__name__](*f.args) for f in e.atoms(AppliedUndef) if f.func.__name__ in functions}
            e = e.xreplace(reps).doit()
        left = e.atoms(AppliedUndef)
        if left:
            raise ValueError(f"undefined functions {sorted(map(str, left))} need a concrete form in functions=")
        return e

    ratio = concrete(expr) / (concrete(scale) if scale is not None else 1)
    missing = ratio.free_symbols - set(ranges)
    if missing:
        raise ValueError(f"no range for {sorted(map(str, missing))}")
    import mpmath

    syms = sorted(ratio.free_symbols, key=str)
    fn = sp.lambdify(syms, ratio, modules="mpmath")  # 30-digit arithmetic: round-off far below any margin
    rng = random.Random(seed)
    out = []
    with mpmath.workdps(30):
        for _ in range(n):
            out.append(float(abs(fn(*[mpmath.mpf(rng.uniform(*ranges[sym])) for sym in syms]))))
    return out


@pytest.fixture(scope="session")
def at_random_points():
    """:func:`sympy_at_random_points`, for tests."""
    return sympy_at_random_points


def check_malformed_verdict(verdict, bad) -> None:
    """A checker's verdict on a malformed answer is a specific, bounded "wrong" verdict.

    Replaces ``"Traceback" not in verdict.message``, which could never fail (checkers never put a traceback
    in a message). What can go wrong instead: the checker itself crashes on the answer and falls back to its
    generic "checking your answer raised ..." (an internal error dressed as a verdict), calls a missing answer
    something else, or produces an empty or runaway message.
    """
    from diffbook.exercises import Verdict

    assert isinstance(verdict, Verdict) and not verdict.passed, verdict
    message = verdict.message
    assert str(verdict).startswith(f"Exercise {verdict.exercise}: "), str(verdict)
    assert "checking your answer raised" not in message, f"the checker crashed on {bad!r}: {message}"
    assert 20 <= len(message) <= 1000, message
    if bad is None or bad is Ellipsis:
        assert "has no answer yet" in message, message


@pytest.fixture(scope="session")
def malformed_verdict():
    """:func:`check_malformed_verdict`, for tests."""
    return check_malformed_verdict
