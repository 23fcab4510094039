"""Guided backpropagation (Springenberg et al., "Striving for Simplicity: The All
Convolutional Net", 2014), computed by Captum: the input gradient with every ReLU passing
back only positive gradients; the largest magnitude over the color channels. Known to
depend little on the model's higher layers (Adebayo et al. 2018): the randomization check
in the reports shows it."""

from __future__ import annotations

import warnings

import torch

from atlas.attribution.base import Attribution


class GuidedBackprop(Attribution):
    name = "guided_backprop"
    signed = False
    paper = "guided backprop: max over colors of |guided gradient| (Springenberg et al. 2014)"

    def attribute(self, inputs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        from captum.attr import GuidedBackprop as CaptumGB

        method = CaptumGB(self.model.module)  # hooks every nn.ReLU, removed after the call
        with torch.enable_grad(), warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Setting backward hooks on ReLU")
            maps = method.attribute(inputs.detach().clone().requires_grad_(True), target=target)
        return maps.abs().amax(dim=1).detach()
