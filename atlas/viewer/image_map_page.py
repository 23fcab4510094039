"""The image map's page (``images.html``): whole images laid out by their pooled vectors,
one thumbnail a cell (:mod:`atlas.image_map`)."""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from pathlib import Path

from atlas.credits import Credit, credit_entry
from atlas.store import RunStore
from atlas.store.image_map import ImageMapStore
from atlas.viewer import data
from atlas.viewer.site import BLOCK, copy_tiles, level_entry, write_blocks, write_json


def write_image_map_page(
    out: Path,
    image_map: ImageMapStore,
    run: RunStore,
    links: dict[str, str],
    title: str,
    credits: Mapping[str, Credit] | None = None,
) -> str:
    """images.html's data: each level's thumbnail tiles, and per cell the image shown
    (its name, label, predicted class, thumbnail and report link) in blocks of cells;
    returns the page's path in the site."""
    folder = out / "image-map"
    copy_tiles(image_map.tiles, folder / "tiles")
    (folder / "thumbs").mkdir()
    layer, images = data.image_map_facts(image_map)
    levels = []
    for size in image_map.levels:
        level = data.image_map_level(image_map, run, size)
        entries = []
        for cell, i, name, label, guess in zip(
            level.cells, level.images, level.names, level.labels, level.predicted, strict=True
        ):
            thumb = f"image-map/thumbs/{int(i)}.png"
            if not (out / thumb).exists() and image_map.thumb(int(i)).exists():
                shutil.copy(image_map.thumb(int(i)), out / thumb)
            entries.append(
                {
                    "cell": int(cell),
                    "path": str(name),
                    "label": int(label),
                    "predicted": int(guess),
                    "n": int(level.count[cell]),
                    "thumb": thumb,
                    "report": links.get(str(name)),
                }
                | credit_entry(credits, name)
            )
        write_blocks(folder / "cells" / str(size), size, entries)
        entry = level_entry(out, size, len(level.cells), folder="image-map/tiles")
        levels.append({"size": size, "tiles": entry["tiles"]})
    page = {
        "title": f"Image map: {title}",
        "images": images,
        "model": run.model_spec().arch,
        "layer": layer,
        "classes": run.class_names,
        "block": BLOCK,
        "levels": levels,
    }
    write_json(folder / "map.json", page)
    return "images.html"
