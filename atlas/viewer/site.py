"""What the site's pages share: deep-zoom level entries, blocks of cell metadata, exemplar
crops, links to the copied reports, and the copies of tiles and report folders."""

from __future__ import annotations

import json
import shutil
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

import numpy as np
from PIL import Image

from atlas.credits import Credit, credit_entry
from atlas.data import UnusableImage, read_pixels
from atlas.models import Preprocessing
from atlas.store import CONFIG_RECORD
from atlas.viewer import data

BLOCK = 16  # cells per side of a metadata block
# Report and channel folders are copied into the site without what only tools read: the
# maps as arrays, the index and the recorded config (which name the builder's paths).
PAGES_ONLY = shutil.ignore_patterns("*.npy", "reports.json", CONFIG_RECORD)
CHANNEL_PAGES_ONLY = shutil.ignore_patterns("*.npy", "channels.json", CONFIG_RECORD)


def write_json(path: Path, value) -> None:
    """``value`` as compact JSON in ``path``, its folder made if need be."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(value))


def write_blocks(folder: Path, size: int, entries: Iterable[dict]) -> None:
    """Cell entries (each with its ``cell`` index on a level of ``size`` cells per side)
    as ``folder/<bx>_<by>.json``, one file per ``BLOCK`` x ``BLOCK`` block of cells that
    holds any, the entries in the order given; the viewer fetches the blocks it shows."""
    blocks: dict[tuple[int, int], list] = {}
    for entry in entries:
        row, col = divmod(entry["cell"], size)
        blocks.setdefault((col // BLOCK, row // BLOCK), []).append(entry)
    folder.mkdir(parents=True)
    for (bx, by), block in blocks.items():
        (folder / f"{bx}_{by}.json").write_text(json.dumps(block))


def copy_tiles(source: Path, target: Path) -> None:
    """A deep-zoom tile folder, without libvips' properties file."""
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("vips-properties.xml"))


def copy_pages(source: str | Path, target: Path, ignore=PAGES_ONLY) -> None:
    """A folder of pages (reports, the model report, channel pages) into the site."""
    shutil.copytree(source, target, ignore=ignore)


def level_entry(out: Path, size: int, occupied: int, folder: str = "tiles") -> dict:
    """A level of ``atlas.json``, with its deep-zoom description inline (what the .dzi file
    ``folder/<size>.dzi`` of the site says, as OpenSeadragon's JSON form), so the map asks
    for its first tiles at once."""
    image = ET.parse(out / folder / f"{size}.dzi").getroot()
    found = image.find("{*}Size")
    tiles = {
        "Image": {
            "xmlns": "http://schemas.microsoft.com/deepzoom/2008",
            "Url": f"{folder}/{size}_files/",
            "Format": image.get("Format"),
            "Overlap": image.get("Overlap"),
            "TileSize": image.get("TileSize"),
            "Size": {"Width": found.get("Width"), "Height": found.get("Height")},
        }
    }
    return {"size": size, "dzi": f"{folder}/{size}.dzi", "tiles": tiles, "occupied": occupied}


class Crops:
    """Exemplar crops, written once per sample into ``out/crops``: the model's view of the
    image, cut to the box the sample's activation sees, scaled to ``crop_px`` square."""

    def __init__(
        self,
        out: Path,
        preprocessing: Preprocessing,
        names: np.ndarray,
        locate: Callable[[str], str],
        crop_px: int,
        credits: Mapping[str, Credit] | None = None,
    ) -> None:
        self.out, self.preprocessing = out / "crops", preprocessing
        self.names, self.locate, self.crop_px = names, locate, crop_px
        self.credits = credits or {}
        self.out.mkdir(exist_ok=True)
        self.done: set[int] = set()

    def name(self, sample: int) -> str:
        """The sample's image, by its path relative to the image source's root."""
        return str(self.names[sample])

    def credit(self, sample: int) -> dict:
        """What a page's entry of the sample adds for its image's credit
        (``credits.csv``: a crop of a CC-BY photo is shown with it): ``{"credit": ...}``,
        or nothing where the image has none."""
        return credit_entry(self.credits, self.name(sample))

    def __call__(self, sample: int, box) -> str | None:
        """The crop's path in the site, or None where the image cannot be read."""
        name = f"crops/{sample}.png"
        if sample in self.done:
            return name
        try:
            pixels = (
                self.preprocessing.crop(read_pixels(self.locate(self.name(sample))))
                .permute(1, 2, 0)
                .numpy()
            )
        except UnusableImage:
            return None
        x0, y0, x1, y1 = (int(v) for v in box)
        piece = Image.fromarray(pixels[y0:y1, x0:x1]).resize(
            (self.crop_px, self.crop_px), Image.Resampling.NEAREST
        )
        piece.save(self.out / f"{sample}.png")
        self.done.add(sample)
        return name


def report_links(reports_dir, out: Path, target: str, source: str) -> dict[str, str]:
    """Image name (of ``source``'s images) -> its report page in the site; the reports are
    copied into ``out/target``."""
    if not reports_dir:
        return {}
    copy_pages(reports_dir, out / target)
    pages = data.report_pages(reports_dir, source)
    return {name: f"{target}/{page}" for name, page in pages.items()}
