"""The image map: a data set's images laid out by their whole-image embeddings (a late
layer's spatial mean, the "CNN codes" whose t-SNE or UMAP picture of a data set is a
classic) and snapped to grids of thumbnails, one image per cell, so none overlap
(:func:`snap_to_grid`).

The embeddings come from the run store (extraction writes each image's pooled vector
beside its sampled activations), so the map costs no second pass over the images beyond
reading the thumbnails it shows. Finer levels show more of them.
"""

from __future__ import annotations

import numpy as np

from atlas.grid import cell_of


def snap_to_grid(xy: np.ndarray, size: int, reach: float = 1.5) -> np.ndarray:
    """For a ``size`` x ``size`` grid over [0, 1]^2, the index (into ``xy``) of the image
    each cell shows, -1 where none: (size^2,), cells numbered row by row from the bottom
    left (``cell = row * size + column``).

    Each image is shown at most once. The cells nearest the data choose first (ties: the
    lower cell id), each taking the nearest image not yet shown (ties: the lower index)
    among those within ``reach`` cell widths of its centre. So the groups of the layout
    fill out into packed patches of thumbnails, and the space between them stays empty."""
    from scipy.spatial import cKDTree

    xy = np.asarray(xy, np.float64)
    chosen = np.full(size * size, -1, np.int64)
    inside = np.flatnonzero(np.isfinite(xy).all(axis=1))
    if len(inside) == 0:
        return chosen
    points = xy[inside]
    tree = cKDTree(points)
    centre = (np.arange(size) + 0.5) / size
    columns, rows = np.meshgrid(centre, centre)  # row-major: cell = row * size + column
    centres = np.stack([columns.ravel(), rows.ravel()], axis=1)
    radius = reach / size
    nearest, _ = tree.query(centres, distance_upper_bound=radius)
    used = np.zeros(len(points), bool)
    for cell in np.lexsort((np.arange(size * size), nearest)):
        if not np.isfinite(nearest[cell]):
            break  # this cell and all after it have no image within reach
        candidates = np.asarray(tree.query_ball_point(centres[cell], radius), np.int64)
        candidates = candidates[~used[candidates]]
        if len(candidates) == 0:
            continue
        distance = ((points[candidates] - centres[cell]) ** 2).sum(axis=1)
        pick = candidates[np.lexsort((candidates, distance))[0]]
        used[pick] = True
        chosen[cell] = inside[pick]
    return chosen


def cell_counts(xy: np.ndarray, size: int) -> np.ndarray:
    """How many points each cell of a ``size`` x ``size`` grid holds: (size^2,)."""
    xy = np.asarray(xy, np.float64)
    inside = np.isfinite(xy).all(axis=1)
    return np.bincount(cell_of(xy[inside], size, size), minlength=size * size)
