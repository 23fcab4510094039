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
from pathlib import Path
from typing import Any

import numpy as np
import zarr

from atlas.errors import DataError
from atlas.store.base import AtlasGroup, open_existing, open_group, write_arrays


class ImageMapStore(AtlasGroup):
    @property
    def levels(self) -> list[int]:
        return list(self.attrs["levels"])

    @property
    def tiles(self) -> Path:
        return self.folder / "tiles"

    def thumb(self, image: int) -> Path:
        return self.folder / "thumbs" / f"{image}.png"

    def xy(self) -> np.ndarray:
        return self.group["xy"][:]

    def level(self, size: int) -> zarr.Group:
        if str(size) not in self.group:
            raise DataError(
                f"{self.url} has no level {size} (levels: {', '.join(map(str, self.levels))})"
            )
        return self.group[str(size)]


def map_url(out_dir: str | Path) -> str:
    return str(Path(out_dir) / "map.zarr")


def write_image_map(
    out_dir: str | Path,
    xy: np.ndarray,
    levels: Mapping[int, tuple[np.ndarray, np.ndarray]],
    attrs: Mapping[str, Any],
) -> ImageMapStore:
    """Write the map: ``xy`` per image, and per level size its (image, count) per cell."""
    url = map_url(out_dir)
    group = open_group(url, mode="w", zarr_format=3)
    write_arrays(group, {"xy": (xy.astype(np.float32), ("image", "axis"))}, chunk_rows=1 << 18)
    for size, (image, count) in levels.items():
        sub = group.create_group(str(size))
        sub.attrs["size"] = size
        write_arrays(sub, {"image": (image, ("cell",)), "count": (count, ("cell",))})
    store = ImageMapStore(group, url)
    store.finish({"levels": sorted(levels), **attrs})
    return store


def open_image_map(out_dir: str | Path) -> ImageMapStore:
    url = map_url(out_dir)
    return ImageMapStore(open_existing(url, "image map", "atlas image-map"), url)
