"""The reduce and grid stages end to end on a real (tiny) activation store."""

import shutil
from pathlib import Path

import numpy as np
import zarr

from atlas.cli import main
from atlas.store import open_run
from atlas.store.grid import open_grid
from atlas.store.layout import read_layout


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_reduce_then_grid(capsys, tiny_store, tmp_path):
    layout, grid = str(tmp_path / "layout.zarr"), str(tmp_path / "grid.zarr")
    code, out, _ = run(
        capsys, "reduce", "-s", "reduce.seed=1", "--store", tiny_store, "--out", layout
    )
    assert code == 0 and "laid out 120 samples" in out and "umap-learn's fit" in out
    xy, attrs = read_layout(layout).xy, read_layout(layout).attrs
    assert xy.shape == (120, 2) and (xy >= 0).all() and (xy <= 1).all()
    assert attrs["layer"] == "block3" and attrs["reducer"]["n_neighbors"] == 15

    code, out, _ = run(
        capsys,
        "grid",
        "-s",
        "grid.levels=[2,4,8]",
        "-s",
        "grid.min_count=1",
        "--store",
        tiny_store,
        "--layout",
        layout,
        "--out",
        grid,
    )
    assert code == 0 and "8x8" in out
    store, cells = open_run(tiny_store), open_grid(grid)
    paths = store.read_layer("block3").path[:]
    assert cells.levels == [2, 4, 8]
    for size in cells.levels:
        level = cells.read_level(size)
        assert level.count[:].sum() == 120
        exemplar, box = level.exemplar[:], level.exemplar_box[:]
        used = exemplar >= 0
        assert used.any() and all(Path(store.locate(p)).is_file() for p in paths[exemplar[used]])
        assert (
            (box[used][:, 2] > box[used][:, 0]).all()
            and (box[used] <= 32).all()
            and (box[used] >= 0).all()
        )
    assert cells.whitening().shape == (64, 64)
    assert cells.attrs["class_names"] == store.meta["class_names"]


def test_nan_activations_are_refused_naming_the_image(capsys, tiny_store, tmp_path):
    broken = tmp_path / "broken.zarr"
    shutil.copytree(tiny_store, broken)
    acts = zarr.open_group(str(broken), mode="r+")["block3"]["acts"]
    row = acts[17]
    row[5] = np.nan
    acts[17] = row
    code, _, err = run(capsys, "reduce", "--store", str(broken), "--out", str(tmp_path / "l.zarr"))
    assert code == 2 and "contain NaN or infinity" in err and ".png (sample 17)" in err


def test_grid_refuses_a_layout_of_another_run(capsys, tiny_store, tmp_path):
    layout = str(tmp_path / "layout.zarr")
    assert run(capsys, "reduce", "--store", tiny_store, "--out", layout)[0] == 0
    other = tmp_path / "other.zarr"
    shutil.copytree(tiny_store, other)
    group = zarr.open_group(str(other), mode="r+")
    meta = dict(group.attrs["atlas"])
    meta["identity_hash"] = "0" * 16
    group.attrs["atlas"] = meta
    code, _, err = run(
        capsys, "grid", "--store", str(other), "--layout", layout, "--out", str(tmp_path / "g.zarr")
    )
    assert code == 2 and "made from another run" in err
    code, _, err = run(
        capsys,
        "grid",
        "--store",
        tiny_store,
        "--layout",
        str(tmp_path / "none.zarr"),
        "--out",
        str(tmp_path / "g.zarr"),
    )
    assert code == 2 and "no layout store" in err
