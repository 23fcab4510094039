"""Measuring the demo's shortcut: how much of a class atlas sits on the habitat.

A sample is *on the habitat* when the centre of its sampled position, in input pixels,
falls outside the object's bounding box recorded in the world's manifest. A class
atlas's habitat share is the part of its attribution (to the class) carried by such
samples; a cell is habitat-like when most of its members' attribution is.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from atlas.demo.world import read_manifest


def on_habitat(
    paths, positions: np.ndarray, height: int, width: int, input_size: int, world: str | Path
) -> np.ndarray:
    """Per sample, whether its position's centre lies outside the object's box."""
    root = Path(world).resolve()
    world_meta = (root / "world.json").read_text()
    import json

    image_size = json.loads(world_meta)["image_size"]
    boxes = {str((root / s.path).resolve()): s.box for s in read_manifest(root)}
    scale = image_size / input_size
    out = np.zeros(len(paths), bool)
    for i, (path, (y, x)) in enumerate(zip(paths, positions, strict=True)):
        box = boxes.get(str(Path(str(path)).resolve()))
        if box is None or y < 0:
            continue
        cy, cx = (y + 0.5) * input_size / height * scale, (x + 0.5) * input_size / width * scale
        x0, y0, x1, y1 = box
        out[i] = not (x0 <= cx < x1 and y0 <= cy < y1)
    return out


def habitat_shares(
    strength: np.ndarray, habitat: np.ndarray, cells: np.ndarray, n_cells: int
) -> dict[str, float]:
    """For one class atlas: ``sample_share``, the positive attribution carried by habitat
    samples over all; ``cell_share``, that of habitat-like cells (cells whose members'
    positive attribution is mostly on the habitat) over all occupied cells."""
    weight = np.maximum(strength, 0)
    total = weight.sum()
    on_cell = np.bincount(cells, weights=weight * habitat, minlength=n_cells)
    all_cell = np.bincount(cells, weights=weight, minlength=n_cells)
    habitat_like = on_cell > 0.5 * all_cell
    return {
        "sample_share": float((weight * habitat).sum() / total) if total > 0 else 0.0,
        "cell_share": float(all_cell[habitat_like].sum() / total) if total > 0 else 0.0,
    }
