import numpy as np
import pytest
import torch
from torch import nn

from atlas.config import GridConfig, ModelSpec
from atlas.errors import AtlasError
from atlas.extract import receptive_field
from atlas.geometry import Box, LayerGeometry
from atlas.grid import cell_of, grid_levels, whitening
from atlas.models import LoadedModel, Preprocessing


def data(n=3000, dims=6, classes=4, seed=0):
    rng = np.random.default_rng(seed)
    acts = rng.normal(0, 1, (n, dims)).astype(np.float32)
    xy = rng.random((n, 2))
    slots = 3
    attribution_class = np.stack([rng.permutation(classes)[:slots] for _ in range(n)]).astype(
        np.int32
    )
    attribution = rng.normal(0, 1, (n, slots)).astype(np.float32)
    labels = rng.integers(-1, classes, n)
    return acts, xy, attribution, attribution_class, labels


def test_cell_means_counts_and_classes_equal_a_numpy_groupby():
    acts, xy, attribution, attribution_class, labels = data()
    valid = np.ones(len(acts), bool)
    valid[::7] = False
    levels = grid_levels(
        acts,
        xy,
        levels=[5, 10],
        valid=valid,
        attribution=attribution,
        attribution_class=attribution_class,
        labels=labels,
        num_classes=4,
        min_count=1,
        top_k=4,
        exemplars=0,
    )
    for size, level in levels.items():
        cells = np.minimum((xy * size).astype(int), size - 1)
        ids = cells[:, 1] * size + cells[:, 0]
        for cell in range(size * size):
            members = np.flatnonzero((ids == cell) & valid)
            assert level.count[cell] == len(members)
            if not len(members):
                continue
            np.testing.assert_allclose(
                level.mean[cell], acts[members].mean(axis=0), rtol=1e-5, atol=1e-6
            )
            sums = np.zeros(4)
            np.add.at(sums, attribution_class[members].ravel(), attribution[members].ravel())
            order = np.argsort(-sums, kind="stable")
            assert list(level.top_class[cell]) == list(order)
            np.testing.assert_allclose(
                level.top_class_attribution[cell], sums[order], rtol=1e-5, atol=1e-6
            )
            positive = np.maximum(attribution[members], 0).sum()
            np.testing.assert_allclose(
                level.top_class_share[cell], np.maximum(sums[order], 0) / positive, rtol=1e-5
            )
            counts = np.bincount(labels[members][labels[members] >= 0], minlength=4)
            assert level.top_label_count[cell, 0] == counts.max()


def test_min_count_leaves_sparse_cells_empty():
    acts, xy, *_ = data(n=200)
    level = grid_levels(acts, xy, levels=[8], num_classes=4, min_count=5, exemplars=2)[8]
    raw = np.bincount(cell_of(xy, 8, 8), minlength=64)
    assert ((level.count == raw) | (level.count == 0)).all()
    assert (level.count[raw < 5] == 0).all() and (level.count[raw >= 5] == raw[raw >= 5]).all()
    empty = level.count == 0
    assert (level.mean[empty] == 0).all() and (level.exemplar[empty] == -1).all()


def test_levels_nest_exactly():
    acts, xy, *_ = data(n=5000)
    xy[:50] = np.array([0.5, 0.25])  # points on cell borders
    levels = grid_levels(acts, xy, levels=[40, 10, 20], num_classes=4, min_count=1, exemplars=0)
    for coarse, fine in ((10, 20), (20, 40), (10, 40)):
        f = fine // coarse
        children = (
            levels[fine].count.reshape(fine, fine).reshape(coarse, f, coarse, f).sum(axis=(1, 3))
        )
        assert np.array_equal(children.ravel(), levels[coarse].count)
    assert levels[10].count.sum() == 5000


def test_exemplars_are_the_members_nearest_the_mean():
    acts, xy, *_ = data(n=4000)
    level = grid_levels(acts, xy, levels=[6], num_classes=4, min_count=1, exemplars=5)[6]
    ids = cell_of(xy, 6, 6)
    unit = acts / np.linalg.norm(acts, axis=1, keepdims=True)
    for cell in level.occupied():
        members = np.flatnonzero(ids == cell)
        mean = level.mean[cell] / np.linalg.norm(level.mean[cell])
        distance = 1 - unit[members] @ mean
        expected = members[np.argsort(distance, kind="stable")[:5]]
        assert set(level.exemplar[cell]) <= set(members)  # they belong to their cell
        assert list(level.exemplar[cell]) == list(expected)
        assert (np.diff(level.exemplar_distance[cell]) >= 0).all()


def test_levels_must_nest():
    assert GridConfig(levels=[40, 10, 20, 20]).levels == [10, 20, 40]
    with pytest.raises(AtlasError, match="level 15 does not divide the finest level 40"):
        grid_levels(np.zeros((4, 2)), np.zeros((4, 2)), levels=[10, 15, 40], num_classes=1)


def test_whitening_inverts_the_second_moment():
    rng = np.random.default_rng(0)
    acts = rng.normal(0, 1, (5000, 5)) @ rng.normal(0, 1, (5, 5))
    acts[:, 4] = 0  # a dead channel: singular without the ridge
    s = whitening(acts.astype(np.float32), ridge=1e-3)
    moment = acts.T @ acts / len(acts)
    regularized = moment + np.eye(5) * 1e-3 * np.trace(moment) / 5
    np.testing.assert_allclose(s @ regularized, np.eye(5), atol=1e-3)


def tiny_net():
    """conv3x3 -> maxpool2 -> conv3x3. At 16 px the last map is 8x8; its centre (4, 4) sees
    pooled rows 3..5, i.e. pixels 6..11, widened by the first conv to 5..12."""
    return nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(4, 4, 3, padding=1)
    )


def test_receptive_field_of_a_hand_built_net_and_crop_boxes():
    torch.manual_seed(0)
    model = LoadedModel(
        tiny_net().eval(), ModelSpec(arch="x"), Preprocessing(16, 16, (0,) * 3, (1,) * 3), ["a"]
    )
    assert receptive_field(model, "0") == (7, 7, 10, 10)  # 3x3 around the centre (8, 8)
    assert receptive_field(model, "3") == (5, 5, 13, 13)
    geometry = LayerGeometry("3", 4, 8, 8, 1, 16, Box(5, 5, 13, 13))
    assert geometry.crop_box(4, 4) == (5, 5, 13, 13)
    assert geometry.crop_box(0, 7) == (11, 0, 16, 5)  # shifted by 2 px per step, clipped
    assert geometry.crop_box(-1, -1) == (0, 0, 16, 16)  # the spatial mean sees the whole image


def test_boxes_are_x_then_y_from_the_measured_field_to_the_stored_one():
    """A field taller than wide (a 3x1 kernel) pins the order: every box is (x0, y0, x1,
    y1), while the run store's attributes keep the central field as [y0, x0, y1, x1]."""
    model = LoadedModel(
        nn.Sequential(nn.Conv2d(3, 1, (3, 1), padding=(1, 0))).eval(),
        ModelSpec(arch="x"),
        Preprocessing(16, 16, (0,) * 3, (1,) * 3),
        ["a"],
    )
    field = receptive_field(model, "0")  # the centre (8, 8) sees rows 7..9 of column 8
    assert field == Box(x0=8, y0=7, x1=9, y1=10)
    geometry = LayerGeometry("0", 1, 16, 16, 1, 16, field)
    assert geometry.field_box(0, 15) == Box(x0=15, y0=-1, x1=16, y1=2)  # top right, past the top
    assert geometry.crop_box(0, 15) == Box(x0=15, y0=0, x1=16, y1=2)
    boxes = geometry.crop_boxes(np.array([[1, -1]]), np.array([[8, 8], [0, 15]]))
    assert boxes.tolist() == [[[15, 0, 16, 2], [0, 0, 0, 0]]]
    assert geometry.stored()["field"] == (7, 8, 10, 9)
    assert LayerGeometry.from_stored(geometry.stored()) == geometry
