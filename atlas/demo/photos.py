"""The real-network demo's photographs: credited photos out of Debian's GCompris data.

Debian's ``gcompris-qt-data`` keeps each activity's pictures in a Qt resource bundle
(:mod:`atlas.qt_resources`), with a ``README`` beside them in the Debian copyright style:
blocks of ``Copyright:``, ``License:``, ``Source:`` and ``Files:`` separated by blank
lines. A photograph is a raster file credited with a source URL under a licence that
lets us show it with its credit (public domain, CC0, CC-BY, CC-BY-SA); drawings (no
source) and pictures under other licences are left out.

:func:`collect_photos` writes the chosen photos as ``<activity>/<name>`` files (their
bytes as shipped) and ``credits.csv`` (``path,author,license,source``): every page that
shows a photo or a crop of it reads its credit from there.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from PIL import Image

from atlas.credits import CREDITS, Credit, write_credits
from atlas.demo.packages import deb_files
from atlas.errors import DataError
from atlas.qt_resources import read_rcc

RASTER = (".webp", ".jpg", ".jpeg", ".png")
BUNDLES = "usr/share/gcompris-qt/rcc/*.rcc"  # where the package keeps its bundles
# Licences under which a photo may be shown with its credit, as the READMEs spell them
# once case, spaces and dashes are folded ("CC-BY-SA 4.0" and "cc-by-sa-4.0" are one).
OPEN_LICENCES = re.compile(r"^(public-?domain|cc0(-1\.0)?|cc-by(-sa)?-\d\.\d)$")
FIELD = re.compile(r"^([A-Z][A-Za-z-]*):[ \t]*(.*)$")  # "Key: value" at a line's start


@dataclass(frozen=True)
class Photo:
    path: str  # relative to the photo folder: <activity>/<name>
    credit: Credit


def parse_credits(text: str) -> dict[str, Credit]:
    """The credit of every file a README names: ``{file name: Credit}``. A field may
    continue on indented lines; ``Files:`` lists names on its line and the lines after."""
    credits: dict[str, Credit] = {}
    for block in re.split(r"\n[ \t]*\n", text):
        fields: dict[str, list[str]] = {}
        current = None
        for line in block.splitlines():
            match = FIELD.match(line)
            if match:
                current = match.group(1).replace("Licence", "License")
                fields.setdefault(current, []).append(match.group(2).strip())
            elif current and line.strip():
                fields[current].append(line.strip())
        names = [entry.split(":")[0].strip() for entry in fields.get("Files", [])]
        credit = Credit(
            author=" ".join(filter(None, fields.get("Copyright", []))),
            license=" ".join(filter(None, fields.get("License", []))),
            source=" ".join(filter(None, fields.get("Source", []))),
        )
        for line in names:
            for name in line.split():
                credits[name] = credit
    return credits


def is_open(licence: str) -> bool:
    """Whether a README's licence lets a photo be shown with its credit."""
    folded = re.sub(r"[\s_]+", "-", licence.strip().lower())
    return bool(OPEN_LICENCES.match(folded))


def photos_in(files: dict[str, bytes]) -> list[tuple[str, bytes, Credit]]:
    """The credited photographs of one bundle's files: (bundle path, bytes, credit), in
    path order."""
    found = []
    for readme in sorted(p for p in files if PurePosixPath(p).name == "README"):
        folder = PurePosixPath(readme).parent
        text = files[readme].decode("utf-8", "replace")
        for name, credit in sorted(parse_credits(text).items()):
            path = str(folder / name)
            if (
                path in files
                and name.lower().endswith(RASTER)
                and credit.source.startswith(("http://", "https://"))
                and is_open(credit.license)
            ):
                found.append((path, files[path], credit))
    return found


def collect_photos(
    bundles: Iterable[str | Path | tuple[str, bytes]], out: str | Path
) -> list[Photo]:
    """Write the credited photos of every bundle (a file, or its name and bytes) under
    ``out`` (``<bundle>/<name>``) and their ``credits.csv``; a photo Pillow cannot decode
    is a :class:`DataError`."""
    out = Path(out)
    photos = []
    named = [(Path(b[0]), b[1]) if isinstance(b, tuple) else (Path(b), None) for b in bundles]
    for bundle, blob in sorted(named, key=lambda pair: pair[0]):
        for path, contents, credit in photos_in(read_rcc(bundle, blob)):
            try:
                with Image.open(io.BytesIO(contents)) as image:
                    image.verify()
            except Exception as error:
                raise DataError(f"{bundle}:{path} is not a readable image ({error})") from None
            relative = f"{bundle.stem}/{PurePosixPath(path).name}"
            (out / bundle.stem).mkdir(parents=True, exist_ok=True)
            (out / relative).write_bytes(contents)
            photos.append(Photo(relative, credit))
    write_credits(out / CREDITS, ((photo.path, photo.credit) for photo in photos))
    return photos


def photos_from_package(deb: str | Path, out: str | Path) -> list[Photo]:
    """:func:`collect_photos` over the resource bundles of Debian's ``gcompris-qt-data``
    package file ``deb``."""
    bundles = list(deb_files(deb, BUNDLES))
    if not bundles:
        raise DataError(f"{deb} holds no {BUNDLES}: not the gcompris-qt-data package")
    return collect_photos(bundles, out)
