"""The demo's checkpoints side by side: does a change of training (a world without the
shortcut, CutMix) change what the model looks at?

For each checkpoint, from what the pipeline wrote about it: its accuracy on the test and
the swapped-habitat split (``atlas train``'s metrics), its shape bias (``atlas
shape-bias``), the habitat share of the look-alikes' class atlases (see
:mod:`atlas.demo.shortcut`), and where its Grad-CAM points: the share of the map that
falls on the object, on test and swapped-habitat images redrawn with their object masks.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from atlas.attribution.gradcam import GradCAM
from atlas.demo.scenes import Scenes
from atlas.errors import DataError
from atlas.models import LoadedModel
from atlas.store.shape_bias import read_shape_bias

PROBE_SPLITS = ("test", "test-swapped")
ON_OBJECT = "Grad-CAM on the object, {}"  # the measure's name, by split
TABLE_NOTE = (
    "Accuracy: on the test split and on the look-alikes on each other's habitat (each "
    "checkpoint on the splits of the world it was trained in). Habitat share: of the "
    "samples whose attribution goes most to the class (its class atlas), the part of that "
    "attribution which survives when the object is removed. Grad-CAM on the object: the "
    "part of the Grad-CAM map for the predicted class that lies on the object, on {test} "
    "test images (as many of each class) and {swapped} swapped-habitat ones (a map blind "
    "to the object scores about the object's area). Shape bias: on cue-conflict images "
    "(one class's shape, another's texture), the share of decisions by shape among those "
    "by shape or texture (Geirhos et al. 2019)."
)


@dataclass(frozen=True)
class Checkpoint:
    """One checkpoint to compare, by what the pipeline wrote about it (each optional)."""

    name: str
    store: str | None = None  # its activations of the world's training images
    train_metrics: str | Path | None = None  # atlas train's metrics JSON
    shape_bias: str | Path | None = None  # atlas shape-bias's output folder


def probe_images(
    scenes: Scenes, split: str, per_class: int
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """The first ``per_class`` images of each class of a split, redrawn: pixels (N, H, W, 3)
    uint8, object masks (N, H, W) in [0, 1], and their labels."""
    taken: dict[str, int] = {}
    chosen = []
    for sample in scenes.samples:
        if sample.split == split and taken.get(sample.label, 0) < per_class:
            taken[sample.label] = taken.get(sample.label, 0) + 1
            chosen.append(sample)
    if not chosen:
        raise DataError(f"the world in {scenes.root} has no {split} images")
    drawn = [scenes.drawn(s) for s in chosen]
    pixels = np.stack([image for image, _ in drawn])
    masks = np.stack([mask for _, mask in drawn])
    return pixels, masks, [s.label for s in chosen]


def object_share(
    model: LoadedModel, pixels: np.ndarray, masks: np.ndarray, *, batch: int = 50
) -> np.ndarray:
    """Per image, the share of its Grad-CAM map (Selvaraju et al. 2017; on the last block,
    for the class the model predicts) that lies on the object: the map weighted by the
    object mask over the whole map. NaN where the map is zero everywhere."""
    method = GradCAM(model)
    shares = []
    for start in range(0, len(pixels), batch):
        chunk = torch.from_numpy(pixels[start : start + batch]).permute(0, 3, 1, 2)
        crops = torch.stack([model.preprocessing.crop(p) for p in chunk]).to(model.device)
        inputs = model.preprocessing.normalize(crops.float() / 255)
        with torch.no_grad():
            predicted = model.module(inputs).argmax(1)
        maps = method.attribute(inputs, predicted).cpu().double()
        mask = torch.from_numpy(masks[start : start + batch]).double()
        total = maps.sum(dim=(1, 2))
        on_object = (maps * mask).sum(dim=(1, 2))
        shares.append(torch.where(total > 0, on_object / total, torch.nan).numpy())
    return np.concatenate(shares)


@dataclass
class CheckpointComparison:
    rows: dict[str, dict[str, float | None]]  # checkpoint -> measure -> value (None: not given)
    object_area: dict[str, float]  # split -> the objects' mean share of the probe images
    probes: dict[str, int]  # split -> probe images


def compare_checkpoints(
    checkpoints: Sequence[Checkpoint],
    models: Mapping[str, LoadedModel],
    scenes: Scenes,
    habitat_shares: Mapping[str, Mapping[str, float]],
    *,
    per_class: int = 10,
    per_swapped: int = 50,
) -> CheckpointComparison:
    """Per checkpoint, its measures by name (None where what they come from was not
    given): ``test accuracy``, ``test-swapped accuracy``, ``habitat share of <class>``
    (from ``habitat_shares``: checkpoint -> class -> share), ``Grad-CAM on the object, <split>``
    (:func:`object_share` on the first ``per_class`` test images of each class and the
    first ``per_swapped`` swapped-habitat images of each look-alike), ``shape bias``;
    ``models`` holds the model of each checkpoint that has a store. With them, the
    objects' mean area in the probe images: what a map blind to the object would score."""
    probes = {
        split: probe_images(scenes, split, per_class if split == "test" else per_swapped)
        for split in PROBE_SPLITS
    }
    rows: dict[str, dict[str, float | None]] = {}
    for checkpoint in checkpoints:
        row: dict[str, float | None] = {}
        scores = (
            json.loads(Path(checkpoint.train_metrics).read_text())
            if checkpoint.train_metrics
            else {}
        )
        for split in PROBE_SPLITS:
            row[f"{split} accuracy"] = scores.get(split, {}).get("accuracy")
        for name, share in habitat_shares.get(checkpoint.name, {}).items():
            row[f"habitat share of {name}"] = share
        model = models.get(checkpoint.name)
        for split, (pixels, masks, _) in probes.items():
            share = np.nanmean(object_share(model, pixels, masks)) if model else None
            row[ON_OBJECT.format(split)] = None if share is None else round(float(share), 4)
        bias = read_shape_bias(checkpoint.shape_bias) if checkpoint.shape_bias else None
        row["shape bias"] = bias["shape_bias"] if bias else None
        rows[checkpoint.name] = row
    areas = {split: round(float(masks.mean()), 4) for split, (_, masks, _) in probes.items()}
    return CheckpointComparison(rows, areas, {split: len(p[0]) for split, p in probes.items()})


def checkpoint_table(comparison: CheckpointComparison) -> dict:
    """The comparison as a class-measures table (checkpoint x measure), with a note on
    what each measure is."""
    measures = list(dict.fromkeys(m for row in comparison.rows.values() for m in row))
    areas = {ON_OBJECT.format(split): area for split, area in comparison.object_area.items()}
    header = ["checkpoint"] + [
        f"{m} (object area {areas[m]:.2f})" if m in areas else m for m in measures
    ]
    rows = [
        [name] + ["-" if row.get(m) is None else f"{row[m]:.2f}" for m in measures]
        for name, row in comparison.rows.items()
    ]
    return {
        "title": "The checkpoints side by side",
        "note": TABLE_NOTE.format(
            test=comparison.probes["test"], swapped=comparison.probes["test-swapped"]
        ),
        "header": header,
        "rows": rows,
    }
