"""The viewer site: a static folder that shows a run's atlas, class atlases and reports.

Everything the page needs is written here, so the page computes nothing the pipeline
could have written, and it loads lazily at any scale:

- ``atlas.json``: levels (with their deep-zoom ``tiles/<size>.dzi``), class names, links;
- ``cells/<size>/<bx>_<by>.json``: the cells of one 16 x 16 block of a level (count, top
  classes with their attribution share, icon, exemplars with their crops and report
  links, icon quality), fetched as the view reaches them;
- ``classes/<size>/<class>.json``: the cells of a level that push a class, with their
  share of its attribution (the class filter's outlines and heat layer), fetched when a
  class is chosen;
- ``density/<size>.json`` (activations per cell, the density layer) and
  ``labels/<size>.json`` (the level's labelled regions,
  :func:`atlas.viewer.labels.region_labels`), fetched when their layer is shown;
- ``icons/``, ``crops/`` (exemplar crops around the sampled positions), ``tiles/``
  (:mod:`atlas.viewer.atlas_page`);
- ``classes.html`` (class atlases, pair and checkpoint comparisons:
  :mod:`atlas.viewer.classes_page`), ``aligned.html`` (:mod:`atlas.viewer.aligned_page`),
  ``images.html`` (:mod:`atlas.viewer.image_map_page`), and copies of the attribution
  reports, the model report and the channel pages, which the pages link to;
- ``vendor/openseadragon/``: OpenSeadragon, copied from the npm install or the user's cache
  (:mod:`atlas.viewer.vendor`; never from a CDN at view time, never committed).

The pages read the stores through :mod:`atlas.viewer.data` and share the helpers of
:mod:`atlas.viewer.site`.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from atlas.config import ViewerConfig
from atlas.credits import credits_in
from atlas.models import Preprocessing
from atlas.store import RunStore
from atlas.store.classes import ClassesStore
from atlas.store.grid import GridStore
from atlas.store.image_map import ImageMapStore
from atlas.store.render import RenderStore
from atlas.viewer import data
from atlas.viewer.aligned_page import write_aligned_page
from atlas.viewer.atlas_page import write_atlas, write_levels
from atlas.viewer.classes_page import write_classes_page
from atlas.viewer.credits_page import write_credits_page
from atlas.viewer.image_map_page import write_image_map_page
from atlas.viewer.site import CHANNEL_PAGES_ONLY, Crops, copy_pages, report_links
from atlas.viewer.vendor import openseadragon

STATIC = Path(__file__).with_name("static")
STATIC_FILES = (
    "index.html",
    "viewer.js",
    "common.js",
    "style.css",
    "aligned.html",
    "aligned.js",
    "images.html",
    "images.js",
)


def build_site(
    out_dir: str | Path,
    *,
    run: RunStore,
    grid: GridStore,
    renders: RenderStore,
    classes: ClassesStore | None = None,
    class_measures: dict[str, Any] | None = None,
    exemplar_reports: str | Path | None = None,
    reports: str | Path | None = None,
    model_report: str | Path | None = None,
    aligned: data.AlignedAtlas | None = None,
    image_map: ImageMapStore | None = None,
    channels: str | Path | None = None,
    title: str = "Activation atlas",
    options: ViewerConfig | None = None,
) -> Path:
    """Write the site into ``out_dir`` (replacing it); returns the index page's path.

    ``class_measures`` (:func:`atlas.store.classes.read_class_measures`) are shown beside
    the class atlases; the report folders are copied in and linked. ``aligned``
    (:func:`atlas.viewer.data.open_aligned`) adds the aligned atlases' page
    (``aligned.html``), ``image_map`` the image map's (``images.html``), ``channels`` (the
    channels stage's folder) the channel pages. ``options``: the config's viewer section."""
    options = options or ViewerConfig()
    out = Path(out_dir)
    vendor = openseadragon()
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    shutil.copytree(
        vendor,
        out / "vendor" / "openseadragon",
        ignore=shutil.ignore_patterns("*.map", "openseadragon.js"),
    )
    for name in STATIC_FILES:
        shutil.copy(STATIC / name, out / name)

    spec = run.model_spec()
    preprocessing = Preprocessing(spec.input_size, spec.resize_size, spec.mean, spec.std)
    names = data.sample_images(run, grid.layer)
    credits = credits_in(run.image_root)
    crops = Crops(out, preprocessing, names, run.locate, options.crop_px, credits)
    links = report_links(exemplar_reports, out, "reports", run.image_root)
    class_names = run.class_names
    levels = write_levels(out, grid, renders, crops, links, class_names)

    pages = {}
    if classes is not None:
        pages["classes"] = write_classes_page(out, classes, class_measures, crops, links)
    if reports:
        copy_pages(reports, out / "attribute")
        pages["reports"] = "attribute/index.html"
    if model_report:
        copy_pages(model_report, out / "model")
        pages["model"] = "model/model.html"
    if aligned is not None:
        shown = renders.levels
        pages["aligned"] = write_aligned_page(out, aligned, run, grid, shown, class_names)
    if image_map is not None:
        pages["images"] = write_image_map_page(out, image_map, run, links, title, credits)
    if channels:
        copy_pages(channels, out / "channels", ignore=CHANNEL_PAGES_ONLY)
        pages["channels"] = "channels/index.html"
    if credits:
        pages["credits"] = write_credits_page(out, credits, title)
    write_atlas(
        out,
        title=title,
        run=run,
        grid=grid,
        renders=renders,
        class_names=class_names,
        levels=levels,
        pages=pages,
    )
    return out / "index.html"
