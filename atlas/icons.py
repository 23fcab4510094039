"""Icons for activation directions: feature visualizations of many targets, batched,
distributed and cached by content.

Each target is a direction in a layer's activation space (a grid cell's mean vector);
its icon maximizes the direction objective (:func:`atlas.featvis.objectives.direction`),
batches of targets optimized together by :func:`atlas.featvis.render.render` and handed to
Dask workers batch by batch (:mod:`atlas.distribute`). An icon's key hashes the model,
the layer, the target vector, the whitening and the render settings, and its seed comes
from the key, so the same target always gets the same icon and a rerun (or a new grid
level) renders only what is new (the cache: :class:`atlas.store.render.IconCache`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import time

import numpy as np
import torch

from atlas.config import ModelSpec, RenderConfig
from atlas.data import absolute_root
from atlas.distribute import Cluster, run_tasks
from atlas.featvis import objectives
from atlas.featvis.render import RenderResult, render, transforms_for
from atlas.models import LoadedModel, with_absolute_paths
from atlas.rows import take_rows
from atlas.runtime import cached_model, resolve_device, thread_copy
from atlas.store import RunStore, open_run
from atlas.store.render import IconCache

log = logging.getLogger(__name__)


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
                lr_schedule=options.lr_schedule,
                transforms=transforms_for(options.transforms, options.icon_size, options),
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


def worker_model(
    run_url: str,
    device: str,
    *,
    model: LoadedModel | None = None,
    spec: ModelSpec | None = None,
) -> LoadedModel:
    """On a worker rendering icons: the run's model, once per worker (``spec``, its paths
    resolved by the client, else the store's own), or this thread's copy of ``model``, one
    in memory; torch on one thread, as the worker is one of several."""
    torch.set_num_threads(1)
    if model is not None:
        copy = thread_copy(model)
        copy.module.to(device)
        return copy
    run = open_run(run_url)
    return cached_model(spec or run.model_spec(), device=device, seed=run.extract_options().seed)


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
    model: LoadedModel | None = None,
    spec: ModelSpec | None = None,
) -> dict:
    """On a worker: render one batch of targets with the run's model (``spec``, its paths
    resolved by the client, or ``model``, one in memory) and write their icons to the
    cache."""
    start = time.perf_counter()
    config = RenderConfig.model_validate(options)
    model = worker_model(run_url, device, model=model, spec=spec)
    seeds = [int(key[:8], 16) for key in keys]
    result = render_cells(model, layer, targets, seeds, config, whitening=whitening)
    cache = IconCache(icons_dir)
    for key, image, value in zip(keys, result.images, result.values, strict=True):
        cache.save(key, image, float(value))
    return {"icons": len(keys), "seconds": time.perf_counter() - start}


def render_icons(
    run: RunStore,
    layer: str,
    targets: np.ndarray,
    cache: IconCache,
    options: RenderConfig,
    *,
    whitening: np.ndarray | None,
    scheduler=None,
    model: LoadedModel | None = None,
) -> tuple[list[str], int]:
    """Make sure ``cache`` holds an icon for every target direction (N, C) of ``layer``
    of the run's model (``model``: the run's model in memory, for a run extracted from
    one): returns each target's icon key, and how many had to be rendered."""
    identity = run.meta["identity"]["model"]
    if "weights_digest" in run.meta["identity"]:  # a model in memory: its weights name it
        identity = {**identity, "weights_digest": run.meta["identity"]["weights_digest"]}
    digest = (
        hashlib.sha256(whitening.tobytes()).hexdigest()[:16] if whitening is not None else "none"
    )
    keys = [icon_key(identity, layer, target, digest, options) for target in targets]
    cache.folder.mkdir(parents=True, exist_ok=True)
    missing = {}
    for key, target in zip(keys, targets, strict=True):
        if not cache.has(key):
            missing.setdefault(key, target)
    if missing:
        ordered = sorted(missing)
        batches = [
            ordered[i : i + options.batch_size] for i in range(0, len(ordered), options.batch_size)
        ]
        run_tasks(
            render_task,
            [(batch, np.stack([missing[k] for k in batch])) for batch in batches],
            Cluster(scheduler, options.workers, options.processes, in_process=model is not None),
            key=f"render-{run.identity_hash}-{ordered[0]}",
            desc="render",
            unit="icon",
            count="icons",
            total=len(ordered),
            run_url=absolute_root(run.url),
            layer=layer,
            whitening=whitening,
            icons_dir=str(cache.folder),
            options=options.model_dump(mode="json"),
            device=str(resolve_device(options.device)),
            model=model,
            spec=None if model is not None else with_absolute_paths(run.model_spec()),
        )
    log.info(
        "%d icons: %d rendered, %d from the cache",
        len(keys),
        len(missing),
        len(keys) - len(missing),
    )
    return keys, len(missing)


def exemplar_objective(
    acts, exemplars: np.ndarray, means: np.ndarray, occupied: np.ndarray, layer, whitening, options
) -> np.ndarray:
    """Per cell, the best direction objective (towards the cell's mean) among its
    exemplars' activation vectors: what the data reaches, for an icon to be measured by."""
    best = np.full(len(exemplars), np.nan, np.float32)
    if not len(occupied):
        return best
    rows = exemplars[occupied]
    used = np.unique(rows[rows >= 0])
    vectors = {int(i): v for i, v in zip(used, take_rows(acts, used), strict=True)}
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
