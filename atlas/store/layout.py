"""The layout store (``atlas reduce``): where each sample of a run lies in 2-D.

One Zarr v3 group: ``xy[sample, axis]`` float32 in [0, 1] (NaN for samples that were
skipped), ``raw[sample, axis]`` the reducer's own coordinates; attributes give the layer,
the reducer's parameters and the run store (and its identity) they came from.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from atlas.store.base import AtlasGroup, open_existing, open_group
from atlas.store.records import Record, Values, read_record, stored, write_record

CHUNK_ROWS = 1 << 18  # samples per chunk


@dataclass(frozen=True)
class Layout(Record):
    """A layout as read (:func:`read_layout`): ``xy`` in memory, ``raw`` lazily."""

    xy: Values = field(metadata=stored("sample", "axis", dtype="float32"))  # in [0, 1]; NaN: none
    raw: Values = field(metadata=stored("sample", "axis", dtype="float32"))  # the reducer's own
    attrs: dict[str, Any] = field(default_factory=dict)

    @property
    def layer(self) -> str:
        return self.attrs["layer"]

    @property
    def run_identity(self) -> str | None:
        return self.attrs.get("run_identity")

    @property
    def run_url(self) -> str:
        """The run store whose layer was laid out."""
        return self.attrs["run"]

    @property
    def levels(self) -> list[int] | None:
        """The grid levels an aligned layout is compared at (None for a run's layout)."""
        return self.attrs.get("levels")

    @property
    def alignment(self) -> dict[str, Any] | None:
        """An aligned layout's figures (:class:`atlas.stages.align.Alignment` as a dict)."""
        return self.attrs.get("alignment")

    @property
    def aligned_with(self) -> dict[str, Any] | None:
        """What an aligned layout is aligned with: ``run``, ``layout`` and ``layer``."""
        return self.attrs.get("aligned_with")


def write_layout(url: str, xy: np.ndarray, raw: np.ndarray, attrs: Mapping[str, Any]) -> None:
    group = open_group(url, mode="w", zarr_format=3)
    write_record(group, Layout(xy, raw), chunk_rows=CHUNK_ROWS, fill_value=np.nan)
    AtlasGroup(group, url).finish(attrs)


def read_layout(url: str) -> Layout:
    """The normalized coordinates and the layout's attributes."""
    group = open_existing(url, "layout", "atlas reduce")
    return read_record(Layout, group, attrs=dict(group.attrs["atlas"])).load("xy")
