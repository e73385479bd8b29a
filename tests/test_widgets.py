"""diffbook.widgets without a kernel: the widget builds, and its draw function draws the right trajectories.

The notebooks never execute their widget cells (they are tagged `skip-execution`/`nbval-skip`, see
tests/test_notebooks.py), so this is the only test that runs the widget code."""

import math

import matplotlib
import matplotlib.pyplot as plt
import pytest
import torch

from diffbook.widgets import step_size_explorer

A = torch.tensor([[0.0, -1.0], [1.0, 0.0]], dtype=torch.float64)  # rotation generator: x' = A x
T1 = math.pi / 2


def field(t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return x @ A.T


def exact(x0: torch.Tensor, t: float) -> torch.Tensor:
    c, s = math.cos(t), math.sin(t)
    return x0 @ torch.tensor([[c, -s], [s, c]], dtype=torch.float64).T


@pytest.fixture
def shown(monkeypatch):
    """Draw with Agg and collect every figure the widget shows instead of displaying it."""
    plt.switch_backend("Agg")
    figures = []
    monkeypatch.setattr(plt, "show", lambda *a, **k: figures.append(plt.gcf()))
    yield figures
    plt.close("all")


def lines_by_colour(fig) -> dict[str, list]:
    out: dict[str, list] = {}
    for line in fig.axes[0].get_lines():
        if line.get_linestyle() not in ("None", "", " "):  # trajectories, not the start-point markers
            out.setdefault(matplotlib.colors.to_hex(line.get_color()), []).append(line.get_xydata())
    return out


def test_step_size_explorer_builds_a_slider_and_draws_euler_and_heun_with_the_chosen_step(shown):
    import ipywidgets as widgets

    x0 = torch.tensor([[1.0, 0.0], [0.0, 0.5]], dtype=torch.float64)
    w = step_size_explorer(field, x0, T1, exact, max_steps=32)
    assert isinstance(w, widgets.interactive)
    slider = w.kwargs_widgets[0]
    assert isinstance(slider, widgets.IntSlider) and (slider.min, slider.value, slider.max) == (1, 4, 32)
    assert len(shown) == 1, "building the widget draws the initial state once"
    assert shown[0].axes[0].get_title() == f"4 steps, h = {T1 / 4:.3f}"

    w.f(n_steps=3)  # the draw function itself: an error here propagates (ipywidgets would only log it)
    assert len(shown) == 2
    fig = shown[1]
    assert fig.axes[0].get_title() == f"3 steps, h = {T1 / 3:.3f}"
    lines = lines_by_colour(fig)
    black, euler, heun = (lines[matplotlib.colors.to_hex(c)] for c in ("k", "C3", "C0"))
    assert len(black) == len(euler) == len(heun) == 2  # one line per starting point
    h = T1 / 3
    one = torch.eye(2, dtype=torch.float64)
    for i in range(2):
        # the exact flow is a quarter turn; Euler and Heun are their one-step matrices applied three times
        torch.testing.assert_close(torch.tensor(black[i][-1]), exact(x0[i : i + 1], T1)[0], atol=1e-12, rtol=0)
        euler_end = torch.linalg.matrix_power(one + h * A, 3) @ x0[i]
        heun_end = torch.linalg.matrix_power(one + h * A + (h * A) @ (h * A) / 2, 3) @ x0[i]
        assert euler[i].shape == heun[i].shape == (4, 2)
        torch.testing.assert_close(torch.tensor(euler[i][-1]), euler_end, atol=1e-12, rtol=0)
        torch.testing.assert_close(torch.tensor(heun[i][-1]), heun_end, atol=1e-12, rtol=0)
    # Heun's end point is closer to the exact one than Euler's at the same step (orders 2 and 1)
    target = exact(x0[:1], T1)[0]
    assert (torch.tensor(heun[0][-1]) - target).norm() < 0.2 * (torch.tensor(euler[0][-1]) - target).norm()
