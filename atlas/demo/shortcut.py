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
measures as class measures (:mod:`atlas.store.classes`) that the site shows beside them.
"""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import numpy as np
import torch

from atlas.demo.world import CLASS_NAMES, HABITATS, SPLITS, read_manifest, render_sample
from atlas.extract import batch_samples
from atlas.grid import cell_of
from atlas.models import LoadedModel
from atlas.store import LayerGeometry, open_run
from atlas.store.base import write_metrics
from atlas.store.classes import KINDS, open_classes, write_class_measures

NOTE = (
    "Habitat share: the part of the class's attribution in these activations that survives "
    "when the object is removed from the image (measured on the demo world, which can redraw "
    "any image without its object)."
)

INDEX = re.compile(r"(\d+)\.png$")


def surviving_attribution(
    model: LoadedModel,
    geometry: LayerGeometry,
    paths,
    positions: np.ndarray,
    original: np.ndarray,
    klass: int,
    world: str | Path,
    *,
    batch: int = 128,
) -> np.ndarray:
    """Per sample, the fraction (in [0, 1]) of its attribution to ``klass`` that remains
    at the same position once its image's object is removed (NaN for images not in the
    world, or samples whose attribution was not positive)."""
    root = Path(world).resolve()
    meta = json.loads((root / "world.json").read_text())
    habitats = {
        str((root / s.path).resolve()): (s.split, s.label, s.habitat) for s in read_manifest(root)
    }
    out = np.full(len(paths), np.nan, np.float32)
    rows, images = [], []
    for i, path in enumerate(paths):
        found = habitats.get(str(Path(str(path)).resolve()))
        match = INDEX.search(str(path))
        if found is None or match is None or original[i] <= 0:
            continue
        split, label, habitat = found
        rng = np.random.default_rng(
            [meta["seed"], SPLITS.index(split), CLASS_NAMES.index(label), int(match.group(1))]
        )
        bare, _ = render_sample(None, habitat, meta["image_size"], rng)
        rows.append(i)
        images.append(np.asarray(bare))
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
            slots=model.num_classes,
            topk=1,
        )
        bare = samples[geometry.name]["attribution"][:, klass]
        out[chunk] = np.clip(bare / original[chunk], 0, 1)
    return out


def habitat_shares(
    strength: np.ndarray, surviving: np.ndarray, cells: np.ndarray, n_cells: int
) -> dict[str, float]:
    """For one class atlas: ``sample_share``, the attribution-weighted mean of the
    surviving fractions; ``cell_share``, the part of the positive attribution in
    habitat-like cells (cells where more than half of it survives)."""
    # In float64, like the bincounts: a float32 total would let a share exceed 1.
    weight = np.where(np.isfinite(surviving), np.maximum(strength, 0), 0).astype(np.float64)
    kept = np.nan_to_num(surviving) * weight
    total = weight.sum()
    kept_cell = np.bincount(cells, weights=kept, minlength=n_cells)
    all_cell = np.bincount(cells, weights=weight, minlength=n_cells)
    habitat_cells = kept_cell > 0.5 * all_cell
    return {
        "sample_share": float(kept.sum() / total) if total > 0 else 0.0,
        "cell_share": float(all_cell[habitat_cells].sum() / total) if total > 0 else 0.0,
    }


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
    metrics: str | Path | None = None,
) -> dict:
    """The demo-shortcut stage: the habitat share of every class atlas (and of each class
    of a pair atlas) in ``classes_dir``, and what each model reads in empty scenes, written
    to ``out`` as class measures (and, with ``metrics``, the class atlases' habitat shares
    for DVC); returns them."""
    store = open_classes(classes_dir)
    runs = {
        kind: open_run(store.run_url(kind))
        for kind in KINDS
        if store.names(kind) and store.run_url(kind)
    }
    models = {url: run.load_model() for url, run in {r.url: r for r in runs.values()}.items()}
    atlases: dict[str, dict[str, float]] = {}
    for kind, run in runs.items():
        model = models[run.url]
        layer_name = store.attrs["layer"]
        layer, geometry = run.layer(layer_name), run.geometry(layer_name)
        positions = layer["pos"][:]
        for name in store.names(kind):
            atlas = store.atlas(kind, name)
            members, strength = atlas["member"][:], atlas["member_strength"][:]
            size = int(atlas.attrs["size"])
            cells = cell_of(atlas["member_xy"][:], size, size)
            paths = [run.locate(n) for n in layer["path"].get_orthogonal_selection(members)]
            measures = {}
            for k, class_name in enumerate(atlas.attrs["classes"]):
                surviving = surviving_attribution(
                    model,
                    geometry,
                    paths,
                    positions[members],
                    strength[:, k],
                    run.class_names.index(class_name),
                    world,
                )
                shares = habitat_shares(strength[:, k], surviving, cells, size * size)
                suffix = "" if kind != "pair" else f" of {class_name}"
                measures[f"habitat share{suffix}"] = round(shares["sample_share"], 4)
                measures[f"habitat cell share{suffix}"] = round(shares["cell_share"], 4)
            atlases[f"{kind}/{name}"] = measures
    shown = [kind for kind in ("class", "compare") if kind in runs]
    scenes = {kind: empty_scene_predictions(models[runs[kind].url], world) for kind in shown}
    header = ["habitat"] + [
        {"class": "this model's top classes", "compare": "the comparison model's"}[k] for k in shown
    ]
    rows = [
        [habitat] + [", ".join(f"{c} {p:.2f}" for c, p in scenes[kind][habitat]) for kind in shown]
        for habitat in HABITATS
    ]
    measures = {
        "title": "Habitat share",
        "note": NOTE,
        "atlases": atlases,
        "tables": [
            {"title": "What the model sees in an empty scene", "header": header, "rows": rows}
        ],
        "empty_scenes": scenes,
    }
    write_class_measures(out, measures)
    if metrics is not None:
        write_metrics(
            metrics,
            {
                "habitat_share": {
                    group.replace("/", "_"): values["habitat share"]
                    for group, values in atlases.items()
                    if "habitat share" in values
                }
            },
        )
    return measures
