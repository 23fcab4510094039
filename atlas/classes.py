"""Class atlases: what a layer contributes to one class, and how two classes differ.

Following the class activation atlases of Carter et al. ("Activation Atlas", Distill
2019): keep the samples whose class attribution (activation times logit gradient, from
extraction) goes most to the class, the *winner* (or has it among the sample's top
``top_n``), lay them out (on their own with UMAP, or cut from the global layout), grid
them, and record per cell how strongly it pushes the class. A *pair* atlas grids the
samples of two classes together, so each cell's pull towards one class and the other
can be compared and the cells that separate them ranked.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from atlas.config import ClassesConfig, GridConfig, ReduceConfig
from atlas.errors import AtlasError, choices_hint
from atlas.grid import cell_of, grid_levels
from atlas.reduce import configured_layout, normalize_layout
from atlas.rows import row_blocks, take_rows
from atlas.store.grid import GridLevel


def winners(attribution, attribution_class, valid=None) -> np.ndarray:
    """Per sample, the class its attribution goes to most (-1 where not valid)."""
    out = np.full(attribution.shape[0], -1, np.int64)
    for rows in row_blocks(attribution.shape[0]):
        values = np.asarray(attribution[rows])
        classes = np.asarray(attribution_class[rows])
        best = np.argmax(np.where(classes >= 0, values, -np.inf), axis=1)
        out[rows] = classes[np.arange(len(values)), best]
    if valid is not None:
        out[~np.asarray(valid, bool)] = -1
    return out


def class_members(
    attribution, attribution_class, valid, klass: int, *, mode: str = "winner", top_n: int = 1
) -> np.ndarray:
    """Indices of the samples that belong to ``klass``'s atlas: those it wins, or (mode
    ``topn``) those with it among their ``top_n`` largest attributions."""
    if mode == "winner":
        return np.flatnonzero(winners(attribution, attribution_class, valid) == klass)
    keep = np.zeros(attribution.shape[0], bool)
    for rows in row_blocks(attribution.shape[0]):
        values = np.asarray(attribution[rows])
        classes = np.asarray(attribution_class[rows])
        order = np.argsort(-np.where(classes >= 0, values, -np.inf), axis=1, kind="stable")[
            :, :top_n
        ]
        keep[rows] = (np.take_along_axis(classes, order, axis=1) == klass).any(axis=1)
    if valid is not None:
        keep &= np.asarray(valid, bool)
    return np.flatnonzero(keep)


def attribution_to(attribution, attribution_class, rows: np.ndarray, klass: int) -> np.ndarray:
    """The attribution of each of ``rows`` to ``klass`` (0 where it was not recorded)."""
    values, classes = take_rows(attribution, rows), take_rows(attribution_class, rows)
    return np.where(classes == klass, values, 0).sum(axis=1)


@dataclass
class ClassAtlas:
    """A grid over the samples of one or more classes."""

    classes: list[int]
    members: np.ndarray  # (M,) sample indices into the run store
    xy: np.ndarray  # (M, 2) their positions in [0, 1]
    level: GridLevel  # count, mean, exemplars (exemplar indices are into the run store)
    strength: np.ndarray  # (cells, len(classes)): summed attribution to each class
    member_strength: np.ndarray  # (M, len(classes))

    @property
    def size(self) -> int:
        return self.level.size


def class_atlas(
    acts,
    attribution,
    attribution_class,
    valid,
    classes: Sequence[int],
    options: ClassesConfig | None = None,
    *,
    layout_xy: np.ndarray | None = None,
    reduce_options: ReduceConfig | None = None,
    **settings,
) -> ClassAtlas:
    """The atlas of the samples that belong to any of ``classes``: ``options`` (a
    :class:`atlas.config.ClassesConfig`, any field overridden by keyword) says which
    samples belong (``mode``, ``top_n``) and how they are gridded (``size``,
    ``min_count``, ``exemplars``).

    Positions come from ``layout_xy`` (the global layout, (N, 2)) rescaled to the members'
    extent, or, when it is None, from a UMAP layout of the members alone; both with
    ``reduce_options`` (a :class:`atlas.config.ReduceConfig`).
    """
    options = (options or ClassesConfig()).updated(**settings)
    size, mode, top_n = options.size, options.mode, options.top_n
    reduce_options = reduce_options or ReduceConfig()
    member_sets = [
        class_members(attribution, attribution_class, valid, c, mode=mode, top_n=top_n)
        for c in classes
    ]
    members = np.unique(np.concatenate(member_sets)) if member_sets else np.array([], np.int64)
    if len(members) == 0:
        raise EmptyClassAtlas(
            f"no sample's attribution goes to class {classes[0]} most (try mode topn)"
        )
    vectors = take_rows(acts, members).astype(np.float32)
    if layout_xy is not None:
        xy = normalize_layout(np.asarray(layout_xy)[members], reduce_options)
    else:
        xy = configured_layout(vectors, reduce_options)[0]
    member_strength = np.stack(
        [attribution_to(attribution, attribution_class, members, c) for c in classes], axis=1
    )
    cell_grid = GridConfig(
        levels=[size], min_count=options.min_count, top_k=1, exemplars=options.exemplars
    )
    level = grid_levels(vectors, xy, cell_grid, num_classes=1)[size]
    cells = cell_of(xy, size, size)
    kept = level.count[cells] > 0
    strength = np.zeros((size * size, len(classes)), np.float64)
    np.add.at(strength, cells[kept], member_strength[kept])
    exemplar = np.where(level.exemplar >= 0, members[np.maximum(level.exemplar, 0)], -1)
    level = replace(level, exemplar=exemplar)  # sample indices into the run store
    return ClassAtlas(
        list(classes),
        members,
        xy.astype(np.float32),
        level,
        strength.astype(np.float32),
        member_strength.astype(np.float32),
    )


def rank_pair(atlas: ClassAtlas) -> tuple[np.ndarray, np.ndarray]:
    """For a two-class atlas: occupied cells ordered by how much more they push the
    first class than the second (most first-class first), and those differences."""
    if len(atlas.classes) != 2:
        raise AtlasError("a pair ranking needs an atlas of exactly two classes")
    occupied = atlas.level.occupied()
    difference = atlas.strength[occupied, 0] - atlas.strength[occupied, 1]
    order = np.argsort(-difference, kind="stable")
    return occupied[order], difference[order]


def class_index(name: str, class_names: Sequence[str]) -> int:
    if name not in class_names:
        raise AtlasError(
            f"unknown class {name!r} " + choices_hint(name, list(class_names), label="classes")
        )
    return list(class_names).index(name)


class EmptyClassAtlas(AtlasError, ValueError):
    """No sample belongs to the class's atlas."""
