"""The render path's measures on a real ImageNet network and real photographs
(MobileNetV2; skipped where they are not fetched)."""

import numpy as np
import torch

from atlas.config import Recipe
from atlas.data import read_pixels
from atlas.featvis import objectives as obj
from atlas.featvis.render import render
from atlas.featvis.spectrum import spectrum_slope


def test_photographs_fall_off_steeply_and_noise_does_not(mobilenet_v2, photos):
    """As the network sees them (resized to 256, cut to 224), the photographs' power falls
    off at least as steeply as 1/f^2 (-3.6 measured: many are small, upscaled, compressed);
    uniform noise of the same size is flat."""
    files = sorted(p for p in photos.rglob("*") if p.suffix.lower() in {".webp", ".jpg", ".png"})
    crops = [
        mobilenet_v2.preprocessing.crop(read_pixels(str(p)))
        .permute(1, 2, 0)
        .numpy()[80:144, 80:144]
        for p in files[:: max(1, len(files) // 24)]
    ]
    slopes = spectrum_slope(np.stack(crops))
    noise = np.random.default_rng(0).integers(0, 256, (8, 64, 64, 3), dtype=np.uint8)
    assert np.median(slopes) < -2.0
    assert abs(np.median(spectrum_slope(noise))) < 0.2


def test_stopping_at_features_6_renders_what_the_whole_network_does(mobilenet_v2):
    torch.manual_seed(0)
    objective = obj.direction("features.6", torch.randn(2, 32).numpy())
    recipe = Recipe(icon_size=48, steps=3, robust_samples=2)
    stopped = render(mobilenet_v2, objective, recipe, seeds=[1, 2])
    full = render(mobilenet_v2, objective + 0.0 * obj.class_logit([0, 0]), recipe, seeds=[1, 2])
    np.testing.assert_allclose(stopped.images, full.images, atol=1e-4)
    np.testing.assert_allclose(stopped.robust_values, full.robust_values, rtol=1e-3, atol=1e-4)
