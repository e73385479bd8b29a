"""Metrics: MMD, sliced Wasserstein, PSNR/SSIM, the classifier Fréchet distance and bits/dim, checked against
closed forms, independent reference implementations and their defining properties."""

import importlib
import math
import os

import numpy as np
import pytest
import scipy.linalg
import scipy.ndimage
import torch

from diffbook.data import digits
from diffbook.metrics import bits, frechet, image, mmd, sliced_wasserstein

f64 = torch.float64


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# ----------------------------------------------------------------------------------------------- MMD


def gaussian_mmd2(sigma: float, shift: float, d: int, s2: float = 1.0) -> float:
    """Population MMD² between N(0, s2 I) and N(shift e_1, s2 I) in d dims for the kernel exp(-|x-y|²/(2σ²)).

    For z = x - y ~ N(δ, v I): E exp(-|z|²/(2σ²)) = (σ²/(σ²+v))^{d/2} exp(-|δ|²/(2(σ²+v))), with v = 2 s2.
    """
    v = 2.0 * s2
    base = (sigma**2 / (sigma**2 + v)) ** (d / 2)
    return 2.0 * base * (1.0 - math.exp(-(shift**2) / (2.0 * (sigma**2 + v))))


def test_mmd_same_distribution_is_near_zero_and_shift_is_detected():
    g = gen(0)
    x, y = torch.randn(2000, 2, generator=g, dtype=f64), torch.randn(2000, 2, generator=g, dtype=f64)
    shifted = y + torch.tensor([0.5, 0.0], dtype=f64)
    same = float(mmd.mmd2(x, y, bandwidth=1.0))
    diff = float(mmd.mmd2(x, shifted, bandwidth=1.0))
    exact = gaussian_mmd2(1.0, 0.5, 2)  # 0.0272
    # the null standard deviation of the U-statistic at n = 2000 is about 4e-4
    assert abs(same) < 2e-3, same
    assert diff == pytest.approx(exact, rel=0.15), (diff, exact)
    assert diff > 10 * abs(same)


def test_unbiased_mmd_is_unbiased_and_biased_one_is_not():
    """Averaged over 400 small samples (n = m = 12), the U-statistic matches the population MMD²; the
    V-statistic is too large by about (1 - E k(x, x')) (1/n + 1/m)."""
    g = gen(1)
    sigma, shift, n, reps = 1.0, 1.0, 12, 400
    u_vals, v_vals = [], []
    for _ in range(reps):
        x = torch.randn(n, 2, generator=g, dtype=f64)
        y = torch.randn(n, 2, generator=g, dtype=f64) + torch.tensor([shift, 0.0], dtype=f64)
        u_vals.append(float(mmd.mmd2(x, y, bandwidth=sigma)))
        v_vals.append(float(mmd.mmd2(x, y, bandwidth=sigma, unbiased=False)))
    u, v = np.array(u_vals), np.array(v_vals)
    exact = gaussian_mmd2(sigma, shift, 2)
    se = u.std(ddof=1) / math.sqrt(reps)
    assert abs(u.mean() - exact) < 3.5 * se, (u.mean(), exact, se)
    e_kxx = (sigma**2 / (sigma**2 + 2.0)) ** (2 / 2)  # E k(x, x') within one sample
    predicted_bias = (1.0 - e_kxx) * (2.0 / n)
    assert (v - u).mean() == pytest.approx(predicted_bias, rel=0.1)
    assert (v.mean() - exact) > 5 * se  # the biased estimator is visibly off


def test_mmd_matches_direct_formula_blocks_and_bandwidth_sum():
    g = gen(2)
    x = torch.randn(37, 3, generator=g, dtype=f64) + 100.0  # far from the origin: centring keeps accuracy
    y = torch.randn(23, 3, generator=g, dtype=f64) * 1.5 + 100.0
    sig = [0.7, 2.0]
    kxx, kyy, kxy = (mmd.gaussian_kernel(a, b, sig) for a, b in ((x, x), (y, y), (x, y)))
    n, m = 37, 23
    direct_u = (kxx.sum() - kxx.trace()) / (n * (n - 1)) + (kyy.sum() - kyy.trace()) / (m * (m - 1)) - 2 * kxy.mean()
    direct_v = kxx.mean() + kyy.mean() - 2 * kxy.mean()
    for block in (1, 50, 2**18):  # one row at a time, a few rows, everything at once
        assert float(mmd.mmd2(x, y, bandwidth=sig, block_size=block)) == pytest.approx(float(direct_u), abs=1e-12)
    assert float(mmd.mmd2(x, y, bandwidth=sig, unbiased=False)) == pytest.approx(float(direct_v), abs=1e-12)
    summed = mmd.mmd2(x, y, bandwidth=0.7) + mmd.mmd2(x, y, bandwidth=2.0)  # the kernel is a sum: so is MMD²
    assert float(mmd.mmd2(x, y, bandwidth=torch.tensor(sig, dtype=f64))) == pytest.approx(float(summed), abs=1e-12)
    assert float(mmd.mmd2(x, y, bandwidth=sig, unbiased=False)) >= 0.0


def test_mmd_large_float32_input_in_blocks():
    """10 000 × 10 000 points in 2-D in float32: the block-wise sums run in well under a second or two."""
    g = gen(3)
    x, y = torch.randn(10_000, 2, generator=g), torch.randn(10_000, 2, generator=g)
    val = mmd.mmd2(x, y, bandwidth=1.0)
    assert val.dtype == torch.float32 and abs(float(val)) < 5e-4


def test_median_bandwidth():
    """For two N(0, I_2) points, |x - y|² ~ 2 χ²_2, whose median is 4 ln 2: σ = sqrt(4 ln 2) ≈ 1.665."""
    g = gen(4)
    x, y = torch.randn(3000, 2, generator=g, dtype=f64), torch.randn(3000, 2, generator=g, dtype=f64)
    sigma = mmd.median_bandwidth(x, y, max_points=1500, generator=gen(5))
    assert float(sigma) == pytest.approx(math.sqrt(4 * math.log(2)), rel=0.03)
    assert torch.equal(sigma, mmd.median_bandwidth(x, y, max_points=1500, generator=gen(5)))  # reproducible


def test_mmd_bad_inputs():
    x = torch.randn(5, 2)
    with pytest.raises(TypeError, match="x must be a torch.Tensor"):
        mmd.mmd2(x.numpy(), x, bandwidth=1.0)
    with pytest.raises(ValueError, match="same dimension"):
        mmd.mmd2(x, torch.randn(5, 3), bandwidth=1.0)
    with pytest.raises(ValueError, match="y must have shape"):
        mmd.mmd2(x, torch.randn(5), bandwidth=1.0)
    with pytest.raises(ValueError, match="bandwidth must be finite and positive"):
        mmd.mmd2(x, x, bandwidth=[1.0, -1.0])
    with pytest.raises(TypeError, match="bandwidth must be a number"):
        mmd.mmd2(x, x, bandwidth="wide")
    with pytest.raises(ValueError, match="at least 2 points"):
        mmd.mmd2(x[:1], x, bandwidth=1.0)
    with pytest.raises(ValueError, match="block_size"):
        mmd.mmd2(x, x, bandwidth=1.0, block_size=0)
    with pytest.raises(ValueError, match="median distance is 0"):
        mmd.median_bandwidth(torch.zeros(4, 2))


# ------------------------------------------------------------------------------------- sliced Wasserstein


def test_sliced_w2_of_shifted_gaussians_matches_closed_form():
    """N(0, I) vs N(m, I): every projection is a shift by θ·m, so SW_2² = E(θ·m)² = |m|²/d, and
    SW_1 = E|θ·m| = |m| E|cos φ| = 2|m|/π in 2-D.

    Both samples are centred exactly, so the only errors are the Monte Carlo error over 2000 directions
    (relative sd 0.71/sqrt(2000) = 1.6 % for SW_2²) and the small positive W_2² between two independent
    standard normal samples of 1000 points (about 0.3 % of 3.125)."""
    g = gen(10)
    m = torch.tensor([1.5, -2.0], dtype=f64)  # |m|² = 6.25
    x, z = torch.randn(1000, 2, generator=g, dtype=f64), torch.randn(1000, 2, generator=g, dtype=f64)
    x, y = x - x.mean(0), z - z.mean(0) + m
    theta = sliced_wasserstein.random_directions(2000, 2, generator=gen(11), dtype=f64)
    sw2 = sliced_wasserstein.sliced_wasserstein(x, y, p=2, directions=theta)
    assert float(sw2) ** 2 == pytest.approx(6.25 / 2, rel=0.05)
    sw1 = sliced_wasserstein.sliced_wasserstein(x, y, p=1, directions=theta)
    assert float(sw1) == pytest.approx(2 * 2.5 / math.pi, rel=0.05)
    # a sample that is an exact translate: each slice is an exact shift, so SW_2² = mean of (θ·m)², to round-off
    exact = sliced_wasserstein.sliced_wasserstein(x, x + m, directions=theta) ** 2
    assert float(exact) == pytest.approx(float((theta @ m).pow(2).mean()), rel=1e-10)
    # same sample: zero; two samples of the same distribution: small next to the shift
    assert float(sliced_wasserstein.sliced_wasserstein(x, x, generator=gen(12))) == 0.0
    assert float(sliced_wasserstein.sliced_wasserstein(x, z, generator=gen(12))) < 0.15


def test_sliced_wasserstein_generator_and_fixed_directions():
    g = gen(13)
    x, y = torch.randn(300, 5, generator=g), torch.randn(300, 5, generator=g) + 0.3
    a = sliced_wasserstein.sliced_wasserstein(x, y, n_projections=16, generator=gen(1))
    b = sliced_wasserstein.sliced_wasserstein(x, y, n_projections=16, generator=gen(1))
    c = sliced_wasserstein.sliced_wasserstein(x, y, n_projections=16, generator=gen(2))
    assert torch.equal(a, b) and not torch.equal(a, c)
    theta = sliced_wasserstein.random_directions(16, 5, generator=gen(1))
    assert torch.allclose(theta.norm(dim=1), torch.ones(16), atol=1e-6)
    assert torch.allclose(sliced_wasserstein.sliced_wasserstein(x, y, directions=theta), a)
    # along a single axis the sliced distance is the exact 1-D W_2 of that coordinate
    e1 = torch.tensor([[1.0, 0, 0, 0, 0]])
    w2_1d = (x[:, 0].sort().values - y[:, 0].sort().values).pow(2).mean().sqrt()
    assert torch.allclose(sliced_wasserstein.sliced_wasserstein(x, y, directions=e1), w2_1d)


def test_sliced_wasserstein_bad_inputs():
    x = torch.randn(10, 2)
    with pytest.raises(ValueError, match="same shape"):
        sliced_wasserstein.sliced_wasserstein(x, torch.randn(11, 2))
    with pytest.raises(ValueError, match="p must be a number >= 1"):
        sliced_wasserstein.sliced_wasserstein(x, x, p=0.5)
    with pytest.raises(ValueError, match="n_projections"):
        sliced_wasserstein.sliced_wasserstein(x, x, n_projections=0)
    with pytest.raises(TypeError, match="generator"):
        sliced_wasserstein.sliced_wasserstein(x, x, generator=0)
    with pytest.raises(ValueError, match="directions must have shape"):
        sliced_wasserstein.sliced_wasserstein(x, x, directions=torch.randn(3, 4))


# ------------------------------------------------------------------------------------------ PSNR and SSIM


def test_psnr_is_exact_on_a_constructed_example():
    x = torch.zeros(3, 1, 8, 8, dtype=f64)
    y = x.clone()
    y[0] += 0.1  # MSE 0.01
    y[1, :, :4] = 0.5  # half the pixels off by 0.5: MSE 0.125
    psnr = image.psnr(y, x, data_range=2.0)
    assert psnr[0].item() == pytest.approx(10 * math.log10(4 / 0.01), abs=1e-9)  # 26.0206 dB
    assert psnr[1].item() == pytest.approx(10 * math.log10(4 / 0.125), abs=1e-9)  # 15.0515 dB
    assert math.isinf(psnr[2].item())  # identical images
    assert image.psnr(y, x, data_range=1.0)[0].item() == pytest.approx(20.0, abs=1e-9)  # 10 log10(1/0.01)


def reference_ssim(x: np.ndarray, y: np.ndarray, data_range: float) -> float:
    """Wang et al. (2004) as scikit-image computes it, with SciPy's Gaussian filter (σ = 1.5, truncate 3.5 gives
    the 11-tap window) and the borders where the window does not fit cropped away; one channel."""
    filt = lambda a: scipy.ndimage.gaussian_filter(a, 1.5, truncate=3.5)  # noqa: E731
    mx, my = filt(x), filt(y)
    vx, vy, cxy = filt(x * x) - mx**2, filt(y * y) - my**2, filt(x * y) - mx * my
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    s = (2 * mx * my + c1) * (2 * cxy + c2) / ((mx**2 + my**2 + c1) * (vx + vy + c2))
    return float(s[5:-5, 5:-5].mean())


@pytest.fixture(scope="module")
def noisy_images():
    g = gen(20)
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, 32, dtype=f64), torch.linspace(-1, 1, 32, dtype=f64), indexing="ij")
    clean = torch.stack([torch.sin(3 * xx) * torch.cos(2 * yy), xx * yy, (xx**2 + yy**2 < 0.5).to(f64) - 0.5])
    clean = clean[None]  # (1, 3, 32, 32)
    levels = [0.0, 0.05, 0.1, 0.2, 0.4]
    noisy = torch.cat([clean + s * torch.randn(clean.shape, generator=g, dtype=f64) for s in levels])
    return clean.expand(len(levels), -1, -1, -1), noisy


def test_ssim_properties(noisy_images):
    clean, noisy = noisy_images
    s = image.ssim(noisy, clean, data_range=2.0)
    assert s.shape == (5,)
    assert s[0].item() == pytest.approx(1.0, abs=1e-12)  # SSIM(x, x) = 1
    assert (s[1:] < s[:-1]).all() and (s <= 1.0 + 1e-12).all()  # strictly decreasing in the noise level
    assert torch.allclose(image.ssim(clean, noisy, data_range=2.0), s, atol=1e-12)  # symmetric
    assert image.ssim(noisy, clean, data_range=2.0, return_map=True).shape == (5, 3, 22, 22)


def test_ssim_matches_an_independent_scipy_reference(noisy_images):
    clean, noisy = noisy_images
    s = image.ssim(noisy, clean, data_range=2.0)
    for i in range(noisy.shape[0]):
        ref = np.mean([reference_ssim(noisy[i, c].numpy(), clean[i, c].numpy(), 2.0) for c in range(3)])
        assert s[i].item() == pytest.approx(ref, abs=1e-10)


def test_ssim_of_constant_images_is_the_luminance_term():
    """On constant images σ = 0, so SSIM = (2ab + C1) / (a² + b² + C1), checkable by hand."""
    a, b, L = 0.2, -0.3, 2.0
    x, y = torch.full((1, 1, 16, 16), a, dtype=f64), torch.full((1, 1, 16, 16), b, dtype=f64)
    c1 = (0.01 * L) ** 2
    assert image.ssim(x, y, data_range=L).item() == pytest.approx((2 * a * b + c1) / (a * a + b * b + c1), abs=1e-12)


def require_peer(module: str):
    """Import a test-only peer. Missing, it skips on a reader's machine but *fails* in CI (``CI=true``) or when
    ``DIFFBOOK_REQUIRE_PEERS=1``: a cross-check must never skip silently where it is meant to run."""
    try:
        return importlib.import_module(module)
    except ImportError as err:
        required = os.environ.get("DIFFBOOK_REQUIRE_PEERS") == "1" or os.environ.get("CI", "").lower() == "true"
        if required:
            pytest.fail(f"{module} is required here (CI or DIFFBOOK_REQUIRE_PEERS=1) but cannot be imported: {err}")
        pytest.skip(f"{module} is not installed (pip install -r requirements.txt)")


def test_require_peer_fails_in_ci_and_skips_elsewhere(monkeypatch):
    monkeypatch.delenv("DIFFBOOK_REQUIRE_PEERS", raising=False)
    for env, outcome in [({"CI": "true"}, pytest.fail.Exception), ({"DIFFBOOK_REQUIRE_PEERS": "1"}, pytest.fail.Exception),
                         ({"CI": "false"}, pytest.skip.Exception)]:
        monkeypatch.delenv("CI", raising=False)
        for k, v in env.items():
            monkeypatch.setenv(k, v)
        with pytest.raises(outcome):
            require_peer("diffbook_no_such_peer")
        monkeypatch.delenv("DIFFBOOK_REQUIRE_PEERS", raising=False)
    assert require_peer("math") is math


def test_ssim_matches_scikit_image(noisy_images):
    """Cross-check against scikit-image's structural_similarity (a test dependency in requirements.txt)."""
    metrics = require_peer("skimage.metrics")
    clean, noisy = noisy_images
    s = image.ssim(noisy, clean, data_range=2.0)
    for i in range(noisy.shape[0]):
        ref = metrics.structural_similarity(
            noisy[i].numpy(), clean[i].numpy(), data_range=2.0, channel_axis=0,
            gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
        )
        assert s[i].item() == pytest.approx(ref, abs=1e-6)


def test_image_metric_bad_inputs():
    x = torch.zeros(2, 1, 8, 8)
    with pytest.raises(ValueError, match="window_size=11"):
        image.ssim(x, x, data_range=2.0)
    assert image.ssim(x, x, data_range=2.0, window_size=7, sigma=1.0).shape == (2,)  # small images: small window
    with pytest.raises(ValueError, match="data_range must be a positive number"):
        image.psnr(x, x, data_range=0)
    with pytest.raises(ValueError, match="x must have shape \\(n, C, H, W\\)"):
        image.psnr(x[0], x[0], data_range=2.0)
    with pytest.raises(ValueError, match="same shape"):
        image.psnr(x, x[:1], data_range=2.0)
    with pytest.raises(TypeError, match="y must be a floating-point"):
        image.psnr(x, x.long(), data_range=2.0)
    with pytest.raises(ValueError, match="size must be a positive odd int"):
        image.gaussian_window(10)


# ------------------------------------------------------------------------------------------- Fréchet


def random_spd(k: int, g: torch.Generator) -> torch.Tensor:
    a = torch.randn(k, k, generator=g, dtype=f64)
    return a @ a.T + 0.1 * torch.eye(k, dtype=f64)


def test_frechet_closed_forms():
    g = gen(30)
    mu, cov = torch.randn(6, generator=g, dtype=f64), random_spd(6, g)
    assert abs(float(frechet.frechet_distance(mu, cov, mu, cov))) < 1e-9  # identical Gaussians
    # diagonal covariances: |μ1 - μ2|² + Σ (sqrt a_i - sqrt b_i)²
    a, b = torch.rand(6, generator=g, dtype=f64) + 0.1, torch.rand(6, generator=g, dtype=f64) + 0.1
    mu2 = torch.randn(6, generator=g, dtype=f64)
    exact = (mu - mu2).pow(2).sum() + (a.sqrt() - b.sqrt()).pow(2).sum()
    diag = frechet.frechet_distance(mu, torch.diag(a), mu2, torch.diag(b))
    assert float(diag) == pytest.approx(float(exact), rel=1e-10)
    # full, non-commuting covariances: the textbook formula with scipy.linalg.sqrtm of Σ1 Σ2
    cov2 = random_spd(6, g)
    sq = scipy.linalg.sqrtm(cov.numpy() @ cov2.numpy()).real
    ref = float((mu - mu2).pow(2).sum()) + np.trace(cov.numpy() + cov2.numpy() - 2 * sq)
    assert float(frechet.frechet_distance(mu, cov, mu2, cov2)) == pytest.approx(ref, rel=1e-8)


def test_frechet_from_features_estimates_the_gaussian_distance():
    g = gen(31)
    x = torch.randn(20_000, 3, generator=g, dtype=f64)
    y = torch.randn(20_000, 3, generator=g, dtype=f64) * torch.tensor([1.0, 2.0, 0.5], dtype=f64) + 1.0
    exact = 3.0 + (1 - 1) ** 2 + (1 - math.sqrt(4)) ** 2 + (1 - math.sqrt(0.25)) ** 2  # 3 + 0 + 1 + 0.25
    assert float(frechet.frechet_distance_from_features(x, y)) == pytest.approx(exact, rel=0.03)


def test_frechet_bad_inputs():
    mu, cov = torch.zeros(3), torch.eye(3)
    with pytest.raises(ValueError, match="cov2 shape \\(3, 3\\)"):
        frechet.frechet_distance(mu, cov, mu, torch.eye(4))
    with pytest.raises(TypeError, match="mu1 must be a torch.Tensor"):
        frechet.frechet_distance([0.0] * 3, cov, mu, cov)
    with pytest.raises(ValueError, match="at least 2 rows"):
        frechet.gaussian_stats(torch.zeros(1, 3))
    with pytest.raises(ValueError, match="same width"):
        frechet.frechet_distance_from_features(torch.randn(5, 3), torch.randn(5, 4))


@pytest.fixture(scope="module")
def digit_classifier():
    images, labels = digits.load_digits()
    x_train, y_train, x_test, y_test = digits.train_test_split(images, labels)
    clf = frechet.train_feature_classifier(x_train, y_train, generator=gen(0))  # 300 steps, about 2 s
    return clf, x_train, y_train, x_test, y_test


def test_digit_classifier_accuracy_and_fid_like_distance(digit_classifier):
    clf, x_train, _, x_test, y_test = digit_classifier
    assert frechet.classifier_accuracy(clf, x_test, y_test) > 0.90  # measured: 98 % (97-99 % over seeds)
    f_train, f_test = frechet.features(clf, x_train), frechet.features(clf, x_test)
    assert f_train.shape == (x_train.shape[0], 64)
    noise = torch.rand(x_test.shape, generator=gen(1)) * 2 - 1
    d_real = float(frechet.frechet_distance_from_features(f_test, f_train))  # measured ≈ 2.5-3.5
    d_noise = float(frechet.frechet_distance_from_features(frechet.features(clf, noise), f_train))  # ≈ 600-1100
    assert d_real < 0.05 * d_noise, (d_real, d_noise)
    # shuffling the pixels keeps every pixel's value distribution but destroys the digits
    shuffled = x_test.flatten(1)[:, torch.randperm(64, generator=gen(2))].view_as(x_test)
    d_shuffled = float(frechet.frechet_distance_from_features(frechet.features(clf, shuffled), f_train))
    assert d_real < 0.1 * d_shuffled, (d_real, d_shuffled)


def test_classifier_training_is_reproducible_and_leaves_global_rng_alone():
    images, labels = digits.load_digits()
    images, labels = images[:200], labels[:200]
    state = torch.random.get_rng_state()
    a = frechet.train_feature_classifier(images, labels, steps=3, generator=gen(7))
    assert torch.equal(torch.random.get_rng_state(), state)
    b = frechet.train_feature_classifier(images, labels, steps=3, generator=gen(7))
    c = frechet.train_feature_classifier(images, labels, steps=3, generator=gen(8))
    for pa, pb in zip(a.state_dict().values(), b.state_dict().values()):
        assert torch.equal(pa, pb)
    assert not torch.equal(a.head.weight, c.head.weight)
    # other image sizes and channel counts work too
    rgb = torch.rand(20, 3, 16, 16, generator=gen(9)) * 2 - 1
    clf = frechet.train_feature_classifier(rgb, torch.arange(20) % 2, steps=2, generator=gen(9), progress=True)
    assert frechet.features(clf, rgb).shape == (20, 64)


def test_classifier_bad_inputs(digit_classifier):
    clf, x_train, y_train, *_ = digit_classifier
    with pytest.raises(ValueError, match="labels must have shape"):
        frechet.train_feature_classifier(x_train, y_train[:5], steps=1)
    with pytest.raises(TypeError, match="labels must be an integer"):
        frechet.train_feature_classifier(x_train, y_train.float(), steps=1)
    with pytest.raises(ValueError, match="steps must be a positive int"):
        frechet.train_feature_classifier(x_train, y_train, steps=0)
    with pytest.raises(ValueError, match="images must have 1 channels"):
        frechet.features(clf, torch.zeros(2, 3, 8, 8))
    with pytest.raises(ValueError, match="images must have shape \\(n, C, H, W\\)"):
        frechet.features(clf, torch.zeros(2, 8, 8))
    with pytest.raises(TypeError, match="classifier must be a FeatureClassifier"):
        frechet.features(torch.nn.Linear(2, 2), x_train)


# --------------------------------------------------------------------------------------------- bits


def test_bits_conversions_are_exact():
    D = 3 * 32 * 32
    assert bits.nats_to_bits(math.log(2.0)) == pytest.approx(1.0, abs=1e-15)
    assert bits.bits_per_dim(D * math.log(2.0) * 3.5, D) == pytest.approx(3.5, abs=1e-12)
    # the uniform density on [-1, 1]^D has -log p = D ln 2: one bit per dim, +7 for 8-bit data = 8 bits,
    # exactly the cost of coding 256 equally likely levels per dimension
    assert bits.bits_per_dim(D * math.log(2.0), D, n_bits=8) == pytest.approx(8.0, abs=1e-12)
    assert bits.dequantization_offset(8) == 7.0
    assert bits.dequantization_offset(5) == 4.0
    assert bits.dequantization_offset(8, levels=255) == pytest.approx(math.log2(127.5), abs=1e-12)  # 6.9944
    nll = torch.tensor([0.0, D * math.log(2.0)], dtype=f64)
    out = bits.bits_per_dim(nll, D, n_bits=8)
    assert isinstance(out, torch.Tensor) and torch.allclose(out, torch.tensor([7.0, 8.0], dtype=f64), atol=1e-12)
    assert bits.bits_per_character(100 * math.log(2.0), 50) == pytest.approx(2.0, abs=1e-12)
    assert bits.perplexity(10 * math.log(4.0), 10) == pytest.approx(4.0, abs=1e-12)
    assert float(bits.perplexity(torch.tensor(10 * math.log(4.0), dtype=f64), 10)) == pytest.approx(4.0, abs=1e-12)


def test_bits_bad_inputs():
    with pytest.raises(ValueError, match="num_dims must be a positive int"):
        bits.bits_per_dim(1.0, 0)
    with pytest.raises(TypeError, match="nll must be a float or a torch.Tensor"):
        bits.bits_per_dim("1.0", 3)
    with pytest.raises(TypeError, match="nll must be a floating-point tensor"):
        bits.bits_per_dim(torch.tensor([1, 2]), 3)
    with pytest.raises(ValueError, match="n_bits must be a positive int"):
        bits.bits_per_dim(1.0, 3, n_bits=0)
    with pytest.raises(ValueError, match="levels needs n_bits"):
        bits.bits_per_dim(1.0, 3, levels=255)
    with pytest.raises(ValueError, match="num_characters must be a positive int"):
        bits.bits_per_character(1.0, 0)
