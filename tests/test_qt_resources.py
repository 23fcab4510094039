"""Qt resource bundles and the demo's credited photos, on bundles written here in Qt's
own layout (a writer of the format below, independent of the reader)."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from atlas.credits import read_credits
from atlas.demo.photos import collect_photos, is_open, parse_credits
from atlas.errors import DataError
from atlas.qt_resources import read_rcc


def write_rcc(path, tree: dict, version: int = 2, compress: bool = True) -> None:
    """A bundle of ``tree`` (nested dicts of name -> bytes), breadth first as Qt's rcc
    lays it out: each directory's children consecutive."""
    names, data, nodes = bytearray(), bytearray(), []
    name_at: dict[str, int] = {}

    def name(text: str) -> int:
        if text not in name_at:
            name_at[text] = len(names)
            encoded = text.encode("utf-16-be")
            names.extend(struct.pack(">HI", len(text), hash(text) & 0xFFFFFFFF) + encoded)
        return name_at[text]

    nodes.append(None)  # the root, filled when its children are placed
    pending = [(0, tree)]
    while pending:
        index, folder = pending.pop(0)
        first = len(nodes)
        items = sorted(folder.items())
        nodes.extend([None] * len(items))
        label = 0 if index == 0 else nodes[index][0]
        nodes[index] = (label, 2, len(items), first)
        for offset, (child, value) in enumerate(items):
            if isinstance(value, dict):
                nodes[first + offset] = (name(child), 2, 0, 0)
                pending.append((first + offset, value))
            else:
                packed = struct.pack(">I", len(value)) + zlib.compress(value) if compress else value
                nodes[first + offset] = (name(child), 1 if compress else 0, len(data), None)
                data.extend(struct.pack(">I", len(packed)) + packed)
    tail = b"\0" * 8 if version >= 2 else b""
    tree_bytes = bytearray()
    for label, flags, a, b in nodes:
        if flags & 2:
            tree_bytes += struct.pack(">IHII", label, flags, a, b) + tail
        else:
            tree_bytes += struct.pack(">IHHHI", label, flags, 0, 0, a) + tail
    header = 20
    tree_at, data_at = header, header + len(tree_bytes)
    names_at = data_at + len(data)
    blob = b"qres" + struct.pack(">IIII", version, tree_at, data_at, names_at)
    path.write_bytes(blob + tree_bytes + data + names)


def webp(colour) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.full((24, 32, 3), colour, np.uint8)).save(buffer, format="WEBP")
    return buffer.getvalue()


README = b"""Copyright: Someone, 2020
License: CC-BY-SA 4.0
Files:
question.svg

Copyright: Ann Example / Wikimedia Commons
Source: https://commons.wikimedia.org/wiki/File:Cat.jpg
License: CC-BY-SA-4.0
Comments: cropping, sharpening
Files: cat.webp

Copyright: Bob
Source: https://example.org/dog
License: CC0-1.0
Files:
dog.webp
fox.webp

Copyright: Carl
Source: https://example.org/owl
License: GPLv2+
Files: owl.webp
"""


@pytest.mark.parametrize("version", [1, 2, 3])
@pytest.mark.parametrize("compress", [True, False])
def test_every_file_of_a_bundle_reads_back(tmp_path, version, compress):
    files = {"a": {"b": {"one.txt": b"first"}, "two.bin": bytes(range(256)) * 3}, "top": b"t"}
    write_rcc(tmp_path / "x.rcc", files, version=min(version, 2), compress=compress)
    if version == 3:  # version 3 adds a flags word after the header's offsets
        blob = bytearray((tmp_path / "x.rcc").read_bytes())
        _, tree, data, names = struct.unpack(">IIII", blob[4:20])
        blob[4:20] = struct.pack(">IIII", 3, tree + 4, data + 4, names + 4)
        blob[20:20] = b"\0\0\0\0"
        (tmp_path / "x.rcc").write_bytes(bytes(blob))
    assert read_rcc(tmp_path / "x.rcc") == {
        "/a/b/one.txt": b"first",
        "/a/two.bin": bytes(range(256)) * 3,
        "/top": b"t",
    }


def test_not_a_bundle_and_a_truncated_one_say_so(tmp_path):
    (tmp_path / "no.rcc").write_bytes(b"PK\x03\x04 not qt")
    with pytest.raises(DataError, match="not a Qt resource bundle"):
        read_rcc(tmp_path / "no.rcc")
    write_rcc(tmp_path / "cut.rcc", {"f": b"x" * 1000}, compress=False)
    blob = (tmp_path / "cut.rcc").read_bytes()
    (tmp_path / "cut.rcc").write_bytes(blob[: len(blob) // 2])
    with pytest.raises(DataError, match="damaged"):
        read_rcc(tmp_path / "cut.rcc")


def test_credits_parse_every_block_and_field():
    credits = parse_credits(README.decode())
    assert set(credits) == {"question.svg", "cat.webp", "dog.webp", "fox.webp", "owl.webp"}
    cat = credits["cat.webp"]
    assert (cat.author, cat.license, cat.source) == (
        "Ann Example / Wikimedia Commons",
        "CC-BY-SA-4.0",  # the Comments line after it is a field of its own
        "https://commons.wikimedia.org/wiki/File:Cat.jpg",
    )
    assert credits["fox.webp"] == credits["dog.webp"]
    assert credits["question.svg"].source == ""


@pytest.mark.parametrize(
    ("licence", "shown"),
    [
        ("Public Domain", True),
        ("public domain", True),
        ("CC0-1.0", True),
        ("CC-BY 2.0", True),
        ("CC-BY-SA 4.0", True),
        ("cc-by-sa-3.0", True),
        ("GPLv2+", False),
        ("CC-BY-NC 4.0", False),
        ("", False),
    ],
)
def test_only_licences_that_allow_showing_with_credit(licence, shown):
    assert is_open(licence) is shown


def test_collect_keeps_credited_open_photos_with_their_credits(tmp_path):
    resource = {
        "README": README,
        "question.svg": b"<svg/>",
        "cat.webp": webp((200, 0, 0)),
        "dog.webp": webp((0, 200, 0)),
        "fox.webp": webp((0, 0, 200)),
        "owl.webp": webp((9, 9, 9)),
        "uncredited.webp": webp((1, 2, 3)),
    }
    write_rcc(tmp_path / "animals.rcc", {"gcompris": {"res": resource}})
    photos = collect_photos([tmp_path / "animals.rcc"], tmp_path / "out")
    assert [p.path for p in photos] == ["animals/cat.webp", "animals/dog.webp", "animals/fox.webp"]
    assert (tmp_path / "out/animals/dog.webp").read_bytes() == resource["dog.webp"]
    assert read_credits(tmp_path / "out") == {p.path: p.credit for p in photos}
    with pytest.raises(DataError, match="credits"):
        read_credits(tmp_path / "nothing")


def test_an_undecodable_photo_is_named(tmp_path):
    resource = {"README": README, "cat.webp": b"RIFF\0\0\0\0WEBPbroken"}
    write_rcc(tmp_path / "bad.rcc", {"res": resource})
    with pytest.raises(DataError, match=r"bad.rcc:/res/cat.webp is not a readable image"):
        collect_photos([tmp_path / "bad.rcc"], tmp_path / "out")
