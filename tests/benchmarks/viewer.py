"""Benchmark: time to the first painted tile of a 160 x 160 level, on loopback.

Builds an ImageNet-scale level without a model: 160 x 160 cells, every one occupied by a
random 64 px icon (a 10,240 px square mosaic, cut into a deep-zoom pyramid with pyvips),
with its per-block cell metadata and class lists written by the site builder. Serves it
with `atlas serve` and opens it in headless Chromium: reports the time from navigation to
the first tile drawn, to every tile of the first screen, and what the first screen
fetched (count and bytes), against the whole level's metadata it did not need.

    python tests/benchmarks/viewer.py [--size 160] [--icon 64]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyvips

from atlas.store.grid import GridLevel
from atlas.store.render import IconCache, RenderLevel
from atlas.viewer.atlas_page import write_level
from atlas.viewer.build import STATIC
from atlas.viewer.data import level_arrays
from atlas.viewer.server import serve_in_background
from atlas.viewer.site import level_entry
from atlas.viewer.vendor import openseadragon

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/, for its browser helper
from browser import launch, wait_until


def synthetic_site(root: Path, size: int, icon: int, classes: int = 1000) -> Path:
    site = root / "site"
    site.mkdir()
    shutil.copytree(
        openseadragon(),
        site / "vendor" / "openseadragon",
        ignore=shutil.ignore_patterns("*.map", "openseadragon.js"),
    )
    for name in ("index.html", "viewer.js", "style.css"):
        shutil.copy(STATIC / name, site / name)
    rng = np.random.default_rng(0)
    cells = size * size
    mosaic = pyvips.Image.new_from_array(
        rng.integers(0, 255, (size * icon, size * icon, 3), dtype=np.uint8), interpretation="srgb"
    )
    (site / "tiles").mkdir()
    mosaic.dzsave(
        str(site / "tiles" / str(size)), tile_size=256, overlap=0, suffix=".png", layout="dz"
    )
    k = 5
    level = GridLevel(
        size=size,
        count=rng.integers(3, 50, cells),
        mean=np.zeros((cells, 1), np.float32),
        top_class=rng.integers(0, classes, (cells, k)).astype(np.int32),
        top_class_attribution=np.zeros((cells, k), np.float32),
        top_class_share=rng.random((cells, k)).astype(np.float32),
        top_label=rng.integers(0, classes, (cells, k)).astype(np.int32),
        top_label_count=rng.integers(1, 9, (cells, k)),
        exemplar=np.full((cells, 4), -1, np.int64),
        exemplar_distance=np.zeros((cells, 4), np.float32),
        exemplar_box=np.zeros((cells, 4, 4), np.int32),
    )
    nan = np.full(cells, np.nan, np.float32)
    icons = RenderLevel(
        size=size,
        icon=np.zeros((cells, 1, 1, 3), np.uint8),
        icon_key=np.array([""] * cells),
        objective=nan,
        exemplar_objective=nan,
        quality=rng.random(cells).astype(np.float32),
        grey_share=nan,
    )

    class NoCrops:
        paths = ()

    write_level(
        site,
        size,
        level_arrays(level, icons),
        IconCache(root),
        NoCrops(),
        {},
        [f"class {i}" for i in range(classes)],
    )
    atlas = {
        "title": "160 x 160",
        "version": "bench",
        "model": "synthetic",
        "layer": "-",
        "samples": int(level.count.sum()),
        "classes": [f"class {i}" for i in range(classes)],
        "icon_size": icon,
        "block": 16,
        "levels": [level_entry(site, size, cells)],
        "pages": {},
    }
    (site / "atlas.json").write_text(json.dumps(atlas))
    return site


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size", type=int, default=160)
    parser.add_argument("--icon", type=int, default=64)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    root = Path(tempfile.mkdtemp(prefix="bench-viewer-"))
    try:
        start = time.perf_counter()
        site = synthetic_site(root, args.size, args.icon)
        built = time.perf_counter() - start
        metadata = sum(p.stat().st_size for p in (site / "cells").rglob("*.json")) + sum(
            p.stat().st_size for p in (site / "classes").rglob("*.json")
        )
        server, url = serve_in_background(site)
        first, full, steps, fetched, fetched_bytes = [], [], [], 0, 0
        with sync_playwright() as playwright:
            browser = launch(playwright)
            for _ in range(args.runs):
                page = browser.new_page(viewport={"width": 1280, "height": 800})
                start = time.perf_counter()
                page.goto(url)
                page.wait_for_selector("body[data-ready=true]", timeout=60000)
                wait_until(page, "atlasViewer.firstTileAt() !== null", 60)
                # In the page's own clock, from the start of navigation.
                first.append(page.evaluate("atlasViewer.firstTileAt()") / 1000)
                wait_until(page, "atlasViewer.drawn()", 60)
                full.append(time.perf_counter() - start)
                entries = page.evaluate(
                    "performance.getEntriesByType('resource').map(e => [e.name, e.encodedBodySize, e.responseEnd])"
                )
                ends = {}
                for name, _, end in entries:
                    kind = "tile" if "_files/" in name else Path(name).name
                    ends.setdefault(kind, end)
                steps.append(ends)
                fetched, fetched_bytes = len(entries), sum(size for _, size, _ in entries)
                page.close()
            browser.close()
        server.shutdown()
        print(
            f"{args.size}x{args.size} level, {args.size**2:,} icons of {args.icon} px: site built in {built:.1f} s"
        )
        print(
            f"  first tile drawn after {np.median(first) * 1000:.0f} ms, first screen complete after {np.median(full) * 1000:.0f} ms (median of {args.runs})"
        )
        order = ("openseadragon.min.js", "viewer.js", "atlas.json", f"{args.size}.dzi", "tile")
        print(
            "  fetched by (ms after navigation, last run): "
            + ", ".join(f"{k} {steps[-1][k]:.0f}" for k in order if k in steps[-1])
        )
        print(
            f"  the first screen fetched {fetched} files, {fetched_bytes / 1024:.0f} KiB; the level's cell and class metadata ({metadata / 2**20:.1f} MiB) is fetched only where needed"
        )
        fields = {
            "size": args.size,
            "icons": args.size**2,
            "first_tile_ms": round(np.median(first) * 1000),
            "first_screen_ms": round(np.median(full) * 1000),
            "first_screen_files": fetched,
            "first_screen_kib": round(fetched_bytes / 1024),
            "metadata_mib": round(metadata / 2**20, 1),
        }
        print("BENCH viewer " + " ".join(f"{k}={v}" for k, v in fields.items()))
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
