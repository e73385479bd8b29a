"""The forward (noising) process in discrete and continuous time: the DDPM chain, its discretisations of
the forward SDE, the moment equations of a linear SDE, and measures of how far ``x_T`` is from ``N(0, I)``.

Every linear forward process, discrete or continuous, keeps ``x_t | x_0`` Gaussian, ``N(m_t x_0, v_t I)``.
A discrete chain ``x_i = a_i x_{i-1} + b_i z_i`` is therefore described exactly by its per-step coefficients
``(a, b)``, and its law after ``i`` steps by the scalar recursion ``m_i = a_i m_{i-1}``,
``v_i = a_i² v_{i-1} + b_i²`` (:func:`chain_moments`). Comparing ``(m, v)`` with the continuous ``(α_t, σ_t²)``
measures the discretisation error of a chain *exactly*, with no Monte-Carlo noise.

Three chains discretise the SDE ``dx = f x dt + g dW`` on a grid ``t_0 < … < t_N``:

* Euler–Maruyama, ``a_i = 1 + f(t_{i-1}) h_i``, ``b_i = g(t_{i-1}) sqrt(h_i)`` (Kloeden & Platen 1992, §9.1);
* DDPM, ``a_i = sqrt(1 - β_i)``, ``b_i = sqrt(β_i)`` (Ho et al. 2020, eq. 2) with ``β_i = g²(t_{i-1}) h_i`` for a VP
  schedule: Euler–Maruyama to first order in ``β_i`` (Song et al. 2021, App. B);
* the exact transition, ``a_i = α_i/α_{i-1}``, ``b_i² = σ_i² - a_i² σ_{i-1}²``: for a VP schedule this is DDPM with
  ``β_i = 1 - α_i²/α_{i-1}²`` and has no discretisation error at all.

The terminal-distribution helpers quantify Lin et al. 2024 ("Common diffusion noise schedules and sample steps
are flawed"): a finite-time schedule with ``α_T > 0`` does not end at ``N(0, I)``.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from diffbook._checks import check_int, check_state, check_times
from diffbook.schedules import Schedule
from diffbook.sde import diffusion_squared, drift_coefficient

__all__ = [
    "solve_moment_odes",
    "integrate_moment_odes",
    "euler_maruyama_coefficients",
    "exact_coefficients",
    "chain_betas",
    "ddpm_coefficients",
    "run_chain",
    "chain_moments",
    "gaussian_kl_to_standard",
    "conditional_kl_to_standard",
    "terminal_kl_bounds",
    "rescale_zero_terminal_snr",
    "pixel_mean_pairs",
    "predicted_mean_correlation",
]

_RULES = ("euler", "exact")


def _f64(x: Tensor | float, name: str) -> Tensor:
    if isinstance(x, bool) or not isinstance(x, (Tensor, int, float)):
        raise TypeError(f"{name} must be a tensor or a number, got {type(x).__name__}")
    out = torch.as_tensor(x, dtype=torch.float64)
    if not torch.isfinite(out).all():
        raise ValueError(f"{name} must be finite")
    return out


# ----------------------------------------------------------------------------------------------------
# Continuous time: the moment equations, solved by SymPy


def solve_moment_odes(f: Any, g2: Any, t: Any, m0: Any = 1, v0: Any = 0) -> tuple[Any, Any]:
    """Solve the moment equations of ``dx = f(t) x dt + g(t) dW`` with SymPy's ``dsolve``.

    Given ``x_0``, the mean is ``m(t) x_0`` and the per-coordinate variance ``v(t)``, with
    ``dm/dt = f m``, ``m(0) = m0`` and ``dv/dt = 2 f v + g²``, ``v(0) = v0`` (Särkkä & Solin 2019, eqs. 6.2–6.3).

    Args:
        f, g2: SymPy expressions in the symbol ``t`` (the drift coefficient and the squared diffusion).
        t: the time symbol; m0, v0: the initial mean factor and variance.
    Returns:
        ``(m, v)`` as SymPy expressions in ``t``.
    """
    import sympy as sp

    if not isinstance(t, sp.Symbol):
        raise TypeError(f"t must be a SymPy Symbol, got {type(t).__name__}")
    m, v = sp.Function("m"), sp.Function("v")
    mean = sp.dsolve(sp.Eq(m(t).diff(t), f * m(t)), m(t), ics={m(0): m0}).rhs
    var = sp.dsolve(sp.Eq(v(t).diff(t), 2 * f * v(t) + g2), v(t), ics={v(0): v0}).rhs
    return sp.simplify(mean), sp.simplify(var)


def integrate_moment_odes(schedule: Schedule, ts: Tensor) -> tuple[Tensor, Tensor]:
    """Integrate ``dm/dt = f m``, ``dv/dt = 2 f v + g²`` numerically (classical RK4) with ``f`` and ``g²`` of the
    general rule (:mod:`diffbook.sde`), from ``m = α(t_0)``, ``v = σ(t_0)²``.

    If the rule is right, the result reproduces ``α_t`` and ``σ_t²`` up to RK4's ``O(h⁴)`` error. ``f`` and ``g²`` are
    evaluated once, vectorised, at the grid points and the midpoints.

    Args:
        ts: strictly increasing times, shape ``(N + 1,)``, inside the schedule's domain.
    Returns:
        ``(m, v)``, each shape ``(N + 1,)``, float64.
    """
    ts = _grid(ts)
    mids = 0.5 * (ts[1:] + ts[:-1])
    f_n, f_m = (drift_coefficient(schedule, u).to(torch.float64) for u in (ts, mids))
    g_n, g_m = (diffusion_squared(schedule, u).to(torch.float64) for u in (ts, mids))
    if not all(torch.isfinite(c).all() for c in (f_n, f_m, g_n, g_m)):
        raise ValueError("f or g² is not finite on the grid; keep the grid inside the schedule's domain")
    m = [schedule.alpha(ts[:1]).to(torch.float64)[0]]
    v = [schedule.sigma(ts[:1]).to(torch.float64)[0] ** 2]
    for i in range(len(ts) - 1):
        h = ts[i + 1] - ts[i]
        fs, gs = (f_n[i], f_m[i], f_m[i], f_n[i + 1]), (g_n[i], g_m[i], g_m[i], g_n[i + 1])
        km, kv, mm, vv = [], [], m[-1], v[-1]
        for j, (fj, gj) in enumerate(zip(fs, gs)):
            if j > 0:
                c = 0.5 * h if j < 3 else h
                mm, vv = m[-1] + c * km[-1], v[-1] + c * kv[-1]
            km.append(fj * mm)
            kv.append(2.0 * fj * vv + gj)
        m.append(m[-1] + h / 6.0 * (km[0] + 2 * km[1] + 2 * km[2] + km[3]))
        v.append(v[-1] + h / 6.0 * (kv[0] + 2 * kv[1] + 2 * kv[2] + kv[3]))
    return torch.stack(m), torch.stack(v)


# ----------------------------------------------------------------------------------------------------
# Discrete chains x_i = a_i x_{i-1} + b_i z_i


def _grid(ts: Tensor) -> Tensor:
    check_state(ts, "ts")
    check_times(ts, ts)
    if not (ts.diff() > 0).all():
        raise ValueError("ts must be strictly increasing: the forward process runs from t_0 to t_N")
    return ts.to(torch.float64)


def _is_vp(schedule: Schedule, ts: Tensor) -> bool:
    alpha, sigma = schedule.alpha(ts).to(torch.float64), schedule.sigma(ts).to(torch.float64)
    return bool(torch.allclose(alpha**2 + sigma**2, torch.ones_like(alpha), atol=1e-9))


def euler_maruyama_coefficients(schedule: Schedule, ts: Tensor) -> tuple[Tensor, Tensor]:
    """Per-step ``(a, b)`` of Euler–Maruyama for ``dx = f x dt + g dW`` on the grid ``ts``.

    ``a_i = 1 + f(t_{i-1}) h_i``, ``b_i = g(t_{i-1}) sqrt(h_i)`` (Kloeden & Platen 1992, §9.1), with ``f`` and
    ``g²`` from :func:`diffbook.sde.drift_coefficient` and :func:`diffbook.sde.diffusion_squared` (finite at
    ``σ = 0`` too).

    Args:
        ts: strictly increasing times, shape ``(N + 1,)``.
    Returns:
        ``(a, b)``, each shape ``(N,)``, float64.
    """
    ts = _grid(ts)
    h, left = ts.diff(), ts[:-1]
    g2 = diffusion_squared(schedule, left).to(torch.float64)
    if not torch.isfinite(g2).all():
        raise ValueError("g² is not finite on the grid; keep the grid inside the schedule's domain")
    if (g2 < -1e-12).any():
        raise ValueError("the schedule has g² < 0 on the grid: σ/α must not decrease")
    return 1.0 + drift_coefficient(schedule, left) * h, torch.sqrt(g2.clamp_min(0.0) * h)


def exact_coefficients(schedule: Schedule, ts: Tensor) -> tuple[Tensor, Tensor]:
    """Per-step ``(a, b)`` of the exact transition ``x_{t_i} | x_{t_{i-1}}`` of the forward SDE.

    ``a_i = α_i/α_{i-1}`` and ``b_i² = σ_i² - a_i² σ_{i-1}² = α_i² (σ̄_i² - σ̄_{i-1}²)``: the chain's law after ``i``
    steps is exactly ``N(α_i x_0, σ_i² I)`` if it starts from ``x_0`` at ``t_0 = 0`` with ``σ_0 = 0``
    (Song et al. 2021, App. B; Kingma et al. 2021, eq. 33).

    Args:
        ts: strictly increasing times, shape ``(N + 1,)``.
    Returns:
        ``(a, b)``, each shape ``(N,)``, float64.
    """
    ts = _grid(ts)
    alpha, sigma = schedule.alpha(ts).to(torch.float64), schedule.sigma(ts).to(torch.float64)
    if (alpha <= 0).any():
        raise ValueError("the schedule has α_t <= 0 on the grid; the exact transition needs α_t > 0")
    sbar2 = (sigma / alpha) ** 2
    if (sbar2.diff() < -1e-12).any():
        raise ValueError("σ/α decreases on the grid: no forward transition has that marginal")
    return alpha[1:] / alpha[:-1], alpha[1:] * torch.sqrt(sbar2.diff().clamp_min(0.0))


def chain_betas(schedule: Schedule, ts: Tensor, rule: str = "euler") -> Tensor:
    """The DDPM table ``β_i`` that discretises a variance-preserving schedule on the grid ``ts``.

    ``rule="euler"``: ``β_i = g²(t_{i-1}) h_i = β(t_{i-1}) h_i``, the first-order rule of Ho et al. 2020 / Song et
    al. 2021 (App. B). ``rule="exact"``: ``β_i = 1 - α_i²/α_{i-1}²``, the rule Nichol & Dhariwal 2021 (eq. 17) use
    for the cosine schedule, which makes ``ᾱ_i = α(t_i)²`` exactly.

    Args:
        schedule: a VP schedule (``α² + σ² = 1``); ts: strictly increasing times, shape ``(N + 1,)``.
    Returns:
        ``β``, shape ``(N,)``, float64, entries in ``(0, 1]``.
    """
    if rule not in _RULES:
        raise ValueError(f"rule must be one of {_RULES}, got {rule!r}")
    ts = _grid(ts)
    if not _is_vp(schedule, ts):
        raise ValueError("schedule must be variance preserving (α² + σ² = 1) to be written as a DDPM β table")
    alpha = schedule.alpha(ts).to(torch.float64)
    if rule == "euler":
        betas = diffusion_squared(schedule, ts[:-1]).to(torch.float64) * ts.diff()
    else:
        betas = 1.0 - (alpha[1:] / alpha[:-1]) ** 2
    if not ((betas > 0) & (betas <= 1)).all():
        raise ValueError("the grid gives β outside (0, 1]: use more steps")
    return betas


def ddpm_coefficients(betas: Tensor) -> tuple[Tensor, Tensor]:
    """``(a, b) = (sqrt(1 - β), sqrt(β))``: the DDPM step ``x_i = sqrt(1 - β_i) x_{i-1} + sqrt(β_i) z`` (Ho et al.
    2020, eq. 2). ``β_i = 1`` is allowed (the last step of a zero-terminal-SNR table). Shapes ``(N,)``."""
    check_state(betas, "betas")
    if betas.ndim != 1 or betas.numel() < 1 or not ((betas > 0) & (betas <= 1)).all():
        raise ValueError("betas must be a non-empty 1-D tensor with entries in (0, 1]")
    return torch.sqrt(1.0 - betas), torch.sqrt(betas)


def _coefficients(a: Tensor, b: Tensor) -> None:
    check_state(a, "a")
    check_state(b, "b")
    if a.ndim != 1 or a.shape != b.shape or a.numel() < 1:
        raise ValueError(f"a and b must be 1-D tensors of one length, got {tuple(a.shape)} and {tuple(b.shape)}")
    if (b < 0).any() or not (torch.isfinite(a).all() and torch.isfinite(b).all()):
        raise ValueError("b must be non-negative and a, b finite")


def run_chain(
    x0: Tensor, a: Tensor, b: Tensor, *, generator: torch.Generator | None = None, keep_path: bool = False
) -> Tensor:
    """Simulate ``x_i = a_i x_{i-1} + b_i z_i``, ``z_i ~ N(0, I)``, from ``x0``.

    Args:
        x0: shape ``(n, ...)``; a, b: per-step coefficients, shape ``(N,)`` (e.g. from :func:`ddpm_coefficients`).
        generator: the randomness, drawn one ``z_i`` of shape ``x0.shape`` per step, in order.
    Returns:
        ``x_N``, shape of ``x0``, or with ``keep_path`` all states, shape ``(N + 1, n, ...)``.
    """
    check_state(x0, "x0")
    _coefficients(a, b)
    a, b = a.to(x0), b.to(x0)
    x, path = x0, ([x0] if keep_path else None)
    for i in range(a.numel()):
        z = torch.randn(x0.shape, generator=generator, dtype=x0.dtype, device=x0.device)
        x = a[i] * x + b[i] * z
        if path is not None:
            path.append(x)
    return torch.stack(path) if path is not None else x


def chain_moments(a: Tensor, b: Tensor, v0: float = 0.0) -> tuple[Tensor, Tensor]:
    """The exact law of the chain ``x_i = a_i x_{i-1} + b_i z_i`` given ``x_0``: ``N(m_i x_0, v_i I)``.

    ``m_0 = 1``, ``v_0 = v0``, ``m_i = a_i m_{i-1}``, ``v_i = a_i² v_{i-1} + b_i²`` (for DDPM, ``m_i = sqrt(ᾱ_i)`` and
    ``v_i = 1 - ᾱ_i``, Ho et al. 2020, eq. 4).

    Returns:
        ``(m, v)``, each shape ``(N + 1,)``, float64.
    """
    _coefficients(a, b)
    a, b = a.to(torch.float64), b.to(torch.float64)
    m = torch.cat([a.new_ones(1), torch.cumprod(a, 0)])
    v = [torch.as_tensor(float(v0), dtype=torch.float64)]
    for i in range(a.numel()):
        v.append(a[i] ** 2 * v[-1] + b[i] ** 2)
    return m, torch.stack(v)


# ----------------------------------------------------------------------------------------------------
# How far is x_T from N(0, I)?


def gaussian_kl_to_standard(mean: Tensor, cov: Tensor) -> Tensor:
    """``KL(N(mean, cov) || N(0, I)) = ½ (Σ_k (λ_k - 1 - log λ_k) + |mean|²)``, ``λ_k`` the eigenvalues of ``cov``.

    Written with ``log1p`` so that it stays accurate when ``cov`` is within ``1e-5`` of ``I``.

    Args:
        mean: shape ``(d,)``; cov: symmetric positive definite, shape ``(d, d)``.
    Returns:
        A 0-dim float64 tensor, in nats.
    """
    check_state(mean, "mean")
    check_state(cov, "cov")
    d = mean.shape[0] if mean.ndim == 1 else -1
    if mean.ndim != 1 or cov.shape != (d, d):
        raise ValueError(f"mean must have shape (d,) and cov (d, d), got {tuple(mean.shape)} and {tuple(cov.shape)}")
    cov = cov.to(torch.float64)
    if not torch.allclose(cov, cov.T, atol=1e-10):
        raise ValueError("cov must be symmetric")
    lam = torch.linalg.eigvalsh(cov)
    if (lam <= 0).any():
        raise ValueError("cov must be positive definite")
    y = lam - 1.0
    return 0.5 * ((y - torch.log1p(y)).sum() + (mean.to(torch.float64) ** 2).sum())


def conditional_kl_to_standard(x0: Tensor, alpha: Tensor | float, sigma: Tensor | float) -> Tensor:
    """Per-sample ``KL(N(α x_0, σ² I) || N(0, I)) = ½ (α² |x_0|² + d (σ² - 1 - log σ²))``.

    Args:
        x0: data, shape ``(n, ...)`` with ``d`` numbers per sample; alpha, sigma: scalars, ``sigma > 0``.
    Returns:
        shape ``(n,)``, float64, in nats.
    """
    check_state(x0, "x0")
    alpha, sigma = _f64(alpha, "alpha"), _f64(sigma, "sigma")
    if alpha.ndim or sigma.ndim:
        raise ValueError("alpha and sigma must be scalars")
    if sigma <= 0:
        raise ValueError(f"sigma must be positive, got {float(sigma)}")
    flat = x0.reshape(x0.shape[0], -1).to(torch.float64)
    y = sigma**2 - 1.0
    return 0.5 * (alpha**2 * (flat**2).sum(1) + flat.shape[1] * (y - torch.log1p(y)))


def terminal_kl_bounds(x0: Tensor, alpha: Tensor | float, sigma: Tensor | float) -> tuple[Tensor, Tensor]:
    """Lower and upper bounds on ``KL(q_T || N(0, I))`` for ``q_T`` the law of ``α x_0 + σ ε``, ``x_0`` uniform on the
    samples ``x0``.

    Lower: ``KL(N(μ, Σ) || N(0, I))`` with ``q_T``'s own mean ``μ = α E x_0`` and covariance ``Σ = α² Cov x_0 + σ² I``
    (the KL to a Gaussian splits into a non-negative part plus this moment term). Upper: ``E_{x_0} KL(q(x_T|x_0) ||
    N(0, I))`` (joint convexity of the KL). See Cover & Thomas 2006, Thm 2.7.2, and Lin et al. 2024.

    Args:
        x0: data, shape ``(n, ...)``, ``n >= 2``; alpha, sigma: scalars, ``sigma > 0``.
    Returns:
        ``(lower, upper)``, 0-dim float64 tensors, in nats.
    """
    check_state(x0, "x0")
    if x0.shape[0] < 2:
        raise ValueError("x0 needs at least 2 samples to estimate a covariance")
    upper = conditional_kl_to_standard(x0, alpha, sigma).mean()
    alpha, sigma = _f64(alpha, "alpha"), _f64(sigma, "sigma")
    flat = x0.reshape(x0.shape[0], -1).to(torch.float64)
    mu = flat.mean(0)
    centred = flat - mu
    cov = centred.T @ centred / flat.shape[0]  # the covariance of the empirical distribution (divide by n)
    lam = torch.linalg.eigvalsh(alpha**2 * cov).clamp_min(0.0) + sigma**2
    y = lam - 1.0
    lower = 0.5 * ((y - torch.log1p(y)).sum() + alpha**2 * (mu**2).sum())
    return lower, upper


def rescale_zero_terminal_snr(betas: Tensor) -> Tensor:
    """Lin et al. 2024, Algorithm 1: shift and scale ``sqrt(ᾱ)`` so that ``sqrt(ᾱ_T) = 0`` and ``sqrt(ᾱ_1)`` is kept.

    The last ``β`` becomes 1, so ``x_T = z`` exactly: a zero terminal signal-to-noise ratio.

    Args:
        betas: shape ``(N,)``, ``N >= 2``, entries in ``(0, 1)``.
    Returns:
        the new table, shape ``(N,)``, float64.
    """
    check_state(betas, "betas")
    if betas.ndim != 1 or betas.numel() < 2 or not ((betas > 0) & (betas < 1)).all():
        raise ValueError("betas must be a 1-D tensor of at least 2 entries in (0, 1)")
    s = torch.sqrt(torch.cumprod(1.0 - betas.to(torch.float64), 0))
    s = (s - s[-1]) * s[0] / (s[0] - s[-1])
    abar = s**2
    return 1.0 - torch.cat([abar[:1], abar[1:] / abar[:-1]])


def pixel_mean_pairs(
    x0: Tensor, alpha: Tensor | float, sigma: Tensor | float, *, generator: torch.Generator | None = None
) -> tuple[Tensor, Tensor]:
    """The mean over all pixels of each image ``x_0`` and of its noised version ``α x_0 + σ ε`` (one ``ε`` per image).

    The mean is the lowest spatial frequency: its signal-to-noise ratio is ``d`` times that of one pixel, which is
    how the low-frequency signal of large images survives a schedule with ``α_T > 0`` (Lin et al. 2024, §2).

    Args:
        x0: images, shape ``(n, ...)`` with ``d`` numbers each; alpha, sigma: scalars.
    Returns:
        ``(mean of x_0, mean of x_T)``, each shape ``(n,)``, dtype of ``x0``.
    """
    check_state(x0, "x0")
    alpha, sigma = _f64(alpha, "alpha"), _f64(sigma, "sigma")
    if alpha.ndim or sigma.ndim:
        raise ValueError("alpha and sigma must be scalars")
    eps = torch.randn(x0.shape, generator=generator, dtype=x0.dtype, device=x0.device)
    xt = alpha.to(x0) * x0 + sigma.to(x0) * eps
    return x0.reshape(x0.shape[0], -1).mean(1), xt.reshape(x0.shape[0], -1).mean(1)


def predicted_mean_correlation(alpha: Tensor | float, sigma: Tensor | float, mean_std: Tensor | float, d: int) -> Tensor:
    """The correlation between the pixel means of ``x_0`` and ``x_T = α x_0 + σ ε``: ``α s / sqrt(α² s² + σ²/d)``.

    Args:
        alpha, sigma: the schedule at ``T``; mean_std: ``s``, the standard deviation of the pixel mean of ``x_0``;
        d: the number of pixels averaged.
    Returns:
        a float64 tensor (broadcast over the inputs).

    Shape: the broadcast shape of ``alpha``, ``sigma`` and ``mean_std``.
    """
    check_int(d, "d")
    alpha, sigma, s = _f64(alpha, "alpha"), _f64(sigma, "sigma"), _f64(mean_std, "mean_std")
    if (s < 0).any() or (sigma < 0).any():
        raise ValueError("mean_std and sigma must be non-negative")
    return alpha * s / torch.sqrt(alpha**2 * s**2 + sigma**2 / d)
