"""Benchmark: `atlas.reduce.umap_layout` against umap-learn's defaults on the same data.

Data: activation-like synthetic vectors with known clusters (ReLU of a Gaussian mixture
with uneven cluster sizes and spreads, plus dead all-zero samples), and the demo's real
activations when `make demo` has produced them. For each: wall time of
``umap.UMAP(n_neighbors=15, min_dist=0.1, metric="cosine")`` and of ``umap_layout``, the
trustworthiness of each layout (k=10, on a 10k subsample, cosine in the input space) and
its 10-NN label agreement. ``--million`` also times our layout of 1M x 512 vectors and
its peak memory, in a fresh process.

    python tests/benchmarks/reduce.py [--n 100000] [--million]
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
from sklearn.neighbors import NearestNeighbors

from atlas.reduce import umap_layout

DEMO_STORE = (
    Path(__file__).resolve().parents[2] / "outputs" / "demo" / "extract" / "activations.zarr"
)


def activation_like(
    n: int, dims: int = 512, clusters: int = 30, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 1, (clusters, dims)).astype(np.float32)
    sizes = rng.dirichlet(np.full(clusters, 2.0))
    labels = rng.choice(clusters, n, p=sizes)
    spread = rng.uniform(0.8, 1.6, clusters).astype(np.float32)
    x = np.empty((n, dims), np.float32)
    for start in range(0, n, 100_000):
        part = labels[start : start + 100_000]
        noise = rng.normal(0, 1, (len(part), dims)).astype(np.float32)
        x[start : start + len(part)] = np.maximum(centres[part] + noise * spread[part, None], 0)
    dead = rng.random(n) < 0.01
    x[dead] = 0
    return x, labels


def quality(
    x: np.ndarray, xy: np.ndarray, labels: np.ndarray, seed: int = 0
) -> tuple[float, float]:
    rng = np.random.default_rng(seed)
    sub = rng.choice(len(x), min(10_000, len(x)), replace=False)
    norms = np.linalg.norm(x[sub], axis=1, keepdims=True)
    unit = np.divide(x[sub], norms, out=np.zeros_like(x[sub]), where=norms > 0)
    trust = trustworthiness(unit, xy[sub], n_neighbors=10)
    index = (
        NearestNeighbors(n_neighbors=11).fit(xy).kneighbors(xy[sub], return_distance=False)[:, 1:]
    )
    agreement = (labels[index] == labels[sub][:, None]).mean()
    return float(trust), float(agreement)


def compare(name: str, x: np.ndarray, labels: np.ndarray) -> dict:
    import umap

    umap_layout(x[:3000], fit_size=3000)  # compile numba kernels outside the timings
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reference = umap.UMAP(n_neighbors=15, min_dist=0.1, metric="cosine").fit_transform(x)
    t_ref = time.perf_counter() - start
    start = time.perf_counter()
    ours = umap_layout(x)
    t_ours = time.perf_counter() - start
    q_ref, q_ours = quality(x, reference, labels), quality(x, ours, labels)
    print(
        f"{name} N={len(x)} D={x.shape[1]}: umap-learn {t_ref:.1f} s (trust {q_ref[0]:.4f}, "
        f"10-NN agreement {q_ref[1]:.3f}); umap_layout {t_ours:.1f} s (trust {q_ours[0]:.4f}, "
        f"agreement {q_ours[1]:.3f}); {t_ref / t_ours:.1f}x faster",
        flush=True,
    )
    return {
        f"{name}_n": len(x),
        f"{name}_umap_s": round(t_ref, 1),
        f"{name}_ours_s": round(t_ours, 1),
        f"{name}_speedup": round(t_ref / t_ours, 2),
        f"{name}_trust_umap": round(q_ref[0], 4),
        f"{name}_trust_ours": round(q_ours[0], 4),
        f"{name}_agree_umap": round(q_ref[1], 3),
        f"{name}_agree_ours": round(q_ours[1], 3),
    }


def million() -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--million-child"], check=True, capture_output=True, text=True
    )
    seconds, rss = map(float, out.stdout.split()[-2:])
    print(f"1M x 512: umap_layout {seconds:.0f} s, peak RSS {rss / 1024:.1f} GiB", flush=True)
    return {"million_s": round(seconds), "million_peak_gib": round(rss / 1024, 1)}


def million_child() -> None:
    x, _ = activation_like(1_000_000)
    umap_layout(x[:3000], fit_size=3000)
    start = time.perf_counter()
    umap_layout(x)
    print(time.perf_counter() - start, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--million", action="store_true")
    parser.add_argument("--million-child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.million_child:
        return million_child()
    fields = compare("synthetic", *activation_like(args.n))
    if DEMO_STORE.exists():
        from atlas.store import open_run

        layer = open_run(str(DEMO_STORE)).layer()
        valid = layer["valid"][:]
        fields.update(compare("demo", layer["acts"][:][valid], layer["label"][:][valid]))
    else:
        print(f"(no {DEMO_STORE}: run `make demo` to compare on the demo's activations)")
    if args.million:
        fields.update(million())
    print("BENCH reduce " + " ".join(f"{k}={v}" for k, v in fields.items()))


if __name__ == "__main__":
    main()
