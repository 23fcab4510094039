"""Small pipelines from an activation store to a built viewer site, for the tests that
look at a whole site: every stage the site shows, at test size."""

from dataclasses import dataclass, field
from pathlib import Path

from atlas.config import (
    AlignConfig,
    AttributeConfig,
    ChannelsConfig,
    ClassesConfig,
    GridConfig,
    ImageMapConfig,
    ModelSpec,
    ReduceConfig,
    RenderConfig,
    ReportConfig,
)


def _quick_render() -> RenderConfig:
    return RenderConfig(icon_size=16, steps=2)


@dataclass
class SiteRecipe:
    """What a test site is made of beyond its store: each stage's options."""

    spec: ModelSpec  # the model the reports load
    levels: list[int]
    classes: ClassesConfig
    attribute: AttributeConfig
    report: ReportConfig
    measures: dict  # a class-measures file, as a stage such as the demo's shortcut writes
    title: str
    reduce: ReduceConfig = field(default_factory=ReduceConfig)
    render: RenderConfig = field(default_factory=_quick_render)
    align: AlignConfig = field(default_factory=AlignConfig)
    aligned_with: str | None = None  # another store of the same images; else the store itself
    compare_run: str | None = None  # the classes stage's checkpoint to compare with
    images: str | None = None  # a folder of images to report on, beside the exemplars
    channels: ChannelsConfig | None = None  # channel pages, when given
    aligned_folder: str = "aligned"
    image_map_folder: str = "image-map"


def build_test_site(root: Path, store: str, recipe: SiteRecipe) -> dict:
    """Run every stage after extraction on ``store`` into ``root`` and build the site;
    returns the paths of the site and of what it was built from."""
    from atlas.stages.align import align_store
    from atlas.stages.attribute import attribute_store
    from atlas.stages.channels import channel_pages
    from atlas.stages.classes import classes_store
    from atlas.stages.grid import grid_store
    from atlas.stages.image_map import image_map_store
    from atlas.stages.reduce import reduce_store
    from atlas.stages.render import render_store
    from atlas.stages.report_model import report_model
    from atlas.stages.viewer import build_viewer
    from atlas.store.classes import write_class_measures

    layout, grid = str(root / "layout.zarr"), str(root / "grid.zarr")
    grid_options = GridConfig(levels=recipe.levels, min_count=1, exemplars=3)
    reduce_store(store, layout, recipe.reduce)
    grid_store(store, layout, grid, grid_options)
    render_store(store, grid, str(root / "render"), recipe.render, scheduler="inline")
    # The aligned atlas: the other store's layout aligned with this one, gridded, rendered.
    other = recipe.aligned_with or store
    aligned = root / recipe.aligned_folder
    aligned_layout, aligned_grid = str(aligned / "layout.zarr"), str(aligned / "grid.zarr")
    align_store(store, layout, other, aligned_layout, recipe.align, recipe.reduce, grid_options)
    grid_store(other, aligned_layout, aligned_grid, grid_options)
    render_store(other, aligned_grid, str(aligned / "render"), recipe.render, scheduler="inline")
    image_map = root / recipe.image_map_folder
    image_map_store(
        store, image_map, ImageMapConfig(levels=recipe.levels, thumb_size=16), recipe.reduce
    )
    channels = None
    if recipe.channels is not None:
        channels = root / "channels"
        channel_pages(store, channels, recipe.channels, recipe.render, scheduler="inline")
    classes_store(
        store,
        layout,
        grid,
        str(root / "classes"),
        recipe.classes,
        reduce_options=recipe.reduce,
        render_options=recipe.render,
        compare_run=recipe.compare_run,
        scheduler="inline",
    )
    write_class_measures(root / "measures.json", recipe.measures)
    reports = None
    if recipe.images is not None:
        reports = root / "reports"
        attribute_store(recipe.spec, [recipe.images], reports, recipe.attribute)
    exemplars = root / "exemplars"
    attribute_store(
        recipe.spec, [], exemplars, recipe.attribute, exemplars=grid, image_map=image_map
    )
    report_model(recipe.spec, root / "model-report", recipe.report)
    build_viewer(
        root / "site",
        run_url=store,
        grid_url=grid,
        render_dir=root / "render",
        classes_dir=root / "classes",
        class_measures=root / "measures.json",
        exemplar_reports=exemplars,
        reports=reports,
        model_report=root / "model-report",
        aligned=aligned,
        image_map=image_map,
        channels=channels,
        title=recipe.title,
    )
    return {
        "root": root,
        "site": root / "site",
        "grid": grid,
        "store": store,
        "other": other,
        "aligned": aligned,
        "image_map": image_map,
    }
