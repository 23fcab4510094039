"""Benchmark: `atlas.reduce.umap_layout` against umap-learn's defaults, scored on every point.

Data: activation-like synthetic vectors (ReLU of a Gaussian mixture: 30 big clusters of
uneven size and spread, 1 % dead all-zero samples) plus 150 small, well-separated groups of
0.04 % of the points each -- the rare concepts an atlas's finest levels should show. And
the demo's real activations when `make demo` has produced them.

For each layout: wall time; ``rare_knn``, the share of each small group's points whose 10
nearest 2-D neighbours (among all N points) are of the same group, and ``kept``, the share of
groups for which that is at least a half; trustworthiness (k=10, 10k subsample, cosine in
the input space); 10-NN label agreement. The peer is
``umap.UMAP(n_neighbors=15, min_dist=0.1, metric="cosine")`` unseeded (its parallel mode),
in the same run. Also: the IVF neighbours' recall against exact search, and what PCA to
32/64/128 dimensions costs (the small groups' 10 nearest neighbours in the reduced space,
and on the demo the overlap of each vector's 15 nearest with those in the full space).
``--million`` lays out 1M x 512 vectors in a fresh process and reports time and peak RSS.

    python tests/benchmarks/reduce.py [--n 200000] [--million]
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
from sklearn.manifold import trustworthiness

from atlas.neighbors import exact_knn, ivf_knn
from atlas.reduce import _pca, umap_layout_info
from atlas.rows import unit_rows

DEMO_STORE = (
    Path(__file__).resolve().parents[2] / "outputs" / "demo" / "extract" / "activations.zarr"
)
GROUPS = 150
GROUP_SHARE = 0.0004  # each small group: 0.04 % of the points (80 of 200,000)


def rare_like(n: int, dims: int = 512, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(N, dims) float32 and labels: 0..29 the big clusters, 30.. the small groups."""
    rng = np.random.default_rng(seed)
    size = max(10, round(GROUP_SHARE * n))
    n_big = n - GROUPS * size
    centres = rng.normal(0, 1, (30 + GROUPS, dims)).astype(np.float32)
    shares = rng.dirichlet(np.full(30, 2.0))
    labels = np.concatenate(
        [rng.choice(30, n_big, p=shares), np.repeat(30 + np.arange(GROUPS), size)]
    )
    spread = np.concatenate([rng.uniform(0.8, 1.6, 30), rng.uniform(0.6, 1.0, GROUPS)])
    x = np.empty((n, dims), np.float32)
    for start in range(0, n, 100_000):
        part = labels[start : start + 100_000]
        noise = rng.normal(0, 1, (len(part), dims)).astype(np.float32)
        x[start : start + len(part)] = np.maximum(
            centres[part] + noise * spread[part, None].astype(np.float32), 0
        )
    x[rng.random(n) < 0.01] = 0
    return x, labels


def knn_2d(xy: np.ndarray, rows: np.ndarray, k: int = 10) -> np.ndarray:
    return exact_knn(np.ascontiguousarray(xy, np.float32), np.ascontiguousarray(xy[rows]), k + 1)[
        0
    ][:, 1:]


def overlap(found: np.ndarray, reference: np.ndarray) -> float:
    """Mean share of each row of ``reference`` (Q, k) that the same row of ``found`` holds."""
    return float((reference[:, :, None] == found[:, None, :]).any(axis=2).mean())


def rare_scores(xy: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    rare = np.flatnonzero(labels >= 30)
    same = (labels[knn_2d(xy, rare)] == labels[rare, None]).mean(axis=1)
    per_group = np.bincount(labels[rare] - 30, weights=same) / np.bincount(labels[rare] - 30)
    return float(same.mean()), float((per_group >= 0.5).mean())


def quality(x: np.ndarray, xy: np.ndarray, labels: np.ndarray) -> dict:
    sub = np.sort(np.random.default_rng(0).choice(len(x), min(10_000, len(x)), replace=False))
    trust = trustworthiness(unit_rows(x[sub]), xy[sub], n_neighbors=10)
    agreement = (labels[knn_2d(xy, sub)] == labels[sub, None]).mean()
    out = {"trust": round(float(trust), 4), "agree": round(float(agreement), 3)}
    if (labels >= 30).any():
        rare, kept = rare_scores(xy, labels)
        out.update(rare_knn=round(rare, 3), kept=round(kept, 3))
    return out


def compare(name: str, x: np.ndarray, labels: np.ndarray) -> dict:
    import umap

    umap_layout_info(x[:3000], exact_below=1000)  # compile numba kernels outside the timings
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reference = umap.UMAP(n_neighbors=15, min_dist=0.1, metric="cosine").fit_transform(x)
    t_ref = time.perf_counter() - start
    start = time.perf_counter()
    ours, info = umap_layout_info(x)
    t_ours = time.perf_counter() - start
    q_ref, q_ours = quality(x, reference, labels), quality(x, ours, labels)
    print(f"{name} N={len(x)} D={x.shape[1]}: umap-learn {t_ref:.1f} s {q_ref}", flush=True)
    print(f"{name}: ours ({info.describe()}) {t_ours:.1f} s {q_ours}", flush=True)
    prefix = "" if name == "synthetic" else f"{name}_"  # the goal's figures go unprefixed
    fields = {
        f"{prefix}n": len(x),
        f"{prefix}umap_s": round(t_ref, 1),
        f"{prefix}ours_s": round(t_ours, 1),
        f"{prefix}speedup": round(t_ref / t_ours, 2),
    }
    for key in q_ours:
        fields[f"{prefix}{key}_umap"] = q_ref[key]
        fields[f"{prefix}{key}_ours"] = q_ours[key]
    return fields


def ivf_recall(x: np.ndarray, dims: int = 64, k: int = 16) -> dict:
    """Recall of the IVF search (at the default nprobe and at twice it) against exact search,
    on the PCA-reduced unit vectors the layout uses, for 5,000 queries."""
    live = x[np.abs(x).sum(axis=1) > 0]  # the layout searches distinct vectors only
    reduced = unit_rows(_pca(live, dims, normalize=True))
    queries = np.sort(np.random.default_rng(1).choice(len(live), 5000, replace=False))
    exact_index, exact_dist = exact_knn(reduced, reduced[queries], k)
    fields = {}
    for nprobe in (8, 16):
        start = time.perf_counter()
        index, dist, _ = ivf_knn(reduced, k, nprobe=nprobe, seed=0, show_progress=False)
        seconds = time.perf_counter() - start
        found = index[queries]
        recall = overlap(found, exact_index)
        ratio = float(np.mean(dist[queries][:, -1] / np.maximum(exact_dist[:, -1], 1e-12)))
        print(
            f"IVF nprobe={nprobe}: recall@{k} {recall:.3f}, k-th distance / exact {ratio:.4f}, "
            f"{seconds:.1f} s for all {len(live)}",
            flush=True,
        )
        fields[f"ivf{nprobe}_recall"] = round(float(recall), 3)
        fields[f"ivf{nprobe}_dist_ratio"] = round(ratio, 4)
    return fields


def pca_cost(name: str, x: np.ndarray, labels: np.ndarray | None) -> dict:
    """What PCA costs the neighbours: with small groups, the share of their 10 nearest in
    the reduced space that are of their group; else the overlap of each of 2,000 vectors'
    15 nearest with its 15 nearest in the full space."""
    full = unit_rows(np.ascontiguousarray(x, np.float32))
    if labels is not None:
        rows = np.flatnonzero(labels >= 30)
    else:
        rows = np.sort(np.random.default_rng(2).choice(len(x), min(2000, len(x)), replace=False))
    reference = exact_knn(full, full[rows], 16)[0][:, 1:]
    fields = {}
    for dims in (32, 64, 128, None):
        if dims is not None and dims >= x.shape[1]:
            continue
        space = full if dims is None else unit_rows(_pca(x, dims, normalize=True))
        found = exact_knn(space, space[rows], 16)[0][:, 1:]
        if labels is not None:
            score = (labels[found[:, :10]] == labels[rows, None]).mean()
        else:
            score = overlap(found, reference)
        label = "full" if dims is None else f"pca{dims}"
        print(
            f"{name} {label}: {'rare 10-NN same group' if labels is not None else '15-NN overlap with full'} {score:.4f}",
            flush=True,
        )
        fields[f"{name}_{label}"] = round(float(score), 4)
    return fields


def million() -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--million-child"], check=True, capture_output=True, text=True
    )
    seconds, rss, rare, kept = map(float, out.stdout.split()[-4:])
    print(
        f"1M x 512: umap_layout {seconds:.0f} s, peak RSS {rss / 1024:.1f} GiB "
        f"(the data itself 1.9 GiB), rare_knn {rare:.3f}, kept {kept:.3f}",
        flush=True,
    )
    return {
        "million_s": round(seconds),
        "million_peak_gib": round(rss / 1024, 1),
        "million_rare_knn": round(rare, 3),
        "million_kept": round(kept, 3),
    }


def million_child() -> None:
    x, labels = rare_like(1_000_000)
    umap_layout_info(x[:3000], exact_below=1000)
    start = time.perf_counter()
    xy, _ = umap_layout_info(x)
    seconds = time.perf_counter() - start
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(seconds, rss, *rare_scores(xy, labels))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=200_000)
    parser.add_argument("--million", action="store_true")
    parser.add_argument("--million-child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.million_child:
        return million_child()
    x, labels = rare_like(args.n)
    fields = compare("synthetic", x, labels)
    fields.update(ivf_recall(x))
    fields.update(pca_cost("synthetic", x, labels))
    if DEMO_STORE.exists():
        from atlas.store import open_run

        layer = open_run(str(DEMO_STORE)).read_layer()
        valid = layer.valid[:]
        acts = layer.acts[:][valid].reshape(int(valid.sum()), -1)
        fields.update(compare("demo", acts, layer.label[:][valid]))
        fields.update(pca_cost("demo", acts, None))
    else:
        print(f"(no {DEMO_STORE}: run `make demo` to compare on the demo's activations)")
    if args.million:
        fields.update(million())
    print("BENCH reduce " + " ".join(f"{k}={v}" for k, v in fields.items()))


if __name__ == "__main__":
    main()
