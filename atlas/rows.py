"""Reading (N, D) arrays row block by row block: NumPy, memory-mapped ``.npy`` and Zarr
alike, so that a million activation vectors never need to sit in memory at once.

The layout, grid and class-atlas computations all read their inputs through here.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

CHUNK = 65_536  # rows per block: large enough for fast vectorized work, small in memory


def row_blocks(n: int, chunk: int = CHUNK) -> Iterator[slice]:
    """Consecutive row slices covering ``range(n)``, ``chunk`` rows each (the last shorter)."""
    for start in range(0, n, chunk):
        yield slice(start, min(start + chunk, n))


def iter_rows(array, *, chunk: int = CHUNK, dtype=np.float32) -> Iterator[tuple[int, np.ndarray]]:
    """(start, block) over the rows of ``array``, each block read once as ``dtype``."""
    for rows in row_blocks(array.shape[0], chunk):
        yield rows.start, np.asarray(array[rows], dtype=dtype)


def take_rows(array, rows: np.ndarray) -> np.ndarray:
    """``array[rows]`` for NumPy and Zarr arrays alike (Zarr needs orthogonal selection)."""
    if hasattr(array, "get_orthogonal_selection"):
        selection = (rows,) + (slice(None),) * (len(array.shape) - 1)
        return np.asarray(array.get_orthogonal_selection(selection))
    return np.asarray(array[rows])


def unit_rows(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length; zero rows stay zero."""
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return np.divide(vectors, norms, out=np.zeros_like(vectors), where=norms > 0)


class RowSubset:
    """The rows ``rows`` (sorted) of an (N, D) array, readable by slice like an array of
    their own: each slice is one contiguous read of the underlying array, then a pick."""

    def __init__(self, array, rows: np.ndarray) -> None:
        self.array, self.rows = array, np.asarray(rows)
        self.shape = (len(self.rows), *array.shape[1:])

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: slice) -> np.ndarray:
        wanted = self.rows[index]
        if len(wanted) == 0:
            return np.empty((0, *self.shape[1:]), np.float32)
        block = self.array[wanted[0] : wanted[-1] + 1]
        return np.asarray(block)[wanted - wanted[0]]
