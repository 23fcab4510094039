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
  ``labels/<size>.json`` (the level's labelled regions, :func:`region_labels`), fetched
  when their layer is shown;
- ``icons/``, ``crops/`` (exemplar crops around the sampled positions), ``tiles/``;
- ``classes.html`` (class atlases, pair and checkpoint comparisons), and copies of the
  attribution reports and the model report, which the pages link to;
- ``vendor/openseadragon/``: OpenSeadragon, copied from the npm install or the user's cache
  (:mod:`atlas.viewer.vendor`; never from a CDN at view time, never committed).
"""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path, PurePath
from typing import Any

import numpy as np
from PIL import Image

from atlas.data import UnusableImage, read_pixels
from atlas.models import Preprocessing
from atlas.reports.imaging import tile
from atlas.reports.pages import write_page
from atlas.rows import take_rows
from atlas.store import CONFIG_RECORD, RunStore
from atlas.store.classes import ClassesStore
from atlas.store.grid import GridStore
from atlas.store.image_map import ImageMapStore
from atlas.store.layout import Layout
from atlas.store.render import IconCache, RenderStore
from atlas.store.reports import report_pages
from atlas.version import package_version
from atlas.viewer.vendor import openseadragon

log = logging.getLogger(__name__)

BLOCK = 16  # cells per side of a metadata block
# Report folders are copied into the site without what only tools read: the maps as
# arrays, the report index and the recorded config (which name the builder's paths).
PAGES_ONLY = shutil.ignore_patterns("*.npy", "reports.json", CONFIG_RECORD)
CROP_PX = 96  # exemplar crops are shown at this size
EXEMPLARS = 4  # exemplars shown per cell
LABELS = 400  # labelled regions per level at most (the heaviest)
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
    aligned: AlignedAtlas | None = None,
    image_map: ImageMapStore | None = None,
    channels: str | Path | None = None,
    title: str = "Activation atlas",
) -> Path:
    """Write the site into ``out_dir`` (replacing it); returns the index page's path.

    ``class_measures`` (:func:`atlas.store.classes.read_class_measures`) are shown beside
    the class atlases; the report folders are copied in and linked. ``aligned`` adds the
    aligned atlases' page (``aligned.html``), ``image_map`` the image map's
    (``images.html``), ``channels`` (the channels stage's folder) the channel pages."""
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
    shutil.copytree(
        renders.folder / "tiles",
        out / "tiles",
        ignore=shutil.ignore_patterns("vips-properties.xml"),
    )
    for name in STATIC_FILES:
        shutil.copy(STATIC / name, out / name)

    layer = run.layer(grid.layer)
    spec = run.model_spec()
    preprocessing = Preprocessing(spec.input_size, spec.resize_size, spec.mean, spec.std)
    crops = _Crops(out, preprocessing, layer["path"][:], run.locate)
    links = _report_links(exemplar_reports, out, "reports", run.image_root)
    class_names = run.class_names
    levels = []
    for size in renders.levels:
        level, icons = grid.level(size), renders.level(size)
        _write_level(out, size, level, icons, renders.icons, crops, links, class_names)
        levels.append(level_entry(out, size, int((level["count"][:] > 0).sum())))

    pages = {}
    if classes is not None:
        pages["classes"] = _write_classes_page(out, classes, class_measures, crops, links)
    if reports:
        shutil.copytree(reports, out / "attribute", ignore=PAGES_ONLY)
        pages["reports"] = "attribute/index.html"
    if model_report:
        shutil.copytree(model_report, out / "model", ignore=PAGES_ONLY)
        pages["model"] = "model/model.html"
    if aligned is not None:
        pages["aligned"] = _write_aligned(out, aligned, run, grid, renders.levels, class_names)
    if image_map is not None:
        pages["images"] = _write_image_map(out, image_map, run, links, title)
    if channels:
        shutil.copytree(
            channels,
            out / "channels",
            ignore=shutil.ignore_patterns("*.npy", "channels.json", CONFIG_RECORD),
        )
        pages["channels"] = "channels/index.html"
    atlas = {
        "title": title,
        "version": package_version(),
        "model": spec.arch,
        "layer": grid.layer,
        "samples": int(layer["valid"][:].sum()),
        "classes": class_names,
        "icon_size": renders.icon_size,
        "block": BLOCK,
        "levels": levels,
        "pages": pages,
    }
    (out / "atlas.json").write_text(json.dumps(atlas))
    return out / "index.html"


def level_entry(out: Path, size: int, occupied: int, folder: str = "tiles") -> dict:
    """A level of ``atlas.json``, with its deep-zoom description inline (what the .dzi file
    ``folder/<size>.dzi`` of the site says, as OpenSeadragon's JSON form), so the map asks
    for its first tiles at once."""
    import xml.etree.ElementTree as ET

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


class _Crops:
    """Exemplar crops, written once per sample: the model's view of the image, cut to the
    box the sample's activation sees, scaled to ``CROP_PX``."""

    def __init__(self, out: Path, preprocessing: Preprocessing, names, locate) -> None:
        self.out, self.preprocessing = out / "crops", preprocessing
        self.names, self.locate = names, locate
        self.out.mkdir(exist_ok=True)
        self.done: set[int] = set()

    def name(self, sample: int) -> str:
        """The sample's image, by its path relative to the image source's root."""
        return str(self.names[sample])

    def __call__(self, sample: int, box) -> str | None:
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
            (CROP_PX, CROP_PX), Image.Resampling.NEAREST
        )
        piece.save(self.out / f"{sample}.png")
        self.done.add(sample)
        return name


def _report_links(reports_dir, out: Path, target: str, source: str) -> dict[str, str]:
    """Image name (of ``source``'s images) -> its report page in the site (the reports
    are copied in)."""
    if not reports_dir:
        return {}
    shutil.copytree(reports_dir, out / target, ignore=PAGES_ONLY)
    return {name: f"{target}/{page}" for name, page in report_pages(reports_dir, source).items()}


def _write_level(out, size, level, icons, cache: IconCache, crops, links, class_names) -> None:
    count = level["count"][:]
    top_class, share = level["top_class"][:], level["top_class_share"][:]
    top_label, label_count = level["top_label"][:], level["top_label_count"][:]
    exemplar, boxes = level["exemplar"][:, :EXEMPLARS], level["exemplar_box"][:, :EXEMPLARS]
    keys, quality = icons["icon_key"][:], icons["quality"][:]
    (out / "icons").mkdir(exist_ok=True)
    (out / "cells" / str(size)).mkdir(parents=True)
    blocks: dict[tuple[int, int], list] = {}
    for cell in np.flatnonzero(count > 0):
        row, col = divmod(int(cell), size)
        key = str(keys[cell])
        if key and not (out / "icons" / f"{key}.png").exists():
            shutil.copy(cache.path(key), out / "icons" / f"{key}.png")
        examples = []
        for sample, box in zip(exemplar[cell], boxes[cell], strict=True):
            if sample < 0:
                continue
            link = links.get(crops.name(sample))  # None: no report on this image
            examples.append(
                {"crop": crops(int(sample), box), "report": link, "path": crops.name(sample)}
            )
        entry = {
            "cell": int(cell),
            "n": int(count[cell]),
            "classes": [
                [int(c), round(float(s), 4)]
                for c, s in zip(top_class[cell], share[cell], strict=True)
                if c >= 0
            ],
            "labels": [
                [int(c), int(n)]
                for c, n in zip(top_label[cell], label_count[cell], strict=True)
                if c >= 0
            ],
            "icon": f"icons/{key}.png" if key else None,
            "quality": None if not np.isfinite(quality[cell]) else round(float(quality[cell]), 3),
            "exemplars": examples,
        }
        blocks.setdefault((col // BLOCK, row // BLOCK), []).append(entry)
    for (bx, by), entries in blocks.items():
        (out / "cells" / str(size) / f"{bx}_{by}.json").write_text(json.dumps(entries))
    # The map's layers: each cell's count (density) and the labelled regions.
    (out / "density").mkdir(exist_ok=True)
    (out / "density" / f"{size}.json").write_text(json.dumps([int(n) for n in count]))
    (out / "labels").mkdir(exist_ok=True)
    (out / "labels" / f"{size}.json").write_text(
        json.dumps(region_labels(top_class[:, 0], count, size))
    )
    by_class: dict[int, list] = {}
    for cell in np.flatnonzero(count > 0):
        for c, s in zip(top_class[cell], share[cell], strict=True):
            if c >= 0:
                by_class.setdefault(int(c), []).append([int(cell), round(float(s), 4)])
    folder = out / "classes" / str(size)
    folder.mkdir(parents=True)
    for c in range(len(class_names)):
        (folder / f"{c}.json").write_text(
            json.dumps(sorted(by_class.get(c, []), key=lambda e: -e[1]))
        )


def region_labels(top: np.ndarray, count: np.ndarray, size: int, limit: int = LABELS) -> list:
    """Labels for a level's map, as the Distill atlas has them: each region of adjacent
    cells (4-neighbours) whose top class is the same, heaviest first (by activations),
    at most ``limit``. Each is ``[class, x, y, activations]`` with (x, y) the member cell
    nearest the region's activation-weighted centre, in the viewer's coordinates (x to
    the right, y down, the level spanning [0, 1]). The viewer shows them heaviest first,
    skipping any that would overlap one already shown at the current zoom."""
    from scipy import ndimage

    top = np.where(count > 0, top, -1).reshape(size, size)  # row 0: the layout's bottom
    weight = count.reshape(size, size).astype(np.float64)
    found = []
    for klass in np.unique(top[top >= 0]):
        regions, n = ndimage.label(top == klass)
        for region in range(1, n + 1):
            rows, cols = np.nonzero(regions == region)
            w = weight[rows, cols]
            centre_row, centre_col = (rows * w).sum() / w.sum(), (cols * w).sum() / w.sum()
            nearest = np.argmin((rows - centre_row) ** 2 + (cols - centre_col) ** 2)
            row, col = int(rows[nearest]), int(cols[nearest])
            found.append([int(klass), (col + 0.5) / size, (size - row - 0.5) / size, int(w.sum())])
    found.sort(key=lambda label: (-label[3], label[0], label[1], label[2]))
    return [[c, round(x, 5), round(y, 5), w] for c, x, y, w in found[:limit]]


def _write_classes_page(out: Path, store: ClassesStore, measures, crops, links) -> str:
    """classes.html: every class atlas as an icon mosaic, pairs with their separating
    cells, checkpoint comparisons side by side, and any measures of them."""
    report = store.report
    folder = out / "class-atlases"
    folder.mkdir()
    mosaics = {}
    for kind in ("class", "pair", "compare"):
        for name in store.names(kind):
            group = store.atlas(kind, name)
            icons, count = group["icon"][:], group["count"][:]
            size = round(len(count) ** 0.5)
            icons = np.where((count > 0)[:, None, None, None], icons, 255)
            rows = [
                icons[r * size : (r + 1) * size] for r in range(size - 1, -1, -1)
            ]  # top row first
            picture = tile(np.concatenate(rows), size, pad=2, background=255)
            file = f"class-atlases/{kind}-{len(mosaics)}.png"  # never a name from data
            Image.fromarray(picture).save(out / file)
            mosaics[f"{kind}/{name}"] = {"file": file, "size": size}
    pairs = []
    for name, summary in report.get("pairs", {}).items():
        group = store.atlas("pair", name)
        exemplar, box = group["exemplar"][:], group["exemplar_box"][:]
        strength = group["strength"][:]
        ranked = summary["ranking"]["cells"]
        ends = []
        for cell in ranked[:3] + ranked[-3:]:
            examples = [
                {
                    "crop": crops(int(s), b),
                    "report": links.get(crops.name(s)),
                }
                for s, b in zip(exemplar[cell][:3], box[cell][:3], strict=True)
                if s >= 0
            ]
            ends.append(
                {
                    "cell": cell,
                    "a": float(strength[cell, 0]),
                    "b": float(strength[cell, 1]),
                    "examples": examples,
                }
            )
        pairs.append(
            {
                "name": name,
                "classes": summary["classes"],
                "mosaic": mosaics.get(f"pair/{name}"),
                "first": ends[:3],
                "last": ends[3:][::-1],
            }
        )
    write_page(
        out / "classes.html",
        "classes.html",
        report=report,
        mosaics=mosaics,
        pairs=pairs,
        measures=measures,
    )
    return "classes.html"


@dataclass(frozen=True)
class AlignedAtlas:
    """What the aligned atlases' page shows: the aligned layout (with its figures), and
    the grid and render stores made from it (:mod:`atlas.stages.align`)."""

    layout: Layout
    grid: GridStore
    renders: RenderStore
    run: RunStore  # the store the aligned layout lays out


def _side_name(run: RunStore) -> str:
    """A checkpoint as the pages name it: its weights file with the folder it lies in
    (never a path of the machine that built the site), else the architecture."""
    spec = run.model_spec()
    if not spec.weights:
        return str(spec.arch)
    path = PurePath(str(spec.weights))
    return f"{path.parent.name}/{path.name}" if path.parent.name else path.name


def _cell_summaries(grid: GridStore, size: int) -> list:
    """[cell, activations, top class, its share] of each occupied cell of a level."""
    level = grid.level(size)
    count = level["count"][:]
    top, share = level["top_class"][:, 0], level["top_class_share"][:, 0]
    return [
        [int(c), int(count[c]), int(top[c]), round(float(share[c]), 4)]
        for c in np.flatnonzero(count > 0)
    ]


def _write_aligned(
    out: Path, aligned: AlignedAtlas, run: RunStore, grid: GridStore, shown, class_names
) -> str:
    """aligned.html's data: both maps' tiles at the aligned levels that the run's atlas
    shows too (its own tiles on the left), each level's cells on both sides, and how
    aligned the maps are."""
    figures = aligned.layout.attrs["alignment"]
    shutil.copytree(
        aligned.renders.folder / "tiles",
        out / "aligned" / "tiles",
        ignore=shutil.ignore_patterns("vips-properties.xml"),
    )
    levels = []
    for size in (level for level in aligned.renders.levels if level in shown):
        for name, side in (("left", grid), ("right", aligned.grid)):
            (out / "aligned" / name).mkdir(parents=True, exist_ok=True)
            (out / "aligned" / name / f"{size}.json").write_text(
                json.dumps(_cell_summaries(side, size))
            )
        right = level_entry(out, size, 0, folder="aligned/tiles")
        left = level_entry(out, size, 0)
        levels.append({"size": size, "left": left["tiles"], "right": right["tiles"]})
    page = {
        "title": f"Aligned atlases: {_side_name(run)} and {_side_name(aligned.run)}",
        "samples": figures["samples"],
        "within_one_cell": figures["within_one_cell"],
        "neighbours_aligned": figures["neighbours_aligned"],
        "neighbours_run_layout": figures["neighbours_run_layout"],
        "neighbours_k": figures["neighbours_k"],
        "classes": list(class_names),
        "left": {"name": _side_name(run), "layer": aligned.layout.attrs["aligned_with"]["layer"]},
        "right": {"name": _side_name(aligned.run), "layer": aligned.layout.layer},
        "levels": levels,
    }
    (out / "aligned.json").write_text(json.dumps(page))
    return "aligned.html"


def _write_image_map(out: Path, image_map: ImageMapStore, run: RunStore, links, title) -> str:
    """images.html's data: each level's thumbnail tiles, and per cell the image shown
    (its name, label, predicted class, thumbnail and report link) in blocks of cells."""
    folder = out / "image-map"
    shutil.copytree(
        image_map.tiles, folder / "tiles", ignore=shutil.ignore_patterns("vips-properties.xml")
    )
    (folder / "thumbs").mkdir()
    names, labels = run.group["image_path"], run.group["image_label"]
    layer = run.layer(image_map.attrs["layer"])
    per = run.geometry(image_map.attrs["layer"]).samples_per_image
    levels = []
    for size in image_map.levels:
        level = image_map.level(size)
        image, count = level["image"][:], level["count"][:]
        cells = np.flatnonzero(image >= 0)
        shown = image[cells]
        shown_names = take_rows(names, shown) if len(shown) else []
        shown_labels = take_rows(labels, shown) if len(shown) else []
        predicted = take_rows(layer["topk_class"], shown * per)[:, 0] if len(shown) else []
        blocks: dict[tuple[int, int], list] = {}
        for cell, i, name, label, guess in zip(
            cells, shown, shown_names, shown_labels, predicted, strict=True
        ):
            thumb = f"image-map/thumbs/{int(i)}.png"
            if not (out / thumb).exists() and image_map.thumb(int(i)).exists():
                shutil.copy(image_map.thumb(int(i)), out / thumb)
            row, col = divmod(int(cell), size)
            blocks.setdefault((col // BLOCK, row // BLOCK), []).append(
                {
                    "cell": int(cell),
                    "path": str(name),
                    "label": int(label),
                    "predicted": int(guess),
                    "n": int(count[cell]),
                    "thumb": thumb,
                    "report": links.get(str(name)),
                }
            )
        (folder / "cells" / str(size)).mkdir(parents=True)
        for (bx, by), entries in blocks.items():
            (folder / "cells" / str(size) / f"{bx}_{by}.json").write_text(json.dumps(entries))
        entry = level_entry(out, size, len(cells), folder="image-map/tiles")
        levels.append({"size": size, "tiles": entry["tiles"]})
    page = {
        "title": f"Image map: {title}",
        "images": int(np.isfinite(image_map.xy()).all(axis=1).sum()),
        "model": run.model_spec().arch,
        "layer": image_map.attrs["layer"],
        "classes": run.class_names,
        "block": BLOCK,
        "levels": levels,
    }
    (folder / "map.json").write_text(json.dumps(page))
    return "images.html"
