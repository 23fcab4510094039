"""Credits of images that may be shown only with them (CC-BY's condition): a
``credits.csv`` in an image folder (``path,author,license,source``, paths relative to the
folder) names who made each image, under which licence, and where it came from. Every page
that shows an image of such a folder, or a crop of it, shows its credit beside it, as
text; the site's ``credits.html`` lists them all.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

from atlas.errors import DataError

CREDITS = "credits.csv"
FIELDS = ("path", "author", "license", "source")


@dataclass(frozen=True)
class Credit:
    """Who made a file, under which licence, and where it came from."""

    author: str
    license: str
    source: str

    def as_dict(self) -> dict[str, str]:
        return asdict(self)

    def text(self) -> str:
        """One line: ``author, licence, source``."""
        return ", ".join(part for part in (self.author, self.license, self.source) if part)


def write_credits(path: str | Path, credits: Iterable[tuple[str, Credit]]) -> None:
    """``credits.csv`` of (path relative to its folder, credit) pairs."""
    with Path(path).open("w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(FIELDS)
        for name, credit in credits:
            writer.writerow([name, credit.author, credit.license, credit.source])


def read_credits(folder: str | Path) -> dict[str, Credit]:
    """``{image path relative to the folder: Credit}`` from the folder's ``credits.csv``;
    a :class:`DataError` when there is none or it lacks a column."""
    path = Path(folder) / CREDITS
    if not path.is_file():
        raise DataError(f"no {CREDITS} in {folder}: photos cannot be shown without credits")
    with path.open(newline="") as file:
        reader = csv.DictReader(file)
        missing = [name for name in FIELDS if name not in (reader.fieldnames or [])]
        if missing:
            raise DataError(f"{path} lacks the column(s) {', '.join(missing)} (has: {FIELDS})")
        return {row["path"]: Credit(row["author"], row["license"], row["source"]) for row in reader}


def credits_in(root: str | Path | None) -> dict[str, Credit]:
    """The credits of an image root: those of its ``credits.csv`` where it is a local
    folder that has one, else none (most data sets carry none)."""
    if root is None or "://" in str(root) or not (Path(root) / CREDITS).is_file():
        return {}
    return read_credits(root)


def source_link(source: str) -> str | None:
    """A credit's source as a link target: only a web address (http or https)."""
    return source if source.startswith(("https://", "http://")) else None


def credit_entry(credits: Mapping[str, Credit] | None, name: str) -> dict:
    """What a page's entry of image ``name`` adds for its credit: ``{"credit": fields}``,
    or nothing where it has none (the entries of images without credits stay as they
    were)."""
    credit = (credits or {}).get(str(name))
    if credit is None:
        return {}
    return {"credit": credit.as_dict() | {"link": source_link(credit.source)}}
