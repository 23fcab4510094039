"""The atlas page's data (``index.html``): ``atlas.json`` and, per level, its tiles, its
cells in blocks, its density and labelled regions, and the cells that push each class."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from atlas.store import RunStore
from atlas.store.grid import GridStore
from atlas.store.render import IconCache, RenderStore
from atlas.version import package_version
from atlas.viewer import data
from atlas.viewer.labels import region_labels
from atlas.viewer.site import BLOCK, Crops, copy_tiles, level_entry, write_blocks, write_json

EXEMPLARS = 4  # exemplars shown per cell


def write_levels(
    out: Path,
    grid: GridStore,
    renders: RenderStore,
    crops: Crops,
    links: dict[str, str],
    class_names: list[str],
) -> list[dict]:
    """Every rendered level's tiles and files; returns their entries of ``atlas.json``."""
    copy_tiles(renders.folder / "tiles", out / "tiles")
    levels = []
    for size in renders.levels:
        level = data.atlas_level(grid, renders, size, EXEMPLARS)
        write_level(out, size, level, renders.icons, crops, links, class_names)
        levels.append(level_entry(out, size, int((level.count > 0).sum())))
    return levels


def write_level(
    out: Path,
    size: int,
    level: data.AtlasLevel,
    cache: IconCache,
    crops: Crops,
    links: dict[str, str],
    class_names: list[str],
) -> None:
    """One level's files: ``cells/<size>/``, ``density/<size>.json``,
    ``labels/<size>.json`` and ``classes/<size>/<class>.json``, with the icons and crops
    its cells show."""
    count, top_class, share = level.count, level.top_class, level.top_class_share
    (out / "icons").mkdir(exist_ok=True)

    def entry(cell: int) -> dict:
        key = str(level.icon_key[cell])
        if key and not (out / "icons" / f"{key}.png").exists():
            shutil.copy(cache.path(key), out / "icons" / f"{key}.png")
        examples = []
        for sample, box in zip(level.exemplar[cell], level.exemplar_box[cell], strict=True):
            if sample < 0:
                continue
            link = links.get(crops.name(sample))  # None: no report on this image
            examples.append(
                {"crop": crops(int(sample), box), "report": link, "path": crops.name(sample)}
                | crops.credit(sample)
            )
        quality = level.quality[cell]
        return {
            "cell": int(cell),
            "n": int(count[cell]),
            "classes": [
                [int(c), round(float(s), 4)]
                for c, s in zip(top_class[cell], share[cell], strict=True)
                if c >= 0
            ],
            "labels": [
                [int(c), int(n)]
                for c, n in zip(level.top_label[cell], level.top_label_count[cell], strict=True)
                if c >= 0
            ],
            "icon": f"icons/{key}.png" if key else None,
            "quality": None if not np.isfinite(quality) else round(float(quality), 3),
            "exemplars": examples,
        }

    occupied = np.flatnonzero(count > 0)
    write_blocks(out / "cells" / str(size), size, (entry(cell) for cell in occupied))
    # The map's layers: each cell's count (density) and the labelled regions.
    write_json(out / "density" / f"{size}.json", [int(n) for n in count])
    write_json(out / "labels" / f"{size}.json", region_labels(top_class[:, 0], count, size))
    by_class: dict[int, list] = {}
    for cell in occupied:
        for c, s in zip(top_class[cell], share[cell], strict=True):
            if c >= 0:
                by_class.setdefault(int(c), []).append([int(cell), round(float(s), 4)])
    folder = out / "classes" / str(size)
    folder.mkdir(parents=True)
    for c in range(len(class_names)):
        write_json(folder / f"{c}.json", sorted(by_class.get(c, []), key=lambda e: -e[1]))


def write_atlas(
    out: Path,
    *,
    title: str,
    run: RunStore,
    grid: GridStore,
    renders: RenderStore,
    class_names: list[str],
    levels: list[dict],
    pages: dict[str, str],
) -> None:
    """``atlas.json``: what the atlas page shows first, its levels and the other pages."""
    atlas = {
        "title": title,
        "version": package_version(),
        "model": run.model_spec().arch,
        "layer": grid.layer,
        "samples": data.valid_samples(run, grid.layer),
        "classes": class_names,
        "icon_size": renders.icon_size,
        "block": BLOCK,
        "levels": levels,
        "pages": pages,
    }
    write_json(out / "atlas.json", atlas)
