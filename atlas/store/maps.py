"""The layout and grid stores, derived from a run store.

Layout store (one Zarr v3 group): ``xy[sample, axis]`` float32 in [0, 1] (NaN for samples
that were skipped), ``raw[sample, axis]`` the reducer's own coordinates; attributes give
the reducer's parameters and the run store they came from.

Grid store: one subgroup per level, named by its size (``"10"``, ``"20"``, ...), holding
``count[cell]``, ``mean[cell, channel]``, ``top_class[cell, k]``,
``top_class_attribution[cell, k]``, ``top_class_share[cell, k]``, ``top_label[cell, k]``,
``top_label_count[cell, k]``, ``exemplar[cell, e]`` (sample indices into the run store,
-1 pads), ``exemplar_distance[cell, e]`` and ``exemplar_box[cell, e, box]`` (the input
crop (x0, y0, x1, y1) the exemplar's activation sees); the root holds
``whitening[channel, channel_b]``. Cell ids run row by row from the bottom left:
``cell = row * size + column``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import zarr

from atlas.config import package_version
from atlas.errors import DataError
from atlas.store.run import open_group

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


def write_layout(url: str, xy: np.ndarray, raw: np.ndarray, attrs: Mapping[str, Any]) -> None:
    group = open_group(url, mode="w", zarr_format=3)
    for name, values in (("xy", xy), ("raw", raw)):
        array = group.create_array(
            name,
            shape=values.shape,
            chunks=(min(len(values), 1 << 18), 2),
            dtype="float32",
            dimension_names=("sample", "axis"),
            fill_value=np.nan,
        )
        array[:] = values
    group.attrs["atlas"] = {"version": package_version(), **attrs}


def read_layout(url: str) -> tuple[np.ndarray, dict[str, Any]]:
    """The normalized coordinates (N, 2) and the layout's attributes."""
    group = _open(url, "layout", "atlas reduce")
    return group["xy"][:], dict(group.attrs["atlas"])


@dataclass
class GridStore:
    group: zarr.Group
    url: str

    @property
    def attrs(self) -> dict[str, Any]:
        return dict(self.group.attrs["atlas"])

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
        for name, dims in LEVEL_ARRAYS.items():
            values = boxes[size] if name == "exemplar_box" else getattr(level, name)
            chunks = (min(len(values), 4096), *values.shape[1:])
            array = sub.create_array(
                name, shape=values.shape, chunks=chunks, dtype=values.dtype, dimension_names=dims
            )
            array[:] = values
    array = group.create_array(
        "whitening",
        shape=whitening.shape,
        dtype="float32",
        dimension_names=("channel", "channel_b"),
    )
    array[:] = whitening
    group.attrs["atlas"] = {"version": package_version(), "levels": sorted(levels), **attrs}
    return GridStore(group, url)


def open_grid(url: str) -> GridStore:
    return GridStore(_open(url, "grid", "atlas grid"), url)


def _open(url: str, what: str, command: str) -> zarr.Group:
    try:
        group = open_group(url, mode="r")
    except (FileNotFoundError, zarr.errors.GroupNotFoundError):
        raise DataError(f"no {what} store at {url} (run `{command}` first)") from None
    if "atlas" not in group.attrs:
        raise DataError(f"{url} is not an atlas {what} store")
    return group
