"""Fixes, on our side, for two habits of torch-lucent 0.1.8 that a batched, multi-device,
multi-threaded render cannot live with. Importing this module applies them.

1. Lucent picks one device for everything at import time ("cuda:0" whenever CUDA
   exists). Parameterizations are therefore built with Lucent's module-level device set
   to ours (:func:`on_device`, under a lock), and the color decorrelation and the
   jitter/rotate transforms are patched to follow the image's own device instead.
   The math is Lucent's, unchanged.
2. Lucent's transforms draw their randomness from NumPy's global generator. A render
   gets its own ``RandomState``, swapped in under a lock around each use
   (:func:`seeded`), so concurrent renders in threads stay deterministic.
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

import numpy as np
import torch

with warnings.catch_warnings():
    # kornia 0.4.1, which Lucent pins, scripts functions with the deprecated torch.jit.script.
    warnings.filterwarnings("ignore", message=".*torch.jit.script.*", category=FutureWarning)
    import kornia
    import lucent.optvis.param as lucent_param
    import lucent.optvis.param.color as lucent_color
    import lucent.optvis.param.spatial as lucent_spatial
    import lucent.optvis.transform as lucent_transform
    from kornia.geometry.transform import translate as kornia_translate

__all__ = ["lucent_param", "lucent_transform", "on_device", "seeded"]

_LOCK = threading.RLock()


@contextmanager
def on_device(device: torch.device) -> Iterator[None]:
    """Build Lucent parameterizations on ``device`` (its device is read only while building)."""
    with _LOCK:
        saved = lucent_spatial.device
        lucent_spatial.device = torch.device(device)
        try:
            yield
        finally:
            lucent_spatial.device = saved


def seeded(transforms: Sequence[Callable], seed: int) -> Callable[[torch.Tensor], torch.Tensor]:
    """Compose transforms so that their random draws come from a generator of their own,
    seeded with ``seed``. Lucent's transforms run whole under the lock that guards
    NumPy's global generator; ours (:class:`atlas.featvis.warps.Drawn`) only draw under
    it, and their warps run outside it, in parallel with other threads."""
    state = np.random.RandomState(seed).get_state()
    drawn = all(hasattr(transform, "draw") for transform in transforms)

    def apply(image: torch.Tensor) -> torch.Tensor:
        nonlocal state
        warps = []
        with _LOCK:
            saved = np.random.get_state()
            np.random.set_state(state)
            try:
                shape = tuple(image.shape[-2:])
                for transform in transforms:
                    if drawn:
                        warps.append(transform.draw(shape))
                        shape = warps[-1].shape_out(shape)
                    else:
                        image = transform(image)
            finally:
                state = np.random.get_state()
                np.random.set_state(saved)
        for warp in warps:
            image = warp(image)
        return image

    return apply


def _decorrelate_on_image_device(tensor: torch.Tensor) -> torch.Tensor:
    matrix = torch.tensor(lucent_color.color_correlation_normalized.T, device=tensor.device)
    return torch.matmul(tensor.permute(0, 2, 3, 1), matrix).permute(0, 3, 1, 2)


def _translate_on_image_device(image: torch.Tensor, translation: torch.Tensor) -> torch.Tensor:
    return kornia_translate(image, translation.to(image.device))


class _KorniaOnImageDevice:
    """Kornia as Lucent's rotate transform uses it, with the matrix moved to the image."""

    def __getattr__(self, name: str):
        return getattr(kornia, name)

    @staticmethod
    def warp_affine(image: torch.Tensor, matrix: torch.Tensor, *args, **kwargs) -> torch.Tensor:
        return kornia.warp_affine(image, matrix.to(image.device), *args, **kwargs)


lucent_color._linear_decorrelate_color = _decorrelate_on_image_device
lucent_transform.translate = _translate_on_image_device
lucent_transform.kornia = _KorniaOnImageDevice()
