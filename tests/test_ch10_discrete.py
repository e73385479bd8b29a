"""Chapter 10: uniform discrete diffusion, the leave-one-out posterior L and the denoiser D, MDM and AUDM.

Every test asserts numbers with a stated tolerance and is named for the bug it catches. The exact oracle
(forward–backward on a Markov chain) is checked against brute-force enumeration, and then used as the
"network" of every sampler.
"""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from diffbook.discrete import conversions, forward, nelbo, ngram, oracle, samplers, schedule, training
from diffbook.discrete.network import TokenDenoiser

f64 = torch.float64


def random_chain(vocab: int, seed: int, sharp: float = 3.0) -> oracle.MarkovChain:
    g = torch.Generator().manual_seed(seed)
    p = torch.rand(vocab, vocab, generator=g, dtype=f64) ** sharp + 1e-3
    pi = torch.rand(vocab, generator=g, dtype=f64) + 0.1
    return oracle.MarkovChain(pi / pi.sum(), p / p.sum(1, keepdim=True))


def enumerate_posteriors(chain, emissions_row):
    """Brute force over all K^L clean sequences: (D, L) for one emission table of shape (L, K)."""
    length, vocab = emissions_row.shape
    xs = torch.tensor(list(itertools.product(range(vocab), repeat=length)))
    prior = chain.log_prob(xs).exp()
    lik = emissions_row[torch.arange(length), xs]  # (K^L, L)
    d = torch.zeros(length, vocab, dtype=f64)
    l = torch.zeros(length, vocab, dtype=f64)
    for i in range(length):
        w_all = prior * lik.prod(1)
        w_loo = prior * torch.cat([lik[:, :i], lik[:, i + 1:]], 1).prod(1)
        for k in range(vocab):
            d[i, k] = w_all[xs[:, i] == k].sum()
            l[i, k] = w_loo[xs[:, i] == k].sum()
    return d / d.sum(1, keepdim=True), l / l.sum(1, keepdim=True), float(torch.log((prior * lik.prod(1)).sum()))


CHAIN = random_chain(3, 0)


# --------------------------------------------------------------------------------------- the exact oracle


@pytest.mark.parametrize("alpha", [0.05, 0.4, 0.9])
def test_oracle_posteriors_sum_to_one_and_equal_brute_force_enumeration(alpha):
    z = torch.tensor([[0, 2, 1, 1], [2, 2, 0, 1]])
    d, l = oracle.uniform_posteriors(CHAIN, z, alpha)
    assert torch.allclose(d.sum(-1), torch.ones(2, 4, dtype=f64), atol=1e-12)
    assert torch.allclose(l.sum(-1), torch.ones(2, 4, dtype=f64), atol=1e-12)
    e = oracle.uniform_emissions(z, alpha, 3)
    _, _, log_ev = oracle.forward_backward(CHAIN, e)
    for row in range(2):
        d_bf, l_bf, ev_bf = enumerate_posteriors(CHAIN, e[row])
        assert (d[row] - d_bf).abs().max() < 1e-12
        assert (l[row] - l_bf).abs().max() < 1e-12
        assert abs(float(log_ev[row]) - ev_bf) < 1e-12


def test_masked_and_audm_oracles_equal_brute_force_enumeration():
    z = torch.tensor([[3, 1, 3, 0]])  # id 3 = mask
    d = oracle.masked_oracle(CHAIN)(z, torch.tensor([0.5])).exp()
    d_bf, _, _ = enumerate_posteriors(CHAIN, oracle.masked_emissions(z, 3)[0])
    assert (d[0] - d_bf).abs().max() < 1e-12
    assert torch.allclose(d[0, 1], torch.tensor([0.0, 1.0, 0.0], dtype=f64))  # an unmasked token is known
    zu, u = torch.tensor([[1, 2, 0, 0]]), torch.tensor([[1, 0, 0, 2]])
    da = oracle.audm_oracle(CHAIN)(zu, u, torch.tensor([0.3], dtype=f64)).exp()
    da_bf, _, _ = enumerate_posteriors(CHAIN, oracle.audm_emissions(zu, u, 0.3, 3)[0])
    assert (da[0] - da_bf).abs().max() < 1e-12
    assert float(da[0, 1, 2]) == pytest.approx(1.0, abs=1e-12)  # inactive (z != u): provably clean


def test_loo_posterior_ignores_the_current_token_but_denoiser_does_not():
    z1, z2 = torch.tensor([[0, 2, 1, 1]]), torch.tensor([[0, 0, 1, 1]])
    d1, l1 = oracle.uniform_posteriors(CHAIN, z1, 0.6)
    d2, l2 = oracle.uniform_posteriors(CHAIN, z2, 0.6)
    assert (l1[0, 1] - l2[0, 1]).abs().max() < 1e-12
    assert (d1[0, 1] - d2[0, 1]).abs().max() > 0.1


# --------------------------------------------------------------------------------------- L <-> D


@pytest.mark.parametrize("alpha", [0.01, 0.5, 0.97])
def test_loo_denoiser_conversion_round_trips_and_equals_bayes_on_the_chain(alpha):
    chain = random_chain(5, 1)
    z = chain.sample(6, 7, generator=torch.Generator().manual_seed(2))
    d, l = oracle.uniform_posteriors(chain, z, alpha)
    assert (conversions.loo_to_denoiser(l, z, alpha) - d).abs().max() < 1e-10
    assert (conversions.denoiser_to_loo(d, z, alpha) - l).abs().max() < 1e-10
    logits = torch.randn(6, 7, 5, generator=torch.Generator().manual_seed(3), dtype=f64)
    back = conversions.denoiser_to_loo_logits(conversions.loo_to_denoiser_logits(logits, z, alpha), z, alpha)
    assert (back - logits).abs().max() < 1e-12
    # the self-evidence factor: log(1 + K α/(1 − α)) at the current token, nothing elsewhere
    shift = conversions.loo_to_denoiser_logits(logits, z, alpha) - logits
    assert float(shift.gather(-1, z[..., None]).min()) == pytest.approx(math.log1p(5 * alpha / (1 - alpha)), rel=1e-12)
    assert float(shift.abs().sum()) == pytest.approx(42 * math.log1p(5 * alpha / (1 - alpha)), rel=1e-12)


def test_bridge_fed_loo_is_the_exact_one_token_reverse_step_and_fed_denoiser_is_not():
    """Σ_k D(k) q(z_s | z_t, x_0 = k) (the true reverse marginal) equals the plug-in bridge at x̂ = L."""
    chain = random_chain(4, 4)
    z = chain.sample(5, 6, generator=torch.Generator().manual_seed(5))
    a_t, a_s = 0.3, 0.55
    d, l = oracle.uniform_posteriors(chain, z, a_t)
    onehots = torch.eye(4, dtype=f64)
    exact = sum(d[..., k:k + 1] * forward.uniform_bridge(z, onehots[k].expand(5, 6, 4), a_s, a_t) for k in range(4))
    assert (forward.uniform_bridge(z, l, a_s, a_t) - exact).abs().max() < 1e-12
    assert (forward.uniform_bridge(z, d, a_s, a_t) - exact).abs().max() > 0.05


def test_uniform_bridge_matches_the_udlm_closed_form():
    g = torch.Generator().manual_seed(6)
    vocab, a_s, a_t = 6, 0.7, 0.2
    x_hat = torch.softmax(torch.randn(3, 5, vocab, generator=g, dtype=f64), -1)
    z = torch.randint(0, vocab, (3, 5), generator=g)
    zt = torch.nn.functional.one_hot(z, vocab).double()
    a_ts = a_t / a_s
    num = (vocab * a_t * zt * x_hat + (a_ts - a_t) * zt + (a_s - a_t) * x_hat
           + (a_s - a_t) * (1 - a_s) / (vocab * a_s))
    den = vocab * a_t * (zt * x_hat).sum(-1, keepdim=True) + 1 - a_t
    assert (forward.uniform_bridge(z, x_hat, a_s, a_t) - num / den).abs().max() < 1e-12


def test_absorbing_bridge_keeps_unmasked_tokens_and_unmasks_at_the_right_rate():
    x_hat = torch.full((1, 2, 3), 1 / 3, dtype=f64)
    q = forward.absorbing_bridge(torch.tensor([[3, 1]]), x_hat, 0.6, 0.2)
    assert torch.allclose(q[0, 0], torch.tensor([0.5 / 3] * 3 + [0.5], dtype=f64))
    assert torch.allclose(q[0, 1], torch.tensor([0, 1.0, 0, 0], dtype=f64))


def test_audm_marginals_equal_udm_marginals_monte_carlo():
    """Marginalising u, AUDM's z_t has the uniform law α e_x + (1 − α)/K (tolerance: 5 standard errors)."""
    n, vocab, alpha = 200_000, 4, 0.35
    x0 = torch.full((n, 1), 2)
    z, _ = forward.sample_audm(x0, alpha, vocab, generator=torch.Generator().manual_seed(7))
    freq = torch.bincount(z[:, 0], minlength=vocab).double() / n
    law = forward.uniform_marginal(x0[:1], alpha, vocab)[0, 0]
    se = (law * (1 - law) / n).sqrt()
    assert ((freq - law).abs() < 5 * se).all(), (freq, law)


# --------------------------------------------------------------------------------------- NELBOs


@pytest.mark.parametrize("process", ["mdm", "udm", "audm"])
def test_each_nelbo_upper_bounds_the_exact_nll_and_is_tight_for_the_exact_oracle(process):
    chain, wrong = random_chain(5, 8), random_chain(5, 9)
    g = torch.Generator().manual_seed(10)
    x = chain.sample(400, 10, generator=g)
    nll = -chain.log_prob(x)
    models = {"mdm": oracle.masked_oracle, "udm": lambda c: oracle.uniform_oracle(c, "loo"), "audm": oracle.audm_oracle}
    exact = nelbo.estimate_nelbo(process, models[process](chain), x, 5, n_t=8, generator=g)
    gap = exact - nll
    se = float(gap.std() / math.sqrt(len(gap)))
    assert abs(float(gap.mean())) < 4 * se + 0.02 * float(nll.mean()), (float(gap.mean()), se)
    off = nelbo.estimate_nelbo(process, models[process](wrong), x, 5, n_t=4, generator=g) - nll
    assert float(off.mean()) > 8 * float(off.std() / math.sqrt(len(off))) > 0


def test_misconception_elbo_trained_udm_outputs_the_denoiser():
    chain = random_chain(5, 8)
    g = torch.Generator().manual_seed(11)
    x = chain.sample(400, 10, generator=g)
    nll = float(-chain.log_prob(x).mean())
    den = oracle.uniform_oracle(chain, "denoiser")
    with_d = float(nelbo.estimate_nelbo("udm", den, x, 5, n_t=4, generator=g).mean())
    with_l = float(nelbo.estimate_nelbo("udm", oracle.uniform_oracle(chain, "loo"), x, 5, n_t=4, generator=g).mean())
    assert with_d > 1.3 * nll and with_l < 1.05 * nll, (with_d, with_l, nll)


# --------------------------------------------------------------------------------------- samplers on the oracle


def oracle_scores(chain, steps, n=48, length=24, seed=0):
    al = schedule.alpha_grid(steps)
    g = lambda: torch.Generator().manual_seed(seed)  # noqa: E731
    runs = {
        "udm_loo": samplers.sample_udm(oracle.uniform_oracle(chain, "loo"), n, length, chain.vocab, al, generator=g()),
        "udm_d": samplers.sample_udm(oracle.uniform_oracle(chain, "denoiser"), n, length, chain.vocab, al,
                                     output="denoiser", plug_in="denoiser", generator=g()),
        "mdm": samplers.sample_mdm(oracle.masked_oracle(chain), n, length, chain.vocab, al, generator=g()),
        "audm": samplers.sample_audm(oracle.audm_oracle(chain), n, length, chain.vocab, al, generator=g()),
    }
    return {k: float(-chain.log_prob(x).mean()) / length for k, x in runs.items()}


@pytest.fixture(scope="module")
def text_chain():
    from diffbook.data import text

    return oracle.fit_chain(text.encode(text.load_corpus().train[:200_000]), 27)


def test_misconception_masked_beats_uniform_is_a_sampler_mismatch(text_chain):
    s = oracle_scores(text_chain, 16)
    rate = text_chain.entropy_rate()
    assert abs(s["udm_loo"] - s["mdm"]) < 0.15, s
    assert abs(s["audm"] - s["mdm"]) < 0.15, s
    assert s["udm_d"] > s["mdm"] + 1.0, s
    assert s["mdm"] < rate + 0.35, (s, rate)


def test_temperature_on_loo_moves_nll_far_more_than_temperature_on_denoiser(text_chain):
    al = schedule.alpha_grid(16)
    m = oracle.uniform_oracle(text_chain, "loo")
    out = {}
    for on in ("loo", "denoiser"):
        x = samplers.sample_udm(m, 48, 24, 27, al, temperature=0.7, temperature_on=on,
                                generator=torch.Generator().manual_seed(1))
        out[on] = float(-text_chain.log_prob(x).mean()) / 24
    base = oracle_scores(text_chain, 16)["udm_loo"]
    assert base - out["loo"] > 2 * abs(base - out["denoiser"]) and base - out["loo"] > 0.1, (out, base)


def test_greedy_last_step_uses_the_denoiser_not_the_loo_posterior():
    """At the last step the right argmax is of D = P(x_0 | z_t); the argmax of L ignores the token itself."""
    chain = random_chain(4, 12)
    calls = []

    def model(z, a):
        calls.append(float(a[0]))
        return oracle.uniform_oracle(chain, "loo")(z, a)

    al = torch.tensor([1.0, 0.6], dtype=f64)  # one step, from α = 0.6 (where D and L differ) to α_0 = 1
    xd = samplers.sample_udm(model, 8, 5, 4, al, greedy_last="denoiser", generator=torch.Generator().manual_seed(3))
    z0 = torch.randint(0, 4, (8, 5), generator=torch.Generator().manual_seed(3))
    d, l = oracle.uniform_posteriors(chain, z0, float(al[1]))
    assert torch.equal(xd, d.argmax(-1))
    xl = samplers.sample_udm(model, 8, 5, 4, al, greedy_last="loo", generator=torch.Generator().manual_seed(3))
    assert torch.equal(xl, l.argmax(-1))
    assert not torch.equal(xd, xl)  # the two rules disagree here, so the test can tell them apart
    assert calls == [pytest.approx(0.6)] * 2  # the model is never called at t = 0


@pytest.mark.parametrize("which", ["mdm", "udm", "udm_pc", "audm", "reaudm"])
def test_samplers_are_reproducible_under_a_generator(which):
    chain = random_chain(4, 13)
    al = schedule.alpha_grid(6)
    run = {
        "mdm": lambda g: samplers.sample_mdm(oracle.masked_oracle(chain), 5, 7, 4, al, generator=g),
        "udm": lambda g: samplers.sample_udm(oracle.uniform_oracle(chain), 5, 7, 4, al, generator=g),
        "udm_pc": lambda g: samplers.sample_udm(oracle.uniform_oracle(chain), 5, 7, 4, al, corrector_steps=2,
                                                corrector_k=2, generator=g),
        "audm": lambda g: samplers.sample_audm(oracle.audm_oracle(chain), 5, 7, 4, al, generator=g),
        "reaudm": lambda g: samplers.sample_reaudm(oracle.audm_oracle(chain), 5, 7, 4, al, generator=g),
    }[which]
    a, b = run(torch.Generator().manual_seed(4)), run(torch.Generator().manual_seed(4))
    c = run(torch.Generator().manual_seed(5))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert a.shape == (5, 7) and int(a.min()) >= 0 and int(a.max()) < 4


def test_informed_corrector_does_not_hurt_at_few_steps(text_chain):
    al = schedule.alpha_grid(4)
    m = oracle.uniform_oracle(text_chain)
    plain = samplers.sample_udm(m, 48, 24, 27, al, generator=torch.Generator().manual_seed(2))
    pc = samplers.sample_udm(m, 48, 24, 27, al, corrector_steps=2, generator=torch.Generator().manual_seed(2))
    nll = lambda x: float(-text_chain.log_prob(x).mean()) / 24  # noqa: E731
    assert nll(pc) < nll(plain) + 0.05, (nll(pc), nll(plain))


# --------------------------------------------------------------------------------------- bad input


def test_bad_input_gets_errors_that_name_the_argument():
    p = torch.tensor([[0.5, 0.5], [0.2, 0.7]], dtype=f64)
    with pytest.raises(ValueError, match="transition rows must sum to one"):
        oracle.MarkovChain(torch.tensor([0.5, 0.5], dtype=f64), p)
    with pytest.raises(ValueError, match="transition must have finite, non-negative"):
        oracle.MarkovChain(torch.tensor([0.5, 0.5], dtype=f64), torch.tensor([[1.5, -0.5], [0.5, 0.5]], dtype=f64))
    with pytest.raises(ValueError, match="z has token id 7, outside the vocabulary 0..2"):
        oracle.uniform_posteriors(CHAIN, torch.tensor([[0, 7]]), 0.5)
    with pytest.raises(ValueError, match="alpha must lie in"):
        oracle.uniform_posteriors(CHAIN, torch.tensor([[0, 1]]), 1.5)
    with pytest.raises(ValueError, match="alphas must be strictly decreasing"):
        samplers.sample_mdm(oracle.masked_oracle(CHAIN), 2, 3, 3, schedule.alpha_grid(4).flip(0))
    with pytest.raises(ValueError, match=r"alphas must lie in \[0, 1\]"):
        samplers.sample_udm(oracle.uniform_oracle(CHAIN), 2, 3, 3, torch.tensor([1.2, 0.5, 0.0], dtype=f64))
    with pytest.raises(ValueError, match="steps must be a positive int"):
        schedule.alpha_grid(0)
    with pytest.raises(ValueError, match="steps must be at least 1"):
        samplers.sample_audm(oracle.audm_oracle(CHAIN), 2, 3, 3, torch.tensor([1.0], dtype=f64))
    with pytest.raises(ValueError, match="length must be a positive int"):
        samplers.sample_udm(oracle.uniform_oracle(CHAIN), 2, 0, 3, schedule.alpha_grid(4))
    with pytest.raises(ValueError, match="length must be a positive int"):
        CHAIN.sample(2, 0)
    with pytest.raises(ValueError, match="x must hold sequences of length >= 1"):
        CHAIN.log_prob(torch.zeros(2, 0, dtype=torch.long))
    with pytest.raises(ValueError, match="plug_in must be one of"):
        samplers.sample_udm(oracle.uniform_oracle(CHAIN), 2, 3, 3, schedule.alpha_grid(4), plug_in="D")
    with pytest.raises(TypeError, match="model must be callable"):
        samplers.sample_udm("net", 2, 3, 3, schedule.alpha_grid(4))
    with pytest.raises(ValueError, match=r"alpha must lie in \[0, 1\) to convert"):
        conversions.loo_to_denoiser_logits(torch.zeros(1, 2, 3), torch.tensor([[0, 1]]), 1.0)
    with pytest.raises(ValueError, match="temperature must be finite and > 0"):
        samplers.sample_mdm(oracle.masked_oracle(CHAIN), 2, 3, 3, schedule.alpha_grid(4), temperature=0.0)
    with pytest.raises(ValueError, match="x0 has token id -1"):
        forward.sample_uniform(torch.tensor([[0, -1]]), 0.5, 3)


# --------------------------------------------------------------------------------------- data, n-gram, network


def test_corpus_split_is_fixed_disjoint_and_normalised():
    from diffbook.data import text

    c = text.load_corpus()
    assert len(c) > 500_000 and set(c.train) <= set(text.ALPHABET) and "  " not in c.train
    assert c.train[:30] == c.train[:30].strip()
    assert len(c.test) == pytest.approx(0.05 * len(c), rel=0.02)
    assert len(c.val) == pytest.approx(0.05 * len(c), rel=0.02)
    assert c.test[:100] not in c.train
    assert len(c.sha256) == 64 and text.load_corpus.__wrapped__().sha256 == c.sha256
    ids = text.encode(c.test[:500])
    assert text.decode(ids) == c.test[:500] and int(ids.max()) < 27
    with pytest.raises(ValueError, match="outside a-z and space"):
        text.encode("Hello")


def test_witten_bell_ngram_is_normalised_and_beats_the_bigram_chain():
    from diffbook.data import text

    c = text.load_corpus()
    tr, te = text.encode(c.train[:300_000]), text.encode(c.test[:20_000]).view(-1, 100)
    m = ngram.WittenBell(tr, 27, 4)
    ctx = te[:3, :3]
    for row in ctx:
        seqs = torch.cat([row.expand(27, 3), torch.arange(27)[:, None]], 1)
        assert float(m.token_log_probs(seqs)[:, 3].exp().sum()) == pytest.approx(1.0, abs=1e-9)
    chain = oracle.fit_chain(tr, 27)
    assert float(m.nll(te).mean()) < float(-chain.log_prob(te).mean()) / 100 - 0.3
    uni = ngram.WittenBell(tr, 27, 1)
    unigram_nll = -torch.log(torch.from_numpy(uni.unigram))[te].mean()  # order 1 is the add-one unigram
    assert float(uni.nll(te).mean()) == pytest.approx(float(unigram_nll), rel=1e-12)


def test_network_is_bidirectional_and_its_losses_are_finite():
    torch.manual_seed(0)
    for name in training.NETWORKS:
        net = TokenDenoiser(5, 8, hidden=16, depth=1, heads=2, mask_token=name == "mdm", audm=name == "audm")
        for p in net.parameters():  # adaLN-Zero starts as the identity; perturb it so information flows
            torch.nn.init.normal_(p, std=0.2)
        x = torch.randint(0, 5, (3, 8), generator=torch.Generator().manual_seed(1))
        loss = training.make_loss(name, 5)(net, x, torch.Generator().manual_seed(2))
        assert loss.shape == (3,) and bool(torch.isfinite(loss).all()) and float(loss.detach().min()) >= 0
    z = torch.randint(0, 5, (1, 8), generator=torch.Generator().manual_seed(3))
    z2 = z.clone()
    z2[0, 7] = (z[0, 7] + 1) % 5
    a = torch.tensor([0.5])
    with torch.no_grad():
        out1, out2 = net(z, a, z), net(z2, a, z)
    assert float((out1[0, 0] - out2[0, 0]).abs().max()) > 1e-4  # position 0 sees position 7: not causal


# --------------------------------------------------------------------------------------- exercise checkers

from diffbook.exercises import ch10 as ex  # noqa: E402


def _right_loo_to_denoiser(L, z, alpha):
    return conversions.loo_to_denoiser(L, z, alpha)


def _right_bridge(z_t, x_hat, a_s, a_t):
    return forward.uniform_bridge(z_t, x_hat, a_s, a_t)


def _right_loo_posterior(initial, transition, z, alpha):
    return oracle.uniform_posteriors(oracle.MarkovChain(initial, transition), z[None], alpha)[1][0]


def _right_audm_step(z, u, p, a_s, a_t):
    eye = torch.nn.functional.one_hot
    move = ((a_s - a_t) * p + (1 - a_s) * eye(u, p.shape[-1]).double()) / (1 - a_t)
    return torch.where((z == u)[..., None], move, eye(z, p.shape[-1]).double())


def _sticky_chain():
    t = 0.9 * torch.roll(torch.eye(5, dtype=f64), 1, dims=1) + 0.1 / 5
    return torch.full((5,), 0.2, dtype=f64), t


RIGHT = {
    "loo_to_denoiser": (ex.check_loo_to_denoiser, _right_loo_to_denoiser),
    "bridge": (ex.check_uniform_bridge, _right_bridge),
    "loo_posterior": (ex.check_loo_posterior, _right_loo_posterior),
    "audm_step": (ex.check_audm_step, _right_audm_step),
    "shift": (ex.check_logit_shift, math.log(244)),
    "my_chain": (ex.check_my_chain, _sticky_chain),
}


@pytest.mark.parametrize("name", list(RIGHT))
def test_checker_accepts_the_right_answer(name):
    check, answer = RIGHT[name]
    v = check(answer)
    assert v.passed, v.message


@pytest.mark.parametrize("name", ["loo_to_denoiser", "bridge", "loo_posterior", "audm_step"])
def test_checker_accepts_the_in_place_idiom_and_is_not_fooled_by_zeroed_inputs(name):
    check, right = RIGHT[name]

    def in_place(*args):
        out = right(*args)
        for a in args:  # vandalise the inputs after computing the answer
            if isinstance(a, torch.Tensor) and a.is_floating_point():
                a.zero_()
        return out

    v = check(in_place)
    assert v.passed and "in place" in v.message, v.message

    def zeros(*args):
        shape = right(*args).shape
        for a in args:
            if isinstance(a, torch.Tensor) and a.is_floating_point():
                a.zero_()
        return torch.zeros(shape, dtype=f64)

    assert not check(zeros).passed


def test_chain_checker_rejects_zeros_nan_and_non_chains():
    z = lambda: (torch.zeros(5, dtype=f64), torch.zeros(5, 5, dtype=f64))  # noqa: E731
    assert "not a valid chain" in ex.check_my_chain(z).message
    nan = lambda: (torch.full((5,), math.nan, dtype=f64), torch.eye(5, dtype=f64))  # noqa: E731
    assert "NaN" in ex.check_my_chain(nan).message
    assert "should return the pair" in ex.check_my_chain(lambda: torch.eye(3)).message


def test_checkers_name_the_known_mistakes():
    def no_norm(L, z, a):
        return L * (1 + 5 * a / (1 - a) * torch.nn.functional.one_hot(z, 5).double())

    assert "normalised" in ex.check_loo_to_denoiser(no_norm).message
    assert "inverse conversion" in ex.check_loo_to_denoiser(
        lambda L, z, a: conversions.denoiser_to_loo(L, z, a)).message
    v = ex.check_uniform_bridge(lambda z, x, s, t: torch.softmax(torch.log(s * x + (1 - s) / 5), -1))
    assert "likelihood" in v.message
    v = ex.check_loo_posterior(lambda i, t, z, a: oracle.uniform_posteriors(oracle.MarkovChain(i, t), z[None], a)[0][0])
    assert "that is D" in v.message
    v = ex.check_audm_step(
        lambda z, u, p, s, t: ((s - t) * p + (1 - s) * torch.nn.functional.one_hot(u, 5).double()) / (1 - t))
    assert "inactive" in v.message
    assert "logarithm" in ex.check_logit_shift(244).message
    assert "you dropped the 1" in ex.check_logit_shift(math.log(243)).message


def test_checkers_reject_unlisted_wrong_values_with_a_specific_verdict():
    v = ex.check_loo_to_denoiser(lambda L, z, a: _right_loo_to_denoiser(L, z, a) * 0.9 + 0.02)
    assert not v.passed and "off by up to" in v.message
    v = ex.check_uniform_bridge(lambda z, x, s, t: _right_bridge(z, x, s, t).roll(1, -1))
    assert not v.passed and "off by up to" in v.message
    v = ex.check_loo_posterior(lambda i, t, z, a: _right_loo_posterior(i, t, z, a).flip(-1))
    assert not v.passed and "off by up to" in v.message
    v = ex.check_audm_step(lambda *args: _right_audm_step(*args).roll(1, -1))
    assert not v.passed and "off by up to" in v.message
    v = ex.check_logit_shift(5.0)
    assert not v.passed and "is not it" in v.message
    v = ex.check_my_chain(lambda: (torch.full((4,), 0.25, dtype=f64), torch.full((4, 4), 0.25, dtype=f64)))
    assert not v.passed and "entropy rate" in v.message


@pytest.mark.parametrize("name", list(RIGHT))
@pytest.mark.parametrize("bad", [None, True, 2 + 1j, "abc", (lambda *a: 1 / 0), (lambda *a: None),
                                 (lambda *a: torch.zeros(2, 2))],
                         ids=["none", "bool", "complex", "string", "raises", "returns_none", "wrong_shape"])
def test_checkers_never_crash_on_malformed_answers(name, bad):
    check, _ = RIGHT[name]
    v = check(bad)
    assert not v.passed and isinstance(v.message, str) and len(v.message) > 10
