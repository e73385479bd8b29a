"""The networks of `diffbook.nets`: exact identities at initialisation, RoPE's relative-position property,
KV-cached attention equal to masked attention, bf16 closeness, quick learning, and input validation."""

import math

import pytest
import torch

from diffbook import nets
from diffbook.nets import attention, layers, rope


def small_mlp(**kw):
    return nets.MLP(2, hidden=64, depth=2, **kw)


def small_unet(**kw):
    return nets.UNet(1, channels=16, channel_mult=(1, 2, 2), heads=2, **kw)


def small_dit(**kw):
    return nets.DiT(1, **{"patch_size": 2, "hidden": 64, "depth": 2, "heads": 4, **kw})


def perturb_zero_params(net, std=0.05, seed=0):
    """Give the zero-initialised weights (adaLN, output layers) random values so outputs are not trivially zero."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in net.parameters():
            if not p.any():
                p.copy_(std * torch.randn(p.shape, generator=g))
    return net


def rel_err(a, b):
    return float((a.float() - b.float()).norm() / b.float().norm())


# --- layers -----------------------------------------------------------------------------------------------


def test_sinusoidal_embedding_values_and_noise_level_broadcast():
    emb = layers.sinusoidal_embedding(torch.tensor([0.0, 2.0]), 8)
    assert torch.equal(emb[0], torch.tensor([1.0, 1, 1, 1, 0, 0, 0, 0]))
    freqs = torch.tensor([1.0, 10.0**-1, 10.0**-2, 10.0**-3])  # 10000^(-i/4)
    assert torch.allclose(emb[1], torch.cat([torch.cos(2 * freqs), torch.sin(2 * freqs)]), atol=1e-6)
    assert torch.equal(layers.expand_noise_level(0.5, 3, "cpu"), torch.full((3,), 0.5))
    assert layers.expand_noise_level(torch.tensor([7]), 3, "cpu").dtype == torch.float32
    x = torch.randn(2, 5, 4)
    out = layers.modulate(x, torch.ones(2, 4), torch.full((2, 4), 2.0))
    assert torch.allclose(out, 3 * x + 1)


def test_drop_labels_is_reproducible_and_respects_p():
    labels = torch.arange(1000) % 10
    assert torch.equal(layers.drop_labels(labels, 0.0, 10), labels)
    assert (layers.drop_labels(labels, 1.0, 10) == 10).all()
    a = layers.drop_labels(labels, 0.3, 10, generator=torch.Generator().manual_seed(1))
    b = layers.drop_labels(labels, 0.3, 10, generator=torch.Generator().manual_seed(1))
    assert torch.equal(a, b)
    assert abs(float((a == 10).float().mean()) - 0.3) < 0.05
    assert torch.equal(a[a != 10], labels[a != 10])


# --- RoPE -------------------------------------------------------------------------------------------------


def test_rope_is_the_complex_rotation_and_preserves_norms():
    torch.manual_seed(0)
    x = torch.randn(3, 7, 16)
    pos = torch.linspace(-2.0, 9.5, 7)
    out = rope.apply_rope(x, pos)
    z = torch.complex(x[..., :8], x[..., 8:])  # feature i pairs with feature i + D/2
    rotated = z * torch.polar(torch.ones(7, 8), rope.rope_angles(pos, 16))
    expected = torch.cat([rotated.real, rotated.imag], dim=-1)
    assert torch.allclose(out, expected, atol=1e-6)
    assert torch.allclose(out.norm(dim=-1), x.norm(dim=-1), rtol=1e-5)
    assert rel_err(out, x) > 0.1  # it did rotate
    out2d = rope.apply_axial_rope(x[:, :6], rope.grid_positions(2, 3, offset=(0.5, -4.0)))
    assert torch.allclose(out2d.norm(dim=-1), x[:, :6].norm(dim=-1), rtol=1e-5)


def test_rope_scores_depend_only_on_relative_offset_1d():
    torch.manual_seed(1)
    q, k = torch.randn(10, 32), torch.randn(10, 32)
    pos = torch.arange(10.0) * 0.75  # fractional positions are fine
    scores = rope.apply_rope(q, pos) @ rope.apply_rope(k, pos).T
    for shift in (3.0, -5.5, 100.25):
        shifted = rope.apply_rope(q, pos + shift) @ rope.apply_rope(k, pos + shift).T
        assert torch.allclose(shifted, scores, atol=1e-5), shift
    assert (scores - q @ k.T).abs().max() > 0.1  # not vacuous: positions do change the scores
    # score(q at m, k at m') equals score(q at 0, k at m' - m)
    lone = rope.apply_rope(q[:1], torch.zeros(1)) @ rope.apply_rope(k, pos - pos[0]).T
    assert torch.allclose(lone[0], scores[0], atol=1e-5)


def test_axial_rope_scores_depend_only_on_relative_offset_2d():
    torch.manual_seed(2)
    q, k = torch.randn(12, 32), torch.randn(12, 32)
    pos = rope.grid_positions(3, 4)
    assert torch.equal(pos[:5], torch.tensor([[0.0, 0], [0, 1], [0, 2], [0, 3], [1, 0]]))
    scores = rope.apply_axial_rope(q, pos) @ rope.apply_axial_rope(k, pos).T
    shifted_pos = rope.grid_positions(3, 4, offset=(2.5, -7.25))
    shifted = rope.apply_axial_rope(q, shifted_pos) @ rope.apply_axial_rope(k, shifted_pos).T
    assert torch.allclose(shifted, scores, atol=1e-5)
    # half of the rotation pairs (i, i + 16) follow the row (i < 8), the other half the column (i >= 8)
    rows_only = rope.apply_axial_rope(q, torch.stack([pos[:, 0], torch.zeros(12)], dim=1))
    cols_only = rope.apply_axial_rope(q, torch.stack([torch.zeros(12), pos[:, 1]], dim=1))
    row_feats = torch.cat([torch.arange(0, 8), torch.arange(16, 24)])
    col_feats = torch.cat([torch.arange(8, 16), torch.arange(24, 32)])
    assert torch.equal(rows_only[:, col_feats], q[:, col_feats]) and torch.equal(cols_only[:, row_feats], q[:, row_feats])
    assert not torch.equal(rows_only[:, row_feats], q[:, row_feats])
    tables = rope.rotary_tables(rope.axial_rope_angles(pos, 32))  # precomputed tables give the same result
    assert torch.allclose(rope.apply_rotary(q, tables), rope.apply_axial_rope(q, pos), atol=1e-6)
    scaled = rope.grid_positions(2, 2, offset=(1.0, 0.5), scale=0.5)
    assert torch.equal(scaled, torch.tensor([[1.0, 0.5], [1.0, 1.0], [1.5, 0.5], [1.5, 1.0]]))


def test_rope_frequencies_are_base_to_the_minus_2i_over_d():
    """Catches θ_i = base^(-i/D) (the exponent without its factor 2): the frequencies are pinned to literals."""
    torch.testing.assert_close(rope.rope_frequencies(8), torch.tensor([1.0, 0.1, 0.01, 0.001]), rtol=1e-6, atol=0)
    torch.testing.assert_close(rope.rope_frequencies(4, base=100.0), torch.tensor([1.0, 0.1]), rtol=1e-6, atol=0)
    torch.testing.assert_close(rope.rope_frequencies(2, base=3.0), torch.tensor([1.0]), rtol=0, atol=0)


def test_rope_rotates_one_pair_as_by_hand():
    """x = (x0, x1, x2, x3) at position m = 2 with base 100: pair (x0, x2) turns by 2·1 rad, pair (x1, x3) by 2·0.1."""
    x = torch.tensor([[1.0, 2.0, -0.5, 3.0]])
    out = rope.apply_rope(x, torch.tensor([2.0]), base=100.0)
    c1, s1, c2, s2 = math.cos(2.0), math.sin(2.0), math.cos(0.2), math.sin(0.2)
    expected = torch.tensor([[1.0 * c1 - (-0.5) * s1, 2.0 * c2 - 3.0 * s2, 1.0 * s1 + (-0.5) * c1, 2.0 * s2 + 3.0 * c2]])
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-6)
    # axial: with A = 2 axes and D = 8, angles 0..1 follow the row and 2..3 the column, each with D/A = 4 features
    x8 = torch.arange(1.0, 9.0)[None]
    out8 = rope.apply_axial_rope(x8, torch.tensor([[1.0, 0.0]]), base=100.0)  # row 1, column 0
    a0, a1 = 1.0, 0.1  # row angles 1·θ_0, 1·θ_1 for dim 4
    exp8 = torch.tensor([[1 * math.cos(a0) - 5 * math.sin(a0), 2 * math.cos(a1) - 6 * math.sin(a1), 3.0, 4.0,
                          1 * math.sin(a0) + 5 * math.cos(a0), 2 * math.sin(a1) + 6 * math.cos(a1), 7.0, 8.0]])
    torch.testing.assert_close(out8, exp8, rtol=0, atol=1e-6)


# --- attention and the KV cache ---------------------------------------------------------------------------


def test_block_causal_mask_values():
    expected = torch.tensor([[1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 1, 1]], dtype=torch.bool)
    assert torch.equal(attention.block_causal_mask(3, 6, 2), expected)  # queries are tokens 3, 4, 5
    assert torch.equal(attention.block_causal_mask(4, 4, 1), torch.ones(4, 4, dtype=torch.bool).tril())


@pytest.mark.parametrize("block_size,chunk", [(3, 3), (1, 1), (2, 6)])
def test_kv_cached_attention_equals_full_block_causal_attention(block_size, chunk):
    torch.manual_seed(3)
    attn = nets.MultiHeadAttention(32, 4)
    x = torch.randn(2, 12, 32)
    angles = rope.rope_angles(torch.arange(12.0), 8)
    with torch.no_grad():
        full = attn(x, angles, block_size=block_size)
        cache, outs = None, []
        for start in range(0, 12, chunk):
            part = slice(start, start + chunk)
            # a chunk of one block needs no mask; a chunk of several blocks needs the block-causal mask
            bs = None if chunk == block_size else block_size
            out, cache = attn.forward_cached(x[:, part], cache, angles[part], block_size=bs)
            outs.append(out)
    assert cache.length == 12 and cache.k.shape == (2, 4, 12, 8)
    assert torch.allclose(torch.cat(outs, dim=1), full, atol=1e-5)
    with torch.no_grad():  # not vacuous: full bidirectional attention differs
        assert (attn(x, angles) - full).abs().max() > 1e-2


def test_block_causal_attention_ignores_the_future():
    torch.manual_seed(4)
    attn = nets.MultiHeadAttention(16, 2)
    x = torch.randn(1, 8, 16)
    y = x.clone()
    y[:, 4:] += torch.randn(1, 4, 16)  # change blocks 2 and 3 (block size 2)
    with torch.no_grad():
        a, b = attn(x, block_size=2), attn(y, block_size=2)
        assert torch.equal(a[:, :4], b[:, :4]) and (a[:, 4:] - b[:, 4:]).abs().max() > 1e-3
        explicit = attn(x, mask=attention.block_causal_mask(8, 8, 1))
        assert torch.allclose(attn(x, block_size=1), explicit, atol=1e-6)  # is_causal path == mask path


# --- DiT: adaLN-Zero identity, resolution freedom ---------------------------------------------------------


def test_dit_adaln_zero_blocks_are_identity_and_output_is_zero_at_init():
    torch.manual_seed(5)
    net = small_dit(depth=3, num_classes=4, abs_pos=True)
    seen = []
    hooks = [b.register_forward_hook(lambda m, args, out: seen.append((args[0], out))) for b in net.blocks]
    x = torch.randn(3, 1, 8, 8)
    out = net(x, torch.tensor([0.1, -1.0, 2.0]), torch.tensor([0, 3, 4]))
    for h in hooks:
        h.remove()
    assert len(seen) == 3
    for block_in, block_out in seen:
        assert torch.equal(block_out, block_in)
        assert block_in.abs().max() > 0.1
    assert torch.equal(out, torch.zeros_like(x))
    # the identity holds whatever the other weights are: only the zero gates matter
    block = net.blocks[0]
    with torch.no_grad():
        for p in block.attn.parameters():
            p.normal_()
        tokens, c = torch.randn(2, 16, 64), torch.randn(2, 64)
        assert torch.equal(block(tokens, c, rope.axial_rope_angles(rope.grid_positions(4, 4), 16)), tokens)


def test_dit_patchify_layout_and_unpatchify_round_trip_is_exact():
    """Catches an unpatchify with two axes swapped: it must invert patchify exactly, and patchify's layout is
    pinned by hand-written loops (token i·w + j, feature (r·p + s)·C + c)."""
    torch.manual_seed(7)
    p, C, H, W = 2, 3, 4, 6
    x = torch.randn(2, C, H, W)
    tokens = nets.dit.patchify(x, p)
    assert tokens.shape == (2, (H // p) * (W // p), p * p * C)
    expected = torch.empty_like(tokens)
    for i in range(H // p):
        for j in range(W // p):
            for r in range(p):
                for s in range(p):
                    for c in range(C):
                        expected[:, i * (W // p) + j, (r * p + s) * C + c] = x[:, c, i * p + r, j * p + s]
    assert torch.equal(tokens, expected)
    assert torch.equal(nets.dit.unpatchify(tokens, p, H, W), x)
    t = torch.randn(2, 6, 4 * C)
    assert torch.equal(nets.dit.patchify(nets.dit.unpatchify(t, p, H, W), p), t)
    # the patch embedding (a stride-p convolution) is a linear map of patchify's tokens, in the same layout
    net = small_dit()
    x1 = torch.randn(2, 1, 8, 8)
    conv = net.patch(x1).flatten(2).transpose(1, 2)
    weight = net.patch.weight.permute(0, 2, 3, 1).reshape(net.hidden, -1)  # (hidden, (r, s, C))
    torch.testing.assert_close(conv, nets.dit.patchify(x1, 2) @ weight.T + net.patch.bias, rtol=0, atol=1e-5)


@pytest.mark.parametrize("shape", [(8, 8), (8, 12)])
def test_dit_output_patch_depends_only_on_the_input_patch_at_the_same_place(shape):
    """Catches a transposed unpatchify (rows and columns of the patch grid swapped). At initialisation every
    adaLN-Zero block is the identity, so with a random final layer the output patch at (i, j) is a function of
    the input patch at (i, j) alone: a perturbed pixel changes exactly its own output patch."""
    torch.manual_seed(8)
    net = small_dit(num_classes=3)
    with torch.no_grad():
        net.final.linear.weight.normal_(std=0.3)
    x = torch.randn(2, 1, *shape)
    row, col = 1, 6  # patch (0, 3): off the diagonal, so a transposition moves it
    bumped = x.clone()
    bumped[:, 0, row, col] += 1.0
    with torch.no_grad():
        diff = (net(bumped, 0.3, torch.tensor([0, 2])) - net(x, 0.3, torch.tensor([0, 2]))).abs()
    inside = torch.zeros(shape, dtype=torch.bool)
    inside[0:2, 6:8] = True
    assert diff[:, 0][:, inside].min() > 1e-4  # every pixel of the patch changes
    assert diff[:, 0][:, ~inside].max() == 0.0  # nothing else does


def test_dit_presets_and_learn_sigma():
    assert nets.dit.PRESETS["B/2"] == dict(depth=12, hidden=768, heads=12, patch_size=2)  # Peebles & Xie, Table 1
    s4 = nets.DiT.from_preset("S/4", 4, depth=1, num_classes=1000)  # keyword arguments override the preset
    assert (len(s4.blocks), s4.hidden, s4.heads, s4.patch_size, s4.null_label) == (1, 384, 6, 4, 1000)
    net = small_dit(learn_sigma=True)
    assert net(torch.randn(2, 1, 8, 8), 0.0).shape == (2, 2, 8, 8)


def test_dit_rope_only_is_invariant_to_grid_offset_and_runs_at_other_resolutions():
    torch.manual_seed(6)
    net = perturb_zero_params(small_dit())
    x, s = torch.randn(2, 1, 8, 8), torch.tensor([0.3, -0.2])
    with torch.no_grad():
        base = net(x, s)
        assert torch.allclose(net(x, s, pos_offset=(3.0, -2.5)), base, atol=1e-5)
        assert (net(x, s, pos_scale=0.5) - base).abs().max() > 1e-4  # rescaling does change relative positions
        big = net(torch.randn(1, 1, 12, 16), 0.0)
        assert big.shape == (1, 1, 12, 16) and torch.isfinite(big).all()
    with_abs = perturb_zero_params(small_dit(abs_pos=True))
    with torch.no_grad():  # absolute embeddings are not shift-invariant
        assert (with_abs(x, s, pos_offset=(3.0, -2.5)) - with_abs(x, s)).abs().max() > 1e-4


# --- conditioning -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("make,shape", [(small_mlp, (4, 2)), (small_unet, (4, 1, 8, 8)), (small_dit, (4, 1, 8, 8))])
def test_conditioning_on_noise_level_and_labels(make, shape):
    torch.manual_seed(7)
    net = perturb_zero_params(make(num_classes=3))
    x = torch.randn(shape)
    y = torch.tensor([0, 1, 2, 0])
    with torch.no_grad():
        out = net(x, 0.5, y)
        assert torch.equal(net(x, torch.full((4,), 0.5), y), out)  # a scalar broadcasts
        assert (net(x, 1.5, y) - out).abs().max() > 1e-4
        assert (net(x, 0.5, torch.tensor([1, 2, 0, 1])) - out).abs().max() > 1e-4
        null = torch.full((4,), net.null_label)
        assert torch.equal(net(x, 0.5, None), net(x, 0.5, null))  # no labels = the null class
        assert torch.allclose(out[:1], net(x[:1], 0.5, y[:1]), atol=1e-6)  # samples do not interact


# --- bf16 autocast ----------------------------------------------------------------------------------------

BF16_TOL = 0.03  # relative L2 error; bf16 has 8 mantissa bits (unit roundoff 2^-9 ≈ 0.2%)


@pytest.mark.parametrize("make,shape", [(small_mlp, (16, 2)), (small_unet, (4, 1, 8, 8)), (small_dit, (4, 1, 8, 8))])
def test_bf16_autocast_is_close_to_fp32(make, shape):
    torch.manual_seed(8)
    net = perturb_zero_params(make(num_classes=5))
    x, s, y = torch.randn(shape), torch.randn(shape[0]), torch.randint(0, 6, (shape[0],))
    with torch.no_grad():
        ref = net(x, s, y)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = net(x, s, y)
    assert low.dtype == torch.bfloat16 and ref.dtype == torch.float32
    err = rel_err(low, ref)
    assert 0 < err < BF16_TOL, err


# --- learning ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "make,shape,lr",
    [(small_mlp, (64, 2), 3e-3), (small_unet, (8, 1, 8, 8), 3e-3), (small_dit, (8, 1, 8, 8), 1e-3)],
)
def test_each_network_fits_a_fixed_denoising_batch(make, shape, lr):
    """Predict the noise of a fixed noisy batch: the loss falls from ~1 by a factor of at least 4 in 40 steps."""
    torch.manual_seed(9)
    net = make(num_classes=2)
    x0 = torch.randn(shape).sign() * 0.5  # structured clean data
    eps = torch.randn(shape)
    sigma = torch.rand(shape[0]) + 0.5
    xt = x0 + sigma.view(-1, *[1] * (len(shape) - 1)) * eps
    labels = torch.arange(shape[0]) % 2
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    losses = []
    for _ in range(40):
        loss = (net(xt, sigma.log() / 4, labels) - eps).square().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert math.isclose(losses[0], float(eps.square().mean()), rel_tol=1e-6)  # zero output at init
    assert losses[-1] < losses[0] / 4, (losses[0], losses[-1])


# --- input validation -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "make,args,error,match",
    [
        (small_mlp, (torch.randn(4, 3), 0.1), ValueError, "x must have shape"),
        (small_mlp, (torch.randn(4, 2, 1), 0.1), ValueError, "x must have shape"),
        (small_mlp, (torch.ones(4, 2, dtype=torch.long), 0.1), TypeError, "floating-point"),
        (small_mlp, (torch.randn(4, 2), torch.ones(3)), ValueError, "noise_level"),
        (small_mlp, (torch.randn(4, 2), "0.1"), TypeError, "noise_level"),
        (small_mlp, (torch.randn(4, 2), 0.1, torch.zeros(4, dtype=torch.long)), ValueError, "labels"),
        (small_unet, (torch.randn(2, 1, 8), 0.1), ValueError, "x must have shape"),
        (small_unet, (torch.randn(2, 3, 8, 8), 0.1), ValueError, "channels"),
        (small_unet, (torch.randn(2, 1, 8, 6), 0.1), ValueError, "divisible by 4"),
        (small_dit, (torch.randn(2, 1, 7, 8), 0.1), ValueError, "patch_size"),
        (small_dit, (torch.randn(2, 2, 8, 8), 0.1), ValueError, "channels"),
        (small_dit, ([[1.0]], 0.1), TypeError, "x must be a torch.Tensor"),
        (small_dit, (torch.randn(2, 1, 8, 8), 0.1, torch.zeros(2, dtype=torch.long)), ValueError, "labels"),
    ],
)
def test_bad_input_raises_naming_the_argument(make, args, error, match):
    with pytest.raises(error, match=match):
        make()(*args)


def test_bad_labels_and_bad_construction_raise():
    net = small_dit(num_classes=3)
    x = torch.randn(2, 1, 8, 8)
    with pytest.raises(TypeError, match="labels must have an integer dtype"):
        net(x, 0.1, torch.zeros(2))
    with pytest.raises(ValueError, match=r"labels must have shape \(2,\)"):
        net(x, 0.1, torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError, match="head dim"):
        nets.DiT(1, hidden=40, heads=4)  # head dim 10 cannot be split into two halves of rotating pairs
    with pytest.raises(ValueError, match="position information"):
        nets.DiT(1, hidden=64, heads=4, rope=False)
    with pytest.raises(ValueError, match="name must be one of"):
        nets.DiT.from_preset("S/3", 1)
    with pytest.raises(ValueError, match="groups"):
        nets.UNet(1, channels=12)
    with pytest.raises(ValueError, match="heads"):
        nets.MultiHeadAttention(10, 3)
    with pytest.raises(ValueError, match="block_size"):
        attention.block_causal_mask(2, 2, 0)
    with pytest.raises(ValueError, match="either mask or block_size"):
        nets.MultiHeadAttention(8, 2)(torch.randn(1, 3, 8), mask=torch.ones(3, 3, dtype=torch.bool), block_size=1)
    with pytest.raises(ValueError, match=r"dim must be divisible by 2 \* axes = 4"):
        rope.axial_rope_angles(rope.grid_positions(2, 2), 6)
    assert small_mlp().null_label is None


# --- GPU ----------------------------------------------------------------------------------------------------


def _cuda_dit_and_batch():
    torch.manual_seed(10)
    net = perturb_zero_params(nets.DiT(3, patch_size=2, hidden=128, depth=4, heads=4, num_classes=10)).cuda()
    x = torch.randn(8, 3, 32, 32, device="cuda")
    s = torch.randn(8, device="cuda")
    y = torch.randint(0, 11, (8,), device="cuda")
    return net, x, s, y


@pytest.mark.gpu
def test_dit_bf16_autocast_forward_backward_on_cuda():
    net, x, s, y = _cuda_dit_and_batch()
    with torch.no_grad():
        ref = net(x, s, y)
    with torch.autocast("cuda", dtype=torch.bfloat16):
        out = net(x, s, y)
    out.float().square().mean().backward()
    assert out.dtype == torch.bfloat16 and torch.isfinite(out).all()
    assert rel_err(out.detach(), ref) < BF16_TOL
    for name, p in net.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name


@pytest.mark.gpu
def test_dit_torch_compile_matches_eager_on_cuda():
    net, x, s, y = _cuda_dit_and_batch()
    compiled = torch.compile(net)
    with torch.no_grad():
        eager = net(x, s, y)
        fused = compiled(x, s, y)
    assert rel_err(fused, eager) < 1e-3
