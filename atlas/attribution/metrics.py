"""Checks of attribution maps that work with any method (kept apart from the methods, as
pytorch-grad-cam keeps its metrics).

- Model randomization (Adebayo et al., "Sanity Checks for Saliency Maps", 2018): the rank
  correlation between a method's map and its map after re-initializing the model's top
  layers. A map that barely changes does not explain the model's decision.
- Deletion and insertion (Petsiuk, Das & Saenko, "RISE", 2018): the class probability as
  the most attributed pixels are removed (replaced by a blurred copy) or inserted into the
  blurred image, step by step; the area under each curve. Low deletion AUC and high
  insertion AUC mean the map points at what the model uses.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from atlas.attribution.base import Attribution
from atlas.models import LoadedModel


def randomized_top(model: LoadedModel, layers: int = 2, seed: int = 0) -> LoadedModel:
    """A copy of the model whose last ``layers`` parameterized modules are re-initialized."""
    clone = copy.deepcopy(model.module)
    parameterized = [m for m in clone.modules() if any(True for _ in m.parameters(recurse=False))]
    generator_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        for module in parameterized[-layers:]:
            if hasattr(module, "reset_parameters"):
                module.reset_parameters()
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                module.weight.data.normal_(1.0, 0.5)  # a fresh BN is the identity; make it random
                module.bias.data.normal_(0.0, 0.5)
    finally:
        torch.random.set_rng_state(generator_state)
    return LoadedModel(clone.eval(), model.spec, model.preprocessing, model.class_names)


def randomization_similarity(
    make: Callable[[LoadedModel], Attribution],
    model: LoadedModel,
    inputs: torch.Tensor,
    target: torch.Tensor,
    *,
    layers: int = 2,
    original: torch.Tensor | None = None,
) -> np.ndarray:
    """Per image, the Spearman rank correlation of |map| before and after randomizing the
    top ``layers`` of the model (1: the map ignores them)."""
    before = make(model).attribute(inputs, target) if original is None else original
    after = make(randomized_top(model, layers)).attribute(inputs, target)
    return np.array(
        [
            _spearman(a.abs().flatten(), b.abs().flatten())
            for a, b in zip(before, after, strict=True)
        ]
    )


def deletion_insertion(
    model: LoadedModel,
    inputs: torch.Tensor,
    target: torch.Tensor,
    maps: torch.Tensor,
    *,
    steps: int = 16,
    batch: int = 128,
) -> tuple[np.ndarray, np.ndarray]:
    """Per image, the deletion and insertion AUCs (class probability, averaged over
    ``steps + 1`` points from 0% to 100% of the pixels, most attributed first). All the
    images' frames go through the model together, ``batch`` at a time."""
    frames, classes = [], []
    for image, klass, attribution in zip(inputs, target, maps, strict=True):
        blurred = _blur(image)
        order = torch.argsort(attribution.flatten(), descending=True)
        counts = torch.linspace(0, order.numel(), steps + 1, device=order.device).round().long()
        rank = torch.empty_like(order)
        rank[order] = torch.arange(order.numel(), device=order.device)
        shown = (rank[None, :] < counts[:, None]).view(steps + 1, 1, *image.shape[1:])
        frames += [
            torch.where(shown, blurred[None], image[None]),
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
    picked = curves[
        torch.arange(len(classes)), :, :, torch.stack(classes).cpu()
    ]  # (B, 2, steps + 1)
    auc = torch.trapezoid(picked, dx=1.0 / steps, dim=2)
    return auc[:, 0].cpu().numpy(), auc[:, 1].cpu().numpy()


def _blur(image: torch.Tensor, sigma: float = 5.0) -> torch.Tensor:
    radius = int(3 * sigma)
    x = torch.arange(-radius, radius + 1, dtype=image.dtype, device=image.device)
    kernel = torch.exp(-(x**2) / (2 * sigma**2))
    kernel = kernel / kernel.sum()
    padded = F.pad(image[None], (radius,) * 4, mode="replicate")
    channels = image.shape[0]
    rows = F.conv2d(padded, kernel.view(1, 1, 1, -1).expand(channels, 1, 1, -1), groups=channels)
    return F.conv2d(rows, kernel.view(1, 1, -1, 1).expand(channels, 1, -1, 1), groups=channels)[0]


def _spearman(a: torch.Tensor, b: torch.Tensor) -> float:
    ra = torch.argsort(torch.argsort(a)).float()
    rb = torch.argsort(torch.argsort(b)).float()
    ra, rb = ra - ra.mean(), rb - rb.mean()
    denominator = (ra.norm() * rb.norm()).item()
    return float((ra @ rb).item() / denominator) if denominator > 0 else 0.0
