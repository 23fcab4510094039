"""The whole demo pipeline through DVC at a reduced size, and the ImageNet recipe at toy
size on random weights."""

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
import zarr

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent

SMALL = {
    "data": {"train_per_class": 40, "test_per_class": 6, "swapped_per_class": 6},
    "train": {"epochs": 2},
    "grid": {"levels": [4, 8], "min_count": 2},
    "render": {},  # the demo's own recipe: its icons must beat the data here too
    "classes": {
        "classes": ["snow_leopard", "star"],
        "compare_classes": ["snow_leopard"],
        "size": 3,
    },
    "attribute": {"per_class": 1, "layers": ["block3"], "ig_steps": 4, "exemplar_levels": [4, 8]},
    "align": {"levels": [8]},
    "image_map": {"levels": [4, 8]},
    "report": {"steps": 2, "icon_size": 16},
}

UNCONFOUNDED = {
    "data.train_per_class=500": "data.train_per_class=30",
    "data.test_per_class=100": "data.test_per_class=6",
    "data.swapped_per_class=100": "data.swapped_per_class=6",
}


def run(args, cwd, **kwargs):
    env = {"PATH": f"{BIN}:/usr/bin:/bin", "ATLAS_PROGRESS": "0", "HOME": str(cwd)}
    return subprocess.run(
        args, cwd=cwd, env=env, check=True, capture_output=True, text=True, **kwargs
    )


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """A copy of the project (pipeline, configs, the sources DVC hashes) with the demo
    config shrunk, as a git + DVC repository, reproduced once."""
    root = tmp_path_factory.mktemp("project")
    shutil.copytree(ROOT / "atlas", root / "atlas", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(ROOT / "configs", root / "configs")
    shutil.copytree(ROOT / "pipeline", root / "pipeline")
    # The unconfounded world smaller still: its checkpoint's metrics are only passed on.
    pipeline = (ROOT / "dvc.yaml").read_text()
    for full, small in UNCONFOUNDED.items():
        assert full in pipeline, f"dvc.yaml no longer says {full}"
        pipeline = pipeline.replace(full, small)
    # The demo's run only: the real-network run needs the Makefile's downloads.
    stages = yaml.safe_load(pipeline)
    stages["stages"] = {k: v for k, v in stages["stages"].items() if not k.startswith("photos")}
    (root / "dvc.yaml").write_text(yaml.safe_dump(stages, sort_keys=False))
    runs = yaml.safe_load((root / "pipeline" / "runs.yaml").read_text())
    (root / "pipeline" / "runs.yaml").write_text(
        yaml.safe_dump({"runs": {"demo": runs["runs"]["demo"]}}, sort_keys=False)
    )
    config = yaml.safe_load((root / "configs" / "demo.yaml").read_text())
    for section, values in SMALL.items():
        config.setdefault(section, {}).update(values)
    (root / "configs" / "demo.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    run(["git", "init", "-q"], root)
    run(["git", "config", "user.email", "test@example.com"], root)
    run(["git", "config", "user.name", "test"], root)
    run(["dvc", "init", "-q"], root)
    run(["git", "add", "-A"], root)
    run(["git", "commit", "-qm", "pipeline"], root)
    result = run(["dvc", "repro"], root)
    return root, result.stdout


@pytest.mark.slow
def test_every_stage_runs_and_its_outputs_agree(project):
    root, _ = project
    out = root / "outputs" / "demo"
    store = zarr.open_group(str(out / "extract" / "activations.zarr"), mode="r")
    valid = int(store["block4"]["valid"][:].sum())
    assert valid == 400
    grid = zarr.open_group(str(out / "grid.zarr"), mode="r")
    render = zarr.open_group(str(out / "render" / "render.zarr"), mode="r")
    for size in (4, 8):
        count = grid[str(size)]["count"][:]
        raw = zarr.open_group(str(out / "layout.zarr"), mode="r")["xy"][:]
        assert np.isfinite(raw).all() and len(raw) == valid
        assert (
            count.sum() <= valid and count.sum() >= valid - size * size
        )  # min_count drops a few sparse cells
        keys = render[str(size)]["icon_key"][:]
        assert (keys[count > 0] != "").all(), "every cell has an icon"
        assert all((out / "render" / "icons" / f"{k}.png").exists() for k in keys[count > 0])
    site = out / "site"
    atlas = json.loads((site / "atlas.json").read_text())
    assert [level["size"] for level in atlas["levels"]] == [4, 8]
    for block in (site / "cells").rglob("*.json"):
        for cell in json.loads(block.read_text()):
            for exemplar in cell["exemplars"]:
                assert (site / exemplar["crop"]).exists()
                assert exemplar["report"] is None or (site / exemplar["report"]).exists(), (
                    "every exemplar link resolves"
                )
            # the first exemplar of every cell of the reported levels has a report
            assert cell["exemplars"] and cell["exemplars"][0]["report"], cell
            assert cell["icon"] and (site / cell["icon"]).exists()
    for page in ("aligned.html", "aligned.json", "images.html", "image-map/map.json"):
        assert (site / page).exists(), page
    for page in ("index.html", "classes.html", "attribute/index.html", "model/model.html"):
        assert (site / page).exists()
    # Every output says what made it: a record file in folders, attributes in stores.
    for folder in ("data", "model", "render", "classes", "attribute", "exemplars", "model-report"):
        assert "config hash" in (out / folder / "atlas-config.yaml").read_text(), folder
    for name, section in (
        ("extract/activations.zarr", "extract"),
        ("layout.zarr", "reduce"),
        ("grid.zarr", "grid"),
    ):
        recorded = zarr.open_group(str(out / name), mode="r").attrs["atlas_config"]
        assert f"{section}:" in recorded["yaml"] and len(recorded["hash"]) >= 8, name
    exemplar_record = (out / "exemplars" / "atlas-config.yaml").read_text()
    assert "- saliency" in exemplar_record and "- guided_backprop" not in exemplar_record
    report = json.loads((out / "classes" / "report.json").read_text())
    assert set(report["classes"]) == {"snow_leopard", "star"} and set(report["compare"]) == {
        "snow_leopard"
    }
    # The demo's own shortcut stage measures the generic class atlases; the site shows it.
    measures = json.loads((out / "shortcut" / "measures.json").read_text())
    assert set(measures["atlases"]) >= {"class/snow_leopard", "class/star", "compare/snow_leopard"}
    for group, values in measures["atlases"].items():
        assert all(0 <= share <= 1 for share in values.values()), group
    assert "habitat share" in (site / "classes.html").read_text()
    metrics = json.loads((out / "metrics" / "train.json").read_text())
    assert {"train", "test", "test-swapped"} <= set(metrics)
    # Icons that beat the data and fill their tile, at every level (as `dvc metrics` shows).
    rendered = json.loads((out / "metrics" / "render.json").read_text())
    assert set(rendered["median_quality"]) == {"4", "8"}
    assert all(q >= 1.0 for q in rendered["median_quality"].values()), rendered
    assert all(g <= 0.1 for g in rendered["median_grey_share"].values()), rendered


@pytest.mark.slow
def test_a_second_repro_changes_nothing_and_experiments_run(project):
    root, _ = project
    again = run(["dvc", "repro"], root).stdout
    assert "Running stage" not in again
    assert (
        run(["dvc", "status"], root).stdout.strip().endswith("Data and pipelines are up to date.")
    )
    run(["git", "add", "-A"], root)
    run(["git", "commit", "-qm", "outputs"], root)
    experiment = run(["dvc", "exp", "run", "-S", "configs/demo.yaml:grid.min_count=3"], root).stdout
    stages = {
        name.split(":")[-1].split("@")[0]
        for name in re.findall(r"Running stage '([^']+)'", experiment)
    }
    assert "grid" in stages and "viewer" in stages
    assert not stages & {"make-data", "train", "extract", "reduce"}  # upstream of grid is reused


@pytest.mark.slow
def test_the_imagenet_recipe_at_toy_size_on_random_weights(tiny_world, tmp_path):
    from atlas.cli import main

    config = str(ROOT / "configs" / "imagenet-googlenet.yaml")
    toy = ["-s", "model.weights=null", "-s", "model.input_size=64", "-s", "model.resize_size=64"]
    quick_render = ["-s", "render.steps=2", "-s", "render.icon_size=32"]
    store, layout, grid = (
        str(tmp_path / "acts.zarr"),
        str(tmp_path / "layout.zarr"),
        str(tmp_path / "grid.zarr"),
    )
    steps = [
        [
            "extract",
            *toy,
            "-s",
            "extract.chunk_size=64",
            "--images",  # 50 images: GoogLeNet's top-5 attribution is the costly part here
            str(tiny_world / "test"),
            "--out",
            store,
            "--scheduler",
            "inline",
        ],
        ["reduce", "--store", store, "--out", layout],
        ["grid", "-s", "grid.levels=[2,4,8]", "--store", store, "--layout", layout, "--out", grid],
        [
            "render",
            *quick_render,
            "--store",
            store,
            "--grid",
            grid,
            "--out",
            str(tmp_path / "render"),
            "--scheduler",
            "inline",
        ],
        [
            "classes",
            "-s",
            "classes.classes=[class_1]",
            "-s",
            "classes.pairs=[]",
            "-s",
            "classes.mode=topn",
            "-s",
            "classes.top_n=5",
            *quick_render,
            "--store",
            store,
            "--layout",
            layout,
            "--grid",
            grid,
            "--out",
            str(tmp_path / "classes"),
            "--scheduler",
            "inline",
        ],
    ]
    for args in steps:
        assert main([args[0], "--config", config, *args[1:]]) == 0, args[0]
    meta = zarr.open_group(store, mode="r").attrs["atlas"]
    assert (
        meta["identity"]["model"]["arch"] == "googlenet"
        and meta["layers"][0]["name"] == "inception4c"
    )
    assert (
        zarr.open_group(store, mode="r")["inception4c"]["attribution"].shape[1] == 5
    )  # top-5 of 1000 classes
    # Reports on GoogLeNet, whose ReLUs are functions: guided backprop is not the gradient.
    reports = tmp_path / "reports"
    args = [*toy, "-s", "attribute.per_class=null", "-s", "attribute.limit=2"]
    args += ["-s", "attribute.layers=[]", "-s", "attribute.randomize_layers=2"]
    args += ["--methods", "saliency,guided_backprop,gradcam", "--out", str(reports)]
    assert main(["attribute", "--config", config, *args, "--images", str(tiny_world / "test")]) == 0
    stems = [p.stem for p in reports.glob("*.html") if p.name != "index.html"]
    assert len(stems) == 2
    for stem in stems:
        saliency = np.load(reports / f"{stem}.saliency.npy")
        guided = np.load(reports / f"{stem}.guided_backprop.npy")
        assert np.abs(guided - saliency).max() > 0.1 * np.abs(saliency).max()
        page = (reports / f"{stem}.html").read_text()
        assert "Grad-CAM on inception5b" in page and "Cascading randomization" in page
