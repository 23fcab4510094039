"""UMAP's layout optimisation over a whole fuzzy graph, on every core and the same result
on every run.

umap-learn lays a graph out by stochastic gradient steps: each epoch follows every edge as
often as its weight says (a strong edge every epoch, a weak one every few), pulling its two
ends together, and for each step pushes the moving vertex away from a few vertices drawn
at random. Given a seed it runs on one thread; its parallel mode lets threads race on the
same coordinates, so two runs differ. Here the same epochs run in a fixed number of
blocks of consecutive vertices, one task per block:

- inside a block the steps are applied in order, each seeing the positions the steps
  before it left; a vertex of another block is seen where it stood when the epoch began;
- the caller orders the vertices so that graph neighbours mostly share a block (by
  landmark cell, :mod:`atlas.reduce`), so almost every step sees current positions;
- the random vertices come from a counter-based generator keyed by (seed, edge, epoch).

So the result depends on the seed, the graph and the block count (a constant), never on
the number of threads or their timing. Each vertex moves only itself: an edge sits in both
of its ends' rows of the symmetric graph, and each end takes twice the attraction, as both
ends do in umap-learn where every directed edge moves both of its vertices.

We write this loop ourselves because umap-learn's own is single-threaded when seeded
(measured: 13.2 s against 7.0 s for 30 epochs of a 200k-vertex graph on 2 cores,
tests/benchmarks/reduce.py) and offers no deterministic parallel mode. The graph, the
curve parameters ``a``, ``b`` and the sampling schedule are umap-learn's.
"""

from __future__ import annotations

import numba
import numpy as np
import scipy.sparse

from atlas.progress import progress

BLOCKS = 64  # tasks per epoch: a constant, so that results never depend on the core count
NEGATIVE_SAMPLE_RATE = 5.0  # umap-learn's default: random pushes per attraction step
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


@numba.njit(inline="always")
def _scramble(z):
    """A 64-bit finaliser (splitmix64's): consecutive inputs give unrelated outputs."""
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


@numba.njit(parallel=True, fastmath=True, cache=True)
def _epoch(
    position,
    start,
    indptr,
    indices,
    every,
    next_step,
    every_push,
    next_push,
    a,
    b,
    alpha,
    epoch,
    seed,
    bounds,
    anchor,
    anchor_pull,
):  # pragma: no cover - compiled by numba; its behaviour is tested through optimize()
    n_vertices = position.shape[0]
    zero = np.float32(0.0)
    one = np.float32(1.0)
    two = np.float32(2.0)
    four = np.float32(4.0)
    eps = np.float32(0.001)
    pull_scale = np.float32(-2.0) * a * b
    push_scale = np.float32(2.0) * b
    for block in numba.prange(len(bounds) - 1):
        low = bounds[block]
        high = bounds[block + 1]
        for i in range(low, high):
            x = position[i, 0]
            y = position[i, 1]
            for edge in range(indptr[i], indptr[i + 1]):
                if next_step[edge] > epoch:
                    continue
                j = indices[edge]
                if low <= j < high:
                    dx = x - position[j, 0]
                    dy = y - position[j, 1]
                else:
                    dx = x - start[j, 0]
                    dy = y - start[j, 1]
                d2 = dx * dx + dy * dy
                if d2 > zero:
                    power = d2**b
                    pull = pull_scale * (power / d2) / (a * power + one)
                    x += two * alpha * min(max(pull * dx, -four), four)
                    y += two * alpha * min(max(pull * dy, -four), four)
                next_step[edge] += every[edge]
                pushes = int((epoch - next_push[edge]) / every_push[edge])
                state = _scramble(
                    np.uint64(seed)
                    ^ (np.uint64(edge) * _GOLDEN)
                    ^ (np.uint64(epoch) << np.uint64(40))
                )
                for _ in range(pushes):
                    state = _scramble(state + _GOLDEN)
                    k = np.int64(state % np.uint64(n_vertices))
                    if low <= k < high:
                        dx = x - position[k, 0]
                        dy = y - position[k, 1]
                    else:
                        dx = x - start[k, 0]
                        dy = y - start[k, 1]
                    d2 = dx * dx + dy * dy
                    if d2 > zero:  # umap-learn gives coincident points no push
                        push = push_scale / ((eps + d2) * (a * d2**b + one))
                        x += alpha * min(max(push * dx, -four), four)
                        y += alpha * min(max(push * dy, -four), four)
                next_push[edge] += pushes * every_push[edge]
                position[i, 0] = x
                position[i, 1] = y
            if anchor_pull > zero:  # the alignment term: a spring to the vertex's anchor
                spring = min(alpha * anchor_pull, one)  # never past the anchor
                position[i, 0] = x + spring * (anchor[i, 0] - x)
                position[i, 1] = y + spring * (anchor[i, 1] - y)


def optimize(
    graph: scipy.sparse.spmatrix,
    init: np.ndarray,
    *,
    n_epochs: int,
    a: float,
    b: float,
    seed: int = 0,
    learning_rate: float = 1.0,
    order: np.ndarray | None = None,
    anchors: np.ndarray | None = None,
    anchor_pull: float = 0.0,
    show_progress: bool = True,
) -> np.ndarray:
    """Optimise the 2-D layout ``init`` (N, 2) of the symmetric fuzzy ``graph`` (N x N,
    umap-learn's) for ``n_epochs``, the step size falling linearly from ``learning_rate``
    to 0 as in umap-learn. ``order`` (a permutation of the vertices) sets which vertices
    share a block: put graph neighbours next to each other. With ``anchors`` (N, 2, in the
    frame of ``init``), each epoch also pulls every vertex ``anchor_pull`` of the way (times
    the step size) towards its anchor: the alignment term of an aligned layout. Returns
    (N, 2) float32 with the layout rescaled as umap-learn starts it (``init``'s range on
    each axis mapped to [0, 10], and the anchors with it)."""
    from umap.umap_ import make_epochs_per_sample

    n = graph.shape[0]
    order = np.arange(n) if order is None else np.asarray(order)
    graph = scipy.sparse.csr_matrix(graph, dtype=np.float32)[order][:, order].tocsr()
    graph.sum_duplicates()
    # An edge sampled less than once in the whole run never moves anything.
    graph.data[graph.data < graph.data.max() / n_epochs] = 0
    graph.eliminate_zeros()
    every = make_epochs_per_sample(graph.data, n_epochs).astype(np.float32)
    every_push = every / np.float32(NEGATIVE_SAMPLE_RATE)
    next_step, next_push = every.copy(), every_push.copy()
    position = np.asarray(init, np.float32)[order]
    low = position.min(axis=0)
    extent = np.maximum(position.max(axis=0) - low, 1e-12)
    position = np.ascontiguousarray(10.0 * (position - low) / extent, np.float32)
    anchor = (
        np.zeros((1, 2), np.float32)
        if anchors is None
        else np.ascontiguousarray(10.0 * (np.asarray(anchors, np.float32)[order] - low) / extent)
    )
    start = np.empty_like(position)
    bounds = np.linspace(0, n, BLOCKS + 1).astype(np.int64)
    indptr, indices = graph.indptr.astype(np.int64), graph.indices.astype(np.int32)
    for epoch in progress(
        range(n_epochs), desc="layout", unit="epoch", disable=not show_progress, leave=False
    ):
        start[:] = position
        alpha = learning_rate * (1.0 - epoch / n_epochs)
        _epoch(
            position,
            start,
            indptr,
            indices,
            every,
            next_step,
            every_push,
            next_push,
            np.float32(a),
            np.float32(b),
            np.float32(alpha),
            np.float32(epoch),
            np.uint64(seed),
            bounds,
            anchor.astype(np.float32),
            np.float32(anchor_pull if anchors is not None else 0.0),
        )
    out = np.empty_like(position)
    out[order] = position
    return out
