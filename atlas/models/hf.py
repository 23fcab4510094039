"""Hugging Face ``transformers`` image classifiers (``hf:<folder or hub id>``): randomly
initialized from the folder's ``config.json``, or with the weights saved beside it given
``weights: pretrained``; preprocessing from the image processor's config, class names
from the model config's labels; made to return their logits."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from atlas.errors import ModelSpecError
from atlas.models.family import Built, Family
from atlas.models.logits import attach_logits

PREFIX = "hf:"


class HuggingFaceFamily(Family):
    name = "Hugging Face"
    prefix = PREFIX
    pretrained = True

    def build(
        self, arch: str, num_classes: int | None, kwargs: Mapping[str, Any], published: Any = None
    ) -> Built:
        """(``kwargs`` are not the config's business here: the folder's config holds them.)"""
        from transformers import AutoConfig, AutoModelForImageClassification

        source = arch[len(self.prefix) :]
        pretrained = bool(published)
        folder = Path(source)
        if not (folder / "config.json").is_file() and not pretrained:
            raise ModelSpecError(f"no Hugging Face config.json in {source}")
        extra = {} if num_classes is None else {"num_labels": num_classes}
        try:
            if pretrained:
                module = AutoModelForImageClassification.from_pretrained(
                    source, ignore_mismatched_sizes=num_classes is not None, **extra
                )
            else:
                config = AutoConfig.from_pretrained(source, **extra)
                module = AutoModelForImageClassification.from_config(config)
        except (OSError, ValueError) as err:
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise ModelSpecError(f"cannot load the Hugging Face model {source}: {first}") from None
        config = module.config
        labels = getattr(config, "id2label", None) or {}
        names = [str(labels[i]) for i in sorted(labels)] if labels else None
        if names and all(n == f"LABEL_{i}" for i, n in enumerate(names)):
            names = None  # the config's placeholder names
        processor = _processor_config(folder)
        size = _hf_size(processor) or getattr(config, "image_size", None)
        if isinstance(size, (tuple, list)):
            size = size[0]
        return Built(
            attach_logits(module),
            input_size=int(size) if size else None,
            mean=_triple(processor.get("image_mean")),
            std=_triple(processor.get("image_std")),
            class_names=names,
        )


def _processor_config(folder: Path) -> dict[str, Any]:
    path = folder / "preprocessor_config.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def _hf_size(processor: Mapping[str, Any]) -> int | None:
    size = processor.get("crop_size") or processor.get("size")
    if isinstance(size, Mapping):
        size = size.get("height") or size.get("shortest_edge")
    return int(size) if size else None


def _triple(value) -> tuple[float, float, float] | None:
    if value is None:
        return None
    values = [float(v) for v in (value if isinstance(value, (list, tuple)) else [value] * 3)]
    return tuple(values) if len(values) == 3 else None
