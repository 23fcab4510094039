"""Receptive-field geometry: where in the input image a layer's output position looks.

Every box in the code is a :class:`Box`, (x0, y0, x1, y1) in input pixels, right and
bottom edges exclusive. (The run store keeps a layer's central field as [y0, x0, y1, x1]
in its attributes, as it always has; :meth:`LayerGeometry.stored` and
:meth:`LayerGeometry.from_stored` turn one into the other.)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np


class Box(NamedTuple):
    """An input box in pixels, (x0, y0, x1, y1): columns x0..x1-1, rows y0..y1-1."""

    x0: int
    y0: int
    x1: int
    y1: int

    def shifted(self, dx: int, dy: int) -> Box:
        return Box(self.x0 + dx, self.y0 + dy, self.x1 + dx, self.y1 + dy)

    def clipped(self, size: int) -> Box:
        """This box inside a ``size`` x ``size`` image."""
        return Box(max(0, self.x0), max(0, self.y0), min(size, self.x1), min(size, self.y1))


@dataclass(frozen=True)
class LayerGeometry:
    """A layer's output shape per image, how many samples each image gives, and the
    receptive field of its central position: the input :class:`Box` it sees."""

    name: str
    channels: int
    height: int  # 0 for a vector (C,) output
    width: int
    samples_per_image: int
    input_size: int = 0
    field: Box | None = None

    def __post_init__(self) -> None:
        if self.field is not None and not isinstance(self.field, Box):
            object.__setattr__(self, "field", Box(*self.field))  # any (x0, y0, x1, y1)

    @property
    def spatial(self) -> bool:
        return self.height > 0

    def field_box(self, y: int, x: int) -> Box:
        """The input box, in pixels, that position (y, x) sees: the central field shifted
        by the layer's stride, reaching past the image's edges where the field does. The
        whole image for the spatial mean (y < 0) or a vector layer."""
        size = self.input_size
        if not self.spatial or self.field is None or y < 0:
            return Box(0, 0, size, size)
        dy = round((y - self.height // 2) * size / self.height)
        dx = round((x - self.width // 2) * size / self.width)
        return self.field.shifted(dx, dy)

    def crop_box(self, y: int, x: int) -> Box:
        """:meth:`field_box` clipped to the image."""
        return self.field_box(y, x).clipped(self.input_size)

    def crop_boxes(self, samples: np.ndarray, positions: np.ndarray) -> np.ndarray:
        """:meth:`crop_box` of every sample index in ``samples`` (any shape; -1 pads, whose
        box is zeros), given every sample's (y, x) position ``positions`` (N, 2): shape
        ``(*samples.shape, 4)`` int32, each box (x0, y0, x1, y1)."""
        positions = np.asarray(positions)
        boxes = np.zeros((*samples.shape, 4), np.int32)
        for index, sample in np.ndenumerate(samples):
            if sample >= 0:
                boxes[index] = self.crop_box(*positions[sample])
        return boxes

    def stored(self) -> dict[str, Any]:
        """The geometry as the run store's attributes hold it (the field as [y0, x0, y1, x1])."""
        field = self.field
        return {
            "name": self.name,
            "channels": self.channels,
            "height": self.height,
            "width": self.width,
            "samples_per_image": self.samples_per_image,
            "input_size": self.input_size,
            "field": None if field is None else (field.y0, field.x0, field.y1, field.x1),
        }

    @classmethod
    def from_stored(cls, fields: Mapping[str, Any]) -> LayerGeometry:
        """The inverse of :meth:`stored`."""
        field = fields.get("field")
        if field:
            y0, x0, y1, x1 = field
            field = Box(x0, y0, x1, y1)
        return cls(**{**fields, "field": field or None})
