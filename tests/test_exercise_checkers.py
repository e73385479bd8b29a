"""The checkers of Chapter 1: right answers pass, each typical mistake gets its own diagnosis, and no
answer, however malformed, makes a checker raise."""

import math

import pytest
import sympy as sp
import torch

from diffbook.exercises import Verdict, ch01
from diffbook.exercises.core import LOG_ENV

t, x0, x, y = sp.symbols("t x0 x y", real=True)


def euler(u, t, x, h):
    return x + h * u(t, x)


def heun(u, t, x, h):
    k1 = u(t, x)
    return x + 0.5 * h * (k1 + u(t + h, x + h * k1))


def midpoint(u, t, x, h):
    return x + h * u(t + h / 2, x + h / 2 * u(t, x))


def log_p(x, t, a):
    return -0.5 * x**2 * torch.exp(-2 * a * t) - 0.5 * math.log(2 * math.pi) - a * t


def log_p_no_jacobian(x, t, a):
    return -0.5 * x**2 * torch.exp(-2 * a * t) - 0.5 * math.log(2 * math.pi)


def not_implemented(*args):
    raise NotImplementedError


def crashes(*args):
    raise ZeroDivisionError("boom")


RIGHT = [
    (ch01.check_euler_step, (euler,)),
    (ch01.check_heun_step, (heun,)),
    (ch01.check_flow_map, (1 + (x0 - 1) * sp.exp(-t),)),
    (ch01.check_divergence, (2 - 4 * (x**2 + y**2),)),
    (ch01.check_log_density, (log_p,)),
    (ch01.check_midpoint, (midpoint, 2.02)),
]


@pytest.mark.parametrize("check,answer", RIGHT)
def test_right_answers_pass(check, answer):
    verdict = check(*answer)
    assert isinstance(verdict, Verdict) and verdict.passed, verdict.message
    assert str(verdict).startswith("Exercise 1.") and "correct" in str(verdict)


@pytest.mark.parametrize(
    "check,answer,diagnosis",
    [
        (ch01.check_euler_step, (lambda u, t, x, h: x + u(t, x),), "off by a factor h"),
        (ch01.check_euler_step, (lambda u, t, x, h: x - h * u(t, x),), "wrong sign"),
        (ch01.check_euler_step, (lambda u, t, x, h: h * u(t, x),), "returned the increment"),
        (ch01.check_euler_step, (lambda u, t, x, h: x + h * u(t + h, x),), "at t + h"),
        (ch01.check_euler_step, (lambda u, t, x, h: x + abs(h) * u(t, x),), "not for h < 0"),
        (ch01.check_heun_step, (euler,), "this is Euler's step"),
        (ch01.check_heun_step, (midpoint,), "explicit midpoint"),
        (ch01.check_heun_step, (lambda u, t, x, h: x + h * (u(t, x) + u(t + h, x + h * u(t, x))),), "forgot to halve"),
        (ch01.check_flow_map, (x0 * sp.exp(-t),), "d/dt ψ - (1 - ψ)"),
        (ch01.check_flow_map, (1 + x0 * sp.exp(-t),), "must start at x0"),
        (ch01.check_flow_map, ("1 + (z - 1)*exp(-t)",), "uses symbol(s) z"),
        (ch01.check_divergence, (2 - 2 * (x**2 + y**2),), "product-rule"),
        (ch01.check_divergence, (-(2 - 4 * (x**2 + y**2)),), "sign error"),
        (ch01.check_log_density, (log_p_no_jacobian,), "forgot the volume change"),
        (ch01.check_midpoint, (euler, 2.0), "is Euler's step"),
        (ch01.check_midpoint, (midpoint, 1.0), "measured order is 1"),
    ],
)
def test_wrong_answers_get_a_specific_diagnosis(check, answer, diagnosis):
    verdict = check(*answer)
    assert not verdict.passed
    assert diagnosis in verdict.message, verdict.message


@pytest.mark.parametrize("check,answer", RIGHT)
@pytest.mark.parametrize("bad", [None, ..., 42, "not an answer", not_implemented, crashes, lambda *a: "oops", lambda *a: torch.zeros(7)])
def test_malformed_answers_never_raise(check, answer, bad):
    verdict = check(*([bad] * len(answer)))
    assert isinstance(verdict, Verdict) and not verdict.passed
    assert verdict.message and "Traceback" not in verdict.message


def test_messages_for_missing_and_unimplemented_answers():
    assert "has no answer yet" in ch01.check_flow_map(None).message
    assert "not implemented yet" in ch01.check_euler_step(not_implemented).message
    assert "raised ZeroDivisionError: boom" in ch01.check_euler_step(crashes).message
    assert "takes 2 answer(s)" in ch01.check_midpoint(midpoint).message


def test_verdicts_are_logged_for_the_test_suite(tmp_path, monkeypatch):
    log = tmp_path / "log.jsonl"
    monkeypatch.setenv(LOG_ENV, str(log))
    ch01.check_euler_step(euler)
    ch01.check_euler_step(None)
    lines = log.read_text().splitlines()
    assert len(lines) == 2 and '"passed": true' in lines[0] and '"passed": false' in lines[1]
