"""Procedural scenes in continuous coordinates: the same scene renders exactly at 32², 64², 96², 128².

A scene lives in the unit square: a smooth grey background gradient and one or two saturated objects
(disc or square, radius 0.12-0.2 scene units) whose inside carries stripes of a fixed period *in scene
units*. Rendering at a higher resolution therefore adds real detail (more pixels per stripe), and every
resolution has an exact reference distribution. Edges are anti-aliased analytically (a one-pixel ramp on
the signed distance), so nothing aliases at any size.

Reference: Rajabi et al. (2026), §4 (resolution extrapolation is judged against the content at the target
size); the scene design is this book's.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from diffbook._checks import check_int

__all__ = ["PALETTE", "Scene", "random_scenes", "render", "render_scenes", "MAX_OBJECTS"]

PALETTE = np.array([[0.95, 0.15, 0.1], [0.1, 0.35, 0.95], [0.1, 0.8, 0.2], [0.95, 0.75, 0.05]])
"""Object colours (RGB in [0, 1]); the background is grey, so saturation separates objects from it."""

MAX_OBJECTS = 2
"""A scene holds one or two objects; a sample with more is a duplication."""


@dataclass(frozen=True)
class Scene:
    """One scene: background gradient ``(a, b, c)`` (grey = a + b x + c y), objects ``(k, 7)``.

    Object columns: centre x, centre y, radius, shape (0 disc, 1 square), colour index, stripe angle,
    stripe period (scene units).

    Reference: Rajabi et al. (2026), §4 (content with an exact reference at every size); scenes of this book.
    """

    background: tuple[float, float, float]
    objects: np.ndarray


def random_scenes(n: int, seed: int = 0) -> list[Scene]:
    """Draw ``n`` scenes with a seeded numpy generator (objects never overlap).

    Reference: this book's scene distribution (Rajabi et al. 2026 evaluate on real prompts).
    """
    check_int(n, "n")
    rng = np.random.default_rng(seed)
    scenes = []
    for _ in range(n):
        bg = (float(rng.uniform(0.3, 0.6)), float(rng.uniform(-0.2, 0.2)), float(rng.uniform(-0.2, 0.2)))
        k = int(rng.integers(1, MAX_OBJECTS + 1))
        objs: list[list[float]] = []
        while len(objs) < k:
            r = rng.uniform(0.12, 0.2)
            cx, cy = rng.uniform(r + 0.02, 1 - r - 0.02, size=2)
            if all(np.hypot(cx - o[0], cy - o[1]) > 1.5 * (r + o[2]) for o in objs):
                objs.append([cx, cy, r, rng.integers(0, 2), rng.integers(0, len(PALETTE)),
                             rng.uniform(0, np.pi), rng.uniform(0.05, 0.09)])
        scenes.append(Scene(bg, np.array(objs, dtype=np.float64)))
    return scenes


def render(scene: Scene, resolution: int) -> np.ndarray:
    """Render a scene at ``resolution × resolution`` pixels: ``(3, R, R)`` float32 in ``[-1, 1]``.

    Reference: Rajabi et al. (2026), §4 (judged against content at the target size); renderer of this book.
    """
    check_int(resolution, "resolution", minimum=4)
    c = (np.arange(resolution) + 0.5) / resolution
    y, x = np.meshgrid(c, c, indexing="ij")
    a, b, cc = scene.background
    grey = np.clip(a + b * (x - 0.5) + cc * (y - 0.5), 0, 1)
    img = np.repeat(grey[None], 3, axis=0)
    for cx, cy, r, shape, colour, angle, period in scene.objects:
        dx, dy = x - cx, y - cy
        sd = np.hypot(dx, dy) - r if shape < 0.5 else np.maximum(np.abs(dx), np.abs(dy)) - r * 0.9
        cover = np.clip(0.5 - sd * resolution, 0, 1)  # anti-aliased edge, one pixel wide
        phase = (dx * np.cos(angle) + dy * np.sin(angle)) / period
        stripe = 0.75 + 0.25 * np.cos(2 * np.pi * phase)
        col = PALETTE[int(colour)][:, None, None] * stripe[None]
        img = img * (1 - cover[None]) + col * cover[None]
    return (img * 2 - 1).astype(np.float32)


def render_scenes(n: int, resolution: int, seed: int = 0) -> Tensor:
    """``n`` random scenes rendered at one resolution: shape ``(n, 3, R, R)``, float32 in ``[-1, 1]``.

    Reference: Rajabi et al. (2026), §4; renderer of this book.
    """
    return torch.from_numpy(np.stack([render(s, resolution) for s in random_scenes(n, seed)]))
