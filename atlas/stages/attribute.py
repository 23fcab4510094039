"""The attribute stage: attribution reports (:mod:`atlas.reports.attribution_report`) for
the images of some sources and, optionally, for the exemplars of an atlas's grid."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from atlas.config import AttributeConfig, ModelSpec, Recipe
from atlas.data import ImageRecord, absolute_root
from atlas.errors import ConfigError
from atlas.models import LoadedModel, load_model
from atlas.reports.attribution_report import Reports, attribute_images, select_images
from atlas.store import open_run
from atlas.store.grid import open_grid
from atlas.store.image_map import open_image_map


def attribute_store(
    model: ModelSpec | LoadedModel,
    sources: Sequence[str],
    out_dir: str | Path,
    options: AttributeConfig,
    *,
    exemplars: str | None = None,
    image_map: str | Path | None = None,
    recipe: Recipe | None = None,
) -> Reports:
    """Reports on the images of ``sources`` (folders, lists or URLs; ``options.limit`` and
    ``options.per_class`` choose among them), on the first ``options.exemplars_per_cell``
    exemplars of every cell (of ``options.exemplar_levels``) of the grid store
    ``exemplars``, and on the images an image map shows (``image_map``, a folder from
    ``atlas image-map``), each image once; maps, pictures and pages under ``out_dir``.
    ``model`` is a spec or a model in memory (:func:`atlas.models.wrap_model`); ``recipe``
    renders the neuron groups of ``options.blocks_layer`` (the run's render recipe)."""
    if not sources and not exemplars and not image_map:
        raise ConfigError(
            "give images to report on: --images SOURCE, --exemplars GRID and/or --image-map DIR"
        )
    model = model if isinstance(model, LoadedModel) else load_model(model)
    records = select_images(sources, model.class_names, options)
    extra = (
        exemplar_images(exemplars, options.exemplars_per_cell, options.exemplar_levels)
        if exemplars
        else []
    )
    extra += image_map_images(image_map) if image_map else []
    known = {absolute_root(r.path) for r in records}
    for record in extra:
        if absolute_root(record.path) not in known:
            known.add(absolute_root(record.path))
            records.append(record)
    return Reports(attribute_images(model, records, out_dir, options, recipe), Path(out_dir))


def exemplar_images(
    grid_url: str, per_cell: int, levels: Sequence[int] | None = None
) -> list[ImageRecord]:
    """The images of the first ``per_cell`` exemplars of every cell of ``levels`` (default:
    every level) of a grid (each image once, in level then cell order), labelled as the run
    store has them."""
    grid = open_grid(grid_url)
    run = open_run(grid.run_url)
    layer = run.read_layer(grid.layer)
    samples = grid.exemplar_samples(per_cell, levels)
    return _records(run, layer.path[:], layer.label[:], samples)


def image_map_images(folder: str | Path) -> list[ImageRecord]:
    """The images an image map shows at any of its levels (each once, in level then cell
    order), labelled as the run store has them."""
    image_map = open_image_map(folder)
    run = open_run(image_map.run_url)
    shown: dict[int, None] = {}
    for size in image_map.levels:
        images = image_map.read_level(size).image[:]
        shown.update(dict.fromkeys(int(i) for i in images[images >= 0]))
    index = run.images
    return _records(run, index.image_path[:], index.image_label[:], list(shown))


def _records(run, names, labels, rows) -> list[ImageRecord]:
    records: dict[str, ImageRecord] = {}
    for row in rows:
        name, label = str(names[row]), int(labels[row])
        record = ImageRecord(run.locate(name), label if label >= 0 else None, name, run.image_root)
        records.setdefault(name, record)
    return list(records.values())
