"""The train stage: a classifier trained (or fine-tuned) on an ImageFolder data set
(:mod:`atlas.train`), saved as a checkpoint that loads on its own, with its accuracy on
every split as metrics."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch

from atlas.config import ModelSpec, TrainConfig, hash_sections
from atlas.data import ImageRecord, image_folder, load_images
from atlas.models import LoadedModel, load_model, read_class_names
from atlas.runtime import resolve_device
from atlas.train import LabelledImages, evaluate, train_classifier


@dataclass(frozen=True)
class TrainSummary:
    checkpoint: Path
    metrics: Path
    scores: dict  # split -> accuracy, loss, count, per_class; plus epochs, final_loss
    seconds: float


def train_checkpoint(
    data_dir: str | Path,
    out_dir: str | Path,
    spec: ModelSpec,
    options: TrainConfig,
    *,
    metrics_path: str | Path | None = None,
) -> TrainSummary:
    """Train the model of ``spec`` on ``data_dir/train`` (one folder per class) and
    evaluate it there and on every other split folder beside it. Writes
    ``out_dir/model.pt`` (weights, resolved spec, class names) and the metrics JSON
    (``metrics_path``, default ``out_dir/metrics.json``); the same seed gives the same
    bytes."""
    root = Path(data_dir)
    records, class_names = image_folder(root / "train", read_class_names(spec.class_names))
    config_hash = hash_sections({"model": spec, "train": options})
    if spec.num_classes is None and spec.weights is None:
        spec = spec.model_copy(update={"num_classes": len(class_names)})
    if spec.class_names is None:
        spec = spec.model_copy(update={"class_names": class_names})
    loaded = load_model(spec, device=resolve_device(options.device), seed=options.seed)

    train_set = _decode(loaded, "train", records, options)
    result = train_classifier(loaded, train_set, options)
    scores = {"train": evaluate(loaded, train_set)}
    for folder in sorted(
        p for p in root.iterdir() if p.is_dir() and p.name != "train" and not p.name.startswith(".")
    ):
        split, _ = image_folder(folder, loaded.class_names)
        scores[folder.name] = evaluate(loaded, _decode(loaded, folder.name, split, options))
    scores["epochs"] = len(result.history)
    scores["final_loss"] = round(result.history[-1]["loss"], 4)

    out = Path(out_dir)
    checkpoint = loaded.save(out / "model.pt", extra={"config_hash": config_hash})
    metrics = Path(metrics_path) if metrics_path else out / "metrics.json"
    metrics.parent.mkdir(parents=True, exist_ok=True)
    metrics.write_text(json.dumps(scores, indent=2) + "\n")
    return TrainSummary(checkpoint, metrics, scores, result.seconds)


def _decode(
    loaded: LoadedModel, name: str, records: list[ImageRecord], options: TrainConfig
) -> LabelledImages:
    labels = torch.tensor([r.label for r in records], dtype=torch.long)
    images = load_images(
        records,
        loaded.preprocessing.crop,
        max_bytes=options.max_memory_gb * 2**30,
        desc=f"decode {name}",
    )
    return LabelledImages(images, labels)
