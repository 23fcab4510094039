"""Checks of attribution maps that work with any method (kept apart from the methods, as
pytorch-grad-cam keeps its metrics).

- Cascading model randomization (Adebayo et al., "Sanity Checks for Saliency Maps",
  NeurIPS 2018): re-initialize the model's blocks one at a time from the top down and,
  after each step, compare the method's map with the original: Spearman rank correlation
  (ties averaged) of the absolute and of the signed maps, and SSIM of the maps scaled to
  [0, 1]. A map that stays similar while the weights it should explain are destroyed does
  not explain the model. A map that becomes all zero is reported as such, not as a
  similarity.
- Deletion and insertion (Petsiuk, Das & Saenko, "RISE: Randomized Input Sampling for
  Explanation of Black-box Models", BMVC 2018): the class probability as the most
  attributed pixels are replaced by zero (in normalized units: the data set's mean
  colour) step by step, or revealed step by step in a blurred copy (RISE's 11-tap
  Gaussian, sigma 5); the area under each curve (x from 0 to 1). Low deletion AUC and
  high insertion AUC mean the map points at what the model uses.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from atlas.attribution.base import Attribution
from atlas.layers import blocks, get_layer
from atlas.models import LoadedModel

DELETION_BASELINE = "zero in normalized units (the data set's mean colour)"
INSERTION_BASELINE = "a blurred copy (Gaussian, 11 px, sigma 5)"


@dataclass
class Cascade:
    """Per image (rows) and cascade step (columns): similarity of the map after
    randomizing the top blocks down to ``steps[k]`` with the original map. NaN where
    either map is all zero (``zero[i, k]``)."""

    steps: list[str]  # the block randomized at each step, top first
    spearman_abs: np.ndarray  # (B, S)
    spearman_signed: np.ndarray  # (B, S)
    ssim: np.ndarray  # (B, S)
    zero: np.ndarray  # (B, S) bool: a map was all zero, so there is no similarity to give
    original_zero: np.ndarray  # (B,) bool: the original map itself is all zero


def randomize(module: nn.Module, seed: int) -> None:
    """Re-initialize every parameter of ``module`` (and its children) in place; a
    BatchNorm gets random scale and shift (a fresh one is the identity)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for part in module.modules():
            if hasattr(part, "reset_parameters"):
                part.reset_parameters()
            if isinstance(part, nn.modules.batchnorm._BatchNorm) and part.affine:
                with torch.no_grad():
                    part.weight.normal_(1.0, 0.5)
                    part.bias.normal_(0.0, 0.5)


def cascading_randomization(
    make: Callable[[LoadedModel], Attribution],
    model: LoadedModel,
    inputs: torch.Tensor,
    target: torch.Tensor,
    *,
    steps: int | None = None,
    original: torch.Tensor | None = None,
    seed: int = 0,
) -> Cascade:
    """The cascade of :func:`randomize` over the top ``steps`` blocks (all when None) of
    the model (:func:`atlas.layers.blocks`), the method rebuilt by ``make`` on each
    randomized copy; the model itself is never touched."""
    before = (make(model).attribute(inputs, target) if original is None else original).cpu()
    clone = copy.deepcopy(model.module).eval()
    randomized = model.with_module(clone)
    chosen = blocks(clone)[::-1][:steps]
    curves = np.full((4, len(before), len(chosen)), np.nan)
    for k, step in enumerate(chosen):
        for name in step:
            randomize(get_layer(clone, name), seed + k)
        after = make(randomized).attribute(inputs, target).cpu()
        for i, (a, b) in enumerate(zip(before, after, strict=True)):
            curves[:, i, k] = _similarities(a.numpy(), b.numpy())
    return Cascade(
        steps=[_label(step) for step in chosen],
        spearman_abs=curves[0],
        spearman_signed=curves[1],
        ssim=curves[2],
        zero=curves[3] > 0,
        original_zero=np.array([not np.any(a.numpy()) for a in before]),
    )


def _label(step: list[str]) -> str:
    """A block's name: the modules' common dotted prefix, or their names joined."""
    parts = [name.split(".") for name in step]
    common = []
    for pieces in zip(*parts, strict=False):
        if len(set(pieces)) > 1:
            break
        common.append(pieces[0])
    return ".".join(common) if common and len(step) > 1 else " + ".join(step)


def _similarities(a: np.ndarray, b: np.ndarray) -> tuple[float, float, float, float]:
    """(Spearman of |a|, |b|; Spearman of a, b; SSIM of |a|, |b| scaled to [0, 1]; 1.0 if
    either map is all zero, when the first three are NaN)."""
    from scipy.stats import spearmanr
    from skimage.metrics import structural_similarity

    if not np.any(a) or not np.any(b):
        return np.nan, np.nan, np.nan, 1.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a constant map: Spearman is undefined (NaN)
        absolute = spearmanr(np.abs(a).ravel(), np.abs(b).ravel()).statistic
        signed = spearmanr(a.ravel(), b.ravel()).statistic
    ssim = structural_similarity(_unit(np.abs(a)), _unit(np.abs(b)), data_range=1.0)
    return float(absolute), float(signed), float(ssim), 0.0


def _unit(values: np.ndarray) -> np.ndarray:
    low, high = values.min(), values.max()
    return (values - low) / (high - low) if high > low else np.zeros_like(values)


@dataclass
class Curves:
    """Per image, the class probability after each deletion or insertion step (the
    fraction of pixels changed: ``fractions``), and the area under each curve."""

    fractions: np.ndarray  # (S + 1,) from 0 to 1
    deletion: np.ndarray  # (B, S + 1)
    insertion: np.ndarray  # (B, S + 1)

    @property
    def deletion_auc(self) -> np.ndarray:
        return np.trapezoid(self.deletion, self.fractions, axis=1)

    @property
    def insertion_auc(self) -> np.ndarray:
        return np.trapezoid(self.insertion, self.fractions, axis=1)


def deletion_insertion(
    model: LoadedModel,
    inputs: torch.Tensor,
    target: torch.Tensor,
    maps: torch.Tensor,
    *,
    steps: int = 16,
    batch: int = 128,
) -> Curves:
    """RISE's deletion and insertion curves of each image's map, ``steps`` steps each (the
    most attributed pixels first). All the images' frames go through the model together,
    ``batch`` at a time."""
    frames, classes = [], []
    for image, klass, attribution in zip(inputs, target, maps, strict=True):
        deleted, blurred = torch.zeros_like(image), _blur(image)
        order = torch.argsort(attribution.flatten(), descending=True)
        counts = torch.linspace(0, order.numel(), steps + 1, device=order.device).round().long()
        rank = torch.empty_like(order)
        rank[order] = torch.arange(order.numel(), device=order.device)
        shown = (rank[None, :] < counts[:, None]).view(steps + 1, 1, *image.shape[1:])
        frames += [
            torch.where(shown, deleted[None], image[None]),
            torch.where(shown, image[None], blurred[None]),
        ]
        classes.append(klass)
    stacked = torch.cat(frames)
    with torch.inference_mode():
        probs = torch.cat(
            [
                torch.softmax(model.module(stacked[s : s + batch]), dim=1)
                for s in range(0, len(stacked), batch)
            ]
        )
    curves = probs.view(len(classes), 2, steps + 1, -1)
    picked = curves[torch.arange(len(classes)), :, :, torch.stack(classes).cpu()].cpu().numpy()
    return Curves(np.linspace(0, 1, steps + 1), picked[:, 0], picked[:, 1])


def _blur(image: torch.Tensor, size: int = 11, sigma: float = 5.0) -> torch.Tensor:
    """RISE's substrate for insertion: a separable Gaussian blur, edges replicated."""
    radius = size // 2
    x = torch.arange(-radius, radius + 1, dtype=image.dtype, device=image.device)
    kernel = torch.exp(-(x**2) / (2 * sigma**2))
    kernel = kernel / kernel.sum()
    padded = F.pad(image[None], (radius,) * 4, mode="replicate")
    channels = image.shape[0]
    rows = F.conv2d(padded, kernel.view(1, 1, 1, -1).expand(channels, 1, 1, -1), groups=channels)
    return F.conv2d(rows, kernel.view(1, 1, -1, 1).expand(channels, 1, -1, 1), groups=channels)[0]
