"""The reduce stage: one layer of a run store laid out in 2-D (:mod:`atlas.reduce`),
written as a layout store (:mod:`atlas.store.layout`)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np

from atlas.config import ReduceConfig
from atlas.errors import AtlasError
from atlas.layout_measures import neighbour_agreement
from atlas.reduce import LayoutInfo, NonFiniteError, configured_layout
from atlas.rows import RowSubset
from atlas.store import open_run
from atlas.store.layout import write_layout

PLOT_POINTS = 20_000  # points of the layout plot, a seeded sample beyond that


def reduce_store(
    run_url: str,
    layout_url: str,
    options: ReduceConfig,
    *,
    plot: str | Path | None = None,
    metrics: str | Path | None = None,
) -> LayoutInfo:
    """Lay out the valid samples of ``options.layer`` (the store's only layer by default)
    and write their normalized and raw coordinates; skipped samples get NaN. With ``plot``,
    also a CSV of the layout (``x``, ``y`` and each sample's ``class``: its label, else
    its predicted class) for DVC's plots, at most ``PLOT_POINTS`` points; with ``metrics``,
    a JSON of the layout's agreement with the predictions
    (:func:`atlas.layout_measures.neighbour_agreement`)."""
    store = open_run(run_url)
    layer = store.read_layer(options.layer)
    valid = np.flatnonzero(layer.valid[:])
    if len(valid) == 0:
        raise AtlasError(f"{run_url} has no usable samples to lay out")
    try:
        xy, raw, info = configured_layout(RowSubset(layer.acts, valid), options)
    except NonFiniteError as err:
        sample = int(valid[err.index])
        raise NonFiniteError(
            f"activations of {layer.path[sample]} (sample {sample}) contain NaN or infinity",
            sample,
        ) from None
    n = layer.acts.shape[0]
    full_raw = np.full((n, 2), np.nan, np.float32)
    full_xy = np.full((n, 2), np.nan, np.float32)
    full_raw[valid] = raw
    full_xy[valid] = xy
    if plot is not None:
        _write_plot(Path(plot), store, layer, valid, xy, options.seed)
    if metrics is not None:
        agreement = neighbour_agreement(
            xy, layer.topk_class[:, 0][valid], layer.image[:][valid], seed=options.seed
        )
        Path(metrics).parent.mkdir(parents=True, exist_ok=True)
        Path(metrics).write_text(
            json.dumps({"layer": layer.name, "neighbours": agreement.as_dict()}, indent=2) + "\n"
        )
    write_layout(
        layout_url,
        full_xy,
        full_raw,
        {
            "layer": layer.name,
            "run": run_url,
            "run_identity": store.identity_hash,
            "reducer": {
                **info.__dict__,
                "clip": list(options.clip),
                "clip_widen": options.clip_widen,
                "margin": options.margin,
            },
        },
    )
    return info


def _write_plot(path: Path, store, layer, valid: np.ndarray, xy: np.ndarray, seed: int) -> None:
    rng = np.random.default_rng(seed)
    chosen = np.sort(rng.choice(len(valid), min(len(valid), PLOT_POINTS), replace=False))
    labels = layer.label[:][valid[chosen]]
    predicted = layer.topk_class[:, 0][valid[chosen]]
    names = store.class_names
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["x", "y", "class"])
        for (x, y), label, guess in zip(xy[chosen], labels, predicted, strict=True):
            writer.writerow(
                [round(float(x), 4), round(float(y), 4), names[label if label >= 0 else guess]]
            )
