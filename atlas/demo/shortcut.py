"""Measuring the demo's shortcut: how much of a class atlas is about the habitat.

The world generator can redraw any image of the data set without its object: the same
habitat texture, from the same random stream, with nothing on it. For a sample of a class
atlas we recompute, on that bare habitat, the attribution of the same position to the
same class (activation times logit gradient, as extraction does). The part of the
sample's attribution that survives the object's removal, clipped to [0, 1], is what its
habitat carries. A class atlas's habitat share is the attribution-weighted mean of that
over its samples; a cell is habitat-like when most of its attribution survives.

:func:`shortcut_measures` is the demo's own stage (``atlas demo-shortcut``): it reads the
class atlases the generic classes stage wrote and the generated world, and writes the
measures as class measures (:mod:`atlas.store.classes`) that the site shows beside them;
given several checkpoints, it adds their side-by-side table (:mod:`atlas.demo.checkpoints`).
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch

from atlas.classes import attribution_to, class_index, class_members
from atlas.demo.checkpoints import Checkpoint, checkpoint_table, compare_checkpoints
from atlas.demo.scenes import Scenes
from atlas.demo.world import HABITATS, render_sample
from atlas.extract import batch_samples
from atlas.geometry import LayerGeometry
from atlas.grid import cell_of
from atlas.models import LoadedModel
from atlas.store import RunStore, open_run
from atlas.store.base import write_metrics
from atlas.store.classes import KINDS, open_classes, write_class_measures

NOTE = (
    "Habitat share: the part of the class's attribution in these activations that survives "
    "when the object is removed from the image (measured on the demo world, which can redraw "
    "any image without its object)."
)


def surviving_attribution(
    model: LoadedModel,
    geometry: LayerGeometry,
    paths,
    positions: np.ndarray,
    original: np.ndarray,
    klass: int,
    world: str | Path | Scenes,
    *,
    batch: int = 128,
) -> np.ndarray:
    """Per sample, the fraction (in [0, 1]) of its attribution to ``klass`` that remains
    at the same position once its image's object is removed (NaN for images not in the
    world, or samples whose attribution was not positive). ``world``: its folder, or its
    :class:`Scenes` (which keeps the bare scenes it drew for the next call)."""
    scenes = world if isinstance(world, Scenes) else Scenes(world)
    out = np.full(len(paths), np.nan, np.float32)
    rows, images = [], []
    for i, path in enumerate(paths):
        sample = scenes.sample(path)
        if sample is None or original[i] <= 0:
            continue
        rows.append(i)
        images.append(scenes.bare(sample))
    for start in range(0, len(rows), batch):
        chunk = rows[start : start + batch]
        pixels = torch.from_numpy(np.stack(images[start : start + batch])).permute(0, 3, 1, 2)
        crops = torch.stack([model.preprocessing.crop(p) for p in pixels]).to(model.device)
        inputs = model.preprocessing.normalize(crops.float() / 255)
        single = dataclasses.replace(geometry, samples_per_image=1)
        samples, _, _ = batch_samples(
            model,
            inputs,
            [single],
            {geometry.name: positions[chunk][:, None, :]},
            slots=1,
            topk=1,
            targets=torch.full((len(chunk), 1), klass),  # one backward pass, not one per class
        )
        bare = samples[geometry.name].attribution[:, 0]
        out[chunk] = np.clip(bare / original[chunk], 0, 1)
    return out


def habitat_shares(
    strength: np.ndarray, surviving: np.ndarray, cells: np.ndarray, n_cells: int
) -> dict[str, float]:
    """For one class atlas: ``sample_share``, the attribution-weighted mean of the
    surviving fractions; ``cell_share``, the part of the positive attribution in
    habitat-like cells (cells where more than half of it survives)."""
    weight, kept = _weighted(strength, surviving)
    total = weight.sum()
    kept_cell = np.bincount(cells, weights=kept, minlength=n_cells)
    all_cell = np.bincount(cells, weights=weight, minlength=n_cells)
    habitat_cells = kept_cell > 0.5 * all_cell
    return {
        "sample_share": float(kept.sum() / total) if total > 0 else 0.0,
        "cell_share": float(all_cell[habitat_cells].sum() / total) if total > 0 else 0.0,
    }


def sample_share(strength: np.ndarray, surviving: np.ndarray) -> float:
    """The attribution-weighted mean of the surviving fractions (``habitat_shares``'s
    ``sample_share``, which needs no layout)."""
    weight, kept = _weighted(strength, surviving)
    return float(kept.sum() / weight.sum()) if weight.sum() > 0 else 0.0


def _weighted(strength: np.ndarray, surviving: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    # In float64, like the bincounts: a float32 total would let a share exceed 1.
    weight = np.where(np.isfinite(surviving), np.maximum(strength, 0), 0).astype(np.float64)
    return weight, np.nan_to_num(surviving) * weight


def winner_habitat_share(
    model: LoadedModel, run: RunStore, layer_name: str, class_name: str, scenes: Scenes
) -> float:
    """The habitat share of the samples whose attribution goes most to ``class_name``
    (its class atlas's members in the winner mode), for a run that has no class atlas."""
    layer = run.read_layer(layer_name)
    klass = class_index(class_name, run.class_names)
    arrays = layer.attribution, layer.attribution_class
    members = class_members(*arrays, layer.valid[:], klass)
    strength = attribution_to(*arrays, members, klass)
    paths = [run.locate(n) for n in layer.path.get_orthogonal_selection(members)]
    positions = layer.pos[:][members]
    geometry = run.geometry(layer_name)
    surviving = surviving_attribution(model, geometry, paths, positions, strength, klass, scenes)
    return sample_share(strength, surviving)


def empty_scene_predictions(
    model: LoadedModel, world: str | Path, *, per_habitat: int = 20, top: int = 3
) -> dict:
    """What the model sees in each habitat with nothing on it: its mean class
    probabilities over ``per_habitat`` bare scenes, the ``top`` classes per habitat."""
    from atlas.demo.world import HABITATS

    size = json.loads((Path(world) / "world.json").read_text())["image_size"]
    out = {}
    for h, habitat in enumerate(HABITATS):
        scenes = [
            render_sample(None, habitat, size, np.random.default_rng([h, i]))[0]
            for i in range(per_habitat)
        ]
        pixels = torch.from_numpy(np.stack([np.asarray(s) for s in scenes])).permute(0, 3, 1, 2)
        crops = torch.stack([model.preprocessing.crop(p) for p in pixels]).to(model.device)
        with torch.no_grad():
            probs = torch.softmax(
                model.module(model.preprocessing.normalize(crops.float() / 255)), dim=1
            ).mean(0)
        order = torch.argsort(probs, descending=True)[:top]
        out[habitat] = [[model.class_names[i], round(float(probs[i]), 3)] for i in order]
    return out


def shortcut_measures(
    classes_dir: str | Path,
    world: str | Path,
    out: str | Path,
    *,
    checkpoints: Mapping[str, Mapping[str, str | Path]] | None = None,
    metrics: str | Path | None = None,
) -> dict:
    """The demo-shortcut stage: the habitat share of every class atlas (and of each class
    of a pair atlas) in ``classes_dir``, what each model reads in empty scenes and, given
    ``checkpoints`` (name -> the fields of a :class:`atlas.demo.checkpoints.Checkpoint`:
    ``store``, ``train_metrics``, ``shape_bias``), their side-by-side comparison with the
    habitat shares of the compared classes; written to ``out`` as class measures (and,
    with ``metrics``, the habitat shares and the comparison for DVC); returns them."""
    checkpoints = [Checkpoint(name, **paths) for name, paths in (checkpoints or {}).items()]
    store = open_classes(classes_dir)
    scenes = Scenes(world)
    layer_name = store.layer
    runs = {
        kind: open_run(store.run_url(kind))
        for kind in KINDS
        if store.names(kind) and store.run_url(kind)
    }
    models = {url: run.load_model() for url, run in {r.url: r for r in runs.values()}.items()}
    atlases: dict[str, dict[str, float]] = {}
    for kind, run in runs.items():
        model = models[run.url]
        layer, geometry = run.read_layer(layer_name), run.geometry(layer_name)
        positions = layer.pos[:]
        for name in store.names(kind):
            atlas = store.read_atlas(kind, name)
            members, strength = atlas.member[:], atlas.member_strength[:]
            size = atlas.size
            cells = cell_of(atlas.member_xy[:], size, size)
            paths = [run.locate(n) for n in layer.path.get_orthogonal_selection(members)]
            measures = {}
            for k, class_name in enumerate(atlas.classes):
                surviving = surviving_attribution(
                    model,
                    geometry,
                    paths,
                    positions[members],
                    strength[:, k],
                    run.class_names.index(class_name),
                    scenes,
                )
                shares = habitat_shares(strength[:, k], surviving, cells, size * size)
                suffix = "" if kind != "pair" else f" of {class_name}"
                measures[f"habitat share{suffix}"] = round(shares["sample_share"], 4)
                measures[f"habitat cell share{suffix}"] = round(shares["cell_share"], 4)
            atlases[f"{kind}/{name}"] = measures
    shown = [kind for kind in ("class", "compare") if kind in runs]
    empty = {kind: empty_scene_predictions(models[runs[kind].url], world) for kind in shown}
    header = ["habitat"] + [
        {"class": "this model's top classes", "compare": "the comparison model's"}[k] for k in shown
    ]
    rows = [
        [habitat] + [", ".join(f"{c} {p:.2f}" for c, p in empty[kind][habitat]) for kind in shown]
        for habitat in HABITATS
    ]
    measures = {
        "title": "Habitat share",
        "note": NOTE,
        "atlases": atlases,
        "tables": [
            {"title": "What the model sees in an empty scene", "header": header, "rows": rows}
        ],
        "empty_scenes": empty,
    }
    values = {
        "habitat_share": {
            group.replace("/", "_"): measured["habitat share"]
            for group, measured in atlases.items()
            if "habitat share" in measured
        }
    }
    if checkpoints:
        compared = store.names("compare") or store.names("class")
        known = {run.identity_hash: kind for kind, run in runs.items() if kind != "pair"}
        checkpoint_models, shares = {}, {}
        for checkpoint in checkpoints:
            if checkpoint.store is None:
                continue
            run = open_run(checkpoint.store)
            model = checkpoint_models[checkpoint.name] = run.load_model()
            # A run whose class atlases were measured above: the same members, the same share.
            kind = known.get(run.identity_hash)
            shares[checkpoint.name] = {
                name: atlases[f"{kind}/{name}"]["habitat share"]
                if f"{kind}/{name}" in atlases
                else round(winner_habitat_share(model, run, layer_name, name, scenes), 4)
                for name in compared
            }
        comparison = compare_checkpoints(checkpoints, checkpoint_models, scenes, shares)
        measures["tables"].append(checkpoint_table(comparison))
        measures["checkpoints"] = comparison.rows
        measures["object_area"] = comparison.object_area
        values["checkpoints"] = {
            name: {_key(measure): v for measure, v in row.items() if v is not None}
            for name, row in comparison.rows.items()
        }
    write_class_measures(out, measures)
    if metrics is not None:
        write_metrics(metrics, values)
    return measures


def _key(name: str) -> str:
    """A measure's name as a metrics key ("test-swapped accuracy" -> test_swapped_accuracy)."""
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")
