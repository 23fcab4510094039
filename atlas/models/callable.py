"""A user's own network: ``package.module:callable``, any function or class that takes
the model's keyword arguments (``num_classes`` among them, where the spec sets it) and
returns a ``torch.nn.Module`` whose output is its logits, or a structure holding them."""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import nn

from atlas.errors import ModelSpecError, choices_hint
from atlas.models.family import Built, Family
from atlas.models.logits import attach_logits


class CallableFamily(Family):
    """Every ``package.module:callable`` that no prefixed family claims."""

    name = "callable"

    def matches(self, arch: str) -> bool:
        return ":" in arch

    def build(
        self, arch: str, num_classes: int | None, kwargs: Mapping[str, Any], published: Any = None
    ) -> Built:
        extra = dict(kwargs)
        if num_classes is not None:
            extra["num_classes"] = num_classes
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
        return Built(module)

    def finish(self, module: nn.Module, input_size: int) -> None:
        """A network of the user's own returns a tensor, or is made to
        (:func:`atlas.models.logits.attach_logits`) when it returns a structure holding
        its logits."""
        with torch.no_grad():
            output = module.eval()(torch.zeros(1, 3, input_size, input_size))
        if not isinstance(output, torch.Tensor):
            attach_logits(module)


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
