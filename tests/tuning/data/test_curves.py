"""CURVES, regenerated: deterministic from its seed, intensities in [0, 1], each image one
smooth stroke through its three anchor points."""

import torch

from tuning.data.curves import SIDE, _curve_points, curves


def test_the_same_seed_gives_the_same_images_and_another_seed_others():
    a, b, c = curves(64, 0), curves(64, 0), curves(64, 1)
    assert a.shape == (64, SIDE * SIDE) and a.dtype == torch.float32
    assert torch.equal(a, b) and not torch.allclose(a, c)
    assert float(a.min()) >= 0.0 and float(a.max()) <= 1.0


def test_each_image_is_a_thin_stroke_through_its_three_anchors():
    generator = torch.Generator().manual_seed(5)
    anchors = 0.15 + 0.7 * torch.rand(16, 3, 2, generator=generator)
    images = curves(16, 5).reshape(16, SIDE, SIDE)
    pixels = (anchors * SIDE).floor().long()
    lit = images[torch.arange(16)[:, None], pixels[..., 0], pixels[..., 1]]  # (16, 3): the anchors' pixels
    assert float(lit.min()) > 0.5  # the curve passes through each anchor (within a pixel)
    stroke = (images > 0.5).float().mean(dim=(1, 2))
    assert float(stroke.max()) < 0.2 and float(stroke.min()) > 0.005  # a stroke, not a blob or nothing


def test_the_curve_passes_through_its_anchors_in_order():
    anchors = torch.tensor([[[1.0, 2.0], [5.0, 3.0], [4.0, 9.0]]])
    points = _curve_points(anchors)
    torch.testing.assert_close(points[0, [0, -1]], anchors[0, [0, 2]])
    mid = points[0, (points[0] - anchors[0, 1]).norm(dim=1).argmin()]
    assert float((mid - anchors[0, 1]).norm()) < 0.1
