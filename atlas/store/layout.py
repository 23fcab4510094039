"""The layout store (``atlas reduce``): where each sample of a run lies in 2-D.

One Zarr v3 group: ``xy[sample, axis]`` float32 in [0, 1] (NaN for samples that were
skipped), ``raw[sample, axis]`` the reducer's own coordinates; attributes give the layer,
the reducer's parameters and the run store (and its identity) they came from.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from atlas.store.base import AtlasGroup, open_existing, open_group, write_arrays


@dataclass(frozen=True)
class Layout:
    xy: np.ndarray  # (N, 2) in [0, 1], NaN where the sample was not laid out
    attrs: dict[str, Any]

    @property
    def layer(self) -> str:
        return self.attrs["layer"]

    @property
    def run_identity(self) -> str | None:
        return self.attrs.get("run_identity")


def write_layout(url: str, xy: np.ndarray, raw: np.ndarray, attrs: Mapping[str, Any]) -> None:
    group = open_group(url, mode="w", zarr_format=3)
    arrays = {"xy": (xy, ("sample", "axis")), "raw": (raw, ("sample", "axis"))}
    write_arrays(group, arrays, chunk_rows=1 << 18, fill_value=np.nan)
    AtlasGroup(group, url).finish(attrs)


def read_layout(url: str) -> Layout:
    """The normalized coordinates and the layout's attributes."""
    group = open_existing(url, "layout", "atlas reduce")
    return Layout(group["xy"][:], dict(group.attrs["atlas"]))
