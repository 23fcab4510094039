"""Reading Qt's binary resource bundles (``.rcc``), where Debian's GCompris data keeps
its photographs.

Written here rather than through PySide6 (whose ``QResource`` reads these bundles) because
that would add a 100 MB GUI toolkit to read one small format. The format, as Qt's own
``rcc`` tool writes it (versions 1 to 3):

- a 20-byte header (24 from version 3): the magic ``qres``, then big-endian u32 version,
  tree offset, data offset and names offset (and a u32 of flags from version 3);
- the tree: fixed-size nodes (14 bytes, 22 from version 2, which adds a u64 modification
  time), node 0 the root. A node is u32 name offset, u16 flags, then for a directory u32
  child count and u32 index of its first child (children are consecutive), for a file u16
  territory, u16 language and u32 data offset;
- names: u16 length, u32 hash, then the name in UTF-16BE;
- data: u32 length, then the bytes; flag 1 marks zlib (``qCompress``: a u32 of the
  uncompressed size before the zlib stream), flag 4 zstd.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

from atlas.errors import DataError

MAGIC = b"qres"
DIRECTORY, ZLIB, ZSTD = 2, 1, 4


def read_rcc(path: str | Path, blob: bytes | None = None) -> dict[str, bytes]:
    """Every file of the bundle at ``path`` (or of its bytes ``blob``, ``path`` then only
    naming it): ``{"/dir/name": contents}``, decompressed. A :class:`DataError` when the
    file is not a readable bundle."""
    path = Path(path)
    blob = path.read_bytes() if blob is None else blob
    if blob[:4] != MAGIC or len(blob) < 20:
        raise DataError(f"{path} is not a Qt resource bundle (no 'qres' header)")
    version, tree, data, names = struct.unpack(">IIII", blob[4:20])
    if version not in (1, 2, 3):
        raise DataError(f"{path}: Qt resource version {version} (readable: 1, 2, 3)")
    node_size = 14 if version == 1 else 22
    files: dict[str, bytes] = {}
    try:
        _walk(blob, 0, "", tree, data, names, node_size, files, path)
    except (struct.error, zlib.error, UnicodeDecodeError) as error:
        raise DataError(f"{path}: damaged Qt resource bundle ({error})") from None
    return files


def _walk(blob, index, prefix, tree, data, names, node_size, files, path) -> None:
    start = tree + index * node_size
    name_offset, flags = struct.unpack(">IH", blob[start : start + 6])
    name = _name(blob, names + name_offset) if index else ""
    if flags & DIRECTORY:
        count, first = struct.unpack(">II", blob[start + 6 : start + 14])
        for child in range(first, first + count):
            _walk(blob, child, f"{prefix}{name}/", tree, data, names, node_size, files, path)
        return
    (offset,) = struct.unpack(">I", blob[start + 10 : start + 14])
    (length,) = struct.unpack(">I", blob[data + offset : data + offset + 4])
    contents = blob[data + offset + 4 : data + offset + 4 + length]
    if len(contents) != length:
        raise struct.error(f"{prefix}{name} runs past the end of the file")
    if flags & ZSTD:
        raise DataError(f"{path}: {prefix}{name} is zstd-compressed (readable: zlib, none)")
    files[prefix + name] = zlib.decompress(contents[4:]) if flags & ZLIB else contents


def _name(blob: bytes, at: int) -> str:
    (length,) = struct.unpack(">H", blob[at : at + 2])
    return blob[at + 6 : at + 6 + 2 * length].decode("utf-16-be")
