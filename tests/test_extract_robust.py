"""Extraction under hostile input, interruption, several workers and fsspec URLs."""

import csv
import os
import signal
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import fsspec
import numpy as np
import pytest
from helpers import SPEC
from PIL import Image

from atlas.config import ExtractConfig
from atlas.demo.world import CLASS_NAMES, make_world
from atlas.stages.extract import extract_store
from atlas.store import open_run

OPTIONS = ExtractConfig(layer="block3", chunk_size=4, batch_size=4, attribution="off")


def png_with_header_only(width, height):
    """A PNG that claims a huge size: decoding it would need width*height bytes."""

    def chunk(kind, data):
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + chunk(b"IEND", b"")
    )


def store_arrays(url):
    store = open_run(url)
    arrays = {
        name: store.group[name][:] for name in ("image_path", "image_label", "skip_reason", "done")
    }
    for layer in store.layer_names:
        for name in store.group[layer].array_keys():
            arrays[f"{layer}/{name}"] = store.group[layer][name][:]
    return arrays


def assert_same_store(a, b):
    a, b = store_arrays(a), store_arrays(b)
    assert a.keys() == b.keys()
    for name in a:
        assert np.array_equal(a[name], b[name]), name


def test_hostile_files_are_listed_in_skipped_csv_and_good_ones_used_once(tmp_path):
    root = tmp_path / "images"
    good, bad = root / "star", root / "ring"
    good.mkdir(parents=True)
    bad.mkdir()
    rgb = np.random.default_rng(0).integers(0, 255, (40, 40, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(good / "a.png")
    Image.fromarray(rgb).save(good / "png_named.jpg")  # wrong extension, valid content
    Image.fromarray(rgb).convert("CMYK").save(good / "cmyk.jpg")
    Image.fromarray(np.full((40, 40), 40000, np.uint16)).save(good / "deep.png")
    Image.fromarray(rgb).convert("P").save(good / "palette.gif", transparency=0)
    Image.fromarray(rgb).save(good / "image_without_extension", format="PNG")
    (bad / "empty.png").write_bytes(b"")
    full = (good / "a.png").read_bytes()
    (bad / "truncated.png").write_bytes(full[: len(full) // 2])
    (bad / "notes.txt").write_text("not an image")
    (bad / "bomb.png").write_bytes(png_with_header_only(100_000, 100_000))
    (bad / "broken.jpg").symlink_to(tmp_path / "nowhere.jpg")
    (bad / "folder.jpg").mkdir()
    (bad / ".hidden.png").write_bytes(b"")  # hidden files are not images of the set

    url = str(tmp_path / "out" / "acts.zarr")
    summary = extract_store(str(root), url, SPEC, OPTIONS, scheduler="inline")
    with open(tmp_path / "out" / "skipped.csv") as handle:
        skipped = {Path(row["path"]).name: row["reason"] for row in csv.DictReader(handle)}
    assert set(skipped) == {
        "empty.png",
        "truncated.png",
        "notes.txt",
        "bomb.png",
        "broken.jpg",
        "folder.jpg",
    }
    assert skipped["empty.png"] == "empty file"
    assert skipped["truncated.png"].startswith("truncated or corrupt")
    assert skipped["notes.txt"] == "not an image"
    assert skipped["bomb.png"].startswith("decompression bomb")  # never decoded: 10 GB of pixels
    assert skipped["broken.jpg"] == "broken link"
    assert skipped["folder.jpg"] == "is a directory"
    assert summary.skipped == 6 and summary.images == 12

    group = open_run(url).read_layer()
    valid = group.valid[:]
    used = sorted(Path(p).name for p in group.path[:][valid])
    assert used == sorted(
        ["a.png", "png_named.jpg", "cmyk.jpg", "deep.png", "palette.gif", "image_without_extension"]
    )
    assert np.abs(group.acts[:][valid]).sum(axis=1).min() > 0
    assert (group.acts[:][~valid] == 0).all() and (group.pos[:][~valid] == -1).all()


def test_memory_and_file_urls(tiny_world, tmp_path):
    memory = fsspec.filesystem("memory")
    sources = sorted((tiny_world / "test" / "star").iterdir())[:3]
    for path in sources:
        memory.pipe(f"/imgs/star/{path.name}", path.read_bytes())
    url = str(tmp_path / "m.zarr")
    extract_store("memory://imgs", url, SPEC, OPTIONS)  # a local cluster, in-process for memory://
    run = open_run(url)
    group = run.read_layer()
    assert list(group.path[:]) == [f"star/{p.name}" for p in sources]
    assert run.locate(group.path[0]) == f"memory://imgs/star/{sources[0].name}"
    assert group.valid[:].all() and group.label[0] == sorted(CLASS_NAMES).index("star")

    file_url = f"file://{tmp_path / 'new' / 'folder' / 'f.zarr'}"  # folders made as needed
    extract_store(
        f"file://{tiny_world / 'test' / 'star'}",
        file_url,
        SPEC,
        OPTIONS.model_copy(update={"limit": 3}),
        scheduler="inline",
    )
    from_file = open_run(file_url).read_layer()
    assert open_run(file_url).locate(from_file.path[0]).startswith("file://")
    np.testing.assert_array_equal(from_file.acts[:], group.acts[:])

    memory_store = "memory://stores/run.zarr"
    extract_store(
        str(tiny_world / "test" / "star"),
        memory_store,
        SPEC,
        OPTIONS.model_copy(update={"limit": 3}),
    )
    np.testing.assert_array_equal(open_run(memory_store).read_layer().acts[:], group.acts[:])
    assert memory.exists("/stores/skipped.csv")


def test_list_file_source_with_labels(tiny_world, tmp_path):
    stars = sorted((tiny_world / "test" / "star").iterdir())[:2]
    listing = tmp_path / "list.csv"
    listing.write_text("path,label\n" + "".join(f"{p},ring\n" for p in stars))
    url = str(tmp_path / "l.zarr")
    extract_store(str(listing), url, SPEC, OPTIONS, scheduler="inline")
    group = open_run(url).read_layer()
    assert (group.label[:] == sorted(CLASS_NAMES).index("ring")).all()


@pytest.mark.slow
def test_one_and_two_workers_give_the_same_store(tiny_world, tmp_path):
    one, two = str(tmp_path / "one.zarr"), str(tmp_path / "two.zarr")
    options = OPTIONS.model_copy(update={"layer": ["block3", "block4"], "attribution": "all"})
    extract_store(str(tiny_world / "train"), one, SPEC, options.model_copy(update={"workers": 1}))
    extract_store(str(tiny_world / "train"), two, SPEC, options.model_copy(update={"workers": 2}))
    assert not open_run(one).pending_tasks()
    assert_same_store(one, two)


def wait_for_tasks(store: Path, tasks_done: int, running, timeout: float = 120) -> None:
    """Return once ``tasks_done`` tasks of the store at ``store`` are written; fail, saying
    how many were, if the run stops (``running()`` turns false) or ``timeout`` seconds
    pass first."""
    done_dir = store / "done" / "c"
    deadline = time.monotonic() + timeout

    def written() -> int:
        return len(list(done_dir.iterdir())) if done_dir.is_dir() else 0

    while written() < tasks_done:
        if not running() or time.monotonic() > deadline:
            why = "the run ended" if not running() else f"{timeout} s passed"
            pytest.fail(f"{why} with {written()} of the {tasks_done} tasks awaited in {store}")
        time.sleep(0.01)


def run_until(args, store: Path, tasks_done: int, sig: int) -> int:
    """Start ``atlas extract``, send ``sig`` once ``tasks_done`` tasks are written, and
    return its exit status."""
    process = subprocess.Popen(
        args,
        env={**os.environ, "ATLAS_PROGRESS": "0"},
        stderr=subprocess.PIPE,
        text=True,
        # As from a terminal: a shell without job control starts background commands with
        # Ctrl-C ignored (`make test &`), the child would inherit that and never stop.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        wait_for_tasks(store, tasks_done, lambda: process.poll() is None)
    except BaseException:
        process.kill()
        process.communicate()
        raise
    process.send_signal(sig)
    _, err = process.communicate()
    if sig == signal.SIGINT:
        said = f"exit status {process.returncode}, stderr: {err!r}"
        assert "Traceback" not in err and "interrupted" in err, said
    return process.returncode


@pytest.mark.slow
def test_interrupted_and_killed_runs_resume_to_the_identical_store(tmp_path):
    images = tmp_path / "world"
    make_world(
        images,
        seed=1,
        image_size=32,
        train_per_class=24,
        test_per_class=1,
        swapped_per_class=1,
        workers=1,
    )
    config = tmp_path / "config.yaml"
    config.write_text(
        "model: {arch: 'atlas.demo.net:DemoCNN', num_classes: 10, input_size: 32}\n"
        "extract: {layer: block3, chunk_size: 8, batch_size: 8}\n"
    )
    base = [
        sys.executable,
        "-m",
        "atlas.cli",
        "extract",
        "--config",
        str(config),
        "--images",
        str(images / "train"),
    ]
    store = tmp_path / "killed" / "acts.zarr"
    args = [*base, "--out", str(store), "--scheduler", "inline"]

    assert run_until(args, store, 3, signal.SIGINT) == 130  # Ctrl-C
    first = open_run(str(store)).pending_tasks()
    assert run_until(args, store, len(first) // 2 + 3, signal.SIGKILL) == -signal.SIGKILL
    second = open_run(str(store)).pending_tasks()
    assert 0 < len(second) < len(first) < open_run(str(store)).layout.n_tasks
    assert set(second) <= set(first)  # a finished task is never redone

    subprocess.run(args, check=True)
    clean = tmp_path / "clean" / "acts.zarr"
    subprocess.run([*base, "--out", str(clean), "--scheduler", "inline"], check=True)
    assert_same_store(str(store), str(clean))


@pytest.mark.slow
def test_a_dead_worker_does_not_stop_the_run(tiny_world, tmp_path):
    """On a cluster given by address, killing a worker mid-run: Dask reruns its task
    elsewhere and the store equals an uninterrupted one."""
    import threading

    from dask.distributed import Client, LocalCluster

    options = OPTIONS.model_copy(update={"chunk_size": 2, "batch_size": 2})
    reference = str(tmp_path / "reference.zarr")
    extract_store(str(tiny_world / "train"), reference, SPEC, options, scheduler="inline")
    url = str(tmp_path / "run.zarr")
    with (
        LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=None) as cluster,
        Client(cluster) as client,
    ):
        pids = list(client.run(os.getpid).values())
        worker = threading.Thread(
            target=extract_store,
            args=(str(tiny_world / "train"), url, SPEC, options),
            kwargs={"scheduler": cluster.scheduler_address},
        )
        worker.start()
        wait_for_tasks(Path(url), 5, worker.is_alive)
        os.kill(pids[0], signal.SIGKILL)
        worker.join(timeout=300)
    assert not open_run(url).pending_tasks()
    assert_same_store(url, reference)
