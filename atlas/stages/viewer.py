"""The viewer stage: the static site (:mod:`atlas.viewer.build`) of a run's atlas, class
atlases and reports, read from the stores the other stages wrote."""

from __future__ import annotations

from pathlib import Path

from atlas.config import ViewerConfig
from atlas.store import open_run
from atlas.store.classes import open_classes, read_class_measures
from atlas.store.grid import open_grid
from atlas.store.image_map import open_image_map
from atlas.store.render import open_render
from atlas.viewer.build import build_site
from atlas.viewer.data import open_aligned


def build_viewer(
    out_dir: str | Path,
    *,
    run_url: str,
    grid_url: str,
    render_dir: str | Path,
    classes_dir: str | Path | None = None,
    class_measures: str | Path | None = None,
    exemplar_reports: str | Path | None = None,
    reports: str | Path | None = None,
    model_report: str | Path | None = None,
    aligned: str | Path | None = None,
    image_map: str | Path | None = None,
    channels: str | Path | None = None,
    title: str = "Activation atlas",
    options: ViewerConfig | None = None,
) -> Path:
    """Write the site into ``out_dir`` (replacing it); returns the index page's path.

    ``render_dir``, ``classes_dir``, the report folders and ``model_report`` are the
    output folders of the render, classes, attribute and report-model stages;
    ``class_measures`` a measures file about the class atlases (the demo's shortcut
    stage writes one). ``aligned`` is a folder holding an aligned atlas: ``layout.zarr``
    (from the align stage), ``grid.zarr`` and ``render/`` (the grid and render stages run
    on it); ``image_map`` the image-map stage's folder, ``channels`` the channels stage's.
    ``options`` is the config's viewer section."""
    return build_site(
        out_dir,
        run=open_run(run_url),
        grid=open_grid(grid_url),
        renders=open_render(render_dir),
        classes=open_classes(classes_dir) if classes_dir else None,
        class_measures=read_class_measures(class_measures) if class_measures else None,
        exemplar_reports=exemplar_reports,
        reports=reports,
        model_report=model_report,
        aligned=open_aligned(aligned) if aligned else None,
        image_map=open_image_map(image_map) if image_map else None,
        channels=channels,
        title=title,
        options=options,
    )
