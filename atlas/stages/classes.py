"""The classes stage: a run's class atlases (:mod:`atlas.classes`) for the configured
classes and pairs, and, given a second run store, the same classes under another
checkpoint; their cells rendered (:mod:`atlas.icons`) and written with their report
(:mod:`atlas.store.classes`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from atlas.classes import ClassAtlas, EmptyClassAtlas, class_atlas, class_index, rank_pair
from atlas.config import ClassesConfig, ReduceConfig, RenderConfig
from atlas.grid import whitening as layer_whitening
from atlas.icons import render_icons
from atlas.store import RunStore, open_run
from atlas.store.classes import ClassAtlasRecord, create_classes
from atlas.store.grid import open_grid
from atlas.store.layout import read_layout
from atlas.store.render import IconCache
from atlas.version import package_version


def classes_store(
    run_url: str,
    layout_url: str,
    grid_url: str,
    out_dir: str,
    options: ClassesConfig,
    *,
    reduce_options: ReduceConfig,
    render_options: RenderConfig,
    compare_run: str | None = None,
    scheduler: str | None = None,
) -> dict:
    """Build every configured class atlas and pair comparison, render their cells, and
    write ``classes.zarr`` and ``report.json`` under ``out_dir``; returns the report. With
    ``compare_run`` (a store extracted from another checkpoint, on the same images), the
    class atlases of ``options.compare_classes`` for that model too."""
    out = Path(out_dir)
    grid = open_grid(grid_url)
    layer_name = grid.layer
    runs = {"class": open_run(run_url)}
    if compare_run and open_run(compare_run).identity_hash != runs["class"].identity_hash:
        runs["compare"] = open_run(compare_run)  # (a run compared with itself: nothing to do)
    names = runs["class"].class_names
    wanted = options.classes or list(names)
    global_xy = read_layout(layout_url).xy if options.layout == "global" else None
    report: dict = {
        "version": package_version(),
        "layer": layer_name,
        "classes": {},
        "pairs": {},
        "compare": {},
    }

    atlases: dict[tuple[str, str], ClassAtlas] = {}  # (kind, name) -> atlas
    for kind, run in runs.items():
        layer = run.read_layer(layer_name)
        arrays = (layer.acts, layer.attribution, layer.attribution_class)
        valid = layer.valid[:]
        chosen = wanted if kind == "class" else (options.compare_classes or wanted)
        section = "classes" if kind == "class" else "compare"
        for name in chosen:
            try:
                atlases[kind, name] = class_atlas(
                    *arrays,
                    valid,
                    [class_index(name, names)],
                    options,
                    layout_xy=global_xy if kind == "class" else None,
                    reduce_options=reduce_options,
                )
            except EmptyClassAtlas as err:
                report[section][name] = {"members": 0, "note": str(err)}
        if kind == "class":
            for a, b in options.pairs:
                atlases["pair", f"{a}__{b}"] = class_atlas(
                    *arrays,
                    valid,
                    [class_index(a, names), class_index(b, names)],
                    options,
                    layout_xy=global_xy,
                    reduce_options=reduce_options,
                )

    cache = IconCache(out / "icons")
    icons = _render(atlases, runs, grid, layer_name, cache, render_options, scheduler)
    store = create_classes(out)
    for (kind, name), atlas in atlases.items():
        summary = {
            "size": atlas.size,
            "members": len(atlas.members),
            "cells": len(atlas.level.occupied()),
            "strength": atlas.strength.sum(axis=0).round(6).tolist(),
            "classes": [names[c] for c in atlas.classes],
        }
        if kind == "pair":
            ranked, difference = rank_pair(atlas)
            summary["ranking"] = {
                "cells": ranked.tolist(),
                "difference": difference.round(6).tolist(),
            }
        report[{"class": "classes", "pair": "pairs", "compare": "compare"}[kind]][name] = summary
        run = runs["compare" if kind == "compare" else "class"]
        record = _atlas_record(
            atlas, icons[kind, name], cache, run, layer_name, render_options, summary
        )
        store.write_atlas(kind, name, record)
    store.finish_with_report(
        {
            "layer": layer_name,
            "run": run_url,
            "compare_run": compare_run,
            "grid": grid_url,
            "icon_size": render_options.icon_size,
            "size": options.size,
            "layout": options.layout,
            "mode": options.mode,
        },
        report,
    )
    return report


def _render(atlases, runs, grid, layer_name, cache, render_options, scheduler) -> dict:
    """Icon keys of every atlas's occupied cells, rendered with its own run's model (and
    that run's whitening: the grid's for the main run)."""
    icons: dict[tuple[str, str], list[str]] = {}
    for run_key, run in runs.items():
        chosen = [k for k in atlases if (k[0] == "compare") == (run_key == "compare")]
        if not chosen:
            continue
        layer = run.read_layer(layer_name)
        white = (
            grid.whitening()
            if run_key == "class"
            else layer_whitening(layer.acts, valid=layer.valid[:])
        )
        targets = np.concatenate(
            [atlases[k].level.mean[atlases[k].level.occupied()] for k in chosen]
        )
        keys, _ = render_icons(
            run,
            layer_name,
            targets,
            cache,
            render_options,
            whitening=white if render_options.whiten else None,
            scheduler=scheduler,
        )
        start = 0
        for k in chosen:
            count = len(atlases[k].level.occupied())
            icons[k] = keys[start : start + count]
            start += count
    return icons


def _atlas_record(
    atlas: ClassAtlas, keys, cache, run: RunStore, layer_name, render_options, summary
) -> ClassAtlasRecord:
    """One atlas, as the class-atlas store holds it."""
    occupied = atlas.level.occupied()
    cells = atlas.size * atlas.size
    icon, objective = cache.gather(keys, occupied, cells, render_options.icon_size)
    icon_key = np.full(cells, "", dtype=object)
    icon_key[occupied] = keys
    exemplar = atlas.level.exemplar
    box = run.geometry(layer_name).crop_boxes(exemplar, run.read_layer(layer_name).pos[:])
    return ClassAtlasRecord(
        count=atlas.level.count,
        strength=atlas.strength,
        exemplar=exemplar,
        exemplar_box=box,
        icon=icon,
        icon_key=icon_key.astype(str),
        objective=objective,
        member=atlas.members,
        member_xy=atlas.xy,
        member_strength=atlas.member_strength,
        summary=summary,
    )
