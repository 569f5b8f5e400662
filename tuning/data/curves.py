"""CURVES, regenerated: the synthetic deep-autoencoder benchmark of Hinton & Salakhutdinov
(2006), used by the Hessian-free, K-FAC and FishLeg papers. This is a re-generation in the
published style, not the original files (which are not redistributed here).

Each 28×28 image is one smooth curve through three random points: three points drawn
uniformly in the central [0.15, 0.85]² of the unit square, joined by the quadratic that
passes through them in order (parameter 0, ½ and 1), drawn as a soft stroke: a pixel's
intensity is exp(−d²/2σ²) for its distance d to the nearest of 64 points along the curve,
σ = 0.9 pixel, so intensities are real values in [0, 1] and the image is smooth. Everything
comes from one seeded generator: the same seed gives the same images on every machine."""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["SIDE", "curves"]

SIDE = 28
POINTS_PER_CURVE = 64
SIGMA = 0.9  # stroke width in pixels
CHUNK = 500


def _curve_points(anchors: Tensor) -> Tensor:
    """anchors (N, 3, 2) → (N, POINTS_PER_CURVE, 2): the quadratic through the three anchors
    at t = 0, ½, 1 (Lagrange form), sampled at evenly spaced t."""
    t = torch.linspace(0, 1, POINTS_PER_CURVE)
    basis = torch.stack([2 * (t - 0.5) * (t - 1), -4 * t * (t - 1), 2 * t * (t - 0.5)], dim=1)  # (P, 3)
    return torch.einsum("pk,nkd->npd", basis, anchors)


def _render(points: Tensor) -> Tensor:
    """points (N, P, 2) in pixel units → images (N, SIDE·SIDE) in [0, 1]."""
    coords = torch.arange(SIDE, dtype=torch.float32) + 0.5
    grid = torch.stack(torch.meshgrid(coords, coords, indexing="ij"), dim=-1).reshape(-1, 2)  # (784, 2)
    d2 = torch.cdist(grid.expand(len(points), -1, -1), points).pow(2).amin(dim=2)  # (N, 784)
    return torch.exp(-d2 / (2 * SIGMA**2))


def curves(count: int, seed: int) -> Tensor:
    """`count` CURVES images (count, 784), float32 in [0, 1], determined by `seed`."""
    generator = torch.Generator().manual_seed(seed)
    anchors = 0.15 + 0.7 * torch.rand(count, 3, 2, generator=generator)
    points = _curve_points(anchors * SIDE)
    return torch.cat([_render(points[i : i + CHUNK]) for i in range(0, count, CHUNK)])
