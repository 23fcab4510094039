"""Loading a classifier by spec, and wrapping one handed over in memory.

:func:`load_model` picks the model's family (:data:`FAMILIES`: the first whose
:meth:`~atlas.models.family.Family.matches` takes the arch), lets it build the network,
and runs the steps every family shares: reading a weights file, fitting its head,
resolving preprocessing and class names, moving to the device.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from atlas.config import IMAGENET_MEAN, IMAGENET_STD, ModelSpec
from atlas.errors import ModelSpecError, WeightsError
from atlas.models.callable import CallableFamily
from atlas.models.family import PRETRAINED, Built, Family
from atlas.models.heads import find_head, head_size, replace_head
from atlas.models.hf import HuggingFaceFamily
from atlas.models.loaded import LoadedModel, Preprocessing, channels_last
from atlas.models.logits import attach_logits, logits_of
from atlas.models.timm import TimmFamily
from atlas.models.torchvision import TorchvisionFamily
from atlas.models.weights import read_weights_file, strip_prefixes

log = logging.getLogger(__name__)

WEIGHTS_SUFFIXES = (".pt", ".pth", ".safetensors", ".bin", ".ckpt")
IN_MEMORY = "memory:"  # the arch of a network handed over as an object (wrap_model)
# In order: the prefixed families first, then a user's callable, then torchvision's names.
FAMILIES: tuple[Family, ...] = (
    TimmFamily(),
    HuggingFaceFamily(),
    CallableFamily(),
    TorchvisionFamily(),
)


def family_of(arch: str) -> Family:
    """The family whose models ``arch`` names."""
    return next(family for family in FAMILIES if family.matches(arch))


def load_model(
    spec: ModelSpec, *, device: str | torch.device = "cpu", seed: int = 0
) -> LoadedModel:
    """Build the architecture, load the weights, and resolve preprocessing and class names.

    Random initialization (no weights, or a replaced head) is seeded, so the same spec and
    seed give the same network. A CPU model is left channels-last
    (:func:`atlas.models.loaded.channels_last`). Raises :class:`ModelSpecError`,
    :class:`WeightsError` or :class:`WeightsFileNotFoundError` with a one-line reason.
    """
    if spec.arch and spec.arch.startswith(IN_MEMORY):
        raise ModelSpecError(
            f"{spec.arch} was a network in memory and cannot be rebuilt from its spec: "
            "pass the model itself (atlas.models.wrap_model) to the stage"
        )
    state_dict, meta = None, {}
    if spec.weights and spec.weights != PRETRAINED and _looks_like_file(spec.weights):
        state_dict, meta = read_weights_file(spec.weights)
    arch = spec.arch or meta.get("arch")
    if not arch:
        raise ModelSpecError("model.arch is required (the weights do not record an architecture)")
    family = family_of(arch)
    if state_dict is not None:  # the file's own metadata first, then what its name says
        meta = {**family.file_meta(arch, spec.weights), **meta}
    kwargs = {**family.default_kwargs(arch), **meta.get("kwargs", {}), **spec.kwargs}
    published = None
    if spec.weights and state_dict is None:
        published = family.published(arch, spec.weights)

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        built = family.build(arch, spec.num_classes or meta.get("num_classes"), kwargs, published)
        if state_dict is not None:
            built.module = _load_state_dict(family, built, state_dict, spec, arch, kwargs)
        num_classes = built.num_classes or head_size(built.module)

    module = built.module
    preprocessing = _resolve_preprocessing(spec, meta, built)
    family.finish(module, preprocessing.input_size)
    class_names = _resolve_class_names(spec, meta, built, num_classes)
    resolved = spec.model_copy(
        update={
            "arch": arch,
            "num_classes": num_classes,
            "input_size": preprocessing.input_size,
            "resize_size": preprocessing.resize_size,
            "mean": preprocessing.mean,
            "std": preprocessing.std,
            "class_names": class_names,
            "kwargs": {k: v for k, v in kwargs.items() if _jsonable(v)},
        }
    )
    module.eval().to(device)
    if torch.device(device).type == "cpu":
        channels_last(module)
    for note in built.notes:
        log.warning(note)
    prefix = getattr(module, "num_prefix_tokens", None)  # timm's transformers say it
    return LoadedModel(
        module, resolved, preprocessing, class_names, built.notes, prefix, family=family
    )


def build_architecture(
    arch: str, num_classes: int | None, kwargs: Mapping[str, Any] = ()
) -> nn.Module:
    """The untrained network ``arch`` names, as its family builds it."""
    return family_of(arch).build(arch, num_classes, dict(kwargs)).module


def wrap_model(
    module: nn.Module,
    *,
    input_size: int,
    mean: tuple[float, float, float] = IMAGENET_MEAN,
    std: tuple[float, float, float] = IMAGENET_STD,
    class_names: Sequence[str] | None = None,
    resize_size: int | None = None,
    name: str | None = None,
) -> LoadedModel:
    """A network in memory (built or trained in a notebook, say) with its preprocessing,
    as every stage takes a model: the stages that load a model from a spec take this
    instead. Its output is its logits, or a structure holding them (made to return them,
    :func:`atlas.models.attach_logits`). The spec records ``memory:<name>`` (the class
    name by default), which no later process can rebuild."""
    module.eval()
    preprocessing = Preprocessing(input_size, resize_size or input_size, tuple(mean), tuple(std))
    device = next((p.device for p in module.parameters()), torch.device("cpu"))
    with torch.no_grad():
        output = module(torch.zeros(1, 3, input_size, input_size, device=device))
    if not isinstance(output, torch.Tensor):
        attach_logits(module)
        output = logits_of(output)
    classes = output.shape[1]
    names = list(class_names) if class_names is not None else [f"class_{i}" for i in range(classes)]
    if len(names) != classes:
        raise ModelSpecError(f"{len(names)} class names given for a model with {classes} classes")
    spec = ModelSpec(
        arch=IN_MEMORY + (name or type(module).__name__),
        num_classes=classes,
        input_size=input_size,
        resize_size=preprocessing.resize_size,
        mean=preprocessing.mean,
        std=preprocessing.std,
        class_names=names,
    )
    prefix = getattr(module, "num_prefix_tokens", None)
    return LoadedModel(module, spec, preprocessing, names, prefix_tokens=prefix)


def with_absolute_paths(spec: ModelSpec) -> ModelSpec:
    """``spec`` with its local files (weights, a class-names file) as absolute paths: what a
    worker in another working directory, or on another machine of a shared file system,
    needs to find the same files. (Stores record the spec as the user gave it.)"""
    update = {}
    for key in ("weights", "class_names"):
        value = getattr(spec, key)
        if isinstance(value, str) and "://" not in value and Path(value).exists():
            update[key] = str(Path(value).resolve())
    return spec.model_copy(update=update)


def weights_digest(module: nn.Module) -> str:
    """A short hash of a network's parameters and buffers: what identifies a network
    that has no file."""
    digest = hashlib.sha256()
    for key, value in module.state_dict().items():
        digest.update(key.encode())
        digest.update(value.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


def read_class_names(value: list[str] | str | None) -> list[str] | None:
    """Class names given as a list, or as a text file with one name per line."""
    if not isinstance(value, str):
        return value
    path = Path(value)
    if not path.is_file():
        raise ModelSpecError(f"class_names file not found: {path}")
    return [line.strip() for line in path.read_text().splitlines() if line.strip()]


def _looks_like_file(weights: str) -> bool:
    return weights.endswith(WEIGHTS_SUFFIXES) or "/" in weights or Path(weights).exists()


def _load_state_dict(family: Family, built: Built, state, spec, arch, kwargs) -> nn.Module:
    """Load ``state`` into the built network and return the loaded network.

    When only the head differs in size: with ``num_classes`` asked for, the head is
    re-initialized at that size (noted in ``built.notes``); without, the network is
    rebuilt at the file's size.
    """
    module = built.module
    own = module.state_dict()
    state = strip_prefixes(state, set(own))
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    mismatched = [k for k in own if k in state and state[k].shape != own[k].shape]
    head_name, _ = find_head(module)
    head_keys = {f"{head_name}.weight", f"{head_name}.bias"}
    if not missing and not unexpected and mismatched and set(mismatched) <= head_keys:
        file_classes = state[f"{head_name}.weight"].shape[0]
        if spec.num_classes is None:
            rebuilt = family.build(arch, file_classes, kwargs).module
            rebuilt.load_state_dict(state)
            return rebuilt
        kept = {k: v for k, v in state.items() if k not in head_keys}
        module.load_state_dict(kept, strict=False)
        built.notes.append(replace_head(module, spec.num_classes, old_classes=file_classes))
        return module
    if missing or unexpected or mismatched:
        raise WeightsError(
            f"weights {spec.weights} do not fit {arch}: "
            + "; ".join(
                part
                for part in (
                    _list("missing keys", missing),
                    _list("unexpected keys", unexpected),
                    _list(
                        "shape mismatch",
                        [f"{k} {_shape(state[k])} in file vs {_shape(own[k])}" for k in mismatched],
                    ),
                )
                if part
            )
        )
    module.load_state_dict(state)
    return module


def _list(label: str, items: list[str], limit: int = 4) -> str:
    if not items:
        return ""
    more = f" (+{len(items) - limit} more)" if len(items) > limit else ""
    return f"{label}: {', '.join(items[:limit])}{more}"


def _shape(tensor: torch.Tensor) -> str:
    return "x".join(map(str, tensor.shape)) or "scalar"


def _resolve_preprocessing(spec: ModelSpec, meta: Mapping[str, Any], built: Built) -> Preprocessing:
    """Each field from the first that gives it: the spec, the checkpoint, the model's
    family (timm's data config, Hugging Face's image processor, torchvision's weights),
    ImageNet's 224 px statistics. A size not the family's own takes no resize from it."""
    own_size = meta.get("input_size") or built.input_size
    size = spec.input_size or own_size or 224
    resize = spec.resize_size or (
        meta.get("resize_size") or built.resize_size if size == own_size else None
    )
    mean = spec.mean or meta.get("mean") or built.mean or IMAGENET_MEAN
    std = spec.std or meta.get("std") or built.std or IMAGENET_STD
    return Preprocessing(
        input_size=int(size),
        resize_size=int(resize or size),
        mean=tuple(float(v) for v in mean),
        std=tuple(float(v) for v in std),
    )


def _resolve_class_names(
    spec: ModelSpec, meta: Mapping[str, Any], built: Built, num_classes: int
) -> list[str]:
    """The spec's names (which must fit), else the checkpoint's or the family's where they
    fit the head (a replaced head makes them not apply), else ``class_<i>``."""
    names = read_class_names(spec.class_names)
    for own in (meta.get("class_names"), built.class_names):
        if names is None and own is not None and len(own) == num_classes:
            names = list(own)
    if names is None:
        return [f"class_{i}" for i in range(num_classes)]
    if len(names) != num_classes:
        raise ModelSpecError(
            f"{len(names)} class names given for a model with {num_classes} classes"
        )
    return list(names)


def _jsonable(value: Any) -> bool:
    try:
        json.dumps(value)
    except TypeError:
        return False
    return True
