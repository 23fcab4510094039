"""Finding a model's layers, hooks that are always removed, and the layer summary."""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from functools import partial
from typing import Any

import torch
from torch import nn

from atlas.errors import AtlasError, LayerNotFoundError, choices_hint

MAX_PREFIX_TOKENS = 8  # class, distillation and register tokens before a ViT's patch grid


def layer_names(model: nn.Module) -> list[str]:
    """Dotted names of every submodule, in registration order."""
    return [name for name, _ in model.named_modules() if name]


def get_layer(model: nn.Module, name: str) -> nn.Module:
    """The submodule called ``name`` (dotted, as in ``named_modules``)."""
    modules = dict(model.named_modules())
    if name and name in modules:
        return modules[name]
    raise LayerNotFoundError(
        f"unknown layer {name!r} "
        + choices_hint(name, layer_names(model), label="layers")
        + "; `atlas layers` lists them all"
    )


CONTAINERS = (nn.Sequential, nn.ModuleList, nn.ModuleDict)
NORMS = (
    nn.modules.batchnorm._BatchNorm,
    nn.modules.instancenorm._InstanceNorm,
    nn.LayerNorm,
    nn.GroupNorm,
    nn.LocalResponseNorm,
)


def blocks(model: nn.Module) -> list[list[str]]:
    """The model's blocks, bottom to top (registration order): what a person calls its
    layers. Pure containers (``Sequential``, ``ModuleList``) are opened, modules without
    parameters are left out, and a normalization layer belongs to the block before it (a
    BatchNorm is not a layer of its own). Each block is the list of module names that make
    it, e.g. ``["conv1", "bn1"]``, ``["layer4.1"]``, ``["fc"]`` on a ResNet."""
    found: list[list[str]] = []

    def visit(prefix: str, module: nn.Module) -> None:
        for name, child in module.named_children():
            full = prefix + name
            if not any(True for _ in child.parameters()):
                continue
            if isinstance(child, CONTAINERS):
                visit(full + ".", child)
            elif isinstance(child, NORMS) and found:
                found[-1].append(full)
            else:
                found.append([full])

    visit("", model)
    return found


def repeated_blocks(module: nn.Module) -> set[str]:
    """Names of the modules that are elements of a ``Sequential`` or ``ModuleList``: the
    repeated blocks of a network (``layer3.4``, ``blocks.7``, ``features.12``)."""
    found = set()
    for name, part in module.named_modules():
        if isinstance(part, (nn.Sequential, nn.ModuleList)):
            found |= {f"{name}.{child}" if name else child for child, _ in part.named_children()}
    return found


class LayerOutputError(AtlasError, ValueError):
    """A layer whose output cannot be read as activation maps or vectors."""


@dataclass(frozen=True)
class MapView:
    """How a layer's output is read as activation maps (B, C, H, W) or vectors (B, C),
    whatever its own layout: ``maps`` (B, C, H, W) as they are; ``channels_last``
    (B, H, W, C), as Swin and some ConvNeXt stages give them; ``tokens`` (B, N, C), a
    vision transformer's, whose first ``prefix`` tokens (class, distillation, registers)
    are dropped and the rest restored to their ``grid`` of patches; ``vector`` (B, C).
    A layer returning a tuple or a model output is read through its first tensor. The
    view is differentiable: gradients reach the layer through it."""

    layout: str  # "maps", "channels_last", "tokens" or "vector"
    prefix: int = 0
    grid: tuple[int, int] = (0, 0)

    def __call__(self, output: Any) -> torch.Tensor:
        tensor = output if isinstance(output, torch.Tensor) else _first_tensor(output)
        if self.layout == "channels_last":
            return tensor.permute(0, 3, 1, 2)
        if self.layout == "tokens":
            patches = tensor[:, self.prefix :, :].transpose(1, 2)
            return patches.reshape(tensor.shape[0], tensor.shape[2], *self.grid)
        return tensor

    @property
    def identity(self) -> bool:
        return self.layout in ("maps", "vector")

    def restore(self, viewed: torch.Tensor, original: torch.Tensor) -> torch.Tensor:
        """The layer's output in its own layout again, computed from ``viewed`` (so that
        what follows the layer depends on the viewed tensor, and gradients reach it)."""
        if self.layout == "channels_last":
            return viewed.permute(0, 2, 3, 1)
        if self.layout == "tokens":
            patches = viewed.flatten(2).transpose(1, 2)
            return torch.cat([original[:, : self.prefix, :], patches], dim=1)
        return viewed

    def shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        """The viewed shape per sample of an output of ``shape`` per sample."""
        if self.layout == "channels_last":
            return (shape[2], shape[0], shape[1])
        if self.layout == "tokens":
            return (shape[1], *self.grid)
        return tuple(shape)

    @classmethod
    def of(cls, name: str, shape: tuple[int, ...] | None, prefix: int | None = None) -> MapView:
        """The view of a layer whose output has ``shape`` per sample (without the batch
        dimension). Square maps are assumed (the models' inputs are square): a 3-D shape
        (a, a, c) with c != a is channels-last; a 2-D shape (N, C) is tokens when N less a
        few prefix tokens (``prefix`` if known) is a square grid. Anything else raises
        :class:`LayerOutputError`, naming the layer and the shape."""
        if shape is not None and len(shape) == 1:
            return cls("vector")
        if shape is not None and len(shape) == 3:
            a, b, c = shape
            if b == c:
                return cls("maps")
            if a == b:
                return cls("channels_last")
        if shape is not None and len(shape) == 2:
            tokens = shape[0]
            for skip in [prefix] if prefix is not None else range(MAX_PREFIX_TOKENS + 1):
                side = math.isqrt(max(tokens - skip, 0))
                if side > 0 and side * side == tokens - skip:
                    return cls("tokens", skip, (side, side))
        shown = "x".join(map(str, shape)) if shape else "no tensor"
        raise LayerOutputError(
            f"layer {name!r} outputs {shown} per image; atlas reads (C, H, W) maps, (H, W, C) "
            "channels-last maps, (tokens, C) with a square grid of patch tokens, or (C,) "
            "vectors: choose another layer (`atlas layers` shows every output)"
        )


class Hooks:
    """Owns hook handles; :meth:`release` or leaving the ``with`` block removes them all."""

    def __init__(self) -> None:
        self._handles: list[torch.utils.hooks.RemovableHandle] = []

    def forward(self, module: nn.Module, fn: Callable) -> None:
        self._handles.append(module.register_forward_hook(fn))

    def release(self) -> None:
        while self._handles:
            self._handles.pop().remove()

    def __enter__(self) -> Hooks:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


@contextmanager
def capture(
    model: nn.Module,
    layers: Sequence[str],
    *,
    detach: bool = True,
    views: Mapping[str, MapView] | None = None,
) -> Iterator[dict[str, torch.Tensor]]:
    """Record the outputs of the named layers during forward passes inside the block,
    each read through its :class:`MapView` when ``views`` names one.

    Yields a dict that fills as the model runs (the latest call of each layer wins).
    With ``detach=False`` the tensors stay in the autograd graph, for gradients.
    The rest of the network receives a copy of each recorded output, so an in-place
    operation after the layer (``ReLU(inplace=True)``) cannot alter what was recorded.
    """
    modules = {name: get_layer(model, name) for name in layers}
    outputs: dict[str, torch.Tensor] = {}
    views = views or {}
    with Hooks() as hooks:
        for name, module in modules.items():
            hooks.forward(module, partial(_store_output, outputs, name, detach, views.get(name)))
        yield outputs


def _store_output(outputs: dict, name: str, detach: bool, view, module, args, output):
    tensor = output if isinstance(output, torch.Tensor) else _first_tensor(output)
    if tensor is None:
        outputs[name] = output
        return None
    recorded = tensor.detach() if detach else tensor
    if view is None or view.identity or detach:
        outputs[name] = view(recorded) if view is not None else recorded
        replacement = tensor.clone()
    else:
        # The network goes on from the viewed tensor, so gradients reach it.
        outputs[name] = view(recorded)
        replacement = view.restore(outputs[name], tensor).clone()
    if isinstance(output, torch.Tensor):
        return replacement
    if isinstance(output, tuple) and output and output[0] is tensor:
        return (replacement, *output[1:])
    return None  # another structure: recorded, passed on unchanged


def output_shapes(
    model: nn.Module, layers: Sequence[str], input_size: int
) -> dict[str, tuple[int, ...] | None]:
    """The output shape per sample (first tensor of a structure) of each named layer, from
    one forward pass of a zero image of ``input_size``."""
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    with torch.no_grad(), capture(model, layers) as outputs:
        model(torch.zeros(1, 3, input_size, input_size, device=device))
    shapes = {}
    for name in layers:
        tensor = _first_tensor(outputs.get(name))
        shapes[name] = tuple(tensor.shape[1:]) if tensor is not None else None
    return shapes


@dataclass(frozen=True)
class LayerRow:
    name: str
    type: str
    depth: int
    output_shape: tuple[int, ...] | None  # per sample, without the batch dimension
    params: int
    trainable: str  # "yes", "no", "partial", or "" for modules without parameters
    calls: int
    input_shape: tuple[int, ...] | None = None  # of the first tensor argument (first call)
    finished: int = -1  # when its last call returned, counted over all modules (-1: never)


@dataclass(frozen=True)
class ModelSummary:
    input_shape: tuple[int, ...]
    rows: list[LayerRow]
    total_params: int
    trainable_params: int

    def within(self, layer: str) -> ModelSummary:
        """The rows of ``layer`` and its descendants (totals still cover the whole model)."""
        rows = [r for r in self.rows if r.name == layer or r.name.startswith(layer + ".")]
        return replace(self, rows=rows)

    def as_dict(self) -> dict[str, Any]:
        return {
            "input_shape": list(self.input_shape),
            "total_params": self.total_params,
            "trainable_params": self.trainable_params,
            "layers": [
                {**row.__dict__, "output_shape": list(row.output_shape or []) or None}
                for row in self.rows
            ],
        }


def summarize(
    model: nn.Module, input_size: int, *, device: str | torch.device | None = None
) -> ModelSummary:
    """Every submodule's type, output shape at ``input_size``, parameter count and trainability.

    Runs one forward pass on a zero image with hooks on every module (removed after).
    """
    device = device or next((p.device for p in model.parameters()), torch.device("cpu"))
    shapes: dict[str, tuple[int, ...] | None] = {}
    inputs: dict[str, tuple[int, ...] | None] = {}
    calls: dict[str, int] = {}
    finished: dict[str, int] = {}
    clock = itertools.count()

    def record(name: str, module, args, output) -> None:
        calls[name] = calls.get(name, 0) + 1
        finished[name] = next(clock)
        if name not in shapes:
            tensor = output if isinstance(output, torch.Tensor) else _first_tensor(output)
            shapes[name] = tuple(tensor.shape[1:]) if tensor is not None else None
            first = _first_tensor(args)
            inputs[name] = tuple(first.shape[1:]) if first is not None else None

    named = [(name, m) for name, m in model.named_modules() if name]
    was_training = model.training
    model.eval()
    try:
        with Hooks() as hooks, torch.no_grad():
            for name, module in named:
                hooks.forward(module, partial(record, name))
            model(torch.zeros(1, 3, input_size, input_size, device=device))
    finally:
        model.train(was_training)

    rows = []
    for name, module in named:
        params = list(module.parameters())
        flags = {p.requires_grad for p in params}
        trainable = (
            ""
            if not params
            else "partial"
            if len(flags) == 2
            else ("yes" if True in flags else "no")
        )
        rows.append(
            LayerRow(
                name=name,
                type=type(module).__name__,
                depth=name.count("."),
                output_shape=shapes.get(name),
                params=sum(p.numel() for p in params),
                trainable=trainable,
                calls=calls.get(name, 0),
                input_shape=inputs.get(name),
                finished=finished.get(name, -1),
            )
        )
    unique = {id(p): p for p in model.parameters()}.values()
    return ModelSummary(
        input_shape=(3, input_size, input_size),
        rows=rows,
        total_params=sum(p.numel() for p in unique),
        trainable_params=sum(p.numel() for p in unique if p.requires_grad),
    )


def format_summary(summary: ModelSummary, *, max_depth: int | None = None) -> str:
    """The summary as a text table, indented by depth, with totals."""
    header = ("Layer", "Type", "Output shape", "Params", "Trainable")
    lines = []
    for row in summary.rows:
        if max_depth is not None and row.depth > max_depth:
            continue
        shape = "x".join(map(str, row.output_shape)) if row.output_shape else "-"
        if row.calls > 1:
            shape += f" (x{row.calls} calls)"
        elif row.calls == 0:
            shape = "not called"
        lines.append(
            ("  " * row.depth + row.name, row.type, shape, f"{row.params:,}", row.trainable)
        )
    widths = [
        max(len(h), *(len(r[i]) for r in lines)) if lines else len(h) for i, h in enumerate(header)
    ]

    def fmt(cells):
        return "  ".join(
            c.rjust(w) if i == 3 else c.ljust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ).rstrip()

    rule = "-" * len(fmt(header))
    frozen = summary.total_params - summary.trainable_params
    out = [f"Input: {'x'.join(map(str, summary.input_shape))}", rule, fmt(header), rule]
    out += [fmt(r) for r in lines]
    out += [
        rule,
        f"Total params: {summary.total_params:,}",
        f"Trainable params: {summary.trainable_params:,}",
        f"Non-trainable params: {frozen:,}",
    ]
    return "\n".join(out)


def _first_tensor(output: Any) -> torch.Tensor | None:
    if isinstance(output, torch.Tensor):
        return output
    if isinstance(output, Mapping):
        output = list(output.values())
    if isinstance(output, (tuple, list)):
        for item in output:
            found = _first_tensor(item)
            if found is not None:
                return found
    return None
