"""The viewer's front-end library, OpenSeadragon, from npm: the project's own install
(``npm ci``, as ``make`` runs it) when there is one, else the package fetched once from the
npm registry into the user's cache, checked against the integrity hash that
``package-lock.json`` pins. A ``pip install`` user thus gets a working site without npm.
Never from a CDN at view time, never committed.
"""

from __future__ import annotations

import base64
import hashlib
import io
import os
import shutil
import tarfile
import urllib.request
from pathlib import Path

from atlas.errors import AtlasError

NAME, VERSION = "openseadragon", "6.1.1"
# From package-lock.json (a test checks they agree).
INTEGRITY = (
    "sha512-g4iKe2q8B642SaBT3+x4ZF3/8b1TxPPydyjmtrOLgDrlYWMKd9ZXM+1Cb/xa9DVySkvs/7l6HR1nHKf"
    "D5F3Tsw=="
)
REGISTRY = "https://registry.npmjs.org"
BUILD = Path("build") / "openseadragon"  # the library's files inside the package


def openseadragon(cache: str | Path | None = None) -> Path:
    """The folder of OpenSeadragon's built files (the script and its images)."""
    for folder in [Path.cwd(), *Path(__file__).resolve().parents]:
        candidate = folder / "node_modules" / NAME / BUILD
        if candidate.is_dir():
            return candidate
    cached = _cache(cache) / f"{NAME}-{VERSION}"
    if not (cached / BUILD).is_dir():
        _fetch(cached)
    return cached / BUILD


def _cache(cache: str | Path | None) -> Path:
    if cache is not None:
        return Path(cache)
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "atlas"


def _fetch(folder: Path) -> None:
    url = f"{REGISTRY}/{NAME}/-/{NAME}-{VERSION}.tgz"
    try:
        with urllib.request.urlopen(url, timeout=60) as response:
            data = response.read()
    except OSError as err:
        raise AtlasError(
            f"OpenSeadragon {VERSION} is not installed and cannot be fetched from {url} ({err}): "
            "run `npm ci` in the project folder"
        ) from None
    digest = "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()
    if digest != INTEGRITY:
        raise AtlasError(f"{url} does not match the integrity package-lock.json pins")
    partial = folder.with_name(folder.name + ".part")
    shutil.rmtree(partial, ignore_errors=True)
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as archive:
        archive.extractall(partial, filter="data")
    shutil.move(partial / "package", folder)
    shutil.rmtree(partial, ignore_errors=True)
