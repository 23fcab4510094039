"""The reduce stage: one layer of a run store laid out in 2-D (:mod:`atlas.reduce`),
written as a layout store (:mod:`atlas.store.layout`)."""

from __future__ import annotations

import numpy as np

from atlas.config import ReduceConfig
from atlas.errors import AtlasError
from atlas.reduce import LayoutInfo, NonFiniteError, configured_layout
from atlas.rows import RowSubset
from atlas.store import open_run
from atlas.store.layout import write_layout


def reduce_store(run_url: str, layout_url: str, options: ReduceConfig) -> LayoutInfo:
    """Lay out the valid samples of ``options.layer`` (the store's only layer by default)
    and write their normalized and raw coordinates; skipped samples get NaN."""
    store = open_run(run_url)
    layer = store.layer(options.layer)
    valid = np.flatnonzero(layer["valid"][:])
    if len(valid) == 0:
        raise AtlasError(f"{run_url} has no usable samples to lay out")
    try:
        xy, raw, info = configured_layout(RowSubset(layer["acts"], valid), options)
    except NonFiniteError as err:
        sample = int(valid[err.index])
        raise NonFiniteError(
            f"activations of {layer['path'][sample]} (sample {sample}) contain NaN or infinity",
            sample,
        ) from None
    n = layer["acts"].shape[0]
    full_raw = np.full((n, 2), np.nan, np.float32)
    full_xy = np.full((n, 2), np.nan, np.float32)
    full_raw[valid] = raw
    full_xy[valid] = xy
    write_layout(
        layout_url,
        full_xy,
        full_raw,
        {
            "layer": layer.basename,
            "run": run_url,
            "run_identity": store.identity_hash,
            "reducer": {
                **info.__dict__,
                "clip": list(options.clip),
                "margin": options.margin,
                "n_epochs": options.n_epochs,
            },
        },
    )
    return info
