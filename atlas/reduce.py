"""Layout: activation vectors to 2-D with UMAP, fast enough for a million of them.

umap-learn (McInnes, Healy & Melville, "UMAP: Uniform Manifold Approximation and
Projection", 2018) is the reference and does the layout itself. What we add is the work
around it, chosen by measurement (tests/benchmarks/reduce.py):

1. read the vectors chunk by chunk (NumPy, memory-mapped ``.npy`` or Zarr), refusing
   NaN/inf; for the cosine metric, scale each to unit length;
2. collapse exact duplicates (ReLU layers yield many all-zero vectors): each distinct
   vector is laid out once and its copies land on the very same spot;
3. project to ``pca_dims`` principal components when there are more dimensions;
4. find the exact nearest neighbours with faiss (on the GPU when there is one) and give
   them to umap-learn as its precomputed kNN graph, skipping its own NN-descent;
5. above ``fit_size`` distinct vectors, fit UMAP on a seeded sample of that size and
   place every other vector where umap-learn's own ``transform`` starts it: at the
   membership-weighted mean of its nearest fitted neighbours. At this scale the layout
   optimization, not the neighbour search, is what costs (DESIGN.md's measurements), and
   this keeps it at a fixed size whatever N is.

The result is deterministic for a seed on the CPU. Every setting is a field of
:class:`atlas.config.ReduceConfig`, declared there once with its default.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass

import numpy as np

from atlas.config import ReduceConfig
from atlas.errors import AtlasError
from atlas.rows import CHUNK, iter_rows, unit_rows

log = logging.getLogger(__name__)


class NonFiniteError(AtlasError, ValueError):
    """Activations contain NaN or infinity."""

    def __init__(self, message: str, index: int) -> None:
        super().__init__(message)
        self.index = index


@dataclass(frozen=True)
class LayoutInfo:
    """What a layout run did, recorded beside the coordinates."""

    n: int
    distinct: int
    fitted: int
    dims: int
    n_neighbors: int
    min_dist: float
    metric: str
    seed: int
    pca_dims: int
    fit_size: int


def umap_layout(x, options: ReduceConfig | None = None, **settings) -> np.ndarray:
    """2-D UMAP coordinates (N, 2) float32 of the rows of ``x`` (any (N, D) array-like:
    NumPy, memory-mapped ``.npy``, Zarr). Settings come from ``options`` (a
    :class:`atlas.config.ReduceConfig`) with any of its fields overridden by keyword
    (``n_neighbors=15, min_dist=0.1, metric="cosine", seed=0``, ...). Raises
    :class:`NonFiniteError` naming the first bad row. See the module docstring."""
    return umap_layout_info(x, options, **settings)[0]


def umap_layout_info(
    x, options: ReduceConfig | None = None, **settings
) -> tuple[np.ndarray, LayoutInfo]:
    """:func:`umap_layout`, also returning what it did (:class:`LayoutInfo`)."""
    options = (options or ReduceConfig()).updated(**settings)
    n_neighbors, min_dist, metric = options.n_neighbors, options.min_dist, options.metric
    seed, pca_dims, fit_size = options.seed, options.pca_dims, options.fit_size
    normalize = metric == "cosine"
    n, dims = x.shape
    # Exact duplicates (all-zero ReLU outputs among them) are laid out once.
    first, inverse = _distinct_rows(x)
    if dims > pca_dims:
        reduced = _pca(x, pca_dims, normalize=normalize)[first]
        if normalize:
            reduced = unit_rows(reduced)
    else:
        reduced = read_vectors(x, normalize=normalize)[first]
    m = len(reduced)
    k = max(2, min(n_neighbors, m - 2))  # plus each point itself: under m neighbours
    fitted = min(m, fit_size)
    info = LayoutInfo(n, m, fitted, dims, k, min_dist, metric, seed, pca_dims, fit_size)
    if m < 4:  # too few distinct points for a neighbour graph: spread them evenly
        layout = np.zeros((m, 2), np.float32)
        layout[:, 0] = np.linspace(0, 1, m) if m > 1 else 0.5
        return layout[inverse], info
    rng = np.random.default_rng(seed)
    sample = np.sort(rng.choice(m, fitted, replace=False)) if fitted < m else np.arange(m)
    base = np.ascontiguousarray(reduced[sample])
    knn_index, knn_dist = exact_knn(base, base, k + 1)
    embedding = _fit_umap(base, knn_index, knn_dist, k, min_dist, seed, options.n_epochs)
    layout = np.empty((m, 2), np.float32)
    layout[sample] = embedding
    if fitted < m:
        rest = np.setdiff1d(np.arange(m), sample, assume_unique=True)
        for start in range(0, len(rest), CHUNK):
            rows = rest[start : start + CHUNK]
            index, dist = exact_knn(base, np.ascontiguousarray(reduced[rows]), k)
            layout[rows] = _place(embedding, index, dist)
    return layout[inverse], info


def normalize_layout(xy: np.ndarray, options: ReduceConfig | None = None, **settings) -> np.ndarray:
    """Map a layout into [0, 1]^2 as the Distill atlas does: clip each axis to its
    percentiles ``clip``, then scale so the points fill [margin, 1 - margin] (settings as
    for :func:`umap_layout`)."""
    options = (options or ReduceConfig()).updated(**settings)
    clip, margin = options.clip, options.margin
    xy = np.asarray(xy, dtype=np.float64)
    low = np.percentile(xy, clip[0], axis=0)
    high = np.percentile(xy, clip[1], axis=0)
    span = np.where(high - low > 0, high - low, 1.0)
    unit = (np.clip(xy, low, high) - low) / span
    return (margin + unit * (1 - 2 * margin)).astype(np.float32)


def read_vectors(x, *, normalize: bool) -> np.ndarray:
    """The rows of ``x`` as one float32 array, read in chunks; unit length when
    ``normalize`` (zero rows stay zero). Raises :class:`NonFiniteError` on NaN/inf."""
    out = np.empty(x.shape, np.float32)
    for start, block in _chunks(x, normalize):
        out[start : start + len(block)] = block
    return out


def _chunks(x, normalize: bool):
    """(start, float32 block) over the rows of ``x``, checked for NaN/inf."""
    for start, block in iter_rows(x):
        bad = ~np.isfinite(block).all(axis=1)
        if bad.any():
            row = start + int(np.flatnonzero(bad)[0])
            raise NonFiniteError(f"activations of sample {row} contain NaN or infinity", row)
        yield start, unit_rows(block) if normalize else block


def exact_knn(base: np.ndarray, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` nearest rows of ``base`` for each query, by Euclidean distance (on unit
    vectors: the cosine order). Returns indices (Q, k) int64 and distances (Q, k) float32."""
    import faiss

    index = faiss.IndexFlatL2(base.shape[1])
    if faiss.get_num_gpus() > 0:  # pragma: no cover - exercised on GPU machines only
        index = faiss.index_cpu_to_all_gpus(index)
    index.add(base)
    distances, indices = index.search(queries, min(k, len(base)))
    return indices.astype(np.int64), np.sqrt(np.maximum(distances, 0)).astype(np.float32)


def _fit_umap(base, knn_index, knn_dist, k, min_dist, seed, n_epochs) -> np.ndarray:
    import umap

    # Each row's own index comes first in its neighbour list, as umap-learn expects.
    reducer = umap.UMAP(
        n_neighbors=k + 1,
        min_dist=min_dist,
        metric="euclidean",
        random_state=seed,
        precomputed_knn=(knn_index, knn_dist, None),
        n_epochs=n_epochs,
        verbose=False,
    )
    with warnings.catch_warnings():
        # Expected here: a seed makes umap-learn single-threaded, and a precomputed kNN
        # graph leaves it no search index (we place new points ourselves).
        warnings.filterwarnings("ignore", message="n_jobs value", category=UserWarning)
        warnings.filterwarnings("ignore", message="precomputed_knn", category=UserWarning)
        return reducer.fit_transform(base).astype(np.float32)


def _place(embedding: np.ndarray, index: np.ndarray, dist: np.ndarray) -> np.ndarray:
    """Positions at the membership-weighted mean of the neighbours' positions, with UMAP's
    fuzzy weights exp(-(d - d_nearest) / sigma), sigma the neighbours' mean distance gap."""
    gap = dist - dist[:, :1]
    sigma = np.maximum(gap.mean(axis=1, keepdims=True), 1e-6)
    weights = np.exp(-gap / sigma)
    weights /= weights.sum(axis=1, keepdims=True)
    return np.einsum("qk,qkd->qd", weights, embedding[index]).astype(np.float32)


def _distinct_rows(x) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the first row of each distinct value (in order of appearance) and, per
    row, the index of its value among them. Rows are told apart by a 64-bit hash of their
    bytes, computed chunk by chunk (collisions: about 1 in 10^7 for 10^6 distinct rows)."""
    coefficients = np.random.default_rng(12345).integers(1, 2**63, x.shape[1], dtype=np.uint64) | 1
    hashes = np.empty(x.shape[0], np.uint64)
    for start, block in _chunks(x, normalize=False):
        words = np.ascontiguousarray(block).view(np.uint32).astype(np.uint64)
        hashes[start : start + len(block)] = words @ coefficients  # wraps modulo 2^64
    _, first, inverse = np.unique(hashes, return_index=True, return_inverse=True)
    order = np.argsort(first)
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    return first[order], rank[inverse.ravel()]


def _pca(x, dims: int, *, normalize: bool) -> np.ndarray:
    """Project the rows of ``x`` onto their top ``dims`` principal axes: the eigenvectors
    of the covariance, accumulated chunk by chunk. Two passes over ``x``; only one D x D
    matrix and the (N, dims) result are ever held."""
    n, d = x.shape
    total = np.zeros(d, np.float64)
    scatter = np.zeros((d, d), np.float64)
    for _, block in _chunks(x, normalize):
        total += block.sum(axis=0, dtype=np.float64)
        scatter += (block.T @ block).astype(np.float64)
    mean = total / n
    covariance = scatter / n - np.outer(mean, mean)
    _, eigenvectors = np.linalg.eigh(covariance)  # ascending eigenvalues
    axes = eigenvectors[:, ::-1][:, :dims].astype(np.float32)
    axes *= np.where(axes[np.abs(axes).argmax(axis=0), np.arange(axes.shape[1])] < 0, -1, 1)
    out = np.empty((n, axes.shape[1]), np.float32)
    mean = mean.astype(np.float32)
    for start, block in _chunks(x, normalize):
        out[start : start + len(block)] = (block - mean) @ axes
    return out


def configured_layout(x, options: ReduceConfig) -> tuple[np.ndarray, np.ndarray, LayoutInfo]:
    """:func:`umap_layout_info` then :func:`normalize_layout`, both with ``options``;
    returns the normalized layout, the raw one and what was done."""
    raw, info = umap_layout_info(x, options)
    return normalize_layout(raw, options), raw, info
