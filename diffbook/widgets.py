"""ipywidgets controls for the notebooks. Widgets need a live kernel: every widget in the book is paired
with a static figure, because the website shows widgets blank."""

from __future__ import annotations

from collections.abc import Callable

import matplotlib.pyplot as plt
import torch
from torch import Tensor

from diffbook.ode import VectorField, euler_step, heun_step, integrate, time_grid
from diffbook.viz import plot_field, plot_paths

__all__ = ["step_size_explorer"]


def step_size_explorer(
    u: VectorField, x0: Tensor, t1: float, exact: Callable[[Tensor, float], Tensor], max_steps: int = 64
) -> object:
    """A slider over the number of steps that redraws Euler's and Heun's trajectories next to the exact flow.

    Args:
        u: a 2-D vector field; x0: starting points, shape ``(n, 2)``; t1: the final time.
        exact: ``exact(x0, t)`` the exact flow map, used to draw the true trajectories.
    """
    import ipywidgets as widgets

    fine = time_grid(0.0, t1, 200, dtype=x0.dtype)
    true_path = torch.stack([exact(x0, float(t)) for t in fine])

    def draw(n_steps: int) -> None:
        fig, ax = plt.subplots(figsize=(5, 5))
        plot_field(ax, u)
        plot_paths(ax, true_path, color="k", label="exact", lw=2, alpha=0.5)
        ts = time_grid(0.0, t1, n_steps, dtype=x0.dtype)
        for step, colour in [(euler_step, "C3"), (heun_step, "C0")]:
            plot_paths(ax, integrate(u, x0, ts, step=step, keep_path=True), color=colour,
                       label=step.__name__.replace("_step", "").title(), marker=".", ms=4)
        ax.set_title(f"{n_steps} steps, h = {t1 / n_steps:.3f}")
        ax.legend(loc="lower left")
        plt.show()

    slider = widgets.IntSlider(value=4, min=1, max=max_steps, description="steps")
    return widgets.interactive(draw, n_steps=slider)
