"""Model families beyond torchvision: timm models (``timm:<name>``), Hugging Face
``transformers`` image classifiers (``hf:<folder or hub id>``), and any network whose
output carries its logits in a field (``.logits``, as Hugging Face's outputs do).

Each family builds the network (random weights unless its published ones are asked for),
says where its own preprocessing comes from (timm's data config, the Hugging Face image
processor's config), and leaves weights files and everything else to
:mod:`atlas.models`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from atlas.errors import ModelSpecError, choices_hint

TIMM, HF = "timm:", "hf:"


@dataclass(frozen=True)
class Family:
    """What a family knows about a model besides its weights: its own preprocessing
    (None where it says nothing) and its class names."""

    input_size: int | None = None
    resize_size: int | None = None
    mean: tuple[float, float, float] | None = None
    std: tuple[float, float, float] | None = None
    class_names: list[str] | None = None


def attach_logits(module: nn.Module) -> nn.Module:
    """Make a network whose output is a structure holding its logits (Hugging Face's
    ``ImageClassifierOutput``, a tuple) return the logits tensor itself, as every part of
    atlas and the libraries it uses expect: a forward hook on the network, which keeps its
    layers' names as they are. Returns the module."""
    if not getattr(module, "_atlas_logits", False):
        module.register_forward_hook(lambda _module, _args, output: logits_of(output))
        module._atlas_logits = True
    return module


def logits_of(output: Any) -> torch.Tensor:
    """The logits in a network's output: the tensor itself, a ``logits`` field or key, or
    the first element of a tuple."""
    if isinstance(output, torch.Tensor):
        return output
    if hasattr(output, "logits"):
        return output.logits
    if isinstance(output, Mapping) and "logits" in output:
        return output["logits"]
    if isinstance(output, (tuple, list)) and output and isinstance(output[0], torch.Tensor):
        return output[0]
    raise ModelSpecError(
        f"the model returns {type(output).__name__}, which holds no logits tensor "
        "(expected a tensor, a .logits field or a tuple starting with the logits)"
    )


def build_timm(
    name: str, num_classes: int | None, kwargs: Mapping[str, Any], *, pretrained: bool = False
):
    """A timm model (random weights unless ``pretrained``: timm's own, downloaded) and its
    preprocessing from timm's data config."""
    import timm
    from timm.data import resolve_data_config

    if name not in timm.list_models():
        raise ModelSpecError(
            f"unknown timm model {name!r} " + choices_hint(name, timm.list_models(), label="timm")
        )
    extra = dict(kwargs)
    if num_classes is not None:
        extra["num_classes"] = num_classes
    try:
        module = timm.create_model(name, pretrained=pretrained, **extra)
    except TypeError as err:
        raise ModelSpecError(f"model.kwargs do not fit timm:{name}: {err}") from None
    config = resolve_data_config({}, model=module)
    size = _timm_size(module) or config["input_size"][-1]
    crop = config.get("crop_pct") or 1.0
    return module, Family(
        input_size=size,
        resize_size=round(size / crop),
        mean=tuple(float(v) for v in config["mean"]),
        std=tuple(float(v) for v in config["std"]),
    )


def _timm_size(module: nn.Module) -> int | None:
    """The input size a timm model was built for, where it fixes one (ViTs: img_size)."""
    embed = getattr(module, "patch_embed", None)
    size = getattr(embed, "img_size", None)
    if isinstance(size, (tuple, list)):
        size = size[0]
    return int(size) if size else None


def build_hf(source: str, num_classes: int | None, *, pretrained: bool = False):
    """A Hugging Face image classifier from a folder (or hub id) holding its
    ``config.json``: with the weights saved beside it when ``pretrained``, else randomly
    initialized from the config; its preprocessing from the image processor's config;
    returning its logits (:func:`attach_logits`)."""
    from transformers import AutoConfig, AutoModelForImageClassification

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
    family = Family(
        input_size=int(size) if size else None,
        mean=_triple(processor.get("image_mean")),
        std=_triple(processor.get("image_std")),
        class_names=names,
    )
    return attach_logits(module), family


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
