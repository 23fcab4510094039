"""The layout's neighbour agreement, on layouts whose answer is known."""

from __future__ import annotations

import numpy as np
import pytest

from atlas.layout_measures import neighbour_agreement


def test_separated_classes_agree_fully_and_mixed_ones_at_chance():
    rng = np.random.default_rng(0)
    n = 2000
    predicted = np.repeat([0, 1, 2, 3], n // 4)
    centres = np.array([[0, 0], [10, 0], [0, 10], [10, 10]], np.float32)
    xy = centres[predicted] + rng.normal(0, 0.5, (n, 2)).astype(np.float32)
    image = np.arange(n)  # one sample per image
    apart = neighbour_agreement(xy, predicted, image)
    assert apart.share == 1.0 and apart.other_images == 1.0
    assert apart.chance == pytest.approx(0.25)
    mixed = neighbour_agreement(xy, rng.permutation(predicted), image)
    assert abs(mixed.share - 0.25) < 0.03


def test_neighbours_from_the_same_image_are_set_apart():
    # Every image's 20 positions lie together and share its prediction, while the
    # predictions of neighbouring images are unrelated: only the first share is high.
    rng = np.random.default_rng(1)
    images = 1000
    image = np.repeat(np.arange(images), 20)
    centres = rng.uniform(0, 300, (images, 2)).astype(np.float32)
    xy = centres[image] + rng.normal(0, 0.01, (len(image), 2)).astype(np.float32)
    predicted = rng.integers(0, 4, images)[image]
    measured = neighbour_agreement(xy, predicted, image, k=15, limit=4000)
    assert measured.share == 1.0
    assert abs(measured.other_images - 0.25) < 0.05


def test_samples_without_coordinates_are_left_out():
    xy = np.array([[0, 0], [0, 1], [np.nan, np.nan], [5, 5], [5, 6]], np.float32)
    measured = neighbour_agreement(xy, np.array([0, 0, 1, 1, 1]), np.arange(5), k=1)
    assert measured.samples == 4 and measured.share == 1.0
