"""Checkers for the exercises of Chapter 10 (uniform discrete diffusion: D, L, the bridge, AUDM, the oracle)."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from diffbook.discrete import conversions, forward, oracle, samplers, schedule
from diffbook.exercises.answers import as_number, as_tensor, as_tuple, close, diagnose
from diffbook.exercises.core import Fail, call, checker

__all__ = ["check_loo_to_denoiser", "check_uniform_bridge", "check_loo_posterior", "check_audm_step",
           "check_logit_shift", "check_my_chain"]

f64 = torch.float64


def _case(seed: int, n: int = 4, length: int = 6, vocab: int = 5) -> tuple[Tensor, Tensor]:
    g = torch.Generator().manual_seed(seed)
    probs = torch.softmax(2 * torch.randn(n, length, vocab, generator=g, dtype=f64), -1)
    z = torch.randint(0, vocab, (n, length), generator=g)
    return probs, z


def _normalise(t: Tensor) -> Tensor:
    return t / t.sum(-1, keepdim=True)


@checker("10.1", "loo_to_denoiser")
def check_loo_to_denoiser(fn: Any) -> str:
    """Exercise 10.1: ``loo_to_denoiser(L, z, alpha) -> D`` (probabilities, shape ``(n, L, K)``)."""
    loo, z = _case(101)
    vocab = loo.shape[-1]
    onehot = torch.nn.functional.one_hot(z, vocab).double()
    for alpha in (0.3, 0.8):
        truth = conversions.loo_to_denoiser(loo, z, alpha)  # the reference, before the student's code runs
        factor = 1 + vocab * alpha / (1 - alpha)
        out = as_tensor(call(fn, "loo_to_denoiser", loo, z, alpha), "loo_to_denoiser", tuple(loo.shape))
        mistakes = [
            (loo, "you returned L unchanged: D also sees the noisy token z^i itself."),
            (loo * (1 + (factor - 1) * onehot), "the weights are right but D must be normalised to sum to one over k."),
            (_normalise(loo / (1 + (factor - 1) * onehot)), "that is the inverse conversion, D → L: D *multiplies* the "
                                                           "current token's probability by 1 + Kα/(1 − α)."),
            (_normalise(loo * (1 + vocab * alpha * onehot)), "the factor is 1 + Kα/(1 − α): you dropped the 1 − α."),
            (_normalise(loo * (1 + (vocab - 1) * alpha / (1 - alpha) * onehot)), "the factor uses K, not K − 1: "
                                                                                   "q(z | z) = α + (1 − α)/K."),
            (_normalise(loo * (vocab * alpha / (1 - alpha)) ** onehot),
             "the factor is 1 + Kα/(1 − α), not Kα/(1 − α)."),
        ]
        diagnose(out, truth, mistakes, f"at α = {alpha} your D is off by up to {{err}}; see (eq-ch10-bayes).")
    return "D ∝ L · (1 + Kα/(1 − α) · 1[k = z^i]): the current token's own evidence, counted once."


@checker("10.2", "uniform_bridge")
def check_uniform_bridge(fn: Any) -> str:
    """Exercise 10.2: ``uniform_bridge(z_t, x_hat, alpha_s, alpha_t) -> q(z_s | z_t, x̂)``, shape ``(n, L, K)``."""
    x_hat, z = _case(102)
    vocab = x_hat.shape[-1]
    a_s, a_t = 0.7, 0.25
    truth = forward.uniform_bridge(z, x_hat, a_s, a_t)
    onehot = torch.nn.functional.one_hot(z, vocab).double()
    prior = a_s * x_hat + (1 - a_s) / vocab
    out = as_tensor(call(fn, "uniform_bridge", z, x_hat, a_s, a_t), "uniform_bridge", tuple(x_hat.shape))
    mistakes = [
        (_normalise(prior),
         "you left out the likelihood q(z_t | z_s = k): the step must lean toward the current token."),
        (_normalise(prior * (a_t * onehot + (1 - a_t) / vocab)), "q(z_t | z_s) keeps a token with α_{t|s} = α_t/α_s, "
                                                                 "not α_t (that is q(z_t | x_0))."),
        (prior * (a_t / a_s * onehot + (1 - a_t / a_s) / vocab), "the weights are right; normalise over k."),
        (_normalise((a_t * x_hat + (1 - a_t) / vocab) * (a_s * onehot + (1 - a_s) / vocab)),
         "α_s and α_t are swapped: the prior term is α_s x̂ + (1 − α_s)/K, and the kernel keeps with α_t/α_s."),
        (x_hat, "you returned x̂: that is only right at the last step with α_s = 1 and α_t = 0."),
    ]
    diagnose(out, truth, mistakes, "your bridge is off by up to {err}; see (eq-ch10-bridge).")
    last = as_tensor(call(fn, "uniform_bridge", z, x_hat, 1.0, a_t), "uniform_bridge", tuple(x_hat.shape))
    if not close(last, forward.uniform_bridge(z, x_hat, 1.0, a_t)):
        raise Fail("right for α_s < 1, but wrong at the last step α_s = 1 (check for a division by 1 − α_s).")
    return "q(z_s = k | z_t, x̂) ∝ (α_{t|s} 1[k = z_t] + (1 − α_{t|s})/K)(α_s x̂_k + (1 − α_s)/K)."


def _small_chain() -> oracle.MarkovChain:
    g = torch.Generator().manual_seed(103)
    p = torch.rand(3, 3, generator=g, dtype=f64) ** 2 + 0.05
    pi = torch.rand(3, generator=g, dtype=f64) + 0.2
    return oracle.MarkovChain(pi / pi.sum(), p / p.sum(1, keepdim=True))


@checker("10.3", "loo_posterior")
def check_loo_posterior(fn: Any) -> str:
    """Exercise 10.3: ``loo_posterior(initial, transition, z, alpha) -> L``, shape ``(len(z), K)``, one sequence."""
    chain = _small_chain()
    z = torch.tensor([2, 0, 0, 1, 2])
    for alpha in (0.2, 0.6):
        d, l = oracle.uniform_posteriors(chain, z[None], alpha)
        truth, den = l[0], d[0]
        prior_marg, _, _ = oracle.forward_backward(chain, torch.ones(1, 5, 3, dtype=f64))
        out = as_tensor(call(fn, "loo_posterior", chain.initial, chain.transition, z, alpha), "loo_posterior", (5, 3))
        mistakes = [
            (den, "that is D = P(x^i | z), which also uses z^i: L leaves position i's own observation out."),
            (prior_marg[0], "that is the prior marginal P(x^i): it ignores the noisy observations altogether."),
            (oracle.forward_backward(chain, oracle.uniform_emissions(z[None], 1 - alpha, 3))[1][0],
             "you used 1 − α as the keep probability: α is the probability that a token is still clean."),
        ]
        diagnose(out, truth, mistakes, f"at α = {alpha} your L is off by up to {{err}}.")
    return "L^i(k) ∝ f_i(k) b_i(k): the forward message before position i's emission times the backward message."


@checker("10.4", "audm_step")
def check_audm_step(fn: Any) -> str:
    """Exercise 10.4: ``audm_step(z, u, p, alpha_s, alpha_t) -> probabilities of z_s``, shape ``(n, L, K)``."""
    p, z = _case(104)
    vocab = p.shape[-1]
    g = torch.Generator().manual_seed(105)
    u = torch.where(torch.rand(z.shape, generator=g) < 0.5, z, torch.randint(0, vocab, z.shape, generator=g))
    a_s, a_t = 0.6, 0.2
    eye_u = torch.nn.functional.one_hot(u, vocab).double()
    eye_z = torch.nn.functional.one_hot(z, vocab).double()
    active = (z == u)[..., None]
    move = ((a_s - a_t) * p + (1 - a_s) * eye_u) / (1 - a_t)
    truth = torch.where(active, move, eye_z)
    out = as_tensor(call(fn, "audm_step", z, u, p, a_s, a_t), "audm_step", tuple(p.shape))
    mistakes = [
        (move, "inactive tokens (z ≠ u) are provably clean and must stay as they are."),
        (torch.where(active, _normalise((a_s - a_t) * p + (1 - a_t) * eye_u), eye_z),
         "the weight of staying at u is 1 − α_s (still noisy at time s), not 1 − α_t."),
        (torch.where(active, p, eye_z),
         "an active token unmasks only with probability (α_s − α_t)/(1 − α_t) per step."),
        (torch.where(active, forward.uniform_bridge(z, p, a_s, a_t), eye_z),
         "that is the uniform bridge; given u, AUDM is masked diffusion with mask value u."),
    ]
    diagnose(out, truth, mistakes, "your step is off by up to {err}.")
    return "Active tokens move to [(α_s − α_t) p + (1 − α_s) δ_u]/(1 − α_t); inactive ones are frozen."


@checker("10.5", "shift")
def check_logit_shift(value: Any) -> str:
    """Exercise 10.5: the logit shift ``log(1 + Kα/(1 − α))`` at ``K = 27``, ``α = 0.9``, in nats."""
    truth = math.log1p(27 * 0.9 / 0.1)
    v = as_number(value, "shift")
    if abs(v - truth) < 1e-3:
        return f"log(1 + 27·9) = log 244 ≈ {truth:.4f} nats: late in sampling the current token dominates D."
    for wrong, msg in [(1 + 27 * 9, "that is the factor itself; the shift is its logarithm."),
                       (math.log(27 * 9), "the factor is 1 + Kα/(1 − α); you dropped the 1."),
                       (27 * 9, "that is Kα/(1 − α) without the 1 and without the logarithm."),
                       (math.log1p(26 * 9), "K is 27 (space and a–z), not 26."),
                       (math.log2(244), "in nats, please: the natural logarithm.")]:
        if abs(v - wrong) < 1e-3 * max(1.0, abs(wrong)):
            raise Fail(msg)
    raise Fail(f"{v:.4g} is not it; compute 1 + Kα/(1 − α) at K = 27, α = 0.9 and take the natural log.")


def _as_chain(fn: Any) -> oracle.MarkovChain:
    out = call(fn, "my_chain")
    if isinstance(out, oracle.MarkovChain):
        return out
    init, trans = as_tuple(out, "my_chain", 2, "the pair (initial, transition) or an oracle.MarkovChain")
    init, trans = as_tensor(init, "my_chain()[0] (initial)"), as_tensor(trans, "my_chain()[1] (transition)")
    try:
        return oracle.MarkovChain(init, trans)
    except (TypeError, ValueError) as err:
        raise Fail(f"`my_chain()` is not a valid chain: {err}") from err


@checker("10.6", "my_chain")
def check_my_chain(fn: Any) -> str:
    """Exercise 10.6: ``my_chain() -> (initial, transition)`` (or a ``MarkovChain``), a chain of the student's own,
    predictable enough (entropy rate ≤ 0.6 log K) that the sampler mismatch shows: UDM fed D must be at least
    0.2 nats/token worse than UDM fed L."""
    chain = _as_chain(fn)
    vocab = chain.vocab
    if not 3 <= vocab <= 40:
        raise Fail(f"use between 3 and 40 tokens (so the check runs in seconds), got K = {vocab}")
    rate = chain.entropy_rate()
    if rate > 0.6 * math.log(vocab):
        raise Fail(f"the chain's entropy rate is {rate:.3f} nats, more than 0.6 log K = {0.6 * math.log(vocab):.3f}: "
                   "near-uniform data look the same whichever posterior is used. "
                   "Make the transitions more predictable.")
    al = schedule.alpha_grid(16)
    n, length = 64, 16
    runs = {}
    feeds = [("L", {}, oracle.uniform_oracle(chain, "loo")),
             ("D", dict(output="denoiser", plug_in="denoiser"), oracle.uniform_oracle(chain, "denoiser"))]
    for name, kw, model in feeds:
        x = samplers.sample_udm(model, n, length, vocab, al, generator=torch.Generator().manual_seed(106), **kw)
        runs[name] = float(-chain.log_prob(x).mean()) / length
    gap = runs["D"] - runs["L"]
    if gap < 0.2:
        raise Fail(f"on your chain UDM fed D scores {runs['D']:.3f} and fed L {runs['L']:.3f} nats/token "
                   f"(gap {gap:.3f} < 0.2): make the chain more predictable, so that the noisy tokens matter.")
    return (f"your chain (K = {vocab}, entropy rate {rate:.3f} nats): UDM fed L {runs['L']:.3f}, fed D {runs['D']:.3f} "
            f"nats/token, a gap of {gap:.2f} from the sampler alone.")
