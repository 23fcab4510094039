"""Benchmark: gridding N activation vectors at four levels, out of core.

Synthetic activations (N x 512 float32, in a Zarr array on disk, read in chunks) with a
random layout and top-5 class attributions over 1000 classes; `grid_levels` at levels
20/40/80/160 with exemplars, against a plain NumPy group-by of the finest level's means
(the whole array in memory), whose result it must equal.

    python tests/benchmarks/grid.py [--n 1000000]
"""

from __future__ import annotations

import argparse
import resource
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import zarr

from atlas.grid import cell_of, grid_levels


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--dims", type=int, default=512)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="bench-grid-"))
    try:
        rng = np.random.default_rng(0)
        acts = zarr.create_array(
            str(root / "acts.zarr"),
            shape=(args.n, args.dims),
            chunks=(65536, args.dims),
            dtype="float32",
        )
        for start in range(0, args.n, 65536):
            stop = min(start + 65536, args.n)
            acts[start:stop] = np.maximum(rng.normal(0, 1, (stop - start, args.dims)), 0).astype(
                np.float32
            )
        xy = rng.random((args.n, 2)).astype(np.float32)
        attribution = rng.normal(0, 1, (args.n, 5)).astype(np.float32)
        attribution_class = rng.integers(0, 1000, (args.n, 5)).astype(np.int32)
        labels = rng.integers(0, 1000, args.n)
        start = time.perf_counter()
        levels = grid_levels(
            acts,
            xy,
            levels=[20, 40, 80, 160],
            attribution=attribution,
            attribution_class=attribution_class,
            labels=labels,
            num_classes=1000,
            min_count=1,
            exemplars=8,
        )
        ours = time.perf_counter() - start
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        start = time.perf_counter()
        everything = acts[:]
        cells = cell_of(xy, 160, 160)
        order = np.argsort(cells, kind="stable")
        bounds = np.searchsorted(cells[order], np.arange(160 * 160 + 1))
        means = (
            np.add.reduceat(everything[order], bounds[:-1].clip(max=args.n - 1), axis=0)
            / np.maximum(np.diff(bounds), 1)[:, None]
        )
        numpy_seconds = time.perf_counter() - start
        occupied = np.diff(bounds) > 0
        difference = float(np.abs(levels[160].mean[occupied] - means[occupied]).max())
        print(
            f"{args.n:,} x {args.dims}: 4 levels with exemplars in {ours:.1f} s (peak RSS {peak / 1024:.1f} GiB); NumPy group-by of one level's means in memory {numpy_seconds:.1f} s; max |difference| {difference:.1e}"
        )
        fields = {
            "n": args.n,
            "dims": args.dims,
            "levels": "20/40/80/160",
            "ours_s": round(ours, 1),
            "numpy_one_level_s": round(numpy_seconds, 1),
            "peak_gib": round(peak / 1024, 1),
            "max_abs_diff": f"{difference:.1e}",
        }
        print("BENCH grid " + " ".join(f"{k}={v}" for k, v in fields.items()))
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
