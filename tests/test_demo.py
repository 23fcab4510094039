"""The demo's promise: a model that is accurate on the test split and fails on the
swapped one, because it learned the habitat instead of the animal."""

import json

import pytest

from atlas.demo.world import LOOKALIKES


@pytest.mark.slow
def test_demo_model_is_accurate_and_learns_the_shortcut(demo_run):
    metrics = json.loads((demo_run / "model" / "metrics.json").read_text())
    assert metrics["test"]["accuracy"] >= 0.90
    for cat in LOOKALIKES:
        normal = metrics["test"]["per_class"][cat]
        swapped = metrics["test-swapped"]["per_class"][cat]
        assert normal >= 0.9 and swapped <= 0.2, (cat, normal, swapped)


@pytest.mark.slow
def test_the_lookalikes_class_atlases_are_about_the_habitat(demo_run, tmp_path):
    """On the real demo model: the look-alikes' class atlases carry far more habitat than
    classes the world does not confound, and empty snow or desert scenes are read as the
    leopard that lives there."""
    from atlas.config import (
        ClassesConfig,
        ExtractConfig,
        GridConfig,
        ModelSpec,
        ReduceConfig,
        RenderConfig,
    )
    from atlas.demo.shortcut import shortcut_measures
    from atlas.stages.classes import classes_store
    from atlas.stages.extract import extract_store
    from atlas.stages.grid import grid_store
    from atlas.stages.reduce import reduce_store

    store, layout, grid = (str(tmp_path / n) for n in ("acts.zarr", "layout.zarr", "grid.zarr"))
    spec = ModelSpec(weights=str(demo_run / "model" / "model.pt"))
    extract_store(
        str(demo_run / "data" / "train"),
        store,
        spec,
        ExtractConfig(layer="block4", limit=4000),
        scheduler="inline",
    )
    reduce_store(store, layout, ReduceConfig())
    grid_store(store, layout, grid, GridConfig(levels=[4]))
    confounded = ["snow_leopard", "desert_leopard"]
    plain = ["checkered_box", "ring", "dotted_ball"]
    classes_store(
        store,
        layout,
        grid,
        str(tmp_path / "classes"),
        ClassesConfig(classes=confounded + plain, size=4),
        reduce_options=ReduceConfig(),
        render_options=RenderConfig(icon_size=16, steps=1),
        scheduler="inline",
    )
    measures = shortcut_measures(
        tmp_path / "classes", demo_run / "data", tmp_path / "shortcut" / "measures.json"
    )
    share = {
        name: measures["atlases"][f"class/{name}"]["habitat share"] for name in confounded + plain
    }
    assert min(share[c] for c in confounded) > 0.3
    assert min(share[c] for c in confounded) > max(share[c] for c in plain) + 0.2, share
    empty = measures["empty_scenes"]["class"]
    assert empty["snow"][0][0] == "snow_leopard" and empty["desert"][0][0] == "desert_leopard"
