"""Chapter 11 (SEGA): RoPE's relative-position property, every extrapolation rule's formula, SEGA's spectral
measurements, the DiT's rope_tables path, the scenes and metrics, the diffusers FLUX patch, and bad input."""

import math

import numpy as np
import pytest
import torch

from diffbook.nets.dit import DiT
from diffbook.nets.rope import apply_rotary, axial_rope_angles, grid_positions, rotary_tables
from diffbook.sega import (METHODS, SegaOptions, axis_profile, band_positions, ntk_factor, pair_scales,
                           plain_frequencies, radial_profile, rope_scaling, rotary_from_axes, sega_base_factor,
                           spectral_flatness, spread, yarn_frequencies, yarn_mscale)
from diffbook.sega.metrics import (duplication_rate, object_counts, random_crops,
                                   repetition_score, spectrum_distance)
from diffbook.sega.scenes import random_scenes, render, render_scenes

f64 = torch.float64
DIMS = (16, 16)


def _latent(h=16, w=16, seed=0, kind="smooth"):
    gen = torch.Generator().manual_seed(seed)
    z = torch.randn(2, 8, h, w, generator=gen, dtype=f64)
    if kind == "smooth":  # a 1/f^2-like field: strong low-frequency structure
        fy = torch.fft.fftfreq(h, dtype=f64)[:, None]
        fx = torch.fft.fftfreq(w, dtype=f64)[None, :]
        filt = 1.0 / (1e-3 + fx**2 + fy**2)
        z = torch.fft.ifft2(torch.fft.fft2(z) * filt).real
    return z


# --- RoPE and the per-method formulas -----------------------------------------------------------------------

@pytest.mark.parametrize("method", METHODS)
def test_scaled_tables_keep_the_relative_position_property(method):
    """q·k through the tables depends on positions only through p - p' (bug: absolute positions leak in)."""
    axes = rope_scaling(method, (8, 8), (16, 16), DIMS, theta=100.0, t=0.6, latent=_latent())
    cos, sin = rotary_from_axes(axes, (16, 16), dtype=f64)
    gen = torch.Generator().manual_seed(1)
    q, k = torch.randn(32, generator=gen, dtype=f64), torch.randn(32, generator=gen, dtype=f64)
    def score(i, j):  # token i = (r, c) row-major on a 16-wide grid
        qi = apply_rotary(q[None], (cos[i:i + 1], sin[i:i + 1]))
        kj = apply_rotary(k[None], (cos[j:j + 1], sin[j:j + 1]))
        return float((qi * kj).sum())
    # (1, 2) vs (3, 5) and (6, 7) vs (8, 10): the same offset (2, 3)
    a, b = score(1 * 16 + 2, 3 * 16 + 5), score(6 * 16 + 7, 8 * 16 + 10)
    assert a == pytest.approx(b, rel=1e-10, abs=1e-10)
    assert score(1 * 16 + 2, 3 * 16 + 5) != pytest.approx(score(1 * 16 + 2, 3 * 16 + 6), abs=1e-6)


@pytest.mark.parametrize("method", METHODS)
def test_every_method_is_plain_rope_at_native_resolution(method):
    """At 1× every rule must give θ^(-2k/d) and m = 1 (bug: a magnitude or base change applied at 1×)."""
    axes = rope_scaling(method, (8, 8), (8, 8), DIMS, theta=100.0, t=0.5, latent=_latent(8, 8))
    plain = 100.0 ** (-torch.arange(0, 16, 2, dtype=f64) / 16)
    for ax in axes:
        torch.testing.assert_close(ax.omega, plain, rtol=1e-12, atol=0)
        torch.testing.assert_close(ax.magnitude, torch.ones(8, dtype=f64), rtol=0, atol=0)
    cos, sin = rotary_from_axes(axes, (8, 8))
    ref = rotary_tables(axial_rope_angles(grid_positions(8, 8), 32, 100.0))
    torch.testing.assert_close(cos, ref[0], rtol=0, atol=1e-6)
    torch.testing.assert_close(sin, ref[1], rtol=0, atol=1e-6)


def test_baseline_formulas_pinned_to_literal_values():
    """Literal values of PI, NTK, YaRN, DyPE and SEGA's bases (bug: a wrong exponent in any of them)."""
    assert ntk_factor(2, 56) == pytest.approx(2.0520, abs=1e-4)  # the notes' 2.05, 3.13, 4.21 at d = 56
    assert ntk_factor(3, 56) == pytest.approx(3.1246, abs=1e-3)
    assert ntk_factor(4, 56) == pytest.approx(4.2107, abs=1e-3)
    assert sega_base_factor(2, 56) == pytest.approx(3.938, abs=2e-3)  # ×3.9, ×8.8, ×15.6
    assert sega_base_factor(3, 56) == pytest.approx(8.80, abs=0.02)
    assert sega_base_factor(4, 56) == pytest.approx(15.60, abs=0.03)
    assert sega_base_factor(2, 56, "port") == pytest.approx(2.0520, abs=1e-4)
    assert yarn_mscale(4) == pytest.approx(1.1386, abs=1e-4)
    pi = rope_scaling("pi", (8, 8), (24, 24), DIMS, theta=100.0)[0].omega
    torch.testing.assert_close(pi, plain_frequencies(16, 100.0) / 3)
    ntk = rope_scaling("ntk", (8, 8), (16, 16), DIMS, theta=100.0)[0].omega
    assert float(ntk[-1] / plain_frequencies(16, 100.0)[-1]) == pytest.approx(0.5, rel=1e-12)  # slowest ÷ s
    assert float(ntk[0]) == 1.0  # the fastest pair is untouched
    # DyPE: static YaRN at t = 1, plain RoPE frequencies at t = 0 (magnitude kept)
    y1 = rope_scaling("dy_yarn", (8, 8), (16, 16), DIMS, theta=100.0, t=1.0)[0]
    torch.testing.assert_close(y1.omega, yarn_frequencies(16, 100.0, 2.0, 8))
    y0 = rope_scaling("dy_yarn", (8, 8), (16, 16), DIMS, theta=100.0, t=0.0)[0]
    torch.testing.assert_close(y0.omega, plain_frequencies(16, 100.0))
    assert float(y0.magnitude[0]) == pytest.approx(1 + 0.1 * math.log(2))
    n0 = rope_scaling("dy_ntk", (8, 8), (16, 16), DIMS, theta=100.0, t=0.0)[0].omega
    torch.testing.assert_close(n0, plain_frequencies(16, 100.0))
    n1 = rope_scaling("dy_ntk", (8, 8), (16, 16), DIMS, theta=100.0, t=1.0)[0].omega
    torch.testing.assert_close(n1, plain_frequencies(16, 100.0 * ntk_factor(2, 16) ** 2))


def test_yarn_ramp_keeps_fast_pairs_and_interpolates_slow_ones():
    """FLUX-sized YaRN: fastest pairs = plain RoPE, slowest = PI (bug: the ramp direction reversed)."""
    y = yarn_frequencies(56, 10000.0, 4.0, 64)
    base = plain_frequencies(56, 10000.0)
    assert float(y[0] / base[0]) == pytest.approx(1.0, abs=1e-12)
    assert float(y[-1] / base[-1]) == pytest.approx(0.25, rel=1e-9)
    assert bool(((y / base)[1:] <= (y / base)[:-1] + 1e-12).all())  # monotone from keep to interpolate


# --- SEGA -------------------------------------------------------------------------------------------------

def test_sega_mean_magnitude_equals_m_ref_when_unclamped():
    """With m_min = 0 the correction is zero-mean: mean m = s^κ (bug: ŝ not re-centred, or κ misapplied)."""
    opts = SegaOptions(m_min=0.0)
    for s in (2, 3, 4):
        for ax in rope_scaling("sega", (8, 8), (8 * s, 8 * s), DIMS, theta=100.0, latent=_latent(8 * s, 8 * s),
                               options=opts):
            assert float(ax.magnitude.mean()) == pytest.approx(s ** 0.08, abs=1e-12)
            assert float(ax.magnitude.std()) > 1e-3  # and it is not uniform
    assert 4 ** 0.08 == pytest.approx(1.117, abs=1e-3)


def test_flatness_gate_zero_on_white_noise_and_near_one_on_a_peaked_spectrum():
    """σ ≈ 0 for white noise, > 0.9 for a peaked spectrum (bug: arithmetic and geometric means swapped)."""
    gen = torch.Generator().manual_seed(3)
    white = torch.randn(256, 256, generator=gen, dtype=f64)
    assert spread(radial_profile(white)) < 0.05
    assert spread(torch.ones(16, dtype=f64)) == pytest.approx(0.0, abs=1e-12)
    peaked = torch.full((16,), 1e-6, dtype=f64)
    peaked[2] = 1.0
    assert spread(peaked) > 0.9
    yy, xx = torch.meshgrid(torch.arange(64.0), torch.arange(64.0), indexing="ij")
    wave = torch.cos(2 * math.pi * 5 * xx / 64).to(f64)  # one spatial frequency: a peaked radial profile
    assert spread(radial_profile(wave)) > 0.9
    assert spectral_flatness(torch.ones(8, dtype=f64)) == pytest.approx(1.0)


def test_bin_matching_sends_the_fastest_pair_to_the_highest_band():
    """Fastest pair → Nyquist band, slowest → DC (bug: the matching reversed, u_k instead of 1 - u_k)."""
    omega = plain_frequencies(16, 100.0)
    pos = band_positions(omega, 8)
    assert float(pos[0]) == pytest.approx(7.0)
    assert float(pos[-1]) == pytest.approx(0.0)
    # energy only in the top band: the fastest pair has the most energy, so the smallest magnitude
    energy = torch.full((8,), 1e-4, dtype=f64)
    energy[-1] = 1.0
    m = pair_scales(energy, omega, 1.1, 1.0, m_min=0.0)
    assert int(m.argmin()) == 0
    assert float(m[0]) < 1.1 < float(m[-1])


def test_axis_profile_finds_a_stripe_on_the_right_axis():
    """A horizontal stripe pattern has power along axis 1 only (bug: axes of the profile swapped)."""
    yy, xx = torch.meshgrid(torch.arange(32.0), torch.arange(32.0), indexing="ij")
    m = torch.cos(2 * math.pi * 12 * xx / 32).to(f64)
    e_cols, e_rows = axis_profile(m, 1), axis_profile(m, 0)
    assert int(e_cols.argmax()) == 12  # bin of frequency 12 in 16 bins over 0..16
    assert float(e_rows[1:].max()) < 1e-12  # constant along the rows: DC only


def test_sega_ablation_switches_behave():
    """σ = 0 gives uniform m_ref; reversed sign mirrors the correction (bug: a switch ignored)."""
    lat = _latent(32, 32)
    base = rope_scaling("sega", (8, 8), (32, 32), DIMS, theta=100.0, latent=lat, options=SegaOptions(m_min=0))
    flat = rope_scaling("sega", (8, 8), (32, 32), DIMS, theta=100.0, latent=lat, options=SegaOptions(sigma=0.0))
    torch.testing.assert_close(flat[0].magnitude, torch.full((8,), 4 ** 0.08, dtype=f64))
    rev = rope_scaling("sega", (8, 8), (32, 32), DIMS, theta=100.0, latent=lat,
                       options=SegaOptions(m_min=0, sign=-1.0))
    torch.testing.assert_close(rev[0].magnitude - 4 ** 0.08, -(base[0].magnitude - 4 ** 0.08))
    low = rope_scaling("sega", (8, 8), (32, 32), DIMS, theta=100.0, latent=lat, options=SegaOptions(m_min=0, pairs="low"))
    torch.testing.assert_close(low[0].magnitude[4:], base[0].magnitude[4:])
    assert float((low[0].magnitude[:4] - 4 ** 0.08).abs().max()) < 1e-12
    # the smooth latent has much more structure than white noise: the gate opens
    sig_smooth = spread(radial_profile(_latent(32, 32).mean(dim=(0, 1))))
    sig_white = spread(radial_profile(_latent(32, 32, kind="white").mean(dim=(0, 1))))
    assert sig_smooth > 0.5 > sig_white


# --- the engine's DiT takes the tables -----------------------------------------------------------------------

def _dit():
    torch.manual_seed(0)
    net = DiT(3, patch_size=4, hidden=32, depth=2, heads=2, rope_base=100.0)
    for p in net.parameters():  # adaLN-Zero starts as the identity: perturb so the test sees attention
        p.data += 0.05 * torch.randn_like(p)
    return net


@torch.no_grad()
def test_dit_default_path_is_bit_identical_and_plain_tables_reproduce_it():
    """rope_tables=None is the old path; 'none' tables give the same output (bug: the tables path differs)."""
    net = _dit()
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    out = net(x, torch.tensor([0.3, 0.7]))
    ref = rotary_tables(axial_rope_angles(grid_positions(16, 16), 16, 100.0))
    torch.testing.assert_close(net(x, torch.tensor([0.3, 0.7]), rope_tables=ref), out, rtol=0, atol=0)
    axes = rope_scaling("none", (8, 8), (16, 16), (8, 8), theta=100.0)
    torch.testing.assert_close(net(x, torch.tensor([0.3, 0.7]), rope_tables=rotary_from_axes(axes, (16, 16))),
                               out, rtol=0, atol=1e-5)
    pi = rope_scaling("pi", (8, 8), (16, 16), (8, 8), theta=100.0)
    moved = net(x, torch.tensor([0.3, 0.7]), rope_tables=rotary_from_axes(pi, (16, 16)))
    assert float((moved - out).abs().max()) > 1e-3  # and other tables do change it


def test_dit_rejects_tables_of_the_wrong_shape():
    net = _dit()
    x = torch.randn(1, 3, 32, 32)
    with pytest.raises(ValueError, match="rope_tables"):
        net(x, 0.5, rope_tables=(torch.ones(10, 16), torch.ones(10, 16)))
    with pytest.raises(TypeError, match="rope_tables"):
        net(x, 0.5, rope_tables=torch.ones(64, 16))


# --- scenes and metrics ----------------------------------------------------------------------------------------

def test_scenes_render_the_same_scene_at_every_resolution():
    """Downsampling the 128² render gives the 32² render (bug: texture in pixel instead of scene units)."""
    s = random_scenes(4, seed=5)
    hi = torch.from_numpy(np.stack([render(x, 128) for x in s]))
    lo = torch.from_numpy(np.stack([render(x, 32) for x in s]))
    down = torch.nn.functional.avg_pool2d(hi, 4)
    assert float((down - lo).abs().mean()) < 0.03
    counts = object_counts(render_scenes(64, 64, seed=2))
    assert int(counts.min()) >= 1 and int(counts.max()) <= 2
    assert duplication_rate(render_scenes(64, 96, seed=3)) == 0.0


def test_metrics_see_duplication_tiling_and_spectral_change():
    """A 2×2 tiling of 32² scenes duplicates objects and repeats at 32 px (bug: metrics blind to tiling)."""
    lo = render_scenes(16, 32, seed=7)
    tiled = lo.repeat(1, 1, 2, 2)  # what 'none' extrapolation does at its worst
    ref = render_scenes(16, 64, seed=8)
    assert duplication_rate(tiled) > 0.9 and duplication_rate(ref) == 0.0
    assert repetition_score(tiled, 32) > 0.9 > 0.6 > repetition_score(ref, 32)
    blurred = torch.nn.functional.avg_pool2d(ref, 4).repeat_interleave(4, 2).repeat_interleave(4, 3)
    assert spectrum_distance(blurred, render_scenes(16, 64, seed=9)) > 3 * spectrum_distance(ref, render_scenes(16, 64, seed=9))
    assert random_crops(ref, 32, 3).shape == (48, 3, 32, 32)


# --- the practitioner path: diffusers FLUX ----------------------------------------------------------------------

def _tiny_flux():
    diffusers = pytest.importorskip("diffusers")
    torch.manual_seed(0)
    return diffusers.FluxTransformer2DModel(patch_size=1, in_channels=4, num_layers=1, num_single_layers=1,
                                            attention_head_dim=16, num_attention_heads=2, joint_attention_dim=8,
                                            pooled_projection_dim=8, axes_dims_rope=(4, 6, 6)).eval()


def _flux_inputs(h, w, seed=0):
    gen = torch.Generator().manual_seed(seed)
    img_ids = torch.zeros(h, w, 3)
    img_ids[..., 1] = torch.arange(h)[:, None]
    img_ids[..., 2] = torch.arange(w)[None, :]
    return dict(hidden_states=torch.randn(1, h * w, 4, generator=gen),
                encoder_hidden_states=torch.randn(1, 5, 8, generator=gen),
                pooled_projections=torch.randn(1, 8, generator=gen), timestep=torch.tensor([0.8]),
                img_ids=img_ids.reshape(-1, 3), txt_ids=torch.zeros(5, 3), return_dict=False)


def test_flux_patch_leaves_native_resolution_unchanged():
    """At the native grid the patched FLUX gives the same output (bug: the patch perturbs 1×)."""
    from diffbook.sega.flux import patch_flux
    model = _tiny_flux()
    inputs = _flux_inputs(6, 6)
    with torch.no_grad():
        ref = model(**inputs)[0]
        handle = patch_flux(model, "sega", train_grid=(6, 6))
        out = model(**inputs)[0]
        handle.remove()
        back = model(**inputs)[0]
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(back, ref, rtol=0, atol=0)


@pytest.mark.parametrize("method", ["pi", "yarn", "dy_yarn", "sega"])
def test_flux_patch_tables_follow_the_formulas_at_2x(method):
    """At 2× the patched pos_embed gives m·cos(p ω) of rope_scaling, repeat-interleaved (bug: wrong layout/time)."""
    from diffbook.sega.flux import patch_flux
    model = _tiny_flux()
    inputs = _flux_inputs(8, 8)
    handle = patch_flux(model, method, train_grid=(4, 4))
    seen = {}
    hook = model.pos_embed.register_forward_hook(lambda m, a, o: seen.update(out=o))
    with torch.no_grad():
        plain = None
        out = model(**inputs)[0]
    hook.remove()
    cos, sin = seen["out"]
    tokens = handle.pos_embed.image_tokens
    assert handle.pos_embed.t == pytest.approx(0.8)
    axes = rope_scaling(method, (4, 4), (8, 8), (6, 6), theta=10000.0, t=0.8, latent=tokens)
    ids = torch.cat([inputs["txt_ids"], inputs["img_ids"]]).double()
    col = ids[:, 2:3] * axes[1].omega
    want = (axes[1].magnitude * torch.cos(col)).repeat_interleave(2, 1).float()
    torch.testing.assert_close(cos[:, 4 + 6:], want, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(cos[:, :4], torch.ones(cos.shape[0], 4), rtol=0, atol=0)  # index axis plain
    assert torch.isfinite(out).all()
    handle.remove()
    del plain


# --- bad input ----------------------------------------------------------------------------------------------

BAD = [
    (dict(method="sega2"), ValueError, "one of none, pi"),
    (dict(target_grid=(4, 4), method="pi"), ValueError, "target_grid must be >="),
    (dict(axis_dims=(15, 16)), ValueError, "axis_dims"),
    (dict(latent=torch.randn(1, 8, 7, 16)), ValueError, "latent must have shape"),
    (dict(latent=torch.full((1, 8, 16, 16), float("nan"))), ValueError, "finite"),
    (dict(latent=None), ValueError, "latent is required"),
    (dict(latent=np.zeros((1, 8, 16, 16))), TypeError, "latent must be a torch.Tensor"),
    (dict(t=1.5), ValueError, "t must lie in"),
    (dict(theta=1.0), ValueError, "theta"),
    (dict(train_grid=8), TypeError, "train_grid"),
    (dict(options=dict(alpha=1)), TypeError, "options"),
    (dict(options=SegaOptions(pairs="middle")), ValueError, "options.pairs"),
]


@pytest.mark.parametrize("change,error,match", BAD)
def test_rope_scaling_rejects_bad_input_with_a_clear_message(change, error, match):
    args = dict(method="sega", train_grid=(8, 8), target_grid=(16, 16), axis_dims=(16, 16), theta=100.0, t=0.5,
                latent=torch.randn(1, 8, 16, 16))
    args.update(change)
    method = args.pop("method")
    train, target, dims = args.pop("train_grid"), args.pop("target_grid"), args.pop("axis_dims")
    with pytest.raises(error, match=match):
        rope_scaling(method, train, target, dims, **args)
