"""The image-map stage: a run's images laid out by their pooled vectors and snapped to
grids of thumbnails (:mod:`atlas.image_map`), written as an image map store with its
deep-zoom tiles (:mod:`atlas.store.image_map`)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from atlas.config import ImageMapConfig, ReduceConfig
from atlas.data import UnusableImage, read_pixels
from atlas.errors import AtlasError
from atlas.image_map import cell_counts, snap_to_grid
from atlas.models import Preprocessing
from atlas.progress import progress
from atlas.reduce import configured_layout
from atlas.rows import RowSubset, take_rows
from atlas.store import open_run
from atlas.store.image_map import MapLevel, write_image_map
from atlas.tiles import write_pyramid

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ImageMapSummary:
    images: int  # laid out
    shown: dict[int, int]  # per level: cells showing an image
    folder: str


def image_map_store(
    run_url: str, out_dir: str | Path, options: ImageMapConfig, reduce: ReduceConfig
) -> ImageMapSummary:
    """Lay out every usable image of the run by the pooled vector of ``options.layer``
    (with ``reduce``'s UMAP settings but ``options.min_dist``), snap the images to each
    level's grid (:func:`atlas.image_map.snap_to_grid`), and write the map and each level's
    thumbnails (the model's view of the image) as deep-zoom tiles."""
    run = open_run(run_url)
    layer = run.read_layer(options.layer).name
    pooled = run.pooled_array(layer)  # (a store extracted without it: a DataError)
    usable = np.flatnonzero(run.images.skip_reason[:] == "")
    if len(usable) == 0:
        raise AtlasError(f"{run_url} has no usable images to map")
    xy = np.full((run.layout.n_images, 2), np.nan, np.float32)
    xy[usable], _, info = configured_layout(
        RowSubset(pooled, usable), reduce.updated(min_dist=options.min_dist)
    )
    levels = {
        size: MapLevel(size, snap_to_grid(xy, size, options.reach), cell_counts(xy, size))
        for size in options.levels
    }
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    thumbs = _thumbnails(
        run,
        sorted({int(i) for level in levels.values() for i in level.image if i >= 0}),
        options.thumb_size,
    )
    (out / "thumbs").mkdir(exist_ok=True)
    for image, picture in thumbs.items():
        Image.fromarray(picture).save(out / "thumbs" / f"{image}.png")
    tiles = out / "tiles"
    tiles.mkdir(exist_ok=True)
    blank = np.zeros((options.thumb_size, options.thumb_size, 3), np.uint8)
    for size, level in levels.items():
        pictures = np.stack([thumbs.get(int(i), blank) for i in level.image])
        shown = np.flatnonzero([int(i) in thumbs for i in level.image])
        write_pyramid(pictures, shown, size, tiles / str(size), tile_size=options.tile_size)
    write_image_map(
        out,
        xy,
        levels,
        {
            "run": run_url,
            "run_identity": run.identity_hash,
            "layer": layer,
            "thumb_size": options.thumb_size,
            "reducer": info.__dict__,
        },
    )
    return ImageMapSummary(
        len(usable),
        {size: int((level.image >= 0).sum()) for size, level in levels.items()},
        str(out),
    )


def _thumbnails(run, images: list[int], side: int) -> dict[int, np.ndarray]:
    """The model's view of each image (resized and centre-cropped as for the model),
    scaled to ``side`` px; an image that can no longer be read is left out."""
    spec = run.model_spec()
    preprocessing = Preprocessing(spec.input_size, spec.resize_size, spec.mean, spec.std)
    names = take_rows(run.images.image_path, np.asarray(images, np.int64))
    out = {}
    for image, name in progress(
        zip(images, names, strict=True), total=len(images), desc="thumbnails", unit="img"
    ):
        name = str(name)
        try:
            pixels = preprocessing.crop(read_pixels(run.locate(name))).permute(1, 2, 0).numpy()
        except UnusableImage as err:
            log.warning("image map: %s is no longer readable (%s)", name, err.reason)
            continue
        picture = Image.fromarray(pixels).resize((side, side), Image.Resampling.LANCZOS)
        out[image] = np.asarray(picture)
    return out
