"""The image map store (``atlas image-map``): where each image of a run lies on the map
and which image each cell of each level shows.

A folder holding ``map.zarr`` (one Zarr v3 group: ``xy[image, axis]`` in [0, 1], NaN for
images that were skipped; one subgroup per level, named by its size, with
``image[cell]``, the image shown (-1: none), and ``count[cell]``, the images in the cell)
``thumbs/<image>.png``, the thumbnail of each image shown at any level, and
``tiles/<size>.dzi``, each level's thumbnails as a deep-zoom pyramid. Cell ids run
row by row from the bottom left, as in the grid store.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from atlas.store.base import AtlasGroup, open_existing, open_group, write_arrays
from atlas.store.records import ATTRIBUTE, Record, Values, read_record, stored, write_record


@dataclass(frozen=True)
class MapLevel(Record):
    """One level of the image map: ``size`` x ``size`` cells."""

    size: int = field(metadata=ATTRIBUTE)
    image: Values = field(metadata=stored("cell", dtype="int64"))  # the image shown; -1: none
    count: Values = field(metadata=stored("cell", dtype="int64"))  # the images in the cell


class ImageMapStore(AtlasGroup):
    @property
    def levels(self) -> list[int]:
        return list(self.attrs["levels"])

    @property
    def layer(self) -> str:
        """The layer whose pooled vectors laid the images out."""
        return self.attrs["layer"]

    @property
    def run_url(self) -> str:
        return self.attrs["run"]

    @property
    def tiles(self) -> Path:
        return self.folder / "tiles"

    def thumb(self, image: int) -> Path:
        return self.folder / "thumbs" / f"{image}.png"

    def xy(self) -> np.ndarray:
        return self.group["xy"][:]

    def read_level(self, size: int) -> MapLevel:
        """A level, lazily (its arrays are read where sliced)."""
        return read_record(MapLevel, self.level_group(size))


def map_url(out_dir: str | Path) -> str:
    return str(Path(out_dir) / "map.zarr")


def write_image_map(
    out_dir: str | Path,
    xy: np.ndarray,
    levels: Mapping[int, MapLevel],
    attrs: Mapping[str, Any],
) -> ImageMapStore:
    """Write the map: ``xy`` per image, and its levels."""
    url = map_url(out_dir)
    group = open_group(url, mode="w", zarr_format=3)
    write_arrays(group, {"xy": (xy.astype(np.float32), ("image", "axis"))}, chunk_rows=1 << 18)
    for size, level in levels.items():
        write_record(group.create_group(str(size)), level)
    store = ImageMapStore(group, url)
    store.finish({"levels": sorted(levels), **attrs})
    return store


def open_image_map(out_dir: str | Path) -> ImageMapStore:
    url = map_url(out_dir)
    return ImageMapStore(open_existing(url, "image map", "atlas image-map"), url)
