"""Saliency: the gradient of the class score with respect to the input pixels (Simonyan,
Vedaldi & Zisserman, "Deep Inside Convolutional Networks", 2013), its largest magnitude
over the color channels."""

from __future__ import annotations

import torch

from atlas.attribution.base import Attribution, input_gradient


class Saliency(Attribution):
    name = "saliency"
    signed = False
    paper = "saliency: max over colors of |d score / d pixel| (Simonyan et al. 2013)"

    def attribute(self, inputs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return input_gradient(self.model, inputs, target).abs().amax(dim=1)
