"""The demo world's images drawn again: the world is deterministic, so any image of a
split can be redrawn exactly, with its object's mask, or bare (the same habitat from the
same random stream, with nothing on it). The demo's measures use this to ask what the
object and what the habitat contribute."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from atlas.demo.world import (
    CLASS_NAMES,
    CLASSES,
    Sample,
    read_manifest,
    render_sample,
    sample_stream,
)


class Scenes:
    """The images of a generated world (its folder), looked up by path; bare scenes are
    drawn once and kept, since several measures ask for the same images."""

    def __init__(self, world: str | Path) -> None:
        self.root = Path(world).resolve()
        meta = json.loads((self.root / "world.json").read_text())
        self.seed, self.size = meta["seed"], meta["image_size"]
        self.samples = read_manifest(self.root)
        self._by_path = {str(self.root / s.path): s for s in self.samples}
        self._bare: dict[str, np.ndarray] = {}

    def sample(self, path: str | Path) -> Sample | None:
        """The sample an image path (absolute, or relative to the working folder) names;
        None for an image that is not one of the world's."""
        return self._by_path.get(str(Path(str(path)).resolve()))

    def rng(self, sample: Sample) -> np.random.Generator:
        """The random stream the sample was drawn from (as :func:`make_world` draws it)."""
        return sample_stream(self.seed, sample.split, sample.label, int(Path(sample.path).stem))

    def bare(self, sample: Sample) -> np.ndarray:
        """The sample's habitat without its object, (H, W, 3) uint8."""
        if sample.path not in self._bare:
            image, _ = render_sample(None, sample.habitat, self.size, self.rng(sample))
            self._bare[sample.path] = np.asarray(image)
        return self._bare[sample.path]

    def drawn(self, sample: Sample) -> tuple[np.ndarray, np.ndarray]:
        """The sample's image (H, W, 3) uint8, as written, and its object mask (H, W) in
        [0, 1]."""
        species = CLASSES[CLASS_NAMES.index(sample.label)]
        image, mask = render_sample(species, sample.habitat, self.size, self.rng(sample))
        return np.asarray(image), mask
