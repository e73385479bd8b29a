"""Training objectives for the four networks of the chapter, and adapters that turn a trained network into the
"network" callable the samplers and :func:`~diffbook.discrete.nelbo.estimate_nelbo` take.

=========  =======================================  ===============================
network    loss (per sequence, nats per character)  what its logits are
=========  =======================================  ===============================
``mdm``    MDLM NELBO                               ``P(x^i | unmasked)``
``udm``    UDLM NELBO (the ELBO)                    ``L``, the leave-one-out posterior
``udm_ce`` cross-entropy ``−log D(x_0)``            ``D``, the denoiser
``audm``   AUDM NELBO                               ``P(x^i | z, u)``
=========  =======================================  ===============================

The losses follow :data:`diffbook.train.LossFn`: ``loss(model, batch, generator) -> (n,)``.

Reference: Sahoo et al. (2024), Schiff et al. (2025), Gourevitch et al. (2026) (the four objectives).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from diffbook.discrete.forward import sample_absorbing, sample_audm, sample_uniform
from diffbook.discrete.nelbo import audm_terms, denoiser_ce, draw_times, mdlm_terms, udlm_terms
from diffbook.discrete.schedule import EPS, linear_alpha, linear_alpha_derivative

__all__ = ["NETWORKS", "make_loss", "as_model"]

NETWORKS = ("mdm", "udm", "udm_ce", "audm")


def make_loss(network: str, vocab: int, *, eps: float = EPS) -> Callable[[nn.Module, Tensor, torch.Generator], Tensor]:
    """The training loss of ``network`` (one of :data:`NETWORKS`), per sequence and per character (nats).

    The batch is clean tokens of shape ``(n, L)``; ``t`` is drawn antithetically from ``generator``.
    """
    if network not in NETWORKS:
        raise ValueError(f"network must be one of {NETWORKS}, got {network!r}")

    def loss(model: nn.Module, x0: Tensor, generator: torch.Generator) -> Tensor:
        n, length = x0.shape
        t = draw_times(n, generator=generator)
        a, da = linear_alpha(t, eps), linear_alpha_derivative(t, eps)
        dev = x0.device
        a_d, da_d = a.float().to(dev), da.float().to(dev)
        if network == "mdm":
            z = sample_absorbing(x0.cpu(), a, vocab, generator=generator).to(dev)
            return mdlm_terms(model(z, a_d), x0, z, a_d, da_d) / length
        if network in ("udm", "udm_ce"):
            z = sample_uniform(x0.cpu(), a, vocab, generator=generator).to(dev)
            logits = model(z, a_d)
            if network == "udm":
                return udlm_terms(logits, x0, z, a_d, da_d) / length
            return denoiser_ce(logits, x0) / length
        z, u = sample_audm(x0.cpu(), a, vocab, generator=generator)
        z, u = z.to(dev), u.to(dev)
        return audm_terms(model(z, a_d, u), x0, z, u, a_d, da_d) / length

    return loss


def as_model(net: nn.Module, network: str) -> Callable[..., Tensor]:
    """Wrap a trained :class:`~diffbook.discrete.network.TokenDenoiser` as the sampler contract: float64 logits
    of shape ``(n, L, K)`` on the CPU, no autograd graph. ``"audm"`` gives ``model(z, u, alpha)``; the others
    ``model(z, alpha)``."""
    if network not in NETWORKS:
        raise ValueError(f"network must be one of {NETWORKS}, got {network!r}")
    net.eval()
    device = next(net.parameters()).device

    if network == "audm":
        @torch.no_grad()
        def audm_model(z: Tensor, u: Tensor, alpha: Tensor) -> Tensor:
            return net(z.to(device), alpha.float().to(device), u.to(device)).double().cpu()

        return audm_model

    @torch.no_grad()
    def model(z: Tensor, alpha: Tensor) -> Tensor:
        return net(z.to(device), alpha.float().to(device)).double().cpu()

    return model
