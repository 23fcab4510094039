import numpy as np
import pytest

from atlas.classes import EmptyClassAtlas, class_atlas, class_members, rank_pair, winners
from atlas.config import ReduceConfig
from atlas.demo.shortcut import habitat_shares


def attributions(n=500, slots=3, classes=6, seed=0):
    rng = np.random.default_rng(seed)
    attribution_class = np.stack([rng.permutation(classes)[:slots] for _ in range(n)]).astype(
        np.int32
    )
    attribution = rng.normal(0, 1, (n, slots)).astype(np.float32)
    return attribution, attribution_class


def test_winner_and_topn_filtering_equal_a_numpy_reference():
    attribution, attribution_class = attributions()
    valid = np.ones(len(attribution), bool)
    valid[::10] = False
    reference = attribution_class[np.arange(len(attribution)), attribution.argmax(axis=1)]
    assert np.array_equal(
        winners(attribution, attribution_class, valid), np.where(valid, reference, -1)
    )
    for klass in range(6):
        assert np.array_equal(
            class_members(attribution, attribution_class, valid, klass),
            np.flatnonzero(valid & (reference == klass)),
        )
        top2 = np.argsort(-attribution, axis=1, kind="stable")[:, :2]
        in_top2 = (np.take_along_axis(attribution_class, top2, axis=1) == klass).any(axis=1)
        assert np.array_equal(
            class_members(attribution, attribution_class, valid, klass, mode="topn", top_n=2),
            np.flatnonzero(valid & in_top2),
        )


def planted(seed=0):
    """Samples on an 8x8 global layout; class 3 wins exactly in cells (1, 1) and (6, 5)."""
    rng = np.random.default_rng(seed)
    n = 4000
    xy = rng.random((n, 2)).astype(np.float32)
    cells = np.minimum((xy * 8).astype(int), 7)
    cell_id = cells[:, 1] * 8 + cells[:, 0]
    hot = np.isin(cell_id, [1 * 8 + 1, 6 * 8 + 5])
    attribution_class = np.tile(np.array([[0, 1, 3]], np.int32), (n, 1))
    attribution = rng.random((n, 3)).astype(np.float32)
    attribution[:, 2] = np.where(hot, 5.0, -1.0)  # class 3 wins only there
    acts = rng.normal(0, 1, (n, 16)).astype(np.float32)
    return acts, xy, attribution, attribution_class, hot


def test_planted_class_attribution_yields_exactly_those_cells():
    acts, xy, attribution, attribution_class, hot = planted()
    atlas = class_atlas(
        acts, attribution, attribution_class, None, [3], size=8, min_count=1, layout_xy=xy
    )
    assert np.array_equal(atlas.members, np.flatnonzero(hot))
    original = np.minimum((xy[atlas.members] * 8).astype(int), 7)
    assert {tuple(c) for c in original} == {(1, 1), (5, 6)}
    assert np.allclose(atlas.member_strength[:, 0], 5.0)
    assert atlas.strength.sum() == pytest.approx(5.0 * hot.sum())
    assert set(atlas.level.exemplar[atlas.level.exemplar >= 0]) <= set(atlas.members)


def test_pair_ranking_orders_planted_differences():
    rng = np.random.default_rng(1)
    regions = [
        ((0.1, 0.1), 3.0, 1.0),
        ((0.5, 0.5), 1.0, 2.0),
        ((0.9, 0.9), 0.5, 3.0),
    ]  # (centre, to A, to B)
    xy, attribution = [], []
    for centre, to_a, to_b in regions:
        xy.append(np.array(centre) + rng.normal(0, 0.01, (100, 2)))
        attribution.append(np.tile([[to_a, to_b]], (100, 1)))
    xy, attribution = (
        np.concatenate(xy).astype(np.float32),
        np.concatenate(attribution).astype(np.float32),
    )
    attribution_class = np.tile(np.array([[0, 1]], np.int32), (300, 1))
    acts = rng.normal(0, 1, (300, 8)).astype(np.float32)
    atlas = class_atlas(
        acts,
        attribution,
        attribution_class,
        None,
        [0, 1],
        size=4,
        min_count=1,
        layout_xy=xy,
        mode="topn",
        top_n=2,
    )
    ranked, difference = rank_pair(atlas)
    region_of = {}
    for cell in ranked:
        members = atlas.members[
            np.minimum((atlas.xy * 4).astype(int), 3)[:, 1] * 4
            + np.minimum((atlas.xy * 4).astype(int), 3)[:, 0]
            == cell
        ]
        region_of[cell] = set(members // 100)
    order = [region_of[c].pop() for c in ranked]
    assert order == sorted(order)  # region 0 (A by +2) first, region 2 (B by +2.5) last
    assert difference[0] == pytest.approx(200.0) and difference[-1] == pytest.approx(-250.0)


def test_own_layout_and_an_empty_class():
    acts, xy, attribution, attribution_class, hot = planted()
    atlas = class_atlas(
        acts,
        attribution,
        attribution_class,
        None,
        [3],
        size=4,
        min_count=1,
        reduce_options=ReduceConfig(),
    )
    assert atlas.xy.shape == (hot.sum(), 2) and (atlas.xy >= 0).all() and (atlas.xy <= 1).all()
    with pytest.raises(EmptyClassAtlas):
        class_atlas(acts, attribution, attribution_class, None, [5], layout_xy=xy)


def test_habitat_shares():
    strength = np.array([1.0, 1.0, 2.0, -5.0, 4.0, 3.0])
    surviving = np.array([1.0, 0.6, 0.1, np.nan, 0.9, np.nan])
    cells = np.array([0, 0, 1, 1, 2, 3])
    shares = habitat_shares(strength, surviving, cells, 4)
    # negative or unmeasured attribution is left out: weights 1, 1, 2, 4
    assert shares["sample_share"] == pytest.approx((1 + 0.6 + 0.2 + 3.6) / 8)
    assert shares["cell_share"] == pytest.approx((2 + 4) / 8)  # cells 0 and 2 keep most


def test_habitat_shares_never_exceed_one():
    rng = np.random.default_rng(0)
    strength = rng.uniform(0.1, 300, 5000).astype(np.float32)
    shares = habitat_shares(strength, np.ones(5000, np.float32), rng.integers(0, 36, 5000), 36)
    assert shares["cell_share"] == 1.0 and shares["sample_share"] == 1.0
