"""Reading a student's answer: numbers, tensors, pairs and SymPy expressions, each refused with a clear
:class:`~diffbook.exercises.core.Fail` when it is missing, malformed, boolean or complex; and comparing it with
the reference (:func:`close`, :func:`diagnose`).
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import torch
from torch import Tensor

from diffbook.exercises.core import Fail, _is_missing, _Missing, _shorten

__all__ = ["as_tensor", "as_number", "as_tuple", "as_expr", "show_value", "close", "diagnose"]

def _from_sympy(value: Any, name: str) -> Any:
    """A SymPy number as a Python float; a SymPy expression with symbols or a non-real value is a Fail."""
    import sympy as sp

    if isinstance(value, sp.Basic) and not isinstance(value, sp.Expr):
        raise Fail(f"`{name}` is a SymPy {type(value).__name__} (a truth value or relation), not a number")
    if value.free_symbols:
        syms = ", ".join(sorted(str(s) for s in value.free_symbols))
        raise Fail(f"`{name}` is a SymPy expression in {syms}; a number is asked for here")
    try:
        number = complex(sp.N(value))
    except (TypeError, ValueError) as err:
        raise Fail(f"`{name}` = {_shorten(str(value), 100)} has no numeric value") from err
    if number.imag != 0:
        raise Fail(f"`{name}` = {_shorten(str(value), 100)} is complex; the answer is a real number")
    return number.real


def _reject_non_real(value: Any, name: str) -> None:
    """Booleans and complex numbers are numbers to Python and torch, but never a right answer here."""
    try:
        import numpy as np

        np_bool, np_complex = (np.bool_,), (np.complexfloating,)
    except ImportError:  # pragma: no cover
        np_bool, np_complex = (), ()
    if isinstance(value, (bool, *np_bool)):
        raise Fail(f"`{name}` is the truth value {value!r}, not a number")
    if isinstance(value, (complex, *np_complex)):
        raise Fail(f"`{name}` is the complex number {value!r}; the answer is a real number")


def as_tensor(value: Any, name: str, shape: tuple[int, ...] | None = None) -> Tensor:
    """Accept a tensor (or a real number, SymPy number or array) from the student; float64 out.

    Rejects ``None``, strings, booleans, complex values, NaN/inf and (when ``shape`` is given) a wrong shape,
    each with a message that says which.
    """
    if _is_missing(value):
        raise Fail(f"`{name}` gave {value!r}; is a `return` missing, or the answer not filled in?")
    _reject_non_real(value, name)
    if type(value).__module__.split(".")[0] == "sympy":
        value = _from_sympy(value, name)
    if isinstance(value, str):
        raise Fail(f"`{name}` gave the string {_shorten(repr(value), 60)}, not a tensor or a number")
    try:
        t = torch.as_tensor(value).detach()
    except Exception as err:
        raise Fail(f"`{name}` gave a {type(value).__name__}, which is not a tensor or a number") from err
    if t.dtype == torch.bool:
        raise Fail(f"`{name}` gave a tensor of truth values (dtype bool); expected numbers")
    if t.is_complex():
        raise Fail(f"`{name}` gave complex values (dtype {t.dtype}); expected real numbers")
    if t.is_floating_point() and not isinstance(value, Tensor) and type(value).__module__.split(".")[0] != "numpy":
        t = torch.as_tensor(value, dtype=torch.float64)  # Python floats and lists: never round them to float32
    t = t.to(torch.float64)
    if shape is not None and tuple(t.shape) != shape:
        raise Fail(f"`{name}` gave shape {tuple(t.shape)}, expected {shape}")
    if not torch.isfinite(t).all():
        raise Fail(f"`{name}` gave NaN or infinite values")
    return t


def as_number(value: Any, name: str) -> float:
    """Accept one real number: a Python int or float, a NumPy scalar, a 0-d array or tensor, or a SymPy number
    (``sp.Rational(1, 4)``). Rejects booleans, complex numbers, strings and expressions with symbols."""
    if isinstance(value, numbers.Real) and not isinstance(value, bool) and type(value).__module__ == "builtins":
        if not math.isfinite(value):
            raise Fail(f"`{name}` gave NaN or infinite values")
        return float(value)
    t = as_tensor(value, name)
    if t.numel() != 1 or t.dim() > 1:
        raise Fail(f"`{name}` should be one number, but it has shape {tuple(t.shape)}")
    return float(t.reshape(()))


def as_tuple(value: Any, name: str, n: int, what: str) -> tuple:
    """Accept the ``n`` values a student's function returns together (``what`` describes them)."""
    if _is_missing(value):
        raise Fail(f"`{name}` gave {value!r}; is a `return` missing? It should return {what}.")
    if not isinstance(value, (tuple, list)) or len(value) != n:
        got = f"{len(value)} values" if isinstance(value, (tuple, list)) else f"a {type(value).__name__}"
        raise Fail(f"`{name}` should return {what}, but it returned {got}")
    return tuple(value)


def close(a: Tensor, b: Tensor) -> bool:
    """Equal up to float32 round-off: loose enough for a student computing in float32, and far tighter
    than the difference any wrong formula makes on the checkers' test problems. Tensors of any shape; a
    shape mismatch is never close."""
    return a.shape == b.shape and bool(torch.allclose(a, b.to(a), rtol=1e-5, atol=1e-6))


def diagnose(answer: Tensor, expected: Tensor, mistakes: list[tuple[Tensor, str]], otherwise: str) -> None:
    """Return if ``answer`` matches ``expected``; otherwise raise :class:`Fail` with the message of the first
    known mistake it matches, or with ``otherwise``, in which the literal text ``{err}`` is replaced by the
    largest deviation (no other braces are interpreted, so ``Π_{j ≤ i}`` is safe).

    Args:
        answer: the student's tensor, any shape.
        expected: the right value, the same shape as ``answer``; so is each tensor in ``mistakes``.
    """
    if close(answer, expected):
        return
    for wrong, message in mistakes:
        if close(answer, wrong):
            raise Fail(message)
    raise Fail(otherwise.replace("{err}", f"{float((answer - expected.to(answer)).abs().max()):.3g}"))


def show_value(value: Any, digits: int = 4) -> str:
    """A SymPy (or Python) number as text for a message, ``-4.4``, ``1.2+0.5i (complex)`` or ``undefined``;
    never raises, so a message about a complex or undefined answer can always be shown."""
    import sympy as sp

    try:
        z = complex(sp.N(value))
    except (TypeError, ValueError, AttributeError):
        return f"{_shorten(str(value), 80)} (not a number)"
    if not (math.isfinite(z.real) and math.isfinite(z.imag)):
        return "infinite or undefined"
    if z.imag == 0:
        return f"{z.real:.{digits}g}"
    return f"{z.real:.{digits}g}{z.imag:+.{digits}g}i (complex)"


def as_expr(value: Any, name: str, symbols: dict[str, Any]) -> Any:
    """Accept a SymPy expression (or a string SymPy can parse, or a real number) written in the given symbols.

    Symbols are matched by *name*, so a student's ``sp.symbols("t", positive=True)`` counts as ``t``.

    Args:
        symbols: the allowed symbols, by name, e.g. ``{"t": t, "x0": x0}``.
    """
    import sympy as sp

    if _is_missing(value):
        raise _Missing(f"`{name}` has no answer yet: fill it in above, then run this cell again.")
    _reject_non_real(value, name)
    if isinstance(value, str):
        try:
            value = sp.sympify(value, locals=dict(symbols))
        except (sp.SympifyError, SyntaxError, TypeError, ValueError) as err:
            raise Fail(f"`{name}` is a string SymPy cannot parse: {_shorten(repr(value), 200)}") from err
    elif not isinstance(value, sp.Basic) and (isinstance(value, numbers.Real) or isinstance(value, Tensor)):
        value = sp.Float(as_number(value, name)) if not isinstance(value, numbers.Integral) else sp.Integer(int(value))
    if not isinstance(value, sp.Basic):
        raise Fail(f"`{name}` should be a SymPy expression, but it is a {type(value).__name__}")
    if not isinstance(value, sp.Expr):
        raise Fail(f"`{name}` is a SymPy {type(value).__name__} (a truth value, relation or set), not an "
                   "expression: give the right-hand side only")
    undefined = sorted({str(f.func) for f in value.atoms(sp.core.function.AppliedUndef)})
    if undefined:
        raise Fail(f"`{name}` uses the undefined function(s) {', '.join(undefined)}; write the formula itself "
                   f"in {', '.join(symbols)}")
    extra = sorted(s.name for s in value.free_symbols if s.name not in symbols)
    if extra:
        allowed = ", ".join(symbols)
        raise Fail(f"`{name}` uses symbol(s) {', '.join(extra)}; write it using only {allowed}")
    return value.subs({s: symbols[s.name] for s in value.free_symbols})
