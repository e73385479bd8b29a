"""Guidance: classifier guidance and classifier-free guidance (CFG) as wrappers that return a denoiser with
the book's contract ``denoiser(x, sigma, **cond) -> x0_hat``, and exact references to test them against.

**Convention.** The CFG *weight* ``w`` follows Ho & Salimans (2022, eq. 6):

    ``D_w(x; σ, c) = D(x; σ, ∅) + (1 + w) (D(x; σ, c) - D(x; σ, ∅))``,

so ``w = 0`` is the plain conditional model, ``w = -1`` the unconditional one, and ``w > 0`` extrapolates
away from the unconditional prediction. Libraries that speak of a *guidance scale* ``γ`` (e.g. diffusers'
``guidance_scale``) use ``γ = 1 + w``. Because ε, the score and the flow velocity are affine functions of
``D`` at a fixed noise level, the same combination of any of them gives the same guided sampler.

**Classifier guidance** with scale ``γ`` (Dhariwal & Nichol 2021, §4; Song et al. 2021, App. I) adds the
gradient of a classifier of the *noisy* input: in VE-equivalent variables ``x̄ = x₀ + σ̄ ε``,

    ``D_γ(x̄; σ̄, c) = D(x̄; σ̄) + γ σ̄² ∇_x̄ log p_σ̄(c | x̄)``,

which is Tweedie's formula applied to the score ``∇log p(x̄) + γ ∇log p(c | x̄)``. With the exact classifier,
``γ = 1`` gives the exact conditional denoiser, and ``γ = 1 + w`` coincides with CFG of weight ``w``.

References: J. Ho and T. Salimans, *Classifier-Free Diffusion Guidance* (2022), eq. 6 and Algorithm 1;
P. Dhariwal and A. Nichol, *Diffusion Models Beat GANs on Image Synthesis*, NeurIPS 2021, §4.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from diffbook._checks import check_callable, check_levels, check_state, per_sample
from diffbook.param import Denoiser
from diffbook.toy import GaussianMixture

__all__ = [
    "LogPosterior",
    "guided_combination",
    "classifier_free_guidance",
    "classifier_guidance",
    "ClassMixture",
    "gaussian_pair_denoiser",
    "gaussian_pair_cfg_variance",
    "gaussian_pair_tilted_variance",
]

LogPosterior = Callable[[Tensor, Tensor, Tensor], Tensor]
"""``log_posterior(x, sigma, labels) -> (n,)``: ``log p_σ̄(c | x̄)`` of a classifier of noisy inputs."""


def _check_weight(w: object, name: str) -> float:
    if isinstance(w, bool) or not isinstance(w, (int, float)) or not math.isfinite(w):
        raise TypeError(f"{name} must be a finite real number, got {w!r}")
    return float(w)


def _check_denoiser(denoiser: object, name: str = "denoiser") -> None:
    check_callable(denoiser, name, f"{name}(x, sigma, **cond)")


def _sigma_column(sigma: Tensor | float, x: Tensor) -> Tensor:
    """σ̄ as shape ``(n, 1, ...)`` to broadcast against ``x``, validated."""
    s = per_sample(sigma, x, "sigma", expand=True)
    check_levels(s, "sigma", positive=False)
    return s


def guided_combination(cond: Tensor, uncond: Tensor, w: float) -> Tensor:
    """``uncond + (1 + w)(cond - uncond)``: CFG of weight ``w`` applied to any affine prediction
    (denoiser, ε, score or velocity), same shape as the inputs (Ho & Salimans 2022, eq. 6).

    Reference: Ho & Salimans (2022), Eq. 6.
    """
    check_state(cond, "cond")
    check_state(uncond, "uncond")
    if cond.shape != uncond.shape:
        raise ValueError(f"cond and uncond must have the same shape, got {tuple(cond.shape)} and {tuple(uncond.shape)}")
    w = _check_weight(w, "w")
    return uncond + (1.0 + w) * (cond - uncond)


def classifier_free_guidance(
    denoiser: Denoiser,
    w: float,
    *,
    null_label: int | None = None,
    uncond_denoiser: Denoiser | None = None,
    label_key: str = "labels",
) -> Denoiser:
    """Wrap a conditional denoiser into the CFG denoiser ``D_w`` of weight ``w`` (module docstring).

    The unconditional prediction ``D(x; σ, ∅)`` comes from, in order of preference:

    * ``uncond_denoiser(x, sigma, **other_cond)``, a separate model, if given;
    * one batched call of ``denoiser`` on ``2n`` inputs whose second half carries ``null_label`` (the learned
      null class of :class:`~diffbook.nets.UNet` and :class:`~diffbook.nets.MLP`), if ``null_label`` is given:
      one network evaluation instead of two;
    * otherwise ``denoiser(x, sigma, **other_cond)``, i.e. the same call without ``label_key``.

    With ``w = 0`` only the conditional model is evaluated.

    Args:
        denoiser: the conditional denoiser ``denoiser(x, sigma, **{label_key: c}, **other_cond)``.
        w: the guidance weight (``w = 0``: no guidance; diffusers' ``guidance_scale`` is ``1 + w``).
        label_key: the keyword that carries the condition.
    Returns:
        ``guided(x, sigma, **cond)``, a denoiser.

    Reference: Ho & Salimans (2022), Eq. 6 and Algorithm 2.
    """
    _check_denoiser(denoiser)
    if uncond_denoiser is not None:
        _check_denoiser(uncond_denoiser, "uncond_denoiser")
    w = _check_weight(w, "w")
    if null_label is not None and (isinstance(null_label, bool) or not isinstance(null_label, int)):
        raise TypeError(f"null_label must be an int or None, got {null_label!r}")

    def guided(x: Tensor, sigma: Tensor | float, **cond: Any) -> Tensor:
        if label_key not in cond or cond[label_key] is None:
            raise ValueError(f"the CFG denoiser needs the condition {label_key}=...; it got {sorted(cond)}")
        d_cond_only = w == 0.0
        if d_cond_only:
            return denoiser(x, sigma, **cond)
        other = {k: v for k, v in cond.items() if k != label_key}
        if uncond_denoiser is not None:
            return guided_combination(denoiser(x, sigma, **cond), uncond_denoiser(x, sigma, **other), w)
        if null_label is not None:
            labels = cond[label_key]
            if not isinstance(labels, Tensor) or labels.shape != (x.shape[0],):
                raise ValueError(f"{label_key} must be a tensor of shape ({x.shape[0]},) for the batched call")
            s = per_sample(sigma, x, "sigma", expand=True).reshape(-1)
            both = denoiser(torch.cat([x, x]), torch.cat([s, s]),
                            **{label_key: torch.cat([labels, torch.full_like(labels, null_label)])}, **other)
            d_c, d_u = both.chunk(2)
            return guided_combination(d_c, d_u, w)
        return guided_combination(denoiser(x, sigma, **cond), denoiser(x, sigma, **other), w)

    return guided


def classifier_guidance(
    denoiser: Denoiser,
    log_posterior: LogPosterior,
    scale: float,
    *,
    label_key: str = "labels",
    conditional_base: bool = False,
) -> Denoiser:
    """Wrap a denoiser into ``D_γ(x̄; σ̄, c) = D(x̄; σ̄) + γ σ̄² ∇_x̄ log p_σ̄(c | x̄)`` (Dhariwal & Nichol 2021, §4).

    Args:
        denoiser: the base denoiser; called without the condition unless ``conditional_base``.
        log_posterior: ``log_posterior(x, sigma, labels) -> (n,)``, the log-probability of the class under a
            classifier of noisy inputs (differentiable in ``x``); ``sigma`` has shape ``(n,)``.
        scale: ``γ``; ``γ = 1`` with the exact classifier and an unconditional base gives ``p(x | c)``.
        label_key: the keyword that carries the class.
        conditional_base: also pass the class to ``denoiser`` (guiding a conditional model).
    Returns:
        ``guided(x, sigma, **cond)``, a denoiser. The gradient is taken with autograd even under ``no_grad``.

    Reference: Dhariwal & Nichol (2021), §4 and Algorithm 1; Song et al. (2021), App. I.
    """
    _check_denoiser(denoiser)
    if not callable(log_posterior):
        raise TypeError(f"log_posterior must be callable as log_posterior(x, sigma, labels), got {type(log_posterior).__name__}")
    scale = _check_weight(scale, "scale")

    def guided(x: Tensor, sigma: Tensor | float, **cond: Any) -> Tensor:
        check_state(x, "x")
        if label_key not in cond or cond[label_key] is None:
            raise ValueError(f"classifier guidance needs the class {label_key}=...; it got {sorted(cond)}")
        labels = cond[label_key]
        other = cond if conditional_base else {k: v for k, v in cond.items() if k != label_key}
        s = _sigma_column(sigma, x)
        base = denoiser(x, sigma, **other)
        with torch.enable_grad():
            xg = x.detach().requires_grad_(True)
            logp = log_posterior(xg, s.reshape(-1), labels)
            if not isinstance(logp, Tensor) or logp.shape != (x.shape[0],):
                raise ValueError(f"log_posterior must return shape ({x.shape[0]},)")
            (grad,) = torch.autograd.grad(logp.sum(), xg)
        return base + scale * s**2 * grad.to(base.dtype)

    return guided


# ----------------------------------------------------------------------------------------------------------
# Exact references: a Gaussian mixture whose components are grouped into classes


@dataclass(frozen=True)
class ClassMixture:
    """Labelled mixture data: ``p(x) = Σ_k w_k N(μ_k, Σ_k)`` where component ``k`` belongs to class ``classes[k]``.

    Then ``p(c) = Σ_{k ∈ c} w_k`` and ``p(x | c)`` is the mixture of the components of class ``c`` with
    renormalised weights. Every noisy quantity is exact: the class-conditional and unconditional denoisers,
    and the classifier ``log p_σ̄(c | x̄) = log p(c) + log p_σ̄(x̄ | c) - log p_σ̄(x̄)`` of noisy inputs
    ``x̄ = x₀ + σ̄ ε``, so guidance can be checked against the truth.

    Attributes:
        mixture: the unconditional mixture, ``K`` components in ``d`` dimensions.
        classes: shape ``(K,)``, integer class of each component; classes are ``0 … C-1``, each non-empty.

    Reference: Dhariwal & Nichol (2021), §4 (the classifier it stands in for); Bishop (2006), §9.2.
    """

    mixture: GaussianMixture
    classes: Tensor

    def __post_init__(self) -> None:
        if not isinstance(self.mixture, GaussianMixture):
            raise TypeError(f"mixture must be a GaussianMixture, got {type(self.mixture).__name__}")
        k = self.mixture.weights.shape[0]
        if not isinstance(self.classes, Tensor) or self.classes.dtype.is_floating_point or self.classes.shape != (k,):
            raise ValueError(f"classes must be an integer tensor of shape ({k},)")
        present = torch.unique(self.classes)
        if int(present.min()) != 0 or present.numel() != int(present.max()) + 1:
            raise ValueError("classes must use every label 0 … C-1 at least once")

    @property
    def num_classes(self) -> int:
        """The number of classes ``C``."""
        return int(self.classes.max()) + 1

    def class_prior(self) -> Tensor:
        """``p(c)``, shape ``(C,)``.

        Reference: Bishop (2006), §9.2.
        """
        out = torch.zeros(self.num_classes, dtype=self.mixture.weights.dtype, device=self.mixture.weights.device)
        return out.index_add_(0, self.classes.to(out.device), self.mixture.weights)

    def component(self, c: int) -> GaussianMixture:
        """``p(x | c)``: the mixture of class ``c``'s components with renormalised weights.

        Reference: Bishop (2006), §9.2.
        """
        if isinstance(c, bool) or not isinstance(c, int) or not 0 <= c < self.num_classes:
            raise ValueError(f"c must be a class index in 0 … {self.num_classes - 1}, got {c!r}")
        m = self.mixture
        keep = (self.classes == c).to(m.weights.device)
        w = m.weights[keep]
        return GaussianMixture(w / w.sum(), m.means[keep], m.covs[keep])

    def sample(self, labels: Tensor, *, generator: torch.Generator | None = None) -> Tensor:
        """One exact sample of ``p(x | c)`` for every entry of ``labels`` ``(n,)``; shape ``(n, d)``.

        Reference: Bishop (2006), §11.1 (ancestral sampling of a mixture).
        """
        labels = self._check_labels(labels)
        out = torch.empty(labels.shape[0], self.mixture.dim, dtype=self.mixture.means.dtype, device=self.mixture.means.device)
        for c in range(self.num_classes):
            idx = (labels == c).nonzero().flatten()
            if idx.numel():
                out[idx] = self.component(c).sample(int(idx.numel()), generator=generator)[0]
        return out

    def _check_labels(self, labels: object) -> Tensor:
        if not isinstance(labels, Tensor) or labels.dtype.is_floating_point or labels.ndim != 1:
            raise TypeError("labels must be a 1-D integer tensor")
        if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= self.num_classes):
            raise ValueError(f"labels must lie in 0 … {self.num_classes - 1}")
        return labels

    def log_posterior(self, x: Tensor, sigma: Tensor | float, labels: Tensor) -> Tensor:
        """``log p_σ̄(c | x̄)`` for noisy points ``x̄ = x₀ + σ̄ ε``, shape ``(n,)``; differentiable in ``x``.

        Args:
            x: shape ``(n, d)``; sigma: a scalar or shape ``(n,)``; labels: the classes ``c``, shape ``(n,)``.

        Reference: Bishop (2006), Eq. 4.57 (Bayes' rule for class posteriors); Dhariwal & Nichol (2021), §4.
        """
        check_state(x, "x")
        labels = self._check_labels(labels)
        if labels.shape != (x.shape[0],):
            raise ValueError(f"labels must have shape ({x.shape[0]},), got {tuple(labels.shape)}")
        log_prior = torch.log(self.class_prior()).to(x)
        per_class = torch.stack([self.component(c).log_prob(x, 1.0, sigma) for c in range(self.num_classes)], 1)
        joint = per_class + log_prior
        return joint.gather(1, labels.reshape(-1, 1)).squeeze(1) - torch.logsumexp(joint, dim=1)

    def denoiser(self, x: Tensor, sigma: Tensor | float, labels: Tensor | None = None) -> Tensor:
        """The exact denoiser: ``E[x₀ | x̄]`` if ``labels`` is ``None``, else ``E[x₀ | x̄, c]`` per sample,
        shape ``(n, d)``.

        Reference: Bishop (2006), §2.3.3 (Gaussian conditioning).
        """
        if labels is None:
            return self.mixture.denoiser(x, sigma)
        check_state(x, "x")
        labels = self._check_labels(labels)
        if labels.shape != (x.shape[0],):
            raise ValueError(f"labels must have shape ({x.shape[0]},), got {tuple(labels.shape)}")
        s = per_sample(sigma, x, "sigma", expand=True).reshape(-1)
        out = torch.empty_like(x)
        for c in range(self.num_classes):
            idx = (labels == c).nonzero().flatten()
            if idx.numel():
                out[idx] = self.component(c).posterior_mean(x[idx], 1.0, s[idx])
        return out


# ----------------------------------------------------------------------------------------------------------
# Exact references: a jointly Gaussian pair, where the CFG sampler has a closed form


def _check_tau(tau: object) -> float:
    if isinstance(tau, bool) or not isinstance(tau, (int, float)) or not (math.isfinite(tau) and tau > 0):
        raise ValueError(f"tau must be a finite number > 0, got {tau!r}")
    return float(tau)


def gaussian_pair_denoiser(tau: float) -> Denoiser:
    """The exact denoiser of the pair ``c ~ N(0, 1)``, ``x₀ | c ~ N(c, τ² I)`` (so ``x₀ ~ N(0, (1 + τ²) I)``).

    ``D(x̄; σ̄, c) = c + τ²/(τ² + σ̄²) (x̄ - c)`` and, without ``c``, ``D(x̄; σ̄) = (1 + τ²)/(1 + τ² + σ̄²) x̄``
    (Gaussian conditioning). ``c`` is passed as the keyword ``c``, a tensor broadcastable against ``x``.

    Reference: Bishop (2006), §2.3.3 (Gaussian conditioning).
    """
    tau = _check_tau(tau)

    def denoiser(x: Tensor, sigma: Tensor | float, c: Tensor | None = None) -> Tensor:
        check_state(x, "x")
        s2 = _sigma_column(sigma, x) ** 2
        if c is None:
            return (1.0 + tau**2) / (1.0 + tau**2 + s2) * x
        c = torch.as_tensor(c, dtype=x.dtype, device=x.device)
        return c + tau**2 / (tau**2 + s2) * (x - c)

    return denoiser


def gaussian_pair_cfg_variance(tau: float, w: float, sigma_max: float = math.inf) -> float:
    """The variance of the exact CFG probability-flow ODE's output for the pair of :func:`gaussian_pair_denoiser`.

    Started at ``σ̄_max`` from the exact conditional marginal ``N(c, τ² + σ̄_max²)`` and integrated exactly to
    ``σ̄ = 0`` with guidance weight ``w``, the output is Gaussian with variance (per coordinate)

        ``τ² (τ²/(1 + τ²))^w ((1 + τ² + σ̄_max²)/(τ² + σ̄_max²))^w``,

    which is ``τ² (τ²/(1 + τ²))^w`` as ``σ̄_max → ∞``, and ``τ²`` (the variance of ``p(x | c)``) only when ``w = 0``.
    Derived in Chapter 8 (theorem "CFG on a Gaussian pair").

    Reference: Ho & Salimans (2022), Eq. 6; the closed form is derived in Chapter 8.
    """
    tau = _check_tau(tau)
    w = _check_weight(w, "w")
    if isinstance(sigma_max, bool) or not isinstance(sigma_max, (int, float)) or not sigma_max > 0:
        raise ValueError(f"sigma_max must be a number > 0 (or math.inf), got {sigma_max!r}")
    t2 = tau**2
    start = 1.0 if math.isinf(sigma_max) else (1.0 + t2 + sigma_max**2) / (t2 + sigma_max**2)
    return t2 * (t2 / (1.0 + t2)) ** w * start**w


def gaussian_pair_tilted_variance(tau: float, w: float) -> float:
    """The variance of the *tilted* density ``p(x | c)^{1+w} p(x)^{-w}`` for the Gaussian pair:
    ``1 / ((1 + w)/τ² - w/(1 + τ²))`` (infinite if the precision is not positive). The CFG score at
    ``σ̄ = 0`` is this density's score, but the CFG sampler does not sample it.

    Reference: Ho & Salimans (2022), §3.2 (the tilted density p(x | c)^{1+w} p(x)^{-w}).
    """
    tau = _check_tau(tau)
    w = _check_weight(w, "w")
    precision = (1.0 + w) / tau**2 - w / (1.0 + tau**2)
    return 1.0 / precision if precision > 0 else math.inf
