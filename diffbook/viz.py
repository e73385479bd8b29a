"""Plotting helpers for the notebooks (the only part of diffbook, with :mod:`diffbook.widgets`, that
imports matplotlib). Each function draws on an ``Axes`` it is given, so a notebook composes figures."""

from __future__ import annotations

from collections.abc import Mapping

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.axes import Axes
from torch import Tensor

from diffbook.foundations.convergence import fit_order
from diffbook.ode import VectorField

__all__ = ["plot_field", "plot_orders", "plot_paths", "plot_density", "figure"]


def figure(ncols: int = 1, nrows: int = 1, size: float = 3.6, **kwargs: object) -> tuple[plt.Figure, np.ndarray]:
    """A figure of ``nrows × ncols`` square-ish panels; returns ``(fig, axes)`` with ``axes`` always an array."""
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * nrows), squeeze=False, **kwargs)
    return fig, axes.ravel()


def plot_field(ax: Axes, u: VectorField, lim: float = 1.6, t: float = 0.0, density: float = 1.0) -> None:
    """Streamlines of the 2-D field ``u(t, ·)`` on ``[-lim, lim]²``, coloured by speed."""
    g = torch.linspace(-lim, lim, 41, dtype=torch.float64)
    yy, xx = torch.meshgrid(g, g, indexing="ij")
    pts = torch.stack([xx.flatten(), yy.flatten()], dim=1)
    v = u(torch.tensor(t, dtype=torch.float64), pts).reshape(41, 41, 2)
    speed = v.norm(dim=-1)
    ax.streamplot(g.numpy(), g.numpy(), v[..., 0].numpy(), v[..., 1].numpy(), color=speed.numpy(),
                  cmap="Greys", density=density, linewidth=0.8, arrowsize=0.8)
    ax.set_xlim(-lim, lim)
    ax.set_ylim(-lim, lim)
    ax.set_aspect("equal")


def plot_paths(ax: Axes, path: Tensor, color: str = "C0", label: str | None = None, **kwargs: object) -> None:
    """Trajectories ``path`` of shape ``(steps + 1, n, 2)``: one line per point, a dot where each starts."""
    p = path.detach().cpu().numpy()
    for i in range(p.shape[1]):
        ax.plot(p[:, i, 0], p[:, i, 1], color=color, label=label if i == 0 else None, **kwargs)
    ax.plot(p[0, :, 0], p[0, :, 1], "o", color=color, ms=3)


def plot_orders(ax: Axes, results: Mapping[str, tuple[Tensor, Tensor]]) -> dict[str, float]:
    """Log–log plot of global error against step size, with each method's fitted order in the legend.

    Args:
        results: ``{name: (hs, errors)}`` as returned by :func:`diffbook.foundations.convergence.global_errors`,
            step sizes and errors each of shape ``(k,)``.
    Returns:
        ``{name: fitted order}``.
    """
    orders = {}
    for i, (name, (hs, errs)) in enumerate(results.items()):
        orders[name] = fit_order(hs, errs)
        ax.loglog(hs.numpy(), errs.numpy(), "o-", color=f"C{i}", label=f"{name}: slope {orders[name]:.2f}")
    ax.set_xlabel("step size h")
    ax.set_ylabel("global error at the final time")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    return orders


def plot_density(ax: Axes, values: Tensor, lo: float, hi: float, title: str = "", vmax: float | None = None) -> None:
    """Show cell values on the ``bins × bins`` grid of :func:`diffbook.metrics.histogram.grid_2d`.

    ``values`` has shape ``(bins * bins,)`` (or any shape with that many elements), row-major in ``y``.
    """
    bins = int(round(values.numel() ** 0.5))
    img = values.detach().cpu().reshape(bins, bins).numpy()
    ax.imshow(img, origin="lower", extent=(lo, hi, lo, hi), cmap="magma", vmin=0.0, vmax=vmax)
    ax.set_title(title)
    ax.set_aspect("equal")
