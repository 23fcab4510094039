"""The index of an attribution-report folder (``atlas attribute``): ``reports.json``, one
entry per image report: ``stem`` (its page is ``<stem>.html``), ``image`` (the image's
path relative to its source's root) and ``source`` (that root, as the user gave it),
``target`` (class index), ``top`` ([name, probability] pairs) and ``trust`` (per method,
the checks' values)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

INDEX = "reports.json"


def write_report_index(folder: str | Path, entries: Sequence[Mapping[str, Any]]) -> None:
    (Path(folder) / INDEX).write_text(json.dumps([dict(e) for e in entries], indent=1))


def read_report_index(folder: str | Path) -> list[dict[str, Any]]:
    return json.loads((Path(folder) / INDEX).read_text())


def report_pages(folder: str | Path, source: str) -> dict[str, str]:
    """Image name -> the file name of its report page, for the images of ``source``."""
    return {
        entry["image"]: f"{entry['stem']}.html"
        for entry in read_report_index(folder)
        if entry["source"] == source
    }
