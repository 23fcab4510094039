"""The render stage: an icon for every occupied cell of a grid and their quality per
level (:mod:`atlas.icons`), the render store and the deep-zoom tiles
(:mod:`atlas.store.render`, :mod:`atlas.tiles`).

Outputs, under the output folder: ``icons/`` (the icon cache), ``render.zarr`` (per level
the icons, their keys, objectives and quality: the icon's objective over the best
exemplar's, i.e. how much more or less the icon drives its direction than the data does,
the same under strong random warps, the share of its area left at the initial grey, and
the slope of its power spectrum, beside the run's images' median slope)
and ``tiles/<level>.dzi`` pyramids.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from atlas.config import RenderConfig
from atlas.icons import level_icons, photo_spectrum_slope, render_icons
from atlas.models import LoadedModel
from atlas.store import open_run
from atlas.store.base import write_metrics
from atlas.store.grid import open_grid
from atlas.store.render import IconCache, create_render, open_render
from atlas.tiles import write_pyramid

# The per-level figures of LevelIcons the metrics report, by their names there.
MEDIANS = (
    "median_quality",
    "median_grey_share",
    "median_robust_quality",
    "median_spectrum_slope",
)


@dataclass(frozen=True)
class RenderSummary:
    icons: int  # cells with an icon, over all levels
    rendered: int  # icons rendered in this run (the rest came from the cache)
    seconds: float
    folder: str  # the output folder
    median_quality: dict[int, float | None]  # per level
    median_grey_share: dict[int, float | None]  # per level: icons' area left grey
    # per level: quality under the robust warps, and the icons' spectrum slope
    median_robust_quality: dict[int, float | None]
    median_spectrum_slope: dict[int, float | None]
    photo_spectrum_slope: float | None  # the run's images', cut to the icon size

    def _repr_png_(self) -> bytes:
        """In a notebook: the finest level's icons as a picture."""
        return open_render(self.folder).picture()._repr_png_()


def render_store(
    run_url: str,
    grid_url: str,
    out_dir: str,
    options: RenderConfig,
    *,
    scheduler=None,
    model: LoadedModel | None = None,
    metrics: str | Path | None = None,
) -> RenderSummary:
    """Render every occupied cell of the grid's levels (``options.levels``, default all)
    with the run's model (``model``: that model in memory, for a run extracted from one),
    and write the render store and tiles under ``out_dir``; with ``metrics``, a JSON of
    the icons' medians per level (:data:`MEDIANS`: quality, grey share, robust quality,
    spectrum slope) beside the run's images' median spectrum slope."""
    start = time.perf_counter()
    out = Path(out_dir)
    run, grid = open_run(run_url), open_grid(grid_url)
    layer = grid.layer
    whitening = grid.whitening() if options.whiten else None
    levels = options.levels or grid.levels
    cells = {size: grid.read_level(size).occupied() for size in levels}
    targets = np.concatenate([grid.read_level(size).mean[:][cells[size]] for size in levels])
    cache = IconCache(out / "icons")
    all_keys, rendered = render_icons(
        run, layer, targets, cache, options, whitening=whitening, scheduler=scheduler, model=model
    )
    store = create_render(out)
    tiles = out / "tiles"
    tiles.mkdir(exist_ok=True)
    acts = run.read_layer(layer).acts
    offset, medians = 0, {name: {} for name in MEDIANS}
    for size in levels:
        keys = all_keys[offset : offset + len(cells[size])]
        offset += len(cells[size])
        level = grid.read_level(size)
        measured = level_icons(
            cache,
            keys,
            cells[size],
            size * size,
            acts,
            level.exemplar[:],
            level.mean[:],
            layer,
            whitening,
            options,
        )
        for name, by_level in medians.items():
            by_level[size] = getattr(measured, name)
        store.write_level(size, measured.record(size))
        pyramid = tiles / str(size)
        write_pyramid(measured.icons, cells[size], size, pyramid, tile_size=options.tile_size)
    photo_slope = photo_spectrum_slope(run, options.icon_size)
    store.finish(
        {
            "levels": list(levels),
            "layer": layer,
            "grid": grid.url,
            "icon_size": options.icon_size,
            "settings": options.content_settings(),
            "photo_spectrum_slope": photo_slope,
        }
    )
    if metrics is not None:
        write_metrics(
            metrics,
            {**medians, "photo_spectrum_slope": photo_slope, "icons": len(all_keys)},
        )
    return RenderSummary(
        len(all_keys),
        rendered,
        time.perf_counter() - start,
        str(out),
        **medians,
        photo_spectrum_slope=photo_slope,
    )
