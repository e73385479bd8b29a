"""Chapter 9 (DecQ): the frozen encoder stays frozen, condensers read their taps, queries add detail.

Every test is named for the bug it catches.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from diffbook.data.textured_digits import load_textured_digits
from diffbook.decq import (DecQAutoencoder, DinoV2Encoder, TinyViT, count_flops, default_taps, freeze,
                           pack_latents, reconstruction_psnr, tokenizer_flops, train_autoencoder,
                           train_tiny_encoder, unpack_latents)
from diffbook.decq.encoder import check_taps


def _tiny_encoder(seed: int = 0, **kw: int) -> TinyViT:
    torch.manual_seed(seed)
    return freeze(TinyViT(**{"dim": 16, "depth": 4, "heads": 2, **kw}))  # type: ignore[return-value]


@pytest.fixture(scope="module")
def digits() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    x, y = load_textured_digits("train")
    xt, _ = load_textured_digits("test")
    return x, y, xt


def test_default_taps_spread_from_the_shallowest_layer_like_the_paper() -> None:
    """Catches taps that start at layer 1 or skip the paper's 0, 3, 6, 9 of 12."""
    assert default_taps(12) == (0, 3, 6, 9)
    assert default_taps(4) == (0, 1, 2, 3)
    assert default_taps(8) == (0, 2, 4, 6)


def test_textured_digits_keep_the_digit_and_add_texture_independent_of_the_label() -> None:
    """Catches textures missing (plain digits) or a split that reuses the training digits."""
    x, y = load_textured_digits("train")
    xt, yt = load_textured_digits("test")
    assert x.shape == (1438, 1, 16, 16) and xt.shape == (359, 1, 16, 16)
    assert float(x.min()) >= -1.0 and float(x.max()) <= 1.0
    plain, _ = load_textured_digits("train", texture_gain=0.0)
    assert float((x - plain).abs().mean()) > 0.1  # texture is there
    assert bool((x >= plain - 1e-6).all())  # max-blend never darkens the digit
    # texture brightness does not predict the label: per-class mean texture within 0.1 of the overall mean
    tex = (x - plain).flatten(1).mean(1)
    per_class = torch.stack([tex[y == k].mean() for k in range(10)])
    assert float((per_class - tex.mean()).abs().max()) < 0.1


def test_encoder_weights_are_bit_identical_after_decq_training(digits) -> None:  # noqa: ANN001
    """Catches an optimiser that also updates the 'frozen' encoder (e.g. built from model.parameters())."""
    x, _, _ = digits
    enc = _tiny_encoder()
    before = {k: v.clone() for k, v in enc.state_dict().items()}
    model = DecQAutoencoder(enc, mode="decq", width=16, depth=1, heads=2)
    q_before = model.queries.detach().clone()
    train_autoencoder(model, x[:256], steps=5, batch_size=16, lr=1e-2)
    for k, v in enc.state_dict().items():
        assert torch.equal(v, before[k]), k
    assert float((model.queries.detach() - q_before).abs().max()) > 1e-4  # the queries did train


def test_condensers_receive_gradient_and_the_encoder_none(digits) -> None:  # noqa: ANN001
    """Catches detached queries (no gradient reaches the condensers) and gradient leaking into the encoder."""
    x, _, _ = digits
    enc = _tiny_encoder()
    model = DecQAutoencoder(enc, mode="decq", width=16, depth=1, heads=2)
    rec = model(x[:8])
    F.mse_loss(rec, x[:8]).backward()
    assert all(p.grad is None for p in enc.parameters())
    for i, cond in enumerate(model.condensers):
        g = sum(float(p.grad.abs().sum()) for p in cond.cross.parameters() if p.grad is not None)
        assert g > 1e-8, f"condenser {i} got no gradient"
    assert float(model.queries.grad.abs().sum()) > 1e-8


@pytest.mark.parametrize("mode", ["decq", "last"])
def test_each_condenser_reads_its_own_tapped_layer(digits, mode: str) -> None:  # noqa: ANN001
    """Catches condensers wired to the wrong layer (reversed, all the last one, or the normalised output)."""
    x, _, _ = digits
    enc = _tiny_encoder()
    model = DecQAutoencoder(enc, mode=mode, width=16, depth=1, heads=2)
    _, all_states = enc.encode(x[:4], tuple(range(enc.depth + 1)))
    seen: list[torch.Tensor] = []
    hooks = [c.register_forward_hook(lambda m, args, kw, out: seen.append(args[1]), with_kwargs=True)
             for c in model.condensers]
    model.tokens(x[:4])
    for h in hooks:
        h.remove()
    expected = (0, 1, 2, 3) if mode == "decq" else (4, 4, 4, 4)
    assert model.taps == expected
    assert len(seen) == 4
    for i, layer in enumerate(expected):
        assert torch.equal(seen[i], all_states[layer]), (i, layer)
    # tap 0 is the patch embedding plus positions (the input of block 0), not a block output
    emb = enc.patch(x[:4]).flatten(2).transpose(1, 2) + enc.pos
    assert torch.allclose(all_states[0], emb, atol=1e-6)


def test_decq_beats_rae_at_tiny_and_the_last_layer_control_does_not(digits) -> None:  # noqa: ANN001
    """Catches queries that add no information (DecQ ≈ RAE) or a 'gain' that is only extra capacity.

    Seed 0, the chapter's tiny encoder, 250 decoder steps; measured +1.0 dB (DecQ) and -0.2 dB (last layer).
    """
    x, y, xt = digits
    torch.set_num_threads(1)
    enc = train_tiny_encoder(x, y, steps=300, seed=0)
    psnr = {}
    for mode in ("rae", "decq", "last"):
        torch.manual_seed(0)
        model = DecQAutoencoder(enc, mode=mode)
        train_autoencoder(model, x, steps=250, seed=0)
        psnr[mode] = reconstruction_psnr(model, xt)
    assert psnr["decq"] - psnr["rae"] > 0.5, psnr
    assert psnr["last"] - psnr["rae"] < 0.2, psnr


def _vit_block_flops(n: int, length: int, dim: int, mlp: float) -> int:
    # qkv, QKᵀ, AV, output projection, two MLP matmuls; 2 FLOPs per multiply-add
    hidden = int(round(dim * mlp))
    return 2 * n * length * dim * (3 * dim) + 2 * (2 * n * length * length * dim) + 2 * n * length * dim * dim \
        + 2 * (2 * n * length * dim * hidden)


def test_flop_count_matches_an_independent_count_on_a_tiny_config() -> None:
    """Catches a counter that misses attention (CPU SDPA kernel) or counts the condensers twice."""
    enc = _tiny_encoder(dim=16, depth=2, heads=2)
    model = DecQAutoencoder(enc, mode="decq", num_queries=4, width=16, depth=1, heads=2)
    n, N, D, K, W, p = 3, 16, 16, 4, 16, 4
    x = torch.randn(n, 1, 16, 16)
    enc_hand = 2 * n * N * (1 * p * p) * D + 2 * _vit_block_flops(n, N, D, 4.0)
    cross = 2 * n * K * D * D + 2 * n * N * D * (2 * D) + 2 * (2 * n * K * N * D) + 2 * n * K * D * D
    cond_hand = len(model.taps) * (cross + _vit_block_flops(n, K, D, 2.0))
    dec_hand = 2 * n * (N + K) * D * W + _vit_block_flops(n, N + K, W, 4.0) + 2 * n * N * W * (p * p)
    got = tokenizer_flops(model, x)
    assert got["encoder"] == enc_hand
    assert got["condensers"] == cond_hand
    assert got["decoder"] == dec_hand
    assert got["total"] == enc_hand + cond_hand + dec_hand
    rae = tokenizer_flops(DecQAutoencoder(enc, mode="rae", width=16, depth=1, heads=2), x)
    assert rae["condensers"] == 0
    assert rae["decoder"] == 2 * n * N * D * W + _vit_block_flops(n, N, W, 4.0) + 2 * n * N * W * (p * p)
    assert count_flops(lambda: torch.ones(2, 3) @ torch.ones(3, 5)) == 2 * 2 * 3 * 5


def test_dinov2_path_on_a_random_tiny_config_gives_patch_tokens_at_the_taps() -> None:
    """Catches keeping CLS/register tokens, block outputs instead of block inputs, or the affine final norm."""
    pytest.importorskip("transformers")
    enc = DinoV2Encoder.random_tiny(image_size=28, patch_size=14, dim=32, depth=4, heads=4, registers=4)
    assert (enc.dim, enc.depth, enc.patch_size, enc.skip) == (32, 4, 14, 5)
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(2, 3, 28, 28, generator=gen) * 2 - 1
    final, taps = enc.encode(x, (0, 1, 2, 3))
    assert final.shape == (2, 4, 32) and [t.shape for t in taps] == [(2, 4, 32)] * 4
    # independent path: call the HF model directly
    pix = ((x + 1) / 2 - torch.tensor(enc.MEAN).view(1, 3, 1, 1)) / torch.tensor(enc.STD).view(1, 3, 1, 1)
    with torch.no_grad():
        out = enc.model(pixel_values=pix, output_hidden_states=True)
    assert len(out.hidden_states) == 5 and out.hidden_states[0].shape == (2, 1 + 4 + 4, 32)
    for layer, h in zip((0, 1, 2, 3), taps):
        assert torch.allclose(h, out.hidden_states[layer][:, 5:], atol=1e-6)
    assert torch.allclose(final, F.layer_norm(out.hidden_states[4][:, 5:], (32,)), atol=1e-5)
    assert float(final.mean(-1).abs().max()) < 1e-5 and abs(float(final.var(-1, unbiased=False).mean()) - 1) < 1e-3
    # the same DecQ code runs on it
    model = DecQAutoencoder(enc, mode="decq", num_queries=2, taps=(0, 2), width=16, depth=1, heads=2,
                            image_size=28, channels=3)
    assert model(x).shape == (2, 3, 28, 28)
    assert all(not p.requires_grad for p in enc.parameters())


def test_pack_and_unpack_latents_are_inverse_and_put_queries_below_the_grid() -> None:
    """Catches queries mixed into the patch grid (the patch latent must stay exactly RAE's)."""
    gen = torch.Generator().manual_seed(0)
    q, p = torch.randn(2, 4, 8, generator=gen), torch.randn(2, 16, 8, generator=gen)
    z = pack_latents(q, p, 4)
    assert z.shape == (2, 8, 5, 4)
    assert torch.equal(z[:, :, 0, 1], p[:, 1])
    q2, p2 = unpack_latents(z, 4)
    assert torch.equal(q2, q) and torch.equal(p2, p)
    assert unpack_latents(pack_latents(None, p, 4), 4)[0] is None


def _bad(fn, exc, *args, **kwargs) -> None:  # noqa: ANN001
    with pytest.raises(exc) as info:
        fn(*args, **kwargs)
    assert len(str(info.value)) > 10


ENC = _tiny_encoder()


@pytest.mark.parametrize(
    ("fn", "kwargs", "exc", "word"),
    [
        (ENC.encode, {"images": torch.zeros(2, 1, 15, 15)}, ValueError, "patch size"),
        (ENC.encode, {"images": torch.zeros(2, 1, 16, 16), "taps": (0, 9)}, ValueError, "taps"),
        (ENC.encode, {"images": torch.zeros(2, 1, 16, 16), "taps": "0"}, TypeError, "taps"),
        (ENC.encode, {"images": torch.zeros(2, 1, 16, 16, dtype=torch.long)}, TypeError, "images"),
        (DecQAutoencoder, {"encoder": ENC, "num_queries": 0}, ValueError, "num_queries"),
        (DecQAutoencoder, {"encoder": ENC, "taps": (0, 5)}, ValueError, "taps"),
        (DecQAutoencoder, {"encoder": ENC, "mode": "qformer"}, ValueError, "mode"),
        (DecQAutoencoder, {"encoder": ENC, "width": 48, "decoder_width": 64}, ValueError, "decoder_width"),
        (DecQAutoencoder, {"encoder": TinyViT(dim=16, heads=2)}, ValueError, "frozen"),
        (DecQAutoencoder, {"encoder": torch.nn.Linear(2, 2)}, TypeError, "Encoder"),
        (check_taps, {"taps": (-1,), "depth": 4}, ValueError, "taps"),
        (default_taps, {"depth": 2, "count": 4}, ValueError, "count"),
        (pack_latents, {"queries": torch.zeros(2, 3, 8), "patches": torch.zeros(2, 16, 8), "grid": 4}, ValueError,
         "queries"),
        (load_textured_digits, {"split": "val"}, ValueError, "split"),
        (load_textured_digits, {"texture_gain": 1.5}, ValueError, "texture_gain"),
        (count_flops, {"fn": 3}, TypeError, "fn"),
    ],
)
def test_bad_input_gets_a_clear_error_naming_the_argument(fn, kwargs, exc, word) -> None:  # noqa: ANN001
    """Catches silent acceptance of unpatchable images, out-of-range taps, zero queries, mismatched widths."""
    with pytest.raises(exc, match=word):
        fn(**kwargs)


def test_decoder_rejects_patch_tokens_of_the_wrong_width() -> None:
    """Catches a decoder fed another encoder's latent (width mismatch) without a clear error."""
    model = DecQAutoencoder(ENC, mode="decq", width=16, depth=1, heads=2)
    with pytest.raises(ValueError, match="patches"):
        model.decode(None, torch.zeros(2, 16, 32))
    with pytest.raises(ValueError, match="queries"):
        model.decode(torch.zeros(2, 3, 16), torch.zeros(2, 16, 16))
