"""How every store of a run is opened and written: one opener for any store URL, typed
records of arrays with named dimensions, and the config record each output carries.

A store URL is a local path or any fsspec URL (``file://``, ``s3://``, ``memory://``).

Each store module declares what a group of its format holds once, as a :class:`Record`:
a frozen dataclass whose :func:`stored` fields are the group's arrays (with their
dimension names, and their dtype where the format fixes it) and whose :data:`ATTRIBUTE`
fields are the group's attributes. :func:`write_record` writes one; :func:`read_record`
opens one lazily: its array fields are then Zarr arrays, read only where sliced
(``level.mean[:]``, ``layer.acts[rows]``), and :meth:`Record.load` reads them all.
Nothing outside :mod:`atlas.store` spells an array's name.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any, Self

import numpy as np
import zarr

from atlas.errors import DataError
from atlas.version import package_version

CONFIG_RECORD = "atlas-config.yaml"  # the resolved config written beside a folder output
ArraySpec = tuple[np.ndarray, Sequence[str]]  # values and their dimension names
Values = Any  # an array field: an np.ndarray in memory, or a zarr.Array read when sliced


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


def stored(*dims: str, dtype: str | type | None = None, fill: Any = None) -> dict[str, Any]:
    """The metadata of a record field that is an array of the group, for
    ``field(metadata=stored(...))``: its dimension names ``dims``, its ``dtype`` where the
    format fixes one (``str``: variable-length text), the ``fill`` of unwritten chunks. An
    optional array (``field(default=None, ...)``) may be absent: a run without
    attribution, an older store."""
    return {"dims": tuple(dims), "dtype": dtype, "fill": fill}


ATTRIBUTE = {"attribute": True}  # the metadata of a record field that is a group attribute


class Record:
    """Base of the typed records of :mod:`atlas.store` (frozen dataclasses made of
    :func:`stored` and :data:`ATTRIBUTE` fields)."""

    @classmethod
    def array_fields(cls) -> dict[str, dict[str, Any]]:
        """Array name -> its ``dims``, ``dtype`` and ``fill``, in the order written."""
        return {f.name: dict(f.metadata) for f in fields(cls) if "dims" in f.metadata}

    @classmethod
    def attribute_fields(cls) -> list[str]:
        return [f.name for f in fields(cls) if f.metadata.get("attribute")]

    @classmethod
    def dims(cls, name: str) -> tuple[str, ...]:
        return cls.array_fields()[name]["dims"]

    def arrays(self) -> dict[str, ArraySpec]:
        """The record's arrays that are present: name -> (values, dimension names)."""
        return {
            name: (getattr(self, name), spec["dims"])
            for name, spec in self.array_fields().items()
            if getattr(self, name) is not None
        }

    def load(self, *names: str) -> Self:
        """This record with its arrays (or the ``names`` ones) read into memory."""
        chosen = names or [n for n in self.array_fields() if getattr(self, n) is not None]
        return replace(self, **{name: np.asarray(getattr(self, name)[...]) for name in chosen})


def write_record(
    group: zarr.Group, record: Record, *, chunk_rows: int | None = None, fill_value=None
) -> None:
    """Write ``record`` into ``group``: its attributes, then its present arrays (chunked as
    :func:`write_arrays` does)."""
    for name in record.attribute_fields():
        group.attrs[name] = getattr(record, name)
    write_arrays(group, record.arrays(), chunk_rows=chunk_rows, fill_value=fill_value)


def read_record(kind: type[Record], group: zarr.Group, **values: Any):
    """The record of type ``kind`` that ``group`` holds, lazily: array fields are the Zarr
    arrays (None for an optional one the group lacks), attribute fields the group's
    attributes; ``values`` sets any other fields."""
    present = set(group.array_keys())
    arrays = {name: group[name] if name in present else None for name in kind.array_fields()}
    attrs = {name: group.attrs[name] for name in kind.attribute_fields() if name not in values}
    return kind(**arrays, **attrs, **values)


def create_record_arrays(
    group: zarr.Group, kind: type[Record], shapes: Mapping[str, tuple], chunks: Mapping[str, tuple]
) -> None:
    """Create the empty arrays of ``kind`` named in ``shapes`` (in the record's order), each
    with its declared dtype and fill, and the chunks given."""
    for name, spec in kind.array_fields().items():
        if name in shapes:
            create_array(
                group, name, shapes[name], chunks[name], spec["dtype"], spec["dims"], spec["fill"]
            )


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
