"""torchvision's classification models, by name (``resnet18``, ``googlenet``): random
weights, or a torchvision weights name (``DEFAULT``, ``IMAGENET1K_V1``; downloaded, so
only where there is internet) whose preprocessing and categories come with it."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from torch import nn

from atlas.errors import ModelSpecError, WeightsError, WeightsFileNotFoundError, choices_hint
from atlas.models.family import Built, Family
from atlas.models.heads import replace_head

# torchvision's weights files end in the first hex digits of their sha256: ``-b0353104.pth``.
HASH_IN_NAME = re.compile(r"-([0-9a-f]{6,64})\.pth?$")
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


class TorchvisionFamily(Family):
    """Every arch no other family claims: a plain name is torchvision's to know."""

    name = "torchvision"

    def matches(self, arch: str) -> bool:
        return ":" not in arch

    def default_kwargs(self, arch: str) -> dict[str, Any]:
        return dict(TORCHVISION_DEFAULTS.get(arch, {}))

    def published(self, arch: str, weights: str) -> Any:
        return resolve_weights_enum(arch, weights)

    def file_meta(self, arch: str, path: str) -> dict[str, Any]:
        """A file named as torchvision names its published weights
        (``mobilenet_v2-b0353104.pth``: the arch, then its sha256's first hex digits) is
        that checkpoint: its categories and preprocessing come with it, once its hash
        proves it. A file of that name with another hash is a :class:`WeightsError`."""
        enum = published_file(arch, path)
        if enum is None:
            return {}
        preset = enum.transforms()
        return {
            "class_names": list(enum.meta.get("categories") or []) or None,
            "input_size": _first(getattr(preset, "crop_size", None)),
            "resize_size": _first(getattr(preset, "resize_size", None)),
            "mean": getattr(preset, "mean", None),
            "std": getattr(preset, "std", None),
        }

    def build(
        self, arch: str, num_classes: int | None, kwargs: Mapping[str, Any], published: Any = None
    ) -> Built:
        if published is not None:
            return _build_published(arch, num_classes, kwargs, published)
        archs = torchvision_archs()
        if arch not in archs:
            raise ModelSpecError(
                f"unknown arch {arch!r} "
                + choices_hint(arch, archs, label="torchvision models")
                + "; or give package.module:callable"
            )
        extra = dict(kwargs)
        if num_classes is not None:
            extra["num_classes"] = num_classes
        try:
            return Built(_torchvision_models().get_model(arch, weights=None, **extra))
        except TypeError as err:
            raise ModelSpecError(f"model.kwargs do not fit {arch}: {err}") from None


def published_file(arch: str, path: str):
    """The torchvision weights enum member whose download has ``path``'s file name (None
    when none has), checked against the hash prefix the name carries."""
    if ":" in arch or arch not in torchvision_archs():
        return None
    name = Path(path).name
    enum_cls = _torchvision_models().get_model_weights(arch)
    member = next((m for m in enum_cls if Path(urlparse(m.url).path).name == name), None)
    if member is None:
        return None
    prefix = HASH_IN_NAME.search(name)
    if prefix is not None:
        digest = sha256_of(path)
        if not digest.startswith(prefix.group(1)):
            raise WeightsError(
                f"{path} is named as torchvision's {member} but its sha256 starts "
                f"{digest[: len(prefix.group(1))]}, not {prefix.group(1)}: the file is "
                "damaged or another one; fetch it again"
            )
    return member


def sha256_of(path: str | Path) -> str:
    """The hex sha256 of a file, read in 1 MiB pieces."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for piece in iter(lambda: file.read(1 << 20), b""):
            digest.update(piece)
    return digest.hexdigest()


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


def _build_published(arch: str, num_classes: int | None, kwargs: Mapping[str, Any], enum) -> Built:
    """The network with the weights ``enum`` names (its head replaced when ``num_classes``
    differs), and the preprocessing and categories that come with them."""
    module = _download(arch, enum, kwargs)
    categories = list(enum.meta.get("categories") or [])
    file_classes = len(enum.meta["categories"])
    notes = []
    if num_classes is not None and num_classes != file_classes:
        notes.append(replace_head(module, num_classes, old_classes=file_classes))
    preset = enum.transforms()
    return Built(
        module,
        input_size=_first(getattr(preset, "crop_size", None)),
        resize_size=_first(getattr(preset, "resize_size", None)),
        mean=getattr(preset, "mean", None),
        std=getattr(preset, "std", None),
        class_names=categories,
        num_classes=num_classes or file_classes,
        notes=notes,
    )


def _download(arch: str, enum, kwargs: Mapping[str, Any]) -> nn.Module:
    # The enum sets aux_logits/init_weights itself; our plain-state_dict defaults do not apply.
    extra = {k: v for k, v in kwargs.items() if k not in TORCHVISION_DEFAULTS.get(arch, {})}
    try:
        return _torchvision_models().get_model(arch, weights=enum, **extra)
    except OSError as err:  # URLError is an OSError
        raise WeightsError(
            f"cannot download {enum} ({err}); without internet, give a local weights file"
        ) from None


def _first(value):
    return value[0] if isinstance(value, (list, tuple)) else value
