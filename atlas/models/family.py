"""The face every model family shows :func:`atlas.models.load_model`.

A family (torchvision, timm, Hugging Face, a user's callable) knows how to build its
networks and what it says itself about feeding them and naming their classes
(:class:`Built`); which published weights a name means; which modules end no block (the
default layer of class activation maps is the last block's output); and which
activations are gates for guided backprop (:class:`Gates`). Everything else — weights
files, heads, resolving preprocessing and class names, the device — is shared, in
:mod:`atlas.models.load`.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import nn
from torch.nn import functional as F

from atlas.errors import WeightsFileNotFoundError

PRETRAINED = "pretrained"  # weights: a timm or Hugging Face model's published ones


@dataclass
class Built:
    """A network a family built, with what the family itself says of its preprocessing and
    class names (None where it says nothing), the size of its head where the family knows
    it without looking (None: read from the head), and notes for the user."""

    module: nn.Module
    input_size: int | None = None
    resize_size: int | None = None
    mean: tuple[float, float, float] | None = None
    std: tuple[float, float, float] | None = None
    class_names: list[str] | None = None
    num_classes: int | None = None
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Gates:
    """What guided backprop rectifies (Springenberg et al. 2014), as the torch functions
    that compute it, whether called as functions or by their modules (``nn.ReLU`` calls
    ``F.relu``, ``nn.ReLU6`` calls ``F.hardtanh(x, 0, 6)``, ``nn.LeakyReLU``
    ``F.leaky_relu``), in place or not.

    - ``rectifiers``: the gates of the paper's rule, zero below 0 and the identity above
      (ReLU; ReLU6, which is also capped at 6).
    - ``clamps``: hardtanh's functions, a gate exactly when the lower bound is 0 (ReLU6,
      or any ReLU capped at some maximum); with another lower bound it is a squashing
      function like tanh and passes the plain gradient.
    - ``leaky``: the monotone rectifiers that let something through below 0 (LeakyReLU,
      PReLU, RReLU, ELU, CELU, SELU), rectified by the same rule
      (:mod:`atlas.attribution.guided_backprop` says why).
    - ``smooth``: activations the rule is not defined for (SiLU, GELU, Hardswish, Mish:
      not monotone), never rectified; a method names them where it meets them.

    ``modules``: the gates' module types for rules that hook modules rather than
    functions (Lucid's redirected ReLU, :mod:`atlas.featvis.relu`, which computes a plain
    ReLU forward and so must not be given ``nn.ReLU6``)."""

    rectifiers: frozenset
    clamps: frozenset = frozenset()
    leaky: frozenset = frozenset()
    smooth: frozenset = frozenset()
    modules: tuple[type[nn.Module], ...] = (nn.ReLU,)

    def kind(self, func: Any, args: tuple = (), kwargs: Mapping[str, Any] | None = None) -> str:
        """How guided backprop treats a call of ``func`` with these arguments: ``"gate"``
        (a rectifier, or hardtanh from 0), ``"leaky"``, ``"smooth"`` (no rule), or ``""``
        (not an activation the family names: left alone)."""
        if func in self.rectifiers:
            return "gate"
        if func in self.clamps:
            low = args[1] if len(args) > 1 else (kwargs or {}).get("min_val", -1.0)
            return "gate" if float(low) == 0.0 else ""
        if func in self.leaky:
            return "leaky"
        return "smooth" if func in self.smooth else ""


# The activations of torchvision's, timm's and Hugging Face's networks, in every form torch
# offers them (``torch.relu``, ``F.relu``, the ``Tensor`` methods, the in-place ones).
RELU_GATES = Gates(
    rectifiers=frozenset(
        {F.relu, torch.relu, torch.Tensor.relu, torch.relu_, F.relu_, torch.Tensor.relu_, F.relu6}
    ),
    clamps=frozenset({F.hardtanh, F.hardtanh_}),
    leaky=frozenset(
        {F.leaky_relu, F.leaky_relu_, F.prelu, torch.prelu, F.rrelu, F.rrelu_, torch.rrelu}
        | {F.elu, F.elu_, F.celu, F.celu_, torch.celu, F.selu, F.selu_, torch.selu, torch.selu_}
    ),
    smooth=frozenset({F.silu, F.gelu, F.hardswish, F.mish}),
)

# Modules whose output is not a block's: poolings, dropout and reshaping.
NOT_BLOCKS = (
    nn.modules.pooling._AdaptiveAvgPoolNd,
    nn.modules.pooling._AdaptiveMaxPoolNd,
    nn.modules.pooling._AvgPoolNd,
    nn.modules.pooling._MaxPoolNd,
    nn.modules.dropout._DropoutNd,
    nn.Identity,
    nn.Flatten,
)


class Family:
    """A family of models. The base is what every family shares; each family overrides
    :meth:`matches` and :meth:`build`, and whatever else it knows better."""

    name: ClassVar[str] = "network"
    prefix: ClassVar[str] = ""  # what its archs start with (``timm:``), if anything
    pretrained: ClassVar[bool] = False  # whether ``weights: pretrained`` means its own
    gates: ClassVar[Gates] = RELU_GATES

    def matches(self, arch: str) -> bool:
        """Whether ``arch`` names a model of this family."""
        return bool(self.prefix) and arch.startswith(self.prefix)

    def default_kwargs(self, arch: str) -> dict[str, Any]:
        """Builder arguments that hold unless the checkpoint or the spec says otherwise."""
        return {}

    def published(self, arch: str, weights: str) -> Any:
        """The family's own published weights that ``weights`` names (not a file), as a
        handle for :meth:`build`. Raises :class:`WeightsFileNotFoundError` (or a
        :class:`WeightsError` listing the valid names) where it names none."""
        if self.pretrained and weights == PRETRAINED:
            return True
        raise WeightsFileNotFoundError(f"weights file not found: {weights}")

    def file_meta(self, arch: str, path: str) -> dict[str, Any]:
        """What the family knows of a weights file by itself (as a checkpoint's own
        metadata: class names, preprocessing) when the file is one of its published
        checkpoints; nothing, mostly."""
        return {}

    def build(
        self,
        arch: str,
        num_classes: int | None,
        kwargs: Mapping[str, Any],
        published: Any = None,
    ) -> Built:
        """The network, untrained unless ``published`` (from :meth:`published`), with
        ``num_classes`` outputs (None: the builder's own)."""
        raise NotImplementedError

    def finish(self, module: nn.Module, input_size: int) -> None:
        """Whatever the network needs once its input size is known (nothing, mostly)."""

    def not_blocks(self) -> tuple[type[nn.Module], ...]:
        """Module types whose output is never a block's (see
        :func:`atlas.attribution.gradcam.block_outputs`): poolings, dropout, reshaping, and
        torchvision's ``Permute`` (its Swin turns the last channels-last map around before
        pooling) once torchvision's ops are loaded: a model that holds one loaded them, and
        a process without them is spared torchvision's import."""
        misc = sys.modules.get("torchvision.ops.misc")
        return NOT_BLOCKS + ((misc.Permute,) if misc is not None else ())


NETWORK = Family()  # a network handed over in memory, or built by hand: the shared rules
