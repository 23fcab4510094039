"""``atlas init``: a new project that builds an atlas of one's own model and images with
``dvc repro``: the pipeline (the same stages as this repository's ``pipeline/dvc.yaml``,
without its dependencies on atlas's own source files: a project's code is the installed
package), one run, a config with every key at its default, and DVC set up.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from atlas.attribution.gradcam import block_outputs
from atlas.config import Config
from atlas.data import list_images
from atlas.errors import AtlasError
from atlas.layers import repeated_blocks
from atlas.models import LoadedModel, load_model
from atlas.version import package_version

SECTIONS = (
    "model",
    "extract",
    "reduce",
    "grid",
    "render",
    "channels",
    "align",
    "image_map",
    "classes",
    "attribute",
    "report",
    "viewer",
)
RUN = "atlas"
# A new project's defaults where the library's would not suit every data set: a few
# classes get class atlases, a few images per class get reports.
PROJECT_DEFAULTS = {"attribute": {"per_class": 2}}
ATLASES_OF = 8


@dataclass(frozen=True)
class Project:
    folder: Path
    layer: str
    suggested: bool  # the layer was chosen here (not given)
    weights: str  # as the run refers to it


def pipeline_template() -> Path:
    """The pipeline file: this repository's ``pipeline/dvc.yaml``, beside the package in a
    checkout, or in ``share/atlas`` of an installed one."""
    checkout = Path(__file__).resolve().parents[1] / "pipeline"
    for folder in (checkout, Path(sys.prefix) / "share" / "atlas"):
        if (folder / "dvc.yaml").is_file():
            return folder
    raise AtlasError("the atlas pipeline files are missing from this installation")


def suggest_layer(model: LoadedModel) -> str:
    """A layer for an atlas, from what ``atlas layers`` lists: a block (a top-level part or
    an element of a sequence of blocks) whose map is still at least a sixteenth of the
    input's side, the last one (a CNN: ResNet-50's ``layer3``, GoogLeNet's ``inception4e``),
    or two thirds of the way for a transformer, whose late blocks serve its class token."""
    size = model.preprocessing.input_size
    blocks = repeated_blocks(model.module) | {n for n, _ in model.module.named_children()}
    found = [
        name
        for name, shape in block_outputs(model)
        if name in blocks and min(shape) >= max(2, size // 16)
    ]
    if not found:
        raise AtlasError(f"found no layer with a spatial map in {model.spec.arch}; give --layer")
    if model.view(found[-1]).layout == "tokens":
        return found[(2 * len(found)) // 3 - 1]
    return found[-1]


def init_project(
    folder: str | Path,
    config: Config,
    *,
    images: str,
    layer: str | None = None,
    title: str | None = None,
) -> Project:
    """Write a new project into ``folder`` (empty or new) for the model of ``config.model``
    and the images of ``images``: ``atlas.yaml``, ``runs.yaml``, ``dvc.yaml`` and the
    plot template, the weights as a file when they are not one already, git and DVC."""
    root = Path(folder)
    if root.exists() and any(root.iterdir()):
        raise AtlasError(f"{root} is not empty: atlas init makes a new project folder")
    root.mkdir(parents=True, exist_ok=True)
    model = load_model(config.model)
    config = _with_folder_names(config, model, images)
    model = load_model(config.model) if config.model.class_names else model
    weights = config.model.weights
    if not (weights and Path(weights).is_file()):
        # A torchvision weights name, a family's published weights or none: a file, so that
        # the pipeline can depend on it and every worker reads the same weights.
        weights = str(model.save(root / "weights" / "model.pt"))
    suggested = layer is None
    layer = layer or suggest_layer(model)
    model.view(layer)  # a clear error now for a layer no stage could read
    raw = config.model_dump(mode="json")
    raw["model"] = config.model.model_copy(update={"weights": None}).model_dump(mode="json")
    raw["extract"] = {**(raw.get("extract") or {}), "layer": layer}
    for section, values in PROJECT_DEFAULTS.items():
        raw[section] = {**values, **_set(config, section)}
    if config.classes.classes is None:
        raw["classes"]["classes"] = model.class_names[:ATLASES_OF]
    project_config = Config.model_validate(raw)
    (root / "atlas.yaml").write_text(_config_text(project_config))
    _write_pipeline(root)
    run = {
        "config": "atlas.yaml",
        "layer": "",  # the config's extract.layer
        "weights": _relative(weights, root),
        "images": _relative(images, root),
        "reports": _relative(images, root),
        "compare": f"outputs/{RUN}/extract",
        "measures": f"outputs/{RUN}/classes",
        "shape_bias": f"outputs/{RUN}/classes",
        "set": "",  # no overrides: the config as written
        "out": f"outputs/{RUN}",
        "title": title or f"{model.spec.arch}, {layer}",
    }
    (root / "runs.yaml").write_text(_runs_text(run))
    _setup_dvc(root)
    return Project(root, layer, suggested, run["weights"])


def _with_folder_names(config: Config, model: LoadedModel, images: str) -> Config:
    """A model without class names of its own (``class_0``...) takes the image folder's
    class folder names when they are as many: what a user's fine-tuned checkpoint on an
    ImageFolder tree usually means (labels map by sorted folder order, the convention)."""
    if config.model.class_names or model.class_names[0] != "class_0":
        return config
    listing = list_images(images)
    names = listing.class_names if listing.kind == "folder" else None
    if not names or len(names) != model.num_classes:
        return config
    return config.model_copy(
        update={"model": config.model.model_copy(update={"class_names": names})}
    )


def _set(config: Config, section: str) -> dict:
    """The keys of a section that differ from their defaults (what the user asked for)."""
    values = getattr(config, section)
    defaults = type(values)().model_dump(mode="json")
    return {k: v for k, v in values.model_dump(mode="json").items() if defaults.get(k) != v}


def _config_text(config: Config) -> str:
    from atlas.config import annotated_yaml

    header = (
        "# The project's config: every key is here, the ones at their default commented\n"
        "# out. `dvc repro` reruns exactly the stages whose sections change.\n\n"
    )
    return header + annotated_yaml(config, SECTIONS)


def _write_pipeline(root: Path) -> None:
    """The pipeline as a project's own ``dvc.yaml``: at the project's root (no ``wdir``),
    and without the dependencies on this repository's source files."""
    template = pipeline_template()
    lines = [
        "# The pipeline (atlas's, for atlas " + package_version() + "): every stage runs once",
        "# for each run of runs.yaml, from this folder. Its params are the config sections",
        "# each stage reads, so `dvc repro` reruns exactly what a change concerns.",
    ]
    body = (template / "dvc.yaml").read_text().split("\nvars:", 1)[1]
    for line in ("vars:" + body).splitlines():
        if re.match(r"^\s+- atlas/", line) or re.match(r"^\s+wdir: \.\.$", line):
            continue
        lines.append(line)
    (root / "dvc.yaml").write_text("\n".join(lines) + "\n")
    shutil.copytree(template / "plots", root / "pipeline" / "plots")


def _runs_text(run: dict) -> str:
    import yaml

    body = yaml.safe_dump({"runs": {RUN: run}}, sort_keys=False, allow_unicode=True)
    return (
        "# The runs of this project's pipeline (dvc.yaml): each a model, the images of its\n"
        "# atlas, its config and where its outputs go. Add an entry for another model or\n"
        "# image set; `dvc repro` builds them all.\n" + body
    )


def _relative(path: str, root: Path) -> str:
    """``path`` as the project refers to it: relative to the project when it is a local
    path (the project may move with its data), as given otherwise."""
    if "://" in path:
        return path
    return os.path.relpath(Path(path).resolve(), root.resolve())


def _setup_dvc(root: Path) -> None:
    (root / ".gitignore").write_text("/outputs/\n__pycache__/\n")
    git = shutil.which("git")
    if git and not (root / ".git").exists():
        subprocess.run([git, "init", "-q"], cwd=root, check=True)
    dvc = Path(sys.executable).with_name("dvc")
    command = [str(dvc)] if dvc.exists() else [sys.executable, "-m", "dvc"]
    scm = [] if git else ["--no-scm"]
    subprocess.run([*command, "init", "-q", *scm], cwd=root, check=True)
