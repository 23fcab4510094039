"""Nearest neighbours of every vector among all of them, with faiss: exact for a few
thousand vectors, an inverted-file index (IVF) for many.

The IVF index clusters the vectors by k-means into cells and searches, for each vector,
only the ``nprobe`` cells whose centres are nearest. Its cells serve the layout twice
more: their centres are the landmarks the layout starts from, and its vectors are
ordered cell by cell so that graph neighbours share a block (:mod:`atlas.umap_epochs`).
Its recall against exact search and what that costs the layout are measured in
tests/benchmarks/reduce.py and stated in the README.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from atlas.progress import progress
from atlas.rows import row_blocks

TRAINING_PER_CELL = 40  # k-means training vectors per cell (faiss asks for at least 39)


@dataclass(frozen=True)
class Cells:
    """The IVF index's k-means cells: their centres (L, D) and, per vector, its cell."""

    centres: np.ndarray
    cell: np.ndarray

    @property
    def order(self) -> np.ndarray:
        """The vectors cell by cell (stable within a cell)."""
        return np.argsort(self.cell, kind="stable")


def _gpu(index):
    import faiss

    if faiss.get_num_gpus() > 0:  # pragma: no cover - exercised on GPU machines only
        return faiss.index_cpu_to_all_gpus(index)
    return index


def exact_knn(base: np.ndarray, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` nearest rows of ``base`` for each query, by Euclidean distance (on unit
    vectors: the cosine order). Returns indices (Q, k) int64 and distances (Q, k) float32."""
    import faiss

    index = faiss.IndexFlatL2(base.shape[1])
    index.add(base)
    distances, indices = _gpu(index).search(queries, min(k, len(base)))
    return indices.astype(np.int64), np.sqrt(np.maximum(distances, 0)).astype(np.float32)


def cell_count(n: int) -> int:
    """IVF cells for ``n`` vectors: 2 sqrt(n), where training the cells (which grows with
    their square) and searching them cost alike at 8 cells searched (measured), with
    enough training vectors per cell."""
    return int(max(1, min(round(2 * np.sqrt(n)), n // TRAINING_PER_CELL)))


def ivf_knn(
    vectors: np.ndarray, k: int, *, nprobe: int, seed: int, show_progress: bool = True
) -> tuple[np.ndarray, np.ndarray, Cells]:
    """The ``k`` nearest of ``vectors`` (N, D) float32 to each of them (itself first),
    searched in the ``nprobe`` nearest of :func:`cell_count` k-means cells. Returns indices
    (N, k) int64 (-1 where fewer than ``k`` were found), Euclidean distances (N, k) float32
    (inf there) and the :class:`Cells`. Deterministic for a seed."""
    import faiss

    n, dims = vectors.shape
    cells = cell_count(n)
    nprobe = min(nprobe, cells)
    rng = np.random.default_rng(seed)
    training = np.sort(rng.choice(n, min(n, TRAINING_PER_CELL * cells), replace=False))
    index = faiss.IndexIVFFlat(faiss.IndexFlatL2(dims), dims, cells)
    index.cp.seed = seed
    index.cp.niter = 10
    index.train(vectors[training])
    # File each vector in its cell, keeping the cell (the landmark it starts from).
    cell = np.ascontiguousarray(index.quantizer.search(vectors, 1)[1][:, 0])
    index.add_core(n, faiss.swig_ptr(vectors), None, faiss.swig_ptr(cell))
    index.nprobe = nprobe
    search = _gpu(index)
    indices = np.empty((n, k), np.int64)
    distances = np.empty((n, k), np.float32)
    blocks = list(row_blocks(n))
    for rows in progress(blocks, desc="neighbours", unit="block", disable=not show_progress):
        # (search_preassigned would reuse the cells found above, but runs on one thread.)
        found, ids = search.search(vectors[rows], k)
        indices[rows] = ids
        distances[rows] = np.sqrt(np.maximum(found, 0))
    distances[indices < 0] = np.inf
    centres = index.quantizer.reconstruct_n(0, cells)
    return indices, distances, Cells(centres, cell.astype(np.int64))
