"""Two SDEs with closed-form solutions, Ornstein–Uhlenbeck and geometric Brownian motion: their moments,
transition densities and exact samplers, and Itô's lemma in SymPy, which derives them.

Grids, paths and generators follow the conventions of :mod:`diffbook.foundations.brownian`. Functions take dtype and
device from their inputs. The two reference SDEs (Øksendal 2003, §5.1; Kloeden & Platen 1992, §4.4):

* Ornstein–Uhlenbeck (OU), ``dX = θ(μ - X) dt + σ dW`` (additive noise):
  ``X_t | X_0 = x_0 ~ N(μ + (x_0 - μ) e^{-θt}, σ² (1 - e^{-2θt}) / (2θ))``.
* Geometric Brownian motion (GBM), ``dX = μ X dt + σ X dW`` (multiplicative noise):
  ``X_t = x_0 exp((μ - σ²/2) t + σ W_t)``, a log-normal variable.

Sampled on the same Brownian path as a numerical scheme, these exact solutions are the references against
which :mod:`diffbook.foundations.sde_errors` measures Euler–Maruyama.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from diffbook._checks import check_int, check_real, check_tensor
from diffbook.foundations.brownian import _like

__all__ = [
    "ou_mean",
    "ou_variance",
    "ou_marginal",
    "ou_log_density",
    "ou_sample",
    "ou_exact_path",
    "ou_increments",
    "ou_from_increments",
    "gbm_solution",
    "gbm_mean",
    "gbm_variance",
    "gbm_log_density",
    "gbm_sample",
    "gbm_em_moments",
    "ito_lemma",
]


# --------------------------------------------------------------------------------------------------
# Ornstein–Uhlenbeck: dX = θ(μ - X) dt + σ dW


def ou_mean(x0: Tensor | float, t: Tensor | float, theta: float, mu: float = 0.0) -> Tensor:
    """``E[X_t | X_0 = x0] = μ + (x0 - μ) e^{-θ t}`` (Uhlenbeck & Ornstein 1930); broadcasts ``x0`` with ``t``.

    Returns the broadcast shape of ``x0`` and ``t``.
    """
    theta = check_real(theta, "theta", positive=True)
    mu = check_real(mu, "mu")
    x0 = _like(x0, None, "x0")
    t = _like(t, x0, "t")
    return mu + (x0 - mu) * torch.exp(-theta * t)


def ou_variance(t: Tensor | float, theta: float, sigma: float) -> Tensor:
    """``Var[X_t | X_0] = σ² (1 - e^{-2θt}) / (2θ)``, which tends to the stationary ``σ²/(2θ)``.

    Returns the shape of ``t``.
    """
    theta = check_real(theta, "theta", positive=True)
    sigma = check_real(sigma, "sigma", nonnegative=True)
    t = _like(t, None, "t")
    return sigma**2 * (-torch.expm1(-2.0 * theta * t)) / (2.0 * theta)


def ou_marginal(
    m0: Tensor | float, v0: Tensor | float, t: Tensor | float, theta: float, sigma: float, mu: float = 0.0
) -> tuple[Tensor, Tensor]:
    """Mean and variance of ``X_t`` when ``X_0 ~ N(m0, v0)`` (``v0 = 0``: a fixed start).

    ``m_t = μ + (m0 - μ) e^{-θt}`` and ``v_t = v0 e^{-2θt} + σ²(1 - e^{-2θt})/(2θ)``.

    Returns the broadcast shape of ``m0``, ``v0`` and ``t``. (two tensors)
    """
    v0_t = _like(v0, None, "v0")
    if (v0_t < 0).any():
        raise ValueError("v0 must be >= 0")
    mean = ou_mean(m0, t, theta, mu)
    t_ = _like(t, mean, "t")
    var = v0_t * torch.exp(-2.0 * float(theta) * t_) + ou_variance(t_, theta, sigma)
    return mean, var


def ou_log_density(
    x: Tensor, x0: Tensor | float, t: Tensor | float, theta: float, sigma: float, mu: float = 0.0
) -> Tensor:
    """Log of the transition density ``p(x, t | x0)`` of the OU process (a Gaussian); broadcasts its arguments.

    ``t`` must be > 0 (at ``t = 0`` the transition is a point mass).

    Returns the broadcast shape of ``x``, ``x0`` and ``t``.
    """
    x = check_tensor(x, "x")
    t_ = _like(t, x, "t")
    if (t_ <= 0).any():
        raise ValueError("t must be > 0 for a transition density")
    sigma = check_real(sigma, "sigma", positive=True)
    mean = ou_mean(_like(x0, x, "x0"), t_, theta, mu)
    var = ou_variance(t_, theta, sigma)
    return -0.5 * (x - mean) ** 2 / var - 0.5 * torch.log(2.0 * math.pi * var)


def ou_sample(
    x0: Tensor,
    t: float,
    theta: float,
    sigma: float,
    *,
    mu: float = 0.0,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Draw ``X_t`` given ``X_0 = x0`` exactly from the Gaussian transition; shape of ``x0``."""
    x0 = check_tensor(x0, "x0")
    t = check_real(t, "t", nonnegative=True)
    z = torch.randn(x0.shape, generator=generator, dtype=x0.dtype, device=x0.device)
    mean = ou_mean(x0, t, theta, mu)
    return mean + torch.sqrt(ou_variance(torch.as_tensor(t, dtype=x0.dtype, device=x0.device), theta, sigma)) * z


def ou_exact_path(
    x0: Tensor,
    ts: Tensor,
    theta: float,
    sigma: float,
    *,
    mu: float = 0.0,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Exact OU paths on an increasing grid ``ts`` (any spacing), chaining the Gaussian transitions.

    Args:
        x0: starting points, shape ``(n,)`` (or any shape); ts: shape ``(K + 1,)``, strictly increasing.
    Returns:
        shape ``(K + 1, *x0.shape)``; there is no discretisation error at any grid size.
    """
    x0 = check_tensor(x0, "x0")
    ts = check_tensor(ts, "ts", min_ndim=1)
    if ts.ndim != 1 or ts.numel() < 2 or not (ts.diff() > 0).all():
        raise ValueError(f"ts must be a strictly increasing 1-D tensor of >= 2 times, got shape {tuple(ts.shape)}")
    out = [x0]
    for dt in ts.diff():
        out.append(ou_sample(out[-1], float(dt), theta, sigma, mu=mu, generator=generator))
    return torch.stack(out)


def ou_increments(
    n_paths: int,
    n_steps: int,
    T: float,
    theta: float,
    *,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str = "cpu",
) -> tuple[Tensor, Tensor]:
    """Brownian increments ``ΔW_i`` together with ``I_i = ∫_{t_i}^{t_{i+1}} e^{-θ(t_{i+1} - s)} dW_s``.

    The pair is jointly Gaussian with ``Var ΔW = h``, ``Var I = (1 - e^{-2θh})/(2θ)`` and
    ``Cov(ΔW, I) = (1 - e^{-θh})/θ`` (Itô isometry), independent across steps. With the ``I_i``,
    :func:`ou_from_increments` gives the exact OU solution driven by the Brownian path whose increments are
    ``ΔW_i``: the reference for measuring Euler–Maruyama's strong error with additive noise.

    Returns:
        ``(dw, di)``, both shape ``(n_paths, n_steps)``.
    """
    check_int(n_paths, "n_paths")
    check_int(n_steps, "n_steps")
    T = check_real(T, "T", positive=True)
    theta = check_real(theta, "theta", positive=True)
    h = T / n_steps
    var_w = h
    var_i = -math.expm1(-2.0 * theta * h) / (2.0 * theta)
    cov = -math.expm1(-theta * h) / theta
    # Cholesky factor of [[var_w, cov], [cov, var_i]]; the conditional variance is positive for h > 0
    a = math.sqrt(var_w)
    b = cov / a
    c = math.sqrt(max(var_i - b * b, 0.0))
    z = torch.randn(2, n_paths, n_steps, generator=generator, dtype=dtype, device=device)
    return a * z[0], b * z[0] + c * z[1]


def ou_from_increments(
    x0: Tensor | float,
    di: Tensor,
    T: float,
    theta: float,
    sigma: float,
    *,
    mu: float = 0.0,
    keep_path: bool = False,
) -> Tensor:
    """The exact OU solution on the grid of ``di`` (from :func:`ou_increments`): ``X_{i+1} = μ + (X_i - μ)e^{-θh} + σ I_i``.

    Args:
        x0: scalar or shape ``(n_paths,)``; di: shape ``(n_paths, N)``.
    Returns:
        ``X_T``, shape ``(n_paths,)``, or with ``keep_path`` the path ``(N + 1, n_paths)``.
    """
    di = check_tensor(di, "di", min_ndim=2)
    T = check_real(T, "T", positive=True)
    theta = check_real(theta, "theta", positive=True)
    sigma = check_real(sigma, "sigma", nonnegative=True)
    mu = check_real(mu, "mu")
    decay = math.exp(-theta * T / di.shape[-1])
    x = torch.broadcast_to(_like(x0, di, "x0"), di.shape[:-1]).clone()
    path = [x] if keep_path else None
    for i in range(di.shape[-1]):
        x = mu + (x - mu) * decay + sigma * di[..., i]
        if path is not None:
            path.append(x)
    return torch.stack(path) if path is not None else x


# --------------------------------------------------------------------------------------------------
# Geometric Brownian motion: dX = μ X dt + σ X dW


def gbm_solution(x0: Tensor | float, w: Tensor, t: Tensor | float, mu: float, sigma: float) -> Tensor:
    """``X_t = x0 exp((μ - σ²/2) t + σ W_t)``, the solution on the given Brownian values ``W_t``; broadcasts.

    Returns the broadcast shape of ``x0``, ``w`` and ``t``.
    """
    w = check_tensor(w, "w")
    mu = check_real(mu, "mu")
    sigma = check_real(sigma, "sigma", nonnegative=True)
    return _like(x0, w, "x0") * torch.exp((mu - 0.5 * sigma**2) * _like(t, w, "t") + sigma * w)


def gbm_mean(x0: Tensor | float, t: Tensor | float, mu: float) -> Tensor:
    """``E X_t = x0 e^{μt}``.

    Returns the broadcast shape of ``x0`` and ``t``.
    """
    mu = check_real(mu, "mu")
    x0 = _like(x0, None, "x0")
    return x0 * torch.exp(mu * _like(t, x0, "t"))


def gbm_variance(x0: Tensor | float, t: Tensor | float, mu: float, sigma: float) -> Tensor:
    """``Var X_t = x0² e^{2μt} (e^{σ²t} - 1)``.

    Returns the broadcast shape of ``x0`` and ``t``.
    """
    mu = check_real(mu, "mu")
    sigma = check_real(sigma, "sigma", nonnegative=True)
    x0 = _like(x0, None, "x0")
    t = _like(t, x0, "t")
    return x0**2 * torch.exp(2.0 * mu * t) * torch.expm1(sigma**2 * t)


def gbm_log_density(x: Tensor, x0: float, t: Tensor | float, mu: float, sigma: float) -> Tensor:
    """Log of the log-normal transition density of GBM from ``x0 > 0``; ``-inf`` for ``x <= 0``.

    ``log X_t ~ N(log x0 + (μ - σ²/2)t, σ²t)``, so ``p(x) = N(log x; ·, ·) / x``.

    Returns the broadcast shape of ``x`` and ``t``.
    """
    x = check_tensor(x, "x")
    x0 = check_real(x0, "x0", positive=True)
    mu = check_real(mu, "mu")
    sigma = check_real(sigma, "sigma", positive=True)
    t_ = _like(t, x, "t")
    if (t_ <= 0).any():
        raise ValueError("t must be > 0 for a transition density")
    m = math.log(x0) + (mu - 0.5 * sigma**2) * t_
    v = sigma**2 * t_
    safe = torch.where(x > 0, x, torch.ones_like(x))
    logp = -0.5 * (torch.log(safe) - m) ** 2 / v - 0.5 * torch.log(2.0 * math.pi * v) - torch.log(safe)
    return torch.where(x > 0, logp, torch.full_like(logp, float("-inf")))


def gbm_sample(
    x0: Tensor, t: float, mu: float, sigma: float, *, generator: torch.Generator | None = None
) -> Tensor:
    """Draw ``X_t`` exactly, shape of ``x0``: ``W_t = sqrt(t) z`` in :func:`gbm_solution`."""
    x0 = check_tensor(x0, "x0")
    t = check_real(t, "t", nonnegative=True)
    z = torch.randn(x0.shape, generator=generator, dtype=x0.dtype, device=x0.device)
    return gbm_solution(x0, math.sqrt(t) * z, t, mu, sigma)


def gbm_em_moments(x0: float, T: float, n_steps: int, mu: float, sigma: float) -> tuple[float, float]:
    """Exact ``E X_N`` and ``E X_N²`` of Euler–Maruyama for GBM with ``N`` steps of ``h = T/N``.

    Each step multiplies by ``1 + μh + σΔW`` with independent ``ΔW ~ N(0, h)``, so
    ``E X_N = x0 (1 + μh)^N`` and ``E X_N² = x0² ((1 + μh)² + σ²h)^N``; compare ``x0 e^{μT}`` and
    ``x0² e^{(2μ + σ²)T}``: the differences are ``O(h)``, EM's weak order 1, with no sampling noise at all.
    """
    x0 = check_real(x0, "x0")
    T = check_real(T, "T", positive=True)
    n = check_int(n_steps, "n_steps")
    mu = check_real(mu, "mu")
    sigma = check_real(sigma, "sigma", nonnegative=True)
    h = T / n
    return x0 * (1.0 + mu * h) ** n, x0**2 * ((1.0 + mu * h) ** 2 + sigma**2 * h) ** n


# --------------------------------------------------------------------------------------------------
# Itô's lemma, symbolically


def ito_lemma(phi: object, f: object, g: object, t: object, x: object) -> tuple[object, object]:
    """Itô's lemma in SymPy: the ``dt`` and ``dW`` coefficients of ``dφ(t, X_t)`` for ``dX = f dt + g dW``.

    ``dφ = (∂_t φ + f ∂_x φ + ½ g² ∂_x² φ) dt + g ∂_x φ dW`` (Øksendal 2003, Thm 4.1.2). SymPy is imported
    here, so the rest of this module needs only torch.

    Args:
        phi: a SymPy expression in the symbols ``t`` and ``x``; f, g: SymPy expressions (they may depend on
            ``t`` and ``x``); t, x: the SymPy symbols.
    Returns:
        ``(drift, diffusion)``, both simplified SymPy expressions.
    """
    import sympy as sp

    for name, value in (("phi", phi), ("f", f), ("g", g)):
        if not isinstance(value, (sp.Basic, int, float)):
            raise TypeError(f"{name} must be a SymPy expression, got {type(value).__name__}")
    for name, value in (("t", t), ("x", x)):
        if not isinstance(value, sp.Symbol):
            raise TypeError(f"{name} must be a SymPy Symbol, got {type(value).__name__}")
    phi, f, g = (sp.sympify(v) for v in (phi, f, g))
    drift = sp.diff(phi, t) + f * sp.diff(phi, x) + sp.Rational(1, 2) * g**2 * sp.diff(phi, x, 2)
    return sp.simplify(drift), sp.simplify(g * sp.diff(phi, x))
