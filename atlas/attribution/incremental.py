"""Incremental inference for occlusion: run a network on many copies of one image, each
changed inside one window, recomputing in every layer only what the window can reach.

Following Nakandala, Kumar & Papakonstantinou, "Incremental and Approximate Inference for
Faster Occlusion-based Deep CNN Explanations" (SIGMOD 2019), exactly (no approximation):
the network is traced (``torch.fx``) and run once on the clean image, keeping every
layer's map. For a batch of windows, each layer's value is then a *patch*: per window, a
tile of the layer's map at its own origin (the region the window's change has reached so
far), the rest being the clean map. A convolution or pooling computes only the output
positions whose input field touches the tile, reading the halo it needs from the clean
map; element-wise layers (BatchNorm in eval, activations) work on the tile; a residual sum
or a channel concatenation works on the union of its inputs' regions. Once a region
covers most of its map, or at an operation that mixes all positions (global pooling, a
linear head, anything not listed), the patches become full maps and the rest of the
network runs as usual, batched.

Each BatchNorm that follows a convolution is folded into it first (as for inference).
The maps equal a full recomputation up to floating-point rounding.
"""

from __future__ import annotations

import copy
import math
import operator
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import fx, nn
from torch.fx.experimental.optimization import fuse
from torch.nn import functional as F

FULL_SHARE = 0.8  # a region covering this share of its map is computed as the whole map

ELEMENTWISE_MODULES = (
    nn.modules.batchnorm._BatchNorm,
    nn.ReLU,
    nn.ReLU6,
    nn.LeakyReLU,
    nn.SiLU,
    nn.GELU,
    nn.Sigmoid,
    nn.Tanh,
    nn.Hardswish,
    nn.Hardsigmoid,
    nn.Identity,
    nn.modules.dropout._DropoutNd,
)
ELEMENTWISE_FUNCTIONS = {F.relu, torch.relu, F.relu6, F.silu, F.gelu, torch.sigmoid, F.hardswish}
ELEMENTWISE_METHODS = {"relu", "sigmoid"}
SUMS = {operator.add, operator.iadd, torch.add}
IN_PLACE_FUNCTIONS = {operator.iadd: operator.add, torch.relu_: torch.relu, F.relu_: F.relu}


@dataclass
class Patch:
    """Per window b: the map equals ``clean`` except in the tile ``tile[b]`` whose top
    left corner is at (``y0[b]``, ``x0[b]``)."""

    tile: torch.Tensor  # (B, C, h, w)
    y0: torch.Tensor  # (B,) long
    x0: torch.Tensor  # (B,) long
    clean: torch.Tensor  # (1, C, H, W)

    @property
    def batch(self) -> int:
        return self.tile.shape[0]

    def region(self, y0: torch.Tensor, x0: torch.Tensor, h: int, w: int, pad: float = 0.0):
        """The patched map over the box (y0, x0, h, w) of each window (B, C, h, w); outside
        the map, ``pad``."""
        _, _, height, width = self.clean.shape
        margin = max(
            0,
            int(-y0.min()),
            int(-x0.min()),
            int((y0 + h).max()) - height,
            int((x0 + w).max()) - width,
        )
        clean = F.pad(self.clean, (margin,) * 4, value=pad) if margin else self.clean
        rows = y0[:, None] + torch.arange(h, device=y0.device) + margin  # (B, h)
        cols = x0[:, None] + torch.arange(w, device=x0.device) + margin  # (B, w)
        out = clean[0][:, rows[:, :, None], cols[:, None, :]].permute(1, 0, 2, 3)
        th, tw = self.tile.shape[2:]
        ry = y0[:, None] + torch.arange(h, device=y0.device) - self.y0[:, None]
        rx = x0[:, None] + torch.arange(w, device=x0.device) - self.x0[:, None]
        inside = ((ry >= 0) & (ry < th))[:, :, None] & ((rx >= 0) & (rx < tw))[:, None, :]
        batch = torch.arange(self.batch, device=y0.device)[:, None, None]
        values = self.tile[batch, :, ry.clamp(0, th - 1)[:, :, None], rx.clamp(0, tw - 1)[:, None]]
        return torch.where(inside[:, None], values.permute(0, 3, 1, 2), out)

    def full(self) -> torch.Tensor:
        """The whole patched map of every window (B, C, H, W)."""
        _, _, height, width = self.clean.shape
        zero = torch.zeros(self.batch, dtype=torch.long, device=self.y0.device)
        return self.region(zero, zero, height, width)


def _span(start: torch.Tensor, size: int, k: int, s: int, p: int, d: int, limit: int):
    """The output positions (first, count) of a k/s/p/d window op whose input field
    touches input rows [start, start + size), as one count for all windows."""
    first = torch.div(start + p - (k - 1) * d + s - 1, s, rounding_mode="floor").clamp(min=0)
    last = torch.div(start + size - 1 + p, s, rounding_mode="floor").clamp(max=limit - 1)
    count = max(1, int((last - first + 1).max()))
    return first.clamp(max=limit - count), count


class IncrementalNetwork:
    """A network traced for incremental occlusion; raises an exception from ``torch.fx``
    when the network cannot be traced (the caller then recomputes whole images)."""

    def __init__(self, module: nn.Module) -> None:
        module = copy.deepcopy(module).eval()
        for part in module.modules():  # in-place layers would overwrite the kept maps
            if getattr(part, "inplace", False):
                part.inplace = False
        # BatchNorm (in eval) folded into the convolution before it: one pass over each
        # tile instead of two, the same maps up to rounding
        self.traced = fuse(module, inplace=True)
        self.modules = dict(self.traced.named_modules())
        self.nodes = list(self.traced.graph.nodes)

    # The clean pass -----------------------------------------------------------------------

    @torch.inference_mode()
    def clean(self, image: torch.Tensor) -> dict[fx.Node, object]:
        """Every node's value for one image (1, C, H, W)."""
        values: dict[fx.Node, object] = {}
        for node in self.nodes:
            if node.op == "placeholder":
                values[node] = image
            elif node.op == "output":
                values[node] = _load(node.args[0], values)
            else:
                values[node] = self._run(node, _load(node.args, values), _load(node.kwargs, values))
        return values

    def output(self, clean: dict[fx.Node, object]):
        """The network's output in a clean pass's values."""
        return clean[self.nodes[-1]]

    # The patched pass ---------------------------------------------------------------------

    @torch.inference_mode()
    def logits(self, clean: dict[fx.Node, object], tiles: torch.Tensor, y0, x0) -> torch.Tensor:
        """The network's output (B, classes) for B copies of the clean image, copy b with
        its input replaced by ``tiles[b]`` (C, h, w) at (``y0[b]``, ``x0[b]``)."""
        values: dict[fx.Node, object] = {}
        for node in self.nodes:
            if node.op == "placeholder":
                values[node] = Patch(tiles, y0, x0, clean[node])
            elif node.op == "output":
                out = _load(node.args[0], values)
                return out.full() if isinstance(out, Patch) else out
            else:
                values[node] = self._step(node, values, clean[node])
        raise AssertionError("the traced graph has no output")

    def _step(self, node: fx.Node, values, clean_out):
        args, kwargs = _load(node.args, values), _load(node.kwargs, values)
        patches = _patches((args, kwargs))
        if not patches:
            return self._run(node, args, kwargs)
        target = self.modules.get(node.target) if node.op == "call_module" else node.target
        if node.op == "call_module" and isinstance(target, nn.Conv2d | nn.MaxPool2d):
            local = self._window_op(target, args[0], clean_out)
            if local is not None:
                return local
        elementwise = (
            (node.op == "call_module" and isinstance(target, ELEMENTWISE_MODULES))
            or (node.op == "call_function" and target in ELEMENTWISE_FUNCTIONS)
            or (node.op == "call_method" and target in ELEMENTWISE_METHODS)
        )
        if elementwise and len(patches) == 1 and isinstance(args[0], Patch):
            tile = self._run(node, (args[0].tile, *args[1:]), kwargs)
            return Patch(tile, args[0].y0, args[0].x0, clean_out)
        both = len(args) == 2 and all(isinstance(a, Patch) for a in args)
        if node.op == "call_function" and target in SUMS and not kwargs and both:
            return self._joined(args, clean_out, lambda a, b: a + b)
        if node.op == "call_function" and target is torch.cat and _channel_cat(args, kwargs):
            parts = args[0]
            if all(isinstance(a, Patch) for a in parts):
                return self._joined(parts, clean_out, lambda *t: torch.cat(t, dim=1))
        # Anything else mixes positions, or is not known to us: whole maps from here on.
        return self._run(node, _full(args), _full(kwargs))

    def _window_op(self, module, patch: Patch, clean_out: torch.Tensor) -> Patch | None:
        """A convolution or max pooling on the changed region only, or None where that
        does not pay or does not apply (the caller computes whole maps)."""
        if isinstance(module, nn.Conv2d):
            if module.padding_mode != "zeros" or isinstance(module.padding, str):
                return None
            pad_value = 0.0
        else:
            if module.return_indices:
                return None
            pad_value = -math.inf
        k, s, p, d = (
            _pair(getattr(module, a)) for a in ("kernel_size", "stride", "padding", "dilation")
        )
        _, _, out_h, out_w = clean_out.shape
        h, w = patch.tile.shape[2:]
        if isinstance(module, nn.Conv2d) and k == (1, 1) and s == (1, 1) and p == (0, 0):
            # a pointwise convolution reads no neighbours: the tile alone, no halo to gather
            tile = F.conv2d(patch.tile, module.weight, module.bias, 1, 0, 1, module.groups)
            return Patch(tile, patch.y0, patch.x0, clean_out)
        oy, oh = _span(patch.y0, h, k[0], s[0], p[0], d[0], out_h)
        ox, ow = _span(patch.x0, w, k[1], s[1], p[1], d[1], out_w)
        if oh * ow >= FULL_SHARE * out_h * out_w:
            return None
        region = patch.region(
            oy * s[0] - p[0],
            ox * s[1] - p[1],
            (oh - 1) * s[0] + (k[0] - 1) * d[0] + 1,
            (ow - 1) * s[1] + (k[1] - 1) * d[1] + 1,
            pad_value,
        )
        if isinstance(module, nn.Conv2d):
            tile = F.conv2d(region, module.weight, module.bias, s, 0, d, module.groups)
        else:
            tile = F.max_pool2d(region, k, s, 0, d)
        return Patch(tile[:, :, :oh, :ow], oy, ox, clean_out)

    def _joined(self, parts: Sequence[Patch], clean_out: torch.Tensor, combine) -> Patch:
        """An operation on several patches over the union of their regions."""
        _, _, height, width = clean_out.shape
        y0 = torch.stack([p.y0 for p in parts]).min(dim=0).values
        x0 = torch.stack([p.x0 for p in parts]).min(dim=0).values
        y1 = torch.stack([p.y0 + p.tile.shape[2] for p in parts]).max(dim=0).values
        x1 = torch.stack([p.x0 + p.tile.shape[3] for p in parts]).max(dim=0).values
        h, w = int((y1 - y0).max()), int((x1 - x0).max())
        y0, x0 = y0.clamp(max=height - h), x0.clamp(max=width - w)
        tile = combine(*(p.region(y0, x0, h, w) for p in parts))
        return Patch(tile, y0, x0, clean_out)

    def _run(self, node: fx.Node, args, kwargs):
        """The node's own operation on plain values, never in place."""
        if node.op == "call_module":
            return self.modules[node.target](*args, **kwargs)
        if node.op == "call_function":
            function = IN_PLACE_FUNCTIONS.get(node.target, node.target)
            if kwargs.get("inplace"):
                kwargs = {**kwargs, "inplace": False}
            return function(*args, **kwargs)
        if node.op == "call_method":
            name = node.target[:-1] if node.target.endswith("_") else node.target
            return getattr(args[0], name)(*args[1:], **kwargs)
        if node.op == "get_attr":
            return operator.attrgetter(node.target)(self.traced)
        raise AssertionError(f"unexpected node {node.op}")


def _load(value, values):
    return fx.node.map_arg(value, lambda n: values[n])


def _patches(value) -> list[Patch]:
    if isinstance(value, Patch):
        return [value]
    if isinstance(value, (list, tuple)):
        return [p for v in value for p in _patches(v)]
    if isinstance(value, dict):
        return [p for v in value.values() for p in _patches(v)]
    return []


def _full(value):
    if isinstance(value, Patch):
        return value.full()
    if isinstance(value, (list, tuple)):
        return type(value)(_full(v) for v in value)
    if isinstance(value, dict):
        return {k: _full(v) for k, v in value.items()}
    return value


def _channel_cat(args, kwargs) -> bool:
    dim = kwargs.get("dim", args[1] if len(args) > 1 else 0)
    return dim == 1 and isinstance(args[0], (list, tuple))


def _pair(value) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else tuple(value)
