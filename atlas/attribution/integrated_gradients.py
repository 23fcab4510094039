"""Integrated gradients (Sundararajan, Taly & Yan, "Axiomatic Attribution for Deep
Networks", 2017), computed by Captum, summed over the color channels."""

from __future__ import annotations

import torch

from atlas.attribution.base import Attribution
from atlas.config import AttributeConfig


class IntegratedGradients(Attribution):
    name = "integrated_gradients"
    signed = True
    paper = "integrated gradients from a black image, summed over colors (Sundararajan et al. 2017)"

    def __init__(self, model, options: AttributeConfig | None = None) -> None:
        super().__init__(model, options)
        self.steps = self.options.ig_steps
        self.internal_batch_size = self.options.internal_batch_size

    def attribute(self, inputs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        from captum.attr import IntegratedGradients as CaptumIG

        black = self.model.preprocessing.normalize(torch.zeros_like(inputs))
        method = CaptumIG(self.model.module)
        with torch.enable_grad():
            maps = method.attribute(
                inputs,
                baselines=black,
                target=target,
                n_steps=self.steps,
                internal_batch_size=self.internal_batch_size,
            )
        return maps.sum(dim=1).detach()
