"""Grad-CAM (Selvaraju et al., "Grad-CAM: Visual Explanations from Deep Networks via
Gradient-based Localization", 2017): a layer's activation maps weighted by the spatial
mean of the class score's gradient, summed, rectified and upsampled to the input.

The default layer is the network's last convolution, found automatically. Its native
resolution is stated in reports, with a warning when it is too coarse to localize
anything (ResNet-18's last convolution is 2x2 at 64 px input) and a finer layer suggested.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from atlas.attribution.base import Attribution
from atlas.config import AttributeConfig
from atlas.layers import capture, get_layer, summarize
from atlas.models import LoadedModel

COARSE = 7  # maps with fewer cells per side than this localize poorly


def last_conv_layer(module: nn.Module) -> str:
    """Name of the last ``Conv2d`` module, in registration order."""
    names = [name for name, m in module.named_modules() if isinstance(m, nn.Conv2d)]
    if not names:
        raise ValueError(f"{type(module).__name__} has no Conv2d layer for Grad-CAM")
    return names[-1]


class GradCAM(Attribution):
    name = "gradcam"
    signed = False
    paper = "Grad-CAM (Selvaraju et al. 2017)"

    def __init__(self, model: LoadedModel, layer: str | None = None) -> None:
        super().__init__(model)
        self.layer = layer or last_conv_layer(model.module)
        get_layer(model.module, self.layer)  # a clear error for an unknown name
        self.resolution: tuple[int, int] | None = None

    @classmethod
    def configured(cls, model: LoadedModel, options: AttributeConfig) -> GradCAM:
        return cls(model, options.gradcam_layer)

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

    def describe(self) -> str:
        h, w = self.resolution or ("?", "?")
        size = self.model.preprocessing.input_size
        line = f"Grad-CAM on {self.layer}, native resolution {h}x{w} at {size} px input"
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
        """The last convolution with at least twice the resolution of the current layer."""
        summary = summarize(self.model.module, self.model.preprocessing.input_size)
        modules = dict(self.model.module.named_modules())
        current = min(self.resolution)
        candidates = [
            (row.name, row.output_shape[1:3])
            for row in summary.rows
            if isinstance(modules[row.name], nn.Conv2d)
            and row.output_shape
            and min(row.output_shape[1:3]) >= 2 * current
        ]
        return candidates[-1] if candidates else None
