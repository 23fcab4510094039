"""Image parameterization: Lucent's FFT image with decorrelated color, batched, with every
batch element initialized from its own seed (so an icon does not depend on its batch).

Lucent 0.1.8 picks one device for everything when it is imported ("cuda:0" whenever CUDA
exists). Its parameterizations are therefore built with its module-level device set to
ours, under a lock (:func:`on_device`), and its color decorrelation is replaced, at import
of this module, by the same product on the image's own device.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

import lucent.optvis.param as lucent_param
import lucent.optvis.param.color as lucent_color
import lucent.optvis.param.spatial as lucent_spatial
import torch

_DEVICE_LOCK = threading.Lock()


@contextmanager
def on_device(device: torch.device) -> Iterator[None]:
    """Build Lucent parameterizations on ``device`` (its device is read only while building)."""
    with _DEVICE_LOCK:
        saved = lucent_spatial.device
        lucent_spatial.device = torch.device(device)
        try:
            yield
        finally:
            lucent_spatial.device = saved


def _decorrelate_on_image_device(tensor: torch.Tensor) -> torch.Tensor:
    matrix = torch.tensor(lucent_color.color_correlation_normalized.T, device=tensor.device)
    return torch.matmul(tensor.permute(0, 2, 3, 1), matrix).permute(0, 3, 1, 2)


lucent_color._linear_decorrelate_color = _decorrelate_on_image_device


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
