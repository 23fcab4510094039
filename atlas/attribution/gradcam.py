"""Grad-CAM (Selvaraju et al., "Grad-CAM: Visual Explanations from Deep Networks via
Gradient-based Localization", 2017): a layer's activation maps weighted by the spatial
mean of the class score's gradient, summed, rectified and upsampled to the input.

:class:`LayerMap` is what every class-activation-map method shares: the layer, by default
the output of the network's last block (after its activation and any residual addition:
``layer4`` on ResNets, ``features`` on VGG, ``inception5b`` on GoogLeNet — the layer
pytorch-grad-cam documents, and not the last ``Conv2d`` in registration order, which on a
ResNet is a pre-BatchNorm, pre-residual tensor); the map's native resolution, stated in
reports with a warning when it is too coarse to localize (ResNet-18's last block is 2x2
at 64 px input) and a finer block suggested.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn
from torch.nn import functional as F

from atlas.attribution.base import Attribution
from atlas.config import AttributeConfig
from atlas.errors import AtlasError
from atlas.layers import capture, get_layer, summarize
from atlas.models import LoadedModel

COARSE = 7  # maps with fewer cells per side than this localize poorly
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


def block_outputs(model: LoadedModel) -> list[tuple[str, tuple[int, int]]]:
    """The modules whose outputs are (C, H, W) maps that a block ends with, in the order
    they finish (a container after its last child), with their spatial size at the model's
    input size. Maps of 1 x 1 (inside squeeze-and-excitation, or after the global pool)
    are not blocks' outputs."""
    summary = summarize(model.module, model.preprocessing.input_size)
    modules = dict(model.module.named_modules())
    rows = sorted((r for r in summary.rows if r.finished >= 0), key=lambda r: r.finished)
    return [
        (row.name, tuple(row.output_shape[1:]))
        for row in rows
        if row.output_shape is not None
        and len(row.output_shape) == 3
        and row.output_shape[1] * row.output_shape[2] > 1
        and not isinstance(modules[row.name], NOT_BLOCKS)
    ]


def last_block(model: LoadedModel) -> str:
    """The name of the module whose output is the network's last block's (see
    :func:`block_outputs`): the default layer of class activation maps."""
    blocks = block_outputs(model)
    if not blocks:
        raise AtlasError(
            f"{model.spec.arch} has no layer with a spatial map for a class activation map; "
            "name one with attribute.gradcam_layer"
        )
    return blocks[-1][0]


class LayerMap(Attribution):
    """A class activation map on one layer (``layer``: default :func:`last_block`)."""

    title: ClassVar[str] = ""

    def __init__(self, model: LoadedModel, layer: str | None = None) -> None:
        super().__init__(model)
        self.layer = layer or last_block(model)
        get_layer(model.module, self.layer)  # a clear error for an unknown name
        self.resolution: tuple[int, int] | None = None

    @classmethod
    def configured(cls, model: LoadedModel, options: AttributeConfig):
        return cls(model, options.gradcam_layer)

    def describe(self) -> str:
        h, w = self.resolution or ("?", "?")
        size = self.model.preprocessing.input_size
        line = f"{self.title} on {self.layer}, native resolution {h}x{w} at {size} px input"
        warning = self.coarseness_warning()
        return f"{line}. {warning}" if warning else line

    def coarseness_warning(self) -> str:
        """A warning, naming a finer layer to try, when the map is too coarse."""
        if self.resolution is None or min(self.resolution) >= COARSE:
            return ""
        finer = self.finer_layer()
        hint = f"; try gradcam_layer={finer[0]} ({finer[1][0]}x{finer[1][1]})" if finer else ""
        h, w = self.resolution
        return f"warning: {h}x{w} is too coarse to localize{hint}"

    def finer_layer(self) -> tuple[str, tuple[int, int]] | None:
        """The last block whose map has at least twice the current resolution."""
        current = min(self.resolution)
        finer = [(n, s) for n, s in block_outputs(self.model) if min(s) >= 2 * current]
        return finer[-1] if finer else None


class GradCAM(LayerMap):
    name = "gradcam"
    signed = False
    paper = "Grad-CAM (Selvaraju et al. 2017)"
    title = "Grad-CAM"

    def attribute(self, inputs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        with torch.enable_grad(), capture(self.model.module, [self.layer], detach=False) as acts:
            logits = self.model.module(inputs.detach().requires_grad_(True))
            activations = acts[self.layer]
            (grads,) = torch.autograd.grad(logits.gather(1, target.view(-1, 1)).sum(), activations)
        self.resolution = tuple(activations.shape[2:])
        weights = grads.mean(dim=(2, 3), keepdim=True)
        cam = F.relu((weights * activations).sum(dim=1, keepdim=True))
        return F.interpolate(cam, size=inputs.shape[2:], mode="bilinear", align_corners=False)[
            :, 0
        ].detach()
