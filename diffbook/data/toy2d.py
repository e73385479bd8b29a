"""Two-dimensional toy distributions as samplers: moons, swiss roll, concentric rings, checkerboard.

Each ``sample_xxx(n, *, noise, generator)`` draws ``n`` i.i.d. points, shape ``(n, 2)``, with torch alone, so
a ``torch.Generator`` makes them reproducible (scikit-learn's ``make_moons`` & co. use NumPy's RNG and a
fixed, non-random layout of the components, so they are not used).

**Scaling.** Every noiseless shape is moved and scaled by fixed constants, computed in closed form from the
shape (never from the sample): its mean goes to 0 and its per-coordinate variance, averaged over the two
axes, to 1, i.e. ``E|x|² = 2``. One scale for both axes keeps the aspect ratio. Gaussian noise of standard
deviation ``noise`` is then added in these standardised units, so the variance is ``1 + noise²`` per axis on
average. The shapes follow scikit-learn's ``make_moons``/``make_swiss_roll``/``make_circles`` and the
checkerboard of FFJORD (Grathwohl et al. 2019), with the positions along each shape drawn uniformly at random.

Reference: F. Pedregosa et al., *Scikit-learn: Machine Learning in Python*, JMLR 12 (2011)
(``sklearn.datasets.make_*``); W. Grathwohl et al., *FFJORD*, ICLR 2019 (the checkerboard).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from diffbook.device import check_device, check_float_dtype

__all__ = ["sample_moons", "sample_swiss_roll", "sample_rings", "sample_checkerboard"]


def _check(n: object, noise: object, generator: object, dtype: object = torch.float32,
           device: object = None) -> torch.device:
    check_float_dtype(dtype, "dtype")
    if device is not None:
        check_device(device, "device")
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise ValueError(f"n must be a positive int, got {n!r}")
    if isinstance(noise, bool) or not isinstance(noise, (int, float)) or not (noise >= 0 and math.isfinite(noise)):
        raise ValueError(f"noise must be a finite number >= 0, got {noise!r}")
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator or None, got {type(generator).__name__}")
    return generator.device if generator is not None else torch.device("cpu")


def _finish(
    x: Tensor, noise: float, generator: torch.Generator | None, dtype: torch.dtype, device: torch.device | str | None
) -> Tensor:
    if noise > 0:
        x = x + noise * torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)
    return x.to(dtype=dtype, device=device if device is not None else x.device)


def sample_moons(
    n: int,
    *,
    noise: float = 0.05,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> Tensor:
    """Two interleaving half circles, each chosen with probability ½, shape ``(n, 2)``.

    Raw shape (as ``make_moons``): ``(cos t, sin t)`` and ``(1 - cos t, ½ - sin t)`` with ``t ~ U[0, π]``.
    Its mean is ``(½, ¼)`` and its axis variances are ``¾`` and ``9/16 - 1/π``; see the module docstring.
    """
    on = _check(n, noise, generator, dtype, device)
    t = math.pi * torch.rand(n, generator=generator, dtype=torch.float64, device=on)
    upper = torch.rand(n, generator=generator, dtype=torch.float64, device=on) < 0.5
    x = torch.where(upper, torch.cos(t), 1.0 - torch.cos(t))
    y = torch.where(upper, torch.sin(t), 0.5 - torch.sin(t))
    scale = math.sqrt((0.75 + 9.0 / 16.0 - 1.0 / math.pi) / 2.0)
    pts = torch.stack([x - 0.5, y - 0.25], dim=1) / scale
    return _finish(pts, noise, generator, dtype, device)


def sample_swiss_roll(
    n: int,
    *,
    noise: float = 0.05,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> Tensor:
    """The 2-D swiss roll (a spiral of 1.5 turns), shape ``(n, 2)``.

    Raw shape (as ``make_swiss_roll``'s first and third coordinates): ``(t cos t, t sin t)`` with
    ``t ~ U[3π/2, 9π/2]``. Its mean is ``(2, 2/(3π))`` and ``E t² = (b³ - a³) / (3 (b - a))``.
    """
    on = _check(n, noise, generator, dtype, device)
    a, b = 1.5 * math.pi, 4.5 * math.pi
    t = a + (b - a) * torch.rand(n, generator=generator, dtype=torch.float64, device=on)
    mean_x, mean_y = 2.0, 2.0 / (3.0 * math.pi)  # ∫ t cos t dt and ∫ t sin t dt over [a, b], divided by b - a
    e_t2 = (b**3 - a**3) / (3.0 * (b - a))
    scale = math.sqrt((e_t2 - mean_x**2 - mean_y**2) / 2.0)
    pts = torch.stack([t * torch.cos(t) - mean_x, t * torch.sin(t) - mean_y], dim=1) / scale
    return _finish(pts, noise, generator, dtype, device)


def sample_rings(
    n: int,
    *,
    n_rings: int = 2,
    noise: float = 0.05,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> Tensor:
    """Concentric circles of radii ``k / K`` (``k = 1 … K``, before scaling), each equally likely, shape ``(n, 2)``.

    The angle is uniform. The mean is 0 and ``E|x|² = Σ_k (k/K)² / K`` before scaling.
    """
    on = _check(n, noise, generator, dtype, device)
    if not isinstance(n_rings, int) or isinstance(n_rings, bool) or n_rings < 1:
        raise ValueError(f"n_rings must be a positive int, got {n_rings!r}")
    k = torch.randint(1, n_rings + 1, (n,), generator=generator, device=on).to(torch.float64)
    angle = 2.0 * math.pi * torch.rand(n, generator=generator, dtype=torch.float64, device=on)
    radius = k / n_rings
    e_r2 = sum((j / n_rings) ** 2 for j in range(1, n_rings + 1)) / n_rings
    pts = torch.stack([radius * torch.cos(angle), radius * torch.sin(angle)], dim=1) / math.sqrt(e_r2 / 2.0)
    return _finish(pts, noise, generator, dtype, device)


def sample_checkerboard(
    n: int,
    *,
    cells: int = 4,
    noise: float = 0.0,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> Tensor:
    """Uniform on the "black" squares of a ``cells × cells`` checkerboard, shape ``(n, 2)``.

    Before scaling the board is ``[-cells/2, cells/2]²`` and square ``(i, j)`` is filled when ``i + j`` is
    even (FFJORD's board for ``cells = 4``). Both marginals are uniform on ``[-cells/2, cells/2]``, with
    variance ``cells² / 12``; dividing by its square root gives unit variance on each axis.
    """
    on = _check(n, noise, generator, dtype, device)
    if not isinstance(cells, int) or isinstance(cells, bool) or cells < 2 or cells % 2:
        raise ValueError(f"cells must be an even int >= 2, got {cells!r}")
    col = torch.randint(0, cells, (n,), generator=generator, device=on)
    row = 2 * torch.randint(0, cells // 2, (n,), generator=generator, device=on) + col % 2  # same parity as col
    u = torch.rand(n, 2, generator=generator, dtype=torch.float64, device=on)
    pts = torch.stack([col, row], dim=1).to(torch.float64) + u - cells / 2.0
    return _finish(pts / math.sqrt(cells**2 / 12.0), noise, generator, dtype, device)
