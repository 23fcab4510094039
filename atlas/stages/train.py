"""The train stage: a classifier trained (or fine-tuned) on an ImageFolder data set
(:mod:`atlas.train`), saved as a checkpoint that loads on its own, with its accuracy on
every split as metrics."""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

import torch

from atlas.config import ModelSpec, TrainConfig, hash_sections
from atlas.data import ImageRecord, image_folder, load_images
from atlas.models import LoadedModel, load_model, read_class_names
from atlas.runtime import resolve_device
from atlas.train import LabelledImages, evaluate, predict, train_classifier


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
    plots_dir: str | Path | None = None,
) -> TrainSummary:
    """Train the model of ``spec`` on ``data_dir/train`` (one folder per class) and
    evaluate it there and on every other split folder beside it (a folder of class
    folders; loose images, such as the demo's cue-conflict set, are not a split). Writes
    ``out_dir/model.pt`` (weights, resolved spec, class names), the metrics JSON
    (``metrics_path``, default ``out_dir/metrics.json``) and, with ``plots_dir``, the
    training curve (``history.csv``: epoch, loss, accuracy) and each split's predictions
    (``confusion-<split>.csv``: actual, predicted) for DVC's plots. The same seed gives
    the same bytes."""
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
    splits = {"train": train_set}
    for folder in sorted(p for p in root.iterdir() if p.name != "train" and _labelled_split(p)):
        split, _ = image_folder(folder, loaded.class_names)
        splits[folder.name] = _decode(loaded, folder.name, split, options)
    scores, predicted = {}, {}
    for name, data in splits.items():
        prediction = predict(loaded, data)
        scores[name], predicted[name] = evaluate(loaded, data, prediction), prediction[0]
    scores["epochs"] = len(result.history)
    scores["final_loss"] = round(result.history[-1]["loss"], 4)

    out = Path(out_dir)
    checkpoint = loaded.save(out / "model.pt", extra={"config_hash": config_hash})
    metrics = Path(metrics_path) if metrics_path else out / "metrics.json"
    metrics.parent.mkdir(parents=True, exist_ok=True)
    metrics.write_text(json.dumps(scores, indent=2) + "\n")
    if plots_dir is not None:
        _write_plots(Path(plots_dir), result.history, splits, predicted, loaded.class_names)
    return TrainSummary(checkpoint, metrics, scores, result.seconds)


def _write_plots(folder: Path, history, splits, predicted, names) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "history.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["epoch", "loss", "accuracy"])
        for row in history:
            writer.writerow([row["epoch"], round(row["loss"], 5), round(row["accuracy"], 5)])
    for split, data in splits.items():
        if split == "train":
            continue
        with open(folder / f"confusion-{split}.csv", "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["actual", "predicted"])
            for actual, guess in zip(data.labels.tolist(), predicted[split].tolist(), strict=True):
                writer.writerow([names[actual], names[guess]])


def _labelled_split(folder: Path) -> bool:
    """Whether ``folder`` is an evaluation split: visible, holding class folders."""
    return (
        folder.is_dir()
        and not folder.name.startswith(".")
        and any(child.is_dir() and not child.name.startswith(".") for child in folder.iterdir())
    )


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
