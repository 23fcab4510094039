"""Occlusion (Zeiler & Fergus, "Visualizing and Understanding Convolutional Networks",
2014): slide a window over the image, fill it with a baseline value, and credit each
pixel with the mean drop of the class score over the windows that covered it.

Same windows, order and averaging as Captum's ``Occlusion`` (window positions every
``stride`` px, ``ceil((size - window) / stride) + 1`` per side, the last ones clipped at
the border), so the maps agree with it. Most of what Captum recomputes for every window
is the same as for the clean image: where the network can be traced, each window's
change is followed through the layers it reaches and nothing else is recomputed
(:mod:`atlas.attribution.incremental`); elsewhere the occluded copies are made in one
vectorized step and run whole, in large batches, channels-last, without autograd.
"""

from __future__ import annotations

import logging
import math

import torch

from atlas.attribution.base import Attribution
from atlas.attribution.incremental import IncrementalNetwork
from atlas.config import AttributeConfig
from atlas.models import channels_last_input

log = logging.getLogger(__name__)


class Occlusion(Attribution):
    name = "occlusion"
    signed = True
    paper = "occlusion: mean score drop when a window covers the pixel (Zeiler & Fergus 2014)"

    def __init__(
        self, model, options: AttributeConfig | None = None, *, incremental: bool = True
    ) -> None:
        """Window, stride, baseline and batch from ``options``
        (:meth:`atlas.config.AttributeConfig.occlusion_geometry`); ``incremental=False``
        recomputes whole images even where the network can be traced."""
        super().__init__(model, options)
        window, stride = self.options.occlusion_geometry(model.preprocessing.input_size)
        if stride > window:
            raise ValueError(f"occlusion stride {stride} is larger than its window {window}")
        self.window, self.stride, self.baseline = window, stride, self.options.occlusion_baseline
        self.per_eval = self.options.perturbations_per_eval
        self.network = self._trace() if incremental else None

    def _trace(self) -> IncrementalNetwork | None:
        try:
            return IncrementalNetwork(self.model.module)
        except Exception as err:  # torch.fx cannot trace every network: recompute whole images
            log.info(
                "occlusion recomputes whole images: %s cannot be traced (%s)",
                self.model.spec.arch,
                err,
            )
            return None

    def on(self, model) -> Occlusion:
        """The same windows for another network; traced anew (the trace holds a copy of
        the weights)."""
        other = super().on(model)
        other.network = other._trace() if self.network is not None else None
        return other

    @property
    def incremental(self) -> bool:
        return self.network is not None

    def positions(self, height: int, width: int) -> list[tuple[int, int]]:
        rows = math.ceil(max(height - self.window, 0) / self.stride) + 1
        cols = math.ceil(max(width - self.window, 0) / self.stride) + 1
        # Captum's order: the last dimension moves fastest.
        return [(r * self.stride, c * self.stride) for r in range(rows) for c in range(cols)]

    @torch.inference_mode()
    def attribute(self, inputs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        _, _, height, width = inputs.shape
        places = self.positions(height, width)
        ys = torch.tensor([p[0] for p in places], device=inputs.device)
        xs = torch.tensor([p[1] for p in places], device=inputs.device)
        rows = torch.arange(height, device=inputs.device)
        cols = torch.arange(width, device=inputs.device)
        # masks[k, y, x]: window k covers pixel (y, x)
        masks = ((rows[None, :] >= ys[:, None]) & (rows[None, :] < ys[:, None] + self.window))[
            :, :, None
        ] & ((cols[None, :] >= xs[:, None]) & (cols[None, :] < xs[:, None] + self.window))[
            :, None, :
        ]
        coverage = masks.sum(dim=0).float()
        score = self._incremental_scores if self.network is not None else self._full_scores
        maps = []
        for image, klass in zip(inputs, target, strict=True):
            drops = score(image, klass, masks, ys, xs)
            maps.append((drops[:, None, None] * masks).sum(dim=0) / coverage)
        return torch.stack(maps).float()

    def _full_scores(self, image, klass, masks, ys, xs) -> torch.Tensor:
        """Each window's score drop, from whole occluded copies of the image."""
        module = self.model.module
        reference = module(channels_last_input(image[None]))[0, klass]
        drops = []
        for start in range(0, len(masks), self.per_eval):
            mask = masks[start : start + self.per_eval, None]
            occluded = torch.where(
                mask, torch.as_tensor(self.baseline, dtype=image.dtype), image[None]
            )
            scores = module(channels_last_input(occluded))[:, klass]
            drops.append(reference - scores)
        return torch.cat(drops)

    def _incremental_scores(self, image, klass, masks, ys, xs) -> torch.Tensor:
        """Each window's score drop, recomputing only what each window changes."""
        clean = self.network.clean(image[None])
        reference = self.network.output(clean)[0, klass]
        _, height, width = image.shape
        side_y, side_x = min(self.window, height), min(self.window, width)
        # Every tile has the window's size: a window clipped at the border keeps clean
        # pixels in the part of its tile outside the image's edge.
        y0, x0 = ys.clamp(max=height - side_y), xs.clamp(max=width - side_x)
        drops = torch.empty(len(masks), dtype=image.dtype, device=image.device)
        for start in range(0, len(masks), self.per_eval):
            part = slice(start, start + self.per_eval)
            rows = y0[part, None] + torch.arange(side_y, device=image.device)
            cols = x0[part, None] + torch.arange(side_x, device=image.device)
            tiles = image[:, rows[:, :, None], cols[:, None, :]].permute(1, 0, 2, 3)
            covered = masks[part][
                torch.arange(len(rows))[:, None, None], rows[:, :, None], cols[:, None, :]
            ]
            tiles = torch.where(
                covered[:, None], torch.as_tensor(self.baseline, dtype=image.dtype), tiles
            )
            scores = self.network.logits(clean, tiles, y0[part], x0[part])[:, klass]
            drops[part] = reference - scores
        return drops
