"""What the site's pages read from the stores, as plain NumPy arrays and values.

The stores hand out their records (:mod:`atlas.store`); this module takes from them
what each page shows, so the pages receive small in-memory records and never a store.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from atlas.rows import take_rows
from atlas.store import RunStore, open_run
from atlas.store.classes import ClassesStore
from atlas.store.grid import GridLevel, GridStore, open_grid
from atlas.store.image_map import ImageMapStore
from atlas.store.layout import Layout, read_layout
from atlas.store.render import RenderLevel, RenderStore, open_render
from atlas.store.reports import report_pages as report_pages  # the pages' links to reports


@dataclass(frozen=True)
class AtlasLevel:
    """One level of the atlas, per cell: activations, top classes with their attribution
    share and top labels with their counts (-1: none), exemplars (-1: none) with their
    crop boxes (x0, y0, x1, y1), and the icon's cache key ('' none) and quality."""

    count: np.ndarray  # (cells,)
    top_class: np.ndarray  # (cells, k)
    top_class_share: np.ndarray  # (cells, k)
    top_label: np.ndarray  # (cells, k)
    top_label_count: np.ndarray  # (cells, k)
    exemplar: np.ndarray  # (cells, exemplars)
    exemplar_box: np.ndarray  # (cells, exemplars, 4)
    icon_key: np.ndarray  # (cells,)
    quality: np.ndarray  # (cells,)


def level_arrays(level: GridLevel, icons: RenderLevel, exemplars: int | None = None) -> AtlasLevel:
    """An :class:`AtlasLevel` from a grid level and its render level (records, read lazily
    or in memory), the first ``exemplars`` of each cell."""
    return AtlasLevel(
        count=level.count[:],
        top_class=level.top_class[:],
        top_class_share=level.top_class_share[:],
        top_label=level.top_label[:],
        top_label_count=level.top_label_count[:],
        exemplar=level.exemplar[:, :exemplars],
        exemplar_box=level.exemplar_box[:, :exemplars],
        icon_key=icons.icon_key[:],
        quality=icons.quality[:],
    )


def atlas_level(
    grid: GridStore, renders: RenderStore, size: int, exemplars: int | None = None
) -> AtlasLevel:
    """The level of ``size`` cells per side, with its icons."""
    return level_arrays(grid.read_level(size), renders.read_level(size), exemplars)


@dataclass(frozen=True)
class LevelSummary:
    """A level's activations per cell and each cell's top class with its share."""

    count: np.ndarray  # (cells,)
    top_class: np.ndarray  # (cells,)
    share: np.ndarray  # (cells,)


def level_summary(grid: GridStore, size: int) -> LevelSummary:
    level = grid.read_level(size)
    return LevelSummary(
        count=level.count[:],
        top_class=level.top_class[:, 0],
        share=level.top_class_share[:, 0],
    )


def sample_images(run: RunStore, layer: str) -> np.ndarray:
    """Each sample's image, by its path relative to the image source's root."""
    return run.read_layer(layer).path[:]


def valid_samples(run: RunStore, layer: str) -> int:
    """How many of the layer's samples hold an activation."""
    return int(run.read_layer(layer).valid[:].sum())


@dataclass(frozen=True)
class ClassAtlas:
    """A class atlas's icons (cells, S, S, 3) and activations per cell."""

    icon: np.ndarray
    count: np.ndarray


def class_atlas(store: ClassesStore, kind: str, name: str) -> ClassAtlas:
    atlas = store.read_atlas(kind, name)
    return ClassAtlas(icon=atlas.icon[:], count=atlas.count[:])


@dataclass(frozen=True)
class PairCells:
    """A class pair's atlas per cell: exemplars (-1: none) with their crop boxes, and
    the strength of each of the two classes."""

    exemplar: np.ndarray  # (cells, exemplars)
    exemplar_box: np.ndarray  # (cells, exemplars, 4)
    strength: np.ndarray  # (cells, 2)


def pair_cells(store: ClassesStore, name: str) -> PairCells:
    group = store.read_atlas("pair", name)
    return PairCells(
        exemplar=group.exemplar[:],
        exemplar_box=group.exemplar_box[:],
        strength=group.strength[:],
    )


@dataclass(frozen=True)
class AlignedAtlas:
    """What the aligned atlases' page shows: the aligned layout (with its figures), and
    the grid and render stores made from it (:mod:`atlas.stages.align`)."""

    layout: Layout
    grid: GridStore
    renders: RenderStore
    run: RunStore  # the store the aligned layout lays out


def open_aligned(folder: str | Path) -> AlignedAtlas:
    """The aligned atlas in ``folder``: ``layout.zarr`` (from the align stage),
    ``grid.zarr`` and ``render/`` (the grid and render stages run on it)."""
    folder = Path(folder)
    layout = read_layout(str(folder / "layout.zarr"))
    return AlignedAtlas(
        layout=layout,
        grid=open_grid(str(folder / "grid.zarr")),
        renders=open_render(folder / "render"),
        run=open_run(layout.run_url),
    )


@dataclass(frozen=True)
class AlignmentFigures:
    """How aligned the two maps are (the align stage's figures, :mod:`atlas.align`), and
    the layer of each side."""

    samples: int  # laid out on both maps
    within_one_cell: dict[str, float]  # per grid level
    neighbours_aligned: float  # the aligned map's neighbour recall of its own vectors
    neighbours_run_layout: float  # the run's layout scored against the same neighbours
    neighbours_k: int
    left_layer: str  # the run's own
    right_layer: str  # the aligned one's


def alignment(aligned: AlignedAtlas) -> AlignmentFigures:
    figures = aligned.layout.alignment
    return AlignmentFigures(
        samples=figures["samples"],
        within_one_cell=figures["within_one_cell"],
        neighbours_aligned=figures["neighbours_aligned"],
        neighbours_run_layout=figures["neighbours_run_layout"],
        neighbours_k=figures["neighbours_k"],
        left_layer=aligned.layout.aligned_with["layer"],
        right_layer=aligned.layout.layer,
    )


def image_map_facts(image_map: ImageMapStore) -> tuple[str, int]:
    """The image map's layer and how many images it lays out."""
    return image_map.layer, int(np.isfinite(image_map.xy()).all(axis=1).sum())


@dataclass(frozen=True)
class ImageMapLevel:
    """The cells of an image-map level that show an image, with that image's index,
    name, label and predicted class, and each such cell's activations."""

    cells: np.ndarray  # (shown,) cell index
    images: np.ndarray  # (shown,) image index
    names: np.ndarray  # (shown,) image names
    labels: np.ndarray  # (shown,)
    predicted: np.ndarray  # (shown,) the model's top class of the image
    count: np.ndarray  # (cells,) of the whole level


def image_map_level(image_map: ImageMapStore, run: RunStore, size: int) -> ImageMapLevel:
    """The level of ``size`` cells per side; only the shown images' rows are read."""
    layer = image_map.layer
    level = image_map.read_level(size)
    image, count = level.image[:], level.count[:]
    cells = np.flatnonzero(image >= 0)
    shown = image[cells]
    if not len(shown):
        none = np.empty(0)
        return ImageMapLevel(cells, shown, none, none, none, count)
    per = run.geometry(layer).samples_per_image
    index = run.images
    return ImageMapLevel(
        cells=cells,
        images=shown,
        names=take_rows(index.image_path, shown),
        labels=take_rows(index.image_label, shown),
        predicted=take_rows(run.read_layer(layer).topk_class, shown * per)[:, 0],
        count=count,
    )
