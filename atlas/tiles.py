"""Deep-zoom tile pyramids (DZI) of a grid level's icons, made by libvips (pyvips), for
the viewer's OpenSeadragon map."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def write_pyramid(
    icons: np.ndarray, occupied, size: int, path: Path, *, tile_size: int = 256
) -> None:
    """``path.dzi`` and ``path_files/`` for a level of ``size`` x ``size`` cells whose icons
    are ``icons`` (cells, S, S, 3): the icon of cell (row, col) at column col and row
    size-1-row from the top (row 0 is the bottom of the layout); empty cells clear."""
    import pyvips

    icon_px = icons.shape[1]
    blank = pyvips.Image.black(icon_px, icon_px, bands=4)
    filled = set(int(c) for c in occupied)
    opaque = np.full((icon_px, icon_px, 1), 255, np.uint8)
    tiles = []
    for row in range(size - 1, -1, -1):
        for col in range(size):
            cell = row * size + col
            if cell in filled:
                rgba = np.concatenate([icons[cell], opaque], axis=2)
                tiles.append(pyvips.Image.new_from_array(rgba, interpretation="srgb"))
            else:
                tiles.append(blank)
    mosaic = pyvips.Image.arrayjoin(tiles, across=size)
    mosaic.dzsave(str(path), tile_size=tile_size, overlap=0, suffix=".png", layout="dz")
    # libvips always adds a properties file stamped with the time; the viewer does not read
    # it, and without it the same icons give the same bytes (DVC sees no change).
    (path.parent / f"{path.name}_files" / "vips-properties.xml").unlink(missing_ok=True)
