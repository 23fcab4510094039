"""The class atlases' page (``classes.html``): every class atlas as an icon mosaic, class
pairs with their most separating cells, checkpoint comparisons side by side."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from atlas.reports.imaging import tile
from atlas.reports.pages import write_page
from atlas.store.classes import ClassesStore
from atlas.viewer import data
from atlas.viewer.site import Crops

KINDS = ("class", "pair", "compare")  # the class atlases' kinds, in the page's order
ENDS = 3  # cells shown at each end of a pair's ranking
PAIR_EXAMPLES = 3  # exemplars shown per such cell


def write_classes_page(
    out: Path,
    store: ClassesStore,
    measures: dict[str, Any] | None,
    crops: Crops,
    links: dict[str, str],
) -> str:
    """classes.html and its mosaics, with ``measures`` of the atlases (if any) beside
    them; returns the page's path in the site."""
    report = store.report
    mosaics = _write_mosaics(out, store)
    pairs = [
        _pair(store, name, summary, mosaics, crops, links)
        for name, summary in report.get("pairs", {}).items()
    ]
    write_page(
        out / "classes.html",
        "classes.html",
        report=report,
        mosaics=mosaics,
        pairs=pairs,
        measures=measures,
    )
    return "classes.html"


def _write_mosaics(out: Path, store: ClassesStore) -> dict[str, dict]:
    """Each class atlas's icons as one picture in ``class-atlases/`` (the layout's top row
    first, empty cells white); returns ``"<kind>/<name>"`` -> its file and size."""
    (out / "class-atlases").mkdir()
    mosaics = {}
    for kind in KINDS:
        for name in store.names(kind):
            atlas = data.class_atlas(store, kind, name)
            size = round(len(atlas.count) ** 0.5)
            icons = np.where((atlas.count > 0)[:, None, None, None], atlas.icon, 255)
            rows = [icons[r * size : (r + 1) * size] for r in range(size - 1, -1, -1)]
            picture = tile(np.concatenate(rows), size, pad=2, background=255)
            file = f"class-atlases/{kind}-{len(mosaics)}.png"  # never a name from data
            Image.fromarray(picture).save(out / file)
            mosaics[f"{kind}/{name}"] = {"file": file, "size": size}
    return mosaics


def _pair(store, name: str, summary: dict, mosaics: dict, crops: Crops, links) -> dict:
    """A class pair as the page shows it: its mosaic, and the cells at both ends of its
    ranking (``first`` from the top, ``last`` from the bottom) with their exemplars."""
    cells = data.pair_cells(store, name)
    ranked = summary["ranking"]["cells"]
    ends = []
    for cell in ranked[:ENDS] + ranked[-ENDS:]:
        examples = [
            {"crop": crops(int(s), b), "report": links.get(crops.name(s))} | crops.credit(s)
            for s, b in zip(
                cells.exemplar[cell][:PAIR_EXAMPLES],
                cells.exemplar_box[cell][:PAIR_EXAMPLES],
                strict=True,
            )
            if s >= 0
        ]
        ends.append(
            {
                "cell": cell,
                "a": float(cells.strength[cell, 0]),
                "b": float(cells.strength[cell, 1]),
                "examples": examples,
            }
        )
    return {
        "name": name,
        "classes": summary["classes"],
        "mosaic": mosaics.get(f"pair/{name}"),
        "first": ends[:ENDS],
        "last": ends[ENDS:][::-1],
    }
