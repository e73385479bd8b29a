"""Gaussian mixtures: data with an exact density, score and denoiser at every noise level.

If ``x₀ ~ Σ_k w_k N(μ_k, Σ_k)`` then ``x = α x₀ + σ ε`` is again a mixture, ``Σ_k w_k N(α μ_k, α² Σ_k + σ² I)``,
and the posterior mean ``E[x₀ | x]`` is a responsibility-weighted sum of Gaussian conditional means.
That makes the mixture the book's oracle: a sampler run with the exact denoiser has only
discretisation error, so its error can be measured against the exact distribution.
Reference: Bishop, *Pattern Recognition and Machine Learning* (2006), §2.3.3 (conditioning) and §9.2.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from diffbook._checks import check_int, check_levels, check_real, check_state, per_sample
from diffbook.param import Denoiser

__all__ = ["GaussianMixture", "mixture_denoiser"]


def _check_weights(weights: Tensor, k: int) -> None:
    check_state(weights, "weights")
    if weights.shape != (k,):
        raise ValueError(f"weights must have shape ({k},), got {tuple(weights.shape)}")
    if not bool(torch.isfinite(weights).all()) or (weights <= 0).any() or abs(float(weights.sum()) - 1.0) > 1e-6:
        raise ValueError(f"weights must be positive and sum to 1, got {weights.tolist()}")


def _level(value: Tensor | float, x: Tensor, name: str, *, positive: bool = False) -> Tensor:
    """A noise coefficient (scalar or per-sample ``(n,)``) as shape ``()`` or ``(n, 1)``, validated."""
    v = per_sample(value, x, name)
    check_levels(v, name, positive=positive)
    return v


@dataclass(frozen=True)
class GaussianMixture:
    """``p(x) = Σ_k w_k N(x; μ_k, Σ_k)`` in ``d`` dimensions.

    Attributes:
        weights: shape ``(K,)``, positive, summing to 1.
        means: shape ``(K, d)``.
        covs: shape ``(K, d, d)``, symmetric positive semi-definite (zero gives point masses: the empirical
            distribution of a data set, whose noisy versions at ``σ > 0`` are proper mixtures).

    Methods take query points ``x`` of shape ``(n, d)`` and noise coefficients ``alpha``, ``sigma`` that are
    scalars or shape ``(n,)``.

    Reference: Bishop (2006), §2.3.3 (Gaussian conditioning) and §9.2 (mixtures).
    """

    weights: Tensor
    means: Tensor
    covs: Tensor

    def __post_init__(self) -> None:
        for name in ("weights", "means", "covs"):
            check_state(getattr(self, name), name)
        k, d = self.means.shape if self.means.ndim == 2 else (None, None)
        if k is None:
            raise ValueError(f"means must have shape (K, d), got {tuple(self.means.shape)}")
        if k < 1 or d < 1:
            raise ValueError(f"means must have shape (K, d) with K, d >= 1, got {tuple(self.means.shape)}")
        _check_weights(self.weights, k)
        if self.covs.shape != (k, d, d):
            raise ValueError(f"covs must have shape ({k}, {d}, {d}), got {tuple(self.covs.shape)}")
        if not bool(torch.isfinite(self.means).all()) or not bool(torch.isfinite(self.covs).all()):
            raise ValueError("means and covs must be finite")
        if not torch.allclose(self.covs, self.covs.mT):
            raise ValueError("covs must be symmetric")
        low = torch.linalg.eigvalsh(self.covs).min(dim=-1).values  # (K,)
        tol = 1e-10 * self.covs.abs().amax(dim=(-2, -1)).clamp_min(1.0)
        if bool((low < -tol).any()):
            bad = int((low < -tol).nonzero()[0, 0])
            raise ValueError(f"covs must be positive semi-definite; component {bad} has eigenvalue "
                             f"{float(low[bad]):.3g}")

    @classmethod
    def isotropic(cls, weights: Tensor, means: Tensor, std: float | Tensor) -> "GaussianMixture":
        """Components ``N(μ_k, std_k² I)``: ``weights`` ``(K,)``, ``means`` ``(K, d)``, ``std`` a number or shape
        ``(K,)``, ``>= 0`` (0 gives point masses)."""
        check_state(means, "means")
        check_state(weights, "weights")
        if means.ndim != 2:
            raise ValueError(f"means must have shape (K, d), got {tuple(means.shape)}")
        k, d = means.shape
        if isinstance(std, bool) or not isinstance(std, (int, float, Tensor)):
            raise TypeError(f"std must be a number or a tensor of shape ({k},), got {type(std).__name__}")
        std = torch.as_tensor(std, dtype=means.dtype, device=means.device)
        if std.shape not in ((), (k,)):
            raise ValueError(f"std must be a number or have shape ({k},), got {tuple(std.shape)}")
        if not bool(torch.isfinite(std).all()) or (std < 0).any():
            raise ValueError(f"std must be finite and >= 0, got {std.tolist()}")
        std = std.expand(k)
        covs = std[:, None, None] ** 2 * torch.eye(d, dtype=means.dtype, device=means.device)
        return cls(weights.to(means), means, covs)

    @property
    def dim(self) -> int:
        """The dimension ``d``."""
        return self.means.shape[1]

    def mean(self) -> Tensor:
        """The mixture mean, shape ``(d,)``."""
        return self.weights @ self.means

    def covariance(self) -> Tensor:
        """The mixture covariance ``Σ_k w_k (Σ_k + μ_k μ_kᵀ) - m mᵀ``, shape ``(d, d)``."""
        m = self.mean()
        second = (self.weights[:, None, None] * (self.covs + self.means[:, :, None] * self.means[:, None, :])).sum(0)
        return second - torch.outer(m, m)

    def noised(self, alpha: float | Tensor, sigma: float | Tensor) -> "GaussianMixture":
        """The law of ``α x₀ + σ ε``: ``Σ_k w_k N(α μ_k, α² Σ_k + σ² I)`` (scalar α, σ)."""
        alpha = torch.as_tensor(check_real(alpha, "alpha"), dtype=self.means.dtype, device=self.means.device)
        sigma = torch.as_tensor(check_real(sigma, "sigma", nonnegative=True), dtype=self.means.dtype,
                                device=self.means.device)
        eye = torch.eye(self.dim, dtype=self.means.dtype, device=self.means.device)
        return GaussianMixture(self.weights, alpha * self.means, alpha**2 * self.covs + sigma**2 * eye)

    def sample(self, n: int, *, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        """``n`` samples, shape ``(n, d)``, and their component labels, shape ``(n,)``."""
        check_int(n, "n")
        dev = self.means.device
        labels = torch.multinomial(self.weights, n, replacement=True, generator=generator)
        z = torch.randn(n, self.dim, generator=generator, dtype=self.means.dtype, device=dev)
        chol, info = torch.linalg.cholesky_ex(self.covs)
        if bool((info != 0).any()):  # singular components (e.g. point masses): a symmetric square root instead
            vals, vecs = torch.linalg.eigh(self.covs)
            chol = vecs * vals.clamp_min(0.0).sqrt()[:, None, :]
        return self.means[labels] + (chol[labels] @ z[:, :, None])[:, :, 0], labels

    # -- densities at a noise level ----------------------------------------------------------------
    # Internally every query point gets its own covariance α²Σ_k + σ²I: shape (n, K, d, d) or (K, d, d).

    def _noisy_components(self, x: Tensor, alpha: Tensor | float, sigma: Tensor | float) -> tuple[Tensor, Tensor]:
        check_state(x, "x")
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise ValueError(f"x must have shape (n, {self.dim}), got {tuple(x.shape)}")
        a, s = _level(alpha, x, "alpha"), _level(sigma, x, "sigma")
        eye = torch.eye(self.dim, dtype=x.dtype, device=x.device)
        if a.ndim == 0 and s.ndim == 0:
            means = a * self.means.to(x)
            covs = a**2 * self.covs.to(x) + s**2 * eye
        else:
            a3, s3 = a.expand(x.shape[0], 1)[:, :, None, None], s.expand(x.shape[0], 1)[:, :, None, None]
            means = a.expand(x.shape[0], 1)[:, :, None] * self.means.to(x)
            covs = a3**2 * self.covs.to(x) + s3**2 * eye  # (n, K, d, d)
        return means, covs

    def _log_components(self, x: Tensor, means: Tensor, covs: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Per-component log densities ``(n, K)``, the Cholesky factors, and the whitened residuals."""
        chol, info = torch.linalg.cholesky_ex(covs)
        if bool((info != 0).any()):
            raise ValueError("the noisy covariance α² Σ_k + σ² I is singular: sigma must be > 0 for a mixture whose "
                             "covariances are singular (e.g. point masses)")
        diff = x[:, None, :] - means  # (n, K, d)
        sol = torch.linalg.solve_triangular(chol.expand(x.shape[0], -1, -1, -1), diff[..., None], upper=False)[..., 0]
        logdet = 2.0 * torch.log(torch.diagonal(chol, dim1=-2, dim2=-1)).sum(-1)
        logn = -0.5 * (sol**2).sum(-1) - 0.5 * logdet - 0.5 * self.dim * math.log(2 * math.pi)
        return logn + torch.log(self.weights.to(x)), chol, diff

    def log_prob(self, x: Tensor, alpha: Tensor | float = 1.0, sigma: Tensor | float = 0.0) -> Tensor:
        """``log p(x)`` of the noised mixture (``α = 1, σ = 0``: the data), shape ``(n,)``."""
        means, covs = self._noisy_components(x, alpha, sigma)
        logc, _, _ = self._log_components(x, means, covs)
        return torch.logsumexp(logc, dim=1)

    def responsibilities(self, x: Tensor, alpha: Tensor | float = 1.0, sigma: Tensor | float = 0.0) -> Tensor:
        """``P(k | x)`` under the noised mixture, shape ``(n, K)``."""
        means, covs = self._noisy_components(x, alpha, sigma)
        logc, _, _ = self._log_components(x, means, covs)
        return torch.softmax(logc, dim=1)

    def score(self, x: Tensor, alpha: Tensor | float = 1.0, sigma: Tensor | float = 0.0) -> Tensor:
        """``∇_x log p(x) = -Σ_k r_k(x) C_k⁻¹ (x - m_k)`` of the noised mixture, shape ``(n, d)``."""
        means, covs = self._noisy_components(x, alpha, sigma)
        logc, chol, diff = self._log_components(x, means, covs)
        r = torch.softmax(logc, dim=1)
        prec_diff = torch.cholesky_solve(diff[..., None], chol.expand(x.shape[0], -1, -1, -1))[..., 0]
        return -(r[..., None] * prec_diff).sum(1)

    def posterior_mean(self, x: Tensor, alpha: Tensor | float, sigma: Tensor | float) -> Tensor:
        """``E[x₀ | α x₀ + σ ε = x]`` by Gaussian conditioning, shape ``(n, d)``.

        Per component, ``E[x₀ | x, k] = μ_k + α Σ_k C_k⁻¹ (x - α μ_k)`` with ``C_k = α² Σ_k + σ² I``; the mixture
        weights them by ``P(k | x)``. Computed without Tweedie's formula, so the two can be checked against
        each other.
        """
        means, covs = self._noisy_components(x, alpha, sigma)
        logc, chol, diff = self._log_components(x, means, covs)
        r = torch.softmax(logc, dim=1)
        a = per_sample(alpha, x, "alpha")
        a = a[:, :, None] if a.ndim else a
        gain = torch.cholesky_solve(diff[..., None], chol.expand(x.shape[0], -1, -1, -1))  # C⁻¹(x - αμ)
        cond = self.means.to(x) + a * (self.covs.to(x) @ gain)[..., 0]
        return (r[..., None] * cond).sum(1)

    def denoiser(self, x: Tensor, sigma: Tensor | float, **cond: object) -> Tensor:
        """The exact denoiser in VE-equivalent variables: ``D(x̄; σ̄) = E[x₀ | x₀ + σ̄ ε = x̄]``.

        Has the :data:`diffbook.param.Denoiser` signature, so it can drive every sampler. ``x``: ``(n, d)``;
        ``sigma``: a scalar or ``(n,)``, ``>= 0``; returns ``(n, d)``. For isotropic components
        :func:`mixture_denoiser` gives the same numbers without per-sample covariance matrices.
        """
        return self.posterior_mean(x, 1.0, sigma)


def mixture_denoiser(means: Tensor, weights: Tensor | None = None, stds: Tensor | float = 0.0) -> Denoiser:
    """The exact denoiser ``D(x̄; σ̄) = E[x₀ | x₀ + σ̄ ε = x̄]`` of an isotropic Gaussian mixture.

    The data are ``x₀ ~ Σ_k w_k N(μ_k, s_k² I)``. Given ``x̄``, component ``k`` has responsibility
    ``r_k ∝ w_k N(x̄; μ_k, (s_k² + σ̄²) I)`` and conditional mean ``μ_k + s_k²/(s_k² + σ̄²) (x̄ - μ_k)``, so
    ``D = Σ_k r_k (μ_k + s_k²/(s_k² + σ̄²)(x̄ - μ_k))``. With ``stds = 0`` the mixture is the empirical
    distribution of the points ``μ_k``, and ``D`` is the *ideal denoiser* of that finite data set
    (Karras et al. 2022, eq. 57): the exact score of the training set, which a network only approximates.

    The same numbers as :meth:`diffbook.toy.GaussianMixture.denoiser` for isotropic components, but without
    per-sample covariance matrices, so it is fast for many points, many components (a whole data set) and
    many dimensions (images). Distances are computed in float64, which keeps the softmax exact down to
    ``σ̄ ≈ 1e-3`` on data of unit scale.

    Args:
        means: component means (or data points), shape ``(K, ...)``, e.g. ``(K, d)`` or ``(K, C, H, W)``.
        weights: mixture weights, shape ``(K,)``, positive, summing to 1; ``None`` for uniform.
        stds: component standard deviations ``s_k``, a number or shape ``(K,)``, ``>= 0``.
    Returns:
        A denoiser ``D(x, sigma) -> x0_hat`` for ``x`` of shape ``(n, ...)`` matching ``means.shape[1:]`` and
        ``sigma`` a scalar or shape ``(n,)``; the output has ``x``'s shape and dtype.
    Raises:
        TypeError: if ``means``, ``weights`` or ``stds`` is not a floating-point tensor (or a number for ``stds``).
        ValueError: for an empty ``means``, mismatched shapes, negative ``stds``, or weights that are not
            positive or do not sum to 1.

    Reference: Karras et al. (2022), Eq. 57; Bishop (2006), §2.3.3.
    """
    check_state(means, "means")
    if means.ndim < 2 or means.shape[0] < 1:
        raise ValueError(f"means must have shape (K, ...) with K >= 1, got {tuple(means.shape)}")
    if not bool(torch.isfinite(means).all()):
        raise ValueError("means must be finite")
    k = means.shape[0]
    mu = means.detach().reshape(k, -1).to(torch.float64)
    if weights is None:
        log_w = torch.full((k,), -math.log(k), dtype=torch.float64, device=means.device)
    else:
        _check_weights(weights, k)
        log_w = weights.detach().to(device=means.device, dtype=torch.float64).log()
    if isinstance(stds, (int, float)) and not isinstance(stds, bool):
        s2 = torch.full((k,), float(stds) ** 2, dtype=torch.float64, device=means.device)
        bad = not math.isfinite(stds) or stds < 0
    else:
        check_state(stds, "stds")
        assert isinstance(stds, Tensor)
        if stds.shape not in ((), (k,)):
            raise ValueError(f"stds must be a number or have shape ({k},), got {tuple(stds.shape)}")
        s2 = stds.detach().to(device=means.device, dtype=torch.float64).expand(k) ** 2
        bad = bool((stds < 0).any()) or not bool(torch.isfinite(stds).all())
    if bad:
        raise ValueError("stds must be finite and >= 0")
    mu_sq = (mu * mu).sum(1)
    dim = mu.shape[1]

    def denoiser(x: Tensor, sigma: Tensor | float, **cond: Any) -> Tensor:
        check_state(x, "x")
        if tuple(x.shape[1:]) != tuple(means.shape[1:]):
            raise ValueError(f"x must have shape (n, {', '.join(map(str, means.shape[1:]))}), got {tuple(x.shape)}")
        xf = x.detach().reshape(x.shape[0], -1).to(torch.float64)
        s = per_sample(sigma, xf, "sigma", expand=True, dtype=torch.float64)  # (n, 1)
        check_levels(s, "sigma", positive=False)
        var = s2[None, :] + s**2  # (n, K): s_k² + σ̄²
        if (var <= 0).any():
            raise ValueError("sigma must be > 0 for components with std 0 (the ideal denoiser is undefined at σ = 0)")
        d2 = ((xf * xf).sum(1)[:, None] + mu_sq[None, :] - 2.0 * xf @ mu.T).clamp_min(0.0)
        logits = log_w[None, :] - 0.5 * d2 / var - 0.5 * dim * var.log()
        r = torch.softmax(logits, dim=1)  # responsibilities (n, K)
        shrink = r * (s2[None, :] / var)  # weight of x̄ - μ_k in the posterior mean
        out = r @ mu + shrink.sum(1, keepdim=True) * xf - shrink @ mu
        return out.to(x.dtype).reshape(x.shape)

    return denoiser
