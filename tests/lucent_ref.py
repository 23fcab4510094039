"""Lucent (torch-lucent 0.1.8) as the tests and the render benchmark use it for a
reference: its transforms, with two patches so that they follow the image's device.

Lucent's jitter and rotate move their matrices to the device it picked when imported
("cuda:0" whenever CUDA exists); patched here to use the image's own. The math is
Lucent's, unchanged. The package itself no longer uses Lucent's transforms
(:mod:`atlas.featvis.warps` replaces them); it builds its images with Lucent's
parameterization (:mod:`atlas.featvis.params`).
"""

from __future__ import annotations

import warnings

import torch

import atlas.featvis.params  # noqa: F401  (Lucent's color decorrelation on the image's device)

with warnings.catch_warnings():
    # kornia 0.4.1, which Lucent pins, scripts functions with the deprecated torch.jit.script.
    warnings.filterwarnings("ignore", message=".*torch.jit.script.*", category=FutureWarning)
    import kornia
    import lucent.optvis.param as lucent_param
    import lucent.optvis.transform as lucent_transform
    from kornia.geometry.transform import translate as kornia_translate

__all__ = ["lucent_param", "lucent_transform"]


def _translate_on_image_device(image: torch.Tensor, translation: torch.Tensor) -> torch.Tensor:
    return kornia_translate(image, translation.to(image.device))


class _KorniaOnImageDevice:
    """Kornia as Lucent's rotate transform uses it, with the matrix moved to the image."""

    def __getattr__(self, name: str):
        return getattr(kornia, name)

    @staticmethod
    def warp_affine(image: torch.Tensor, matrix: torch.Tensor, *args, **kwargs) -> torch.Tensor:
        return kornia.warp_affine(image, matrix.to(image.device), *args, **kwargs)


lucent_transform.translate = _translate_on_image_device
lucent_transform.kornia = _KorniaOnImageDevice()
