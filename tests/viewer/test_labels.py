"""The map's labelled regions (atlas.viewer.labels.region_labels), on grids small enough to
work out by hand."""

import numpy as np

from atlas.viewer.labels import region_labels


def grid(rows):
    """Top class per cell from rows written top row first (as seen on screen); '.' is an
    empty cell. Returns (top, count) in the store's order (row 0 at the bottom)."""
    size = len(rows)
    top = np.full(size * size, -1)
    for screen_row, text in enumerate(rows):
        for col, char in enumerate(text):
            if char != ".":
                top[(size - 1 - screen_row) * size + col] = int(char)
    return top, np.where(top >= 0, 1, 0)


def test_one_label_per_connected_region_heaviest_first_at_a_member_cell():
    top, count = grid(["0011", "0.11", "2.11", "2222"])
    count[top == 2] = 5  # class 2's region is the heaviest
    labels = region_labels(top, count, 4)
    assert [c for c, *_ in labels] == [2, 1, 0]
    assert [w for *_, w in labels] == [25, 6, 3]
    # Each label sits on a cell of its own region (x right, y down on screen).
    for c, x, y, _ in labels:
        col, screen_row = int(x * 4), int(y * 4)
        assert top[(3 - screen_row) * 4 + col] == c
    # Class 1's block of six: its centre cell, not a corner.
    assert labels[1][1:3] == [0.875, 0.375] or labels[1][1:3] == [0.625, 0.375]


def test_same_class_apart_is_two_regions_and_the_limit_keeps_the_heaviest():
    top, count = grid(["0..0", "....", "....", "0..."])
    count[top >= 0] = [3, 1, 2]  # store order: bottom-left, top-left, top-right
    labels = region_labels(top, count, 4)
    assert [w for *_, w in labels] == [3, 2, 1] and {c for c, *_ in labels} == {0}
    assert region_labels(top, count, 4, limit=2) == labels[:2]
    assert region_labels(np.full(16, -1), np.zeros(16, int), 4) == []
