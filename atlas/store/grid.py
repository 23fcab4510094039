"""The grid store (``atlas grid``): a run's layout binned into cells at several levels.

One subgroup per level, named by its size (``"10"``, ``"20"``, ...), holding
``count[cell]``, ``mean[cell, channel]``, ``top_class[cell, k]``,
``top_class_attribution[cell, k]``, ``top_class_share[cell, k]``, ``top_label[cell, k]``,
``top_label_count[cell, k]``, ``exemplar[cell, e]`` (sample indices into the run store,
-1 pads), ``exemplar_distance[cell, e]`` and ``exemplar_box[cell, e, box]`` (the input
crop (x0, y0, x1, y1) the exemplar's activation sees); the root holds
``whitening[channel, channel_b]``. Cell ids run row by row from the bottom left:
``cell = row * size + column``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import zarr

from atlas.errors import DataError
from atlas.store.base import AtlasGroup, open_existing, open_group, write_arrays

LEVEL_ARRAYS = {
    "count": ("cell",),
    "mean": ("cell", "channel"),
    "top_class": ("cell", "k"),
    "top_class_attribution": ("cell", "k"),
    "top_class_share": ("cell", "k"),
    "top_label": ("cell", "k"),
    "top_label_count": ("cell", "k"),
    "exemplar": ("cell", "e"),
    "exemplar_distance": ("cell", "e"),
    "exemplar_box": ("cell", "e", "box"),
}


class GridStore(AtlasGroup):
    @property
    def layer(self) -> str:
        return self.attrs["layer"]

    @property
    def levels(self) -> list[int]:
        return list(self.attrs["levels"])

    def level(self, size: int) -> zarr.Group:
        if str(size) not in self.group:
            raise DataError(
                f"{self.url} has no level {size} (levels: {', '.join(map(str, self.levels))})"
            )
        return self.group[str(size)]

    def whitening(self) -> np.ndarray:
        return self.group["whitening"][:]

    def exemplar_samples(self, per_cell: int, levels: Sequence[int] | None = None) -> list[int]:
        """The first ``per_cell`` exemplars of every occupied cell of ``levels`` (default:
        every level), each sample once, in level then cell order."""
        seen: dict[int, None] = {}
        for size in self.levels if levels is None else levels:  # an unknown level: DataError
            exemplars = self.level(size)["exemplar"][:, :per_cell]
            seen.update(dict.fromkeys(int(s) for s in exemplars[exemplars >= 0]))
        return list(seen)


def write_grid(
    url: str,
    levels: Mapping[int, Any],
    boxes: Mapping[int, np.ndarray],
    whitening: np.ndarray,
    attrs: Mapping[str, Any],
) -> GridStore:
    """Write grid levels (:class:`atlas.grid.GridLevel`) with their exemplar boxes."""
    group = open_group(url, mode="w", zarr_format=3)
    for size, level in levels.items():
        sub = group.create_group(str(size))
        sub.attrs["size"] = size
        arrays = {
            name: (boxes[size] if name == "exemplar_box" else getattr(level, name), dims)
            for name, dims in LEVEL_ARRAYS.items()
        }
        write_arrays(sub, arrays, chunk_rows=4096)
    write_arrays(group, {"whitening": (whitening.astype(np.float32), ("channel", "channel_b"))})
    store = GridStore(group, url)
    store.finish({"levels": sorted(levels), **attrs})
    return store


def open_grid(url: str) -> GridStore:
    return GridStore(open_existing(url, "grid", "atlas grid"), url)
