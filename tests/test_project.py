"""`atlas init` from an empty folder to a browsable site, the layer it suggests, and a
cluster whose workers start in another folder than the user's."""

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
import yaml
from PIL import Image

from atlas.cli import main
from atlas.config import ExtractConfig, ModelSpec
from atlas.models import load_model
from atlas.project import suggest_layer
from atlas.stages.extract import extract_store
from atlas.store import open_run

BIN = Path(sys.executable).parent
SMALL = [
    "-s", "grid.levels=[2,4]", "-s", "grid.min_count=1", "-s", "render.steps=2",
    "-s", "render.icon_size=16", "-s", "classes.size=2", "-s", "classes.min_count=1",
    "-s", "attribute.methods=[saliency,gradcam]", "-s", "attribute.randomize_layers=1",
    "-s", "attribute.deletion_steps=2", "-s", "attribute.layers=[]",
    "-s", "report.steps=1", "-s", "report.icon_size=16",
]  # fmt: skip


def images_folder(root: Path, classes=("cat", "dog", "fox"), per_class=4, size=72) -> Path:
    rng = np.random.default_rng(0)
    for k, klass in enumerate(classes):
        (root / klass).mkdir(parents=True)
        for i in range(per_class):
            pixels = rng.integers(0, 120, (size, size, 3)) + np.array([60 * k, 30, 90])
            Image.fromarray(pixels.clip(0, 255).astype(np.uint8)).save(root / klass / f"{i}.png")
    return root


def run(args, cwd):
    env = {"PATH": f"{BIN}:/usr/bin:/bin", "ATLAS_PROGRESS": "0", "HOME": str(cwd)}
    return subprocess.run(args, cwd=cwd, env=env, check=True, capture_output=True, text=True)


@pytest.mark.slow
def test_init_then_dvc_repro_builds_a_site_from_an_empty_folder(tmp_path, capsys):
    images = images_folder(tmp_path / "my images")
    torch.manual_seed(0)
    torch.save(torchvision.models.resnet18(num_classes=3).state_dict(), tmp_path / "r18.pth")
    project = tmp_path / "project"
    args = ["init", str(project), "--arch", "resnet18", "--weights", str(tmp_path / "r18.pth")]
    args += ["--images", str(images), "--input-size", "64", *SMALL]
    assert main(args) == 0
    assert "layer layer3 (suggested" in capsys.readouterr().out
    pipeline = (project / "dvc.yaml").read_text()
    assert "- atlas/" not in pipeline and "wdir" not in pipeline  # nothing of this repository
    config = yaml.safe_load((project / "atlas.yaml").read_text())
    assert config["extract"]["layer"] == "layer3"
    assert config["model"]["class_names"] == ["cat", "dog", "fox"]  # from the folders
    assert "# n_neighbors: 15" in (project / "atlas.yaml").read_text()  # every key, commented
    runs = yaml.safe_load((project / "runs.yaml").read_text())["runs"]["atlas"]
    assert runs["weights"] == "../r18.pth" and runs["images"] == "../my images"
    run(["dvc", "repro"], project)
    site = project / "outputs" / "atlas" / "site"
    atlas = json.loads((site / "atlas.json").read_text())
    assert [level["size"] for level in atlas["levels"]] == [2, 4]
    assert atlas["classes"] == ["cat", "dog", "fox"] and atlas["layer"] == "layer3"
    for page in ("index.html", "classes.html", "attribute/index.html", "model/model.html"):
        assert (site / page).is_file(), page
    run(["git", "add", "-A"], project)
    run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "atlas"], project)
    shown = run(["dvc", "exp", "show", "--json"], project).stdout
    assert "median_quality" in shown  # the render stage's metrics
    assert "Data and pipelines are up to date" in run(["dvc", "status"], project).stdout


def test_init_takes_other_families_and_refuses_a_used_folder(tmp_path, capsys):
    images = images_folder(tmp_path / "images")
    project = tmp_path / "timm"
    args = ["init", str(project), "--arch", "timm:resnet18", "--num-classes", "3"]
    assert main([*args, "--input-size", "64", "--images", str(images), "--layer", "layer2"]) == 0
    saved = project / "weights" / "model.pt"  # no weights file given: the weights become one
    loaded = load_model(ModelSpec(weights=str(saved)))
    assert loaded.spec.arch == "timm:resnet18" and loaded.class_names == ["cat", "dog", "fox"]
    assert yaml.safe_load((project / "runs.yaml").read_text())["runs"]["atlas"]["weights"] == (
        "weights/model.pt"
    )
    capsys.readouterr()
    assert main([*args, "--images", str(images)]) == 2
    assert "is not empty" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("spec", "layer"),
    [
        (dict(arch="resnet50", input_size=224), "layer3"),
        (dict(arch="googlenet", input_size=224), "inception4e"),
        (dict(arch="atlas.demo.net:DemoCNN", num_classes=10, input_size=64), "block4"),
        (
            dict(arch="timm:vit_tiny_patch16_224", kwargs={"img_size": 64, "patch_size": 8}),
            "blocks.8",
        ),
    ],
)
def test_the_suggested_layer_is_a_late_block_with_room_to_localize(spec, layer):
    assert (
        suggest_layer(load_model(ModelSpec(num_classes=spec.pop("num_classes", 5), **spec)))
        == layer
    )


@pytest.mark.slow
def test_a_cluster_whose_workers_run_elsewhere_sees_the_paths_the_user_gave(
    cnn, tiny_world, tmp_path, monkeypatch
):
    """The user works in their project folder with relative paths; the scheduler and the
    worker run in folders of their own. The store equals an inline run's."""
    project = tmp_path / "project"
    shutil.copytree(tiny_world / "test", project / "data")
    (project / "model").mkdir()
    cnn.save(project / "model" / "model.pt")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    scheduler_file = tmp_path / "scheduler.json"
    env = {"PATH": f"{BIN}:/usr/bin:/bin", "HOME": str(tmp_path)}
    scheduler = subprocess.Popen(
        [str(BIN / "dask"), "scheduler", "--port", "0", "--no-dashboard",
         "--scheduler-file", str(scheduler_file)],
        cwd=elsewhere, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    worker = None
    try:
        for _ in range(300):
            if scheduler_file.exists() and scheduler_file.read_text().strip():
                break
            time.sleep(0.1)
        address = json.loads(scheduler_file.read_text())["address"]
        worker = subprocess.Popen(
            [str(BIN / "dask"), "worker", address, "--nthreads", "1", "--no-dashboard"],
            cwd=elsewhere, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        monkeypatch.chdir(project)
        options = ExtractConfig(layer="block3", chunk_size=16)
        weights = ModelSpec(weights="model/model.pt")
        extract_store("data", "remote.zarr", weights, options, scheduler=address)
        extract_store("data", "inline.zarr", weights, options, scheduler="inline")
    finally:
        for process in (worker, scheduler):
            if process is not None:
                process.terminate()
                process.wait(timeout=30)
    remote, inline = open_run(str(project / "remote.zarr")), open_run(str(project / "inline.zarr"))
    assert remote.identity_hash == inline.identity_hash  # recorded as given: relative
    assert remote.meta["identity"]["model"]["weights"] == "model/model.pt"
    assert np.array_equal(remote.read_layer().acts[:], inline.read_layer().acts[:])
    assert remote.read_layer().valid[:].all()
