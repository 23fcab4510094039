"""Pictures for reports: heat maps on a stated colour scale, overlays, image grids."""

from __future__ import annotations

import numpy as np
from matplotlib import colormaps
from PIL import Image

UNSIGNED, SIGNED = "inferno", "RdBu_r"


class Scale:
    """A colour scale shared by all maps of one method: [0, top] for magnitudes, or
    [-top, top] for signed maps, ``top`` the 99th percentile of |value| over every map
    (collected with :meth:`observe`, a bounded random sample of values)."""

    def __init__(self, signed: bool, sample: int = 200_000, seed: int = 0) -> None:
        self.signed = signed
        self.values: list[np.ndarray] = []
        self.budget = sample
        self.rng = np.random.default_rng(seed)
        self.top = 0.0

    def observe(self, values: np.ndarray) -> None:
        flat = np.abs(np.asarray(values, np.float32)).ravel()
        take = min(len(flat), max(1, self.budget // 50))
        self.values.append(self.rng.choice(flat, take, replace=False) if take < len(flat) else flat)

    def settle(self) -> float:
        pooled = np.concatenate(self.values) if self.values else np.zeros(1)
        self.top = float(np.percentile(pooled, 99)) or float(pooled.max()) or 1.0
        return self.top

    def describe(self) -> str:
        if self.signed:
            return f"blue -{self.top:.3g} ... white 0 ... red +{self.top:.3g}"
        return f"black 0 ... yellow {self.top:.3g}"

    def colour(self, values: np.ndarray) -> np.ndarray:
        """RGB uint8 of a map on this scale (values past the ends saturate)."""
        if self.signed:
            unit, cmap = (np.clip(values / self.top, -1, 1) + 1) / 2, colormaps[SIGNED]
        else:
            unit, cmap = np.clip(values / self.top, 0, 1), colormaps[UNSIGNED]
        return (cmap(unit)[..., :3] * 255 + 0.5).astype(np.uint8)

    def overlay(self, image: np.ndarray, values: np.ndarray, strength: float = 0.75) -> np.ndarray:
        """The heat map over the image, more opaque where |value| is larger."""
        alpha = np.clip(np.abs(values) / self.top, 0, 1)[..., None] * strength
        mixed = (
            image.astype(np.float32) * (1 - alpha) + self.colour(values).astype(np.float32) * alpha
        )
        return (mixed + 0.5).astype(np.uint8)


def save_png(pixels: np.ndarray, path, scale: int = 1) -> None:
    image = Image.fromarray(pixels)
    if scale > 1:
        image = image.resize((image.width * scale, image.height * scale), Image.Resampling.NEAREST)
    image.save(path)


def tile(images: np.ndarray, columns: int, pad: int = 1, background: int = 255) -> np.ndarray:
    """Images (N, H, W[, 3]) in a grid, ``columns`` wide, separated by ``pad`` px."""
    images = np.asarray(images)
    n, h, w = images.shape[:3]
    rows = -(-n // columns)
    shape = (rows * (h + pad) - pad, columns * (w + pad) - pad, *images.shape[3:])
    canvas = np.full(shape, background, images.dtype)
    for i, image in enumerate(images):
        r, c = divmod(i, columns)
        canvas[r * (h + pad) : r * (h + pad) + h, c * (w + pad) : c * (w + pad) + w] = image
    return canvas


def activation_grid(maps: np.ndarray, columns: int = 8) -> tuple[np.ndarray, float]:
    """Channels' activation maps (K, h, w) on one shared grey scale (0 black, the 99th
    percentile white), tiled; returns the picture and the scale's top."""
    top = float(np.percentile(np.maximum(maps, 0), 99)) or 1.0
    grey = (np.clip(maps / top, 0, 1) * 255 + 0.5).astype(np.uint8)
    return tile(grey, columns, pad=1, background=128), top
