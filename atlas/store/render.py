"""What rendering writes: the icon cache and the render store.

- The icon cache, a folder of ``<key>.png``: one icon per content key (see
  :func:`atlas.icons.icon_content_key`), its final objective value in a PNG text chunk,
  and its robust objective with the settings it was measured with in two more. Icons are
  written under a temporary name first, so a killed run leaves no half icon behind.
- ``render.zarr``: per level (a subgroup named by its size) ``icon[cell, y, x, rgb]``
  uint8, ``icon_key[cell]`` ("" for empty cells), ``objective[cell]``,
  ``exemplar_objective[cell]``, ``quality[cell]`` (the icon's objective over the best
  exemplar's), ``grey_share[cell]``, ``robust_quality[cell]`` (the icon's mean objective
  under strong random warps over the best exemplar's) and ``spectrum_slope[cell]`` (of
  its power spectrum) (:class:`RenderLevel`); attributes give the levels, layer, grid,
  icon size, render settings and the photographs' median spectrum slope.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, PngImagePlugin

from atlas.store.base import AtlasGroup, open_existing, open_group
from atlas.store.records import ATTRIBUTE, Record, Values, read_record, stored, write_record

CHUNK_ROWS = 1024  # cells per chunk of a level's arrays


@dataclass(frozen=True)
class RenderLevel(Record):
    """One rendered level of ``size`` x ``size`` cells (cell ids as in the grid store)."""

    size: int = field(metadata=ATTRIBUTE)
    icon: Values = field(metadata=stored("cell", "y", "x", "rgb", dtype="uint8"))  # 0: empty
    icon_key: Values = field(metadata=stored("cell", dtype=str))  # "" for empty cells
    objective: Values = field(metadata=stored("cell", dtype="float32"))  # the icon's; NaN
    exemplar_objective: Values = field(metadata=stored("cell", dtype="float32"))  # the best's
    quality: Values = field(metadata=stored("cell", dtype="float32"))  # objective / the best's
    # The share of the icon's pixels left grey (NaN for empty cells):
    grey_share: Values = field(metadata=stored("cell", dtype="float32"))
    # The icon's mean objective under the robust warps, and that over the best exemplar's
    # (atlas.icons.level_icons); absent from stores written before they were measured:
    robust_objective: Values = field(default=None, metadata=stored("cell", dtype="float32"))
    robust_quality: Values = field(default=None, metadata=stored("cell", dtype="float32"))
    # The slope of the icon's power spectrum on log-log axes (atlas.featvis.spectrum):
    spectrum_slope: Values = field(default=None, metadata=stored("cell", dtype="float32"))


class IconCache:
    """Icons by content key in ``folder`` (created when missing)."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)

    def path(self, key: str) -> Path:
        return self.folder / f"{key}.png"

    def has(self, key: str) -> bool:
        return self.path(key).exists()

    def save(
        self,
        key: str,
        image: np.ndarray,
        value: float,
        *,
        robust: tuple[float, str] | None = None,
    ) -> None:
        """An icon (S, S, 3) in [0, 1] and its objective value; ``robust``: its robust
        objective and the settings of the measure (:func:`atlas.render.robust_check`)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        info = PngImagePlugin.PngInfo()
        info.add_text("objective", repr(float(value)))
        if robust is not None:
            info.add_text("robust_objective", repr(float(robust[0])))
            info.add_text("robust_check", robust[1])
        pixels = (np.clip(image, 0, 1) * 255 + 0.5).astype(np.uint8)
        partial = self.path(key).with_suffix(".part")
        Image.fromarray(pixels).save(partial, format="PNG", pnginfo=info)
        partial.replace(self.path(key))

    def load(self, key: str) -> tuple[np.ndarray, float]:
        """The icon (S, S, 3) uint8 and its objective value."""
        with Image.open(self.path(key)) as image:
            return np.asarray(image.convert("RGB")), float(image.text["objective"])

    def robust(self, key: str, check: str) -> float:
        """The icon's robust objective, NaN if it was not measured with ``check``."""
        with Image.open(self.path(key)) as image:
            if image.text.get("robust_check") != check:
                return float("nan")
            return float(image.text["robust_objective"])

    def gather_robust(self, keys, cells: np.ndarray, n_cells: int, check: str) -> np.ndarray:
        """The robust objectives (:meth:`robust`) of ``keys`` placed at ``cells`` of a level
        of ``n_cells`` cells (NaN where empty or not measured with ``check``)."""
        values = np.full(n_cells, np.nan, np.float32)
        for cell, key in zip(cells, keys, strict=True):
            values[cell] = self.robust(key, check)
        return values

    def gather(
        self, keys, cells: np.ndarray, n_cells: int, icon_px: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """The icons of ``keys`` placed at ``cells`` of a level of ``n_cells`` cells:
        (n_cells, S, S, 3) uint8 (zeros where empty) and their objective values (NaN)."""
        icons = np.zeros((n_cells, icon_px, icon_px, 3), np.uint8)
        values = np.full(n_cells, np.nan, np.float32)
        for cell, key in zip(cells, keys, strict=True):
            icons[cell], values[cell] = self.load(key)
        return icons, values


class RenderStore(AtlasGroup):
    """``render.zarr`` for reading (:func:`open_render`) or writing (:func:`create_render`),
    in the render output folder beside ``icons/`` and ``tiles/``."""

    @property
    def icons(self) -> IconCache:
        return IconCache(self.folder / "icons")

    @property
    def levels(self) -> list[int]:
        return sorted(int(s) for s in self.attrs["levels"])

    @property
    def icon_size(self) -> int:
        return int(self.attrs["icon_size"])

    def read_level(self, size: int) -> RenderLevel:
        """A level, lazily (its arrays are read where sliced)."""
        return read_record(RenderLevel, self.group[str(size)])

    def picture(self, size: int | None = None, background: int = 240) -> Image.Image:
        """A level's icons (default: the finest) laid out as on the map, top row first,
        empty cells in grey."""
        size = size or self.levels[-1]
        level = self.read_level(size)
        icons, keys = level.icon[:], level.icon_key[:]
        icons[keys == ""] = background
        px = icons.shape[1]
        rows = icons.reshape(size, size, px, px, 3)[::-1]  # row 0 is the map's bottom
        return Image.fromarray(rows.transpose(0, 2, 1, 3, 4).reshape(size * px, size * px, 3))

    def _repr_png_(self) -> bytes:
        """In a notebook: the finest level's icons as a picture."""
        return self.picture()._repr_png_()

    def write_level(self, size: int, level: RenderLevel) -> None:
        """Write a rendered level."""
        assert level.size == size, (level.size, size)
        write_record(self.group.create_group(str(size)), level, chunk_rows=CHUNK_ROWS)


def render_store_url(out_dir: str | Path) -> str:
    return str(Path(out_dir) / "render.zarr")


def create_render(out_dir: str | Path) -> RenderStore:
    url = render_store_url(out_dir)
    return RenderStore(open_group(url, mode="w", zarr_format=3), url)


def open_render(out_dir: str | Path) -> RenderStore:
    url = render_store_url(out_dir)
    return RenderStore(open_existing(url, "render", "atlas render"), url)
