"""timm's models (``timm:<name>``): random weights, or timm's published ones with
``weights: pretrained``; preprocessing from timm's data config."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import nn

from atlas.errors import ModelSpecError, choices_hint
from atlas.models.family import Built, Family

PREFIX = "timm:"


class TimmFamily(Family):
    name = "timm"
    prefix = PREFIX
    pretrained = True

    def build(
        self, arch: str, num_classes: int | None, kwargs: Mapping[str, Any], published: Any = None
    ) -> Built:
        import timm
        from timm.data import resolve_data_config

        name = arch[len(self.prefix) :]
        if name not in timm.list_models():
            raise ModelSpecError(
                f"unknown timm model {name!r} "
                + choices_hint(name, timm.list_models(), label="timm")
            )
        extra = dict(kwargs)
        if num_classes is not None:
            extra["num_classes"] = num_classes
        try:
            module = timm.create_model(name, pretrained=bool(published), **extra)
        except TypeError as err:
            raise ModelSpecError(f"model.kwargs do not fit timm:{name}: {err}") from None
        config = resolve_data_config({}, model=module)
        size = _timm_size(module) or config["input_size"][-1]
        crop = config.get("crop_pct") or 1.0
        return Built(
            module,
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
