"""Checkers behind the exercise notebooks.

Every checker takes the student's answer (a function, a number or a SymPy expression), never raises, and
returns a :class:`Verdict` that prints a specific diagnosis in the notebook and that a test can read.
Chapter checkers live in ``diffbook.exercises.chNN``.
"""

from diffbook.exercises.core import Fail, Verdict, checker

__all__ = ["Fail", "Verdict", "checker"]
