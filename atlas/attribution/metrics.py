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
import itertools
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from atlas.attribution.base import Attribution
from atlas.layers import blocks, get_layer
from atlas.models import LoadedModel, channels_last_input

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
    originals = None if original is None else {"method": original}
    return cascading_randomizations(
        {"method": make}, model, inputs, target, steps=steps, originals=originals, seed=seed
    )["method"]


def cascading_randomizations(
    makers: Mapping[str, Callable[[LoadedModel], Attribution]],
    model: LoadedModel,
    inputs: torch.Tensor,
    target: torch.Tensor,
    *,
    steps: int | None = None,
    originals: Mapping[str, torch.Tensor] | None = None,
    seed: int = 0,
) -> dict[str, Cascade]:
    """:func:`cascading_randomization` of several methods at once (by name: the function
    that builds each on a network, e.g. an :meth:`Attribution.on`), the same numbers as
    one cascade a method: each step randomizes one copy of the model once, and every
    method runs on it. ``originals``: the maps on the model itself, where known."""
    originals = originals or {}
    before = {
        name: (
            originals[name] if name in originals else make(model).attribute(inputs, target)
        ).cpu()
        for name, make in makers.items()
    }
    ranked = {name: [_Ranked(a.numpy()) for a in maps] for name, maps in before.items()}
    chosen = blocks(model.module)[::-1][:steps]
    curves = {name: np.full((4, len(maps), len(chosen)), np.nan) for name, maps in before.items()}
    for k, randomized in enumerate(randomized_copies(model, chosen, seed)):
        for name, make in makers.items():
            after = make(randomized).attribute(inputs, target).cpu()
            for i, (a, b) in enumerate(zip(ranked[name], after, strict=True)):
                curves[name][:, i, k] = a.similarities(b.numpy())
    return {
        name: Cascade(
            steps=[_label(step) for step in chosen],
            spearman_abs=curves[name][0],
            spearman_signed=curves[name][1],
            ssim=curves[name][2],
            zero=curves[name][3] > 0,
            original_zero=np.array([not np.any(a.numpy()) for a in maps]),
        )
        for name, maps in before.items()
    }


def randomized_copies(
    model: LoadedModel, chosen: Sequence[list[str]], seed: int = 0
) -> Iterator[LoadedModel]:
    """One copy of ``model``, yielded after each step of the cascade: step k re-initializes
    the modules of ``chosen[k]`` (a block's names, top block first) with seed ``seed + k``,
    on top of the steps before it. The copy is the same object every time and changes
    in place; the model itself is never touched."""
    if not chosen:
        return
    clone = copy.deepcopy(model.module).eval()
    randomized = model.with_module(clone)
    for k, step in enumerate(chosen):
        for name in step:
            randomize(get_layer(clone, name), seed + k)
        yield randomized


def _label(step: list[str]) -> str:
    """A block's name: the modules' common dotted prefix, or their names joined."""
    parts = [name.split(".") for name in step]
    common = []
    for pieces in zip(*parts, strict=False):
        if len(set(pieces)) > 1:
            break
        common.append(pieces[0])
    return ".".join(common) if common and len(step) > 1 else " + ".join(step)


class _Ranked:
    """An original map with what every comparison against it needs worked out once: the
    ranks (ties averaged, as Spearman's rank correlation takes them) of its absolute and
    of its signed values, and its absolute values scaled to [0, 1] for SSIM."""

    def __init__(self, a: np.ndarray) -> None:
        self.values = a
        self.zero = not np.any(a)
        if not self.zero:
            self.abs_ranks = _centred_ranks(np.abs(a))
            self.signed_ranks = _centred_ranks(a)
            self.unit = _unit(np.abs(a))

    def similarities(self, b: np.ndarray) -> tuple[float, float, float, float]:
        """(Spearman of |a|, |b|; Spearman of a, b; SSIM of |a|, |b| scaled to [0, 1]; 1.0
        if either map is all zero, when the first three are NaN): the numbers of
        :func:`_similarities`."""
        from skimage.metrics import structural_similarity

        if self.zero or not np.any(b):
            return np.nan, np.nan, np.nan, 1.0
        absolute = _correlation(self.abs_ranks, _centred_ranks(np.abs(b)))
        signed = _correlation(self.signed_ranks, _centred_ranks(b))
        ssim = structural_similarity(self.unit, _unit(np.abs(b)), data_range=1.0)
        return absolute, signed, float(ssim), 0.0


def _centred_ranks(values: np.ndarray) -> np.ndarray:
    """The values' ranks (ties averaged), minus their mean, flattened."""
    from scipy.stats import rankdata

    ranks = rankdata(values.ravel())
    return ranks - ranks.mean()


def _correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson's correlation of two centred vectors; NaN where either is constant (as
    scipy's ``spearmanr`` gives for a constant map)."""
    norm = np.sqrt(np.dot(a, a) * np.dot(b, b))
    return float(np.dot(a, b) / norm) if norm > 0 else np.nan


def _similarities(a: np.ndarray, b: np.ndarray) -> tuple[float, float, float, float]:
    """(Spearman of |a|, |b|; Spearman of a, b; SSIM of |a|, |b| scaled to [0, 1]; 1.0 if
    either map is all zero, when the first three are NaN), by scipy and scikit-image
    directly: the reference the cascade's faster :class:`_Ranked` is tested against."""
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
    batch: int = 16,
) -> Curves:
    """RISE's deletion and insertion curves of each image's map, ``steps`` steps each (the
    most attributed pixels first). All the images' frames go through the model together,
    ``batch`` at a time."""
    return deletion_insertion_of(model, inputs, target, {"map": maps}, steps=steps, batch=batch)[
        "map"
    ]


def deletion_insertion_of(
    model: LoadedModel,
    inputs: torch.Tensor,
    target: torch.Tensor,
    maps: Mapping[str, torch.Tensor],
    *,
    steps: int = 16,
    batch: int = 16,
) -> dict[str, Curves]:
    """:func:`deletion_insertion` of several methods' maps (by name) of the same images,
    the same curves: the frames every map shares (the image itself, which ends insertion
    and starts deletion; the all-deleted image; the blurred one) go through the model
    once, with every method's other frames, ``batch`` at a time, without autograd."""
    blurred = torch.stack([_blur(image) for image in inputs])
    shared = torch.cat([inputs, torch.zeros_like(inputs), blurred])  # (3B, C, H, W)
    groups = itertools.chain(
        [shared],
        (
            _frames(image, attribution, substrate, steps)
            for attributions in maps.values()
            for image, attribution, substrate in zip(inputs, attributions, blurred, strict=True)
        ),
    )
    inner = 2 * (steps - 1)  # frames of each map's own
    classes = torch.cat([target.repeat(3), target.repeat_interleave(inner).repeat(len(maps))])
    picked = _probabilities(model, groups, classes, batch).cpu().numpy()
    images = len(inputs)
    whole, deleted, blur = (picked[k * images : (k + 1) * images, None] for k in range(3))
    own = picked[3 * images :].reshape(len(maps), images, 2, steps - 1)
    fractions = np.linspace(0, 1, steps + 1)
    return {
        name: Curves(
            fractions,
            np.concatenate([whole, own[m, :, 0], deleted], axis=1),
            np.concatenate([blur, own[m, :, 1], whole], axis=1),
        )
        for m, name in enumerate(maps)
    }


def _frames(
    image: torch.Tensor, attribution: torch.Tensor, substrate: torch.Tensor, steps: int
) -> torch.Tensor:
    """The inner frames (2 (steps - 1), C, H, W) of one map's curves: deletion's (the most
    attributed pixels set to zero), then insertion's (shown over ``substrate``), without
    the first and last of each (the same for every map)."""
    order = torch.argsort(attribution.flatten(), descending=True)
    counts = torch.linspace(0, order.numel(), steps + 1, device=order.device).round().long()
    rank = torch.empty_like(order)
    rank[order] = torch.arange(order.numel(), device=order.device)
    shown = (rank[None, :] < counts[1:-1, None]).view(steps - 1, 1, *image.shape[1:])
    deletion = torch.where(shown, 0.0, image[None])
    insertion = torch.where(shown, image[None], substrate[None])
    return torch.cat([deletion, insertion])


def _probabilities(
    model: LoadedModel, groups: Iterable[torch.Tensor], classes: torch.Tensor, batch: int
) -> torch.Tensor:
    """The probability of ``classes[j]`` for frame j of the frames ``groups`` yield in
    turn, run through the model ``batch`` at a time (a group is made only when the
    batch before it needs it, so the frames are never all held at once)."""
    pending: list[torch.Tensor] = []
    scores: list[torch.Tensor] = []

    def run(frames: torch.Tensor) -> None:
        with torch.inference_mode():
            logits = model.module(channels_last_input(frames))
        done = sum(len(s) for s in scores)
        chosen = classes[done : done + len(frames)].to(logits.device)
        scores.append(torch.softmax(logits, dim=1).gather(1, chosen[:, None])[:, 0])

    for group in groups:
        pending.append(group)
        while sum(len(g) for g in pending) >= batch:
            frames = torch.cat(pending)
            run(frames[:batch])
            pending = [frames[batch:]]
    if sum(len(g) for g in pending):
        run(torch.cat(pending))
    return torch.cat(scores)


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
