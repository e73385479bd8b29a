"""Offline data: shapes, ranges, the documented standardisation, reproducibility and disjoint splits."""

import math

import pytest
import torch

from diffbook.data import digits, patches, toy2d

f64 = torch.float64
SAMPLERS = [toy2d.sample_moons, toy2d.sample_swiss_roll, toy2d.sample_rings, toy2d.sample_checkerboard]


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# ------------------------------------------------------------------------------------------------ toy 2-D


@pytest.mark.parametrize("sampler", SAMPLERS, ids=lambda f: f.__name__)
def test_toy2d_shape_scaling_and_determinism(sampler):
    x = sampler(100_000, noise=0.0, generator=gen(0), dtype=f64)
    assert x.shape == (100_000, 2) and x.dtype == f64 and torch.isfinite(x).all()
    # documented scaling: mean 0, per-axis variance 1 on average (E|x|² = 2); sampling error is ~0.5 %
    assert x.mean(0).abs().max() < 0.02, x.mean(0)
    assert x.var(0).mean().item() == pytest.approx(1.0, abs=0.02)
    # noise adds noise² to every axis' variance
    xn = sampler(100_000, noise=0.5, generator=gen(0), dtype=f64)
    assert xn.var(0).mean().item() == pytest.approx(1.25, abs=0.03)
    a, b, c = (sampler(64, generator=gen(s)) for s in (1, 1, 2))
    assert a.dtype == torch.float32 and torch.equal(a, b) and not torch.allclose(a, c)


def test_toy2d_shapes_are_what_they_claim():
    # rings: noiseless radii take exactly n_rings values, in ratio 1 : 2 : 3
    r = toy2d.sample_rings(3000, n_rings=3, noise=0.0, generator=gen(3), dtype=f64).norm(dim=1)
    levels = torch.unique(torch.round(r / r.min() * 1e6) / 1e6)
    assert torch.allclose(levels, torch.tensor([1.0, 2.0, 3.0], dtype=f64))
    # checkerboard: every noiseless point is on a filled square ((i + j) even on the 4 × 4 board)
    x = toy2d.sample_checkerboard(5000, generator=gen(4), dtype=f64) * math.sqrt(16 / 12) + 2.0
    ij = torch.floor(x).long()
    assert ((ij >= 0) & (ij < 4)).all() and ((ij.sum(1) % 2) == 0).all()
    assert len(torch.unique(ij[:, 0] * 4 + ij[:, 1])) == 8
    # moons: undo the scaling and every point is on one of the two unit half circles
    scale = math.sqrt((0.75 + 9 / 16 - 1 / math.pi) / 2)
    m = toy2d.sample_moons(2000, noise=0.0, generator=gen(5), dtype=f64) * scale + torch.tensor([0.5, 0.25], dtype=f64)
    d_upper = (m.norm(dim=1) - 1).abs()
    d_lower = ((m - torch.tensor([1.0, 0.5], dtype=f64)).norm(dim=1) - 1).abs()
    assert torch.minimum(d_upper, d_lower).max() < 1e-12
    # swiss roll: undo the scaling and each point is (t cos t, t sin t) with t = |x| in [3π/2, 9π/2]
    a, b = 1.5 * math.pi, 4.5 * math.pi
    mean = torch.tensor([2.0, 2 / (3 * math.pi)], dtype=f64)
    scale = math.sqrt(((b**3 - a**3) / (3 * (b - a)) - mean.pow(2).sum().item()) / 2)
    s = toy2d.sample_swiss_roll(2000, noise=0.0, generator=gen(6), dtype=f64) * scale + mean
    t = s.norm(dim=1)
    assert t.min() >= a - 1e-9 and t.max() <= b + 1e-9
    assert torch.allclose(s, torch.stack([t * torch.cos(t), t * torch.sin(t)], dim=1), atol=1e-9)


def test_toy2d_bad_inputs():
    with pytest.raises(ValueError, match="n must be a positive int"):
        toy2d.sample_moons(0)
    with pytest.raises(ValueError, match="noise must be a finite number >= 0"):
        toy2d.sample_swiss_roll(10, noise=-0.1)
    with pytest.raises(TypeError, match="generator must be a torch.Generator"):
        toy2d.sample_rings(10, generator=0)
    with pytest.raises(ValueError, match="n_rings must be a positive int"):
        toy2d.sample_rings(10, n_rings=0)
    with pytest.raises(ValueError, match="cells must be an even int"):
        toy2d.sample_checkerboard(10, cells=3)


# ---------------------------------------------------------------------------------------------- digits


def test_digits_shapes_ranges_and_upsampling():
    x, y = digits.load_digits()
    assert x.shape == (digits.N_DIGITS, 1, 8, 8) and x.dtype == torch.float32
    assert y.shape == (digits.N_DIGITS,) and y.dtype == torch.int64
    assert x.min().item() == -1.0 and x.max().item() == 1.0
    assert torch.equal(torch.unique(y), torch.arange(10))
    levels = torch.unique(x)  # 17 grey levels v / 8 - 1, v = 0 … 16
    assert torch.allclose(levels, torch.arange(17) / 8 - 1)
    x16, y16 = digits.load_digits(upsample=True, dtype=f64)
    assert x16.shape == (digits.N_DIGITS, 1, 16, 16) and x16.dtype == f64 and torch.equal(y16, y)
    assert x16.min() >= -1.0 and x16.max() <= 1.0
    # bilinear (align_corners=False): output pixel 2i+1 sits a quarter of the way from source i to i+1
    x8 = x.double()
    expected = (9 * x8[..., :-1, :-1] + 3 * x8[..., 1:, :-1] + 3 * x8[..., :-1, 1:] + x8[..., 1:, 1:]) / 16
    assert torch.allclose(x16[..., 1:-1:2, 1:-1:2], expected, atol=1e-12)


def test_digits_split_is_stratified_deterministic_and_disjoint():
    x, y = digits.load_digits()
    index = torch.arange(len(y))
    tr_i, tr_y, te_i, te_y = digits.train_test_split(index, y)
    assert len(tr_i) == 1438 and len(te_i) == 359
    assert set(tr_i.tolist()).isdisjoint(te_i.tolist()) and len(set(tr_i.tolist()) | set(te_i.tolist())) == len(y)
    assert torch.equal(tr_y, y[tr_i]) and torch.equal(te_y, y[te_i])
    counts = torch.bincount(te_y, minlength=10).double() / torch.bincount(y, minlength=10)
    assert ((counts - 0.2).abs() < 0.01).all()  # every class is 20 % test
    again = digits.train_test_split(index, y)
    assert torch.equal(again[2], te_i)  # the default split is the same every time
    other = digits.train_test_split(index, y, generator=gen(5))
    assert not torch.equal(other[2], te_i)
    xs = digits.train_test_split(x, y)
    assert torch.equal(xs[0], x[tr_i]) and torch.equal(xs[2], x[te_i])
    with pytest.raises(ValueError, match="test_fraction must be a number in \\(0, 1\\)"):
        digits.train_test_split(x, y, test_fraction=1.0)
    with pytest.raises(ValueError, match="labels must be an integer tensor"):
        digits.train_test_split(x, y[:10])
    with pytest.raises(TypeError, match="upsample must be a bool"):
        digits.load_digits(upsample=16)


# -------------------------------------------------------------------------------------------- patches


def test_photos_ship_with_the_packages():
    import matplotlib.cbook
    from sklearn.datasets import load_sample_images

    mpl_file = matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)
    assert patches.photo_path("grace_hopper").samefile(mpl_file)
    sk = load_sample_images()
    assert {patches.photo_path(n).name for n in ("china", "flower")} == {p.split("/")[-1] for p in sk.filenames}
    china = patches.load_photo("china")
    assert china.shape == (3, 427, 640) and china.min() >= -1 and china.max() <= 1
    assert torch.allclose(china, torch.from_numpy(sk.images[0].copy()).permute(2, 0, 1).float() / 127.5 - 1, atol=1e-6)
    grey = patches.load_photo("grace_hopper", grayscale=True, downscale=4)
    assert grey.shape == (1, 150, 128)


def test_patches_shapes_ranges_determinism():
    p, boxes = patches.sample_patches(200, size=16, generator=gen(0), return_boxes=True)
    assert p.shape == (200, 1, 16, 16) and p.dtype == torch.float32 and boxes.shape == (200, 3)
    assert p.min() >= -1 and p.max() <= 1 and p.std() > 0.05
    assert set(boxes[:, 0].tolist()) == {0, 1, 2}  # all three photos are used
    assert torch.equal(p, patches.sample_patches(200, size=16, generator=gen(0)))
    assert not torch.equal(p, patches.sample_patches(200, size=16, generator=gen(1)))
    # a patch is exactly the crop of its photo at its box
    k, top, left = boxes[7].tolist()
    photo = patches.load_photo(patches.PHOTOS[k], grayscale=True)
    assert torch.equal(p[7], photo[:, top : top + 16, left : left + 16])
    rgb = patches.sample_patches(10, size=8, grayscale=False, downscale=2, photos=("flower",), generator=gen(2))
    assert rgb.shape == (10, 3, 8, 8)


def test_patch_splits_are_disjoint():
    size, frac = 12, 0.25
    kw = dict(size=size, test_fraction=frac, generator=gen(3), return_boxes=True)
    _, train = patches.sample_patches(500, split="train", **kw)
    kw["generator"] = gen(3)
    _, test = patches.sample_patches(500, split="test", **kw)
    widths = {k: patches.load_photo(name, grayscale=True).shape[2] for k, name in enumerate(patches.PHOTOS)}
    for k, w in widths.items():
        boundary = patches.split_columns(w, "train", frac)[1]
        assert boundary == w - round(frac * w)
        tr, te = train[train[:, 0] == k], test[test[:, 0] == k]
        assert (tr[:, 2] + size <= boundary).all()  # every training crop ends before the boundary
        assert (te[:, 2] >= boundary).all() and (te[:, 2] + size <= w).all()  # every test crop starts after it
    # no test patch equals a training patch
    p_train = patches.sample_patches(500, size=size, split="train", generator=gen(3)).flatten(1)
    p_test = patches.sample_patches(500, size=size, split="test", generator=gen(3)).flatten(1)
    assert torch.cdist(p_test, p_train).min() > 0


def test_patches_bad_inputs():
    with pytest.raises(ValueError, match="size=200 does not fit"):
        patches.sample_patches(4, size=200, split="test")
    with pytest.raises(ValueError, match="split must be one of"):
        patches.sample_patches(4, split="validation")
    with pytest.raises(ValueError, match="photos must hold names from"):
        patches.sample_patches(4, photos=("lena",))
    with pytest.raises(TypeError, match="photos must be a non-empty tuple"):
        patches.sample_patches(4, photos="china")
    with pytest.raises(ValueError, match="n must be a positive int"):
        patches.sample_patches(0)
    with pytest.raises(ValueError, match="downscale must be a positive int"):
        patches.load_photo("china", downscale=0)
    with pytest.raises(ValueError, match="name must be one of"):
        patches.photo_path("astronaut")
