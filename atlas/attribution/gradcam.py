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
from torch.nn import functional as F

from atlas.attribution.base import Attribution
from atlas.config import AttributeConfig
from atlas.errors import AtlasError
from atlas.layers import LayerOutputError, MapView, get_layer, repeated_blocks, summarize
from atlas.models import LoadedModel

COARSE = 7  # maps with fewer cells per side than this localize poorly


def block_outputs(model: LoadedModel) -> list[tuple[str, tuple[int, int]]]:
    """The modules whose outputs read as (C, H, W) maps (:class:`atlas.layers.MapView`:
    maps, channels-last maps, transformer tokens) that a block may end with, in the order
    they finish (a container after its last child), with their spatial size at the model's
    input size. Maps of 1 x 1 (inside squeeze-and-excitation, or after the global pool)
    are not blocks' outputs, nor are those of the modules the model's family says end no
    block (:meth:`atlas.models.Family.not_blocks`: poolings, dropout, reshaping)."""
    summary = summarize(model.module, model.preprocessing.input_size)
    modules = dict(model.module.named_modules())
    rows = sorted((r for r in summary.rows if r.finished >= 0), key=lambda r: r.finished)
    found = []
    not_blocks = model.family.not_blocks()
    for row in rows:
        if row.output_shape is None or isinstance(modules[row.name], not_blocks):
            continue
        try:
            view = MapView.of(row.name, row.output_shape, model.prefix_tokens)
        except LayerOutputError:
            continue
        shape = view.shape(row.output_shape)
        if view.layout != "vector" and shape[1] * shape[2] > 1:
            found.append((row.name, tuple(shape[1:])))
    return found


def last_block(model: LoadedModel) -> str:
    """The name of the module whose output is the network's last block's (see
    :func:`block_outputs`): the default layer of class activation maps.

    A transformer that classifies from its class token alone gives its patch tokens no
    say after the last attention: there, the last repeated block (an element of the
    blocks' ``Sequential`` or ``ModuleList``) whose patch tokens still reach the output,
    i.e. the input of the last attention (pytorch-grad-cam's ``blocks[-1].norm1``, before
    the norm)."""
    blocks = block_outputs(model)
    if not blocks:
        raise AtlasError(
            f"{model.spec.arch} has no layer with a spatial map for a class activation map; "
            "name one with attribute.gradcam_layer"
        )
    name = blocks[-1][0]
    if model.view(name).layout != "tokens":
        return name
    repeated = repeated_blocks(model.module)
    candidates = [n for n, _ in blocks if n in repeated and model.view(n).layout == "tokens"]
    return _last_reaching_output(model, candidates) or name


def _last_reaching_output(model: LoadedModel, names: list[str]) -> str | None:
    """The last of ``names`` (in order) whose maps the top logit has a gradient for, on a
    random image."""
    if not names:
        return None
    size = model.preprocessing.input_size
    image = torch.randn(1, 3, size, size, generator=torch.Generator().manual_seed(0))
    with torch.enable_grad(), model.capture(names, detach=False) as maps:
        logits = model.module(image.to(model.device).requires_grad_(True))
        grads = torch.autograd.grad(logits.max(), [maps[n] for n in names], allow_unused=True)
    reaching = [n for n, g in zip(names, grads, strict=True) if g is not None and g.abs().sum() > 0]
    return reaching[-1] if reaching else None


class LayerMap(Attribution):
    """A class activation map on one layer (``layer``: default :func:`last_block`)."""

    title: ClassVar[str] = ""

    def __init__(self, model: LoadedModel, options: AttributeConfig | None = None) -> None:
        super().__init__(model, options)
        self.layer = self.options.gradcam_layer or last_block(model)
        get_layer(model.module, self.layer)  # a clear error for an unknown name
        self.resolution: tuple[int, int] | None = None

    def on(self, model: LoadedModel) -> LayerMap:
        """The same layer on another network of this architecture, without looking for
        the last block again."""
        other = super().on(model)
        other.resolution = None
        return other

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
        with torch.enable_grad(), self.model.capture([self.layer], detach=False) as acts:
            logits = self.model.module(inputs.detach().requires_grad_(True))
            activations = acts[self.layer]
            (grads,) = torch.autograd.grad(logits.gather(1, target.view(-1, 1)).sum(), activations)
        self.resolution = tuple(activations.shape[2:])
        weights = grads.mean(dim=(2, 3), keepdim=True)
        cam = F.relu((weights * activations).sum(dim=1, keepdim=True))
        return F.interpolate(cam, size=inputs.shape[2:], mode="bilinear", align_corners=False)[
            :, 0
        ].detach()
