"""Grid: the layout binned into square cells at several zoom levels, and what each holds.

Per cell and level: how many samples fall in it, their mean activation vector (what the
renderer will visualize), the classes its samples push hardest by summed attribution and
the commonest labels, and its exemplars, the members nearest the cell's mean. As in the
activation-atlas papers (Carter et al., Distill 2019), a cell with fewer than
``min_count`` samples is left empty.

Everything is accumulated chunk by chunk in one vectorized pass (and a second pass for
exemplars), so a million samples never sit in memory at once. Levels are binned from the
finest one, so they nest exactly: a coarse cell holds precisely its children's samples.
"""

from __future__ import annotations

import numpy as np
from scipy import sparse

from atlas.config import GridConfig
from atlas.rows import row_blocks, unit_rows
from atlas.store.grid import GridLevel


def cell_column_row(xy: np.ndarray, size: int) -> np.ndarray:
    """(column, row) int64 of each point's cell on a ``size`` x ``size`` grid over
    [0, 1]^2, points outside falling in the border cells: (N, 2). Computed in the dtype
    of ``xy`` (callers that bin through levels pass float64, see :func:`cell_of`)."""
    return np.clip(np.floor(np.asarray(xy) * size), 0, size - 1).astype(np.int64)


def cell_of(xy: np.ndarray, size: int, finest: int) -> np.ndarray:
    """Cell ids (``row * size + column``) at level ``size`` of points in [0, 1]^2, binned
    in float64 through the finest level, so that levels nest exactly."""
    fine = cell_column_row(np.asarray(xy, np.float64), finest)
    factor = finest // size
    return (fine[:, 1] // factor) * size + fine[:, 0] // factor


def grid_levels(
    acts,
    xy: np.ndarray,
    options: GridConfig | None = None,
    *,
    valid: np.ndarray | None = None,
    attribution=None,
    attribution_class=None,
    labels: np.ndarray | None = None,
    num_classes: int,
    **settings,
) -> dict[int, GridLevel]:
    """Aggregate samples into cells at each of ``options.levels``.

    ``acts`` (N, C) and ``attribution``/``attribution_class`` (N, S) may be Zarr or memory
    mapped; they are read in chunks. ``xy`` (N, 2) is the layout in [0, 1]; samples that
    are not ``valid`` (or whose xy is NaN) are left out. Settings come from ``options`` (a
    :class:`atlas.config.GridConfig`: levels, min_count, top_k, exemplars), any of them
    overridden by keyword. Returns {size: :class:`atlas.store.grid.GridLevel`}, without
    exemplar boxes (the geometry that gives them is the run's).
    """
    options = (options or GridConfig()).updated(**settings)
    levels, min_count, top_k, exemplars = (
        options.levels,
        options.min_count,
        options.top_k,
        options.exemplars,
    )
    finest = levels[-1]
    n, channels = acts.shape
    keep = (
        np.isfinite(xy).all(axis=1)
        if valid is None
        else (np.asarray(valid, bool) & np.isfinite(xy).all(axis=1))
    )
    cells = {size: np.where(keep, cell_of(np.nan_to_num(xy), size, finest), -1) for size in levels}
    sums = {size: np.zeros((size * size, channels), np.float64) for size in levels}
    class_sums = {size: np.zeros((size * size, num_classes), np.float64) for size in levels}
    positive = {size: np.zeros(size * size, np.float64) for size in levels}
    label_counts = {size: np.zeros((size * size, num_classes), np.int64) for size in levels}

    for rows in row_blocks(n):
        block = np.asarray(acts[rows], np.float32)
        for size in levels:
            member = _membership(cells[size][rows], size * size)
            sums[size] += member @ block
            if attribution is not None:
                values = np.asarray(attribution[rows], np.float64)
                classes = np.asarray(attribution_class[rows])
                _scatter_classes(
                    class_sums[size], positive[size], cells[size][rows], values, classes
                )
            if labels is not None:
                _scatter_labels(label_counts[size], cells[size][rows], np.asarray(labels[rows]))

    result = {}
    for size in levels:
        count = np.bincount(cells[size][cells[size] >= 0], minlength=size * size)
        count = np.where(count >= min_count, count, 0)
        mean = np.where(count[:, None] > 0, sums[size] / np.maximum(count, 1)[:, None], 0).astype(
            np.float32
        )
        top_class, top_value = _top(class_sums[size], top_k, count)
        share = np.where(
            positive[size][:, None] > 0,
            np.maximum(top_value, 0) / np.maximum(positive[size][:, None], 1e-30),
            0,
        )
        top_label, top_label_count = _top(label_counts[size], top_k, count)
        result[size] = GridLevel(
            size=size,
            count=count,
            mean=mean,
            top_class=top_class,
            top_class_attribution=top_value.astype(np.float32),
            top_class_share=share.astype(np.float32),
            top_label=top_label,
            top_label_count=np.where(top_label >= 0, top_label_count, 0).astype(np.int64),
            exemplar=np.full((size * size, exemplars), -1, np.int64),
            exemplar_distance=np.full((size * size, exemplars), np.inf, np.float32),
        )
        cells[size] = np.where(count[np.maximum(cells[size], 0)] > 0, cells[size], -1)
    if exemplars:
        _find_exemplars(acts, cells, result, exemplars)
    return result


def whitening(acts, *, valid: np.ndarray | None = None, ridge: float = 1e-3) -> np.ndarray:
    """The inverse of the activations' second-moment matrix (A^T A / N), as the activation
    atlas uses to whiten a cell's direction before rendering it; a small ridge, relative
    to the mean eigenvalue, keeps it finite when channels are dead or collinear."""
    n, channels = acts.shape
    moment = np.zeros((channels, channels), np.float64)
    used = 0
    for rows in row_blocks(n):
        block = np.asarray(acts[rows], np.float64)
        if valid is not None:
            block = block[np.asarray(valid[rows], bool)]
        moment += block.T @ block
        used += len(block)
    moment /= max(used, 1)
    moment += np.eye(channels) * ridge * max(np.trace(moment) / channels, 1e-12)
    return np.linalg.inv(moment).astype(np.float32)


def _membership(cells: np.ndarray, n_cells: int) -> sparse.csr_matrix:
    """A (cells x rows) 0/1 matrix: multiplying it by per-row values sums them per cell."""
    rows = np.flatnonzero(cells >= 0)
    data = np.ones(len(rows), np.float64)
    return sparse.csr_matrix((data, (cells[rows], rows)), shape=(n_cells, len(cells)))


def _scatter_classes(sums, positive, cells, values, classes) -> None:
    inside = cells >= 0
    cells, values, classes = cells[inside], values[inside], classes[inside]
    ok = classes >= 0
    np.add.at(sums, (np.broadcast_to(cells[:, None], classes.shape)[ok], classes[ok]), values[ok])
    np.add.at(positive, cells, np.where(ok, np.maximum(values, 0), 0).sum(axis=1))


def _scatter_labels(counts, cells, labels) -> None:
    ok = (cells >= 0) & (labels >= 0)
    np.add.at(counts, (cells[ok], labels[ok]), 1)


def _top(values: np.ndarray, k: int, count: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per row, the k largest columns (largest first) and their values; -1 for empty rows
    or columns whose value is zero (a class no sample in the cell touched)."""
    k = min(k, values.shape[1])
    order = np.argsort(-values, axis=1, kind="stable")[:, :k]
    top = np.take_along_axis(values, order, axis=1)
    missing = (count[:, None] == 0) | (top == 0)
    return np.where(missing, -1, order).astype(np.int32), np.where(missing, 0, top)


def _find_exemplars(
    acts, cells: dict[int, np.ndarray], result: dict[int, GridLevel], keep: int
) -> None:
    """Second pass: per cell, the ``keep`` members with the smallest cosine distance to
    the cell's mean, merged chunk by chunk."""
    n = acts.shape[0]
    unit_means = {size: unit_rows(level.mean) for size, level in result.items()}
    for rows in row_blocks(n):
        block = unit_rows(np.asarray(acts[rows], np.float32))
        index = np.arange(rows.start, rows.stop)
        for size, level in result.items():
            member = cells[size][rows]
            inside = member >= 0
            if not inside.any():
                continue
            cell = member[inside]
            distance = 1 - np.einsum("ij,ij->i", block[inside], unit_means[size][cell])
            _merge_best(level, cell, index[inside], distance.astype(np.float32), keep)


def _merge_best(level: GridLevel, cell, index, distance, keep) -> None:
    touched = np.unique(cell)
    old_cell = np.repeat(touched, keep)
    old_index = level.exemplar[touched].ravel()
    old_distance = level.exemplar_distance[touched].ravel()
    all_cell = np.concatenate([old_cell, cell])
    all_index = np.concatenate([old_index, index])
    all_distance = np.concatenate([old_distance, distance])
    order = np.lexsort((all_index, all_distance, all_cell))  # by cell, then distance, then index
    all_cell, all_index, all_distance = all_cell[order], all_index[order], all_distance[order]
    starts = np.searchsorted(all_cell, touched)
    rank = np.arange(len(all_cell)) - np.repeat(starts, np.diff(np.append(starts, len(all_cell))))
    best = rank < keep
    level.exemplar[all_cell[best], rank[best]] = all_index[best]
    level.exemplar_distance[all_cell[best], rank[best]] = all_distance[best]
