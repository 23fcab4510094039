"""Rendering the atlas: one feature-visualization icon per grid cell, and the tiles.

Each occupied cell's mean activation vector becomes a target of the direction objective
(:func:`atlas.featvis.objectives.direction`), and batches of cells are optimized together
by :func:`atlas.featvis.render.render`, handed to Dask workers batch by batch. Icons are
cached by content: an icon's key hashes the model, the layer, the target vector, the
whitening and the render settings, and its seed comes from the key, so the same cell
always gets the same icon and a rerun (or a new grid level) renders only what is new.

Outputs, under the output folder: ``icons/<key>.png`` (the cache; each PNG carries its
objective value), ``render.zarr`` (per level: ``icon[cell, y, x, rgb]``, ``objective``,
``exemplar_objective`` and ``quality[cell]``, the icon's objective over the best
exemplar's: how much more (or less) the icon drives its direction than the data does)
and ``tiles/<level>.dzi`` deep-zoom pyramids of the icons laid on the grid.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import zarr
from PIL import Image, PngImagePlugin

from atlas.config import ModelSpec, RenderConfig, package_version
from atlas.distribute import Cluster, run_tasks
from atlas.featvis import objectives
from atlas.featvis.render import RenderResult, render, transforms_for
from atlas.models import LoadedModel, load_model
from atlas.store import open_run
from atlas.store.maps import open_grid
from atlas.train import resolve_device

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RenderSummary:
    icons: int  # cells with an icon, over all levels
    rendered: int  # icons rendered in this run (the rest came from the cache)
    seconds: float


def render_cells(
    model: LoadedModel,
    layer: str,
    targets: np.ndarray,
    seeds: list[int],
    options: RenderConfig,
    *,
    whitening: np.ndarray | None = None,
) -> RenderResult:
    """Icons for ``targets`` (N, C) directions of ``layer``, ``options.batch_size`` at a
    time; element i starts from ``seeds[i]``. Returns images (N, S, S, 3) in [0, 1] and
    each icon's final objective."""
    parts = []
    for start in range(0, len(targets), options.batch_size):
        chunk = slice(start, start + options.batch_size)
        objective = objectives.direction(
            layer, targets[chunk], whitening=whitening, cossim_pow=options.cossim_pow
        )
        parts.append(
            render(
                model,
                objective,
                size=options.icon_size,
                seeds=seeds[chunk],
                steps=options.steps,
                lr=options.lr,
                transforms=transforms_for(options.transforms, options.icon_size),
                transform_seed=options.seed,
            )
        )
    return RenderResult(
        images=np.concatenate([p.images for p in parts]),
        values=np.concatenate([p.values for p in parts]),
        history=np.zeros((0, len(targets)), np.float32),
    )


def icon_key(
    identity: dict, layer: str, target: np.ndarray, whitening_digest: str, options: RenderConfig
) -> str:
    """The content hash that names an icon (see module docstring)."""
    settings = options.model_dump(mode="json", exclude=set(RenderConfig.OPERATIONAL))
    digest = hashlib.sha256()
    digest.update(
        json.dumps([identity, layer, whitening_digest, settings], sort_keys=True).encode()
    )
    digest.update(np.ascontiguousarray(target, dtype=np.float32).tobytes())
    return digest.hexdigest()[:24]


# Worker side ------------------------------------------------------------------------------

_MODELS: dict[tuple, LoadedModel] = {}
_LOCK = threading.Lock()


def render_task(
    keys: list[str],
    targets: np.ndarray,
    *,
    run_url: str,
    layer: str,
    whitening: np.ndarray | None,
    icons_dir: str,
    options: dict,
    device: str,
) -> dict:
    """Render one batch of cells and write their icons to the cache."""
    start = time.perf_counter()
    config = RenderConfig.model_validate(options)
    torch.set_num_threads(1)
    model = _worker_model(run_url, device)
    seeds = [int(key[:8], 16) for key in keys]
    result = render_cells(model, layer, targets, seeds, config, whitening=whitening)
    for key, image, value in zip(keys, result.images, result.values, strict=True):
        save_icon(Path(icons_dir) / f"{key}.png", image, float(value))
    return {"icons": len(keys), "seconds": time.perf_counter() - start}


def _worker_model(run_url: str, device: str) -> LoadedModel:
    """The run's model (channels-last), loaded once per worker thread."""
    key = (run_url, device, threading.get_ident())
    with _LOCK:
        if key not in _MODELS:
            run = open_run(run_url)
            spec = ModelSpec.model_validate(run.meta["identity"]["model"])
            model = load_model(spec, device=device, seed=run.meta["identity"]["extract"]["seed"])
            model.module.to(memory_format=torch.channels_last)
            _MODELS[key] = model
        return _MODELS[key]


def save_icon(path: Path, image: np.ndarray, value: float) -> None:
    """An icon (S, S, 3) in [0, 1] as PNG, its objective value in a text chunk; written
    under a temporary name first, so a killed run leaves no half icon in the cache."""
    info = PngImagePlugin.PngInfo()
    info.add_text("objective", repr(value))
    pixels = (np.clip(image, 0, 1) * 255 + 0.5).astype(np.uint8)
    partial = path.with_suffix(".part")
    Image.fromarray(pixels).save(partial, format="PNG", pnginfo=info)
    partial.replace(path)


def load_icon(path: Path) -> tuple[np.ndarray, float]:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB")), float(image.text["objective"])


# Client side ------------------------------------------------------------------------------


def render_icons(
    run_url: str,
    layer: str,
    targets: np.ndarray,
    icons_dir: Path,
    options: RenderConfig,
    *,
    whitening: np.ndarray | None,
    scheduler: str | None = None,
) -> tuple[list[str], int]:
    """Make sure ``icons_dir`` holds an icon for every target direction (N, C) of
    ``layer``: returns each target's icon key, and how many had to be rendered."""
    run = open_run(run_url)
    identity = run.meta["identity"]["model"]
    digest = (
        hashlib.sha256(whitening.tobytes()).hexdigest()[:16] if whitening is not None else "none"
    )
    keys = [icon_key(identity, layer, target, digest, options) for target in targets]
    icons_dir.mkdir(parents=True, exist_ok=True)
    missing = {}
    for key, target in zip(keys, targets, strict=True):
        if not (icons_dir / f"{key}.png").exists():
            missing.setdefault(key, target)
    if missing:
        ordered = sorted(missing)
        batches = [
            ordered[i : i + options.batch_size] for i in range(0, len(ordered), options.batch_size)
        ]
        run_tasks(
            render_task,
            [(batch, np.stack([missing[k] for k in batch])) for batch in batches],
            Cluster(scheduler, options.workers, options.processes),
            key=f"render-{run.meta['identity_hash']}-{ordered[0]}",
            desc="render",
            unit="icon",
            count="icons",
            total=len(ordered),
            run_url=run_url,
            layer=layer,
            whitening=whitening,
            icons_dir=str(icons_dir),
            options=options.model_dump(mode="json"),
            device=str(resolve_device(options.device)),
        )
    log.info(
        "%d icons: %d rendered, %d from the cache",
        len(keys),
        len(missing),
        len(keys) - len(missing),
    )
    return keys, len(missing)


def render_store(
    run_url: str,
    grid_url: str,
    out_dir: str,
    options: RenderConfig,
    *,
    scheduler: str | None = None,
) -> RenderSummary:
    """Render every occupied cell of the grid's levels (see module docstring)."""
    start = time.perf_counter()
    out = Path(out_dir)
    run, grid = open_run(run_url), open_grid(grid_url)
    layer = grid.attrs["layer"]
    whitening = grid.whitening() if options.whiten else None
    levels = options.levels or grid.levels
    cells = {size: np.flatnonzero(grid.level(size)["count"][:] > 0) for size in levels}
    targets = np.concatenate([grid.level(size)["mean"][:][cells[size]] for size in levels])
    all_keys, rendered = render_icons(
        run_url, layer, targets, out / "icons", options, whitening=whitening, scheduler=scheduler
    )
    keys, start_at = {}, 0
    for size in levels:
        keys[size] = all_keys[start_at : start_at + len(cells[size])]
        start_at += len(cells[size])
    _write_levels(out, run, grid, levels, cells, keys, options, whitening)
    return RenderSummary(len(all_keys), rendered, time.perf_counter() - start)


def _write_levels(out, run, grid, levels, cells, keys, options, whitening) -> None:
    """Assemble each level's icons into render.zarr, score the exemplars, build tiles."""
    import pyvips

    layer_name = grid.attrs["layer"]
    acts = run.layer(layer_name)["acts"]
    store = zarr.open_group(str(out / "render.zarr"), mode="w", zarr_format=3)
    tiles = out / "tiles"
    tiles.mkdir(exist_ok=True)
    size_px = options.icon_size
    for size in levels:
        level = grid.level(size)
        n_cells = size * size
        icons = np.zeros((n_cells, size_px, size_px, 3), np.uint8)
        value = np.full(n_cells, np.nan, np.float32)
        for cell, key in zip(cells[size], keys[size], strict=True):
            icons[cell], value[cell] = load_icon(out / "icons" / f"{key}.png")
        exemplar_value = _exemplar_objective(
            acts, level, cells[size], layer_name, whitening, options
        )
        icon_keys = np.full(n_cells, "", dtype=object)
        icon_keys[cells[size]] = keys[size]
        group = store.create_group(str(size))
        group.attrs["size"] = size
        for name, data, dims in (
            ("icon", icons, ("cell", "y", "x", "rgb")),
            ("icon_key", icon_keys.astype(str), ("cell",)),
            ("objective", value, ("cell",)),
            ("exemplar_objective", exemplar_value, ("cell",)),
            ("quality", value / np.where(exemplar_value > 0, exemplar_value, np.nan), ("cell",)),
        ):
            chunks = (min(n_cells, 1024), *data.shape[1:])
            dtype = str if name == "icon_key" else data.dtype
            array = group.create_array(
                name, shape=data.shape, chunks=chunks, dtype=dtype, dimension_names=dims
            )
            array[:] = data
        _tiles(pyvips, icons, cells[size], size, size_px, tiles / str(size), options.tile_size)
    store.attrs["atlas"] = {
        "version": package_version(),
        "levels": list(levels),
        "layer": layer_name,
        "grid": grid.url,
        "icon_size": size_px,
        "settings": options.model_dump(mode="json", exclude=set(RenderConfig.OPERATIONAL)),
    }


def _exemplar_objective(acts, level, occupied, layer, whitening, options) -> np.ndarray:
    """Per cell, the best direction objective among its exemplars' activation vectors."""
    exemplars = level["exemplar"][:]
    means = level["mean"][:]
    best = np.full(len(exemplars), np.nan, np.float32)
    if not len(occupied):
        return best
    rows = exemplars[occupied]
    used = np.unique(rows[rows >= 0])
    vectors = {
        int(i): v
        for i, v in zip(used, acts.get_orthogonal_selection((used, slice(None))), strict=True)
    }
    objective = objectives.direction(
        layer, means[occupied], whitening=whitening, cossim_pow=options.cossim_pow
    )
    for slot in range(rows.shape[1]):
        present = rows[:, slot] >= 0
        if not present.any():
            continue
        stacked = np.zeros((len(rows), means.shape[1]), np.float32)
        stacked[present] = np.stack([vectors[int(i)] for i in rows[present, slot]])
        with torch.no_grad():
            scores = objective({layer: torch.from_numpy(stacked)}, torch.empty(0)).numpy()
        scores[~present] = np.nan
        best[occupied] = np.fmax(best[occupied], scores)
    return best


def _tiles(pyvips, icons, occupied, size, size_px, path, tile_size) -> None:
    """A deep-zoom pyramid (DZI) of the level: icon of cell (row, col) at column col and
    row size-1-row from the top (row 0 is the bottom of the layout); empty cells clear."""
    blank = pyvips.Image.black(size_px, size_px, bands=4)
    filled = set(int(c) for c in occupied)
    tiles = []
    for row in range(size - 1, -1, -1):
        for col in range(size):
            cell = row * size + col
            if cell in filled:
                rgba = np.concatenate(
                    [icons[cell], np.full((size_px, size_px, 1), 255, np.uint8)], axis=2
                )
                tiles.append(pyvips.Image.new_from_array(rgba, interpretation="srgb"))
            else:
                tiles.append(blank)
    mosaic = pyvips.Image.arrayjoin(tiles, across=size)
    mosaic.dzsave(str(path), tile_size=tile_size, overlap=0, suffix=".png", layout="dz")
    # libvips always adds a properties file stamped with the time; the viewer does not read
    # it, and without it the same icons give the same bytes (DVC sees no change).
    (path.parent / f"{path.name}_files" / "vips-properties.xml").unlink(missing_ok=True)
