"""Layout: activation vectors to 2-D with UMAP, every vector optimised against its own
neighbours, fast enough for a million of them.

umap-learn (McInnes, Healy & Melville, "UMAP: Uniform Manifold Approximation and
Projection", 2018) supplies the method: the fuzzy kNN graph, the curve, the sampling
schedule, and the whole fit for small sets. What we add is the work around it, chosen by
measurement (tests/benchmarks/reduce.py, figures in the README):

1. read the vectors chunk by chunk (NumPy, memory-mapped ``.npy`` or Zarr), refusing
   NaN/inf; for the cosine metric, scale each to unit length;
2. collapse exact duplicates (ReLU layers yield many all-zero vectors): each distinct
   vector is laid out once and its copies land on the very same spot;
3. project to ``pca_dims`` principal components when there are more dimensions (64 by
   default: at 32, small well-separated groups lost a tenth of their neighbours);
4. up to ``exact_below`` distinct vectors: exact neighbours (faiss) and umap-learn's own
   fit, spectral start and default epochs included;
5. above: neighbours from a faiss IVF index (:mod:`atlas.neighbors`), umap-learn's fuzzy
   graph over all of them, a start from the landmarks (UMAP of the IVF cells' centres,
   each vector at its cell's landmark), then ``n_epochs`` of UMAP's optimisation over the
   whole graph (:mod:`atlas.umap_epochs`, parallel and deterministic). Every vector ends
   where its own neighbours pull it, so groups too small to show in any sample still
   form their own islands.

The result is deterministic for a seed on the CPU. Every setting is a field of
:class:`atlas.config.ReduceConfig`, declared there once with its default.
"""

from __future__ import annotations

import collections
import functools
import logging
import warnings
from dataclasses import dataclass

import numpy as np

from atlas.config import ReduceConfig
from atlas.errors import AtlasError
from atlas.neighbors import Cells, cell_count, exact_knn, ivf_knn
from atlas.rows import iter_rows, unit_rows

log = logging.getLogger(__name__)


class NonFiniteError(AtlasError, ValueError):
    """Activations contain NaN or infinity."""

    def __init__(self, message: str, index: int) -> None:
        super().__init__(message)
        self.index = index


LANDMARK_EPOCHS = 40  # epochs over the whole graph from the landmark start (measured)
LANDMARK_RATE = 0.5  # their first step size (umap-learn starts at 1 from a spectral layout)


@dataclass(frozen=True)
class LayoutInfo:
    """What a layout run did, recorded beside the coordinates."""

    n: int
    distinct: int
    dims: int
    n_neighbors: int
    min_dist: float
    metric: str
    seed: int
    pca_dims: int
    method: str  # "umap-learn" (the whole fit) or "landmarks" (start + epochs over all)
    neighbours: str  # "exact" or "ivf"
    cells: int  # IVF cells (the landmarks), 0 for exact neighbours
    nprobe: int
    n_epochs: int  # 0: umap-learn's default

    def describe(self) -> str:
        if self.method == "umap-learn":
            return "exact neighbours, umap-learn's fit"
        return (
            f"IVF neighbours ({self.cells} cells, {self.nprobe} searched), "
            f"{self.cells} landmarks, {self.n_epochs} epochs over every vector"
        )


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
    normalize = options.metric == "cosine"
    n, dims = x.shape
    reduced, inverse = distinct_vectors(x, options)
    m = len(reduced)
    k = neighbour_count(options, m)
    whole = m <= options.exact_below
    epochs = options.n_epochs or (0 if whole else LANDMARK_EPOCHS)
    info = LayoutInfo(
        n, m, dims, k, options.min_dist, options.metric, options.seed, options.pca_dims,
        method="umap-learn" if whole else "landmarks",
        neighbours="exact" if whole else "ivf",
        cells=0 if whole else cell_count(m),
        nprobe=0 if whole else options.nprobe,
        n_epochs=epochs,
    )  # fmt: skip
    if m < 4:  # too few distinct points for a neighbour graph: spread them evenly
        layout = np.zeros((m, 2), np.float32)
        layout[:, 0] = np.linspace(0, 1, m) if m > 1 else 0.5
        return layout[inverse], info
    if whole:
        knn_index, knn_dist = exact_knn(reduced, reduced, k + 1)
        layout = _fit_umap(reduced, knn_index, knn_dist, k, options.min_dist, options.seed, epochs)
    else:
        layout = _landmark_layout(reduced, k, epochs, options, normalize=normalize)
    return layout[inverse], info


def distinct_vectors(x, options: ReduceConfig) -> tuple[np.ndarray, np.ndarray]:
    """The vectors a layout is computed on: each distinct row of ``x`` once (exact
    duplicates, all-zero ReLU outputs among them, are laid out once), projected to
    ``pca_dims`` principal components when wider, unit length for the cosine metric;
    and, per row of ``x``, the index of its vector among them."""
    normalize = options.metric == "cosine"
    first, inverse = _distinct_rows(x)
    if x.shape[1] > options.pca_dims:
        reduced = _pca(x, options.pca_dims, normalize=normalize)[first]
        return (unit_rows(reduced) if normalize else reduced), inverse
    return read_vectors(x, normalize=normalize)[first], inverse


def neighbour_count(options: ReduceConfig, m: int) -> int:
    """Neighbours per vector among ``m`` distinct ones (plus itself: under ``m``)."""
    return max(2, min(options.n_neighbors, m - 2))


def fuzzy_graph(vectors: np.ndarray, k: int, options: ReduceConfig, *, exact: bool):
    """umap-learn's fuzzy graph of ``vectors`` over their ``k`` neighbours (``exact``, or
    from a faiss IVF index) and the IVF cells (None when exact), whose order keeps graph
    neighbours in one block of the epochs."""
    fuzzy_simplicial_set = umap_kernels().umap_.fuzzy_simplicial_set

    cells = None
    if exact:
        knn_index, knn_dist = exact_knn(vectors, vectors, k + 1)
    else:
        knn_index, knn_dist, cells = ivf_knn(
            vectors, k + 1, nprobe=options.nprobe, seed=options.seed
        )
    graph = fuzzy_simplicial_set(
        vectors,
        k + 1,
        np.random.RandomState(options.seed),
        "euclidean",
        knn_indices=knn_index,
        knn_dists=knn_dist,
    )[0]
    return graph, cells


def _landmark_layout(
    vectors: np.ndarray, k: int, epochs: int, options: ReduceConfig, *, normalize: bool
) -> np.ndarray:
    """IVF neighbours, umap-learn's fuzzy graph over all vectors, the landmark start, then
    ``epochs`` of UMAP's optimisation over the whole graph."""
    from umap.umap_ import find_ab_params

    from atlas.umap_epochs import optimize

    seed = options.seed
    graph, cells = fuzzy_graph(vectors, k, options, exact=False)
    start = _landmark_start(cells, k, options.min_dist, seed, normalize=normalize)
    a, b = find_ab_params(1.0, options.min_dist)
    return optimize(
        graph,
        start,
        n_epochs=epochs,
        a=a,
        b=b,
        seed=seed,
        learning_rate=LANDMARK_RATE,
        order=cells.order,
    )


def _landmark_start(cells: Cells, k: int, min_dist: float, seed: int, *, normalize: bool):
    """Each vector at its cell's landmark (umap-learn's layout of the cells' centres), plus
    a seeded jitter of 0.4 % of the layout's extent so that no two start on one spot."""
    centres = unit_rows(cells.centres) if normalize else cells.centres
    neighbours = max(2, min(k, len(centres) - 2))
    index, dist = exact_knn(centres, centres, neighbours + 1)
    landmarks = _fit_umap(centres, index, dist, neighbours, min_dist, seed, 0)
    rng = np.random.default_rng(seed)
    jitter = 0.004 * np.ptp(landmarks, axis=0)
    start = landmarks[cells.cell] + rng.normal(0, 1, (len(cells.cell), 2)) * jitter
    return start.astype(np.float32)


def normalize_layout(xy: np.ndarray, options: ReduceConfig | None = None, **settings) -> np.ndarray:
    """Map a layout into [0, 1]^2 as Lucid's activation atlas does: take each axis's
    percentiles ``clip``, widen that range by ``clip_widen`` of its span on each side, clip
    to it (only true outliers reach the edge), then scale what remains to fill
    [margin, 1 - margin] (settings as for :func:`umap_layout`)."""
    options = (options or ReduceConfig()).updated(**settings)
    xy = np.asarray(xy, dtype=np.float64)
    low, high = np.percentile(xy, options.clip, axis=0)
    widen = options.clip_widen * (high - low)
    clipped = np.clip(xy, low - widen, high + widen)
    low, high = clipped.min(axis=0), clipped.max(axis=0)
    span = np.where(high - low > 0, high - low, 1.0)
    unit = (clipped - low) / span
    margin = options.margin
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


@functools.cache
def umap_kernels():
    """umap-learn, its compiled kernels kept on disk between processes.

    umap-learn compiles its numba kernels (the fuzzy graph's, the epochs') without numba's
    cache, so every process that lays anything out compiled them again: 10-20 s each time
    on two cores, in each of the pipeline's layout stages. Turned on here, the first
    process writes them beside umap-learn's sources (or in numba's user cache) and later
    ones load them in under a second; the code is the same, and so are the layouts."""
    import umap
    import umap.layouts
    import umap.umap_
    from numba.core.dispatcher import Dispatcher

    kernels = {
        id(kernel): kernel
        for module in (umap.umap_, umap.layouts)
        for kernel in vars(module).values()
        if isinstance(kernel, Dispatcher)
    }
    wrapped = collections.Counter(kernel.py_func for kernel in kernels.values())
    for kernel in kernels.values():
        # numba keys its cache by the Python function, not the compile flags: of a function
        # compiled twice (umap-learn's serial and parallel epoch) only the serial one, which
        # a seeded fit runs, may use it, or one would load the other's code.
        if wrapped[kernel.py_func] == 1 or not kernel.targetoptions.get("parallel"):
            kernel.enable_caching()
    return umap


def _fit_umap(base, knn_index, knn_dist, k, min_dist, seed, n_epochs) -> np.ndarray:
    umap = umap_kernels()

    # Each row's own index comes first in its neighbour list, as umap-learn expects.
    reducer = umap.UMAP(
        n_neighbors=k + 1,
        min_dist=min_dist,
        metric="euclidean",
        random_state=seed,
        precomputed_knn=(knn_index, knn_dist, None),
        n_epochs=n_epochs or None,  # 0: umap-learn's default (500 up to 10,000, else 200)
        verbose=False,
    )
    with warnings.catch_warnings():
        # Expected here: a seed makes umap-learn single-threaded, and a precomputed kNN
        # graph leaves it no search index (we never add points later).
        warnings.filterwarnings("ignore", message="n_jobs value", category=UserWarning)
        warnings.filterwarnings("ignore", message="precomputed_knn", category=UserWarning)
        return reducer.fit_transform(base).astype(np.float32)


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
