import os

import pytest

os.environ.setdefault("ATLAS_PROGRESS", "0")


@pytest.fixture(scope="session")
def cnn():
    """The demo CNN at 32 px with random weights (seed 0)."""
    from atlas.config import ModelSpec
    from atlas.models import load_model

    return load_model(
        ModelSpec(arch="atlas.demo.net:DemoCNN", num_classes=10, input_size=32), seed=0
    )


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
    from atlas.stages.extract import extract_store

    spec = ModelSpec(
        arch="atlas.demo.net:DemoCNN",
        num_classes=10,
        input_size=32,
        class_names=sorted(CLASS_NAMES),
    )
    url = str(tmp_path_factory.mktemp("store") / "acts.zarr")
    extract_store(
        str(tiny_world / "train"),
        url,
        spec,
        ExtractConfig(layer="block3", chunk_size=32),
        scheduler="inline",
    )
    return url


@pytest.fixture(scope="session")
def tiny_site(tiny_store, tmp_path_factory):
    """A whole tiny pipeline after extraction, up to the viewer site: reduce, grid,
    render, class atlases, exemplar reports, model report."""
    from atlas.config import (
        AlignConfig,
        AttributeConfig,
        ClassesConfig,
        ExtractConfig,
        GridConfig,
        ImageMapConfig,
        ReduceConfig,
        RenderConfig,
        ReportConfig,
    )
    from atlas.stages.align import align_store
    from atlas.stages.attribute import attribute_store
    from atlas.stages.classes import classes_store
    from atlas.stages.extract import extract_store
    from atlas.stages.grid import grid_store
    from atlas.stages.image_map import image_map_store
    from atlas.stages.reduce import reduce_store
    from atlas.stages.render import render_store
    from atlas.stages.report_model import report_model
    from atlas.stages.viewer import build_viewer
    from atlas.store import open_run
    from atlas.store.classes import write_class_measures

    root = tmp_path_factory.mktemp("pipeline")
    layout, grid = str(root / "layout.zarr"), str(root / "grid.zarr")
    reduce_store(tiny_store, layout, ReduceConfig())
    grid_options = GridConfig(levels=[2, 4, 8], min_count=1, exemplars=3)
    grid_store(tiny_store, layout, grid, grid_options)
    render = RenderConfig(icon_size=16, steps=2, batch_size=64)
    render_store(tiny_store, grid, str(root / "render"), render, scheduler="inline")
    # Another checkpoint of the same images (other random weights), aligned with this one.
    other = str(root / "other.zarr")
    spec = open_run(tiny_store).model_spec()
    extract_store(
        open_run(tiny_store).image_root,
        other,
        spec,
        ExtractConfig(layer="block3", chunk_size=32, seed=1),
        scheduler="inline",
    )
    aligned = root / "aligned"
    align_store(
        tiny_store,
        layout,
        other,
        str(aligned / "layout.zarr"),
        AlignConfig(levels=[4, 8]),
        ReduceConfig(),
        grid_options,
    )
    grid_store(other, str(aligned / "layout.zarr"), str(aligned / "grid.zarr"), grid_options)
    render_store(
        other, str(aligned / "grid.zarr"), str(aligned / "render"), render, scheduler="inline"
    )
    image_map_store(
        tiny_store,
        root / "image-map",
        ImageMapConfig(levels=[2, 4, 8], thumb_size=16),
        ReduceConfig(),
    )
    classes = ClassesConfig(
        classes=["star", "ring"],
        pairs=[("star", "ring")],
        size=3,
        min_count=1,
        mode="topn",
        top_n=3,
    )
    classes_store(
        tiny_store,
        layout,
        grid,
        str(root / "classes"),
        classes,
        reduce_options=ReduceConfig(),
        render_options=render,
        scheduler="inline",
    )
    options = AttributeConfig(
        methods=["saliency", "gradcam"], ig_steps=2, deletion_steps=4, exemplars_per_cell=1
    )
    attribute_store(
        spec, [], root / "exemplars", options, exemplars=grid, image_map=root / "image-map"
    )
    report_model(spec, root / "model-report", ReportConfig(steps=2, icon_size=16, classes=["star"]))
    # Measures of the class atlases, as a stage such as the demo's shortcut writes them.
    write_class_measures(
        root / "measures.json",
        {
            "title": "Made-up measure",
            "note": "Made-up share: a number for the test.",
            "atlases": {"class/star": {"made-up share": 0.25}},
            "tables": [{"title": "A measured table", "header": ["a", "b"], "rows": [["x", "y"]]}],
        },
    )
    build_viewer(
        root / "site",
        run_url=tiny_store,
        grid_url=grid,
        render_dir=root / "render",
        classes_dir=root / "classes",
        class_measures=root / "measures.json",
        exemplar_reports=root / "exemplars",
        model_report=root / "model-report",
        aligned=aligned,
        image_map=root / "image-map",
        title="Tiny atlas",
    )
    return {
        "root": root,
        "site": root / "site",
        "grid": grid,
        "store": tiny_store,
        "other": other,
        "aligned": aligned,
        "image_map": root / "image-map",
    }
