"""What the shape-bias stage writes, and its one reader (the model report, the demo's
checkpoint comparison).

Under the stage's output folder:

- ``shape-bias.json``: the result of :func:`atlas.shape_bias.shape_bias` as JSON
  (``shape_bias``, ``counts``, ``per_shape``, ``per_texture``, ``excluded``, every
  decision with its image's path relative to the cue-conflict list), and ``examples``:
  per outcome (``shape``, ``texture``, ``other``) a list of ``{"file", "shape",
  "texture", "predicted"}``;
- ``examples/<outcome>-<k>.png``: those images as the model saw them (file names never
  come from data).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from atlas.errors import DataError

SHAPE_BIAS = "shape-bias.json"
EXAMPLES = "examples"


def write_shape_bias(
    out_dir: str | Path,
    result: Mapping[str, Any],
    examples: Mapping[str, Sequence[tuple[Mapping[str, str], np.ndarray]]],
) -> Path:
    """Write ``result`` and, per outcome, its example images ((H, W, 3) uint8, each with
    its shape, texture and predicted class) under ``out_dir``; returns the JSON's path."""
    out = Path(out_dir)
    (out / EXAMPLES).mkdir(parents=True, exist_ok=True)
    shown: dict[str, list[dict[str, str]]] = {}
    for outcome, items in examples.items():
        shown[outcome] = []
        for k, (about, pixels) in enumerate(items):
            file = f"{EXAMPLES}/{outcome}-{k}.png"
            Image.fromarray(np.asarray(pixels, np.uint8)).save(out / file)
            shown[outcome].append({"file": file, **dict(about)})
    path = out / SHAPE_BIAS
    path.write_text(json.dumps({**dict(result), "examples": shown}, indent=2) + "\n")
    return path


def read_shape_bias(folder: str | Path) -> dict[str, Any] | None:
    """The shape-bias result in ``folder`` (None when the folder holds none); example
    files are relative to the folder."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"shape-bias folder not found: {folder}")
    path = folder / SHAPE_BIAS
    if not path.is_file():
        return None
    return json.loads(path.read_text())
