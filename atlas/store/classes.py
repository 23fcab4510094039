"""What the class-atlas stage writes, and the measures other stages add to it.

Under the stage's output folder:

- ``classes.zarr``: one group per atlas, ``class/<name>``, ``pair/<a>__<b>`` and
  ``compare/<name>`` (the class under the comparison checkpoint), each holding
  ``count[cell]``, ``strength[cell, class]``, ``exemplar[cell, e]``,
  ``exemplar_box[cell, e, box]``, ``icon[cell, y, x, rgb]``, ``icon_key[cell]``,
  ``objective[cell]``, ``member[member]`` (sample indices into the run store),
  ``member_xy[member, axis]`` and ``member_strength[member, class]``
  (:class:`ClassAtlasRecord`), with the atlas's summary as attributes; the root's
  attributes name the run stores and settings;
- ``report.json``: the summaries of every atlas, the pair rankings, the comparisons.

Class measures (``measures.json``, written by any stage that measures class atlases, such
as the demo's shortcut stage) are numbers per atlas with a title and a note, plus tables,
for the site to show beside the atlases: ``{"title", "note", "atlases": {group: {measure:
value}}, "tables": [{"title", "header": [...], "rows": [[...]]}]}``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from atlas.store.base import AtlasGroup, open_existing, open_group, write_arrays
from atlas.store.records import Record, Values, read_record, stored

KINDS = ("class", "pair", "compare")
MEASURES = "measures.json"  # the name of class measures in an output folder


@dataclass(frozen=True)
class ClassAtlasRecord(Record):
    """One class atlas as stored: its cells (ids as in the grid store), their icons, and
    its members; ``summary`` the atlas's attributes (``size``, ``members``, ``cells``,
    ``strength``, ``classes``, and for a pair its ``ranking``)."""

    count: Values = field(metadata=stored("cell", dtype="int64"))
    strength: Values = field(metadata=stored("cell", "class", dtype="float32"))  # summed
    exemplar: Values = field(metadata=stored("cell", "e", dtype="int64"))  # samples; -1 pads
    exemplar_box: Values = field(metadata=stored("cell", "e", "box", dtype="int32"))  # x0 y0 x1 y1
    icon: Values = field(metadata=stored("cell", "y", "x", "rgb", dtype="uint8"))
    icon_key: Values = field(metadata=stored("cell", dtype=str))  # "" for empty cells
    objective: Values = field(metadata=stored("cell", dtype="float32"))
    member: Values = field(metadata=stored("member", dtype="int64"))  # samples of the run
    member_xy: Values = field(metadata=stored("member", "axis", dtype="float32"))
    member_strength: Values = field(metadata=stored("member", "class", dtype="float32"))
    summary: dict[str, Any] = field(default_factory=dict)

    @property
    def size(self) -> int:
        return int(self.summary["size"])

    @property
    def classes(self) -> list[str]:
        return list(self.summary["classes"])


class ClassesStore(AtlasGroup):
    """``classes.zarr`` and ``report.json`` of a class-atlas output folder."""

    @property
    def report(self) -> dict[str, Any]:
        return json.loads((self.folder / "report.json").read_text())

    @property
    def layer(self) -> str:
        """The layer the atlases are of."""
        return self.attrs["layer"]

    def names(self, kind: str) -> list[str]:
        """The atlases of one kind (``class``, ``pair`` or ``compare``)."""
        return sorted(self.group[kind].group_keys()) if kind in self.group else []

    def read_atlas(self, kind: str, name: str) -> ClassAtlasRecord:
        """One atlas, lazily (its arrays are read where sliced)."""
        group = self.group[f"{kind}/{name}"]
        return read_record(ClassAtlasRecord, group, summary=dict(group.attrs))

    def run_url(self, kind: str) -> str:
        """The run store an atlas of ``kind`` was made from."""
        return self.attrs["compare_run" if kind == "compare" else "run"]

    # Writing -----------------------------------------------------------------------------

    def write_atlas(self, kind: str, name: str, atlas: ClassAtlasRecord) -> None:
        """Write one atlas: its arrays (one chunk each), then its summary."""
        group = self.group.create_group(f"{kind}/{name}")
        write_arrays(group, atlas.arrays())
        group.attrs.update(dict(atlas.summary))

    def finish_with_report(self, attrs: Mapping[str, Any], report: Mapping[str, Any]) -> None:
        self.finish(attrs)
        (self.folder / "report.json").write_text(json.dumps(report, indent=2) + "\n")


def create_classes(out_dir: str | Path) -> ClassesStore:
    url = str(Path(out_dir) / "classes.zarr")
    return ClassesStore(open_group(url, mode="w", zarr_format=3), url)


def open_classes(out_dir: str | Path) -> ClassesStore:
    url = str(Path(out_dir) / "classes.zarr")
    return ClassesStore(open_existing(url, "classes", "atlas classes"), url)


def write_class_measures(path: str | Path, measures: Mapping[str, Any]) -> None:
    """Write class measures (see the module docstring for the format)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(dict(measures), indent=2) + "\n")


def read_class_measures(path: str | Path) -> dict[str, Any] | None:
    """The class measures in ``path``: a measures file, or a folder holding
    ``measures.json`` (None when the folder has none)."""
    path = Path(path)
    if path.is_dir():
        path = path / MEASURES
        if not path.is_file():
            return None
    measures = json.loads(path.read_text())
    return {"title": "", "note": "", "atlases": {}, "tables": [], **measures}
