"""The index of a channel-pages folder (``atlas channels``): ``channels.json``, what the
folder holds for the pages that link to it (the model report, the viewer).

Its fields: ``objective`` (what the icons maximize), ``images`` (images the tops were
found among) and ``layers``, one entry per layer: ``name``, ``page`` (its page, relative to
the folder), ``channels``, ``top`` (images shown per channel), ``map`` ([height, width]),
``field`` ([height, width] of a position's receptive field, px), ``never_active``
(channels never above zero on any image), ``median_icon_ratio`` (the icons' objective
over the best image's peak, median over channels; null where undefined).

Beside it: ``index.html``, one ``<layer>.html`` a layer, and its pictures in ``<layer>/``:
``icon-<channel>.png`` (:func:`icon_file`) and ``<channel>-<rank>.png`` (:func:`crop_file`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from atlas.errors import DataError
from atlas.store.render import IconCache

INDEX = "channels.json"
PAGE = "index.html"


def write_channel_index(folder: str | Path, index: Mapping[str, Any]) -> None:
    (Path(folder) / INDEX).write_text(json.dumps(dict(index), indent=1))


def read_channel_index(folder: str | Path) -> dict[str, Any]:
    """The folder's index; a :class:`DataError` when it holds no channel pages."""
    path = Path(folder) / INDEX
    if not path.is_file():
        raise DataError(f"no channel pages in {folder} (run `atlas channels` first)")
    return json.loads(path.read_text())


def icon_cache(folder: str | Path, layer: str) -> IconCache:
    """Where a layer's icons are written: ``<layer>/icon-<channel>.png`` (their objective
    values in the PNGs, as the render stage's icon cache keeps them)."""
    return IconCache(Path(folder) / layer)


def icon_name(channel: int) -> str:
    """A channel's icon in the layer's icon cache (its file stem)."""
    return f"icon-{channel}"


def icon_file(layer: str, channel: int) -> str:
    """A channel's icon, relative to the folder."""
    return f"{layer}/{icon_name(channel)}.png"


def crop_file(layer: str, channel: int, rank: int) -> str:
    """The crop of a channel's top image of rank ``rank``, relative to the folder."""
    return f"{layer}/{channel}-{rank}.png"
