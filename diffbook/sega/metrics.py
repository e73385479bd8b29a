"""Chapter 11's measurements of extrapolated samples: objects, repetition, spectra, Fréchet distances.

* object count and duplication rate: connected components (``scipy.ndimage.label``) of the saturated-colour
  mask; a sample with more than :data:`~diffbook.sega.scenes.MAX_OBJECTS` objects duplicated one;
* repetition: the peak of the normalised 2-D autocorrelation at a lag of about one training canvas;
* spectrum: RMS difference of the log radially averaged power spectrum to the reference at the same size;
* Fréchet distances on the engine's small-classifier features, of whole (downsampled) images and of
  random crops the size of a training canvas (the analogue of patch-FID).

Reference: Heusel et al. (2017), §3 (Fréchet distance); Rajabi et al. (2026), §4 (FID and patch FID).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage
from torch import Tensor

from diffbook._checks import check_int
from diffbook.metrics.frechet import FeatureClassifier, features, frechet_distance_from_features

from diffbook.sega.scenes import MAX_OBJECTS

__all__ = ["object_counts", "duplication_rate", "repetition_score", "radial_power", "spectrum_distance",
           "downsample", "random_crops", "frechet_whole", "frechet_patches", "evaluate", "scene_labels"]


def _check_images(images: object, name: str = "images") -> Tensor:
    if not isinstance(images, Tensor) or images.ndim != 4 or images.shape[1] != 3 or images.shape[0] == 0:
        raise ValueError(f"{name} must be RGB images of shape (n, 3, H, W) in [-1, 1], "
                         f"got {getattr(images, 'shape', type(images).__name__)}")
    if not images.is_floating_point() or not torch.isfinite(images).all():
        raise ValueError(f"{name} must be finite floating-point images")
    return images.detach().cpu().float()


def object_counts(images: Tensor, *, saturation: float = 0.35, min_area: float = 0.005) -> Tensor:
    """Objects per image: components of ``max(rgb) - min(rgb) > saturation`` larger than ``min_area`` (scene units²).

    Args:
        images: ``(n, 3, H, W)`` in ``[-1, 1]``.
    Returns:
        Shape ``(n,)``, int64.

    Reference: Rosenfeld & Pfaltz (1966) (connected-component labelling, as in scipy.ndimage.label).
    """
    x = (_check_images(images) + 1) / 2
    sat = (x.max(1).values - x.min(1).values).numpy() > saturation
    pixels = min_area * x.shape[2] * x.shape[3]
    counts = []
    for mask in sat:
        labels, k = ndimage.label(mask)
        sizes = np.bincount(labels.ravel())[1:] if k else np.zeros(0)
        counts.append(int((sizes >= pixels).sum()))
    return torch.tensor(counts)


def duplication_rate(images: Tensor) -> float:
    """Fraction of images ``(n, 3, H, W)`` with more objects than any training scene holds (a scalar).

    Reference: this book's duplication rule (Rajabi et al. 2026, §1: "objects duplicate").
    """
    return float((object_counts(images) > MAX_OBJECTS).float().mean())


def repetition_score(images: Tensor, period: int) -> float:
    """Mean peak of the normalised autocorrelation of the grey image at lags ``0.75 … 1.25 × period`` pixels.

    Near 0 for one scene per canvas, near 1 for a canvas tiled with period ``period``. Images ``(n, 3, H, W)``;
    returns a scalar.

    Reference: Wiener (1930) (autocorrelation as the inverse Fourier transform of the power spectrum).
    """
    x = _check_images(images).mean(1).double()
    check_int(period, "period")
    x = x - x.mean(dim=(1, 2), keepdim=True)
    ac = torch.fft.ifft2(torch.fft.fft2(x).abs() ** 2).real
    ac = ac / ac[:, :1, :1].clamp_min(1e-12)
    h, w = x.shape[1:]
    dy = torch.minimum(torch.arange(h), h - torch.arange(h)).double()
    dx = torch.minimum(torch.arange(w), w - torch.arange(w)).double()
    r = torch.hypot(*torch.meshgrid(dy, dx, indexing="ij"))
    ring = (r >= 0.75 * period) & (r <= 1.25 * period)
    if not bool(ring.any()):
        raise ValueError(f"period={period} does not fit in images of size {(h, w)}")
    return float(ac[:, ring].max(1).values.mean())


def radial_power(images: Tensor) -> Tensor:
    """Mean radially averaged power spectrum of the grey images, one value per integer radius: ``(R/2,)``.

    Reference: van der Schaaf & van Hateren (1996) (radially averaged power spectra of images).
    """
    x = _check_images(images).mean(1).double()
    x = x - x.mean(dim=(1, 2), keepdim=True)
    p = torch.fft.fftshift(torch.fft.fft2(x), dim=(1, 2)).abs().pow(2).mean(0)
    h, w = p.shape
    r = torch.hypot(*torch.meshgrid(torch.arange(h, dtype=torch.float64) - h // 2,
                                    torch.arange(w, dtype=torch.float64) - w // 2, indexing="ij")).round().long()
    bins = min(h, w) // 2
    keep = r < bins
    total = torch.zeros(bins, dtype=torch.float64).index_add_(0, r[keep], p[keep])
    count = torch.zeros(bins, dtype=torch.float64).index_add_(0, r[keep], torch.ones_like(p[keep]))
    return total / count.clamp_min(1)


def spectrum_distance(images: Tensor, reference: Tensor) -> float:
    """RMS of ``log10`` radial power differences (radii ≥ 1) between samples and reference, both ``(n, 3, R, R)``.

    Reference: Durall et al. (2020), §3 (spectral distortions of generated images).
    """
    a, b = _check_images(images), _check_images(reference, "reference")
    if a.shape[2:] != b.shape[2:]:
        raise ValueError(f"images and reference must have the same size, got {tuple(a.shape[2:])} and {tuple(b.shape[2:])}")
    d = torch.log10(radial_power(a)[1:] + 1e-12) - torch.log10(radial_power(b)[1:] + 1e-12)
    return float(d.pow(2).mean().sqrt())


def downsample(images: Tensor, size: int) -> Tensor:
    """Area-average images ``(n, 3, H, W)`` to ``(n, 3, size, size)``.

    Reference: Rajabi et al. (2026), §4 (global FID on downsampled images; area averaging).
    """
    return F.adaptive_avg_pool2d(_check_images(images), size)


def random_crops(images: Tensor, size: int, per_image: int, seed: int = 0) -> Tensor:
    """``per_image`` random ``size × size`` crops of each image: ``(n · per_image, 3, size, size)``.

    Reference: Rajabi et al. (2026), §4 (patch FID on crops).
    """
    x = _check_images(images)
    check_int(size, "size")
    check_int(per_image, "per_image")
    h, w = x.shape[2:]
    if size > min(h, w):
        raise ValueError(f"size must be <= the image size {(h, w)}, got {size}")
    gen = torch.Generator().manual_seed(seed)
    out = []
    for img in x:
        for _ in range(per_image):
            i = int(torch.randint(0, h - size + 1, (1,), generator=gen))
            j = int(torch.randint(0, w - size + 1, (1,), generator=gen))
            out.append(img[:, i:i + size, j:j + size])
    return torch.stack(out)


def frechet_whole(classifier: FeatureClassifier, images: Tensor, reference: Tensor, size: int) -> float:
    """Fréchet distance (a scalar) of classifier features of whole images ``(n, 3, R, R)``, downsampled to ``size``.

    Reference: Heusel et al. (2017), Eq. 6.
    """
    fa = features(classifier, downsample(images, size))
    fb = features(classifier, downsample(reference, size))
    return float(frechet_distance_from_features(fa.double(), fb.double()))


def frechet_patches(classifier: FeatureClassifier, images: Tensor, reference: Tensor, size: int,
                    per_image: int = 4, seed: int = 0) -> float:
    """Fréchet distance (a scalar) of features of random ``size²`` crops of ``(n, 3, R, R)`` images (detail).

    Reference: Heusel et al. (2017), Eq. 6; Rajabi et al. (2026), §4 (patch FID).
    """
    fa = features(classifier, random_crops(images, size, per_image, seed))
    fb = features(classifier, random_crops(reference, size, per_image, seed + 1))
    return float(frechet_distance_from_features(fa.double(), fb.double()))


def evaluate(images: Tensor, reference: Tensor, classifier: FeatureClassifier, train_size: int,
             seed: int = 0) -> dict[str, float]:
    """Every metric of the chapter for samples ``images`` against ``reference``, both ``(n, 3, R, R)``.

    Returns:
        ``dup`` (duplication rate), ``count`` (mean objects), ``rep`` (repetition at one training canvas),
        ``spec`` (log radial-spectrum distance), ``fd`` (whole images at ``train_size``), ``fd_patch`` (crops).

    Reference: Heusel et al. (2017), Eq. 6; Rajabi et al. (2026), §4.
    """
    return dict(dup=duplication_rate(images), count=float(object_counts(images).float().mean()),
                rep=repetition_score(images, train_size), spec=spectrum_distance(images, reference),
                fd=frechet_whole(classifier, images, reference, train_size),
                fd_patch=frechet_patches(classifier, images, reference, train_size, seed=seed))


def scene_labels(scenes: list) -> Tensor:
    """Classes for the feature classifier: ``2 · (objects - 1) + shape of the first object``, ``(n,)`` in 0…3.

    Reference: Rajabi et al. (2026), §4 (class-aware evaluation); the labels are this book's.
    """
    return torch.tensor([2 * (len(s.objects) - 1) + int(s.objects[0, 3]) for s in scenes])
