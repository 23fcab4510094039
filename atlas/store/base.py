"""How every store of a run is opened and written: one opener for any store URL, one
helper for arrays with named dimensions (the typed records of :mod:`atlas.store.records`
are written through it), and the config record each output carries.

A store URL is a local path or any fsspec URL (``file://``, ``s3://``, ``memory://``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import zarr

from atlas.errors import DataError
from atlas.version import package_version

CONFIG_RECORD = "atlas-config.yaml"  # the resolved config written beside a folder output
ArraySpec = tuple[np.ndarray, Sequence[str]]  # values and their dimension names


def open_group(url: str | Path, **kwargs) -> zarr.Group:
    """``zarr.open_group`` for every store. A ``file://`` URL goes in as the local path it
    names: Zarr writes local paths directly, creating folders, which its fsspec route for
    ``file://`` does not."""
    url = str(url)
    local = url[len("file://") :] if url.startswith("file://") else url
    return zarr.open_group(local, **kwargs)


@dataclass
class AtlasGroup:
    """A store of ours: the Zarr ``group`` at ``url``, with what made it in its ``atlas``
    attribute (written last, so a store without it is an unfinished one)."""

    group: zarr.Group
    url: str

    @property
    def attrs(self) -> dict[str, Any]:
        return dict(self.group.attrs["atlas"])

    @property
    def folder(self) -> Path:
        """The folder the store lies in (with the files written beside it)."""
        return Path(self.url).parent

    def level_group(self, size: int) -> zarr.Group:
        """The subgroup of a store made of levels (named by their size); a
        :class:`DataError` naming the levels there are when it has no level ``size``."""
        if str(size) not in self.group:
            levels = ", ".join(map(str, self.attrs["levels"]))
            raise DataError(f"{self.url} has no level {size} (levels: {levels})")
        return self.group[str(size)]

    def finish(self, attrs: Mapping[str, Any]) -> None:
        self.group.attrs["atlas"] = {"version": package_version(), **attrs}


def group_exists(url: str | Path) -> bool:
    try:
        open_group(url, mode="r")
    except (FileNotFoundError, zarr.errors.GroupNotFoundError):
        return False
    return True


def open_existing(url: str | Path, what: str, command: str) -> zarr.Group:
    """An existing atlas store for reading; a :class:`DataError` naming the stage that
    makes it when there is none (or the group is not one of ours)."""
    try:
        group = open_group(url, mode="r")
    except (FileNotFoundError, zarr.errors.GroupNotFoundError):
        raise DataError(f"no {what} store at {url} (run `{command}` first)") from None
    if "atlas" not in group.attrs:
        raise DataError(f"{url} is not an atlas {what} store")
    return group


def create_array(
    group: zarr.Group, name: str, shape, chunks, dtype, dims: Sequence[str], fill_value=None
) -> zarr.Array:
    """An empty array with named dimensions (``str`` dtype: variable-length strings)."""
    extra = {} if fill_value is None else {"fill_value": fill_value}
    return group.create_array(
        name, shape=shape, chunks=chunks, dtype=dtype, dimension_names=tuple(dims), **extra
    )


def write_arrays(
    group: zarr.Group,
    arrays: Mapping[str, ArraySpec],
    *,
    chunk_rows: int | None = None,
    fill_value=None,
) -> None:
    """Write each ``name: (values, dimension names)`` as an array of ``group``: chunked by
    ``chunk_rows`` rows (None: one chunk for the whole array). Text becomes Zarr strings."""
    for name, (values, dims) in arrays.items():
        values = np.asarray(values)
        text = values.dtype.kind in "UO"
        if not values.size:
            chunks = None
        elif chunk_rows is None:
            chunks = values.shape
        else:
            chunks = (min(len(values), chunk_rows), *values.shape[1:])
        array = create_array(
            group, name, values.shape, chunks, str if text else values.dtype, dims, fill_value
        )
        array[...] = values.astype(str) if text else values


def record_config(out: str | Path, record: Mapping[str, Any], *, store: bool) -> None:
    """Write a config record (:meth:`atlas.config.Config.record`) where an output keeps it:
    a store's root attributes (``atlas_config``), or ``atlas-config.yaml`` in a folder."""
    if store:
        open_group(out, mode="r+").attrs["atlas_config"] = dict(record)
        return
    path = Path(out) / CONFIG_RECORD
    path.parent.mkdir(parents=True, exist_ok=True)
    header = f"# written by atlas {record['version']}; config hash {record['hash']}\n"
    path.write_text(header + record["yaml"])


def write_metrics(path: str | Path, values: Mapping[str, Any]) -> None:
    """A JSON of numbers (nested by name) that DVC shows with ``dvc metrics`` and ``dvc exp
    show``: what a change to a stage should move."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(dict(values), indent=2, sort_keys=True) + "\n")
