import os

import pytest

os.environ.setdefault("ATLAS_PROGRESS", "0")


@pytest.fixture(scope="session")
def tiny_world(tmp_path_factory):
    """A small demo world (32 px, a few images per class) generated once per session."""
    from atlas.demo.world import make_world

    root = tmp_path_factory.mktemp("world")
    make_world(
        root, seed=3, image_size=32, train_per_class=12, test_per_class=5, swapped_per_class=4
    )
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
    """An activation store of the tiny world's training split (DemoCNN, random weights)."""
    from atlas.config import ExtractConfig, ModelSpec
    from atlas.demo.world import CLASS_NAMES
    from atlas.extract import extract

    spec = ModelSpec(
        arch="atlas.demo.net:DemoCNN",
        num_classes=10,
        input_size=32,
        class_names=sorted(CLASS_NAMES),
    )
    url = str(tmp_path_factory.mktemp("store") / "acts.zarr")
    extract(
        str(tiny_world / "train"),
        url,
        spec,
        ExtractConfig(layer="block3", chunk_size=32),
        scheduler="inline",
    )
    return url
