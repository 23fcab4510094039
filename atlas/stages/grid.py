"""The grid stage: a laid-out layer averaged over cells at several levels
(:mod:`atlas.grid`), written as a grid store (:mod:`atlas.store.grid`)."""

from __future__ import annotations

from dataclasses import replace

from atlas.config import GridConfig
from atlas.errors import AtlasError
from atlas.grid import grid_levels, whitening
from atlas.store import open_run
from atlas.store.grid import GridLevel, write_grid
from atlas.store.layout import read_layout


def grid_store(
    run_url: str, layout_url: str, grid_url: str, options: GridConfig
) -> dict[int, GridLevel]:
    """Grid the layout's layer of the run store: per level and cell the count, mean,
    top classes and labels, exemplars (with the input box each one's activation sees);
    and the layer's whitening matrix. The levels are ``options.levels``, or those an
    aligned layout (:mod:`atlas.stages.align`) names."""
    store = open_run(run_url)
    layout = read_layout(layout_url)
    if layout.run_identity != store.identity_hash:
        raise AtlasError(
            f"{layout_url} was made from another run than {run_url}: run `atlas reduce` again"
        )
    layer = store.read_layer(layout.layer)
    geometry = store.geometry(layout.layer)
    class_names = store.class_names
    valid = layer.valid[:]
    if layout.levels is not None:  # an aligned layout names the levels it is compared at
        options = options.updated(levels=layout.levels)
    levels = grid_levels(
        layer.acts,
        layout.xy,
        options,
        valid=valid,
        attribution=layer.attribution,
        attribution_class=layer.attribution_class,
        labels=layer.label[:],
        num_classes=len(class_names),
    )
    positions = layer.pos[:]
    levels = {
        size: replace(level, exemplar_box=geometry.crop_boxes(level.exemplar, positions))
        for size, level in levels.items()
    }
    attrs = {
        "layer": layout.layer,
        "run": run_url,
        "run_identity": store.identity_hash,
        "layout": layout_url,
        "class_names": class_names,
        "min_count": options.min_count,
        "input_size": geometry.input_size,
    }
    write_grid(grid_url, levels, whitening(layer.acts, valid=valid), attrs)
    return levels
