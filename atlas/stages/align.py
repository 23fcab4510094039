"""The align stage: a second store's layer (another checkpoint's activations on the same
images, or another layer) laid out in step with the run's layout (:mod:`atlas.align`),
written as a layout store that the grid and render stages turn into the aligned atlas;
and how aligned the two maps are, per grid level."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from atlas.align import (
    NEIGHBOURS,
    aligned_layout,
    neighbour_recall,
    paired_rows,
    within_one_cell,
)
from atlas.config import AlignConfig, GridConfig, ReduceConfig
from atlas.errors import AtlasError
from atlas.reduce import distinct_vectors
from atlas.rows import RowSubset
from atlas.store import open_run
from atlas.store.base import write_metrics
from atlas.store.layout import read_layout, write_layout


@dataclass(frozen=True)
class Alignment:
    samples: int  # laid out on both maps
    within_one_cell: dict[int, float]  # per grid level
    neighbours_aligned: float  # the aligned map's neighbour recall of its own vectors
    neighbours_run_layout: float  # the run's layout scored against the same neighbours
    neighbours_k: int  # neighbours per point in both
    pull: float


def align_store(
    run_url: str,
    layout_url: str,
    compare_url: str,
    out_url: str,
    options: AlignConfig,
    reduce: ReduceConfig,
    grid: GridConfig,
    *,
    metrics: str | Path | None = None,
) -> Alignment:
    """Lay out ``options.layer`` of the store ``compare_url`` aligned with the layout
    ``layout_url`` of the run ``run_url`` (same images, same order), write it to
    ``out_url`` (a layout store of the compare store, holding the figures and its levels
    too: ``atlas grid`` and ``atlas render`` take it from there); with ``metrics``, the
    figures as a JSON for DVC."""
    run, other = open_run(run_url), open_run(compare_url)
    layout = read_layout(layout_url)
    if layout.run_identity != run.identity_hash:
        raise AtlasError(
            f"{layout_url} was made from another run than {run_url}: run `atlas reduce` again"
        )
    levels = options.levels or grid.levels
    unknown = sorted(set(levels) - set(grid.levels))
    if unknown:
        raise AtlasError(
            f"align.levels {unknown} are not grid levels: choose among {sorted(grid.levels)}"
        )
    ours = run.read_layer(layout.layer)
    theirs = other.read_layer(options.layer)
    paired_rows(ours.path[:], theirs.path[:], run_url, compare_url)
    rows = np.flatnonzero(theirs.valid[:] & np.isfinite(layout.xy).all(axis=1))
    if len(rows) == 0:
        raise AtlasError(f"{compare_url} and {layout_url} share no usable samples to align")
    vectors = RowSubset(theirs.acts, rows)
    prepared = distinct_vectors(vectors, reduce)  # once: for the layout and its figures
    xy = np.clip(
        aligned_layout(vectors, layout.xy[rows], options, reduce, prepared=prepared), 0.0, 1.0
    )
    reduced, inverse = prepared
    laid_out = reduced[inverse]
    result = Alignment(
        samples=len(rows),
        within_one_cell={size: within_one_cell(layout.xy[rows], xy, size) for size in levels},
        neighbours_aligned=neighbour_recall(laid_out, xy, seed=reduce.seed),
        neighbours_run_layout=neighbour_recall(laid_out, layout.xy[rows], seed=reduce.seed),
        neighbours_k=NEIGHBOURS,
        pull=options.pull,
    )
    full = np.full((theirs.acts.shape[0], 2), np.nan, np.float32)
    full[rows] = xy
    write_layout(
        out_url,
        full,
        full,
        {
            "layer": theirs.name,
            "run": compare_url,
            "run_identity": other.identity_hash,
            "aligned_with": {"run": run_url, "layout": layout_url, "layer": layout.layer},
            "align": options.model_dump(mode="json"),
            "levels": list(levels),  # the grid stage makes these levels of it
            "alignment": asdict(result),
        },
    )
    if metrics is not None:
        write_metrics(metrics, asdict(result))
    return result
