"""SmoothGrad (Smilkov et al., "SmoothGrad: removing noise by adding noise", 2017) of the
saliency map, computed by Captum's ``NoiseTunnel``: the mean over noisy copies of the
image of the input gradient's magnitude, its largest value over the color channels."""

from __future__ import annotations

import torch

from atlas.attribution.base import Attribution
from atlas.config import AttributeConfig


class SmoothGrad(Attribution):
    name = "smoothgrad"
    signed = False

    def __init__(self, model, options: AttributeConfig | None = None) -> None:
        super().__init__(model, options)
        self.samples = self.options.smoothgrad_samples
        self.noise = self.options.smoothgrad_noise
        self.seed = self.options.smoothgrad_seed

    @property
    def paper(self) -> str:  # type: ignore[override]
        return (
            f"SmoothGrad (Smilkov et al. 2017): max over colors of the mean |gradient| over "
            f"{self.samples} copies with Gaussian noise of {self.noise:.0%} of the input's "
            "range, by Captum's NoiseTunnel"
        )

    def attribute(self, inputs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        from captum.attr import NoiseTunnel, Saliency

        spread = float(inputs.max() - inputs.min()) * self.noise
        tunnel = NoiseTunnel(Saliency(self.model.module))
        # Captum draws the noise from torch's global generator: seed it, and leave it as it was.
        with torch.random.fork_rng(devices=[]), torch.enable_grad():
            torch.manual_seed(self.seed)
            maps = tunnel.attribute(
                inputs.detach().clone().requires_grad_(True),
                nt_type="smoothgrad",
                nt_samples=self.samples,
                stdevs=spread,
                target=target,
            )
        return maps.amax(dim=1).detach()
