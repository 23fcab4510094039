"""Building all of a run's class atlases: the configured classes, pairs and, with a
second run store, the same classes under another checkpoint; rendering their cells and
writing ``classes.zarr`` (one group per atlas: ``class/<name>``, ``pair/<a>__<b>``,
``compare/<name>``) and ``report.json`` (sizes, strengths, pair rankings and, for the
demo, habitat shares)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import zarr

from atlas.classes import (
    ClassAtlas,
    EmptyClassAtlas,
    class_atlas,
    class_index,
    rank_pair,
)
from atlas.config import ModelSpec, package_version
from atlas.demo.shortcut import empty_scene_predictions, habitat_shares, surviving_attribution
from atlas.grid import cell_of
from atlas.grid import whitening as layer_whitening
from atlas.models import load_model
from atlas.render import load_icon, render_icons
from atlas.store import open_run
from atlas.store.maps import open_grid, read_layout


def classes_store(
    run_url: str,
    layout_url: str,
    grid_url: str,
    out_dir: str,
    options,
    *,
    reduce_options,
    render_options,
    compare_run: str | None = None,
    world: str | None = None,
    scheduler: str | None = None,
) -> dict:
    """Build every configured class atlas and pair comparison, render their cells, and
    write ``classes.zarr`` and ``report.json`` under ``out_dir``. With ``compare_run``
    (a store extracted from another checkpoint), the same class atlases for that model
    too; with ``world`` (the demo's data folder), each atlas's habitat share."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    grid = open_grid(grid_url)
    layer_name = grid.attrs["layer"]
    runs = {"model": open_run(run_url)}
    if compare_run:
        runs["compare"] = open_run(compare_run)
    names = runs["model"].meta["class_names"]
    wanted = options.classes or list(names)
    pairs = [tuple(p) for p in options.pairs]
    global_xy = read_layout(layout_url)[0] if options.layout == "global" else None

    atlases: dict[str, tuple[str, ClassAtlas]] = {}  # group name -> (run key, atlas)
    report: dict = {
        "version": package_version(),
        "layer": layer_name,
        "classes": {},
        "pairs": {},
        "compare": {},
    }
    for run_key, run in runs.items():
        layer = run.layer(layer_name)
        arrays = (
            layer["acts"],
            layer["attribution"],
            layer["attribution_class"],
            layer["valid"][:],
        )
        chosen = wanted if run_key == "model" else (options.compare_classes or wanted)
        for name in chosen:
            group = f"{'class' if run_key == 'model' else 'compare'}/{name}"
            try:
                atlas = class_atlas(
                    *arrays,
                    [class_index(name, names)],
                    size=options.size,
                    mode=options.mode,
                    top_n=options.top_n,
                    min_count=options.min_count,
                    exemplars=options.exemplars,
                    layout_xy=global_xy if run_key == "model" else None,
                    reduce_options=reduce_options,
                )
            except EmptyClassAtlas as err:
                report["classes" if run_key == "model" else "compare"][name] = {
                    "members": 0,
                    "note": str(err),
                }
                continue
            atlases[group] = (run_key, atlas)
        if run_key == "model":
            for a, b in pairs:
                pair = class_atlas(
                    *arrays,
                    [class_index(a, names), class_index(b, names)],
                    size=options.size,
                    mode=options.mode,
                    top_n=options.top_n,
                    min_count=options.min_count,
                    exemplars=options.exemplars,
                    layout_xy=global_xy,
                    reduce_options=reduce_options,
                )
                atlases[f"pair/{a}__{b}"] = ("model", pair)

    icons: dict[str, list[str]] = {}
    for run_key, run in runs.items():
        chosen = [g for g, (k, _) in atlases.items() if k == run_key]
        if not chosen:
            continue
        layer = run.layer(layer_name)
        white = (
            grid.whitening()
            if run_key == "model"
            else layer_whitening(layer["acts"], valid=layer["valid"][:])
        )
        targets = np.concatenate(
            [atlases[g][1].level.mean[atlases[g][1].level.occupied()] for g in chosen]
        )
        keys, _ = render_icons(
            run.url,
            layer_name,
            targets,
            out / "icons",
            render_options,
            whitening=white if render_options.whiten else None,
            scheduler=scheduler,
        )
        start = 0
        for g in chosen:
            count = len(atlases[g][1].level.occupied())
            icons[g] = keys[start : start + count]
            start += count

    models = {}
    if world:
        for run_key, run in runs.items():
            identity = run.meta["identity"]
            models[run_key] = load_model(
                ModelSpec.model_validate(identity["model"]), seed=identity["extract"]["seed"]
            )
            report.setdefault("empty_scenes", {})[run_key] = empty_scene_predictions(
                models[run_key], world
            )
    store = zarr.open_group(str(out / "classes.zarr"), mode="w", zarr_format=3)
    for group_name, (run_key, atlas) in atlases.items():
        run = runs[run_key]
        layer = run.layer(layer_name)
        geometry = run.geometry(layer_name)
        positions = layer["pos"][:]
        summary = _write_atlas(
            store,
            group_name,
            atlas,
            icons[group_name],
            out / "icons",
            geometry,
            positions,
        )
        summary["classes"] = [names[c] for c in atlas.classes]
        if world:
            paths = layer["path"].get_orthogonal_selection(atlas.members)
            cells = cell_of(atlas.xy, atlas.size, atlas.size)
            summary["habitat"] = {}
            for k, name in enumerate(summary["classes"]):
                surviving = surviving_attribution(
                    models[run_key],
                    geometry,
                    paths,
                    positions[atlas.members],
                    atlas.member_strength[:, k],
                    atlas.classes[k],
                    world,
                )
                summary["habitat"][name] = habitat_shares(
                    atlas.member_strength[:, k], surviving, cells, atlas.size**2
                )
        if group_name.startswith("pair/"):
            ranked, difference = rank_pair(atlas)
            summary["ranking"] = {
                "cells": ranked.tolist(),
                "difference": difference.round(6).tolist(),
            }
            report["pairs"][group_name[5:]] = summary
        else:
            report["class" + ("es" if run_key == "model" else "")] if False else None
            report["classes" if run_key == "model" else "compare"][group_name.split("/", 1)[1]] = (
                summary
            )
        store[group_name].attrs.update(summary)
    store.attrs["atlas"] = {
        "version": package_version(),
        "layer": layer_name,
        "run": run_url,
        "compare_run": compare_run,
        "grid": grid_url,
        "icon_size": render_options.icon_size,
        "size": options.size,
        "layout": options.layout,
        "mode": options.mode,
    }
    (out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    return report


def _write_atlas(
    store, group_name, atlas: ClassAtlas, keys, icons_dir, geometry, positions
) -> dict:
    """One atlas's arrays; returns its summary for the report."""
    group = store.create_group(group_name)
    occupied = atlas.level.occupied()
    cells = atlas.size * atlas.size
    first = load_icon(icons_dir / f"{keys[0]}.png")[0] if keys else np.zeros((1, 1, 3), np.uint8)
    icon = np.zeros((cells, *first.shape), np.uint8)
    objective = np.full(cells, np.nan, np.float32)
    icon_key = np.full(cells, "", dtype=object)
    for cell, key in zip(occupied, keys, strict=True):
        icon[cell], objective[cell] = load_icon(icons_dir / f"{key}.png")
        icon_key[cell] = key
    exemplar = atlas.level.exemplar
    box = np.zeros((*exemplar.shape, 4), np.int32)
    for (cell, slot), sample in np.ndenumerate(exemplar):
        if sample >= 0:
            box[cell, slot] = geometry.crop_box(*positions[sample])
    arrays = {
        "count": (atlas.level.count, ("cell",)),
        "strength": (atlas.strength, ("cell", "class")),
        "exemplar": (exemplar, ("cell", "e")),
        "exemplar_box": (box, ("cell", "e", "box")),
        "icon": (icon, ("cell", "y", "x", "rgb")),
        "icon_key": (icon_key.astype(str), ("cell",)),
        "objective": (objective, ("cell",)),
        "member": (atlas.members, ("member",)),
        "member_xy": (atlas.xy, ("member", "axis")),
        "member_strength": (atlas.member_strength, ("member", "class")),
    }
    for name, (values, dims) in arrays.items():
        dtype = str if name == "icon_key" else values.dtype
        array = group.create_array(
            name,
            shape=values.shape,
            dtype=dtype,
            dimension_names=dims,
            chunks=values.shape if values.size else None,
        )
        array[:] = values
    return {
        "size": atlas.size,
        "members": len(atlas.members),
        "cells": len(occupied),
        "strength": atlas.strength.sum(axis=0).round(6).tolist(),
    }
