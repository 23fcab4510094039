"""Typed records: how each store module declares, once, what a group of its format holds.

A :class:`Record` is a frozen dataclass whose ``field(metadata=stored(...))`` fields are
the group's arrays (with their dimension names, and their dtype where the format fixes
it) and whose ``field(metadata=ATTRIBUTE)`` fields are the group's attributes.
:func:`write_record` writes one; :func:`read_record` opens one lazily: its array fields
are then Zarr arrays, read only where sliced (``level.mean[:]``, ``layer.acts[rows]``),
and :meth:`Record.load` reads them all. Nothing outside :mod:`atlas.store` spells an
array's name.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import fields, replace
from typing import Any, Self

import numpy as np
import zarr

from atlas.store.base import ArraySpec, create_array, write_arrays

Values = Any  # an array field: an np.ndarray in memory, or a zarr.Array read when sliced


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
