"""The labelled regions of an atlas level: where the map writes a class's name."""

from __future__ import annotations

import numpy as np

LABELS = 400  # labelled regions per level at most (the heaviest)


def region_labels(top: np.ndarray, count: np.ndarray, size: int, limit: int = LABELS) -> list:
    """Labels for a level's map, as the Distill atlas has them: each region of adjacent
    cells (4-neighbours) whose top class is the same, heaviest first (by activations),
    at most ``limit``. Each is ``[class, x, y, activations]`` with (x, y) the member cell
    nearest the region's activation-weighted centre, in the viewer's coordinates (x to
    the right, y down, the level spanning [0, 1]). The viewer shows them heaviest first,
    skipping any that would overlap one already shown at the current zoom.

    ``top`` is each cell's top class and ``count`` its activations, both (size * size,)
    with row 0 of the level the layout's bottom."""
    from scipy import ndimage

    top = np.where(count > 0, top, -1).reshape(size, size)  # row 0: the layout's bottom
    weight = count.reshape(size, size).astype(np.float64)
    found = []
    for klass in np.unique(top[top >= 0]):
        regions, n = ndimage.label(top == klass)
        for region in range(1, n + 1):
            rows, cols = np.nonzero(regions == region)
            w = weight[rows, cols]
            centre_row, centre_col = (rows * w).sum() / w.sum(), (cols * w).sum() / w.sum()
            nearest = np.argmin((rows - centre_row) ** 2 + (cols - centre_col) ** 2)
            row, col = int(rows[nearest]), int(cols[nearest])
            found.append([int(klass), (col + 0.5) / size, (size - row - 0.5) / size, int(w.sum())])
    found.sort(key=lambda label: (-label[3], label[0], label[1], label[2]))
    return [[c, round(x, 5), round(y, 5), w] for c, x, y, w in found[:limit]]
