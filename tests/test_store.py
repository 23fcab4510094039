"""The store's typed records: each kind declares its arrays once (names, dimensions,
dtypes), and what the stages write is exactly what the records declare."""

import numpy as np
import zarr

from atlas.store import ImageIndex, RunLayer, open_run
from atlas.store.base import open_group
from atlas.store.classes import KINDS, ClassAtlasRecord, open_classes
from atlas.store.grid import GridLevel, open_grid
from atlas.store.image_map import MapLevel, open_image_map
from atlas.store.layout import Layout
from atlas.store.records import read_record, write_record
from atlas.store.render import RenderLevel, open_render


def small_level(size: int = 2, boxes: bool = False) -> GridLevel:
    cells = size * size
    return GridLevel(
        size=size,
        count=np.array([3, 0, 1, 2], np.int64),
        mean=np.arange(cells * 2, dtype=np.float32).reshape(cells, 2),
        top_class=np.zeros((cells, 1), np.int32),
        top_class_attribution=np.ones((cells, 1), np.float32),
        top_class_share=np.ones((cells, 1), np.float32),
        top_label=np.zeros((cells, 1), np.int32),
        top_label_count=np.zeros((cells, 1), np.int64),
        exemplar=np.array([[5], [-1], [7], [9]], np.int64),
        exemplar_distance=np.zeros((cells, 1), np.float32),
        exemplar_box=np.ones((cells, 1, 4), np.int32) if boxes else None,
    )


def test_a_record_is_written_with_its_dimensions_and_read_lazily(tmp_path):
    group = open_group(str(tmp_path / "level.zarr"), mode="w", zarr_format=3)
    written = small_level()
    write_record(group, written, chunk_rows=3)
    assert group.attrs["size"] == 2
    assert "exemplar_box" not in group  # an optional array left out is not written
    assert group["mean"].metadata.dimension_names == ("cell", "channel")
    assert group["count"].chunks == (3,)

    level = read_record(GridLevel, open_group(str(tmp_path / "level.zarr"), mode="r"))
    assert isinstance(level.mean, zarr.Array)  # nothing read yet
    assert level.exemplar_box is None
    assert level.exemplar[2:, 0].tolist() == [7, 9]  # a slice reads only its chunks
    assert level.occupied().tolist() == [0, 2, 3]
    loaded = level.load()
    assert isinstance(loaded.mean, np.ndarray) and loaded.mean.dtype == np.float32
    for name in GridLevel.array_fields():
        if name != "exemplar_box":
            np.testing.assert_array_equal(getattr(loaded, name), getattr(written, name))


def assert_declared(group: zarr.Group, kind, skip=()) -> None:
    """Every array of ``group`` is a field of ``kind``, with its dimensions and dtype."""
    fields = kind.array_fields()
    for name in group.array_keys():
        if name in skip:
            continue
        assert name in fields, f"{group.path}/{name} is not declared by {kind.__name__}"
        array, spec = group[name], fields[name]
        assert array.metadata.dimension_names == spec["dims"], (group.path, name)
        if spec["dtype"] is str:
            assert array.dtype.kind in "OTU", (group.path, name, array.dtype)
        elif spec["dtype"] is not None:
            assert array.dtype == np.dtype(spec["dtype"]), (group.path, name, array.dtype)


def test_every_array_the_pipeline_writes_is_declared_by_its_record(tiny_site):
    for url in (tiny_site["store"], tiny_site["other"]):
        run = open_run(url)
        assert_declared(run.group, ImageIndex)
        for name in run.layer_names:
            assert_declared(run.group[name], RunLayer)
            assert run.read_layer(name).name == name
    grid = open_grid(tiny_site["grid"])
    assert grid.group["whitening"].metadata.dimension_names == ("channel", "channel_b")
    for size in grid.levels:
        assert_declared(grid.level_group(size), GridLevel)
        assert grid.read_level(size).exemplar_box is not None
    assert_declared(open_group(str(tiny_site["root"] / "layout.zarr"), mode="r"), Layout)
    renders = open_render(tiny_site["root"] / "render")
    for size in renders.levels:
        assert_declared(renders.level_group(size), RenderLevel)
        assert renders.read_level(size).size == size
    classes = open_classes(tiny_site["root"] / "classes")
    for kind in KINDS:
        for name in classes.names(kind):
            assert_declared(classes.group[f"{kind}/{name}"], ClassAtlasRecord)
            assert classes.read_atlas(kind, name).size == classes.attrs["size"]
    image_map = open_image_map(tiny_site["image_map"])
    assert_declared(image_map.group, MapLevel, skip={"xy"})
    for size in image_map.levels:
        assert_declared(image_map.level_group(size), MapLevel)
