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

import torch
from torch import Tensor

from diffbook._checks import check_state

__all__ = ["GaussianMixture"]


def _bcast_level(level: Tensor | float, x: Tensor) -> Tensor:
    """A noise coefficient as shape ``(n, 1)`` (per sample) or ``()``."""
    level = torch.as_tensor(level, dtype=x.dtype, device=x.device)
    if level.ndim == 0:
        return level
    if level.shape != (x.shape[0],):
        raise ValueError(f"a per-sample noise level must have shape ({x.shape[0]},), got {tuple(level.shape)}")
    return level[:, None]


@dataclass(frozen=True)
class GaussianMixture:
    """``p(x) = Σ_k w_k N(x; μ_k, Σ_k)`` in ``d`` dimensions.

    Attributes:
        weights: shape ``(K,)``, positive, summing to 1.
        means: shape ``(K, d)``.
        covs: shape ``(K, d, d)``, symmetric positive definite.
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
        if self.weights.shape != (k,):
            raise ValueError(f"weights must have shape ({k},), got {tuple(self.weights.shape)}")
        if self.covs.shape != (k, d, d):
            raise ValueError(f"covs must have shape ({k}, {d}, {d}), got {tuple(self.covs.shape)}")
        if (self.weights <= 0).any() or abs(float(self.weights.sum()) - 1.0) > 1e-6:
            raise ValueError("weights must be positive and sum to 1")

    @classmethod
    def isotropic(cls, weights: Tensor, means: Tensor, std: float | Tensor) -> "GaussianMixture":
        """Components ``N(μ_k, std_k² I)``; ``std`` a number or shape ``(K,)``."""
        k, d = means.shape
        std = torch.as_tensor(std, dtype=means.dtype, device=means.device).expand(k)
        covs = std[:, None, None] ** 2 * torch.eye(d, dtype=means.dtype, device=means.device)
        return cls(weights.to(means), means, covs)

    @property
    def dim(self) -> int:
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
        alpha = torch.as_tensor(alpha, dtype=self.means.dtype, device=self.means.device)
        sigma = torch.as_tensor(sigma, dtype=self.means.dtype, device=self.means.device)
        if alpha.ndim or sigma.ndim:
            raise ValueError("noised() takes scalar alpha and sigma; use log_prob/score/posterior_mean for per-sample levels")
        eye = torch.eye(self.dim, dtype=self.means.dtype, device=self.means.device)
        return GaussianMixture(self.weights, alpha * self.means, alpha**2 * self.covs + sigma**2 * eye)

    def sample(self, n: int, *, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        """``n`` samples, shape ``(n, d)``, and their component labels, shape ``(n,)``."""
        if not isinstance(n, int) or n < 1:
            raise ValueError(f"n must be a positive int, got {n!r}")
        dev = self.means.device
        labels = torch.multinomial(self.weights, n, replacement=True, generator=generator)
        z = torch.randn(n, self.dim, generator=generator, dtype=self.means.dtype, device=dev)
        chol = torch.linalg.cholesky(self.covs)
        return self.means[labels] + (chol[labels] @ z[:, :, None])[:, :, 0], labels

    # -- densities at a noise level ----------------------------------------------------------------
    # Internally every query point gets its own covariance α²Σ_k + σ²I: shape (n, K, d, d) or (K, d, d).

    def _noisy_components(self, x: Tensor, alpha: Tensor | float, sigma: Tensor | float) -> tuple[Tensor, Tensor]:
        check_state(x, "x")
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise ValueError(f"x must have shape (n, {self.dim}), got {tuple(x.shape)}")
        a, s = _bcast_level(alpha, x), _bcast_level(sigma, x)
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
        chol = torch.linalg.cholesky(covs)
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
        a = _bcast_level(alpha, x)
        a = a[:, :, None] if a.ndim else a
        gain = torch.cholesky_solve(diff[..., None], chol.expand(x.shape[0], -1, -1, -1))  # C⁻¹(x - αμ)
        cond = self.means.to(x) + a * (self.covs.to(x) @ gain)[..., 0]
        return (r[..., None] * cond).sum(1)

    def denoiser(self, x: Tensor, sigma: Tensor | float, **cond: object) -> Tensor:
        """The exact denoiser in VE-equivalent variables: ``D(x̄; σ̄) = E[x₀ | x₀ + σ̄ ε = x̄]``.

        Has the :data:`diffbook.param.Denoiser` signature, so it can drive every sampler.
        """
        return self.posterior_mean(x, 1.0, sigma)
