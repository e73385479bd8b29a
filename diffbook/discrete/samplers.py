"""Samplers for discrete diffusion, as functions that own their loop (DESIGN §3.4).

Every sampler takes the "network" as a callable, a grid ``alphas`` of shape ``(steps + 1,)`` (``α`` at
``t = 0, 1/steps, …, 1``, strictly decreasing; :func:`~diffbook.discrete.schedule.alpha_grid`) and a
``torch.Generator``; it returns token ids of shape ``(n, length)``. Step ``k`` goes from ``α_t = alphas[k]``
to ``α_s = alphas[k − 1]``; the model is only ever called at ``t > 0``.

* :func:`sample_mdm` — masked diffusion, ancestral (MDLM). ``model(z, alpha)`` gives logits over ``K`` tokens.
* :func:`sample_udm` — uniform diffusion with the plug-in bridge. ``model(z, alpha)`` gives logits of ``L``
  (``output="loo"``) or ``D`` (``output="denoiser"``); the bridge is fed ``L`` (``plug_in="loo"``, correct) or
  ``D`` (``plug_in="denoiser"``, the double-counting bug). Temperature goes on ``L`` or on ``D``; an optional
  greedy last step takes the argmax of ``D`` or of ``L``; an optional informed Gibbs predictor–corrector.
* :func:`sample_audm` and :func:`sample_reaudm` — the absorbing-state reformulation of uniform diffusion.
  ``model(z, u, alpha)`` gives denoiser logits given the per-position noise token ``u``.

Reference: Sahoo et al. (2024), MDLM, Eq. 7 (ancestral); Schiff et al. (2025), UDLM, Eq. 5 (plug-in bridge);
Gourevitch et al. (2026), §3–4 (LOO vs denoiser, informed corrector, AUDM, ReAUDM).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from diffbook._checks import check_callable, check_int, check_real
from diffbook.discrete.conversions import denoiser_to_loo_logits, loo_to_conditional, loo_to_denoiser_logits
from diffbook.discrete.forward import absorbing_bridge, uniform_bridge
from diffbook.discrete.schedule import check_alphas

__all__ = ["sample_mdm", "sample_udm", "sample_audm", "sample_reaudm", "categorical"]


def categorical(probs: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """One draw per row of ``probs`` of shape ``(..., K)`` (Gumbel-max on ``log p``), shape ``(...)``."""
    u = torch.rand(probs.shape, generator=generator, dtype=torch.float64, device=probs.device)
    gumbel = -torch.log(-torch.log(u.clamp(1e-300, 1 - 1e-16)))
    return (probs.double().clamp_min(1e-300).log() + gumbel).argmax(-1)


def _setup(model: object, signature: str, n: int, length: int, vocab: int, alphas: Tensor, temperature: float,
           ) -> tuple[Tensor, float]:
    check_callable(model, "model", signature)
    check_int(n, "n")
    check_int(length, "length")
    check_int(vocab, "vocab", minimum=2)
    check_alphas(alphas)
    temperature = check_real(temperature, "temperature", positive=True)
    return alphas.double().cpu(), temperature


def _model_logits(model: Callable[..., Tensor], *args: Tensor, n: int, length: int, vocab: int) -> Tensor:
    out = model(*args)
    if not isinstance(out, Tensor) or out.shape[:2] != (n, length) or out.shape[-1] < vocab:
        raise ValueError(f"model must return logits of shape ({n}, {length}, {vocab}), got "
                         f"{tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__}")
    return out[..., :vocab].double().cpu()


def sample_mdm(model: Callable[[Tensor, Tensor], Tensor], n: int, length: int, vocab: int, alphas: Tensor, *,
               temperature: float = 1.0, greedy_last: bool = False,
               generator: torch.Generator | None = None) -> Tensor:
    """Masked diffusion, ancestral: start fully masked (id ``vocab``); each step unmasks a masked token to
    ``k`` w.p. ``(α_s − α_t) x̂_k/(1 − α_t)``; unmasked tokens are carried over (SUBS).

    Args:
        model: ``model(z, alpha) -> logits (n, length, ≥ vocab)``; ``z`` has ids in ``0 … vocab`` (``vocab`` = mask),
            ``alpha`` shape ``(n,)``.
        n, length, vocab: how many sequences, how long, and ``K``.
        alphas: shape ``(steps + 1,)``, strictly decreasing from ``α_0`` to ``α_1``.
        temperature: divides the logits of ``x̂``.
        greedy_last: take the argmax of ``x̂`` at the last step instead of a draw.
    Returns:
        Shape ``(n, length)``, int64; tokens in ``0 … vocab − 1`` when ``alphas[0] = 1``.

    Reference: Sahoo et al. (2024), MDLM, Eq. 7 and §3.3 (SUBS).
    """
    alphas, temperature = _setup(model, "model(z, alpha)", n, length, vocab, alphas, temperature)
    z = torch.full((n, length), vocab, dtype=torch.long)
    steps = len(alphas) - 1
    for k in range(steps, 0, -1):
        a_t, a_s = alphas[k], alphas[k - 1]
        logits = _model_logits(model, z, a_t.expand(n), n=n, length=length, vocab=vocab)
        x_hat = torch.softmax(logits / temperature, -1)
        if k == 1 and greedy_last:
            z = torch.where(z == vocab, x_hat.argmax(-1), z)
        else:
            z = categorical(absorbing_bridge(z, x_hat, a_s, a_t), generator)
    return z


def _to_loo(logits: Tensor, z: Tensor, alpha: Tensor, output: str) -> Tensor:
    return logits if output == "loo" else denoiser_to_loo_logits(logits, z, alpha)


def sample_udm(model: Callable[[Tensor, Tensor], Tensor], n: int, length: int, vocab: int, alphas: Tensor, *,
               output: str = "loo", plug_in: str = "loo", temperature: float = 1.0, temperature_on: str = "loo",
               greedy_last: str | None = None, corrector_steps: int = 0, corrector_k: int | None = None,
               generator: torch.Generator | None = None) -> Tensor:
    """Uniform diffusion with the plug-in bridge ``q(z_s | z_t, x̂)``, started from ``Unif(K)^length``.

    Args:
        model: ``model(z, alpha) -> logits (n, length, vocab)`` of ``L`` or of ``D`` (see ``output``).
        output: what the model returns: ``"loo"`` (an ELBO-trained UDM) or ``"denoiser"`` (a CE-trained one).
        plug_in: what the bridge is fed: ``"loo"`` (correct: the bridge with ``x̂ = L`` is the exact reverse
            step) or ``"denoiser"`` (the bug: ``x̂ = D`` counts ``z_t^i``'s own evidence twice).
        temperature: ``T``; applied as ``softmax(logits / T)`` in the space ``temperature_on``.
        temperature_on: ``"loo"`` or ``"denoiser"``; the tempered distribution is then converted to ``plug_in``'s.
        greedy_last: ``None`` (draw), ``"denoiser"`` (last step = argmax of ``D = P(x_0 | z_t)``, right) or
            ``"loo"`` (argmax of ``L``, the misuse of an ELBO-trained model).
        corrector_steps: Gibbs corrector updates after each step at ``t > 0`` (0: none); each calls the model once.
        corrector_k: positions resampled per update (default ``max(1, length // 8)``), chosen with the lowest
            log-margin ``log p(z^i) − max_{j≠z^i} log p(j)`` under ``p = α L + (1 − α)/K``, Gumbel-top-k randomised.
    Returns:
        Shape ``(n, length)``, int64.

    Reference: Schiff et al. (2025), UDLM, Eq. 5; Gourevitch et al. (2026), §3 (LOO, informed corrector).
    """
    alphas, temperature = _setup(model, "model(z, alpha)", n, length, vocab, alphas, temperature)
    for name, value, allowed in (("output", output, ("loo", "denoiser")), ("plug_in", plug_in, ("loo", "denoiser")),
                                 ("temperature_on", temperature_on, ("loo", "denoiser")),
                                 ("greedy_last", greedy_last, (None, "loo", "denoiser"))):
        if value not in allowed:
            raise ValueError(f"{name} must be one of {allowed}, got {value!r}")
    check_int(corrector_steps, "corrector_steps", minimum=0)
    k_pos = max(1, length // 8) if corrector_k is None else check_int(corrector_k, "corrector_k")
    k_pos = min(k_pos, length)
    z = torch.randint(0, vocab, (n, length), generator=generator)
    steps = len(alphas) - 1
    for k in range(steps, 0, -1):
        a_t, a_s = alphas[k], alphas[k - 1]
        at = a_t.expand(n)
        log_l = _to_loo(_model_logits(model, z, at, n=n, length=length, vocab=vocab), z, at, output)
        if temperature_on == "loo":
            log_l = torch.log_softmax(log_l / temperature, -1)
        else:
            log_d = torch.log_softmax(loo_to_denoiser_logits(log_l, z, at) / temperature, -1)
            log_l = denoiser_to_loo_logits(log_d, z, at)
        if k == 1 and greedy_last is not None:
            z = (loo_to_denoiser_logits(log_l, z, at) if greedy_last == "denoiser" else log_l).argmax(-1)
            break
        x_hat = torch.softmax(log_l if plug_in == "loo" else loo_to_denoiser_logits(log_l, z, at), -1)
        z = categorical(uniform_bridge(z, x_hat, a_s, a_t), generator)
        if a_s < 1:
            for _ in range(corrector_steps):
                z = _gibbs_update(model, z, a_s, output, k_pos, vocab, generator)
    return z


def _gibbs_update(model: Callable[[Tensor, Tensor], Tensor], z: Tensor, a_s: Tensor, output: str, k_pos: int,
                  vocab: int, generator: torch.Generator | None) -> Tensor:
    """One informed Gibbs update: resample the ``k_pos`` least-confident positions from ``p_s(z^i | z^{−i})``."""
    n, length = z.shape
    at = a_s.expand(n)
    log_l = _to_loo(_model_logits(model, z, at, n=n, length=length, vocab=vocab), z, at, output)
    p = loo_to_conditional(torch.softmax(log_l, -1), at)
    logp = p.clamp_min(1e-300).log()
    own = logp.gather(-1, z[..., None])[..., 0]
    others = logp.scatter(-1, z[..., None], float("-inf")).amax(-1)
    margin = own - others
    u = torch.rand(margin.shape, generator=generator, dtype=torch.float64)
    score = -margin - torch.log(-torch.log(u.clamp(1e-300, 1 - 1e-16)))
    pick = score.topk(k_pos, dim=-1).indices
    fresh = categorical(p, generator)
    chosen = torch.zeros_like(z, dtype=torch.bool).scatter(-1, pick, True)
    return torch.where(chosen, fresh, z)


def sample_audm(model: Callable[[Tensor, Tensor, Tensor], Tensor], n: int, length: int, vocab: int, alphas: Tensor, *,
                temperature: float = 1.0, greedy_last: bool = False,
                generator: torch.Generator | None = None) -> Tensor:
    """AUDM: draw ``u ~ Unif(K)^length``, start at ``z = u``. An *active* token (``z^i = u^i``) moves to
    ``z_s ~ [(α_s − α_t) p + (1 − α_s) δ_u]/(1 − α_t)``; an inactive one is clean and frozen.

    Args:
        model: ``model(z, u, alpha) -> denoiser logits (n, length, vocab)`` given ``u``.
    Returns:
        Shape ``(n, length)``, int64.

    Reference: Gourevitch et al. (2026), §4 (AUDM sampler).
    """
    alphas, temperature = _setup(model, "model(z, u, alpha)", n, length, vocab, alphas, temperature)
    u = torch.randint(0, vocab, (n, length), generator=generator)
    z = u.clone()
    steps = len(alphas) - 1
    for k in range(steps, 0, -1):
        a_t, a_s = alphas[k], alphas[k - 1]
        p = torch.softmax(_model_logits(model, z, u, a_t.expand(n), n=n, length=length, vocab=vocab) / temperature, -1)
        active = z == u
        if k == 1 and greedy_last:
            new = p.argmax(-1)
        else:
            w = (a_s - a_t) * p + (1 - a_s) * torch.nn.functional.one_hot(u, vocab).double()
            new = categorical(w / (1 - a_t), generator)
        z = torch.where(active, new, z)
    return z


def sample_reaudm(model: Callable[[Tensor, Tensor, Tensor], Tensor], n: int, length: int, vocab: int, alphas: Tensor,
                  *, temperature: float = 1.0, generator: torch.Generator | None = None) -> Tensor:
    """ReAUDM (re-masking AUDM): draw ``x̂_0 ~ p``, then ``z_s`` from the *uniform* bridge ``q(z_s | z_t, x̂_0)``,
    and a new ``u_s``: ``u_s = z_s`` if ``z_s ≠ x̂_0``; if ``z_s = x̂_0``, ``u_s = z_s`` w.p. ``1/(1 + (K − 1) α_s)``
    and otherwise a uniform pick among the other ``K − 1`` tokens. Committed tokens can thus be re-noised.

    Args:
        model: ``model(z, u, alpha) -> denoiser logits (n, length, vocab)``.
    Returns:
        Shape ``(n, length)``, int64.

    Reference: Gourevitch et al. (2026), §4 (ReAUDM), as described by the rev_udm code (``ReAUDM``).
    """
    alphas, temperature = _setup(model, "model(z, u, alpha)", n, length, vocab, alphas, temperature)
    u = torch.randint(0, vocab, (n, length), generator=generator)
    z = u.clone()
    steps = len(alphas) - 1
    for k in range(steps, 0, -1):
        a_t, a_s = alphas[k], alphas[k - 1]
        p = torch.softmax(_model_logits(model, z, u, a_t.expand(n), n=n, length=length, vocab=vocab) / temperature, -1)
        x0 = categorical(p, generator)
        z = categorical(uniform_bridge(z, torch.nn.functional.one_hot(x0, vocab).double(), a_s, a_t), generator)
        if a_s >= 1:
            break
        keep = torch.rand(z.shape, generator=generator, dtype=torch.float64) < 1 / (1 + (vocab - 1) * a_s)
        other = (z + torch.randint(1, vocab, z.shape, generator=generator)) % vocab
        u = torch.where(z != x0, z, torch.where(keep, z, other))
    return z
