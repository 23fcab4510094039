"""The aligned atlases' page (``aligned.html``): the run's atlas beside the same images'
atlas in another checkpoint or layer, laid out in step with it (:mod:`atlas.align`)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path, PurePath

import numpy as np

from atlas.store import RunStore
from atlas.store.grid import GridStore
from atlas.viewer import data
from atlas.viewer.site import copy_tiles, level_entry, write_json


def write_aligned_page(
    out: Path,
    aligned: data.AlignedAtlas,
    run: RunStore,
    grid: GridStore,
    shown: Sequence[int],
    class_names: list[str],
) -> str:
    """aligned.html's data: both maps' tiles at the aligned levels that the run's atlas
    shows too (``shown``; its own tiles on the left), each level's cells on both sides,
    and how aligned the maps are; returns the page's path in the site."""
    alignment = data.alignment(aligned)
    copy_tiles(aligned.renders.folder / "tiles", out / "aligned" / "tiles")
    levels = []
    for size in (level for level in aligned.renders.levels if level in shown):
        for name, side in (("left", grid), ("right", aligned.grid)):
            write_json(out / "aligned" / name / f"{size}.json", cell_summaries(side, size))
        right = level_entry(out, size, 0, folder="aligned/tiles")
        left = level_entry(out, size, 0)
        levels.append({"size": size, "left": left["tiles"], "right": right["tiles"]})
    page = {
        "title": f"Aligned atlases: {side_name(run)} and {side_name(aligned.run)}",
        "samples": alignment.samples,
        "within_one_cell": alignment.within_one_cell,
        "neighbours_aligned": alignment.neighbours_aligned,
        "neighbours_run_layout": alignment.neighbours_run_layout,
        "neighbours_k": alignment.neighbours_k,
        "classes": list(class_names),
        "left": {"name": side_name(run), "layer": alignment.left_layer},
        "right": {"name": side_name(aligned.run), "layer": alignment.right_layer},
        "levels": levels,
    }
    write_json(out / "aligned.json", page)
    return "aligned.html"


def side_name(run: RunStore) -> str:
    """A checkpoint as the pages name it: its weights file with the folder it lies in
    (never a path of the machine that built the site), else the architecture."""
    spec = run.model_spec()
    if not spec.weights:
        return str(spec.arch)
    path = PurePath(str(spec.weights))
    return f"{path.parent.name}/{path.name}" if path.parent.name else path.name


def cell_summaries(grid: GridStore, size: int) -> list:
    """[cell, activations, top class, its share] of each occupied cell of a level."""
    level = data.level_summary(grid, size)
    return [
        [int(c), int(level.count[c]), int(level.top_class[c]), round(float(level.share[c]), 4)]
        for c in np.flatnonzero(level.count > 0)
    ]
