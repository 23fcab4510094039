"""A channel's top images (Zeiler & Fergus, "Visualizing and Understanding Convolutional
Networks", 2014: a channel's exemplars are the images with its largest activation anywhere
in the map), ranked within each extraction task and merged across tasks in one streaming
pass."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MERGE_CANDIDATES = 4_000_000  # channel-top candidates read per block while merging tasks


@dataclass(frozen=True)
class ChannelTops:
    """A ranking of images per channel, best first: ``value`` (C, k) float32, the channel's
    largest value anywhere in the image's map; ``image`` (C, k) int64, the image's global
    index (-1 pads, with value 0 and position -1); ``pos`` (C, k, 2) int32, the (y, x) of
    that value in the map."""

    value: np.ndarray
    image: np.ndarray
    pos: np.ndarray

    @classmethod
    def empty(cls, channels: int, k: int) -> ChannelTops:
        return cls(
            np.zeros((channels, k), np.float32),
            np.full((channels, k), -1, np.int64),
            np.full((channels, k, 2), -1, np.int32),
        )

    @classmethod
    def select(cls, value: np.ndarray, image: np.ndarray, pos: np.ndarray, k: int) -> ChannelTops:
        """The ``k`` best of each channel's candidates ``value``, ``image`` (C, M) and
        ``pos`` (C, M, 2): largest value first, ties to the lower image index; candidates
        with image -1 or a NaN value are not images and only pad."""
        pad = (image < 0) | np.isnan(value)
        primary = np.where(pad, np.inf, -value.astype(np.float64))
        secondary = np.where(pad, np.iinfo(np.int64).max, image)
        order = np.lexsort((secondary, primary), axis=-1)[:, :k]
        top = cls.empty(value.shape[0], k)
        taken = order.shape[1]
        keep = ~np.take_along_axis(pad, order, axis=1)
        top.value[:, :taken] = np.where(keep, np.take_along_axis(value, order, axis=1), 0)
        top.image[:, :taken] = np.where(keep, np.take_along_axis(image, order, axis=1), -1)
        top.pos[:, :taken] = np.where(
            keep[..., None], np.take_along_axis(pos, order[..., None], axis=1), -1
        )
        return top

    def merged(self, value: np.ndarray, image: np.ndarray, pos: np.ndarray) -> ChannelTops:
        """This ranking merged with the rankings of more tasks: ``value``, ``image``
        (T, C, k) and ``pos`` (T, C, k, 2), as the store holds them."""
        channels, k = self.value.shape

        def candidates(mine: np.ndarray, theirs: np.ndarray) -> np.ndarray:
            theirs = np.moveaxis(theirs, 0, 1).reshape(channels, -1, *mine.shape[2:])
            return np.concatenate([mine, theirs.astype(mine.dtype)], axis=1)

        return ChannelTops.select(
            candidates(self.value, value),
            candidates(self.image, image),
            candidates(self.pos, pos),
            k,
        )


def merge_task_tops(values, images, positions) -> ChannelTops:
    """Every task's ranking merged into one: ``values``, ``images`` (T, C, k) and
    ``positions`` (T, C, k, 2), array-likes (Zarr arrays) read a block of tasks at a time.
    Ties go to the lower image index; a task not yet written (all pads) counts as empty."""
    n_tasks, channels, k = values.shape
    best = ChannelTops.empty(channels, k)
    block = max(1, MERGE_CANDIDATES // max(1, channels * k))
    for start in range(0, n_tasks, block):
        tasks = slice(start, min(start + block, n_tasks))
        best = best.merged(
            np.asarray(values[tasks]), np.asarray(images[tasks]), np.asarray(positions[tasks])
        )
    return best
