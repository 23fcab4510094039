"""Image parameterization: Lucent's FFT image with decorrelated color, batched, with every
batch element initialized from its own seed (so an icon does not depend on its batch)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from atlas.featvis.lucent_compat import lucent_param, on_device


def fft_image(
    size: int,
    *,
    seeds: Sequence[int],
    device: torch.device | str = "cpu",
    sd: float = 0.01,
    decorrelate: bool = True,
) -> tuple[list[torch.Tensor], Callable[[], torch.Tensor]]:
    """A batch of ``len(seeds)`` images (B, 3, size, size) in [0, 1], parameterized in the
    Fourier domain with Lucid's 1/f scaling and color decorrelation. Returns the tensors
    to optimize and the function that makes the images from them."""
    with on_device(torch.device(device)):
        params, image_f = lucent_param.image(
            size, batch=len(seeds), sd=sd, decorrelate=decorrelate, fft=True
        )
    (spectrum,) = params
    with torch.no_grad():
        for b, seed in enumerate(seeds):
            generator = torch.Generator().manual_seed(int(seed))
            spectrum[b] = (torch.randn(spectrum.shape[1:], generator=generator) * sd).to(
                spectrum.device
            )
    return params, image_f
