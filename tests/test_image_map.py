"""The image map's grid: one image per cell, the nearest within reach, none twice."""

import numpy as np

from atlas.image_map import cell_counts, snap_to_grid


def test_each_cell_shows_the_image_nearest_its_centre():
    xy = np.array([[0.1, 0.1], [0.24, 0.24], [0.3, 0.3], [0.9, 0.6]])
    # 2 x 2 cells, centres at 0.25 and 0.75; reach of half a cell: only images inside
    shown = snap_to_grid(xy, 2, reach=0.5)
    assert shown.tolist() == [1, -1, -1, 3]  # cell = row * 2 + column, from the bottom left


def test_no_image_is_shown_twice_and_nearby_cells_take_the_next_nearest():
    xy = np.array([[0.26, 0.26], [0.24, 0.24], [0.22, 0.26]])
    shown = snap_to_grid(xy, 4, reach=1.5)
    chosen = shown[shown >= 0]
    assert sorted(chosen.tolist()) == [0, 1, 2]  # all three shown, each once
    assert shown[1 * 4 + 1] == 0  # the cell (1, 1), centre (0.375, 0.375), nearest: image 0


def test_empty_space_stays_empty_beyond_reach():
    rng = np.random.default_rng(0)
    xy = rng.normal(0.2, 0.01, (500, 2))
    shown = snap_to_grid(xy, 10, reach=1.5)
    # every shown image's cell is within 1.5 cells of the group
    rows, columns = np.divmod(np.flatnonzero(shown >= 0), 10)
    assert np.all(np.abs((columns + 0.5) / 10 - 0.2) <= 0.15 + 0.05)
    assert np.all(np.abs((rows + 0.5) / 10 - 0.2) <= 0.15 + 0.05)
    assert len(np.unique(shown[shown >= 0])) == (shown >= 0).sum()


def test_skipped_images_are_never_shown_and_counts_add_up():
    xy = np.array([[0.1, 0.1], [np.nan, np.nan], [0.6, 0.6], [0.65, 0.6]])
    shown = snap_to_grid(xy, 4, reach=3)
    assert 1 not in shown
    counts = cell_counts(xy, 4)
    assert counts.sum() == 3 and counts[2 * 4 + 2] == 2
