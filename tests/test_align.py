"""Aligned layouts: the second map follows the first where the two models agree, keeps its
own neighbourhoods, and the figures that say so."""

import numpy as np
import pytest

from atlas.align import aligned_layout, neighbour_recall, paired_rows, within_one_cell
from atlas.config import AlignConfig, ReduceConfig
from atlas.errors import AtlasError
from atlas.reduce import configured_layout, distinct_vectors


def test_within_one_cell_counts_the_eight_cells_around():
    a = np.array([[0.05, 0.05], [0.05, 0.05], [0.05, 0.05], [0.55, 0.55]])
    b = np.array([[0.05, 0.05], [0.15, 0.15], [0.25, 0.05], [0.0, 0.99]])
    # at 10 cells: same cell, diagonal neighbour, two cells away, far away
    assert within_one_cell(a, b, 10) == pytest.approx(0.5)
    # at 2 cells every point but the last is within one cell (the grid is only 2 wide)
    assert within_one_cell(a, b, 2) == pytest.approx(1.0)


def test_neighbour_recall_is_one_for_a_map_that_is_the_data_and_low_for_noise():
    rng = np.random.default_rng(0)
    plane = rng.random((400, 2)).astype(np.float32)
    assert neighbour_recall(plane, plane, k=10, queries=100) == pytest.approx(1.0)
    assert neighbour_recall(plane, rng.random((400, 2)), k=10, queries=100) < 0.1


def two_checkpoints(n_per=120, groups=8, dims=24, seed=0):
    """The same images seen by two models: clusters in one space, and the same clusters
    rotated, rescaled and a little noisier in the other (one group split in two)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 1, (groups, dims)) * 4
    label = np.repeat(np.arange(groups), n_per)
    a = centres[label] + rng.normal(0, 0.6, (len(label), dims))
    rotation, _ = np.linalg.qr(rng.normal(size=(dims, dims)))
    b = (a @ rotation) * 1.7 + rng.normal(0, 0.3, a.shape)
    b[label == 0] += np.where(np.arange(n_per) % 2 == 0, 3.0, -3.0)[:, None] * rotation[0]
    return a.astype(np.float32), b.astype(np.float32), label


@pytest.fixture(scope="module")
def maps():
    a, b, _ = two_checkpoints()
    reduce = ReduceConfig(seed=0)
    xy_a = configured_layout(a, reduce)[0]
    aligned = aligned_layout(b, xy_a, AlignConfig(), reduce)
    independent = configured_layout(b, reduce)[0]
    loose = aligned_layout(b, xy_a, AlignConfig(pull=0.0), reduce)
    vectors = distinct_vectors(b, reduce)
    return {
        "a": xy_a,
        "b": b,
        "aligned": aligned,
        "independent": independent,
        "loose": loose,
        "vectors": vectors[0][vectors[1]],
        "reduce": reduce,
    }


def test_the_aligned_map_lands_each_image_near_its_counterpart(maps):
    aligned = within_one_cell(maps["a"], maps["aligned"], 20)
    independent = within_one_cell(maps["a"], maps["independent"], 20)
    assert aligned >= 0.9
    # What "aligned" is measured against: two separate layouts of the same images.
    assert independent < 0.3
    # Without the alignment term the start alone does not hold it as well.
    assert within_one_cell(maps["a"], maps["loose"], 20) < aligned


def test_the_aligned_map_keeps_its_own_models_neighbourhoods(maps):
    kept = neighbour_recall(maps["vectors"], maps["aligned"])
    own = neighbour_recall(maps["vectors"], maps["independent"])
    assert kept >= 0.8 * own


def test_aligned_layout_is_deterministic_for_a_seed(maps):
    again = aligned_layout(maps["b"], maps["a"], AlignConfig(), maps["reduce"])
    np.testing.assert_array_equal(again, maps["aligned"])


def test_samples_must_be_the_same_images_in_the_same_order():
    paths = np.array(["a.png", "b.png", "c.png"])
    paired_rows(paths, paths.copy(), "one", "two")
    with pytest.raises(AtlasError, match=r"sample 1 is 'b.png' in one but 'x.png' in two"):
        paired_rows(paths, np.array(["a.png", "x.png", "c.png"]), "one", "two")
    with pytest.raises(AtlasError, match="3 samples and two 2"):
        paired_rows(paths, paths[:2], "one", "two")
