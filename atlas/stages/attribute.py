"""The attribute stage: attribution reports (:mod:`atlas.reports.attribution_report`) for
the images of some sources and, optionally, for the exemplars of an atlas's grid."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from atlas.config import AttributeConfig, ModelSpec
from atlas.data import ImageRecord, absolute_root
from atlas.errors import ConfigError
from atlas.models import LoadedModel, load_model
from atlas.reports.attribution_report import Reports, attribute_images, select_images
from atlas.store import open_run
from atlas.store.grid import open_grid


def attribute_store(
    model: ModelSpec | LoadedModel,
    sources: Sequence[str],
    out_dir: str | Path,
    options: AttributeConfig,
    *,
    exemplars: str | None = None,
) -> Reports:
    """Reports on the images of ``sources`` (folders, lists or URLs; ``options.limit`` and
    ``options.per_class`` choose among them) and on the first
    ``options.exemplars_per_cell`` exemplars of every cell of the grid store
    ``exemplars``, each image once; maps, pictures and pages under ``out_dir``. ``model``
    is a spec or a model in memory (:func:`atlas.models.wrap_model`)."""
    if not sources and not exemplars:
        raise ConfigError("give images to report on: --images SOURCE and/or --exemplars GRID")
    model = model if isinstance(model, LoadedModel) else load_model(model)
    records = select_images(sources, model.class_names, options)
    if exemplars:
        known = {absolute_root(r.path) for r in records}
        records += [
            r
            for r in exemplar_images(exemplars, options.exemplars_per_cell)
            if absolute_root(r.path) not in known
        ]
    return Reports(attribute_images(model, records, out_dir, options), Path(out_dir))


def exemplar_images(grid_url: str, per_cell: int) -> list[ImageRecord]:
    """The images of the first ``per_cell`` exemplars of every cell of every level of a
    grid (each image once, in level then cell order), labelled as the run store has them."""
    grid = open_grid(grid_url)
    run = open_run(grid.attrs["run"])
    layer = run.layer(grid.layer)
    names, labels = layer["path"][:], layer["label"][:]
    records: dict[str, ImageRecord] = {}
    for sample in grid.exemplar_samples(per_cell):
        name, label = str(names[sample]), int(labels[sample])
        record = ImageRecord(run.locate(name), label if label >= 0 else None, name, run.image_root)
        records.setdefault(name, record)
    return list(records.values())
