"""The shape-bias stage: a model's shape bias on a cue-conflict set
(:mod:`atlas.shape_bias`), written with example images for the model report
(:mod:`atlas.store.shape_bias`) and as metrics."""

from __future__ import annotations

import os
from pathlib import Path

from atlas.config import ModelSpec, ShapeBiasConfig
from atlas.data import open_pixels
from atlas.models import LoadedModel, load_model
from atlas.shape_bias import ShapeBias, read_cue_conflict, shape_bias
from atlas.store.base import write_metrics
from atlas.store.shape_bias import write_shape_bias


def shape_bias_report(
    model: ModelSpec | LoadedModel,
    cue_conflict: str | Path,
    out_dir: str | Path,
    options: ShapeBiasConfig,
    *,
    metrics: str | Path | None = None,
) -> ShapeBias:
    """The shape bias of the model (a spec, or a model in memory) on the images the
    cue-conflict list names (CSV: path, shape, texture). Writes ``out_dir/shape-bias.json``
    and ``options.examples`` example images per outcome and, with ``metrics``, the
    shape bias and counts as DVC metrics; returns the result."""
    loaded = model if isinstance(model, LoadedModel) else load_model(model)
    images = read_cue_conflict(cue_conflict)
    result = shape_bias(
        loaded,
        images,
        categories=options.categories,
        batch_size=options.batch_size,
        examples=options.examples,
    )
    # Paths as the list gives them: the output names no folder of the machine it ran on.
    root = Path(cue_conflict).parent
    values = result.as_dict()
    for decision in values["decisions"]:
        if "://" not in decision["path"]:
            decision["path"] = Path(os.path.relpath(decision["path"], root)).as_posix()
    examples = {
        outcome: [
            (
                {"shape": d.shape, "texture": d.texture, "predicted": d.predicted},
                loaded.preprocessing.crop(open_pixels(d.path)).permute(1, 2, 0).numpy(),
            )
            for d in (result.decisions[i] for i in indices)
        ]
        for outcome, indices in result.examples.items()
    }
    write_shape_bias(out_dir, values, examples)
    if metrics is not None:
        write_metrics(
            metrics, {"shape_bias": result.shape_bias, **result.counts, "excluded": result.excluded}
        )
    return result
