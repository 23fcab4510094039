"""Loading a classifier by spec: architecture, weights, preprocessing, class names.

A model spec (:class:`atlas.config.ModelSpec`) names an architecture, its weights and
its preprocessing. :func:`load_model` turns it into a :class:`LoadedModel`, whose
``spec`` is fully resolved (every preprocessing field and the class names filled in),
so whatever records it records exactly what was used.
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
import json
import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import torch
from torch import nn

from atlas.config import IMAGENET_MEAN, IMAGENET_STD, ModelSpec
from atlas.errors import ModelSpecError, WeightsError, WeightsFileNotFoundError, choices_hint
from atlas.families import HF, TIMM, Family, attach_logits, build_hf, build_timm, logits_of
from atlas.layers import MapView, capture, output_shapes
from atlas.version import package_version
from atlas.weights import read_weights_file, save_checkpoint, strip_prefixes

log = logging.getLogger(__name__)

WEIGHTS_SUFFIXES = (".pt", ".pth", ".safetensors", ".bin", ".ckpt")
PRETRAINED = "pretrained"  # weights: a timm or Hugging Face model's published ones
IN_MEMORY = "memory:"  # the arch of a network handed over as an object (wrap_model)
# Builder defaults that make torchvision's Inception models load plain state_dicts.
TORCHVISION_DEFAULTS = {
    "googlenet": {"aux_logits": False, "init_weights": True},
    "inception_v3": {"aux_logits": False, "init_weights": True},
}


def torchvision_archs() -> list[str]:
    """Names of torchvision's classification models (``resnet18``, ``googlenet``, ...)."""
    models = _torchvision_models()
    return sorted(models.list_models(module=models))


def _torchvision_models():
    """``torchvision.models``, imported when first asked for: the import costs seconds that
    a process running any other model (the demo's CNN, timm, Hugging Face) never needs."""
    import torchvision.models

    return torchvision.models


@dataclass(frozen=True)
class Preprocessing:
    """How an image becomes the model's input: resize, center crop, normalize."""

    input_size: int
    resize_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]

    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        """Map images in [0, 1] (B, 3, H, W) to the model's input scale."""
        mean = torch.tensor(self.mean, device=images.device, dtype=images.dtype)
        std = torch.tensor(self.std, device=images.device, dtype=images.dtype)
        return (images - mean[:, None, None]) / std[:, None, None]

    def crop(self, pixels: torch.Tensor) -> torch.Tensor:
        """An image (3, H, W) uint8 resized (shorter side to ``resize_size``, antialiased)
        and center-cropped to ``input_size``: the model's view of it. Still uint8."""
        from torchvision.transforms.v2 import functional as TF

        if min(pixels.shape[-2:]) != self.resize_size:
            pixels = TF.resize(pixels, [self.resize_size], antialias=True)
        if tuple(pixels.shape[-2:]) != (self.input_size, self.input_size):
            pixels = TF.center_crop(pixels, [self.input_size, self.input_size])
        return pixels


@dataclass
class LoadedModel:
    """A network in eval mode with everything needed to feed it and read its output, and
    its layers' outputs as activation maps (:meth:`capture`, whatever their layout)."""

    module: nn.Module
    spec: ModelSpec
    preprocessing: Preprocessing
    class_names: list[str]
    notes: list[str] = field(default_factory=list)
    prefix_tokens: int | None = None  # tokens before a transformer's patch grid, if known
    _views: dict[str, MapView] = field(default_factory=dict, repr=False)

    def views(self, layers: Sequence[str]) -> dict[str, MapView]:
        """How each named layer's output reads as maps or vectors (:class:`MapView`),
        found from one forward pass at the model's input size and remembered."""
        missing = [name for name in layers if name not in self._views]
        if missing:
            shapes = output_shapes(self.module, missing, self.preprocessing.input_size)
            for name in missing:
                self._views[name] = MapView.of(name, shapes[name], self.prefix_tokens)
        return {name: self._views[name] for name in layers}

    def view(self, layer: str) -> MapView:
        return self.views([layer])[layer]

    @cached_property
    def fixed_size(self) -> bool:
        """Whether the network takes its input size only (a vision transformer with fixed
        position embeddings): tried once, with an image 8 px larger."""
        size = self.preprocessing.input_size + 8
        try:
            with torch.no_grad():
                self.module(torch.zeros(1, 3, size, size, device=self.device))
        except (RuntimeError, ValueError, AssertionError):
            return True
        return False

    @contextmanager
    def capture(
        self, layers: Sequence[str], *, detach: bool = True
    ) -> Iterator[dict[str, torch.Tensor]]:
        """:func:`atlas.layers.capture` with every layer read through its view: (B, C, H, W)
        maps (tokens and channels-last outputs restored to maps) or (B, C) vectors."""
        views = self.views(layers)
        with capture(self.module, layers, detach=detach, views=views) as outputs:
            yield outputs

    def with_module(self, module: nn.Module) -> LoadedModel:
        """The same model description around another network (a modified copy)."""
        return LoadedModel(
            module,
            self.spec,
            self.preprocessing,
            self.class_names,
            prefix_tokens=self.prefix_tokens,
        )

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def device(self) -> torch.device:
        param = next(self.module.parameters(), None)
        return param.device if param is not None else torch.device("cpu")

    def checkpoint_meta(self) -> dict[str, Any]:
        """What a checkpoint must record so that it loads again without a spec."""
        meta = self.spec.model_dump(mode="json", exclude={"weights"})
        meta["version"] = package_version()
        return meta

    def save(self, path: str | Path, *, extra: Mapping[str, Any] = ()) -> Path:
        """Write a checkpoint that loads again with ``load_model(ModelSpec(weights=path))``:
        the weights plus :meth:`checkpoint_meta` (and ``extra``)."""
        return save_checkpoint(self.module, {**self.checkpoint_meta(), **dict(extra)}, path)


def load_model(
    spec: ModelSpec, *, device: str | torch.device = "cpu", seed: int = 0
) -> LoadedModel:
    """Build the architecture, load the weights, and resolve preprocessing and class names.

    Random initialization (no weights, or a replaced head) is seeded, so the same spec and
    seed give the same network. Raises :class:`ModelSpecError`, :class:`WeightsError` or
    :class:`WeightsFileNotFoundError` with a one-line reason.
    """
    if spec.arch and spec.arch.startswith(IN_MEMORY):
        raise ModelSpecError(
            f"{spec.arch} was a network in memory and cannot be rebuilt from its spec: "
            "pass the model itself (atlas.models.wrap_model) to the stage"
        )
    notes: list[str] = []
    state_dict, meta = None, {}
    enum, family = None, Family()
    if spec.weights and spec.weights != PRETRAINED and _looks_like_file(spec.weights):
        state_dict, meta = read_weights_file(spec.weights)
    arch = spec.arch or meta.get("arch")
    if not arch:
        raise ModelSpecError("model.arch is required (the weights do not record an architecture)")
    kwargs = {**TORCHVISION_DEFAULTS.get(arch, {}), **meta.get("kwargs", {}), **spec.kwargs}
    pretrained = spec.weights == PRETRAINED and arch.startswith((TIMM, HF))
    if spec.weights and state_dict is None and not pretrained:
        enum = resolve_weights_enum(arch, spec.weights)

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if enum is not None:
            module = _download_pretrained(arch, enum, kwargs)
            file_classes = len(enum.meta["categories"])
            num_classes = spec.num_classes or file_classes
            if num_classes != file_classes:
                notes.append(replace_head(module, num_classes, old_classes=file_classes))
        else:
            num_classes = spec.num_classes or meta.get("num_classes")
            module, family = build_architecture(arch, num_classes, kwargs, pretrained=pretrained)
            if state_dict is not None:
                module = _load_state_dict(module, state_dict, spec, arch, kwargs, notes)
            num_classes = _head_size(module)

    preprocessing = _resolve_preprocessing(spec, meta, family, enum)
    if ":" in arch and not arch.startswith((TIMM, HF)):
        _returns_logits(module, preprocessing.input_size)
    class_names = _resolve_class_names(spec, meta, family, enum, num_classes)
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
        # Channels-last weights make the CPU's convolutions pick their fast kernels, whatever
        # the layout of the input: the demo's CNN runs forward in 95 ms against 175 ms for a
        # batch of 128 at 64 px. Only 4-D weights change; a transformer keeps its own.
        module.to(memory_format=torch.channels_last)
    for note in notes:
        log.warning(note)
    prefix = getattr(module, "num_prefix_tokens", None)  # timm's transformers say it
    return LoadedModel(module, resolved, preprocessing, class_names, notes, prefix)


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
    :func:`atlas.families.attach_logits`). The spec records ``memory:<name>`` (the class
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


def build_architecture(
    arch: str, num_classes: int | None, kwargs: Mapping[str, Any], *, pretrained: bool = False
) -> tuple[nn.Module, Family]:
    """Construct a network from a torchvision name, ``package.module:callable``,
    ``timm:<name>`` or ``hf:<folder or hub id>`` (untrained, unless ``pretrained`` for
    the last two: their published weights, downloaded), with what its family says of its
    preprocessing."""
    if arch.startswith(TIMM):
        return build_timm(arch[len(TIMM) :], num_classes, kwargs, pretrained=pretrained)
    if arch.startswith(HF):
        return build_hf(arch[len(HF) :], num_classes, pretrained=pretrained)
    return _build_plain(arch, num_classes, kwargs), Family()


def _build_plain(arch: str, num_classes: int | None, kwargs: Mapping[str, Any]) -> nn.Module:
    extra = dict(kwargs)
    if num_classes is not None:
        extra["num_classes"] = num_classes
    if ":" in arch:
        builder = _import_callable(arch)
        accepted = _accepted_kwargs(builder)
        if accepted is not None:
            unknown = sorted(set(extra) - accepted)
            if unknown == ["num_classes"]:
                raise ModelSpecError(
                    f"{arch} takes no num_classes argument; leave num_classes unset"
                )
            if unknown:
                raise ModelSpecError(
                    f"{arch} does not accept {', '.join(unknown)} "
                    f"(it takes: {', '.join(sorted(accepted)) or 'no arguments'})"
                )
        module = builder(**extra)
        if not isinstance(module, nn.Module):
            raise ModelSpecError(f"{arch} returned {type(module).__name__}, not a torch.nn.Module")
        return module
    archs = torchvision_archs()
    if arch not in archs:
        raise ModelSpecError(
            f"unknown arch {arch!r} "
            + choices_hint(arch, archs, label="torchvision models")
            + "; or give package.module:callable"
        )
    try:
        return _torchvision_models().get_model(arch, weights=None, **extra)
    except TypeError as err:
        raise ModelSpecError(f"model.kwargs do not fit {arch}: {err}") from None


def resolve_weights_enum(arch: str, name: str):
    """The torchvision weights enum member named ``name`` (``DEFAULT``, ``IMAGENET1K_V1``,
    or the full ``ResNet18_Weights.IMAGENET1K_V1``) for a torchvision ``arch``."""
    if ":" in arch or arch not in torchvision_archs():
        raise WeightsFileNotFoundError(f"weights file not found: {name}")
    enum_cls = _torchvision_models().get_model_weights(arch)
    member = name.split(".", 1)[1] if name.startswith(enum_cls.__name__ + ".") else name
    valid = ["DEFAULT", *(m for m in enum_cls.__members__ if m != "DEFAULT")]
    if member not in valid:
        raise WeightsError(
            f"weights {name!r} is neither a file nor a weights name of {arch} "
            + choices_hint(member, valid, label="weights names")
        )
    return enum_cls[member] if member != "DEFAULT" else enum_cls.DEFAULT


def find_head(module: nn.Module) -> tuple[str, nn.Module]:
    """The classification head: the last ``Linear`` (or, failing that, ``Conv2d``) module."""
    for kind in (nn.Linear, nn.Conv2d):
        found = [(name, m) for name, m in module.named_modules() if isinstance(m, kind)]
        if found:
            return found[-1]
    raise ModelSpecError(
        f"{type(module).__name__} has no Linear or Conv2d layer to use as its head"
    )


def replace_head(module: nn.Module, num_classes: int, *, old_classes: int | None = None) -> str:
    """Swap the head for a freshly initialized one with ``num_classes`` outputs."""
    name, head = find_head(module)
    if isinstance(head, nn.Linear):
        new = nn.Linear(head.in_features, num_classes, bias=head.bias is not None)
    else:
        new = nn.Conv2d(head.in_channels, num_classes, head.kernel_size, head.stride, head.padding)
    module.set_submodule(name, new)
    was = f" (weights have {old_classes})" if old_classes else ""
    return f"head {name!r} re-initialized for {num_classes} classes{was}"


def _looks_like_file(weights: str) -> bool:
    return weights.endswith(WEIGHTS_SUFFIXES) or "/" in weights or Path(weights).exists()


def _import_callable(arch: str) -> Callable:
    module_name, _, attr = arch.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise ModelSpecError(f"cannot import {module_name!r} for arch {arch!r}: {err}") from None
    builder = getattr(module, attr, None)
    if not callable(builder):
        names = [n for n, v in vars(module).items() if callable(v) and not n.startswith("_")]
        raise ModelSpecError(f"{module_name} has no callable {attr!r} " + choices_hint(attr, names))
    return builder


def _accepted_kwargs(builder: Callable) -> set[str] | None:
    """Keyword names the builder takes, or None if it takes ``**kwargs``."""
    try:
        params = inspect.signature(builder).parameters.values()
    except (TypeError, ValueError):
        return None
    if any(p.kind is p.VAR_KEYWORD for p in params):
        return None
    return {p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}


def _download_pretrained(arch: str, enum, kwargs: Mapping[str, Any]) -> nn.Module:
    # The enum sets aux_logits/init_weights itself; our plain-state_dict defaults do not apply.
    extra = {k: v for k, v in kwargs.items() if k not in TORCHVISION_DEFAULTS.get(arch, {})}
    try:
        return _torchvision_models().get_model(arch, weights=enum, **extra)
    except OSError as err:  # URLError is an OSError
        raise WeightsError(
            f"cannot download {enum} ({err}); without internet, give a local weights file"
        ) from None


def _load_state_dict(module, state, spec, arch, kwargs, notes) -> nn.Module:
    """Load ``state`` into ``module`` and return the loaded network.

    When only the head differs in size: with ``num_classes`` asked for, the head is
    re-initialized at that size; without, the network is rebuilt at the file's size.
    """
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
            rebuilt = build_architecture(arch, file_classes, kwargs)[0]
            rebuilt.load_state_dict(state)
            return rebuilt
        kept = {k: v for k, v in state.items() if k not in head_keys}
        module.load_state_dict(kept, strict=False)
        notes.append(replace_head(module, spec.num_classes, old_classes=file_classes))
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


def _returns_logits(module: nn.Module, input_size: int) -> None:
    """A network of the user's own returns a tensor, or is made to (:func:`attach_logits`)
    when it returns a structure holding its logits."""
    with torch.no_grad():
        output = module.eval()(torch.zeros(1, 3, input_size, input_size))
    if not isinstance(output, torch.Tensor):
        attach_logits(module)


def _list(label: str, items: list[str], limit: int = 4) -> str:
    if not items:
        return ""
    more = f" (+{len(items) - limit} more)" if len(items) > limit else ""
    return f"{label}: {', '.join(items[:limit])}{more}"


def _shape(tensor: torch.Tensor) -> str:
    return "x".join(map(str, tensor.shape)) or "scalar"


def _head_size(module: nn.Module) -> int:
    _, head = find_head(module)
    return head.out_features if isinstance(head, nn.Linear) else head.out_channels


def _resolve_preprocessing(
    spec: ModelSpec, meta: Mapping[str, Any], family: Family, enum
) -> Preprocessing:
    """Each field from the first that gives it: the spec, the checkpoint, the model's
    family (timm's data config, Hugging Face's image processor), torchvision's weights,
    ImageNet's 224 px statistics."""
    preset = enum.transforms() if enum is not None else None
    own_size = (
        meta.get("input_size") or family.input_size or _first(getattr(preset, "crop_size", None))
    )
    size = spec.input_size or own_size or 224
    resize = spec.resize_size or (
        meta.get("resize_size")
        or family.resize_size
        or _first(getattr(preset, "resize_size", None))
        if size == own_size
        else None
    )
    mean = (
        spec.mean
        or meta.get("mean")
        or family.mean
        or getattr(preset, "mean", None)
        or IMAGENET_MEAN
    )
    std = spec.std or meta.get("std") or family.std or getattr(preset, "std", None) or IMAGENET_STD
    return Preprocessing(
        input_size=int(size),
        resize_size=int(resize or size),
        mean=tuple(float(v) for v in mean),
        std=tuple(float(v) for v in std),
    )


def _first(value):
    return value[0] if isinstance(value, (list, tuple)) else value


def read_class_names(value: list[str] | str | None) -> list[str] | None:
    """Class names given as a list, or as a text file with one name per line."""
    if not isinstance(value, str):
        return value
    path = Path(value)
    if not path.is_file():
        raise ModelSpecError(f"class_names file not found: {path}")
    return [line.strip() for line in path.read_text().splitlines() if line.strip()]


def _resolve_class_names(
    spec: ModelSpec, meta: Mapping[str, Any], family: Family, enum, num_classes: int
) -> list[str]:
    names = read_class_names(spec.class_names)
    for own in (meta.get("class_names"), family.class_names):
        if names is None and own is not None and len(own) == num_classes:
            names = list(own)  # (a replaced head makes the checkpoint's names not apply)
    if names is None and enum is not None:
        categories = list(enum.meta.get("categories") or [])
        names = categories if len(categories) == num_classes else None
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
