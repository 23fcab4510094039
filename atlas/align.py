"""Aligned atlases: the same images seen by two checkpoints of a model (or two layers of
one), laid out so that each image lands in corresponding places on both maps.

Lucid's ``aligned_activation_atlas`` lays both out at once over the two sets of vectors
side by side, which ties every image to one spot: the maps agree by construction and can
no longer show where the two models disagree. Here the second map keeps its own
neighbourhoods and is only drawn towards the first, as umap-learn's ``AlignedUMAP``
does between its embeddings, but at our layout's scale (:mod:`atlas.umap_epochs`):

1. the second set's fuzzy graph, built as the run's own layout builds one
   (:func:`atlas.reduce.fuzzy_graph`: exact neighbours up to ``exact_below`` vectors,
   faiss IVF above);
2. every vector starts where its image's counterpart lies in the run's layout;
3. UMAP's epochs over that graph, plus an alignment term: each epoch pulls every point a
   share ``pull`` (times the falling step size) of the way to its counterpart.

Two figures say how it went, both stored: the share of images whose cell lies within one
cell of their counterpart's, per level (how aligned the maps are), and how many of each
vector's nearest neighbours stay its neighbours on the map (how much of its own model's
structure the aligned map keeps; the run's layout scored against the second model's
neighbours is the floor to compare with).
"""

from __future__ import annotations

import numpy as np

from atlas.config import AlignConfig, ReduceConfig
from atlas.errors import AtlasError
from atlas.grid import cell_column_row
from atlas.neighbors import exact_knn
from atlas.reduce import distinct_vectors, fuzzy_graph, neighbour_count

JITTER = 0.002  # start offsets (of the layout's extent) so that no two points share a spot
NEIGHBOURS = 15  # neighbours per point in the neighbour recall


def paired_rows(a_paths: np.ndarray, b_paths: np.ndarray, a_name: str, b_name: str) -> None:
    """Check that two layers' samples are the same images in the same order (sample i of
    one is sample i of the other); raise a one-line error naming the first mismatch."""
    if len(a_paths) != len(b_paths):
        raise AtlasError(
            f"{a_name} has {len(a_paths)} samples and {b_name} {len(b_paths)}: an aligned "
            "atlas needs the same images, sampled alike (extract both with one config)"
        )
    differs = np.flatnonzero(a_paths != b_paths)
    if len(differs):
        i = int(differs[0])
        ours, theirs = str(a_paths[i]), str(b_paths[i])
        raise AtlasError(
            f"sample {i} is {ours!r} in {a_name} but {theirs!r} in {b_name}: an aligned "
            "atlas needs the same images in the same order"
        )


def aligned_layout(
    vectors,
    anchors: np.ndarray,
    options: AlignConfig,
    reduce: ReduceConfig,
    *,
    prepared: tuple[np.ndarray, np.ndarray] | None = None,
) -> np.ndarray:
    """2-D positions (N, 2) of the rows of ``vectors`` in the frame of ``anchors`` (N, 2,
    each row's counterpart on the map to align with): UMAP of ``vectors`` (``reduce``'s
    neighbours, metric, min_dist and seed) started at the anchors and drawn towards them
    by the alignment term (``options.pull``). ``prepared`` is
    :func:`atlas.reduce.distinct_vectors` of ``vectors``, when the caller already has it.
    Deterministic for the seed."""
    from umap.umap_ import find_ab_params

    from atlas.umap_epochs import optimize

    anchors = np.asarray(anchors, np.float64)
    reduced, inverse = prepared or distinct_vectors(vectors, reduce)
    m = len(reduced)
    # Copies of one vector are one vertex: its anchor is their counterparts' mean.
    target = np.zeros((m, 2))
    np.add.at(target, inverse, anchors)
    target /= np.bincount(inverse, minlength=m)[:, None]
    if m < 4:
        return target[inverse].astype(np.float32)
    k = neighbour_count(reduce, m)
    graph, cells = fuzzy_graph(reduced, k, reduce, exact=m <= reduce.exact_below)
    rng = np.random.default_rng(reduce.seed)
    low, high = target.min(axis=0), target.max(axis=0)
    extent = np.maximum(high - low, 1e-12)
    start = target + rng.normal(0, JITTER, target.shape) * extent
    a, b = find_ab_params(1.0, reduce.min_dist)
    moved = optimize(
        graph,
        start,
        n_epochs=options.epochs,
        a=a,
        b=b,
        seed=reduce.seed,
        learning_rate=options.learning_rate,
        order=None if cells is None else cells.order,
        anchors=target,
        anchor_pull=options.pull,
    )
    # optimize() hands back the start's range mapped to [0, 10]: map it back.
    start_low = start.min(axis=0)
    start_extent = np.maximum(start.max(axis=0) - start_low, 1e-12)
    xy = start_low + moved.astype(np.float64) / 10.0 * start_extent
    return xy[inverse].astype(np.float32)


def within_one_cell(xy_a: np.ndarray, xy_b: np.ndarray, size: int) -> float:
    """The share of points whose cell on one map is its counterpart's cell on the other,
    or one of the eight around it (at ``size`` x ``size`` cells)."""
    if len(xy_a) == 0:
        return float("nan")
    apart = np.abs(cell_column_row(xy_a, size) - cell_column_row(xy_b, size)).max(axis=1)
    return float((apart <= 1).mean())


def neighbour_recall(
    vectors: np.ndarray,
    xy: np.ndarray,
    *,
    k: int = NEIGHBOURS,
    queries: int = 2000,
    seed: int = 0,
) -> float:
    """How much of the vectors' structure a map keeps: for a seeded sample of points, the
    mean share of their ``k`` nearest neighbours among ``vectors`` (as laid out: reduced
    and normalized) that are also among their ``k`` nearest on the map ``xy``."""
    n = len(vectors)
    k = min(k, n - 1)
    if k < 1:
        return float("nan")
    chosen = np.random.default_rng(seed).choice(n, min(queries, n), replace=False)
    near, _ = exact_knn(vectors, vectors[chosen], k + 1)
    plane = np.ascontiguousarray(xy, np.float32)
    on_map, _ = exact_knn(plane, plane[chosen], k + 1)
    kept = [
        len(set(a[a != q][:k]) & set(b[b != q][:k])) / k
        for q, a, b in zip(chosen, near, on_map, strict=True)
    ]
    return float(np.mean(kept))
