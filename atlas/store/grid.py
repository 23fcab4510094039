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
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from atlas.store.base import AtlasGroup, open_existing, open_group, write_arrays
from atlas.store.records import ATTRIBUTE, Record, Values, read_record, stored, write_record

CHUNK_ROWS = 4096  # cells per chunk of a level's arrays


@dataclass(frozen=True)
class GridLevel(Record):
    """One zoom level: ``size`` x ``size`` cells, cell id = row * size + column, where row
    0 is the bottom of the layout (small y) and column 0 its left (small x). Made by
    :func:`atlas.grid.grid_levels` (without boxes), read by :meth:`GridStore.read_level`."""

    size: int = field(metadata=ATTRIBUTE)
    # Zero where empty:
    count: Values = field(metadata=stored("cell", dtype="int64"))
    mean: Values = field(metadata=stored("cell", "channel", dtype="float32"))
    # The classes the cell's samples push hardest (-1 where fewer), their summed
    # attribution and its share of the cell's positive attribution:
    top_class: Values = field(metadata=stored("cell", "k", dtype="int32"))
    top_class_attribution: Values = field(metadata=stored("cell", "k", dtype="float32"))
    top_class_share: Values = field(metadata=stored("cell", "k", dtype="float32"))
    top_label: Values = field(metadata=stored("cell", "k", dtype="int32"))
    top_label_count: Values = field(metadata=stored("cell", "k", dtype="int64"))
    # Sample indices into the run store, nearest the mean first (-1 pads), and their
    # cosine distance to the mean:
    exemplar: Values = field(metadata=stored("cell", "e", dtype="int64"))
    exemplar_distance: Values = field(metadata=stored("cell", "e", dtype="float32"))
    # The input crop (x0, y0, x1, y1) each exemplar's activation sees, zeros for pads: set
    # by the grid stage, which knows the run's geometry.
    exemplar_box: Values = field(default=None, metadata=stored("cell", "e", "box", dtype="int32"))

    @property
    def cells(self) -> int:
        return self.size * self.size

    def occupied(self) -> np.ndarray:
        return np.flatnonzero(np.asarray(self.count) > 0)


class GridStore(AtlasGroup):
    @property
    def layer(self) -> str:
        return self.attrs["layer"]

    @property
    def levels(self) -> list[int]:
        return list(self.attrs["levels"])

    @property
    def run_url(self) -> str:
        """The run store the grid was made from."""
        return self.attrs["run"]

    @property
    def class_names(self) -> list[str]:
        return list(self.attrs["class_names"])

    def read_level(self, size: int) -> GridLevel:
        """A level, lazily (its arrays are read where sliced)."""
        return read_record(GridLevel, self.level_group(size))

    def whitening(self) -> np.ndarray:
        return self.group["whitening"][:]

    def exemplar_samples(self, per_cell: int, levels: Sequence[int] | None = None) -> list[int]:
        """The first ``per_cell`` exemplars of every occupied cell of ``levels`` (default:
        every level), each sample once, in level then cell order."""
        seen: dict[int, None] = {}
        for size in self.levels if levels is None else levels:  # an unknown level: DataError
            exemplars = self.read_level(size).exemplar[:, :per_cell]
            seen.update(dict.fromkeys(int(s) for s in exemplars[exemplars >= 0]))
        return list(seen)


def write_grid(
    url: str, levels: Mapping[int, GridLevel], whitening: np.ndarray, attrs: Mapping[str, Any]
) -> GridStore:
    """Write grid levels (each with its exemplar boxes) and the layer's whitening."""
    group = open_group(url, mode="w", zarr_format=3)
    for size, level in levels.items():
        write_record(group.create_group(str(size)), level, chunk_rows=CHUNK_ROWS)
    write_arrays(group, {"whitening": (whitening.astype(np.float32), ("channel", "channel_b"))})
    store = GridStore(group, url)
    store.finish({"levels": sorted(levels), **attrs})
    return store


def open_grid(url: str) -> GridStore:
    return GridStore(open_existing(url, "grid", "atlas grid"), url)
