"""The shared face of attribution methods, and the registry of them."""

from __future__ import annotations

import copy
from typing import ClassVar

import torch

from atlas.config import AttributeConfig
from atlas.errors import AtlasError, choices_hint
from atlas.models import LoadedModel

METHODS: dict[str, type[Attribution]] = {}


class Attribution:
    """An attribution method: maps (B, H, W) of how each input pixel matters to a class.

    ``signed`` says whether the maps carry a sign (shown on a diverging scale) or are
    magnitudes (shown from zero up).
    """

    name: ClassVar[str] = ""
    signed: ClassVar[bool] = False
    paper: ClassVar[str] = ""

    def __init__(self, model: LoadedModel, options: AttributeConfig | None = None) -> None:
        """``options``: the report config, whose settings for this method it reads (their
        defaults are the config's: each is declared there once)."""
        self.model = model
        self.options = options or AttributeConfig()

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        if cls.name:
            METHODS[cls.name] = cls

    def attribute(self, inputs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def describe(self) -> str:
        """One line for reports: what the map is and what it was computed on."""
        return self.paper

    def on(self, model: LoadedModel) -> Attribution:
        """The same method, with the same settings, for another network of the same
        architecture (a randomized copy in the cascade check): what was worked out from
        the architecture alone (a layer, a window geometry, a warning already given) is
        reused, not redone. A method that keeps anything computed from the weights
        overrides this."""
        other = copy.copy(self)
        other.model = model
        return other


def make_method(
    name: str, model: LoadedModel, options: AttributeConfig | None = None
) -> Attribution:
    """The method called ``name`` for ``model``, set up from ``options``."""
    if name not in METHODS:
        raise AtlasError(
            f"unknown attribution method {name!r} "
            + choices_hint(name, sorted(METHODS), label="methods")
        )
    return METHODS[name](model, options)


def input_gradient(model: LoadedModel, inputs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """d logit[target] / d input, for each element (B, 3, H, W); the model's own
    parameters get no gradient."""
    inputs = inputs.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        logits = model.module(inputs)
        chosen = logits.gather(1, target.view(-1, 1)).sum()
        (grad,) = torch.autograd.grad(chosen, inputs)
    return grad
