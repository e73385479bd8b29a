"""Evaluating samplers: exact denoisers for mixtures and finite data sets, fine reference solutions of the
probability-flow ODE, network-evaluation (NFE) counts, and quality-versus-NFE sweeps.

Every sampler of :mod:`diffbook.samplers` integrates the probability-flow ODE ``dx̄/dσ̄ = (x̄ - D(x̄; σ̄))/σ̄``
in the VE-equivalent variables ``x̄ = x/α``, ``σ̄ = σ/α`` (Karras et al. 2022, eq. 3 and §2). Driven by an
*exact* denoiser its error is pure discretisation error, which this module measures against a fine
fourth-order (RK4) solution of the same ODE from the same starting points. Driven by a trained network, the
same sweep shows where the network's own error takes over. A sweep returns tensors (NFE and the measured
value), so the notebooks only plot.

References: T. Karras, M. Aittala, T. Aila, S. Laine, *Elucidating the Design Space of Diffusion-Based
Generative Models*, NeurIPS 2022 (eq. 57: the ideal denoiser of a finite data set; §3: sampler error
measured against a reference solution); C. Lu et al., *DPM-Solver*, NeurIPS 2022 (NFE as the cost unit).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor

from diffbook._checks import check_int, check_sigmas, check_state
from diffbook.ode import integrate, rk4_step
from diffbook.param import Denoiser
from diffbook.schedules import Schedule, karras_sigmas, time_derivative
from diffbook.toy import mixture_denoiser  # re-exported: its home is the engine's toy module

__all__ = [
    "mixture_denoiser",
    "sample_with_nfe",
    "pf_ode_reference",
    "rms_distance",
    "sweep_nfe",
    "sample_euler_in_time",
]

Sampler = Callable[..., Tensor]
"""A sampler ``sample_xxx(denoiser, x, sigmas, **kwargs) -> samples`` of :mod:`diffbook.samplers`."""


def sample_with_nfe(
    sampler: Sampler, denoiser: Denoiser, x: Tensor, sigmas: Tensor, **kwargs: Any
) -> tuple[Tensor, int]:
    """Run ``sampler(denoiser, x, sigmas, **kwargs)`` and count the denoiser calls (NFE, the cost unit).

    Returns:
        ``(samples, nfe)``: the sampler's output (shape of ``x``) and the number of network evaluations.
    """
    if not callable(sampler):
        raise TypeError(f"sampler must be callable, got {type(sampler).__name__}")
    if not callable(denoiser):
        raise TypeError(f"denoiser must be callable, got {type(denoiser).__name__}")
    calls = [0]

    def counted(z: Tensor, sigma: Tensor, **cond: Any) -> Tensor:
        calls[0] += 1
        return denoiser(z, sigma, **cond)

    out = sampler(counted, x, sigmas, **kwargs)
    return out, calls[0]


def pf_ode_reference(
    denoiser: Denoiser, x: Tensor, sigma_max: float, sigma_min: float, *, steps: int = 512, rho: float = 7.0
) -> Tensor:
    """A fine solution of the probability-flow ODE ``dx̄/dσ̄ = (x̄ - D(x̄; σ̄))/σ̄`` from ``σ̄_max`` to ``σ̄_min > 0``.

    Classical fourth-order Runge–Kutta (Hairer et al., *Solving ODEs I*, §II.1) on EDM's grid with ``steps``
    steps (Karras et al. 2022, eq. 5): its error falls like ``steps⁻⁴``, far below that of the first- and
    second-order samplers it is a reference for. To compare with a sampler that ends at ``σ̄ = 0``, apply the
    denoiser once more: every sampler of :mod:`diffbook.samplers` ends with ``x̂₀ = D(x̄; σ̄_min)``.

    Args:
        denoiser: ``D(x̄, σ̄)``; x: starting points at ``σ̄_max``, shape ``(n, ...)`` (use float64).
        sigma_max, sigma_min: the end points, ``0 < sigma_min < sigma_max``.
        steps: RK4 steps (4 evaluations each).
        rho: the grid's exponent; 7 concentrates steps at low noise, where the ODE is most curved.
    Returns:
        ``x̄`` at ``σ̄_min``, shape of ``x``.
    """
    check_state(x, "x")
    check_int(steps, "steps")
    grid = karras_sigmas(steps + 1, sigma_min, sigma_max, rho)[:-1].to(device=x.device, dtype=x.dtype)

    def velocity(sigma: Tensor, z: Tensor) -> Tensor:
        return (z - denoiser(z, sigma.expand(z.shape[0]))) / sigma

    return integrate(velocity, x, grid, step=rk4_step)


def rms_distance(a: Tensor, b: Tensor) -> Tensor:
    """``sqrt(mean_i ‖a_i - b_i‖²)``: the root-mean-square Euclidean distance between paired samples.

    Args:
        a, b: shape ``(n, ...)``, the same shape.
    Returns:
        A 0-dim tensor in float64.
    """
    check_state(a, "a")
    check_state(b, "b")
    if a.shape != b.shape:
        raise ValueError(f"a and b must have the same shape, got {tuple(a.shape)} and {tuple(b.shape)}")
    return (a.double() - b.double()).flatten(1).pow(2).sum(1).mean().sqrt()


def sweep_nfe(
    sampler: Sampler,
    denoiser: Denoiser,
    x: Tensor,
    step_counts: Sequence[int],
    measure: Callable[[Tensor], Tensor | float],
    *,
    sigma_min: float = 0.002,
    sigma_max: float = 80.0,
    rho: float = 7.0,
    to_zero: bool = True,
    **kwargs: Any,
) -> tuple[Tensor, Tensor, list[Tensor]]:
    """Run a sampler on EDM grids with several step counts and measure each result against NFE.

    The grid for ``N`` steps is EDM's ``σ_0 = σ_max > … > σ_{N-1} = σ_min`` followed by ``0``
    (``to_zero=True``, the way samples are drawn), or ``N + 1`` levels ending at ``σ_min``
    (``to_zero=False``, the way orders are measured: the last step to 0 is special for every sampler).

    Args:
        sampler: e.g. :func:`diffbook.samplers.sample_heun`.
        denoiser: the exact denoiser or a trained network.
        x: starting points at ``sigma_max``, shape ``(n, ...)``.
        step_counts: the step counts ``N`` to try, each ``>= 1`` (``>= 2`` with ``to_zero``).
        measure: ``measure(samples) -> value``, e.g. ``lambda s: rms_distance(s, ref)``.
        kwargs: passed on to the sampler (``eta=...``, ``generator=...``).
    Returns:
        ``(nfe, values, samples)``: float64 tensors of shape ``(len(step_counts),)`` with the NFE actually
        used and the measured values, and the list of outputs.
    """
    check_state(x, "x")
    if not callable(measure):
        raise TypeError(f"measure must be callable as measure(samples), got {type(measure).__name__}")
    counts = list(step_counts)
    low = 2 if to_zero else 1
    if not counts or any(not isinstance(n, int) or isinstance(n, bool) or n < low for n in counts):
        raise ValueError(f"step_counts must be a non-empty sequence of ints >= {low}, got {step_counts!r}")
    nfes, values, outs = [], [], []
    for n in counts:
        if to_zero:
            grid = karras_sigmas(n, sigma_min, sigma_max, rho)
        else:
            grid = karras_sigmas(n + 1, sigma_min, sigma_max, rho)[:-1]
        out, nfe = sample_with_nfe(sampler, denoiser, x, grid.to(device=x.device, dtype=x.dtype), **kwargs)
        nfes.append(float(nfe))
        values.append(float(torch.as_tensor(measure(out))))
        outs.append(out)
    return torch.tensor(nfes, dtype=torch.float64), torch.tensor(values, dtype=torch.float64), outs


def sample_euler_in_time(
    denoiser: Denoiser, x: Tensor, sigmas: Tensor, *, schedule: Schedule, generator: torch.Generator | None = None,
    callback: Callable[[int, Tensor, Tensor, Tensor], None] | None = None, **cond: Any,
) -> Tensor:
    """Euler on the probability-flow ODE in the schedule's own time and variables, a baseline DDIM is *not*.

    With ``x = α_t x̄`` and ``t_i`` the times where ``σ̄(t_i) = σ_i``, each step is
    ``x ← x + (t_{i+1} - t_i) (f(t_i) x - ½ g²(t_i) ∇log p_{t_i}(x))`` with ``f = α̇/α``,
    ``g² = dσ²/dt - 2 f σ²`` and the score ``(α D(x/α; σ̄) - x)/σ²`` (Song et al. 2021, eq. 13). It uses the
    same grid and NFE as DDIM, but its local error depends on how curved the path is in ``(t, x)``, which for
    a variance-preserving schedule is much more than in ``(σ̄, x̄)``. Same interface as the samplers: ``x``
    and the result are in VE-equivalent variables; ``generator`` is unused.

    Args:
        x: starting points at ``sigmas[0]``, shape ``(n, ...)``; sigmas: decreasing noise levels, e.g. ending at 0.
        schedule: the path ``(α_t, σ_t)``, e.g. :class:`diffbook.schedules.VPLinear`.
    """
    check_sigmas(sigmas, x)
    ts = schedule.t_of_sigma_bar(sigmas.to(torch.float64))
    if not torch.isfinite(ts).all():
        raise ValueError("the schedule cannot reach every noise level in sigmas (t_of_sigma_bar is not finite)")
    alpha0 = float(schedule.alpha(ts[0]))
    z = x * alpha0  # original variables
    for i in range(len(sigmas) - 1):
        t = ts[i]
        alpha, dalpha = time_derivative(schedule.alpha, t)
        sigma, dsigma = time_derivative(schedule.sigma, t)
        f = dalpha / alpha
        g2 = 2.0 * sigma * dsigma - 2.0 * f * sigma**2
        a, s = float(alpha), float(sigma)
        x0 = denoiser(z / a, sigmas[i].to(x.dtype).expand(x.shape[0]), **cond)
        if callback is not None:
            callback(i, sigmas[i], z / a, x0)
        score = (a * x0 - z) / s**2
        z = z + float(ts[i + 1] - t) * (float(f) * z - 0.5 * float(g2) * score)
    return z / float(schedule.alpha(ts[-1]))
