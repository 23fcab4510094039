"""The render path: objectives in, icons out, on whatever workers are given.

Every icon the package makes comes this way: the atlas's and the class atlases' cells
(:mod:`atlas.icons`), the channels (:mod:`atlas.channels`) and the model report's classes
(:mod:`atlas.reports.model_report`). An :class:`Objectives` says what each icon
maximizes, one row per icon; a recipe (:class:`atlas.config.Recipe`) how it is optimized.
:func:`render_objectives` runs them ``recipe.batch_size`` icons at a time with a model in
this process (:func:`atlas.featvis.render.render` optimizes each batch);
:func:`render_to_cache` hands the same batches to workers (this process, a local Dask
cluster or any cluster: :mod:`atlas.distribute`), each writing its icons into an
:class:`atlas.store.render.IconCache`.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

from atlas.config import ModelSpec, Recipe, RenderConfig
from atlas.data import absolute_root
from atlas.distribute import Cluster, run_tasks
from atlas.featvis import objectives
from atlas.featvis.objectives import Objective
from atlas.featvis.render import RenderResult, render
from atlas.models import LoadedModel, with_absolute_paths
from atlas.runtime import cached_model, resolve_device, thread_copy
from atlas.store import RunStore, open_run
from atlas.store.render import IconCache


@dataclass(frozen=True)
class Objectives:
    """What a series of icons maximize, one row of ``targets`` per icon (each batch's
    objective is built where it runs, from the rows it was given).

    ``kind``: ``direction`` (rows of ``targets`` (N, C): directions in ``layer``'s
    activation space, whitened by ``whitening``, purity weighted by ``cossim_pow``:
    :func:`atlas.featvis.objectives.direction`); ``neuron`` or ``channel`` (``targets``
    (N,) channels of ``layer``: at the map's central position, or its mean over the map);
    ``class_logit`` (``targets`` (N,) class indices). ``redirect_relu_steps``: the first
    steps in which ReLUs pass gradient to units they block (a single unit is often dead
    for the starting image; a direction across many channels is not)."""

    kind: Literal["direction", "neuron", "channel", "class_logit"]
    targets: np.ndarray
    layer: str | None = None
    whitening: np.ndarray | None = None
    cossim_pow: float = 0.0
    redirect_relu_steps: int = 0

    @classmethod
    def directions(
        cls, layer: str, targets: np.ndarray, *, whitening: np.ndarray | None, cossim_pow: float
    ) -> Objectives:
        return cls("direction", np.asarray(targets), layer, whitening, cossim_pow)

    @classmethod
    def channels(
        cls,
        layer: str,
        channels: Sequence[int],
        kind: Literal["neuron", "channel"],
        *,
        redirect_relu_steps: int,
    ) -> Objectives:
        targets = np.array([int(c) for c in channels], np.int64)
        return cls(kind, targets, layer, redirect_relu_steps=redirect_relu_steps)

    @classmethod
    def classes(cls, indices: Sequence[int]) -> Objectives:
        return cls("class_logit", np.array([int(i) for i in indices], np.int64))

    def __len__(self) -> int:
        return len(self.targets)

    def rows(self, which: slice) -> Objectives:
        return dataclasses.replace(self, targets=self.targets[which])

    def repeated(self, times: int) -> Objectives:
        """Every row ``times`` times over, the copies one after the other."""
        reps = (times,) + (1,) * (self.targets.ndim - 1)
        return dataclasses.replace(self, targets=np.tile(self.targets, reps))

    def objective(self) -> Objective:
        """The batched objective of all rows (one score per row, to maximize)."""
        if self.kind == "direction":
            return objectives.direction(
                self.layer, self.targets, whitening=self.whitening, cossim_pow=self.cossim_pow
            )
        indices = [int(i) for i in self.targets]
        if self.kind == "neuron":
            return objectives.neuron(self.layer, indices)
        if self.kind == "channel":
            return objectives.channel(self.layer, indices)
        return objectives.class_logit(indices)


def batches(count: int, recipe: Recipe) -> list[slice]:
    """The rows of each optimization: ``recipe.batch_size`` at a time (None: all at once)."""
    size = recipe.batch_size or max(count, 1)
    return [slice(start, start + size) for start in range(0, count, size)]


ATTEMPT_SEED_STEP = 1_000_003  # attempt a of an icon seeded with s starts from s + a * this


def attempt_seeds(seeds: Sequence[int], attempts: int) -> list[int]:
    """The starting seeds of ``attempts`` starts of each icon, attempt by attempt: the
    first attempt is the icon's own seed (one attempt renders as before there were more)."""
    return [
        (int(seed) + attempt * ATTEMPT_SEED_STEP) % 2**32
        for attempt in range(attempts)
        for seed in seeds
    ]


def best_attempts(result: RenderResult, attempts: int) -> RenderResult:
    """Of a result holding ``attempts`` starts of each of its icons (attempt by attempt,
    as :func:`attempt_seeds` orders them), each icon's start with the highest final
    objective."""
    if attempts == 1:
        return result
    count = len(result.values) // attempts
    best = result.values.reshape(attempts, count).argmax(axis=0) * count + np.arange(count)
    return RenderResult(
        images=result.images[best],
        values=result.values[best],
        history=result.history[:, best],
        robust_values=result.robust_values[best],
    )


def render_objectives(
    model: LoadedModel, objectives: Objectives, seeds: Sequence[int], recipe: Recipe
) -> RenderResult:
    """Icons maximizing ``objectives`` with ``model`` in this process, ``recipe.batch_size``
    at a time (each with its ``recipe.attempts`` starts in the same optimization, so a
    batch optimizes batch_size x attempts images); icon i starts from ``seeds[i]``.
    Returns images (N, S, S, 3) in [0, 1], each icon's final objective and its robust
    objective (:func:`atlas.featvis.render.render`)."""
    size, attempts = recipe.icon_size, recipe.attempts
    images, values = [np.zeros((0, size, size, 3), np.float32)], [np.zeros(0, np.float32)]
    robust = [np.zeros(0, np.float32)]
    for rows in batches(len(objectives), recipe):
        result = render(
            model,
            objectives.rows(rows).repeated(attempts).objective(),
            recipe,
            seeds=attempt_seeds(seeds[rows], attempts),
            redirect_relu_steps=objectives.redirect_relu_steps,
        )
        result = best_attempts(result, attempts)
        images.append(result.images)
        values.append(result.values)
        robust.append(result.robust_values)
    return RenderResult(
        images=np.concatenate(images),
        values=np.concatenate(values),
        history=np.zeros((0, len(objectives)), np.float32),
        robust_values=np.concatenate(robust),
    )


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
    seeds: list[int],
    objectives: Objectives,
    *,
    run_url: str,
    icons_dir: str,
    recipe: Recipe,
    device: str,
    model: LoadedModel | None = None,
    spec: ModelSpec | None = None,
) -> dict:
    """On a worker: render one batch of icons with the run's model (``spec``, its paths
    resolved by the client, or ``model``, one in memory) and write them to the cache at
    ``icons_dir`` under ``keys``."""
    start = time.perf_counter()
    model = worker_model(run_url, device, model=model, spec=spec)
    result = render_objectives(model, objectives, seeds, recipe)
    cache = IconCache(icons_dir)
    check = robust_check(recipe)
    for key, image, value, robust in zip(
        keys, result.images, result.values, result.robust_values, strict=True
    ):
        cache.save(key, image, float(value), robust=(float(robust), check))
    return {"icons": len(keys), "seconds": time.perf_counter() - start}


def render_to_cache(
    run: RunStore,
    objectives: Objectives,
    keys: Sequence[str],
    seeds: Sequence[int],
    cache: IconCache,
    options: RenderConfig,
    *,
    scheduler=None,
    model: LoadedModel | None = None,
    desc: str = "render",
) -> None:
    """Render icon i of ``objectives`` from ``seeds[i]`` into ``cache`` as ``keys[i]``,
    with the run's model (``model``: that model in memory, for a run extracted from one)
    and ``options``' recipe: batches of ``options.batch_size`` handed to the workers of
    ``scheduler`` (None: a local cluster of ``options.workers``; ``"inline"``: this
    process; a scheduler's address or a ``dask.distributed.Client``)."""
    cache.folder.mkdir(parents=True, exist_ok=True)
    if not len(keys):
        return
    keys, seeds = list(keys), np.asarray(seeds, np.int64)
    run_tasks(
        render_task,
        [
            (keys[rows], [int(s) for s in seeds[rows]], objectives.rows(rows))
            for rows in batches(len(keys), options)
        ],
        Cluster(scheduler, options.workers, options.processes, in_process=model is not None),
        key=f"icons-{run.identity_hash}-{keys[0]}-{time.time_ns()}",
        desc=desc,
        unit="icon",
        count="icons",
        total=len(keys),
        run_url=absolute_root(run.url),
        icons_dir=str(cache.folder.resolve()),
        recipe=options,
        device=str(resolve_device(options.device)),
        model=model,
        spec=None if model is not None else with_absolute_paths(run.model_spec()),
    )


def robust_check(recipe: Recipe) -> str:
    """The robust measure's settings, as an icon's cache entry records them beside its
    robust objective (an entry measured otherwise is not read as this measure)."""
    keys = ("robust_samples", "robust_shift", "robust_scale", "robust_rotate")
    return json.dumps({key: getattr(recipe, key) for key in keys}, sort_keys=True)


def grey_share(icons: np.ndarray, tolerance: float) -> np.ndarray:
    """Per icon (N, S, S, 3) uint8, the share of its area still the initial grey: pixels
    within ``tolerance`` of 0.5 in every channel (what the optimization never reached,
    e.g. outside the layer's receptive field)."""
    close = np.abs(icons.astype(np.float32) / 255 - 0.5) < tolerance
    return close.all(axis=-1).mean(axis=(1, 2)).astype(np.float32)
